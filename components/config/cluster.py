"""The cluster the models run on: its identity, namespaces, labels, ingress and gateway."""

import ipaddress
import re

from pydantic import Field, field_validator

from .base import DNS_LABEL, ConfigModel

_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_HOSTNAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
RESERVED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "default")
"""Namespaces a model may not use: the program would label them `restricted` and take them over."""


_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
"""A label key's name part and a label value (k8s.io/apimachinery validation IsQualifiedName, IsValidLabelValue:
at most 63 characters, alphanumeric at both ends, `-`, `_`, `.` between)."""
_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""A label key's prefix: a DNS-1123 subdomain (at most 253 characters)."""


def label_problems(key: str, value: str) -> list[str]:
    """Why the API server would refuse `key: value` as a label, else []."""
    problems = []
    prefix, slash, name = key.rpartition("/")
    if not _LABEL_NAME.fullmatch(name) or (slash and (len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix))):
        problems.append(
            f"label key {key!r} is not a qualified name ([prefix/]name: name at most 63 characters, alphanumeric at "
            "both ends with '-', '_', '.' between; prefix a DNS subdomain)"
        )
    if value and not _LABEL_NAME.fullmatch(value):
        problems.append(
            f"label value {value!r} of {key!r} is not a label value (at most 63 characters, alphanumeric at both ends "
            "with '-', '_', '.' between)"
        )
    return problems


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _cidr_problem(cidr: str) -> str | None:
    """Why the API server would refuse `cidr` as a NetworkPolicy ipBlock, else None. It parses with Go's
    net.ParseCIDR, which needs `address/bits` (no bare address, no netmask); Kubernetes 1.33's strict validation
    also refuses leading zeros, IPv4-mapped IPv6 and host bits (KEP-4858). Only the canonical form is taken."""
    address, slash, bits = cidr.partition("/")
    if not slash or not bits.isdigit():
        return "is not a CIDR block (address/prefix length, e.g. 10.0.0.0/16)"
    if "%" in address:
        return "is not a CIDR block (an IPv6 zone, `%...`, names an interface; Go's net.ParseCIDR refuses it)"
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        return f"is not a CIDR block ({exc})"
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        return "is an IPv4-mapped IPv6 block; write the IPv4 block"
    if str(network) != cidr:
        return f"is not in canonical form; write {str(network)!r}"
    return None


class GatewayRef(ConfigModel):
    """A Gateway API Gateway that model routes attach to."""

    name: str = Field(pattern=_DNS_SUBDOMAIN)
    namespace: str = Field(pattern=DNS_LABEL)
    hostname: str | None = Field(default=None, pattern=_HOSTNAME, max_length=253)
    """The host clients call: each model's endpoint is `https://<hostname>/<model>` and its HTTPRoute matches it."""
    standby_failover: bool = False
    """A `standby` model's route fails over to its Lambda function while no replica answers (asleep at zero, waking,
    all down) instead of a 503 (components/gateway_fallback.py). Needs Envoy Gateway with `extensionApis.enableBackend`."""

    @field_validator("hostname")
    @classmethod
    def _one_host(cls, value: str | None) -> str | None:
        # A route may match `*.example.com`, but an endpoint names one host a client can call; and the Gateway API
        # forbids IP addresses as hostnames (HTTPRoute spec.hostnames: "IPs are not allowed").
        if value is not None and value.startswith("*"):
            raise ValueError(
                f"{value!r} is a wildcard: the models' endpoints are https://<hostname>/<model>, which must name one "
                "host a client can call; give that host (the Gateway's listener may still be a wildcard)"
            )
        if value is not None and _is_ip_address(value):
            raise ValueError(f"{value!r} is an IP address; the Gateway API matches routes by host name only")
        return value


class ClusterConfig(ConfigModel):
    name: str = Field(pattern=DNS_LABEL)
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
    account_id: str = Field(pattern=r"^[0-9]{12}$")
    kubernetes_version: str = Field(pattern=r"^1\.[0-9]{2}$")
    kubeconfig_stack: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$"
    )
    """A StackReference (`org/project/stack`) to the stack that owns the cluster. Without it, the
    kubeconfig is the secret config value `modelops:kubeconfig` (`pulumi config set --secret`)."""
    kubeconfig_output: str = Field(default="kubeconfig", min_length=1)
    """The output of that stack holding the kubeconfig."""
    node_role: str = Field(pattern=r"^[A-Za-z0-9_+=,.@-]{1,64}$")
    """The IAM role Karpenter gives the nodes it launches."""
    discovery_tag: str | None = Field(default=None, min_length=1, max_length=256)
    """Value of the `karpenter.sh/discovery` tag on the cluster's subnets and security groups (default: name)."""
    oidc_provider_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$")
    availability_zones: list[str] = []
    """Zones the pools may use; pre-flight checks offerings there (empty: every zone of the region)."""
    ingress_namespace: str = Field(default="gateway-system", pattern=DNS_LABEL)
    """Namespace where the pods that forward traffic to model servers run: the gateway implementation's
    proxies (Envoy Gateway: `envoy-gateway-system`, often not the Gateway resource's namespace) or the
    ingress controller. The models' NetworkPolicies admit it."""
    ingress_cidrs: list[str] = []
    """Address ranges traffic may also arrive from (an ALB or VPC Lattice in IP mode: the VPC's CIDRs)."""

    @field_validator("ingress_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            problem = _cidr_problem(cidr)
            if problem:
                raise ValueError(f"{cidr!r} {problem}")
        return value

    monitoring_namespace: str = Field(default="monitoring", pattern=DNS_LABEL)
    """Where Prometheus runs: the models' NetworkPolicies admit it to their metrics."""
    dashboard_labels: dict[str, str] = {"grafana_dashboard": "1"}
    """What the Grafana sidecar discovers dashboard ConfigMaps by (kube-prometheus-stack's default)."""

    @field_validator("dashboard_labels", "prometheus_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        problems = [p for key, text in value.items() for p in label_problems(key, text)]
        if problems:
            raise ValueError("; ".join(problems))
        return value

    dashboards_namespace: str | None = Field(default=None, pattern=DNS_LABEL)
    """Where the dashboard ConfigMaps go (default: the monitoring namespace, which the sidecar searches)."""
    prometheus_labels: dict[str, str] = {"release": "kube-prometheus-stack"}
    """Labels the cluster's Prometheus selects ServiceMonitors and PrometheusRules by (kube-prometheus-stack
    selects its Helm release's label by default): set on every one the program creates."""
    alarm_topic_arn: str | None = Field(
        default=None, pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$", max_length=300
    )
    """SNS topic the fallbacks' CloudWatch alarms notify (an alarm without an action notifies nobody)."""
    gateway: GatewayRef | None = None
    """When set, canaries split traffic exactly through an HTTPRoute on this Gateway."""

    @property
    def ecr_registry(self) -> str:
        return f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com"
