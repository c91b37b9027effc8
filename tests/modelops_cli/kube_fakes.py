"""A fake Kubernetes API server on 127.0.0.1 for pre-flight tests: serves objects by path (list endpoints
filter on an equality `labelSelector`, as the API server does), over HTTP or HTTPS (optionally requiring a
client certificate), and plays hostile answers on request: redirects, HTML, JSON lists, huge, endless or
trickling bodies, headers that never come."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml


def make_certificates(directory: Path) -> dict[str, Path]:
    """A server certificate for 127.0.0.1 (also named api.internal, for tls-server-name) and a client
    certificate, each self-signed (the client one is also the CA the server trusts for clients)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {n: directory / n for n in ("server.crt", "server.key", "client.crt", "client.key", "other.key")}
    for name, cn, san in (("server", "127.0.0.1", "IP:127.0.0.1,DNS:api.internal"), ("client", "modelops-test", None)):
        argv = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={cn}",
                "-keyout", str(files[f"{name}.key"]), "-out", str(files[f"{name}.crt"])]  # fmt: skip
        if san:
            argv += ["-addext", f"subjectAltName={san}"]
        subprocess.run(argv, check=True, capture_output=True)
    subprocess.run(["openssl", "genrsa", "-out", str(files["other.key"]), "2048"], check=True, capture_output=True)
    return files


def _matches(obj: dict[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in (term.split("=", 1) for term in selector.split(",")))


class FakeKube:
    def __init__(self, objects: dict[str, Any], tls: dict[str, Path] | None = None, client_ca: Path | None = None):
        self.objects = objects
        self.requests: list[tuple[str, str | None]] = []
        """(path, Authorization header) of every request."""
        self.hostile: str | None = None
        self.redirect_to = ""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.requests.append((self.path, self.headers.get("Authorization")))
                try:
                    if owner.hostile:
                        return owner.play(self)
                    return owner.answer(self)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls["server.crt"], tls["server.key"])
            if client_ca:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(client_ca)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        selectors = parse_qs(parts.query).get("labelSelector")
        selector = selectors[0] if selectors else None
        body = self.objects.get(parts.path)
        if body is None and parts.path.endswith(("/deployments", "/daemonsets", "/nodes")):
            body = {"items": []}
        if body is None:
            return self.send(handler, 404, b'{"kind":"Status","message":"not found"}')
        if isinstance(body, dict) and isinstance(body.get("items"), list):
            body = {**body, "items": [i for i in body["items"] if _matches(i, selector)]}
        return self.send(handler, 200, json.dumps(body).encode())

    @staticmethod
    def send(
        handler: BaseHTTPRequestHandler, status: int, data: bytes, kind: str = "application/json", **headers
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def play(self, handler: BaseHTTPRequestHandler) -> None:
        """The hostile answer named by `self.hostile`."""
        mode = self.hostile
        if mode == "redirect":
            return self.send(handler, 302, b"", Location=self.redirect_to + handler.path)
        if mode == "html":
            return self.send(handler, 200, b"<html><body>Sign in</body></html>", "text/html")
        if mode == "list":
            return self.send(handler, 200, b"[1, 2, 3]")
        if mode == "escape":
            return self.send(handler, 500, b'{"kind":"Status","message":"boom \x1b[2J\x1b]0;pwned\x07"}')
        if mode == "nested":
            return self.send(handler, 200, b"[" * 100000 + b"]" * 100000)
        if mode == "unauthorized":
            return self.send(handler, 401, b'{"kind":"Status","message":"Unauthorized"}')
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if mode == "huge-declared":
            handler.send_header("Content-Length", str(64 * 1024 * 1024))
            handler.end_headers()
            return
        handler.end_headers()
        if mode == "endless":  # no Content-Length: the body ends when the connection does, and it never does
            chunk = b" " * 65536
            while True:
                handler.wfile.write(chunk)
        if mode == "trickle":  # a byte a second: every read completes, the whole never does
            for _ in range(120):
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(1)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SlowHeaders:
    """Accepts connections and never answers (a request that waits forever for its headers)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def stop(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any] | None = None) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": cluster}],
                "users": [{"name": "fake", "user": user if user is not None else {"token": "t0ken"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            }
        )
    )
    return path
