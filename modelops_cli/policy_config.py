"""`modelops policy-config`: the settings of a stack's `--policy-pack-config` file that its stack file decides.

The policy configs are the standard files the Pulumi CLI reads (`--policy-pack-config`), so they cannot
refer to the stack. The values both know — the account's registry, the repository prefix, the allowed
registries, the GPU budget and region, and the exact names of the GPU system daemons each pool runs
(exempted from the rules they must break, by kind, namespace and name) — are written into them from the
stack file by this verb, and a test keeps the committed files current: one source, no drift.
Enforcement levels, limits and other exemptions are policy decisions and stay as written by hand.

Every reader of a policy config (`check`, `comment`, `policy-config`) reads it through `read`, which refuses
what the Pulumi CLI's reader refuses (github.com/pulumi/pulumi pkg/resource/plugin, parsePolicyPackConfig:
Go's encoding/json into a map, each value a string or an object, `enforcementLevel` a string) and what Python's
`json` would let through but Go's does not (NaN, Infinity, numbers beyond float64 such as 1e400) or takes
silently (a duplicate key: both keep the last). The settings are then validated against the pack's own schema
(modelops_cli/check.py `resolve`, the schema of policies/modelops_rules/framework.py `Rule.config_schema`).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.config import StackConfig

MAX_BYTES = 1 << 20
"""A hand-written policy config is a few kilobytes; a larger file is not one (and is not read whole)."""


class PolicyConfigError(Exception):
    """A policy config the CLI would refuse: one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class _Refused(ValueError):
    """Raised inside the JSON parser's hooks: what Go's encoding/json refuses, or Python's takes silently."""


def read(path: Path) -> dict[str, Any]:
    """The policy config at `path`, as the Pulumi CLI reads it, or PolicyConfigError naming what is wrong."""
    data = _parsed(path, _bytes_of(path))
    if not isinstance(data, dict):
        raise PolicyConfigError([f"{path}: expected an object of policy names, not {type(data).__name__}"])
    problems = []
    for key, value in data.items():
        if isinstance(value, dict):
            level = value.get("enforcementLevel", "")
            if not isinstance(level, str):
                problems.append(f"{_shown(key)}.enforcementLevel: {_shown(level)} is not a string")
        elif not isinstance(value, str):
            problems.append(f"{_shown(key)}: {type(value).__name__} is not an enforcement level or an object")
    if problems:
        raise PolicyConfigError([f"{path}: {p}" for p in problems])
    return data


def _bytes_of(path: Path) -> bytes:
    """At most MAX_BYTES of a regular file: a FIFO, a device (/dev/zero) or a directory is refused unread."""
    from .files import read_regular_file

    try:
        return read_regular_file(path, MAX_BYTES)
    except FileNotFoundError:
        raise PolicyConfigError([f"{path}: no such policy config"]) from None
    except OSError as exc:
        raise PolicyConfigError([f"{path}: {exc.strerror or exc}, not a policy config"]) from None


def _parsed(path: Path, data: bytes) -> Any:
    try:
        return json.loads(
            data.decode("utf-8"),
            parse_constant=_no_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            object_pairs_hook=_without_duplicates,
        )
    except UnicodeDecodeError:
        raise PolicyConfigError([f"{path}: not UTF-8 text, not a policy config"]) from None
    except RecursionError:
        raise PolicyConfigError([f"{path}: nested too deeply, not a policy config"]) from None
    except json.JSONDecodeError as exc:
        raise PolicyConfigError([f"{path}: not JSON ({exc.msg} at line {exc.lineno})"]) from None
    except _Refused as exc:
        raise PolicyConfigError([f"{path}: {exc}"]) from None


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number (the Pulumi CLI refuses it)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"{_shown(text)} is beyond a float64 (the Pulumi CLI refuses it)")
    return value


def _bounded_int(text: str) -> int:
    # Python's int() refuses more than 4,300 digits with a ValueError of its own; Go refuses beyond float64
    if len(text) > 400 or abs(value := int(text)) > sys.float_info.max:
        raise _Refused(f"{_shown(text)} is beyond a float64 (the Pulumi CLI refuses it)")
    return value


def _without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _Refused(f"{_shown(key)} is given twice (only the last would count)")
        seen[key] = value
    return seen


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "…"


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
        host_paths.append({**dcgm, "path": "/var/lib/kubelet/pod-resources"})
        if pool.ami_family == "al2023":  # Bottlerocket's NVIDIA variants run their own device plugin
            plugin = {"kind": "DaemonSet", "namespace": DAEMON_NAMESPACE, "name": f"nvidia-device-plugin-{pool_name}"}
            exemptions["k8s-run-as-non-root"].append({**plugin, "reason": DEVICE_PLUGIN})
            exemptions["k8s-probes"].append({**plugin, "reason": DEVICE_PLUGIN_PROBES})
            host_paths.append({**plugin, "path": "/var/lib/kubelet/device-plugins"})
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
                kept = [e for e in entry.get(key, []) if not _derived(e)]
                settings = {**settings, key: settings[key] + kept}
        entry.update(settings)
        if not entry.get("exemptions", True):
            entry.pop("exemptions")
        out[rule] = entry
    return out


def _derived(entry: dict[str, Any]) -> bool:
    """An entry this verb writes (and so replaces): a GPU daemon's, in its namespace; a hand-written entry for
    another namespace's `nvidia-device-plugin-…` stays."""
    return entry.get("namespace") == DAEMON_NAMESPACE and str(entry.get("name", "")).startswith(DAEMON_PREFIXES)


def dumps(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2) + "\n"


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
