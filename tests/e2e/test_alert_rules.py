"""Every PrometheusRule the program emits, evaluated by Prometheus's own `promtool` on series as the servers
and kube-state-metrics export them.

The rules come from the offline plans of the three stacks (and of prod with its LLM served by TGI instead
of vLLM, so both LLM runtimes are judged). `promtool check rules` parses them as Prometheus would load them;
`promtool test rules` (prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/) evaluates them
on input series, and each scenario states which alerts fire, with their labels and annotations.

What the series are, and where their names come from:
- kube-state-metrics (github.com/kubernetes/kube-state-metrics docs/metrics/workload/deployment-metrics.md):
  `kube_deployment_spec_replicas` (desired: what the HPA or KEDA set) and
  `kube_deployment_status_replicas_available`, labels namespace and deployment; kube-prometheus-stack scrapes
  it with honorLabels, so `namespace` is the Deployment's.
- the model's pods, scraped through its ServiceMonitor: the Prometheus Operator adds namespace, service, job
  (the Service's name), pod, container, endpoint, instance, and `modelops_track` from the pods' `modelops/track`
  label (`podTargetLabels`, the label name sanitized).
- prometheus-fastapi-instrumentator (the custom servers, vLLM's OpenAI server): `http_requests_total{handler,
  method,status}` with statuses grouped as `2xx`/`5xx`, `http_request_duration_seconds{handler,method}`.
- vLLM 0.11 (vllm/v1/metrics/loggers.py): `vllm:time_to_first_token_seconds` and
  `vllm:inter_token_latency_seconds` histograms with their buckets below, labels model_name and engine.
- TGI (docs/source/reference/metrics.md; router/src/server.rs): `tgi_request_queue_duration`,
  `tgi_request_mean_time_per_token_duration` (35 geometric buckets, 0.0001 x 1.5^k seconds),
  `tgi_request_count`, `tgi_request_failure{err}`.
- Triton (docs/user_guide/metrics.md): `nv_inference_request_success`/`_failure` count requests, a batch-n
  request as 1; `nv_inference_count` counts inferences (n); `nv_inference_exec_count` batch executions;
  `nv_inference_request_duration_us` the cumulative request time; labels model and version; scraped on 8002.
"""

from __future__ import annotations

import copy
import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops_cli.offline.engine import run_program
from modelops_cli.stackfile import load_stack
from tests.e2e.cluster import required_tools

ROOT = Path(__file__).resolve().parents[2]
MINUTES = 60
"""Every scenario's series span an hour, one sample a minute (Prometheus's default scrape interval)."""

VLLM_TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]
VLLM_TTFT_BUCKETS += [20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]
VLLM_ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0]
VLLM_ITL_BUCKETS += [40.0, 80.0]
HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]
"""prometheus_client's default buckets (the instrumentator's `http_request_duration_seconds`)."""
TGI_BUCKETS = [round(0.0001 * 1.5**k, 10) for k in range(1, 36)]


def promtool() -> Path:
    """promtool from the tier's tools (or MODELOPS_PROMTOOL), with conftest's convention: missing fails the
    tier under ./run e2e, and skips it elsewhere."""
    explicit = os.environ.get("MODELOPS_PROMTOOL")
    return Path(explicit) if explicit else required_tools("promtool") / "promtool"


def plan_rules(env: str, stack_file: Path | None = None) -> dict[str, dict[str, Any]]:
    """Model name -> the PrometheusRule spec the offline plan of the stack emits for it."""
    plan = run_program(load_stack(env, stack_file=stack_file))
    return {
        step["urn"].rsplit("::", 1)[1].removesuffix("-alerts"): step["newState"]["inputs"]["spec"]
        for step in plan["steps"]
        if step["newState"]["type"] == "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
    }


def prod_with_tgi(tmp: Path) -> Path:
    """prod's stack file with its LLM (`chat`) served by TGI instead of vLLM."""
    stack = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    stack["config"]["modelops:models"]["chat"]["runtime"] = "tgi"
    path = tmp / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(stack))
    return path


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> dict[str, dict[str, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("stacks")
    found = {env: plan_rules(env) for env in ("dev", "staging", "prod")}
    found["prod-tgi"] = plan_rules("prod", prod_with_tgi(tmp))
    return found


def rule_file(directory: Path, specs: dict[str, dict[str, Any]]) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [g for spec in specs.values() for g in spec["groups"]]}))
    return path


# ---------------------------------------------------------------------------------------------- series


def labels_text(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def counter(per_minute: float, minutes: int = MINUTES) -> str:
    """promtool's expanding notation for a counter growing steadily from 0."""
    return f"0+{per_minute:g}x{minutes}"


def gauge(*spans: tuple[float, int]) -> str:
    """A gauge holding each value for a number of minutes in turn."""
    return " ".join(f"{value:g}x{minutes - 1}" for value, minutes in spans)


def scraped(model: str, track: str, pod: str, port: int = 8000, endpoint: str = "http") -> dict[str, str]:
    """The target labels the Prometheus Operator gives a series scraped from one of the model's pods."""
    return {
        "namespace": "models",
        "service": model,
        "job": model,
        "endpoint": endpoint,
        "container": "server",
        "pod": pod,
        "instance": f"10.0.{7 if track == 'canary' else 3}.21:{port}",
        "modelops_track": track,
    }


def share_at(le: float, share_below: dict[float, float]) -> float:
    """The share of observations at or below `le`: linear between the points given (from 0 at 0), all of them
    past the last point."""
    points = [(0.0, 0.0), *sorted(share_below.items())]
    for (low, low_share), (high, high_share) in itertools.pairwise(points):
        if le <= high:
            return low_share + (high_share - low_share) * (le - low) / (high - low)
    return 1.0


def histogram(
    name: str,
    labels: dict[str, str],
    buckets: list[float],
    per_minute: float,
    share_below: dict[float, float],
    python_exporter: bool = True,
) -> list[dict[str, str]]:
    """A Prometheus histogram's series (cumulative `_bucket`s up to `+Inf`, `_count`, `_sum`) for `per_minute`
    observations distributed as `share_below` says (see share_at)."""
    series = []
    for le in [*buckets, float("inf")]:
        # Python's prometheus_client (vLLM, the instrumentator) writes bounds as repr() does ("2560.0"); TGI's
        # Rust exporter as Display does ("1", "0.00015"): values Prometheus parses alike
        bound = repr(le) if python_exporter else f"{le:g}"
        bucket = {**labels, "le": "+Inf" if le == float("inf") else bound}
        series.append(
            {"series": f"{name}_bucket{labels_text(bucket)}", "values": counter(per_minute * share_at(le, share_below))}
        )
    median = next(b for b in sorted(share_below) if share_below[b] >= 0.5) if max(share_below.values()) >= 0.5 else 1.0
    series.append({"series": f"{name}_count{labels_text(labels)}", "values": counter(per_minute)})
    series.append({"series": f"{name}_sum{labels_text(labels)}", "values": counter(per_minute * median)})
    return series


def replicas(deployment: str, wanted: str, available: str) -> list[dict[str, str]]:
    """kube-state-metrics' Deployment gauges, as kube-prometheus-stack scrapes them."""
    labels = {
        "namespace": "models",
        "deployment": deployment,
        "job": "kube-state-metrics",
        "service": "kube-prometheus-stack-kube-state-metrics",
        "instance": "10.0.5.9:8080",
    }
    return [
        {"series": f"kube_deployment_spec_replicas{labels_text(labels)}", "values": wanted},
        {"series": f"kube_deployment_status_replicas_available{labels_text(labels)}", "values": available},
    ]


def http_traffic(
    model: str, track: str, pod: str, ok: float, errors: float, p99_seconds: float
) -> list[dict[str, str]]:
    """A FastAPI server's instrumentator series: requests per minute by status, and their durations."""
    target = scraped(model, track, pod, 8000 if model == "chat" else 8080)
    route = {"handler": "/v1/completions" if model == "chat" else "/", "method": "POST"}
    series = [
        {"series": f"http_requests_total{labels_text({**target, **route, 'status': '2xx'})}", "values": counter(ok)},
        {
            "series": f"http_requests_total{labels_text({**target, **route, 'status': '5xx'})}",
            "values": counter(errors),
        },
    ]
    return series + histogram(
        "http_request_duration_seconds",
        {**target, **route},
        HTTP_BUCKETS,
        ok + errors,
        {p99_seconds / 2: 0.9, p99_seconds: 0.995},
    )


def vllm_tokens(
    track: str, pod: str, per_minute: float, ttft: dict[float, float], itl: dict[float, float]
) -> list[dict[str, str]]:
    engine = {**scraped("chat", track, pod), "model_name": "chat", "engine": "0"}
    return histogram("vllm:time_to_first_token_seconds", engine, VLLM_TTFT_BUCKETS, per_minute, ttft) + histogram(
        "vllm:inter_token_latency_seconds", engine, VLLM_ITL_BUCKETS, per_minute * 200, itl
    )


def tgi_traffic(
    track: str, pod: str, per_minute: float, queue: dict[float, float], per_token: dict[float, float]
) -> list[dict[str, str]]:
    target = scraped("chat", track, pod, 8080)
    return [
        {"series": f"tgi_request_count{labels_text(target)}", "values": counter(per_minute)},
        {"series": f"tgi_request_success{labels_text(target)}", "values": counter(per_minute)},
        # a few malformed requests: the client's fault, not the server's
        {
            "series": f"tgi_request_failure{labels_text({**target, 'err': 'validation'})}",
            "values": counter(per_minute * 0.2),
        },
        *histogram("tgi_request_queue_duration", target, TGI_BUCKETS, per_minute, queue, python_exporter=False),
        *histogram(
            "tgi_request_mean_time_per_token_duration",
            target,
            TGI_BUCKETS,
            per_minute,
            per_token,
            python_exporter=False,
        ),
    ]


def triton_batches(per_minute: float, batch: int, seconds_per_request: float) -> list[dict[str, str]]:
    """Triton's counters for requests of `batch` items each, dynamically batched four requests an execution."""
    target = {
        **scraped("summarizer", "stable", "summarizer-6c4d8f7b9-k2v8q", 8002, "metrics"),
        "model": "summarizer",
        "version": "1",
    }
    name = labels_text(target)
    return [
        {"series": f"nv_inference_request_success{name}", "values": counter(per_minute)},
        {"series": f"nv_inference_request_failure{name}", "values": counter(0)},
        {"series": f"nv_inference_count{name}", "values": counter(per_minute * batch)},
        {"series": f"nv_inference_exec_count{name}", "values": counter(per_minute / 4)},
        {
            "series": f"nv_inference_request_duration_us{name}",
            "values": counter(per_minute * seconds_per_request * 1e6),
        },
        {"series": f"nv_inference_queue_duration_us{name}", "values": counter(per_minute * 0.01 * 1e6)},
    ]


# -------------------------------------------------------------------------------------------- scenarios

STEADY = gauge((3, MINUTES + 1))
HEALTHY_TTFT = {0.25: 0.95, 1.0: 0.999}
HEALTHY_ITL = {0.05: 0.97, 0.1: 0.999}


def chat_up(wanted: float = 3, canary: float = 2) -> list[dict[str, str]]:
    return replicas("chat", gauge((wanted, MINUTES + 1)), gauge((wanted, MINUTES + 1))) + replicas(
        "chat-canary", gauge((canary, MINUTES + 1)), gauge((canary, MINUTES + 1))
    )


def alert(model: str, summary: str, severity: str, **labels: str) -> dict[str, Any]:
    return {"exp_labels": {"severity": severity, "model": model, **labels}, "exp_annotations": {"summary": summary}}


def checks(eval_minutes: int, expected: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [
        {"eval_time": f"{eval_minutes}m", "alertname": name, "exp_alerts": alerts} for name, alerts in expected.items()
    ]


def scenarios() -> Iterator[tuple[str, str, list[dict[str, str]], list[dict[str, Any]]]]:
    """(name, rule set, input series, alert checks): what a model's users live through, and which alerts
    must fire (exactly those listed: an alert listed with [] must not fire)."""
    llm_quiet: dict[str, list[dict[str, Any]]] = {
        "ModelSlowFirstToken": [],
        "ModelSlowTokens": [],
        "ModelHighErrorRate": [],
        "ModelUnavailable": [],
    }
    yield (
        "healthy LLM with long answers (whole requests take 20 s: no latency alert)",
        "prod",
        chat_up()
        + http_traffic("chat", "stable", "chat-7d9f8b6c5-x2x9k", 540, 0, 20)
        + http_traffic("chat", "canary", "chat-canary-5b8c9d7f4-q8w2m", 60, 0, 20)
        + vllm_tokens("stable", "chat-7d9f8b6c5-x2x9k", 540, HEALTHY_TTFT, HEALTHY_ITL)
        + vllm_tokens("canary", "chat-canary-5b8c9d7f4-q8w2m", 60, HEALTHY_TTFT, HEALTHY_ITL),
        checks(40, {**llm_quiet, "ModelHighLatency": []}),
    )
    yield (
        "healthy custom server and Triton",
        "prod",
        replicas("sentiment", STEADY, STEADY)
        + replicas("summarizer", STEADY, STEADY)
        + http_traffic("sentiment", "stable", "sentiment-8f6d5c4b3-h7k2p", 1200, 1, 0.08)
        + triton_batches(600, 8, 0.5),
        checks(40, {"ModelHighLatency": [], "ModelHighErrorRate": [], "ModelUnavailable": []}),
    )
    yield (
        "model down: replicas wanted, none available",
        "prod",
        replicas("chat", STEADY, gauge((3, 10), (0, MINUTES - 9)))
        + replicas("chat-canary", gauge((2, MINUTES + 1)), gauge((2, MINUTES + 1))),
        checks(
            20,
            {
                "ModelUnavailable": [
                    alert(
                        "chat",
                        "chat: chat wants 3 replica(s) and has none available",
                        "critical",
                        namespace="models",
                        deployment="chat",
                    )
                ]
            },
        ),
    )
    yield (
        "canary erroring while stable is fine (3% of all requests fail, 30% of the canary's)",
        "prod",
        chat_up()
        + http_traffic("chat", "stable", "chat-7d9f8b6c5-x2x9k", 540, 0, 20)
        + http_traffic("chat", "canary", "chat-canary-5b8c9d7f4-q8w2m", 42, 18, 20),
        checks(
            20,
            {
                "ModelHighErrorRate": [
                    alert(
                        "chat",
                        "chat: more than 5% of requests fail on the canary track",
                        "critical",
                        modelops_track="canary",
                    )
                ],
                "ModelUnavailable": [],
            },
        ),
    )
    asleep = gauge((0, MINUTES + 1))
    yield (
        "asleep at zero on purpose (staging's summarizer and its canary after hours): nothing pages",
        "staging",
        replicas("summarizer", asleep, asleep) + replicas("summarizer-canary", asleep, asleep),
        checks(45, {"ModelUnavailable": [], "ModelHighLatency": [], "ModelHighErrorRate": []}),
    )
    yield (
        "woken from zero: unavailable for its cold start (25 minutes), then up",
        "staging",
        replicas("summarizer", gauge((0, 10), (1, MINUTES - 9)), gauge((0, 35), (1, MINUTES - 34))),
        checks(34, {"ModelUnavailable": []}) + checks(50, {"ModelUnavailable": []}),
    )
    yield (
        "woken from zero and never available: pages once the cold-start budget (30 min) has passed",
        "staging",
        replicas("summarizer", gauge((0, 5), (1, MINUTES - 4)), asleep),
        checks(30, {"ModelUnavailable": []})
        + checks(
            40,
            {
                "ModelUnavailable": [
                    alert(
                        "summarizer",
                        "summarizer: summarizer wants 1 replica(s) and has none available",
                        "critical",
                        namespace="models",
                        deployment="summarizer",
                    )
                ]
            },
        ),
    )
    slow_first = {0.25: 0.9, 1.0: 0.95, 2.5: 0.97, 5.0: 0.985, 10.0: 1.0}
    yield (
        "vLLM with slow first tokens (p99 above 2 s) and a steady token pace",
        "prod",
        chat_up() + vllm_tokens("stable", "chat-7d9f8b6c5-x2x9k", 540, slow_first, HEALTHY_ITL),
        checks(
            30,
            {
                "ModelSlowFirstToken": [
                    alert(
                        "chat",
                        "chat: p99 time to first token above 2s on the stable track for 10 minutes",
                        "warning",
                        modelops_track="stable",
                    )
                ],
                "ModelSlowTokens": [],
            },
        ),
    )
    yield (
        "vLLM canary generating slowly (p99 inter-token 0.4 s)",
        "prod",
        chat_up()
        + vllm_tokens("stable", "chat-7d9f8b6c5-x2x9k", 540, HEALTHY_TTFT, HEALTHY_ITL)
        + vllm_tokens("canary", "chat-canary-5b8c9d7f4-q8w2m", 60, HEALTHY_TTFT, {0.1: 0.9, 0.3: 0.98, 0.4: 1.0}),
        checks(
            30,
            {
                "ModelSlowTokens": [
                    alert(
                        "chat",
                        "chat: p99 inter-token latency above 0.2s on the canary track for 10 minutes",
                        "warning",
                        modelops_track="canary",
                    )
                ],
                "ModelSlowFirstToken": [],
            },
        ),
    )
    yield (
        "TGI with requests queueing before their first token (p99 above 2 s)",
        "prod-tgi",
        chat_up() + tgi_traffic("stable", "chat-7d9f8b6c5-x2x9k", 540, {0.05: 0.9, 1.0: 0.95, 5.0: 1.0}, {0.03: 0.99}),
        checks(
            30,
            {
                "ModelSlowFirstToken": [
                    alert(
                        "chat",
                        "chat: p99 queue wait before the first token above 2s on the stable track for 10 minutes",
                        "warning",
                        modelops_track="stable",
                    )
                ],
                "ModelSlowTokens": [],
                "ModelHighErrorRate": [],  # validation failures are the client's
            },
        ),
    )
    yield (
        "healthy TGI",
        "prod-tgi",
        chat_up() + tgi_traffic("stable", "chat-7d9f8b6c5-x2x9k", 540, {0.05: 0.999}, {0.03: 0.999}),
        checks(30, llm_quiet),
    )
    yield (
        "Triton serving batches of 8 in 0.5 s a request: within the 2 s budget",
        "prod",
        replicas("summarizer", STEADY, STEADY) + triton_batches(600, 8, 0.5),
        checks(30, {"ModelHighLatency": [], "ModelHighErrorRate": []}),
    )
    yield (
        "Triton serving batches of 8 in 3 s a request: slow (0.375 s per batch item is not what a caller waits)",
        "prod",
        replicas("summarizer", STEADY, STEADY) + triton_batches(600, 8, 3),
        checks(
            30,
            {
                "ModelHighLatency": [
                    alert(
                        "summarizer",
                        "summarizer: mean request latency above 2s on the stable track for 10 minutes",
                        "warning",
                        modelops_track="stable",
                    )
                ]
            },
        ),
    )


# ------------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("env", ["dev", "staging", "prod", "prod-tgi"])
def test_every_rule_file_loads_in_prometheus(rules, env, tmp_path):
    """`promtool check rules` on each stack's PrometheusRules (dev serves its model from Lambda only: none)."""
    if env == "dev":
        assert rules["dev"] == {}
        return
    assert rules[env], env
    result = subprocess.run(
        [str(promtool()), "check", "rules", str(rule_file(tmp_path, rules[env]))], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f"SUCCESS: {sum(len(g['rules']) for s in rules[env].values() for g in s['groups'])} rules found"
        in result.stdout
    )


@pytest.mark.parametrize("scenario", list(scenarios()), ids=lambda s: s[0])
def test_alerts_fire_as_the_scenario_says(rules, scenario, tmp_path):
    result = run_scenario(rules[scenario[1]], scenario, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_read_what_the_scenarios_feed(rules):
    """The scenarios would pass vacuously if a rule read a metric no scenario sets: every series name the
    rules select is one the scenarios export."""
    import re

    fed = {s["series"].split("{", 1)[0] for _, _, series, _ in scenarios() for s in series}
    read = {
        m
        for env in ("staging", "prod", "prod-tgi")
        for spec in rules[env].values()
        for group in spec["groups"]
        for rule in group["rules"]
        for m in re.findall(r"([A-Za-z_:][\w:]*)\{", rule["expr"])
    }
    assert read and read <= fed, read - fed


def run_scenario(rule_specs: dict[str, dict[str, Any]], scenario: tuple, tmp_path: Path) -> subprocess.CompletedProcess:
    name, _, series, alert_checks = scenario
    tests = {
        "rule_files": [str(rule_file(tmp_path, rule_specs))],
        "evaluation_interval": "1m",
        "tests": [{"name": name, "interval": "1m", "input_series": series, "alert_rule_test": alert_checks}],
    }
    path = tmp_path / "tests.yaml"
    path.write_text(yaml.safe_dump(tests, width=1000))
    return subprocess.run([str(promtool()), "test", "rules", str(path)], capture_output=True, text=True)


def test_a_planted_alert_that_pages_at_zero_fails_the_tier(rules, tmp_path):
    """The availability alert this program had before (no replica available, whatever is wanted) pages every
    night for a model asleep at zero: planted back into staging's rules, the asleep scenario fails."""
    planted = copy.deepcopy(rules["staging"])
    for rule in planted["summarizer"]["groups"][0]["rules"]:
        if rule["alert"] == "ModelUnavailable":
            rule["expr"] = (
                'sum(kube_deployment_status_replicas_available{namespace="models",deployment="summarizer"}) < 1'
            )
            rule["for"] = "2m"
    asleep = next(s for s in scenarios() if s[0].startswith("asleep at zero"))
    result = run_scenario(planted, asleep, tmp_path)
    assert result.returncode != 0
    assert 'alertname="ModelUnavailable", model="summarizer"' in result.stdout + result.stderr
    assert run_scenario(rules["staging"], asleep, tmp_path).returncode == 0
