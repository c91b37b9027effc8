"""Generated stacks for the benchmark: N models over two GPU pools, shaped like the prod stack.

Every model is a real mix of what users configure: GPU and CPU-only models, canaries, KEDA
autoscaling, standby fallbacks and pre-built images. Model names are zero-padded (m007) so that one
model's resources are found by name prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def model_name(i: int) -> str:
    return f"m{i:03d}"


def generate_stack(n: int, version_bump: str | None = None) -> dict[str, Any]:
    """The stack file (as a dict) with `n` models; `version_bump` names a model whose version moves on."""
    base = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    config = base["config"]
    gpu_models = 0
    models = {}
    for i in range(n):
        name = model_name(i)
        model: dict[str, Any] = {
            "version": "1.0.1" if name == version_bump else "1.0.0",
            "image": {"context": f"models/{name}"},
            "replicas": {"min": 2, "max": 3},
            "resources": {"cpu": "2", "memory": "8Gi"},
            "artifactUri": f"s3://acme-models-prod/{name}/1.0.0",
        }
        kind = i % 5
        if kind in (0, 1, 2):
            model.update(gpus=1, pool="a10g" if kind != 2 else "l4")
            gpu_models += 1
        if i % 10 == 3:
            model["canary"] = {"version": "1.1.0", "weight": 10}
        if i % 7 == 4:
            model["fallback"] = "standby"
        if i % 9 == 5 and "pool" in model:
            model["autoscaling"] = {"prometheusQuery": f'sum(rate(queue{{model="{name}"}}[1m]))'}
        elif "pool" in model:
            # a custom GPU server scales on CPU only by an explicit choice (the stack schema asks for one)
            model["autoscaling"] = {"targetCpuUtilization": 70}
        if i % 11 == 6:
            model["image"] = {
                "ref": f"123456789012.dkr.ecr.us-east-1.amazonaws.com/modelops/prod/{name}:1.0.0"
                "@sha256:" + f"{i:064x}"
            }
        models[name] = model
    config["modelops:models"] = models
    # Pools sized so that every model can scale: the graph, not a quota, is what the bench measures.
    config["modelops:gpuPools"]["a10g"]["gpuLimit"] = max(16, 4 * gpu_models)
    config["modelops:gpuPools"]["l4"]["gpuLimit"] = max(8, 4 * gpu_models)
    config["modelops:budget"] = {"monthlyGpuUsd": 10_000_000}
    return base


def write_stack(n: int, directory: Path, version_bump: str | None = None, name: str | None = None) -> Path:
    path = directory / f"Pulumi.{name or f'bench{n}'}.yaml"
    path.write_text(yaml.safe_dump(generate_stack(n, version_bump), sort_keys=False))
    return path
