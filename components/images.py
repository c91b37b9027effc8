"""Image references pinned by digest: what every workload and function runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pulumi
import pulumi_docker as docker

DIGEST_MARK = "@sha256:"


def pinned_image(ref: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """`ref` as `repo:tag@sha256:…`: kept when already pinned, else the tag's current digest is read
    from the registry, so a moving tag never reaches a node."""
    if DIGEST_MARK in ref:
        return pulumi.Output.from_input(ref)
    image = docker.get_registry_image_output(name=ref, opts=pulumi.InvokeOutputOptions(parent=parent))
    return image.sha256_digest.apply(lambda digest: f"{ref}@{digest}")


def source_revision(context: str) -> str | None:
    """The short commit that last changed a build context, or None outside a git checkout.

    Keyed on the context, not HEAD, so that a commit touching one model does not retag (and so
    rebuild and roll out) every other model's image.
    """
    path = Path(context)
    if not path.exists():
        return None
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%h", "--", "."], cwd=path, capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
