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

CUSTOM_GROUPS = (
    "karpenter.sh",
    "karpenter.k8s.aws",
    "monitoring.coreos.com",
    "keda.sh",
    "gateway.networking.k8s.io",
    "gateway.envoyproxy.io",
)


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
}  # type: dict[str, Any]
_CEL = celpy.Environment()
UNEVALUATED_CEL: dict[str, str] = {}
"""Rules the evaluator is allowed not to run, each with the reason (and so what covers it instead). Empty: a rule
it cannot run fails the validation instead of passing unseen (the real-engine tier's server-side dry run runs
every rule of every CRD)."""
_CEL_RESERVED = {
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
}


class CelNotEvaluated(AssertionError):
    """A CRD rule this evaluator cannot run: never a silent pass."""


@cache
def _cel_program(rule: str):
    return _CEL.program(_CEL.compile(rule), functions=_K8S_CEL_FUNCTIONS)


def _cel_name(name: str) -> str:
    """A property name as Kubernetes CEL spells it: reserved words as `__word__`, and `_`, `.`, `-`, `/` escaped
    (k8s.io/apiserver/pkg/cel: `namespace` is `__namespace__` in the Gateway API's rules)."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    return (
        name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")
    )


def _as_cel_value(schema: dict[str, Any], value: Any) -> Any:
    """`value` as CEL sees it: the declared properties of an object under their escaped names; the keys of a
    map (additionalProperties, such as tags) as they are."""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        items = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else {}
        return {
            (_cel_name(k) if k in properties else k): _as_cel_value(properties.get(k, items), v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_as_cel_value(schema.get("items") or {}, v) for v in value]
    return value


def with_defaults(schema: dict[str, Any], value: Any) -> Any:
    """`value` with the schema's defaults filled in, as the API server defaults an object before it validates
    it (a backendRef's `group` and `kind`, which a CEL rule then reads)."""
    if isinstance(value, dict):
        value = dict(value)
        properties = schema.get("properties", {})
        for key, sub in properties.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        for key, sub in list(value.items()):
            child = properties.get(key)
            if child is None and isinstance(schema.get("additionalProperties"), dict):
                child = schema["additionalProperties"]
            if child is not None:
                value[key] = with_defaults(child, sub)
        return value
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [with_defaults(schema["items"], item) for item in value]
    return value


def cel_violations(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Run the schema's x-kubernetes-validations (CEL) rules on `value` (already defaulted), as the API server
    does on create. Transition rules (oldSelf) only apply to updates and are skipped; a rule that cannot run
    raises CelNotEvaluated unless UNEVALUATED_CEL names it."""
    found = []
    for validation in schema.get("x-kubernetes-validations", []):
        rule = validation["rule"]
        if "oldSelf" in rule or rule in UNEVALUATED_CEL:
            continue
        try:
            result = _cel_program(rule).evaluate({"self": celpy.json_to_cel(_as_cel_value(schema, value))})
        except (celpy.CELEvalError, celpy.CELParseError, KeyError, TypeError) as exc:
            raise CelNotEvaluated(f"{path or '.'}: cannot evaluate the CRD rule {rule!r} ({exc!r})") from None
        if isinstance(result, celpy.CELEvalError):
            raise CelNotEvaluated(f"{path or '.'}: cannot evaluate the CRD rule {rule!r} ({result!r})")
        if result is not True and result != celpy.celtypes.BoolType(True):
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
        raw = _raw_crd_schemas()[(api_version, kind)]
        violations = cel_violations(raw, with_defaults(raw, doc))
        assert not violations, f"{label}: " + "; ".join(violations)
        return
    try:
        kubernetes_validate.validate(doc, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise AssertionError(f"{label}: {'.'.join(map(str, exc.path))}: {exc.message}") from None
