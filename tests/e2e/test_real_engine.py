"""The real Pulumi engine on every reference stack: preview with the policy pack, up, no perpetual diff,
a version bump's blast radius, recovery from a fault in the middle of an up, destroy; and the offline
engine held to the real preview (shape, Kubernetes inputs, policy verdicts).

The tests of one stack run in order (pytest keeps the file's order): each leaves the stack in the state
the next one starts from.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from modelops_cli.check import load_policy_config, run_checks
from modelops_cli.diff import diff_plans
from modelops_cli.offline.engine import run_program
from modelops_cli.plan import from_json
from modelops_cli.stackfile import load_stack
from tests.components.test_weights_verification import tiny_model
from tests.e2e.aws_emulator import objects_of_state, world
from tests.e2e.conftest import ENVIRONMENTS, Tier
from tests.e2e.fidelity import (
    differences,
    known_divergence,
    kubernetes_inputs,
    offline_verdicts,
    real_verdicts,
    shape,
    steps_by_urn,
)
from tests.e2e.pulumi_cli import read_event_log

ROOT = Path(__file__).resolve().parents[2]
CLI_FIXTURE = ROOT / "tests" / "upstream" / "fixtures" / "pulumi-cli" / "sample-preview-creates.json"
PART_OF = "app.kubernetes.io/part-of=modelops"


def offline_plan(tier: Tier, env: str) -> dict:
    """The offline plan of the very stack file the real CLI runs."""
    return run_program(load_stack(env, stack_file=tier.cli.project / "stacks" / f"Pulumi.{env}.yaml"))


def first_preview(tier: Tier, env: str) -> dict:
    if env not in tier.previews:
        log = tier.cli.workdir / f"{env}-preview-events.json"
        result = tier.cli.preview(env, event_log=log)
        assert result.returncode == 0, result.explain()
        tier.previews[env] = result.json()
        tier.events[env] = read_event_log(log)
    return tier.previews[env]


def changed(plan: dict) -> dict[str, str]:
    return {s["urn"]: s["op"] for s in plan.get("steps", []) if s["op"] not in ("same", "read")}


def stack_objects(tier: Tier, env: str) -> list[dict]:
    if env not in tier.clusters:
        return []
    return tier.clusters[env].objects(f"{PART_OF},modelops/environment={env}")


# ---- preview with the policy pack ----


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_preview_with_the_policy_pack_succeeds(tier, env):
    plan = first_preview(tier, env)
    assert plan["changeSummary"].get("create", 0) > 10
    # the pack ran: one analysis summary per resource, and the stack's own
    assert any("policyAnalyzeStackSummaryEvent" in e for e in tier.events[env])
    if env != "dev":
        # Objects whose inputs are known went through the API server's dry run: their previewed outputs
        # carry what only the server adds (the namespace's name label, a creation timestamp).
        # Objects with values unknown until the update (an image built in it) cannot be dry-run.
        outputs = {
            e["resOutputsEvent"]["metadata"]["urn"]: e["resOutputsEvent"]["metadata"]["new"]["outputs"]
            for e in tier.events[env]
            if "resOutputsEvent" in e
        }
        namespace = next(o for urn, o in outputs.items() if urn.endswith("::ns-models"))
        assert namespace["metadata"]["labels"]["kubernetes.io/metadata.name"] == "models"
        assert namespace["metadata"]["creationTimestamp"]


# ---- fidelity: offline vs real ----


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_offline_plan_has_the_real_preview_shape(tier, env):
    real_plan, offline_plan_ = first_preview(tier, env), offline_plan(tier, env)
    assert offline_plan_["changeSummary"] == real_plan["changeSummary"]
    real, offline = shape(real_plan), shape(offline_plan_)
    assert sorted(set(real) - set(offline)) == [] and sorted(set(offline) - set(real)) == []
    mismatched = {urn: (offline[urn], real[urn]) for urn in real if offline[urn] != real[urn]}
    assert mismatched == {}, json.dumps(mismatched, indent=1)
    # the same keys in every step and state (the CLI adds where in the program each resource came from)
    real_steps, offline_steps = steps_by_urn(real_plan), steps_by_urn(offline_plan_)
    origin = {"sourcePosition", "stackTrace"}
    keys = {
        urn: (sorted(set(offline_steps[urn]["newState"]) - origin), sorted(set(real_steps[urn]["newState"]) - origin))
        for urn in real_steps
    }
    assert {urn: k for urn, k in keys.items() if k[0] != k[1]} == {}
    # explicit providers: the same inputs, the version the SDK asked for included (the engine's own
    # `__internal` bookkeeping aside)
    for urn, step in real_steps.items():
        if "::pulumi:providers:" in urn:
            real_inputs = {k: v for k, v in step["newState"]["inputs"].items() if k != "__internal"}
            assert offline_steps[urn]["newState"]["inputs"] == real_inputs, urn


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_offline_plan_has_the_real_kubernetes_inputs(tier, env):
    real, offline = kubernetes_inputs(first_preview(tier, env)), kubernetes_inputs(offline_plan(tier, env))
    assert set(real) == set(offline)
    explained, unexplained = set(), []
    for urn in sorted(real):
        for path, offline_value, real_value in differences(offline[urn], real[urn]):
            reason = known_divergence(path, offline_value, real_value)
            if reason is None:
                unexplained.append(f"{urn}{path}: offline {offline_value!r} != real {real_value!r}")
            else:
                explained.add((urn.rsplit("::", 1)[-1], reason))
    assert unexplained == []
    # Pinned: exactly the service accounts of models whose artifact is in S3 carry the known divergence,
    # so a change on either side (the mocks answering unknown, the provider knowing ARNs) fails here.
    accounts = {urn.rsplit("::", 1)[-1] for urn in real if urn.endswith("-sa")}
    assert explained == {(sa, "aws-output-unknown-at-create") for sa in accounts}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_check_gives_the_real_policy_verdicts(tier, env):
    first_preview(tier, env)
    config = load_policy_config(ROOT / "policies" / "config" / f"{env}.json")
    report = run_checks(from_json(tier.previews[env], f"real preview of {env}"), config)
    assert offline_verdicts(report) == real_verdicts(tier.events[env])
    # and on the offline engine's own plan of the same stack
    offline_report = run_checks(from_json(offline_plan(tier, env), f"offline plan of {env}"), config)
    assert offline_verdicts(offline_report) == real_verdicts(tier.events[env])


def plant_violations(config: dict) -> None:
    """Three mistakes a stack file can make, each a mandatory rule in prod."""
    config["modelops:models"]["chat"]["env"] = {"API_TOKEN": "literal-token"}  # k8s-no-secret-env
    config["modelops:gpuPools"]["a10g"]["amiVersion"] = "latest"  # karpenter-ami-pinned
    config["modelops:gpuPools"]["a10g"]["gpuLimit"] = 40  # karpenter-gpu-limit (32), gpu-cost-ceiling


def test_planted_violations_get_the_same_verdicts_offline_and_for_real(tier):
    log = tier.cli.workdir / "prod-planted-events.json"
    tier.cli.stack_config("prod", edit=plant_violations)
    try:
        result = tier.cli.preview("prod", event_log=log)
        offline = offline_plan(tier, "prod")
    finally:
        tier.cli.stack_config("prod")
    assert result.returncode != 0  # mandatory violations fail the real preview
    real = real_verdicts(read_event_log(log))
    report = run_checks(from_json(offline, "planted"), load_policy_config(ROOT / "policies" / "config" / "prod.json"))
    assert offline_verdicts(report) == real
    assert {rule for rule, _, outcome in real if outcome == "fail"} >= {
        "k8s-no-secret-env",
        "karpenter-ami-pinned",
        "karpenter-gpu-limit",
        "gpu-cost-ceiling",
    }
    assert report.mandatory_failures


@pytest.mark.parametrize(
    "change, real_exit",
    [
        ({"k8s-no-such-rule": "mandatory"}, 0),  # the CLI ignores a policy name the pack does not have
        ({"all": "strict"}, 1),  # and refuses an unknown level or a setting against its schema
        ({"gpu-cost-ceiling": {"budgetUsd": "lots"}}, 1),
    ],
)
def test_policy_configs_the_cli_accepts_and_refuses(tier, change, real_exit, tmp_path):
    config = {**json.loads((ROOT / "policies" / "config" / "dev.json").read_text()), **change}
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(config))
    result = tier.cli.run(
        "preview", "-s", "dev", "--policy-pack", str(tier.cli.project / "policies"), "--policy-pack-config", str(path)
    )
    assert result.returncode == real_exit, result.explain()
    # offline refuses all three (exit 2): the unknown name is a divergence on the strict side, which
    # catches a misspelt rule whose settings the CLI would silently drop
    from modelops_cli.cli import main

    assert main(["check", "--plan", str(CLI_FIXTURE), "--policy-config", str(path)]) == 2


# ---- update lifecycle ----


def test_a_fault_in_the_middle_of_up_leaves_a_state_a_second_up_converges_from(tier):
    # The stand-in refuses to create the summarizer's IAM role: everything that does not depend on it
    # is created, the rest is not; nothing is recorded that does not exist.
    failed = tier.cli.up("staging", MODELOPS_STANDIN_FAIL_CREATE="summarizer-role")
    assert failed.returncode != 0
    assert "injected failure creating summarizer-role" in failed.stdout + failed.stderr
    state = tier.cli.export("staging")["deployment"]["resources"]
    assert not any(r["urn"].endswith("::summarizer-role") for r in state)
    converged = tier.cli.up("staging")
    assert converged.returncode == 0, converged.explain()
    assert_state_matches_the_world(tier, "staging")


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_up_creates_every_object(tier, env):
    result = tier.cli.up(env)
    assert result.returncode == 0, result.explain()
    assert_state_matches_the_world(tier, env)


def assert_state_matches_the_world(tier: Tier, env: str) -> None:
    """Each resource once in the state; each Kubernetes object in the API server; each AWS object and pushed
    image tag the state records exists in the AWS emulator, and the emulator holds no AWS object that no
    stack's state knows (nothing orphaned, nothing duplicated)."""
    resources = tier.cli.export(env)["deployment"]["resources"]
    urns = [r["urn"] for r in resources]
    assert len(urns) == len(set(urns))
    live = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in stack_objects(tier, env)}
    for r in resources:
        if r["type"].startswith("kubernetes:") and not r["type"].startswith("pulumi:providers"):
            outputs = r.get("outputs", {})
            meta = outputs.get("metadata", {})
            key = (outputs.get("kind"), meta.get("namespace"), meta.get("name"))
            labels = meta.get("labels", {})
            if labels.get("app.kubernetes.io/part-of") == "modelops" and labels.get("modelops/environment") == env:
                assert key in live, key
    assert_the_emulator_matches_the_states(tier, env, resources)


def assert_the_emulator_matches_the_states(tier: Tier, env: str, resources: list[dict] | None = None) -> None:
    """What `env`'s state records exists in the emulator; every AWS object there belongs to some stack's
    state. Image tags may outlive their Image (an update leaves the old tags, `retainOnDelete` keeps them,
    the build caches are no resource's), as in a real registry, so they are not counted as orphans."""
    assert tier.aws is not None, "the tier runs an AWS emulator"
    if resources is None:
        resources = tier.cli.export(env)["deployment"].get("resources") or []
    in_aws = world(tier.aws)
    assert sorted(objects_of_state(resources) - in_aws) == []
    known: set[tuple[str, str]] = set()
    for stack in ENVIRONMENTS:
        known |= objects_of_state(tier.cli.export(stack)["deployment"].get("resources") or [])
    assert sorted(o for o in in_aws - known if o[0] != "ecr-image-tag") == []


def _server(pod: dict) -> dict:
    return pod["containers"][0]


PSS_VIOLATIONS = {
    # control: (mutation of a pod spec, the rule that must fail it)
    "Privileged Containers": (lambda p: _server(p)["securityContext"].update(privileged=True), "k8s-no-privileged"),
    "Host Namespaces": (lambda p: p.update(hostPID=True), "k8s-no-host-namespaces"),
    "Host Ports": (lambda p: _server(p)["ports"][0].update(hostPort=8080), "k8s-no-host-namespaces"),
    "HostPath Volumes": (
        lambda p: p["volumes"].append({"name": "host", "hostPath": {"path": "/var/log"}}),
        "k8s-no-hostpath",
    ),
    "Capabilities": (
        lambda p: _server(p)["securityContext"]["capabilities"].update(add=["SYS_TIME"]),
        "k8s-drop-capabilities",
    ),
    "Privilege Escalation": (
        lambda p: _server(p)["securityContext"].update(allowPrivilegeEscalation=True),
        "k8s-no-privilege-escalation",
    ),
    "Running as Non-root user": (lambda p: _server(p)["securityContext"].update(runAsUser=0), "k8s-run-as-non-root"),
    "Seccomp": (lambda p: _server(p)["securityContext"].update(seccompProfile={"type": "Unconfined"}), "k8s-seccomp"),
    "Sysctls": (
        lambda p: p["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "65536"}]),
        "k8s-safe-sysctls",
    ),
    "/proc Mount Type": (lambda p: _server(p)["securityContext"].update(procMount="Unmasked"), "k8s-proc-mount"),
    "SELinux": (lambda p: _server(p)["securityContext"].update(seLinuxOptions={"type": "spc_t"}), "k8s-selinux"),
    "AppArmor": (
        lambda p: _server(p)["securityContext"].update(appArmorProfile={"type": "Unconfined"}),
        "k8s-apparmor",
    ),
    "Volume Types": (
        lambda p: p["volumes"].append({"name": "nfs", "nfs": {"server": "10.0.0.1", "path": "/"}}),
        "k8s-volume-types",
    ),
}


def test_the_pack_and_pod_security_admission_agree_on_every_control(tier):
    """The prod model pod, as planned, passes the pack and the API server's Pod Security admission
    (`restricted` enforced on its namespace, server-side dry run); each control broken in it fails both."""
    import copy

    from modelops_cli.plan import load_plan
    from tests.policies.test_rules import preview_json

    cluster = tier.clusters["prod"]
    deployment = next(
        s["newState"]["inputs"] for s in offline_plan(tier, "prod")["steps"] if s["urn"].endswith("::chat-deployment")
    )
    template = deployment["spec"]["template"]

    def verdicts(pod_spec: dict, tag: str) -> tuple[bool, set[str]]:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"pss-{tag}", "namespace": "models", "labels": template["metadata"]["labels"]},
            "spec": pod_spec,
        }
        admitted = (
            cluster.kubectl("create", "--dry-run=server", "-f", "-", check=False, input=json.dumps(pod)).returncode == 0
        )
        path = tier.cli.workdir / f"pss-{tag}.json"
        path.write_text(json.dumps(preview_json([("kubernetes:core/v1:Pod", "pod", pod)])))
        failed = {f.rule for f in run_checks(load_plan(path), {"all": "mandatory"}).findings if f.outcome == "fail"}
        return admitted, failed

    admitted, failed = verdicts(template["spec"], "as-planned")
    pss_rules = {rule for _, rule in PSS_VIOLATIONS.values()}
    assert admitted and not failed & pss_rules, failed
    for control, (mutate, rule) in PSS_VIOLATIONS.items():
        spec = copy.deepcopy(template["spec"])
        mutate(spec)
        admitted, failed = verdicts(spec, control.lower().replace(" ", "-").replace("/", ""))
        assert not admitted, f"{control}: the admission accepted what the pack should fail"
        assert rule in failed, f"{control}: the admission refused it, {rule} passed it ({sorted(failed)})"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_second_preview_after_up_reports_no_changes(tier, env):
    result = tier.cli.preview(env)
    assert result.returncode == 0, result.explain()
    assert changed(result.json()) == {}


@pytest.mark.parametrize("env, model", [("staging", "summarizer"), ("prod", "sentiment")])
def test_a_version_bump_changes_that_model_only(tier, env, model):
    def bump(config):
        spec = config["modelops:models"][model]
        spec["version"] = spec["version"].rsplit(".", 1)[0] + ".99"
        spec["artifactUri"] = spec["artifactUri"].rsplit("/", 1)[0] + "/" + spec["version"]

    tier.cli.stack_config(env, edit=bump)
    try:
        result = tier.cli.preview(env)
    finally:
        tier.cli.stack_config(env)
    assert result.returncode == 0, result.explain()
    touched = changed(result.json())
    assert touched, "a version bump changes something"
    outside = sorted(urn for urn in touched if f"::{model}-" not in urn and not urn.endswith(f"::{model}"))
    assert outside == []


def test_pinning_a_versions_weights_checks_them_in_that_models_pods_only(tier):
    """The lock's manifest becomes the fetch container's check: the API server's dry run takes the Deployment
    (the bash script and the manifest as arguments), and only the pinned model's objects change."""
    manifest = {path: hashlib.sha256(content).hexdigest() for path, content in tiny_model().items()}
    lock = tier.cli.project / "stacks" / "weights.lock.json"
    lock.write_text(json.dumps({"format": 1, "weights": {"s3://acme-models-staging/summarizer/2.0.0": manifest}}))
    try:
        result = tier.cli.preview("staging")
    finally:
        lock.unlink()
    assert result.returncode == 0, result.explain()
    touched = changed(result.json())
    # that model's objects only (its deadlines allow for the check, so its canary's timings move too)
    assert any(urn.endswith("::summarizer-deployment") for urn in touched), touched
    assert all(urn.rsplit("::", 1)[1].startswith("summarizer-") for urn in touched), touched
    [step] = [s for s in result.json()["steps"] if s["urn"].endswith("::summarizer-deployment")]
    pod = step["newState"]["inputs"]["spec"]["template"]["spec"]
    [fetch] = pod["initContainers"]
    assert fetch["command"][:2] == ["/bin/bash", "-c"]
    assert fetch["command"][6] == "".join(f"{h}  {p}\n" for p, h in sorted(manifest.items()))


def preview_with(tier: Tier, env: str, edit) -> dict:
    tier.cli.stack_config(env, edit=edit)
    try:
        result = tier.cli.preview(env)
    finally:
        tier.cli.stack_config(env)
    assert result.returncode == 0, result.explain()
    return result.json()


def test_canary_roll_back_and_promotion_are_the_config_changes_the_readme_describes(tier):
    """Roll back: `weight: 0` sends the canary nothing and scales it to zero pods (its PDB goes). Promote:
    `version` takes the canary's, `canary` goes. Each touches the model's own resources only."""

    def roll_back(config):
        config["modelops:models"]["chat"]["canary"]["weight"] = 0

    def promote(config):
        chat = config["modelops:models"]["chat"]
        chat["version"] = chat.pop("canary")["version"]
        chat["artifactUri"] = chat["artifactUri"].replace("2.4.0", chat["version"])

    rolled = preview_with(tier, "prod", roll_back)
    steps = {s["urn"].rsplit("::", 1)[-1]: s for s in rolled["steps"]}
    assert all(u.rsplit("::", 1)[-1].startswith("chat-") for u in changed(rolled)), changed(rolled)
    # chat scales with KEDA: its canary's replicas stay KEDA's, held at 0; the Deployment itself is not touched
    # (never spec.replicas, which KEDA owned: a server-side apply conflict)
    held = steps["chat-canary-keda"]["newState"]["inputs"]["metadata"]["annotations"]
    assert held == {"autoscaling.keda.sh/paused-replicas": "0"}
    assert not [u for u in changed(rolled) if u.endswith("::chat-canary-deployment")]
    assert steps["chat-canary-pdb"]["op"] == "delete"
    weights = {
        b["name"]: b["weight"] for b in steps["chat-route"]["newState"]["inputs"]["spec"]["rules"][0]["backendRefs"]
    }
    assert weights == {"chat-stable": 100, "chat-canary": 0}

    promoted = preview_with(tier, "prod", promote)
    touched = changed(promoted)
    assert touched and all(u.rsplit("::", 1)[-1].startswith("chat") for u in touched), touched
    steps = {s["urn"].rsplit("::", 1)[-1]: s for s in promoted["steps"]}
    assert steps["chat-canary-deployment"]["op"] == "delete"
    stable = steps["chat-deployment"]["newState"]["inputs"]["spec"]["template"]["metadata"]["labels"]
    assert stable["app.kubernetes.io/version"] == "2.5.0"


def test_switching_to_keda_and_back_replaces_the_autoscaler_deleting_first(tier):
    """KEDA's webhook refuses a ScaledObject for a Deployment an HPA still scales: the switch must delete
    the HPA before it creates the ScaledObject (one aliased replacement), and leave no HPA behind."""

    def keda(config):
        config["modelops:models"]["sentiment"]["autoscaling"] = {
            "prometheusQuery": 'sum(rate(http_requests_total{service="sentiment"}[1m]))',
            "prometheusThreshold": "20",
        }

    cluster = tier.clusters["staging"]
    hpa_urn = "modelops:index:ModelService$kubernetes:autoscaling/v2:HorizontalPodAutoscaler::sentiment-hpa"
    scaler_urn = "modelops:index:ModelService$kubernetes:keda.sh/v1alpha1:ScaledObject::sentiment-scaler"
    for edit, old, new in ((keda, hpa_urn, scaler_urn), (None, scaler_urn, hpa_urn)):
        tier.cli.stack_config("staging", edit=edit)
        log = tier.cli.workdir / "staging-autoscaler-switch.json"
        try:
            result = tier.cli.up("staging", event_log=log)
        finally:
            tier.cli.stack_config("staging")
        assert result.returncode == 0, result.explain()
        ops = [
            (e["resourcePreEvent"]["metadata"]["op"], e["resourcePreEvent"]["metadata"]["urn"].split("::", 2)[2])
            for e in read_event_log(log)
            if "resourcePreEvent" in e
        ]
        touched = [(op, urn) for op, urn in ops if urn in (old, new)]
        assert touched == [("delete-replaced", old), ("replace", new), ("create-replacement", new)], touched
        objects = cluster.objects(f"{PART_OF},app.kubernetes.io/name=sentiment")
        kinds = {o["kind"] for o in objects}
        assert ("ScaledObject" in kinds) is (new == scaler_urn), kinds
        # KEDA scales through an HPA of its own (keda-hpa-<name>, carrying the ScaledObject's labels); ours goes
        hpas = {o["metadata"]["name"] for o in objects if o["kind"] == "HorizontalPodAutoscaler"}
        assert hpas == ({"sentiment"} if new == hpa_urn else {"keda-hpa-sentiment"}), hpas
    assert_state_matches_the_world(tier, "staging")


def test_a_protected_resource_is_never_deleted_offline_or_for_real(tier):
    # Removing a model from prod deletes its ECR repository, which prod protects: the real preview
    # refuses, and the offline diff (and so the PR comment) reports the refusal, exiting 1.
    def drop_sentiment(config):
        del config["modelops:models"]["sentiment"]

    base = offline_plan(tier, "prod")
    tier.cli.stack_config("prod", edit=drop_sentiment)
    try:
        result = tier.cli.preview("prod")
        head = offline_plan(tier, "prod")
    finally:
        tier.cli.stack_config("prod")
    assert result.returncode != 0
    assert "sentiment-repo" in result.stdout + result.stderr and "protect" in result.stdout + result.stderr
    assert [r.name for r in diff_plans(from_json(base), from_json(head)).refused] == ["sentiment-repo"]


def _crd(group: str, kind: str, plural: str) -> dict:
    """A minimal CRD (any spec accepted): the prerequisite check asks that the API be served, not its schema.
    A group under k8s.io is protected: the API server admits its CRDs only with the approval annotation the
    real ones carry (the Gateway API's, as on the vendored HTTPRoute CRD)."""
    approval = {"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/4530"}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{group}",
            **({"annotations": approval} if group.endswith(".k8s.io") else {}),
        },
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


def _route_accepted(cluster, namespace: str, name: str) -> str:
    """The Accepted status Envoy Gateway reports for a route on the `models` Gateway ('' before it reports)."""
    return cluster.kubectl(
        "get", "httproute", name, "-n", namespace, "-o",
        "jsonpath={.status.parents[?(@.parentRef.name=='models')].conditions[?(@.type=='Accepted')].status}",
        check=False,
    ).stdout.strip()  # fmt: skip


def _wait_route_accepted(cluster, namespace: str, name: str, status: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while _route_accepted(cluster, namespace, name) != status:
        assert time.monotonic() < deadline, f"HTTPRoute {namespace}/{name} never reported Accepted={status}"
        time.sleep(1)


def test_preflight_reports_what_the_real_cluster_lacks_then_passes_once_it_has_it(tier):
    """modelops preflight against the local API server, whose Gateway Envoy Gateway's controller runs
    (tests/e2e/gateway.py). prod needs a Prometheus that selects its objects, the Mountpoint S3 CSI driver,
    metrics-server and KEDA's operator, which this cluster lacks, while its Gateway admits every route.
    Then the Gateway's listener is set to the Gateway API default (`allowedRoutes` from Same: only routes in
    gateway-system) and the CSI node DaemonSet has the chart's default tolerations (not the GPU pools'
    nvidia.com/gpu taint, awslabs/mountpoint-s3-csi-driver#109): pre-flight fails naming the listener and the
    taint, and reports the Accepted=False the real controller now gives the existing routes. With `from: All`
    and `node.tolerateAllTaints` it passes again.

    Stand-ins, removed afterwards: metrics-server is a local APIService (the aggregator reports a local one
    Available; nothing serves metrics behind it), and KEDA's operator, which the tier runs as a host process
    (tests/e2e/keda.py), is represented by the Deployment its Helm chart would leave (replicas 0, its label)."""
    import contextlib
    import io

    from modelops_cli.cli import main
    from tests.e2e.conftest import stack_gateway_hostname
    from tests.e2e.gateway import gateway_manifests

    cluster = tier.clusters["prod"]
    argv = ["preflight", "--stack", "prod", "--cluster-only", "--kubeconfig", str(cluster.kubeconfig_path)]

    def preflight() -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(argv)
        return code, out.getvalue()

    code, out = preflight()
    assert code == 1, out
    for missing in (
        "CSIDriver s3.csi.aws.com",
        "no Prometheus (monitoring.coreos.com/v1) is served",
        "metrics-server is not installed (no APIService v1beta1.metrics.k8s.io)",
        "KEDA's operator was not found",
    ):
        assert missing in out, out
    assert "servicemonitors.monitoring.coreos.com/v1 is served" in out
    assert "Gateway gateway-system/models admits HTTPRoute models/chat" in out, out

    cluster.apply(_crd("monitoring.coreos.com", "Prometheus", "prometheuses"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/prometheuses.monitoring.coreos.com")
    cluster.kubectl("create", "namespace", "keda", check=False)  # exists where the tier runs KEDA
    hostname = stack_gateway_hostname("prod")
    csi_node: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "s3-csi-node", "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": {"app": "s3-csi-node"}},
            "template": {
                "metadata": {"labels": {"app": "s3-csi-node"}},
                "spec": {
                    # the chart's defaultTolerations (charts/aws-mountpoint-s3-csi-driver/templates/node.yaml)
                    "tolerations": [
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"key": "s3.csi.aws.com/agent-not-ready", "operator": "Exists"},
                        {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    ],
                    "containers": [
                        {
                            "name": "s3-plugin",
                            "image": "public.ecr.aws/mountpoint-s3-csi-driver/aws-mountpoint-s3-csi-driver:v1.14.1",
                        }
                    ],
                },
            },
        },
    }
    keda_labels = {
        "app": "keda-operator",
        "app.kubernetes.io/name": "keda-operator",
        "app.kubernetes.io/version": "2.21.0",
    }
    keda_operator = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "keda-operator", "namespace": "keda", "labels": keda_labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "keda-operator"}},
            "template": {
                "metadata": {"labels": {"app": "keda-operator"}},
                "spec": {"containers": [{"name": "keda-operator", "image": "ghcr.io/kedacore/keda:2.21.0"}]},
            },
        },
    }
    metrics_api = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": "v1beta1.metrics.k8s.io"},
        "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100},
    }
    try:
        cluster.apply(
            *gateway_manifests(hostname, allowed_from="Same"),
            csi_node,
            keda_operator,
            metrics_api,
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "Prometheus",
                "metadata": {"name": "kube-prometheus-stack-prometheus", "namespace": "monitoring"},
                "spec": {
                    "serviceMonitorSelector": {"matchLabels": {"release": "kube-prometheus-stack"}},
                    "serviceMonitorNamespaceSelector": {},
                    "ruleSelector": {"matchLabels": {"release": "kube-prometheus-stack"}},
                    "ruleNamespaceSelector": {},
                },
            },
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "CSIDriver",
                "metadata": {"name": "s3.csi.aws.com"},
                "spec": {"attachRequired": False},
            },
        )
        cluster.kubectl("wait", "--for=condition=Available", "--timeout=60s", "apiservice/v1beta1.metrics.k8s.io")
        # once prod is up (the tests before this one), the real controller agrees: it detaches the routes
        deployed = cluster.kubectl("get", "httproute", "chat", "-n", "models", check=False).returncode == 0
        if deployed:
            _wait_route_accepted(cluster, "models", "chat", "False")
        code, out = preflight()
        assert code == 1, out
        assert "namespace models is not allowed by listener http (allowedRoutes.namespaces.from: Same)" in out, out
        if deployed:
            assert "HTTPRoute models/chat exists and its Gateway gateway-system/models reports Accepted=False" in out
        assert "does not tolerate the pool's taint nvidia.com/gpu=true:NoSchedule" in out, out

        cluster.apply(*gateway_manifests(hostname, allowed_from="All"))
        csi_node["spec"]["template"]["spec"]["tolerations"] = [{"operator": "Exists"}]  # node.tolerateAllTaints
        cluster.apply(csi_node)
        if deployed:
            _wait_route_accepted(cluster, "models", "chat", "True")
        code, out = preflight()
        assert code == 0, out
        assert "Gateway gateway-system/models admits HTTPRoute models/chat" in out, out
    finally:
        # the reference state the later tests start from: the Gateway admitting every namespace, no stand-ins
        # (nothing serves metrics.k8s.io behind the APIService: left registered, discovery of that group would
        # fail for the namespace controller and the garbage collector)
        cluster.apply(*gateway_manifests(hostname, allowed_from="All"))
        cluster.kubectl("delete", "apiservice", "v1beta1.metrics.k8s.io", "--ignore-not-found", check=False)
        cluster.kubectl("delete", "-n", "kube-system", "daemonset", "s3-csi-node", "--ignore-not-found", check=False)
        cluster.kubectl("delete", "-n", "keda", "deployment", "keda-operator", "--ignore-not-found", check=False)
        if cluster.kubectl("get", "httproute", "chat", "-n", "models", check=False).returncode == 0:
            _wait_route_accepted(cluster, "models", "chat", "True")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_destroy_removes_everything_but_what_is_protected(tier, env):
    result = tier.cli.run("destroy", "--yes", "--skip-preview", "--exclude-protected", "-s", env)
    assert result.returncode == 0, result.explain()
    left = tier.cli.export(env)["deployment"].get("resources") or []
    kept = sorted(
        r["urn"].rsplit("::", 1)[-1]
        for r in left
        if not r["type"].startswith(("pulumi:providers:", "pulumi:pulumi:")) and r["custom"]
    )
    protected = sorted(r["urn"].rsplit("::", 1)[-1] for r in left if r.get("protect"))
    assert kept == protected
    if env == "prod":
        # vision runs a pre-built image: no repository of its own
        assert protected == sorted(f"{m}-repo" for m in ("chat", "sentiment", "summarizer"))
    deadline = time.monotonic() + 120
    while stack_objects(tier, env) and time.monotonic() < deadline:
        time.sleep(2)  # namespace deletion finishes in the background, as in any cluster
    assert stack_objects(tier, env) == []
    # the protected repositories stay in the account; nothing else of the stack does
    assert_the_emulator_matches_the_states(tier, env, left)


def test_the_event_logs_are_json_lines(tier):
    for env, events in tier.events.items():
        assert events and all(isinstance(e, dict) for e in events), env
        json.dumps(events)
