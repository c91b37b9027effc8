"""Strict schema validation of emitted Kubernetes objects: upstream OpenAPI schemas for core kinds
(kubernetes-validate, strict) and the upstream CRDs in tests/upstream/crds for custom resources."""

from __future__ import annotations

import copy
import re
from functools import cache
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import yaml

from tests.conftest import CRDS

CUSTOM_GROUPS = ("karpenter.sh", "karpenter.k8s.aws", "monitoring.coreos.com", "keda.sh", "gateway.networking.k8s.io")


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD structural schema as JSON Schema where unknown fields fail, as the API server prunes them."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.pop("x-kubernetes-int-or-string", False):
                node.pop("type", None)
                node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@cache
def _raw_crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


# The Kubernetes CEL library functions the CRDs use that plain CEL lacks.
_K8S_CEL_FUNCTIONS = {
    "find": lambda s, pattern: celpy.celtypes.StringType((re.search(str(pattern), str(s)) or [""])[0]),
    "findAll": lambda s, pattern: celpy.celtypes.ListType(
        [celpy.celtypes.StringType(m) for m in re.findall(str(pattern), str(s))]
    ),
    "lowerAscii": lambda s: celpy.celtypes.StringType(str(s).lower()),
    "split": lambda s, sep: celpy.celtypes.ListType([celpy.celtypes.StringType(p) for p in str(s).split(str(sep))]),
}
_CEL = celpy.Environment()
UNSUPPORTED_CEL: set[str] = set()
"""Rules the evaluator could not run (functions outside plain CEL and the ones above)."""


@cache
def _cel_program(rule: str):
    return _CEL.program(_CEL.compile(rule), functions=_K8S_CEL_FUNCTIONS)


def cel_violations(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Run the schema's x-kubernetes-validations (CEL) rules on `value`, as the API server does on
    create. Transition rules (oldSelf) only apply to updates and are skipped."""
    found = []
    for validation in schema.get("x-kubernetes-validations", []):
        rule = validation["rule"]
        if "oldSelf" in rule:
            continue
        try:
            result = _cel_program(rule).evaluate({"self": celpy.json_to_cel(value)})
        except (celpy.CELEvalError, celpy.CELParseError, KeyError, TypeError):
            UNSUPPORTED_CEL.add(rule)
            continue
        if isinstance(result, celpy.CELEvalError):
            UNSUPPORTED_CEL.add(rule)
        elif result is not True and result != celpy.celtypes.BoolType(True):
            found.append(f"{path or '.'}: {validation.get('message', rule)}")
    if isinstance(value, dict):
        for key, sub in value.items():
            child = schema.get("properties", {}).get(key)
            if child is None and isinstance(schema.get("additionalProperties"), dict):
                child = schema["additionalProperties"]
            if child is not None:
                found += cel_violations(child, sub, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += cel_violations(schema["items"], item, f"{path}[{i}]")
    return found


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """The CRDs' schemas made strict, with `metadata` left to the API server's own schema."""
    schemas = {}
    for key, raw in _raw_crd_schemas().items():
        root = _strict(raw)
        root.setdefault("properties", {})["metadata"] = {"type": "object"}
        schemas[key] = root
    return schemas


def validate_object(doc: dict[str, Any], kubernetes_version: str) -> None:
    """Raise AssertionError naming the object and the failing path when Kubernetes would reject it."""
    api_version, kind = doc["apiVersion"], doc["kind"]
    label = f"{kind} {doc.get('metadata', {}).get('namespace', '')}/{doc.get('metadata', {}).get('name')}"
    if api_version.split("/")[0] in CUSTOM_GROUPS:
        schema = crd_schemas().get((api_version, kind))
        assert schema is not None, f"{label}: no CRD for {api_version} {kind} in tests/upstream/crds"
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, f"{label}: " + "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors[:5])
        violations = cel_violations(_raw_crd_schemas()[(api_version, kind)], doc)
        assert not violations, f"{label}: " + "; ".join(violations)
        return
    try:
        kubernetes_validate.validate(doc, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise AssertionError(f"{label}: {'.'.join(map(str, exc.path))}: {exc.message}") from None
