"""GpuNodePool: the inputs it emits (taint, limits, requirements, IMDSv2, encryption), and what it adds."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from components import GpuNodePool, GpuNodePoolArgs
from components.cluster_inputs import cluster_settings
from components.config import CapacityType, Environment, GpuPoolConfig
from components.gpu_pool import DCGM_EXPORTER_IMAGE, DEVICE_PLUGIN_IMAGE
from modelops_cli.plan import Plan
from modelops_cli.render import kubernetes_resources, manifest
from tests.components.conftest import cluster_config
from tests.k8s_schema import validate_object

POOL = {"gpu_limit": 16, "instance_types": ["g5.xlarge", "g5.12xlarge"], "weight": 10}
ARGS = GpuNodePoolArgs(
    pool=GpuPoolConfig.model_validate(POOL),
    cluster=cluster_config(),
    environment=Environment.PROD,
    cost_owner="ml",
    capacity_types=[CapacityType.ON_DEMAND],
    tags={"team": "ml"},
)


def with_pool(**changes: Any) -> GpuNodePoolArgs:
    """ARGS with the pool's stack-file fields changed (validated by the schema, as a stack file would be)."""
    return {**ARGS, "pool": GpuPoolConfig.model_validate({**POOL, **changes})}


def test_node_pool_is_tainted_capped_and_selects_its_instances(build):
    built = build(lambda: GpuNodePool("a10g", ARGS))
    pool = built.inputs("a10g-node-pool")
    assert pool["apiVersion"] == "karpenter.sh/v1" and pool["metadata"]["name"] == "a10g"
    template = pool["spec"]["template"]
    assert template["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert template["metadata"]["labels"]["modelops/gpu-pool"] == "a10g"
    requirements = {r["key"]: r["values"] for r in template["spec"]["requirements"]}
    assert requirements["node.kubernetes.io/instance-type"] == ["g5.xlarge", "g5.12xlarge"]
    assert requirements["karpenter.sh/capacity-type"] == ["on-demand"]
    assert requirements["kubernetes.io/arch"] == ["amd64"]
    # 16 GPUs: at most 16 g5.xlarge (4 vCPU, 16 GiB) or 4 g5.12xlarge (48 vCPU, 192 GiB)
    assert pool["spec"]["limits"] == {"nvidia.com/gpu": "16", "cpu": "192", "memory": "768Gi", "nodes": "16"}
    assert pool["spec"]["disruption"] == {
        "consolidationPolicy": "WhenEmpty",
        "consolidateAfter": "10m",
        "budgets": [{"nodes": "10%"}],
    }
    assert pool["spec"]["weight"] == 10
    assert template["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "a10g"}


def test_expiry_is_forceful_so_only_pdbs_pace_it_and_nothing_overrides_them(build):
    """Karpenter v1 expires nodes forcefully: NodePool disruption budgets pace consolidation and drift, not
    expiry (karpenter.sh/docs/concepts/disruption: expiration is a forceful method), and nodes launched
    together expire together (aws/karpenter-provider-aws#9224). The models' PDBs still pace the drain unless
    terminationGracePeriod lets Karpenter delete protected pods: the pool never sets it."""
    template = build(lambda: GpuNodePool("a10g", ARGS)).inputs("a10g-node-pool")["spec"]["template"]["spec"]
    assert template["expireAfter"] == "720h" and "terminationGracePeriod" not in template
    kept = build(lambda: GpuNodePool("a10g", with_pool(expire_after="Never"))).inputs("a10g-node-pool")
    assert kept["spec"]["template"]["spec"]["expireAfter"] == "Never"


def test_time_slicing_leaves_the_physical_gpu_limit(build):
    """Karpenter provisions and caps by the instance type's physical GPUs; the device plugin's shares are
    invisible to it. The cap (and so the cost ceiling) stays in physical GPUs."""
    shared = build(lambda: GpuNodePool("a10g", with_pool(time_slicing_replicas=4))).inputs("a10g-node-pool")
    assert shared["spec"]["limits"]["nvidia.com/gpu"] == "16"


def test_family_pools_require_the_family(build):
    built = build(
        lambda: GpuNodePool(
            "l4",
            {
                **with_pool(instance_types=[], instance_families=["g6"]),
                "capacity_types": [CapacityType.SPOT, CapacityType.ON_DEMAND],
            },
        )
    )
    requirements = {
        r["key"]: r["values"] for r in built.inputs("l4-node-pool")["spec"]["template"]["spec"]["requirements"]
    }
    assert requirements["karpenter.k8s.aws/instance-family"] == ["g6"]
    assert requirements["karpenter.sh/capacity-type"] == ["spot", "on-demand"]


def test_node_class_requires_imdsv2_and_encrypts_volumes(build):
    built = build(lambda: GpuNodePool("a10g", ARGS))
    node_class = built.inputs("a10g-node-class")["spec"]
    assert node_class["metadataOptions"]["httpTokens"] == "required"
    assert node_class["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert node_class["amiSelectorTerms"] == [{"alias": "bottlerocket@latest"}]
    assert all(d["ebs"]["encrypted"] is True for d in node_class["blockDeviceMappings"])
    assert [d["ebs"]["volumeSize"] for d in node_class["blockDeviceMappings"]] == ["50Gi", "200Gi"]
    assert node_class["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "ml-prod"}}]
    assert node_class["role"] == "NodeRole" and node_class["tags"]["team"] == "ml"
    assert "userData" not in node_class


def test_bottlerocket_time_slicing_goes_to_user_data_not_a_device_plugin(build):
    built = build(lambda: GpuNodePool("small", with_pool(time_slicing_replicas=4)))
    assert "replicas = 4" in built.inputs("small-node-class")["spec"]["userData"]
    assert not any("device-plugin" in n for n in built.names())


def test_al2023_gets_a_pinned_device_plugin_on_gpu_nodes_only(build):
    built = build(lambda: GpuNodePool("a10g", with_pool(ami_family="al2023", time_slicing_replicas=2)))
    daemon = built.inputs("a10g-device-plugin")["spec"]["template"]["spec"]
    assert daemon["containers"][0]["image"] == DEVICE_PLUGIN_IMAGE and "@sha256:" in DEVICE_PLUGIN_IMAGE
    assert daemon["nodeSelector"] == {"modelops/gpu-pool": "a10g"}
    assert daemon["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "replicas: 2" in built.inputs("a10g-time-slicing")["data"]["config.yaml"]
    assert [d["ebs"]["volumeSize"] for d in built.inputs("a10g-node-class")["spec"]["blockDeviceMappings"]] == ["250Gi"]


def test_gpu_metrics_are_scraped_and_pinned(build):
    built = build(lambda: GpuNodePool("a10g", ARGS))
    exporter = built.inputs("a10g-dcgm-exporter")["spec"]["template"]["spec"]
    assert "@sha256:" in exporter["containers"][0]["image"]
    assert exporter["nodeSelector"] == {"modelops/gpu-pool": "a10g"}
    monitor = built.inputs("a10g-dcgm-monitor")
    assert monitor["kind"] == "ServiceMonitor"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    netpol = built.inputs("a10g-dcgm-netpol")["spec"]
    assert netpol["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }


@pytest.mark.parametrize("ami", ["bottlerocket", "al2023"])
def test_every_object_passes_strict_schemas(build, ami):
    built = build(lambda: GpuNodePool("a10g", with_pool(ami_family=ami, time_slicing_replicas=2)))
    for resource in kubernetes_resources(Plan(built.steps, {})):
        validate_object(manifest(resource), "1.31")


def test_outputs_are_what_workloads_need(build):
    seen: dict[str, Any] = {}

    def program():
        pool = GpuNodePool("a10g", ARGS)
        pool.node_selector.apply(lambda v: seen.setdefault("selector", v))
        pool.tolerations.apply(lambda v: seen.setdefault("tolerations", v))
        pool.gpu_limit.apply(lambda v: seen.setdefault("limit", v))

    build(program)
    assert seen == {
        "selector": {"modelops/gpu-pool": "a10g"},
        "limit": 16,
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }


def test_raid0_puts_the_kubelets_storage_on_the_local_nvme_disks(build):
    node_class = build(lambda: GpuNodePool("a10g", with_pool(instance_store_policy="RAID0"))).inputs("a10g-node-class")
    assert node_class["spec"]["instanceStorePolicy"] == "RAID0"
    assert "instanceStorePolicy" not in build(lambda: GpuNodePool("a10g", ARGS)).inputs("a10g-node-class")["spec"]


def test_the_node_role_and_cluster_name_may_be_another_resources_outputs(build):
    """What the platform's program or stack produces reaches the node class as Outputs, over the nested cluster's
    plain values; the nested ones may then be left out."""

    def program():
        role = pulumi.Output.from_input("KarpenterNodeRole-platform").apply(lambda v: v)
        cluster_name = pulumi.Output.from_input("platform-eks").apply(lambda v: v)
        cluster = cluster_settings(
            {k: v for k, v in cluster_config().model_dump().items() if k not in ("node_role", "name")}
        )
        GpuNodePool("a10g", {**ARGS, "cluster": cluster, "node_role": role, "cluster_name": cluster_name})

    spec = build(program).inputs("a10g-node-class")["spec"]
    assert spec["role"] == "KarpenterNodeRole-platform"
    assert spec["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "platform-eks"}}]
    assert spec["tags"]["modelops/cluster"] == "platform-eks"
    # given both, the top-level Input wins
    both = build(lambda: GpuNodePool("a10g", {**ARGS, "node_role": "OtherRole"})).inputs("a10g-node-class")
    assert both["spec"]["role"] == "OtherRole"


def test_a_pool_without_a_node_role_names_both_ways_to_give_one(build):
    cluster = cluster_settings({k: v for k, v in cluster_config().model_dump().items() if k != "node_role"})
    with pytest.raises(Exception, match=r"GpuNodePool a10g: give nodeRole or cluster\.nodeRole"):
        build(lambda: GpuNodePool("a10g", {**ARGS, "cluster": cluster}))


def test_the_version_labels_are_the_images_own_versions(build):
    built = build(lambda: GpuNodePool("a10g", with_pool(ami_family="al2023")))
    for daemon_set, image in (("a10g-device-plugin", DEVICE_PLUGIN_IMAGE), ("a10g-dcgm-exporter", DCGM_EXPORTER_IMAGE)):
        version = built.inputs(daemon_set)["metadata"]["labels"]["app.kubernetes.io/version"]
        tag = image.split("@", 1)[0].rsplit(":", 1)[1]
        assert tag == version or tag.startswith(f"{version}-"), (daemon_set, tag, version)
