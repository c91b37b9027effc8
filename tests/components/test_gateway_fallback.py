"""GatewayFallback: a standby model's route fails over to its Lambda function while no replica answers (#23 item 11).

What the emitted fields rely on, as upstream states it (Envoy Gateway v1.9.1, the module the tier builds; that the
objects translate to priority failover is proven by its own translator in tests/e2e/test_gateway_fallback.py):
- `Backend.spec.fallback: true` puts the Backend at priority 1 of the rule's cluster (internal/gatewayapi/route.go,
  `ds.Priority`); the rule stays one cluster only while its backends are all FQDN and none is empty
  (internal/ir/xds.go, `NeedsClusterPerSetting`): hence the tracks as FQDN Backends, never Services.
  https://gateway.envoyproxy.io/docs/tasks/traffic/failover/
- BackendTrafficPolicy: passive health checks (outlier detection), retries with `numAttemptsPerPriority`
  (api/v1alpha1/retry_types.go), `timeout.http.requestTimeout`, `requestBuffer.limit`
  (api/v1alpha1/backendtrafficpolicy_types.go).
- Lambda function URLs with AWS_IAM need `lambda:InvokeFunctionUrl` and `lambda:InvokeFunction`
  (https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html); `lambda:InvokedViaFunctionUrl` limits the second
  to URL requests. A URL takes 6 MB of request payload (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
- Envoy Gateway cannot sign requests for Lambda itself (envoyproxy/gateway#688): a relay (aws-sigv4-proxy) does.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from components import GatewayFallback, GatewayFallbackArgs, ModelService
from components.config import StackConfigError, parse_stack_config
from components.gateway_fallback import REQUEST_LIMIT, failover_policy, invoke_url_policy, url_host
from modelops_cli.plan import Plan
from modelops_cli.render import kubernetes_resources, manifest
from tests.components.conftest import cluster_config, model_config
from tests.components.test_model_service import GATEWAY, IMAGE, pod_of, service_args
from tests.conftest import stack_raw
from tests.k8s_schema import validate_object

URL = "https://abcdef0123456789abcdef0123456789.lambda-url.us-east-1.on.aws/"
ALIAS_ARN = "arn:aws:lambda:us-east-1:123456789012:function:modelops-prod-sentiment:live"
IAM_ROLE_NAME_MAX = 64
PULUMI_AUTONAME_SUFFIX = 8
"""`-` and 7 random characters (pulumi-aws autonaming)."""


def fallback_args(**changes: Any) -> GatewayFallbackArgs:
    return cast(
        GatewayFallbackArgs,
        {
            "model": model_config(version="1.3.0", namespace="models"),
            "cluster": cluster_config(**GATEWAY),
            "environment": "prod",
            "cost_owner": "ml",
            "function_name": "modelops-prod-sentiment",
            "alias": "live",
            "function_url": URL,
            "replicas": 2,
            **changes,
        },
    )


def test_the_backend_is_a_fallback_on_the_relay(build):
    built = build(lambda: GatewayFallback("sentiment-failover", fallback_args()))
    backend = built.named("sentiment-failover-backend")
    assert backend["type"] == "kubernetes:gateway.envoyproxy.io/v1alpha1:Backend"
    spec = backend["inputs"]["spec"]
    assert spec == {
        "fallback": True,
        "endpoints": [{"fqdn": {"hostname": "sentiment-failover-relay.models.svc.cluster.local", "port": 8080}}],
    }
    relay = built.inputs("sentiment-failover-relay-svc")
    assert relay["metadata"]["name"] == "sentiment-failover-relay" and relay["spec"]["ports"][0]["port"] == 8080
    # the route sends requests there only once the relay's Deployment and Service exist
    needs = {d.rsplit("::", 1)[-1] for d in backend["dependencies"]}
    assert {"sentiment-failover-relay", "sentiment-failover-relay-svc"} <= needs


def test_the_relay_signs_for_the_function_url_host_only_and_holds_a_whole_request(build):
    built = build(lambda: GatewayFallback("sentiment-failover", fallback_args()))
    pod = pod_of(built, "sentiment-failover-relay")
    [relay] = pod["containers"]
    assert relay["args"] == [
        "--port=:8080",
        "--name=lambda",
        "--region=us-east-1",
        "--host=abcdef0123456789abcdef0123456789.lambda-url.us-east-1.on.aws",
        "--upstream-url-scheme=https",
    ]
    assert "@sha256:" in relay["image"] and relay["image"].startswith("public.ecr.aws/aws-observability/")
    # it signs a payload's hash, so it holds each request (up to the gateway's 6Mi buffer) whole
    assert relay["resources"]["requests"]["memory"] == relay["resources"]["limits"]["memory"] == "256Mi"
    # restricted profile; probed on its socket (a forwarded /health would be a paid invocation)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert relay["securityContext"]["readOnlyRootFilesystem"] is True
    assert relay["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "tcpSocket" in relay["readinessProbe"] and "tcpSocket" in relay["livenessProbe"]
    assert built.inputs("sentiment-failover-relay")["spec"]["replicas"] == 2


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
    built = build(lambda: GatewayFallback("sentiment-failover", fallback_args()))
    policy = json.loads(built.inputs("sentiment-failover-invoke")["policy"])
    assert policy == invoke_url_policy(ALIAS_ARN)
    by_action = {s["Action"]: s for s in policy["Statement"]}
    assert set(by_action) == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    assert all(s["Effect"] == "Allow" and s["Resource"] == ALIAS_ARN for s in policy["Statement"])
    assert by_action["lambda:InvokeFunctionUrl"]["Condition"] == {
        "StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}
    }
    assert by_action["lambda:InvokeFunction"]["Condition"] == {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}
    # IRSA: only the relay's ServiceAccount may assume the role
    trust = json.loads(built.inputs("sentiment-failover-role")["assumeRolePolicy"])
    [statement] = trust["Statement"]
    subject = next(iter(statement["Condition"]["StringEquals"].items()))
    assert subject[1] == "system:serviceaccount:models:sentiment-failover-relay"
    account = built.inputs("sentiment-failover-relay-sa")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert account["automountServiceAccountToken"] is False


def test_the_relay_role_name_fits_iam_at_the_longest_model_name(build):
    """The reverted design named the role `<model>-fallback-relay-role`: autonamed, 70 characters for a 42-character
    model, and IAM refuses more than 64 (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html)."""
    longest = "m" * 42  # the schema's longest model name (components/config.py, _MODEL_NAME)
    built = build(lambda: GatewayFallback(f"{longest}-failover", fallback_args()))
    [role] = [s for s in built.steps if s["newState"]["type"] == "aws:iam/role:Role"]
    logical = role["urn"].rsplit("::", 1)[-1]
    assert len(logical) + PULUMI_AUTONAME_SUFFIX <= IAM_ROLE_NAME_MAX, logical
    # the relay's names are label values too (63 at most)
    assert len(built.inputs(f"{longest}-failover-relay")["metadata"]["name"]) <= 63


def test_only_the_gateway_proxies_reach_the_relay(build):
    built = build(lambda: GatewayFallback("sentiment-failover", fallback_args()))
    policy = built.inputs("sentiment-failover-relay-netpol")["spec"]
    assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "sentiment-failover-relay"}}
    [rule] = policy["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway-system"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert built.inputs("sentiment-failover-relay-pdb")["spec"]["maxUnavailable"] == 1


def test_the_relay_objects_are_valid_kubernetes(build):
    built = build(lambda: GatewayFallback("sentiment-failover", fallback_args()))
    kinds = set()
    for resource in kubernetes_resources(Plan(built.steps, {})):
        validate_object(manifest(resource), "1.31")
        kinds.add(resource.inputs["kind"])
    assert kinds == {"Backend", "Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget", "ServiceAccount"}


def failover_program(timeout_seconds: int = 60) -> None:
    failover = GatewayFallback("chat-failover", fallback_args())
    ModelService(
        "chat",
        service_args(
            model={"canary": {"version": "2.5.0", "weight": 10}, "serverless": {"timeoutSeconds": timeout_seconds}},
            cluster=GATEWAY,
            canary_image=IMAGE,
            fallback_backend=failover.backend_name,
        ),
    )


def test_the_route_names_its_tracks_as_fqdn_backends_then_the_fallback(build):
    built = build(failover_program)
    route = built.named("chat-route")
    refs = route["inputs"]["spec"]["rules"][0]["backendRefs"]
    backend = {"group": "gateway.envoyproxy.io", "kind": "Backend"}
    assert refs == [
        {**backend, "name": "chat-stable", "weight": 90},
        {**backend, "name": "chat-canary", "weight": 10},
        {**backend, "name": "chat-failover", "weight": 1},
    ]
    for track in ("chat-stable", "chat-canary"):
        spec = built.inputs(f"{track}-backend")["spec"]
        assert spec == {"endpoints": [{"fqdn": {"hostname": f"{track}.models.svc.cluster.local", "port": 80}}]}
        assert "fallback" not in spec  # priority 0
    # the route waits for every Backend it names (a route naming a missing Backend is never ResolvedRefs)
    needs = {d.rsplit("::", 1)[-1] for d in route["dependencies"]}
    assert {"chat-stable-backend", "chat-canary-backend", "chat-failover-backend"} <= needs


def test_the_route_policy_fails_a_sleeping_track_over(build):
    built = build(lambda: failover_program(timeout_seconds=120))
    policy = built.named("chat-failover-policy")
    assert policy["type"] == "kubernetes:gateway.envoyproxy.io/v1alpha1:BackendTrafficPolicy"
    spec = policy["inputs"]["spec"]
    assert spec == failover_policy("chat", 120)
    assert spec["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "chat"}]
    passive = spec["healthCheck"]["passive"]
    assert passive["splitExternalLocalOriginErrors"] is True and passive["consecutiveLocalOriginFailures"] == 1
    assert passive["maxEjectionPercent"] == 100
    assert spec["retry"]["numAttemptsPerPriority"] == 1
    assert "connect-failure" in spec["retry"]["retryOn"]["triggers"] and spec["retry"]["retryOn"][
        "httpStatusCodes"
    ] == [503]
    # the route outlasts the function's own timeout; the buffer holds what a function URL takes
    assert int(spec["timeout"]["http"]["requestTimeout"].removesuffix("s")) > 120
    assert spec["requestBuffer"] == {"limit": REQUEST_LIMIT} and REQUEST_LIMIT == "6Mi"
    # made after its route, and `up` waits for Envoy Gateway to accept it
    assert "chat-route" in {d.rsplit("::", 1)[-1] for d in policy["dependencies"]}
    waits = json.loads(policy["inputs"]["metadata"]["annotations"]["pulumi.com/waitFor"])
    assert waits == ['jsonpath={.status.ancestors[*].conditions[?(@.type=="Accepted")].status}=True']


def test_the_failover_objects_pass_the_vendored_crds(build):
    built = build(failover_program)
    kinds = set()
    for resource in kubernetes_resources(Plan(built.steps, {})):
        if resource.inputs["kind"] in ("Backend", "BackendTrafficPolicy", "HTTPRoute"):
            validate_object(manifest(resource), "1.31")
            kinds.add(resource.inputs["kind"])
    assert kinds == {"Backend", "BackendTrafficPolicy", "HTTPRoute"}


def test_without_a_fallback_the_route_names_services_only(build):
    built = build(lambda: ModelService("chat", service_args(cluster=GATEWAY)))
    refs = built.inputs("chat-route")["spec"]["rules"][0]["backendRefs"]
    assert refs == [{"name": "chat", "port": 80, "weight": 100}]
    assert not [s for s in built.steps if "Backend" in s["newState"]["type"]]


def test_standby_failover_needs_the_relay_registry():
    raw = stack_raw("staging")  # sentiment is a standby behind the gateway
    raw["cluster"]["gateway"]["standbyFailover"] = True
    with pytest.raises(StackConfigError) as info:
        parse_stack_config(raw)
    assert info.value.problems == [
        "modelops:registry.allowedRegistries: must allow public.ecr.aws/aws-observability/ (the SigV4 relay of "
        "cluster.gateway.standbyFailover)"
    ]
    raw["registry"]["allowedRegistries"].append("public.ecr.aws/aws-observability/")
    gateway = parse_stack_config(raw).cluster.gateway
    assert gateway is not None and gateway.standby_failover is True
    # off by default: the reference stacks deploy no relay
    assert parse_stack_config(stack_raw("staging")).cluster.gateway.standby_failover is False  # type: ignore[union-attr]


@pytest.mark.parametrize("suffix", ["failover", "failover-relay"])
def test_a_model_named_like_anothers_failover_is_refused(suffix):
    """An independent review: a model `<x>-failover-relay` shared the relay's ServiceAccount name (so its pods could
    assume the relay's invoke role) and `<x>-failover` wrote the same Backend as x's fallback; the plan passed."""
    raw = stack_raw("staging")
    raw["cluster"]["gateway"]["standbyFailover"] = True
    raw["registry"]["allowedRegistries"] = [
        *raw["registry"].get("allowedRegistries", []),
        "public.ecr.aws/aws-observability/",
    ]
    raw["models"][f"sentiment-{suffix}"] = {**raw["models"]["sentiment"], "fallback": "none"}
    with pytest.raises(
        StackConfigError,
        match=rf"modelops:models.sentiment-{suffix}: collides with model 'sentiment''s gateway failover",
    ):
        parse_stack_config(raw, "staging")
    raw["cluster"]["gateway"]["standbyFailover"] = False  # without the failover, the name is free
    parse_stack_config(raw, "staging")
