"""Grafana dashboards as ConfigMaps the Grafana sidecar discovers (kube-prometheus-stack's, by its
`grafana_dashboard: "1"` label, in the monitoring namespace it searches by default).

A GPU pool's dashboard shows its GPUs' utilisation and memory (the DCGM exporter's metrics); a model's
shows its request rate, latency, errors, queue and replicas in its runtime's own metrics.
"""

import json
from typing import Any, NamedTuple

import pulumi
import pulumi_kubernetes as k8s

from .config import ClusterConfig


def _panel(title: str, expr: str, unit: str, index: int) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "targets": [{"refId": "A", "expr": expr, "legendFormat": "__auto"}],
    }


class Dashboard(NamedTuple):
    """A dashboard and the name its ConfigMap (`modelops-dashboard-<name>`) and file (`<name>.json`) carry."""

    name: str
    board: dict[str, Any]


def dashboard(name: str, uid: str, title: str, panels: list[tuple[str, str, str]]) -> Dashboard:
    """A Grafana dashboard (schema version 39): one time-series panel per (title, PromQL, unit)."""
    return Dashboard(name, _board(uid, title, panels))


def _board(uid: str, title: str, panels: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["modelops"],
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
        "panels": [_panel(t, expr, unit, i) for i, (t, expr, unit) in enumerate(panels)],
    }


def dashboard_config_map(
    resource_name: str, board: Dashboard, cluster: ClusterConfig, labels: dict[str, str], parent: pulumi.Resource
) -> k8s.core.v1.ConfigMap:
    """The ConfigMap the Grafana sidecar loads `board` from: the cluster's dashboards namespace (else its monitoring
    namespace), with the component's labels and the ones the sidecar discovers ConfigMaps by."""
    return k8s.core.v1.ConfigMap(
        resource_name,
        metadata={
            "name": f"modelops-dashboard-{board.name}",
            "namespace": cluster.dashboards_namespace or cluster.monitoring_namespace,
            "labels": {**labels, **cluster.dashboard_labels},
        },
        data={f"{board.name}.json": json.dumps(board.board, indent=2, sort_keys=True)},
        opts=pulumi.ResourceOptions(parent=parent),
    )
