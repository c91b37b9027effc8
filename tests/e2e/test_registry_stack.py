"""Models from an MLflow registry through the real engine: staging's two models resolved from a real tracking
server on 127.0.0.1 (tests/mlflow_registry.py) whose artifacts are in the tier's AWS emulator, the bucket the
pods' grants name. `pulumi preview` with the policy pack, then `pulumi up`, converge; moving `@champion` of one
model in the registry (no stack edit) previews as a change of that model's resources alone, which `up` rolls
out; `modelops plan` against the same registry agrees with the real preview on what changes.

How the registry reaches the program: its address is stack config (`modelops:mlflow.trackingUri`), resolved by
the program inside the language host at every preview and up, with MLflow's own MLFLOW_TRACKING_TOKEN from the
environment the CLI passes down (the tier's `PulumiCli.env` keeps the test's environment, AWS_ and PULUMI_
aside). The registry is read over its REST API only: nothing in the program reads S3.

The stack is `staging` (after test_real_engine.py destroyed it, before the drills, which start from the
reference stack file): it is destroyed again at the end, so the drills start from where they did before.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from components.config.mlflow import REGISTERED_SUFFIX
from modelops_cli.cli import main
from modelops_cli.diff import diff_plans
from modelops_cli.plan import from_json
from tests.e2e.conftest import Tier
from tests.e2e.fidelity import real_verdicts
from tests.e2e.pulumi_cli import read_event_log
from tests.mlflow_registry import BUCKET, MlflowServer

ENV = "staging"
REGION = "us-west-2"
TOKEN = "mlflow-e2e-token-0123456789"
"""MLFLOW_TRACKING_TOKEN as the workflows pass it (the server here asks none): it must reach no state or output."""
REGISTERED = re.compile(f"{REGISTERED_SUFFIX}$")


@pytest.fixture(scope="module")
def registry(tier: Tier) -> Iterator[MlflowServer]:
    assert tier.aws is not None, "the tier runs an AWS emulator"
    server = MlflowServer(s3_url=tier.aws.url)
    try:
        yield server
    finally:
        server.stop()
        tier.cli.stack_config(ENV)  # the reference stack file, as the drills expect it
        destroyed = tier.cli.run("destroy", "--yes", "--skip-preview", "--exclude-protected", "-s", ENV)
        assert destroyed.returncode == 0, destroyed.explain()


@pytest.fixture(scope="module")
def runs() -> dict[str, str]:
    """Each registered version's run id, by `<model>/<version>` (the second test reads the first's)."""
    return {}


def from_registry(url: str):
    """Staging's models with their weights from the registry: each stable track `@champion`, the summarizer's canary
    `@challenger`."""

    def edit(config: dict[str, Any]) -> None:
        config["modelops:mlflow"] = {"trackingUri": url, "artifactBuckets": [BUCKET]}
        models = config["modelops:models"]
        for name in ("sentiment", "summarizer"):
            models[name]["artifactUri"] = f"models:/{name}@champion"
        models["summarizer"]["canary"]["artifactUri"] = "models:/summarizer@challenger"

    return edit


def preview(tier: Tier, label: str, policy: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`pulumi preview --json` with every step, unchanged ones included (`--show-sames`), and its engine events."""
    log = tier.cli.workdir / f"registry-{label}.json"
    args = ["preview", "-s", ENV, "--json", "--diff", "--show-sames", "--event-log", str(log)]
    result = tier.cli.run(*args, *(tier.cli.policy_args(ENV) if policy else []), env={"MLFLOW_TRACKING_TOKEN": TOKEN})
    assert result.returncode == 0, result.explain()
    assert TOKEN not in result.stdout + result.stderr
    return result.json(), read_event_log(log)


def up_and_converge(tier: Tier, label: str) -> None:
    """`pulumi up` with the policy pack succeeds, and a preview after it changes nothing."""
    result = tier.cli.up(ENV, MLFLOW_TRACKING_TOKEN=TOKEN)
    assert result.returncode == 0, f"{label}:\n{result.explain()}"
    assert TOKEN not in result.stdout + result.stderr
    after, _ = preview(tier, f"{label}-converged", policy=False)
    pending = {s["urn"].rsplit("::", 1)[-1]: s["op"] for s in after["steps"] if s["op"] not in ("same", "read")}
    assert pending == {}, f"after {label} a preview still changes {pending}"


def by_name(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["urn"].rsplit("::", 1)[-1]: s for s in plan["steps"]}


def inputs(step: dict[str, Any]) -> dict[str, Any]:
    return (step.get("newState") or {}).get("inputs") or {}


def track_version(plan: dict[str, Any], deployment: str) -> str:
    return inputs(by_name(plan)[deployment])["metadata"]["labels"]["app.kubernetes.io/version"]


def registered(version: str) -> str:
    """The registry's version a track's version carries (`1.3.0-r7-3f9a1c` -> `7`)."""
    found = REGISTERED.search(version)
    assert found, f"{version!r} does not carry a registered version"
    return found.group().split("-")[1].removeprefix("r")


def stack_models(tier: Tier) -> dict[str, Any]:
    result = tier.cli.run("stack", "output", "models", "--json", "--show-secrets", "-s", ENV)
    assert result.returncode == 0, result.explain()
    return result.json()


def live_deployment(tier: Tier, name: str) -> dict[str, Any]:
    return json.loads(tier.clusters[ENV].kubectl("get", "deployment", name, "-n", "models", "-o", "json").stdout)


def assert_provenance(deployment: dict[str, Any], version: str, run_id: str) -> None:
    """The Deployment and its pods say which registered version and run their weights are."""
    for shown in (
        deployment["metadata"]["annotations"],
        deployment["spec"]["template"]["metadata"]["annotations"],
    ):
        assert shown["modelops/registry-version"] == version, shown
        assert shown["modelops/registry-run"] == run_id, shown
        assert shown["modelops/artifact-uri"].startswith(f"s3://{BUCKET}/mlflow/"), shown
    assert registered(deployment["metadata"]["labels"]["app.kubernetes.io/version"]) == version


def register(registry: MlflowServer, runs: dict[str, str], name: str, weights: bytes, alias: str | None) -> str:
    version, run_id = registry.register(name, {"weights.bin": weights}, alias=alias)
    runs[f"{name}/{version}"] = run_id
    return version


def test_a_stack_from_the_registry_previews_clean_and_converges(tier, registry, runs):
    sentiment = register(registry, runs, "sentiment", b"sentiment v1", "champion")
    summarizer = register(registry, runs, "summarizer", b"summarizer v1", "champion")
    challenger = register(registry, runs, "summarizer", b"summarizer v2", "challenger")
    tier.cli.stack_config(ENV, edit=from_registry(registry.url))

    plan, events = preview(tier, "first")
    # the pack ran on every resource and failed none (staging enforces it: a mandatory failure fails the preview)
    assert any("policyAnalyzeStackSummaryEvent" in e for e in events)
    assert {v for v in real_verdicts(events) if v[2] == "fail"} == set()
    # each track's version is the registry's, the canary's the challenger's
    assert registered(track_version(plan, "sentiment-deployment")) == sentiment
    assert registered(track_version(plan, "summarizer-deployment")) == summarizer
    assert registered(track_version(plan, "summarizer-canary-deployment")) == challenger
    messages = " ".join(e["diagnosticEvent"]["message"] for e in events if "diagnosticEvent" in e)
    assert f"models:/sentiment@champion is registered version {sentiment}" in messages

    up_and_converge(tier, "first-up")
    assert_provenance(live_deployment(tier, "sentiment"), sentiment, runs[f"sentiment/{sentiment}"])
    assert_provenance(live_deployment(tier, "summarizer-canary"), challenger, runs[f"summarizer/{challenger}"])
    outputs = stack_models(tier)
    assert outputs["sentiment"]["registry"]["stable"]["version"] == sentiment
    assert outputs["summarizer"]["registry"]["canary"]["version"] == challenger
    assert_grant_covers_the_registered_files(tier, runs[f"sentiment/{sentiment}"])
    assert TOKEN not in json.dumps(tier.cli.export(ENV))


def assert_grant_covers_the_registered_files(tier: Tier, run_id: str) -> None:
    """The role staging's sentiment pods assume (in the emulator) may read the registered files, which are there."""
    assert tier.aws is not None
    account = json.loads(
        tier.clusters[ENV].kubectl("get", "serviceaccount", "sentiment", "-n", "models", "-o", "json").stdout
    )
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].rsplit("/", 1)[-1]
    iam = tier.aws.client("iam", REGION)
    [policy] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    resources = {r for s in document["Statement"] for r in _as_list(s.get("Resource"))}
    [objects] = [r.removeprefix(f"arn:aws:s3:::{BUCKET}/").removesuffix("*") for r in resources if r.endswith("/*")]
    assert f"/{run_id}/artifacts/model/" in objects, resources
    listed = tier.aws.client("s3", "us-east-1").list_objects_v2(Bucket=BUCKET, Prefix=objects)
    assert [o["Key"].removeprefix(objects) for o in listed.get("Contents", [])] == ["weights.bin"]


def _as_list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value or [])


def offline_plan(tier: Tier, tmp_path, label: str) -> dict[str, Any]:
    """`modelops plan` of the stack file the real CLI runs, against the same registry."""
    out = tmp_path / f"{label}.json"
    code = main(["plan", "--stack-file", str(tier.cli.project / "stacks" / f"Pulumi.{ENV}.yaml"), "--json", str(out)])
    assert code == 0
    return json.loads(out.read_text())


def test_moving_an_alias_changes_exactly_that_model(tier, registry, runs, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", TOKEN)
    offline_before = offline_plan(tier, tmp_path, "before")
    moved = register(registry, runs, "sentiment", b"sentiment v2", None)
    registry.client().set_registered_model_alias("sentiment", "champion", moved)

    plan, _ = preview(tier, "alias-moved")
    steps = by_name(plan)
    changed = {name: step["op"] for name, step in steps.items() if step["op"] not in ("same", "read")}
    assert changed, "moving the alias changed nothing"
    assert all(name.startswith("sentiment-") for name in changed), changed
    summarizer = {name: step["op"] for name, step in steps.items() if name.startswith("summarizer")}
    assert summarizer and set(summarizer.values()) == {"same"}, summarizer
    # the rollout: the Deployment updated in place to the new version, with its own image, grant and provenance
    assert changed["sentiment-deployment"] == "update"
    version = track_version(plan, "sentiment-deployment")
    assert registered(version) == moved
    annotations = inputs(steps["sentiment-deployment"])["metadata"]["annotations"]
    assert annotations["modelops/registry-version"] == moved
    assert annotations["modelops/registry-run"] == runs[f"sentiment/{moved}"]
    assert changed[f"sentiment-image-{version}"] == "create"
    assert changed[f"sentiment-artifact-read-{version}"] == "create"
    old = [n for n in changed if n.startswith("sentiment-artifact-read-") and n != f"sentiment-artifact-read-{version}"]
    assert [changed[n] for n in old] == ["delete"], changed

    # the offline engine, against the same registry, changes the same resources the same way
    offline = diff_plans(from_json(offline_before), from_json(offline_plan(tier, tmp_path, "after")))
    assert {r.name: r.op for r in offline.resources} == changed

    up_and_converge(tier, "alias-moved-up")
    assert stack_models(tier)["sentiment"]["registry"]["stable"]["version"] == moved
    assert_provenance(live_deployment(tier, "sentiment"), moved, runs[f"sentiment/{moved}"])
    assert_grant_covers_the_registered_files(tier, runs[f"sentiment/{moved}"])
