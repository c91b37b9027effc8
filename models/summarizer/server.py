"""A small sentiment model server: the reference model of the dev stack.

Serves the contract modelops deploys against: POST / (or /predict) with {"inputs": "text"}, the
readiness and liveness paths of the stack's probes, and Prometheus metrics on /metrics. The "model"
is a word list loaded from MODEL_DIR when present (what the init container or the Lambda fetched),
else the built-in one, so the image runs anywhere, including on Lambda behind the Web Adapter.
"""

import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

POSITIVE = {"good", "great", "quick", "friendly", "love", "excellent", "happy", "helpful"}
NEGATIVE = {"bad", "slow", "rude", "hate", "terrible", "broken", "sad", "useless"}
# The metrics contract of modelops' alerts for custom servers (components/runtimes.py), in the names and labels of
# prometheus-fastapi-instrumentator's defaults: requests by status class, latency as a histogram. Every
# series exists from the start, so rate() and the error ratio have something to read before a first error.
REQUESTS = {"2xx": 0, "4xx": 0, "5xx": 0}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BUCKET_COUNTS = [0] * len(LATENCY_BUCKETS)
LATENCY = {"sum": 0.0, "count": 0.0}


def observe_latency(seconds: float) -> None:
    for i, bound in enumerate(LATENCY_BUCKETS):
        if seconds <= bound:
            BUCKET_COUNTS[i] += 1
    LATENCY["sum"] += seconds
    LATENCY["count"] += 1


def exposition() -> str:
    lines = ["# TYPE http_requests_total counter"]
    lines += [f'http_requests_total{{status="{k}"}} {v}' for k, v in REQUESTS.items()]
    lines.append("# TYPE http_request_duration_seconds histogram")
    lines += [
        f'http_request_duration_seconds_bucket{{le="{bound}"}} {count}'
        for bound, count in zip(LATENCY_BUCKETS, BUCKET_COUNTS, strict=True)
    ]
    lines.append(f'http_request_duration_seconds_bucket{{le="+Inf"}} {LATENCY["count"]:g}')
    lines.append(f"http_request_duration_seconds_sum {LATENCY['sum']}")
    lines.append(f"http_request_duration_seconds_count {LATENCY['count']:g}")
    return "\n".join(lines) + "\n"


def load_lexicon() -> tuple[set, set]:
    path = Path(os.environ.get("MODEL_DIR", "/models")) / "lexicon.json"
    if path.exists():
        data = json.loads(path.read_text())
        return set(data.get("positive", [])), set(data.get("negative", []))
    return POSITIVE, NEGATIVE


LEXICON = load_lexicon()


def predict(text: str) -> dict:
    words = [w.strip(".,!?").lower() for w in text.split()]
    score = sum(w in LEXICON[0] for w in words) - sum(w in LEXICON[1] for w in words)
    label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
    return {"label": label, "score": score, "version": os.environ.get("MODEL_VERSION", "dev")}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path in ("/v2/health/ready", "/v2/health/live"):
            return self._send(200, b'{"status": "ok"}')
        if self.path == "/metrics":
            return self._send(200, exposition().encode(), "text/plain; version=0.0.4")
        return self._send(404, b'{"error": "not found"}')

    def do_POST(self):
        started = time.perf_counter()
        try:
            status, body = self._predict()
        except Exception:
            status, body = 500, b'{"error": "internal error"}'
        REQUESTS[f"{status // 100}xx"] += 1
        observe_latency(time.perf_counter() - started)
        return self._send(status, body)

    def _predict(self) -> tuple[int, bytes]:
        try:
            payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            text = str(payload.get("inputs", ""))
        except (ValueError, AttributeError):
            return 400, b'{"error": "expected {\\"inputs\\": \\"text\\"}"}'
        return 200, json.dumps(predict(text)).encode()


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
