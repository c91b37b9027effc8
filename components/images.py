"""Image references pinned by digest: what every workload and function runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pulumi
import pulumi_docker as docker

DIGEST_MARK = "@sha256:"


def repository_of(ref: str) -> str:
    """`registry[:port]/repo[:tag][@digest]` -> `registry[:port]/repo`."""
    name = ref.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def by_digest(repository: str, digest: str) -> str:
    """`repo@sha256:…`: the one form every consumer takes. Lambda refuses `repo:tag@sha256:…` (it
    accepts a tag or a digest, not both), and the kubelet ignores the tag of such a reference anyway."""
    return f"{repository}@{digest}"


def pinned_image(ref: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """`ref` as `repo@sha256:…`: its own digest when it has one, else the tag's current digest read
    from the registry, so a moving tag never reaches a node or a function."""
    if DIGEST_MARK in ref:
        return pulumi.Output.from_input(by_digest(repository_of(ref), ref.split("@", 1)[1]))
    image = docker.get_registry_image_output(name=ref, opts=pulumi.InvokeOutputOptions(parent=parent))
    return image.sha256_digest.apply(lambda digest: by_digest(repository_of(ref), digest))


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
