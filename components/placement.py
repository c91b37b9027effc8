"""Where each model runs: Kubernetes, its serverless fallback, or both, and why.

`none` is Kubernetes only, `only` serverless only, `standby` both. `auto` asks pre-flight: the GPU pool
when its capacity and quota check passes, serverless when it fails, and the configured preference
(the GPU pool) when pre-flight could not run, saying so rather than flipping silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig, StackConfig
from .preflight import PreflightReport


@dataclass(frozen=True)
class Placement:
    kubernetes: bool
    serverless: bool
    reason: str


def place(cfg: StackConfig, name: str, model: ModelConfig, report: PreflightReport | None) -> Placement:
    mode = cfg.fallback(model)
    if mode == "none":
        return Placement(True, False, "fallback none: Kubernetes only")
    if mode == "only":
        return Placement(False, True, "fallback only: serverless only")
    if mode == "standby":
        return Placement(True, True, "fallback standby: Kubernetes with a serverless standby")
    pool = model.pool or ""
    status = report.status(pool) if report else "unknown"
    why = report.reason(pool) if report else "pre-flight did not run"
    if status == "pass":
        return Placement(True, False, f"auto: GPU pool {pool} (pre-flight passed)")
    if status == "fail":
        return Placement(False, True, f"auto: serverless, because pre-flight failed for pool {pool}: {why}")
    return Placement(True, False, f"auto: GPU pool {pool} kept as configured; {why}")
