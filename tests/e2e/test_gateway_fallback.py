"""A standby model's route at zero: Envoy fails it over to the function by priority, never splits it by weight.

The objects are the program's own (staging with `cluster.gateway.standbyFailover`, planned and written out by
`modelops render`), translated by Envoy Gateway's own translators: `egctl x translate --from gateway-api --to xds`,
built by tools/build from the module the tier's controller is built from (github.com/envoyproxy/gateway v1.9.1).
The route's status alone cannot tell a priority failover from a weight split (ResolvedRefs is True either way, which
is how the first design passed the tier while 99% of requests at zero still got a 503: 57dc64e); the xDS can.

What the translation shows and why, in the module's source (v1.9.1):
- one cluster per rule unless `NeedsClusterPerSetting` (internal/ir/xds.go:1109-1121): a rule whose backends have
  invalid or endpoint-less settings (`BackendWeights.AddWeighted`, xds.go:754-771: a Service with no ready endpoint
  counts as NoEndpoints) or mixed address types (`HasMixedEndpoints`, xds.go:2149-2164: FQDN beside IP) is split
  into weighted clusters. An FQDN Backend always has its one endpoint (its hostname), whatever the Service behind
  it holds, so the program's rule is never split;
- a Backend with `fallback: true` is a priority-1 setting (internal/gatewayapi/route.go:3566-3571) kept in the one
  cluster (`weightedRuleBackendsMustBeInOneCluster`, route.go:913-936), each setting a locality of the cluster's
  load assignment with its route weight and priority (internal/xds/translator/cluster.go:1017-1059,
  `buildWeightedLocalities`);
- Envoy gives priority 1 no traffic while priority 0 is healthy, and all of it when priority 0 has no healthy host
  (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/priority); the
  BackendTrafficPolicy's retry moves a refused attempt to the next priority (`previous_priorities`,
  internal/xds/translator/route.go:850-862) and outlier detection ejects the refusing track
  (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/outlier).
egctl translates Services by their ClusterIP (internal/cmd/egctl/translate.go:252-257, `EndpointRoutingDisabled`),
while the controller routes to EndpointSlices; the program's route names no Service, so both translate it alike.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops_cli.offline.engine import run_program
from modelops_cli.stackfile import load_stack
from tests.e2e.cluster import ROOT, required_tools
from tests.e2e.gateway import gateway_manifests

ROUTE_CLUSTER = "httproute/models/sentiment/rule/0"
RELAY_HOST = "sentiment-failover-relay.models.svc.cluster.local"
TRANSLATED_KINDS = ("HTTPRoute", "Backend", "BackendTrafficPolicy", "Service")
"""What egctl reads of the rendered objects (it refuses none of the rest, but they play no part)."""
FUNCTION_TIMEOUT_SECONDS = 60
"""The schema's default `serverless.timeoutSeconds` (staging's sentiment sets none)."""


def egctl() -> Path:
    return required_tools("egctl") / "egctl"


def with_failover(canary_weight: int | None = None):
    """Staging with the failover on (and the relay's registry allowed); sentiment is its standby model."""

    def edit(config: dict[str, Any]) -> None:
        config["modelops:cluster"]["gateway"]["standbyFailover"] = True
        config["modelops:registry"]["allowedRegistries"].append("public.ecr.aws/aws-observability/")
        if canary_weight is not None:
            config["modelops:models"]["sentiment"]["canary"] = {"version": "1.4.0", "weight": canary_weight}

    return edit


def rendered_objects(tmp_path: Path, edit) -> list[dict[str, Any]]:
    """The stack planned offline, then written out by `modelops render --plan` (the verb a GitOps user runs)."""
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.staging.yaml").read_text())
    edit(config["config"])
    stack_file = tmp_path / "Pulumi.staging.yaml"
    stack_file.write_text(yaml.safe_dump(config))
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(run_program(load_stack("staging", stack_file=stack_file))))
    out = tmp_path / "render"
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "modelops"), "render", "--plan", str(plan_file), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [yaml.safe_load(path.read_text()) for path in sorted(out.rglob("*.yaml"))]


def translate(objects: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    """egctl's xDS for the platform's Gateway and the given objects: {"cluster": ..., "route": ...} of sentiment."""
    ip = iter(range(10, 250))
    inputs = [*gateway_manifests("models.staging.acme.example")]
    for obj in objects:
        if obj["kind"] not in TRANSLATED_KINDS:
            continue
        if obj["kind"] == "Service":  # as the API server allocates them
            obj = {**obj, "spec": {**obj["spec"], "clusterIP": f"10.96.0.{next(ip)}"}}
        inputs.append(obj)
    source = workdir / "egctl-input.yaml"
    source.write_text(yaml.safe_dump_all(inputs))
    command = ["x", "translate", "--from", "gateway-api", "--to", "xds", "-t", "all", "-f", str(source), "-o", "json"]
    done = subprocess.run(
        [str(egctl()), *command],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [dump] = json.loads(done.stdout)["xds"].values()
    return sentiment_xds(dump)


def sentiment_xds(dump: dict[str, Any]) -> dict[str, Any]:
    clusters: dict[str, Any] = {}
    routes: list[dict[str, Any]] = []
    for config in dump["configs"]:
        for active in config.get("dynamicActiveClusters", []):
            clusters[active["cluster"]["name"]] = active["cluster"]
        for dynamic in config.get("dynamicRouteConfigs", []):
            for host in dynamic["routeConfig"].get("virtualHosts", []):
                routes += [r for r in host["routes"] if r["name"].startswith(f"{ROUTE_CLUSTER}/")]
    [route] = routes
    return {"route": route, "clusters": clusters}


def localities(cluster: dict[str, Any]) -> list[tuple[int, int, str]]:
    """(priority, weight, endpoint host) of each locality of the cluster's load assignment."""
    return sorted(
        (
            group.get("priority", 0),
            group["loadBalancingWeight"],
            group["lbEndpoints"][0]["endpoint"]["address"]["socketAddress"]["address"],
        )
        for group in cluster["loadAssignment"]["endpoints"]
    )


def assert_priority_failover(xds: dict[str, Any], tracks: list[tuple[int, str]]) -> None:
    """One cluster for the rule (no weighted clusters), the tracks at priority 0 with their route weights, the relay
    alone at priority 1, and the policy's ejection, retry, timeout and buffer on them."""
    action = xds["route"]["route"]
    assert "weightedClusters" not in action, f"the rule is split by weight: {action['weightedClusters']}"
    assert action["cluster"] == ROUTE_CLUSTER
    cluster = xds["clusters"][ROUTE_CLUSTER]
    # a DNS cluster: every endpoint is a name Envoy resolves (the tracks' Services resolve asleep or awake)
    assert cluster["clusterType"]["name"] == "envoy.cluster.dns"
    assert localities(cluster) == sorted([(0, weight, host) for weight, host in tracks] + [(1, 1, RELAY_HOST)])
    # locality weights count only with locality-weighted balancing: the tracks get their route weights
    policy = cluster["loadBalancingPolicy"]["policies"][0]["typedExtensionConfig"]["typedConfig"]
    assert "localityWeightedLbConfig" in policy["localityLbConfig"]
    outlier = cluster["outlierDetection"]
    assert outlier["splitExternalLocalOriginErrors"] is True and outlier["consecutiveLocalOriginFailure"] == 1
    assert outlier["maxEjectionPercent"] == 100
    assert cluster["connectTimeout"] == "3s"
    retry = action["retryPolicy"]
    assert retry["retryPriority"]["name"] == "envoy.retry_priorities.previous_priorities"
    assert retry["retryPriority"]["typedConfig"]["updateFrequency"] == 1
    assert {"connect-failure", "retriable-status-codes"} <= set(retry["retryOn"].split(","))
    assert retry["retriableStatusCodes"] == [503]
    assert int(action["timeout"].removesuffix("s")) > FUNCTION_TIMEOUT_SECONDS
    buffer = xds["route"]["typedPerFilterConfig"]["envoy.filters.http.buffer"]["buffer"]
    assert buffer["maxRequestBytes"] == 6 * 1024 * 1024


def test_the_standby_route_fails_over_by_priority_awake_or_asleep(tmp_path):
    """Awake: the track takes everything, the relay is priority 1 and takes nothing while the track is healthy.
    Asleep: the track's Service has no endpoint (here: no Service at all); the translation is the same cluster, the
    track's FQDN at priority 0 (refused at zero by kube-proxy, so ejected and retried past) and the relay at 1:
    the request goes to the function, not to a weighted 503."""
    objects = rendered_objects(tmp_path, with_failover())
    awake = translate(objects, tmp_path)
    assert_priority_failover(awake, [(100, "sentiment.models.svc.cluster.local")])

    tracks = {"sentiment"}
    asleep_objects = [o for o in objects if not (o["kind"] == "Service" and o["metadata"]["name"] in tracks)]
    asleep = translate(asleep_objects, tmp_path)
    assert asleep["clusters"][ROUTE_CLUSTER] == awake["clusters"][ROUTE_CLUSTER]
    assert asleep["route"] == awake["route"]


def test_a_canary_splits_priority_zero_by_its_weights(tmp_path):
    """With a canary at 20%, the stable and canary tracks share priority 0 by their route weights (80/20) and the
    relay stays alone at priority 1; at weight 0 the canary has no locality at all."""
    split = translate(rendered_objects(tmp_path, with_failover(canary_weight=20)), tmp_path)
    assert_priority_failover(
        split,
        [(80, "sentiment-stable.models.svc.cluster.local"), (20, "sentiment-canary.models.svc.cluster.local")],
    )
    rolled_back = translate(rendered_objects(tmp_path, with_failover(canary_weight=0)), tmp_path)
    assert_priority_failover(rolled_back, [(100, "sentiment-stable.models.svc.cluster.local")])


def test_a_track_that_is_not_fqdn_splits_the_rule_by_weight(tmp_path):
    """The negative control, and the reverted design's failure reproduced: a track addressed by IP beside the FQDN
    fallback (as a Service's endpoints are, under the controller's endpoint routing) makes `HasMixedEndpoints` true,
    and the rule becomes weighted clusters: the fallback takes its 1/101 share awake, the track its 100/101 asleep."""
    objects = rendered_objects(tmp_path, with_failover())
    for obj in objects:
        if obj["kind"] == "Backend" and obj["metadata"]["name"] == "sentiment":
            obj["spec"]["endpoints"] = [{"ip": {"address": "10.96.0.5", "port": 80}}]
    action = translate(objects, tmp_path)["route"]["route"]
    weighted = {c["name"]: c["weight"] for c in action["weightedClusters"]["clusters"]}
    assert weighted == {f"{ROUTE_CLUSTER}/backend/0": 100, f"{ROUTE_CLUSTER}/backend/1": 1}
    with pytest.raises(AssertionError, match="split by weight"):
        assert_priority_failover(translate(objects, tmp_path), [(100, "10.96.0.5")])
