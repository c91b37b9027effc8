"""The cluster values components also take as Inputs: optional in the component package only, bounded as ever."""

from __future__ import annotations

import pydantic
import pytest

from components.cluster_inputs import CLUSTER_INPUTS, PACKAGE_CLUSTER_CONFIG, cluster_input, cluster_settings
from components.config import ClusterConfig
from tests.components.conftest import cluster_config

BARE = {"region": "us-west-2", "accountId": "123456789012", "kubernetesVersion": "1.31"}


def test_the_package_leaves_out_only_what_a_component_takes_as_an_input():
    required = {name for name, field in PACKAGE_CLUSTER_CONFIG.model_fields.items() if field.is_required()}
    assert required == {"region", "account_id", "kubernetes_version"}
    assert set(CLUSTER_INPUTS.values()) <= set(ClusterConfig.model_fields)
    cluster = cluster_settings(BARE)
    assert isinstance(cluster, ClusterConfig) and cluster.node_role is None and cluster.name is None


def test_a_stack_file_still_needs_every_cluster_value():
    with pytest.raises(pydantic.ValidationError, match="nodeRole|node_role"):
        ClusterConfig.model_validate(BARE | {"name": "ml", "oidcProviderArn": "arn:aws:iam::1:oidc-provider/x"})


@pytest.mark.parametrize(
    "field, value",
    [("nodeRole", "has spaces"), ("name", "Not_A_Dns_Label"), ("oidcProviderArn", "arn:aws:sns:x"), ("nodRole", "x")],
)
def test_a_value_given_in_the_package_is_bounded_as_in_a_stack_file(field, value):
    with pytest.raises(pydantic.ValidationError, match=field):
        cluster_settings(BARE | {field: value})


def test_the_top_level_input_wins_and_the_nested_value_stands_in():
    cluster = cluster_config(alarm_topic_arn="arn:aws:sns:us-east-1:123456789012:ml")
    assert cluster_input({"node_role": "Given"}, cluster, "node_role") == "Given"
    assert cluster_input({}, cluster, "node_role") == "NodeRole"
    assert cluster_input({}, cluster, "cluster_name") == "ml-prod"
    assert cluster_input({}, cluster_config(), "alarm_topic_arn") is None
    assert cluster_settings(cluster) is cluster  # a Python program's model is taken as it is
