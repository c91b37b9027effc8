"""Envoy Gateway's controller behind the local API server: it computes the Gateway API status of the Gateway and
of every route (Accepted, ResolvedRefs) as a conformant implementation does, so the program's routes are judged
by a real one. Built from `github.com/envoyproxy/gateway` (tools/build) with its chart's CRDs.

No data plane: the Envoy proxies it deploys for a Gateway are Deployments kwok runs without containers, so the
status of routes is real and no request is served. Envoy Gateway reads its xDS and webhook certificates from a fixed
/certs and binds fixed ports (8081, 18000, 19001), so each instance runs in a mount and network namespace of its own,
reaching the API server over a veth pair (`ip netns`, iproute2) and a forwarder to its loopback address: a cluster
per environment keeps one each.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import subprocess
import threading
import time
from pathlib import Path

from tests.e2e.cluster import LocalCluster
from tests.e2e.keda import keda_certificates

CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
NAMESPACE = "envoy-gateway-system"
CONFIG = """apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyGateway
gateway:
  controllerName: {controller}
provider:
  type: Kubernetes
  kubernetes:
    topologyInjector:
      disable: true
logging:
  level:
    default: info
extensionApis:
  enableBackend: true  # a standby failover route names Backends (GatewayFallback); off, EG refuses the route
"""


def gateway_manifests(hostname: str | None, allowed_from: str = "All") -> list[dict]:
    """The GatewayClass and the `models` Gateway a platform team runs: HTTP on 80, routes from `allowed_from`
    namespaces (the Gateway API default, Same, admits only routes in gateway-system)."""
    listener: dict = {
        "name": "http",
        "protocol": "HTTP",
        "port": 80,
        "allowedRoutes": {"namespaces": {"from": allowed_from}},
    }
    if hostname:
        listener["hostname"] = hostname
    return [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "envoy"},
            "spec": {"controllerName": CONTROLLER},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "models", "namespace": "gateway-system"},
            "spec": {"gatewayClassName": "envoy", "listeners": [listener]},
        },
    ]


class EnvoyGateway:
    def __init__(self, cluster: LocalCluster):
        self.cluster = cluster
        # Named and addressed by the API server's port, which no other live cluster has: a /30 of 10.231.0.0/16 of
        # its own (a namespace left by a killed run with the same port is replaced below).
        self.netns = f"modelops-eg-{cluster.api_port}"
        slot = cluster.api_port % 16384
        base = f"10.231.{slot // 64}.{(slot % 64) * 4}"
        prefix = base.rsplit(".", 1)[0]
        last = int(base.rsplit(".", 1)[1])
        self.host_ip, self.ns_ip = f"{prefix}.{last + 1}", f"{prefix}.{last + 2}"
        self.workdir = cluster.workdir / "envoy-gateway"

    def start(self, hostname: str | None) -> None:
        crds = self.cluster.bin_dir / "envoy-gateway-crds"
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
        self.cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        self.cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        self.workdir.mkdir(parents=True, exist_ok=True)
        certs = self.workdir / "certs"
        keda_certificates(certs)
        (self.workdir / "config.yaml").write_text(CONFIG.format(controller=CONTROLLER))
        self._network()
        port = forward(self.host_ip, self.cluster.api_port)
        kubeconfig = self.workdir / "kubeconfig"
        # the API server's certificate names 127.0.0.1: verified as such, reached through the forwarder
        kubeconfig.write_text(
            self.cluster.kubeconfig().replace(
                f"server: https://127.0.0.1:{self.cluster.api_port}",
                f"server: https://{self.host_ip}:{port}\n    tls-server-name: 127.0.0.1",
            )
        )
        # /certs only in this process's mount namespace (an empty directory is all the host keeps of it)
        script = (
            f"mkdir -p /certs && mount --bind {certs} /certs && "
            f'exec "{self.cluster.bin_dir / "envoy-gateway"}" server --config-path={self.workdir / "config.yaml"}'
        )
        self.cluster.spawn(
            "envoy-gateway",
            ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            env={"KUBECONFIG": str(kubeconfig), "ENVOY_GATEWAY_NAMESPACE": NAMESPACE},
        )
        # the proxies' client certificate for xDS, which Envoy Gateway's certgen job would have made
        self.cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "envoy", "namespace": NAMESPACE},
                "type": "kubernetes.io/tls",
                "data": {name: ca_bundle(certs / name) for name in ("tls.crt", "tls.key", "ca.crt")},
            }
        )
        self.cluster.apply(*gateway_manifests(hostname))
        self._wait_accepted()

    def _network(self) -> None:
        """A network namespace whose only way out is a veth pair to the host, where the API server listens too."""
        host_end, ns_end = f"veg{self.cluster.api_port}h", f"veg{self.cluster.api_port}n"
        subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True)
        subprocess.run(["ip", "link", "delete", host_end], capture_output=True)
        for argv in (
            ["ip", "netns", "add", self.netns],
            ["ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end],
            ["ip", "link", "set", ns_end, "netns", self.netns],
            ["ip", "addr", "add", f"{self.host_ip}/30", "dev", host_end],
            ["ip", "link", "set", host_end, "up"],
            ["ip", "-n", self.netns, "addr", "add", f"{self.ns_ip}/30", "dev", ns_end],
            ["ip", "-n", self.netns, "link", "set", ns_end, "up"],
            ["ip", "-n", self.netns, "link", "set", "lo", "up"],
        ):
            subprocess.run(argv, check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True)

    def _wait_accepted(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            self.cluster.check_alive("envoy-gateway")
            status = self.cluster.kubectl(
                "get", "gatewayclass", "envoy", "-o",
                "jsonpath={.status.conditions[?(@.type=='Accepted')].status}", check=False,
            ).stdout  # fmt: skip
            if status == "True":
                return
            time.sleep(1)
        raise RuntimeError(
            f"Envoy Gateway did not accept its GatewayClass ({status!r}):\n{self.cluster.logs('envoy-gateway')}"
        )


def ca_bundle(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def forward(host: str, target_port: int) -> int:
    """A TCP forwarder on `host` (the host end of a veth pair) to 127.0.0.1:`target_port`; its port."""
    listener = socket.create_server((host, 0))

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(("127.0.0.1", target_port))
            except OSError:
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]
