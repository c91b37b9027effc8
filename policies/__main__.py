"""The modelops policy pack: wiring only. Rules live in modelops_rules/, enforcement in config/<env>.json.

Run by the Pulumi CLI: `pulumi preview --policy-pack policies --policy-pack-config policies/config/prod.json`.
Constructing PolicyPack starts the analyzer's gRPC server and never returns: nothing may import this file.
"""

from modelops_rules import RULES
from modelops_rules.adapters import resource_validator, stack_validator
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ResourceValidationPolicy,
    StackValidationPolicy,
)


def _policy(rule):
    schema = PolicyConfigSchema(properties=rule.config_schema())
    description = rule.cited_description
    if rule.scope == "stack":
        return StackValidationPolicy(
            name=rule.id, description=description, validate=stack_validator(rule), config_schema=schema
        )
    return ResourceValidationPolicy(
        name=rule.id, description=description, validate=resource_validator(rule), config_schema=schema
    )


PolicyPack(name="modelops", enforcement_level=EnforcementLevel.ADVISORY, policies=[_policy(r) for r in RULES])
