"""Model versions from an MLflow model registry: `models:/<name>/<version>` and `models:/<name>@<alias>`, the
URIs MLflow itself gives a registered model (https://mlflow.org/docs/latest/ml/model-registry/), resolved
to the S3 prefix that holds the version's files and the facts that say which bytes they are (version, run,
registered source).

Resolution runs where the program runs: `pulumi preview`/`up` and the offline engine call the same code with
MLflow's own client stores, so an alias moved in the registry moves the deployment at the next run, and a
registry that cannot be reached is an error, never a guess. Only what the pods can read is accepted: the
resolved location must be an `s3://` prefix (a server that proxies artifacts, `mlflow-artifacts:/`, hides
where they are; run it with `--no-serve-artifacts` and an S3 `--default-artifact-root`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from components.config import NAMESPACE, ModelConfig, StackConfig, StackConfigError
from components.config.mlflow import check_tracking_uri, is_registry_uri, parse_registry_uri
from components.config.model import check_artifact_uri
from components.contracts import REGISTRY_ANNOTATIONS
from components.weights_manifest import WeightsManifest, parse_manifest

BOUNDED_RETRIES = {
    # MLflow's client retries 7 times with a doubling backoff (about four minutes) before it reports a
    # registry that is down, and obeys a 503's Retry-After up to urllib3's six hours; a plan waits for at most
    # two retries of 15 s requests, then says so plainly.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER": "false",
}
RESOLVE_DEADLINE_SECONDS = 120
"""The whole resolution of one URI: the request timeout bounds each read, not a server that drips its answer."""
MAX_PREFIX_CHARS = 1024
"""An S3 key is at most 1,024 bytes (docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html)."""
_VERSION = re.compile(r"[1-9][0-9]{0,9}")
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,255}")
MANIFEST_TAG = "modelops.weights.manifest"
"""A registered version's tag holding its files' SHA-256 as JSON `{path: hex}` (`modelops weights --print` writes
it): the version is pinned by the registry itself, wherever an alias moves."""
_MAX_SOURCE_HOPS = 3
"""`models:/<name>/<version>` sources (MLflow's copy_model_version) followed this many times at most."""


class RegistryError(ValueError):
    """A registry URI that cannot be resolved; the message names the URI and why (never the token)."""


@dataclass(frozen=True)
class RegisteredModel:
    """What a registry URI stood for when the program ran."""

    uri: str
    """As the stack file wrote it (`models:/chat@champion`)."""
    name: str
    version: str
    alias: str | None
    run_id: str | None
    source: str
    """The version's source as registered (`runs:/<run>/model`, `s3://…`, `models:/m-…`)."""
    storage_uri: str
    """The `s3://` prefix its files are under: what the pods copy or mount."""
    registry: str
    """The tracking server it was found in."""
    manifest: WeightsManifest | None = None
    """Its files' SHA-256 as the registry records them (MANIFEST_TAG); None when it has none."""


@contextmanager
def _bounded_retries() -> Iterator[None]:
    """MLflow reads its retry settings from the environment at each request: bound them for the call, unless
    the user set their own, and leave the environment as it was."""
    added = [name for name in BOUNDED_RETRIES if name not in os.environ]
    os.environ.update({name: BOUNDED_RETRIES[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


class ModelRegistry:
    """One MLflow tracking server's registry, read with MLflow's REST stores and explicit credentials: a bearer
    token (MLflow's MLFLOW_TRACKING_TOKEN) or the user and password of MLflow's basic-auth app
    (MLFLOW_TRACKING_USERNAME/PASSWORD), given by the caller rather than read by MLflow from the process."""

    def __init__(self, tracking_uri: str, credentials: dict[str, str] | None = None, buckets: tuple[str, ...] = ()):
        # imported here: MLflow's import costs a second, paid only by stacks with registry URIs
        from mlflow.store.model_registry import rest_store as registry_rest
        from mlflow.store.tracking import rest_store as tracking_rest
        from mlflow.utils.rest_utils import MlflowHostCreds

        try:
            self.tracking_uri = check_tracking_uri(tracking_uri)
        except ValueError as exc:
            raise RegistryError(str(exc)) from None
        self._secrets = [v for v in (credentials or {}).values() if v]
        creds = MlflowHostCreds(self.tracking_uri, **(credentials or {}))
        self._registry = registry_rest.RestStore(lambda: creds)
        self._tracking = tracking_rest.RestStore(lambda: creds)
        self._buckets = buckets
        self._resolved: dict[str, RegisteredModel] = {}

    def resolve(self, uri: str) -> RegisteredModel:
        """The version a registry URI names now (once per program run: every reader of one URI agrees)."""
        if uri not in self._resolved:
            self._resolved[uri] = self._within_deadline(uri)
        return self._resolved[uri]

    def _within_deadline(self, uri: str) -> RegisteredModel:
        """`_resolve` in a worker thread given RESOLVE_DEADLINE_SECONDS: a registry that answers a byte at a time
        stops the run with a plain error instead of holding it (the thread is abandoned; the run exits)."""
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelops-registry")
        try:
            return pool.submit(self._resolve, uri).result(timeout=RESOLVE_DEADLINE_SECONDS)
        except FutureTimeout:
            raise RegistryError(
                f"{uri}: the registry at {self.tracking_uri} did not answer within {RESOLVE_DEADLINE_SECONDS} s"
            ) from None
        finally:
            pool.shutdown(wait=False)

    def _resolve(self, uri: str) -> RegisteredModel:
        try:
            name, version, alias = parse_registry_uri(uri)
        except ValueError as exc:
            raise RegistryError(str(exc)) from None
        with _bounded_retries():
            try:
                found = (
                    self._registry.get_model_version_by_alias(name, alias)
                    if alias
                    else self._registry.get_model_version(name, version)
                )
                _check_answer(found.version, found.run_id)
                location = self._storage_uri(found.source, found.run_id, _MAX_SOURCE_HOPS)
            except RegistryError as exc:
                raise RegistryError(f"{uri}: {exc}") from None
            except Exception as exc:  # MLflow raises its own exceptions and requests' alike
                raise RegistryError(f"{uri}: {self._reason(exc)}") from None
        if found.status not in (None, "READY"):
            raise RegistryError(f"{uri}: version {found.version} is {found.status}, not READY")
        manifest = _tagged_manifest(uri, found.version, getattr(found, "tags", None) or {})
        return RegisteredModel(
            uri,
            name,
            str(found.version),
            alias,
            found.run_id or None,
            found.source,
            location,
            self.tracking_uri,
            manifest,
        )

    def _storage_uri(self, source: str, run_id: str | None, hops: int) -> str:
        """Where the version's files are, found as MLflow's own download finds them: a `runs:/<run>/<name>` source
        is the run's logged model of that name when there is one (MLflow 3 logs models so;
        RunsArtifactRepository._download_model_artifacts), else the run's artifacts; `models:/m-…` a logged model's
        location; `models:/<name>/<version>` (copy_model_version) that version's. Checked as a stack's own S3
        prefix is, and against the buckets the stack lets the registry name (`mlflow.artifactBuckets`)."""
        if source.startswith("runs:/"):
            location = self._run_location(source)
        elif source.startswith("models:/m-"):
            location = self._tracking.get_logged_model(source[len("models:/") :].split("/")[0]).artifact_location
        elif source.startswith("models:/") and hops > 0:
            name, version, _ = parse_registry_uri(source)
            copied = self._registry.get_model_version(name, version)
            return self._storage_uri(copied.source, copied.run_id, hops - 1)
        else:
            location = source
        return self._checked_location(str(location))

    def _run_location(self, source: str) -> str:
        run_id, _, path = source[len("runs:/") :].partition("/")
        _check_answer("1", run_id)
        run = self._tracking.get_run(run_id)
        model_name, _, rest = path.partition("/")
        if model_name and _MODEL_NAME.fullmatch(model_name):
            page = self._tracking.search_logged_models(
                experiment_ids=[run.info.experiment_id], filter_string=f"name = '{model_name}'", max_results=100
            )
            logged = next((m for m in page if m.source_run_id == run_id), None)
            if logged is not None:
                return f"{str(logged.artifact_location).rstrip('/')}/{rest}".rstrip("/")
        return f"{run.info.artifact_uri.rstrip('/')}/{path}".rstrip("/")

    def _checked_location(self, location: str) -> str:
        if not location.startswith("s3://"):
            raise RegistryError(
                f"the version's files are at {location[:200]!r}, not in S3: the pods read weights from S3, so the "
                "tracking server must store artifacts there (--default-artifact-root s3://…, --no-serve-artifacts)"
            )
        if len(location) > MAX_PREFIX_CHARS:
            raise RegistryError(f"the version's files are under a prefix of {len(location)} characters (S3: 1,024)")
        try:
            check_artifact_uri(location.rstrip("/"))
        except ValueError as exc:
            raise RegistryError(f"the version's location: {exc}") from None
        bucket = location[len("s3://") :].split("/", 1)[0]
        if bucket not in self._buckets:
            raise RegistryError(
                f"the version's files are in the bucket {bucket!r}, which modelops:mlflow.artifactBuckets does not "
                "list: the registry would choose what the pods' role may read"
            )
        return location.rstrip("/")

    def _reason(self, exc: Exception) -> str:
        code = getattr(exc, "error_code", "")
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        # MLflow quotes the response body; a server may echo the request (and its credentials) there
        first_line = str(message).split("Response body", 1)[0].splitlines()[0][:300] if str(message) else ""
        for secret in self._secrets:
            first_line = first_line.replace(secret, "***")
        # MLflow answers a missing model or version with RESOURCE_DOES_NOT_EXIST, a missing alias with
        # INVALID_PARAMETER_VALUE ("Registered model alias champion not found.")
        if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return f"not in the registry at {self.tracking_uri}: {first_line}"
        if code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
            return f"the registry at {self.tracking_uri} refused the credentials ({code})"
        return f"the registry at {self.tracking_uri} could not be read: {first_line}"


def _check_answer(version: object, run_id: object) -> None:
    """A registry's answer is untrusted text: a version is a number, a run id an id, before either is written
    into a name, a label or an output."""
    if not isinstance(version, str | int) or not _VERSION.fullmatch(str(version)):
        raise RegistryError(f"the registry answered the version {str(version)[:40]!r}, not a version number")
    if run_id not in (None, "") and (not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id)):
        raise RegistryError(f"the registry answered the run id {str(run_id)[:40]!r}, not a run id")


def _tagged_manifest(uri: str, version: object, tags: Mapping[str, Any]) -> WeightsManifest | None:
    """The version's MANIFEST_TAG, checked as a lock file's entry is (the registry's answer is untrusted text)."""
    text = tags.get(MANIFEST_TAG)
    if text is None:
        return None
    try:
        return parse_manifest(json.loads(text) if isinstance(text, str) else None)
    except (ValueError, RecursionError) as exc:  # json.JSONDecodeError is a ValueError
        reason = "not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise RegistryError(f"{uri}: version {version}'s tag {MANIFEST_TAG}: {reason}") from None


@dataclass(frozen=True)
class RegisteredTracks:
    """What a model's registry URIs resolved to, by track."""

    stable: RegisteredModel | None
    canary: RegisteredModel | None

    def for_track(self, track: str) -> RegisteredModel | None:
        return self.stable if track == "stable" else self.canary

    def tracks(self) -> list[tuple[str, RegisteredModel]]:
        """(track, what it resolved to) for each track whose weights are registered."""
        return [(track, found) for track, found in (("stable", self.stable), ("canary", self.canary)) if found]

    def as_output(self) -> dict[str, dict[str, str | None]]:
        """The stack output and plan's account of it: which version, run and files an alias stood for."""
        return {
            track: {
                "uri": found.uri,
                "name": found.name,
                "version": found.version,
                "runId": found.run_id,
                "source": found.source,
                "artifactUri": found.storage_uri,
            }
            for track, found in self.tracks()
        }

    def provenance(self) -> dict[str, dict[str, str]]:
        """By track, the annotations that say where its weights came from (REGISTRY_ANNOTATIONS)."""
        return {
            track: {
                REGISTRY_ANNOTATIONS["uri"]: found.uri,
                REGISTRY_ANNOTATIONS["name"]: found.name,
                REGISTRY_ANNOTATIONS["version"]: found.version,
                REGISTRY_ANNOTATIONS["run"]: found.run_id or "",
                REGISTRY_ANNOTATIONS["artifact"]: found.storage_uri,
            }
            for track, found in self.tracks()
        }

    def stable_tags(self) -> dict[str, str]:
        """The stable track's provenance as AWS tags (its serverless fallback serves the stable version); a value
        longer than a tag's 256 characters (a deep prefix) is left to the stack output."""
        stable = self.provenance().get("stable", {})
        return {key.replace("/", ":"): value for key, value in stable.items() if value and len(value) <= 256}

    def describe(self) -> str:
        """One line for the plan and the preview's diagnostics."""
        return "; ".join(
            f"{track} {found.uri} is registered version {found.version} (run {found.run_id or 'none'}, "
            f"files {found.storage_uri})"
            for track, found in self.tracks()
        )


def registered_version(version: str, found: RegisteredModel) -> str:
    """A track's version with the registry's: `1.4` serving registered version 7 is `1.4-r7-<6 hex>`, so moving an
    alias makes a new version (its own weights volume, grant and image tag) rather than new weights under old pods.
    The hash covers the registry, the registered name and where the files are: another model's version 7, or a
    model deleted and registered again, is another version too."""
    identity = "\n".join((found.registry, found.name, found.version, found.storage_uri))
    return f"{version}-r{found.version}-{hashlib.sha256(identity.encode()).hexdigest()[:6]}"


def registry_credentials(environ: Mapping[str, str]) -> dict[str, str]:
    """MLflow's own variables: a bearer token, or the user and password of its basic-auth app."""
    token = environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"token": token}
    user, password = environ.get("MLFLOW_TRACKING_USERNAME"), environ.get("MLFLOW_TRACKING_PASSWORD")
    return {"username": user, "password": password} if user and password else {}


def resolve_stack_models(
    raw: dict[str, Any], cfg: StackConfig, credentials: dict[str, str]
) -> tuple[dict[str, Any], dict[str, RegisteredTracks]]:
    """The stack's raw config with every registry URI replaced by the S3 prefix it resolves to and each such
    track's version marked with the registry's, and what each resolved to. Raises StackConfigError naming the key
    of every URI that could not be resolved (the stack then registers nothing)."""
    uses = {name: _registry_uris(model) for name, model in cfg.models.items()}
    uses = {name: found for name, found in uses.items() if found}
    if not uses:
        return raw, {}
    assert cfg.mlflow is not None  # the schema's checks ask for it beside any registry URI
    registry = ModelRegistry(cfg.mlflow.tracking_uri, credentials, tuple(cfg.mlflow.artifact_buckets))
    models = copy.deepcopy(raw["models"])
    registered: dict[str, RegisteredTracks] = {}
    problems: list[str] = []
    for name, tracks in uses.items():
        resolved: dict[str, RegisteredModel] = {}
        for track, uri in tracks.items():
            try:
                resolved[track] = registry.resolve(uri)
            except RegistryError as exc:
                key = "artifactUri" if track == "stable" else "canary.artifactUri"
                problems.append(f"{NAMESPACE}:models.{name}.{key}: {exc}")
        _rewrite_model(models[name], resolved)
        registered[name] = RegisteredTracks(resolved.get("stable"), resolved.get("canary"))
    if problems:
        raise StackConfigError(problems)
    return {**raw, "models": models}, registered


def _registry_uris(model: ModelConfig) -> dict[str, str]:
    tracks = {"stable": model.artifact_uri, "canary": model.canary.artifact_uri if model.canary else None}
    return {track: uri for track, uri in tracks.items() if uri and is_registry_uri(uri)}


def _rewrite_model(raw_model: dict[str, Any], resolved: dict[str, RegisteredModel]) -> None:
    """The resolved prefix and registry-marked version, written where the stack file had the URI."""
    for track, found in resolved.items():
        target = raw_model if track == "stable" else raw_model["canary"]
        target["artifactUri"] = found.storage_uri
        target["version"] = registered_version(str(target["version"]), found)
