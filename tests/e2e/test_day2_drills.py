"""Day-2 drills: the weekly changes the README documents, each a sequence of stack files applied with
`pulumi up` through the real engine, against the local API server with KEDA's operator, webhooks and the HPA
controller behind it, and the AWS emulator behind the stand-in provider.

After every `up`: the up succeeded (no server-side apply conflict, no tag pushed twice, no webhook refusal), a
preview reports no changes, and what a user would look at next is checked (which version's pods serve, the
route's weights, which grants and volumes exist, how many replicas KEDA or the HPA left).

These run after the rest of the tier (conftest orders them last): they move the stacks away from the reference
state the fidelity tests compare against.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Tier
from tests.e2e.pulumi_cli import read_event_log

Edit = Callable[[dict[str, Any]], None]


def _models(config: dict[str, Any]) -> dict[str, Any]:
    return config["modelops:models"]


def apply(tier: Tier, env: str, *edits: Edit, label: str) -> list[dict[str, Any]]:
    """`pulumi up` of the stack file with `edits` applied in order; then a preview must show no change. The
    engine events of the up."""

    def edit(config: dict[str, Any]) -> None:
        for change in edits:
            change(config)

    tier.cli.stack_config(env, edit=edit)
    log = tier.cli.workdir / f"drill-{env}-{label}.json"
    result = tier.cli.up(env, event_log=log)
    assert result.returncode == 0, f"drill step {label!r}:\n{result.explain()}"
    preview = tier.cli.preview(env, policy=False)
    assert preview.returncode == 0, preview.explain()
    steps = {s["urn"].rsplit("::", 1)[-1]: s["op"] for s in preview.json().get("steps", [])}
    pending = {name: op for name, op in steps.items() if op not in ("same", "read")}
    assert not pending, f"after {label!r} a preview still changes {pending}"
    return read_event_log(log)


def operations(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(op, resource name) of every step the engine took, in order."""
    return [
        (e["resOutputsEvent"]["metadata"]["op"], e["resOutputsEvent"]["metadata"]["urn"].rsplit("::", 1)[-1])
        for e in events
        if "resOutputsEvent" in e
    ]


def kube(tier: Tier, env: str, *args: str) -> dict[str, Any]:
    return json.loads(tier.clusters[env].kubectl(*args, "-o", "json").stdout)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 150) -> Any:
    """Poll `check` until it returns something truthy (KEDA polls its triggers every 30 s)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(3)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def replicas(tier: Tier, env: str, namespace: str, name: str) -> int | None:
    found = tier.clusters[env].kubectl("get", "deployment", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(found.stdout)["spec"].get("replicas") if found.returncode == 0 else None


def pushed_tags(tier: Tier, region: str, repository: str) -> list[str]:
    assert tier.aws is not None
    ecr = tier.aws.client("ecr", region)
    images = ecr.describe_images(repositoryName=repository)["imageDetails"]
    return sorted(tag for image in images for tag in image.get("imageTags", []))


# ---- canary: roll back, promote, revert ---------------------------------------------------------------


def roll_back(config: dict[str, Any]) -> None:
    _models(config)["chat"]["canary"]["weight"] = 0


def promote(config: dict[str, Any]) -> None:
    chat = _models(config)["chat"]
    chat["version"] = chat.pop("canary")["version"]
    chat["artifactUri"] = chat["artifactUri"].replace("2.4.0", chat["version"])


def test_canary_roll_back_promotion_and_revert(tier):
    """prod's chat: 2.4.0 with a 10% canary at 2.5.0 -> roll back (weight 0) -> promote (2.5.0, no canary) ->
    revert the commit (2.4.0 with its canary again). Each version's image is pushed once; promotion reuses the
    canary's image; the revert reuses what the repository holds (ECR refuses a second push of any tag)."""
    apply(tier, "prod", label="reference")
    repository = "modelops/prod/chat"
    tags_before = pushed_tags(tier, "us-east-1", repository)
    versions = sorted(t for t in tags_before if not t.startswith("buildcache-"))
    assert [t.split("-", 1)[0] for t in versions] == ["2.4.0", "2.5.0"], tags_before

    events = apply(tier, "prod", roll_back, label="roll-back")
    assert ("update", "chat-canary-keda") in operations(events)
    wait_for("the canary at zero pods", lambda: replicas(tier, "prod", "models", "chat-canary") == 0)
    route = kube(tier, "prod", "get", "httproute", "chat", "-n", "models")
    weights = {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}
    assert weights == {"chat-stable": 100, "chat-canary": 0}

    events = apply(tier, "prod", promote, label="promote")
    ops = operations(events)
    assert ("delete", "chat-canary-deployment") in ops
    assert not [op for op, name in ops if name == "chat-image-2.5.0" and op != "same"], "promotion rebuilt the image"
    stable = kube(tier, "prod", "get", "deployment", "chat", "-n", "models")
    assert stable["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == "2.5.0"
    assert pushed_tags(tier, "us-east-1", repository) == tags_before

    apply(tier, "prod", label="revert")  # the reference stack file again: 2.4.0 and its canary
    assert pushed_tags(tier, "us-east-1", repository) == tags_before
    stable = kube(tier, "prod", "get", "deployment", "chat", "-n", "models")
    assert stable["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == "2.4.0"


# ---- version bumps: weights granted and mounted per version --------------------------------------------


def bump_sentiment(access: str) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        sentiment = _models(config)["sentiment"]
        sentiment["artifactAccess"] = access
        sentiment["version"] = "1.4.0"
        sentiment["artifactUri"] = sentiment["artifactUri"].replace("1.3.0", "1.4.0")

    return edit


def with_access(access: str) -> Edit:
    return lambda config: _models(config)["sentiment"].update(artifactAccess=access)


@pytest.mark.parametrize("access", ["copy", "mount"])
def test_a_version_bump_keeps_the_old_weights_readable_until_the_rollout_is_done(tier, access):
    """The new version's read grant (and, mounted, its volume) exists before its pods start; the old one goes at the
    end of the update, after the rollout: old pods never lose read access nor see new weights under their mount."""
    apply(tier, "staging", with_access(access), label=f"{access}-1.3.0")
    events = apply(tier, "staging", bump_sentiment(access), label=f"{access}-1.4.0")
    ops = operations(events)
    order = {step: i for i, step in enumerate(ops)}
    rollout = order[("update", "sentiment-deployment")]
    assert order[("create", "sentiment-artifact-read-1.4.0")] < rollout
    assert order[("delete", "sentiment-artifact-read-1.3.0")] > rollout
    if access == "mount":
        assert order[("create", "sentiment-weights-1.4.0-pvc")] < rollout
        assert order[("delete", "sentiment-weights-1.3.0-pv")] > rollout
        claims = kube(tier, "staging", "get", "pvc", "-n", "models")["items"]
        assert [c["metadata"]["name"] for c in claims if "sentiment" in c["metadata"]["name"]] == [
            "sentiment-weights-1.4.0"
        ]
    assert tier.aws is not None
    iam = tier.aws.client("iam", "us-west-2")
    # the role staging's pods assume (IAM is global: dev's and prod's sentiment roles share the account)
    account = kube(tier, "staging", "get", "serviceaccount", "sentiment", "-n", "models")
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].rsplit("/", 1)[-1]
    policies = iam.list_role_policies(RoleName=role)["PolicyNames"]
    assert len(policies) == 1 and "1.4.0" in policies[0], policies
    apply(tier, "staging", label=f"{access}-reference")


# ---- scale to zero: sleep, wake, autoscaler switches -----------------------------------------------------


def never_in_hours(config: dict[str, Any]) -> None:
    """Active hours that are never now: 29 February only."""
    _models(config)["summarizer"]["autoscaling"]["activeHours"] = {
        "timezone": "UTC",
        "start": "0 0 29 2 *",
        "end": "0 1 29 2 *",
    }


def query_of(tier: Tier, env: str, name: str) -> str:
    scaled = kube(tier, env, "get", "scaledobject", name, "-n", "models")
    return next(t["metadata"]["query"] for t in scaled["spec"]["triggers"] if t["type"] == "prometheus")


def test_a_model_at_zero_sleeps_switches_and_wakes(tier):
    """staging's summarizer (min 0): with no traffic KEDA scales it and its canary to zero; a switch to an HPA while
    asleep wakes it (KEDA restores a replica when its ScaledObject goes: an HPA does nothing for a target at zero);
    back on KEDA it sleeps again, and a query value above the activation threshold wakes both tracks. (A new
    ScaledObject that was never active sleeps at its first poll; one that was waits its cooldownPeriod.)"""

    def to_hpa(config: dict[str, Any]) -> None:
        summarizer = _models(config)["summarizer"]
        summarizer["replicas"] = {"min": 2, "max": 3}  # staging: k8s-replicas-hpa wants 2 below an HPA
        summarizer["autoscaling"] = {"targetCpuUtilization": 70}  # CPU scaling, chosen explicitly

    def asleep(track: str) -> Callable[[], bool]:
        return lambda: replicas(tier, "staging", "models", track) == 0

    def awake(track: str) -> Callable[[], bool]:
        return lambda: (replicas(tier, "staging", "models", track) or 0) >= 1

    apply(tier, "staging", never_in_hours, label="asleep")
    query = query_of(tier, "staging", "summarizer")
    tier.prometheus.set(query, None)
    # on a weekday between 08:00 and 20:00 in Los Angeles, staging's own active hours held it awake until now: KEDA
    # then waits its cooldownPeriod (300 s) before it scales to zero
    wait_for("the summarizer asleep", asleep("summarizer"), timeout=420)
    wait_for("its canary asleep", asleep("summarizer-canary"), timeout=420)

    apply(tier, "staging", to_hpa, label="hpa-while-asleep")
    wait_for("the summarizer woken by the switch", awake("summarizer"))
    hpa = kube(tier, "staging", "get", "hpa", "summarizer", "-n", "models")
    assert hpa["spec"]["minReplicas"] == 2

    apply(tier, "staging", never_in_hours, label="keda-again")
    wait_for("the summarizer asleep again", asleep("summarizer"))
    tier.prometheus.set(query, 3.0)
    try:
        wait_for("the summarizer woken by its query", awake("summarizer"))
        wait_for("its canary woken with it", awake("summarizer-canary"))
    finally:
        tier.prometheus.set(query, None)
    apply(tier, "staging", label="scale-to-zero-reference")


# ---- fallbacks, pools, models come and go ---------------------------------------------------------------


def fallback(mode: str) -> Edit:
    return lambda config: _models(config)["sentiment"].update(fallback=mode)


def test_fallback_modes_none_standby_only_none(tier):
    assert tier.aws is not None
    functions = tier.aws.client("lambda", "us-west-2")
    for mode in ("none", "standby", "only", "none"):
        apply(tier, "staging", fallback(mode), label=f"fallback-{mode}")
        names = {f["FunctionName"] for f in functions.list_functions()["Functions"]}
        assert ("modelops-staging-sentiment" in names) is (mode in ("standby", "only")), (mode, names)
        deployment = replicas(tier, "staging", "models", "sentiment")
        assert (deployment is None) is (mode == "only"), (mode, deployment)
    apply(tier, "staging", label="fallback-reference")


RELAY_REGISTRY = "public.ecr.aws/aws-observability/"
FAILOVER_CLUSTER = "httproute/models/sentiment/rule/0"
"""The route's Envoy cluster: what the gateway's request count for the route is labelled with, the wake query's."""


def standby_failover_at_zero(config: dict[str, Any]) -> None:
    """Staging's sentiment (a standby) behind the gateway with the failover on, scaling to zero on the gateway's
    request count for its route (a series from outside its pods, so it can wake it)."""
    config["modelops:cluster"]["gateway"]["standbyFailover"] = True
    config["modelops:registry"]["allowedRegistries"].append(RELAY_REGISTRY)
    _models(config)["sentiment"].update(
        replicas={"min": 0, "max": 2},
        autoscaling={
            "prometheusQuery": f'sum(rate(envoy_cluster_upstream_rq_total{{envoy_cluster_name="{FAILOVER_CLUSTER}"}}[2m]))',
            "prometheusThreshold": "5",
            "activationThreshold": "0.1",
        },
    )


def live_route_objects(tier: Tier) -> list[dict[str, Any]]:
    """What Envoy Gateway's controller translates for the route, as the API server holds it now."""
    kinds = "httproute,backends.gateway.envoyproxy.io,backendtrafficpolicies.gateway.envoyproxy.io,service"
    items = kube(tier, "staging", "get", kinds, "-n", "models")["items"]
    for item in items:
        item.pop("status", None)
        item["metadata"] = {k: item["metadata"][k] for k in ("name", "namespace", "labels") if k in item["metadata"]}
    return items


def accepted(tier: Tier, kind: str, name: str) -> dict[str, str]:
    """The controller's verdict on a route (`parents`) or a policy (`ancestors`): {condition: status}."""
    found = kube(tier, "staging", "get", kind, name, "-n", "models")["status"]
    [parent] = found.get("parents") or found.get("ancestors")
    return {c["type"]: c["status"] for c in parent["conditions"]}


def test_a_standby_at_zero_fails_over_to_its_function(tier, tmp_path):
    """staging's sentiment with `standbyFailover`, awake then asleep at zero. Envoy Gateway's controller accepts the
    route (every Backend resolved) and its failover policy, awake and asleep alike; egctl translates the objects as
    the API server holds them to one cluster with the track at priority 0 and the relay at priority 1 (not a weight
    split: tests/e2e/test_gateway_fallback.py), in both states. The relay's role may invoke only the function's live
    alias through its URL. Back to the reference stack, the relay, its Backends and the policy go."""
    from tests.e2e.test_gateway_fallback import assert_priority_failover, translate

    assert tier.aws is not None
    config = tier.cli.project / "policies" / "config" / "staging.json"
    reference = config.read_text()
    policy = json.loads(reference)  # what `modelops policy-config --write` adds for the relay
    policy["k8s-allowed-registries"]["registries"].append(RELAY_REGISTRY)
    config.write_text(json.dumps(policy))
    track = [(100, "sentiment.models.svc.cluster.local")]
    try:
        tier.prometheus.set(FAILOVER_CLUSTER, 3.0)  # awake: the gateway counts requests
        apply(tier, "staging", standby_failover_at_zero, label="failover-awake")
        wait_for("sentiment awake", lambda: (replicas(tier, "staging", "models", "sentiment") or 0) >= 1)
        assert accepted(tier, "httproute", "sentiment") == {"Accepted": "True", "ResolvedRefs": "True"}
        assert accepted(tier, "backendtrafficpolicies.gateway.envoyproxy.io", "sentiment")["Accepted"] == "True"
        assert_priority_failover(translate(live_route_objects(tier), tmp_path), track)

        tier.prometheus.set(FAILOVER_CLUSTER, None)  # idle: KEDA takes it to zero
        wait_for("sentiment asleep", lambda: replicas(tier, "staging", "models", "sentiment") == 0, timeout=420)
        slices = kube(
            tier, "staging", "get", "endpointslices", "-n", "models", "-l", "kubernetes.io/service-name=sentiment"
        )
        assert not [e for s in slices["items"] for e in s.get("endpoints") or [] if e["conditions"].get("ready")]
        assert accepted(tier, "httproute", "sentiment") == {"Accepted": "True", "ResolvedRefs": "True"}
        assert_priority_failover(translate(live_route_objects(tier), tmp_path), track)
        relay_policies(tier)
    finally:
        tier.prometheus.set(FAILOVER_CLUSTER, None)
        config.write_text(reference)
    apply(tier, "staging", label="failover-reference")
    assert replicas(tier, "staging", "models", "sentiment-failover-relay") is None
    refs = kube(tier, "staging", "get", "httproute", "sentiment", "-n", "models")["spec"]["rules"][0]["backendRefs"]
    assert refs == [{"group": "", "kind": "Service", "name": "sentiment", "port": 80, "weight": 100}]


def relay_policies(tier: Tier) -> None:
    """The relay's role (in the AWS emulator) may invoke only the function's live alias, through its URL."""
    assert tier.aws is not None
    iam = tier.aws.client("iam", "us-west-2")
    [role] = [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("sentiment-failover-role")]
    [name] = iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    document = iam.get_role_policy(RoleName=role["RoleName"], PolicyName=name)["PolicyDocument"]
    resources = {s["Resource"] for s in document["Statement"]}
    assert resources == {"arn:aws:lambda:us-west-2:123456789012:function:modelops-staging-sentiment:live"}


def test_a_pool_resized_and_moved_to_other_families_is_updated_in_place(tier):
    """A bigger pool is a bigger GPU ceiling: the budget moves with it, in the stack file and in the policy config
    `modelops policy-config --write` derives from it (gpu-cost-ceiling reads the latter)."""

    def resize(config: dict[str, Any]) -> None:
        config["modelops:budget"]["monthlyGpuUsd"] = 10000
        pool = config["modelops:gpuPools"]["l4"]
        pool["gpuLimit"] = 8
        pool["instanceTypes"] = ["g6.xlarge", "g6.2xlarge", "g6.4xlarge"]

    policy_config = tier.cli.project / "policies" / "config" / "staging.json"
    original = policy_config.read_text()
    settings = json.loads(original)
    settings["gpu-cost-ceiling"]["budgetUsd"] = 10000
    policy_config.write_text(json.dumps(settings, indent=2))
    try:
        events = apply(tier, "staging", resize, label="pool-resized")
    finally:
        policy_config.write_text(original)
    touched = {name: op for op, name in operations(events) if op not in ("same", "read")}
    assert touched.get("l4-node-pool") == "update" and "replace" not in touched.values(), touched
    pool = kube(tier, "staging", "get", "nodepool", "l4")
    assert pool["spec"]["limits"]["nvidia.com/gpu"] in (8, "8")
    apply(tier, "staging", label="pool-reference")


def test_a_model_added_then_removed(tier):
    def add(config: dict[str, Any]) -> None:
        translator = json.loads(json.dumps(_models(config)["sentiment"]))
        translator["artifactUri"] = "s3://acme-models-staging/translator/1.3.0"
        _models(config)["translator"] = translator

    apply(tier, "staging", add, label="model-added")
    assert replicas(tier, "staging", "models", "translator") is not None
    apply(tier, "staging", label="model-removed")
    assert replicas(tier, "staging", "models", "translator") is None


def test_kedas_webhook_refuses_a_scaled_object_for_a_deployment_another_hpa_scales(tier):
    """A planted defect only KEDA sees: someone scaled the summarizer with an HPA of their own (`kubectl
    autoscale`); the next `up` that touches its ScaledObject is refused by KEDA's admission webhook (verifyHpas: one
    workload, one autoscaler), and the message names the HPA. Once it is gone, the same `up` goes through."""
    cluster = tier.clusters["staging"]
    apply(tier, "staging", label="before-rogue-hpa")
    cluster.apply(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "rogue", "namespace": "models"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "summarizer"},
                "minReplicas": 1,
                "maxReplicas": 2,
            },
        }
    )

    def threshold(config: dict[str, Any]) -> None:
        _models(config)["summarizer"]["autoscaling"]["prometheusThreshold"] = "7"

    tier.cli.stack_config("staging", edit=threshold)
    refused = tier.cli.up("staging")
    assert refused.returncode != 0, refused.explain()
    assert "admission webhook" in refused.stdout + refused.stderr and "rogue" in refused.stdout + refused.stderr
    cluster.kubectl("delete", "hpa", "rogue", "-n", "models")
    apply(tier, "staging", threshold, label="after-rogue-hpa")
    apply(tier, "staging", label="threshold-reference")
