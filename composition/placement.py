"""Where each model runs: Kubernetes, its serverless fallback, or both, and why.

`none` is Kubernetes only, `only` serverless only, `standby` both. `auto` runs where the stack file's
`placement` says (the GPU pool by default): a live quota check must never delete a running GPU
Deployment, its Service and route in the middle of some unrelated update. Pre-flight informs: when it
fails for the pool of a GPU-placed model, or passes again for a serverless-placed one, the placement's
`advice` says which reviewed change would move the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.config import ModelConfig, StackConfig
from composition.preflight import PreflightReport


@dataclass(frozen=True)
class PlacementDecision:
    """Where `place` runs a model (Kubernetes, its serverless fallback, or both) and why; not the stack key
    `placement` (components.config.Placement), which is one input of the decision."""

    kubernetes: bool
    serverless: bool
    reason: str
    advice: str | None = None
    """A move pre-flight recommends (logged as a warning), never made by itself."""


def place(cfg: StackConfig, name: str, model: ModelConfig, report: PreflightReport | None) -> PlacementDecision:
    mode = cfg.fallback(model)
    if mode == "none":
        return PlacementDecision(True, False, "fallback none: Kubernetes only")
    if mode == "only":
        return PlacementDecision(False, True, "fallback only: serverless only")
    if mode == "standby":
        return PlacementDecision(True, True, "fallback standby: Kubernetes with a serverless standby")
    pool = model.pool or ""
    status = report.status(pool) if report else "unknown"
    why = report.reason(pool) if report else "pre-flight did not run"
    key = f"modelops:models.{name}.placement"
    if model.placement == "serverless":
        advice = (
            f"pre-flight passed for pool {pool}: set {key}: gpu to move {name} back to its GPU pool"
            if status == "pass"
            else None
        )
        return PlacementDecision(False, True, f"auto: serverless, as {key} records", advice)
    advice = (
        f"pre-flight failed for pool {pool}: {why}; set {key}: serverless to move {name} to its "
        "serverless fallback (its Deployment, Service and route would be deleted)"
        if status == "fail"
        else None
    )
    checked = {"pass": "pre-flight passed", "fail": "pre-flight failed"}.get(status, why)
    return PlacementDecision(True, False, f"auto: GPU pool {pool}, as {key} records ({checked})", advice)
