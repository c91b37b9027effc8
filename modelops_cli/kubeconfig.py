"""Reading a kubeconfig as client-go does, or refusing it with the key path at fault.

client-go (k8s.io/client-go/tools/clientcmd, api/v1 types.go and validation.go) is the reference for every
field: a value of the wrong type fails to decode there (`insecure-skip-tls-verify: "false"` is a string, not
the bool the field is, and is refused rather than read as true), `*-data` fields are base64, a context must
name a cluster with a server and a user that exists, a file and its `-data` twin may not both be set, and an
exec plugin needs a command, an apiVersion client-go speaks and (for v1) an interactiveMode. Credentials are
taken in client-go's order: a token (or token file) or a client certificate wins over an exec plugin
(plugin/pkg/client/auth/exec UpdateTransportConfig). What modelops does not implement (auth-provider
plugins, removed from client-go in 1.26; basic auth, removed from Kubernetes in 1.19; impersonation;
proxies) is refused by name rather than ignored.

`KUBECONFIG` may list several files (os.pathsep): as in client-go's loader, the first file to define a
name (cluster, user, context) or the current context wins.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .files import read_regular_file

MAX_KUBECONFIG_BYTES = 4 * 1024 * 1024
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
"""What client-go's exec authenticator accepts (plugin/pkg/client/auth/exec/exec.go `apiVersions`)."""
INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")


class KubeconfigError(Exception):
    """The kubeconfig cannot be read or used: the message names the file and the key path."""


@dataclass(frozen=True)
class ExecPlugin:
    command: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    api_version: str
    interactive_mode: str
    provide_cluster_info: bool
    install_hint: str = ""


@dataclass(frozen=True)
class ClusterAccess:
    """Where the API server is and how to authenticate to it, validated."""

    server: str
    ca_pem: str | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    token: str | None = None
    client_cert_pem: str | None = None
    client_key_pem: str | None = None
    exec_plugin: ExecPlugin | None = None
    cluster_info: dict[str, Any] = field(default_factory=dict)
    """What `provideClusterInfo` hands the plugin in KUBERNETES_EXEC_INFO (client.authentication Cluster)."""


class _Reader:
    """Typed access to the decoded YAML, every error naming the file and the key path."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, message: str) -> KubeconfigError:
        return KubeconfigError(f"{self.source}: {path}: {message}")

    def mapping(self, value: Any, path: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a map, not {_kind(value)}")
        return value

    def items(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list, not {_kind(value)}")
        return value

    def string(self, value: Any, path: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(path, f"must be a string, not {_kind(value)}")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        # client-go decodes into a Go bool: a quoted "false" does not decode, and must not turn anything on
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.fail(path, f"must be true or false (a YAML bool), not {_kind(value)} {value!r}")
        return value

    def base64_pem(self, value: Any, path: str) -> str | None:
        text = self.string(value, path)
        if not text:
            return None
        try:
            raw = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            raise self.fail(path, "is not valid base64") from None
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(path, "does not decode to PEM text") from None

    def file_text(self, value: Any, path: str, base: Path) -> str | None:
        name = self.string(value, path)
        if not name:
            return None
        file = Path(name) if os.path.isabs(name) else base / name
        try:
            return _read_bounded(file)
        except (OSError, UnicodeDecodeError) as exc:
            raise self.fail(path, f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None


def valid_token(token: str) -> bool:
    """A bearer token travels in a header: visible ASCII only (RFC 6750 b64token is narrower still)."""
    return bool(token) and all("!" <= c <= "~" for c in token)


def printable_url(url: str) -> str:
    return repr(url[:200])


def _kind(value: Any) -> str:
    return {dict: "a map", list: "a list", str: "a string", bool: "a bool", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _read_bounded(file: Path) -> str:
    return read_regular_file(file, MAX_KUBECONFIG_BYTES).decode("utf-8")


@dataclass
class _Entry:
    value: dict[str, Any]
    path: str
    reader: _Reader
    base: Path


def _load_files(paths: list[Path]) -> tuple[str | None, dict[str, dict[str, _Entry]]]:
    """The merged named entries (first definition wins) and current context of the files."""
    current: str | None = None
    named: dict[str, dict[str, _Entry]] = {"clusters": {}, "users": {}, "contexts": {}}
    for file in paths:
        reader = _Reader(str(file))
        try:
            text = _read_bounded(file)
            config = yaml.safe_load(text)
        except (OSError, UnicodeDecodeError) as exc:
            raise KubeconfigError(f"{file}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
        except yaml.YAMLError as exc:
            raise KubeconfigError(f"{file}: not valid YAML: {exc}") from None
        except RecursionError:
            raise KubeconfigError(f"{file}: nested too deeply to be a kubeconfig") from None
        config = reader.mapping(config, "(top level)")
        current = current or reader.string(config.get("current-context"), "current-context") or None
        for section, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for index, item in enumerate(reader.items(config.get(section), section)):
                path = f"{section}[{index}]"
                item = reader.mapping(item, path)
                name = reader.string(item.get("name"), f"{path}.name")
                if not name:
                    raise reader.fail(f"{path}.name", "is missing")
                body = reader.mapping(item.get(inner), f"{path}.{inner}")
                named[section].setdefault(name, _Entry(body, f"{path}.{inner}", reader, file.parent))
    return current, named


def load_kubeconfig(location: str, context: str | None = None) -> ClusterAccess:
    """The access a kubeconfig (or an os.pathsep-separated list, as KUBECONFIG) gives to `context`."""
    paths = [Path(p) for p in location.split(os.pathsep) if p]
    if not paths:
        raise KubeconfigError("no kubeconfig file named")
    current, named = _load_files(paths)
    name = context or current
    where = ", ".join(str(p) for p in paths)
    if not name:
        raise KubeconfigError(f"{where}: no current-context, and no --context given")
    ctx = named["contexts"].get(name)
    if ctx is None:
        raise KubeconfigError(f"{where}: no context {name!r}")
    cluster_name = ctx.reader.string(ctx.value.get("cluster"), f"{ctx.path}.cluster")
    user_name = ctx.reader.string(ctx.value.get("user"), f"{ctx.path}.user")
    cluster = named["clusters"].get(cluster_name or "")
    if cluster is None:
        raise ctx.reader.fail(f"{ctx.path}.cluster", f"context {name!r} names cluster {cluster_name!r}, not defined")
    access = _cluster(cluster)
    if user_name:
        user = named["users"].get(user_name)
        if user is None:
            raise ctx.reader.fail(f"{ctx.path}.user", f"context {name!r} names user {user_name!r}, not defined")
        access = _with_user(access, user)
    return access


def _cluster(entry: _Entry) -> ClusterAccess:
    r, c, p = entry.reader, entry.value, entry.path
    server = r.string(c.get("server"), f"{p}.server")
    if not server:
        raise r.fail(f"{p}.server", "is missing: the cluster has no server")
    try:
        parts = urlsplit(server)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise r.fail(f"{p}.server", "is not a URL") from None
    if parts.username or parts.password:
        # printed in every message about the cluster: credentials belong in the user, not the URL
        raise r.fail(f"{p}.server", "must not carry credentials (user:password@)")
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise r.fail(f"{p}.server", f"{printable_url(server)} is not an http(s) URL of an API server")
    if r.string(c.get("proxy-url"), f"{p}.proxy-url"):
        raise r.fail(
            f"{p}.proxy-url",
            "proxies are not supported by modelops preflight; run it where the API server is reachable",
        )
    insecure = r.boolean(c.get("insecure-skip-tls-verify"), f"{p}.insecure-skip-tls-verify")
    ca_data = r.base64_pem(c.get("certificate-authority-data"), f"{p}.certificate-authority-data")
    if ca_data and c.get("certificate-authority"):
        # client-go's validation refuses both (validateClusterInfo)
        raise r.fail(p, "certificate-authority-data and certificate-authority are both set")
    ca = ca_data or r.file_text(c.get("certificate-authority"), f"{p}.certificate-authority", entry.base)
    if insecure and ca:
        # client-go's transport: "specifying a root certificates file with the insecure flag is not allowed"
        raise r.fail(p, "insecure-skip-tls-verify and a certificate authority are both set (client-go refuses this)")
    tls_name = r.string(c.get("tls-server-name"), f"{p}.tls-server-name") or None
    info: dict[str, Any] = {"server": server}
    if tls_name:
        info["tls-server-name"] = tls_name
    if insecure:
        info["insecure-skip-tls-verify"] = True
    if ca:
        info["certificate-authority-data"] = base64.b64encode(ca.encode()).decode()
    extension = _exec_extension(entry)
    if extension is not None:
        info["config"] = extension
    return ClusterAccess(server.rstrip("/"), ca, insecure, tls_name, cluster_info=info)


def _exec_extension(entry: _Entry) -> Any:
    """`extensions[name=client.authentication.k8s.io/exec].extension`: handed to the plugin as `config`."""
    for index, item in enumerate(entry.reader.items(entry.value.get("extensions"), f"{entry.path}.extensions")):
        item = entry.reader.mapping(item, f"{entry.path}.extensions[{index}]")
        if item.get("name") == "client.authentication.k8s.io/exec":
            return item.get("extension")
    return None


_REFUSED_USER_KEYS = {
    "auth-provider": "auth-provider plugins were removed from client-go (1.26): use an exec plugin",
    "username": "basic authentication was removed from Kubernetes (1.19)",
    "password": "basic authentication was removed from Kubernetes (1.19)",
    "as": "impersonation is not supported by modelops preflight",
    "as-uid": "impersonation is not supported by modelops preflight",
    "as-groups": "impersonation is not supported by modelops preflight",
    "as-user-extra": "impersonation is not supported by modelops preflight",
}


def _with_user(access: ClusterAccess, entry: _Entry) -> ClusterAccess:
    r, u, p = entry.reader, entry.value, entry.path
    for refused, why in _REFUSED_USER_KEYS.items():
        if u.get(refused) not in (None, "", [], {}):
            raise r.fail(f"{p}.{refused}", why)
    token = r.string(u.get("token"), f"{p}.token") or r.file_text(u.get("tokenFile"), f"{p}.tokenFile", entry.base)
    if token and not valid_token(token.strip()):
        # never echoed: it is a credential
        raise r.fail(f"{p}.token", "contains characters an HTTP bearer token cannot carry (spaces, line breaks)")
    cert = _pair(r, u, p, "client-certificate", entry.base)
    key = _pair(r, u, p, "client-key", entry.base)
    if bool(cert) != bool(key):
        raise r.fail(p, "a client certificate needs both client-certificate(-data) and client-key(-data)")
    plugin = _exec(r, u.get("exec"), f"{p}.exec", entry.base)
    updates: dict[str, Any] = {
        "token": token.strip() if token else None,
        "client_cert_pem": cert,
        "client_key_pem": key,
    }
    # client-go: a token or a certificate in the kubeconfig wins, the plugin is not run
    updates["exec_plugin"] = None if (token or cert) else plugin
    return ClusterAccess(**{**access.__dict__, **updates})


def _pair(r: _Reader, u: dict[str, Any], p: str, key: str, base: Path) -> str | None:
    data = r.base64_pem(u.get(f"{key}-data"), f"{p}.{key}-data")
    if data and u.get(key):
        raise r.fail(p, f"{key}-data and {key} are both set")
    return data or r.file_text(u.get(key), f"{p}.{key}", base)


def _exec(r: _Reader, raw: Any, p: str, base: Path) -> ExecPlugin | None:
    if raw is None:
        return None
    e = r.mapping(raw, p)
    command = r.string(e.get("command"), f"{p}.command")
    if not command:
        raise r.fail(f"{p}.command", "is missing")
    if os.sep in command and not os.path.isabs(command):
        # client-go's loader resolves a command with a path separator against the kubeconfig's directory
        command = str(base / command)
    version = r.string(e.get("apiVersion"), f"{p}.apiVersion") or ""
    if version not in EXEC_API_VERSIONS:
        raise r.fail(f"{p}.apiVersion", f"{version!r} is not one client-go speaks ({', '.join(EXEC_API_VERSIONS)})")
    mode = r.string(e.get("interactiveMode"), f"{p}.interactiveMode") or ""
    if not mode:
        if version.endswith("/v1"):
            raise r.fail(f"{p}.interactiveMode", "is required with client.authentication.k8s.io/v1")
        mode = "IfAvailable"  # client-go's default for v1beta1 (api/v1 defaults.go)
    if mode not in INTERACTIVE_MODES:
        raise r.fail(f"{p}.interactiveMode", f"{mode!r} is not one of {', '.join(INTERACTIVE_MODES)}")
    args = []
    for index, arg in enumerate(r.items(e.get("args"), f"{p}.args")):
        text = r.string(arg, f"{p}.args[{index}]")
        args.append(text or "")
    env = []
    for index, item in enumerate(r.items(e.get("env"), f"{p}.env")):
        item = r.mapping(item, f"{p}.env[{index}]")
        name = r.string(item.get("name"), f"{p}.env[{index}].name")
        if not name:
            raise r.fail(f"{p}.env[{index}].name", "is missing")
        env.append((name, r.string(item.get("value"), f"{p}.env[{index}].value") or ""))
    return ExecPlugin(
        command,
        tuple(args),
        tuple(env),
        version,
        mode,
        r.boolean(e.get("provideClusterInfo"), f"{p}.provideClusterInfo"),
        r.string(e.get("installHint"), f"{p}.installHint") or "",
    )
