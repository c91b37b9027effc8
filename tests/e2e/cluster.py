"""A local Kubernetes control plane for the real-engine tier, on 127.0.0.1 only.

Real, built from source by tools/build: etcd, kube-apiserver (Pod Security admission on, RBAC, a
service-account issuer), kube-controller-manager (Deployments make ReplicaSets make Pods, endpoints,
garbage collection, namespace deletion), kube-scheduler (node selectors, taints, GPU requests), and kwok,
which plays the kubelets: it keeps the nodes we register Ready and walks scheduled pods through their
lifecycle (running, ready, terminated) without running any container. The nodes stand for what
Karpenter would launch for each GPU pool (labels, taint, GPU capacity): Karpenter itself does not run here.

Readiness is therefore reached the way a cluster reaches it: the Kubernetes provider's awaits (Deployment
rollout, DaemonSet rollout, Service endpoints) watch real controllers make progress, and nothing sets
`pulumi.com/skipAwait`.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "tests" / "upstream" / "crds"
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now and that this process has not handed out before (the kernel may offer a
    released port again before its first taker binds it)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@dataclass
class SimulatedNode:
    """A node as Karpenter would launch it for a pool (or a plain CPU node when pool is None)."""

    name: str
    zone: str
    pool: str | None = None
    gpus: int = 0
    cpu: str = "48"
    memory: str = "192Gi"

    def manifest(self) -> dict[str, Any]:
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": "simulated",
            "topology.kubernetes.io/zone": self.zone,
            "type": "kwok",
        }
        taints = []
        capacity = {"cpu": self.cpu, "memory": self.memory, "pods": "110", "ephemeral-storage": "500Gi"}
        if self.pool:
            labels.update(
                {
                    "modelops/gpu-pool": self.pool,
                    "karpenter.sh/nodepool": self.pool,
                    "karpenter.sh/capacity-type": "on-demand",
                }
            )
            taints.append({"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"})
            capacity["nvidia.com/gpu"] = str(self.gpus)
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels, "annotations": {FAKE_NODE_ANNOTATION: "fake"}},
            "spec": {"taints": taints},
            "status": {"capacity": capacity, "allocatable": capacity},
        }


@dataclass
class LocalCluster:
    bin_dir: Path
    workdir: Path
    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    api_port: int = 0
    token: str = ""

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._certificates()
        etcd_port, peer_port = free_port(), free_port()
        self.spawn(
            "etcd",
            [
                "etcd",
                "--name=local",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=local=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self.api_port = free_port()
        certs = self.workdir / "pki"
        self.spawn(
            "kube-apiserver",
            [
                "kube-apiserver",
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--tls-cert-file={certs / 'apiserver.crt'}",
                f"--tls-private-key-file={certs / 'apiserver.key'}",
                f"--token-auth-file={certs / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={certs / 'sa.pub'}",
                f"--service-account-signing-key-file={certs / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.96.0.0/16",
                # Privileged system DaemonSets (the DCGM exporter) are allowed, as on EKS; Pod Security
                # admission (on by default) still enforces each namespace's profile.
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                # API aggregation (KEDA's external metrics): the API server proxies as front-proxy-client
                f"--requestheader-client-ca-file={certs / 'front-proxy-ca.crt'}",
                # published for aggregated API servers (extension-apiserver-authentication), which warn without it;
                # it signs only the front proxy's certificate, which RBAC grants nothing
                f"--client-ca-file={certs / 'front-proxy-ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={certs / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={certs / 'front-proxy-client.key'}",
                "--profiling=false",
                "-v=1",
            ],
        )
        self._write_kubeconfig()
        self._wait_ready()
        common = [f"--kubeconfig={self.kubeconfig_path}", "--leader-elect=false", "--bind-address=127.0.0.1"]
        self.spawn(
            "kube-controller-manager",
            [
                "kube-controller-manager",
                *common,
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={certs / 'sa.key'}",
                f"--root-ca-file={certs / 'apiserver.crt'}",
                "--use-service-account-credentials=false",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
            ],
        )
        self.spawn("kube-scheduler", ["kube-scheduler", *common, f"--secure-port={free_port()}"])
        self.spawn(
            "kwok",
            [
                "kwok",
                f"--kubeconfig={self.kubeconfig_path}",
                f"--config={self.bin_dir / 'kwok-stages.yaml'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
                "--cidr=10.244.0.1/16",
                "--node-ip=127.0.0.1",
                f"--server-address=127.0.0.1:{free_port()}",
            ],
        )
        self.install_crds()

    def stop(self) -> None:
        for _, proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in reversed(self.processes):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.processes.clear()

    def logs(self, name: str, tail: int = 40) -> str:
        path = self.workdir / "logs" / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-tail:]) if path.exists() else ""

    # --- set-up ---------------------------------------------------------------------------------
    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Start one of the built tools (argv[0], else a command on PATH) in the background, its output in
        logs/<name>.log."""
        (self.workdir / "logs").mkdir(exist_ok=True)
        log = open(self.workdir / "logs" / f"{name}.log", "w")  # noqa: SIM115 - kept open for the process
        built = self.bin_dir / argv[0]
        proc = subprocess.Popen(
            [str(built) if built.exists() else argv[0], *argv[1:]],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.processes.append((name, proc))
        time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited at start ({proc.returncode}):\n{self.logs(name)}")

    def check_alive(self, name: str) -> None:
        for spawned, proc in self.processes:
            if spawned == name and proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}):\n{self.logs(name)}")

    def _certificates(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(exist_ok=True)
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                str(pki / "apiserver.key"),
                "-out",
                str(pki / "apiserver.crt"),
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(["openssl", "genrsa", "-out", str(pki / "sa.key"), "2048"], check=True, capture_output=True)
        subprocess.run(
            ["openssl", "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub")],
            check=True,
            capture_output=True,
        )
        # the front proxy's CA and client certificate: what an aggregated API server (KEDA's metrics adapter)
        # accepts the API server's proxied requests by
        for args in (
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=front-proxy-ca",
             "-keyout", str(pki / "front-proxy-ca.key"), "-out", str(pki / "front-proxy-ca.crt")],
            ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=front-proxy-client",
             "-keyout", str(pki / "front-proxy-client.key"), "-out", str(pki / "front-proxy-client.csr")],
            ["x509", "-req", "-in", str(pki / "front-proxy-client.csr"), "-CA", str(pki / "front-proxy-ca.crt"),
             "-CAkey", str(pki / "front-proxy-ca.key"), "-CAcreateserial", "-days", "2",
             "-out", str(pki / "front-proxy-client.crt")],
        ):  # fmt: skip
            subprocess.run(["openssl", *args], check=True, capture_output=True)
        self.token = secrets.token_hex(24)
        (pki / "tokens.csv").write_text(f'{self.token},modelops-e2e-admin,1,"system:masters"\n')

    @property
    def kubeconfig_path(self) -> Path:
        return self.workdir / "kubeconfig"

    def kubeconfig(self) -> str:
        return self.kubeconfig_path.read_text()

    def _write_kubeconfig(self) -> None:
        ca = base64.b64encode((self.workdir / "pki" / "apiserver.crt").read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "local",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": f"https://127.0.0.1:{self.api_port}", "certificate-authority-data": ca},
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
        }
        self.kubeconfig_path.write_text(yaml.safe_dump(config))

    def _wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.processes:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}):\n{self.logs(name)}")
            if self.get("/readyz") == "ok":
                return
            time.sleep(0.5)
        raise RuntimeError(f"the API server did not become ready:\n{self.logs('kube-apiserver')}")

    def get(self, path: str) -> str | None:
        """GET a path of the API server (None while it does not answer 200)."""
        context = ssl.create_default_context(cafile=str(self.workdir / "pki" / "apiserver.crt"))
        request = urllib.request.Request(
            f"https://127.0.0.1:{self.api_port}{path}", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=5) as response:
                return response.read().decode()
        except (OSError, urllib.error.URLError):
            return None

    def install_crds(self) -> None:
        self.kubectl("apply", "--server-side", "-f", str(CRDS))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")

    # --- use ------------------------------------------------------------------------------------
    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig_path}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=180,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def apply(self, *manifests: dict[str, Any]) -> None:
        self.kubectl("apply", "--server-side", "-f", "-", input="\n---\n".join(yaml.safe_dump(m) for m in manifests))

    def add_nodes(self, nodes: list[SimulatedNode]) -> None:
        """Register nodes; kwok marks them Ready and keeps their status (capacity included)."""
        for node in nodes:
            manifest = node.manifest()
            status = manifest.pop("status")
            self.kubectl("create", "-f", "-", input=yaml.safe_dump(manifest))
            self.kubectl(
                "patch", "node", node.name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status})
            )

    def objects(self, selector: str) -> list[dict[str, Any]]:
        """Every namespaced and cluster-scoped object of the listable kinds carrying a label selector."""
        kinds = self.kubectl("api-resources", "--verbs=list,delete", "-o", "name").stdout.split()
        skip = {"events", "events.events.k8s.io", "endpoints", "endpointslices.discovery.k8s.io"}
        result = self.kubectl(
            "get", ",".join(k for k in kinds if k not in skip), "-A", "-l", selector, "-o", "json", "--ignore-not-found"
        )
        return json.loads(result.stdout or '{"items": []}')["items"]


def tools_bin_dir() -> Path | None:
    """The built tools for the current pins, or None when `./run tools` has not built them."""
    explicit = os.environ.get("MODELOPS_TOOLS_BIN")
    if explicit:
        return Path(explicit)
    result = subprocess.run([str(ROOT / "tools" / "build"), "--print"], capture_output=True, text=True)
    return Path(result.stdout.strip()) if result.returncode == 0 else None


def required_tools(binary: str | None = None) -> Path:
    """The built tools' directory (holding `binary`, when named), by the tier's one rule: under ./run e2e
    (MODELOPS_E2E=required) a missing tool fails the run; elsewhere it skips the tier."""
    bin_dir = tools_bin_dir()
    what = binary or "the real-engine tools"
    if bin_dir is None or (binary is not None and not (bin_dir / binary).is_file()):
        if os.environ.get("MODELOPS_E2E") == "required":
            pytest.fail(f"{what} not built (./run tools)")
        pytest.skip(f"{what} not built: ./run e2e builds the tools and runs this tier")
    return bin_dir
