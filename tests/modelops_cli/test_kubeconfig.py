"""`preflight --kubeconfig` reads kubeconfigs as client-go does, or refuses them with the key path (exit 2):
wrong types at every level, missing keys, lists where maps are, bad base64, a quoted `insecure-skip-tls-verify`,
insecure with a CA; and it runs exec credential plugins (`aws eks get-token`) as client-go runs them. The
reference is k8s.io/client-go v0.36: tools/clientcmd/api/v1/types.go (field types), tools/clientcmd/validation.go
(what is refused), plugin/pkg/client/auth/exec/exec.go (the plugin protocol)."""

from __future__ import annotations

import json
import stat
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops_cli import kubeapi
from modelops_cli.cli import main
from modelops_cli.kubeapi import KubeApi
from modelops_cli.kubeconfig import KubeconfigError, load_kubeconfig
from tests.modelops_cli.kube_fakes import FakeKube, kubeconfig


def base(server: str = "https://127.0.0.1:6443") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    }


def refused(tmp_path: Path, config: Any, capsys) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    code = main(["preflight", "--stack", "prod", "--cluster-only", "--kubeconfig", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def edit(change) -> dict[str, Any]:
    config = base()
    change(config)
    return config


@pytest.mark.parametrize(
    "config, message",
    [
        ("[1, 2", "not valid YAML"),
        ("- a\n- b\n", "(top level): must be a map, not a list"),
        (edit(lambda c: c.update(clusters={"k": {}})), "clusters: must be a list, not a map"),
        (edit(lambda c: c["clusters"].append("k")), "clusters[1]: must be a map, not a string"),
        (edit(lambda c: c["clusters"][0].pop("name")), "clusters[0].name: is missing"),
        (edit(lambda c: c["clusters"][0].update(cluster=["x"])), "clusters[0].cluster: must be a map, not a list"),
        (edit(lambda c: c["clusters"][0]["cluster"].pop("server")), "clusters[0].cluster.server: is missing"),
        (
            edit(lambda c: c["clusters"][0]["cluster"].update(server=6443)),
            "clusters[0].cluster.server: must be a string",
        ),
        (edit(lambda c: c["clusters"][0]["cluster"].update(server="ftp://x")), "is not an http(s) URL"),
        # client-go decodes the field into a Go bool: a quoted "false" is an error there, never "true"
        (
            edit(lambda c: c["clusters"][0]["cluster"].update({"insecure-skip-tls-verify": "false"})),
            "clusters[0].cluster.insecure-skip-tls-verify: must be true or false (a YAML bool), not a string 'false'",
        ),
        (
            edit(
                lambda c: c["clusters"][0]["cluster"].update(
                    {"insecure-skip-tls-verify": True, "certificate-authority-data": "LS0tLQ=="}
                )
            ),
            "insecure-skip-tls-verify and a certificate authority are both set (client-go refuses this)",
        ),
        (
            edit(lambda c: c["clusters"][0]["cluster"].update({"certificate-authority-data": "%%%not base64"})),
            "clusters[0].cluster.certificate-authority-data: is not valid base64",
        ),
        (
            edit(lambda c: c["clusters"][0]["cluster"].update({"certificate-authority-data": "/w=="})),
            "certificate-authority-data: does not decode to PEM text",
        ),
        (
            edit(lambda c: c["clusters"][0]["cluster"].update({"certificate-authority": "/nonexistent/ca.crt"})),
            "clusters[0].cluster.certificate-authority: cannot read /nonexistent/ca.crt",
        ),
        (
            edit(lambda c: c["clusters"][0]["cluster"].update({"proxy-url": "http://proxy:3128"})),
            "proxies are not supported",
        ),
        (
            edit(lambda c: c["users"][0]["user"].update(token=["t"])),
            "users[0].user.token: must be a string, not a list",
        ),
        # a token that would break the Authorization header (and be echoed by its error) is refused unquoted
        (
            edit(lambda c: c["users"][0]["user"].update(token="s3cret\r\nX-Evil: 1")),
            "users[0].user.token: contains characters an HTTP bearer token cannot carry",
        ),
        (
            edit(lambda c: c["clusters"][0]["cluster"].update(server="https://admin:s3cret@127.0.0.1:6443")),
            "clusters[0].cluster.server: must not carry credentials",
        ),
        (edit(lambda c: c["clusters"][0]["cluster"].update(server="https://127.0.0.1:port")), "server: is not a URL"),
        (
            edit(lambda c: c["users"][0].update(user={"client-certificate-data": "LS0tLQ=="})),
            "needs both client-certificate(-data) and client-key(-data)",
        ),
        (
            edit(lambda c: c["users"][0].update(user={"username": "a", "password": "b"})),
            "basic authentication was removed",
        ),
        (
            edit(lambda c: c["users"][0].update(user={"auth-provider": {"name": "gcp"}})),
            "auth-provider plugins were removed",
        ),
        (
            edit(lambda c: c["users"][0]["user"].update({"as": "admin"})),
            "users[0].user.as: impersonation is not supported",
        ),
        (edit(lambda c: c.update({"current-context": "nope"})), "no context 'nope'"),
        (edit(lambda c: c.pop("current-context")), "no current-context, and no --context given"),
        (edit(lambda c: c["contexts"][0]["context"].update(cluster="gone")), "names cluster 'gone', not defined"),
        (edit(lambda c: c["contexts"][0]["context"].update(user="gone")), "names user 'gone', not defined"),
        (edit(lambda c: c["users"][0].update(user={"exec": "aws"})), "users[0].user.exec: must be a map, not a string"),
        (
            edit(lambda c: c["users"][0].update(user={"exec": {"apiVersion": "client.authentication.k8s.io/v1"}})),
            "users[0].user.exec.command: is missing",
        ),
        (
            edit(
                lambda c: c["users"][0].update(
                    user={"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1alpha1"}}
                )
            ),
            "'client.authentication.k8s.io/v1alpha1' is not one client-go speaks",
        ),
        (
            # client-go's validation: v1 plugins must say whether they use standard input
            edit(
                lambda c: c["users"][0].update(
                    user={"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}}
                )
            ),
            "users[0].user.exec.interactiveMode: is required with client.authentication.k8s.io/v1",
        ),
        (
            edit(
                lambda c: c["users"][0].update(
                    user={"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1beta1", "args": [1]}}
                )
            ),
            "users[0].user.exec.args[0]: must be a string, not a number",
        ),
        (
            edit(
                lambda c: c["users"][0].update(
                    user={
                        "exec": {
                            "command": "aws",
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "env": [{"value": "x"}],
                        }
                    }
                )
            ),
            "users[0].user.exec.env[0].name: is missing",
        ),
    ],
)
def test_a_malformed_kubeconfig_is_refused_with_its_key_path(tmp_path, capsys, config, message):
    err = refused(tmp_path, config, capsys)
    assert message in err, err
    assert "s3cret" not in err


def test_a_huge_kubeconfig_is_refused_without_reading_it_all(tmp_path, capsys):
    path = tmp_path / "kubeconfig"
    with open(path, "wb") as out:
        out.truncate(64 * 1024 * 1024)
    code = main(["preflight", "--stack", "prod", "--cluster-only", "--kubeconfig", str(path)])
    assert code == 2 and "larger than 4 MiB" in capsys.readouterr().err


def test_kubeconfig_lists_merge_as_client_go_does(tmp_path):
    """KUBECONFIG=a:b: the first file to define a name or the current context wins (clientcmd loader.go)."""
    first, second = base("https://first.example:6443"), base("https://second.example:6443")
    second["current-context"] = "other"
    second["contexts"].append({"name": "other", "context": {"cluster": "k", "user": "u"}})
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text(yaml.safe_dump(first))
    b.write_text(yaml.safe_dump(second))
    access = load_kubeconfig(f"{a}:{b}")
    assert access.server == "https://first.example:6443"
    assert load_kubeconfig(f"{a}:{b}", "other").server == "https://first.example:6443"


def test_a_token_or_certificate_wins_over_an_exec_plugin(tmp_path):
    config = base()
    config["users"][0]["user"]["exec"] = {"command": "never-run", "apiVersion": "client.authentication.k8s.io/v1beta1"}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    access = load_kubeconfig(str(path))
    assert access.token == "t" and access.exec_plugin is None


# ---- exec credential plugins ----


PLUGIN = textwrap.dedent(
    """\
    #!{python}
    import json, os, sys, time
    info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
    log = os.environ["PLUGIN_LOG"]
    with open(log, "a") as out:
        out.write(json.dumps({{"argv": sys.argv[1:], "info": info, "region": os.environ.get("AWS_REGION"),
                              "stdin_tty": sys.stdin is not None and not sys.stdin.closed and os.isatty(0),
                              "stdin_devnull": os.path.realpath("/proc/self/fd/0") == "/dev/null"}}) + "\\n")
    mode = os.environ.get("PLUGIN_MODE", "token")
    calls = sum(1 for _ in open(log))
    if mode == "sleep":
        time.sleep(30)
    if mode == "fail":
        sys.stderr.write("no credentials\\n")
        sys.exit(3)
    if mode == "garbage":
        print("<html>")
        sys.exit(0)
    if mode == "spew":
        while True:
            sys.stdout.write("x" * 65536)
    version = "client.authentication.k8s.io/v1alpha1" if mode == "wrong-version" else info["apiVersion"]
    expiry = os.environ.get("PLUGIN_EXPIRY")
    status = {{"token": "exec-token-%d" % calls}}
    if expiry:
        status["expirationTimestamp"] = expiry
    print(json.dumps({{"apiVersion": version, "kind": "ExecCredential", "status": status}}))
    """
)


@pytest.fixture
def plugin(tmp_path):
    script = tmp_path / "fake-get-token"
    script.write_text(PLUGIN.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def exec_config(tmp_path: Path, server: str, plugin: Path, **extra: Any) -> Path:
    """A kubeconfig as `aws eks update-kubeconfig` writes it, the command replaced by the fake plugin."""
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": str(plugin),
            "args": ["--region", "us-east-1", "eks", "get-token", "--cluster-name", "ml-prod"],
            "env": [{"name": "AWS_REGION", "value": "us-east-1"}],
            **extra,
        }
    }
    return kubeconfig(
        tmp_path / "kubeconfig",
        {
            "server": server,
            "extensions": [{"name": "client.authentication.k8s.io/exec", "extension": {"audience": "x"}}],
        },
        user,
    )


def calls(tmp_path: Path) -> list[dict[str, Any]]:
    log = tmp_path / "plugin.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def api_server():
    server = FakeKube({"/api/v1/namespaces/monitoring": {"metadata": {"name": "monitoring"}}})
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def plugin_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PLUGIN_LOG", str(tmp_path / "plugin.log"))
    monkeypatch.delenv("PLUGIN_MODE", raising=False)
    monkeypatch.delenv("PLUGIN_EXPIRY", raising=False)


def test_an_exec_plugin_is_run_as_client_go_runs_it(tmp_path, plugin, api_server):
    api = KubeApi.from_kubeconfig(str(exec_config(tmp_path, api_server.url, plugin, provideClusterInfo=True)))
    assert api.get("/api/v1/namespaces/monitoring") == {"metadata": {"name": "monitoring"}}
    assert api.get("/api/v1/namespaces/models") is None
    assert [auth for _, auth in api_server.requests] == ["Bearer exec-token-1", "Bearer exec-token-1"]
    (call,) = calls(tmp_path)  # a credential without expiry is kept
    assert call["argv"] == ["--region", "us-east-1", "eks", "get-token", "--cluster-name", "ml-prod"]
    assert call["region"] == "us-east-1"
    assert call["info"]["kind"] == "ExecCredential" and call["info"]["apiVersion"].endswith("/v1beta1")
    # v1beta1 defaults to IfAvailable: no terminal under pytest, so not interactive and no stdin
    assert call["info"]["spec"]["interactive"] is False and call["stdin_devnull"]
    assert call["info"]["spec"]["cluster"] == {"server": api_server.url, "config": {"audience": "x"}}


def test_cluster_info_is_given_only_when_asked(tmp_path, plugin, api_server):
    KubeApi.from_kubeconfig(str(exec_config(tmp_path, api_server.url, plugin))).get("/api/v1/namespaces/monitoring")
    assert "cluster" not in calls(tmp_path)[0]["info"]["spec"]


def test_an_expiring_credential_is_fetched_again_once_expired(tmp_path, plugin, api_server, monkeypatch):
    soon = datetime.now(UTC) + timedelta(seconds=1)
    monkeypatch.setenv("PLUGIN_EXPIRY", soon.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    api = KubeApi.from_kubeconfig(str(exec_config(tmp_path, api_server.url, plugin)))
    api.get("/api/v1/namespaces/monitoring")
    monkeypatch.setenv("PLUGIN_EXPIRY", (datetime.now(UTC) + timedelta(hours=1)).isoformat())
    api._credentials.expires = datetime.now(UTC) - timedelta(seconds=1)  # type: ignore[union-attr]
    api.get("/api/v1/namespaces/monitoring")
    assert [auth for _, auth in api_server.requests] == ["Bearer exec-token-1", "Bearer exec-token-2"]


def test_a_401_runs_the_plugin_again_once(tmp_path, plugin, api_server):
    api_server.hostile = "unauthorized"
    api = KubeApi.from_kubeconfig(str(exec_config(tmp_path, api_server.url, plugin)))
    with pytest.raises(kubeapi.ClusterApiError, match="refused the credentials"):
        api.get("/api/v1/namespaces/monitoring")
    assert [auth for _, auth in api_server.requests] == ["Bearer exec-token-1", "Bearer exec-token-2"]


@pytest.mark.parametrize(
    "mode, extra, message",
    [
        ("fail", {}, "failed with exit code 3"),
        ("garbage", {}, "its output is not JSON"),
        (
            "wrong-version",
            {},
            "configured for client.authentication.k8s.io/v1beta1, it returned client.authentication.k8s.io/v1alpha1",
        ),
        ("token", {"interactiveMode": "Always"}, "interactiveMode Always needs a terminal on standard input"),
        ("spew", {}, "wrote more than 1048576 bytes"),
    ],
)
def test_a_failing_plugin_is_a_usage_error_naming_it(
    tmp_path, plugin, api_server, monkeypatch, capsys, mode, extra, message
):
    monkeypatch.setenv("PLUGIN_MODE", mode)
    config = exec_config(tmp_path, api_server.url, plugin, **extra)
    code = main(["preflight", "--stack", "prod", "--cluster-only", "--kubeconfig", str(config)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and str(plugin) in err, err


def test_an_expired_credential_is_refused(tmp_path, plugin, api_server, monkeypatch):
    monkeypatch.setenv("PLUGIN_EXPIRY", "2020-01-01T00:00:00Z")
    api = KubeApi.from_kubeconfig(str(exec_config(tmp_path, api_server.url, plugin)))
    with pytest.raises(KubeconfigError, match="returned a credential that expired at 2020-01-01T00:00:00Z"):
        api.get("/api/v1/namespaces/monitoring")


def test_a_plugin_that_hangs_is_stopped_at_its_deadline(tmp_path, plugin, api_server, monkeypatch):
    monkeypatch.setenv("PLUGIN_MODE", "sleep")
    monkeypatch.setattr(kubeapi, "EXEC_SECONDS", 1.0)
    api = KubeApi.from_kubeconfig(str(exec_config(tmp_path, api_server.url, plugin)))
    started = datetime.now(UTC)
    with pytest.raises(KubeconfigError, match="did not finish within 1 s"):
        api.get("/api/v1/namespaces/monitoring")
    assert (datetime.now(UTC) - started).total_seconds() < 10


def test_a_missing_plugin_names_its_install_hint(tmp_path, api_server, capsys):
    config = exec_config(tmp_path, api_server.url, tmp_path / "no-such-aws", installHint="install the AWS CLI v2")
    code = main(["preflight", "--stack", "prod", "--cluster-only", "--kubeconfig", str(config)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot be run" in err and "install the AWS CLI v2" in err, err


def test_a_relative_exec_command_is_found_beside_the_kubeconfig(tmp_path, plugin, api_server):
    """client-go's loader resolves a command containing a path separator against the kubeconfig's directory."""
    config = exec_config(tmp_path, api_server.url, Path(".") / "sub" / plugin.name)
    (tmp_path / "sub").mkdir()
    plugin.rename(tmp_path / "sub" / plugin.name)
    api = KubeApi.from_kubeconfig(str(config))
    assert api.get("/api/v1/namespaces/monitoring") is not None
    assert [auth for _, auth in api_server.requests] == ["Bearer exec-token-1"]


def test_a_token_the_plugin_returns_must_fit_a_header(tmp_path, api_server):
    script = tmp_path / "bad-token"
    answer = {"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
              "status": {"token": "abc\r\nX-Evil: 1"}}  # fmt: skip
    script.write_text(f"#!{sys.executable}\nimport json\nprint(json.dumps({answer!r}))\n")
    script.chmod(0o700)
    api = KubeApi.from_kubeconfig(str(exec_config(tmp_path, api_server.url, script)))
    with pytest.raises(KubeconfigError, match="status.token contains characters") as info:
        api.get("/api/v1/namespaces/monitoring")
    assert "Evil" not in str(info.value) and api_server.requests == []
