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

import http.server
import threading
import time

import pytest

from components.config.mlflow import check_tracking_uri, parse_registry_uri
from composition.model_registry import ModelRegistry, RegistryError
from tests.aws_fakes import free_port

pytestmark = pytest.mark.slow  # starts an MLflow server


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
    resolved = ModelRegistry(mlflow_server.url).resolve("models:/sentiment-a@champion")
    assert (resolved.name, resolved.version, resolved.alias, resolved.run_id) == (
        "sentiment-a",
        version,
        "champion",
        run_id,
    )
    assert resolved.source == f"runs:/{run_id}/model"
    assert resolved.storage_uri.startswith("s3://registry-models/mlflow/")
    assert resolved.storage_uri.endswith(f"/{run_id}/artifacts/model")


def test_moving_an_alias_moves_the_resolution_at_the_next_run(mlflow_server):
    first, _ = mlflow_server.register("sentiment-b", {"weights.bin": b"one"}, alias="champion")
    second, second_run = mlflow_server.register("sentiment-b", {"weights.bin": b"two"})
    assert ModelRegistry(mlflow_server.url).resolve("models:/sentiment-b@champion").version == first
    mlflow_server.client().set_registered_model_alias("sentiment-b", "champion", second)
    moved = ModelRegistry(mlflow_server.url).resolve("models:/sentiment-b@champion")
    assert (moved.version, moved.run_id) == (second, second_run)
    # and a pinned version does not move with the alias
    assert ModelRegistry(mlflow_server.url).resolve(f"models:/sentiment-b/{first}").version == first


def test_a_missing_alias_or_version_names_the_uri(mlflow_server):
    mlflow_server.register("sentiment-c", {"weights.bin": b"one"})
    registry = ModelRegistry(mlflow_server.url)
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
        ModelRegistry(mlflow_server.url).resolve("models:/proxied/1")


def test_an_unreachable_registry_fails_within_bounds_and_plainly():
    started = time.monotonic()
    with pytest.raises(
        RegistryError, match=r"^models:/chat@champion: the registry at http://127.0.0.1:\d+ could not be read"
    ):
        ModelRegistry(f"http://127.0.0.1:{free_port()}", token="s3cr3t-token").resolve("models:/chat@champion")
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
            ModelRegistry(registry_url, token="s3cr3t-token").resolve("models:/chat@champion")
        assert "s3cr3t-token" not in str(caught.value)
        assert registry_handler.seen and registry_handler.seen[0][1] == "Bearer s3cr3t-token"
        assert other.seen, "the redirect was followed"
        assert all(auth is None for _, auth in other.seen), other.seen
    finally:
        other_server.shutdown()
        registry_server.shutdown()
