"""GatewayFallback: a standby model's requests that find no replica go to its Lambda function, not to a 503.

A model that scales to zero answers nothing while it sleeps and wakes (the node, the image pull, the load), nor
does one whose replicas are all down. When the model also runs as a serverless standby and the stack enables it
(`cluster.gateway.standbyFailover`), its route sends those requests to the function instead (#23 item 11).

How Envoy Gateway v1.9.1 keeps the fallback a fallback (read in its source, and proven by translating the objects
the program emits with its own `egctl x translate`: tests/e2e/test_gateway_fallback.py):
- a route rule is one Envoy cluster only while every backend is of one address type and none is empty: a Service
  (IP endpoints) beside an FQDN Backend, or a Service with no ready endpoint (a model at zero), splits the rule into
  weighted clusters, each answering its share, the empty one with 503s (internal/ir/xds.go, `NeedsClusterPerSetting`,
  `HasMixedEndpoints`; `BackendWeights.AddWeighted`). So the route names each track as an FQDN Backend
  (`<service>.<namespace>.svc.cluster.local`: a name that always resolves, asleep or awake) and the fallback as one
  more, all FQDN, none empty: one cluster (`getOrCreateBackendCluster`, internal/gatewayapi/route.go);
- a Backend with `fallback: true` gets priority 1 in that cluster (route.go, `ds.Priority`), the tracks priority 0,
  each a locality weighted by its route weight (internal/xds/translator/cluster.go, `buildWeightedLocalities`).
  Envoy sends priority 1 nothing while priority 0 is healthy, and everything once it has no healthy host
  (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/priority;
  https://gateway.envoyproxy.io/docs/tasks/traffic/failover/);
- a track's health is what Envoy sees: asleep, its Service has no endpoint and kube-proxy refuses the connection.
  The BackendTrafficPolicy retries a refused connection (or a 503) on the next priority at once
  (`numAttemptsPerPriority: 1`: Envoy's previous_priorities retry predicate) and ejects the refusing track
  (outlier detection on local-origin failures), so the next requests go straight to the fallback until the
  ejection lapses and the woken track answers again.

Creates: the fallback `Backend` and a relay that signs each request with SigV4 for the function URL, which accepts
IAM-signed requests only (Envoy Gateway cannot sign for Lambda: envoyproxy/gateway#688): awslabs' aws-sigv4-proxy,
pinned by digest, with a role that may invoke only this function's `live` alias through its URL (both actions AWS
requires: https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html), its ServiceAccount (IRSA), a Service, a
PodDisruptionBudget and a NetworkPolicy admitting only the gateway's proxies. `failover_backend_refs` and
`failover_policy` make the route's side (the tracks' Backends, the BackendTrafficPolicy) for ModelService.
"""

import json
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from .common import FALLBACK_RELAY_IMAGE, as_model, standard_labels, type_token
from .config import ClusterConfig, ModelConfig
from .contracts import WAIT_FOR_ANNOTATION
from .model_tracks import ModelScope

RELAY_PORT = 8080
RELAY_USER = 65532
"""The image runs as root unless told otherwise; it reads and writes no file, so any uid serves."""
RELAY_MEMORY = "256Mi"
"""The relay holds each request whole to sign its payload's hash (up to REQUEST_LIMIT) and its response."""
BACKEND_API = "gateway.envoyproxy.io/v1alpha1"
REQUEST_LIMIT = "6Mi"
"""A function URL takes at most 6 MB of request payload (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html:
"Invocation payload (request and response): 6 MB each for request and response (synchronous)"). The gateway buffers
each request whole up to this (Envoy's buffer filter: 413 above it,
https://www.envoyproxy.io/docs/envoy/latest/faq/debugging/why_is_envoy_sending_413s), so a request is refused at the
gateway rather than by Lambda, and Envoy holds its body to retry it on the fallback (not measured here: the tier has
no data plane)."""
CONNECT_TIMEOUT_SECONDS = 3
"""A track asleep refuses at once (kube-proxy rejects a Service without endpoints with ICMP port unreachable:
kubernetes/kubernetes#44547); a dropped connect waits this."""
ROUTE_TIMEOUT_MARGIN_SECONDS = 15
"""The route waits for the function's own timeout, plus a refused first attempt and the relay's hop."""
SERVICE_DOMAIN = "svc.cluster.local"
POLICY_ACCEPTED = 'jsonpath={.status.ancestors[*].conditions[?(@.type=="Accepted")].status}=True'
"""What `up` awaits on the BackendTrafficPolicy (a policy's status lists its target's Gateways as ancestors)."""
POLICY_ACCEPTANCE_WAIT = "5m"


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
    alias: str
    """The function's alias its URL serves (ServerlessFallback's `LIVE_ALIAS`): the only one the relay may invoke."""
    function_url: pulumi.Input[str]
    """Its alias's function URL, `https://<id>.lambda-url.<region>.on.aws/`."""
    replicas: int
    """Relay replicas: the stack's minimum for a Deployment (one replica is one failure from an outage)."""
    tags: NotRequired[dict[str, str]]
    """AWS tags (the relay's role)."""


@dataclass(frozen=True)
class _RelaySite:
    """Where a fallback's relay objects go and what they are called: the component's name (`<model>-failover`),
    the relay's name, the model's namespace, the relay's labels and the selector its pods are matched by."""

    name: str
    relay: str
    namespace: str
    labels: dict[str, str]
    match: dict[str, str]

    def metadata(self) -> dict[str, Any]:
        return {"name": self.relay, "namespace": self.namespace, "labels": self.labels}


class GatewayFallback(pulumi.ComponentResource):
    """The Backend a model's route falls back to, and the relay behind it. Secure defaults: the relay's role may
    only invoke the model's own function through its URL; the relay signs for one host only (`--host`, never the
    request's Host header), and admits traffic from the gateway's proxies alone."""

    backend_name: pulumi.Output[str]
    """The `Backend` the route names (its name depends on the Backend, so the route waits for it)."""

    def __init__(self, name: str, args: GatewayFallbackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("GatewayFallback"), name, None, opts)
        model = as_model(ModelConfig, args["model"])
        cluster = as_model(ClusterConfig, args["cluster"])
        relay = relay_name(name)
        site = _RelaySite(
            name,
            relay,
            model.namespace,
            standard_labels(relay, args["environment"], args["cost_owner"], component="fallback-relay"),
            {"app.kubernetes.io/name": relay},
        )
        role = self._relay_role(name, relay, cluster, model.namespace, args)
        account = self._relay_account(site, role)
        host = pulumi.Output.from_input(args["function_url"]).apply(url_host)
        deployment = self._relay_deployment(
            site, args["replicas"], relay_pod_spec(relay, host, cluster.region), account
        )
        service = self._relay_service(site)
        self._relay_guards(site, cluster.ingress_namespace)
        # the route sends requests to the Backend only once a relay can take them
        backend = self._fallback_backend(site, depends_on=[deployment, service])
        # the name is known now; through the Backend's URN it carries the dependency, so the route waits for it
        self.backend_name = _name_after(backend, name)
        self.register_outputs({"backend_name": self.backend_name})

    def _relay_account(self, site: _RelaySite, role: aws.iam.Role) -> k8s.core.v1.ServiceAccount:
        """The relay's ServiceAccount, annotated with its IRSA role; no API token mounted (the pod needs none)."""
        return k8s.core.v1.ServiceAccount(
            f"{site.name}-relay-sa",
            metadata={**site.metadata(), "annotations": {"eks.amazonaws.com/role-arn": role.arn}},
            automount_service_account_token=False,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _relay_deployment(
        self, site: _RelaySite, replicas: int, pod_spec: dict[str, Any], account: k8s.core.v1.ServiceAccount
    ) -> k8s.apps.v1.Deployment:
        return k8s.apps.v1.Deployment(
            f"{site.name}-relay",
            metadata=site.metadata(),
            spec={
                "replicas": replicas,
                "selector": {"matchLabels": site.match},
                "template": {"metadata": {"labels": site.labels}, "spec": pod_spec},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account]),
        )

    def _relay_service(self, site: _RelaySite) -> k8s.core.v1.Service:
        """The ClusterIP Service the fallback Backend's FQDN names."""
        return k8s.core.v1.Service(
            f"{site.name}-relay-svc",
            metadata=site.metadata(),
            spec={
                "type": "ClusterIP",
                "selector": site.match,
                "ports": [{"name": "http", "port": RELAY_PORT, "targetPort": "http", "protocol": "TCP"}],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _relay_guards(self, site: _RelaySite, ingress_namespace: str) -> None:
        """A drain takes one relay at a time; only the gateway's proxies reach it."""
        child = pulumi.ResourceOptions(parent=self)
        k8s.policy.v1.PodDisruptionBudget(
            f"{site.name}-relay-pdb",
            metadata=site.metadata(),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": site.match}},
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{site.name}-relay-netpol",
            metadata=site.metadata(),
            spec=relay_network_policy(site.match, ingress_namespace),
            opts=child,
        )

    def _fallback_backend(
        self, site: _RelaySite, depends_on: list[pulumi.Resource]
    ) -> k8s.apiextensions.CustomResource:
        """The `Backend` marked `fallback: true` (priority 1 in the route's cluster) on the relay's Service name."""
        return k8s.apiextensions.CustomResource(
            f"{site.name}-backend",
            api_version=BACKEND_API,
            kind="Backend",
            metadata={"name": site.name, "namespace": site.namespace, "labels": site.labels},
            spec={"fallback": True, "endpoints": [fqdn_endpoint(site.relay, site.namespace, RELAY_PORT)]},
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )

    def _relay_role(
        self, name: str, relay: str, cluster: ClusterConfig, namespace: str, args: GatewayFallbackArgs
    ) -> aws.iam.Role:
        """The relay's IRSA role and its one grant. IAM role names hold 64 characters and Pulumi autonames with 8
        more (`-` and 7 random): `<model>-failover-role` is 42 + 14 + 8 = 64 at the schema's longest model name
        (`<model>-fallback-relay-role` was 70, and `up` failed for names of 37 or more)."""
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(service_account_trust(cluster.oidc_provider_arn, namespace, relay)),
            tags=args.get("tags", {}),
            opts=pulumi.ResourceOptions(parent=self),
        )
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition
        alias_arn = partition.apply(
            lambda p: f"arn:{p}:lambda:{cluster.region}:{cluster.account_id}:function:{args['function_name']}:{args['alias']}"
        )
        aws.iam.RolePolicy(
            f"{name}-invoke",
            role=role.id,
            policy=alias_arn.apply(lambda arn: json.dumps(invoke_url_policy(arn))),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return role


def relay_name(name: str) -> str:
    """`<model>-failover` -> `<model>-failover-relay` (42 + 15 characters at most: a label value holds 63)."""
    return f"{name}-relay"


def fqdn_endpoint(service: str, namespace: str, port: int) -> dict[str, Any]:
    return {"fqdn": {"hostname": f"{service}.{namespace}.{SERVICE_DOMAIN}", "port": port}}


def failover_backend_refs(
    parent: pulumi.Resource,
    namespace: str,
    labels: dict[str, str],
    tracks: list[tuple[str, int]],
    fallback_backend: pulumi.Input[str],
) -> list[dict[str, Any]]:
    """The route's backendRefs for a model with a gateway fallback: each track's Service as an FQDN Backend of its
    own name (`(service, weight)`, port 80), then the fallback Backend. All FQDN, so Envoy Gateway keeps them in one
    cluster whatever the tracks' endpoints (module docstring); each ref's name waits for its Backend."""
    refs: list[dict[str, Any]] = []
    for service, weight in tracks:
        backend = k8s.apiextensions.CustomResource(
            f"{service}-backend",
            api_version=BACKEND_API,
            kind="Backend",
            metadata={"name": service, "namespace": namespace, "labels": labels},
            spec={"endpoints": [fqdn_endpoint(service, namespace, 80)]},
            opts=pulumi.ResourceOptions(parent=parent),
        )
        refs.append(_backend_ref(_name_after(backend, service), weight))
    refs.append(_backend_ref(fallback_backend, 1))
    return refs


def _name_after(resource: pulumi.Resource, name: str) -> pulumi.Output[str]:
    """`name`, known at preview, carrying a dependency on `resource` (whatever names it waits for it)."""
    return resource.urn.apply(lambda _: name)


def _backend_ref(name: pulumi.Input[str], weight: int) -> dict[str, Any]:
    return {"group": "gateway.envoyproxy.io", "kind": "Backend", "name": name, "weight": weight}


def failover_traffic_policy(
    scope: ModelScope, route: k8s.apiextensions.CustomResource, labels: dict[str, str]
) -> k8s.apiextensions.CustomResource:
    """The route's BackendTrafficPolicy (`failover_policy`), made once the route exists: `up` waits until Envoy
    Gateway has accepted it, since a policy it refuses leaves the route without failover and says so only here.
    Named after the model (`scope`), like its route, in the model's namespace."""
    route_name, namespace, parent = scope.name, scope.model.namespace, scope.parent
    function_timeout_seconds = scope.model.serverless.timeout_seconds
    return k8s.apiextensions.CustomResource(
        f"{route_name}-failover-policy",
        api_version=BACKEND_API,
        kind="BackendTrafficPolicy",
        metadata={
            "name": route_name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {WAIT_FOR_ANNOTATION: json.dumps([POLICY_ACCEPTED])},
        },
        spec=failover_policy(route_name, function_timeout_seconds),
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[route],
            custom_timeouts=pulumi.CustomTimeouts(create=POLICY_ACCEPTANCE_WAIT, update=POLICY_ACCEPTANCE_WAIT),
        ),
    )


def failover_policy(route: str, function_timeout_seconds: int) -> dict[str, Any]:
    """The BackendTrafficPolicy spec that makes a sleeping track fail over (Envoy Gateway's api/v1alpha1
    backendtrafficpolicy_types.go, healthcheck_types.go, retry_types.go):
    - passive health checks: one refused connection (a local-origin failure, counted apart from the model's own
      5xx answers) ejects the track; `maxEjectionPercent: 100` lets every track go, or the fallback never takes all;
    - a refused connection, a reset before the request went out, or a 503 is retried on the next priority
      (`numAttemptsPerPriority: 1`), so the request that finds the model asleep is served, not refused;
    - the request timeout outlasts the function's; the request buffer holds what a function URL takes."""
    return {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": route}],
        "healthCheck": {
            "passive": {
                "splitExternalLocalOriginErrors": True,
                "consecutiveLocalOriginFailures": 1,
                "interval": "5s",
                "baseEjectionTime": "10s",
                "maxEjectionPercent": 100,
            }
        },
        "retry": {
            "numRetries": 2,
            "numAttemptsPerPriority": 1,
            "retryOn": {
                "triggers": ["connect-failure", "reset-before-request", "retriable-status-codes"],
                "httpStatusCodes": [503],
            },
        },
        "timeout": {
            "tcp": {"connectTimeout": f"{CONNECT_TIMEOUT_SECONDS}s"},
            "http": {"requestTimeout": f"{function_timeout_seconds + ROUTE_TIMEOUT_MARGIN_SECONDS}s"},
        },
        "requestBuffer": {"limit": REQUEST_LIMIT},
    }


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


def relay_network_policy(match: dict[str, str], ingress_namespace: str) -> dict[str, Any]:
    return {
        "podSelector": {"matchLabels": match},
        "policyTypes": ["Ingress"],
        "ingress": [
            {
                "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ingress_namespace}}}],
                "ports": [{"protocol": "TCP", "port": RELAY_PORT}],
            }
        ],
    }


def relay_pod_spec(relay: str, host: pulumi.Input[str], region: str) -> dict:
    """aws-sigv4-proxy's flags (cmd/aws-sigv4-proxy/main.go): `--host` fixes the upstream whatever Host a request
    carries, `--name lambda` and `--region` what it signs for; the payload is signed (Lambda has no unsigned
    payloads). Probed on its socket: which releases answer `/health` themselves and which sign and forward it
    varies, and a forwarded probe is a paid invocation every 10 s."""
    security = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    probe = {"tcpSocket": {"port": "http"}, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3}
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
                "resources": {"requests": {"cpu": "100m", "memory": RELAY_MEMORY}, "limits": {"memory": RELAY_MEMORY}},
                "securityContext": security,
                "readinessProbe": probe,
                "livenessProbe": probe,
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
