"""Registry URIs resolved against a real MLflow tracking server on 127.0.0.1 (tests/mlflow_registry.py).

What MLflow documents and these tests hold the resolver to:
- `models:/<name>/<version>` and `models:/<name>@<alias>` are the registry's own URIs; aliases are mutable
  pointers to one version (https://mlflow.org/docs/latest/ml/model-registry/#deploy-and-organize-models-with-aliases-and-tags).
- A version registered from a run has the source `runs:/<run>/<path>`, and the registry's download-URI
  endpoint returns it unresolved (seen against MLflow 3.17's server): the files are under the run's
  artifact_uri, as RunsArtifactRepository.get_underlying_uri resolves it client-side.
- MLflow's client retries 7 times with a doubling backoff by default (MLFLOW_HTTP_REQUEST_MAX_RETRIES,
  mlflow/environment_variables.py): bounded here so a plan against a registry that is down fails in seconds.
"""

from __future__ import annotations

import dataclasses
import http.server
import re
import threading
import time

import pytest

from components.config.mlflow import check_tracking_uri, parse_registry_uri
from composition.model_registry import ModelRegistry, RegistryError
from tests.aws_fakes import free_port
from tests.mlflow_registry import BUCKET, HostileRegistry

pytestmark = pytest.mark.slow  # starts an MLflow server

BUCKETS = (BUCKET,)


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("models:/chat/3", ("chat", "3", None)),
        ("models:/chat@champion", ("chat", None, "champion")),
        ("models:/team.chat-v2@challenger_1", ("team.chat-v2", None, "challenger_1")),
    ],
)
def test_registry_uris_name_a_version_or_an_alias(uri, parsed):
    assert parse_registry_uri(uri) == parsed


@pytest.mark.parametrize(
    "uri",
    [
        "models:/chat/latest",
        "models:/chat/Production",
        "models:/chat",
        "models:/chat/0",
        "models:/chat@",
        "models:/chat/3/extra",
        "models:/ch\x1bat/1",
        "models:/chat\u202e/1",
        "models:/ chat/1",
        "models:/chat@champ ion",
        "runs:/abc/model",
        "models:/a/b@c",
    ],
)
def test_other_spellings_are_refused_with_the_two_that_work(uri):
    with pytest.raises(ValueError, match=r"models:/<name>/<version> or models:/<name>@<alias>"):
        parse_registry_uri(uri)


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("http://mlflow.example.com", "plain http"),
        ("https://user:pw@mlflow.example.com", "must not carry credentials"),
        ("https://mlflow.example.com/?next=https://evil.example", "query or fragment"),
        ("ftp://mlflow.example.com", "https://"),
        ("databricks://profile", "https://"),
    ],
)
def test_a_tracking_uri_that_would_leak_the_token_is_refused(uri, reason):
    with pytest.raises(ValueError, match=reason):
        check_tracking_uri(uri)


def test_https_and_loopback_http_are_accepted():
    assert check_tracking_uri("https://mlflow.example.com/") == "https://mlflow.example.com"
    assert check_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert check_tracking_uri("http://localhost:5000") == "http://localhost:5000"


def test_an_alias_resolves_to_its_version_run_and_s3_prefix(mlflow_server):
    version, run_id = mlflow_server.register("sentiment-a", {"weights.bin": b"one"}, alias="champion")
    resolved = ModelRegistry(mlflow_server.url, buckets=BUCKETS).resolve("models:/sentiment-a@champion")
    assert (resolved.name, resolved.version, resolved.alias, resolved.run_id) == (
        "sentiment-a",
        version,
        "champion",
        run_id,
    )
    assert resolved.source == f"runs:/{run_id}/model"
    assert resolved.storage_uri.startswith(f"s3://{BUCKET}/mlflow/")
    assert resolved.storage_uri.endswith(f"/{run_id}/artifacts/model")


def test_moving_an_alias_moves_the_resolution_at_the_next_run(mlflow_server):
    first, _ = mlflow_server.register("sentiment-b", {"weights.bin": b"one"}, alias="champion")
    second, second_run = mlflow_server.register("sentiment-b", {"weights.bin": b"two"})
    assert ModelRegistry(mlflow_server.url, buckets=BUCKETS).resolve("models:/sentiment-b@champion").version == first
    mlflow_server.client().set_registered_model_alias("sentiment-b", "champion", second)
    moved = ModelRegistry(mlflow_server.url, buckets=BUCKETS).resolve("models:/sentiment-b@champion")
    assert (moved.version, moved.run_id) == (second, second_run)
    # and a pinned version does not move with the alias
    assert ModelRegistry(mlflow_server.url, buckets=BUCKETS).resolve(f"models:/sentiment-b/{first}").version == first


def test_a_missing_alias_or_version_names_the_uri(mlflow_server):
    mlflow_server.register("sentiment-c", {"weights.bin": b"one"})
    registry = ModelRegistry(mlflow_server.url, buckets=BUCKETS)
    for uri in ("models:/sentiment-c@champion", "models:/sentiment-c/99", "models:/no-such-model/1"):
        with pytest.raises(
            RegistryError, match=rf"^{uri}: not in the registry at http://127.0.0.1:\d+: .*not (found|exist)"
        ):
            registry.resolve(uri)


def test_files_outside_s3_are_refused(mlflow_server):
    client = mlflow_server.client()
    client.create_registered_model("proxied")
    client.create_model_version("proxied", "gs://elsewhere/chat/model")
    with pytest.raises(RegistryError, match=r"not in S3: .*--default-artifact-root s3://"):
        ModelRegistry(mlflow_server.url, buckets=BUCKETS).resolve("models:/proxied/1")


def test_an_unreachable_registry_fails_within_bounds_and_plainly():
    started = time.monotonic()
    with pytest.raises(
        RegistryError, match=r"^models:/chat@champion: the registry at http://127.0.0.1:\d+ could not be read"
    ):
        ModelRegistry(f"http://127.0.0.1:{free_port()}", {"token": "s3cr3t-token"}, BUCKETS).resolve(
            "models:/chat@champion"
        )
    assert time.monotonic() - started < 60  # not MLflow's four-minute default backoff


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Records each request's Authorization header; redirects every request to `redirect_to` when set."""

    seen: list[tuple[str, str | None]]
    redirect_to: str | None = None

    def do_GET(self):
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to + self.path)
            self.end_headers()
            return
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        body = b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no alias"}'
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _serve(handler: type[_Recorder], host: str) -> tuple[http.server.HTTPServer, str]:
    server = http.server.HTTPServer((host, free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


def test_the_token_goes_to_the_registry_and_nowhere_else():
    """The bearer token is sent to the tracking URI's host; a redirect to another host does not carry it
    (requests drops Authorization when the host changes: Session.rebuild_auth / should_strip_auth)."""
    other: type[_Recorder] = type("Other", (_Recorder,), {"seen": []})
    registry_handler: type[_Recorder] = type("Registry", (_Recorder,), {"seen": []})
    other_server, other_url = _serve(other, "127.0.0.2")
    registry_handler.redirect_to = other_url
    registry_server, registry_url = _serve(registry_handler, "127.0.0.1")
    try:
        with pytest.raises(RegistryError) as caught:
            ModelRegistry(registry_url, {"token": "s3cr3t-token"}, BUCKETS).resolve("models:/chat@champion")
        assert "s3cr3t-token" not in str(caught.value)
        assert registry_handler.seen and registry_handler.seen[0][1] == "Bearer s3cr3t-token"
        assert other.seen, "the redirect was followed"
        assert all(auth is None for _, auth in other.seen), other.seen
    finally:
        other_server.shutdown()
        registry_server.shutdown()


def test_mlflow_3_logged_models_resolve_where_mlflows_download_finds_them(mlflow_server):
    """MLflow 3 logs a model as a LoggedModel of the run (`log_model_artifacts`), and a version registered from
    `runs:/<run>/<name>` then has its files under the logged model, not the run's artifacts
    (RunsArtifactRepository._download_model_artifacts): resolved where the files are."""
    import tempfile
    from pathlib import Path

    client = mlflow_server.client()
    experiment = client.create_experiment("logged-model-flow")
    run = client.create_run(experiment)
    logged = client.create_logged_model(experiment, name="model", source_run_id=run.info.run_id)
    staging = Path(tempfile.mkdtemp()) / "model"
    staging.mkdir()
    (staging / "weights.bin").write_bytes(b"w")
    with mlflow_server.s3_env():
        client.log_model_artifacts(logged.model_id, str(staging))
    client.create_registered_model("logged-flow")
    client.create_model_version("logged-flow", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    resolved = ModelRegistry(mlflow_server.url, buckets=BUCKETS).resolve("models:/logged-flow/1")
    assert resolved.storage_uri == logged.artifact_location.rstrip("/")
    assert logged.model_id in resolved.storage_uri


# ---- a registry's answers are untrusted ----


@pytest.fixture
def hostile():
    registry = HostileRegistry()
    yield registry
    registry.stop()


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (
            {"source": "s3://acme-secrets-prod/db-backups"},
            "bucket 'acme-secrets-prod', which modelops:mlflow.artifactBuckets does not list",
        ),
        ({"source": f"s3://{BUCKET}"}, "names a bucket but no prefix"),
        ({"source": f"s3://{BUCKET}/chat/*"}, "IAM wildcard"),
        ({"source": f"s3://{BUCKET}/chat/../other"}, "'.' and '..' segments"),
        ({"source": f"s3://{BUCKET}/" + "a" * 2000}, "prefix of 2021 characters (S3: 1,024)"),
        ({"source": "file:///etc"}, "not in S3"),
        ({"version": "abc"}, "not a version number"),
        ({"version": ""}, "not a version number"),
        ({"run_id": "x`</details>\n# pwned", "source": "runs:/x/model"}, "not a run id"),
        (
            {"source": "runs:/r1/model", "run_artifacts": "s3://acme-secrets-prod/mlflow/1/r1/artifacts"},
            "does not list",
        ),
    ],
)
def test_a_registry_never_chooses_what_the_pods_may_read(hostile, answers, reason):
    hostile.answers.update(answers)
    with pytest.raises(RegistryError, match=re.escape(reason)) as caught:
        ModelRegistry(hostile.url, buckets=BUCKETS).resolve("models:/chat@champion")
    assert str(caught.value).startswith("models:/chat@champion: ")
    assert "\n" not in str(caught.value)


def test_credentials_echoed_by_a_registry_are_not_repeated(hostile):
    hostile.answers.update({"status": 404, "body": "<html>no such page (Authorization: {auth})</html>"})
    with pytest.raises(RegistryError) as caught:
        ModelRegistry(hostile.url, {"token": "s3cr3t-token"}, BUCKETS).resolve("models:/chat@champion")
    assert "s3cr3t" not in str(caught.value)
    assert hostile.seen[0][1] == "Bearer s3cr3t-token"


def test_basic_auth_credentials_are_mlflows_own_variables(hostile):
    """MLflow's basic-auth app reads HTTP Basic (mlflow/server/auth, authenticate_request_basic_auth)."""
    from composition.model_registry import registry_credentials

    credentials = registry_credentials({"MLFLOW_TRACKING_USERNAME": "ci", "MLFLOW_TRACKING_PASSWORD": "pw"})
    assert ModelRegistry(hostile.url, credentials, BUCKETS).resolve("models:/chat@champion").version == "7"
    assert hostile.seen[0][1] == "Basic " + __import__("base64").b64encode(b"ci:pw").decode()
    assert registry_credentials({"MLFLOW_TRACKING_TOKEN": "t", "MLFLOW_TRACKING_USERNAME": "ci"}) == {"token": "t"}


def test_retry_after_and_drip_fed_answers_are_bounded(hostile, monkeypatch):
    """urllib3 obeys a 503's Retry-After up to six hours; a drip-fed body resets the read timeout at each byte."""
    import composition.model_registry as model_registry

    hostile.answers.update({"status": 503, "body": "", "headers": {"Retry-After": "21600"}})
    started = time.monotonic()
    with pytest.raises(RegistryError, match="could not be read"):
        ModelRegistry(hostile.url, buckets=BUCKETS).resolve("models:/chat@champion")
    assert time.monotonic() - started < 60
    hostile.answers.clear()
    hostile.answers.update({"drip": 0.5})
    monkeypatch.setattr(model_registry, "RESOLVE_DEADLINE_SECONDS", 3)
    started = time.monotonic()
    with pytest.raises(RegistryError, match="did not answer within 3 s"):
        ModelRegistry(hostile.url, buckets=BUCKETS).resolve("models:/chat@champion")
    assert time.monotonic() - started < 10


def test_a_copied_version_resolves_to_its_origins_files(mlflow_server):
    """MLflow's copy_model_version registers a version whose source is `models:/<name>/<version>`."""
    version, run_id = mlflow_server.register("copy-origin", {"weights.bin": b"one"})
    copied = mlflow_server.client().copy_model_version(f"models:/copy-origin/{version}", "copy-target")
    resolved = ModelRegistry(mlflow_server.url, buckets=BUCKETS).resolve(f"models:/copy-target/{copied.version}")
    assert resolved.storage_uri.endswith(f"/{run_id}/artifacts/model")


def test_a_registered_version_is_spelled_as_smoke_recognises_it():
    """components/config/mlflow.py REGISTERED_SUFFIX (what `modelops smoke` accepts) is what the composition writes."""
    from components.config.mlflow import REGISTERED_SUFFIX
    from composition.model_registry import RegisteredModel, registered_version

    found = RegisteredModel("models:/chat@a", "chat", "12", "a", None, "s3://b/c", "s3://b/c", "https://m.example.com")
    marked = registered_version("1.4.0", found)
    assert re.fullmatch(re.escape("1.4.0") + REGISTERED_SUFFIX, marked), marked
    other = registered_version("1.4.0", dataclasses.replace(found, name="chat-llama"))
    assert other != marked and other.startswith("1.4.0-r12-")
