"""`modelops render`: the Kubernetes objects of a plan as YAML manifests, one file per object.

For GitOps users and `kubectl diff`. Values a preview cannot know (an image built in the same update)
are written as a visible placeholder and listed at the top of the file; secrets stay masked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .plan import SECRET, UNKNOWN, Plan, PlannedResource

UNKNOWN_PLACEHOLDER = "(known after pulumi up)"
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
    folder = meta.get("namespace") or "_cluster"
    return f"{folder}/{doc['kind'].lower()}-{meta.get('name', 'unnamed')}.yaml"


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
    written = []
    for resource in kubernetes_resources(plan):
        name, text = render_text(resource)
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
