"""`modelops smoke` against a moto server: deployed fallbacks answer, missing ones are reported."""

from __future__ import annotations

import json

import boto3
import pytest

from components.config import parse_stack_config
from modelops_cli.cli import main
from modelops_cli.smoke import smoke
from tests.aws_fakes import aws_env
from tests.conftest import stack_raw

pytestmark = pytest.mark.slow  # starts servers or plans several stacks


@pytest.fixture
def moto_lambda(moto_server, monkeypatch):
    moto_server.reset()
    # Without Docker, moto's Lambda echoes the payload instead of running the image.
    moto_server.post("/moto-api/config", {"lambda": {"use_docker": False}})
    aws_env(monkeypatch, moto_server.url)
    return boto3.client("lambda", region_name="us-east-1")


def deploy(client, name: str, version: str, alias: str = "live") -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(
        RoleName=f"{name}-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    client.create_function(
        FunctionName=name,
        Role=role,
        PackageType="Image",
        Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/m/s@sha256:" + "d" * 64},
        Publish=True,
    )
    client.create_alias(FunctionName=name, Name=alias, FunctionVersion="1", Description=f"model version {version}")


def test_a_deployed_fallback_answers(moto_lambda, capsys):
    deploy(moto_lambda, "modelops-dev-sentiment", "1.2.0")
    results = smoke(parse_stack_config(stack_raw("dev")), "dev")
    assert [(r.model, r.outcome, r.status) for r in results] == [("sentiment", "ok", 200)]
    assert results[0].latency_ms is not None and results[0].latency_ms > 0
    assert main(["smoke", "--stack", "dev"]) == 0
    assert "modelops-dev-sentiment:live" in capsys.readouterr().out


def test_a_fallback_still_serving_the_previous_version_fails(moto_lambda, capsys):
    deploy(moto_lambda, "modelops-dev-sentiment", "1.1.0")
    results = smoke(parse_stack_config(stack_raw("dev")), "dev")
    assert [(r.model, r.outcome) for r in results] == [("sentiment", "fail")]
    assert "serves model version 1.1.0, not model version 1.2.0" in results[0].detail


def test_a_registered_models_fallback_serves_a_registered_version_of_its_version(moto_lambda):
    """A model whose weights come from a registry is deployed as `<version>-r<registered>-<hash>` (resolved when
    `up` ran); smoke reads the stack file, not the registry: any registered version of that version passes, a
    plain or another version fails."""
    raw = stack_raw("dev")
    raw["mlflow"] = {"trackingUri": "https://mlflow.example.com", "artifactBuckets": ["acme-models-dev"]}
    raw["models"]["sentiment"]["artifactUri"] = "models:/sentiment@champion"
    deploy(moto_lambda, "modelops-dev-sentiment", "1.2.0-r7-0a1b2c")
    assert [r.outcome for r in smoke(parse_stack_config(raw), "dev")] == ["ok"]
    moto_lambda.update_alias(
        FunctionName="modelops-dev-sentiment", Name="live", Description="model version 1.1.0-r7-0a1b2c"
    )
    [result] = smoke(parse_stack_config(raw), "dev")
    assert result.outcome == "fail" and "serves model version 1.1.0-r7-0a1b2c, not model version 1.2.0" in result.detail
    # a model with an S3 prefix is held to its exact version
    moto_lambda.update_alias(
        FunctionName="modelops-dev-sentiment", Name="live", Description="model version 1.2.0-r7-0a1b2c"
    )
    assert [r.outcome for r in smoke(parse_stack_config(stack_raw("dev")), "dev")] == ["fail"]


def test_a_missing_fallback_fails_the_smoke_check(moto_lambda, capsys):
    assert main(["smoke", "--stack", "dev"]) == 1
    out = capsys.readouterr().out
    assert "sentiment      fail" in out and "ResourceNotFoundException" in out


def test_auto_models_without_a_function_are_skipped_not_failed(moto_lambda):
    deploy(moto_lambda, "modelops-prod-sentiment", "1.3.0")
    results = {r.model: r for r in smoke(parse_stack_config(stack_raw("prod")), "prod")}
    assert results["sentiment"].outcome == "ok"
    assert results["summarizer"].outcome == "skipped"
    assert "chat" not in results  # fallback none: nothing to smoke


def test_endpoints_get_their_runtimes_sample_request_through_the_gateway(capsys):
    """`smoke --endpoints`: vLLM gets a one-token completion, Triton is asked whether the model is ready, a custom
    server its samplePayload; each through the gateway's route (`/<model>` prefix), 5xx retried, 4xx not."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Gateway(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            seen.append((self.command, self.path, body))
            status = 503 if self.path.startswith("/vision/") else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        do_GET = do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code = main(["smoke", "--stack", "prod", "--endpoints", "--base-url", f"http://127.0.0.1:{server.server_port}"])
    finally:
        server.shutdown()
    out = capsys.readouterr().out
    assert ("POST", "/chat/v1/completions", {"model": "chat", "prompt": "ping", "max_tokens": 1}) in seen
    assert ("GET", "/summarizer/v2/models/summarizer/ready", None) in seen
    assert ("POST", "/sentiment/", {"inputs": "ping"}) in seen
    assert sum(1 for _, path, _ in seen if path.startswith("/vision/")) == 3  # a 503, retried, still failing
    assert code == 1 and "vision" in out and "fail" in out


# ---- hostile gateways and arguments (issue #26, class 10) ----


class _Hostile:
    """A gateway on 127.0.0.1 that answers every request with what `behaviour(handler)` writes."""

    def __init__(self, behaviour):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                behaviour(self)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _dev_endpoints_config():
    """The dev stack with its model served on Kubernetes too (standby), so --endpoints has one to try."""
    raw = stack_raw("dev")
    raw["models"]["sentiment"]["fallback"] = "standby"
    return parse_stack_config(raw)


def _answer(status, body=b"", headers=()):
    def behaviour(handler):
        handler.send_response(status)
        for key, value in headers:
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return behaviour


@pytest.mark.parametrize(
    "behaviour, expected",
    [
        (_answer(302, headers=[("Location", "https://sso.example.com/login")]), "redirected (302) to https://sso"),
        (_answer(307, headers=[("Location", "https://u:hunter2@evil.example/x")]), "redirected (307)"),
        (_answer(200, b"<html>Sign in</html>", [("Content-Type", "text/html; charset=utf-8")]), "HTML page"),
        (_answer(401, b"\x1b[2J\x1b]0;pwned\x07denied"), "\\x1b[2J"),
    ],
    ids=["redirect-to-login", "redirect-with-credentials", "html-login-page", "escape-sequences-in-body"],
)
def test_a_gateway_that_redirects_or_answers_a_page_fails_and_prints_nothing_raw(behaviour, expected):
    from modelops_cli.smoke import format_results, passed, smoke_endpoints

    with _Hostile(behaviour) as gateway:
        results = smoke_endpoints(_dev_endpoints_config(), gateway.url, attempts=1)
    assert [r.outcome for r in results] == ["fail"] and not passed(results)
    shown = format_results(results)
    assert expected in shown
    assert "\x1b" not in shown and "\x07" not in shown and "hunter2" not in shown


def test_a_trickling_answer_is_cut_at_the_stated_timeout(monkeypatch):
    """One byte every 0.2 s keeps each socket read under any per-read timeout; the request's own deadline cuts it."""
    import time as clock

    from modelops_cli import smoke as smoke_module

    monkeypatch.setattr(smoke_module, "REQUEST_SECONDS", 1.0)

    def trickle(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(100):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            clock.sleep(0.2)

    with _Hostile(trickle) as gateway:
        started = clock.monotonic()
        results = smoke_module.smoke_endpoints(_dev_endpoints_config(), gateway.url, attempts=1)
        elapsed = clock.monotonic() - started
    assert elapsed < 3, elapsed
    assert results[0].outcome == "fail" and "within 1 s" in results[0].detail


@pytest.mark.parametrize(
    "url", ["https://admin:s3cr3t-pass@gw.example.com", "http://token@127.0.0.1:1", "ftp://gw.example.com", "gw"]
)
def test_a_base_url_with_credentials_or_no_http_is_refused_without_echoing_them(url, capsys):
    code = main(["smoke", "--stack", "prod", "--endpoints", "--base-url", url])
    err = capsys.readouterr().err
    assert code == 2 and "--base-url" in err
    assert "s3cr3t-pass" not in err and "token@" not in err


def test_nothing_tested_is_not_a_pass(capsys):
    """Every model skipped (no gateway hostname, no --base-url) reported "ok" with exit 0 before."""
    from modelops_cli.smoke import format_results, passed, smoke_endpoints

    raw = stack_raw("staging")
    raw["cluster"].pop("gateway", None)
    for model in raw["models"].values():
        model.pop("canary", None)
    results = smoke_endpoints(parse_stack_config(raw))
    assert results and {r.outcome for r in results} == {"skipped"}
    assert not passed(results) and "FAIL (nothing was tested)" in format_results(results)
    assert not passed([]) and "FAIL (nothing was tested)" in format_results([])


def test_a_function_answering_an_http_error_is_not_ok():
    from modelops_cli.smoke import _lambda_answer_problem

    assert _lambda_answer_problem(None, 200, b'{"statusCode": 502, "body": "bad gateway"}') == (
        "the function answered statusCode 502"
    )
    assert _lambda_answer_problem(None, 200, b'{"label": "positive"}') is None
    assert "\x1b" not in (_lambda_answer_problem("Unhandled", 200, b"\x1b]8;;http://evil\x07boom") or "")


def test_an_invoke_is_never_retried_and_waits_at_most_the_function_timeout():
    """botocore's standard mode would run the model up to 3 times and wait 3 x (timeout + 5) s."""
    from modelops_cli.smoke import _lambda_clients

    lookup, invoke = _lambda_clients(boto3.session.Session(region_name="us-east-1"), "us-east-1", 60)
    assert invoke.meta.config.retries["total_max_attempts"] == 1
    assert invoke.meta.config.read_timeout == 65 and invoke.meta.config.connect_timeout == 5
    assert lookup.meta.config.read_timeout == 10


def test_an_unreachable_lambda_endpoint_with_credentials_in_its_url_never_prints_them(monkeypatch):
    """botocore's EndpointConnectionError quotes the endpoint URL, `user:password@` and all."""
    from modelops_cli.smoke import format_results

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://admin:s3cr3t-pass@127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    results = smoke(parse_stack_config(stack_raw("dev")), "dev", boto3.session.Session(region_name="us-east-1"))
    shown = format_results(results)
    assert results[0].outcome == "fail" and "s3cr3t-pass" not in shown and "admin" not in shown


def test_a_secret_sample_payload_is_never_sent_as_its_placeholder():
    """A `secure:` samplePayload is read offline without the stack's key (a placeholder stands for it): sending the
    placeholder would test nothing and report a pass (an independent review found it sent). The model fails with
    the reason, and nothing is sent."""
    from modelops_cli.smoke import SECRET_PAYLOAD, _smoke_function, smoke_endpoints
    from modelops_cli.stackfile import SECRET_PLACEHOLDER

    raw = stack_raw("dev")
    raw["models"]["sentiment"]["fallback"] = "standby"
    raw["models"]["sentiment"]["serverless"]["samplePayload"] = {"inputs": SECRET_PLACEHOLDER}
    cfg = parse_stack_config(raw)
    model = cfg.models["sentiment"]

    class NeverCalled:
        def __getattr__(self, name):
            raise AssertionError(f"{name} called: the placeholder would have been sent")

    result = _smoke_function("sentiment", "modelops-dev-sentiment", "standby", model, (NeverCalled(), NeverCalled()))
    assert (result.outcome, result.detail) == ("fail", SECRET_PAYLOAD)
    [endpoint] = smoke_endpoints(cfg, base_url="http://127.0.0.1:9")
    assert (endpoint.outcome, endpoint.detail) == ("fail", SECRET_PAYLOAD)
