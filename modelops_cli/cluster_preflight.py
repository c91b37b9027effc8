"""Cluster prerequisites: what a stack's objects need from the cluster they deploy to, checked through its
Kubernetes API before `pulumi up` finds out half-way (or, worse, succeeds while nothing works).

- The APIs the components emit are served (Karpenter v1, KEDA, the Prometheus Operator, the Gateway API when
  a gateway is set), and the namespaces the stack uses but does not own exist.
- The Gateway exists and would accept every model's HTTPRoute (modelops_cli/gateway_routes.py: allowedRoutes,
  kinds, hostnames, sectionName/port, ReferenceGrant); a route of ours that exists and that the Gateway
  reports Accepted=False is reported with its reason.
- Mounted weights: the Mountpoint for Amazon S3 CSI driver is installed and its node DaemonSet tolerates the
  GPU pools' taints, or the pools' nodes list the driver in their CSINode.
- Autoscaling: metrics-server serves resource metrics (HPAs on CPU); KEDA's operator runs, at a version
  that understands the fields the components emit; Karpenter's controller is v1 and supports the cluster's
  Kubernetes version.
- The cluster's Prometheus selects the labels and the namespaces of the stack's ServiceMonitors and rules.
- A standby model's gateway failover (`cluster.gateway.standbyFailover`): Envoy Gateway serves `Backend` and
  `BackendTrafficPolicy`, and its configuration enables Backend.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from components.common import GPU_TAINT, POOL_LABEL, standard_labels
from components.config import ArtifactAccess, StackConfig
from components.contracts import S3_CSI_DRIVER
from composition.placement import place

from .gateway_routes import (
    RouteSpec,
    backend_refs_permitted,
    existing_route_status,
    matches_selector,
    route_acceptance,
)
from .kubeapi import ClusterForbidden, KubeApi, printable

S3_CSI_NODE_DAEMONSET = ("kube-system", "s3-csi-node")
"""The driver's node DaemonSet: `s3-csi-node`, pods labelled `app: s3-csi-node` (Helm chart
charts/aws-mountpoint-s3-csi-driver/templates/node.yaml; the EKS add-on installs it in kube-system)."""
SYSTEM_NAMESPACE = "kube-system"
"""Where the GPU pools' DCGM exporter and its ServiceMonitor live (components/gpu_pool.py)."""
KEDA_ACTIVATION_MIN = (2, 8)
"""`activationThreshold` on a trigger (emitted for every model that scales to zero) arrived in KEDA v2.8.0:
"Introduce activationThreshold/minMetricValue for all scalers" (kedacore/keda CHANGELOG, #2800)."""
KEDA_PAUSE_MIN = (2, 11, 0)
"""A canary held by `autoscaling.keda.sh/paused-replicas` needs KEDA to stop its scale loop and delete its HPA
while paused, which it does since v2.11.0 (CHANGELOG: "Stop logging errors for paused ScaledObject ... by
skipping reconciliation loop for the object (stop the scale loop and delete the HPA)", kedacore/keda#4253)."""
KEDA_PAUSE_RACE_FIXED = (2, 18, 2)
"""v2.18.2: "Fix race condition in paused-replicas annotation causing ScaledObject to get stuck" (#7231)."""
KEDA_TESTED_KUBERNETES = {
    (2, 12): ("1.26", "1.28"),
    (2, 13): ("1.27", "1.29"),
    (2, 14): ("1.27", "1.29"),
    (2, 15): ("1.28", "1.30"),
    (2, 16): ("1.29", "1.31"),
    (2, 17): ("1.30", "1.32"),
    (2, 18): ("1.31", "1.33"),
    (2, 19): ("1.32", "1.34"),
}
"""KEDA's compatibility matrix (https://keda.sh/docs/operate/cluster/#kubernetes-compatibility): the
Kubernetes minors each release is tested with ("N-2 ... no guarantee" beyond: a warning, not a problem)."""
KARPENTER_MIN_FOR_KUBERNETES = {
    "1.29": (1, 0, 0),
    "1.30": (1, 0, 0),
    "1.31": (1, 0, 5),
    "1.32": (1, 2, 0),
    "1.33": (1, 5, 0),
    "1.34": (1, 6, 0),
    "1.35": (1, 9, 0),
}
"""Karpenter's compatibility matrix (https://karpenter.sh/docs/upgrading/compatibility/, summarised at
https://endoflife.date/karpenter): the oldest release that supports each Kubernetes minor. v1 APIs (the
NodePool and EC2NodeClass the components emit) need 1.0.0 at least."""


@dataclass
class ClusterReport:
    server: str
    problems: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Worth knowing, never failing the check."""

    @property
    def ok(self) -> bool:
        return not self.problems


def _required_apis(cfg: StackConfig) -> list[tuple[str, str, str]]:
    """(group/version, resource, why) the stack's objects need served."""
    needed = [
        ("monitoring.coreos.com/v1", "servicemonitors", "every model's ServiceMonitor (Prometheus Operator)"),
        ("monitoring.coreos.com/v1", "prometheusrules", "every model's alerts (Prometheus Operator)"),
    ]
    if cfg.gpu_pools:
        needed += [
            ("karpenter.sh/v1", "nodepools", "the GPU pools (Karpenter v1)"),
            ("karpenter.k8s.aws/v1", "ec2nodeclasses", "the GPU pools' node classes (Karpenter v1)"),
        ]
    if _keda_models(cfg):
        needed.append(("keda.sh/v1alpha1", "scaledobjects", "models that scale on a Prometheus query (KEDA)"))
    if cfg.cluster.gateway:
        needed += [
            ("gateway.networking.k8s.io/v1", "httproutes", "the models' routes (Gateway API)"),
            ("gateway.networking.k8s.io/v1", "gateways", "the Gateway the routes attach to (Gateway API)"),
        ]
    if _gateway_failovers(cfg):
        needed += [
            ("gateway.envoyproxy.io/v1alpha1", "backends", "the standby models' gateway failover (Envoy Gateway)"),
            (
                "gateway.envoyproxy.io/v1alpha1",
                "backendtrafficpolicies",
                "the standby models' failover retries and health checks (Envoy Gateway)",
            ),
        ]
    return needed


def _gateway_failovers(cfg: StackConfig) -> list[str]:
    """Models whose route fails over to their function (GatewayFallback, made in __main__.py for a model on
    Kubernetes with a serverless side, a standby, when the gateway has `standbyFailover` on)."""
    gateway = cfg.cluster.gateway
    if gateway is None or not gateway.standby_failover:
        return []
    return [n for n, m in cfg.models.items() if (p := place(cfg, n, m, None)).kubernetes and p.serverless]


def _kubernetes_models(cfg: StackConfig) -> dict[str, Any]:
    return {n: m for n, m in cfg.models.items() if place(cfg, n, m, None).kubernetes}


def _scales_with_keda(name: str, model: Any) -> bool:
    """KEDA scales the model: its own query, or (where the schema has it) its runtime's engine signal."""
    keda_query = getattr(model, "keda_query", None)
    return bool(keda_query(name) if callable(keda_query) else model.autoscaling.prometheus_query)


def _keda_models(cfg: StackConfig) -> list[str]:
    return [n for n, m in _kubernetes_models(cfg).items() if _scales_with_keda(n, m)]


class _Cluster:
    """The API with the answers pre-flight reads more than once kept."""

    def __init__(self, cfg: StackConfig, api: KubeApi):
        self.cfg, self.api = cfg, api
        self._served: dict[str, set[str]] = {}
        self._namespaces: dict[str, dict[str, Any] | None] = {}

    def served(self, group_version: str) -> set[str]:
        if group_version not in self._served:
            prefix = "/api/" if "/" not in group_version else "/apis/"
            listing = self.api.get(prefix + group_version) or {}
            resources = listing.get("resources")
            resources = resources if isinstance(resources, list) else []
            self._served[group_version] = {str(r.get("name")) for r in resources if isinstance(r, dict)}
        return self._served[group_version]

    def namespace(self, name: str) -> dict[str, Any] | None:
        if name not in self._namespaces:
            self._namespaces[name] = self.api.get(f"/api/v1/namespaces/{name}")
        return self._namespaces[name]

    def namespace_labels(self, name: str) -> dict[str, str]:
        """The labels the namespace will carry once the stack is up: its own, plus what the stack sets on the
        namespaces it creates, plus the name label the API server adds to every namespace."""
        existing = _labels(self.namespace(name))
        planned: dict[str, str] = {}
        if name in {m.namespace for m in _kubernetes_models(self.cfg).values()}:
            planned = standard_labels(name, self.cfg.environment, self.cfg.cost_owner, component="namespace")
        return {**existing, **planned, "kubernetes.io/metadata.name": name}


def _labels(obj: dict[str, Any] | None) -> dict[str, str]:
    labels = ((obj or {}).get("metadata") or {}).get("labels")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def check_cluster(cfg: StackConfig, api: KubeApi) -> ClusterReport:
    """Every prerequisite, each a line in the report. Raises ClusterApiError when the API cannot be read."""
    report = ClusterReport(api.server)
    cluster = _Cluster(cfg, api)
    for check in (
        _check_apis,
        _check_namespaces,
        _check_gateway,
        _check_mounted_weights,
        _check_metrics_server,
        _check_keda,
        _check_karpenter,
        _check_prometheus,
        _check_gateway_backends,
    ):
        check(cluster, report)
    return report


def _check_apis(cluster: _Cluster, report: ClusterReport) -> None:
    for group_version, resource, why in _required_apis(cluster.cfg):
        if resource in cluster.served(group_version):
            report.passed.append(f"{resource}.{group_version} is served")
        else:
            report.problems.append(f"{resource} ({group_version}) is not served: needed for {why}; install its CRDs")


def _check_namespaces(cluster: _Cluster, report: ClusterReport) -> None:
    cfg = cluster.cfg
    namespaces = {cfg.cluster.monitoring_namespace: "the monitoring namespace (Prometheus, dashboards)"}
    if cfg.cluster.gateway:
        namespaces[cfg.cluster.gateway.namespace] = "the Gateway's namespace"
        namespaces.setdefault(cfg.cluster.ingress_namespace, "the ingress namespace (the gateway's proxies)")
    for namespace, why in namespaces.items():
        if cluster.namespace(namespace) is None:
            report.problems.append(f"namespace {namespace} does not exist: {why}")
        else:
            report.passed.append(f"namespace {namespace} exists")


# ---- the Gateway and the routes ----


def planned_routes(cfg: StackConfig) -> list[RouteSpec]:
    """The HTTPRoutes the stack will create (components/model_service.py `_route`): one per model on
    Kubernetes, in its namespace, parentRef the Gateway by name and namespace, the gateway's hostname."""
    gateway = cfg.cluster.gateway
    if gateway is None:
        return []
    parent = {"name": gateway.name, "namespace": gateway.namespace}
    hostnames = (gateway.hostname,) if gateway.hostname else ()
    return [RouteSpec(name, m.namespace, hostnames, parent) for name, m in _kubernetes_models(cfg).items()]


def _check_gateway(cluster: _Cluster, report: ClusterReport) -> None:
    gateway = cluster.cfg.cluster.gateway
    if gateway is None or "gateways" not in cluster.served("gateway.networking.k8s.io/v1"):
        return
    base = "/apis/gateway.networking.k8s.io/v1"
    found = cluster.api.get(f"{base}/namespaces/{gateway.namespace}/gateways/{gateway.name}")
    if found is None:
        report.problems.append(
            f"Gateway {gateway.namespace}/{gateway.name} does not exist: the models' routes attach to it"
        )
        return
    report.passed.append(f"Gateway {gateway.namespace}/{gateway.name} exists")
    found = {
        **found,
        "metadata": {**(found.get("metadata") or {}), "name": gateway.name, "namespace": gateway.namespace},
    }
    grants_served = "referencegrants" in cluster.served("gateway.networking.k8s.io/v1beta1")

    def grants(namespace: str) -> list[dict[str, Any]]:
        if not grants_served:
            return []
        return cluster.api.list(f"/apis/gateway.networking.k8s.io/v1beta1/namespaces/{namespace}/referencegrants")

    for route in planned_routes(cluster.cfg):
        refusals = route_acceptance(found, route, cluster.namespace_labels(route.namespace))
        refusals += backend_refs_permitted(route, grants)
        if "httproutes" in cluster.served("gateway.networking.k8s.io/v1"):
            existing = cluster.api.get(f"{base}/namespaces/{route.namespace}/httproutes/{route.name}")
            if existing is not None:
                refusals += existing_route_status(existing, gateway.name, gateway.namespace)
        if refusals:
            report.problems += refusals
        else:
            report.passed.append(
                f"Gateway {gateway.namespace}/{gateway.name} admits HTTPRoute {route.namespace}/{route.name}"
            )


# ---- the standby models' gateway failover ----

ENVOY_GATEWAY_CONFIG = ("envoy-gateway-system", "envoy-gateway-config", "envoy-gateway.yaml")
"""Where Envoy Gateway's Helm chart (v1.9.1) puts its EnvoyGateway configuration: the ConfigMap
`envoy-gateway-config`, key `envoy-gateway.yaml` (charts/gateway-helm/templates/envoy-gateway-config.yaml:4,9), in
the release's namespace (templates/_helpers.tpl:4-6, `eg.namespace`), which the chart's install instructions name
`envoy-gateway-system` (charts/gateway-helm/README.md:36); the controller reads it as
`--config-path=/config/envoy-gateway.yaml` (templates/envoy-gateway-deployment.yaml:62)."""
ENVOY_GATEWAY_API = "gateway.envoyproxy.io/v1alpha1"
CONFIG_MAX_CHARS = 1024 * 1024
"""A ConfigMap holds at most 1 MiB (https://kubernetes.io/docs/concepts/configuration/configmap/: "The data
stored in a ConfigMap cannot exceed 1 MiB"): a longer text is no configuration Envoy Gateway was given."""
_SAFE_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML has it (4x faster on a 1 MiB text; it refuses deep nesting itself)."""


class _UnreadableConfig(Exception):
    """The configuration could not be read or is not an EnvoyGateway document: why, in words of our own (never
    the text itself)."""


def _check_gateway_backends(cluster: _Cluster, report: ClusterReport) -> None:
    """Envoy Gateway refuses every route that names a Backend while `extensionApis.enableBackend` is off
    (internal/gatewayapi/validate.go:272-274, "Backend is disabled in Envoy Gateway configuration"; the
    controller treats a missing `extensionApis` as off, internal/provider/kubernetes/controller.go:268-279): the
    route is not Accepted and `up` fails at its await. Read the configuration where the chart installs it; where
    it cannot be read, a warning says what to check."""
    models = _gateway_failovers(cluster.cfg)
    if not models:
        return
    who = ", ".join(models)
    try:
        where, text = _envoy_gateway_config(cluster)
        enabled = _backend_enabled(text)
    except _UnreadableConfig as exc:
        report.warnings.append(
            f"Envoy Gateway's configuration not checked: {exc}; the gateway failover of {who} needs "
            "extensionApis.enableBackend: true (Helm value config.envoyGateway.extensionApis.enableBackend)"
        )
        return
    if enabled:
        report.passed.append(f"Envoy Gateway's {where} enables Backend (the gateway failover of {who})")
    else:
        report.problems.append(
            f"Envoy Gateway's {where} leaves extensionApis.enableBackend off: it refuses the routes of {who}, whose "
            "standby failover names Backends; set config.envoyGateway.extensionApis.enableBackend: true in its Helm "
            "values (a boolean, not a string)"
        )


def _envoy_gateway_config(cluster: _Cluster) -> tuple[str, str]:
    """(namespace/name, text) of the chart's ConfigMap: in envoy-gateway-system, else in the ingress namespace
    (where the proxies run: Envoy Gateway's own namespace unless it deploys them beside the Gateways)."""
    default_namespace, name, key = ENVOY_GATEWAY_CONFIG
    namespaces = dict.fromkeys((default_namespace, cluster.cfg.cluster.ingress_namespace))
    for namespace in namespaces:
        try:
            found = cluster.api.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
        except ClusterForbidden as exc:
            raise _UnreadableConfig(str(exc)) from None
        if found is None:
            continue
        data = found.get("data")
        text = data.get(key) if isinstance(data, dict) else None
        if not isinstance(text, str):
            raise _UnreadableConfig(f"ConfigMap {namespace}/{name} has no text at data.{key}")
        return f"{namespace}/{name}", text
    raise _UnreadableConfig(f"no ConfigMap {name} in {' or '.join(namespaces)} (Envoy Gateway's Helm chart makes it)")


def _backend_enabled(text: str) -> bool:
    """`extensionApis.enableBackend` of an EnvoyGateway document (api/v1alpha1/envoygateway_types.go:120,
    `ExtensionAPIs *ExtensionAPISettings json:"extensionApis"`; :358, `EnableBackend bool json:"enableBackend"`):
    on only when it is the boolean true (Go decodes no string into a bool). The document must be what Envoy
    Gateway decodes, apiVersion gateway.envoyproxy.io/v1alpha1 and kind EnvoyGateway
    (internal/envoygateway/config/decoder.go:47-50). The text is the cluster's: huge, deep, malformed or of
    another shape, it raises _UnreadableConfig."""
    if len(text) > CONFIG_MAX_CHARS:
        raise _UnreadableConfig(f"its text is {len(text)} characters, more than a ConfigMap holds")
    try:
        document = yaml.load(text, Loader=_SAFE_LOADER)  # _SAFE_LOADER: a safe loader
    except RecursionError:
        raise _UnreadableConfig("its text is nested too deeply to be a configuration") from None
    except (yaml.YAMLError, ValueError):
        raise _UnreadableConfig("its text is not YAML") from None
    if (
        not isinstance(document, dict)
        or document.get("apiVersion") != ENVOY_GATEWAY_API
        or document.get("kind") != "EnvoyGateway"
    ):
        raise _UnreadableConfig(f"its text is not an EnvoyGateway document ({ENVOY_GATEWAY_API})")
    apis = document.get("extensionApis")
    if apis is None:
        return False
    if not isinstance(apis, dict):
        raise _UnreadableConfig("its extensionApis is not a mapping")
    return apis.get("enableBackend") is True


# ---- mounted weights on GPU nodes ----


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """Kubernetes' matching (k8s.io/api/core/v1 toleration.go ToleratesTaint): the toleration's effect is empty
    or the taint's; `Exists` matches any value of its key (an empty key with Exists: every taint); `Equal`
    (the default operator) needs the same key and value. The same rule as the pack's gpu-scheduling."""
    if toleration.get("effect") not in (None, "", taint.get("effect")):
        return False
    operator = toleration.get("operator") or "Equal"
    key = toleration.get("key") or ""
    if operator == "Exists":
        return key in ("", taint.get("key"))
    return (
        operator == "Equal"
        and key == taint.get("key")
        and (toleration.get("value") or "") == (taint.get("value") or "")
    )


def _mount_pools(cfg: StackConfig) -> dict[str, list[str]]:
    pools: dict[str, list[str]] = {}
    for name, model in _kubernetes_models(cfg).items():
        if model.artifact_access == ArtifactAccess.MOUNT:
            pools.setdefault(model.pool or "", []).append(name)
    return pools


def _find_csi_daemonset(api: KubeApi) -> dict[str, Any] | None:
    namespace, name = S3_CSI_NODE_DAEMONSET
    found = api.get(f"/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}")
    if found is not None:
        return found
    # a Helm release in another namespace: the chart's pod label
    listed = api.list("/apis/apps/v1/daemonsets", "app=s3-csi-node")
    return listed[0] if listed else None


def _check_mounted_weights(cluster: _Cluster, report: ClusterReport) -> None:
    pools = _mount_pools(cluster.cfg)
    if not pools:
        return
    if cluster.api.get(f"/apis/storage.k8s.io/v1/csidrivers/{S3_CSI_DRIVER}") is None:
        report.problems.append(
            f"the Mountpoint for Amazon S3 CSI driver (CSIDriver {S3_CSI_DRIVER}) is not installed: needed for models "
            "with artifactAccess: mount (EKS add-on aws-mountpoint-s3-csi-driver, or its Helm chart)"
        )
        return
    report.passed.append(f"CSIDriver {S3_CSI_DRIVER} is installed")
    daemonset = _find_csi_daemonset(cluster.api)
    for pool, models in sorted(pools.items()):
        if pool:
            _check_pool_mounts(cluster, report, daemonset, pool, models)


def _check_pool_mounts(
    cluster: _Cluster, report: ClusterReport, daemonset: dict[str, Any] | None, pool: str, models: list[str]
) -> None:
    taints = [dict(GPU_TAINT)]  # what components/gpu_pool.py puts on every pool's nodes
    who = f"models {', '.join(models)} mount their weights on pool {pool}"
    try:
        nodes = cluster.api.list("/api/v1/nodes", f"{POOL_LABEL}={pool}")
        missing_on = [n for n in nodes if not _csinode_lists_driver(cluster.api, n)]
    except ClusterForbidden as exc:
        report.warnings.append(f"pool {pool}: the nodes' CSINodes not checked: {exc}")
        nodes, missing_on = [], []
    if daemonset is not None:
        spec = (((daemonset.get("spec") or {}).get("template") or {}).get("spec")) or {}
        tolerations = [t for t in spec.get("tolerations") or [] if isinstance(t, dict)]
        untolerated = [t for t in taints if not any(tolerates(tol, t) for tol in tolerations)]
        meta = daemonset.get("metadata") or {}
        ds = f"DaemonSet {meta.get('namespace')}/{meta.get('name')}"
        if untolerated:
            taint = untolerated[0]
            report.problems.append(
                f"{who}, but the S3 CSI driver's {ds} does not tolerate the pool's taint {taint['key']}={taint['value']}:"
                f"{taint['effect']}: its pods never start there and the models stay in ContainerCreating. Install the "
                "driver with the Helm value node.tolerateAllTaints=true, or add a toleration "
                f"{{key: {taint['key']}, operator: Exists, effect: {taint['effect']}}} (node.tolerations; the EKS add-on's "
                "configuration values take the same keys)"
            )
            return
        report.passed.append(f"{ds} tolerates pool {pool}'s taints")
        if missing_on:
            names = ", ".join(_name(n) for n in missing_on[:5])
            report.warnings.append(f"pool {pool}: nodes {names} do not list {S3_CSI_DRIVER} in their CSINode yet")
        return
    if nodes and not missing_on:
        report.passed.append(f"every node of pool {pool} lists {S3_CSI_DRIVER} in its CSINode")
        return
    report.problems.append(
        f"{who}, but no S3 CSI node DaemonSet ({'/'.join(S3_CSI_NODE_DAEMONSET)}, or pods labelled app=s3-csi-node) was "
        f"found{' and nodes ' + ', '.join(_name(n) for n in missing_on[:5]) + ' lack the driver in their CSINode' if missing_on else ''}: "
        "install the driver with node.tolerateAllTaints=true (or a toleration of nvidia.com/gpu)"
    )


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name"))


def _csinode_lists_driver(api: KubeApi, node: dict[str, Any]) -> bool:
    csinode = api.get(f"/apis/storage.k8s.io/v1/csinodes/{_name(node)}") or {}
    drivers = (csinode.get("spec") or {}).get("drivers") or []
    return any(isinstance(d, dict) and d.get("name") == S3_CSI_DRIVER for d in drivers)


# ---- autoscaling and node provisioning controllers ----


def _condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == kind:
            return condition
    return None


def _check_metrics_server(cluster: _Cluster, report: ClusterReport) -> None:
    """HPAs on CPU read the resource metrics API (metrics.k8s.io), which metrics-server serves through the
    APIService v1beta1.metrics.k8s.io (https://github.com/kubernetes-sigs/metrics-server#requirements); without
    it every HPA reports FailedGetResourceMetric and never scales."""
    users = [n for n, m in _kubernetes_models(cluster.cfg).items() if not _scales_with_keda(n, m)]
    if not users:
        return
    service = cluster.api.get("/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io")
    available = _condition(service, "Available")
    if service is None:
        report.problems.append(
            f"metrics-server is not installed (no APIService v1beta1.metrics.k8s.io): the HPAs of {', '.join(users)} "
            "scale on CPU and would never scale (EKS add-on metrics-server)"
        )
    elif not available or available.get("status") != "True":
        why = (available or {}).get("message") or (available or {}).get("reason") or "no Available condition"
        report.problems.append(f"APIService v1beta1.metrics.k8s.io is not Available ({why}): the CPU HPAs cannot scale")
    else:
        report.passed.append("metrics-server serves v1beta1.metrics.k8s.io")


_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    match = _VERSION.match(text or "")
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def _deployment_version(deployment: dict[str, Any]) -> tuple[str | None, tuple[int, int, int] | None]:
    """The version a controller's Deployment declares: its app.kubernetes.io/version label, else its first
    container image's tag."""
    label = _labels(deployment).get("app.kubernetes.io/version")
    if parse_version(label):
        return label, parse_version(label)
    containers = ((((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []
    for container in containers:
        image = str((container or {}).get("image") or "").split("@", 1)[0]
        tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else None
        if parse_version(tag):
            return tag, parse_version(tag)
    return label, None


def _find_deployment(cluster: _Cluster, selectors: tuple[str, ...]) -> dict[str, Any] | None:
    for selector in selectors:
        found = cluster.api.list("/apis/apps/v1/deployments", selector)
        if found:
            return found[0]
    return None


def _check_keda(cluster: _Cluster, report: ClusterReport) -> None:
    users = _keda_models(cluster.cfg)
    if not users:
        return
    try:
        operator = _find_deployment(cluster, ("app.kubernetes.io/name=keda-operator", "app=keda-operator"))
    except ClusterForbidden as exc:
        report.warnings.append(f"KEDA's operator not checked: {exc}")
        return
    if operator is None:
        report.problems.append(
            f"KEDA's operator was not found (no Deployment labelled app.kubernetes.io/name=keda-operator): the "
            f"ScaledObjects of {', '.join(users)} would never scale (install KEDA, e.g. its Helm chart kedacore/keda)"
        )
        return
    text, version = _deployment_version(operator)
    if version is None:
        report.warnings.append(f"KEDA operator {_name(operator)} declares no readable version ({text!r}): not checked")
        return
    at_zero = [n for n in users if cluster.cfg.min_replicas(cluster.cfg.models[n]) == 0]
    if at_zero and version[:2] < KEDA_ACTIVATION_MIN:
        report.problems.append(
            f"KEDA {text} is older than v{KEDA_ACTIVATION_MIN[0]}.{KEDA_ACTIVATION_MIN[1]}: the ScaledObjects of "
            f"{', '.join(at_zero)} (scale to zero) set activationThreshold, which it ignores: upgrade KEDA"
        )
        return
    paused = _paused_canaries(cluster.cfg, users)
    if paused and version < KEDA_PAUSE_MIN:
        report.problems.append(
            f"KEDA {text} is older than v2.11.0: the canaries of {', '.join(paused)} are held with "
            "autoscaling.keda.sh/paused-replicas, which stops KEDA's scale loop and deletes its HPA only since v2.11 "
            "(kedacore/keda#4253): upgrade KEDA"
        )
        return
    if paused and version < KEDA_PAUSE_RACE_FIXED:
        report.warnings.append(
            f"KEDA {text}: a paused-replicas race can leave a ScaledObject stuck (fixed in v2.18.2, kedacore/keda#7231); "
            f"the canaries of {', '.join(paused)} are paused that way"
        )
    report.passed.append(f"KEDA operator {text} runs")
    tested = KEDA_TESTED_KUBERNETES.get(version[:2])
    kube = cluster.cfg.cluster.kubernetes_version
    if tested and not (_minor(tested[0]) <= _minor(kube) <= _minor(tested[1])):
        report.warnings.append(
            f"KEDA {text} is tested with Kubernetes {tested[0]}-{tested[1]}, the cluster runs {kube} "
            "(https://keda.sh/docs/operate/cluster/#kubernetes-compatibility)"
        )


def _paused_canaries(cfg: StackConfig, keda_models: list[str]) -> list[str]:
    """The KEDA models whose canary ScaledObject is held at its count by paused-replicas (components/model_service.py
    `_canary_scaler`: every canary, except one that sleeps and wakes with a model at zero)."""
    paused = []
    for name in keda_models:
        model = cfg.models[name]
        if model.canary is not None and not (cfg.min_replicas(model) == 0 and model.canary.weight > 0):
            paused.append(name)
    return paused


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def _check_karpenter(cluster: _Cluster, report: ClusterReport) -> None:
    if not cluster.cfg.gpu_pools:
        return
    try:
        controller = _find_deployment(cluster, ("app.kubernetes.io/name=karpenter",))
    except ClusterForbidden as exc:
        report.warnings.append(f"Karpenter's version not checked: {exc}")
        return
    if controller is None:
        report.warnings.append(
            "Karpenter's controller was not found (no Deployment labelled app.kubernetes.io/name=karpenter): its "
            "version is not checked; without it the GPU pools never get nodes"
        )
        return
    text, version = _deployment_version(controller)
    kube = cluster.cfg.cluster.kubernetes_version
    needed = max((1, 0, 0), KARPENTER_MIN_FOR_KUBERNETES.get(kube, (1, 0, 0)))
    if version is None:
        report.warnings.append(f"Karpenter controller {_name(controller)} declares no readable version ({text!r})")
    elif version < needed:
        report.problems.append(
            f"Karpenter {text} is older than v{'.'.join(map(str, needed))}, the oldest that serves the v1 NodePool and "
            f"EC2NodeClass the pools use and supports Kubernetes {kube} (https://karpenter.sh/docs/upgrading/compatibility/)"
        )
    else:
        report.passed.append(f"Karpenter {text} runs (v1 APIs, Kubernetes {kube})")


# ---- Prometheus ----


def _selects_namespace(selector: Any, namespace: str, own: str, labels: Callable[[str], dict[str, str]]) -> bool:
    """A Prometheus `*NamespaceSelector`: null (the default) is the Prometheus's own namespace only, an empty
    selector every namespace, else the namespaces whose labels match (prometheus-operator API, PrometheusSpec
    serviceMonitorNamespaceSelector / ruleNamespaceSelector)."""
    if selector is None:
        return namespace == own
    return matches_selector(selector, labels(namespace))


def _check_prometheus(cluster: _Cluster, report: ClusterReport) -> None:
    cfg = cluster.cfg
    labels = cfg.cluster.prometheus_labels
    if "prometheuses" not in cluster.served("monitoring.coreos.com/v1"):
        report.problems.append(
            "no Prometheus (monitoring.coreos.com/v1) is served: nothing would scrape the models or evaluate their alerts"
        )
        return
    model_namespaces = sorted({m.namespace for m in _kubernetes_models(cfg).values()})
    monitor_namespaces = model_namespaces + ([SYSTEM_NAMESPACE] if cfg.gpu_pools else [])
    reasons = []
    for prometheus in cluster.api.list("/apis/monitoring.coreos.com/v1/prometheuses"):
        spec = prometheus.get("spec") or {}
        own = str((prometheus.get("metadata") or {}).get("namespace"))
        missing = []
        if not matches_selector(spec.get("serviceMonitorSelector"), labels):
            missing.append("serviceMonitorSelector")
        if not matches_selector(spec.get("ruleSelector"), labels):
            missing.append("ruleSelector")
        for key, namespaces in (
            ("serviceMonitorNamespaceSelector", monitor_namespaces),
            ("ruleNamespaceSelector", model_namespaces),
        ):
            outside = [n for n in namespaces if not _selects_namespace(spec.get(key), n, own, cluster.namespace_labels)]
            if outside:
                missing.append(f"{key} (leaves out {', '.join(outside)})")
        if not missing:
            report.passed.append(f"Prometheus {_name(prometheus)} selects the stack's labels {labels} and namespaces")
            return
        reasons.append(f"{own}/{_name(prometheus)}: {'; '.join(missing)}")
    report.problems.append(
        f"no Prometheus selects the stack's ServiceMonitors and PrometheusRules (labels {labels}, namespaces "
        f"{', '.join(monitor_namespaces) or '-'}): {' | '.join(reasons) or 'none exists'}; set "
        "modelops:cluster.prometheusLabels or the Prometheus's selectors"
    )


def format_cluster_report(report: ClusterReport) -> str:
    """The report for a terminal: names and messages the cluster sent are made inert (no escape sequences)."""
    lines = [f"cluster {printable(report.server)}: {'PASS' if report.ok else 'FAIL'}"]
    lines += [f"  - {printable(p, 2000)}" for p in report.problems]
    lines += [f"  ! {printable(w, 2000)}" for w in report.warnings]
    lines += [f"  ok {printable(p, 2000)}" for p in report.passed]
    return "\n".join(lines)
