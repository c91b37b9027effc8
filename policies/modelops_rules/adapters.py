"""Plain rules as pulumi-policy validate callbacks (duck-typed: no pulumi_policy import needed here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .framework import Rule, StackResource, is_exempt, object_name, object_namespace, rule_settings
from .pods import qualified_kind


def identity(resource_type: str, props: Any, name: str) -> tuple[str, str | None, str]:
    """(kind, namespace, name) an exemption names: the Kubernetes object's own, else the resource type
    and the Pulumi resource name. A kind Kubernetes serves is named bare (`Deployment`, its patch resource
    too), any other with its API group (`InferenceService.serving.kserve.io`): an exemption written for one
    never covers a custom resource of the same kind name."""
    kind = qualified_kind(resource_type)
    if kind:
        return kind, object_namespace(props), object_name(props, name)
    return resource_type, None, name


def resource_validator(rule: Rule) -> Callable[[Any, Callable[..., None]], None]:
    def validate(args: Any, report_violation: Callable[..., None]) -> None:
        settings = rule_settings(rule, args.get_config())
        if is_exempt(settings, *identity(args.resource_type, args.props, args.name)):
            return
        for message in rule.check(args.resource_type, args.props, settings):
            report_violation(message)

    return validate


def stack_validator(rule: Rule) -> Callable[[Any, Callable[..., None]], None]:
    def validate(args: Any, report_violation: Callable[..., None]) -> None:
        settings = rule_settings(rule, args.get_config())
        resources = [StackResource(r.resource_type, r.name, r.urn, r.props) for r in args.resources]
        for resource, message in rule.check(resources, settings):
            if not is_exempt(settings, *identity(resource.type, resource.props, resource.name)):
                report_violation(message, resource.urn)

    return validate
