"""AWS-compatible endpoints on 127.0.0.1 for the boto3 code: a moto server, and in front of it a small
proxy that serves Service Quotas (moto does not serve EC2 quota codes) and injects faults at the HTTP
level: throttling, 5xx, slow answers and access denied."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    def __init__(self):
        self.port = free_port()
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
        self.process = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto_server did not start")

    def post(self, path: str, body: dict) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        conn.getresponse().read()
        conn.close()

    def reset(self) -> None:
        self.post("/moto-api/reset", {})

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


_EC2_ERRORS = {
    "throttle": (503, "RequestLimitExceeded", "Request limit exceeded."),
    "denied": (403, "UnauthorizedOperation", "You are not authorized to perform this operation."),
    "500": (500, "InternalError", "An internal error has occurred"),
}
_QUOTA_ERRORS = {
    "throttle": (400, "ThrottlingException", "Rate exceeded"),
    "denied": (400, "AccessDeniedException", "User is not authorized to perform servicequotas:GetServiceQuota"),
    "500": (500, "ServiceException", "internal error"),
    "missing": (
        400,
        "NoSuchResourceException",
        "The request failed because the specified service quota does not exist.",
    ),
}


class FaultyAws:
    """Serves Service Quotas from `quotas`, forwards the rest to moto; `fail(service, kind, times)` queues
    faults (`ec2` or `quotas`; `throttle`, `500`, `denied`, `slow`, `missing`)."""

    def __init__(self, moto: MotoServer):
        self.moto = moto
        self.quotas: dict[str, float] = {}
        self.default_quotas: dict[str, float] = {}
        self.faults: dict[str, list[str]] = defaultdict(list)
        self.calls: list[str] = []
        self.slow_seconds = 2.0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                target = self.headers.get("X-Amz-Target", "")
                service = "quotas" if target.startswith("ServiceQuotasV20190624.") else "ec2"
                owner.calls.append(target.rsplit(".", 1)[-1] if target else service)
                fault = owner.faults[service].pop(0) if owner.faults[service] else None
                if fault == "slow":
                    time.sleep(owner.slow_seconds)
                elif fault is not None:
                    return self._error(service, fault)
                if service == "quotas":
                    return self._quota(target.rsplit(".", 1)[-1], json.loads(body or b"{}"))
                return self._forward(body)

            def _send(self, status: int, payload: bytes, content_type: str):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def _error(self, service: str, kind: str):
                if service == "quotas":
                    status, code, message = _QUOTA_ERRORS[kind]
                    return self._send(
                        status, json.dumps({"__type": code, "message": message}).encode(), "application/x-amz-json-1.1"
                    )
                status, code, message = _EC2_ERRORS[kind]
                xml = (
                    f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                    "<RequestID>fault</RequestID></Response>"
                )
                return self._send(status, xml.encode(), "text/xml")

            def _quota(self, operation: str, request: dict):
                code = request.get("QuotaCode")
                table = owner.default_quotas if operation == "GetAWSDefaultServiceQuota" else owner.quotas
                if code not in table:
                    return self._error("quotas", "missing")
                quota = {
                    "ServiceCode": "ec2",
                    "QuotaCode": code,
                    "Value": table[code],
                    "Unit": "None",
                    "QuotaName": code,
                }
                return self._send(200, json.dumps({"Quota": quota}).encode(), "application/x-amz-json-1.1")

            def _forward(self, body: bytes):
                conn = http.client.HTTPConnection("127.0.0.1", owner.moto.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                conn.request("POST", self.path, body, headers)
                answer = conn.getresponse()
                payload = answer.read()
                conn.close()
                return self._send(answer.status, payload, answer.getheader("Content-Type", "text/xml"))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, service: str, kind: str, times: int = 1) -> None:
        self.faults[service] += [kind] * times

    def reset(self) -> None:
        self.quotas.clear()
        self.default_quotas.clear()
        self.faults.clear()
        self.calls.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def aws_env(monkeypatch, url: str) -> None:
    """Point boto3 at a local endpoint with throwaway credentials; never a real AWS address."""
    assert urlparse(url).hostname == "127.0.0.1"
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
