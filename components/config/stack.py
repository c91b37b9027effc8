"""The whole stack: the environment, cluster, registry, pools, models, budget and gates, and the defaults a
model takes from its environment."""

import re
from typing import Literal

from pydantic import Field, field_validator

from .base import ConfigModel
from .cluster import ClusterConfig
from .enums import CapacityType, Environment, FallbackMode
from .environments import ENVIRONMENT_DEFAULTS, EnvironmentDefaults
from .mlflow import MlflowConfig
from .model import ModelConfig
from .pool import GpuPoolConfig
from .registry import RegistryConfig


class BudgetConfig(ConfigModel):
    monthly_gpu_usd: float = Field(gt=0, allow_inf_nan=False)


class PreflightConfig(ConfigModel):
    during_up: bool = False
    """Run the capacity and quota checks at the start of `pulumi up` (needs AWS credentials)."""


SIGNING_PROFILE_ARN = re.compile(r"^arn:aws(-[a-z]+)*:signer:[a-z0-9-]+:[0-9]{12}:/signing-profiles/[a-zA-Z0-9_]{2,}$")
"""An AWS Signer signing profile ARN as ECR answers it (botocore's ECR model, `SigningProfileArn`)."""
_PROJECT_PATH = re.compile(r"[A-Za-z0-9._+=@,-]{1,255}(/[A-Za-z0-9._+=@,-]{1,255}){0,15}")
"""A file of the project: nothing a message could not show as it is, no absolute path."""


class SecurityConfig(ConfigModel):
    max_image_severity: Literal["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"] = "HIGH"
    """The lowest ECR finding severity that fails `modelops gate`: an image with a finding at or above it, or
    with one ECR could not rate (UNDEFINED, Inspector's UNTRIAGED), is refused."""
    require_image_gate: bool | None = None
    """Whether `modelops gate` must pass before `pulumi up` (default: on in prod, off elsewhere)."""
    allow_unscanned_images: list[str] = []
    """Images outside this account's ECR, which ECR never scans (nor signs), that the gate lets through: a prefix
    ending in `/` (`nvcr.io/nvidia/`) or one exact reference; either way the image must be pinned by digest."""

    trusted_signing_profiles: list[str] = []
    """AWS Signer signing profiles (ARNs, `arn:aws:signer:<region>:<account>:/signing-profiles/<name>`) whose
    signature `modelops gate` requires: when set, every image in this account's ECR must have a COMPLETE ECR
    managed signing status by one of them; the same identities the cluster's verifier trusts (Notation's
    `trustedIdentities`). Empty (the default): signatures are not checked."""

    @field_validator("trusted_signing_profiles")
    @classmethod
    def _signing_profile_arns(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not SIGNING_PROFILE_ARN.fullmatch(entry):  # `$` in the pattern would admit a final newline
                raise ValueError(
                    f"{entry!r}: give an AWS Signer signing profile ARN, "
                    "arn:aws:signer:<region>:<account>:/signing-profiles/<name> (no version)"
                )
        return value

    @field_validator("allow_unscanned_images")
    @classmethod
    def _prefix_or_reference(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not entry.endswith("/") and "@sha256:" not in entry:
                raise ValueError(f"{entry!r}: give a prefix ending in '/' or a reference pinned by @sha256:")
        return value

    require_pinned_weights: bool = False
    """Every model whose weights are in S3 must have them pinned by content (`weights.lock.json`, written by
    `modelops weights`, or the registered version's `modelops.weights.manifest` tag): an unpinned one is a config
    error. Pinned weights are checked in the pod before serving whether or not this is on."""

    model_signing_keys: list[str] = []
    """Public keys (PEM files in the project, e.g. `keys/models.pub`) whose OpenSSF model signatures a model with
    `signature: key` accepts: elliptic-curve P-256, P-384 or P-521, as `model_signing sign key` uses."""

    @field_validator("model_signing_keys")
    @classmethod
    def _project_paths(cls, value: list[str]) -> list[str]:
        for path in value:
            if not _PROJECT_PATH.fullmatch(path) or any(part in (".", "..") for part in path.split("/")):
                raise ValueError(
                    f"{path[:200]!r}: give a path relative to the project: '/'-separated names of letters, digits "
                    "and ._+=@,- (no '..')"
                )
        if len(set(value)) != len(value):
            raise ValueError("lists a key twice")
        return value

    def image_gate_required(self, environment: Environment) -> bool:
        # prod's default sits beside the key it defaults: the gate is a verb's setting, not the program's
        return self.require_image_gate if self.require_image_gate is not None else environment == Environment.PROD


class StackConfig(ConfigModel):
    environment: Environment
    cluster: ClusterConfig
    registry: RegistryConfig
    gpu_pools: dict[str, GpuPoolConfig] = {}
    models: dict[str, ModelConfig]
    budget: BudgetConfig
    mlflow: MlflowConfig | None = None
    """The MLflow registry that `models:/…` artifact URIs are resolved in."""
    preflight: PreflightConfig = PreflightConfig()
    security: SecurityConfig = SecurityConfig()
    """Image gates: the scan findings `modelops gate` refuses before `pulumi up`, and the signatures it requires."""
    cost_owner: str = Field(default="ml-platform", pattern=r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")
    """The team billed for this stack: a tag on AWS resources and a label on Kubernetes objects."""

    @property
    def defaults(self) -> EnvironmentDefaults:
        return ENVIRONMENT_DEFAULTS[self.environment]

    def min_replicas(self, model: ModelConfig) -> int:
        return model.replicas.min if model.replicas.min is not None else self.defaults.min_replicas

    def max_replicas(self, model: ModelConfig) -> int:
        if model.replicas.max is not None:
            return model.replicas.max
        return max(self.defaults.max_replicas, self.min_replicas(model))

    def fallback(self, model: ModelConfig) -> FallbackMode:
        return model.fallback if model.fallback is not None else self.defaults.fallback

    def capacity_types(self, pool: "GpuPoolConfig") -> list[CapacityType]:
        return list(pool.capacity_types if pool.capacity_types is not None else self.defaults.capacity_types)

    def allowed_registries(self) -> tuple[str, ...]:
        """Every registry a workload of this stack may pull from: this account's ECR first."""
        return (f"{self.cluster.ecr_registry}/", *self.registry.allowed_registries)
