"""Image references pinned by digest: what every workload and function runs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
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
    (its CLI path does not pass `--attest` yet); buildx reads this variable with Go's ParseBool."""
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
"""Never part of an image's identity, with or without a .dockerignore."""


def _pattern(text: str) -> re.Pattern[str]:
    """One .dockerignore pattern as moby/patternmatcher reads it: Go's filepath.Match (`*` and `?` stop at `/`,
    `[...]` classes, `\\` escapes) plus `**`, any number of directories (none included)."""
    out, i = "", 0
    while i < len(text):
        c = text[i]
        if text.startswith("**", i):
            i += 2
            if text.startswith("/", i):  # patternmatcher eats the `/` of `**/`
                i += 1
            # at the end, anything; elsewhere (`**/x`, and `a**b` too) zero or more whole directories: `a**b`
            # matches `a/x/b` and `ab`, never `axb` (patternmatcher.go, compile: `(.*/)?`)
            out += ".*" if i >= len(text) else "(?:.*/)?"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = text.find("]", i + 1)
            if end == -1:
                out += re.escape(c)
            else:
                body = text[i + 1 : end]
                out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
                i = end
        elif c == "\\" and i + 1 < len(text):
            i += 1
            out += re.escape(text[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out)


def ignore_file(context: Path, dockerfile: str = "Dockerfile") -> Path | None:
    """The ignore file BuildKit reads: `<Dockerfile>.dockerignore` beside the Dockerfile when there is one, which
    takes precedence, else the context's `.dockerignore`
    (https://docs.docker.com/build/concepts/context/#filename-and-location)."""
    for path in (context / f"{dockerfile}.dockerignore", context / ".dockerignore"):
        if path.is_file():
            return path
    return None


def dockerignore_patterns(context: Path, dockerfile: str = "Dockerfile") -> list[tuple[bool, re.Pattern[str]]]:
    """(exception?, pattern) for each line of the ignore file, read as moby/patternmatcher's ignorefile.ReadAll
    reads it (https://docs.docker.com/build/concepts/context/#dockerignore-files): a UTF-8 BOM dropped, `#` a
    comment only in column 1 (`  # x` is a pattern), surrounding spaces and blank lines dropped, `!` re-includes,
    paths cleaned and one leading `/` dropped."""
    path = ignore_file(context, dockerfile)
    if path is None:
        return []
    patterns = []
    for raw in path.read_text(errors="replace").removeprefix("\ufeff").splitlines():
        if raw.startswith("#"):
            continue
        line = raw.strip()
        exception = line.startswith("!")
        line = line[1:].strip() if exception else line
        if not line:
            continue  # blank, or a lone `!` (which BuildKit refuses: the build says so)
        line = os.path.normpath(line).lstrip("/")
        if line and line != ".":
            patterns.append((exception, _pattern(line)))
    return patterns


def ignored_by_docker(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether the build context leaves `relative` out: the last pattern matching the path or one of its parent
    directories decides (a directory's pattern takes everything under it)."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for exception, pattern in patterns:
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            excluded = not exception
    return excluded


def _context_entries(root: Path) -> list[tuple[str, Path]]:
    """Every file and link of the context as BuildKit walks it (links not followed), by relative path."""
    entries = []
    for directory, dirs, files in os.walk(root, followlinks=False):
        base = Path(directory)
        dirs[:] = [d for d in dirs if d not in IGNORED_IN_CONTEXT]
        links = [d for d in dirs if (base / d).is_symlink()]
        for name in [*files, *links]:
            if name not in IGNORED_IN_CONTEXT:
                path = base / name
                entries.append((path.relative_to(root).as_posix(), path))
    return sorted(entries, key=lambda entry: entry[0].split("/"))  # by path parts, as Path objects sort


def _file_sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


def build_fingerprint(
    context: str, dockerfile: str, build_args: dict[str, str], platform: str, target: str | None
) -> str | None:
    """12 hex digits of a hash over everything that decides the image: every file of the context that the build
    sees (names and bytes; what .dockerignore leaves out is not sent to the builder, so it changes nothing), the
    Dockerfile, the build args, the platform and the target. None when the context is not there to read.

    The same inputs give the same tag, so an unchanged model is neither rebuilt nor rolled out, and any
    change gives a new tag, so an IMMUTABLE repository never refuses a push under an existing one. (A tag
    from `git log -1 -- <context>` was HEAD in shallow CI checkouts, and blind to args and dirty trees.)
    """
    root = Path(context)
    if not root.is_dir():
        return None
    digest = hashlib.sha256()
    patterns = dockerignore_patterns(root, dockerfile)
    # the Dockerfile and the ignore file reach the builder even when listed (Docker's documentation, as above)
    ignores = ignore_file(root, dockerfile)
    always = {
        os.path.normpath(dockerfile),
        ".dockerignore",
        *([ignores.relative_to(root).as_posix()] if ignores else []),
    }
    for relative, path in _context_entries(root):
        if relative not in always and ignored_by_docker(relative, patterns):
            continue
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            # BuildKit sends a link as a link: its target's text is what the image gets, never the bytes it points
            # at (which may be outside the context, huge, or a device)
            digest.update(relative.encode() + b"\0link\0" + os.readlink(path).encode() + b"\0")
        elif stat.S_ISREG(mode):
            # the executable bits reach the image (COPY keeps them); plain files hash as they always did
            executable = b"\0x" if mode & 0o111 else b""
            digest.update(relative.encode() + executable + b"\0")
            digest.update(_file_sha256(path))
    settings = {
        "dockerfile": dockerfile,
        "buildArgs": dict(sorted(build_args.items())),
        "platform": platform,
        "target": target,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:12]
