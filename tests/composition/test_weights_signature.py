"""The signature check of signed weights (composition/weights_signature.py) against model-signing's own: on real
models signed by model-signing 1.1 with keys made here, both accept the untouched model and refuse the same
tampering (a flipped byte, a file added after signing, another key, an edited payload, altered signature bytes).
Ours verifies without the files (a plan has only the lock): it is given the files' SHA-256, model-signing reads the
directory."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from components.config import StackConfigError
from components.weights_manifest import WeightsManifest, parse_manifest
from composition.weights_signature import (
    SignatureError,
    check_signed,
    parse_bundle,
    pre_authentication_encoding,
    read_signing_keys,
    verify_bundle,
)
from tests.components.test_weights_verification import tiny_model


def make_key(directory: Path, name: str, curve: ec.EllipticCurve | None = None) -> tuple[Path, Path]:
    """A new key pair as PEM files, `<name>.key` and `<name>.pub`, as `openssl ec` writes them."""
    private = ec.generate_private_key(curve or ec.SECP256R1())
    directory.mkdir(parents=True, exist_ok=True)
    key, pub = directory / f"{name}.key", directory / f"{name}.pub"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pub.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return key, pub


def write_model(directory: Path, files: dict[str, bytes]) -> Path:
    for path, content in files.items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_bytes(content)
    return directory


def sign(model: Path, private_key: Path, shards: bool = False) -> Path:
    """`model_signing sign key <model> --private_key <key> --signature <model>/model.sig`, through its API."""
    import model_signing

    hashing = model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"])
    if shards:
        hashing.use_shard_serialization()
    signature = model / "model.sig"
    model_signing.signing.Config().use_elliptic_key_signer(private_key=private_key).set_hashing_config(hashing).sign(
        model, signature
    )
    return signature


def model_signing_accepts(model: Path, signature: Path, public_key: Path, shards: bool = False) -> bool:
    import model_signing

    verifier = model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public_key)
    if shards:  # 1.1.1 guesses a shard-wise configuration with a float shard size, and fails on it: say it
        hashing = model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"])
        verifier.set_hashing_config(hashing.use_shard_serialization())
    try:
        verifier.verify(model, signature)
    except (ValueError, InvalidSignature):  # altered signature bytes are cryptography's refusal, not a ValueError
        return False
    return True


def files_of(model: Path) -> WeightsManifest:
    """What `modelops weights` pins: every file's SHA-256 but the signature's."""
    return parse_manifest(
        {
            str(p.relative_to(model)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in model.rglob("*")
            if p.is_file() and p.name != "model.sig"
        }
    )


def ours_accepts(model: Path, signature: Path, public_key: Path) -> bool:
    keys = read_signing_keys([public_key.name], public_key.parent)
    try:
        check_signed(files_of(model), verify_bundle(parse_bundle(signature.read_bytes()), keys))
    except SignatureError:
        return False
    return True


def _edit_payload(signature: Path, edit) -> None:
    bundle = json.loads(signature.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    edit(statement)
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    signature.write_text(json.dumps(bundle))


def _flip_signature_byte(signature: Path) -> None:
    bundle = json.loads(signature.read_text())
    raw = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[-3] ^= 0x01
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    signature.write_text(json.dumps(bundle))


def _flip_weights_byte(model: Path) -> None:
    data = bytearray((model / "model.safetensors").read_bytes())
    data[-1] ^= 0x01
    (model / "model.safetensors").write_bytes(bytes(data))


def _lower_a_digest(statement: dict) -> None:
    statement["predicate"]["resources"][0]["digest"] = "0" * 64


TAMPERING = {
    "untouched": (lambda model, sig: None, True),
    "flipped-weights-byte": (lambda model, sig: _flip_weights_byte(model), False),
    "file-added-after-signing": (lambda model, sig: (model / "extra.py").write_bytes(b"import os\n"), False),
    "file-removed-after-signing": (lambda model, sig: (model / "config.json").unlink(), False),
    "payload-digest-edited": (lambda model, sig: _edit_payload(sig, _lower_a_digest), False),
    "signature-bytes-altered": (lambda model, sig: _flip_signature_byte(sig), False),
    "hint-removed": (lambda model, sig: _drop_hint(sig), True),
}


def _drop_hint(signature: Path) -> None:
    bundle = json.loads(signature.read_text())
    del bundle["verificationMaterial"]["publicKey"]["hint"]
    signature.write_text(json.dumps(bundle))


@pytest.mark.parametrize("case", list(TAMPERING))
@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()], ids=lambda c: c.name)
def test_both_verifiers_agree_on_real_signatures(tmp_path, case, curve):
    private, public = make_key(tmp_path / "keys", "models", curve)
    model = write_model(tmp_path / "chat", tiny_model())
    signature = sign(model, private)
    tamper, expected = TAMPERING[case]
    tamper(model, signature)
    assert model_signing_accepts(model, signature, public) is expected
    assert ours_accepts(model, signature, public) is expected


def test_another_key_is_refused_by_both_and_named(tmp_path):
    private, _ = make_key(tmp_path / "keys", "intruder")
    _, trusted = make_key(tmp_path / "keys", "models")
    model = write_model(tmp_path / "chat", tiny_model())
    signature = sign(model, private)
    assert not model_signing_accepts(model, signature, trusted)
    keys = read_signing_keys(["models.pub"], tmp_path / "keys")
    with pytest.raises(SignatureError, match=r"signed by another key \(fingerprint sha256:[0-9a-f]{64}\) than "):
        verify_bundle(parse_bundle(signature.read_bytes()), keys)
    # without the hint that picks the key, the signature itself fails
    _drop_hint(signature)
    with pytest.raises(SignatureError, match=r"does not verify with modelops:security.modelSigningKeys \(models.pub"):
        verify_bundle(parse_bundle(signature.read_bytes()), keys)


def test_the_signer_is_picked_among_several_trusted_keys(tmp_path):
    _, old = make_key(tmp_path / "keys", "old")
    private, new = make_key(tmp_path / "keys", "new")
    signature = sign(write_model(tmp_path / "chat", tiny_model()), private)
    keys = read_signing_keys(["old.pub", "new.pub"], tmp_path / "keys")
    signed = verify_bundle(parse_bundle(signature.read_bytes()), keys)
    assert signed.signer.path == "new.pub"
    # model-signing's hint: the SHA-256 of the key's PEM
    assert signed.signer.fingerprint == json.loads(signature.read_text())["verificationMaterial"]["publicKey"]["hint"]
    assert dict(signed.manifest.files) == {p: hashlib.sha256(c).hexdigest() for p, c in tiny_model().items()}


def test_files_differing_from_the_signed_ones_are_named(tmp_path):
    private, public = make_key(tmp_path / "keys", "models")
    model = write_model(tmp_path / "chat", tiny_model())
    signed = verify_bundle(
        parse_bundle(sign(model, private).read_bytes()), read_signing_keys(["models.pub"], public.parent)
    )
    _flip_weights_byte(model)
    (model / "extra.py").write_bytes(b"x")
    (model / "tokenizer" / "vocab.txt").unlink()
    with pytest.raises(SignatureError) as refused:
        check_signed(files_of(model), signed)
    assert str(refused.value) == (
        "the weights are not the files signed by models.pub: not the signed bytes: 'model.safetensors'; "
        "not signed: 'extra.py'; signed but absent: 'tokenizer/vocab.txt'"
    )


def test_a_shard_wise_signature_is_refused_with_the_reason(tmp_path):
    private, public = make_key(tmp_path / "keys", "models")
    model = write_model(tmp_path / "chat", tiny_model())
    signature = sign(model, private, shards=True)
    assert model_signing_accepts(model, signature, public, shards=True)  # valid, but of 1 GB pieces, not files
    with pytest.raises(SignatureError, match=r"signed by 'shards' with 'sha256': the pods check each file's SHA-256"):
        verify_bundle(parse_bundle(signature.read_bytes()), read_signing_keys(["models.pub"], public.parent))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\xff", "model.sig is not JSON"),
        (b"[]", "not a Sigstore bundle"),
        (b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.2+json"}', "not a model-signing key signature"),
        (
            b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "dsseEnvelope": {"payloadType": '
            b'"application/vnd.in-toto+json", "signatures": [{"sig": "!!"}], "payload": "e30="}}',
            "the envelope's sig is not base64",
        ),
    ],
)
def test_what_is_not_a_signature_is_refused_plainly(tmp_path, data, message):
    _, public = make_key(tmp_path, "models")
    with pytest.raises(SignatureError, match=message):
        verify_bundle(parse_bundle(data), read_signing_keys(["models.pub"], tmp_path))


def test_pae_is_the_dsse_specs():
    """The example of https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md."""
    assert pre_authentication_encoding("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_unusable_keys_name_their_entry(tmp_path):
    (tmp_path / "rsa.pub").write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "garbage.pub").write_text("hello")
    with pytest.raises(StackConfigError) as refused:
        read_signing_keys(["absent.pub", "garbage.pub", "rsa.pub"], tmp_path)
    assert refused.value.problems == [
        "modelops:security.modelSigningKeys[0]: absent.pub: cannot be read (No such file or directory)",
        "modelops:security.modelSigningKeys[1]: garbage.pub: not a PEM public key (-----BEGIN PUBLIC KEY-----)",
        "modelops:security.modelSigningKeys[2]: rsa.pub: not a P-256, P-384 or P-521 elliptic-curve key, the ones "
        "model-signing signs with",
    ]


def test_the_readme_flow_signs_what_we_verify(tmp_path):
    """`openssl` keys and `model_signing sign key <dir> --signature <dir>/model.sig`, as the README says."""
    import shutil
    import subprocess
    import sys

    openssl = shutil.which("openssl")
    assert openssl, "openssl (a Debian package of the machines this runs on) runs the README's key commands"
    keys = tmp_path / "keys"
    keys.mkdir()
    subprocess.run(
        [openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(tmp_path / "models.key")],
        check=True,
    )
    subprocess.run(
        [openssl, "ec", "-in", str(tmp_path / "models.key"), "-pubout", "-out", str(keys / "models.pub")],
        check=True,
        capture_output=True,
    )
    model = write_model(tmp_path / "chat-1.4.0", tiny_model())
    cli = Path(sys.executable).parent / "model_signing"
    done = subprocess.run(
        [
            str(cli),
            "sign",
            "key",
            str(model),
            "--private_key",
            str(tmp_path / "models.key"),
            "--signature",
            str(model / "model.sig"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert ours_accepts(model, model / "model.sig", keys / "models.pub")


def test_keys_and_locks_that_are_not_regular_files_are_refused_unread(tmp_path):
    """A FIFO would hang every plan and a link to /dev/zero fill its memory: a key or a lock committed as one is
    refused before it is read, naming it."""
    import os

    from composition.weights_lock import read_weights_lock

    os.mkfifo(tmp_path / "fifo.pub")
    (tmp_path / "zero.pub").symlink_to("/dev/zero")
    (tmp_path / "dir.pub").mkdir()
    (tmp_path / "huge.pub").write_bytes(b"-" * 20_000)
    with pytest.raises(StackConfigError) as refused:
        read_signing_keys(["fifo.pub", "zero.pub", "dir.pub", "huge.pub"], tmp_path)
    assert refused.value.problems == [
        "modelops:security.modelSigningKeys[0]: fifo.pub: cannot be read (not a regular file)",
        "modelops:security.modelSigningKeys[1]: zero.pub: cannot be read (not a regular file)",
        "modelops:security.modelSigningKeys[2]: dir.pub: cannot be read (is a directory)",
        "modelops:security.modelSigningKeys[3]: huge.pub: cannot be read (larger than 16,384 bytes)",
    ]
    os.mkfifo(tmp_path / "weights.lock.json")
    with pytest.raises(StackConfigError, match=r"weights.lock.json: cannot be read \(not a regular file\)"):
        read_weights_lock(tmp_path / "weights.lock.json")
