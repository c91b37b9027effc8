"""The stack configuration schema: every `modelops:` key, validated once.

The program reads config only through `load_stack_config()`; components receive the typed values.
Errors name the key path as a user writes it in a stack file (`modelops:models.chat.replicas.min`)
and the reason, one line per problem, so a broken stack fails before any resource is registered.
"""

import ipaddress
import json
import re
import zoneinfo
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from . import promql
from .common import ARTIFACT_FETCHER_IMAGE, FALLBACK_RELAY_IMAGE, NVIDIA_REGISTRY, POD_CACHE_GIB, weights_volume_name
from .cron import cron_problem
from .gpu_catalogue import GpuInstanceType, load_catalogue, memory_gib
from .runtimes import PRESETS, Runtime, RuntimePreset

NAMESPACE = "modelops"
"""The config namespace: every key of this project is `modelops:<key>`."""


# Choices are string enums, not Literals: the component provider's schema analyzer (which publishes the
# components to other languages) understands enums, and a StrEnum compares and prints as its value.
class Environment(StrEnum):
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"


class CapacityType(StrEnum):
    SPOT = "spot"
    ON_DEMAND = "on-demand"


class FallbackMode(StrEnum):
    NONE = "none"
    STANDBY = "standby"
    AUTO = "auto"
    ONLY = "only"


class ArtifactAccess(StrEnum):
    COPY = "copy"
    MOUNT = "mount"


class Placement(StrEnum):
    GPU = "gpu"
    SERVERLESS = "serverless"


class AmiFamily(StrEnum):
    BOTTLEROCKET = "bottlerocket"
    AL2023 = "al2023"


class Architecture(StrEnum):
    AMD64 = "amd64"
    ARM64 = "arm64"


class InstanceStorePolicy(StrEnum):
    RAID0 = "RAID0"


class ConsolidationPolicy(StrEnum):
    WHEN_EMPTY = "WhenEmpty"
    WHEN_EMPTY_OR_UNDERUTILIZED = "WhenEmptyOrUnderutilized"


class Platform(StrEnum):
    LINUX_AMD64 = "linux/amd64"
    LINUX_ARM64 = "linux/arm64"


_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_HOSTNAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
_MODEL_NAME = re.compile(r"[a-z]([-a-z0-9]{0,40}[a-z0-9])?")
"""A model's name names its Service (RFC 1035: starts with a letter), Deployment and IAM role."""
_POOL_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?")
RESERVED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "default")
"""Namespaces a model may not use: the program would label them `restricted` and take them over."""
_VERSION = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
"""A model version is an image tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) and the `app.kubernetes.io/version` label value
(alphanumeric at both ends, at most 63): this is both."""
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IMAGE_REFERENCE = re.compile(
    rf"(?P<domain>{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?)"
    rf"/(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)(?::(?P<tag>[\w][\w.-]{{0,127}}))?(?:@sha256:[0-9a-f]{{64}})?",
    re.ASCII,  # the grammar's `\w` is ASCII (Go's regexp): `tág` is no tag
)
"""The distribution reference grammar (github.com/distribution/reference), with the registry required."""
_ENV_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]+")
"""Lambda's rule for environment keys (a letter, then letters, digits, underscores; two characters at least),
which is also a valid Kubernetes env name: the same `env` goes to both."""
PROGRAM_ENV = ("MODEL_VERSION", "MODEL_DIR", "MODEL_URI", "HOME")
"""Env names the program sets itself on pods or functions: a model's own `env` cannot take them."""
LAMBDA_RESERVED_ENV = (
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
)
"""Keys Lambda reserves (docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html): it refuses a function
that sets one."""
KUBERNETES_OBJECT_DATA_BYTES = 1024 * 1024
"""What one Secret or ConfigMap may hold (kubernetes.io/docs/concepts/configuration/secret/#restriction-data-size:
"Individual Secrets are limited to 1MiB in size"); etcd takes at most 1.5 MiB per request (--max-request-bytes)."""
LAMBDA_ENV_BYTES = 4096
"""Lambda's limit on the total size of a function's environment variables (keys and values)."""
AMI_ALIAS_MAX = 30
"""The EC2NodeClass CRD's maxLength for `amiSelectorTerms[].alias` (`<family>@<version>`)."""
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"
_DURATION = r"^([0-9]+(s|m|h))+$|^Never$"


_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
"""A label key's name part and a label value (k8s.io/apimachinery validation IsQualifiedName, IsValidLabelValue:
at most 63 characters, alphanumeric at both ends, `-`, `_`, `.` between)."""
_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""A label key's prefix: a DNS-1123 subdomain (at most 253 characters)."""


def label_problems(key: str, value: str) -> list[str]:
    """Why the API server would refuse `key: value` as a label, else []."""
    problems = []
    prefix, slash, name = key.rpartition("/")
    if not _LABEL_NAME.fullmatch(name) or (slash and (len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix))):
        problems.append(
            f"label key {key!r} is not a qualified name ([prefix/]name: name at most 63 characters, alphanumeric at "
            "both ends with '-', '_', '.' between; prefix a DNS subdomain)"
        )
    if value and not _LABEL_NAME.fullmatch(value):
        problems.append(
            f"label value {value!r} of {key!r} is not a label value (at most 63 characters, alphanumeric at both ends "
            "with '-', '_', '.' between)"
        )
    return problems


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _cidr_problem(cidr: str) -> str | None:
    """Why the API server would refuse `cidr` as a NetworkPolicy ipBlock, else None. It parses with Go's
    net.ParseCIDR, which needs `address/bits` (no bare address, no netmask); Kubernetes 1.33's strict validation
    also refuses leading zeros, IPv4-mapped IPv6 and host bits (KEP-4858). Only the canonical form is taken."""
    address, slash, bits = cidr.partition("/")
    if not slash or not bits.isdigit():
        return "is not a CIDR block (address/prefix length, e.g. 10.0.0.0/16)"
    if "%" in address:
        return "is not a CIDR block (an IPv6 zone, `%...`, names an interface; Go's net.ParseCIDR refuses it)"
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        return f"is not a CIDR block ({exc})"
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        return "is an IPv4-mapped IPv6 block; write the IPv4 block"
    if str(network) != cidr:
        return f"is not in canonical form; write {str(network)!r}"
    return None


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


class _Model(BaseModel):
    # field docstrings become the JSON schema's descriptions (editors show them on hover)
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True, use_attribute_docstrings=True
    )


class GatewayRef(_Model):
    """A Gateway API Gateway that model routes attach to."""

    name: str = Field(pattern=_DNS_SUBDOMAIN)
    namespace: str = Field(pattern=_DNS_LABEL)
    hostname: str | None = Field(default=None, pattern=_HOSTNAME, max_length=253)
    """The host clients call: each model's endpoint is `https://<hostname>/<model>` and its HTTPRoute matches it."""
    standby_failover: bool = False
    """A `standby` model's route fails over to its Lambda function while no replica answers (asleep at zero, waking,
    all down) instead of a 503 (components/gateway_fallback.py). Needs Envoy Gateway with `extensionApis.enableBackend`."""

    @field_validator("hostname")
    @classmethod
    def _one_host(cls, value: str | None) -> str | None:
        # A route may match `*.example.com`, but an endpoint names one host a client can call; and the Gateway API
        # forbids IP addresses as hostnames (HTTPRoute spec.hostnames: "IPs are not allowed").
        if value is not None and value.startswith("*"):
            raise ValueError(
                f"{value!r} is a wildcard: the models' endpoints are https://<hostname>/<model>, which must name one "
                "host a client can call; give that host (the Gateway's listener may still be a wildcard)"
            )
        if value is not None and _is_ip_address(value):
            raise ValueError(f"{value!r} is an IP address; the Gateway API matches routes by host name only")
        return value


class ClusterConfig(_Model):
    name: str = Field(pattern=_DNS_LABEL)
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
    account_id: str = Field(pattern=r"^[0-9]{12}$")
    kubernetes_version: str = Field(pattern=r"^1\.[0-9]{2}$")
    kubeconfig_stack: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$"
    )
    """A StackReference (`org/project/stack`) to the stack that owns the cluster. Without it, the
    kubeconfig is the secret config value `modelops:kubeconfig` (`pulumi config set --secret`)."""
    kubeconfig_output: str = Field(default="kubeconfig", min_length=1)
    """The output of that stack holding the kubeconfig."""
    node_role: str = Field(pattern=r"^[A-Za-z0-9_+=,.@-]{1,64}$")
    """The IAM role Karpenter gives the nodes it launches."""
    discovery_tag: str | None = Field(default=None, min_length=1, max_length=256)
    """Value of the `karpenter.sh/discovery` tag on the cluster's subnets and security groups (default: name)."""
    oidc_provider_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$")
    availability_zones: list[str] = []
    """Zones the pools may use; pre-flight checks offerings there (empty: every zone of the region)."""
    ingress_namespace: str = Field(default="gateway-system", pattern=_DNS_LABEL)
    """Namespace where the pods that forward traffic to model servers run: the gateway implementation's
    proxies (Envoy Gateway: `envoy-gateway-system`, often not the Gateway resource's namespace) or the
    ingress controller. The models' NetworkPolicies admit it."""
    ingress_cidrs: list[str] = []
    """Address ranges traffic may also arrive from (an ALB or VPC Lattice in IP mode: the VPC's CIDRs)."""

    @field_validator("ingress_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            problem = _cidr_problem(cidr)
            if problem:
                raise ValueError(f"{cidr!r} {problem}")
        return value

    monitoring_namespace: str = Field(default="monitoring", pattern=_DNS_LABEL)
    """Where Prometheus runs: the models' NetworkPolicies admit it to their metrics."""
    dashboard_labels: dict[str, str] = {"grafana_dashboard": "1"}
    """What the Grafana sidecar discovers dashboard ConfigMaps by (kube-prometheus-stack's default)."""

    @field_validator("dashboard_labels", "prometheus_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        problems = [p for key, text in value.items() for p in label_problems(key, text)]
        if problems:
            raise ValueError("; ".join(problems))
        return value

    dashboards_namespace: str | None = Field(default=None, pattern=_DNS_LABEL)
    """Where the dashboard ConfigMaps go (default: the monitoring namespace, which the sidecar searches)."""
    prometheus_labels: dict[str, str] = {"release": "kube-prometheus-stack"}
    """Labels the cluster's Prometheus selects ServiceMonitors and PrometheusRules by (kube-prometheus-stack
    selects its Helm release's label by default): set on every one the program creates."""
    alarm_topic_arn: str | None = Field(
        default=None, pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$", max_length=300
    )
    """SNS topic the fallbacks' CloudWatch alarms notify (an alarm without an action notifies nobody)."""
    gateway: GatewayRef | None = None
    """When set, canaries split traffic exactly through an HTTPRoute on this Gateway."""

    @property
    def ecr_registry(self) -> str:
        return f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com"


class RegistryConfig(_Model):
    repository_prefix: str = Field(pattern=r"^[a-z0-9]+([._/-][a-z0-9]+)*$")
    """ECR repositories are named `<prefix>/<model>`."""
    allowed_registries: list[str] = []
    """Registries workloads may pull from besides this account's ECR (prefixes ending in `/`)."""
    images_to_keep: int = Field(default=20, ge=1, le=1000)
    build_on_preview: bool = False
    """Build images during `pulumi preview` too. Off by default: a preview then needs no BuildKit builder
    and no Docker engine (PR previews run without either), and shows the images' digests as unknown."""

    @field_validator("allowed_registries")
    @classmethod
    def _trailing_slash(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not prefix.endswith("/"):
                raise ValueError(f"{prefix!r} must end with '/' so that a prefix cannot match another registry")
        return value


class GpuPoolConfig(_Model):
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


class ImageConfig(_Model):
    """Either a build (context + Dockerfile) or a pre-built reference."""

    context: str | None = None
    dockerfile: str = "Dockerfile"
    platform: Platform = Platform.LINUX_AMD64
    build_args: dict[str, str] = {}
    target: str | None = None
    ref: str | None = None
    """A pre-built image, `registry/repository[:tag][@sha256:digest]`; a tag is resolved to its digest at
    deploy time."""

    @field_validator("ref")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = _IMAGE_REFERENCE.fullmatch(value)
        if not match:
            raise ValueError(
                f"{value!r} is not an image reference: registry/repository[:tag][@sha256:<64 hex>], "
                "with a lower-case repository path"
            )
        domain = match["domain"]
        if "." not in domain and ":" not in domain and domain != "localhost":
            raise ValueError(
                f"{value!r} names no registry ({domain!r} would be read as a Docker Hub path); "
                "give the registry host"
            )
        if len(f"{domain}/{match['path']}") > 255:
            raise ValueError("the repository name is longer than 255 characters")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.context is None) == (self.ref is None):
            raise ValueError("set exactly one of context (build) or ref (pre-built image)")
        return self


_S3_URI = r"^s3://[a-z0-9.-]{3,63}(/.*)?$"
_S3_KEY = re.compile(r"[A-Za-z0-9!_.'()+=@,-]+(/[A-Za-z0-9!_.'()+=@,-]+)*/?")
"""An artifact prefix: S3's safe key characters (docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html,
"Safe characters") without `*` and with `+ = @ ,`, in non-empty `/`-separated segments."""


def _artifact_uri(value: str | None) -> str | None:
    """An artifact URI the pods' IAM grant can be scoped to. The grant's resources are `<bucket>/<prefix>/*` and
    its list condition `s3:prefix` StringLike `<prefix>/*`: in both, `*` and `?` are wildcards and `${...}` a policy
    variable (docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html), so a prefix
    holding one would widen the role past its own prefix (`s3://b/*` is the whole bucket). A bucket alone, or an
    empty segment, would grant the whole bucket or another key than the one fetched."""
    if value is None:
        return value
    bucket, _, key = value[len("s3://") :].partition("/")
    if not key.strip("/"):
        raise ValueError(
            f"{value!r} names a bucket but no prefix: the pods' role would read the whole bucket; give the prefix "
            "of this model's weights (s3://<bucket>/<model>/<version>)"
        )
    if not _S3_KEY.fullmatch(key):
        wild = sorted({c for c in key if c in "*?$"})
        raise ValueError(
            f"{value!r}: "
            + (
                f"{', '.join(map(repr, wild))} in a prefix is an IAM wildcard or policy variable, which would widen the "
                "pods' read grant past the prefix"
                if wild
                else "a prefix is non-empty segments of letters, digits and ! _ . ' ( ) + = @ , - separated by '/'"
            )
        )
    return value


class Replicas(_Model):
    min: int | None = Field(default=None, ge=0, le=1000)
    """Fewest replicas (default: the environment's). 0 scales the model to zero when idle: KEDA only (set
    autoscaling.prometheusQuery); the first request after idle waits for a node, the pull and the load."""
    max: int | None = Field(default=None, ge=1, le=1000)


class Resources(_Model):
    cpu: str = Field(default="2", pattern=_QUANTITY)
    memory: str = Field(default="8Gi", pattern=_QUANTITY)
    shm: str | None = Field(default=None, pattern=_QUANTITY)
    """Size of the memory-backed /dev/shm (default: 1Gi per GPU for GPU models; the container runtime's
    64 MiB breaks PyTorch data loaders and NCCL). It counts against the memory limit."""
    scratch: str = Field(default="50Gi", pattern=_QUANTITY)
    """Local disk for the fetched model (the `/models` volume): limited, and requested as ephemeral
    storage so the scheduler and the kubelet account for it instead of filling the node's image volume."""


class CanaryConfig(_Model):
    version: str = Field(pattern=_VERSION)
    weight: int = Field(ge=0, le=100)
    """Percent of traffic sent to the canary."""
    image: ImageConfig | None = None
    """The canary's image (default: the model's image built at the canary version)."""
    artifact_uri: str | None = Field(default=None, pattern=_S3_URI)
    """The canary version's weights (default: the model's artifactUri with its version segment replaced
    by the canary version): the canary must serve the new version, not the stable weights."""

    _prefix_only = field_validator("artifact_uri")(lambda value: _artifact_uri(value))


class ProbeConfig(_Model):
    ready_path: str | None = Field(default=None, pattern=r"^/[\x21-\x7e]*$")
    """Readiness endpoint (default: the runtime's)."""
    live_path: str | None = Field(default=None, pattern=r"^/[\x21-\x7e]*$")
    """Liveness endpoint (default: the runtime's)."""
    startup_seconds: int = Field(default=600, ge=30, le=3600)
    """How long a replica may take to load its model before Kubernetes restarts it."""


_CRON_FIELD = r"[0-9A-Za-z*,/?-]+"
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})
"""Files of a zoneinfo directory that name no place: `localtime` is the host's own setting (a link the KEDA
operator's image need not have), `posixrules` a tzcode default, `Factory` a placeholder whose abbreviation says
"Local time zone must be set"."""


@cache
def iana_zones() -> frozenset[str]:
    """The IANA time zone names, read from the locked `tzdata` package when there (the same list on every machine
    that runs `pulumi up`), else from the host's zoneinfo. KEDA's cron trigger loads its `timezone` with Go's
    time.LoadLocation (https://keda.sh/docs/2.17/scalers/cron/: "timezone - One of the acceptable values from the
    IANA Time Zone Database"), which reads these same names."""
    try:
        from importlib import resources

        names = frozenset(resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split())
    except (ModuleNotFoundError, OSError):
        names = frozenset(zoneinfo.available_timezones())
    return names - _NOT_ZONES


class ActiveHours(_Model):
    """When KEDA keeps at least one replica (its cron trigger): outside these hours a scale-to-zero model
    releases its GPUs once idle, and within them it is up before the first request."""

    timezone: str = Field(min_length=1)
    """An IANA time zone, e.g. `America/Los_Angeles`."""
    start: str = Field(pattern=rf"^{_CRON_FIELD}( {_CRON_FIELD}){{4}}$")
    """Cron expression (minute hour day-of-month month day-of-week) at which the hours begin."""
    end: str = Field(pattern=rf"^{_CRON_FIELD}( {_CRON_FIELD}){{4}}$")
    """Cron expression at which they end (not the same as `start`)."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in iana_zones():
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. America/Los_Angeles, Europe/Berlin, UTC)")
        return value

    @field_validator("start", "end")
    @classmethod
    def _fires(cls, value: str) -> str:
        problem = cron_problem(value)
        if problem:
            raise ValueError(f"{value!r}: {problem}")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.start == self.end:
            raise ValueError("start and end are the same time: KEDA's cron trigger refuses that")
        return self


class AutoscalingConfig(_Model):
    target_cpu_utilization: int = Field(default=70, ge=10, le=100)
    """An HPA on CPU. CPU models scale on it by default; a GPU model only when this is set (a choice): a GPU
    server is not CPU-bound, and vLLM, TGI and Triton models otherwise scale on their engine's queue (KEDA)."""
    prometheus_query: str | None = Field(default=None, min_length=1)
    """With this, a KEDA ScaledObject scales on the query (e.g. queue depth) instead of an HPA on CPU. Default
    for a GPU model of the vllm, tgi or triton runtime: the engine's own queue (see the README's Runtimes)."""
    prometheus_threshold: str = Field(default="10", pattern=r"^[0-9]{1,15}(\.[0-9]+)?$")
    """KEDA's target value per replica (default for a runtime's own query: the runtime's)."""

    @field_validator("prometheus_threshold")
    @classmethod
    def _positive_target(cls, value: str) -> str:
        # KEDA writes the threshold into its HPA as a quantity of three decimals (scaler.go, quantityFromFloat64:
        # "%.3f"), and the API server refuses a target that is not positive (autoscaling validation,
        # validateMetricTarget: "must be positive"): below 0.0005 the HPA is never created
        if float(format(float(value), ".3f")) <= 0:
            raise ValueError(
                f"{value!r}: KEDA writes the target with three decimals into its HPA, where it must be positive (at "
                "least 0.001)"
            )
        return value

    activation_threshold: str = Field(default="0", pattern=r"^[0-9]+(\.[0-9]+)?$")
    """With `replicas.min: 0`: KEDA wakes the model from zero once the query exceeds this."""
    prometheus_address: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090",
        pattern=r"^https?://[a-z0-9.-]+(:[0-9]+)?(/[\x21-\x7e]*)?$",
    )
    active_hours: ActiveHours | None = None
    """KEDA keeps a replica during these hours (a cron trigger beside the query); with `replicas.min: 0` the
    model is up before the day's first request and scales to zero after hours."""


class ServerlessConfig(_Model):
    memory_mb: int = Field(default=4096, ge=128, le=10240)
    timeout_seconds: int = Field(default=60, ge=1, le=900)
    ephemeral_storage_mb: int = Field(default=2048, ge=512, le=10240)
    reserved_concurrency: int = Field(default=5, ge=1, le=1000)
    """Hard cap on concurrent invocations: a runaway fallback is a runaway bill."""
    sample_payload: dict[str, Any] = {"inputs": "ping"}
    """What `modelops smoke` sends to the function."""


class ModelConfig(_Model):
    version: str = Field(pattern=_VERSION)
    image: ImageConfig
    cpu_image: ImageConfig | None = None
    """A CPU build for the serverless fallback when the serving image needs a GPU."""
    namespace: str = Field(default="models", pattern=_DNS_LABEL)
    runtime: Runtime = Runtime.CUSTOM
    """The inference server: `vllm`, `triton`, `tgi` (presets: port, probes, metrics, arguments, /dev/shm, alert
    metrics), or `custom` (the project's own contract, as models/sentiment serves it)."""
    port: int | None = Field(default=None, ge=1024, le=65535)
    """The server's HTTP port (default: the runtime's)."""
    args: list[str] | None = None
    """The container's arguments (default: the runtime's, e.g. vLLM's tensor-parallel size from `gpus`)."""
    gpus: int = Field(default=0, ge=0, le=8)
    """GPUs per replica."""
    pool: str | None = None
    replicas: Replicas = Replicas()
    resources: Resources = Resources()
    artifact_uri: str | None = Field(default=None, pattern=_S3_URI)
    """`s3://<bucket>/<prefix>`: the model's weights. The pods' role may read this prefix and nothing else."""
    _prefix_only = field_validator("artifact_uri")(lambda value: _artifact_uri(value))
    artifact_access: ArtifactAccess = ArtifactAccess.COPY
    """How pods reach `artifactUri`: `copy` (an init container copies it to local disk before the server
    starts) or `mount` (the Mountpoint for Amazon S3 CSI driver serves the prefix read-only: no copy step, the
    weights stream from S3 with the pod's own, prefix-scoped role)."""
    canary: CanaryConfig | None = None
    fallback: FallbackMode | None = None
    placement: Placement = Placement.GPU
    """Where an `auto` model runs now: the decision is recorded here and changes only in a reviewed change
    of this key. Pre-flight recommends a move (GPUs short, or back again); it never moves the model."""
    serverless: ServerlessConfig = ServerlessConfig()
    probes: ProbeConfig = ProbeConfig()
    autoscaling: AutoscalingConfig = AutoscalingConfig()
    env: dict[str, str] = {}
    """Plain environment variables of the model server, on pods and on the Lambda function alike."""

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not _ENV_NAME.fullmatch(k)]
        if bad:
            raise ValueError(
                f"{', '.join(map(repr, bad))}: env names are a letter, then letters, digits or '_' "
                "(Lambda's rule; the same env goes to pods and functions)"
            )
        taken = [k for k in value if k in PROGRAM_ENV or k in LAMBDA_RESERVED_ENV]
        if taken:
            raise ValueError(
                f"{', '.join(taken)}: set by the program itself ({', '.join(PROGRAM_ENV)}) or reserved "
                "by Lambda; choose another name"
            )
        return value

    @property
    def preset(self) -> RuntimePreset:
        return PRESETS[self.runtime]

    @property
    def serving_port(self) -> int:
        return self.port if self.port is not None else self.preset.port

    @property
    def shm_size(self) -> str | None:
        """The memory-backed /dev/shm: the model's own size, else its runtime's per GPU (None: a CPU model's
        container runtime default)."""
        if self.resources.shm:
            return self.resources.shm
        return f"{self.gpus * self.preset.shm_gib_per_gpu}Gi" if self.gpus else None

    @property
    def ready_path(self) -> str:
        return self.probes.ready_path or self.preset.ready_path

    @property
    def live_path(self) -> str:
        return self.probes.live_path or self.preset.live_path

    def container_args(self, name: str) -> list[str]:
        """The container's arguments: the model's own, else the runtime's for this model `name`."""
        return self.args if self.args is not None else self.preset.args(name, self.gpus, self.serving_port)

    def series_selector(self, name: str) -> str:
        """The Prometheus selector of the series scraped from this model's pods (model `name`): the Prometheus
        Operator labels every series with the namespace and Service of its ServiceMonitor's target."""
        return f'namespace="{self.namespace}",service="{name}"'

    def own_services(self, name: str) -> set[str]:
        """The Services that select this model's pods (the model's, and each track's through a gateway): a
        series carrying one of them as `service` or `job` comes from the pods and is gone at zero replicas."""
        return {name, f"{name}-stable", f"{name}-canary"}

    @property
    def scales_on_cpu_by_choice(self) -> bool:
        return "target_cpu_utilization" in self.autoscaling.model_fields_set

    def keda_query(self, name: str) -> str | None:
        """What KEDA scales the model on: its own `prometheusQuery`, else for a GPU model its runtime's engine
        signal (vLLM's and TGI's queue depth, Triton's queueing), unless the stack chose CPU
        (`targetCpuUtilization`). None: an HPA on CPU."""
        if self.autoscaling.prometheus_query:
            return self.autoscaling.prometheus_query
        scaling = self.preset.scaling
        if self.gpus and scaling is not None and not self.scales_on_cpu_by_choice:
            return scaling.query.format(sel=self.series_selector(name))
        return None

    def keda_threshold(self) -> str:
        """KEDA's target per replica: the stack's, else the runtime's for its default query."""
        scaling = self.preset.scaling
        if (
            self.autoscaling.prometheus_query
            or scaling is None
            or "prometheus_threshold" in self.autoscaling.model_fields_set
        ):
            return self.autoscaling.prometheus_threshold
        return scaling.threshold

    @property
    def artifact_bucket(self) -> str | None:
        return self.artifact_uri[len("s3://") :].split("/", 1)[0] if self.artifact_uri else None

    @property
    def artifact_prefix(self) -> str:
        return _s3_prefix(self.artifact_uri)

    @property
    def canary_artifact_uri(self) -> str | None:
        """The canary's artifact: its own, else the stable one with the version segment moved on."""
        if self.canary is None or not self.artifact_uri:
            return None
        if self.canary.artifact_uri:
            return self.canary.artifact_uri
        segments = self.artifact_uri.split("/")
        if self.version not in segments[3:]:
            return None
        return "/".join(self.canary.version if i >= 3 and s == self.version else s for i, s in enumerate(segments))

    @property
    def canary_artifact_prefix(self) -> str:
        return _s3_prefix(self.canary_artifact_uri)


SERVER_METRIC_PREFIXES = tuple(dict.fromkeys(p for preset in PRESETS.values() for p in preset.own_metric_prefixes))
"""Series only an inference server's own pods export, whatever the model's runtime (a `custom` image may run any
of them)."""


def pod_only_metrics(query: str, services: set[str]) -> list[str]:
    """The series a query cannot do without that only the model's own pods export (a server's metric names, or
    any metric selected by the model's Services, `services`), when it can return nothing live at zero
    replicas; else []. Raises promql.PromQLError for a query that is not PromQL."""
    return promql.pod_only_series(query, SERVER_METRIC_PREFIXES, services)


def _s3_prefix(uri: str | None) -> str:
    if not uri:
        return ""
    parts = uri[len("s3://") :].split("/", 1)
    return parts[1].strip("/") if len(parts) > 1 else ""


class BudgetConfig(_Model):
    monthly_gpu_usd: float = Field(gt=0, allow_inf_nan=False)


class PreflightConfig(_Model):
    during_up: bool = False
    """Run the capacity and quota checks at the start of `pulumi up` (needs AWS credentials)."""


class SecurityConfig(_Model):
    max_image_severity: Literal["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"] = "HIGH"
    """The lowest ECR finding severity that fails `modelops gate`: an image with a finding at or above it, or
    with one ECR could not rate (UNDEFINED, Inspector's UNTRIAGED), is refused."""
    require_image_gate: bool | None = None
    """Whether `modelops gate` must pass before `pulumi up` (default: on in prod, off elsewhere)."""
    allow_unscanned_images: list[str] = []
    """Images outside this account's ECR, which ECR never scans, that the gate lets through: a prefix ending in
    `/` (`nvcr.io/nvidia/`) or one exact reference; either way the image must be pinned by digest."""

    @field_validator("allow_unscanned_images")
    @classmethod
    def _prefix_or_reference(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not entry.endswith("/") and "@sha256:" not in entry:
                raise ValueError(f"{entry!r}: give a prefix ending in '/' or a reference pinned by @sha256:")
        return value

    def image_gate_required(self, environment: Environment) -> bool:
        # prod's default sits beside the key it defaults: the gate is a verb's setting, not the program's
        return self.require_image_gate if self.require_image_gate is not None else environment == Environment.PROD


class StackConfig(_Model):
    environment: Environment
    cluster: ClusterConfig
    registry: RegistryConfig
    gpu_pools: dict[str, GpuPoolConfig] = {}
    models: dict[str, ModelConfig]
    budget: BudgetConfig
    preflight: PreflightConfig = PreflightConfig()
    security: SecurityConfig = SecurityConfig()
    """Image gates: the scan findings `modelops gate` refuses before `pulumi up`."""
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


class StackConfigError(Exception):
    """A stack config that cannot be deployed: one `path: reason` line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


KUBECONFIG_SECRET_KEY = "kubeconfig"
"""The secret config key holding the kubeconfig when the cluster is not read from its own stack."""
SECRET_SET = object()
"""Stands for a secret config value in `parse_stack_config`'s input: its presence matters, never its text."""


def _key_path(loc: tuple[Any, ...]) -> str:
    head, *rest = loc
    return f"{NAMESPACE}:{head}" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest)


def _message(error: ErrorDetails) -> str:
    msg = error["msg"]
    if error["type"] == "value_error":
        msg = msg.removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        msg = "unknown key"
    if error["type"] == "missing":
        msg = "required"
    return msg


def _cross_reference_problems(cfg: StackConfig) -> list[str]:
    catalogue = load_catalogue()
    problems = []
    if cfg.gpu_pools and cfg.cluster.region not in catalogue.on_demand_usd_per_hour:
        # the GPU ceiling could not be priced; a stack without GPU pools may live in any region
        problems.append(
            f"{NAMESPACE}:cluster.region: no GPU price list for {cfg.cluster.region} "
            f"(known: {', '.join(sorted(catalogue.on_demand_usd_per_hour))}); add it to "
            "components/data/gpu_instances.json"
        )
    if not cfg.models:
        problems.append(f"{NAMESPACE}:models: define at least one model")
    for pool_name in cfg.gpu_pools:
        if not _POOL_NAME.fullmatch(pool_name):
            problems.append(f"{NAMESPACE}:gpuPools.{pool_name!r}: pool names must be DNS labels (a-z, 0-9, '-')")
    not_owned = {*RESERVED_NAMESPACES, cfg.cluster.monitoring_namespace, cfg.cluster.ingress_namespace}
    if cfg.cluster.gateway:
        not_owned.add(cfg.cluster.gateway.namespace)
    derived_names = {
        f"{name}-{track}": name for name, m in cfg.models.items() if m.canary for track in ("canary", "stable")
    }
    for name, model in cfg.models.items():
        path = f"{NAMESPACE}:models.{name}"
        if not _MODEL_NAME.fullmatch(name):
            problems.append(
                f"{path!r}: model names must be DNS labels starting with a letter (a-z, 0-9, '-'), "
                "at most 42 characters: they name the model's Service"
            )
        if name in derived_names:
            problems.append(
                f"{path}: collides with model {derived_names[name]!r}'s {name.rsplit('-', 1)[1]} "
                "track (its Deployment and Service have this name); rename one"
            )
        if model.namespace in not_owned:
            problems.append(
                f"{path}.namespace: {model.namespace!r} is not the project's to take over (the "
                "program labels a model's namespace and enforces the restricted Pod Security profile "
                "on it); use a namespace of its own"
            )
        lo, hi = cfg.min_replicas(model), cfg.max_replicas(model)
        if lo > hi:
            problems.append(f"{path}.replicas.min: must be <= max ({lo} > {hi})")
        if model.artifact_access == ArtifactAccess.MOUNT and not model.artifact_uri:
            problems.append(f"{path}.artifactAccess: 'mount' serves artifactUri from S3; set artifactUri")
        mode = cfg.fallback(model)
        problems += _autoscaling_problems(path, name, model, lo, mode != "only")
        if model.pool is not None and model.pool not in cfg.gpu_pools:
            known = ", ".join(sorted(cfg.gpu_pools)) or "none defined"
            problems.append(f"{path}.pool: unknown GPU pool {model.pool!r} (gpuPools: {known})")
        elif model.gpus > 0 and model.pool is None and mode != "only":
            problems.append(f"{path}.gpus: {model.gpus} GPUs requested but no pool is set")
        elif model.pool is not None and model.gpus == 0:
            problems.append(f"{path}.pool: a pool is set but gpus is 0 (set gpus, or remove pool for a CPU-only model)")
        elif model.pool is not None:
            pool = cfg.gpu_pools[model.pool]
            types = catalogue.types_for(pool.instance_families, pool.instance_types)
            if max(t.gpus for t in types) < model.gpus:
                problems.append(
                    f"{path}.gpus: {model.gpus} GPUs per replica, but pool {model.pool!r} has at most "
                    f"{max(t.gpus for t in types)} GPUs per instance"
                )
            elif not any(catalogue.fits(t, model.gpus, model.resources.cpu, model.resources.memory) for t in types):
                problems.append(
                    f"{path}.resources: {model.resources.cpu} CPU and {model.resources.memory} with "
                    f"{model.gpus} GPU(s) fit none of pool {model.pool}'s instance types "
                    f"({', '.join(t.name for t in types)}) once the node's own reservations are taken; "
                    "add a larger type or lower the requests"
                )
            if model.gpus > pool.gpu_limit:
                problems.append(
                    f"{path}.gpus: {model.gpus} GPUs per replica exceeds pool {model.pool!r}'s gpuLimit "
                    f"({pool.gpu_limit})"
                )
        if mode == "auto" and model.pool is None:
            problems.append(f"{path}.fallback: 'auto' chooses between a GPU pool and serverless; set pool")
        if model.canary is not None and model.canary.version == model.version:
            problems.append(f"{path}.canary.version: equals the stable version {model.version!r}")
        if model.canary is not None and model.artifact_uri:
            canary_uri = model.canary_artifact_uri
            if canary_uri is None:
                problems.append(
                    f"{path}.canary.artifactUri: required: artifactUri has no {model.version!r} path "
                    "segment to derive the canary's weights from, and the canary must not serve the "
                    "stable weights"
                )
            elif canary_uri.split("/")[2] != model.artifact_bucket:
                problems.append(f"{path}.canary.artifactUri: must be in the model's bucket {model.artifact_bucket!r}")
            elif canary_uri.rstrip("/") == model.artifact_uri.rstrip("/"):
                problems.append(
                    f"{path}.canary.artifactUri: is the stable version's artifact; the canary would "
                    "serve the stable weights"
                )
        if (
            mode != "none"
            and model.cpu_image is None
            and model.image.ref is not None
            and not model.image.ref.startswith(f"{cfg.cluster.ecr_registry}/")
        ):
            problems.append(
                f"{path}.image.ref: fallback '{mode}' runs the image on Lambda, which pulls only from "
                f"this account's ECR ({cfg.cluster.ecr_registry}); set cpuImage or use fallback 'none'"
            )
        if model.canary is not None and mode == "only":
            problems.append(f"{path}.canary: canaries split Kubernetes traffic; fallback 'only' deploys none")
    problems += _system_image_problems(cfg)
    problems += _cluster_name_problems(cfg)
    for name, model in cfg.models.items():
        problems += _runtime_problems(f"{NAMESPACE}:models.{name}", model, cfg)
    return problems


def _cluster_name_problems(cfg: StackConfig) -> list[str]:
    """Names the program builds from a model's namespace and name, in scopes models of different namespaces share,
    must not meet: the dashboard ConfigMap (`modelops-dashboard-model-<namespace>-<model>`, all in the dashboards
    namespace), the Grafana uid and a mounted artifact's PersistentVolume (`modelops-<namespace>-<model>-weights-
    <version>`, cluster-wide). Namespace and model names both hold `-`, so `a` in `b-c` and `c-a` in `b` would
    write one name and overwrite each other's objects. Both keys are named."""
    owners: dict[str, str] = {}
    problems = []
    for name, model in cfg.models.items():
        if cfg.fallback(model) == FallbackMode.ONLY:
            continue  # nothing on Kubernetes
        joined = f"{model.namespace}-{name}"
        other = owners.setdefault(joined, name)
        if other != name:
            mounted = any(
                cfg.models[m].artifact_access == ArtifactAccess.MOUNT and cfg.models[m].artifact_uri
                for m in (other, name)
            )
            objects = f"dashboard ConfigMaps (modelops-dashboard-model-{joined})" + (
                f" and weights PersistentVolumes ({weights_volume_name(model.namespace, name, model.version)})"
                if mounted
                else ""
            )
            problems.append(
                f"{NAMESPACE}:models.{other}.namespace and {NAMESPACE}:models.{name}.namespace: both models' "
                f"{objects} would have one name (namespace and model joined by '-', in a scope both share: the "
                "dashboards namespace, the cluster); rename a model or change a namespace"
            )
    return problems


def _runtime_problems(path: str, model: ModelConfig, cfg: StackConfig) -> list[str]:
    """What the server's container could not do with its resources: listen on a port its runtime already opens,
    hold a /dev/shm that fills its memory limit, or ask for more scratch disk than a node of its pool has."""
    problems = []
    taken = dict(model.preset.other_ports)
    if model.serving_port in taken:
        problems.append(
            f"{path}.port: {model.serving_port} is {taken[model.serving_port]} of the {model.runtime} runtime; "
            "the server could not listen on it. Choose another port"
        )
    shm = model.shm_size
    if shm is not None and memory_gib(shm) >= memory_gib(model.resources.memory):
        where = "resources.shm" if model.resources.shm else f"the {model.runtime} default ({shm} for {model.gpus} GPU)"
        problems.append(
            f"{path}.resources: /dev/shm of {shm} ({where}) is memory-backed and counts against the container's memory "
            f"limit of {model.resources.memory}, leaving the server nothing; raise memory or lower resources.shm"
        )
    problems += _scratch_problems(path, model, cfg)
    size = sum(len(k.encode()) + len(v.encode()) for k, v in model.env.items())
    size += sum(len(a.encode()) for a in model.args or ())
    size += len((model.autoscaling.prometheus_query or "").encode())  # in the ScaledObject and the dashboard
    if size > KUBERNETES_OBJECT_DATA_BYTES:
        problems.append(
            f"{path}.env: env, args and autoscaling.prometheusQuery hold {size} bytes; a Kubernetes Secret (where a "
            f"secret env goes) or ConfigMap (the dashboard) holds at most {KUBERNETES_OBJECT_DATA_BYTES} and every "
            "object is one etcd request of at most 1.5 MiB"
        )
    return problems


def _scratch_problems(path: str, model: ModelConfig, cfg: StackConfig) -> list[str]:
    """The `/models` scratch volume is requested as ephemeral storage: a request larger than every node type's
    disk (where images live too) leaves the pods pending forever. Mounted artifacts use no scratch."""
    pool = cfg.gpu_pools.get(model.pool) if model.pool else None
    if pool is None or (model.artifact_access == ArtifactAccess.MOUNT and model.artifact_uri):
        return []
    types = load_catalogue().types_for(pool.instance_families, pool.instance_types)
    largest = max((pool.node_disk_gib(t) for t in types), default=0.0)
    scratch = memory_gib(model.resources.scratch)
    if types and scratch + POD_CACHE_GIB >= largest:
        return [
            f"{path}.resources.scratch: {model.resources.scratch} of scratch disk (and {POD_CACHE_GIB}Gi of cache), "
            f"but the largest node disk of pool "
            f"{model.pool!r} is {largest:.0f}Gi ("
            + (
                "its instance store, striped"
                if pool.instance_store_policy
                else f"{'the data volume' if pool.ami_family == AmiFamily.BOTTLEROCKET else 'the root volume'}, "
                "dataVolumeGib"
            )
            + ") and holds the images too; lower scratch or give the pool a larger disk"
        ]
    return []


def _autoscaling_problems(path: str, name: str, model: ModelConfig, lowest: int, on_kubernetes: bool) -> list[str]:
    """What KEDA or the HPA could not do with the model's scaling: read its query, scale a GPU server on a
    signal that means something, wake it from zero."""
    query = model.keda_query(name)
    own: list[str] = []
    if query is not None:
        try:
            own = pod_only_metrics(query, model.own_services(name))
        except promql.PromQLError as exc:
            return [f"{path}.autoscaling.prometheusQuery: not a PromQL query ({exc})"]
        except RecursionError:
            # the reader recurses per level of nesting: a query nested this deep is refused, never a traceback
            return [f"{path}.autoscaling.prometheusQuery: nested too deeply to read (hundreds of levels); simplify it"]
    problems = []
    if on_kubernetes and model.gpus and query is None and not model.scales_on_cpu_by_choice:
        problems.append(
            f"{path}.autoscaling: a GPU server is not CPU-bound, so CPU use says nothing about its load (the EKS "
            "guide scales inference on queue depth); set prometheusQuery (e.g. its request rate or queue), or "
            "targetCpuUtilization to choose CPU"
        )
    if lowest == 0 and query is None:
        problems.append(
            f"{path}.replicas.min: 0 (scale to zero) needs KEDA: set autoscaling.prometheusQuery (an "
            "HPA cannot scale to zero)"
        )
    elif lowest == 0 and not model.autoscaling.active_hours and own:
        source = "the runtime's default query" if not model.autoscaling.prometheus_query else "a query"
        problems.append(
            f"{path}.replicas.min: 0 with {source} over series only the model's own pods export "
            f"({', '.join(own)}): at zero replicas they are empty, so is the query, and KEDA never wakes the "
            "model. Set autoscaling.activeHours, or query a metric from outside the pods (the gateway's requests)"
        )
    if model.autoscaling.active_hours and query is None:
        problems.append(
            f"{path}.autoscaling.activeHours: a KEDA cron trigger; set autoscaling.prometheusQuery (KEDA) too"
        )
    return problems


def _system_image_problems(cfg: StackConfig) -> list[str]:
    """The images the program runs itself must pass the stack's own registry rule (k8s-allowed-registries):
    otherwise every pod fetching an artifact, or every GPU pool's daemons, fails the preview."""
    needed = []
    if any(m.artifact_uri and cfg.fallback(m) != "only" for m in cfg.models.values()):
        needed.append((ARTIFACT_FETCHER_IMAGE, "the artifact fetcher the model pods' init containers run"))
    if cfg.gpu_pools:
        needed.append((NVIDIA_REGISTRY, "the GPU pools' NVIDIA device plugin and DCGM exporter"))
    gateway = cfg.cluster.gateway
    if gateway and gateway.standby_failover and any(cfg.fallback(m) == "standby" for m in cfg.models.values()):
        needed.append((FALLBACK_RELAY_IMAGE, "the SigV4 relay of cluster.gateway.standbyFailover"))
    allowed = cfg.allowed_registries()
    return [
        f"{NAMESPACE}:registry.allowedRegistries: must allow {_repository_path(image)} ({why})"
        for image, why in needed
        if not any(image.startswith(prefix) for prefix in allowed)
    ]


def _repository_path(image: str) -> str:
    """`host/path/name:tag@digest` -> `host/path/`: the prefix to allow."""
    return image.split("@")[0].split(":")[0].rsplit("/", 1)[0] + "/" if ":" in image or "@" in image else image


def _kubeconfig_problems(cfg: StackConfig, kubeconfig: Any) -> list[str]:
    key = f"{NAMESPACE}:{KUBECONFIG_SECRET_KEY}"
    if cfg.cluster.kubeconfig_stack is not None:
        if kubeconfig is not None:
            return [f"{key}: set both this and {NAMESPACE}:cluster.kubeconfigStack; keep one"]
        return []
    if kubeconfig is None:
        return [
            f"{key}: required unless {NAMESPACE}:cluster.kubeconfigStack is set "
            f"(pulumi config set --secret {key} < kubeconfig)"
        ]
    if kubeconfig != SECRET_SET:
        return [
            f"{key}: must be a secret (pulumi config set --secret {key} < kubeconfig); "
            "a plain kubeconfig would be stored and shown in clear"
        ]
    return []


def lambda_function_name(stack: str, model: str) -> str:
    """A fallback's Lambda name: known without reading state, so `modelops smoke` can find it. Never cut to
    Lambda's 64 characters (two models could then share one name): validation refuses a name too long.

    Function names are per account and region, which stacks may share (the reference stacks do): the name must tell
    every (stack, model) pair apart. `modelops-<stack>-<model>` does while the stack name has no `-` or `_` (a model
    name has neither `_` nor, first, the stack's part); stack `prod-eu` with model `chat` and stack `prod` with model
    `eu-chat` would meet there, so a stack name with `-` or `_` is joined by `_`, which no model name holds:
    `modelops-prod-eu_chat`. Reading back, the model is after the last `_`, or after the first `-` past the prefix."""
    if re.fullmatch(r"[A-Za-z0-9]+", stack):
        return f"modelops-{stack}-{model}"
    return f"modelops-{stack}_{model}"


STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
"""What the Pulumi CLI takes as a stack name (sdk/go/common/tokens/stack_name.go, ParseStackName: `^[A-Za-z0-9_.-]*`,
not empty, at most 100 characters)."""


def _stack_name_problems(stack: str | None) -> list[str]:
    if stack is None or STACK_NAME.fullmatch(stack):
        return []
    return [
        f"{NAMESPACE}: the stack name {stack!r} is not one the Pulumi CLI takes (1 to 100 letters, digits, '_', '.' "
        "or '-')"
    ]


_LAMBDA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _serverless_problems(cfg: StackConfig, stack: str | None) -> list[str]:
    problems = []
    for name, model in cfg.models.items():
        if cfg.fallback(model) == "none":
            continue
        path = f"{NAMESPACE}:models.{name}"
        if stack is not None and not _LAMBDA_NAME.fullmatch(function := lambda_function_name(stack, name)):
            problems.append(
                f"{path}: its Lambda function would be named {function!r}, which Lambda refuses (at most "
                "64 letters, digits, '-' or '_'); shorten the model or stack name"
            )
        env = {**model.env, "MODEL_VERSION": model.version}
        if model.artifact_uri:
            env["MODEL_URI"] = model.artifact_uri.rstrip("/")
        size = sum(len(k.encode()) + len(v.encode()) for k, v in env.items())
        if size > LAMBDA_ENV_BYTES:
            problems.append(
                f"{path}.env: {size} bytes of environment with what the program adds; Lambda allows "
                f"{LAMBDA_ENV_BYTES} in all"
            )
    return problems


SecretPath = tuple[str | int, ...]
"""Where a `secure:` value sits under the namespace: ("models", "chat", "env", "HF_TOKEN")."""

_SECRET_HOMES: tuple[tuple[str | None, ...], ...] = (
    ("models", None, "env", None),
    ("models", None, "serverless", "samplePayload"),
    (KUBECONFIG_SECRET_KEY,),
)
"""Where a secret stays secret wherever it lands: a model's env values (a Kubernetes Secret the pods read by
reference, a secret Lambda environment), its smoke-test payload (sent by `modelops smoke` only, never a
resource input) and the kubeconfig (a secret provider input). None matches any name; deeper paths follow."""

_WHY_NOT_SECRET = {
    "args": (
        "container args are part of the Deployment's spec, stored and shown in clear; put the value in env (a "
        "Kubernetes Secret) and refer to it as $(NAME) in args, which Kubernetes expands from the container's "
        "environment (kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/)"
    ),
    "buildArgs": (
        "build arguments stay in the image's history and metadata, readable by anyone who can pull it "
        "(docs.docker.com/go/dockerfile/rule/secrets-used-in-arg-or-env/); give the build a secret mount instead"
    ),
    "hostname": "a hostname is public (DNS, certificate logs) and is written in clear into routes and endpoints",
}


def secret_paths_in(value: Any, path: SecretPath = ()) -> list[SecretPath]:
    """The paths of the `secure:` values in a stack file's value (the CLI decrypts each, wherever it is)."""
    if isinstance(value, dict) and set(value) == {"secure"} and isinstance(value["secure"], str):
        return [path]  # the CLI's isSecureValue: one key, `secure`, holding a string
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in secret_paths_in(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in secret_paths_in(v, (*path, i))]
    return []


def _secret_may_be_at(path: SecretPath) -> bool:
    return any(
        len(path) >= len(home) and all(h is None or h == p for h, p in zip(home, path, strict=False))
        for home in _SECRET_HOMES
    )


def _secret_path_problems(paths: list[SecretPath]) -> list[str]:
    """A secret anywhere it would be written in clear is refused (never quoted): the message says where, why
    and what to do instead."""
    problems = []
    for path in paths:
        if _secret_may_be_at(path):
            continue
        field = next((str(p) for p in reversed(path) if str(p) in _WHY_NOT_SECRET), None)
        why = _WHY_NOT_SECRET.get(field or "") or (
            "only models.<name>.env values, serverless.samplePayload and kubeconfig stay secret where they land; "
            "this value would be written in clear into resource names, labels or inputs"
        )
        problems.append(f"{_key_path(path)}: cannot be a secret: {why}")
    return problems


def _secret_texts(raw: dict[str, Any], paths: list[SecretPath] | None, secret_keys: frozenset[str]) -> set[str]:
    """The text of every secret value, to keep out of messages: the values at `paths`; for a secret key whose
    secret's place is not known (no stack file to read it from), every text in that key."""
    texts: set[str] = set()
    for path in paths or []:
        texts |= _texts(_value_at(raw, path))
    known = {path[0] for path in paths or []}
    for key in secret_keys - known if paths is not None else secret_keys:
        texts |= {t for t in _texts(raw.get(key)) if len(t) >= 4}
    return {t for t in texts if t}


def _value_at(value: Any, path: SecretPath) -> Any:
    for part in path:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            value = value[part]
        else:
            return None
    return value


def _texts(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return {t for v in value.values() for t in _texts(v)}
    if isinstance(value, list):
        return {t for v in value for t in _texts(v)}
    return {str(value)} if isinstance(value, int | float) and not isinstance(value, bool) else set()


def _without_secrets(problems: list[str], texts: set[str]) -> list[str]:
    """Messages quote values (`'x' is not a CIDR block`): a secret's text never reaches one."""
    for text in sorted(texts, key=len, reverse=True):
        problems = [p.replace(text, "[secret]") for p in problems]
    return problems


def parse_stack_config(
    raw: dict[str, Any],
    stack: str | None = None,
    secret_paths: list[SecretPath] | None = None,
    secret_keys: frozenset[str] = frozenset(),
) -> StackConfig:
    """Validate config values keyed without namespace (`models`, `gpuPools`, …); with the stack's name,
    also the names derived from it (Lambda function names). `secret_paths` are where the stack file has
    `secure:` values (None: not known), `secret_keys` the keys the engine marks secret.

    Raises StackConfigError listing every problem found, each as `modelops:<path>: <reason>`; a secret is
    refused where it would be written in clear, and no message quotes a secret's text.
    """
    raw = dict(raw)
    secrets = _secret_texts(raw, secret_paths, secret_keys)
    placement = _secret_path_problems(list(secret_paths or []))
    if placement:
        raise StackConfigError(_without_secrets(placement, secrets))
    kubeconfig = raw.pop(KUBECONFIG_SECRET_KEY, None)
    try:
        cfg = StackConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{_key_path(e['loc']) if e['loc'] else NAMESPACE}: {_message(e)}" for e in exc.errors()]
        raise StackConfigError(_without_secrets(problems, secrets)) from None
    problems = (
        _stack_name_problems(stack)
        + _kubeconfig_problems(cfg, kubeconfig)
        + _cross_reference_problems(cfg)
        + _serverless_problems(cfg, stack)
    )
    if problems:
        raise StackConfigError(_without_secrets(problems, secrets))
    return cfg


def load_stack_config() -> StackConfig:
    """Read and validate the `modelops:` keys of the running stack (under the CLI or the offline engine)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    prefix = f"{NAMESPACE}:"
    raw: dict[str, Any] = {}
    for full_key, value in runtime_config.CONFIG.get().items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix) :]
        if key == KUBECONFIG_SECRET_KEY:
            raw[key] = SECRET_SET if runtime_config.is_config_secret(full_key) else value
            continue
        raw[key] = _program_value(value)
    secret_keys = frozenset(k for k in raw if runtime_config.is_config_secret(prefix + k))
    stack = pulumi.get_stack()
    return parse_stack_config(raw, stack, _stack_file_secret_paths(stack, secret_keys), secret_keys)


def _program_value(text: Any) -> Any:
    """A config value as the CLI hands it over: an object or a list as its JSON text, a scalar as its text (a
    string as written, a number or boolean as Go JSON). Only objects and lists are decoded: a scalar stays its
    text, so a quoted `costOwner: "123"` is the string it was written as (offline/stackfile.py reads the same)."""
    if isinstance(text, str) and text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def _stack_file_secret_paths(stack: str, secret_keys: frozenset[str]) -> list[SecretPath] | None:
    """Where the stack file holds `secure:` values. The engine tells the program only that a whole key is secret
    (it decrypts values nested in an object and marks the key), so the place is read from the file the CLI
    read: `<stackConfigDir>/Pulumi.<stack>.yaml` in the project directory, the program's working directory.
    Paths of keys the engine does not mark secret are ignored (another file than the running config). None
    when the file cannot be read (config from an ESC environment): every text of a secret key is then kept
    out of messages, and a secret's place cannot be checked here (offline `modelops plan` checks it)."""
    if not secret_keys:
        return []  # nothing secret: nothing to place, and no file to read on every run
    from pathlib import Path

    import yaml

    from . import stack_yaml

    try:
        project = stack_yaml.load(Path("Pulumi.yaml").read_text(encoding="utf-8"))
        directory = Path(str(project.get("stackConfigDir") or "."))
        config = stack_yaml.load((directory / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8")).get("config") or {}
        items = list(config.items())
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return None
    paths: list[SecretPath] = []
    for key, value in items:
        name = str(key).removeprefix(f"{NAMESPACE}:")
        if name in secret_keys and ":" not in name:
            paths += [(name, *path) for path in secret_paths_in(value)]
    return paths


def models_hold_secrets() -> bool:
    """Whether `modelops:models` carries a `secure:` value. The CLI decrypts values nested in an object and marks
    the whole key secret, so which value was secure is not known here: every model's `env` is then handled as
    secret (a Kubernetes Secret, a secret Lambda environment), never written in clear."""
    from pulumi.runtime import config as runtime_config

    return runtime_config.is_config_secret(f"{NAMESPACE}:models")
