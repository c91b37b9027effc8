"""Who pinned a version's weights: an OpenSSF model signature (`model_signing sign key`, the `model-signing` package)
checked against the public keys the stack trusts, offline. The signature is a Sigstore bundle whose DSSE envelope
carries an in-toto statement listing each file's SHA-256; a signature that verifies and lists exactly the files of
the pinned manifest means the bytes the pods check (`sha256sum --check`) are the bytes the key holder signed.

Verified here, with `cryptography`, rather than by model-signing's API: its public verification hashes a model
directory on local disk, and neither `modelops weights` (which streams the objects from S3) nor a plan (which has
only the lock) has one. The rules are model-signing 1.1's for its key signer (model_signing/_signing/
sign_ec_key.py and signing.py), with no compatibility for pre-1.0 signatures; the tests check that both accept
and refuse the same bundles:

- the bundle: media type `application/vnd.dev.sigstore.bundle.v0.3+json`, the key's hint in
  `verificationMaterial.publicKey.hint` (SHA-256 of its SubjectPublicKeyInfo PEM), one DSSE signature
  (https://github.com/sigstore/protobuf-specs/blob/main/protos/sigstore_bundle.proto);
- the signature: ECDSA over the DSSE pre-authentication encoding of the payload, `DSSEv1 <len> <type> <len>
  <payload>` (https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md), with SHA-256, -384 or -512 for
  a P-256, P-384 or P-521 key;
- the payload: an in-toto Statement v1 of predicate `https://model_signing/signature/v1.0`, whose subject's
  SHA-256 is that of the listed digests in order, and whose files were hashed one by one with SHA-256 (model-signing's
  `files` serialization: a shard-wise signature lists digests of 1 GB pieces, which no file check can compare)."""

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config import NAMESPACE, StackConfigError
from components.weights_manifest import SIGNATURE_OBJECT, WeightsManifest, parse_manifest
from composition.project_files import read_regular_file

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT = "https://in-toto.io/Statement/v1"
MODEL_SIGNING_PREDICATE = "https://model_signing/signature/v1.0"
KEYS_KEY = f"{NAMESPACE}:security.modelSigningKeys"
MAX_KEY_BYTES = 16_384
"""A PEM public key is a few hundred bytes."""
MAX_BUNDLE_BYTES = 1_000_000
"""A signature of a few thousand files is a few hundred kilobytes; more is not one model's."""


class SignatureError(ValueError):
    """A signature that does not say these weights were signed by a trusted key: the message says why."""


@dataclass(frozen=True)
class SigningKey:
    """A public key the stack trusts to sign weights."""

    path: str
    """As configured (relative to the project), for messages."""
    key: Any
    """An elliptic-curve public key (cryptography's)."""

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the key's SubjectPublicKeyInfo PEM: model-signing's hint in the bundles it writes."""
        from cryptography.hazmat.primitives import serialization

        pem = self.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(pem).hexdigest()


@dataclass(frozen=True)
class SignedWeights:
    manifest: WeightsManifest
    """The files and SHA-256 the signature lists."""
    signer: SigningKey


def read_signing_keys(paths: list[str], project_dir: Path) -> list[SigningKey]:
    """The stack's trusted keys, PEM files under the project; StackConfigError naming each that cannot be used."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    keys, problems = [], []
    for index, path in enumerate(paths):
        where = f"{KEYS_KEY}[{index}]: {path}"
        try:
            key = serialization.load_pem_public_key(read_regular_file(project_dir / path, MAX_KEY_BYTES))
        except OSError as exc:
            problems.append(f"{where}: cannot be read ({exc.strerror})")
            continue
        except ValueError:
            problems.append(f"{where}: not a PEM public key (-----BEGIN PUBLIC KEY-----)")
            continue
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _CURVE_HASHES:
            problems.append(
                f"{where}: not a P-256, P-384 or P-521 elliptic-curve key, the ones model-signing signs with"
            )
            continue
        keys.append(SigningKey(path, key))
    if problems:
        raise StackConfigError(problems)
    return keys


_CURVE_HASHES = {"secp256r1": "SHA256", "secp384r1": "SHA384", "secp521r1": "SHA512"}


def parse_bundle(data: bytes) -> dict[str, Any]:
    """A signature file's JSON (as `model_signing sign` writes it); SignatureError when it is not one."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise SignatureError(f"{SIGNATURE_OBJECT} is {len(data):,} bytes: not a model signature")
    try:
        bundle = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SignatureError(f"{SIGNATURE_OBJECT} is not JSON: not a model signature (a Sigstore bundle)") from None
    if not isinstance(bundle, dict):
        raise SignatureError(f"{SIGNATURE_OBJECT} is not a Sigstore bundle (a JSON object)")
    return bundle


def verify_bundle(bundle: dict[str, Any], keys: list[SigningKey]) -> SignedWeights:
    """The files a bundle's signature by one of `keys` vouches for; SignatureError when none signed it."""
    if bundle.get("mediaType") != BUNDLE_MEDIA_TYPE:
        raise SignatureError(f"not a model-signing key signature (media type {str(bundle.get('mediaType'))[:80]!r})")
    envelope = _field(bundle, "dsseEnvelope", dict)
    if envelope.get("payloadType") != IN_TOTO_PAYLOAD_TYPE:
        raise SignatureError(f"the signed payload is not an in-toto statement ({IN_TOTO_PAYLOAD_TYPE})")
    signatures = _field(envelope, "signatures", list)
    if len(signatures) != 1 or not isinstance(signatures[0], dict):
        raise SignatureError(f"expected one signature in the envelope, found {len(signatures)}")
    payload = _base64(envelope, "payload")
    signature = _base64(signatures[0], "sig")
    signer = _signing_key(bundle, keys, payload, signature)
    return SignedWeights(_signed_manifest(payload), signer)


def _signing_key(bundle: dict[str, Any], keys: list[SigningKey], payload: bytes, signature: bytes) -> SigningKey:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    hint = ((bundle.get("verificationMaterial") or {}).get("publicKey") or {}).get("hint")
    candidates = [k for k in keys if k.fingerprint == hint] if hint else keys
    if not candidates:
        raise SignatureError(
            f"signed by another key (fingerprint sha256:{str(hint)[:64]}) than {_named(keys)}: not a trusted signer"
        )
    signed = pre_authentication_encoding(IN_TOTO_PAYLOAD_TYPE, payload)
    for candidate in candidates:
        algorithm = getattr(hashes, _CURVE_HASHES[candidate.key.curve.name])()
        try:
            candidate.key.verify(signature, signed, ec.ECDSA(algorithm))
            return candidate
        except InvalidSignature:
            continue
    raise SignatureError(f"the signature does not verify with {_named(candidates)}: the signed statement was altered")


def pre_authentication_encoding(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1's PAE: what is signed, so a payload cannot be read as another type's."""
    encoded_type = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(encoded_type), encoded_type, len(payload), payload)


def _signed_manifest(payload: bytes) -> WeightsManifest:
    """The statement's files as a manifest, once its shape is model-signing's per-file SHA-256 signature."""
    try:
        statement = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SignatureError("the signed payload is not JSON") from None
    if not isinstance(statement, dict) or statement.get("_type") != IN_TOTO_STATEMENT:
        raise SignatureError(f"the signed payload is not an in-toto statement ({IN_TOTO_STATEMENT})")
    if statement.get("predicateType") != MODEL_SIGNING_PREDICATE:
        raise SignatureError(
            f"the statement is not a model signature ({MODEL_SIGNING_PREDICATE}; one of model-signing before 1.0 "
            "must be signed again)"
        )
    predicate = _field(statement, "predicate", dict)
    serialization = _field(predicate, "serialization", dict)
    if serialization.get("method") != "files" or serialization.get("hash_type") != "sha256":
        raise SignatureError(
            f"signed by {serialization.get('method')!r} with {serialization.get('hash_type')!r}: the pods check each "
            "file's SHA-256, so sign file by file with sha256 (model-signing's default, not shards)"
        )
    files: dict[str, str] = {}
    root = hashlib.sha256()
    for resource in _field(predicate, "resources", list):
        name, digest = _resource(resource)
        if name in files:
            raise SignatureError(f"the statement lists {name[:120]!r} twice")
        files[name] = digest
        root.update(bytes.fromhex(digest))
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise SignatureError("the statement has not one subject (the model)")
    if (subjects[0].get("digest") or {}).get("sha256") != root.hexdigest():
        raise SignatureError("the statement's subject digest is not that of the files it lists")
    try:
        return parse_manifest(files)
    except ValueError as exc:
        raise SignatureError(f"the signed files: {exc}") from None


def _resource(resource: Any) -> tuple[str, str]:
    if not isinstance(resource, dict) or resource.get("algorithm") != "sha256":
        raise SignatureError("a signed file is not listed with a sha256 digest")
    name, digest = resource.get("name"), resource.get("digest")
    if not isinstance(name, str) or not isinstance(digest, str) or len(digest) != 64:
        raise SignatureError("a signed file has no name or no SHA-256")
    try:
        bytes.fromhex(digest)
    except ValueError:
        raise SignatureError(f"{name[:120]!r}: {digest[:80]!r} is not a SHA-256") from None
    return name, digest


def _field(parent: dict[str, Any], name: str, kind: type) -> Any:
    value = parent.get(name)
    if not isinstance(value, kind):
        raise SignatureError(f"not a model-signing bundle: no {name} {'object' if kind is dict else 'list'}")
    return value


def _base64(parent: dict[str, Any], name: str) -> bytes:
    value = parent.get(name)
    if not isinstance(value, str) or not value:
        raise SignatureError(f"the envelope has no {name}")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise SignatureError(f"the envelope's {name} is not base64") from None


def _named(keys: list[SigningKey]) -> str:
    return KEYS_KEY + " (" + ", ".join(f"{k.path} sha256:{k.fingerprint[:12]}…" for k in keys) + ")"


def check_signed(manifest: WeightsManifest, signed: SignedWeights) -> None:
    """The signature must list exactly the pinned files with the pinned SHA-256: what the pods check is what was
    signed. SignatureError naming the files that differ."""
    pinned, listed = dict(manifest.files), dict(signed.manifest.files)
    unsigned = sorted(pinned.keys() - listed.keys())
    missing = sorted(listed.keys() - pinned.keys())
    changed = sorted(p for p in pinned.keys() & listed.keys() if pinned[p] != listed[p])
    reasons = [
        f"{label}: {', '.join(repr(p[:120]) for p in paths[:5])}"
        + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        for label, paths in (
            ("not the signed bytes", changed),
            ("not signed", unsigned),
            ("signed but absent", missing),
        )
        if paths
    ]
    if reasons:
        raise SignatureError(f"the weights are not the files signed by {signed.signer.path}: {'; '.join(reasons)}")
