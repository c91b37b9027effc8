"""Grafana dashboards: ConfigMaps the sidecar discovers, panels over the metrics that exist."""

import json
import re

import pytest

from components import GpuNodePool, ModelService
from components.runtimes import PRESETS, Runtime
from tests.components.conftest import cluster_config
from tests.components.test_gpu_pool import ARGS as POOL_ARGS
from tests.components.test_model_service import service_args
from tests.k8s_schema import validate_object


def board_of(built, name: str) -> tuple[dict, dict]:
    config_map = built.inputs(name)
    ((key, text),) = config_map["data"].items()
    assert key.endswith(".json")
    return config_map, json.loads(text)


def exprs(board: dict) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p["targets"]]


def test_a_gpu_pool_dashboard_shows_its_gpus_from_its_own_exporter(build):
    built = build(lambda: GpuNodePool("a10g", POOL_ARGS))
    config_map, board = board_of(built, "a10g-dashboard")
    # kube-prometheus-stack's sidecar: the grafana_dashboard label, in the namespace it searches
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "monitoring"
    metrics = {m for e in exprs(board) for m in re.findall(r"(DCGM_FI_\w+)\{", e)}
    assert metrics == {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE"}
    assert all('service="dcgm-exporter-a10g"' in e for e in exprs(board))
    validate_object(
        {"apiVersion": "v1", "kind": "ConfigMap", **{k: config_map[k] for k in ("metadata", "data")}}, "1.31"
    )


@pytest.mark.parametrize("runtime", list(Runtime))
def test_a_model_dashboard_reads_its_runtimes_metrics(build, runtime):
    built = build(lambda: ModelService("chat", service_args(model={"runtime": runtime})))
    _, board = board_of(built, "chat-dashboard")
    titles = [p["title"] for p in board["panels"]]
    latency = [latency.what.capitalize() for latency in PRESETS[runtime].alerting.latency]
    assert titles[: len(latency) + 2] == ["Requests per second", *latency, "Error ratio"]
    assert titles[-2:] == ["Replicas wanted", "Replicas available"]
    assert ("Queue" in titles) is bool(PRESETS[runtime].alerting.queue)
    read = {m for e in exprs(board) for m in re.findall(r"([a-zA-Z_:][\w:]*)\{", e)}
    runtime_metrics = read - {"kube_deployment_spec_replicas", "kube_deployment_status_replicas_available"}
    alerting = PRESETS[runtime].alerting
    documented = set(alerting.metrics) | {
        m for q in (alerting.request_rate, alerting.queue) for m in re.findall(r"([a-zA-Z_:][\w:]*)\{", q)
    }
    assert runtime_metrics <= documented
    assert all('service="chat"' in e for e in exprs(board)[:-2])


def test_the_discovery_label_and_namespace_are_configurable(build):
    cluster = cluster_config(dashboard_labels={"grafana.com/dashboard": "modelops"}, dashboards_namespace="grafana")
    built = build(lambda: ModelService("chat", service_args(cluster=cluster.model_dump())))
    config_map, _ = board_of(built, "chat-dashboard")
    assert config_map["metadata"]["namespace"] == "grafana"
    assert config_map["metadata"]["labels"]["grafana.com/dashboard"] == "modelops"
    assert "grafana_dashboard" not in config_map["metadata"]["labels"]
