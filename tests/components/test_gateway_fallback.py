"""GatewayFallback: a model's route falls back to its Lambda function while no replica is ready (#23 item 11).

What the emitted fields rely on, as upstream states it:
- Envoy Gateway's `Backend.spec.fallback` (api/v1alpha1/backend_types.go, v1.9.1): a fallback Backend is put at
  priority 1 of the rule's Envoy cluster (internal/gatewayapi/route.go sets `ds.Priority = 1`), and a rule with a
  fallback keeps all its backends in one cluster (`weightedRuleBackendsMustBeInOneCluster`): priority failover.
  https://gateway.envoyproxy.io/docs/tasks/traffic/failover/
- Envoy Gateway refuses a route naming a Backend while `extensionApis.enableBackend` is off ("Backend is disabled in
  Envoy Gateway configuration", internal/gatewayapi/validate.go): the route's ResolvedRefs is False and `up` fails
  at the route's await instead of reporting success.
- Lambda function URLs with AWS_IAM need `lambda:InvokeFunctionUrl` and, since October 2025, `lambda:InvokeFunction`
  (https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html; serverless/serverless#13147);
  `lambda:InvokedViaFunctionUrl` limits the second to URL requests.
- Envoy Gateway cannot sign requests for Lambda itself (envoyproxy/gateway#688, open): a relay signs them.
  aws-sigv4-proxy's flags (cmd/aws-sigv4-proxy/main.go): `--host` overrides the upstream host of every request
  (proxyURLForRequest), `--name`/`--region` fix the signing scope; its client follows no redirects.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from components import GatewayFallback, GatewayFallbackArgs, ModelService
from components.gateway_fallback import invoke_url_policy, url_host
from offline.plan import Plan
from offline.render import kubernetes_resources, manifest
from tests.components.conftest import cluster_config, model_config
from tests.components.test_model_service import GATEWAY, IMAGE, pod_of, service_args
from tests.k8s_schema import validate_object

URL = "https://abcdef0123456789abcdef0123456789.lambda-url.us-east-1.on.aws/"
ALIAS_ARN = "arn:aws:lambda:us-east-1:123456789012:function:modelops-prod-sentiment:live"


def fallback_args(**changes: Any) -> GatewayFallbackArgs:
    return cast(
        GatewayFallbackArgs,
        {
            "model": model_config(version="1.3.0", namespace="models"),
            "cluster": cluster_config(**GATEWAY),
            "environment": "prod",
            "cost_owner": "ml",
            "function_name": "modelops-prod-sentiment",
            "function_url": URL,
            "replicas": 2,
            **changes,
        },
    )


def test_the_backend_is_a_fallback_on_the_relay(build):
    built = build(lambda: GatewayFallback("sentiment-fallback", fallback_args()))
    backend = built.named("sentiment-fallback-backend")
    assert backend["type"] == "kubernetes:gateway.envoyproxy.io/v1alpha1:Backend"
    spec = backend["inputs"]["spec"]
    assert spec["fallback"] is True
    relay = built.inputs("sentiment-fallback-relay-svc")
    assert spec["endpoints"] == [
        {"fqdn": {"hostname": "sentiment-fallback-relay.models.svc.cluster.local", "port": 8080}}
    ]
    assert relay["metadata"]["name"] == "sentiment-fallback-relay" and relay["spec"]["ports"][0]["port"] == 8080
    # the route sends requests there only once the relay's Deployment and Service exist
    needs = {d.rsplit("::", 1)[-1] for d in backend["dependencies"]}
    assert {"sentiment-fallback-relay-deploy", "sentiment-fallback-relay-svc"} <= needs


def test_the_relay_signs_for_the_function_url_host_only(build):
    built = build(lambda: GatewayFallback("sentiment-fallback", fallback_args()))
    pod = pod_of(built, "sentiment-fallback-relay-deploy")
    [relay] = pod["containers"]
    assert relay["args"] == [
        "--port=:8080",
        "--name=lambda",
        "--region=us-east-1",
        "--host=abcdef0123456789abcdef0123456789.lambda-url.us-east-1.on.aws",
        "--upstream-url-scheme=https",
    ]
    assert "@sha256:" in relay["image"] and relay["image"].startswith("public.ecr.aws/aws-observability/")
    # restricted profile; probed on its socket (a forwarded /health would be a paid invocation)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert relay["securityContext"]["readOnlyRootFilesystem"] is True
    assert relay["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "tcpSocket" in relay["readinessProbe"] and "tcpSocket" in relay["livenessProbe"]
    assert built.inputs("sentiment-fallback-relay-deploy")["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("url", "host"),
    [
        (URL, "abcdef0123456789abcdef0123456789.lambda-url.us-east-1.on.aws"),
        ("https://x.lambda-url.eu-west-1.on.aws", "x.lambda-url.eu-west-1.on.aws"),
        ("x.lambda-url.eu-west-1.on.aws/path", "x.lambda-url.eu-west-1.on.aws"),
    ],
)
def test_url_host(url, host):
    assert url_host(url) == host


def test_the_relay_may_invoke_its_own_alias_through_the_url_only(build):
    built = build(lambda: GatewayFallback("sentiment-fallback", fallback_args()))
    policy = json.loads(built.inputs("sentiment-fallback-relay-invoke")["policy"])
    assert policy == invoke_url_policy(ALIAS_ARN)
    by_action = {s["Action"]: s for s in policy["Statement"]}
    assert set(by_action) == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    assert all(s["Effect"] == "Allow" and s["Resource"] == ALIAS_ARN for s in policy["Statement"])
    assert by_action["lambda:InvokeFunctionUrl"]["Condition"] == {
        "StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}
    }
    assert by_action["lambda:InvokeFunction"]["Condition"] == {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}
    # IRSA: only the relay's ServiceAccount may assume the role
    trust = json.loads(built.inputs("sentiment-fallback-relay-role")["assumeRolePolicy"])
    [statement] = trust["Statement"]
    subject = next(iter(statement["Condition"]["StringEquals"].items()))
    assert subject[1] == "system:serviceaccount:models:sentiment-fallback-relay"
    account = built.inputs("sentiment-fallback-relay-sa")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert account["automountServiceAccountToken"] is False


def test_only_the_gateway_proxies_reach_the_relay(build):
    built = build(lambda: GatewayFallback("sentiment-fallback", fallback_args()))
    policy = built.inputs("sentiment-fallback-relay-netpol")["spec"]
    assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "sentiment-fallback-relay"}}
    [rule] = policy["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway-system"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert built.inputs("sentiment-fallback-relay-pdb")["spec"]["maxUnavailable"] == 1


def test_the_relay_objects_are_valid_kubernetes(build):
    built = build(lambda: GatewayFallback("sentiment-fallback", fallback_args()))
    kinds = set()
    for resource in kubernetes_resources(Plan(built.steps, {})):
        if resource.inputs["kind"] != "Backend":  # a CRD: the real-engine tier's API server validates it
            validate_object(manifest(resource), "1.31")
            kinds.add(resource.inputs["kind"])
    assert kinds == {"Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget", "ServiceAccount"}


def test_the_route_lists_the_fallback_after_its_tracks(build):
    def program() -> None:
        fallback = GatewayFallback("chat-fallback", fallback_args())
        ModelService(
            "chat",
            service_args(
                model={"canary": {"version": "2.5.0", "weight": 10}},
                cluster=GATEWAY,
                canary_image=IMAGE,
                fallback_backend=fallback.backend_name,
            ),
        )

    built = build(program)
    route = built.named("chat-route")
    refs = route["inputs"]["spec"]["rules"][0]["backendRefs"]
    assert refs[:2] == [
        {"name": "chat-stable", "port": 80, "weight": 90},
        {"name": "chat-canary", "port": 80, "weight": 10},
    ]
    assert refs[2] == {"group": "gateway.envoyproxy.io", "kind": "Backend", "name": "chat-fallback", "weight": 1}
    # the route waits for its Backend (a route naming a missing Backend is never Accepted with ResolvedRefs)
    assert "chat-fallback-backend" in {d.rsplit("::", 1)[-1] for d in route["dependencies"]}


def test_without_a_fallback_the_route_names_services_only(build):
    built = build(lambda: ModelService("chat", service_args(cluster=GATEWAY)))
    refs = built.inputs("chat-route")["spec"]["rules"][0]["backendRefs"]
    assert all("kind" not in ref for ref in refs)
