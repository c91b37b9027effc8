"""modelops preflight against a faked Kubernetes API: a cluster that has what prod needs passes; one that lacks
a CRD, a namespace, the Gateway, a listener that admits the routes, the CSI driver on the GPU nodes,
metrics-server, KEDA or Karpenter at a version the stack needs, or a Prometheus that selects the stack's
objects fails (exit 1) and says which; with the standby failover on, Envoy Gateway's Backend and
BackendTrafficPolicy APIs and its configuration's `extensionApis.enableBackend` too. (The real-engine tier runs it
against a real API server.)"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from components.config import parse_stack_config
from modelops_cli.cli import main
from modelops_cli.cluster_preflight import check_cluster, tolerates
from modelops_cli.common import stack_settings
from modelops_cli.gateway_routes import RouteSpec, backend_refs_permitted, hostname_matches, route_acceptance
from modelops_cli.kubeapi import KubeApi
from modelops_cli.kubeconfig import load_kubeconfig
from tests.conftest import ROOT, stack_raw
from tests.modelops_cli.kube_fakes import FakeKube, kubeconfig

APIS = {
    "monitoring.coreos.com/v1": ["servicemonitors", "prometheusrules", "prometheuses"],
    "karpenter.sh/v1": ["nodepools"],
    "karpenter.k8s.aws/v1": ["ec2nodeclasses"],
    "keda.sh/v1alpha1": ["scaledobjects"],
    "gateway.networking.k8s.io/v1": ["httproutes", "gateways"],
    "gateway.networking.k8s.io/v1beta1": ["referencegrants"],
    "gateway.envoyproxy.io/v1alpha1": ["backends", "backendtrafficpolicies"],
}
GATEWAY = "/apis/gateway.networking.k8s.io/v1/namespaces/gateway-system/gateways/models"
PROMETHEUSES = "/apis/monitoring.coreos.com/v1/prometheuses"
EG_API = "/apis/gateway.envoyproxy.io/v1alpha1"
EG_CONFIG = "/api/v1/namespaces/envoy-gateway-system/configmaps/envoy-gateway-config"
EG_HEAD = "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: EnvoyGateway\n"


def envoy_gateway_config(text: Any) -> dict[str, Any]:
    """Envoy Gateway's configuration as its Helm chart v1.9.1 installs it (charts/gateway-helm/templates/
    envoy-gateway-config.yaml: ConfigMap envoy-gateway-config, key envoy-gateway.yaml)."""
    return {"metadata": {"name": "envoy-gateway-config"}, "data": {"envoy-gateway.yaml": text}}


def eg_config_with(extension_apis: str) -> dict[str, Any]:
    """What the chart renders from its default values, `extension_apis` as its extensionApis block."""
    return envoy_gateway_config(
        EG_HEAD + "gateway:\n  controllerName: gateway.envoyproxy.io/gatewayclass-controller\n"
        "provider:\n  type: Kubernetes\n" + extension_apis
    )


PROMETHEUS: dict[str, Any] = {
    "metadata": {"name": "kube-prometheus-stack-prometheus", "namespace": "monitoring"},
    "spec": {
        "serviceMonitorSelector": {"matchLabels": {"release": "kube-prometheus-stack"}},
        "serviceMonitorNamespaceSelector": {},
        "ruleSelector": {"matchLabels": {"release": "kube-prometheus-stack"}},
        "ruleNamespaceSelector": {},
    },
}
CSI_NODE = "/apis/apps/v1/namespaces/kube-system/daemonsets/s3-csi-node"
METRICS_API = "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io"
DEPLOYMENTS = "/apis/apps/v1/deployments"


def deployment(name: str, labels: dict[str, str], image: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": name.split("-")[0], "labels": labels},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
    }


KEDA = deployment(
    "keda-operator",
    {"app.kubernetes.io/name": "keda-operator", "app.kubernetes.io/version": "2.16.1"},
    "ghcr.io/kedacore/keda:2.16.1",
)
KARPENTER = deployment(
    "karpenter",
    {"app.kubernetes.io/name": "karpenter", "app.kubernetes.io/version": "1.0.6"},
    "karpenter/controller:1.0.6",
)


def complete_cluster() -> dict[str, Any]:
    """What prod needs, as kube-prometheus-stack, the EKS add-ons (metrics-server, the S3 CSI driver with
    node.tolerateAllTaints), KEDA's chart, Karpenter's chart and a Gateway admitting every namespace leave it."""
    objects: dict[str, Any] = {f"/apis/{gv}": {"resources": [{"name": r} for r in rs]} for gv, rs in APIS.items()}
    objects.update(
        {
            "/api/v1/namespaces/monitoring": {"metadata": {"name": "monitoring"}},
            "/api/v1/namespaces/gateway-system": {"metadata": {"name": "gateway-system"}},
            "/api/v1/namespaces/envoy-gateway-system": {"metadata": {"name": "envoy-gateway-system"}},
            GATEWAY: {
                "spec": {
                    "gatewayClassName": "eg",
                    "listeners": [
                        {
                            "name": "http",
                            "port": 80,
                            "protocol": "HTTP",
                            "hostname": "*.acme.example",
                            "allowedRoutes": {"namespaces": {"from": "All"}},
                        }
                    ],
                }
            },
            "/apis/storage.k8s.io/v1/csidrivers/s3.csi.aws.com": {},
            CSI_NODE: {
                "metadata": {"name": "s3-csi-node", "namespace": "kube-system"},
                "spec": {"template": {"spec": {"tolerations": [{"operator": "Exists"}]}}},
            },
            METRICS_API: {"status": {"conditions": [{"type": "Available", "status": "True"}]}},
            DEPLOYMENTS: {"items": [KEDA, KARPENTER]},
            PROMETHEUSES: {"items": [PROMETHEUS]},
            EG_CONFIG: eg_config_with("extensionApis:\n  enableBackend: true\n"),
        }
    )
    return objects


@pytest.fixture
def fake_cluster(tmp_path):
    server = FakeKube(complete_cluster())
    yield server, kubeconfig(tmp_path / "kubeconfig", {"server": server.url})
    server.stop()


def preflight(kubeconfig, capsys) -> tuple[int, str]:
    code = main(["preflight", "--stack", "prod", "--cluster-only", "--kubeconfig", str(kubeconfig)])
    return code, capsys.readouterr().out


def listener(objects: dict[str, Any], **changes: Any) -> None:
    objects[GATEWAY]["spec"]["listeners"][0].update(changes)


def test_a_cluster_with_every_prerequisite_passes(fake_cluster, capsys):
    server, config = fake_cluster
    code, out = preflight(config, capsys)
    assert code == 0, out
    assert "PASS" in out and "Prometheus kube-prometheus-stack-prometheus selects" in out
    assert "Gateway gateway-system/models admits HTTPRoute models/chat" in out
    assert "DaemonSet kube-system/s3-csi-node tolerates pool a10g's taints" in out
    assert "KEDA operator 2.16.1 runs" in out and "Karpenter 1.0.6 runs" in out
    assert {auth for _, auth in server.requests} == {"Bearer t0ken"}


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda o: o.pop("/apis/keda.sh/v1alpha1"), "scaledobjects (keda.sh/v1alpha1) is not served"),
        (lambda o: o.pop("/apis/karpenter.sh/v1"), "nodepools (karpenter.sh/v1) is not served"),
        (lambda o: o.pop("/api/v1/namespaces/monitoring"), "namespace monitoring does not exist"),
        (lambda o: o.pop(GATEWAY), "Gateway gateway-system/models does not exist"),
        (
            lambda o: o.pop("/apis/storage.k8s.io/v1/csidrivers/s3.csi.aws.com"),
            "CSIDriver s3.csi.aws.com) is not installed",
        ),
        # the Gateway API default: a listener without allowedRoutes admits its own namespace only
        (
            lambda o: listener(o, allowedRoutes={}),
            "HTTPRoute models/chat on Gateway gateway-system/models would not be accepted: namespace models is not "
            "allowed by listener http (allowedRoutes.namespaces.from: Same)",
        ),
        (
            lambda o: listener(o, hostname="api.other.example"),
            "no hostname of the route (models.acme.example) matches listener http's hostname api.other.example",
        ),
        (lambda o: listener(o, protocol="TCP"), "listener http: protocol TCP does not carry HTTPRoutes"),
        (
            lambda o: listener(o, allowedRoutes={"namespaces": {"from": "All"}, "kinds": [{"kind": "GRPCRoute"}]}),
            "allowedRoutes.kinds lists GRPCRoute, not HTTPRoute",
        ),
        (
            lambda o: listener(
                o, allowedRoutes={"namespaces": {"from": "Selector", "selector": {"matchLabels": {"gateway": "yes"}}}}
            ),
            "namespace models is not allowed by listener http (allowedRoutes.namespaces.from: Selector",
        ),
        (
            lambda o: o.update(
                {
                    "/apis/gateway.networking.k8s.io/v1/namespaces/models/httproutes/chat": {
                        "metadata": {"name": "chat", "namespace": "models"},
                        "status": {
                            "parents": [
                                {
                                    "parentRef": {"name": "models", "namespace": "gateway-system"},
                                    "conditions": [
                                        {
                                            "type": "Accepted",
                                            "status": "False",
                                            "reason": "NotAllowedByListeners",
                                            "message": "no listener allows this namespace",
                                        }
                                    ],
                                }
                            ]
                        },
                    }
                }
            ),
            "HTTPRoute models/chat exists and its Gateway gateway-system/models reports Accepted=False "
            "(NotAllowedByListeners): no listener allows this namespace",
        ),
        (
            lambda o: o[CSI_NODE]["spec"]["template"]["spec"].update(
                # the chart's defaultTolerations, without tolerateAllTaints (awslabs/mountpoint-s3-csi-driver#109)
                tolerations=[
                    {"key": "CriticalAddonsOnly", "operator": "Exists"},
                    {"key": "s3.csi.aws.com/agent-not-ready", "operator": "Exists"},
                    {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                ]
            ),
            "models vision mount their weights on pool a10g, but the S3 CSI driver's DaemonSet kube-system/s3-csi-node"
            " does not tolerate the pool's taint nvidia.com/gpu=true:NoSchedule",
        ),
        (lambda o: o.pop(METRICS_API), "metrics-server is not installed (no APIService v1beta1.metrics.k8s.io)"),
        (
            lambda o: o.update(
                {
                    METRICS_API: {
                        "status": {
                            "conditions": [{"type": "Available", "status": "False", "reason": "FailedDiscoveryCheck"}]
                        }
                    }
                }
            ),
            "APIService v1beta1.metrics.k8s.io is not Available (FailedDiscoveryCheck)",
        ),
        (lambda o: o.update({DEPLOYMENTS: {"items": [KARPENTER]}}), "KEDA's operator was not found"),
        (
            lambda o: o.update(
                {
                    DEPLOYMENTS: {
                        "items": [
                            KEDA,
                            {
                                **KARPENTER,
                                "metadata": {
                                    **KARPENTER["metadata"],
                                    "labels": {
                                        "app.kubernetes.io/name": "karpenter",
                                        "app.kubernetes.io/version": "0.37.0",
                                    },
                                },
                            },
                        ]
                    }
                }
            ),
            "Karpenter 0.37.0 is older than v1.0.5",
        ),
        (
            lambda o: o.update(
                {
                    PROMETHEUSES: {
                        "items": [
                            {
                                **PROMETHEUS,
                                "spec": {**PROMETHEUS["spec"], "ruleSelector": {"matchLabels": {"release": "other"}}},
                            }
                        ]
                    }
                }
            ),
            "no Prometheus selects the stack's ServiceMonitors and PrometheusRules",
        ),
        # prometheus-operator: a null namespace selector is the Prometheus's own namespace only
        (
            lambda o: o.update(
                {
                    PROMETHEUSES: {
                        "items": [{**PROMETHEUS, "spec": {**PROMETHEUS["spec"], "ruleNamespaceSelector": None}}]
                    }
                }
            ),
            "ruleNamespaceSelector (leaves out models)",
        ),
    ],
)
def test_a_missing_prerequisite_fails_and_says_which(fake_cluster, capsys, break_it, message):
    server, config = fake_cluster
    break_it(server.objects)
    code, out = preflight(config, capsys)
    assert code == 1 and message in out, out


def test_a_listener_selecting_the_namespace_by_the_labels_the_stack_gives_it_admits_the_route(fake_cluster, capsys):
    """The stack creates `models` with its standard labels: a Selector on them admits the route before the
    namespace exists (kubernetes.io/metadata.name is added by the API server to every namespace)."""
    server, config = fake_cluster
    for selector in (
        {"matchLabels": {"modelops/environment": "prod"}},
        {"matchLabels": {"kubernetes.io/metadata.name": "models"}},
    ):
        listener(server.objects, allowedRoutes={"namespaces": {"from": "Selector", "selector": selector}})
        code, out = preflight(config, capsys)
        assert code == 0, out


def test_the_csi_driver_on_the_pools_nodes_passes_without_its_daemonset(fake_cluster, capsys):
    server, config = fake_cluster
    server.objects.pop(CSI_NODE)
    node = {"metadata": {"name": "gpu-1", "labels": {"modelops/gpu-pool": "a10g"}}}
    server.objects["/api/v1/nodes"] = {"items": [node]}
    server.objects["/apis/storage.k8s.io/v1/csinodes/gpu-1"] = {"spec": {"drivers": [{"name": "ebs.csi.aws.com"}]}}
    code, out = preflight(config, capsys)
    assert code == 1 and "nodes gpu-1 lack the driver in their CSINode" in out, out
    server.objects["/apis/storage.k8s.io/v1/csinodes/gpu-1"]["spec"]["drivers"].append({"name": "s3.csi.aws.com"})
    code, out = preflight(config, capsys)
    assert code == 0 and "every node of pool a10g lists s3.csi.aws.com in its CSINode" in out, out


def keda_at(version: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "keda-operator", "app.kubernetes.io/version": version}
    return {**KEDA, "metadata": {**KEDA["metadata"], "labels": labels}}


def test_a_canary_held_by_paused_replicas_needs_keda_2_11(fake_cluster, capsys):
    """prod's chat scales with KEDA and has a canary, held at its count by autoscaling.keda.sh/paused-replicas:
    KEDA stops the scale loop and deletes the HPA of a paused ScaledObject since v2.11.0 (kedacore/keda#4253), and
    a race that could leave it stuck was fixed in v2.18.2 (#7231)."""
    server, config = fake_cluster
    server.objects[DEPLOYMENTS] = {"items": [keda_at("2.10.1"), KARPENTER]}
    code, out = preflight(config, capsys)
    assert code == 1 and "KEDA 2.10.1 is older than v2.11.0: the canaries of chat are held with" in out, out
    server.objects[DEPLOYMENTS] = {"items": [keda_at("2.18.1"), KARPENTER]}
    code, out = preflight(config, capsys)
    assert code == 0 and "! KEDA 2.18.1: a paused-replicas race can leave a ScaledObject stuck" in out, out
    server.objects[DEPLOYMENTS] = {"items": [keda_at("2.18.2"), KARPENTER]}
    code, out = preflight(config, capsys)
    assert code == 0 and "paused-replicas race" not in out, out


def test_keda_too_old_for_activation_thresholds_fails_a_stack_that_scales_to_zero(fake_cluster):
    """activationThreshold arrived in KEDA 2.8.0 (kedacore/keda CHANGELOG: "Introduce activationThreshold/
    minMetricValue for all scalers", #2800); older operators ignore it."""
    server, config = fake_cluster
    raw = copy.deepcopy(stack_raw("prod"))
    raw["models"]["summarizer"]["replicas"]["min"] = 0
    raw["models"]["summarizer"]["autoscaling"]["activeHours"] = {
        "timezone": "Europe/Paris",
        "start": "0 8 * * 1-5",
        "end": "0 20 * * 1-5",
    }
    cfg = parse_stack_config(raw)
    old = copy.deepcopy(KEDA)
    old["metadata"]["labels"]["app.kubernetes.io/version"] = "v2.7.1"
    server.objects[DEPLOYMENTS] = {"items": [old, KARPENTER]}
    report = check_cluster(cfg, KubeApi(load_kubeconfig(str(config))))
    assert any("KEDA v2.7.1 is older than v2.8" in p and "summarizer" in p for p in report.problems), report.problems
    # a version outside KEDA's tested window for the cluster's Kubernetes is a warning, never a failure
    server.objects[DEPLOYMENTS] = {
        "items": [
            {
                **KEDA,
                "metadata": {
                    **KEDA["metadata"],
                    "labels": {"app.kubernetes.io/name": "keda-operator", "app.kubernetes.io/version": "2.12.0"},
                },
            },
            KARPENTER,
        ]
    }
    report = check_cluster(cfg, KubeApi(load_kubeconfig(str(config))))
    assert report.ok, report.problems
    assert any("KEDA 2.12.0 is tested with Kubernetes 1.26-1.28, the cluster runs 1.31" in w for w in report.warnings)


# ---- the acceptance rules on their own ----


@pytest.mark.parametrize(
    "listener_name, route_name, match",
    [
        ("models.acme.example", "models.acme.example", True),
        ("*.acme.example", "models.acme.example", True),
        ("*.acme.example", "a.b.acme.example", True),  # a wildcard is a suffix match of one or more labels
        ("*.acme.example", "acme.example", False),
        ("models.acme.example", "*.acme.example", True),
        ("*.example", "*.acme.example", True),
        ("test.acme.example", "models.acme.example", False),
        ("*.acme.example", "models.acme.net", False),
    ],
)
def test_hostname_intersection_follows_the_httproute_field_docs(listener_name, route_name, match):
    """HTTPRoute.spec.hostnames (tests/upstream/crds/gateway.networking.k8s.io_httproutes.yaml): "`*.example.com`
    would match both `test.example.com`, and `foo.test.example.com`, but not `example.com`"."""
    assert hostname_matches(listener_name, route_name) is match


def gateway(*listeners: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "gw", "namespace": "infra"}, "spec": {"listeners": list(listeners)}}


ROUTE = RouteSpec("chat", "models", ("models.acme.example",), {"name": "gw", "namespace": "infra"})
ALL = {"namespaces": {"from": "All"}}


def test_one_admitting_listener_is_enough_and_section_name_or_port_narrow_the_choice():
    """ParentReference.sectionName: "an attachment is considered successful if at least one section in the
    parent resource accepts it"; sectionName and port select listeners by name and port."""
    gw = gateway(
        {"name": "internal", "port": 8080, "protocol": "HTTP"},
        {"name": "public", "port": 80, "protocol": "HTTP", "allowedRoutes": ALL},
    )
    assert route_acceptance(gw, ROUTE, {}) == []
    pinned = RouteSpec(ROUTE.name, ROUTE.namespace, ROUTE.hostnames, {**ROUTE.parent_ref, "sectionName": "internal"})
    assert "allowedRoutes.namespaces.from: Same" in route_acceptance(gw, pinned, {})[0]
    by_port = RouteSpec(ROUTE.name, ROUTE.namespace, ROUTE.hostnames, {**ROUTE.parent_ref, "port": 443})
    assert route_acceptance(gw, by_port, {}) == [
        "HTTPRoute models/chat on Gateway infra/gw: no listener matches port 443 (NoMatchingParent)"
    ]


def test_a_cross_namespace_backend_needs_a_reference_grant():
    route = RouteSpec("chat", "models", (), {"name": "gw"}, ({"name": "chat", "namespace": "serving", "port": 80},))
    grant = {
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "models"}],
            "to": [{"group": "", "kind": "Service"}],
        }
    }
    assert "no ReferenceGrant in serving allows it (RefNotPermitted)" in backend_refs_permitted(route, lambda ns: [])[0]
    assert backend_refs_permitted(route, lambda ns: [grant] if ns == "serving" else []) == []


@pytest.mark.parametrize(
    "toleration, tolerated",
    [
        ({"operator": "Exists"}, True),  # node.tolerateAllTaints=true
        ({"key": "nvidia.com/gpu", "operator": "Exists"}, True),
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, True),
        ({"key": "nvidia.com/gpu", "value": "true"}, True),  # Equal is the default operator
        ({"key": "nvidia.com/gpu", "value": "false"}, False),
        ({"operator": "Exists", "effect": "NoExecute"}, False),  # the chart's default toleration
        ({"key": "CriticalAddonsOnly", "operator": "Exists"}, False),
    ],
)
def test_tolerations_match_taints_as_kubernetes_does(toleration, tolerated):
    assert tolerates(toleration, {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}) is tolerated


def test_an_optional_read_the_credentials_may_not_make_is_a_warning(fake_cluster, capsys, monkeypatch):
    """RBAC that forbids listing Deployments cluster-wide leaves KEDA's and Karpenter's versions unchecked (a
    warning), while the rest of pre-flight still decides."""
    server, config = fake_cluster
    real = FakeKube.answer

    def forbidding(self, handler):
        if handler.path.startswith(DEPLOYMENTS):
            return self.send(handler, 403, b'{"kind":"Status","message":"deployments.apps is forbidden"}')
        return real(self, handler)

    monkeypatch.setattr(FakeKube, "answer", forbidding)
    code, out = preflight(config, capsys)
    assert code == 0, out
    assert "! KEDA's operator not checked:" in out and "deployments.apps is forbidden" in out, out
    assert "! Karpenter's version not checked:" in out


# ---- the standby models' gateway failover (cluster.gateway.standbyFailover) ----


@pytest.fixture
def failover_on(tmp_path, monkeypatch):
    """prod with standbyFailover on (its standby, sentiment, fails over through Envoy Gateway Backends) and the
    relay's registry allowed, as `modelops preflight` reads it."""
    data = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    config = data["config"]
    config["modelops:cluster"]["gateway"]["standbyFailover"] = True
    config["modelops:registry"]["allowedRegistries"].append("public.ecr.aws/aws-observability/")
    (tmp_path / "stack").mkdir()
    path = tmp_path / "stack" / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(data))
    settings = stack_settings("prod", str(path))
    monkeypatch.setattr("modelops_cli.verbs.preflight.stack_settings", lambda stack: settings)


def test_the_failover_passes_where_envoy_gateway_enables_backend(fake_cluster, failover_on, capsys):
    server, config = fake_cluster
    code, out = preflight(config, capsys)
    assert code == 0, out
    assert "ok backends.gateway.envoyproxy.io/v1alpha1 is served" in out
    assert "ok backendtrafficpolicies.gateway.envoyproxy.io/v1alpha1 is served" in out
    assert (
        "ok Envoy Gateway's envoy-gateway-system/envoy-gateway-config enables Backend (the gateway failover of "
        "sentiment)" in out
    ), out


def test_without_the_failover_envoy_gateway_is_not_asked(fake_cluster, capsys):
    """prod as committed (standbyFailover off): no Backend is emitted, so neither its API nor the configuration
    is needed, nor read."""
    server, config = fake_cluster
    server.objects.pop(EG_API)
    server.objects[EG_CONFIG] = eg_config_with("")
    code, out = preflight(config, capsys)
    assert code == 0 and "Envoy Gateway" not in out and "backends" not in out, out
    assert not [path for path, _ in server.requests if "envoy" in path], server.requests


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda o: o.pop(EG_API), "backends (gateway.envoyproxy.io/v1alpha1) is not served: needed for the standby"),
        (
            lambda o: o.update({EG_API: {"resources": [{"name": "backends"}]}}),
            "backendtrafficpolicies (gateway.envoyproxy.io/v1alpha1) is not served",
        ),
        # the chart's default values: `extensionApis: {}`; and no block at all (the controller's nil check)
        (
            lambda o: o.update({EG_CONFIG: eg_config_with("extensionApis: {}\n")}),
            "leaves extensionApis.enableBackend off",
        ),
        (
            lambda o: o.update({EG_CONFIG: eg_config_with("")}),
            "Envoy Gateway's envoy-gateway-system/envoy-gateway-config leaves extensionApis.enableBackend off: it "
            "refuses the routes of sentiment",
        ),
        (lambda o: o.update({EG_CONFIG: eg_config_with("extensionApis:\n  enableBackend: false\n")}), "off"),
        # a string is not the boolean Envoy Gateway decodes
        (
            lambda o: o.update({EG_CONFIG: eg_config_with("extensionApis:\n  enableBackend: 'true'\n")}),
            "leaves extensionApis.enableBackend off",
        ),
    ],
)
def test_a_failover_envoy_gateway_would_refuse_fails(fake_cluster, failover_on, capsys, break_it, message):
    server, config = fake_cluster
    break_it(server.objects)
    code, out = preflight(config, capsys)
    assert code == 1 and message in out, out


def test_the_configuration_is_also_looked_for_in_the_ingress_namespace(fake_cluster, failover_on, capsys):
    """The chart installs in its release's namespace (charts/gateway-helm/templates/_helpers.tpl, eg.namespace):
    not envoy-gateway-system, then where the gateway's proxies run (cluster.ingressNamespace, gateway-system)."""
    server, config = fake_cluster
    server.objects["/api/v1/namespaces/gateway-system/configmaps/envoy-gateway-config"] = server.objects.pop(EG_CONFIG)
    code, out = preflight(config, capsys)
    assert code == 0 and "Envoy Gateway's gateway-system/envoy-gateway-config enables Backend" in out, out


HOSTILE = "\x1b]8;;https://evil.example\x07\x1b[2J### ✅ \u202e"


@pytest.mark.parametrize(
    "configmap, why",
    [
        (None, "no ConfigMap envoy-gateway-config in envoy-gateway-system or gateway-system"),
        ({"data": ["envoy-gateway.yaml"]}, "has no text at data.envoy-gateway.yaml"),
        ({"data": {"envoy-gateway.yaml": 42}}, "has no text at data.envoy-gateway.yaml"),
        ({"data": {"other.yaml": "x"}}, "has no text at data.envoy-gateway.yaml"),
        (envoy_gateway_config("{not: yaml" + HOSTILE), "its text is not YAML"),
        (envoy_gateway_config(EG_HEAD + "when: 2026-13-45\n"), "its text is not YAML"),  # a date Python refuses
        (envoy_gateway_config("[" * 200_000), "its text is"),  # nested too deeply (PyYAML or libyaml says so)
        (envoy_gateway_config(EG_HEAD + "x: " + "a" * (1024 * 1024) + "\n"), "more than a ConfigMap holds"),
        (envoy_gateway_config("- '### ✅ evil.example'\n- b\n"), "its text is not an EnvoyGateway document"),
        (envoy_gateway_config("just text"), "its text is not an EnvoyGateway document"),
        (
            envoy_gateway_config("apiVersion: v1\nkind: EnvoyProxy\nextensionApis: {enableBackend: true}\n"),
            "its text is not an EnvoyGateway document (gateway.envoyproxy.io/v1alpha1)",
        ),
        (envoy_gateway_config(EG_HEAD + "extensionApis: [enableBackend]\n"), "its extensionApis is not a mapping"),
    ],
)
def test_an_envoy_gateway_config_that_cannot_be_read_is_a_warning(fake_cluster, failover_on, capsys, configmap, why):
    """Not where the chart puts it, or not a configuration: the need is stated as a warning (exit 0), never a
    traceback, and nothing of the text is shown."""
    server, config = fake_cluster
    server.objects.pop(EG_CONFIG)
    if configmap is not None:
        server.objects[EG_CONFIG] = configmap
    code, out = preflight(config, capsys)
    assert code == 0, out
    warning = next(line for line in out.splitlines() if "Envoy Gateway's configuration not checked" in line)
    assert warning.startswith("  ! ") and why in warning, out
    assert "the gateway failover of sentiment needs extensionApis.enableBackend: true" in warning
    assert "\x1b" not in out and "evil.example" not in out and "###" not in out


def test_a_configuration_the_credentials_may_not_read_is_a_warning(fake_cluster, failover_on, capsys, monkeypatch):
    server, config = fake_cluster
    real = FakeKube.answer

    def forbidding(self, handler):
        if handler.path.startswith(EG_CONFIG):
            return self.send(handler, 403, b'{"kind":"Status","message":"configmaps is forbidden"}')
        return real(self, handler)

    monkeypatch.setattr(FakeKube, "answer", forbidding)
    code, out = preflight(config, capsys)
    assert code == 0, out
    assert "! Envoy Gateway's configuration not checked:" in out and "configmaps is forbidden" in out, out
