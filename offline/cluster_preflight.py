"""Cluster prerequisites: what a stack's objects need from the cluster they deploy to, checked through its
Kubernetes API before `pulumi up` finds out half-way.

The APIs the components emit must be served (Karpenter v1, KEDA, the Prometheus Operator, the Gateway API
when a gateway is set, the Mountpoint for Amazon S3 CSI driver when a model mounts its weights), the Gateway
and the namespaces the stack uses but does not own must exist, and the cluster's Prometheus must select the
labels the stack puts on its ServiceMonitors and PrometheusRules.
"""

import base64
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.config import ArtifactAccess, StackConfig


class KubeconfigError(Exception):
    """The kubeconfig cannot be read or has no usable context."""


@dataclass
class ClusterReport:
    server: str
    problems: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class KubeApi:
    """GET requests to an API server with a kubeconfig's credentials (client certificate or bearer token)."""

    def __init__(self, kubeconfig: Path, context: str | None = None):
        try:
            config = yaml.safe_load(kubeconfig.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise KubeconfigError(f"{kubeconfig}: {exc}") from None
        name = context or config.get("current-context")
        ctx = next((c["context"] for c in config.get("contexts") or [] if c.get("name") == name), None)
        if ctx is None:
            raise KubeconfigError(f"{kubeconfig}: no context {name!r}")
        cluster: dict[str, Any] = next(
            (c["cluster"] for c in config.get("clusters") or [] if c.get("name") == ctx.get("cluster")), {}
        )
        user: dict[str, Any] = next(
            (u["user"] for u in config.get("users") or [] if u.get("name") == ctx.get("user")), {}
        )
        self.server = str(cluster.get("server", "")).rstrip("/")
        if not self.server:
            raise KubeconfigError(f"{kubeconfig}: context {name!r} names no cluster server")
        self._ssl = ssl.create_default_context()
        files = tempfile.mkdtemp(prefix="modelops-kube-")

        def material(data_key: str, path_key: str, source: dict[str, Any], file_name: str) -> str | None:
            if source.get(data_key):
                path = Path(files, file_name)
                path.write_bytes(base64.b64decode(source[data_key]))
                os.chmod(path, 0o600)
                return str(path)
            return source.get(path_key)

        ca = material("certificate-authority-data", "certificate-authority", cluster, "ca.crt")
        if ca:
            self._ssl.load_verify_locations(ca)
        if cluster.get("insecure-skip-tls-verify"):
            self._ssl.check_hostname = False
            self._ssl.verify_mode = ssl.CERT_NONE
        cert = material("client-certificate-data", "client-certificate", user, "client.crt")
        key = material("client-key-data", "client-key", user, "client.key")
        if cert and key:
            self._ssl.load_cert_chain(cert, key)
        self._token = user.get("token")

    def get(self, path: str) -> dict[str, Any] | None:
        """The object at `path`, or None when the server answers 404."""
        request = urllib.request.Request(self.server + path, headers={"Accept": "application/json"})
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, context=self._ssl, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise


def _required_apis(cfg: StackConfig) -> list[tuple[str, str, str]]:
    """(group/version, resource, why) the stack's objects need served."""
    needed = [
        ("monitoring.coreos.com/v1", "servicemonitors", "every model's ServiceMonitor (Prometheus Operator)"),
        ("monitoring.coreos.com/v1", "prometheusrules", "every model's alerts (Prometheus Operator)"),
    ]
    if cfg.gpu_pools:
        needed += [
            ("karpenter.sh/v1", "nodepools", "the GPU pools (Karpenter v1)"),
            ("karpenter.k8s.aws/v1", "ec2nodeclasses", "the GPU pools' node classes (Karpenter v1)"),
        ]
    if any(m.autoscaling.prometheus_query for m in cfg.models.values()):
        needed.append(("keda.sh/v1alpha1", "scaledobjects", "models that scale on a Prometheus query (KEDA)"))
    if cfg.cluster.gateway:
        needed += [
            ("gateway.networking.k8s.io/v1", "httproutes", "the models' routes (Gateway API)"),
            ("gateway.networking.k8s.io/v1", "gateways", "the Gateway the routes attach to (Gateway API)"),
        ]
    return needed


def _matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels; matchExpressions In/NotIn/Exists/DoesNotExist) against labels."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values):
            return False
        if (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def check_cluster(cfg: StackConfig, api: KubeApi) -> ClusterReport:
    report = ClusterReport(api.server)
    served: dict[str, set[str]] = {}
    for group_version, resource, why in _required_apis(cfg):
        if group_version not in served:
            listing = api.get(f"/apis/{group_version}")
            served[group_version] = {r["name"] for r in (listing or {}).get("resources", [])}
        if resource in served[group_version]:
            report.passed.append(f"{resource}.{group_version} is served")
        else:
            report.problems.append(f"{resource} ({group_version}) is not served: needed for {why}; install its CRDs")

    if any(m.artifact_access == ArtifactAccess.MOUNT for m in cfg.models.values()):
        if api.get("/apis/storage.k8s.io/v1/csidrivers/s3.csi.aws.com") is None:
            report.problems.append(
                "the Mountpoint for Amazon S3 CSI driver (CSIDriver s3.csi.aws.com) is not installed:"
                " needed for models with artifactAccess: mount (EKS add-on aws-mountpoint-s3-csi-driver)"
            )
        else:
            report.passed.append("CSIDriver s3.csi.aws.com is installed")

    namespaces = {cfg.cluster.monitoring_namespace: "the monitoring namespace (Prometheus, dashboards)"}
    if cfg.cluster.gateway:
        namespaces[cfg.cluster.gateway.namespace] = "the Gateway's namespace"
        namespaces.setdefault(cfg.cluster.ingress_namespace, "the ingress namespace (the gateway's proxies)")
    for namespace, why in namespaces.items():
        if api.get(f"/api/v1/namespaces/{namespace}") is None:
            report.problems.append(f"namespace {namespace} does not exist: {why}")
        else:
            report.passed.append(f"namespace {namespace} exists")

    gateway = cfg.cluster.gateway
    if gateway and "gateways" in served.get("gateway.networking.k8s.io/v1", set()):
        path = f"/apis/gateway.networking.k8s.io/v1/namespaces/{gateway.namespace}/gateways/{gateway.name}"
        if api.get(path) is None:
            report.problems.append(
                f"Gateway {gateway.namespace}/{gateway.name} does not exist: the models' routes " "attach to it"
            )
        else:
            report.passed.append(f"Gateway {gateway.namespace}/{gateway.name} exists")

    listing = api.get("/apis/monitoring.coreos.com/v1/prometheuses")
    labels = cfg.cluster.prometheus_labels
    if listing is None:
        report.problems.append(
            "no Prometheus (monitoring.coreos.com/v1) is served: nothing would scrape the models "
            "or evaluate their alerts"
        )
    else:
        selecting = [
            p["metadata"]["name"]
            for p in listing.get("items", [])
            if _matches(p.get("spec", {}).get("serviceMonitorSelector"), labels)
            and _matches(p.get("spec", {}).get("ruleSelector"), labels)
        ]
        if selecting:
            report.passed.append(f"Prometheus {', '.join(selecting)} selects the stack's labels {labels}")
        else:
            report.problems.append(
                f"no Prometheus selects the labels the stack sets ({labels}) in both its "
                "serviceMonitorSelector and ruleSelector: set modelops:cluster.prometheusLabels"
            )
    return report


def format_cluster_report(report: ClusterReport) -> str:
    lines = [f"cluster {report.server}: {'PASS' if report.ok else 'FAIL'}"]
    lines += [f"  - {p}" for p in report.problems]
    lines += [f"  ok {p}" for p in report.passed]
    return "\n".join(lines)
