"""The component provider: the schema another language's SDK is generated from, and a construction from
the plain values such an SDK sends."""

import json

import pytest
from pulumi.provider.experimental.component import ComponentProvider

from components.__main__ import component_provider
from modelops_cli.offline.engine import plan_of


@pytest.fixture(scope="module")
def provider() -> ComponentProvider:
    return component_provider()


def test_the_analyzer_accepts_every_component_and_publishes_its_schema(provider):
    schema = json.loads(provider.schema)
    resources = schema["resources"]
    assert sorted(resources) == [
        f"modelops:index:{c}"
        for c in ("GatewayFallback", "GpuNodePool", "ModelImage", "ModelService", "ServerlessFallback")
    ]
    assert all(r["isComponent"] for r in resources.values())
    service = resources["modelops:index:ModelService"]
    assert sorted(service["requiredInputs"]) == [
        "cluster",
        "costOwner",
        "environment",
        "image",
        "maxReplicas",
        "minReplicas",
        "model",
    ]
    # nested inputs are the stack schema's own models, documented by their field docstrings
    model = schema["types"]["modelops:index:ModelConfig"]
    assert model["properties"]["probes"]["$ref"] == "#/types/modelops:index:ProbeConfig"
    assert (
        "load its model" in schema["types"]["modelops:index:ProbeConfig"]["properties"]["startupSeconds"]["description"]
    )
    # another stack's outputs may flow into the resolved values
    assert not service["inputProperties"]["image"].get("plain")
    assert service["properties"]["endpoint"]["type"] == "string"
    # a field the schema defaults is optional: another language leaves it out and gets the schema's default
    assert "dockerfile" not in schema["types"]["modelops:index:ImageConfig"].get("required", [])
    assert "version" in model["required"]
    # enums, not free strings
    assert [e["value"] for e in schema["types"]["modelops:index:Environment"]["enum"]] == ["dev", "staging", "prod"]
    # named as the code generators expect (PascalCase): Python's CapacityType.ON_DEMAND, Go's CapacityTypeOnDemand
    assert [(e["name"], e["value"]) for e in schema["types"]["modelops:index:CapacityType"]["enum"]] == [
        ("Spot", "spot"),
        ("OnDemand", "on-demand"),
    ]
    assert schema["name"] == "modelops" and "namespace" not in schema  # the SDK is pulumi_modelops


def test_a_construction_from_another_language_validates_with_the_schemas_defaults(provider):
    """What a TypeScript or Go SDK sends: camelCase plain values, defaults left out. The schema's models fill
    them in, as for a stack file."""
    inputs = {
        "model": {
            "version": "1.2.0",
            "image": {"context": "models/sentiment"},
            "artifactUri": "s3://acme-models-dev/sentiment/1.2.0",
        },
        "cluster": {
            "name": "ml-dev",
            "region": "us-east-1",
            "accountId": "123456789012",
            "kubernetesVersion": "1.33",
            "nodeRole": "NodeRole",
            "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/A",
        },
        "functionName": "modelops-dev-sentiment",
        "imageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/m/sentiment@sha256:" + "c" * 64,
        "logRetentionDays": 7,
    }
    plan = plan_of(lambda: provider.construct("s", "modelops:index:ServerlessFallback", inputs))
    function = next(s["newState"]["inputs"] for s in plan["steps"] if s["urn"].endswith("::s-function"))
    assert function["memorySize"] == 4096 and function["reservedConcurrentExecutions"] == 5  # the schema's defaults
    assert function["environment"]["variables"]["MODEL_URI"] == "s3://acme-models-dev/sentiment/1.2.0"


def test_a_construction_out_of_bounds_is_refused_by_the_schema(provider):
    cluster = {
        "name": "ml-dev",
        "region": "us-east-1",
        "accountId": "123456789012",
        "kubernetesVersion": "1.33",
        "nodeRole": "NodeRole",
        "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/A",
    }
    inputs = {
        "pool": {"gpuLimit": 0, "instanceTypes": ["g5.xlarge"]},
        "cluster": cluster,
        "environment": "prod",
        "costOwner": "ml",
        "capacityTypes": ["on-demand"],
    }
    with pytest.raises(Exception, match="gpu_limit\n  Input should be greater than or equal to 1"):
        plan_of(lambda: provider.construct("p", "modelops:index:GpuNodePool", inputs))


def test_enums_inside_lists_reach_the_component_as_enums(provider):
    """The SDK's provider maps each item of a list of enums as an object: `capacityTypes: ["on-demand"]`
    became `[{}]`, a NodePool requirement the API server refuses (found by the real-engine tier's consumer
    program). Ours reads them as the enum, and refuses a value outside it with its path."""
    inputs = {
        "pool": {"gpuLimit": 4, "instanceTypes": ["g6.xlarge"], "capacityTypes": ["spot"]},
        "cluster": {
            "name": "ml-dev",
            "region": "us-east-1",
            "accountId": "123456789012",
            "kubernetesVersion": "1.33",
            "nodeRole": "NodeRole",
            "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/A",
        },
        "environment": "prod",
        "costOwner": "ml",
        "capacityTypes": ["on-demand", "spot"],
    }
    plan = plan_of(lambda: provider.construct("p", "modelops:index:GpuNodePool", inputs))
    pool = next(s["newState"]["inputs"] for s in plan["steps"] if s["urn"].endswith("NodePool::p-node-pool"))
    requirement = next(
        r for r in pool["spec"]["template"]["spec"]["requirements"] if r["key"] == "karpenter.sh/capacity-type"
    )
    assert requirement["values"] == ["on-demand", "spot"]
    with pytest.raises(Exception, match=r"capacityTypes\[|capacityTypes.*'reserved' is not a valid CapacityType"):
        plan_of(
            lambda: provider.construct("p", "modelops:index:GpuNodePool", {**inputs, "capacityTypes": ["reserved"]})
        )


CLUSTER = {
    "name": "ml-prod",
    "region": "us-east-1",
    "accountId": "123456789012",
    "kubernetesVersion": "1.33",
    "nodeRole": "NodeRole",
    "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/A",
    "gateway": {"name": "models", "namespace": "gateway-system"},
}
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/m/chat@sha256:"


def test_a_model_service_from_another_language_keeps_its_nested_choices(provider):
    """Enums nested in models (runtime), maps whose keys are the user's (env, nodeSelector), lists of objects
    (tolerations) and a nested optional model (activeHours) cross the boundary as a stack file gives them."""
    model = {
        "version": "2.4.0",
        "runtime": "vllm",
        "image": {"context": "models/chat"},
        "gpus": 1,
        "pool": "a10g",
        "artifactUri": "s3://acme/chat/2.4.0",
        "canary": {"version": "2.5.0", "weight": 10},
        "autoscaling": {
            "prometheusQuery": "sum(rate(envoy_rq[2m]))",
            "activeHours": {"timezone": "UTC", "start": "0 8 * * *", "end": "0 20 * * *"},
        },
        "env": {"LOG_LEVEL": "info", "hfHubOffline": "1"},
    }
    inputs = {
        "model": model,
        "cluster": CLUSTER,
        "environment": "prod",
        "costOwner": "ml",
        "image": ECR + "a" * 64,
        "canaryImage": ECR + "b" * 64,
        "minReplicas": 0,
        "maxReplicas": 4,
        "nodeSelector": {"modelops/gpu-pool": "a10g"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    plan = plan_of(lambda: provider.construct("chat", "modelops:index:ModelService", inputs))
    by_name = {s["urn"].rsplit("::", 1)[-1]: s["newState"].get("inputs", {}) for s in plan["steps"]}
    pod = by_name["chat-deployment"]["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert server["args"][:3] == ["/models", "--served-model-name", "chat"]  # the vllm preset
    assert {"name": "hfHubOffline", "value": "1"} in server["env"]  # a user's key, not re-cased
    assert pod["nodeSelector"] == {"modelops/gpu-pool": "a10g"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert [t["type"] for t in by_name["chat-scaler"]["spec"]["triggers"]] == ["prometheus", "cron"]
    assert by_name["chat-canary-keda"]["spec"]["maxReplicaCount"] == 2


def test_a_model_image_from_another_language_keeps_its_build_args(provider):
    inputs = {
        "model": {
            "version": "2.4.0",
            "image": {"context": "models/sentiment", "buildArgs": {"MODEL_NAME": "x", "someArg": "y"}},
        },
        "registry": {"repositoryPrefix": "modelops/dev"},
        "buildCanary": False,
        "buildCpuImage": False,
        "protect": False,
    }
    plan = plan_of(lambda: provider.construct("sentiment", "modelops:index:ModelImage", inputs))
    build = next(s["newState"]["inputs"] for s in plan["steps"] if s["newState"]["type"] == "docker-build:index:Image")
    assert build["buildArgs"] == {"MODEL_NAME": "x", "someArg": "y"}
    assert build["platforms"] == ["linux/amd64"]


def test_the_schema_models_defaults_are_published_without_patching_the_sdk(provider):
    """The SDK's analyzer marks every pydantic field required; the provider marks what the models default (or
    what a component also takes as an Input) optional after the analysis, in the schema it serves and in the
    type definitions it checks inputs against, leaving the SDK's Analyzer as it is."""
    from pulumi.provider.experimental.analyzer import Analyzer

    assert Analyzer.analyze_type.__module__ == "pulumi.provider.experimental.analyzer"
    assert not hasattr(Analyzer.analyze_type, "_pydantic_defaults")
    schema = json.loads(provider.schema)
    assert schema["types"]["modelops:index:GpuPoolConfig"]["required"] == ["gpuLimit"]
    # what another resource may produce is a top-level Input; the nested value may then be left out
    assert schema["types"]["modelops:index:ClusterConfig"]["required"] == ["accountId", "kubernetesVersion", "region"]
    assert (
        provider.get_type_definition(schema_property("#/types/modelops:index:ClusterConfig"))
        .properties["nodeRole"]
        .optional
    )


def schema_property(ref: str):
    from pulumi.provider.experimental.analyzer import PropertyDefinition

    return PropertyDefinition(ref=ref)


@pytest.mark.parametrize(
    "component, inputs",
    [
        ("GpuNodePool", ["clusterName", "nodeRole"]),
        ("ModelService", ["oidcProviderArn"]),
        ("ServerlessFallback", ["alarmTopicArn"]),
    ],
)
def test_what_another_resource_produces_is_an_input_and_what_shapes_the_graph_is_plain(provider, component, inputs):
    properties = json.loads(provider.schema)["resources"][f"modelops:index:{component}"]["inputProperties"]
    for name in inputs:
        assert properties[name]["type"] == "string" and not properties[name].get("plain"), name
    # the nested settings decide which resources exist: plain
    assert properties["cluster"]["plain"] is True


def test_a_pool_from_another_language_takes_its_node_role_from_another_stack(provider):
    """The consumer holds the node role as an Output (a StackReference's): it leaves `cluster.nodeRole` out."""
    cluster = {k: v for k, v in CLUSTER.items() if k not in ("nodeRole", "gateway")}
    inputs = {
        "pool": {"gpuLimit": 4, "instanceTypes": ["g6.xlarge"]},
        "cluster": cluster,
        "nodeRole": "KarpenterNodeRole-platform",
        "environment": "prod",
        "costOwner": "ml",
        "capacityTypes": ["on-demand"],
    }
    plan = plan_of(lambda: provider.construct("p", "modelops:index:GpuNodePool", inputs))
    node_class = next(s["newState"]["inputs"] for s in plan["steps"] if s["urn"].endswith("::p-node-class"))
    assert node_class["spec"]["role"] == "KarpenterNodeRole-platform"
    without = {k: v for k, v in inputs.items() if k != "nodeRole"}
    with pytest.raises(Exception, match=r"give nodeRole or cluster\.nodeRole"):
        plan_of(lambda: provider.construct("p", "modelops:index:GpuNodePool", without))


def test_a_model_service_from_another_language_trusts_the_oidc_provider_another_stack_gives(provider):
    """The service-account role (an artifact in S3) trusts the OIDC provider given as a top-level Input; without
    one either way, the component says which input is missing."""
    arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/PLATFORM"
    inputs = {
        "model": {"version": "1.0.0", "image": {"context": "models/sentiment"}, "artifactUri": "s3://acme/m/1.0.0"},
        "cluster": {k: v for k, v in CLUSTER.items() if k != "oidcProviderArn"},
        "oidcProviderArn": arn,
        "environment": "prod",
        "costOwner": "ml",
        "image": ECR + "a" * 64,
        "minReplicas": 1,
        "maxReplicas": 2,
    }
    plan = plan_of(lambda: provider.construct("m", "modelops:index:ModelService", inputs))
    role = next(s["newState"]["inputs"] for s in plan["steps"] if s["urn"].endswith("iam/role:Role::m-role"))
    statement = json.loads(role["assumeRolePolicy"])["Statement"][0]
    assert statement["Principal"] == {"Federated": arn}
    assert statement["Condition"]["StringEquals"] == {
        "oidc.eks.us-east-1.amazonaws.com/id/PLATFORM:sub": "system:serviceaccount:models:m",
        "oidc.eks.us-east-1.amazonaws.com/id/PLATFORM:aud": "sts.amazonaws.com",
    }
    without = {k: v for k, v in inputs.items() if k != "oidcProviderArn"}
    with pytest.raises(Exception, match=r"ModelService m: give oidcProviderArn or cluster\.oidcProviderArn"):
        plan_of(lambda: provider.construct("m", "modelops:index:ModelService", without))
