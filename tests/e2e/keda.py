"""KEDA behind the local API server: the operator, its admission webhooks and its metrics adapter, built from
`github.com/kedacore/keda/v2` (tools/build), run on 127.0.0.1 against the tier's cluster.

What each piece does here, as in a cluster (https://keda.sh/docs/2.21/concepts/scaling-deployments/):
- the operator turns a ScaledObject into an HPA named `keda-hpa-<name>`, and itself scales the target between 0
  and 1 replica on the triggers' activation (the HPA cannot go below 1); it applies
  `autoscaling.keda.sh/paused-replicas` and checks the triggers every `pollingInterval`;
- the admission webhooks refuse what KEDA refuses (two scalers for one workload, an HPA already scaling it, bad
  trigger metadata); registered here with `failurePolicy: Fail` (KEDA's manifests say Ignore, which would let an
  unreachable webhook pass everything silently in a test);
- kube-controller-manager's HPA controller (already running) owns `spec.replicas` from 1 up and enforces
  `minReplicas`; it reads the external metrics through the adapter, served to the API server by aggregation
  (`v1beta1.external.metrics.k8s.io`), so 1 <-> N follows the same trigger values.

The Prometheus server the triggers query is `PrometheusStandIn` (tests/e2e/prometheus_standin.py): the HTTP
query API answering the values a test sets.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

from tests.e2e.cluster import LocalCluster, free_port

NAMESPACE = "keda"
WEBHOOK_PATHS = {
    "scaledobjects": "/validate-keda-sh-v1alpha1-scaledobject",
    "scaledjobs": "/validate-keda-sh-v1alpha1-scaledjob",
    "triggerauthentications": "/validate-keda-sh-v1alpha1-triggerauthentication",
    "clustertriggerauthentications": "/validate-keda-sh-v1alpha1-clustertriggerauthentication",
}


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def keda_certificates(directory: Path) -> None:
    """A CA and one serving/client certificate for 127.0.0.1 (ca.crt, tls.crt, tls.key: the names KEDA reads from
    --cert-dir; the operator's metrics service and the adapter authenticate each other with them, mTLS)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, crt = (directory / n for n in ("ca.key", "ca.crt", "tls.key", "tls.csr", "tls.crt"))
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", str(ca_key), "-out", str(ca),
             "-subj", "/CN=keda-e2e-ca")  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ext = directory / "san.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:keda-operator.keda.svc.cluster.local,"
        "DNS:keda-metrics-apiserver.keda.svc,DNS:keda-admission-webhooks.keda.svc\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2",
             "-out", str(crt), "-extfile", str(ext))  # fmt: skip


class Keda:
    def __init__(self, cluster: LocalCluster):
        self.cluster = cluster
        self.certs = cluster.workdir / "keda-certs"
        self.webhook_port = free_port()
        self.metrics_service_port = free_port()
        self.adapter_port = free_port()

    def start(self) -> None:
        keda_certificates(self.certs)
        cluster = self.cluster
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        env = {"KUBECONFIG": str(cluster.kubeconfig_path), "POD_NAMESPACE": NAMESPACE,
               "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE, "WATCH_NAMESPACE": ""}  # fmt: skip

        def common() -> list[str]:  # each process binds its own probe and metrics ports
            return [f"--cert-dir={self.certs}", f"--health-probe-bind-address=127.0.0.1:{free_port()}",
                    f"--metrics-bind-address=127.0.0.1:{free_port()}", "--zap-log-level=info"]  # fmt: skip

        cluster.spawn("keda-webhooks", ["keda-webhooks", *common(), f"--port={self.webhook_port}"], env=env)
        cluster.spawn(
            "keda-operator",
            [
                "keda-operator",
                *common(),
                "--leader-elect=false",
                "--enable-cert-rotation=false",
                f"--metrics-service-bind-address=127.0.0.1:{self.metrics_service_port}",
                f"--ca-dir={self.certs}",
            ],
            env=env,
        )
        cluster.spawn(
            "keda-adapter",
            [
                "keda-adapter",
                f"--secure-port={self.adapter_port}",
                f"--port={free_port()}",  # its own /metrics (8080 by default: one adapter per machine)
                "--bind-address=127.0.0.1",
                f"--cert-dir={self.certs}",
                f"--tls-cert-file={self.certs / 'tls.crt'}",
                f"--tls-private-key-file={self.certs / 'tls.key'}",
                f"--metrics-service-address=127.0.0.1:{self.metrics_service_port}",
                "--metrics-service-grpc-authority=127.0.0.1",
                f"--lister-kubeconfig={cluster.kubeconfig_path}",
                f"--authentication-kubeconfig={cluster.kubeconfig_path}",
                f"--authorization-kubeconfig={cluster.kubeconfig_path}",
                f"--requestheader-client-ca-file={cluster.workdir / 'pki' / 'front-proxy-ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
            ],
            env=env,
        )
        self._register()
        self._wait_webhook()

    def _register(self) -> None:
        ca_bundle = base64.b64encode((self.certs / "ca.crt").read_bytes()).decode()
        webhooks = [
            {
                "name": f"v{resource[:-1]}.kb.io",
                "admissionReviewVersions": ["v1"],
                "clientConfig": {"url": f"https://127.0.0.1:{self.webhook_port}{path}", "caBundle": ca_bundle},
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "timeoutSeconds": 10,
                "rules": [
                    {
                        "apiGroups": ["keda.sh"],
                        "apiVersions": ["v1alpha1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": [resource],
                    }
                ],
            }
            for resource, path in WEBHOOK_PATHS.items()
        ]
        # The adapter as the API server reaches an aggregated API: through a Service. An ExternalName Service
        # resolves to a host name (k8s.io/apiserver pkg/util/proxy ResolveCluster), here the adapter on loopback.
        self.cluster.apply(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "keda-admission"},
                "webhooks": webhooks,
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "keda-metrics-apiserver", "namespace": NAMESPACE},
                "spec": {
                    "type": "ExternalName",
                    "externalName": "localhost",
                    "ports": [{"name": "https", "port": self.adapter_port}],
                },  # fmt: skip
            },
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
                "spec": {
                    "group": "external.metrics.k8s.io",
                    "version": "v1beta1",
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                    "caBundle": ca_bundle,
                    "service": {"name": "keda-metrics-apiserver", "namespace": NAMESPACE, "port": self.adapter_port},
                },
            },
        )

    def _wait_webhook(self, timeout: float = 90) -> None:
        """Until the webhook answers through the API server: a server-side dry run of a ScaledObject that the CRD's
        schema accepts and KEDA's webhook refuses (two triggers of one name: ValidateTriggers) is refused by KEDA."""
        cron = {"timezone": "UTC", "start": "0 8 * * *", "end": "0 9 * * *", "desiredReplicas": "1"}
        probe = {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "keda-e2e-probe", "namespace": NAMESPACE},
            "spec": {
                "scaleTargetRef": {"name": "none"},
                "triggers": [{"type": "cron", "name": "same", "metadata": cron}] * 2,
            },
        }
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name in ("keda-webhooks", "keda-operator", "keda-adapter"):
                self.cluster.check_alive(name)
            result = self.cluster.kubectl("create", "--dry-run=server", "-f", "-", check=False, input=json.dumps(probe))
            last = result.stderr
            if "admission webhook" in last and "denied the request" in last:
                return
            time.sleep(1)
        raise RuntimeError(f"KEDA's admission webhook did not answer: {last}\n{self.cluster.logs('keda-webhooks')}")

    def external_metrics_served(self) -> bool:
        return self.cluster.get("/apis/external.metrics.k8s.io/v1beta1") is not None
