"""GET requests to a Kubernetes API server with a kubeconfig's credentials, bounded and hardened.

- No redirect is followed: a 3xx answer is an error naming where it pointed. client-go's credential round
  trippers add the bearer token to every request the client sends, so a followed redirect would carry it to
  whatever host the answer names; refusing every redirect is the simple safe reading.
- Every request has a total deadline (connect, headers and body together; a server that trickles bytes is
  cut off when it passes), and a body limit (8 MiB): an endless or huge answer ends in an error, not in
  memory exhaustion. Answers must be a JSON object; HTML, lists and garbage are errors naming the path.
- The CA is loaded from memory. A client key must pass through a file for `ssl.SSLContext.load_cert_chain`:
  it is written 0600 into a private temporary directory and removed right after loading, errors or not.
- Exec credential plugins (`aws eks get-token`) run as client-go runs them
  (k8s.io/client-go/plugin/pkg/client/auth/exec/exec.go): the command with its args, the caller's environment
  plus the kubeconfig's `env` and KUBERNETES_EXEC_INFO (an ExecCredential with `spec.interactive`, and
  `spec.cluster` when `provideClusterInfo`), standard input only when interactive (`interactiveMode`: Never,
  IfAvailable = when stdin is a terminal, Always = refuse without one), standard error passed through. The
  answer must be an ExecCredential of the configured apiVersion with `status.token` or a
  `clientCertificateData`/`clientKeyData` pair (PEM); `expirationTimestamp` is honoured (an expired credential
  is fetched again before the next request), and a 401 answer re-runs the plugin once, as client-go does.
  The plugin has a deadline and an output limit too.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from .inert import terminal
from .kubeconfig import ClusterAccess, ExecPlugin, KubeconfigError, valid_token

MAX_BODY_BYTES = 8 * 1024 * 1024
REQUEST_SECONDS = 15.0
"""The whole of one request: connecting, TLS, headers and body."""
EXEC_SECONDS = 60.0
"""The most an exec plugin may take (client-go sets none; `aws eks get-token` takes about a second)."""
MAX_EXEC_OUTPUT = 1024 * 1024


class ClusterApiError(Exception):
    """The API server could not be reached or answered something unusable: a cluster problem (exit 1)."""


class ClusterForbidden(ClusterApiError):
    """403: these credentials may not read that path (RBAC), which an optional check can live with."""


@dataclass
class _Credentials:
    token: str | None
    cert_pem: str | None
    key_pem: str | None
    expires: datetime | None = None

    def expired(self) -> bool:
        return self.expires is not None and datetime.now(UTC) >= self.expires


class KubeApi:
    """GET requests to one API server with one kubeconfig context's credentials."""

    def __init__(self, access: ClusterAccess, timeout: float = REQUEST_SECONDS):
        self.access = access
        self.server = access.server
        self.timeout = timeout
        parts = urlsplit(access.server)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._credentials: _Credentials | None = None
        self._context: ssl.SSLContext | None = None

    @classmethod
    def from_kubeconfig(cls, location: str, context: str | None = None) -> KubeApi:
        from .kubeconfig import load_kubeconfig

        return cls(load_kubeconfig(location, context))

    # ---- credentials ----

    def _creds(self, refresh: bool = False) -> _Credentials:
        if self._credentials is None or refresh or self._credentials.expired():
            if self.access.exec_plugin is not None:
                creds = run_exec_plugin(self.access.exec_plugin, self.access.cluster_info)
            else:
                creds = _Credentials(self.access.token, self.access.client_cert_pem, self.access.client_key_pem)
            self._credentials = creds
            self._context = None
        return self._credentials

    def _ssl_context(self, creds: _Credentials) -> ssl.SSLContext:
        if self._context is None:
            context = ssl.create_default_context()
            try:
                if self.access.ca_pem:
                    context.load_verify_locations(cadata=self.access.ca_pem)
                if self.access.insecure:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                if creds.cert_pem and creds.key_pem:
                    with _key_files(creds.cert_pem, creds.key_pem) as (cert, key):
                        context.load_cert_chain(cert, key)
            except ssl.SSLError as exc:
                raise KubeconfigError(f"the kubeconfig's certificates cannot be used: {exc.reason or exc}") from None
            self._context = context
        return self._context

    # ---- requests ----

    def get(self, path: str, query: dict[str, str] | None = None) -> dict[str, Any] | None:
        """The JSON object at `path`, or None when the server answers 404."""
        if query:
            path += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
        creds = self._creds()
        status, headers, body = self._request(path, creds)
        if status == 401 and self.access.exec_plugin is not None:
            # client-go's exec round tripper: a 401 refreshes the plugin's credential once
            status, headers, body = self._request(path, self._creds(refresh=True))
        return self._interpret(path, status, headers, body)

    def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        """The items of a list at `path` (empty when the resource is not served)."""
        answer = self.get(path, {"labelSelector": label_selector} if label_selector else None)
        items = (answer or {}).get("items") or []
        if not isinstance(items, list):
            raise ClusterApiError(f"{self.server}{path}: `items` is not a list")
        return [i for i in items if isinstance(i, dict)]

    def _interpret(self, path: str, status: int, headers: dict[str, str], body: bytes) -> dict[str, Any] | None:
        where = f"{self.server}{path}"
        if status == 404:
            return None
        if 300 <= status < 400:
            target = headers.get("location", "(no Location)")
            raise ClusterApiError(
                f"{where}: the API server answered {status} redirecting to {printable(target)}; modelops never "
                "follows redirects (they would carry the cluster credentials elsewhere): use the server's real URL"
            )
        if status == 401:
            raise ClusterApiError(f"{where}: the API server refused the credentials (401): {_status_message(body)}")
        if status == 403:
            raise ClusterForbidden(f"{where}: the credentials may not read this (403): {_status_message(body)}")
        if status != 200:
            raise ClusterApiError(f"{where}: the API server answered {status}: {_status_message(body)}")
        try:
            answer = json.loads(body)
        except (ValueError, RecursionError):
            kind = headers.get("content-type", "unknown content type")
            raise ClusterApiError(
                f"{where}: the answer is not JSON ({printable(kind)}): is this an API server?"
            ) from None
        if not isinstance(answer, dict):
            raise ClusterApiError(f"{where}: the answer is JSON but not an object ({type(answer).__name__})")
        return answer

    def _request(self, path: str, creds: _Credentials) -> tuple[int, dict[str, str], bytes]:
        headers = {"Accept": "application/json", "User-Agent": "modelops-preflight"}
        if creds.token:
            headers["Authorization"] = f"Bearer {creds.token}"
        deadline = time.monotonic() + self.timeout
        connection = self._connection(creds)
        # A watchdog closes the socket at the deadline: a server that trickles headers or body a byte at a
        # time would otherwise reset every per-read timeout.
        timer = threading.Timer(self.timeout, _abort, (connection,))
        timer.daemon = True
        timer.start()
        try:
            connection.request("GET", self._prefix + path, headers=headers)
            response = connection.getresponse()
            body = _read_bounded(response, deadline, f"{self.server}{path}")
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        except ClusterApiError:
            raise
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if time.monotonic() >= deadline - 0.05:
                raise ClusterApiError(f"{self.server}{path}: no complete answer within {self.timeout:g} s") from None
            raise ClusterApiError(f"cannot reach the API server {self.server}: {_describe(exc)}") from None
        finally:
            timer.cancel()
            connection.close()

    def _connection(self, creds: _Credentials) -> http.client.HTTPConnection:
        if not self._https:
            return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        return _TlsConnection(
            self._host, self._port, self._ssl_context(creds), self.access.tls_server_name or self._host, self.timeout
        )


class _TlsConnection(http.client.HTTPSConnection):
    """HTTPS with client-go's `tls-server-name`: the name verified may differ from the host dialled."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, server_name: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=context)
        self._server_name = server_name
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self._server_name)


def _abort(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        with suppress(OSError):  # already closed: nothing left to stop
            sock.shutdown(socket.SHUT_RDWR)


def _read_bounded(response: http.client.HTTPResponse, deadline: float, where: str) -> bytes:
    length = response.getheader("Content-Length")
    if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise ClusterApiError(f"{where}: the answer is {int(length)} bytes, more than the {MAX_BODY_BYTES} accepted")
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() >= deadline:
            raise ClusterApiError(f"{where}: the answer did not end in time")
        chunk = response.read1(65536) if hasattr(response, "read1") else response.read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ClusterApiError(f"{where}: the answer is larger than the {MAX_BODY_BYTES} bytes accepted")
        chunks.append(chunk)


def _status_message(body: bytes) -> str:
    """The `message` of a Kubernetes Status answer, else the start of the body, made printable."""
    try:
        answer = json.loads(body)
        if isinstance(answer, dict) and isinstance(answer.get("message"), str):
            return printable(answer["message"])
    except (ValueError, RecursionError):
        pass
    return printable(body[:200].decode("utf-8", "replace")) or "(empty body)"


def printable(text: str, limit: int = 300) -> str:
    """Server-controlled text made inert for a terminal, length bounded: `inert.terminal`, which every verb's
    output shares."""
    return terminal(text, limit)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS verification failed: {exc.verify_message}"
    return printable(str(exc) or type(exc).__name__)


@contextmanager
def _key_files(cert_pem: str, key_pem: str):
    """The client certificate and key as files only for as long as the SSL context takes to load them:
    a private 0700 directory, files created 0600, removed on the way out whatever happened."""
    directory = tempfile.mkdtemp(prefix="modelops-kube-")
    try:
        paths = []
        for name, text in (("client.crt", cert_pem), ("client.key", key_pem)):
            path = os.path.join(directory, name)
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(handle, "w") as out:
                out.write(text)
            paths.append(path)
        yield paths[0], paths[1]
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# ---- exec credential plugins ----


def run_exec_plugin(plugin: ExecPlugin, cluster_info: dict[str, Any]) -> _Credentials:
    interactive = _interactive(plugin)
    spec: dict[str, Any] = {"interactive": interactive}
    if plugin.provide_cluster_info:
        spec["cluster"] = cluster_info
    info = {"apiVersion": plugin.api_version, "kind": "ExecCredential", "spec": spec}
    env = {**os.environ, **dict(plugin.env), "KUBERNETES_EXEC_INFO": json.dumps(info)}
    output = _run_bounded([plugin.command, *plugin.args], env, interactive, plugin)
    return _parse_exec_credential(output, plugin)


def _interactive(plugin: ExecPlugin) -> bool:
    tty = sys.stdin is not None and sys.stdin.isatty()
    if plugin.interactive_mode == "Never":
        return False
    if plugin.interactive_mode == "Always" and not tty:
        raise KubeconfigError(
            f"exec plugin {plugin.command}: interactiveMode Always needs a terminal on standard input"
        )
    return tty


def _run_bounded(argv: list[str], env: dict[str, str], interactive: bool, plugin: ExecPlugin) -> bytes:
    try:
        process = subprocess.Popen(
            argv,
            env=env,
            stdin=None if interactive else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=None,  # client-go passes the plugin's stderr through: prompts and errors reach the user
        )
    except OSError as exc:
        hint = f" ({plugin.install_hint.strip()})" if plugin.install_hint else ""
        raise KubeconfigError(f"exec plugin {plugin.command} cannot be run: {exc.strerror or exc}{hint}") from None
    assert process.stdout is not None
    deadline = time.monotonic() + EXEC_SECONDS
    chunks, size = [], 0
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise KubeconfigError(f"exec plugin {plugin.command} did not finish within {EXEC_SECONDS:g} s")
            ready, _, _ = select.select([process.stdout], [], [], min(left, 0.5))
            if not ready:
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_EXEC_OUTPUT:
                raise KubeconfigError(f"exec plugin {plugin.command} wrote more than {MAX_EXEC_OUTPUT} bytes")
            chunks.append(chunk)
        code = process.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise KubeconfigError(f"exec plugin {plugin.command} did not exit within {EXEC_SECONDS:g} s") from None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
    if code != 0:
        raise KubeconfigError(f"exec plugin {plugin.command} failed with exit code {code}")
    return b"".join(chunks)


def _expiry(timestamp: str | None, where: str) -> datetime | None:
    """An ExecCredential's status.expirationTimestamp (RFC 3339, with a zone, not past), or None without one."""
    if not timestamp:
        return None
    try:
        expires = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        raise KubeconfigError(f"{where}: status.expirationTimestamp is not an RFC 3339 time") from None
    if expires.tzinfo is None:
        raise KubeconfigError(f"{where}: status.expirationTimestamp has no time zone")
    if expires <= datetime.now(UTC):
        raise KubeconfigError(f"{where}: returned a credential that expired at {timestamp}")
    return expires


def _parse_exec_credential(output: bytes, plugin: ExecPlugin) -> _Credentials:
    where = f"exec plugin {plugin.command}"
    try:
        answer = json.loads(output)
    except (ValueError, RecursionError):
        raise KubeconfigError(f"{where}: its output is not JSON") from None
    if not isinstance(answer, dict) or answer.get("kind") != "ExecCredential":
        raise KubeconfigError(f"{where}: its output is not an ExecCredential")
    if answer.get("apiVersion") != plugin.api_version:
        raise KubeconfigError(
            f"{where}: configured for {plugin.api_version}, it returned {printable(str(answer.get('apiVersion')))}"
        )
    status = answer.get("status")
    if not isinstance(status, dict):
        raise KubeconfigError(f"{where}: no status in its ExecCredential")
    fields = {}
    for key in ("token", "clientCertificateData", "clientKeyData", "expirationTimestamp"):
        value = status.get(key)
        if value is not None and not isinstance(value, str):
            raise KubeconfigError(f"{where}: status.{key} must be a string")
        fields[key] = value or None
    if fields["token"] and not valid_token(fields["token"]):
        raise KubeconfigError(f"{where}: status.token contains characters an HTTP bearer token cannot carry")
    if not (fields["token"] or fields["clientCertificateData"] or fields["clientKeyData"]):
        raise KubeconfigError(f"{where}: returned neither a token nor a certificate and key")
    if bool(fields["clientCertificateData"]) != bool(fields["clientKeyData"]):
        raise KubeconfigError(f"{where}: returned only one of the client certificate and key")
    expires = _expiry(fields["expirationTimestamp"], where)
    return _Credentials(fields["token"], fields["clientCertificateData"], fields["clientKeyData"], expires)
