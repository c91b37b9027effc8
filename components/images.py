"""Image references pinned by digest: what every workload and function runs."""

from __future__ import annotations

import hashlib
import json
import os
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


NO_DEFAULT_ATTESTATIONS = "BUILDX_NO_DEFAULT_ATTESTATIONS"


def single_manifest_builds(environ: dict[str, str] | None = None) -> bool:
    """Whether buildx (run by the docker-build provider, which inherits the CLI's environment) leaves out its
    default provenance attestation. With it, every push is an OCI image index, which Lambda refuses ("The image
    manifest, config or layer media type ... is not supported"; aws/aws-lambda-roadmap#82) and whose untagged
    children an untagged-expiry lifecycle rule would delete. pulumi-docker-build has no `provenance` input
    (its CLI path still lists `--attest` as a TODO); buildx reads this variable with Go's ParseBool."""
    value = (os.environ if environ is None else environ).get(NO_DEFAULT_ATTESTATIONS, "")
    return value in {"1", "t", "T", "TRUE", "true", "True"}


def require_single_manifest_builds() -> None:
    """Refuse to build images that Lambda would refuse, before anything is pushed."""
    if not single_manifest_builds():
        raise pulumi.RunError(
            f"image builds need {NO_DEFAULT_ATTESTATIONS}=1 in the environment of `pulumi up`: without it buildx "
            "pushes an image index with a provenance attestation, which Lambda refuses and the repository's "
            f"lifecycle policy cannot keep intact. Run: export {NO_DEFAULT_ATTESTATIONS}=1"
        )


IGNORED_IN_CONTEXT = {".git", "__pycache__", ".venv", "node_modules"}


def build_fingerprint(
    context: str, dockerfile: str, build_args: dict[str, str], platform: str, target: str | None
) -> str | None:
    """12 hex digits of a hash over everything that decides the image: every file of the context (names
    and bytes), the Dockerfile, the build args, the platform and the target. None when the context is not
    there to read (a plan of a stack whose model sources live elsewhere).

    The same inputs give the same tag, so an unchanged model is neither rebuilt nor rolled out, and any
    change gives a new tag, so an IMMUTABLE repository never refuses a push under an existing one. (A tag
    from `git log -1 -- <context>` was HEAD in shallow CI checkouts, and blind to args and dirty trees.)
    """
    root = Path(context)
    if not root.is_dir():
        return None
    digest = hashlib.sha256()
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and not IGNORED_IN_CONTEXT & set(p.relative_to(root).parts)
    )
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    settings = {
        "dockerfile": dockerfile,
        "buildArgs": dict(sorted(build_args.items())),
        "platform": platform,
        "target": target,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:12]
