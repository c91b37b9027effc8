"""The one table of what an environment implies when a stack does not say otherwise."""

from dataclasses import dataclass
from typing import Literal

from .enums import CapacityType, FallbackMode


@dataclass(frozen=True)
class EnvironmentDefaults:
    """What an environment implies when a stack does not say otherwise."""

    min_replicas: int
    max_replicas: int
    protect: bool
    """Protect stateful and expensive resources (ECR repositories) from `pulumi destroy`."""
    policy_enforcement: Literal["advisory", "mandatory"]
    capacity_types: tuple[CapacityType, ...]
    fallback: FallbackMode
    log_retention_days: int


ENVIRONMENT_DEFAULTS: dict[str, EnvironmentDefaults] = {
    "dev": EnvironmentDefaults(1, 2, False, "advisory", (CapacityType.SPOT,), FallbackMode.ONLY, 7),
    "staging": EnvironmentDefaults(
        2, 4, False, "mandatory", (CapacityType.SPOT, CapacityType.ON_DEMAND), FallbackMode.NONE, 30
    ),
    "prod": EnvironmentDefaults(2, 6, True, "mandatory", (CapacityType.ON_DEMAND,), FallbackMode.NONE, 90),
}
