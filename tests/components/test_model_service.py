"""ModelService: restricted pods, probes, GPU scheduling, autoscaling, disruption, canary, monitoring."""

from __future__ import annotations

import json
import re
from typing import Any, cast

import pytest

from components import ModelService, ModelServiceArgs
from components.config import Environment
from modelops_cli.plan import Plan
from modelops_cli.render import kubernetes_resources, manifest
from tests.components.conftest import cluster_config, model_config
from tests.k8s_schema import validate_object

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/m/chat:1@sha256:" + "a" * 64
GPU_POOL: dict[str, Any] = {
    "node_selector": {"modelops/gpu-pool": "a10g"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}
MODEL = {
    "version": "2.4.0",
    "namespace": "models",
    "image": {"context": "models/chat"},
    "gpus": 1,
    "pool": "a10g",
    "resources": {"cpu": "6", "memory": "24Gi"},
    "artifact_uri": "s3://acme-models/chat/2.4.0",
    "probes": {"startup_seconds": 900},
}
"""The prod chat model, as the stack file declares it."""


def service_args(
    *, model: dict[str, Any] | None = None, cluster: dict[str, Any] | None = None, **args: Any
) -> ModelServiceArgs:
    """ModelService's args: the model and cluster as a stack file declares them (with `model`/`cluster`
    changes merged one level deep), and what the composition resolves (`args`)."""
    merged: dict[str, Any] = {**MODEL}
    for key, value in (model or {}).items():
        merged[key] = {**merged[key], **value} if isinstance(merged.get(key), dict) and value is not None else value
    resolved: dict[str, Any] = {
        "model": model_config(**merged),
        "cluster": cluster_config(**(cluster or {})),
        "environment": Environment.PROD,
        "cost_owner": "ml",
        "image": IMAGE,
        "min_replicas": 3,
        "max_replicas": 6,
        **(GPU_POOL if merged.get("gpus") else {}),
        **args,
    }
    return cast(ModelServiceArgs, resolved)


ARGS = service_args()
CPU_ONLY = {"gpus": 0, "pool": None}


def pod_of(built, name="chat-deployment"):
    return built.inputs(name)["spec"]["template"]["spec"]


def test_pods_follow_the_restricted_profile(build):
    pod = pod_of(build(lambda: ModelService("chat", ARGS)))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"] + pod["initContainers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert {"/tmp", "/models"} <= mounts  # writable places on a read-only root
    assert {v["name"]: "emptyDir" in v for v in pod["volumes"]} == {"cache": True, "model": True, "dshm": True}


def test_probes_survive_slow_model_loading(build):
    server = pod_of(build(lambda: ModelService("chat", ARGS)))["containers"][0]
    startup = server["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 900
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert server["lifecycle"]["preStop"] == {"sleep": {"seconds": 15}}


def test_rollouts_get_the_time_a_gpu_model_needs(build):
    # Kubernetes' progress deadline (600 s) and the provider's await (10 min) both end a GPU rollout
    # early: one replica may wait for a node, a multi-GB pull, the artifact copy and a 15-minute load.
    built = build(
        lambda: ModelService(
            "chat", service_args(model={"canary": {"version": "2.5.0", "weight": 10}}, canary_image=IMAGE)
        )
    )
    replica = 300 + 600 + 300 + 900
    stable, canary = built.named("chat-deployment"), built.named("chat-canary-deployment")
    assert stable["inputs"]["spec"]["progressDeadlineSeconds"] == replica + 60
    # the stable track may be at max replicas (6) when a rollout starts; one replica is replaced at a time
    assert stable["customTimeouts"] == {"create": replica * 6 + 120, "update": replica * 6 + 120}
    assert canary["customTimeouts"]["update"] == replica * 1 + 120
    cpu_only = build(
        lambda: ModelService(
            "small",
            service_args(model={**CPU_ONLY, "artifact_uri": None, "probes": {"startup_seconds": 60}}),
        )
    )
    assert cpu_only.named("small-deployment")["customTimeouts"]["create"] == (300 + 600 + 60) * 6 + 120


def test_gpu_request_equals_limit_and_pods_land_on_the_pool(build):
    pod = pod_of(build(lambda: ModelService("chat", ARGS)))
    resources = pod["containers"][0]["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "1"
    assert resources["requests"]["memory"] == resources["limits"]["memory"] == "24Gi"
    assert pod["nodeSelector"] == {"modelops/gpu-pool": "a10g"}
    assert pod["tolerations"] == GPU_POOL["tolerations"]
    zones = [t["topologyKey"] for t in pod["topologySpreadConstraints"]]
    assert "topology.kubernetes.io/zone" in zones


def test_cpu_only_models_ask_for_no_gpu_and_no_pool(build):
    pod = pod_of(build(lambda: ModelService("chat", service_args(model=CPU_ONLY))))
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in pod and "tolerations" not in pod


def test_rollouts_never_drop_capacity_and_the_autoscaler_owns_replicas(build):
    built = build(lambda: ModelService("chat", ARGS))
    deployment = built.inputs("chat-deployment")["spec"]
    assert deployment["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert "replicas" not in deployment
    hpa = built.inputs("chat-hpa")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 6)
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "chat"}
    pdb = built.inputs("chat-pdb")["spec"]
    assert pdb["maxUnavailable"] == 1 < hpa["minReplicas"]  # evictions proceed, capacity never collapses
    assert pdb["selector"]["matchLabels"] == deployment["selector"]["matchLabels"]


def test_keda_replaces_the_hpa_when_a_query_is_configured(build):
    built = build(
        lambda: ModelService(
            "chat", service_args(model={"autoscaling": {"prometheus_query": "sum(queue)", "prometheus_threshold": "5"}})
        )
    )
    assert not built.of_type("HorizontalPodAutoscaler")
    scaler = built.inputs("chat-scaler")["spec"]
    assert scaler["triggers"][0]["metadata"]["query"] == "sum(queue)"
    assert (scaler["minReplicaCount"], scaler["maxReplicaCount"]) == (3, 6)


def test_network_policy_admits_the_configured_proxies_and_address_ranges(build):
    # Envoy Gateway runs its proxies in its own namespace; an ALB in IP mode arrives from VPC addresses
    netpol = build(
        lambda: ModelService(
            "chat",
            service_args(cluster={"ingress_namespace": "envoy-gateway-system", "ingress_cidrs": ["10.0.0.0/16"]}),
        )
    ).inputs("chat-netpol")["spec"]
    peers = netpol["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}}} in peers
    assert {"ipBlock": {"cidr": "10.0.0.0/16"}} in peers


def test_network_policy_admits_only_gateway_and_monitoring(build):
    netpol = build(lambda: ModelService("chat", ARGS)).inputs("chat-netpol")["spec"]
    sources = [
        f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for f in netpol["ingress"][0]["from"]
    ]
    assert sorted(sources) == ["gateway-system", "monitoring"]
    assert netpol["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_service_account_role_reads_only_the_artifact_prefix(build):
    built = build(lambda: ModelService("chat", ARGS))
    policy = json.loads(built.inputs("chat-artifact-read-2.4.0")["policy"])
    resources = {s["Action"]: s["Resource"] for s in policy["Statement"]}
    assert resources == {
        "s3:GetObject": "arn:aws:s3:::acme-models/chat/2.4.0/*",
        "s3:ListBucket": "arn:aws:s3:::acme-models",
    }
    trust = json.loads(built.inputs("chat-role")["assumeRolePolicy"])["Statement"][0]
    assert (
        trust["Condition"]["StringEquals"]["oidc.eks.us-east-1.amazonaws.com/id/ABC:sub"]
        == "system:serviceaccount:models:chat"
    )
    sa = built.inputs("chat-sa")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::123456789012:role/")
    init = pod_of(built)["initContainers"][0]
    assert init["command"][-2:] == ["s3://acme-models/chat/2.4.0", "/models"]


def test_no_role_and_no_init_container_without_an_s3_artifact(build):
    built = build(lambda: ModelService("chat", service_args(model={"artifact_uri": None})))
    assert not built.of_type("iam/role:Role")
    assert "initContainers" not in pod_of(built)


GATEWAY = {"gateway": {"name": "models", "namespace": "gateway-system", "hostname": "models.example"}}


def at_weight(weight: int) -> dict[str, Any]:
    """2.5.0 at `weight`%: its weights default to the stable artifact's URI at the canary's version."""
    return {"canary": {"version": "2.5.0", "weight": weight}}


def test_canary_through_a_gateway_splits_by_weight(build):
    built = build(lambda: ModelService("chat", service_args(model=at_weight(10), cluster=GATEWAY, canary_image=IMAGE)))
    route = built.named("chat-route")
    backends = route["inputs"]["spec"]["rules"][0]["backendRefs"]
    assert {b["name"]: b["weight"] for b in backends} == {"chat-stable": 90, "chat-canary": 10}
    assert sum(b["weight"] for b in backends) == 100
    # the split applies only once both tracks' rollouts are available (Pulumi awaits each Deployment)
    assert {d.rsplit("::", 1)[-1] for d in route["dependencies"]} >= {"chat-deployment", "chat-canary-deployment"}
    assert built.inputs("chat-canary-svc")["spec"]["selector"]["modelops/track"] == "canary"
    canary = built.inputs("chat-canary-deployment")
    assert canary["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == "2.5.0"
    # two replicas: a node drain (the PDB allows one eviction) never leaves the canary's 10% without a backend
    assert canary["spec"]["replicas"] == 2
    assert built.inputs("chat-canary-pdb")["spec"]["maxUnavailable"] == 1
    assert not built.warnings


def test_the_canary_serves_the_canary_version_weights(build):
    built = build(lambda: ModelService("chat", service_args(model=at_weight(10), cluster=GATEWAY, canary_image=IMAGE)))
    fetch = pod_of(built, "chat-canary-deployment")["initContainers"][0]["command"]
    assert fetch[-2:] == ["s3://acme-models/chat/2.5.0", "/models"]
    assert pod_of(built)["initContainers"][0]["command"][-2:] == ["s3://acme-models/chat/2.4.0", "/models"]
    # a grant per version, so that promoting or bumping never rewrites the grant running pods read with
    for version in ("2.4.0", "2.5.0"):
        policy = json.loads(built.inputs(f"chat-artifact-read-{version}")["policy"])
        get = next(s for s in policy["Statement"] if s["Action"] == "s3:GetObject")
        assert get["Resource"] == f"arn:aws:s3:::acme-models/chat/{version}/*"
    # each track's pods start only once their version's grant exists
    for deployment, version in (("chat-deployment", "2.4.0"), ("chat-canary-deployment", "2.5.0")):
        needs = {d.rsplit("::", 1)[-1] for d in built.named(deployment)["dependencies"]}
        assert f"chat-artifact-read-{version}" in needs, needs


@pytest.mark.parametrize("gateway", [True, False])
def test_weight_zero_stops_the_canary_traffic_and_pods(build, gateway):
    # the documented roll-back: `canary.weight: 0`
    extra = GATEWAY if gateway else {}
    built = build(lambda: ModelService("chat", service_args(model=at_weight(0), cluster=extra, canary_image=IMAGE)))
    assert built.inputs("chat-canary-deployment")["spec"]["replicas"] == 0
    assert "chat-canary-pdb" not in built.names()  # a PDB over no pods would only block drains
    if gateway:
        backends = built.inputs("chat-route")["spec"]["rules"][0]["backendRefs"]
        assert {b["name"]: b["weight"] for b in backends} == {"chat-stable": 100, "chat-canary": 0}


def test_canary_without_a_gateway_warns_that_the_split_is_approximate(build):
    built = build(lambda: ModelService("chat", service_args(model=at_weight(50), canary_image=IMAGE)))
    assert built.inputs("chat-canary-deployment")["spec"]["replicas"] == 3
    assert not built.of_type("HTTPRoute")
    assert any("approximate" in w for w in built.warnings)


def test_monitoring_and_alerts(build):
    built = build(lambda: ModelService("chat", ARGS))
    assert built.inputs("chat-monitor")["spec"]["endpoints"][0]["path"] == "/metrics"
    alerts = {r["alert"] for r in built.inputs("chat-alerts")["spec"]["groups"][0]["rules"]}
    assert alerts == {"ModelHighLatency", "ModelHighErrorRate", "ModelUnavailable"}


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"model": {"autoscaling": {"prometheus_query": "sum(q)"}}},
        {
            "model": {"canary": {"version": "2.5.0", "weight": 20}},
            "canary_image": IMAGE,
            "cluster": {"gateway": {"name": "g", "namespace": "gateway-system", "hostname": "h.example"}},
        },
    ],
)
def test_every_object_passes_strict_schemas(build, variant):
    built = build(lambda: ModelService("chat", service_args(**variant)))
    for resource in kubernetes_resources(Plan(built.steps, {})):
        validate_object(manifest(resource), "1.31")


def test_gpu_pods_get_a_sized_shared_memory_and_accounted_scratch(build):
    # The container runtime's 64 MiB /dev/shm breaks PyTorch data loaders and NCCL; the model's
    # scratch volume is limited and requested as ephemeral storage, not taken silently from the node.
    pod = pod_of(build(lambda: ModelService("chat", service_args(model={"gpus": 2, "resources": {"scratch": "80Gi"}}))))
    volumes = {v["name"]: v["emptyDir"] for v in pod["volumes"]}
    assert volumes["dshm"] == {"medium": "Memory", "sizeLimit": "2Gi"}
    assert volumes["model"] == {"sizeLimit": "80Gi"}
    server = pod["containers"][0]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in server["volumeMounts"]
    assert server["resources"]["requests"]["ephemeral-storage"] == "82Gi"
    assert server["resources"]["limits"]["ephemeral-storage"] == "82Gi"
    sized = pod_of(build(lambda: ModelService("chat", service_args(model={"resources": {"shm": "8Gi"}}))))
    assert {v["name"]: v["emptyDir"] for v in sized["volumes"]}["dshm"]["sizeLimit"] == "8Gi"
    cpu_only = pod_of(build(lambda: ModelService("s", service_args(model=CPU_ONLY))), "s-deployment")
    assert "dshm" not in {v["name"] for v in cpu_only["volumes"]}


def test_prometheus_selects_the_monitors_and_scrapes_each_pod_once(build):
    # kube-prometheus-stack selects ServiceMonitors and PrometheusRules by its release label; with a
    # canary through a gateway, three Services select the model's pods: only the main one is scraped.
    built = build(
        lambda: ModelService(
            "chat",
            service_args(
                model=at_weight(10),
                cluster={**GATEWAY, "prometheus_labels": {"release": "kube-prometheus-stack"}},
                canary_image=IMAGE,
            ),
        )
    )
    for name in ("chat-monitor", "chat-alerts"):
        assert built.inputs(name)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = built.inputs("chat-monitor")["spec"]["selector"]["matchLabels"]
    scraped = [
        n
        for n in ("chat-svc", "chat-stable-svc", "chat-canary-svc")
        if all(built.inputs(n)["metadata"]["labels"].get(k) == v for k, v in selector.items())
    ]
    assert scraped == ["chat-svc"]


@pytest.mark.parametrize("keda", [False, True])
def test_switching_between_hpa_and_keda_replaces_the_autoscaler_deleting_first(keda):
    """KEDA's admission webhook refuses a ScaledObject for a Deployment an HPA still scales, and Pulumi
    creates new resources before it deletes old ones: the switch is one replacement of an aliased resource,
    the old kind deleted first. (The real-engine tier runs the switch; this holds the options.)"""
    from modelops_cli.offline.engine import capture

    args = (
        service_args(model={"autoscaling": {"prometheus_query": "sum(rate(x[1m]))", "prometheus_threshold": "5"}})
        if keda
        else ARGS
    )
    registrations, _ = capture(lambda: ModelService("chat", args))
    scaler = next(r for r in registrations if r.name in ("chat-hpa", "chat-scaler"))
    assert scaler.name == ("chat-scaler" if keda else "chat-hpa")
    assert scaler.delete_before_replace is True and scaler.replace_on_changes == ["kind", "apiVersion"]
    other = (
        ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "chat-hpa")
        if keda
        else ("kubernetes:keda.sh/v1alpha1:ScaledObject", "chat-scaler")
    )
    # (the SDK's HPA class adds aliases of its own, for its older API versions)
    assert other in [(a["spec"]["type"], a["spec"].get("name")) for a in scaler.aliases]
    spec = scaler.inputs["spec"]
    behaviour = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] if keda else spec["behavior"]
    # the same slow scale-down either way: a replica that goes takes a loaded model with it
    assert behaviour["scaleDown"] == {
        "stabilizationWindowSeconds": 600,
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
    }


def test_scale_to_zero_wakes_on_the_activation_threshold_and_states_its_cold_start(build):
    built = build(
        lambda: ModelService(
            "chat",
            service_args(
                model={"autoscaling": {"prometheus_query": "sum(q)", "activation_threshold": "0.5"}}, min_replicas=0
            ),
        )
    )
    scaler = built.inputs("chat-scaler")
    assert scaler["spec"]["minReplicaCount"] == 0
    assert scaler["spec"]["triggers"][0]["metadata"]["activationThreshold"] == "0.5"
    # node launch + image pull + artifact copy + the model's start-up
    assert scaler["metadata"]["annotations"]["modelops/cold-start-seconds"] == str(300 + 600 + 300 + 900)
    assert any("scales to zero when idle" in d["message"] for d in built.plan.get("diagnostics", []))
    # a PDB over zero pods blocks nothing; the one over the replicas KEDA wakes still paces drains
    assert built.inputs("chat-pdb")["spec"]["maxUnavailable"] == 1
    kept = build(lambda: ModelService("chat", service_args(model={"autoscaling": {"prometheus_query": "sum(q)"}})))
    assert "activationThreshold" not in kept.inputs("chat-scaler")["spec"]["triggers"][0]["metadata"]
    assert "annotations" not in kept.inputs("chat-scaler")["metadata"]
    assert [t["type"] for t in kept.inputs("chat-scaler")["spec"]["triggers"]] == ["prometheus"]


def test_at_scale_to_zero_the_canary_sleeps_and_wakes_with_the_model(build):
    """Fixed canary replicas would hold their GPUs through every idle night (staging's summarizer did) and
    serve the canary's share alone: the canary gets a ScaledObject of its own with the model's triggers, from
    zero to its replica count, and its Deployment no replica count for an apply to reset."""
    hours = {"timezone": "UTC", "start": "0 8 * * 1-5", "end": "0 20 * * 1-5"}
    built = build(
        lambda: ModelService(
            "chat",
            service_args(
                model={"autoscaling": {"prometheus_query": "sum(q)", "active_hours": hours}, **at_weight(20)},
                cluster=GATEWAY,
                canary_image=IMAGE,
                min_replicas=0,
            ),
        )
    )
    canary = built.inputs("chat-canary-keda")
    stable = built.inputs("chat-scaler")
    assert canary["spec"]["scaleTargetRef"]["name"] == "chat-canary"
    assert (canary["spec"]["minReplicaCount"], canary["spec"]["maxReplicaCount"]) == (0, 2)
    # the same wake-up: the model's query and activation, its hours (at the canary's size)
    assert canary["spec"]["triggers"][0] == stable["spec"]["triggers"][0]
    assert canary["spec"]["triggers"][1]["metadata"]["desiredReplicas"] == "2"
    assert canary["metadata"]["annotations"]["modelops/cold-start-seconds"].isdigit()
    assert "replicas" not in built.inputs("chat-canary-deployment")["spec"]
    # a model that keeps replicas keeps a fixed canary
    kept = build(
        lambda: ModelService(
            "chat",
            service_args(
                model={"autoscaling": {"prometheus_query": "sum(q)"}, **at_weight(20)},
                cluster=GATEWAY,
                canary_image=IMAGE,
            ),
        )
    )
    # ...at a fixed count that KEDA holds (paused-replicas), never one the Deployment sets: the canary's replicas keep
    # one owner whatever the model's replicas become, so no change of `replicas.min` or `weight` moves them between
    # field managers (a server-side apply conflict on a real cluster: pulumi/pulumi-kubernetes#2491)
    held = kept.named("chat-canary-keda")
    assert held["inputs"]["metadata"]["annotations"] == {"autoscaling.keda.sh/paused-replicas": "2"}
    assert (held["inputs"]["spec"]["minReplicaCount"], held["inputs"]["spec"]["maxReplicaCount"]) == (2, 2)
    assert "replicas" not in kept.inputs("chat-canary-deployment")["spec"]


def test_active_hours_add_keda_cron_trigger_beside_the_query(build):
    """KEDA is active while any trigger is: the cron trigger holds one replica in the hours (waking a
    scaled-to-zero model before the first request), the query scales above it. Metadata as KEDA's cron
    scaler documents it (keda.sh/docs/latest/scalers/cron): IANA timezone, start/end in Linux cron format,
    desiredReplicas as a string."""
    hours = {"timezone": "America/Los_Angeles", "start": "0 8 * * 1-5", "end": "0 20 * * 1-5"}
    built = build(
        lambda: ModelService(
            "chat",
            service_args(model={"autoscaling": {"prometheus_query": "sum(q)", "active_hours": hours}}, min_replicas=0),
        )
    )
    triggers = built.inputs("chat-scaler")["spec"]["triggers"]
    assert [t["type"] for t in triggers] == ["prometheus", "cron"]
    assert triggers[1]["metadata"] == {**hours, "desiredReplicas": "1"}


def test_mounted_weights_come_read_only_from_s3_without_a_copy(build):
    """artifactAccess: mount. The Mountpoint for Amazon S3 CSI driver serves the model's prefix: a static,
    read-only PersistentVolume bound to one claim, mounted with the pod's own role (authenticationSource: pod),
    as the pods' user; no init container copies the weights, and no local disk is reserved for them."""
    built = build(
        lambda: ModelService(
            "chat", service_args(model={"artifact_access": "mount", **at_weight(10)}, canary_image=IMAGE)
        )
    )
    volume = built.inputs("chat-weights-2.4.0-pv")
    assert volume["metadata"]["name"] == "modelops-models-chat-weights-2.4.0"
    spec = volume["spec"]
    # no class on either side: absent on the PV (the API drops a PV's empty storageClassName: the real
    # preview shows none), "" on the claim (absent there, the default StorageClass would be filled in)
    assert spec["accessModes"] == ["ReadOnlyMany"] and "storageClassName" not in spec
    assert spec["claimRef"] == {"namespace": "models", "name": "chat-weights-2.4.0"}
    assert spec["csi"] == {
        "driver": "s3.csi.aws.com",
        "volumeHandle": "modelops-models-chat-weights-2.4.0",
        "volumeAttributes": {"bucketName": "acme-models", "authenticationSource": "pod"},
    }
    assert {"read-only", "prefix chat/2.4.0/", "region us-east-1", "allow-other"} <= set(spec["mountOptions"])
    claim = built.inputs("chat-weights-2.4.0-pvc")["spec"]
    assert claim["volumeName"] == "modelops-models-chat-weights-2.4.0" and claim["accessModes"] == ["ReadOnlyMany"]
    assert claim["storageClassName"] == ""
    # the canary mounts its own version's prefix, through a volume named by its version: a version bump (or a
    # promotion) never re-points a volume that running pods have mounted
    assert "prefix chat/2.5.0/" in built.inputs("chat-weights-2.5.0-pv")["spec"]["mountOptions"]
    canary_pod = pod_of(built, "chat-canary-deployment")
    canary_volume = next(v for v in canary_pod["volumes"] if v["name"] == "model")
    assert canary_volume["persistentVolumeClaim"]["claimName"] == "chat-weights-2.5.0"
    pod = pod_of(built)
    assert "initContainers" not in pod
    model_volume = next(v for v in pod["volumes"] if v["name"] == "model")
    assert model_volume == {
        "name": "model",
        "persistentVolumeClaim": {"claimName": "chat-weights-2.4.0", "readOnly": True},
    }
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "model")
    assert mount["readOnly"] is True
    assert pod["containers"][0]["resources"]["requests"]["ephemeral-storage"] == "2Gi"  # the /tmp cache only
    # the role the mount reads with is the one scoped to the model's prefixes
    policy = json.loads(built.inputs("chat-artifact-read-2.4.0")["policy"])
    assert policy["Statement"][0]["Resource"] == "arn:aws:s3:::acme-models/chat/2.4.0/*"
    needs = {d.rsplit("::", 1)[-1] for d in built.named("chat-deployment")["dependencies"]}
    assert {"chat-weights-2.4.0-pvc", "chat-artifact-read-2.4.0"} <= needs
    for resource in kubernetes_resources(Plan(built.steps, {})):
        validate_object(manifest(resource), "1.31")


def test_version_names_become_kubernetes_names_without_collisions():
    from components.common import dns_label

    assert dns_label("2.4.0") == "2.4.0"
    assert dns_label("1.0_A") != dns_label("1.0-a")
    assert all(
        re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", dns_label(v)) for v in ("1.0_A", "V2", "-x.", "2.4.0-rc.1")
    )


def test_rolling_back_a_canary_of_a_model_at_zero_pauses_its_scaler_instead_of_setting_replicas(build):
    """`weight: 0` for a model that scales to zero: KEDA's HPA owned the canary's replicas, so setting
    `spec.replicas: 0` would conflict with it (server-side apply; pulumi/pulumi-kubernetes#2491, #2569). KEDA is told
    instead (`autoscaling.keda.sh/paused-replicas: "0"`: it scales the canary to 0 and deletes its HPA)."""
    built = build(
        lambda: ModelService(
            "chat",
            service_args(
                model={"autoscaling": {"prometheus_query": "sum(q)"}, **at_weight(0)},
                cluster=GATEWAY,
                canary_image=IMAGE,
                min_replicas=0,
            ),
        )
    )
    paused = built.inputs("chat-canary-keda")
    assert paused["metadata"]["annotations"] == {"autoscaling.keda.sh/paused-replicas": "0"}
    assert "modelops/cold-start-seconds" not in paused["metadata"].get("annotations", {})
    assert "replicas" not in built.inputs("chat-canary-deployment")["spec"]
    assert "chat-canary-pdb" not in built.names()
    # the stable scaler puts back a replica if it goes while the model sleeps (a switch to an HPA, which does
    # nothing for a target at zero)
    assert built.inputs("chat-scaler")["spec"]["advanced"]["restoreToOriginalReplicaCount"] is True


def test_a_canary_whose_replicas_this_program_sets_takes_them_over_by_force(build):
    """A model scaled on CPU (an HPA) keeps a fixed canary; after a switch from KEDA, KEDA set those replicas last:
    `pulumi.com/patchForce` lets the apply take them back instead of failing on the conflict."""
    built = build(lambda: ModelService("chat", service_args(model=at_weight(10), cluster=GATEWAY, canary_image=IMAGE)))
    canary = built.inputs("chat-canary-deployment")
    assert canary["spec"]["replicas"] == 2
    assert canary["metadata"]["annotations"] == {"pulumi.com/patchForce": "true"}
    assert "annotations" not in built.inputs("chat-deployment")["metadata"]


def test_up_waits_for_the_gateway_to_admit_the_route(build):
    """A route the Gateway does not admit (the Gateway API default `allowedRoutes.namespaces.from: Same` keeps a
    route in `models` off a Gateway in `gateway-system`) answers every request with a 404 while `up` reports
    success. The Kubernetes provider awaits the route's own status instead (`pulumi.com/waitFor`, JSONPath as
    `kubectl wait` reads it): Accepted and ResolvedRefs for its parent, within a bounded wait."""
    route = build(lambda: ModelService("chat", service_args(cluster=GATEWAY))).named("chat-route")
    waits = json.loads(route["inputs"]["metadata"]["annotations"]["pulumi.com/waitFor"])
    assert waits == [
        'jsonpath={.status.parents[*].conditions[?(@.type=="Accepted")].status}=True',
        'jsonpath={.status.parents[*].conditions[?(@.type=="ResolvedRefs")].status}=True',
    ]
    assert route["customTimeouts"] == {"create": 300.0, "update": 300.0}  # seconds, as the engine records them


def test_a_prefix_grant_never_lists_a_sibling_prefix():
    """`chat/1` must not list `chat/10/…`: the ListBucket condition names `<prefix>/*` only (IAM's StringLike `*`
    matches any run, empty included, so `chat/1/` itself, which `aws s3 sync` and Mountpoint's `prefix chat/1/`
    list with, still passes: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_String)."""
    from fnmatch import fnmatchcase

    from components.model_service import artifact_read_policy

    policy = artifact_read_policy("aws", "acme-models", "chat/1", "chat/2")
    [listing] = [s for s in policy["Statement"] if s["Action"] == "s3:ListBucket"]
    patterns = listing["Condition"]["StringLike"]["s3:prefix"]
    assert patterns == ["chat/1/*", "chat/2/*"]
    assert any(fnmatchcase("chat/1/", p) for p in patterns)
    assert not any(fnmatchcase(prefix, p) for p in patterns for prefix in ("chat/10/", "chat/1", "chat/10"))
