"""One model: its image, runtime, resources, weights, canary, fallback, probes, scaling and env."""

import re

from pydantic import Field, field_validator

from ..runtimes import PRESETS, Runtime, RuntimePreset
from .autoscaling import AutoscalingConfig
from .base import DNS_LABEL, ConfigModel
from .enums import ArtifactAccess, FallbackMode, Placement, WeightsSignature
from .mlflow import is_registry_uri, parse_registry_uri
from .registry import ImageConfig
from .serverless import LAMBDA_RESERVED_ENV, ServerlessConfig

_VERSION = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
"""A model version is an image tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) and the `app.kubernetes.io/version` label value
(alphanumeric at both ends, at most 63): this is both."""
_ENV_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]+")
"""Lambda's rule for environment keys (a letter, then letters, digits, underscores; two characters at least),
which is also a valid Kubernetes env name: the same `env` goes to both."""
PROGRAM_ENV = ("MODEL_VERSION", "MODEL_DIR", "MODEL_URI", "HOME")
"""Env names the program sets itself on pods or functions: a model's own `env` cannot take them."""
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"

_S3_URI = r"^s3://[a-z0-9.-]{3,63}(/.*)?$"
_ARTIFACT_URI = r"^(s3://[a-z0-9.-]{3,63}(/.*)?|models:/.+)$"
"""An S3 prefix, or a registry URI the composition resolves to one (components/config/mlflow.py)."""
_S3_KEY = re.compile(r"[A-Za-z0-9!_.'()+=@,-]+(/[A-Za-z0-9!_.'()+=@,-]+)*/?")
"""An artifact prefix: S3's safe key characters (docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html,
"Safe characters") without `*` and with `+ = @ ,`, in non-empty `/`-separated segments."""


def check_artifact_uri(value: str | None) -> str | None:
    """An artifact URI the pods' IAM grant can be scoped to. The grant's resources are `<bucket>/<prefix>/*` and
    its list condition `s3:prefix` StringLike `<prefix>/*`: in both, `*` and `?` are wildcards and `${...}` a policy
    variable (docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html), so a prefix
    holding one would widen the role past its own prefix (`s3://b/*` is the whole bucket). A bucket alone, or an
    empty segment, would grant the whole bucket or another key than the one fetched."""
    if value is None:
        return value
    if is_registry_uri(value):
        parse_registry_uri(value)
        return value
    bucket, _, key = value[len("s3://") :].partition("/")
    if not key.strip("/"):
        raise ValueError(
            f"{value!r} names a bucket but no prefix: the pods' role would read the whole bucket; give the prefix "
            "of this model's weights (s3://<bucket>/<model>/<version>)"
        )
    if any(segment in (".", "..") for segment in key.split("/")):
        raise ValueError(f"{value!r}: '.' and '..' segments name another prefix than the one the pods' role is granted")
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


class Replicas(ConfigModel):
    min: int | None = Field(default=None, ge=0, le=1000)
    """Fewest replicas (default: the environment's). 0 scales the model to zero when idle: KEDA only (set
    autoscaling.prometheusQuery); the first request after idle waits for a node, the pull and the load."""
    max: int | None = Field(default=None, ge=1, le=1000)


class Resources(ConfigModel):
    cpu: str = Field(default="2", pattern=_QUANTITY)
    memory: str = Field(default="8Gi", pattern=_QUANTITY)
    shm: str | None = Field(default=None, pattern=_QUANTITY)
    """Size of the memory-backed /dev/shm (default: 1Gi per GPU for GPU models; the container runtime's
    64 MiB breaks PyTorch data loaders and NCCL). It counts against the memory limit."""
    scratch: str = Field(default="50Gi", pattern=_QUANTITY)
    """Local disk for the fetched model (the `/models` volume): limited, and requested as ephemeral
    storage so the scheduler and the kubelet account for it instead of filling the node's image volume."""


class CanaryConfig(ConfigModel):
    version: str = Field(pattern=_VERSION)
    weight: int = Field(ge=0, le=100)
    """Percent of traffic sent to the canary."""
    image: ImageConfig | None = None
    """The canary's image (default: the model's image built at the canary version)."""
    artifact_uri: str | None = Field(default=None, pattern=_ARTIFACT_URI)
    """The canary version's weights (default: the model's artifactUri with its version segment replaced
    by the canary version): the canary must serve the new version, not the stable weights. A registry URI
    (`models:/chat@challenger`) when the model's weights come from the registry."""

    _prefix_only = field_validator("artifact_uri")(lambda value: check_artifact_uri(value))
    signature: WeightsSignature | None = None
    """The canary's weights must be signed (as `signature` of the model, which applies to the canary too)."""


class ProbeConfig(ConfigModel):
    ready_path: str | None = Field(default=None, pattern=r"^/[\x21-\x7e]*$")
    """Readiness endpoint (default: the runtime's)."""
    live_path: str | None = Field(default=None, pattern=r"^/[\x21-\x7e]*$")
    """Liveness endpoint (default: the runtime's)."""
    startup_seconds: int = Field(default=600, ge=30, le=3600)
    """How long a replica may take to load its model before Kubernetes restarts it."""


class ModelConfig(ConfigModel):
    version: str = Field(pattern=_VERSION)
    image: ImageConfig
    cpu_image: ImageConfig | None = None
    """A CPU build for the serverless fallback when the serving image needs a GPU."""
    namespace: str = Field(default="models", pattern=DNS_LABEL)
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
    artifact_uri: str | None = Field(default=None, pattern=_ARTIFACT_URI)
    """`s3://<bucket>/<prefix>`: the model's weights. The pods' role may read this prefix and nothing else. Or a
    registered model version, `models:/<name>/<version>` or `models:/<name>@<alias>` (with `modelops:mlflow`):
    resolved at every run to the S3 prefix holding its files, and the track's version becomes
    `<version>-r<registry version>`, so an alias moved in the registry rolls out as a new version."""
    _prefix_only = field_validator("artifact_uri")(lambda value: check_artifact_uri(value))
    artifact_access: ArtifactAccess = ArtifactAccess.COPY
    """How pods reach `artifactUri`: `copy` (an init container copies it to local disk before the server
    starts) or `mount` (the Mountpoint for Amazon S3 CSI driver serves the prefix read-only: no copy step, the
    weights stream from S3 with the pod's own, prefix-scoped role)."""
    signature: WeightsSignature | None = None
    """`key`: the weights (and the canary's) must carry an OpenSSF model signature, `model.sig` beside them as
    `model_signing sign key` writes it, by one of `security.modelSigningKeys`, listing exactly their files:
    `modelops weights` records it in the lock only then, and every plan verifies it again."""
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
        if not self.artifact_uri or is_registry_uri(self.artifact_uri):
            return None  # known once the composition has resolved it
        return self.artifact_uri[len("s3://") :].split("/", 1)[0]

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
        if is_registry_uri(self.artifact_uri):
            return None  # a registered version has no path to move on: the canary names its own
        segments = self.artifact_uri.split("/")
        if self.version not in segments[3:]:
            return None
        return "/".join(self.canary.version if i >= 3 and s == self.version else s for i, s in enumerate(segments))

    def signature_for(self, track: str) -> WeightsSignature | None:
        """The signature a track's weights need: the canary's own, else the model's."""
        own = self.canary.signature if track == "canary" and self.canary else None
        return own or self.signature

    @property
    def canary_artifact_prefix(self) -> str:
        return _s3_prefix(self.canary_artifact_uri)


def _s3_prefix(uri: str | None) -> str:
    if not uri or is_registry_uri(uri):
        return ""
    parts = uri[len("s3://") :].split("/", 1)
    return parts[1].strip("/") if len(parts) > 1 else ""


def lambda_environment(model: ModelConfig) -> dict[str, str]:
    """A fallback's Lambda environment, built here once: what the function gets and what validation measures
    against Lambda's limit. The model's env, the version the server reports (as on pods) and, for an artifact,
    the MODEL_URI it fetches it from."""
    env = {**model.env, "MODEL_VERSION": model.version}
    if model.artifact_uri:
        env["MODEL_URI"] = model.artifact_uri.rstrip("/")
    return env
