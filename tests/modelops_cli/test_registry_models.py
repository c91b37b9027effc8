"""Stacks whose weights come from an MLflow registry, planned offline against a real tracking server
(tests/mlflow_registry.py): the same program `pulumi up` runs resolves `models:/…` URIs at every run.

An alias is a mutable pointer to one version (https://mlflow.org/docs/latest/ml/model-registry/#deploy-and-organize-models-with-aliases-and-tags):
moving it must roll out as a new version of exactly that model (its own weights grant and image tag, the
version label), never new files under the old version's pods."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml

from composition.model_registry import MANIFEST_TAG
from modelops_cli.cli import main
from tests.aws_fakes import free_port
from tests.conftest import ROOT
from tests.mlflow_registry import BUCKET

pytestmark = pytest.mark.slow  # starts an MLflow server and plans a stack several times


def _stack_file(tmp_path, tracking_uri: str, artifact_uri: str, canary: dict | None = None):
    data = yaml.safe_load((ROOT / "stacks" / "Pulumi.staging.yaml").read_text())
    data["config"]["modelops:mlflow"] = {"trackingUri": tracking_uri, "artifactBuckets": [BUCKET]}
    sentiment = data["config"]["modelops:models"]["sentiment"]
    sentiment["artifactUri"] = artifact_uri
    if canary:
        sentiment["canary"] = canary
    path = tmp_path / "Pulumi.staging.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _plan(path, out, capsys) -> tuple[int, dict, str]:
    code = main(["plan", "--stack-file", str(path), "--json", str(out)])
    captured = capsys.readouterr()
    return code, json.loads(out.read_text()) if code == 0 else {}, captured.out + captured.err


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value or [])


def _named(steps: dict, prefix: str) -> str:
    """The one step named `<prefix>-<6 hex>` (a registered track's version ends in a hash of where it came from)."""
    found = [name for name in steps if name.startswith(prefix + "-") and len(name) == len(prefix) + 7]
    assert len(found) == 1, (prefix, sorted(steps))
    return found[0]


def _by_name(plan: dict) -> dict[str, dict]:
    return {s["urn"].rsplit("::", 1)[-1]: s["newState"].get("inputs") for s in plan["steps"]}


def test_an_alias_plans_as_its_registered_version(mlflow_server, tmp_path, capsys):
    version, run_id = mlflow_server.register("sentiment-plan-a", {"model.bin": b"v1"}, alias="champion")
    path = _stack_file(tmp_path, mlflow_server.url, "models:/sentiment-plan-a@champion")
    code, plan, output = _plan(path, tmp_path / "plan.json", capsys)
    assert code == 0, output
    steps = _by_name(plan)
    # the track's version carries the registry's: its image tag, its read grant, its labels
    image = _named(steps, f"sentiment-image-1.3.0-r{version}")
    grant_name = _named(steps, f"sentiment-artifact-read-1.3.0-r{version}")
    track_version = grant_name.removeprefix("sentiment-artifact-read-")
    assert image == f"sentiment-image-{track_version}"
    grant = json.loads(steps[grant_name]["policy"])
    resources = {r for s in grant["Statement"] for r in _as_list(s.get("Resource"))}
    assert any(r.endswith(f"/{run_id}/artifacts/model/*") for r in resources), resources
    labels = steps["sentiment-deployment"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/version"] == track_version
    function_env = steps["sentiment-fallback-function"]["environment"]["variables"]
    assert function_env["MODEL_URI"].startswith(f"s3://{BUCKET}/mlflow/")
    # provenance: where the weights came from, on the Deployment, its pods and the fallback function
    deployment = steps["sentiment-deployment"]
    for shown in (
        deployment["metadata"]["annotations"],
        deployment["spec"]["template"]["metadata"]["annotations"],
    ):
        assert shown["modelops/registry-uri"] == "models:/sentiment-plan-a@champion"
        assert shown["modelops/registry-model"] == "sentiment-plan-a"
        assert shown["modelops/registry-version"] == version
        assert shown["modelops/registry-run"] == run_id
        assert shown["modelops/artifact-uri"].endswith(f"/{run_id}/artifacts/model")
    tags = steps["sentiment-fallback-function"]["tags"]
    assert (tags["modelops:registry-version"], tags["modelops:registry-run"]) == (version, run_id)
    # what the alias stood for is in the plan's diagnostics (and the stack's outputs)
    messages = " ".join(d["message"] for d in plan["diagnostics"])
    assert f"models:/sentiment-plan-a@champion is registered version {version} (run {run_id}" in messages


def test_moving_the_alias_changes_exactly_that_model(mlflow_server, tmp_path, capsys):
    first, _ = mlflow_server.register("sentiment-plan-b", {"model.bin": b"v1"}, alias="champion")
    second, _ = mlflow_server.register("sentiment-plan-b", {"model.bin": b"v2"})
    path = _stack_file(tmp_path, mlflow_server.url, "models:/sentiment-plan-b@champion")
    code, before, output = _plan(path, tmp_path / "before.json", capsys)
    assert code == 0, output
    mlflow_server.client().set_registered_model_alias("sentiment-plan-b", "champion", second)
    code, after, output = _plan(path, tmp_path / "after.json", capsys)
    assert code == 0, output
    old, new = _by_name(before), _by_name(after)
    changed = {n for n in old.keys() | new.keys() if old.get(n) != new.get(n)}
    assert changed, "moving the alias changed nothing"
    assert all(n.startswith("sentiment") for n in changed), sorted(changed)
    assert _named(old, f"sentiment-artifact-read-1.3.0-r{first}") and _named(
        new, f"sentiment-artifact-read-1.3.0-r{second}"
    )


def test_a_canary_follows_the_challenger(mlflow_server, tmp_path, capsys):
    champion, _ = mlflow_server.register("sentiment-plan-c", {"model.bin": b"v1"}, alias="champion")
    challenger, _ = mlflow_server.register("sentiment-plan-c", {"model.bin": b"v2"}, alias="challenger")
    canary = {"version": "1.3.0", "weight": 10, "artifactUri": "models:/sentiment-plan-c@challenger"}
    path = _stack_file(tmp_path, mlflow_server.url, "models:/sentiment-plan-c@champion", canary)
    code, plan, output = _plan(path, tmp_path / "plan.json", capsys)
    assert code == 0, output
    steps = _by_name(plan)
    assert _named(steps, f"sentiment-artifact-read-1.3.0-r{champion}")
    assert _named(steps, f"sentiment-artifact-read-1.3.0-r{challenger}")
    # both aliases on one version: the canary would serve the stable weights
    mlflow_server.client().set_registered_model_alias("sentiment-plan-c", "challenger", champion)
    code, _, output = _plan(path, tmp_path / "plan.json", capsys)
    assert code == 2
    assert f"modelops:models.sentiment.canary.version: equals the stable version '1.3.0-r{champion}-" in output
    assert "(with the registry URIs resolved)" in output


def test_a_canary_must_name_its_own_registered_version(mlflow_server, tmp_path, capsys):
    path = _stack_file(tmp_path, mlflow_server.url, "models:/sentiment@champion", {"version": "1.4.0", "weight": 10})
    code, _, output = _plan(path, tmp_path / "plan.json", capsys)
    assert code == 2
    assert "modelops:models.sentiment.canary.artifactUri: required: the registered version" in output


def test_an_unknown_alias_or_a_registry_that_is_down_registers_nothing(mlflow_server, tmp_path, capsys):
    path = _stack_file(tmp_path, mlflow_server.url, "models:/no-such-model@champion")
    code, _, output = _plan(path, tmp_path / "plan.json", capsys)
    assert code == 2
    assert "modelops:models.sentiment.artifactUri: models:/no-such-model@champion: not in the registry" in output
    down = _stack_file(tmp_path, f"http://127.0.0.1:{free_port()}", "models:/sentiment@champion")
    code, _, output = _plan(down, tmp_path / "plan.json", capsys)
    assert code == 2
    assert "modelops:models.sentiment.artifactUri: models:/sentiment@champion: the registry at" in output
    assert "could not be read" in output


def test_a_registry_uri_without_a_registry_is_a_config_error(tmp_path, capsys):
    data = yaml.safe_load((ROOT / "stacks" / "Pulumi.staging.yaml").read_text())
    data["config"]["modelops:models"]["sentiment"]["artifactUri"] = "models:/sentiment@champion"
    path = tmp_path / "Pulumi.staging.yaml"
    path.write_text(yaml.safe_dump(data))
    code, _, output = _plan(path, tmp_path / "plan.json", capsys)
    assert code == 2
    assert "modelops:models.sentiment.artifactUri: a registry URI needs modelops:mlflow.trackingUri" in output


def test_a_version_pinned_in_the_registry_is_checked_by_its_pods(mlflow_server, tmp_path, capsys, monkeypatch):
    """The registered version's own `modelops.weights.manifest` tag pins its files wherever the alias moves."""
    monkeypatch.setenv("MODELOPS_WEIGHTS_LOCK", str(tmp_path / "absent.json"))
    files = {"model.bin": b"v1", "tokenizer/vocab.txt": b"a\nb\n"}
    version, _ = mlflow_server.register("sentiment-pinned", files, alias="champion")
    pinned = {path: hashlib.sha256(content).hexdigest() for path, content in files.items()}
    mlflow_server.client().set_model_version_tag("sentiment-pinned", version, MANIFEST_TAG, json.dumps(pinned))
    path = _stack_file(tmp_path, mlflow_server.url, "models:/sentiment-pinned@champion")
    code, plan, output = _plan(path, tmp_path / "plan.json", capsys)
    assert code == 0, output
    deployment = _by_name(plan)["sentiment-deployment"]
    [fetch] = deployment["spec"]["template"]["spec"]["initContainers"]
    assert fetch["command"][6] == "".join(f"{h}  {p}\n" for p, h in sorted(pinned.items()))
    assert deployment["metadata"]["annotations"]["modelops/weights-sha256"] == fetch["command"][7]
    assert _by_name(plan)["sentiment-fallback-function"]["tags"]["modelops:weights-sha256"] == fetch["command"][7]


@pytest.mark.parametrize(
    "tag, reason",
    [
        ("{not json", "not JSON"),
        ('{"../../etc/shadow": "' + "a" * 64 + '"}', "is not a file path"),
        ('{"model.bin": "deadbeef"}', "is not a SHA-256"),
        ("[]", "a non-empty mapping"),
    ],
)
def test_a_registry_tag_that_is_not_a_manifest_names_the_key(mlflow_server, tmp_path, capsys, tag, reason):
    name = f"sentiment-badtag-{hashlib.sha256(tag.encode()).hexdigest()[:8]}"
    version, _ = mlflow_server.register(name, {"model.bin": b"v1"}, alias="champion")
    mlflow_server.client().set_model_version_tag(name, version, MANIFEST_TAG, tag)
    code, _, output = _plan(
        _stack_file(tmp_path, mlflow_server.url, f"models:/{name}@champion"), tmp_path / "p", capsys
    )
    assert code == 2
    assert f"modelops:models.sentiment.artifactUri: models:/{name}@champion: version {version}'s tag" in output
    assert reason in output
