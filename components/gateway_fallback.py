"""GatewayFallback: a model's requests that find no ready replica go to its Lambda function, not to a 503.

A model that scales to zero answers nothing while it sleeps and wakes (the node, the image pull, the load), and a
model whose replicas are all down answers nothing either. When the model also runs as a serverless standby, its
route sends those requests to the function instead (#23 item 11). Creates:
- an Envoy Gateway `Backend` marked `fallback: true`, which the model's route lists beside its Services. Envoy
  Gateway keeps a rule's backends in one Envoy cluster and puts a fallback Backend at priority 1
  (internal/gatewayapi/route.go, `isFallbackBackend`): priority 0 (the model's ready pods) takes every request
  while it has healthy hosts, and the fallback takes them while it has none
  (https://gateway.envoyproxy.io/docs/tasks/traffic/failover/; Envoy's priority levels:
  https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/priority). The Gateway
  still counts those requests on the route, so a wake query on the gateway's requests wakes the model;
- a relay that signs each request with SigV4 for the function URL, which accepts IAM-signed requests only (Envoy
  Gateway cannot sign for Lambda: envoyproxy/gateway#688): awslabs' aws-sigv4-proxy, pinned by digest, with a
  role that may invoke only this function's `live` alias through its URL (both actions AWS requires since
  October 2025: https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html), its ServiceAccount (IRSA), a
  Service, a PodDisruptionBudget and a NetworkPolicy admitting only the gateway's proxies.

Holding requests instead (KEDA's HTTP add-on) needs an add-on the Go module proxy does not serve; a model without a
standby still answers 503 while asleep.
"""

import json
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from .common import FALLBACK_RELAY_IMAGE, as_model, standard_labels, type_token
from .config import ClusterConfig, ModelConfig
from .serverless_fallback import LIVE_ALIAS

RELAY_PORT = 8080
RELAY_USER = 65532
"""The image runs as root unless told otherwise; it reads and writes no file, so any uid serves."""
BACKEND_API = "gateway.envoyproxy.io/v1alpha1"


class GatewayFallbackArgs(TypedDict):
    """The model, the cluster, and the function its route falls back to."""

    model: ModelConfig
    """The model (its namespace)."""
    cluster: ClusterConfig
    """The cluster: region, account, OIDC provider, the gateway proxies' namespace."""
    environment: str
    """dev, staging or prod."""
    cost_owner: str
    """The team billed: the `modelops/cost-owner` label."""
    function_name: str
    """The model's Lambda function (ServerlessFallback's), known before it exists."""
    function_url: pulumi.Input[str]
    """Its alias's function URL, `https://<id>.lambda-url.<region>.on.aws/`."""
    replicas: int
    """Relay replicas: the stack's minimum for a Deployment (one replica is one failure from an outage)."""
    tags: NotRequired[dict[str, str]]
    """AWS tags (the relay's role)."""


class GatewayFallback(pulumi.ComponentResource):
    """The Backend a model's route falls back to, and the relay behind it. Secure defaults: the relay's role may
    only invoke the model's own function through its URL; the relay signs for one host only (`--host`, never the
    request's Host header), follows no redirects, and admits traffic from the gateway's proxies alone."""

    backend_name: pulumi.Output[str]
    """The `Backend` the route names (its name depends on the Backend, so the route waits for it)."""

    def __init__(self, name: str, args: GatewayFallbackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("GatewayFallback"), name, None, opts)
        model = as_model(ModelConfig, args["model"])
        cluster = as_model(ClusterConfig, args["cluster"])
        relay = f"{name}-relay"
        ns = model.namespace
        labels = standard_labels(relay, args["environment"], args["cost_owner"], component="fallback-relay")
        match = {"app.kubernetes.io/name": relay}
        child = pulumi.ResourceOptions(parent=self)

        role = aws.iam.Role(
            f"{relay}-role",
            assume_role_policy=json.dumps(service_account_trust(cluster.oidc_provider_arn, ns, relay)),
            tags=args.get("tags", {}),
            opts=child,
        )
        alias_arn = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition.apply(
            lambda p: f"arn:{p}:lambda:{cluster.region}:{cluster.account_id}:function:{args['function_name']}:{LIVE_ALIAS}"
        )
        aws.iam.RolePolicy(
            f"{relay}-invoke",
            role=role.id,
            policy=alias_arn.apply(lambda arn: json.dumps(invoke_url_policy(arn))),
            opts=child,
        )
        account = k8s.core.v1.ServiceAccount(
            f"{relay}-sa",
            metadata={
                "name": relay,
                "namespace": ns,
                "labels": labels,
                "annotations": {"eks.amazonaws.com/role-arn": role.arn},
            },
            automount_service_account_token=False,
            opts=child,
        )
        host = pulumi.Output.from_input(args["function_url"]).apply(url_host)
        deployment = k8s.apps.v1.Deployment(
            f"{relay}-deploy",
            metadata={"name": relay, "namespace": ns, "labels": labels},
            spec={
                "replicas": args["replicas"],
                "selector": {"matchLabels": match},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": relay_pod_spec(relay, host, cluster.region),
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account]),
        )
        service = k8s.core.v1.Service(
            f"{relay}-svc",
            metadata={"name": relay, "namespace": ns, "labels": labels},
            spec={
                "type": "ClusterIP",
                "selector": match,
                "ports": [{"name": "http", "port": RELAY_PORT, "targetPort": "http", "protocol": "TCP"}],
            },
            opts=child,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{relay}-pdb",
            metadata={"name": relay, "namespace": ns, "labels": labels},
            spec={"maxUnavailable": 1, "selector": {"matchLabels": match}},
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{relay}-netpol",
            metadata={"name": relay, "namespace": ns, "labels": labels},
            spec={
                "podSelector": {"matchLabels": match},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": cluster.ingress_namespace}
                                }
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": RELAY_PORT}],
                    }
                ],
            },
            opts=child,
        )
        backend = k8s.apiextensions.CustomResource(
            f"{name}-backend",
            api_version=BACKEND_API,
            kind="Backend",
            metadata={"name": name, "namespace": ns, "labels": labels},
            spec={
                "fallback": True,
                "endpoints": [{"fqdn": {"hostname": f"{relay}.{ns}.svc.cluster.local", "port": RELAY_PORT}}],
            },
            # the route sends requests here only once a relay can take them
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment, service]),
        )
        # the name is known now; through the Backend's URN it carries the dependency, so the route waits for it
        self.backend_name = backend.urn.apply(lambda _: name)
        self.register_outputs({"backend_name": self.backend_name})


def service_account_trust(oidc_provider_arn: str, namespace: str, service_account: str) -> dict:
    """IRSA: only this ServiceAccount's projected token may assume the role."""
    issuer = oidc_provider_arn.split(":oidc-provider/", 1)[1]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                        f"{issuer}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }


def invoke_url_policy(alias_arn: str) -> dict:
    """Invoke one alias through its function URL, and nothing else: `lambda:InvokeFunctionUrl` only for an
    AWS_IAM URL, `lambda:InvokeFunction` only as part of a URL request (`lambda:InvokedViaFunctionUrl`), so the
    role cannot call the function's API directly (https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "InvokeThroughUrl",
                "Effect": "Allow",
                "Action": "lambda:InvokeFunctionUrl",
                "Resource": alias_arn,
                "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}},
            },
            {
                "Sid": "InvokeViaUrlOnly",
                "Effect": "Allow",
                "Action": "lambda:InvokeFunction",
                "Resource": alias_arn,
                "Condition": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}},
            },
        ],
    }


def url_host(url: str) -> str:
    """`https://<id>.lambda-url.<region>.on.aws/` -> its host: the one host the relay signs for and calls."""
    return url.split("://", 1)[-1].split("/", 1)[0]


def relay_pod_spec(relay: str, host: pulumi.Input[str], region: str) -> dict:
    """aws-sigv4-proxy's flags (cmd/aws-sigv4-proxy/main.go): `--host` fixes the upstream whatever Host a request
    carries, `--name lambda` and `--region` what it signs for; the payload is signed (Lambda has no unsigned
    payloads). Probed on its socket: which releases answer `/health` themselves (its README) and which sign and
    forward it (handler/handler.go of earlier ones) varies, and a forwarded probe is a paid invocation every 10 s."""
    security = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    probe = {"tcpSocket": {"port": "http"}, "periodSeconds": 10, "timeoutSeconds": 3}
    return {
        "serviceAccountName": relay,
        # IRSA's webhook projects its own token for STS; the Kubernetes API token is never needed
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RELAY_USER,
            "runAsGroup": RELAY_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "relay",
                "image": FALLBACK_RELAY_IMAGE,
                "args": [
                    f"--port=:{RELAY_PORT}",
                    "--name=lambda",
                    f"--region={region}",
                    pulumi.Output.concat("--host=", host),
                    "--upstream-url-scheme=https",
                ],
                "ports": [{"name": "http", "containerPort": RELAY_PORT, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                "securityContext": security,
                "readinessProbe": {**probe, "failureThreshold": 3},
                "livenessProbe": {**probe, "failureThreshold": 3},
            }
        ],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": relay}},
            }
        ],
    }
