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

import ipaddress
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

REGISTRY_URI = re.compile(
    r"^models:/(?P<name>[^/@\s]{1,256})(?:/(?P<version>[1-9][0-9]{0,9})|@(?P<alias>[A-Za-z0-9_-]{1,255}))$"
)
"""`models:/<name>/<version>` or `models:/<name>@<alias>`; MLflow's other spellings (`models:/<name>/latest`,
stages like `/Production`) are deprecated upstream and name nothing stable, so they are refused."""

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


def is_registry_uri(value: str | None) -> bool:
    return bool(value) and str(value).startswith("models:/")


def parse_registry_uri(uri: str) -> tuple[str, str | None, str | None]:
    """(name, version, alias) of a registry URI; RegistryError for any other spelling."""
    match = REGISTRY_URI.match(uri)
    if match is None:
        raise RegistryError(
            f"{uri!r} is not a registry URI this project resolves: write models:/<name>/<version> or "
            "models:/<name>@<alias> (MLflow's 'latest' and stage names are deprecated and name nothing stable)"
        )
    return match["name"], match["version"], match["alias"]


def check_tracking_uri(uri: str) -> str:
    """The registry's address, refused where a token would travel in clear or to a place it was not meant for:
    https only (plain http on the loopback, a local test server, at most), no credentials, query or fragment."""
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise RegistryError(f"the MLflow tracking URI must be an https:// address, got {uri!r}")
    if parts.username or parts.password:
        raise RegistryError("the MLflow tracking URI must not carry credentials: set the token as secret config")
    if parts.query or parts.fragment:
        raise RegistryError("the MLflow tracking URI must not have a query or fragment")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise RegistryError(
            f"the MLflow tracking URI {uri!r} is plain http: the registry token would cross the network in clear; use https"
        )
    return uri.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        from mlflow.store.model_registry.rest_store import RestStore as RegistryStore
        from mlflow.store.tracking.rest_store import RestStore as TrackingStore
        from mlflow.utils.rest_utils import MlflowHostCreds

        self.tracking_uri = check_tracking_uri(tracking_uri)
        creds = MlflowHostCreds(self.tracking_uri, token=token or None)
        self._registry = RegistryStore(lambda: creds)
        self._tracking = TrackingStore(lambda: creds)
        self._resolved: dict[str, RegisteredModel] = {}

    def resolve(self, uri: str) -> RegisteredModel:
        """The version a registry URI names now (once per program run: every reader of one URI agrees)."""
        if uri not in self._resolved:
            self._resolved[uri] = self._resolve(uri)
        return self._resolved[uri]

    def _resolve(self, uri: str) -> RegisteredModel:
        name, version, alias = parse_registry_uri(uri)
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
