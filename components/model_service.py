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
from typing import Any, NamedTuple, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from .cluster_inputs import cluster_settings, required_cluster_input
from .common import as_model, dashboard_uid, type_token
from .config import ClusterConfig, Environment, ModelConfig
from .contracts import (
    COLD_START_ANNOTATION,
    NAME_LABEL,
    PATCH_FORCE_ANNOTATION,
    PAUSED_REPLICAS_ANNOTATION,
    ROLE_ARN_ANNOTATION,
    SCRAPE_LABEL,
    TRACK_LABEL,
    WAIT_FOR_ANNOTATION,
    WEIGHTS_DIGEST_ANNOTATION,
)
from .dashboards import dashboard, dashboard_config_map
from .gateway_fallback import failover_backend_refs, failover_traffic_policy
from .gpu_catalogue import memory_gib
from .model_tracks import ModelScope, Track, TrackName, model_tracks
from .model_weights import (
    Weights,
    WeightsAccess,
    artifact_read_policy,
    provide_weights,
    service_account_role,
    weights_access,
)
from .pod_spec import PodPlacement, pod_spec
from .weights_manifest import WeightsManifest, parse_manifest

__all__ = ["ModelService", "ModelServiceArgs", "artifact_read_policy"]
"""`artifact_read_policy` (model_weights.py) stays importable from here: the serverless fallback grants with it."""

TRACK_SERIES_LABEL = "modelops_track"
"""The track label on every scraped series: the ServiceMonitor copies the pods' TRACK_LABEL onto their targets
(`podTargetLabels`; the Prometheus Operator sanitizes the name to a Prometheus label)."""
ROUTE_ADMITTED = [
    'jsonpath={.status.parents[*].conditions[?(@.type=="Accepted")].status}=True',
    'jsonpath={.status.parents[*].conditions[?(@.type=="ResolvedRefs")].status}=True',
]
"""What the Kubernetes provider awaits on a route (JSONPath as `kubectl wait --for=jsonpath`): its Gateway's verdict."""
ROUTE_ADMISSION_WAIT = "5m"
"""A Gateway implementation admits a route in seconds; a route it refuses fails `up` after this long."""
# What a replica waits for before it can serve, besides its own start-up: a node launched for it
# (Karpenter: instance start and join, a few minutes for GPU AMIs), a multi-GB image pull on a fresh
# node, the artifact copy of the init container. Generous on purpose: the await fails an `up` that is
# only slow, and the deadline marks the Deployment failed if no replica becomes available in time.
NODE_LAUNCH_SECONDS = 300
IMAGE_PULL_SECONDS = 600
ARTIFACT_COPY_SECONDS = 300
CHECK_MIB_PER_SECOND = 200
"""SHA-256 at half a core (the fetch container's request): about 400 MiB/s a core on current x86 and Graviton."""
# Scale down slowly: a replica that goes takes a loaded model with it.
SCALE_DOWN = {"stabilizationWindowSeconds": 600, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]}
HPA_TYPE = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT_TYPE = "kubernetes:keda.sh/v1alpha1:ScaledObject"


class KedaReplicas(NamedTuple):
    """A ScaledObject's bounds, and the count its cron trigger asks for within the model's active hours."""

    low: int
    high: int
    in_hours: int


class ModelServiceArgs(TypedDict):
    """A model served from Kubernetes: the model and cluster as the stack schema declares them (defaults and
    bounds live there), and what the composition resolves (images, the replica range, the pool)."""

    model: ModelConfig
    """The model: version, namespace, port, GPUs, resources, probes, autoscaling, artifact, canary, env."""
    cluster: ClusterConfig
    """The cluster: OIDC provider, ingress and monitoring namespaces, Prometheus labels, gateway."""
    oidc_provider_arn: NotRequired[pulumi.Input[str]]
    """The cluster's IAM OIDC provider as another resource or stack gives it (an EKS cluster's), over
    `cluster.oidcProviderArn`: the service-account role trusts it (needed when the artifact is in S3)."""
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
    provenance: NotRequired[dict[str, dict[str, str]]]
    """By track (`stable`, `canary`), annotations saying where its weights came from (a registered model version:
    components/contracts.py REGISTRY_ANNOTATIONS), on its Deployment and its pods."""
    weights_manifests: NotRequired[dict[str, dict[str, str]]]
    """By track (`stable`, `canary`), the files its weights are pinned to, `{path: sha256 hex}`
    (components/weights_manifest.py): its pods check them before the server starts and carry their digest."""
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
        # Hosted for another language, the component receives plain dicts: the schema's models validate
        # them (defaults, bounds) exactly as they validate a stack file.
        model = as_model(ModelConfig, args["model"])
        self._scope = scope = ModelScope(
            name=name,
            model=model,
            cluster=cluster_settings(args["cluster"]),
            environment=args["environment"],
            cost_owner=args["cost_owner"],
            min_replicas=args["min_replicas"],
            max_replicas=args["max_replicas"],
            parent=self,
        )
        self._fallback_backend = args.get("fallback_backend")
        self._manifests = {track: parse_manifest(files) for track, files in args.get("weights_manifests", {}).items()}
        self._provenance = _with_weights_digest(args.get("provenance", {}), self._manifests)
        # The two decisions every object below is built from: which tracks run, and where their weights come from.
        self._tracks = model_tracks(scope, args["image"], args.get("canary_image"))
        self._access = weights_access(model)
        labels = scope.labels(model.version, "model-server")
        role = (
            service_account_role(
                scope,
                required_cluster_input(args, scope.cluster, "oidc_provider_arn", f"ModelService {name}"),
                args.get("tags", {}),
            )
            if self._access is not WeightsAccess.NONE
            else None
        )
        account = self._service_account(role, labels)
        weights = [
            provide_weights(scope, self._access, role, track, self._manifests.get(track.track))
            for track in self._tracks
        ]
        env_secret = self._secret_env(labels) if args.get("env_is_secret", False) and model.env else None
        placement = PodPlacement(
            service_account=account.metadata.name,
            env_secret=env_secret.metadata.name if env_secret is not None else None,
            node_selector=args.get("node_selector"),
            tolerations=args.get("tolerations"),
        )
        deployments = [self._track(track, placement, w, labels) for track, w in zip(self._tracks, weights, strict=True)]
        service = self._services(labels, deployments)
        self._network_policy(labels)
        self._monitor(labels, service)
        self._alerts(labels)
        self._dashboard(labels)

        gateway = scope.cluster.gateway
        if gateway and gateway.hostname:
            self.endpoint = pulumi.Output.from_input(f"https://{gateway.hostname}/{name}")
        else:
            self.endpoint = pulumi.Output.from_input(f"http://{name}.{model.namespace}.svc.cluster.local")
        self.service_name = service.metadata.name
        self.role_arn = role.arn if role else pulumi.Output.from_input(None)
        self.register_outputs({"endpoint": self.endpoint, "service_name": self.service_name, "role_arn": self.role_arn})

    def _service_account(self, role: aws.iam.Role | None, labels: dict[str, str]) -> k8s.core.v1.ServiceAccount:
        scope = self._scope
        return k8s.core.v1.ServiceAccount(
            f"{scope.name}-sa",
            metadata={
                "name": scope.name,
                "namespace": scope.model.namespace,
                "labels": labels,
                "annotations": {ROLE_ARN_ANNOTATION: role.arn} if role else {},
            },
            automount_service_account_token=False,
            opts=scope.child(),
        )

    def _secret_env(self, labels: dict[str, str]) -> k8s.core.v1.Secret:
        scope = self._scope
        return k8s.core.v1.Secret(
            f"{scope.name}-env",
            metadata={"name": f"{scope.name}-env", "namespace": scope.model.namespace, "labels": labels},
            type="Opaque",
            string_data={k: pulumi.Output.secret(v) for k, v in scope.model.env.items()},
            opts=scope.child(),
        )

    def _track(
        self, track: Track, placement: PodPlacement, weights: Weights, labels: dict[str, str]
    ) -> k8s.apps.v1.Deployment:
        """A track's Deployment, its disruption budget while it runs pods, and what scales it."""
        deployment = self._deployment(track, placement, weights)
        if track.replicas != 0:
            self._disruption_budget(track, labels)
        if track.track is TrackName.STABLE:
            self._autoscaler(deployment)
        elif not track.sets_replicas:
            self._canary_scaler(track)
        return deployment

    def _deployment(self, track: Track, placement: PodPlacement, weights: Weights) -> k8s.apps.v1.Deployment:
        scope = self._scope
        labels = {**scope.labels(track.version, "model-server"), TRACK_LABEL: track.track}
        provenance = self._provenance.get(track.track)
        template_metadata: dict[str, Any] = {"labels": labels}
        if provenance:  # what `kubectl describe` shows of a pod's weights
            template_metadata["annotations"] = dict(provenance)
        spec = {
            "selector": {"matchLabels": {NAME_LABEL: scope.name, TRACK_LABEL: track.track}},
            # Never below capacity during a rollout: a new replica is ready before an old one goes.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "revisionHistoryLimit": 5,
            # Kubernetes' default (600 s) marks a Deployment failed before one GPU replica can be ready,
            # and the provider's await gives up on that condition.
            "progressDeadlineSeconds": self._replica_ready_seconds() + 60,
            "template": {"metadata": template_metadata, "spec": pod_spec(scope, placement, track, weights)},
        }
        metadata: dict[str, Any] = {"name": track.name, "namespace": scope.model.namespace, "labels": labels}
        if provenance:
            metadata["annotations"] = dict(provenance)
        replicas = track.spec_replicas
        if replicas is not None:  # else they belong to an autoscaler
            spec["replicas"] = replicas
            # A canary whose model moved from KEDA to an HPA takes its replicas back from KEDA, which set them last:
            # without force, server-side apply refuses the change as a conflict (pulumi/pulumi-kubernetes#2491).
            metadata["annotations"] = {**metadata.get("annotations", {}), PATCH_FORCE_ANNOTATION: "true"}
        # The provider awaits a rollout for 10 minutes by default: a GPU model's takes longer.
        rollout = f"{self._rollout_seconds(replicas if replicas is not None else scope.max_replicas)}s"
        return k8s.apps.v1.Deployment(
            f"{track.name}-deployment",
            metadata=metadata,
            spec=spec,
            opts=scope.child(
                custom_timeouts=pulumi.CustomTimeouts(create=rollout, update=rollout),
                depends_on=list(weights.needs),
            ),
        )

    def _replica_ready_seconds(self) -> int:
        """The longest a single replica may take from scheduling to ready."""
        return (
            NODE_LAUNCH_SECONDS
            + IMAGE_PULL_SECONDS
            + (ARTIFACT_COPY_SECONDS if self._access is WeightsAccess.COPY else 0)
            + (self._check_seconds() if self._manifests else 0)
            + self._scope.model.probes.startup_seconds
        )

    def _check_seconds(self) -> int:
        """Reading every pinned byte once more before the server starts, at the init container's half core, for
        weights as large as the model's scratch volume (the only size the stack gives)."""
        return math.ceil(memory_gib(self._scope.model.resources.scratch) * 1024 / CHECK_MIB_PER_SECOND)

    def _rollout_seconds(self, replicas: int) -> int:
        """How long Pulumi may await a rollout: replicas are replaced one at a time (maxSurge 1,
        maxUnavailable 0), each taking up to a replica's ready time."""
        return self._replica_ready_seconds() * max(1, replicas) + 120

    def _disruption_budget(self, track: Track, labels: dict[str, str]) -> None:
        scope = self._scope
        k8s.policy.v1.PodDisruptionBudget(
            f"{track.name}-pdb",
            metadata={"name": track.name, "namespace": scope.model.namespace, "labels": labels},
            # One replica at a time may be evicted: node drains proceed, capacity never collapses.
            spec={"maxUnavailable": 1, "selector": {"matchLabels": {NAME_LABEL: scope.name, TRACK_LABEL: track.track}}},
            opts=scope.child(),
        )

    def _keda_triggers(self, desired_in_hours: int) -> list[dict[str, Any]]:
        """The Prometheus trigger, and with `activeHours` KEDA's cron trigger: `desired_in_hours` replicas within
        the hours (KEDA is active while any trigger is), so a scaled-to-zero model is up before the day's first
        request, whatever its query reads."""
        model = self._scope.model
        query = {
            "serverAddress": model.autoscaling.prometheus_address,
            "query": model.keda_query(self._scope.name),
            "threshold": model.keda_threshold(),
        }
        if self._scope.min_replicas == 0:
            # scale to zero: KEDA wakes the model when the query passes the activation threshold
            query["activationThreshold"] = model.autoscaling.activation_threshold
        triggers = [{"type": "prometheus", "metadata": query}]
        hours = model.autoscaling.active_hours
        if hours is not None:
            cron = {"timezone": hours.timezone, "start": hours.start, "end": hours.end}
            triggers.append({"type": "cron", "metadata": {**cron, "desiredReplicas": str(desired_in_hours)}})
        return triggers

    def _scaled_object(
        self, object_name: str, target: Any, replicas: KedaReplicas, labels: dict[str, str]
    ) -> dict[str, Any]:
        """A KEDA ScaledObject's metadata and spec for one track (`target`: its Deployment's name)."""
        annotations = {}
        if replicas.low == 0:
            # the first request after idle waits for a node, the image pull, the artifact copy and the load
            annotations[COLD_START_ANNOTATION] = str(self._replica_ready_seconds())
        return {
            "metadata": {
                "name": object_name,
                "namespace": self._scope.model.namespace,
                "labels": labels,
                **({"annotations": annotations} if annotations else {}),
            },
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                "minReplicaCount": replicas.low,
                "maxReplicaCount": replicas.high,
                "cooldownPeriod": 300,
                # KEDA scales through an HPA of its own: give it the same slow scale-down
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": SCALE_DOWN}}},
                "triggers": self._keda_triggers(replicas.in_hours),
            },
        }

    def _canary_scaler(self, canary: Track) -> None:
        """The canary's replicas when the model scales with KEDA. With the model at zero, the canary sleeps and
        wakes with it (the same triggers, up to its replica count): fixed replicas would hold their GPUs all night,
        and take the canary's share of traffic alone. Otherwise KEDA holds it at its count
        (`autoscaling.keda.sh/paused-replicas`: KEDA scales the target to it, stops its scale loop and deletes its
        HPA; https://keda.sh/docs/2.21/concepts/scaling-deployments/#pause-autoscaling), 0 at weight 0. Setting
        `spec.replicas` here instead would conflict, under server-side apply, with the manager that scaled it last
        (pulumi/pulumi-kubernetes#2491, #2569)."""
        scope = self._scope
        labels = scope.labels(canary.version, "autoscaler")
        count = canary.replicas or 0
        if scope.min_replicas == 0 and count > 0:
            scaled = self._scaled_object(canary.name, canary.name, KedaReplicas(0, count, count), labels)
        else:
            # bounds and triggers stay valid for KEDA's webhook while paused (it checks them all the same)
            held = max(1, count)
            scaled = self._scaled_object(canary.name, canary.name, KedaReplicas(held, held, held), labels)
            scaled["metadata"]["annotations"] = {PAUSED_REPLICAS_ANNOTATION: str(count)}
        k8s.apiextensions.CustomResource(
            f"{scope.name}-canary-keda",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            **scaled,
            opts=scope.child(),
        )

    def _autoscaler(self, deployment: k8s.apps.v1.Deployment) -> None:
        """The stable track's: KEDA on the model's query (or its runtime's engine signal), else an HPA on CPU."""
        labels = self._scope.labels(self._scope.model.version, "autoscaler")
        if self._scope.scales_with_keda:
            self._keda_autoscaler(deployment, labels)
        else:
            self._cpu_autoscaler(deployment, labels)

    def _keda_autoscaler(self, deployment: k8s.apps.v1.Deployment, labels: dict[str, str]) -> None:
        scope = self._scope
        low = scope.min_replicas
        if low == 0:
            pulumi.log.info(
                f"model {scope.name} scales to zero when idle: the first request after that waits up to "
                f"~{self._replica_ready_seconds() // 60} min (node launch, image pull, artifact copy, model load)",
                resource=self,
            )
        replicas = KedaReplicas(low, scope.max_replicas, max(1, low))
        scaled = self._scaled_object(scope.name, deployment.metadata.name, replicas, labels)
        if low == 0:
            # Switched to an HPA while asleep, the model would stay at zero: the HPA controller does nothing for
            # a target at 0 replicas ("ScalingDisabled"). KEDA's finalizer puts back the replicas the Deployment
            # had before KEDA took it over (1, the default) when this ScaledObject goes.
            scaled["spec"]["advanced"]["restoreToOriginalReplicaCount"] = True
        k8s.apiextensions.CustomResource(
            f"{scope.name}-scaler",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            **scaled,
            opts=self._autoscaler_options(HPA_TYPE),
        )

    def _cpu_autoscaler(self, deployment: k8s.apps.v1.Deployment, labels: dict[str, str]) -> None:
        scope = self._scope
        utilization = {"type": "Utilization", "averageUtilization": scope.model.autoscaling.target_cpu_utilization}
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{scope.name}-hpa",
            metadata={"name": scope.name, "namespace": scope.model.namespace, "labels": labels},
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment.metadata.name},
                "minReplicas": scope.min_replicas,
                "maxReplicas": scope.max_replicas,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": utilization}}],
                "behavior": {"scaleDown": SCALE_DOWN},
            },
            opts=self._autoscaler_options(SCALED_OBJECT_TYPE),
        )

    def _autoscaler_options(self, other_type: str) -> pulumi.ResourceOptions:
        """A switch between the HPA and KEDA is one replacement, the old autoscaler deleted first. As two
        resources, Pulumi would create the ScaledObject before deleting the HPA, and KEDA's admission webhook
        refuses a ScaledObject for a Deployment an HPA still scales. The alias makes the other kind this
        resource's past; the provider sees only a changed `kind` (an in-place update to it, which would
        leave the old object behind), hence replaceOnChanges."""
        name = self._scope.name
        other = f"{name}-hpa" if other_type == HPA_TYPE else f"{name}-scaler"
        return self._scope.child(
            aliases=[pulumi.Alias(name=other, type_=other_type)],
            replace_on_changes=["kind", "apiVersion"],
            delete_before_replace=True,
        )

    def _services(self, labels: dict[str, str], deployments: list[k8s.apps.v1.Deployment]) -> k8s.core.v1.Service:
        """The model's Service (both tracks; the one scraped) and, through a gateway, each track's and the route."""
        scope = self._scope
        port = [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
        metrics_port = scope.model.preset.metrics_port
        # a runtime that serves /metrics on a port of its own (Triton's 8002) is scraped there
        scraped = (
            [{"name": "metrics", "port": metrics_port, "targetPort": "metrics", "protocol": "TCP"}]
            if metrics_port
            else []
        )
        service = k8s.core.v1.Service(
            f"{scope.name}-svc",
            # the one Service scraped: the per-track Services select the same pods (scraped twice otherwise)
            metadata={
                "name": scope.name,
                "namespace": scope.model.namespace,
                "labels": {**labels, SCRAPE_LABEL: "true"},
            },
            spec={"type": "ClusterIP", "selector": {NAME_LABEL: scope.name}, "ports": port + scraped},
            opts=scope.child(),
        )
        if scope.cluster.gateway:
            if len(self._tracks) > 1:
                self._track_services(labels, port)
            self._route(labels, deployments)
        elif len(self._tracks) > 1:
            canary = self._tracks[1]
            pulumi.log.warn(
                f"model {scope.name}: no gateway configured, so the {canary.weight}% canary split is approximate: "
                f"{canary.replicas} canary replica(s) beside {scope.min_replicas}-{scope.max_replicas} stable ones "
                "share one Service. Set modelops:cluster.gateway for an exact split.",
                resource=self,
            )
        return service

    def _track_services(self, labels: dict[str, str], port: list[dict]) -> None:
        """One Service per track: the backends the route splits the traffic between."""
        scope = self._scope
        for track in self._tracks:
            k8s.core.v1.Service(
                f"{track.service}-svc",
                metadata={"name": track.service, "namespace": scope.model.namespace, "labels": labels},
                spec={
                    "type": "ClusterIP",
                    "ports": port,
                    "selector": {NAME_LABEL: scope.name, TRACK_LABEL: track.track},
                },
                opts=scope.child(),
            )

    def _route(self, labels: dict[str, str], deployments: list[k8s.apps.v1.Deployment]) -> None:
        scope = self._scope
        gateway = scope.cluster.gateway
        assert gateway is not None, "a route is made only through a gateway"
        route: dict[str, Any] = {
            "parentRefs": [{"name": gateway.name, "namespace": gateway.namespace}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": f"/{scope.name}"}}],
                    "filters": [
                        {
                            "type": "URLRewrite",
                            "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
                        }
                    ],
                    "backendRefs": self._backend_refs(labels),
                }
            ],
        }
        if gateway.hostname:
            route["hostnames"] = [gateway.hostname]
        route_resource = k8s.apiextensions.CustomResource(
            f"{scope.name}-route",
            api_version="gateway.networking.k8s.io/v1",
            kind="HTTPRoute",
            metadata={
                "name": scope.name,
                "namespace": scope.model.namespace,
                "labels": labels,
                # `up` succeeds only once the Gateway has admitted the route and resolved its backends: a route the
                # Gateway does not allow (a listener's allowedRoutes, hostnames) is never an `up` that reports
                # success while every request gets a 404 (Gateway API: HTTPRoute status.parents[].conditions)
                "annotations": {WAIT_FOR_ANNOTATION: json.dumps(ROUTE_ADMITTED)},
            },
            spec=route,
            # The split changes only once every track's rollout is available (Pulumi awaits each
            # Deployment): no traffic reaches a canary that is not ready.
            opts=scope.child(
                depends_on=deployments,
                custom_timeouts=pulumi.CustomTimeouts(create=ROUTE_ADMISSION_WAIT, update=ROUTE_ADMISSION_WAIT),
            ),
        )
        if self._fallback_backend is not None:
            failover_traffic_policy(scope, route_resource, labels)

    def _backend_refs(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """The tracks' Services, or with a gateway fallback the tracks and the fallback as Envoy Gateway Backends."""
        tracks = [(t.service, t.weight) for t in self._tracks]
        if self._fallback_backend is None:
            return [{"name": service, "port": 80, "weight": weight} for service, weight in tracks]
        return failover_backend_refs(self, self._scope.model.namespace, labels, tracks, self._fallback_backend)

    def _network_policy(self, labels: dict[str, str]) -> None:
        scope, cluster = self._scope, self._scope.cluster
        callers = sorted({cluster.ingress_namespace, cluster.monitoring_namespace})
        ports = (scope.model.serving_port, scope.model.preset.metrics_port)
        k8s.networking.v1.NetworkPolicy(
            f"{scope.name}-netpol",
            metadata={"name": scope.name, "namespace": scope.model.namespace, "labels": labels},
            spec={
                "podSelector": {"matchLabels": {NAME_LABEL: scope.name}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": n}}} for n in callers
                        ]
                        + [{"ipBlock": {"cidr": cidr}} for cidr in cluster.ingress_cidrs],
                        "ports": [{"protocol": "TCP", "port": p} for p in ports if p],
                    }
                ],
            },
            opts=scope.child(),
        )

    def _monitor(self, labels: dict[str, str], service: k8s.core.v1.Service) -> None:
        scope = self._scope
        ns, preset = scope.model.namespace, scope.model.preset
        k8s.apiextensions.CustomResource(
            f"{scope.name}-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={"name": scope.name, "namespace": ns, "labels": {**labels, **scope.cluster.prometheus_labels}},
            spec={
                "selector": {"matchLabels": {NAME_LABEL: scope.name, SCRAPE_LABEL: "true"}},
                "namespaceSelector": {"matchNames": [ns]},
                "podTargetLabels": [TRACK_LABEL],  # the alerts judge each track (TRACK_SERIES_LABEL)
                "endpoints": [
                    {
                        "port": "metrics" if preset.metrics_port else "http",
                        "path": preset.metrics_path,
                        "interval": "30s",
                    }
                ],
            },
            opts=scope.child(depends_on=[service]),
        )

    def _dashboard(self, labels: dict[str, str]) -> None:
        scope = self._scope
        name, ns = scope.name, scope.model.namespace
        sel, by = scope.model.series_selector(name), TRACK_SERIES_LABEL
        alerting = scope.model.preset.alerting
        panels = [
            ("Requests per second", alerting.request_rate.format(sel=sel, by=by), "reqps"),
            *((latency.what.capitalize(), latency.seconds.format(sel=sel, by=by), "s") for latency in alerting.latency),
            ("Error ratio", alerting.error_ratio.format(sel=sel, by=by), "percentunit"),
            *([("Queue", alerting.queue.format(sel=sel, by=by), "short")] if alerting.queue else []),
            ("Replicas wanted", self._replicas_series("kube_deployment_spec_replicas"), "short"),
            ("Replicas available", self._replicas_series("kube_deployment_status_replicas_available"), "short"),
        ]
        board = dashboard(f"model-{ns}-{name}", dashboard_uid(ns, name), f"modelops · model {name}", panels)
        dashboard_config_map(f"{name}-dashboard", board, scope.cluster, labels, self)

    def _replicas_series(self, metric: str) -> str:
        """A kube-state-metrics Deployment gauge for each of the model's tracks (deduplicated: an HA
        kube-state-metrics exports every series twice)."""
        deployments = "|".join(track.name for track in self._tracks)
        return (
            f'max by (namespace, deployment) ({metric}{{namespace="{self._scope.model.namespace}",'
            f'deployment=~"{deployments}"}})'
        )

    def _alerts(self, labels: dict[str, str]) -> None:
        """Latency and errors per track (the canary is judged alone: at 10% of the traffic, its errors would
        hide in the model's total), and availability per Deployment (`_availability_alert`)."""
        scope = self._scope
        name = scope.name
        sel, by = scope.model.series_selector(name), TRACK_SERIES_LABEL
        alerting = scope.model.preset.alerting
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
        rules += [
            {
                "alert": "ModelHighErrorRate",
                "expr": f"{alerting.error_ratio.format(sel=sel, by=by)} > 0.05",
                "for": "5m",
                "labels": {"severity": "critical", "model": name},
                "annotations": {"summary": f"{name}: more than 5% of requests fail on the {track} track"},
            },
            self._availability_alert(),
        ]
        k8s.apiextensions.CustomResource(
            f"{name}-alerts",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={
                "name": name,
                "namespace": scope.model.namespace,
                "labels": {**labels, **scope.cluster.prometheus_labels},
            },
            spec={"groups": [{"name": f"modelops.{name}", "rules": rules}]},
            opts=scope.child(),
        )

    def _availability_alert(self) -> dict[str, Any]:
        """`ModelUnavailable` fires only while replicas are wanted (kube-state-metrics' spec replicas, which the HPA
        or KEDA sets) and none is available, so a model asleep at zero on purpose never pages; waking it may take
        its cold start."""
        asleep_allowed = self._scope.min_replicas == 0
        return {
            "alert": "ModelUnavailable",
            "expr": f"{self._replicas_series('kube_deployment_spec_replicas')} > 0 "
            f"and on (namespace, deployment) "
            f"{self._replicas_series('kube_deployment_status_replicas_available')} < 1",
            # a model woken from zero is unavailable until its first replica is ready: not an outage
            "for": f"{math.ceil(self._replica_ready_seconds() / 60)}m" if asleep_allowed else "2m",
            "labels": {"severity": "critical", "model": self._scope.name},
            "annotations": {
                "summary": f"{self._scope.name}: {{{{ $labels.deployment }}}} wants {{{{ $value }}}} replica(s) and "
                "has none available"
            },
        }


def _with_weights_digest(
    provenance: dict[str, dict[str, str]], manifests: dict[str, WeightsManifest]
) -> dict[str, dict[str, str]]:
    """Each track's provenance with the digest of the files its pods check, whether or not they are registered."""
    tracks = set(provenance) | set(manifests)
    return {
        track: {
            **provenance.get(track, {}),
            **({WEIGHTS_DIGEST_ANNOTATION: manifests[track].digest} if track in manifests else {}),
        }
        for track in sorted(tracks)
    }
