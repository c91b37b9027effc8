"""What `__main__.py` composes a stack with besides the components: reading the stack's config (stack_config.py,
stack_yaml.py), the AWS pre-flight checks (GPU offerings, vCPU quotas) and where each model runs. Not part of the
component package (components/): a program that uses the components reads its own config and decides its own
placement."""
