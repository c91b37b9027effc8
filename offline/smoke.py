"""`modelops smoke`: invoke each deployed serverless fallback with its model's sample payload.

Reports, per model, the HTTP status, any function error and the latency. Uses the AWS credentials of
the environment (AWS_ENDPOINT_URL for a local endpoint), with bounded retries and timeouts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import boto3
import botocore.config
from botocore.exceptions import BotoCoreError, ClientError

from components.config import StackConfig
from components.serverless_fallback import LIVE_ALIAS, alias_description, function_name_for


@dataclass(frozen=True)
class SmokeResult:
    model: str
    target: str
    outcome: str
    """`ok`, `fail` or `skipped`."""
    status: int | None
    latency_ms: float | None
    detail: str


def smoke(cfg: StackConfig, stack: str, session: boto3.session.Session | None = None) -> list[SmokeResult]:
    session = session or boto3.session.Session()
    results = []
    for name, model in cfg.models.items():
        mode = cfg.fallback(model)
        if mode == "none":
            continue
        function, alias = function_name_for(stack, name), LIVE_ALIAS
        target = f"{function}:{alias}"
        client = session.client(
            "lambda",
            region_name=cfg.cluster.region,
            config=botocore.config.Config(
                retries={"mode": "standard", "total_max_attempts": 3},
                connect_timeout=5,
                read_timeout=model.serverless.timeout_seconds + 5,
            ),
        )
        payload = json.dumps(model.serverless.sample_payload).encode()
        try:
            # The alias first: its description says which model version it serves, and it names the
            # function version that serves it.
            described = client.get_alias(FunctionName=function, Name=alias)
            version = described["FunctionVersion"]
            if described.get("Description") != alias_description(model.version):
                results.append(
                    SmokeResult(
                        name,
                        target,
                        "fail",
                        None,
                        None,
                        f"the {alias} alias serves {described.get('Description') or 'an unknown version'}, "
                        f"not model version {model.version}: deploy this version first",
                    )
                )
                continue
            started = time.perf_counter()
            answer = client.invoke(FunctionName=function, Qualifier=alias, Payload=payload)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException" and mode == "auto":
                results.append(
                    SmokeResult(
                        name, target, "skipped", None, None, "not deployed: auto placed the model on its GPU pool"
                    )
                )
                continue
            if code in ("AccessDeniedException", "AccessDenied"):
                detail = f"{code}: the credentials lack lambda:GetAlias or lambda:InvokeFunction " f"on {function}"
            else:
                detail = f"{code}: {exc.response.get('Error', {}).get('Message', '')}".strip()
            results.append(
                SmokeResult(
                    name, target, "fail", exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"), None, detail
                )
            )
            continue
        except BotoCoreError as exc:
            results.append(SmokeResult(name, target, "fail", None, None, str(exc)))
            continue
        latency = (time.perf_counter() - started) * 1000
        body = answer["Payload"].read()
        status = answer.get("StatusCode")
        if answer.get("FunctionError"):
            results.append(
                SmokeResult(
                    name,
                    target,
                    "fail",
                    status,
                    latency,
                    f"function error {answer['FunctionError']}: {body[:200].decode(errors='replace')}",
                )
            )
        elif status and 200 <= status < 300:
            results.append(
                SmokeResult(name, target, "ok", status, latency, f"version {version} answered {len(body)} bytes")
            )
        else:
            results.append(SmokeResult(name, target, "fail", status, latency, "unexpected status"))
    return results


def format_results(results: list[SmokeResult]) -> str:
    if not results:
        return "nothing to smoke-test in this stack"
    lines = [f"{'model':14} {'outcome':8} {'status':6} {'latency':>9}  target / detail"]
    for r in results:
        latency = f"{r.latency_ms:.0f} ms" if r.latency_ms is not None else "-"
        lines.append(f"{r.model:14} {r.outcome:8} {r.status or '-'!s:6} {latency:>9}  {r.target}  {r.detail}")
    return "\n".join(lines)


def smoke_endpoints(cfg: StackConfig, base_url: str | None = None, attempts: int = 3) -> list[SmokeResult]:
    """Send each model served on Kubernetes its runtime's sample request through the gateway
    (`https://<gateway hostname>/<model>`, or `base_url/<model>`, e.g. a port-forward to the gateway)."""
    import urllib.error
    import urllib.request

    results = []
    gateway = cfg.cluster.gateway
    for name, model in cfg.models.items():
        if cfg.fallback(model) == "only":
            continue
        root = (
            base_url.rstrip("/")
            if base_url
            else (f"https://{gateway.hostname}" if gateway and gateway.hostname else None)
        )
        if root is None:
            results.append(
                SmokeResult(
                    name,
                    "-",
                    "skipped",
                    None,
                    None,
                    "no gateway hostname: the model is reachable in the cluster only; give --base-url",
                )
            )
            continue
        method, path, body = (
            model.preset.sample(name) if model.preset.sample else ("POST", "/", model.serverless.sample_payload)
        )
        target = f"{method} {root}/{name}{path}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{root}/{name}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        outcome: SmokeResult | None = None
        for attempt in range(attempts):
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    size = len(answer.read())
                    outcome = SmokeResult(
                        name,
                        target,
                        "ok",
                        answer.status,
                        (time.perf_counter() - started) * 1000,
                        f"{model.runtime} answered {size} bytes",
                    )
                break
            except urllib.error.HTTPError as exc:
                outcome = SmokeResult(
                    name,
                    target,
                    "fail",
                    exc.code,
                    (time.perf_counter() - started) * 1000,
                    exc.read()[:200].decode(errors="replace"),
                )
                if exc.code < 500:
                    break  # the request itself is wrong: retrying will not help
            except (urllib.error.URLError, OSError) as exc:
                outcome = SmokeResult(name, target, "fail", None, None, f"unreachable: {exc}")
            time.sleep(min(2**attempt, 5) if attempt + 1 < attempts else 0)
        assert outcome is not None
        results.append(outcome)
    return results
