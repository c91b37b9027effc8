"""The JSON Schema of stack files, for editors: the stack schema's models (components/config.py), wrapped in
the shape of a `Pulumi.<stack>.yaml` (stacks/schema.json; `modelops schema` prints it)."""

from typing import Any

from components.config import KUBECONFIG_SECRET_KEY, NAMESPACE, StackConfig


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a stack file's `config:` block, for editors."""
    schema = StackConfig.model_json_schema(by_alias=True)
    defs = schema.pop("$defs", {})
    properties = {f"{NAMESPACE}:{k}": v for k, v in schema["properties"].items()}
    required = [f"{NAMESPACE}:{k}" for k in schema.get("required", [])]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "modelops stack file",
        "description": "stacks/Pulumi.<stack>.yaml: the `config:` block of a modelops stack.",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": {
                    **properties,
                    f"{NAMESPACE}:{KUBECONFIG_SECRET_KEY}": {
                        "description": "The cluster's kubeconfig, as a secret (pulumi config set --secret).",
                        "type": "object",
                        "properties": {"secure": {"type": "string"}},
                        "required": ["secure"],
                        "additionalProperties": False,
                    },
                },
                "required": required,
                "patternProperties": {f"^(?!{NAMESPACE}:)[a-zA-Z][\\w-]*:": {}},
                "additionalProperties": False,
            },
            "secretsprovider": {"type": "string"},
            "encryptedkey": {"type": "string"},
            "encryptionsalt": {"type": "string"},
        },
        "$defs": defs,
    }
