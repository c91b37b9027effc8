"""`modelops render`: the Kubernetes objects of a plan as YAML manifests, one file per object.

For GitOps users and `kubectl diff`. Values a preview cannot know (an image built in the same update)
are written as a visible placeholder and listed at the top of the file; secrets stay masked.

Confinement (issue #26, class 11): the output directory and every file are checked before anything is
written (an empty `--out`, a symlink at or under it, a name longer than the file system takes, a file that
exists as something else), then each file is written to a temporary name beside it and renamed over, so a
reader never sees half a manifest and a symlink planted at a file's name is replaced, never followed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .common import symlink_on_the_way, write_atomically
from .inert import terminal
from .plan import SECRET, UNKNOWN, Plan, PlannedResource

UNKNOWN_PLACEHOLDER = "(known after pulumi up)"
# What Kubernetes allows in a namespace, kind or object name that lands in a file name: DNS subdomain
# characters. Anything else (a plan from elsewhere with `../` or `/` in a name) could write outside --out.
_SAFE_SEGMENT = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")


class RenderError(Exception):
    """A plan or output directory render refuses: nothing is written."""


_FIRST_KEYS = ("apiVersion", "kind", "metadata")


def manifest(resource: PlannedResource) -> dict[str, Any]:
    """The object as Kubernetes would receive it: the inputs without Pulumi's bookkeeping keys."""
    body = {k: v for k, v in resource.inputs.items() if not k.startswith("__")}
    ordered = {k: body[k] for k in _FIRST_KEYS if k in body}
    ordered.update({k: v for k, v in body.items() if k not in ordered})
    return ordered


def kubernetes_resources(plan: Plan) -> list[PlannedResource]:
    return [r for r in plan.resources() if r.is_kubernetes and r.custom and "kind" in r.inputs]


def _unknown_paths(value: Any, path: str = "") -> tuple[Any, list[str]]:
    if value == UNKNOWN:
        return UNKNOWN_PLACEHOLDER, [path or "."]
    if isinstance(value, dict):
        out, paths = {}, []
        for k, v in value.items():
            out[k], sub = _unknown_paths(v, f"{path}.{k}" if path else k)
            paths += sub
        return out, paths
    if isinstance(value, list):
        out_list, paths = [], []
        for i, v in enumerate(value):
            item, sub = _unknown_paths(v, f"{path}[{i}]")
            out_list.append(item)
            paths += sub
        return out_list, paths
    return value, []


NAME_MAX = 255
"""Bytes in one file name on Linux and macOS file systems: `kind-name.yaml` of a 253-character name is longer."""


def file_name(doc: dict[str, Any]) -> str:
    found = doc.get("metadata")
    if found is not None and not isinstance(found, dict):
        raise RenderError(
            f"the metadata of a {terminal(doc.get('kind'), 60)} is not a mapping; not a Kubernetes object"
        )
    meta: dict[str, Any] = found or {}
    kind = doc.get("kind")
    namespace, name = meta.get("namespace"), meta.get("name", "unnamed")
    kind = kind.lower() if isinstance(kind, str) else kind
    for what, value in (("namespace", namespace), ("kind", kind), ("name", name)):
        if value is not None and not (isinstance(value, str) and _SAFE_SEGMENT.fullmatch(value) and ".." not in value):
            raise RenderError(
                f"{what} {terminal(repr(value), 120)} of a {terminal(kind, 60)} is not a Kubernetes name; "
                "refusing to write a file for it"
            )
    base = f"{kind}-{name}.yaml"
    if len(base.encode()) > NAME_MAX:
        raise RenderError(
            f"{terminal(base[:60])}…: a file name of {len(base.encode())} bytes; file systems take {NAME_MAX}"
        )
    return f"{namespace or '_cluster'}/{base}"


def render_text(resource: PlannedResource) -> tuple[str, str]:
    """(relative file name, YAML text) for one object. The header's URN and paths come from the plan: a line
    break in them would add YAML to the manifest, so they are made one inert line each."""
    doc, unknown = _unknown_paths(manifest(resource))
    header = [f"# {terminal(resource.urn)}"]
    if unknown:
        header.append(f"# unknown until `pulumi up`: {terminal(', '.join(unknown))}")
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    if SECRET in body:
        header.append("# secret values are masked as [secret]")
    return file_name(doc), "\n".join(header) + "\n" + body


def _refuse_unsafe_places(out_dir: Path, relative: list[str]) -> None:
    """No symlink at any directory or file render would create or replace under `out_dir`, and nothing there
    that is not what it would be (a directory where a manifest goes, a file where its namespace's directory goes)."""
    for name in relative:
        path = out_dir / name
        for place in (path.parent, path):
            if place.is_symlink():
                raise RenderError(f"{terminal(place)} is a symbolic link; refusing to write through it")
        if path.parent.exists() and not path.parent.is_dir():
            raise RenderError(f"{terminal(path.parent)} exists and is not a directory")
        if path.exists() and not path.is_file():
            raise RenderError(f"{terminal(path)} exists and is not a file")


def checked_output_dir(out: str | Path) -> Path:
    """`--out` as a directory render may write into: not empty (which would be the working directory), not a
    file, not a symlink."""
    if not str(out).strip():
        raise RenderError("--out is empty; name the directory to write the manifests into")
    out_dir = Path(out)
    try:
        linked = symlink_on_the_way(out_dir)
        if linked is not None:  # at --out or a directory on the way (`evil/manifests`, evil -> elsewhere)
            raise RenderError(f"{terminal(linked)} is a symbolic link; refusing to write through it")
        if out_dir.exists() and not out_dir.is_dir():
            raise RenderError(f"{terminal(out_dir)} exists and is not a directory")
    except OSError as exc:  # a name longer than the file system takes (ENAMETOOLONG), a component not a directory
        raise RenderError(f"{terminal(out_dir, 200)}: {exc.strerror or exc}") from None
    return out_dir


def write_manifests(plan: Plan, out_dir: Path | str) -> list[Path]:
    """Write every object under `out_dir`; check them all and every place they go first, so a refused plan
    or output directory writes nothing."""
    out_dir = checked_output_dir(out_dir)
    files: dict[str, tuple[str, str]] = {}
    for resource in kubernetes_resources(plan):
        name, text = render_text(resource)
        if name in files:
            raise RenderError(
                f"{terminal(files[name][0])} and {terminal(resource.urn)} would both be written to {name}"
            )
        files[name] = (resource.urn, text)
    _refuse_unsafe_places(out_dir, list(files))
    root = out_dir.resolve()
    for name in files:
        if root not in (root / name).resolve().parents:
            raise RenderError(f"{name} is outside {terminal(out_dir)}")
    written = []
    try:
        for name, (_, text) in files.items():
            path = out_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, text)
            written.append(path)
    except OSError as exc:
        raise RenderError(
            f"cannot write under {terminal(out_dir)} ({len(written)} of {len(files)} written): {exc.strerror or exc}"
        ) from None
    return written
