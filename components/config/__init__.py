"""The stack configuration schema: every `modelops:` key, validated once.

The program reads config only through `composition.stack_config.load_stack()`, which hands the values to
`parse_stack_config`; components receive the typed values. Errors name the key path as a user writes it in a stack
file (`modelops:models.chat.replicas.min`) and the reason, one line per problem, so a broken stack fails before any
resource is registered.

By subject: `enums` (the choices), `environments` (the defaults table), `cluster`, `registry` (repositories and
images), `pool`, `autoscaling`, `serverless`, `model`, `stack`; each model carries its own validators. `checks`
holds the checks across models, one function per concern; `secret_paths` where `secure:` values may sit; `parse`
the entry, `parse_stack_config`. Import from here: `from components.config import ModelConfig`.
"""

from ..runtimes import SERVER_METRIC_PREFIXES  # the policy pack's copy is held equal to the schema's list
from .autoscaling import ActiveHours, AutoscalingConfig, iana_zones
from .base import KUBECONFIG_SECRET_KEY, NAMESPACE, SECRET_SET
from .checks import KUBERNETES_OBJECT_DATA_BYTES
from .cluster import RESERVED_NAMESPACES, ClusterConfig, GatewayRef, label_problems
from .enums import (
    AmiFamily,
    Architecture,
    ArtifactAccess,
    CapacityType,
    ConsolidationPolicy,
    Environment,
    FallbackMode,
    InstanceStorePolicy,
    Placement,
    Platform,
    WeightsSignature,
)
from .environments import ENVIRONMENT_DEFAULTS, EnvironmentDefaults
from .mlflow import MlflowConfig
from .model import PROGRAM_ENV, CanaryConfig, ModelConfig, ProbeConfig, Replicas, Resources, lambda_environment
from .parse import StackConfigError, parse_stack_config
from .pool import AMI_ALIAS_MAX, GpuPoolConfig
from .registry import ImageConfig, RegistryConfig
from .secret_paths import SecretPath, secret_paths_in
from .serverless import LAMBDA_ENV_BYTES, LAMBDA_RESERVED_ENV, STACK_NAME, ServerlessConfig, lambda_function_name
from .stack import BudgetConfig, PreflightConfig, SecurityConfig, StackConfig

__all__ = [
    "AMI_ALIAS_MAX",
    "ENVIRONMENT_DEFAULTS",
    "KUBECONFIG_SECRET_KEY",
    "KUBERNETES_OBJECT_DATA_BYTES",
    "LAMBDA_ENV_BYTES",
    "LAMBDA_RESERVED_ENV",
    "NAMESPACE",
    "PROGRAM_ENV",
    "RESERVED_NAMESPACES",
    "SECRET_SET",
    "SERVER_METRIC_PREFIXES",
    "STACK_NAME",
    "ActiveHours",
    "AmiFamily",
    "Architecture",
    "ArtifactAccess",
    "AutoscalingConfig",
    "BudgetConfig",
    "CanaryConfig",
    "CapacityType",
    "ClusterConfig",
    "ConsolidationPolicy",
    "Environment",
    "EnvironmentDefaults",
    "FallbackMode",
    "GatewayRef",
    "GpuPoolConfig",
    "ImageConfig",
    "InstanceStorePolicy",
    "MlflowConfig",
    "ModelConfig",
    "Placement",
    "Platform",
    "PreflightConfig",
    "ProbeConfig",
    "RegistryConfig",
    "Replicas",
    "Resources",
    "SecretPath",
    "SecurityConfig",
    "ServerlessConfig",
    "StackConfig",
    "StackConfigError",
    "WeightsSignature",
    "iana_zones",
    "label_problems",
    "lambda_environment",
    "lambda_function_name",
    "parse_stack_config",
    "secret_paths_in",
]
