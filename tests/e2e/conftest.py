"""The real-engine tier: one local control plane and one Pulumi workspace for the whole module.

`./run e2e` builds the tools first and sets MODELOPS_E2E=required, so that a missing tool fails the run
instead of skipping it; a plain `pytest` skips the tier when the tools are not built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import LocalCluster, SimulatedNode, tools_bin_dir
from tests.e2e.pulumi_cli import PulumiCli

ENVIRONMENTS = ("dev", "staging", "prod")
ZONES = {"staging": ["us-west-2a", "us-west-2b", "us-west-2c"], "prod": ["us-east-1a", "us-east-1b", "us-east-1c"]}
POOLS = {"staging": ["l4"], "prod": ["a10g", "l4"]}


@dataclass
class Tier:
    cluster: LocalCluster
    cli: PulumiCli
    previews: dict[str, Any] = field(default_factory=dict)
    """The first real preview of each stack (`pulumi preview --json`)."""
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Its engine events (`--event-log`)."""


def _simulated_nodes() -> list[SimulatedNode]:
    """What Karpenter would have launched for each pool of each stack, and two CPU nodes per stack."""
    nodes = []
    for env, pools in POOLS.items():
        zones = ZONES[env]
        for pool in pools:
            nodes += [SimulatedNode(f"{env}-{pool}-{i}", zones[i % len(zones)], pool=pool, gpus=4) for i in range(3)]
        nodes += [SimulatedNode(f"{env}-cpu-{i}", zones[i % len(zones)]) for i in range(2)]
    return nodes


@pytest.fixture(scope="session")
def tier(tmp_path_factory) -> Tier:
    bin_dir = tools_bin_dir()
    if bin_dir is None:
        if os.environ.get("MODELOPS_E2E") == "required":
            pytest.fail("the real-engine tools are not built (./run tools)")
        pytest.skip("the real-engine tools are not built: ./run e2e builds them and runs this tier")
    workdir = tmp_path_factory.mktemp("e2e")
    cluster = LocalCluster(bin_dir, workdir / "cluster")
    try:
        cluster.start()
        # What a cluster these stacks deploy to already has: the monitoring and gateway namespaces.
        cluster.apply(*({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                        for ns in ("monitoring", "gateway-system")))
        cluster.add_nodes(_simulated_nodes())
        cli = PulumiCli(bin_dir, workdir / "pulumi")
        for env in ENVIRONMENTS:
            cli.platform_stack(env, cluster.kubeconfig())
            cli.init_stack(env)
        yield Tier(cluster, cli)
    finally:
        cluster.stop()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).parent.name == "e2e":
            item.add_marker(pytest.mark.e2e)
