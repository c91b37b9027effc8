"""Signed weights end to end: real models signed by model-signing with keys made here, uploaded with their
`model.sig` to the S3 emulator. `modelops weights` records a signature only when it verifies with a trusted key and
lists exactly the files it pins; a plan verifies the recorded one again (offline, from the lock) and annotates the
signer; the pods check the pinned SHA-256, so what they check is what the key holder signed."""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from pathlib import Path

import pytest

from tests.components.test_weights_verification import tiny_model
from tests.composition.test_weights_signature import make_key, sign, write_model
from tests.conftest import ROOT
from tests.modelops_cli.test_weights import BUCKET, _expected, _inputs, _plan, _run, _stack, served_weights

SIGNED = ("summarizer/2.0.0", "summarizer/2.1.0")
"""The summarizer's stable and canary prefixes: the model that requires signed weights here."""


@pytest.fixture
def s3(moto_server, monkeypatch, tmp_path):
    return served_weights(moto_server, monkeypatch, tmp_path)


@pytest.fixture
def keys():
    """A key directory inside the project (trusted keys are project paths), made for one test: `.pytest_cache` is
    ignored by git."""
    relative = f".pytest_cache/modelops-keys/{uuid.uuid4().hex}"
    (ROOT / relative).mkdir(parents=True)
    try:
        yield relative
    finally:
        shutil.rmtree(ROOT / relative)


def _require_signature(keys_dir: str, *trusted: str):
    def mutate(config):
        config["modelops:security"] = {"modelSigningKeys": [f"{keys_dir}/{name}.pub" for name in trusted]}
        config["modelops:models"]["summarizer"]["signature"] = "key"

    return mutate


def _sign_prefix(s3, tmp_path: Path, prefix: str, private_key: Path) -> None:
    """Sign the files the fixture uploaded under `prefix` (as their owner would, from a local copy) and upload
    model.sig beside them."""
    files = {path: content + prefix.encode() for path, content in tiny_model().items()}
    model = write_model(tmp_path / "local" / prefix, files)
    signature = sign(model, private_key)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/model.sig", Body=signature.read_bytes())


def _signed_stack(s3, tmp_path: Path, keys: str) -> Path:
    private, _ = make_key(ROOT / keys, "models")
    for prefix in SIGNED:
        _sign_prefix(s3, tmp_path, prefix, private)
    return _stack(tmp_path, _require_signature(keys, "models"))


def _lock(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "weights.lock.json").read_text())


def _fingerprint(keys: str, name: str = "models") -> str:
    from composition.weights_signature import read_signing_keys

    [key] = read_signing_keys([f"{keys}/{name}.pub"], ROOT)
    return key.fingerprint


def test_signed_weights_are_pinned_with_their_signature_and_the_plan_names_the_signer(s3, tmp_path, capsys, keys):
    stack = _signed_stack(s3, tmp_path, keys)
    code, output = _run(capsys, "weights", "--stack-file", str(stack))
    assert code == 0, output
    fingerprint = _fingerprint(keys)
    assert output.count(f"signed by sha256:{fingerprint[:16]}") == 2
    lock = _lock(tmp_path)
    # the signature is not weights: never pinned as a file, recorded beside the files
    assert lock["weights"][f"s3://{BUCKET}/summarizer/2.0.0"] == _expected("summarizer/2.0.0")
    assert sorted(lock["signatures"]) == [f"s3://{BUCKET}/{p}" for p in SIGNED]
    recorded = lock["signatures"][f"s3://{BUCKET}/summarizer/2.0.0"]
    uploaded = s3.get_object(Bucket=BUCKET, Key="summarizer/2.0.0/model.sig")["Body"].read()
    assert recorded == json.loads(uploaded)

    code, plan, output = _plan(tmp_path, stack, capsys)
    assert code == 0, output
    stable = _inputs(plan, "summarizer")
    [fetch] = stable["spec"]["template"]["spec"]["initContainers"]
    assert "model.sig" not in fetch["command"][6]  # the manifest the pod checks
    for metadata in (stable["metadata"], stable["spec"]["template"]["metadata"]):
        assert metadata["annotations"]["modelops/weights-signer"] == f"sha256:{fingerprint}"
    canary = _inputs(plan, "summarizer-canary")
    assert canary["metadata"]["annotations"]["modelops/weights-signer"] == f"sha256:{fingerprint}"
    assert "modelops/weights-signer" not in _inputs(plan, "sentiment")["metadata"].get("annotations", {})
    functions = [
        s["newState"]["inputs"]
        for s in plan["steps"]
        if s["newState"]["type"] == "aws:lambda/function:Function" and "summarizer" in s["urn"]
    ]
    for function in functions:  # the fallback serves the stable version: its tags say who signed it
        assert function["tags"]["modelops:weights-signer"] == f"sha256:{fingerprint}"


def test_a_byte_flipped_after_signing_is_refused_and_nothing_written(s3, tmp_path, capsys, keys):
    stack = _signed_stack(s3, tmp_path, keys)
    content = bytearray(tiny_model()["model.safetensors"] + b"summarizer/2.1.0")
    content[30] ^= 0x01
    s3.put_object(Bucket=BUCKET, Key="summarizer/2.1.0/model.safetensors", Body=bytes(content))
    code, output = _run(capsys, "weights", "--stack-file", str(stack))
    assert code == 2
    assert (
        f"s3://{BUCKET}/summarizer/2.1.0: the weights are not the files signed by {keys}/models.pub: "
        "not the signed bytes: 'model.safetensors'"
    ) in output
    assert not (tmp_path / "weights.lock.json").exists()
    code, output = _run(capsys, "weights", "--stack-file", str(stack), "--check")
    assert code == 1
    assert "SIGNATURE REFUSED" in output
    assert not (tmp_path / "weights.lock.json").exists()


def test_a_signature_by_another_key_is_refused(s3, tmp_path, capsys, keys):
    make_key(ROOT / keys, "models")
    intruder, _ = make_key(tmp_path / "elsewhere", "intruder")
    for prefix in SIGNED:
        _sign_prefix(s3, tmp_path, prefix, intruder)
    stack = _stack(tmp_path, _require_signature(keys, "models"))
    code, output = _run(capsys, "weights", "--stack-file", str(stack))
    assert code == 2
    assert f"s3://{BUCKET}/summarizer/2.0.0: signed by another key (fingerprint sha256:" in output
    assert f"than modelops:security.modelSigningKeys ({keys}/models.pub sha256:" in output
    assert not (tmp_path / "weights.lock.json").exists()


def test_weights_required_signed_without_a_signature_are_refused(s3, tmp_path, capsys, keys):
    make_key(ROOT / keys, "models")
    stack = _stack(tmp_path, _require_signature(keys, "models"))
    code, output = _run(capsys, "weights", "--stack-file", str(stack))
    assert code == 2
    assert f"s3://{BUCKET}/summarizer/2.0.0: not signed: no model.sig beside the weights" in output
    assert not (tmp_path / "weights.lock.json").exists()


def _edit_recorded(tmp_path: Path, edit) -> None:
    lock = _lock(tmp_path)
    edit(lock["signatures"][f"s3://{BUCKET}/summarizer/2.0.0"]["dsseEnvelope"])
    (tmp_path / "weights.lock.json").write_text(json.dumps(lock))


def _payload_digest_changed(envelope: dict) -> None:
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "f" * 64
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()


def _signature_bytes_changed(envelope: dict) -> None:
    raw = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    raw[-2] ^= 0x01
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("edit", [_payload_digest_changed, _signature_bytes_changed], ids=["payload", "signature"])
def test_a_plan_refuses_a_recorded_signature_that_was_edited(s3, tmp_path, capsys, keys, edit):
    stack = _signed_stack(s3, tmp_path, keys)
    assert _run(capsys, "weights", "--stack-file", str(stack))[0] == 0
    _edit_recorded(tmp_path, edit)
    code, _, output = _plan(tmp_path, stack, capsys)
    assert code == 2
    assert (
        "modelops:models.summarizer.signature: the signature recorded in weights.lock.json for "
        f"s3://{BUCKET}/summarizer/2.0.0: the signature does not verify with modelops:security.modelSigningKeys "
        f"({keys}/models.pub sha256:"
    ) in output
    assert "modelops:models.summarizer.canary.signature" not in output  # its own signature is intact
    assert not (tmp_path / "plan.json").exists()


def test_a_plan_refuses_pinned_files_the_recorded_signature_does_not_list(s3, tmp_path, capsys, keys):
    """Edited pins: the lock's files changed (or the bundle swapped for another version's) under a valid signature."""
    stack = _signed_stack(s3, tmp_path, keys)
    assert _run(capsys, "weights", "--stack-file", str(stack))[0] == 0
    lock = _lock(tmp_path)
    stable, canary = (f"s3://{BUCKET}/{p}" for p in SIGNED)
    lock["signatures"][stable] = lock["signatures"][canary]
    (tmp_path / "weights.lock.json").write_text(json.dumps(lock))
    code, _, output = _plan(tmp_path, stack, capsys)
    assert code == 2
    assert f"for {stable}: the weights are not the files signed by {keys}/models.pub: not the signed bytes: " in output


def test_a_plan_refuses_weights_required_signed_that_were_pinned_unsigned(s3, tmp_path, capsys, keys):
    private, _ = make_key(ROOT / keys, "models")
    assert _run(capsys, "weights", "--stack-file", str(_stack(tmp_path)))[0] == 0  # pinned before signing was required
    for prefix in SIGNED:
        _sign_prefix(s3, tmp_path, prefix, private)
    signed_stack = _stack(tmp_path, _require_signature(keys, "models"))
    code, output = _run(capsys, "weights", "--stack-file", str(signed_stack), "--check")
    assert code == 1  # the files are the pinned ones, but the plan would refuse them: the pre-flight says so
    assert f"s3://{BUCKET}/summarizer/2.0.0  3 files" in output
    assert output.count("SIGNATURE not in the lock") == 2
    code, _, output = _plan(tmp_path, signed_stack, capsys)
    assert code == 2
    assert (
        f"modelops:models.summarizer.signature: the weights at s3://{BUCKET}/summarizer/2.0.0 have no signature in "
        "weights.lock.json: run `modelops weights --stack <stack>`"
    ) in output
    assert "modelops:models.summarizer.canary.signature: the weights at" in output


def test_a_stack_not_requiring_the_signature_keeps_it_while_the_files_stay(s3, tmp_path, capsys, keys):
    """One lock for the project: a stack that does not require signed weights re-pins the same files and keeps their
    signature for the stacks that do; once the files change, the signature no longer covers them and goes."""
    signed_stack = _signed_stack(s3, tmp_path, keys)
    assert _run(capsys, "weights", "--stack-file", str(signed_stack))[0] == 0
    unsigned_stack = _stack(tmp_path)
    assert _run(capsys, "weights", "--stack-file", str(unsigned_stack))[0] == 0
    assert sorted(_lock(tmp_path)["signatures"]) == [f"s3://{BUCKET}/{p}" for p in SIGNED]
    s3.put_object(Bucket=BUCKET, Key="summarizer/2.0.0/config.json", Body=b"{}")
    assert _run(capsys, "weights", "--stack-file", str(unsigned_stack))[0] == 0
    assert sorted(_lock(tmp_path)["signatures"]) == [f"s3://{BUCKET}/summarizer/2.1.0"]
    code, _, output = _plan(tmp_path, _stack(tmp_path, _require_signature(keys, "models")), capsys)
    assert code == 2
    assert "summarizer/2.0.0 have no signature in weights.lock.json" in output


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda c: c["modelops:models"]["summarizer"].__setitem__("signature", "key"),
            "modelops:models.summarizer.signature: needs modelops:security.modelSigningKeys",
        ),
        (
            lambda c: c["modelops:models"]["summarizer"]["canary"].__setitem__("signature", "gpg"),
            "modelops:models.summarizer.canary.signature: Input should be 'key'",
        ),
        (
            lambda c: c.__setitem__("modelops:security", {"modelSigningKeys": ["../keys/models.pub"]}),
            "'../keys/models.pub': give a path relative to the project",
        ),
        (
            lambda c: c.__setitem__("modelops:security", {"modelSigningKeys": ["keys/absent.pub"]}),
            "modelops:security.modelSigningKeys[0]: keys/absent.pub: cannot be read (No such file or directory)",
        ),
    ],
    ids=["no-keys", "unknown-method", "outside-the-project", "absent-key"],
)
def test_signature_config_errors_name_the_key(tmp_path, capsys, monkeypatch, mutate, message):
    monkeypatch.setenv("MODELOPS_WEIGHTS_LOCK", str(tmp_path / "absent.json"))
    code, _, output = _plan(tmp_path, _stack(tmp_path, mutate), capsys)
    assert code == 2
    assert message in output
