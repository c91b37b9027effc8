"""What no single model's validators can see: checks across the stack, one small function per concern.

Each model's own rules sit beside it (its field validators); here are the rules that need the stack: names that
must not meet, pools a model names, replicas and scaling against the environment's defaults, canaries against
their stable version, what a fallback's Lambda function can take, and the stack's names, kubeconfig and images.
`stack_problems` runs them in a fixed order, so a stack's messages always come in the same order.
"""

import re
from typing import Any

from .. import promql
from ..common import ARTIFACT_FETCHER_IMAGE, FALLBACK_RELAY_IMAGE, NVIDIA_REGISTRY, POD_CACHE_GIB, weights_volume_name
from ..gpu_catalogue import load_catalogue, memory_gib
from ..runtimes import pod_only_metrics
from .base import KUBECONFIG_SECRET_KEY, NAMESPACE, SECRET_SET
from .cluster import RESERVED_NAMESPACES
from .enums import AmiFamily, ArtifactAccess, FallbackMode
from .mlflow import is_registry_uri
from .model import ModelConfig, lambda_environment
from .pool import GpuPoolConfig
from .serverless import LAMBDA_ENV_BYTES, STACK_NAME, lambda_function_name
from .stack import StackConfig

_MODEL_NAME = re.compile(r"[a-z]([-a-z0-9]{0,40}[a-z0-9])?")
"""A model's name names its Service (RFC 1035: starts with a letter), Deployment and IAM role."""
_POOL_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?")
_LAMBDA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
KUBERNETES_OBJECT_DATA_BYTES = 1024 * 1024
"""What one Secret or ConfigMap may hold (kubernetes.io/docs/concepts/configuration/secret/#restriction-data-size:
"Individual Secrets are limited to 1MiB in size"); etcd takes at most 1.5 MiB per request (--max-request-bytes)."""


def stack_problems(cfg: StackConfig, stack: str | None, kubeconfig: Any) -> list[str]:
    """Every cross-model problem of a schema-valid stack, one `modelops:<path>: <reason>` line each."""
    problems = _stack_name_problems(stack) + _kubeconfig_problems(cfg, kubeconfig) + _pricing_problems(cfg)
    if not cfg.models:
        problems.append(f"{NAMESPACE}:models: define at least one model")
    problems += _pool_name_problems(cfg)
    for name, model in cfg.models.items():
        for check in _MODEL_CHECKS:
            problems += check(cfg, name, model)
    problems += _system_image_problems(cfg) + _cluster_name_problems(cfg)
    for name, model in cfg.models.items():
        problems += _runtime_problems(cfg, name, model)
    return problems + _lambda_problems(cfg, stack)


def _path(name: str) -> str:
    return f"{NAMESPACE}:models.{name}"


# ---- the stack's own names, kubeconfig and prices ----


def _stack_name_problems(stack: str | None) -> list[str]:
    if stack is None or STACK_NAME.fullmatch(stack):
        return []
    return [
        f"{NAMESPACE}: the stack name {stack!r} is not one the Pulumi CLI takes (1 to 100 letters, digits, '_', '.' "
        "or '-')"
    ]


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


def _pricing_problems(cfg: StackConfig) -> list[str]:
    # the GPU ceiling could not be priced; a stack without GPU pools may live in any region
    prices = load_catalogue().on_demand_usd_per_hour
    if not cfg.gpu_pools or cfg.cluster.region in prices:
        return []
    return [
        f"{NAMESPACE}:cluster.region: no GPU price list for {cfg.cluster.region} "
        f"(known: {', '.join(sorted(prices))}); add it to components/data/gpu_instances.json"
    ]


# ---- names: of pools, of models, and of what the program builds from them ----


def _pool_name_problems(cfg: StackConfig) -> list[str]:
    return [
        f"{NAMESPACE}:gpuPools.{pool_name!r}: pool names must be DNS labels (a-z, 0-9, '-')"
        for pool_name in cfg.gpu_pools
        if not _POOL_NAME.fullmatch(pool_name)
    ]


def _model_name_problems(cfg: StackConfig, name: str, model: ModelConfig) -> list[str]:
    """A model's name must make a Service name and not be another model's track; its namespace must be its own."""
    path = _path(name)
    problems = []
    if not _MODEL_NAME.fullmatch(name):
        problems.append(
            f"{path!r}: model names must be DNS labels starting with a letter (a-z, 0-9, '-'), "
            "at most 42 characters: they name the model's Service"
        )
    track_owners = {
        f"{other}-{track}": other for other, m in cfg.models.items() if m.canary for track in ("canary", "stable")
    }
    if name in track_owners:
        problems.append(
            f"{path}: collides with model {track_owners[name]!r}'s {name.rsplit('-', 1)[1]} "
            "track (its Deployment and Service have this name); rename one"
        )
    relay_owners = _failover_names(cfg)
    if name in relay_owners:
        problems.append(
            f"{path}: collides with model {relay_owners[name]!r}'s gateway failover (its relay and fallback Backend "
            "are named <model>-failover and <model>-failover-relay); rename one"
        )
    not_owned = {*RESERVED_NAMESPACES, cfg.cluster.monitoring_namespace, cfg.cluster.ingress_namespace}
    if cfg.cluster.gateway:
        not_owned.add(cfg.cluster.gateway.namespace)
    if model.namespace in not_owned:
        problems.append(
            f"{path}.namespace: {model.namespace!r} is not the project's to take over (the "
            "program labels a model's namespace and enforces the restricted Pod Security profile "
            "on it); use a namespace of its own"
        )
    return problems


def _failover_names(cfg: StackConfig) -> dict[str, str]:
    """Names a standby model's gateway failover takes (components/gateway_fallback.py): its fallback Backend and
    its relay's Deployment, Service, ServiceAccount and role subject, in the model's namespace."""
    gateway = cfg.cluster.gateway
    if gateway is None or not gateway.standby_failover:
        return {}
    owners = [other for other, m in cfg.models.items() if cfg.fallback(m) == FallbackMode.STANDBY]
    return {f"{other}-{suffix}": other for other in owners for suffix in ("failover", "failover-relay")}


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


# ---- replicas and scaling (scale to zero) ----


def _replica_range_problems(cfg: StackConfig, name: str, model: ModelConfig) -> list[str]:
    lo, hi = cfg.min_replicas(model), cfg.max_replicas(model)
    return [f"{_path(name)}.replicas.min: must be <= max ({lo} > {hi})"] if lo > hi else []


def _artifact_access_problems(cfg: StackConfig, name: str, model: ModelConfig) -> list[str]:
    if model.artifact_access == ArtifactAccess.MOUNT and not model.artifact_uri:
        return [f"{_path(name)}.artifactAccess: 'mount' serves artifactUri from S3; set artifactUri"]
    return []


def _autoscaling_problems(cfg: StackConfig, name: str, model: ModelConfig) -> list[str]:
    """What KEDA or the HPA could not do with the model's scaling: read its query, scale a GPU server on a
    signal that means something, wake it from zero."""
    path, lowest, on_kubernetes = _path(name), cfg.min_replicas(model), cfg.fallback(model) != "only"
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
    if lowest == 0:
        problems += _scale_to_zero_problems(path, model, query, own)
    if model.autoscaling.active_hours and query is None:
        problems.append(
            f"{path}.autoscaling.activeHours: a KEDA cron trigger; set autoscaling.prometheusQuery (KEDA) too"
        )
    return problems


def _scale_to_zero_problems(path: str, model: ModelConfig, query: str | None, own: list[str]) -> list[str]:
    """A model at zero replicas wakes only on a KEDA query that can be live while it has no pods (`own`: the
    series the query cannot do without that only its pods export), or in its active hours."""
    if query is None:
        return [
            f"{path}.replicas.min: 0 (scale to zero) needs KEDA: set autoscaling.prometheusQuery (an "
            "HPA cannot scale to zero)"
        ]
    if model.autoscaling.active_hours or not own:
        return []
    source = "the runtime's default query" if not model.autoscaling.prometheus_query else "a query"
    return [
        f"{path}.replicas.min: 0 with {source} over series only the model's own pods export "
        f"({', '.join(own)}): at zero replicas they are empty, so is the query, and KEDA never wakes the "
        "model. Set autoscaling.activeHours, or query a metric from outside the pods (the gateway's requests)"
    ]


# ---- pools ----


def _pool_problems(cfg: StackConfig, name: str, model: ModelConfig) -> list[str]:
    """The pool a model names must exist, be named exactly when the model wants GPUs, and fit it."""
    path, mode = _path(name), cfg.fallback(model)
    problems = []
    if model.pool is not None and model.pool not in cfg.gpu_pools:
        known = ", ".join(sorted(cfg.gpu_pools)) or "none defined"
        problems.append(f"{path}.pool: unknown GPU pool {model.pool!r} (gpuPools: {known})")
    elif model.gpus > 0 and model.pool is None and mode != "only":
        problems.append(f"{path}.gpus: {model.gpus} GPUs requested but no pool is set")
    elif model.pool is not None and model.gpus == 0:
        problems.append(f"{path}.pool: a pool is set but gpus is 0 (set gpus, or remove pool for a CPU-only model)")
    elif model.pool is not None:
        problems += _pool_fit_problems(path, model, model.pool, cfg.gpu_pools[model.pool])
    if mode == "auto" and model.pool is None:
        problems.append(f"{path}.fallback: 'auto' chooses between a GPU pool and serverless; set pool")
    return problems


def _pool_fit_problems(path: str, model: ModelConfig, pool_name: str, pool: GpuPoolConfig) -> list[str]:
    """A replica must fit one instance of the pool, and the pool's GPU cap must hold one replica."""
    catalogue = load_catalogue()
    types = catalogue.types_for(pool.instance_families, pool.instance_types)
    problems = []
    if max(t.gpus for t in types) < model.gpus:
        problems.append(
            f"{path}.gpus: {model.gpus} GPUs per replica, but pool {pool_name!r} has at most "
            f"{max(t.gpus for t in types)} GPUs per instance"
        )
    elif not any(catalogue.fits(t, model.gpus, model.resources.cpu, model.resources.memory) for t in types):
        problems.append(
            f"{path}.resources: {model.resources.cpu} CPU and {model.resources.memory} with "
            f"{model.gpus} GPU(s) fit none of pool {pool_name}'s instance types "
            f"({', '.join(t.name for t in types)}) once the node's own reservations are taken; "
            "add a larger type or lower the requests"
        )
    if model.gpus > pool.gpu_limit:
        problems.append(
            f"{path}.gpus: {model.gpus} GPUs per replica exceeds pool {pool_name!r}'s gpuLimit ({pool.gpu_limit})"
        )
    return problems


# ---- registered models ----


def _registry_problems(cfg: StackConfig, name: str, model: ModelConfig) -> list[str]:
    """A registry URI is resolved against the stack's MLflow server: one must be configured."""
    uses = [
        key
        for key, uri in (
            ("artifactUri", model.artifact_uri),
            ("canary.artifactUri", model.canary and model.canary.artifact_uri),
        )
        if is_registry_uri(uri)
    ]
    if not uses or cfg.mlflow is not None:
        return []
    return [
        f"{_path(name)}.{uses[0]}: a registry URI needs {NAMESPACE}:mlflow.trackingUri, the registry to resolve it in"
    ]


def _signature_problems(cfg: StackConfig, name: str, model: ModelConfig) -> list[str]:
    """Signed weights are weights in S3 that `modelops weights` pins (a registered version is pinned by its tag,
    which holds no signature), checked against keys the stack trusts."""
    keys = [
        key
        for key, signature in (
            ("signature", model.signature),
            ("canary.signature", model.canary and model.canary.signature),
        )
        if signature
    ]
    if not keys:
        return []
    where = f"{_path(name)}.{keys[0]}"
    if not model.artifact_uri:
        return [f"{where}: the model has no artifactUri: there are no weights to sign"]
    uris = [model.artifact_uri, model.canary.artifact_uri if model.canary else None]
    if any(is_registry_uri(uri) for uri in uris):
        return [
            f"{where}: signed weights are pinned from their s3:// prefix by `modelops weights`; a registered "
            "version (models:/…) is pinned by its registry tag, which carries no signature: give the s3:// prefix"
        ]
    if not cfg.security.model_signing_keys:
        return [f"{where}: needs {NAMESPACE}:security.modelSigningKeys, the public keys whose signatures it accepts"]
    return []


# ---- canaries ----


def _canary_problems(cfg: StackConfig, name: str, model: ModelConfig) -> list[str]:
    """A canary serves another version than the stable one, from weights of its own in the model's bucket."""
    if model.canary is None:
        return []
    path = _path(name)
    problems = []
    both_registered = is_registry_uri(model.artifact_uri) and is_registry_uri(model.canary.artifact_uri)
    # registered tracks are told apart by their registry versions, once resolved (then checked again)
    if model.canary.version == model.version and not both_registered:
        problems.append(f"{path}.canary.version: equals the stable version {model.version!r}")
    if not model.artifact_uri:
        return problems
    canary_uri = model.canary_artifact_uri
    if canary_uri is None:
        problems.append(
            f"{path}.canary.artifactUri: required: the registered version artifactUri names has no path to "
            "derive the canary's from (e.g. models:/<name>@challenger)"
            if is_registry_uri(model.artifact_uri)
            else f"{path}.canary.artifactUri: required: artifactUri has no {model.version!r} path "
            "segment to derive the canary's weights from, and the canary must not serve the "
            "stable weights"
        )
    elif is_registry_uri(canary_uri) or is_registry_uri(model.artifact_uri):
        pass  # compared once resolved: the composition validates the resolved prefixes again
    elif canary_uri.split("/")[2] != model.artifact_bucket:
        problems.append(f"{path}.canary.artifactUri: must be in the model's bucket {model.artifact_bucket!r}")
    elif canary_uri.rstrip("/") == model.artifact_uri.rstrip("/"):
        problems.append(
            f"{path}.canary.artifactUri: is the stable version's artifact; the canary would serve the stable weights"
        )
    return problems


# ---- fallbacks and their Lambda functions ----


def _fallback_problems(cfg: StackConfig, name: str, model: ModelConfig) -> list[str]:
    """What a fallback mode rules out: a Lambda image from outside the account's ECR, a canary with no cluster."""
    path, mode, ecr = _path(name), cfg.fallback(model), cfg.cluster.ecr_registry
    problems = []
    ref = model.image.ref
    if mode != "none" and model.cpu_image is None and ref is not None and not ref.startswith(f"{ecr}/"):
        problems.append(
            f"{path}.image.ref: fallback '{mode}' runs the image on Lambda, which pulls only from "
            f"this account's ECR ({ecr}); set cpuImage or use fallback 'none'"
        )
    if model.canary is not None and mode == "only":
        problems.append(f"{path}.canary: canaries split Kubernetes traffic; fallback 'only' deploys none")
    return problems


def _lambda_problems(cfg: StackConfig, stack: str | None) -> list[str]:
    """A fallback's function name must be one Lambda takes, and its environment fit Lambda's 4 KB."""
    problems = []
    for name, model in cfg.models.items():
        if cfg.fallback(model) == "none":
            continue
        path = _path(name)
        if stack is not None and not _LAMBDA_NAME.fullmatch(function := lambda_function_name(stack, name)):
            problems.append(
                f"{path}: its Lambda function would be named {function!r}, which Lambda refuses (at most "
                "64 letters, digits, '-' or '_'); shorten the model or stack name"
            )
        env = lambda_environment(model)
        size = sum(len(k.encode()) + len(v.encode()) for k, v in env.items())
        if size > LAMBDA_ENV_BYTES:
            problems.append(
                f"{path}.env: {size} bytes of environment with what the program adds; Lambda allows "
                f"{LAMBDA_ENV_BYTES} in all"
            )
    return problems


_MODEL_CHECKS = (
    _model_name_problems,
    _registry_problems,
    _replica_range_problems,
    _artifact_access_problems,
    _autoscaling_problems,
    _pool_problems,
    _canary_problems,
    _signature_problems,
    _fallback_problems,
)
"""The checks of one model against the stack, in the order their messages are listed."""


# ---- what the program runs itself, and what a server's container can do ----


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


def _runtime_problems(cfg: StackConfig, name: str, model: ModelConfig) -> list[str]:
    """What the server's container could not do with its resources: listen on a port its runtime already opens,
    hold a /dev/shm that fills its memory limit, or ask for more scratch disk than a node of its pool has."""
    path = _path(name)
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
    return problems + _scratch_problems(path, model, cfg) + _object_size_problems(path, model)


def _object_size_problems(path: str, model: ModelConfig) -> list[str]:
    size = sum(len(k.encode()) + len(v.encode()) for k, v in model.env.items())
    size += sum(len(a.encode()) for a in model.args or ())
    size += len((model.autoscaling.prometheus_query or "").encode())  # in the ScaledObject and the dashboard
    if size <= KUBERNETES_OBJECT_DATA_BYTES:
        return []
    return [
        f"{path}.env: env, args and autoscaling.prometheusQuery hold {size} bytes; a Kubernetes Secret (where a "
        f"secret env goes) or ConfigMap (the dashboard) holds at most {KUBERNETES_OBJECT_DATA_BYTES} and every "
        "object is one etcd request of at most 1.5 MiB"
    ]


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
