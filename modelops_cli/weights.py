"""`modelops weights`: pin a stack's model weights by content. Reads every object under each S3 prefix the stack
serves from (its models' `artifactUri`, and their canaries'), hashes it with SHA-256 as it streams (nothing is
written to disk), and records the manifests in the project's `weights.lock.json`; `--check` compares the objects
with what the lock pinned instead (a pre-flight before `pulumi up`: exit 1 naming every file that changed). The
pods check the same manifest before serving (components/weights_manifest.py), so the lock is the promise and the
pods keep it.

Weights a model requires signed (`signature: key`) must have an OpenSSF model signature beside them (`model.sig`, as
`model_signing sign key` writes it) by one of the stack's trusted keys, listing exactly the files read: the lock
records it then, and only then (composition/weights_signature.py). `model.sig` is never part of the weights.

Models from a registry (`models:/…`) are pinned by their registered version's `modelops.weights.manifest` tag:
`--print s3://…` writes a prefix's manifest as that tag's JSON value."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from components.config import ModelConfig, StackConfig
from components.config.mlflow import is_registry_uri
from components.weights_manifest import SIGNATURE_OBJECT, WeightsManifest, parse_manifest
from composition.weights_lock import WeightsLock
from composition.weights_signature import SignatureError, SigningKey, check_signed, parse_bundle, verify_bundle

from .inert import terminal, without_credentials

MAX_ATTEMPTS, CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS = 4, 5, 60
CHUNK_BYTES = 8 * 1024 * 1024
MAX_SIGNATURE_BYTES = 1_000_000
MAX_OBJECTS = 10_000
"""Objects read under one prefix: a bound on a prefix that is not a model's (`s3://bucket/` would be a bucket)."""


class WeightsError(Exception):
    """A prefix that cannot be pinned: the message names it and why (never credentials)."""


@dataclass(frozen=True)
class PinnedPrefix:
    location: str
    manifest: WeightsManifest
    previous: WeightsManifest | None
    """What the lock held for it before (None: new)."""
    signature: dict[str, Any] | None = None
    """The model signature to record: verified from S3 when required, else the lock's own for unchanged files."""
    signature_problem: str | None = None
    """Why the signature a model requires cannot be recorded (None: none required, or it verified)."""
    signer: str | None = None
    """The fingerprint of the trusted key whose signature verified here (None: none required)."""
    signature_in_lock: bool = True
    """False for a required signature the lock does not hold yet (the plan would refuse it until pinned)."""

    @property
    def changed_files(self) -> list[str]:
        """Files added, removed or changed since the lock's manifest."""
        before = dict(self.previous.files) if self.previous else {}
        now = dict(self.manifest.files)
        return sorted(path for path in before.keys() | now.keys() if before.get(path) != now.get(path))


@dataclass(frozen=True)
class StackLocations:
    locations: list[str]
    """The S3 prefixes served, sorted."""
    registered: list[str]
    """The registry URIs among the tracks (pinned in the registry, not here)."""
    signed: frozenset[str]
    """The prefixes whose weights must be signed (`signature`)."""


def stack_locations(cfg: StackConfig, models: list[str]) -> StackLocations:
    """What the stack's models (or those named) serve from. Raises WeightsError for a model the stack does not
    have."""
    unknown = sorted(set(models) - set(cfg.models))
    if unknown:
        raise WeightsError(f"the stack has no model {terminal(unknown[0])} (it has {', '.join(sorted(cfg.models))})")
    locations: list[str] = []
    registered: list[str] = []
    signed: set[str] = set()
    for name, model in cfg.models.items():
        if models and name not in models:
            continue
        for track, uri in _track_uris(model).items():
            location = uri.rstrip("/")
            if is_registry_uri(uri):
                registered.append(uri)
            else:
                locations.append(location)
                if model.signature_for(track):
                    signed.add(location)
    return StackLocations(sorted(set(locations)), sorted(set(registered)), frozenset(signed))


def _track_uris(model: ModelConfig) -> dict[str, str]:
    """By track, the URI the stack file gives its weights (a canary without its own: the stable's, moved on to
    its version, unless that is a registry URI, which the schema then refuses)."""
    uris = {"stable": model.artifact_uri} if model.artifact_uri else {}
    if model.canary is not None and model.artifact_uri:
        canary = model.canary.artifact_uri or model.canary_artifact_uri
        if canary:
            uris["canary"] = canary
    return uris


def pin(served: StackLocations, lock: WeightsLock, client: Any, keys: list[SigningKey]) -> list[PinnedPrefix]:
    """Each prefix's manifest as its objects are now, beside what the lock held, with the signature to record."""
    pinned = []
    for location in served.locations:
        manifest, previous = manifest_of(location, client), lock.manifests.get(location)
        if location in served.signed:
            try:
                bundle, signer = _verified_signature(location, manifest, client, keys)
            except SignatureError as exc:
                pinned.append(PinnedPrefix(location, manifest, previous, signature_problem=f"{location}: {exc}"))
                continue
            in_lock = location in lock.signatures
            pinned.append(PinnedPrefix(location, manifest, previous, bundle, signer=signer, signature_in_lock=in_lock))
        else:  # not required here: a signature recorded for these very files stays (another stack may need it)
            unchanged = previous is not None and previous.files == manifest.files
            pinned.append(
                PinnedPrefix(location, manifest, previous, lock.signatures.get(location) if unchanged else None)
            )
    return pinned


def _verified_signature(
    location: str, manifest: WeightsManifest, client: Any, keys: list[SigningKey]
) -> tuple[dict[str, Any], str]:
    """The prefix's model.sig and its signer's fingerprint, once it verifies with a trusted key and lists exactly
    `manifest`'s files."""
    from botocore.exceptions import ClientError

    bucket, _, prefix = location[len("s3://") :].partition("/")
    key = f"{prefix.rstrip('/')}/{SIGNATURE_OBJECT}"
    with _s3_errors(f"s3://{bucket}/{key}"):
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
            raise SignatureError(
                f"not signed: no {SIGNATURE_OBJECT} beside the weights, and the model requires one (sign the files "
                f"with `model_signing sign key` and upload {SIGNATURE_OBJECT} with them)"
            ) from None
        try:
            data = body.read(MAX_SIGNATURE_BYTES + 1)
        finally:
            body.close()
    bundle = parse_bundle(data)
    signed = verify_bundle(bundle, keys)
    check_signed(manifest, signed)
    return bundle, signed.signer.fingerprint


def manifest_of(location: str, client: Any) -> WeightsManifest:
    """The SHA-256 of every object under `location` (`s3://bucket/prefix`), by path under the prefix."""
    bucket, _, prefix = location[len("s3://") :].partition("/")
    prefix = prefix.rstrip("/") + "/"
    files: dict[str, str] = {}
    for key, size in _objects(client, bucket, prefix):
        if (key.endswith("/") and size == 0) or key == prefix + SIGNATURE_OBJECT:
            continue  # a console-made "folder": no file; the weights' signature: not weights
        files[key[len(prefix) :]] = _sha256(client, bucket, key)
    if not files:
        raise WeightsError(f"{location}: no objects under the prefix (is the version uploaded?)")
    try:
        return parse_manifest(files)
    except ValueError as exc:
        raise WeightsError(f"{location}: {exc}") from None


def _objects(client: Any, bucket: str, prefix: str) -> Iterator[tuple[str, int]]:
    seen = 0
    with _s3_errors(f"s3://{bucket}/{prefix}"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                seen += 1
                if seen > MAX_OBJECTS:
                    raise WeightsError(f"s3://{bucket}/{prefix}: more than {MAX_OBJECTS:,} objects: not one model's")
                yield item["Key"], item.get("Size", 0)


def _sha256(client: Any, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    with _s3_errors(f"s3://{bucket}/{key}"):
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            for chunk in iter(lambda: body.read(CHUNK_BYTES), b""):
                digest.update(chunk)
        finally:
            body.close()
    return digest.hexdigest()


@contextmanager
def _s3_errors(where: str) -> Iterator[None]:
    """AWS's refusals and connection failures (after botocore's bounded retries) as one plain line."""
    from botocore.exceptions import BotoCoreError, ClientError
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise WeightsError(f"{where}: {error.get('Code', 'error')}: {_reason(error.get('Message', ''))}") from None
    except (BotoCoreError, HTTPError) as exc:  # a connection dropped mid-object is urllib3's
        raise WeightsError(f"{where}: S3 could not be read ({_reason(exc)})") from None


def _reason(value: Any) -> str:
    return terminal(without_credentials(str(value)), 300)


def s3_client(region: str) -> Any:
    """Bounded retries (botocore's standard mode: throttling and 5xx) and timeouts."""
    import boto3
    import botocore.config

    config = botocore.config.Config(
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )
    return boto3.client("s3", region_name=region, config=config)


def updated_lock(lock: WeightsLock, pinned: list[PinnedPrefix]) -> WeightsLock:
    repinned = {p.location for p in pinned}
    signatures = {uri: bundle for uri, bundle in lock.signatures.items() if uri not in repinned}
    signatures |= {p.location: p.signature for p in pinned if p.signature is not None}
    return WeightsLock({**lock.manifests, **{p.location: p.manifest for p in pinned}}, signatures)


def format_report(pinned: list[PinnedPrefix], registered: list[str], checking: bool) -> str:
    lines = []
    for prefix in pinned:
        changed = prefix.changed_files
        if prefix.signature_problem:
            state = f"SIGNATURE REFUSED: {terminal(prefix.signature_problem, 400)}"
        elif prefix.previous is None:
            state = "not pinned: not in the lock" if checking else "pinned"
        elif checking and not prefix.signature_in_lock:
            state = "SIGNATURE not in the lock"
        elif not changed:
            state = "unchanged"
        else:
            state = f"CHANGED: {', '.join(terminal(p, 120) for p in changed[:10])}" + (
                f" and {len(changed) - 10} more" if len(changed) > 10 else ""
            )
        files = len(prefix.manifest.files)
        signed = f"  signed by sha256:{prefix.signer[:16]}…" if prefix.signer else ""
        lines.append(f"{prefix.location}  {files} file{'s' * (files != 1)}  {prefix.manifest.digest}{signed}  {state}")
    lines += [
        f"{terminal(uri, 200)}  a registered version: pinned by its modelops.weights.manifest tag, if it has one "
        "(read at plan time, not here)"
        for uri in registered
    ]
    return "".join(f"{line}\n" for line in lines)


def tag_value(manifest: WeightsManifest) -> str:
    """The registry tag's value: the manifest as compact JSON."""
    return json.dumps(dict(manifest.files), separators=(",", ":"), sort_keys=True)
