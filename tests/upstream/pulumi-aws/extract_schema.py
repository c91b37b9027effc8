"""Extract the input schema of the resource types and functions the program uses from the locked SDKs.

pulumi-aws publishes its schema as `provider/cmd/pulumi-resource-aws/schema.json` inside its Go module, but
the Go module proxy reachable here answers 403 for `github.com/pulumi/pulumi-aws/provider/v7` (and `sdk/v7`).
The Python SDK on PyPI is generated from that same schema by Pulumi's Python code generator
(`pulumi_aws/pulumi-plugin.json` names the version: 7.51.1, as locked in uv.lock), and keeps what `Check`
needs: each input's wire name (`@pulumi.getter(name=...)`), its type (the getter's annotation) and whether
it is required (an `__init__` parameter without a default). This script reads them back into the schema's
own shape (`inputProperties`, `requiredInputs`, `types.<token>.properties/required`, `functions.<token>.inputs`)
for the types listed below only.

Run: `.venv/bin/python tests/upstream/pulumi-aws/extract_schema.py` (rewrites schema-subset.json beside it).
"""

from __future__ import annotations

import collections.abc
import enum
import importlib
import inspect
import json
import typing
from pathlib import Path
from typing import Any

import pulumi
import pulumi._types as pulumi_types

OUT = Path(__file__).with_name("schema-subset.json")

RESOURCES = {
    # token -> (SDK module, Args class)
    "aws:ecr/repository:Repository": ("pulumi_aws.ecr", "RepositoryArgs"),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": ("pulumi_aws.ecr", "LifecyclePolicyArgs"),
    "aws:iam/role:Role": ("pulumi_aws.iam", "RoleArgs"),
    "aws:iam/rolePolicy:RolePolicy": ("pulumi_aws.iam", "RolePolicyArgs"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ("pulumi_aws.iam", "RolePolicyAttachmentArgs"),
    "aws:lambda/function:Function": ("pulumi_aws.lambda_", "FunctionArgs"),
    "aws:lambda/alias:Alias": ("pulumi_aws.lambda_", "AliasArgs"),
    "aws:lambda/functionUrl:FunctionUrl": ("pulumi_aws.lambda_", "FunctionUrlArgs"),
    "aws:cloudwatch/logGroup:LogGroup": ("pulumi_aws.cloudwatch", "LogGroupArgs"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("pulumi_aws.cloudwatch", "MetricAlarmArgs"),
    "aws:sns/topic:Topic": ("pulumi_aws.sns", "TopicArgs"),
    "docker-build:index:Image": ("pulumi_docker_build", "ImageArgs"),
}
FUNCTIONS = {
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": ("pulumi_aws.ecr", "get_authorization_token"),
    "aws:ecr/getImages:getImages": ("pulumi_aws.ecr", "get_images"),
    "aws:ecr/getImage:getImage": ("pulumi_aws.ecr", "get_image"),
    "aws:ecr/getRepositories:getRepositories": ("pulumi_aws.ecr", "get_repositories"),
    "aws:ecr/getRepository:getRepository": ("pulumi_aws.ecr", "get_repository"),
    "aws:index/getPartition:getPartition": ("pulumi_aws", "get_partition"),
    "docker:index/getRegistryImage:getRegistryImage": ("pulumi_docker", "get_registry_image"),
}
SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


class Extractor:
    def __init__(self) -> None:
        self.types: dict[str, Any] = {}

    def type_of(self, annotation: Any, package: str, module: str) -> dict[str, Any]:
        """A Python SDK annotation -> a schema type spec."""
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if annotation in SCALARS:
            return {"type": SCALARS[annotation]}
        if annotation is typing.Any or annotation is object:
            return {"$ref": "pulumi.json#/Any"}
        if inspect.isclass(annotation) and issubclass(annotation, pulumi.Archive):
            return {"$ref": "pulumi.json#/Archive"}
        if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
            return {"type": "string"}
        if origin is typing.Union:
            # Optional[T], Input[T] = Union[T, Awaitable[T], Output[T]], Union[str, SomeEnum]
            useful = [
                a
                for a in args
                if a is not type(None)
                and typing.get_origin(a) is not collections.abc.Awaitable
                and not (
                    inspect.isclass(typing.get_origin(a) or a) and issubclass(typing.get_origin(a) or a, pulumi.Output)
                )
            ]
            specs: list[dict[str, Any]] = []
            for spec in (self.type_of(a, package, module) for a in useful):
                if spec not in specs:
                    specs.append(spec)
            if not specs:
                return {"$ref": "pulumi.json#/Any"}
            # a string or a typed document (`Union[str, PolicyDocumentArgs]`): either passes
            return specs[0] if len(specs) == 1 else {"oneOf": specs}
        if origin in (collections.abc.Sequence, list):
            return {"type": "array", "items": self.type_of(args[0], package, module)}
        if origin in (collections.abc.Mapping, dict):
            return {"type": "object", "additionalProperties": self.type_of(args[1], package, module)}
        if inspect.isclass(annotation) and hasattr(annotation, "__init__") and annotation.__name__.endswith("Args"):
            name = annotation.__name__[: -len("Args")]
            token = f"{package}:index:{name}" if module == "index" else f"{package}:{module}/{name}:{name}"
            if token not in self.types:
                self.types[token] = {}  # recursion guard
                props, required = self.args_class(annotation, package, module)
                self.types[token] = {"type": "object", "properties": props, "required": required}
            return {"$ref": f"#/types/{token}"}
        raise TypeError(f"no schema type for {annotation!r}")

    def args_class(self, cls: type, package: str, module: str) -> tuple[dict[str, Any], list[str]]:
        names = pulumi_types.input_type_py_to_pulumi_names(cls)
        globalns = _namespace(cls.__module__)
        props = {}
        for py_name, wire in names.items():
            getter = getattr(cls, py_name).fget
            hint = typing.get_type_hints(getter, globalns=globalns)["return"]
            props[wire] = self.type_of(hint, package, module)
        signature = inspect.signature(cls).parameters
        required = sorted(names[p] for p, v in signature.items() if p in names and v.default is inspect.Parameter.empty)
        return props, required

    def function(self, fn: Any, package: str, module: str) -> dict[str, Any]:
        globalns = _namespace(fn.__module__)
        hints = typing.get_type_hints(fn, globalns=globalns)
        props, required = {}, []
        for name, param in inspect.signature(fn).parameters.items():
            if name == "opts":
                continue
            wire = _camel(name)
            props[wire] = self.type_of(hints[name], package, module)
            if param.default is inspect.Parameter.empty:
                required.append(wire)
        return {"inputs": {"properties": props, "required": sorted(required)}}


def _namespace(module_name: str) -> dict[str, Any]:
    """The SDK module's names, and `Output` for the forward reference inside `pulumi.Input`."""
    return {"Output": pulumi.Output, "T": typing.Any, **vars(importlib.import_module(module_name))}


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _module_of(token: str) -> tuple[str, str]:
    package, module, _ = token.split(":")
    return package, module.split("/")[0]


def _version(package_module: str) -> str:
    root = importlib.import_module(package_module.split(".")[0])
    return json.loads((Path(str(root.__file__)).parent / "pulumi-plugin.json").read_text())["version"]


def build_schema() -> dict[str, Any]:
    """The subset, as the locked SDKs give it."""
    extractor = Extractor()
    resources = {}
    for token, (module_name, class_name) in RESOURCES.items():
        module = importlib.import_module(module_name)
        package, sdk_module = _module_of(token)
        props, required = extractor.args_class(getattr(module, class_name), package, sdk_module)
        resources[token] = {"inputProperties": props, "requiredInputs": required}
    functions = {}
    for token, (module_name, fn_name) in FUNCTIONS.items():
        package, sdk_module = _module_of(token)
        functions[token] = extractor.function(
            getattr(importlib.import_module(module_name), fn_name), package, sdk_module
        )
    schema = {
        "description": "Input schema subset of the locked Pulumi SDKs (tests/upstream/pulumi-aws/extract_schema.py)",
        "versions": {p: _version(p) for p in ("pulumi_aws", "pulumi_docker_build", "pulumi_docker")},
        "resources": resources,
        "types": dict(sorted(extractor.types.items())),
        "functions": functions,
    }
    return schema


def main() -> None:
    OUT.write_text(json.dumps(build_schema(), indent=1, sort_keys=False) + "\n")


if __name__ == "__main__":
    main()
