"""What every component shares: the type-token scheme, the required labels and tags, reading Args."""

import hashlib
import re
from typing import Any, TypeVar

from pydantic import BaseModel

from .contracts import (
    COMPONENT_LABEL,
    COST_OWNER_LABEL,
    ENVIRONMENT_LABEL,
    MANAGED_BY_LABEL,
    NAME_LABEL,
    PART_OF_LABEL,
    VERSION_LABEL,
)
from .contracts import POOL_LABEL as POOL_LABEL  # where the GPU pool and the preflight have always imported it

ModelT = TypeVar("ModelT", bound=BaseModel)


def as_model(cls: type[ModelT], value: Any) -> ModelT:
    """A schema model from a component's args: as it is when a Python program passes one, validated (with the
    schema's defaults and bounds) when the component provider host passes the plain dict another language sent."""
    return value if isinstance(value, cls) else cls.model_validate(value)


PACKAGE = "modelops"
"""The package part of every component's type token: `modelops:index:<ClassName>`."""


def type_token(class_name: str) -> str:
    return f"{PACKAGE}:index:{class_name}"


def standard_labels(
    name: str, environment: str, cost_owner: str, version: str | None = None, component: str | None = None
) -> dict[str, str]:
    """The labels every Kubernetes object of the project carries (selectors use only the name)."""
    labels = {
        NAME_LABEL: name,
        PART_OF_LABEL: PACKAGE,
        MANAGED_BY_LABEL: "pulumi",
        ENVIRONMENT_LABEL: environment,
        COST_OWNER_LABEL: cost_owner,
    }
    if version is not None:
        labels[VERSION_LABEL] = version
    if component is not None:
        labels[COMPONENT_LABEL] = component
    return labels


def dns_label(value: str) -> str:
    """`value` (a version: an image tag and a label value) as part of a Kubernetes object name (a DNS-1123
    subdomain: lower case, digits, `-` and `.`). A value that had to change gets a hash of itself, so `1.0_A` and
    `1.0-a` never share a name."""
    safe = re.sub(r"[^a-z0-9.-]", "-", value.lower()).strip("-.")
    return safe if safe == value else f"{safe}-{hashlib.sha256(value.encode()).hexdigest()[:6]}"


def weights_volume_name(namespace: str, model: str, version: str) -> str:
    """The PersistentVolume that mounts one version of a model's artifact (`artifactAccess: mount`). PersistentVolumes
    are cluster-wide, so the name carries the namespace; namespace and model names both hold `-`, so two pairs can
    write one name (`b-c` + `a`, `b` + `c-a`): the stack schema refuses such a pair, naming both models."""
    return f"modelops-{namespace}-{model}-weights-{dns_label(version)}"


POD_CACHE_GIB = 2
"""The model pods' writable `/tmp` (caches), requested as ephemeral storage beside the `/models` scratch."""
GRAFANA_UID_MAX = 40
"""Grafana's limit on a dashboard uid ("The uid can have a maximum length of 40 characters":
https://grafana.com/docs/grafana/latest/developers/http_api/dashboard/); provisioning refuses a longer one."""


def dashboard_uid(namespace: str, model: str) -> str:
    """A model's Grafana dashboard uid: `modelops-<namespace>-<model>` while that fits Grafana's 40 characters, else
    its head and a hash of the (namespace, model) pair, so two long names never share a uid (and `dashboard_uid` of a
    pair that fits is what it always was: existing dashboards keep their URLs)."""
    uid = f"modelops-{namespace}-{model}"
    if len(uid) <= GRAFANA_UID_MAX:
        return uid
    digest = hashlib.sha256(f"{namespace}/{model}".encode()).hexdigest()[:12]
    return f"{uid[: GRAFANA_UID_MAX - len(digest) - 1]}-{digest}"


def aws_tags(environment: str, cost_owner: str, **extra: str) -> dict[str, str]:
    """Tags every AWS resource carries; `modelops/cost-owner` is what cost reports group by."""
    return {ENVIRONMENT_LABEL: environment, COST_OWNER_LABEL: cost_owner, "managed-by": "pulumi", **extra}


GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "true", "effect": "NoSchedule"}


ARTIFACT_FETCHER_IMAGE = (
    "public.ecr.aws/aws-cli/aws-cli:2.31.23" "@sha256:668ffb01408e03e1002b36886797c1a97b09f7d0f02fba3123f9fcd68a081dc5"
)
"""The init container that copies a model's artifact from S3. From the ECR Public gallery: Docker Hub's
anonymous pull limit (per node IP, so per NAT gateway) stalls a fleet of new GPU nodes; ECR Public has none
for pulls from AWS. Pinned by digest (the index of 2.31.23)."""
NVIDIA_REGISTRY = "nvcr.io/nvidia/"
"""Where the GPU pools' device plugin and DCGM exporter come from."""
FALLBACK_RELAY_IMAGE = (
    "public.ecr.aws/aws-observability/aws-sigv4-proxy:1.11.1"
    "@sha256:34bbec3cb98403d3e040ec1dadb53bb02285f70d2f0ead2d16435fd30980abaa"
)
"""awslabs/aws-sigv4-proxy, which signs a gateway fallback's requests for its function URL (GatewayFallback). Its
module path (`aws-sigv4-proxy`) is not fetchable, so the Go module proxy cannot serve it and the tier never builds it
(kwok runs no containers anyway)."""
