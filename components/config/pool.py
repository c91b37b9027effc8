"""A GPU node pool: the instance types Karpenter may launch, their disks and disruption, and the GPU cap."""

from typing import Self

from pydantic import Field, model_validator

from ..gpu_catalogue import GpuInstanceType, load_catalogue
from .base import ConfigModel
from .enums import AmiFamily, Architecture, CapacityType, ConsolidationPolicy, InstanceStorePolicy

AMI_ALIAS_MAX = 30
"""The EC2NodeClass CRD's maxLength for `amiSelectorTerms[].alias` (`<family>@<version>`)."""
_DURATION = r"^([0-9]+(s|m|h))+$|^Never$"


class GpuPoolConfig(ConfigModel):
    instance_families: list[str] = []
    instance_types: list[str] = []
    capacity_types: list[CapacityType] | None = None
    """Default from the environment table (spot in dev, on-demand in prod)."""
    gpu_limit: int = Field(ge=1, le=4096)
    """The most GPUs Karpenter may launch for this pool: the hard cost cap."""
    ami_family: AmiFamily = AmiFamily.BOTTLEROCKET
    ami_version: str = Field(default="latest", pattern=r"^(latest|v?[0-9][0-9.]*)$")
    architecture: Architecture = Architecture.AMD64
    consolidation_policy: ConsolidationPolicy = ConsolidationPolicy.WHEN_EMPTY
    consolidate_after: str = Field(default="10m", pattern=_DURATION)
    disruption_budget: str = Field(default="10%", pattern=r"^((100|[0-9]{1,2})%|[0-9]+)$")
    """How many of the pool's nodes Karpenter may disrupt at once."""
    expire_after: str = Field(default="720h", pattern=_DURATION)
    """Node lifetime (`Never` to keep nodes). Karpenter v1 expires forcefully: the pool's disruption budget
    does not pace expiry, and nodes launched together expire together; the models' PodDisruptionBudgets
    still pace each drain (no terminationGracePeriod is set, so a drain never deletes a protected pod)."""
    weight: int | None = Field(default=None, ge=1, le=100)
    """Higher weights are tried first: give a spot pool a higher weight than its on-demand backup."""
    root_volume_gib: int = Field(default=50, ge=20, le=16384)
    data_volume_gib: int = Field(default=200, ge=50, le=16384)
    """Bottlerocket's data volume holds container images: model images are large."""
    instance_store_policy: InstanceStorePolicy | None = None
    """`RAID0`: Karpenter stripes the instance's local NVMe disks and puts the kubelet's and the container
    runtime's storage on them, so multi-GB images and model weights land on local disks (g5, g6, g6e, p4d, p5
    carry them; validation refuses a type without)."""
    time_slicing_replicas: int | None = Field(default=None, ge=2, le=48)
    """Share each GPU between this many pods (small models only; no memory isolation). Karpenter provisions
    from the instance type's physical GPU count, not the shares the device plugin advertises once a node
    runs: a burst of pending pods launches a node per requested GPU until running nodes advertise their
    shares. `gpuLimit`, the replica checks and the cost ceiling count physical GPUs."""

    def node_disk_gib(self, instance: GpuInstanceType) -> float:
        """The disk a node of this pool gives the kubelet and the container runtime (images, ephemeral storage):
        the striped instance store under RAID0, else the EBS volume gpu_pool.py mounts there (Bottlerocket's data
        volume; one root volume of both sizes on AL2023)."""
        if self.instance_store_policy is not None and instance.instance_store_gb:
            return instance.instance_store_gb * 10**9 / 2**30
        if self.ami_family == AmiFamily.BOTTLEROCKET:
            return float(self.data_volume_gib)
        return float(self.root_volume_gib + self.data_volume_gib)

    @model_validator(mode="after")
    def _ami_alias(self) -> Self:
        alias = f"{self.ami_family}@{self.ami_version}"
        if len(alias) > AMI_ALIAS_MAX:
            raise ValueError(
                f"amiVersion: the AMI alias {alias!r} is longer than the {AMI_ALIAS_MAX} characters "
                "Karpenter's EC2NodeClass accepts"
            )
        return self

    @model_validator(mode="after")
    def _instances(self) -> Self:
        catalogue = load_catalogue()
        if not self.instance_families and not self.instance_types:
            raise ValueError("set instanceFamilies or instanceTypes")
        unknown_families = sorted(set(self.instance_families) - catalogue.families())
        if unknown_families:
            raise ValueError(
                f"unknown GPU instance families {unknown_families} "
                f"(known: {', '.join(sorted(catalogue.families()))})"
            )
        unknown_types = sorted(set(self.instance_types) - set(catalogue.instance_types))
        if unknown_types:
            raise ValueError(f"unknown GPU instance types {unknown_types}")
        if self.instance_store_policy is not None:
            without = [
                t.name
                for t in catalogue.types_for(self.instance_families, self.instance_types)
                if not t.instance_store_gb
            ]
            if without:
                raise ValueError(
                    f"instanceStorePolicy: {', '.join(without)} have no local NVMe instance store to "
                    "stripe; remove them or the policy"
                )
        return self
