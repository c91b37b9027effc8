"""A ModelService track's pod, in its parts: the server container, the init container that fetches or checks the
weights, the volumes, and the placement every track shares. Restricted Pod Security profile throughout: non-root,
no privilege escalation, all capabilities dropped, RuntimeDefault seccomp, a read-only root filesystem (writable
places are volumes)."""

import math
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from .common import ARTIFACT_FETCHER_IMAGE, GPU_RESOURCE, POD_CACHE_GIB
from .contracts import NAME_LABEL
from .gpu_catalogue import memory_gib
from .model_tracks import ModelScope, Track
from .model_weights import RUN_AS_USER, Weights, WeightsAccess
from .weights_manifest import verify_command

MODEL_DIR = "/models"
CONTAINER_SECURITY: k8s.core.v1.SecurityContextArgsDict = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass(frozen=True)
class PodPlacement:
    """What every track's pods share besides the model: their identity, their env's Secret, their nodes."""

    service_account: pulumi.Input[str]
    env_secret: pulumi.Input[str] | None
    """The Secret holding the model's env (it came from secret config), read through secretKeyRef; None: the
    values are written into the pod spec."""
    node_selector: pulumi.Input[dict[str, str]] | None
    """From the model's GPU pool; None for CPU-only models."""
    tolerations: pulumi.Input[list[dict[str, str]]] | None


def pod_spec(scope: ModelScope, placement: PodPlacement, track: Track, weights: Weights) -> k8s.core.v1.PodSpecArgsDict:
    fetch = fetch_container(weights)
    return {
        "serviceAccountName": placement.service_account,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 60,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [server_container(scope, placement, track, weights)],
        "volumes": volumes(scope, weights),
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": key,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {NAME_LABEL: scope.name}},
            }
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        ],
        **({"initContainers": [fetch]} if fetch is not None else {}),
        **({"nodeSelector": placement.node_selector} if placement.node_selector is not None else {}),
        **({"tolerations": placement.tolerations} if placement.tolerations is not None else {}),
    }


def server_container(
    scope: ModelScope, placement: PodPlacement, track: Track, weights: Weights
) -> k8s.core.v1.ContainerArgsDict:
    model = scope.model
    metrics_port = model.preset.metrics_port
    ports: list[k8s.core.v1.ContainerPortArgsDict] = [
        {"name": "http", "containerPort": model.serving_port, "protocol": "TCP"}
    ]
    if metrics_port:
        ports.append({"name": "metrics", "containerPort": metrics_port, "protocol": "TCP"})
    shm = model.shm_size  # the schema checks it against the memory limit it counts toward
    args = model.container_args(scope.name)
    return {
        "name": "server",
        "image": track.image,
        "ports": ports,
        "env": _server_env(scope, placement, track, weights),
        "resources": _server_resources(scope, weights),
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": model_mounts(weights) + ([{"name": "dshm", "mountPath": "/dev/shm"}] if shm else []),
        # Model loading can take minutes: the startup probe holds liveness off until it is done.
        "startupProbe": {
            "httpGet": {"path": model.live_path, "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": math.ceil(model.probes.startup_seconds / 10),
            "timeoutSeconds": 5,
        },
        "readinessProbe": {
            "httpGet": {"path": model.ready_path, "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 3,
            "timeoutSeconds": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": model.live_path, "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
            "timeoutSeconds": 5,
        },
        # Endpoints lag pod deletion: keep serving while the gateway stops sending traffic.
        "lifecycle": {"preStop": {"sleep": {"seconds": 15}}},
        **({"args": args} if args else {}),
    }


def _server_env(
    scope: ModelScope, placement: PodPlacement, track: Track, weights: Weights
) -> list[k8s.core.v1.EnvVarArgsDict]:
    model, secret = scope.model, placement.env_secret
    env: list[k8s.core.v1.EnvVarArgsDict]
    if secret is not None:
        env = [{"name": k, "valueFrom": {"secretKeyRef": {"name": secret, "key": k}}} for k in sorted(model.env)]
    else:
        env = [{"name": k, "value": v} for k, v in sorted(model.env.items())]
    # the runtime's cache locations, on the writable /tmp (the model's own env wins)
    env += [{"name": k, "value": v} for k, v in sorted(model.preset.env.items()) if k not in model.env]
    if weights.manifest is not None and "HF_HUB_OFFLINE" not in model.env:
        # pinned weights are all the server reads: no code or config fetched from the Hugging Face Hub beside them
        env.append({"name": "HF_HUB_OFFLINE", "value": "1"})
    return [
        *env,
        {"name": "MODEL_VERSION", "value": track.version},
        {"name": "MODEL_DIR", "value": MODEL_DIR},
        {"name": "HOME", "value": "/tmp"},
    ]


def _server_resources(scope: ModelScope, weights: Weights) -> k8s.core.v1.ResourceRequirementsArgsDict:
    resources = scope.model.resources
    # the /models volume is local disk only when the weights are copied there
    scratch = 0 if weights.access is WeightsAccess.MOUNT else memory_gib(resources.scratch)
    storage = f"{scratch + POD_CACHE_GIB:g}Gi"
    gpus = {GPU_RESOURCE: str(scope.model.gpus)} if scope.model.gpus else {}
    return {
        "requests": {"cpu": resources.cpu, "memory": resources.memory, "ephemeral-storage": storage, **gpus},
        "limits": {"memory": resources.memory, "ephemeral-storage": storage, **gpus},
    }


def model_mounts(weights: Weights) -> list[k8s.core.v1.VolumeMountArgsDict]:
    """The writable /tmp, and the weights at MODEL_DIR (read-only when mounted from S3)."""
    read_only = {"readOnly": True} if weights.access is WeightsAccess.MOUNT else {}
    return [{"name": "cache", "mountPath": "/tmp"}, {"name": "model", "mountPath": MODEL_DIR, **read_only}]


def fetch_container(weights: Weights) -> k8s.core.v1.ContainerArgsDict | None:
    """The init container that copies the track's weights to MODEL_DIR before the server starts, and checks them
    against their manifest when they are pinned; for mounted weights, the check alone (None when unpinned: the
    mount is the server's to read)."""
    manifest = weights.manifest
    if manifest is not None:
        source = weights.source if weights.access is WeightsAccess.COPY else ""
        name, command = ("fetch-model" if source else "verify-model"), verify_command(source, MODEL_DIR, manifest)
    elif weights.access is WeightsAccess.COPY:
        name, command = "fetch-model", ["aws", "s3", "sync", "--only-show-errors", weights.source, MODEL_DIR]
    else:
        return None
    return {
        "name": name,
        "image": ARTIFACT_FETCHER_IMAGE,
        "command": command,
        "env": [{"name": "HOME", "value": "/tmp"}],
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": model_mounts(weights),
    }


def volumes(scope: ModelScope, weights: Weights) -> list[k8s.core.v1.VolumeArgsDict]:
    """The /tmp cache, the weights (the claim of their S3 mount, else local disk), and a sized /dev/shm."""
    shm = scope.model.shm_size
    model: k8s.core.v1.VolumeArgsDict = (
        {"name": "model", "persistentVolumeClaim": {"claimName": weights.claim, "readOnly": True}}
        if weights.claim is not None
        else {"name": "model", "emptyDir": {"sizeLimit": scope.model.resources.scratch}}
    )
    return [
        {"name": "cache", "emptyDir": {"sizeLimit": f"{POD_CACHE_GIB}Gi"}},
        model,
        *([{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}}] if shm else []),
    ]
