"""Karpenter scheduling: every model's pods get a node from the GPU pool the program meant, launched by the real
Karpenter (`sigs.k8s.io/karpenter` v1.15.0, its provisioner, scheduler, NodeClaim lifecycle and limits) with its
kwok cloud provider (tools/karpenter), on a local control plane of its own with no node until Karpenter makes one.

What stands in, and why (tools/karpenter/main.go says it in full):
- the kwok provider serves only its KWOKNodeClass; the wrapper registers the AWS provider's EC2NodeClass (the kind
  the NodePools name) as the supported node class and launches through kwok with a same-named KWOKNodeClass;
- nothing here resolves AMIs, subnets, security groups or the instance profile, which is what makes an EC2NodeClass
  Ready on AWS (the provider's nodeclass controllers set AMIsReady, SubnetsReady, SecurityGroupsReady,
  InstanceProfileReady and ValidationSucceeded, then Ready: aws/karpenter-provider-aws
  pkg/controllers/nodeclass/validation.go): the test marks each EC2NodeClass Ready itself, saying so in the reason;
- the instance types are the GPU catalogue's (components/data/gpu_instances.json) with the labels the AWS provider
  gives them (computeRequirements in pkg/providers/instancetype/types.go: `karpenter.k8s.aws/instance-family`,
  `-size`, `-category`, `-generation`, `-cpu`, `-memory` in MiB, `-gpu-name` lower-case, `-gpu-manufacturer`,
  `-gpu-count`, `-gpu-memory` in MiB, `-local-nvme` in GB), offered on-demand at the catalogue's price and as spot
  at 0.7 of it, the ratio upstream's kwok example (kwok/examples/aws_instance_types.json) uses throughout;
- the cluster's own CPU capacity is a `general` NodePool of m6i types (prices from
  https://aws.amazon.com/ec2/pricing/on-demand/), as the platform would define it next to the program's pools.

Karpenter behaviour the assertions rely on, from its documentation:
- a NodePool's template labels and taints are put on its nodes, and `karpenter.sh/nodepool`,
  `karpenter.sh/capacity-type` and `node.kubernetes.io/instance-type` label them
  (https://karpenter.sh/v1.15/concepts/nodepools/, "Well-Known Labels" in scheduling);
- with spot and on-demand both allowed, Karpenter launches spot (https://karpenter.sh/v1.15/concepts/scheduling/,
  "Capacity Type": "Karpenter prioritizes Spot offerings if the NodePool allows Spot and on-demand instances");
- `spec.limits` caps the resources of the nodes a NodePool launches; past it, pods stay Pending
  (https://karpenter.sh/v1.15/concepts/nodepools/#speclimits);
- a pod that does not tolerate a NodePool's taints is not provisioned by it
  (https://karpenter.sh/v1.15/concepts/scheduling/#taints-and-tolerations).
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import StackConfig, StackConfigError
from components.gpu_catalogue import Catalogue, load_catalogue
from modelops_cli.offline.engine import run_program
from modelops_cli.plan import from_json
from modelops_cli.render import kubernetes_resources, render_text
from modelops_cli.stackfile import load_stack
from tests.e2e.cluster import LocalCluster, free_port, required_tools, tools_bin_dir

ROOT = Path(__file__).resolve().parents[2]
KARPENTER_CRDS = ROOT / "tests" / "upstream" / "crds-karpenter"
ENVS = ("staging", "prod")
GENERAL_POOL = "general"
GPU = "nvidia.com/gpu"
SPOT_PRICE_RATIO = 0.7
"""Spot over on-demand in upstream's kwok example (kwok/examples/aws_instance_types.json), for every type."""
CPU_TYPES = {"m6i.large": (2, 8, 0.096), "m6i.xlarge": (4, 16, 0.192), "m6i.2xlarge": (8, 32, 0.384)}
"""vCPUs, GiB and the on-demand USD per hour (us-east-1 and us-west-2) of the general pool's types."""
SETTLE_SECONDS = 240
KARPENTER_LIMIT_MESSAGE = re.compile(
    r"Failed to schedule pod.*(node limits have been exhausted|all available instance types exceed limits) "
    r"for nodepool.*NodePool=(?P<pool>[\w-]+)"
)


def karpenter_binary() -> Path:
    """The wrapper from the tier's tools, with conftest's convention: missing fails the tier under ./run e2e,
    and skips it elsewhere."""
    return required_tools("karpenter") / "karpenter"


# --- what the program emits ---------------------------------------------------------------------------------------
def program_objects(env: str, stack_file: Path | None = None) -> list[dict[str, Any]]:
    """The Kubernetes objects of the stack's offline plan, as `modelops render` writes them (values known only
    after `pulumi up`, the images built in the same update, as a visible placeholder)."""
    plan = from_json(run_program(load_stack(env, stack_file=stack_file)), f"stack {env}")
    return [yaml.safe_load(render_text(resource)[1]) for resource in kubernetes_resources(plan)]


def al2023_device_plugin(env: str, tmp: Path) -> list[dict[str, Any]]:
    """The NVIDIA device plugin the program emits for an AL2023 pool (Bottlerocket's NVIDIA variants run their own,
    so the stacks, on Bottlerocket, emit none): the first pool of the stack switched to `amiFamily: al2023`."""
    data = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{env}.yaml").read_text())
    pools = data["config"]["modelops:gpuPools"]
    pools[next(iter(pools))]["amiFamily"] = "al2023"
    variant = tmp / f"Pulumi.{env}.yaml"
    variant.write_text(yaml.safe_dump(data))
    return [o for o in program_objects(env, variant) if o["metadata"]["name"].startswith("nvidia-")]


# --- what the cloud offers ----------------------------------------------------------------------------------------
def aws_labels(name: str, vcpus: int, memory_gib: int) -> dict[str, str]:
    family, size = name.split(".")
    category, generation = re.match(r"([a-z]+)(\d+)", family).groups()  # type: ignore[union-attr]
    return {
        "karpenter.k8s.aws/instance-family": family,
        "karpenter.k8s.aws/instance-size": size,
        "karpenter.k8s.aws/instance-category": category,
        "karpenter.k8s.aws/instance-generation": generation,
        "karpenter.k8s.aws/instance-cpu": str(vcpus),
        "karpenter.k8s.aws/instance-memory": str(memory_gib * 1024),
    }


def offerings(zones: list[str], on_demand_price: float) -> list[dict[str, Any]]:
    prices = {"on-demand": on_demand_price, "spot": round(on_demand_price * SPOT_PRICE_RATIO, 6)}
    return [
        {
            "Price": price,
            "Available": True,
            "Requirements": [
                {"key": "karpenter.sh/capacity-type", "operator": "In", "values": [capacity_type]},
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]},
            ],
        }
        for zone in zones
        for capacity_type, price in prices.items()
    ]


def instance_types(catalogue: Catalogue, region: str, zones: list[str]) -> list[dict[str, Any]]:
    """kwok's instance types file (kwok/cloudprovider/helpers.go InstanceTypeOptions) plus each type's AWS labels."""
    types = []
    for t in catalogue.instance_types.values():
        labels = aws_labels(t.name, t.vcpus, t.memory_gib) | {
            "karpenter.k8s.aws/instance-gpu-name": t.gpu_model.lower().replace(" ", "-"),
            "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
            "karpenter.k8s.aws/instance-gpu-count": str(t.gpus),
            "karpenter.k8s.aws/instance-gpu-memory": str(t.gpu_memory_gib * 1024),
        }
        if t.instance_store_gb:
            labels["karpenter.k8s.aws/instance-local-nvme"] = str(t.instance_store_gb)
        resources = {"cpu": str(t.vcpus), "memory": f"{t.memory_gib}Gi", GPU: str(t.gpus)}
        price = catalogue.on_demand_usd_per_hour[region][t.name]
        types.append(_instance_type(t.name, resources, offerings(zones, price), labels))
    for name, (vcpus, memory_gib, price) in CPU_TYPES.items():
        resources = {"cpu": str(vcpus), "memory": f"{memory_gib}Gi"}
        types.append(_instance_type(name, resources, offerings(zones, price), aws_labels(name, vcpus, memory_gib)))
    return types


def _instance_type(name: str, resources: dict, offers: list, labels: dict) -> dict[str, Any]:
    return {
        "name": name,
        "architecture": "amd64",
        "operatingSystems": ["linux"],
        "resources": resources,
        "offerings": offers,
        "labels": labels,
    }


def general_pool(cfg: StackConfig) -> list[dict[str, Any]]:
    """The cluster's CPU capacity, as a platform stack would declare it beside the program's GPU pools."""
    discovery = [{"tags": {"karpenter.sh/discovery": cfg.cluster.discovery_tag or cfg.cluster.name}}]
    node_class = {
        "apiVersion": "karpenter.k8s.aws/v1",
        "kind": "EC2NodeClass",
        "metadata": {"name": GENERAL_POOL},
        "spec": {
            "amiSelectorTerms": [{"alias": "al2023@latest"}],
            "role": cfg.cluster.node_role,
            "subnetSelectorTerms": discovery,
            "securityGroupSelectorTerms": discovery,
            "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": "200Gi", "volumeType": "gp3"}}],
        },
    }
    requirements = [
        {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["m"]},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
    ]
    node_pool = {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": GENERAL_POOL},
        "spec": {
            "template": {
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": GENERAL_POOL},
                    "requirements": requirements,
                }
            },
            "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "10m"},
        },
    }
    return [node_class, node_pool]


# --- the cluster ------------------------------------------------------------------------------------------------
@dataclass
class KarpenterRun:
    env: str
    cfg: StackConfig
    cluster: LocalCluster
    objects: list[dict[str, Any]]
    """What was applied: the program's objects (and the AL2023 device plugin)."""

    def json(self, *args: str) -> list[dict[str, Any]]:
        return json.loads(self.cluster.kubectl("get", *args, "-o", "json").stdout)["items"]

    def nodes(self) -> dict[str, dict[str, Any]]:
        return {n["metadata"]["name"]: n for n in self.json("nodes")}

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        return self.json("pods", "-n", namespace)

    def karpenter_messages(self, namespace: str, pod: str) -> list[str]:
        """Karpenter's scheduling events on a pod (kube-scheduler's FailedScheduling reads "0/N nodes ...")."""
        events = self.json("events", "-n", namespace, f"--field-selector=involvedObject.name={pod}")
        return [e["message"] for e in events if e.get("message", "").startswith("Failed to schedule pod")]


def mark_node_classes_ready(cluster: LocalCluster) -> None:
    """Stand in for the AWS provider's node class controllers (AMIs, subnets, security groups, instance profile,
    validation): each EC2NodeClass Ready, the reason saying who set it."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    types = ["AMIsReady", "SubnetsReady", "SecurityGroupsReady", "InstanceProfileReady", "ValidationSucceeded"]
    conditions = [
        {"type": t, "status": "True", "reason": "ModelopsE2EStandIn", "message": "", "lastTransitionTime": now}
        for t in [*types, "Ready"]
    ]
    names = cluster.kubectl("get", "ec2nodeclasses", "-o", "name").stdout.split()
    for name in names:
        patch = json.dumps({"status": {"conditions": conditions}})
        cluster.kubectl("patch", name, "--subresource=status", "--type=merge", "-p", patch)


def start_karpenter(cluster: LocalCluster, cfg: StackConfig, workdir: Path) -> None:
    types_file = workdir / "instance-types.json"
    zones = list(cfg.cluster.availability_zones)
    types_file.write_text(json.dumps(instance_types(load_catalogue(), cfg.cluster.region, zones), indent=1))
    env = {
        "KUBECONFIG": str(cluster.kubeconfig_path),
        "INSTANCE_TYPES_FILE_PATH": str(types_file),
        "DISABLE_LEADER_ELECTION": "true",
        # binds ":<port>" (every interface): a free port each, so parallel clusters do not collide
        "METRICS_PORT": str(free_port()),
        "HEALTH_PROBE_PORT": str(free_port()),
        "LOG_LEVEL": "debug",
    }
    cluster.spawn("karpenter", ["karpenter"], env=env)


def apply_in_order(cluster: LocalCluster, objects: list[dict[str, Any]]) -> None:
    """Namespaces first, node classes before the pools naming them: as the program's dependencies order them."""
    first = ("Namespace", "EC2NodeClass", "NodePool")
    ordered = sorted(objects, key=lambda o: first.index(o["kind"]) if o["kind"] in first else len(first))
    cluster.apply(*ordered)


@pytest.fixture(scope="module", params=ENVS)
def run(request, tmp_path_factory) -> Iterator[KarpenterRun]:
    env = request.param
    karpenter_binary()
    bin_dir = tools_bin_dir()
    assert bin_dir is not None
    workdir = tmp_path_factory.mktemp(f"karpenter-{env}")
    cfg = load_stack(env).model
    objects = program_objects(env)
    if env == "staging":
        objects += al2023_device_plugin(env, workdir)
    cluster = LocalCluster(bin_dir, workdir / "cluster")
    try:
        cluster.start()
        # NodeClaim and KWOKNodeClass, and core's NodePool CRD over the AWS provider's: the binary's own release
        cluster.kubectl("apply", "--server-side", "-f", str(KARPENTER_CRDS))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        cluster.apply(
            *(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                for ns in ("monitoring", "gateway-system")
            )
        )
        start_karpenter(cluster, cfg, workdir)
        apply_in_order(cluster, [*general_pool(cfg), *objects])
        mark_node_classes_ready(cluster)
        result = KarpenterRun(env, cfg, cluster, objects)
        wait_settled(result)
        yield result
    finally:
        cluster.stop()


# --- settling and judging -----------------------------------------------------------------------------------------
def gpu_daemon_sets(run: KarpenterRun) -> list[dict[str, Any]]:
    return [
        ds
        for ds in run.json("daemonsets", "-n", "kube-system")
        if "modelops/gpu-pool" in (ds["spec"]["template"]["spec"].get("nodeSelector") or {})
    ]


def unsettled(run: KarpenterRun) -> list[str]:
    """What still moves: Deployments below their HPA's minimum or not all ready, pending pods, GPU DaemonSets not
    on every node they select."""
    waiting = []
    minimum = {h["spec"]["scaleTargetRef"]["name"]: h["spec"]["minReplicas"] for h in run.json("hpa", "-n", "models")}
    for d in run.json("deployments", "-n", "models"):
        name, want = d["metadata"]["name"], d["spec"]["replicas"]
        if want < minimum.get(name, 0) or d["status"].get("readyReplicas", 0) != want:
            waiting.append(f"deployment {name}: {d['status'].get('readyReplicas', 0)}/{want} ready")
    waiting += [f"pod {p['metadata']['name']} pending" for p in run.pods("models") if not p["spec"].get("nodeName")]
    for ds in gpu_daemon_sets(run):
        s = ds["status"]
        if not s.get("desiredNumberScheduled") or s.get("numberReady", 0) != s["desiredNumberScheduled"]:
            waiting.append(
                f"daemonset {ds['metadata']['name']}: {s.get('numberReady', 0)}/{s.get('desiredNumberScheduled')}"
            )
    return waiting


def wait_settled(run: KarpenterRun, timeout: float = SETTLE_SECONDS) -> None:
    deadline, waiting = time.monotonic() + timeout, ["not checked"]
    while time.monotonic() < deadline:
        run.cluster.check_alive("karpenter")
        waiting = unsettled(run)
        if not waiting:
            return
        time.sleep(3)
    pending = [p["metadata"]["name"] for p in run.pods("models") if not p["spec"].get("nodeName")]
    events = {name: run.karpenter_messages("models", name) for name in pending}
    pytest.fail(
        f"{run.env}: not settled after {timeout}s: {waiting}\nKarpenter's events: {events}\n"
        f"karpenter log:\n{run.cluster.logs('karpenter', 60)}"
    )


def allowed_types(cfg: StackConfig, pool: str) -> set[str]:
    spec = cfg.gpu_pools[pool]
    return {t.name for t in load_catalogue().types_for(spec.instance_families, spec.instance_types)}


def placement_problems(run: KarpenterRun, pods: list[dict[str, Any]]) -> list[str]:
    """Each model pod against the pool the stack file assigns its model: the node's NodePool, pool label,
    instance type and capacity type; a CPU-only model's node is the general pool's and has no GPU."""
    nodes, problems = run.nodes(), []
    for pod in pods:
        name, model = pod["metadata"]["name"], pod["metadata"]["labels"]["app.kubernetes.io/name"]
        node = nodes.get(pod["spec"].get("nodeName", ""))
        if node is None:
            problems.append(f"{name}: not scheduled; Karpenter: {run.karpenter_messages('models', name)}")
            continue
        labels, pool = node["metadata"]["labels"], run.cfg.models[model].pool
        where = f"{name} on {node['metadata']['name']}"
        if pool is None:
            if labels.get("karpenter.sh/nodepool") != GENERAL_POOL or GPU in node["status"]["capacity"]:
                problems.append(f"{where}: a CPU-only model on pool {labels.get('karpenter.sh/nodepool')}")
            continue
        allowed_capacity = [str(c) for c in run.cfg.capacity_types(run.cfg.gpu_pools[pool])]
        if labels.get("karpenter.sh/nodepool") != pool or labels.get("modelops/gpu-pool") != pool:
            problems.append(f"{where}: pool {labels.get('karpenter.sh/nodepool')}, meant {pool}")
        if labels.get("node.kubernetes.io/instance-type") not in allowed_types(run.cfg, pool):
            problems.append(f"{where}: instance type {labels.get('node.kubernetes.io/instance-type')} not in {pool}'s")
        if labels.get("karpenter.sh/capacity-type") not in allowed_capacity:
            problems.append(f"{where}: capacity {labels.get('karpenter.sh/capacity-type')} not in {allowed_capacity}")
    return problems


def served_models(run: KarpenterRun) -> set[str]:
    """The models the stack serves from the cluster (a Deployment each; `fallback: only` has none)."""
    return {o["metadata"]["labels"]["app.kubernetes.io/name"] for o in run.objects if o["kind"] == "Deployment"}


def pool_nodes(run: KarpenterRun, pool: str) -> list[dict[str, Any]]:
    return [n for n in run.nodes().values() if n["metadata"]["labels"].get("karpenter.sh/nodepool") == pool]


# --- the tests ------------------------------------------------------------------------------------------------------
def test_karpenter_launched_every_node_with_its_pools_labels_and_taints(run):
    """No node was registered by hand: each is a NodeClaim's, from a NodePool, labelled and tainted from its
    template, and a GPU pool's node carries the AWS labels of its instance type."""
    nodes = run.nodes()
    claims = {c["status"].get("nodeName"): c for c in run.json("nodeclaims")}
    assert nodes, "Karpenter launched no node"
    for name, node in nodes.items():
        labels = node["metadata"]["labels"]
        assert name in claims, f"{name} is no NodeClaim's"
        assert node["spec"]["providerID"].startswith("kwok://")
        pool = labels["karpenter.sh/nodepool"]
        taints = [(t["key"], t.get("value"), t["effect"]) for t in node["spec"].get("taints", [])]
        if pool == GENERAL_POOL:
            assert (GPU, "true", "NoSchedule") not in taints
            continue
        assert (GPU, "true", "NoSchedule") in taints, f"{name}: {taints}"
        assert labels["modelops/gpu-pool"] == pool
        assert labels["karpenter.k8s.aws/ec2nodeclass"] == pool
        catalogue_type = load_catalogue().instance_types[labels["node.kubernetes.io/instance-type"]]
        assert labels["karpenter.k8s.aws/instance-gpu-count"] == str(catalogue_type.gpus)
        assert node["status"]["allocatable"][GPU] == str(catalogue_type.gpus)
    used_pools = {run.cfg.models[m].pool or GENERAL_POOL for m in served_models(run)}
    assert {n["metadata"]["labels"]["karpenter.sh/nodepool"] for n in nodes.values()} == used_pools


def test_every_model_pod_runs_on_a_node_of_the_pool_the_program_meant(run):
    pods = run.pods("models")
    served = served_models(run)
    assert served and {p["metadata"]["labels"]["app.kubernetes.io/name"] for p in pods} == served
    assert placement_problems(run, pods) == []


def test_cpu_only_models_stay_off_gpu_nodes(run):
    cpu_models = {name for name in served_models(run) if run.cfg.models[name].pool is None}
    assert cpu_models, f"{run.env} has no CPU-only model"
    nodes = run.nodes()
    for pod in run.pods("models"):
        if pod["metadata"]["labels"]["app.kubernetes.io/name"] in cpu_models:
            node = nodes[pod["spec"]["nodeName"]]
            assert GPU not in node["status"]["allocatable"], pod["metadata"]["name"]
            assert node["metadata"]["labels"]["karpenter.sh/nodepool"] == GENERAL_POOL


def test_gpu_nodes_take_spot_when_the_pool_allows_it(run):
    """Karpenter prefers spot where both are allowed (and spot is the cheaper offering here)."""
    for pool, spec in run.cfg.gpu_pools.items():
        want = "spot" if "spot" in run.cfg.capacity_types(spec) else "on-demand"
        for node in pool_nodes(run, pool):
            assert node["metadata"]["labels"]["karpenter.sh/capacity-type"] == want, (pool, node["metadata"]["name"])


def test_gpu_daemon_sets_run_on_exactly_their_pools_gpu_nodes(run):
    """The DCGM exporter (and, on AL2023, the device plugin) tolerate the GPU taint and select the pool label:
    one pod on every GPU node of the pool, none elsewhere."""
    daemon_sets = gpu_daemon_sets(run)
    names = {ds["metadata"]["name"] for ds in daemon_sets}
    assert {f"dcgm-exporter-{pool}" for pool in run.cfg.gpu_pools} <= names
    if run.env == "staging":
        assert f"nvidia-device-plugin-{next(iter(run.cfg.gpu_pools))}" in names
    pods = run.pods("kube-system")
    for ds in daemon_sets:
        pool = ds["spec"]["template"]["spec"]["nodeSelector"]["modelops/gpu-pool"]
        app = ds["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        on = sorted(
            p["spec"].get("nodeName", "") for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/name") == app
        )
        gpu_nodes = sorted(n["metadata"]["name"] for n in pool_nodes(run, pool))
        assert gpu_nodes and on == gpu_nodes, (ds["metadata"]["name"], on, gpu_nodes)


def test_a_model_not_tolerating_its_pools_taint_stays_pending(run):
    """A planted defect only Karpenter and the scheduler see (the objects are valid): a copy of a GPU model whose
    toleration names another value of the GPU taint. No node is launched for it, Karpenter says why, and the
    placement check above fails on it."""
    model = next(name for name in sorted(served_models(run)) if run.cfg.models[name].pool)
    deployment = variant_deployment(run, model, "mistolerated")
    deployment["spec"]["template"]["spec"]["tolerations"] = [
        {"key": GPU, "operator": "Equal", "value": "false", "effect": "NoSchedule"}
    ]
    nodes_before = set(run.nodes())
    run.cluster.apply(deployment)
    try:
        pod, messages = wait_for_karpenter_message(run, "modelops/track=mistolerated", "did not tolerate taint")
        assert any(f"{GPU}=true:NoSchedule" in m for m in messages), messages
        assert set(run.nodes()) == nodes_before
        assert [p.split(":")[0] for p in placement_problems(run, [pod])] == [pod["metadata"]["name"]]
    finally:
        run.cluster.kubectl("delete", "deployment", "-n", "models", deployment["metadata"]["name"], "--wait=true")


def wait_for_karpenter_message(run: KarpenterRun, selector: str, text: str, timeout: float = 120):
    """A pending pod of the selector and Karpenter's FailedScheduling messages on it, once one contains `text`."""
    deadline, seen = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        for pod in run.json("pods", "-n", "models", "-l", selector):
            if pod["spec"].get("nodeName"):
                continue
            messages = seen[pod["metadata"]["name"]] = run.karpenter_messages("models", pod["metadata"]["name"])
            if any(text in m for m in messages):
                return pod, messages
        time.sleep(3)
    pytest.fail(f"no pending pod of {selector} with Karpenter's {text!r} in {timeout}s: {seen}")


def test_a_data_volume_too_small_for_a_models_scratch_leaves_it_pending_until_it_grows(run, tmp_path):
    """Ephemeral storage as the AWS provider computes it from the EC2NodeClass (Bottlerocket: the data volume
    /dev/xvdb, less 1Gi kube-reserved and the 10% nodefs eviction threshold): with `dataVolumeGib: 50` a model's
    default scratch (50Gi) and image cache do not fit. The same pod stays Pending on the small volume (Karpenter
    names ephemeral-storage) and gets a node once the class is restored. What Karpenter shows here, the stack schema
    refuses first (components/config.py, scratch against the pool's largest node disk)."""
    pool = next(
        p
        for p, spec in run.cfg.gpu_pools.items()
        if not spec.instance_store_policy and spec.ami_family == "bottlerocket"
    )
    model = next(name for name in sorted(served_models(run)) if run.cfg.models[name].pool == pool)
    data = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{run.env}.yaml").read_text())
    data["config"]["modelops:gpuPools"][pool]["dataVolumeGib"] = 50
    variant = tmp_path / f"Pulumi.{run.env}.yaml"
    variant.write_text(yaml.safe_dump(data))
    with pytest.raises(StackConfigError, match=rf"resources\.scratch: .*pool '{pool}' is 50Gi \(the data volume"):
        program_objects(run.env, variant)
    original = next(o for o in run.objects if o["kind"] == "EC2NodeClass" and o["metadata"]["name"] == pool)
    small = copy.deepcopy(original)  # the class the refused stack file would have made
    data_volume = next(d for d in small["spec"]["blockDeviceMappings"] if d["deviceName"] == "/dev/xvdb")
    data_volume["ebs"]["volumeSize"] = "50Gi"
    deployment = variant_deployment(run, model, "small-disk")
    run.cluster.apply(small)
    run.cluster.apply(deployment)
    try:
        pod, messages = wait_for_karpenter_message(run, "modelops/track=small-disk", "ephemeral-storage")
        too_small = [m for m in messages if "no instance type has enough resources" in m and f"In [{pool}]" in m]
        assert too_small and '"ephemeral-storage":"52Gi"' in too_small[0], json.dumps(messages)
        run.cluster.apply(original)
        wait_scheduled(run, "modelops/track=small-disk", pool)
    finally:
        run.cluster.apply(original)
        run.cluster.kubectl("delete", "deployment", "-n", "models", deployment["metadata"]["name"], "--wait=true")


def variant_deployment(run: KarpenterRun, model: str, track: str) -> dict[str, Any]:
    """A one-replica copy of a model's Deployment under its own name and `modelops/track` label."""
    stable = next(o for o in run.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == model)
    deployment = copy.deepcopy(stable)
    deployment["metadata"]["name"] = f"{model}-{track}"
    deployment["spec"]["replicas"] = 1
    for labels in (deployment["spec"]["selector"]["matchLabels"], deployment["spec"]["template"]["metadata"]["labels"]):
        labels["modelops/track"] = track
    return deployment


def wait_scheduled(run: KarpenterRun, selector: str, pool: str, timeout: float = 120) -> None:
    deadline, pods = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        pods = run.json("pods", "-n", "models", "-l", selector)
        if pods and all(p["spec"].get("nodeName") for p in pods):
            assert placement_problems(run, pods) == []
            nodes = run.nodes()
            assert {nodes[p["spec"]["nodeName"]]["metadata"]["labels"]["karpenter.sh/nodepool"] for p in pods} == {pool}
            return
        time.sleep(3)
    pytest.fail(f"{selector} not scheduled in {timeout}s: {[p['metadata']['name'] for p in pods]}")


def test_a_pools_gpu_limit_caps_the_nodes_karpenter_launches(run):
    """The pool with the smallest `gpuLimit`, its model scaled past it: Karpenter launches GPUs up to the limit
    (counted on its NodeClaims, its own accounting) and leaves the rest Pending with its limit message."""
    pool = min((m.pool for m in run.cfg.models.values() if m.pool), key=lambda p: run.cfg.gpu_pools[p].gpu_limit)
    limit = run.cfg.gpu_pools[pool].gpu_limit
    model = next(name for name in sorted(served_models(run)) if run.cfg.models[name].pool == pool)
    for hpa in run.json("hpa", "-n", "models"):
        if hpa["spec"]["scaleTargetRef"]["name"] == model:  # the test sets the replicas, not an autoscaler
            run.cluster.kubectl("delete", "hpa", "-n", "models", hpa["metadata"]["name"])
    replicas = math.ceil(limit / run.cfg.models[model].gpus) + 1
    run.cluster.kubectl("scale", "deployment", "-n", "models", model, f"--replicas={replicas}")
    pod, messages = wait_for_karpenter_message(run, f"app.kubernetes.io/name={model}", "limits")
    assert any((m := KARPENTER_LIMIT_MESSAGE.search(x)) and m["pool"] == pool for x in messages), messages
    claims = wait_claims_registered(run, pool)
    launched = sum(int(c["status"]["capacity"].get(GPU, "0")) for c in claims)
    assert launched <= limit
    if all(
        t.gpus == 1
        for t in load_catalogue().types_for(
            run.cfg.gpu_pools[pool].instance_families, run.cfg.gpu_pools[pool].instance_types
        )
    ):
        assert launched == limit, f"{pool}: {launched} GPUs launched, limit {limit}"
    assert sum(int(n["status"]["capacity"].get(GPU, "0")) for n in pool_nodes(run, pool)) == launched


def wait_claims_registered(run: KarpenterRun, pool: str, timeout: float = 60) -> list[dict[str, Any]]:
    """The pool's NodeClaims once each has its node."""
    deadline = time.monotonic() + timeout
    while True:
        claims = run.json("nodeclaims", "-l", f"karpenter.sh/nodepool={pool}")
        if all(c["status"].get("nodeName") for c in claims) or time.monotonic() > deadline:
            return claims
        time.sleep(2)
