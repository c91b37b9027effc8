"""What `__main__.py` composes a stack with besides the components: the AWS pre-flight checks (GPU offerings,
vCPU quotas) and where each model runs. Not part of the component package (components/): a program that
uses the components decides its own placement."""
