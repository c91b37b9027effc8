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
REQUESTS = {"2xx": 0, "4xx": 0}
LATENCY_SUM = [0.0]


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
            lines = [f'http_requests_total{{status="{k}"}} {v}' for k, v in REQUESTS.items()]
            lines.append(f"http_request_duration_seconds_sum {LATENCY_SUM[0]}")
            return self._send(200, ("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4")
        return self._send(404, b'{"error": "not found"}')

    def do_POST(self):
        started = time.perf_counter()
        try:
            payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            result = predict(str(payload.get("inputs", "")))
        except (ValueError, AttributeError):
            REQUESTS["4xx"] += 1
            return self._send(400, b'{"error": "expected {\\"inputs\\": \\"text\\"}"}')
        REQUESTS["2xx"] += 1
        LATENCY_SUM[0] += time.perf_counter() - started
        return self._send(200, json.dumps(result).encode())


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
