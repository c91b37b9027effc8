"""`modelops weights` pins a stack's weights in weights.lock.json from the S3 objects themselves, `--check` says
when S3 moved away from the lock, and a plan of a pinned stack carries the check into every pod that reads them
(the fetch container for `copy`, a verify container for `mount`) and the digest into the provenance: the
annotations, the fallback's tags and the stack output."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import yaml

from components.weights_manifest import VERIFY_SCRIPT
from modelops_cli.cli import main
from modelops_cli.common import stack_settings
from modelops_cli.offline.engine import stack_exports
from modelops_cli.weights import s3_client
from tests.aws_fakes import aws_env
from tests.components.test_weights_verification import tiny_model
from tests.conftest import ROOT

BUCKET = "acme-models-staging"
PREFIXES = ("sentiment/1.3.0", "summarizer/2.0.0", "summarizer/2.1.0")
"""What the staging stack serves from: two models, and the summarizer's canary."""


@pytest.fixture
def s3(moto_server, monkeypatch, tmp_path):
    return served_weights(moto_server, monkeypatch, tmp_path)


def served_weights(moto_server, monkeypatch, tmp_path):
    """The staging stack's prefixes on the S3 emulator, each a tiny model (its bytes marked with the prefix), and
    the lock in `tmp_path`: the S3 client."""
    moto_server.reset()
    aws_env(monkeypatch, moto_server.url)
    monkeypatch.setenv("MODELOPS_WEIGHTS_LOCK", str(tmp_path / "weights.lock.json"))
    client = s3_client("us-west-2")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    for prefix in PREFIXES:
        for path, content in tiny_model().items():
            client.put_object(Bucket=BUCKET, Key=f"{prefix}/{path}", Body=content + prefix.encode())
    return client


def _stack(tmp_path: Path, mutate=None) -> Path:
    data = yaml.safe_load((ROOT / "stacks" / "Pulumi.staging.yaml").read_text())
    if mutate:
        mutate(data["config"])
    path = tmp_path / "stack" / "Pulumi.staging.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def _plan(tmp_path, stack: Path, capsys) -> tuple[int, dict, str]:
    out = tmp_path / "plan.json"
    code, output = _run(capsys, "plan", "--stack-file", str(stack), "--format", "json", "--out", str(out))
    return code, json.loads(out.read_text()) if code == 0 else {}, output


def _inputs(plan: dict, name: str) -> dict:
    """The inputs of the Deployment of that name."""
    [step] = [s for s in plan["steps"] if s["urn"].endswith(f"apps/v1:Deployment::{name}-deployment")]
    return step["newState"]["inputs"]


def _exports(stack: Path) -> dict:
    """The stack's outputs (`pulumi stack output`), by model."""
    return stack_exports(stack_settings("staging", str(stack)))["models"]


def _expected(prefix: str) -> dict[str, str]:
    return {p: hashlib.sha256(c + prefix.encode()).hexdigest() for p, c in tiny_model().items()}


def test_the_lock_records_every_served_prefix_and_the_pods_check_it(s3, tmp_path, capsys):
    stack = _stack(tmp_path)
    code, output = _run(capsys, "weights", "--stack-file", str(stack))
    assert code == 0, output
    lock = json.loads((tmp_path / "weights.lock.json").read_text())
    assert lock == {"format": 1, "weights": {f"s3://{BUCKET}/{p}": _expected(p) for p in PREFIXES}}
    assert output.count("pinned") == 3

    code, plan, output = _plan(tmp_path, stack, capsys)
    assert code == 0, output
    stable = _inputs(plan, "summarizer")
    [fetch] = stable["spec"]["template"]["spec"]["initContainers"]
    assert fetch["name"] == "fetch-model"
    assert fetch["command"][:3] == ["/bin/bash", "-c", VERIFY_SCRIPT]
    source, directory, text, digest = fetch["command"][4:]
    assert (source, directory) == (f"s3://{BUCKET}/summarizer/2.0.0", "/models")
    assert text == "".join(f"{h}  {p}\n" for p, h in sorted(_expected("summarizer/2.0.0").items()))
    assert digest == "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    server = stable["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in server["env"]  # nothing from the Hub beside the pinned files
    # the digest in the open: the Deployment, its pods, the stack output
    assert stable["metadata"]["annotations"]["modelops/weights-sha256"] == digest
    assert stable["spec"]["template"]["metadata"]["annotations"]["modelops/weights-sha256"] == digest
    outputs = _exports(stack)
    assert outputs["summarizer"]["weights"]["stable"] == digest
    canary = _inputs(plan, "summarizer-canary")
    assert canary["spec"]["template"]["spec"]["initContainers"][0]["command"][4] == f"s3://{BUCKET}/summarizer/2.1.0"
    assert outputs["summarizer"]["weights"]["canary"] == canary["metadata"]["annotations"]["modelops/weights-sha256"]


def test_the_fallback_function_is_tagged_with_the_digest(s3, tmp_path, capsys):
    stack = _stack(tmp_path)
    assert _run(capsys, "weights", "--stack-file", str(stack))[0] == 0
    code, plan, output = _plan(tmp_path, stack, capsys)
    assert code == 0, output
    [function] = [s for s in plan["steps"] if s["newState"]["type"] == "aws:lambda/function:Function"][:1]
    model = "sentiment" if "sentiment" in function["urn"] else "summarizer"
    stable = _exports(stack)[model]["weights"]["stable"]
    assert function["newState"]["inputs"]["tags"]["modelops:weights-sha256"] == stable


def test_check_names_the_file_that_changed_and_fails(s3, tmp_path, capsys):
    stack = _stack(tmp_path)
    code, output = _run(capsys, "weights", "--stack-file", str(stack), "--check")
    assert code == 0, output  # nothing pinned, nothing required: said, not failed
    assert output.count("not pinned: not in the lock") == 3
    assert _run(capsys, "weights", "--stack-file", str(stack))[0] == 0
    code, output = _run(capsys, "weights", "--stack-file", str(stack), "--check")
    assert code == 0, output
    assert output.count("unchanged") == 3
    s3.put_object(Bucket=BUCKET, Key="summarizer/2.0.0/config.json", Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key="summarizer/2.0.0/extra.py", Body=b"x")
    code, output = _run(capsys, "weights", "--stack-file", str(stack), "--check")
    assert code == 1
    assert f"s3://{BUCKET}/summarizer/2.0.0" in output
    assert "CHANGED: config.json, extra.py" in output
    assert json.loads((tmp_path / "weights.lock.json").read_text())["weights"][f"s3://{BUCKET}/summarizer/2.0.0"] == (
        _expected("summarizer/2.0.0")
    )  # --check never writes


def test_an_unpinned_prefix_fails_check_and_required_pins_refuse_to_plan(s3, tmp_path, capsys):
    stack = _stack(tmp_path, lambda c: c.__setitem__("modelops:security", {"requirePinnedWeights": True}))
    code, output = _run(capsys, "weights", "--stack-file", str(stack), "--check", "--model", "sentiment")
    assert code == 1
    assert "not in the lock" in output
    code, _, output = _plan(tmp_path, stack, capsys)
    assert code == 2
    assert "modelops:models.sentiment.artifactUri: the weights at s3://acme-models-staging/sentiment/1.3.0 " in output
    assert "modelops:models.summarizer.canary.artifactUri" in output
    assert "not pinned" in output
    assert not (tmp_path / "plan.json").exists()
    assert _run(capsys, "weights", "--stack-file", str(stack))[0] == 0
    assert _plan(tmp_path, stack, capsys)[0] == 0


def test_without_a_lock_the_plan_is_as_before(tmp_path, capsys, monkeypatch):
    """Pinning is opt-in per prefix: an unpinned copy keeps its plain sync (and no digest is claimed)."""
    monkeypatch.setenv("MODELOPS_WEIGHTS_LOCK", str(tmp_path / "absent.json"))
    code, plan, output = _plan(tmp_path, _stack(tmp_path), capsys)
    assert code == 0, output
    [fetch] = _inputs(plan, "summarizer")["spec"]["template"]["spec"]["initContainers"]
    assert fetch["command"] == ["aws", "s3", "sync", "--only-show-errors", f"s3://{BUCKET}/summarizer/2.0.0", "/models"]
    server = _inputs(plan, "summarizer")["spec"]["template"]["spec"]["containers"][0]
    assert "HF_HUB_OFFLINE" not in {e["name"] for e in server["env"]}
    assert "weights" not in _exports(_stack(tmp_path))["summarizer"]


def test_mounted_weights_get_a_verify_container(s3, tmp_path, capsys):
    def mount(config):
        config["modelops:models"]["summarizer"]["artifactAccess"] = "mount"

    stack = _stack(tmp_path, mount)
    assert _run(capsys, "weights", "--stack-file", str(stack))[0] == 0
    code, plan, output = _plan(tmp_path, stack, capsys)
    assert code == 0, output
    pod = _inputs(plan, "summarizer")["spec"]["template"]["spec"]
    [verify] = pod["initContainers"]
    assert verify["name"] == "verify-model"
    assert verify["command"][4:6] == ["", "/models"]  # no copy: the mount is checked in place
    assert {"name": "model", "mountPath": "/models", "readOnly": True} in verify["volumeMounts"]


@pytest.mark.parametrize(
    "lock, message",
    [
        ("{", "weights.lock.json: not JSON"),
        ('{"format": 2, "weights": {}}', 'expected {"format": 1'),
        (
            '{"format": 1, "weights": {"s3://b/m/1": {"../etc/passwd": "' + "a" * 64 + '"}}}',
            "weights['s3://b/m/1']: '../etc/passwd' is not a file path",
        ),
        ('{"format": 1, "weights": {"s3://b/m/1": {"w.bin": "' + "A" * 64 + '"}}}', "is not a SHA-256"),
        ('{"format": 1, "weights": {"s3://b/*": {"w.bin": "' + "a" * 64 + '"}}}', "IAM wildcard"),
        ('{"format": 1, "weights": {"models:/m/1": {"w.bin": "' + "a" * 64 + '"}}}', "keys are the s3://"),
    ],
    ids=["not-json", "format", "path-escape", "upper-hex", "wildcard-key", "registry-key"],
)
def test_a_broken_lock_names_the_entry_and_plans_nothing(tmp_path, capsys, monkeypatch, lock, message):
    (tmp_path / "weights.lock.json").write_text(lock)
    monkeypatch.setenv("MODELOPS_WEIGHTS_LOCK", str(tmp_path / "weights.lock.json"))
    code, _, output = _plan(tmp_path, _stack(tmp_path), capsys)
    assert code == 2
    assert message in output


def test_print_gives_the_registry_tag_value(s3, capsys):
    code, output = _run(capsys, "weights", "--stack", "staging", "--print", f"s3://{BUCKET}/sentiment/1.3.0")
    assert code == 0, output
    assert json.loads(output) == _expected("sentiment/1.3.0")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--print", "https://example.com/x"], "give an s3://"),
        (["--print", f"s3://{BUCKET}/*"], "IAM wildcard"),
        (["--print", f"s3://{BUCKET}/nothing/here"], "no objects under the prefix"),
        (["--model", "nope"], "the stack has no model nope"),
    ],
)
def test_bad_requests_exit_2_with_the_reason(s3, capsys, argv, message):
    code, output = _run(capsys, "weights", "--stack", "staging", *argv)
    assert code == 2
    assert message in output


def test_an_object_name_the_check_cannot_carry_is_refused_when_pinning(s3, capsys):
    s3.put_object(Bucket=BUCKET, Key="sentiment/1.3.0/has space.bin", Body=b"x")
    code, output = _run(capsys, "weights", "--stack", "staging", "--model", "sentiment")
    assert code == 2
    assert "'has space.bin' is not a file path" in output


def test_s3_refusals_are_reported_plainly(s3, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "user:hunter2@")  # never echoed
    s3.delete_object(Bucket=BUCKET, Key="sentiment/1.3.0/config.json")
    code, output = _run(capsys, "weights", "--stack", "staging", "--print", "s3://no-such-bucket-here/m/1")
    assert code == 2
    assert "s3://no-such-bucket-here/m/1/: NoSuchBucket" in output
    assert "hunter2" not in output


def test_mounted_weights_cannot_satisfy_required_pins(s3, tmp_path, capsys):
    """The mount is checked when the pod starts, then read live: only a copy holds the pin for the pod's life."""

    def mount_and_require(config):
        config["modelops:models"]["summarizer"]["artifactAccess"] = "mount"
        config["modelops:security"] = {"requirePinnedWeights": True}

    stack = _stack(tmp_path, mount_and_require)
    assert _run(capsys, "weights", "--stack-file", str(stack))[0] == 0
    code, _, output = _plan(tmp_path, stack, capsys)
    assert code == 2
    assert "modelops:models.summarizer.artifactAccess: a mount reads S3 live after the pod's start check" in output


def test_a_registered_canary_beside_an_s3_stable_pins_the_s3_track_only(s3, tmp_path, capsys):
    def registered_canary(config):
        config["modelops:mlflow"] = {"trackingUri": "https://mlflow.example.com", "artifactBuckets": [BUCKET]}
        config["modelops:models"]["summarizer"]["canary"]["artifactUri"] = "models:/summarizer/3"

    stack = _stack(tmp_path, registered_canary)
    code, output = _run(capsys, "weights", "--stack-file", str(stack), "--model", "summarizer")
    assert code == 0, output
    assert f"s3://{BUCKET}/summarizer/2.0.0  3 files" in output
    assert "models:/summarizer/3  a registered version" in output
    lock = json.loads((tmp_path / "weights.lock.json").read_text())
    assert list(lock["weights"]) == [f"s3://{BUCKET}/summarizer/2.0.0"]


def test_a_region_that_is_no_region_is_refused(s3, capsys):
    code, output = _run(capsys, "weights", "--stack", "staging", "--region", "us east\x1b[2J")
    assert code == 2
    assert "not an AWS region name" in output
    assert "\x1b" not in output


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory", "not-utf8"])
def test_a_lock_that_is_not_a_regular_file_is_refused_unread(tmp_path, capsys, monkeypatch, kind):
    lock = tmp_path / "weights.lock.json"
    if kind == "fifo":
        os.mkfifo(lock)
    elif kind == "dev-zero":
        lock.symlink_to("/dev/zero")
    elif kind == "directory":
        lock.mkdir()
    else:
        lock.write_bytes(b'{"format": 1, "weights": {"\xff": {}}}')
    monkeypatch.setenv("MODELOPS_WEIGHTS_LOCK", str(lock))
    code, _, output = _plan(tmp_path, _stack(tmp_path), capsys)
    assert code == 2
    reason = {"not-utf8": "not UTF-8", "directory": "is a directory"}.get(kind, "not a regular file")
    assert f"weights.lock.json: cannot be read ({reason})" in output
