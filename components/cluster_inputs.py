"""The cluster values another resource or stack produces, which a component takes as `pulumi.Input`s.

A component's `cluster` argument is the stack schema's `ClusterConfig`: plain values, validated (patterns,
bounds) when the component is built. What the platform's own program or stack produces (the nodes' IAM role,
the cluster's OIDC provider, its name, the alarm topic) a consumer holds as an Output, which no schema can
validate: each of those is also a top-level `pulumi.Input[str]` of the components that read it, and wins over
the nested value when given. In the component package the nested field may then be left out; a component
that needs the value says so when neither is given.
"""

from collections.abc import Mapping
from typing import Annotated, Any

import pulumi
from pydantic import BaseModel, Field, create_model

from .common import as_model
from .config import ClusterConfig

CLUSTER_INPUTS = {
    "cluster_name": "name",
    "node_role": "node_role",
    "oidc_provider_arn": "oidc_provider_arn",
    "alarm_topic_arn": "alarm_topic_arn",
}
"""A component's top-level Input -> the `ClusterConfig` field it stands for."""


_ANNOTATED: Any = Annotated


def _leave_out(model: type[BaseModel], fields: list[str]) -> type[BaseModel]:
    """`model` with `fields` optional (default None) and every other field, validator and bound as it is: the
    left-out fields keep their constraints (patterns, lengths) for a value that is given."""
    overrides: dict[str, Any] = {}
    for field in fields:
        info = model.model_fields[field]
        if info.is_required():
            annotation: Any = info.annotation  # a runtime type: `| None` and Annotated build new ones from it
            nullable = annotation | None
            annotated = _ANNOTATED[(nullable, *info.metadata)] if info.metadata else nullable
            overrides[field] = (annotated, Field(default=None, description=info.description))
    return create_model(model.__name__, __base__=model, **overrides)


PACKAGE_CLUSTER_CONFIG = _leave_out(ClusterConfig, list(CLUSTER_INPUTS.values()))
"""What validates the `cluster` another language sends: `ClusterConfig` whose Input-backed fields may be absent."""

PACKAGE_MODELS: dict[type[BaseModel], type[BaseModel]] = {ClusterConfig: PACKAGE_CLUSTER_CONFIG}
"""A schema model -> the model the component package validates its plain values with (the published schema's
required fields are that model's)."""


def package_model(model: type[BaseModel]) -> type[BaseModel]:
    return PACKAGE_MODELS.get(model, model)


def cluster_settings(value: Any) -> ClusterConfig:
    """The `cluster` argument as a `ClusterConfig`: as it is from a Python program, validated from the plain dict
    another language sends."""
    if isinstance(value, ClusterConfig):
        return value
    return as_model(PACKAGE_CLUSTER_CONFIG, value)  # type: ignore[return-value]  # a ClusterConfig subclass


def cluster_input(args: Mapping[str, Any], cluster: ClusterConfig, arg: str) -> pulumi.Input[str] | None:
    """The top-level Input `arg` when given, else the cluster's own value (None when it has none)."""
    given = args.get(arg)
    return given if given is not None else getattr(cluster, CLUSTER_INPUTS[arg])


def required_cluster_input(args: Mapping[str, Any], cluster: ClusterConfig, arg: str, where: str) -> pulumi.Input[str]:
    """`cluster_input`, refused with both spellings named when neither is given."""
    value = cluster_input(args, cluster, arg)
    if value is None:
        raise ValueError(f"{where}: give {_camel(arg)} or cluster.{_camel(CLUSTER_INPUTS[arg])}")
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)
