"""The API client against hostile or broken servers (a local HTTPS server, tests/modelops_cli/kube_fakes.py): no
redirect is followed (the token never reaches another host), HTML, JSON lists, deeply nested, huge, endless
or trickling bodies and headers that never come end in a clear error within the deadline (exit 1: a cluster
problem), TLS is verified against the kubeconfig's CA and `tls-server-name`, and client key material never
outlives the loading of the SSL context."""

from __future__ import annotations

import base64
import os
import tempfile
import time

import pytest

from modelops_cli import kubeapi
from modelops_cli.cli import main
from modelops_cli.kubeapi import ClusterApiError, KubeApi
from modelops_cli.kubeconfig import KubeconfigError, load_kubeconfig
from tests.modelops_cli.kube_fakes import FakeKube, SlowHeaders, kubeconfig, make_certificates

NAMESPACE = "/api/v1/namespaces/monitoring"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("pki"))


def b64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@pytest.fixture
def https(certs):
    server = FakeKube({NAMESPACE: {"metadata": {"name": "monitoring"}}}, tls=certs)
    yield server
    server.stop()


def verified(tmp_path, certs, server: str, **cluster) -> KubeApi:
    config = {"server": server, "certificate-authority-data": b64(certs["server.crt"]), **cluster}
    return KubeApi.from_kubeconfig(str(kubeconfig(tmp_path / "kubeconfig", config)))


def test_tls_is_verified_against_the_kubeconfigs_ca(tmp_path, certs, https):
    assert verified(tmp_path, certs, https.url).get(NAMESPACE) == {"metadata": {"name": "monitoring"}}
    unverified = KubeApi.from_kubeconfig(str(kubeconfig(tmp_path / "k2", {"server": https.url})))
    with pytest.raises(ClusterApiError, match="TLS verification failed"):
        unverified.get(NAMESPACE)


def test_insecure_skip_tls_verify_is_honoured_only_as_a_bool(tmp_path, https):
    api = KubeApi.from_kubeconfig(
        str(kubeconfig(tmp_path / "k", {"server": https.url, "insecure-skip-tls-verify": True}))
    )
    assert api.get(NAMESPACE) is not None
    # YAML 1.1 `yes` is a bool for PyYAML and for client-go's YAML decoder alike; a quoted value is not
    with pytest.raises(KubeconfigError, match="must be true or false"):
        load_kubeconfig(str(kubeconfig(tmp_path / "k3", {"server": https.url, "insecure-skip-tls-verify": "true"})))


def test_tls_server_name_is_the_name_verified(tmp_path, certs, https):
    """client-go's tls-server-name: dial 127.0.0.1, verify the certificate for api.internal (in its SANs)."""
    assert verified(tmp_path, certs, https.url, **{"tls-server-name": "api.internal"}).get(NAMESPACE) is not None
    api = verified(tmp_path, certs, https.url, **{"tls-server-name": "wrong.internal"})
    with pytest.raises(ClusterApiError, match="TLS verification failed"):
        api.get(NAMESPACE)


def test_a_redirect_is_never_followed_and_the_token_never_leaves(tmp_path, https):
    elsewhere = FakeKube({NAMESPACE: {"metadata": {"name": "monitoring"}}})
    try:
        plain = FakeKube({})
        plain.hostile, plain.redirect_to = "redirect", elsewhere.url
        config = kubeconfig(tmp_path / "k", {"server": plain.url})
        code = main(["preflight", "--stack", "prod", "--cluster-only", "--kubeconfig", str(config)])
        assert code == 1
        assert elsewhere.requests == []
        assert [auth for _, auth in plain.requests] == ["Bearer t0ken"]
    finally:
        elsewhere.stop()
        plain.stop()


@pytest.mark.parametrize(
    "mode, message",
    [
        ("redirect", "answered 302 redirecting to"),
        ("html", "the answer is not JSON (text/html): is this an API server?"),
        ("list", "the answer is JSON but not an object (list)"),
        ("nested", "the answer is not JSON"),
        ("huge-declared", "more than the 8388608 accepted"),
        ("endless", "larger than the 8388608 bytes accepted"),
        ("unauthorized", "refused the credentials (401): Unauthorized"),
    ],
)
def test_an_odd_answer_is_a_clear_cluster_failure(tmp_path, capsys, mode, message):
    server = FakeKube({})
    server.hostile, server.redirect_to = mode, "http://127.0.0.1:9"
    try:
        config = kubeconfig(tmp_path / "k", {"server": server.url})
        code = main(["preflight", "--stack", "prod", "--cluster-only", "--kubeconfig", str(config)])
        captured = capsys.readouterr()
        assert code == 1 and message in captured.out, captured
        assert "Traceback" not in captured.err
    finally:
        server.stop()


def test_escape_sequences_from_the_server_are_made_inert(tmp_path, capsys):
    server = FakeKube({})
    server.hostile = "escape"
    try:
        config = kubeconfig(tmp_path / "k", {"server": server.url})
        assert main(["preflight", "--stack", "prod", "--cluster-only", "--kubeconfig", str(config)]) == 1
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x07" not in out and "boom \\x1b[2J" in out, out
    finally:
        server.stop()


@pytest.mark.parametrize("mode", ["trickle", "slow-headers"])
def test_a_server_that_never_finishes_is_cut_off_at_the_deadline(tmp_path, mode):
    server = SlowHeaders() if mode == "slow-headers" else FakeKube({})
    if isinstance(server, FakeKube):
        server.hostile = "trickle"
    try:
        api = KubeApi(load_kubeconfig(str(kubeconfig(tmp_path / "k", {"server": server.url}))), timeout=2)
        started = time.monotonic()
        with pytest.raises(ClusterApiError, match="within 2 s|did not end in time"):
            api.get(NAMESPACE)
        assert time.monotonic() - started < 6
    finally:
        server.stop()


def test_an_unreachable_server_is_a_cluster_failure(tmp_path, capsys):
    config = kubeconfig(tmp_path / "k", {"server": "http://127.0.0.1:9"})
    assert main(["preflight", "--stack", "prod", "--cluster-only", "--kubeconfig", str(config)]) == 1
    assert "cannot reach the API server http://127.0.0.1:9" in capsys.readouterr().out


@pytest.fixture
def key_dirs(monkeypatch):
    """Every temporary directory the client makes for key material."""
    made: list[str] = []
    real = tempfile.mkdtemp

    def recording(*args, **kwargs):
        path = real(*args, **kwargs)
        made.append(path)
        return path

    monkeypatch.setattr(kubeapi.tempfile, "mkdtemp", recording)
    return made


def test_client_certificates_authenticate_and_leave_no_key_behind(tmp_path, certs, key_dirs, monkeypatch):
    server = FakeKube({NAMESPACE: {"metadata": {"name": "monitoring"}}}, tls=certs, client_ca=certs["client.crt"])
    modes = []
    real_open = os.open

    def recording_open(path, flags, mode=0o777, *args, **kwargs):
        modes.append((os.path.basename(path), mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(kubeapi.os, "open", recording_open)
    try:
        user = {"client-certificate-data": b64(certs["client.crt"]), "client-key-data": b64(certs["client.key"])}
        cluster = {"server": server.url, "certificate-authority-data": b64(certs["server.crt"])}
        api = KubeApi.from_kubeconfig(str(kubeconfig(tmp_path / "k", cluster, user)))
        assert api.get(NAMESPACE) == {"metadata": {"name": "monitoring"}}
        assert server.requests and server.requests[0][1] is None  # the certificate, no bearer token
        assert key_dirs and not any(os.path.exists(d) for d in key_dirs)
        assert ("client.key", 0o600) in modes
    finally:
        server.stop()


def test_a_key_that_does_not_match_its_certificate_is_refused_and_removed(tmp_path, certs, https, key_dirs, capsys):
    user = {"client-certificate-data": b64(certs["client.crt"]), "client-key-data": b64(certs["other.key"])}
    cluster = {"server": https.url, "certificate-authority-data": b64(certs["server.crt"])}
    config = kubeconfig(tmp_path / "k", cluster, user)
    assert main(["preflight", "--stack", "prod", "--cluster-only", "--kubeconfig", str(config)]) == 2
    assert "the kubeconfig's certificates cannot be used" in capsys.readouterr().err
    assert key_dirs and not any(os.path.exists(d) for d in key_dirs)
