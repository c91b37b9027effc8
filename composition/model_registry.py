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
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from components.config import NAMESPACE, ModelConfig, StackConfig, StackConfigError
from components.config.mlflow import check_tracking_uri, is_registry_uri, parse_registry_uri

BOUNDED_RETRIES = {
    # MLflow's client retries 7 times with a doubling backoff (about four minutes) before it reports a
    # registry that is down; a plan waits for at most two retries of 15 s requests, then says so plainly.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}


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
    """One MLflow tracking server's registry, read with MLflow's REST stores and an explicit bearer token (not
    the process environment's MLFLOW_TRACKING_TOKEN, which another stack's program could have set)."""

    def __init__(self, tracking_uri: str, token: str | None = None):
        # imported here: MLflow's import costs a second, paid only by stacks with registry URIs
        from mlflow.store.model_registry import rest_store as registry_rest
        from mlflow.store.tracking import rest_store as tracking_rest
        from mlflow.utils.rest_utils import MlflowHostCreds

        try:
            self.tracking_uri = check_tracking_uri(tracking_uri)
        except ValueError as exc:
            raise RegistryError(str(exc)) from None
        creds = MlflowHostCreds(self.tracking_uri, token=token or None)
        self._registry = registry_rest.RestStore(lambda: creds)
        self._tracking = tracking_rest.RestStore(lambda: creds)
        self._resolved: dict[str, RegisteredModel] = {}

    def resolve(self, uri: str) -> RegisteredModel:
        """The version a registry URI names now (once per program run: every reader of one URI agrees)."""
        if uri not in self._resolved:
            self._resolved[uri] = self._resolve(uri)
        return self._resolved[uri]

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
                location = self._storage_uri(found.source, found.run_id)
            except RegistryError:
                raise
            except Exception as exc:  # MLflow raises its own exceptions and requests' alike
                raise RegistryError(f"{uri}: {self._reason(exc)}") from None
        if found.status not in (None, "READY"):
            raise RegistryError(f"{uri}: version {found.version} is {found.status}, not READY")
        return RegisteredModel(uri, name, str(found.version), alias, found.run_id or None, found.source, location)

    def _storage_uri(self, source: str, run_id: str | None) -> str:
        """Where the version's files are: `runs:/` and `models:/m-…` sources are looked up in the tracking
        store as MLflow's own download does (RunsArtifactRepository, LoggedModel.artifact_location)."""
        location = source
        if source.startswith("runs:/"):
            run, _, path = source[len("runs:/") :].partition("/")
            location = f"{self._tracking.get_run(run).info.artifact_uri.rstrip('/')}/{path}".rstrip("/")
        elif source.startswith("models:/m-"):
            location = self._tracking.get_logged_model(source[len("models:/") :].split("/")[0]).artifact_location
        if not location.startswith("s3://"):
            raise RegistryError(
                f"the version's files are at {location!r}, not in S3: the pods read weights from S3, so the "
                "tracking server must store artifacts there (--default-artifact-root s3://…, --no-serve-artifacts)"
            )
        return location.rstrip("/")

    def _reason(self, exc: Exception) -> str:
        code = getattr(exc, "error_code", "")
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        first_line = str(message).splitlines()[0][:300]
        # MLflow answers a missing model or version with RESOURCE_DOES_NOT_EXIST, a missing alias with
        # INVALID_PARAMETER_VALUE ("Registered model alias champion not found.")
        if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return f"not in the registry at {self.tracking_uri}: {first_line}"
        if code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
            return f"the registry at {self.tracking_uri} refused the token ({code})"
        return f"the registry at {self.tracking_uri} could not be read: {first_line}"


@dataclass(frozen=True)
class RegisteredTracks:
    """What a model's registry URIs resolved to, by track."""

    stable: RegisteredModel | None
    canary: RegisteredModel | None

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
            for track, found in (("stable", self.stable), ("canary", self.canary))
            if found is not None
        }

    def describe(self) -> str:
        """One line for the plan and the preview's diagnostics."""
        return "; ".join(
            f"{track} {found.uri} is registered version {found.version} (run {found.run_id or 'none'}, "
            f"files {found.storage_uri})"
            for track, found in (("stable", self.stable), ("canary", self.canary))
            if found is not None
        )


def registered_version(version: str, found: RegisteredModel) -> str:
    """A track's version with the registry's: `1.4` serving registry version 7 is `1.4-r7`, so moving an alias
    makes a new version (its own weights volume, grant and image tag) rather than new weights under old pods."""
    return f"{version}-r{found.version}"


def resolve_stack_models(
    raw: dict[str, Any], cfg: StackConfig, token: str | None
) -> tuple[dict[str, Any], dict[str, RegisteredTracks]]:
    """The stack's raw config with every registry URI replaced by the S3 prefix it resolves to and each such
    track's version marked with the registry's, and what each resolved to. Raises StackConfigError naming the key
    of every URI that could not be resolved (the stack then registers nothing)."""
    uses = {name: _registry_uris(model) for name, model in cfg.models.items()}
    uses = {name: found for name, found in uses.items() if found}
    if not uses:
        return raw, {}
    assert cfg.mlflow is not None  # the schema's checks ask for it beside any registry URI
    registry = ModelRegistry(cfg.mlflow.tracking_uri, token)
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
