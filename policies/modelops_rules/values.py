"""Reading resource properties: the helpers every rule module and the pod discovery share, with no rule machinery,
so that modelops_rules/framework.py and modelops_rules/pods.py (which framework's pod helpers call) both build on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, Sequence) and not isinstance(value, str | bytes) else []


def dig(value: Any, *path: str) -> Any:
    for key in path:
        value = as_map(value).get(key)
    return value


def k8s_kind(resource_type: str) -> str | None:
    """`kubernetes:apps/v1:Deployment` -> `Deployment`; None for anything not a Kubernetes object."""
    if not resource_type.startswith("kubernetes:") or resource_type.startswith("kubernetes:helm"):
        return None
    if resource_type.startswith("kubernetes:yaml") or resource_type.endswith("List"):
        return None
    return resource_type.rsplit(":", 1)[-1]


BUILTIN_KINDS: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        (
            "Pod",
            "PodTemplate",
            "ReplicationController",
            "Service",
            "ConfigMap",
            "Secret",
            "ServiceAccount",
            "Namespace",
            "Node",
            "PersistentVolume",
            "PersistentVolumeClaim",
            "Endpoints",
            "LimitRange",
            "ResourceQuota",
            "Event",
        ),
        frozenset({"core"}),
    ),
    **dict.fromkeys(("Deployment", "DaemonSet", "ReplicaSet"), frozenset({"apps", "extensions"})),
    **dict.fromkeys(("StatefulSet", "ControllerRevision"), frozenset({"apps"})),
    **dict.fromkeys(("Job", "CronJob"), frozenset({"batch"})),
    "PodDisruptionBudget": frozenset({"policy"}),
    "HorizontalPodAutoscaler": frozenset({"autoscaling"}),
    **dict.fromkeys(("NetworkPolicy", "Ingress"), frozenset({"networking.k8s.io", "extensions"})),
    **dict.fromkeys(("IngressClass",), frozenset({"networking.k8s.io"})),
    **dict.fromkeys(
        ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"), frozenset({"rbac.authorization.k8s.io"})
    ),
    **dict.fromkeys(("StorageClass", "CSIDriver", "CSINode", "VolumeAttachment"), frozenset({"storage.k8s.io"})),
    "PriorityClass": frozenset({"scheduling.k8s.io"}),
    "RuntimeClass": frozenset({"node.k8s.io"}),
    "CustomResourceDefinition": frozenset({"apiextensions.k8s.io"}),
    "APIService": frozenset({"apiregistration.k8s.io"}),
    "Lease": frozenset({"coordination.k8s.io"}),
    "EndpointSlice": frozenset({"discovery.k8s.io"}),
    **dict.fromkeys(
        (
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ),
        frozenset({"admissionregistration.k8s.io"}),
    ),
}
"""The kinds Kubernetes itself serves, with the API groups it serves each from (`core` is the empty group, as
the Pulumi provider spells it in a type token: `kubernetes:core/v1:Pod`)."""
