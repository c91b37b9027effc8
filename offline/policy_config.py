"""`modelops policy-config`: the settings of a stack's `--policy-pack-config` file that its stack file decides.

The policy configs are the standard files the Pulumi CLI reads (`--policy-pack-config`), so they cannot
refer to the stack. The values both know — the account's registry, the repository prefix, the allowed
registries, the GPU budget and region, and the exact names of the GPU system daemons each pool runs
(exempted from the rules they must break, by kind, namespace and name) — are written into them from the
stack file by this verb, and a test keeps the committed files current: one source, no drift.
Enforcement levels, limits and other exemptions are policy decisions and stay as written by hand.
"""

from __future__ import annotations

import json
from typing import Any

from components.config import StackConfig

DAEMON_NAMESPACE = "kube-system"
DCGM = "DCGM reads GPU counters through the NVIDIA driver as root with SYS_ADMIN; it runs only on GPU nodes, without a service-account token"
DEVICE_PLUGIN = "the NVIDIA device plugin registers a socket in the kubelet's root-owned directory; it runs only on AL2023 GPU nodes"
DEVICE_PLUGIN_PROBES = (
    "the NVIDIA device plugin serves no HTTP endpoint to probe; the kubelet restarts it when its socket goes"
)
DAEMON_PREFIXES = ("dcgm-exporter-", "nvidia-device-plugin-")


def derived_settings(cfg: StackConfig) -> dict[str, dict[str, Any]]:
    """Rule id -> the settings the stack file decides."""
    ecr = cfg.cluster.ecr_registry
    settings: dict[str, dict[str, Any]] = {
        "k8s-allowed-registries": {"registries": [f"{ecr}/", *cfg.registry.allowed_registries]},
        "lambda-image-pinned": {"repositoryPrefixes": [f"{ecr}/{cfg.registry.repository_prefix}/"]},
        "gpu-cost-ceiling": {"budgetUsd": _number(cfg.budget.monthly_gpu_usd), "region": cfg.cluster.region},
    }
    exemptions: dict[str, list[dict[str, str]]] = {
        "k8s-run-as-non-root": [],
        "k8s-drop-capabilities": [],
        "k8s-probes": [],
    }
    host_paths = []
    for pool_name, pool in sorted(cfg.gpu_pools.items()):
        dcgm = {"kind": "DaemonSet", "namespace": DAEMON_NAMESPACE, "name": f"dcgm-exporter-{pool_name}"}
        exemptions["k8s-run-as-non-root"].append({**dcgm, "reason": DCGM})
        exemptions["k8s-drop-capabilities"].append({**dcgm, "reason": DCGM})
        host_paths.append(
            {"namespace": DAEMON_NAMESPACE, "name": dcgm["name"], "path": "/var/lib/kubelet/pod-resources"}
        )
        if pool.ami_family == "al2023":  # Bottlerocket's NVIDIA variants run their own device plugin
            plugin = {"kind": "DaemonSet", "namespace": DAEMON_NAMESPACE, "name": f"nvidia-device-plugin-{pool_name}"}
            exemptions["k8s-run-as-non-root"].append({**plugin, "reason": DEVICE_PLUGIN})
            exemptions["k8s-probes"].append({**plugin, "reason": DEVICE_PLUGIN_PROBES})
            host_paths.append(
                {"namespace": DAEMON_NAMESPACE, "name": plugin["name"], "path": "/var/lib/kubelet/device-plugins"}
            )
    for rule, entries in exemptions.items():
        settings[rule] = {"exemptions": entries}
    settings["k8s-no-hostpath"] = {"allowlist": host_paths}
    return settings


def merged(current: dict[str, Any], cfg: StackConfig) -> dict[str, Any]:
    """`current` with the derived settings written over their keys (other keys and rules kept, in order).
    Hand-written exemptions and allowlist entries for other resources are kept after the derived ones."""
    out = dict(current)
    for rule, settings in derived_settings(cfg).items():
        entry = out.get(rule, {})
        entry = {"enforcementLevel": entry} if isinstance(entry, str) else dict(entry)
        for key in ("exemptions", "allowlist"):
            if key in settings:
                kept = [e for e in entry.get(key, []) if not str(e.get("name", "")).startswith(DAEMON_PREFIXES)]
                settings = {**settings, key: settings[key] + kept}
        entry.update(settings)
        if not entry.get("exemptions", True):
            entry.pop("exemptions")
        out[rule] = entry
    return out


def dumps(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2) + "\n"


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
