"""GPU instance catalogue: what each EC2 GPU instance type carries and what it costs on demand.

The data lives beside the components (`components/data/gpu_instances.json`), so it travels with them when
another program uses them; the policy pack (its own virtualenv, never importing this package) prices the
GPU ceiling from the same file through the `policies/modelops_rules/data` link to it. This module
turns it into typed values for the stack schema (can a pool hold the GPUs a model asks for per
replica?), the GPU node pool (cpu/memory limits), pre-flight (vCPU quota) and the cost ceiling.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CATALOGUE_PATH = Path(__file__).resolve().parent / "data" / "gpu_instances.json"


@dataclass(frozen=True)
class GpuInstanceType:
    name: str
    family: str
    gpus: int
    gpu_model: str
    gpu_memory_gib: int
    """Memory of one GPU."""
    vcpus: int
    memory_gib: int
    quota_class: str
    """Which EC2 vCPU quota the type counts against: "G" (G and VT) or "P"."""
    instance_store_gb: int = 0
    """Local NVMe instance storage (0: none), what `instanceStorePolicy: RAID0` stripes."""


@dataclass(frozen=True)
class VcpuQuota:
    code: str
    name: str


@dataclass(frozen=True)
class Catalogue:
    hours_per_month: int
    instance_types: dict[str, GpuInstanceType]
    on_demand_usd_per_hour: dict[str, dict[str, float]]
    vcpu_quotas: dict[tuple[str, str], VcpuQuota]
    """By (quota class, capacity type)."""
    reserved_vcpus: float = 0.5
    reserved_memory_gib: float = 1.5
    """What a node keeps from pods (kubelet, system, DaemonSets): `nodeReserved` in the data."""

    def fits(self, instance: GpuInstanceType, gpus: int, cpu: str, memory: str) -> bool:
        """Whether one replica asking for `gpus`, `cpu` and `memory` fits on an empty node of this type."""
        return (
            instance.gpus >= gpus
            and instance.vcpus - self.reserved_vcpus >= cpu_cores(cpu)
            and instance.memory_gib - self.reserved_memory_gib >= memory_gib(memory)
        )

    def families(self) -> set[str]:
        return {t.family for t in self.instance_types.values()}

    def types_for(
        self, instance_families: tuple[str, ...] | list[str], instance_types: tuple[str, ...] | list[str]
    ) -> list[GpuInstanceType]:
        """The entries a pool may launch: its explicit types, else every type of its families."""
        if instance_types:
            return [self.instance_types[n] for n in instance_types if n in self.instance_types]
        wanted = set(instance_families)
        return [t for t in self.instance_types.values() if t.family in wanted]


@cache
def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    raw = json.loads(path.read_text())
    types = {
        name: GpuInstanceType(
            name,
            t["family"],
            t["gpus"],
            t["gpuModel"],
            t["gpuMemoryGiB"],
            t["vcpus"],
            t["memoryGiB"],
            t["quotaClass"],
            t.get("instanceStoreGB", 0),
        )
        for name, t in raw["instanceTypes"].items()
    }
    quotas = {(q["quotaClass"], q["capacityType"]): VcpuQuota(q["code"], q["name"]) for q in raw["vcpuQuotas"]}
    reserved = raw.get("nodeReserved", {})
    return Catalogue(
        raw["hoursPerMonth"],
        types,
        raw["onDemandUsdPerHour"],
        quotas,
        reserved.get("vcpus", 0.5),
        reserved.get("memoryGiB", 1.5),
    )


_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
"""The suffixes of the schema's quantities (Kubernetes resource.Quantity); any of them may follow a CPU or a
memory amount: `500m` of memory is half a byte, `2k` CPUs are 2000 (odd, but what the API server reads)."""


def quantity_value(quantity: str) -> float:
    """A Kubernetes quantity as a plain number: `24Gi`, `512Mi`, `16G`, `500m`, `2k`, `6`."""
    for suffix, factor in (*_BINARY.items(), *_DECIMAL.items()):
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    if quantity.endswith("m"):
        return float(quantity[:-1]) / 1000  # divided, not multiplied by 0.001: `100m` is exactly 0.1 as before
    return float(quantity)


def cpu_cores(quantity: str) -> float:
    """A Kubernetes CPU quantity in cores: `6`, `2.5`, `500m`."""
    return quantity_value(quantity)


def memory_gib(quantity: str) -> float:
    """A Kubernetes memory quantity in GiB: `24Gi`, `512Mi`, `16G`, bytes."""
    return quantity_value(quantity) / 2**30
