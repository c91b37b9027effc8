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

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from .common import GPU_RESOURCE, GPU_TAINT, NVIDIA_REGISTRY, POOL_LABEL, standard_labels, type_token
from .gpu_catalogue import load_catalogue
from .images import pinned_image

DEVICE_PLUGIN_IMAGE = (
    f"{NVIDIA_REGISTRY}k8s-device-plugin:v0.17.0"
    "@sha256:7089559ce6153018806857f5049085bae15b3bf6f1c8bd19d8b12f707d087dea"
)
DCGM_EXPORTER_IMAGE = f"{NVIDIA_REGISTRY}k8s/dcgm-exporter:3.3.9-3.6.1-ubuntu22.04"
"""Resolved to its digest at deploy time (`pinned_image`), so nodes never pull a moving tag."""
DCGM_METRICS_PORT = 9400


@dataclass(frozen=True)
class GpuNodePoolArgs:
    environment: str
    """dev, staging or prod: labels and tags."""
    cost_owner: str
    """The team billed: the `modelops/cost-owner` label."""
    cluster_name: str
    """The EKS cluster; tags and the discovery tag default."""
    node_role: str
    """IAM role of the nodes Karpenter launches."""
    discovery_tag: str
    """Value of `karpenter.sh/discovery` on the subnets and security groups nodes may use."""
    gpu_limit: int
    """The most GPUs this pool may run at once: the hard cost cap."""
    instance_families: tuple[str, ...] = ()
    """Allowed instance families (e.g. g5); used when instance_types is empty."""
    instance_types: tuple[str, ...] = ()
    """Allowed instance types; narrower than families and preferred when set."""
    capacity_types: tuple[str, ...] = ("on-demand",)
    """`spot` and/or `on-demand`."""
    architecture: str = "amd64"
    """`amd64` or `arm64`."""
    ami_family: str = "bottlerocket"
    """`bottlerocket` or `al2023`; Karpenter picks the NVIDIA variant for GPU instances."""
    ami_version: str = "latest"
    """AMI alias version; pin it in prod to roll nodes deliberately."""
    consolidation_policy: str = "WhenEmpty"
    """Serving pools default to WhenEmpty: moving a loaded model costs minutes of warm-up."""
    consolidate_after: str = "10m"
    """How long a node must be empty (or underused) before Karpenter removes it."""
    disruption_budget: str = "10%"
    """How many of the pool's nodes Karpenter may disrupt at once."""
    expire_after: str = "720h"
    """Nodes are replaced after this age (fresh AMIs and patches). Forceful in Karpenter v1: the disruption
    budget does not apply to it; workload PDBs pace the drain."""
    weight: int | None = None
    """Karpenter tries higher weights first: a spot pool above its on-demand backup."""
    root_volume_gib: int = 50
    """Root volume size (Bottlerocket: OS only)."""
    data_volume_gib: int = 200
    """Container image volume: model images are large."""
    time_slicing_replicas: int | None = None
    """Advertise each GPU this many times (small models share a GPU; no memory isolation). Invisible to
    Karpenter's provisioning, which counts the instance type's physical GPUs."""
    system_namespace: str = "kube-system"
    """Namespace of the device plugin and DCGM exporter."""
    monitoring_namespace: str = "monitoring"
    """Namespace of Prometheus, allowed to scrape the exporter."""
    prometheus_labels: dict[str, str] = field(default_factory=dict)
    """Labels the cluster's Prometheus selects ServiceMonitors by."""
    tags: dict[str, str] = field(default_factory=dict)
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
        child = pulumi.ResourceOptions(parent=self)
        labels = standard_labels(name, args.environment, args.cost_owner, component="gpu-pool")
        selector = {POOL_LABEL: name}
        tolerations = [{"key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"]}]

        node_class = k8s.apiextensions.CustomResource(
            f"{name}-node-class",
            api_version="karpenter.k8s.aws/v1",
            kind="EC2NodeClass",
            metadata={"name": name, "labels": labels},
            spec=self._node_class_spec(name, args),
            opts=child,
        )
        self.node_pool = k8s.apiextensions.CustomResource(
            f"{name}-node-pool",
            api_version="karpenter.sh/v1",
            kind="NodePool",
            metadata={"name": name, "labels": labels},
            spec=self._node_pool_spec(name, args, selector),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[node_class]),
        )
        if args.ami_family == "al2023":
            self._device_plugin(name, args, selector, tolerations)
        self._gpu_metrics(name, args, selector, tolerations)

        self.node_selector = pulumi.Output.from_input(selector)
        self.tolerations = pulumi.Output.from_input(tolerations)
        self.gpu_limit = pulumi.Output.from_input(args.gpu_limit)
        self.node_pool_name = pulumi.Output.from_input(name)
        self.register_outputs(
            {
                "node_selector": self.node_selector,
                "tolerations": self.tolerations,
                "gpu_limit": self.gpu_limit,
                "node_pool_name": self.node_pool_name,
            }
        )

    @staticmethod
    def _node_pool_spec(name: str, args: GpuNodePoolArgs, selector: dict[str, str]) -> dict:
        requirements = [
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(args.capacity_types)},
            {"key": "kubernetes.io/arch", "operator": "In", "values": [args.architecture]},
            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
        ]
        if args.instance_types:
            requirements.insert(
                0, {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(args.instance_types)}
            )
        else:
            requirements.insert(
                0,
                {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": list(args.instance_families)},
            )
        catalogue = load_catalogue()
        types = catalogue.types_for(args.instance_families, args.instance_types)
        # The cpu and memory a GPU limit can bring along, on the roomiest allowed instance per GPU:
        # a tighter cpu/memory limit would stop Karpenter before the GPU limit is reached.
        max_instances = max(math.ceil(args.gpu_limit / t.gpus) for t in types)
        cpu_limit = max(math.ceil(args.gpu_limit / t.gpus) * t.vcpus for t in types)
        memory_limit = max(math.ceil(args.gpu_limit / t.gpus) * t.memory_gib for t in types)
        spec = {
            "template": {
                "metadata": {"labels": {**selector, "modelops/environment": args.environment}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": name},
                    "requirements": requirements,
                    "taints": [dict(GPU_TAINT)],
                    "expireAfter": args.expire_after,
                },
            },
            "limits": {
                GPU_RESOURCE: str(args.gpu_limit),
                "cpu": str(cpu_limit),
                "memory": f"{memory_limit}Gi",
                "nodes": str(max_instances),
            },
            "disruption": {
                "consolidationPolicy": args.consolidation_policy,
                "consolidateAfter": args.consolidate_after,
                # Paces consolidation and drift (a new AMI, a changed node class). Not expiry: Karpenter v1
                # expires nodes forcefully, paced only by the workloads' PDBs. No terminationGracePeriod
                # is set, so a drain waits for a PDB rather than deleting a serving replica.
                "budgets": [{"nodes": args.disruption_budget}],
            },
        }
        if args.weight is not None:
            spec["weight"] = args.weight
        return spec

    @staticmethod
    def _node_class_spec(name: str, args: GpuNodePoolArgs) -> dict:
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

        if args.ami_family == "bottlerocket":
            devices = [volume("/dev/xvda", args.root_volume_gib), volume("/dev/xvdb", args.data_volume_gib)]
        else:
            devices = [volume("/dev/xvda", args.root_volume_gib + args.data_volume_gib)]
        discovery = [{"tags": {"karpenter.sh/discovery": args.discovery_tag}}]
        spec = {
            "amiSelectorTerms": [{"alias": f"{args.ami_family}@{args.ami_version}"}],
            "role": args.node_role,
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
            "tags": {**args.tags, "modelops/gpu-pool": name, "modelops/cluster": args.cluster_name},
        }
        if args.ami_family == "bottlerocket" and args.time_slicing_replicas:
            spec["userData"] = (
                "[settings.kubelet-device-plugins.nvidia]\n"
                'device-sharing-strategy = "time-slicing"\n'
                "[settings.kubelet-device-plugins.nvidia.time-slicing]\n"
                f"replicas = {args.time_slicing_replicas}\n"
            )
        return spec

    def _device_plugin(
        self, name: str, args: GpuNodePoolArgs, selector: dict[str, str], tolerations: list[dict[str, str]]
    ) -> None:
        labels = standard_labels(
            f"nvidia-device-plugin-{name}", args.environment, args.cost_owner, "v0.17.0", "device-plugin"
        )
        volumes = [{"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}]
        mounts = [{"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"}]
        env = [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}]
        if args.time_slicing_replicas:
            config = k8s.core.v1.ConfigMap(
                f"{name}-time-slicing",
                metadata={"name": f"nvidia-time-slicing-{name}", "namespace": args.system_namespace, "labels": labels},
                data={
                    "config.yaml": (
                        "version: v1\nsharing:\n  timeSlicing:\n    resources:\n"
                        f"      - name: {GPU_RESOURCE}\n        replicas: {args.time_slicing_replicas}\n"
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
        self._system_daemon_set(
            f"{name}-device-plugin",
            f"nvidia-device-plugin-{name}",
            args,
            labels,
            selector,
            tolerations,
            container,
            volumes,
            priority="system-node-critical",
        )
        self._deny_ingress(f"{name}-device-plugin-netpol", f"nvidia-device-plugin-{name}", args, labels)

    def _gpu_metrics(
        self, name: str, args: GpuNodePoolArgs, selector: dict[str, str], tolerations: list[dict[str, str]]
    ) -> None:
        app = f"dcgm-exporter-{name}"
        labels = standard_labels(app, args.environment, args.cost_owner, "3.3.9-3.6.1", "gpu-metrics")
        match = {"app.kubernetes.io/name": app}
        container = {
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
            "readinessProbe": {
                "httpGet": {"path": "/health", "port": DCGM_METRICS_PORT},
                "initialDelaySeconds": 20,
                "periodSeconds": 10,
            },
            "livenessProbe": {
                "httpGet": {"path": "/health", "port": DCGM_METRICS_PORT},
                "initialDelaySeconds": 45,
                "periodSeconds": 10,
            },
            "volumeMounts": [
                {"name": "pod-resources", "mountPath": "/var/lib/kubelet/pod-resources", "readOnly": True}
            ],
        }
        volumes = [{"name": "pod-resources", "hostPath": {"path": "/var/lib/kubelet/pod-resources"}}]
        self._system_daemon_set(
            f"{name}-dcgm-exporter",
            app,
            args,
            labels,
            selector,
            tolerations,
            container,
            volumes,
            priority="system-node-critical",
        )
        service = k8s.core.v1.Service(
            f"{name}-dcgm-service",
            metadata={"name": app, "namespace": args.system_namespace, "labels": labels},
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
            metadata={"name": app, "namespace": args.system_namespace, "labels": {**labels, **args.prometheus_labels}},
            spec={
                "selector": {"matchLabels": match},
                "namespaceSelector": {"matchNames": [args.system_namespace]},
                "endpoints": [{"port": "metrics", "interval": "15s", "path": "/metrics"}],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[service]),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-dcgm-netpol",
            metadata={"name": app, "namespace": args.system_namespace, "labels": labels},
            spec={
                "podSelector": {"matchLabels": match},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": args.monitoring_namespace}
                                }
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": DCGM_METRICS_PORT}],
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _system_daemon_set(
        self,
        resource_name: str,
        app: str,
        args: GpuNodePoolArgs,
        labels: dict[str, str],
        selector: dict[str, str],
        tolerations: list[dict[str, str]],
        container: dict,
        volumes: list[dict],
        priority: str,
    ) -> None:
        match = {"app.kubernetes.io/name": app}
        k8s.apps.v1.DaemonSet(
            resource_name,
            metadata={"name": app, "namespace": args.system_namespace, "labels": labels},
            spec={
                "selector": {"matchLabels": match},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "nodeSelector": selector,
                        "tolerations": tolerations,
                        "priorityClassName": priority,
                        "automountServiceAccountToken": False,
                        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [container],
                        "volumes": volumes,
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _deny_ingress(self, resource_name: str, app: str, args: GpuNodePoolArgs, labels: dict[str, str]) -> None:
        k8s.networking.v1.NetworkPolicy(
            resource_name,
            metadata={"name": app, "namespace": args.system_namespace, "labels": labels},
            spec={"podSelector": {"matchLabels": {"app.kubernetes.io/name": app}}, "policyTypes": ["Ingress"]},
            opts=pulumi.ResourceOptions(parent=self),
        )
