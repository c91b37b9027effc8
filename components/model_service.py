"""ModelService: a model served from Kubernetes, production-grade by default.

Creates, in the model's namespace:
- a ServiceAccount, with an IAM role for service accounts (read-only on the artifact's S3 prefix)
  when the model artifact lives in S3;
- a Deployment per track (stable, and canary when configured), whose pods fetch the artifact in an
  init container and serve it under the restricted Pod Security profile;
- a Service for the model (both tracks) and, with a Gateway, one per track and an HTTPRoute that
  splits traffic by weight;
- autoscaling (an autoscaling/v2 HPA on CPU, or a KEDA ScaledObject on a Prometheus query), a
  PodDisruptionBudget per Deployment, a NetworkPolicy (ingress from the gateway and monitoring
  namespaces only), a ServiceMonitor and a PrometheusRule with latency, error and availability alerts.
"""

import json
import math
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from .common import (
    ARTIFACT_FETCHER_IMAGE,
    GPU_RESOURCE,
    POD_CACHE_GIB,
    as_model,
    dashboard_uid,
    dns_label,
    standard_labels,
    type_token,
    weights_volume_name,
)
from .config import ArtifactAccess, ClusterConfig, Environment, ModelConfig
from .dashboards import dashboard, dashboard_config_map
from .gateway_fallback import failover_backend_refs, failover_traffic_policy
from .gpu_catalogue import memory_gib

TRACK_LABEL = "modelops/track"
TRACK_SERIES_LABEL = "modelops_track"
"""The track label on every scraped series: the ServiceMonitor copies the pods' TRACK_LABEL onto their targets
(`podTargetLabels`; the Prometheus Operator sanitizes the name to a Prometheus label)."""
SCRAPE_LABEL = "modelops/scrape"
PAUSED_REPLICAS_ANNOTATION = "autoscaling.keda.sh/paused-replicas"
PATCH_FORCE_ANNOTATION = "pulumi.com/patchForce"
WAIT_FOR_ANNOTATION = "pulumi.com/waitFor"
ROUTE_ADMITTED = [
    'jsonpath={.status.parents[*].conditions[?(@.type=="Accepted")].status}=True',
    'jsonpath={.status.parents[*].conditions[?(@.type=="ResolvedRefs")].status}=True',
]
"""What the Kubernetes provider awaits on a route (JSONPath as `kubectl wait --for=jsonpath`): its Gateway's verdict."""
ROUTE_ADMISSION_WAIT = "5m"
"""A Gateway implementation admits a route in seconds; a route it refuses fails `up` after this long."""
COLD_START_ANNOTATION = "modelops/cold-start-seconds"
"""On a ScaledObject that scales to zero: the longest a first request may wait (the documented budget that
`k8s-scale-to-zero` asks for)."""
"""On the model's main Service only: what its ServiceMonitor selects, so each pod is scraped once."""
# What a replica waits for before it can serve, besides its own start-up: a node launched for it
# (Karpenter: instance start and join, a few minutes for GPU AMIs), a multi-GB image pull on a fresh
# node, the artifact copy of the init container. Generous on purpose: the await fails an `up` that is
# only slow, and the deadline marks the Deployment failed if no replica becomes available in time.
NODE_LAUNCH_SECONDS = 300
IMAGE_PULL_SECONDS = 600
ARTIFACT_COPY_SECONDS = 300
MODEL_DIR = "/models"
S3_CSI_DRIVER = "s3.csi.aws.com"
"""The Mountpoint for Amazon S3 CSI driver (the EKS add-on aws-mountpoint-s3-csi-driver)."""
# Scale down slowly: a replica that goes takes a loaded model with it.
SCALE_DOWN = {"stabilizationWindowSeconds": 600, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]}
HPA_TYPE = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT_TYPE = "kubernetes:keda.sh/v1alpha1:ScaledObject"
RUN_AS_USER = 65532


class ModelServiceArgs(TypedDict):
    """A model served from Kubernetes: the model and cluster as the stack schema declares them (defaults and
    bounds live there), and what the composition resolves (images, the replica range, the pool)."""

    model: ModelConfig
    """The model: version, namespace, port, GPUs, resources, probes, autoscaling, artifact, canary, env."""
    cluster: ClusterConfig
    """The cluster: OIDC provider, ingress and monitoring namespaces, Prometheus labels, gateway."""
    environment: Environment
    """dev, staging or prod."""
    cost_owner: str
    """The team billed: the `modelops/cost-owner` label."""
    image: pulumi.Input[str]
    """The stable image, `repository@sha256:…`."""
    canary_image: NotRequired[pulumi.Input[str]]
    """The canary version's image (required when the model has a canary)."""
    min_replicas: int
    """The stable track's lower bound, after the environment's defaults."""
    max_replicas: int
    """The stable track's upper bound, after the environment's defaults."""
    node_selector: NotRequired[pulumi.Input[dict[str, str]]]
    """From the model's GPU pool; absent for CPU-only models."""
    tolerations: NotRequired[pulumi.Input[list[dict[str, str]]]]
    """From the model's GPU pool; absent for CPU-only models."""
    env_is_secret: NotRequired[bool]
    """The env values came from secret config: they go into a Kubernetes Secret the pods read through
    secretKeyRef, never into the Deployment (whose spec anyone who can read Deployments sees) or plain state."""
    tags: NotRequired[dict[str, str]]
    """AWS tags (the service-account role)."""
    fallback_backend: NotRequired[pulumi.Input[str]]
    """A GatewayFallback's `Backend`: the route fails over to it while no track answers (components/gateway_fallback.py)."""


class ModelService(pulumi.ComponentResource):
    """A served model. Secure defaults: the restricted Pod Security profile (non-root, no privilege
    escalation, all capabilities dropped, RuntimeDefault seccomp, read-only root filesystem), no
    service-account token in pods, ingress only from the gateway and monitoring namespaces, and an
    IAM role limited to reading the model's own S3 prefix."""

    endpoint: pulumi.Output[str]
    """Where clients reach the model: the gateway URL, else the in-cluster Service URL."""
    service_name: pulumi.Output[str]
    """The model's Service."""
    role_arn: pulumi.Output[str | None]
    """The service-account IAM role, when the artifact is in S3."""

    def __init__(self, name: str, args: ModelServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("ModelService"), name, None, opts)
        self._name = name
        self._args = args
        # Hosted for another language, the component receives plain dicts: the schema's models validate
        # them (defaults, bounds) exactly as they validate a stack file.
        self._model = as_model(ModelConfig, args["model"])
        self._cluster = as_model(ClusterConfig, args["cluster"])
        self._gateway = self._cluster.gateway
        canary_config = self._model.canary
        self._canary_version = canary_config.version if canary_config else None
        self._canary_weight = canary_config.weight if canary_config else 0
        if canary_config and args.get("canary_image") is None:
            raise ValueError(
                f"ModelService {name}: the model has a canary ({canary_config.version}) but no canary_image"
            )
        ns = self._model.namespace
        self._artifact_claims: dict[str, str] = {}
        """Artifact prefix -> the PersistentVolumeClaim that mounts it (artifactAccess: mount)."""
        self._weights_access: dict[str, list[pulumi.Resource]] = {}
        """Version -> what its pods need before they start: the read grant on its prefix, its volume claim."""
        labels = standard_labels(
            name, self._args["environment"], self._args["cost_owner"], self._model.version, "model-server"
        )
        match = {"app.kubernetes.io/name": name}

        role = self._service_account_role(name) if self._model.artifact_bucket else None
        annotations = {"eks.amazonaws.com/role-arn": role.arn} if role else {}
        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata={"name": name, "namespace": ns, "labels": labels, "annotations": annotations},
            automount_service_account_token=False,
            opts=pulumi.ResourceOptions(parent=self),
        )

        # Each version's weights are granted and mounted on their own, named by version: a version bump adds the new
        # version's grant and volume before its pods start and removes the old ones at the end of the update, after
        # the rollout, so running pods never lose their weights nor see another version's under their mount.
        versions = {self._model.version: self._model.artifact_prefix}
        if canary_config:
            versions[canary_config.version] = self._model.canary_artifact_prefix
        if role is not None:  # else the weights are not in S3: nothing to grant or mount
            for version, prefix in versions.items():
                self._weights_access[version] = [self._artifact_grant(name, role, version, prefix)]
                if self._model.artifact_access == ArtifactAccess.MOUNT:
                    self._artifact_claims[prefix], claim = self._artifact_mount(name, version, prefix)
                    self._weights_access[version].append(claim)
        self._env_secret = (
            self._secret_env(name, labels) if self._args.get("env_is_secret", False) and self._model.env else None
        )
        canary_replicas = self._canary_replicas() if canary_config else 0
        stable = self._deployment(
            name, "stable", self._model.version, self._args["image"], None, account, self._model.artifact_prefix
        )
        self._disruption_budget(f"{name}-pdb", name, "stable", labels)
        self._autoscaler(name, stable)
        tracks = [stable]
        if canary_config:
            canary_name = f"{name}-canary"
            # A track's replicas have one owner for its whole life, or server-side apply conflicts: KEDA's, when
            # the model scales with KEDA (the canary's own ScaledObject, paused at a fixed count unless the model
            # scales to zero), else this program's.
            keda_owned = self._scales_with_keda
            tracks.append(
                self._deployment(
                    canary_name,
                    "canary",
                    canary_config.version,
                    self._args["canary_image"],
                    None if keda_owned else canary_replicas,
                    account,
                    self._model.canary_artifact_prefix,
                )
            )
            if canary_replicas:
                self._disruption_budget(f"{canary_name}-pdb", canary_name, "canary", labels)
            if keda_owned:
                self._canary_scaler(name, canary_replicas)

        port = [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
        metrics_port = self._model.preset.metrics_port
        # a runtime that serves /metrics on a port of its own (Triton's 8002) is scraped there
        scraped = (
            [{"name": "metrics", "port": metrics_port, "targetPort": "metrics", "protocol": "TCP"}]
            if metrics_port
            else []
        )
        service = k8s.core.v1.Service(
            f"{name}-svc",
            # the one Service scraped: the per-track Services select the same pods (scraped twice otherwise)
            metadata={"name": name, "namespace": ns, "labels": {**labels, SCRAPE_LABEL: "true"}},
            spec={"type": "ClusterIP", "selector": match, "ports": port + scraped},
            opts=pulumi.ResourceOptions(parent=self),
        )
        if self._gateway:
            self._route(name, labels, port, tracks)
        elif canary_config:
            pulumi.log.warn(
                f"model {name}: no gateway configured, so the {self._canary_weight}% canary split is approximate: "
                f"{canary_replicas} canary replica(s) beside {self._args['min_replicas']}-{self._args['max_replicas']} stable ones "
                "share one Service. Set modelops:cluster.gateway for an exact split.",
                resource=self,
            )

        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata={"name": name, "namespace": ns, "labels": labels},
            spec={
                "podSelector": {"matchLabels": match},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": n}}}
                            for n in sorted({self._cluster.ingress_namespace, self._cluster.monitoring_namespace})
                        ]
                        + [{"ipBlock": {"cidr": cidr}} for cidr in self._cluster.ingress_cidrs],
                        "ports": [
                            {"protocol": "TCP", "port": p} for p in (self._model.serving_port, metrics_port) if p
                        ],
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s.apiextensions.CustomResource(
            f"{name}-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={"name": name, "namespace": ns, "labels": {**labels, **self._cluster.prometheus_labels}},
            spec={
                "selector": {"matchLabels": {**match, SCRAPE_LABEL: "true"}},
                "namespaceSelector": {"matchNames": [ns]},
                "podTargetLabels": [TRACK_LABEL],  # the alerts judge each track (TRACK_SERIES_LABEL)
                "endpoints": [
                    {
                        "port": "metrics" if metrics_port else "http",
                        "path": self._model.preset.metrics_path,
                        "interval": "30s",
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[service]),
        )
        self._alerts(name, labels)
        self._dashboard(name, labels)

        if self._gateway and self._gateway.hostname:
            self.endpoint = pulumi.Output.from_input(f"https://{self._gateway.hostname}/{name}")
        else:
            self.endpoint = pulumi.Output.from_input(f"http://{name}.{ns}.svc.cluster.local")
        self.service_name = service.metadata.name
        self.role_arn = role.arn if role else pulumi.Output.from_input(None)
        self.register_outputs({"endpoint": self.endpoint, "service_name": self.service_name, "role_arn": self.role_arn})

    def _secret_env(self, name: str, labels: dict[str, str]) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            f"{name}-env",
            metadata={"name": f"{name}-env", "namespace": self._model.namespace, "labels": labels},
            type="Opaque",
            string_data={k: pulumi.Output.secret(v) for k, v in self._model.env.items()},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _artifact_mount(self, name: str, version: str, prefix: str) -> tuple[str, k8s.core.v1.PersistentVolumeClaim]:
        """A static PersistentVolume of the Mountpoint for Amazon S3 CSI driver for one version's artifact prefix,
        and the claim bound to it: read-only, as the pods' own user, with the pod's service-account role (so the
        mount can read exactly what the role can: the model's prefixes)."""
        labels = standard_labels(name, self._args["environment"], self._args["cost_owner"], version, "model-weights")
        ns, claim = self._model.namespace, f"{name}-weights-{dns_label(version)}"
        volume = weights_volume_name(ns, name, version)  # PersistentVolumes are cluster-wide
        k8s.core.v1.PersistentVolume(
            f"{name}-weights-{version}-pv",
            metadata={"name": volume, "labels": labels},
            spec={
                "capacity": {"storage": "1Gi"},  # required by the API, ignored by the driver
                "accessModes": ["ReadOnlyMany"],
                # Static provisioning: no class. A PV's storageClassName is a plain string the API drops
                # when empty, so "" would be a perpetual diff; absent means the same "no class" there. The
                # claim's is a pointer, where "" (not absent) keeps the default class from being applied.
                "claimRef": {"namespace": ns, "name": claim},  # no other claim can take it
                "persistentVolumeReclaimPolicy": "Retain",
                "mountOptions": [
                    "read-only",
                    f"prefix {prefix.rstrip('/')}/",
                    f"region {self._cluster.region}",
                    f"uid={RUN_AS_USER}",
                    f"gid={RUN_AS_USER}",
                    "allow-other",
                ],
                "csi": {
                    "driver": S3_CSI_DRIVER,
                    "volumeHandle": volume,
                    "volumeAttributes": {"bucketName": self._model.artifact_bucket, "authenticationSource": "pod"},
                },
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        return claim, k8s.core.v1.PersistentVolumeClaim(
            f"{name}-weights-{version}-pvc",
            metadata={"name": claim, "namespace": ns, "labels": labels},
            spec={
                "accessModes": ["ReadOnlyMany"],
                "storageClassName": "",
                "resources": {"requests": {"storage": "1Gi"}},
                "volumeName": volume,
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _service_account_role(self, name: str) -> aws.iam.Role:
        issuer = self._cluster.oidc_provider_arn.split(":oidc-provider/", 1)[1]
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": self._cluster.oidc_provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{issuer}:sub": f"system:serviceaccount:{self._model.namespace}:{name}",
                            f"{issuer}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        }
        return aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(trust),
            tags=self._args.get("tags", {}),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _artifact_grant(self, name: str, role: aws.iam.Role, version: str, prefix: str) -> aws.iam.RolePolicy:
        """Read access to one version's weights, as a policy of its own (see `__init__`)."""
        bucket = self._model.artifact_bucket
        assert bucket is not None, "a grant is made only for an artifact in S3"
        return aws.iam.RolePolicy(
            f"{name}-artifact-read-{version}",
            role=role.id,
            policy=aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition.apply(
                lambda partition: json.dumps(artifact_read_policy(partition, bucket, prefix))
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _pod_spec(
        self, version: str, image: pulumi.Input[str], account: k8s.core.v1.ServiceAccount, artifact_prefix: str
    ) -> dict:
        # the /models volume is local disk only when the artifact is copied there
        scratch = 0 if self._artifact_claims.get(artifact_prefix) else memory_gib(self._model.resources.scratch)
        storage = f"{scratch + POD_CACHE_GIB:g}Gi"
        resources = {
            "requests": {
                "cpu": self._model.resources.cpu,
                "memory": self._model.resources.memory,
                "ephemeral-storage": storage,
            },
            "limits": {"memory": self._model.resources.memory, "ephemeral-storage": storage},
        }
        if self._model.gpus:
            resources["requests"][GPU_RESOURCE] = str(self._model.gpus)
            resources["limits"][GPU_RESOURCE] = str(self._model.gpus)
        container_security = {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        mounted = self._artifact_claims.get(artifact_prefix)
        mounts: list[dict[str, Any]] = [
            {"name": "cache", "mountPath": "/tmp"},
            {"name": "model", "mountPath": MODEL_DIR, **({"readOnly": True} if mounted else {})},
        ]
        shm = self._model.shm_size  # the schema checks it against the memory limit it counts toward
        server_mounts = mounts + ([{"name": "dshm", "mountPath": "/dev/shm"}] if shm else [])
        if self._env_secret is not None:
            env = [
                {"name": k, "valueFrom": {"secretKeyRef": {"name": self._env_secret.metadata.name, "key": k}}}
                for k in sorted(self._model.env)
            ]
        else:
            env = [{"name": k, "value": v} for k, v in sorted(self._model.env.items())]
        # the runtime's cache locations, on the writable /tmp (the model's own env wins)
        env += [{"name": k, "value": v} for k, v in sorted(self._model.preset.env.items()) if k not in self._model.env]
        env += [
            {"name": "MODEL_VERSION", "value": version},
            {"name": "MODEL_DIR", "value": MODEL_DIR},
            {"name": "HOME", "value": "/tmp"},
        ]
        server: dict[str, Any] = {
            "name": "server",
            "image": image,
            "ports": [{"name": "http", "containerPort": self._model.serving_port, "protocol": "TCP"}]
            + (
                [{"name": "metrics", "containerPort": self._model.preset.metrics_port, "protocol": "TCP"}]
                if self._model.preset.metrics_port
                else []
            ),
            "env": env,
            "resources": resources,
            "securityContext": container_security,
            "volumeMounts": server_mounts,
            # Model loading can take minutes: the startup probe holds liveness off until it is done.
            "startupProbe": {
                "httpGet": {"path": self._model.live_path, "port": "http"},
                "periodSeconds": 10,
                "failureThreshold": math.ceil(self._model.probes.startup_seconds / 10),
                "timeoutSeconds": 5,
            },
            "readinessProbe": {
                "httpGet": {"path": self._model.ready_path, "port": "http"},
                "periodSeconds": 5,
                "failureThreshold": 3,
                "timeoutSeconds": 3,
            },
            "livenessProbe": {
                "httpGet": {"path": self._model.live_path, "port": "http"},
                "periodSeconds": 10,
                "failureThreshold": 3,
                "timeoutSeconds": 5,
            },
            # Endpoints lag pod deletion: keep serving while the gateway stops sending traffic.
            "lifecycle": {"preStop": {"sleep": {"seconds": 15}}},
        }
        args = self._model.container_args(self._name)
        if args:
            server["args"] = args
        spec = {
            "serviceAccountName": account.metadata.name,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 60,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS_USER,
                "runAsGroup": RUN_AS_USER,
                "fsGroup": RUN_AS_USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [server],
            "volumes": [
                {"name": "cache", "emptyDir": {"sizeLimit": f"{POD_CACHE_GIB}Gi"}},
                (
                    {"name": "model", "persistentVolumeClaim": {"claimName": mounted, "readOnly": True}}
                    if mounted
                    else {"name": "model", "emptyDir": {"sizeLimit": self._model.resources.scratch}}
                ),
            ]
            + ([{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}}] if shm else []),
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": self._name}},
                },
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": self._name}},
                },
            ],
        }
        if self._model.artifact_bucket and not mounted:
            source = f"s3://{self._model.artifact_bucket}/{artifact_prefix}".rstrip("/")
            spec["initContainers"] = [
                {
                    "name": "fetch-model",
                    "image": ARTIFACT_FETCHER_IMAGE,
                    "command": ["aws", "s3", "sync", "--only-show-errors", source, MODEL_DIR],
                    "env": [{"name": "HOME", "value": "/tmp"}],
                    "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
                    "securityContext": container_security,
                    "volumeMounts": mounts,
                }
            ]
        if self._args.get("node_selector") is not None:
            spec["nodeSelector"] = self._args.get("node_selector")
        if self._args.get("tolerations") is not None:
            spec["tolerations"] = self._args.get("tolerations")
        return spec

    def _replica_ready_seconds(self) -> int:
        """The longest a single replica may take from scheduling to ready."""
        return (
            NODE_LAUNCH_SECONDS
            + IMAGE_PULL_SECONDS
            + (ARTIFACT_COPY_SECONDS if self._model.artifact_bucket and not self._artifact_claims else 0)
            + self._model.probes.startup_seconds
        )

    def _rollout_seconds(self, replicas: int) -> int:
        """How long Pulumi may await a rollout: replicas are replaced one at a time (maxSurge 1,
        maxUnavailable 0), each taking up to a replica's ready time."""
        return self._replica_ready_seconds() * max(1, replicas) + 120

    def _deployment(
        self,
        name: str,
        track: str,
        version: str,
        image: pulumi.Input[str],
        replicas: int | None,
        account: k8s.core.v1.ServiceAccount,
        artifact_prefix: str,
    ) -> k8s.apps.v1.Deployment:
        labels = {
            **standard_labels(self._name, self._args["environment"], self._args["cost_owner"], version, "model-server"),
            TRACK_LABEL: track,
        }
        spec = {
            "selector": {"matchLabels": {"app.kubernetes.io/name": self._name, TRACK_LABEL: track}},
            # Never below capacity during a rollout: a new replica is ready before an old one goes.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "revisionHistoryLimit": 5,
            # Kubernetes' default (600 s) marks a Deployment failed before one GPU replica can be ready,
            # and the provider's await gives up on that condition.
            "progressDeadlineSeconds": self._replica_ready_seconds() + 60,
            "template": {
                "metadata": {"labels": labels},
                "spec": self._pod_spec(version, image, account, artifact_prefix),
            },
        }
        metadata: dict[str, Any] = {"name": name, "namespace": self._model.namespace, "labels": labels}
        if replicas is not None:  # the stable track's replicas belong to its autoscaler
            spec["replicas"] = replicas
            # A canary whose model moved from KEDA to an HPA takes its replicas back from KEDA, which set them last:
            # without force, server-side apply refuses the change as a conflict (pulumi/pulumi-kubernetes#2491).
            metadata["annotations"] = {PATCH_FORCE_ANNOTATION: "true"}
        # The provider awaits a rollout for 10 minutes by default: a GPU model's takes longer.
        rollout = f"{self._rollout_seconds(replicas if replicas is not None else self._args['max_replicas'])}s"
        return k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata,
            spec=spec,
            opts=pulumi.ResourceOptions(
                parent=self,
                custom_timeouts=pulumi.CustomTimeouts(create=rollout, update=rollout),
                depends_on=self._weights_access.get(version, []),
            ),
        )

    def _disruption_budget(self, resource_name: str, name: str, track: str, labels: dict[str, str]) -> None:
        k8s.policy.v1.PodDisruptionBudget(
            resource_name,
            metadata={"name": name, "namespace": self._model.namespace, "labels": labels},
            # One replica at a time may be evicted: node drains proceed, capacity never collapses.
            spec={
                "maxUnavailable": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": self._name, TRACK_LABEL: track}},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _keda_triggers(self, desired_in_hours: int) -> list[dict[str, Any]]:
        """The Prometheus trigger, and with `activeHours` KEDA's cron trigger: `desired_in_hours` replicas within
        the hours (KEDA is active while any trigger is), so a scaled-to-zero model is up before the day's first
        request, whatever its query reads."""
        query = {
            "serverAddress": self._model.autoscaling.prometheus_address,
            "query": self._model.keda_query(self._name),
            "threshold": self._model.keda_threshold(),
        }
        if self._args["min_replicas"] == 0:
            # scale to zero: KEDA wakes the model when the query passes the activation threshold
            query["activationThreshold"] = self._model.autoscaling.activation_threshold
        triggers = [{"type": "prometheus", "metadata": query}]
        hours = self._model.autoscaling.active_hours
        if hours is not None:
            cron = {"timezone": hours.timezone, "start": hours.start, "end": hours.end}
            triggers.append({"type": "cron", "metadata": {**cron, "desiredReplicas": str(desired_in_hours)}})
        return triggers

    def _scaled_object(
        self, object_name: str, target: Any, low: int, high: int, desired_in_hours: int, labels: dict[str, str]
    ) -> dict[str, Any]:
        """A KEDA ScaledObject's metadata and spec for one track (`target`: its Deployment's name)."""
        annotations = {}
        if low == 0:
            # the first request after idle waits for a node, the image pull, the artifact copy and the load
            annotations[COLD_START_ANNOTATION] = str(self._replica_ready_seconds())
        return {
            "metadata": {
                "name": object_name,
                "namespace": self._model.namespace,
                "labels": labels,
                **({"annotations": annotations} if annotations else {}),
            },
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                "minReplicaCount": low,
                "maxReplicaCount": high,
                "cooldownPeriod": 300,
                # KEDA scales through an HPA of its own: give it the same slow scale-down
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": SCALE_DOWN}}},
                "triggers": self._keda_triggers(desired_in_hours),
            },
        }

    @property
    def _scales_with_keda(self) -> bool:
        return bool(self._model.keda_query(self._name))

    def _canary_scaler(self, name: str, canary_replicas: int) -> None:
        """The canary's replicas when the model scales with KEDA. With the model at zero, the canary sleeps and
        wakes with it (the same triggers, up to its replica count): fixed replicas would hold their GPUs all night,
        and take the canary's share of traffic alone. Otherwise KEDA holds it at its count
        (`autoscaling.keda.sh/paused-replicas`: KEDA scales the target to it, stops its scale loop and deletes its
        HPA; https://keda.sh/docs/2.21/concepts/scaling-deployments/#pause-autoscaling), 0 at weight 0. Setting
        `spec.replicas` here instead would conflict, under server-side apply, with the manager that scaled it last
        (pulumi/pulumi-kubernetes#2491, #2569)."""
        labels = standard_labels(
            name, self._args["environment"], self._args["cost_owner"], self._canary_version, "autoscaler"
        )
        canary = f"{name}-canary"
        if self._args["min_replicas"] == 0 and canary_replicas > 0:
            scaled = self._scaled_object(canary, canary, 0, canary_replicas, canary_replicas, labels)
        else:
            # bounds and triggers stay valid for KEDA's webhook while paused (it checks them all the same)
            held = max(1, canary_replicas)
            scaled = self._scaled_object(canary, canary, held, held, held, labels)
            scaled["metadata"]["annotations"] = {PAUSED_REPLICAS_ANNOTATION: str(canary_replicas)}
        k8s.apiextensions.CustomResource(
            f"{name}-canary-keda",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            **scaled,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _autoscaler(self, name: str, deployment: k8s.apps.v1.Deployment) -> None:
        labels = standard_labels(
            name, self._args["environment"], self._args["cost_owner"], self._model.version, "autoscaler"
        )
        target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment.metadata.name}
        if self._model.keda_query(name):  # the stack's query, or a GPU runtime's engine signal
            low = self._args["min_replicas"]
            if low == 0:
                pulumi.log.info(
                    f"model {name} scales to zero when idle: the first request after that waits up to "
                    f"~{self._replica_ready_seconds() // 60} min (node launch, image pull, artifact copy, model load)",
                    resource=self,
                )
            scaled = self._scaled_object(
                name, deployment.metadata.name, low, self._args["max_replicas"], max(1, low), labels
            )
            if low == 0:
                # Switched to an HPA while asleep, the model would stay at zero: the HPA controller does nothing for
                # a target at 0 replicas ("ScalingDisabled"). KEDA's finalizer puts back the replicas the Deployment
                # had before KEDA took it over (1, the default) when this ScaledObject goes.
                scaled["spec"]["advanced"]["restoreToOriginalReplicaCount"] = True
            k8s.apiextensions.CustomResource(
                f"{name}-scaler",
                api_version="keda.sh/v1alpha1",
                kind="ScaledObject",
                **scaled,
                opts=self._autoscaler_options(name, HPA_TYPE),
            )
            return
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata={"name": name, "namespace": self._model.namespace, "labels": labels},
            spec={
                "scaleTargetRef": target,
                "minReplicas": self._args["min_replicas"],
                "maxReplicas": self._args["max_replicas"],
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "averageUtilization": self._model.autoscaling.target_cpu_utilization,
                            },
                        },
                    }
                ],
                "behavior": {"scaleDown": SCALE_DOWN},
            },
            opts=self._autoscaler_options(name, SCALED_OBJECT_TYPE),
        )

    def _autoscaler_options(self, name: str, other_type: str) -> pulumi.ResourceOptions:
        """A switch between the HPA and KEDA is one replacement, the old autoscaler deleted first. As two
        resources, Pulumi would create the ScaledObject before deleting the HPA, and KEDA's admission webhook
        refuses a ScaledObject for a Deployment an HPA still scales. The alias makes the other kind this
        resource's past; the provider sees only a changed `kind` (an in-place update to it, which would
        leave the old object behind), hence replaceOnChanges."""
        other = f"{name}-hpa" if other_type == HPA_TYPE else f"{name}-scaler"
        return pulumi.ResourceOptions(
            parent=self,
            aliases=[pulumi.Alias(name=other, type_=other_type)],
            replace_on_changes=["kind", "apiVersion"],
            delete_before_replace=True,
        )

    def _canary_replicas(self) -> int:
        """0 at weight 0 (the roll-back stops the canary's pods too). Through a gateway, at least 2: the
        route sends the canary its share whatever its size, and with one replica every node drain (the
        PDB allows one eviction) would leave that share without a backend. By replica ratio, the share
        of the stable replicas' count the weight asks for."""
        if self._canary_weight == 0:
            return 0
        by_ratio = max(1, math.ceil(self._args["max_replicas"] * self._canary_weight / 100))
        return max(2, by_ratio) if self._gateway else by_ratio

    def _route(self, name: str, labels: dict[str, str], port: list[dict], tracks: list[k8s.apps.v1.Deployment]) -> None:
        backends = [
            (
                name if self._canary_version is None else f"{name}-stable",
                "stable",
                100 - self._canary_weight if self._canary_version else 100,
            )
        ]
        if self._canary_version is not None:
            backends.append((f"{name}-canary", "canary", self._canary_weight))
            for service_name, track, _ in backends:
                k8s.core.v1.Service(
                    f"{service_name}-svc",
                    metadata={"name": service_name, "namespace": self._model.namespace, "labels": labels},
                    spec={
                        "type": "ClusterIP",
                        "ports": port,
                        "selector": {"app.kubernetes.io/name": name, TRACK_LABEL: track},
                    },
                    opts=pulumi.ResourceOptions(parent=self),
                )
        gateway = self._gateway
        assert gateway is not None, "a route is made only through a gateway"
        route: dict[str, Any] = {
            "parentRefs": [{"name": gateway.name, "namespace": gateway.namespace}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": f"/{name}"}}],
                    "filters": [
                        {
                            "type": "URLRewrite",
                            "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
                        }
                    ],
                    "backendRefs": self._backend_refs(labels, [(service, weight) for service, _, weight in backends]),
                }
            ],
        }
        if gateway.hostname:
            route["hostnames"] = [gateway.hostname]
        route_resource = k8s.apiextensions.CustomResource(
            f"{name}-route",
            api_version="gateway.networking.k8s.io/v1",
            kind="HTTPRoute",
            metadata={
                "name": name,
                "namespace": self._model.namespace,
                "labels": labels,
                # `up` succeeds only once the Gateway has admitted the route and resolved its backends: a route the
                # Gateway does not allow (a listener's allowedRoutes, hostnames) is never an `up` that reports
                # success while every request gets a 404 (Gateway API: HTTPRoute status.parents[].conditions)
                "annotations": {WAIT_FOR_ANNOTATION: json.dumps(ROUTE_ADMITTED)},
            },
            spec=route,
            # The split changes only once every track's rollout is available (Pulumi awaits each
            # Deployment): no traffic reaches a canary that is not ready.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=tracks,
                custom_timeouts=pulumi.CustomTimeouts(create=ROUTE_ADMISSION_WAIT, update=ROUTE_ADMISSION_WAIT),
            ),
        )
        if "fallback_backend" in self._args:
            timeout = self._model.serverless.timeout_seconds
            failover_traffic_policy(self, route_resource, name, self._model.namespace, labels, timeout)

    def _backend_refs(self, labels: dict[str, str], tracks: list[tuple[str, int]]) -> list[dict[str, Any]]:
        """The tracks' Services, or with a gateway fallback the tracks and the fallback as Envoy Gateway Backends."""
        fallback = self._args.get("fallback_backend")
        if fallback is None:
            return [{"name": service, "port": 80, "weight": weight} for service, weight in tracks]
        return failover_backend_refs(self, self._model.namespace, labels, tracks, fallback)

    def _dashboard(self, name: str, labels: dict[str, str]) -> None:
        sel, by = self._model.series_selector(name), TRACK_SERIES_LABEL
        alerting = self._model.preset.alerting
        panels = [
            ("Requests per second", alerting.request_rate.format(sel=sel, by=by), "reqps"),
            *((latency.what.capitalize(), latency.seconds.format(sel=sel, by=by), "s") for latency in alerting.latency),
            ("Error ratio", alerting.error_ratio.format(sel=sel, by=by), "percentunit"),
            *([("Queue", alerting.queue.format(sel=sel, by=by), "short")] if alerting.queue else []),
            ("Replicas wanted", self._replicas_series("kube_deployment_spec_replicas", name), "short"),
            ("Replicas available", self._replicas_series("kube_deployment_status_replicas_available", name), "short"),
        ]
        board = dashboard(dashboard_uid(self._model.namespace, name), f"modelops · model {name}", panels)
        dashboard_config_map(
            f"{name}-dashboard", f"model-{self._model.namespace}-{name}", board, self._cluster, labels, self
        )

    def _replicas_series(self, metric: str, name: str) -> str:
        """A kube-state-metrics Deployment gauge for each of the model's tracks (deduplicated: an HA
        kube-state-metrics exports every series twice)."""
        deployments = "|".join([name, *([f"{name}-canary"] if self._canary_version is not None else [])])
        return (
            f'max by (namespace, deployment) ({metric}{{namespace="{self._model.namespace}",'
            f'deployment=~"{deployments}"}})'
        )

    def _alerts(self, name: str, labels: dict[str, str]) -> None:
        """Latency and errors per track (the canary is judged alone: at 10% of the traffic, its errors would
        hide in the model's total), and availability per Deployment: `ModelUnavailable` fires only while
        replicas are wanted (kube-state-metrics' spec replicas, which the HPA or KEDA sets) and none is
        available, so a model asleep at zero on purpose never pages; waking it may take its cold start."""
        sel, by = self._model.series_selector(name), TRACK_SERIES_LABEL
        alerting = self._model.preset.alerting
        track = f"{{{{ $labels.{by} }}}}"
        rules: list[dict[str, Any]] = [
            {
                "alert": latency.alert,
                "expr": f"{latency.seconds.format(sel=sel, by=by)} > {latency.threshold_seconds:g}",
                "for": "10m",
                "labels": {"severity": "warning", "model": name},
                "annotations": {
                    "summary": f"{name}: {latency.what} above {latency.threshold_seconds:g}s on the {track} track "
                    "for 10 minutes"
                },
            }
            for latency in alerting.latency
        ]
        asleep_allowed = self._args["min_replicas"] == 0
        rules += [
            {
                "alert": "ModelHighErrorRate",
                "expr": f"{alerting.error_ratio.format(sel=sel, by=by)} > 0.05",
                "for": "5m",
                "labels": {"severity": "critical", "model": name},
                "annotations": {"summary": f"{name}: more than 5% of requests fail on the {track} track"},
            },
            {
                "alert": "ModelUnavailable",
                "expr": f"{self._replicas_series('kube_deployment_spec_replicas', name)} > 0 "
                f"and on (namespace, deployment) "
                f"{self._replicas_series('kube_deployment_status_replicas_available', name)} < 1",
                # a model woken from zero is unavailable until its first replica is ready: not an outage
                "for": f"{math.ceil(self._replica_ready_seconds() / 60)}m" if asleep_allowed else "2m",
                "labels": {"severity": "critical", "model": name},
                "annotations": {
                    "summary": f"{name}: {{{{ $labels.deployment }}}} wants {{{{ $value }}}} replica(s) and has "
                    "none available"
                },
            },
        ]
        k8s.apiextensions.CustomResource(
            f"{name}-alerts",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={
                "name": name,
                "namespace": self._model.namespace,
                "labels": {**labels, **self._cluster.prometheus_labels},
            },
            spec={"groups": [{"name": f"modelops.{name}", "rules": rules}]},
            opts=pulumi.ResourceOptions(parent=self),
        )


def artifact_read_policy(partition: str, bucket: str, prefix: str, *more_prefixes: str) -> dict:
    """Read-only access to artifact prefixes (the stable version's, and the canary's when there is one):
    get their objects and list under them, nothing else. ARNs in the account's partition (aws, aws-cn,
    aws-us-gov)."""
    prefixes = [prefix, *more_prefixes]
    if not all(prefixes):
        return {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:{partition}:s3:::{bucket}/*"},
                {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:{partition}:s3:::{bucket}"},
            ],
        }
    keys = [f"arn:{partition}:s3:::{bucket}/{p}/*" for p in prefixes]
    # `chat/1/*`, never the bare `chat/1`, which would list `chat/10/…` too; `aws s3 sync` and Mountpoint list
    # with the trailing `/` (`prefix chat/1/`), which `*` matches empty
    listed = [f"{p}/*" for p in prefixes]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": keys[0] if len(keys) == 1 else keys},
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:{partition}:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": listed}},
            },
        ],
    }
