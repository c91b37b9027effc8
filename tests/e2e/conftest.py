"""The real-engine tier: a local control plane per environment with a cluster (staging, prod: different
clusters, as in production, so their cluster-wide objects do not meet) and one Pulumi workspace.

`./run e2e` builds the tools first and sets MODELOPS_E2E=required, so that a missing tool fails the run
instead of skipping it; a plain `pytest` skips the tier when the tools are not built.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.aws_emulator import AwsEmulator
from tests.e2e.cluster import ROOT, LocalCluster, SimulatedNode, required_tools
from tests.e2e.gateway import EnvoyGateway
from tests.e2e.keda import Keda
from tests.e2e.prometheus_standin import PrometheusStandIn
from tests.e2e.pulumi_cli import PulumiCli

ENVIRONMENTS = ("dev", "staging", "prod")
ZONES = {"staging": ["us-west-2a", "us-west-2b", "us-west-2c"], "prod": ["us-east-1a", "us-east-1b", "us-east-1c"]}
POOLS = {"staging": ["l4"], "prod": ["a10g", "l4"]}


UNREACHABLE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""
"""dev's platform stack: dev never talks to a cluster, and would fail the preview if it tried."""


@dataclass
class Tier:
    clusters: dict[str, LocalCluster]
    cli: PulumiCli
    prometheus: PrometheusStandIn
    """What KEDA's prometheus triggers read (every model's `autoscaling.prometheusAddress` points here)."""
    previews: dict[str, Any] = field(default_factory=dict)
    """The first real preview of each stack (`pulumi preview --json`)."""
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Its engine events (`--event-log`)."""
    aws: AwsEmulator | None = None
    """The AWS the stand-in provider works against (one moto server for the session, every stack's account)."""


def simulated_nodes(env: str) -> list[SimulatedNode]:
    """What Karpenter would have launched for each GPU pool of a stack, and two CPU nodes."""
    zones = ZONES[env]
    nodes = []
    for pool in POOLS[env]:
        nodes += [SimulatedNode(f"{pool}-{i}", zones[i % len(zones)], pool=pool, gpus=4) for i in range(3)]
    return nodes + [SimulatedNode(f"cpu-{i}", zones[i % len(zones)]) for i in range(2)]


@pytest.fixture(scope="session")
def tier(tmp_path_factory) -> Iterator[Tier]:
    bin_dir = required_tools()
    workdir = tmp_path_factory.mktemp("e2e")
    clusters = {env: LocalCluster(bin_dir, workdir / f"cluster-{env}") for env in POOLS}
    gateways: list[EnvoyGateway] = []
    aws = AwsEmulator(log_path=workdir / "aws-emulator.log")
    prometheus = PrometheusStandIn()
    try:
        for env, cluster in clusters.items():
            start_cluster(cluster, env)
            gateways.append(EnvoyGateway(cluster))
            gateways[-1].start(stack_gateway_hostname(env))
        cli = PulumiCli(bin_dir, workdir / "pulumi", prometheus_url=prometheus.url)
        cli.aws_env = aws.env()
        for env in ENVIRONMENTS:
            cli.platform_stack(env, clusters[env].kubeconfig() if env in clusters else UNREACHABLE_KUBECONFIG)
            cli.init_stack(env)
        yield Tier(clusters, cli, prometheus, aws=aws)
    finally:
        for cluster in clusters.values():
            cluster.stop()
        for gateway in gateways:
            gateway.stop()
        aws.stop()
        prometheus.stop()


def stack_gateway_hostname(env: str) -> str | None:
    config = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{env}.yaml").read_text())["config"]
    return ((config["modelops:cluster"].get("gateway") or {}).get("hostname")) or None


def start_cluster(cluster: LocalCluster, env: str) -> None:
    cluster.start()
    # What a cluster these stacks deploy to already has: the monitoring and gateway namespaces.
    cluster.apply(
        *(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            for ns in ("monitoring", "gateway-system")
        )
    )
    cluster.add_nodes(simulated_nodes(env))
    Keda(cluster).start()


DRILLS = "test_day2_drills.py"
"""They move the stacks away from the reference state the other tests compare against: they run last."""


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).parent.name == "e2e":
            item.add_marker(pytest.mark.e2e)
    items.sort(key=lambda item: Path(str(item.fspath)).name == DRILLS)
