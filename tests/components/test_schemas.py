"""What Kubernetes would reject, the tests reject first: every object of every reference stack."""

from __future__ import annotations

import pytest

from offline.plan import from_json
from offline.render import kubernetes_resources, manifest
from tests.conftest import reference_plan, stack_raw
from tests.k8s_schema import validate_object


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_kubernetes_object_passes_strict_upstream_schemas(stack):
    version = stack_raw(stack)["cluster"]["kubernetesVersion"]
    resources = kubernetes_resources(from_json(reference_plan(stack)))
    for resource in resources:
        validate_object(manifest(resource), version)
    kinds = {r.kind for r in resources}
    if stack == "prod":
        assert {"NodePool", "EC2NodeClass", "Deployment", "Service", "HorizontalPodAutoscaler", "ScaledObject",
                "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "PrometheusRule", "HTTPRoute",
                "DaemonSet", "Namespace", "ServiceAccount"} <= kinds


def test_the_validator_rejects_what_kubernetes_would():
    bad_pool = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "x"},
                "spec": {"template": {"spec": {"requirements": [], "nodeClassRef": {
                    "group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "x"}}}, "colour": "blue"}}
    with pytest.raises(AssertionError, match="colour"):
        validate_object(bad_pool, "1.31")
    bad_deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                      "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "a", "imag": "b"}]}}}}
    with pytest.raises(AssertionError, match="imag"):
        validate_object(bad_deployment, "1.31")
