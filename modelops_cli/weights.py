"""`modelops weights`: pin a stack's model weights by content. Reads every object under each S3 prefix the stack
serves from (its models' `artifactUri`, and their canaries'), hashes it with SHA-256 as it streams (nothing is
written to disk), and records the manifests in the project's `weights.lock.json`; `--check` compares the objects
with what the lock pinned instead (a pre-flight before `pulumi up`: exit 1 naming every file that changed). The
pods check the same manifest before serving (components/weights_manifest.py), so the lock is the promise and the
pods keep it.

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
from components.weights_manifest import WeightsManifest, parse_manifest
from composition.weights_lock import WeightsLock

from .inert import terminal, without_credentials

MAX_ATTEMPTS, CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS = 4, 5, 60
CHUNK_BYTES = 8 * 1024 * 1024
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

    @property
    def changed_files(self) -> list[str]:
        """Files added, removed or changed since the lock's manifest."""
        before = dict(self.previous.files) if self.previous else {}
        now = dict(self.manifest.files)
        return sorted(path for path in before.keys() | now.keys() if before.get(path) != now.get(path))


def stack_locations(cfg: StackConfig, models: list[str]) -> tuple[list[str], list[str]]:
    """The S3 prefixes the stack's models (or those named) serve from, and the registry URIs among its tracks
    (pinned in the registry, not here). Raises WeightsError for a model the stack does not have."""
    unknown = sorted(set(models) - set(cfg.models))
    if unknown:
        raise WeightsError(f"the stack has no model {terminal(unknown[0])} (it has {', '.join(sorted(cfg.models))})")
    locations: list[str] = []
    registered: list[str] = []
    for name, model in cfg.models.items():
        if models and name not in models:
            continue
        for uri in _track_uris(model).values():
            if is_registry_uri(uri):
                registered.append(uri)
            else:
                locations.append(uri.rstrip("/"))
    return sorted(set(locations)), sorted(set(registered))


def _track_uris(model: ModelConfig) -> dict[str, str]:
    """By track, the URI the stack file gives its weights (a canary without its own: the stable's, moved on to
    its version, unless that is a registry URI, which the schema then refuses)."""
    uris = {"stable": model.artifact_uri} if model.artifact_uri else {}
    if model.canary is not None and model.artifact_uri:
        canary = model.canary.artifact_uri or model.canary_artifact_uri
        if canary:
            uris["canary"] = canary
    return uris


def pin(locations: list[str], lock: WeightsLock, client: Any) -> list[PinnedPrefix]:
    """Each prefix's manifest as its objects are now, beside what the lock held."""
    return [PinnedPrefix(loc, manifest_of(loc, client), lock.manifests.get(loc)) for loc in locations]


def manifest_of(location: str, client: Any) -> WeightsManifest:
    """The SHA-256 of every object under `location` (`s3://bucket/prefix`), by path under the prefix."""
    bucket, _, prefix = location[len("s3://") :].partition("/")
    prefix = prefix.rstrip("/") + "/"
    files: dict[str, str] = {}
    for key, size in _objects(client, bucket, prefix):
        if key.endswith("/") and size == 0:
            continue  # a console-made "folder": no file
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
    return WeightsLock({**lock.manifests, **{p.location: p.manifest for p in pinned}})


def format_report(pinned: list[PinnedPrefix], registered: list[str], checking: bool) -> str:
    lines = []
    for prefix in pinned:
        changed = prefix.changed_files
        if prefix.previous is None:
            state = "not pinned: not in the lock" if checking else "pinned"
        elif not changed:
            state = "unchanged"
        else:
            state = f"CHANGED: {', '.join(terminal(p, 120) for p in changed[:10])}" + (
                f" and {len(changed) - 10} more" if len(changed) > 10 else ""
            )
        files = len(prefix.manifest.files)
        lines.append(f"{prefix.location}  {files} file{'s' * (files != 1)}  {prefix.manifest.digest}  {state}")
    lines += [
        f"{terminal(uri, 200)}  a registered version: pinned by its modelops.weights.manifest tag, if it has one "
        "(read at plan time, not here)"
        for uri in registered
    ]
    return "".join(f"{line}\n" for line in lines)


def tag_value(manifest: WeightsManifest) -> str:
    """The registry tag's value: the manifest as compact JSON."""
    return json.dumps(dict(manifest.files), separators=(",", ":"), sort_keys=True)
