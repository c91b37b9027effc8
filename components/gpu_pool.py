"""GpuNodePool: a Karpenter GPU node pool that is safe and capped by default.

Creates:
- a `karpenter.sh/v1` NodePool: instance family/type, capacity-type and architecture requirements,
  the `nvidia.com/gpu:NoSchedule` taint, the pool label workloads select, `spec.limits` on GPUs (plus
  the cpu and memory those GPUs come with), consolidation, disruption budgets and expiry;
- a `karpenter.k8s.aws/v1` EC2NodeClass: AMI alias, node role, discovery-tag subnet and security-group
  selectors, encrypted gp3 volumes sized for model images, IMDSv2 with hop limit 1, tags;
- the NVIDIA device plugin DaemonSet (+ time-slicing ConfigMap) when the AMI does not ship one
  (AL2023; Bottlerocket's NVIDIA variants run their own, configured through user data);
- GPU metrics: a DCGM exporter DaemonSet, its Service, a ServiceMonitor and a NetworkPolicy.
"""

import math
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from .cluster_inputs import cluster_settings, required_cluster_input
from .common import GPU_RESOURCE, GPU_TAINT, NVIDIA_REGISTRY, POOL_LABEL, as_model, standard_labels, type_token
from .config import CapacityType, ClusterConfig, Environment, GpuPoolConfig
from .dashboards import dashboard, dashboard_config_map
from .gpu_catalogue import load_catalogue
from .images import pinned_image

DEVICE_PLUGIN_VERSION = "v0.17.0"
"""The NVIDIA device plugin's release: its image tag and its objects' `app.kubernetes.io/version`."""
DEVICE_PLUGIN_IMAGE = (
    f"{NVIDIA_REGISTRY}k8s-device-plugin:{DEVICE_PLUGIN_VERSION}"
    "@sha256:7089559ce6153018806857f5049085bae15b3bf6f1c8bd19d8b12f707d087dea"
)
DCGM_EXPORTER_VERSION = "3.3.9-3.6.1"
"""DCGM 3.3.9 with exporter 3.6.1: the exporter objects' `app.kubernetes.io/version` and its image tag's head (the
tag adds the image's base OS, which is no version of the exporter)."""
DCGM_EXPORTER_IMAGE = f"{NVIDIA_REGISTRY}k8s/dcgm-exporter:{DCGM_EXPORTER_VERSION}-ubuntu22.04"
"""Resolved to its digest at deploy time (`pinned_image`), so nodes never pull a moving tag."""
DCGM_METRICS_PORT = 9400


SYSTEM_NAMESPACE = "kube-system"
"""Where the device plugin and the DCGM exporter run."""


class GpuNodePoolArgs(TypedDict):
    """A GPU node pool: the pool and cluster as the stack schema declares them (defaults and bounds live
    there), and what the composition resolves."""

    pool: GpuPoolConfig
    """Instances, GPU limit, AMI, disruption, volumes and time-slicing of the pool."""
    cluster: ClusterConfig
    """The cluster: its name, node role, discovery tag, monitoring namespace and Prometheus labels."""
    cluster_name: NotRequired[pulumi.Input[str]]
    """The cluster's name as another resource or stack gives it (an EKS cluster's `name`), over `cluster.name`:
    the subnets' and security groups' discovery tag (without `cluster.discoveryTag`) and the nodes' tag."""
    node_role: NotRequired[pulumi.Input[str]]
    """The IAM role Karpenter gives the pool's nodes as another resource or stack gives it, over
    `cluster.nodeRole`."""
    environment: Environment
    """dev, staging or prod: labels and tags."""
    cost_owner: str
    """The team billed: the `modelops/cost-owner` label."""
    capacity_types: list[CapacityType]
    """`spot` and/or `on-demand`: the pool's own, else the environment's."""
    tags: NotRequired[dict[str, str]]
    """AWS tags for the nodes and volumes."""


class GpuNodePool(pulumi.ComponentResource):
    """A GPU node pool. Secure defaults: tainted so only GPU workloads land there, capped by a GPU
    limit, IMDSv2 required with hop limit 1 (pods cannot reach node credentials), encrypted volumes."""

    node_selector: pulumi.Output[dict[str, str]]
    """The node selector a workload needs to land on this pool."""
    tolerations: pulumi.Output[list[dict[str, str]]]
    """The tolerations a workload needs for this pool's taint."""
    gpu_limit: pulumi.Output[int]
    """The pool's GPU limit."""
    node_pool_name: pulumi.Output[str]
    """Name of the Karpenter NodePool."""

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("GpuNodePool"), name, None, opts)
        self._args = args
        # Hosted for another language, the component receives plain dicts: the schema's models validate them.
        self._pool = as_model(GpuPoolConfig, args["pool"])
        self._cluster = cluster_settings(args["cluster"])
        self._cluster_name = required_cluster_input(args, self._cluster, "cluster_name", f"GpuNodePool {name}")
        self._node_role = required_cluster_input(args, self._cluster, "node_role", f"GpuNodePool {name}")
        child = pulumi.ResourceOptions(parent=self)
        labels = standard_labels(name, self._args["environment"], self._args["cost_owner"], component="gpu-pool")
        selector = {POOL_LABEL: name}
        tolerations = [{"key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"]}]
        self._selector, self._tolerations = selector, tolerations

        node_class = k8s.apiextensions.CustomResource(
            f"{name}-node-class",
            api_version="karpenter.k8s.aws/v1",
            kind="EC2NodeClass",
            metadata={"name": name, "labels": labels},
            spec=self._node_class_spec(name),
            opts=child,
        )
        self.node_pool = k8s.apiextensions.CustomResource(
            f"{name}-node-pool",
            api_version="karpenter.sh/v1",
            kind="NodePool",
            metadata={"name": name, "labels": labels},
            spec=self._node_pool_spec(name, selector),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[node_class]),
        )
        if self._pool.ami_family == "al2023":
            self._device_plugin(name)
        self._gpu_metrics(name)
        self._dashboard(name, labels)

        self.node_selector = pulumi.Output.from_input(selector)
        self.tolerations = pulumi.Output.from_input(tolerations)
        self.gpu_limit = pulumi.Output.from_input(self._pool.gpu_limit)
        self.node_pool_name = pulumi.Output.from_input(name)
        self.register_outputs(
            {
                "node_selector": self.node_selector,
                "tolerations": self.tolerations,
                "gpu_limit": self.gpu_limit,
                "node_pool_name": self.node_pool_name,
            }
        )

    def _node_pool_spec(self, name: str, selector: dict[str, str]) -> dict:
        requirements = [
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(self._args["capacity_types"])},
            {"key": "kubernetes.io/arch", "operator": "In", "values": [self._pool.architecture]},
            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
        ]
        if self._pool.instance_types:
            requirements.insert(
                0,
                {
                    "key": "node.kubernetes.io/instance-type",
                    "operator": "In",
                    "values": list(self._pool.instance_types),
                },
            )
        else:
            requirements.insert(
                0,
                {
                    "key": "karpenter.k8s.aws/instance-family",
                    "operator": "In",
                    "values": list(self._pool.instance_families),
                },
            )
        catalogue = load_catalogue()
        types = catalogue.types_for(self._pool.instance_families, self._pool.instance_types)
        # The cpu and memory a GPU limit can bring along, on the roomiest allowed instance per GPU:
        # a tighter cpu/memory limit would stop Karpenter before the GPU limit is reached.
        max_instances = max(math.ceil(self._pool.gpu_limit / t.gpus) for t in types)
        cpu_limit = max(math.ceil(self._pool.gpu_limit / t.gpus) * t.vcpus for t in types)
        memory_limit = max(math.ceil(self._pool.gpu_limit / t.gpus) * t.memory_gib for t in types)
        spec = {
            "template": {
                "metadata": {"labels": {**selector, "modelops/environment": self._args["environment"]}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": name},
                    "requirements": requirements,
                    "taints": [dict(GPU_TAINT)],
                    "expireAfter": self._pool.expire_after,
                },
            },
            "limits": {
                GPU_RESOURCE: str(self._pool.gpu_limit),
                "cpu": str(cpu_limit),
                "memory": f"{memory_limit}Gi",
                "nodes": str(max_instances),
            },
            "disruption": {
                "consolidationPolicy": self._pool.consolidation_policy,
                "consolidateAfter": self._pool.consolidate_after,
                # Paces consolidation and drift (a new AMI, a changed node class). Not expiry: Karpenter v1
                # expires nodes forcefully, paced only by the workloads' PDBs. No terminationGracePeriod
                # is set, so a drain waits for a PDB rather than deleting a serving replica.
                "budgets": [{"nodes": self._pool.disruption_budget}],
            },
        }
        if self._pool.weight is not None:
            spec["weight"] = self._pool.weight
        return spec

    def _node_class_spec(self, name: str) -> dict:
        def volume(device: str, size_gib: int) -> dict:
            return {
                "deviceName": device,
                "ebs": {
                    "volumeSize": f"{size_gib}Gi",
                    "volumeType": "gp3",
                    "encrypted": True,
                    "deleteOnTermination": True,
                },
            }

        if self._pool.ami_family == "bottlerocket":
            devices = [volume("/dev/xvda", self._pool.root_volume_gib), volume("/dev/xvdb", self._pool.data_volume_gib)]
        else:
            devices = [volume("/dev/xvda", self._pool.root_volume_gib + self._pool.data_volume_gib)]
        discovery = [{"tags": {"karpenter.sh/discovery": (self._cluster.discovery_tag or self._cluster_name)}}]
        spec = {
            "amiSelectorTerms": [{"alias": f"{self._pool.ami_family}@{self._pool.ami_version}"}],
            "role": self._node_role,
            "subnetSelectorTerms": discovery,
            "securityGroupSelectorTerms": discovery,
            "blockDeviceMappings": devices,
            "metadataOptions": {
                "httpEndpoint": "enabled",
                "httpProtocolIPv6": "disabled",
                "httpPutResponseHopLimit": 1,
                "httpTokens": "required",
            },
            # Karpenter adds eks:eks-cluster-name itself and refuses it here (a CEL rule of the CRD).
            "tags": {**self._args.get("tags", {}), "modelops/gpu-pool": name, "modelops/cluster": self._cluster_name},
        }
        if self._pool.instance_store_policy:
            spec["instanceStorePolicy"] = self._pool.instance_store_policy.value
        if self._pool.ami_family == "bottlerocket" and self._pool.time_slicing_replicas:
            spec["userData"] = (
                "[settings.kubelet-device-plugins.nvidia]\n"
                'device-sharing-strategy = "time-slicing"\n'
                "[settings.kubelet-device-plugins.nvidia.time-slicing]\n"
                f"replicas = {self._pool.time_slicing_replicas}\n"
            )
        return spec

    def _device_plugin(self, name: str) -> None:
        labels = standard_labels(
            f"nvidia-device-plugin-{name}",
            self._args["environment"],
            self._args["cost_owner"],
            DEVICE_PLUGIN_VERSION,
            "device-plugin",
        )
        volumes = [{"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}]
        mounts: list[dict[str, Any]] = [{"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"}]
        env = [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}]
        if self._pool.time_slicing_replicas:
            config = k8s.core.v1.ConfigMap(
                f"{name}-time-slicing",
                metadata={"name": f"nvidia-time-slicing-{name}", "namespace": SYSTEM_NAMESPACE, "labels": labels},
                data={
                    "config.yaml": (
                        "version: v1\nsharing:\n  timeSlicing:\n    resources:\n"
                        f"      - name: {GPU_RESOURCE}\n        replicas: {self._pool.time_slicing_replicas}\n"
                    )
                },
                opts=pulumi.ResourceOptions(parent=self),
            )
            volumes.append({"name": "config", "configMap": {"name": config.metadata.name}})
            mounts.append({"name": "config", "mountPath": "/etc/nvidia-device-plugin", "readOnly": True})
            env.append({"name": "CONFIG_FILE", "value": "/etc/nvidia-device-plugin/config.yaml"})
        container = {
            "name": "nvidia-device-plugin",
            "image": DEVICE_PLUGIN_IMAGE,
            "env": env,
            # The plugin registers a socket in the kubelet's root-owned directory: it needs root,
            # nothing else (the policy config carries the matching exemptions).
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
            "volumeMounts": mounts,
        }
        self._system_daemon_set(f"{name}-device-plugin", f"nvidia-device-plugin-{name}", labels, container, volumes)
        self._deny_ingress(f"{name}-device-plugin-netpol", f"nvidia-device-plugin-{name}", labels)

    def _dashboard(self, name: str, labels: dict[str, str]) -> None:
        """The pool's GPUs, from its own DCGM exporter's series (its Service names them)."""
        sel = f'service="dcgm-exporter-{name}"'
        panels = [
            ("GPU utilisation", f"avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL{{{sel}}}) / 100", "percentunit"),
            ("GPU memory used", f"sum by (Hostname, gpu) (DCGM_FI_DEV_FB_USED{{{sel}}}) * 1024 * 1024", "bytes"),
            (
                "GPU memory used (share)",
                f"sum(DCGM_FI_DEV_FB_USED{{{sel}}}) / (sum(DCGM_FI_DEV_FB_USED{{{sel}}}) + sum(DCGM_FI_DEV_FB_FREE{{{sel}}}))",
                "percentunit",
            ),
            ("GPUs in use", f"count(DCGM_FI_DEV_GPU_UTIL{{{sel}}})", "short"),
        ]
        board = dashboard(f"pool-{name}", f"modelops-pool-{name}", f"modelops · GPU pool {name}", panels)
        dashboard_config_map(f"{name}-dashboard", board, self._cluster, labels, self)

    def _gpu_metrics(self, name: str) -> None:
        """The DCGM exporter on the pool's nodes, its Service and ServiceMonitor, and ingress from Prometheus only."""
        app = f"dcgm-exporter-{name}"
        labels = standard_labels(
            app, self._args["environment"], self._args["cost_owner"], DCGM_EXPORTER_VERSION, "gpu-metrics"
        )
        volumes = [{"name": "pod-resources", "hostPath": {"path": "/var/lib/kubelet/pod-resources"}}]
        self._system_daemon_set(f"{name}-dcgm-exporter", app, labels, self._dcgm_container(), volumes)
        match = {"app.kubernetes.io/name": app}
        service = k8s.core.v1.Service(
            f"{name}-dcgm-service",
            metadata={"name": app, "namespace": SYSTEM_NAMESPACE, "labels": labels},
            spec={
                "type": "ClusterIP",
                "selector": match,
                "ports": [{"name": "metrics", "port": DCGM_METRICS_PORT, "targetPort": "metrics"}],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s.apiextensions.CustomResource(
            f"{name}-dcgm-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={
                "name": app,
                "namespace": SYSTEM_NAMESPACE,
                "labels": {**labels, **self._cluster.prometheus_labels},
            },
            spec={
                "selector": {"matchLabels": match},
                "namespaceSelector": {"matchNames": [SYSTEM_NAMESPACE]},
                "endpoints": [{"port": "metrics", "interval": "15s", "path": "/metrics"}],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[service]),
        )
        self._metrics_ingress(f"{name}-dcgm-netpol", app, labels)

    def _dcgm_container(self) -> dict[str, Any]:
        health = {"path": "/health", "port": DCGM_METRICS_PORT}
        return {
            "name": "dcgm-exporter",
            "image": pinned_image(DCGM_EXPORTER_IMAGE, self),
            "ports": [{"name": "metrics", "containerPort": DCGM_METRICS_PORT}],
            "env": [
                {"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"},
                {"name": "DCGM_EXPORTER_LISTEN", "value": f":{DCGM_METRICS_PORT}"},
            ],
            # DCGM reads GPU counters through the driver (root, SYS_ADMIN) and maps GPUs to pods
            # through the kubelet's pod-resources socket; exempted by name in the policy config.
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": False,
                "runAsUser": 0,
                "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
            "readinessProbe": {"httpGet": health, "initialDelaySeconds": 20, "periodSeconds": 10},
            "livenessProbe": {"httpGet": health, "initialDelaySeconds": 45, "periodSeconds": 10},
            "volumeMounts": [
                {"name": "pod-resources", "mountPath": "/var/lib/kubelet/pod-resources", "readOnly": True}
            ],
        }

    def _metrics_ingress(self, resource_name: str, app: str, labels: dict[str, str]) -> None:
        """Only the monitoring namespace (Prometheus) reaches the exporter's port."""
        monitoring = {"kubernetes.io/metadata.name": self._cluster.monitoring_namespace}
        k8s.networking.v1.NetworkPolicy(
            resource_name,
            metadata={"name": app, "namespace": SYSTEM_NAMESPACE, "labels": labels},
            spec={
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": app}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [{"namespaceSelector": {"matchLabels": monitoring}}],
                        "ports": [{"protocol": "TCP", "port": DCGM_METRICS_PORT}],
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _system_daemon_set(
        self, resource_name: str, app: str, labels: dict[str, str], container: dict, volumes: list[dict]
    ) -> None:
        """A node agent on each of the pool's nodes (tolerating its taint), critical to them: it is scheduled
        before, and evicted after, the workloads it serves."""
        match = {"app.kubernetes.io/name": app}
        k8s.apps.v1.DaemonSet(
            resource_name,
            metadata={"name": app, "namespace": SYSTEM_NAMESPACE, "labels": labels},
            spec={
                "selector": {"matchLabels": match},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "nodeSelector": self._selector,
                        "tolerations": self._tolerations,
                        "priorityClassName": "system-node-critical",
                        "automountServiceAccountToken": False,
                        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [container],
                        "volumes": volumes,
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _deny_ingress(self, resource_name: str, app: str, labels: dict[str, str]) -> None:
        k8s.networking.v1.NetworkPolicy(
            resource_name,
            metadata={"name": app, "namespace": SYSTEM_NAMESPACE, "labels": labels},
            spec={"podSelector": {"matchLabels": {"app.kubernetes.io/name": app}}, "policyTypes": ["Ingress"]},
            opts=pulumi.ResourceOptions(parent=self),
        )
