"""Models from an MLflow model registry: the tracking server (`modelops:mlflow`) and the registry URIs an
`artifactUri` may give instead of an S3 prefix (`models:/<name>/<version>`, `models:/<name>@<alias>`, MLflow's
own spellings: https://mlflow.org/docs/latest/ml/model-registry/). The composition resolves them
(composition/model_registry.py); this module only says which values are well formed."""

import ipaddress
import re
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from .base import ConfigModel

REGISTRY_URI = re.compile(
    r"^models:/(?P<name>[A-Za-z0-9][A-Za-z0-9_.+-]{0,255})(?:/(?P<version>[1-9][0-9]{0,9})|@(?P<alias>[A-Za-z0-9_-]{1,255}))$"
)
"""`models:/<name>/<version>` or `models:/<name>@<alias>`, names of letters, digits and `_ . + -` (no spaces,
controls or look-alike characters to hide in a review); MLflow's other spellings (`models:/<name>/latest`,
stage names like `/Production`) are deprecated upstream and name nothing stable, so they are refused."""


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


REGISTERED_SUFFIX = r"-r[1-9][0-9]{0,9}-[0-9a-f]{6}"
"""What the composition appends to a track's version when its weights are a registered model version
(`1.4.0-r7-3f9a1c`: the registry's version and a hash of where it came from; composition/model_registry.py)."""


def is_registry_uri(value: object) -> bool:
    return isinstance(value, str) and value.startswith("models:/")


def parse_registry_uri(uri: str) -> tuple[str, str | None, str | None]:
    """(name, version, alias) of a registry URI; ValueError for any other spelling."""
    match = REGISTRY_URI.match(uri)
    if match is None:
        raise ValueError(
            f"{uri!r} is not a registry URI this project resolves: write models:/<name>/<version> or "
            "models:/<name>@<alias> (MLflow's 'latest' and stage names are deprecated and name nothing stable)"
        )
    return match["name"], match["version"], match["alias"]


def check_tracking_uri(uri: str) -> str:
    """The registry's address, refused where a token would travel in clear or to a place it was not meant for:
    https only (plain http on the loopback, a local test server, at most), no credentials, query or fragment."""
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"the MLflow tracking URI must be an https:// address, got {uri!r}")
    if parts.username or parts.password:
        raise ValueError("the MLflow tracking URI must not carry credentials: give the token as MLFLOW_TRACKING_TOKEN")
    if parts.query or parts.fragment:
        raise ValueError("the MLflow tracking URI must not have a query or fragment")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(
            f"the MLflow tracking URI {uri!r} is plain http: the registry token would cross the network in clear; "
            "use https"
        )
    return uri.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MlflowConfig(ConfigModel):
    tracking_uri: str = Field(max_length=2048)
    """The MLflow tracking server whose registry `models:/` URIs are resolved against, at every preview, up and
    offline plan (https; credentials from MLflow's own MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD, in the environment)."""
    artifact_buckets: list[str] = Field(min_length=1, max_length=20)
    """The S3 buckets a registered version's files may be in: the registry names the prefix the pods' role may
    read, and this list keeps that choice inside buckets the stack's reviewers chose."""

    _checked = field_validator("tracking_uri")(lambda value: check_tracking_uri(value))

    @field_validator("artifact_buckets")
    @classmethod
    def _bucket_names(cls, value: list[str]) -> list[str]:
        for bucket in value:
            if not _BUCKET.fullmatch(bucket):
                raise ValueError(f"{bucket!r} is not an S3 bucket name (3-63 lower-case letters, digits, '.' and '-')")
        return value
