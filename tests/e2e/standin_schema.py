"""The stand-in's `Check`: inputs validated against the real providers' input schema, and auto-naming.

The schema is the subset vendored in tests/upstream/pulumi-aws/schema-subset.json (required inputs and
types of the resource types and functions the program uses; see tests/upstream/README.md). A failure
reads as pulumi-terraform-bridge reports one for an SDKv2 resource (its own tests, pkg/tfbridge
provider_test.go `testCheckFailuresV2`): `Missing required argument. The argument "role" is required, but
no definition was found.. Examine values at 'fn.role'.`; the engine prints it as
`<type> resource '<name>' has a problem: ...`.

Auto-naming is the bridge's: a `name` the program leaves out becomes `<resource name>-<7 hex digits>`, the
digits drawn from the engine's per-resource random seed, recorded in `__defaults` so that later checks
keep the same name (https://www.pulumi.com/docs/iac/concepts/resources/names/#autonaming).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "upstream" / "pulumi-aws" / "schema-subset.json"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"

AUTONAME_MAX = {
    # token -> the longest name AWS takes (the bridge cuts the random name to it)
    "aws:iam/role:Role": 64,
    "aws:iam/rolePolicy:RolePolicy": 128,
    "aws:lambda/function:Function": 64,
    "aws:lambda/alias:Alias": 128,
    "aws:cloudwatch/logGroup:LogGroup": 512,
    "aws:cloudwatch/metricAlarm:MetricAlarm": 255,
    "aws:ecr/repository:Repository": 256,
    "aws:sns/topic:Topic": 256,
}
TYPE_WORDS = {"string": "a string", "integer": "a number", "number": "a number", "boolean": "a bool"}


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG:
        return _unwrap(value.get("value"))
    return value


class Checker:
    def __init__(self, schema: dict[str, Any] | None = None):
        self.schema = schema if schema is not None else load_schema()

    def knows(self, token: str) -> bool:
        return token in self.schema["resources"]

    def check(self, token: str, name: str, news: dict[str, Any]) -> list[str]:
        """Failure reasons for a resource's inputs (an empty list: they pass)."""
        resource = self.schema["resources"][token]
        return self._object(news, resource["inputProperties"], resource["requiredInputs"], name)

    def check_invoke(self, token: str, args: dict[str, Any]) -> list[str]:
        function = self.schema["functions"].get(token)
        if function is None:
            return []
        inputs = function["inputs"]
        return self._object(args, inputs["properties"], inputs["required"], token.rsplit(":", 1)[-1])

    def _object(self, value: dict[str, Any], properties: dict[str, Any], required: list[str], where: str) -> list[str]:
        failures = [
            f'Missing required argument. The argument "{_snake(key)}" is required, but no definition was found.. '
            f"Examine values at '{where}.{key}'."
            for key in required
            if _unwrap(value.get(key)) is None
        ]
        for key, item in value.items():
            if key in properties:
                failures += self._value(_unwrap(item), properties[key], f"{where}.{key}", key)
        return failures

    def _value(self, value: Any, spec: dict[str, Any], path: str, key: str) -> list[str]:
        if value is None or value == UNKNOWN:
            return []
        if "oneOf" in spec:
            results = [self._value(value, option, path, key) for option in spec["oneOf"]]
            return [] if any(not r for r in results) else results[0]
        if "$ref" in spec:
            return self._ref(value, spec["$ref"], path, key)
        kind = spec.get("type")
        if kind == "array":
            if not isinstance(value, list):
                return [self._wrong(key, "a list", path)]
            return [f for i, v in enumerate(value) for f in self._value(_unwrap(v), spec["items"], f"{path}[{i}]", key)]
        if kind == "object":
            if not isinstance(value, dict):
                return [self._wrong(key, "a map", path)]
            item = spec.get("additionalProperties", {})
            return [f for k, v in value.items() for f in self._value(_unwrap(v), item, f"{path}.{k}", key)]
        if not _is(value, kind):
            return [self._wrong(key, TYPE_WORDS.get(str(kind), str(kind)), path)]
        return []

    def _ref(self, value: Any, ref: str, path: str, key: str) -> list[str]:
        if ref == "pulumi.json#/Any":
            return []
        if ref == "pulumi.json#/Archive" or ref == "pulumi.json#/Asset":
            ok = isinstance(value, dict) and value.get(SIG_KEY) is not None
            return [] if ok else [self._wrong(key, "an archive", path)]
        if not isinstance(value, dict):
            return [self._wrong(key, "an object", path)]
        spec = self.schema["types"][ref.removeprefix("#/types/")]
        return self._object(value, spec.get("properties", {}), spec.get("required", []), path)

    @staticmethod
    def _wrong(key: str, expected: str, path: str) -> str:
        # Terraform's conversion diagnostic, with the bridge's pointer to the Pulumi property path
        return (
            f"Inappropriate value for attribute \"{_snake(key)}\": {expected} is required. Examine values at '{path}'."
        )


def _is(value: Any, kind: str | None) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def autoname(token: str, name: str, news: dict[str, Any], olds: dict[str, Any], seed: bytes) -> dict[str, Any]:
    """`news` with the bridge's auto-name when the program gave none (and the old one kept across updates)."""
    if token not in AUTONAME_MAX or news.get("name") not in (None, ""):
        return news
    defaults = list(news.get("__defaults") or [])
    if "name" in (olds.get("__defaults") or []) and olds.get("name"):
        chosen = olds["name"]
    else:
        entropy = seed or os.urandom(16)
        suffix = hashlib.sha256(entropy + name.encode()).hexdigest()[:7]
        chosen = f"{name}-{suffix}"[: AUTONAME_MAX[token]]
    return {**news, "name": chosen, "__defaults": sorted({*defaults, "name"})}
