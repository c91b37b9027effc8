"""`modelops policy-config`: the settings of a stack's `--policy-pack-config` file that its stack file decides.

The policy configs are the standard files the Pulumi CLI reads (`--policy-pack-config`), so they cannot
refer to the stack. The values both know — the account's registry, the repository prefix, the allowed
registries, the GPU budget and region — are written into them from the stack file by this verb, and a
test keeps the committed files current: one source, no drift. Enforcement levels, exemptions and limits
that are policy decisions stay as written by hand.
"""

from __future__ import annotations

import json
from typing import Any

from components.config import StackConfig


def derived_settings(cfg: StackConfig) -> dict[str, dict[str, Any]]:
    """Rule id -> the settings the stack file decides."""
    ecr = cfg.cluster.ecr_registry
    return {
        "k8s-allowed-registries": {"registries": [f"{ecr}/", *cfg.registry.allowed_registries]},
        "lambda-image-pinned": {"repositoryPrefixes": [f"{ecr}/{cfg.registry.repository_prefix}/"]},
        "gpu-cost-ceiling": {"budgetUsd": _number(cfg.budget.monthly_gpu_usd), "region": cfg.cluster.region},
    }


def merged(current: dict[str, Any], cfg: StackConfig) -> dict[str, Any]:
    """`current` with the derived settings written over their keys (other keys and rules kept, in order)."""
    out = dict(current)
    for rule, settings in derived_settings(cfg).items():
        entry = out.get(rule, {})
        entry = {"enforcementLevel": entry} if isinstance(entry, str) else dict(entry)
        entry.update(settings)
        out[rule] = entry
    return out


def dumps(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2) + "\n"


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
