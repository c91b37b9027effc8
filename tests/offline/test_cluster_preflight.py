"""modelops preflight against a faked Kubernetes API: a cluster that has what prod needs passes; one that
lacks a CRD, a namespace, the Gateway, the CSI driver or a Prometheus that selects the stack's labels fails
(exit 1) and says which. (The real-engine tier runs it against a real API server.)"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from offline.cli import main

APIS = {
    "monitoring.coreos.com/v1": ["servicemonitors", "prometheusrules", "prometheuses"],
    "karpenter.sh/v1": ["nodepools"],
    "karpenter.k8s.aws/v1": ["ec2nodeclasses"],
    "keda.sh/v1alpha1": ["scaledobjects"],
    "gateway.networking.k8s.io/v1": ["httproutes", "gateways"],
}
PROMETHEUS: dict[str, Any] = {
    "metadata": {"name": "kube-prometheus-stack-prometheus"},
    "spec": {
        "serviceMonitorSelector": {"matchLabels": {"release": "kube-prometheus-stack"}},
        "ruleSelector": {"matchLabels": {"release": "kube-prometheus-stack"}},
    },
}


def complete_cluster() -> dict[str, object]:
    objects: dict[str, object] = {f"/apis/{gv}": {"resources": [{"name": r} for r in rs]} for gv, rs in APIS.items()}
    objects.update(
        {
            "/api/v1/namespaces/monitoring": {},
            "/api/v1/namespaces/gateway-system": {},
            "/apis/gateway.networking.k8s.io/v1/namespaces/gateway-system/gateways/models": {},
            "/apis/storage.k8s.io/v1/csidrivers/s3.csi.aws.com": {},
            "/apis/monitoring.coreos.com/v1/prometheuses": {"items": [PROMETHEUS]},
        }
    )
    return objects


@pytest.fixture
def fake_cluster(tmp_path):
    objects = complete_cluster()
    seen_tokens = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen_tokens.append(self.headers.get("Authorization"))
            body = objects.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
                "users": [{"name": "fake", "user": {"token": "t0ken"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            }
        )
    )
    yield objects, kubeconfig, seen_tokens
    server.shutdown()


def preflight(kubeconfig, capsys) -> tuple[int, str]:
    code = main(["preflight", "--stack", "prod", "--cluster-only", "--kubeconfig", str(kubeconfig)])
    return code, capsys.readouterr().out


def test_a_cluster_with_every_prerequisite_passes(fake_cluster, capsys):
    _, kubeconfig, tokens = fake_cluster
    code, out = preflight(kubeconfig, capsys)
    assert code == 0, out
    assert "PASS" in out and "Prometheus kube-prometheus-stack-prometheus selects" in out
    assert set(tokens) == {"Bearer t0ken"}


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda o: o.pop("/apis/keda.sh/v1alpha1"), "scaledobjects (keda.sh/v1alpha1) is not served"),
        (lambda o: o.pop("/apis/karpenter.sh/v1"), "nodepools (karpenter.sh/v1) is not served"),
        (lambda o: o.pop("/api/v1/namespaces/monitoring"), "namespace monitoring does not exist"),
        (
            lambda o: o.pop("/apis/gateway.networking.k8s.io/v1/namespaces/gateway-system/gateways/models"),
            "Gateway gateway-system/models does not exist",
        ),
        (
            lambda o: o.pop("/apis/storage.k8s.io/v1/csidrivers/s3.csi.aws.com"),
            "CSIDriver s3.csi.aws.com) is not installed",
        ),
        (
            lambda o: o.update(
                {
                    "/apis/monitoring.coreos.com/v1/prometheuses": {
                        "items": [
                            {
                                **PROMETHEUS,
                                "spec": {**PROMETHEUS["spec"], "ruleSelector": {"matchLabels": {"release": "other"}}},
                            }
                        ]
                    }
                }
            ),
            "no Prometheus selects the labels the stack sets",
        ),
    ],
)
def test_a_missing_prerequisite_fails_and_says_which(fake_cluster, capsys, break_it, message):
    objects, kubeconfig, _ = fake_cluster
    break_it(objects)
    code, out = preflight(kubeconfig, capsys)
    assert code == 1 and message in out, out


def test_an_unusable_kubeconfig_is_a_usage_error(tmp_path, capsys):
    bad = tmp_path / "kubeconfig"
    bad.write_text("current-context: nowhere\ncontexts: []\n")
    assert main(["preflight", "--stack", "prod", "--cluster-only", "--kubeconfig", str(bad)]) == 2
    assert "no context 'nowhere'" in capsys.readouterr().err
