"""`modelops smoke`: invoke each deployed serverless fallback with its model's sample payload, or (`--endpoints`)
send each model on Kubernetes its runtime's sample request through the gateway.

Reports, per model, the HTTP status, any function error and the latency; exit 1 when one fails or when nothing
at all was tested (every model skipped is not a passing smoke test). Bounded (issue #26, class 10):

- a Lambda invoke waits at most the function's timeout + 5 s (5 s to connect) and is never retried (an invoke
  runs the model again; botocore's standard retries would triple the wait); the alias lookup is retried;
- an endpoint request has 30 s in all, answer and body (a watchdog closes a connection that trickles), reads
  at most 1 MiB, and never follows a redirect: a gateway that redirects to a login page, or answers with an
  HTML page, fails instead of passing;
- a `--base-url` with credentials (`user:pass@host`) is refused, never echoed; every value shown (targets,
  bodies, error messages) goes through `inert.terminal`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
from botocore.exceptions import BotoCoreError, ClientError

from components.config import StackConfig, lambda_function_name
from components.config.mlflow import REGISTERED_SUFFIX, is_registry_uri
from components.serverless_fallback import LIVE_ALIAS, alias_description

from .common import UsageError
from .inert import terminal, without_credentials
from .stackfile import SECRET_PLACEHOLDER

REQUEST_SECONDS = 30.0
"""An endpoint request's whole budget: connect, answer and body."""
MAX_ANSWER_BYTES = 1 << 20
LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024 + 1
"""Lambda's synchronous response payload limit (6 MB): more is not a Lambda answer."""


@dataclass(frozen=True)
class SmokeResult:
    model: str
    target: str
    outcome: str
    """`ok`, `fail` or `skipped`."""
    status: int | None
    latency_ms: float | None
    detail: str


def _lambda_clients(session: boto3.session.Session, region: str, timeout_seconds: int):
    """One client to look the alias up (retried, short timeouts), one to invoke (once, within the function's
    own timeout + 5 s)."""
    lookup = session.client(
        "lambda",
        region_name=region,
        config=botocore.config.Config(
            retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=5, read_timeout=10
        ),
    )
    invoke = session.client(
        "lambda",
        region_name=region,
        config=botocore.config.Config(
            retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=timeout_seconds + 5
        ),
    )
    return lookup, invoke


def smoke(cfg: StackConfig, stack: str, session: boto3.session.Session | None = None) -> list[SmokeResult]:
    session = session or boto3.session.Session()
    results = []
    for name, model in cfg.models.items():
        mode = cfg.fallback(model)
        if mode == "none":
            continue
        function = lambda_function_name(stack, name)
        lookup, invoker = _lambda_clients(session, cfg.cluster.region, model.serverless.timeout_seconds)
        results.append(_smoke_function(name, function, mode, model, (lookup, invoker)))
    return results


def holds_an_undecrypted_secret(value: Any) -> bool:
    """Whether a value read from the stack file holds a `secure:` value, which modelops reads without the stack's
    passphrase or key (modelops_cli/stackfile.py gives such values a placeholder): sending it would test nothing."""
    if isinstance(value, dict):
        return any(holds_an_undecrypted_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(holds_an_undecrypted_secret(v) for v in value)
    return value == SECRET_PLACEHOLDER


SECRET_PAYLOAD = (
    "serverless.samplePayload holds a secure: value, which modelops cannot decrypt: it would send a placeholder, "
    "which tests nothing; smoke this model with a payload that is not secret"
)


def _serves_the_version(description: object, model) -> bool:
    """Whether the alias's description names the model's version. A model whose weights come from a registry
    (`models:/…`) is deployed as `<version>-r<registered version>-<hash>`, resolved when `up` ran: any registered
    version of this version is the one deployed (smoke reads the stack file, not the registry)."""
    if description == alias_description(model.version):
        return True
    registered = re.escape(alias_description(model.version)) + REGISTERED_SUFFIX
    return (
        is_registry_uri(model.artifact_uri)
        and isinstance(description, str)
        and re.fullmatch(registered, description) is not None
    )


def _smoke_function(name: str, function: str, mode: str, model, clients: tuple[Any, Any]) -> SmokeResult:
    """`clients`: Lambda clients to look the alias up with (retried) and to invoke it with (never retried)."""
    lookup, invoker = clients
    target = f"{function}:{LIVE_ALIAS}"
    if holds_an_undecrypted_secret(model.serverless.sample_payload):
        return SmokeResult(name, target, "fail", None, None, SECRET_PAYLOAD)
    try:
        # The alias first: its description says which model version it serves, and it names the
        # function version that serves it.
        described = lookup.get_alias(FunctionName=function, Name=LIVE_ALIAS)
        version = described["FunctionVersion"]
        if not _serves_the_version(described.get("Description"), model):
            serves = terminal(described.get("Description") or "an unknown version", 200)
            detail = (
                f"the {LIVE_ALIAS} alias serves {serves}, not model version {model.version}: deploy this version first"
            )
            return SmokeResult(name, target, "fail", None, None, detail)
        started = time.perf_counter()
        payload = json.dumps(model.serverless.sample_payload).encode()
        answer = invoker.invoke(FunctionName=function, Qualifier=LIVE_ALIAS, Payload=payload)
        body = answer["Payload"].read(LAMBDA_PAYLOAD_BYTES)
    except ClientError as exc:
        return _client_error(name, target, exc, mode, function)
    except BotoCoreError as exc:  # quotes the endpoint URL, credentials and all
        return SmokeResult(name, target, "fail", None, None, terminal(without_credentials(exc), 300))
    latency = (time.perf_counter() - started) * 1000
    status = answer.get("StatusCode")
    problem = _lambda_answer_problem(answer.get("FunctionError"), status, body)
    if problem:
        return SmokeResult(name, target, "fail", status, latency, problem)
    return SmokeResult(name, target, "ok", status, latency, f"version {terminal(version)} answered {len(body)} bytes")


def _client_error(name: str, target: str, exc: ClientError, mode: str, function: str) -> SmokeResult:
    """What Lambda's refusal means: a function `auto` placed on its GPU pool is not deployed, else a failure."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if code == "ResourceNotFoundException" and mode == "auto":
        return SmokeResult(name, target, "skipped", None, None, "not deployed: auto placed the model on its GPU pool")
    if code in ("AccessDeniedException", "AccessDenied"):
        detail = f"{code}: the credentials lack lambda:GetAlias or lambda:InvokeFunction on {function}"
    else:
        detail = f"{code}: {exc.response.get('Error', {}).get('Message', '')}".strip()
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return SmokeResult(name, target, "fail", status, None, terminal(detail, 300))


def _lambda_answer_problem(function_error: str | None, status: int | None, body: bytes) -> str | None:
    """Why an invoke's answer is not a success, or None. A handler that answers an HTTP-style error
    (`{"statusCode": 500}`) failed as surely as one that raised."""
    if function_error:
        shown = terminal(without_credentials(body[:200].decode(errors="replace")))
        return f"function error {terminal(function_error, 60)}: {shown}"
    if not status or not 200 <= status < 300:
        return f"unexpected status {status}"
    if len(body) >= LAMBDA_PAYLOAD_BYTES:
        return "an answer larger than Lambda's 6 MB payload limit: not a Lambda answer"
    try:
        answer = json.loads(body) if body else None
    except (ValueError, RecursionError):
        return None
    code = answer.get("statusCode") if isinstance(answer, dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and code >= 400:
        return f"the function answered statusCode {code}"
    return None


def format_results(results: list[SmokeResult]) -> str:
    """A table, then the verdict: FAIL when one failed or when nothing was tested at all."""
    lines = [f"{'model':14} {'outcome':8} {'status':6} {'latency':>9}  target / detail"]
    for r in results:
        latency = f"{r.latency_ms:.0f} ms" if r.latency_ms is not None else "-"
        lines.append(
            f"{terminal(r.model):14} {r.outcome:8} {r.status or '-'!s:6} {latency:>9}  "
            f"{terminal(r.target)}  {terminal(r.detail)}"
        )
    ok, failed = sum(r.outcome == "ok" for r in results), sum(r.outcome == "fail" for r in results)
    skipped = len(results) - ok - failed
    verdict = "PASS" if ok and not failed else "FAIL"
    why = " (nothing was tested)" if not ok and not failed else ""
    lines.append(f"smoke: {verdict}{why}: {ok} ok, {failed} failed, {skipped} skipped")
    return "\n".join(lines if results else lines[-1:])


def passed(results: list[SmokeResult]) -> bool:
    """At least one model answered and none failed: a smoke run that tested nothing does not pass."""
    return any(r.outcome == "ok" for r in results) and not any(r.outcome == "fail" for r in results)


def checked_base_url(base_url: str) -> str:
    """`--base-url` as an http(s) root without credentials. Credentials in a URL would be printed with every
    target and sent in clear over http: refused, and the message shows the URL without them."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--base-url {terminal(_without_userinfo(parts), 200)!r}: not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            f"--base-url {terminal(_without_userinfo(parts), 200)!r}: carries credentials (user:password@); "
            "refused, and not shown"
        )
    if parts.query or parts.fragment:
        raise UsageError(
            f"--base-url {terminal(_without_userinfo(parts), 200)!r}: a query or fragment has no place in a root"
        )
    return base_url.rstrip("/")


def _without_userinfo(parts: urllib.parse.SplitResult) -> str:
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def smoke_endpoints(cfg: StackConfig, base_url: str | None = None, attempts: int = 3) -> list[SmokeResult]:
    """Send each model served on Kubernetes its runtime's sample request through the gateway
    (`https://<gateway hostname>/<model>`, or `base_url/<model>`, e.g. a port-forward to the gateway)."""
    root = checked_base_url(base_url) if base_url else None
    gateway = cfg.cluster.gateway
    if root is None and gateway and gateway.hostname:
        root = f"https://{gateway.hostname}"
    results = []
    for name, model in cfg.models.items():
        if cfg.fallback(model) == "only":
            continue
        if root is None:
            detail = "no gateway hostname: the model is reachable in the cluster only; give --base-url"
            results.append(SmokeResult(name, "-", "skipped", None, None, detail))
            continue
        method, path, body = (
            model.preset.sample(name) if model.preset.sample else ("POST", "/", model.serverless.sample_payload)
        )
        if holds_an_undecrypted_secret(body):
            results.append(SmokeResult(name, f"{root}/{name}{path}", "fail", None, None, SECRET_PAYLOAD))
            continue
        results.append(_smoke_endpoint(name, model.runtime, (method, f"{root}/{name}{path}", body), attempts))
    return results


def _smoke_endpoint(name: str, runtime: str, request: tuple[str, str, Any], attempts: int) -> SmokeResult:
    """`request`: the method, URL and body to send (retried on a server error or no answer)."""
    method, url, body = request
    target = f"{method} {url}"
    data = json.dumps(body).encode() if body is not None else None
    outcome: SmokeResult | None = None
    for attempt in range(attempts):
        started = time.perf_counter()
        try:
            status, headers, answer = _request(method, url, data)
        except (OSError, http.client.HTTPException) as exc:
            detail = f"unreachable: {terminal(without_credentials(exc), 300)}"
            outcome = SmokeResult(name, target, "fail", None, None, detail)
        else:
            latency = (time.perf_counter() - started) * 1000
            problem = _endpoint_answer_problem(status, headers, answer)
            detail = problem or f"{runtime} answered {len(answer)} bytes"
            outcome = SmokeResult(name, target, "fail" if problem else "ok", status, latency, detail)
            if not problem or status < 500:
                break  # a success, or the request itself is wrong: retrying will not help
        if attempt + 1 < attempts:
            time.sleep(min(2**attempt, 5))
    assert outcome is not None
    return outcome


def _endpoint_answer_problem(status: int, headers: http.client.HTTPMessage, answer: bytes) -> str | None:
    if 300 <= status < 400:
        location = terminal(_strip_credentials(headers.get("Location") or "nowhere"), 200)
        return f"redirected ({status}) to {location}: a redirect (a login page?) is not the model; not followed"
    if not 200 <= status < 300:
        return terminal(without_credentials(answer[:200].decode(errors="replace"))) or f"status {status}"
    if "html" in (headers.get("Content-Type") or "").lower():
        return "answered an HTML page (a login or error page?), not the model's runtime"
    if len(answer) > MAX_ANSWER_BYTES:
        return f"an answer larger than {MAX_ANSWER_BYTES} bytes; not read"
    return None


def _strip_credentials(url: str) -> str:
    try:
        return _without_userinfo(urllib.parse.urlsplit(url))
    except ValueError:
        return "(not a URL)"


def _request(method: str, url: str, data: bytes | None) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request with one deadline for all of it. http.client never follows redirects; a watchdog shuts the
    socket at the deadline, so an answer that trickles in (a byte every few seconds) cannot hold it open."""
    parts = urllib.parse.urlsplit(url)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=REQUEST_SECONDS, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=REQUEST_SECONDS)
    expired = threading.Event()
    # the connected socket, kept here: http.client drops `connection.sock` once it has a `Connection: close`
    # answer's headers, while the body is still read from that socket
    sockets: list[socket.socket] = []
    watchdog = threading.Timer(REQUEST_SECONDS, _cut, (sockets, expired))
    watchdog.daemon = True
    watchdog.start()
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.connect()
        if connection.sock is not None:
            sockets.append(connection.sock)
        if expired.is_set():
            raise TimeoutError(f"no complete answer within {REQUEST_SECONDS:.0f} s")
        connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        chunks, size = [], 0
        while size <= MAX_ANSWER_BYTES and (chunk := answer.read1(65536)):
            chunks.append(chunk)
            size += len(chunk)
        if expired.is_set():  # the watchdog's shutdown reads as the end of the body: not a whole answer
            raise TimeoutError(f"no complete answer within {REQUEST_SECONDS:.0f} s")
        return answer.status, answer.headers, b"".join(chunks)
    except (OSError, http.client.HTTPException):
        if expired.is_set():
            raise TimeoutError(f"no complete answer within {REQUEST_SECONDS:.0f} s") from None
        raise
    finally:
        watchdog.cancel()
        connection.close()


def _cut(sockets: list[socket.socket], expired: threading.Event) -> None:
    expired.set()
    for sock in sockets:
        with contextlib.suppress(OSError):  # already closed: nothing left to cut
            sock.shutdown(socket.SHUT_RDWR)
