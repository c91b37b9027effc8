"""The modelops component provider: GpuNodePool, ModelImage, ModelService, ServerlessFallback and GatewayFallback
for any Pulumi program, in any language (`pulumi package add <this repository>/components` generates its SDK).

The SDK's component provider infers the package schema from the components' Args and outputs (the stack
schema's own models, with their field docstrings) and constructs them from the inputs another language
sends, as plain values that the same models validate.
"""

import json
import sys
from pathlib import Path
from typing import Any

# Run as a plugin directory (`python components`), the package's parent must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi.errors import InputPropertyError
from pulumi.provider import main
from pulumi.provider.experimental.analyzer import PropertyDefinition, TypeDefinition
from pulumi.provider.experimental.component import ComponentProvider
from pydantic import BaseModel

from components import GatewayFallback, GpuNodePool, ModelImage, ModelService, ServerlessFallback
from components.cluster_inputs import package_model
from components.common import PACKAGE, type_token

COMPONENTS = [GpuNodePool, ModelImage, ModelService, ServerlessFallback, GatewayFallback]
VERSION = "0.1.0"


def publish_model_defaults(type_definitions: dict[str, TypeDefinition], schema: dict[str, Any]) -> dict[str, Any]:
    """The analyzer reads a TypedDict's NotRequired keys but not a pydantic field's default, so it makes every
    field of the nested schema models required (another language would restate each default, and could not
    leave out a cluster value it passes as a top-level Input). A field the model that validates the plain value
    fills in (`package_model`) is optional, in the published schema and in the provider's own check of the
    inputs it receives (the type definitions it maps them with)."""
    for type_def in type_definitions.values():
        model = type_def.python_type
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        fields = package_model(model).model_fields
        for schema_name, python_name in type_def.properties_mapping.items():
            field = fields.get(python_name)
            if field is not None and not field.is_required():
                type_def.properties[schema_name].optional = True
        published = schema["types"][type_token(type_def.name)]
        required = sorted(n for n, p in type_def.properties.items() if not p.optional)
        if required:
            published["required"] = required
        else:
            published.pop("required", None)
    return schema


def _pascal_case_enum_names(schema: dict[str, Any]) -> dict[str, Any]:
    """The analyzer names enum values after the Python members (`ON_DEMAND`); the code generators read a
    schema name as PascalCase and derive each language's spelling from it, so `ON_DEMAND` became Python's
    `O_N_DEMAND`. Published as `OnDemand`, it is `ON_DEMAND` in Python and `CapacityTypeOnDemand` in Go."""
    for type_ in schema.get("types", {}).values():
        for value in type_.get("enum", []):
            if value.get("name"):
                value["name"] = "".join(word.capitalize() for word in value["name"].split("_"))
    return schema


class ModelopsComponentProvider(ComponentProvider):
    """The SDK's component provider, with what its analyzer cannot express added after it ran by
    `component_provider` (no patch of the SDK): the schema models' defaults (`publish_model_defaults`) and
    PascalCase enum names. The SDK (pulumi 3.272) builds its Analyzer inside `ComponentProvider.__init__`, so
    no subclass can be passed in; no upstream issue tracks pydantic models as component args (the nearest:
    pulumi/pulumi#18526, args arrive as plain dicts; #19655, inherited dataclass args), nor enums in lists.

    It also reads enums inside lists and maps as enums: the SDK maps each item of a list whose items are an
    enum as an object, so `capacityTypes: ["on-demand"]` reached the component as `[{}]` (and a NodePool
    requirement the API server refuses)."""

    def map_input_properties(
        self,
        inputs: Any,
        properties: dict[str, PropertyDefinition],
        mapping: dict[str, str],
        component_name: str,
        property_path: str,
    ) -> Any:
        mapped = dict(super().map_input_properties(inputs, properties, mapping, component_name, property_path))
        for schema_name, prop in properties.items():
            raw = inputs.get(schema_name) if isinstance(inputs, dict) else None
            items = prop.items or prop.additional_properties
            if raw is None or items is None or not items.ref:
                continue
            type_def = self.get_type_definition(items)
            if type_def is None or not type_def.enum:
                continue
            path = f"{property_path}.{schema_name}" if property_path else schema_name
            try:
                if isinstance(raw, list):
                    mapped[mapping[schema_name]] = [type_def.python_type(v) for v in raw]
                elif isinstance(raw, dict):
                    mapped[mapping[schema_name]] = {k: type_def.python_type(v) for k, v in raw.items()}
            except ValueError as exc:
                raise InputPropertyError(path, f"Invalid value in {path} on '{component_name}': {exc}") from None
        return mapped


def component_provider() -> ComponentProvider:
    """The provider, its schema completed where the analyzer falls short (see ModelopsComponentProvider)."""
    # No namespace: generated SDKs are `pulumi_modelops` / `@pulumi/modelops`; a namespace prefixes their
    # names (`modelops_modelops`) and the `sdks/<namespace>-<name>` directory `pulumi package add` writes.
    provider = ModelopsComponentProvider(COMPONENTS, PACKAGE, version=VERSION)
    assert provider.schema is not None, "the component provider always serves a schema"
    schema = publish_model_defaults(provider.analyzer.type_definitions, json.loads(provider.schema))
    provider.schema = json.dumps(_pascal_case_enum_names(schema))
    return provider


if __name__ == "__main__":
    # the language host passes the plugin directory, then the engine address and flags
    main(component_provider(), sys.argv[1:])
