"""The modelops component provider: GpuNodePool, ModelImage, ModelService and ServerlessFallback for any
Pulumi program, in any language (`pulumi package add <this repository>/components` generates its SDK).

The SDK's component provider infers the package schema from the components' Args and outputs (the stack
schema's own models, with their field docstrings) and constructs them from the inputs another language
sends, as plain values that the same models validate.
"""

import sys
from pathlib import Path
from typing import Any

# Run as a plugin directory (`python components`), the package's parent must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi.provider import main
from pulumi.provider.experimental import analyzer
from pulumi.provider.experimental.component import ComponentProvider
from pydantic import BaseModel

from components import GpuNodePool, ModelImage, ModelService, ServerlessFallback
from components.common import PACKAGE

COMPONENTS = [GpuNodePool, ModelImage, ModelService, ServerlessFallback]
VERSION = "0.1.0"


def _defaults_are_optional() -> None:
    """The analyzer knows a TypedDict's NotRequired keys but not a pydantic field's default, so it would make
    every field of the nested schema models required (another language would have to restate each default).
    A field with a default is optional in the published schema; the model fills it in at construction."""
    if getattr(analyzer.Analyzer.analyze_type, "_pydantic_defaults", False):
        return
    original = analyzer.Analyzer.analyze_type

    def analyze_type(self: analyzer.Analyzer, typ: type, *, is_component_output: bool) -> Any:
        properties, mapping = original(self, typ, is_component_output=is_component_output)
        if isinstance(typ, type) and issubclass(typ, BaseModel):
            for schema_name, python_name in mapping.items():
                field = typ.model_fields.get(python_name)
                if field is not None and not field.is_required():
                    properties[schema_name].optional = True
        return properties, mapping

    analyze_type._pydantic_defaults = True  # type: ignore[attr-defined]
    analyzer.Analyzer.analyze_type = analyze_type  # type: ignore[method-assign]


def component_provider() -> ComponentProvider:
    _defaults_are_optional()
    return ComponentProvider(COMPONENTS, PACKAGE, PACKAGE, VERSION)


if __name__ == "__main__":
    # the language host passes the plugin directory, then the engine address and flags
    main(component_provider(), sys.argv[1:])
