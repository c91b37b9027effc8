"""Pre-flight of the serverless fallbacks' reserved concurrency against Lambda's account settings.

Lambda keeps at least 100 concurrent executions unreserved: "You can reserve up to the Unreserved account
concurrency value minus 100 for functions that don't have reserved concurrency"
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html); PutFunctionConcurrency refuses more
("decreases account's UnreservedConcurrentExecution below its minimum value of [100]"), in the middle of `up`.
moto serves neither GetAccountSettings nor that minimum by default, so a small local endpoint answers
GetAccountSettings and GetFunctionConcurrency as the Lambda API does (REST: GET /2016-08-19/account-settings/,
GET /2019-09-30/functions/{name}/concurrency), with throttling on request."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from components.config import parse_stack_config
from composition import lambda_preflight as preflight
from composition import preflight as capacity_preflight
from modelops_cli.cli import main
from tests.aws_fakes import aws_env
from tests.conftest import stack_raw


class FakeLambda:
    def __init__(self):
        self.unreserved = 1000
        self.total = 1000
        self.reserved: dict[str, int] = {}
        self.throttles = 0
        self.calls: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.calls.append(self.path)
                if owner.throttles:
                    owner.throttles -= 1
                    return self.send(429, {"Type": "User", "message": "Rate exceeded"}, "TooManyRequestsException")
                if self.path.startswith("/2016-08-19/account-settings"):
                    limit = {"ConcurrentExecutions": owner.total, "UnreservedConcurrentExecutions": owner.unreserved}
                    return self.send(200, {"AccountLimit": limit, "AccountUsage": {"FunctionCount": 0}})
                name = self.path.split("/functions/", 1)[-1].split("/", 1)[0]
                if name not in owner.reserved:
                    return self.send(
                        404, {"Type": "User", "message": "Function not found"}, "ResourceNotFoundException"
                    )
                return self.send(200, {"ReservedConcurrentExecutions": owner.reserved[name]})

            def send(self, status: int, body: dict, error: str | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def fake_lambda(monkeypatch):
    fake = FakeLambda()
    aws_env(monkeypatch, fake.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", fake.url)
    yield fake
    fake.server.shutdown()


def test_prod_reserves_its_fallbacks_concurrency_when_the_account_has_room(fake_lambda):
    """prod: summarizer (auto, placed on the GPU pool: no function) and sentiment (standby, 5 reserved)."""
    check = preflight.check_lambda_concurrency(parse_stack_config(stack_raw("prod")), "prod")
    assert check is not None and check.status == "pass", check
    assert check.notes == ("Lambda: reserving modelops-prod-sentiment 5 leaves 995 of 1000 unreserved (at least 100)",)


def test_a_reservation_below_the_unreserved_minimum_fails(fake_lambda):
    fake_lambda.unreserved = 104
    check = preflight.check_lambda_concurrency(parse_stack_config(stack_raw("prod")), "prod")
    assert check is not None and check.status == "fail"
    assert check.problems == (
        "Lambda: the stack reserves 5 concurrent executions (modelops-prod-sentiment 5); the account (limit 1000, 104 "
        "unreserved now) would keep 99 unreserved, below the 100 Lambda requires: lower "
        "serverless.reservedConcurrency or ask for a higher Lambda concurrency quota (Service Quotas L-B99A9384)",
    )


def test_what_the_stacks_functions_already_reserve_counts_as_theirs(fake_lambda):
    """An update gives back the function's current reservation before taking the new one."""
    fake_lambda.unreserved = 104
    fake_lambda.reserved["modelops-prod-sentiment"] = 5
    check = preflight.check_lambda_concurrency(parse_stack_config(stack_raw("prod")), "prod")
    assert check is not None and check.status == "pass", check


def test_a_new_account_with_ten_concurrent_executions_cannot_reserve_any(fake_lambda):
    fake_lambda.unreserved = fake_lambda.total = 10
    check = preflight.check_lambda_concurrency(parse_stack_config(stack_raw("dev")), "dev")
    assert check is not None and check.status == "fail" and "would keep 8 unreserved" in check.problems[0], check


def test_throttling_is_retried_within_bounds(fake_lambda):
    fake_lambda.throttles = 2
    check = preflight.check_lambda_concurrency(parse_stack_config(stack_raw("prod")), "prod")
    assert check is not None and check.status == "pass"
    fake_lambda.throttles = 50
    fake_lambda.calls.clear()
    check = preflight.check_lambda_concurrency(parse_stack_config(stack_raw("prod")), "prod")
    assert check is not None and check.status == "unknown"
    assert len(fake_lambda.calls) == capacity_preflight.MAX_ATTEMPTS
    assert (
        f"GetAccountSettings failed after {capacity_preflight.MAX_ATTEMPTS} attempt(s): TooManyRequestsException"
        in check.problems[0]
    )


def test_a_stack_without_functions_asks_nothing(fake_lambda):
    raw = stack_raw("prod")
    for model in raw["models"].values():
        model["fallback"] = "none"
    assert preflight.check_lambda_concurrency(parse_stack_config(raw), "prod") is None
    assert fake_lambda.calls == []


def test_the_cli_fails_on_the_lambda_check(fake_lambda, capsys):
    fake_lambda.unreserved = 100
    assert main(["preflight", "--stack", "dev"]) == 1
    out = capsys.readouterr().out
    assert "FAIL    lambda concurrency" in out and "modelops-dev-sentiment" in out, out
