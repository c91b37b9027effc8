"""`modelops render`: the Kubernetes objects of a plan as YAML manifests, one file per object.

For GitOps users and `kubectl diff`. Values a preview cannot know (an image built in the same update)
are written as a visible placeholder and listed at the top of the file; secrets stay masked.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

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


def file_name(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    namespace, kind, name = meta.get("namespace"), str(doc.get("kind", "")).lower(), meta.get("name", "unnamed")
    for what, value in (("namespace", namespace), ("kind", kind), ("name", name)):
        if value is not None and not (isinstance(value, str) and _SAFE_SEGMENT.fullmatch(value) and ".." not in value):
            raise RenderError(
                f"{what} {value!r} of a {doc.get('kind')} is not a Kubernetes name; refusing to " "write a file for it"
            )
    return f"{namespace or '_cluster'}/{kind}-{name}.yaml"


def render_text(resource: PlannedResource) -> tuple[str, str]:
    """(relative file name, YAML text) for one object."""
    doc, unknown = _unknown_paths(manifest(resource))
    header = [f"# {resource.urn}"]
    if unknown:
        header.append(f"# unknown until `pulumi up`: {', '.join(unknown)}")
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    if SECRET in body:
        header.append("# secret values are masked as [secret]")
    return file_name(doc), "\n".join(header) + "\n" + body


def write_manifests(plan: Plan, out_dir: Path) -> list[Path]:
    """Write every object under `out_dir`; check them all first, so a refused plan writes nothing."""
    if out_dir.exists() and not out_dir.is_dir():
        raise RenderError(f"{out_dir} exists and is not a directory")
    files: dict[str, tuple[str, str]] = {}
    for resource in kubernetes_resources(plan):
        name, text = render_text(resource)
        if name in files:
            raise RenderError(f"{files[name][0]} and {resource.urn} would both be written to {name}")
        files[name] = (resource.urn, text)
    root = out_dir.resolve()
    written = []
    try:
        for name, (_, text) in files.items():
            path = out_dir / name
            if root not in path.resolve().parents:
                raise RenderError(f"{name} is outside {out_dir}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
    except OSError as exc:
        raise RenderError(f"cannot write under {out_dir}: {exc.strerror or exc}") from None
    return written
