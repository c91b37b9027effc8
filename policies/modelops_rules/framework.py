"""How a rule is declared, configured and run, the same way under the Pulumi CLI and `modelops check`.

A rule is a plain function. Resource rules take `(resource_type, props, settings)` and yield messages;
stack rules take `(resources, settings)` and yield `(resource, message)`. Props are read through
pulumi-policy's unknown-checking proxy in both places, so a rule that touches a value unknown at
preview raises `UnknownValueError` and is reported as not evaluated, never as pass or fail.
Exemptions are data in the policy config: `{"namespace": ..., "name": ..., "reason": ...}` per rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .standards import Control
from .values import BUILTIN_KINDS, as_list, as_map, dig

Scope = Literal["resource", "stack"]


@dataclass(frozen=True)
class StackResource:
    """One resource as a stack rule sees it."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    scope: Scope
    check: Callable[..., Iterable[Any]]
    implements: tuple[Control, ...]
    """The published controls the rule enforces, its primary reference first (modelops_rules/standards.py)."""
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """JSON-schema properties of the rule's settings (with defaults)."""

    @property
    def cited_description(self) -> str:
        """The description as the CLI shows it (and SARIF's fullDescription): what the rule checks, then what it
        implements."""
        return f"{self.description} Implements: {'; '.join(c.label for c in self.implements)}."

    @property
    def help_uri(self) -> str:
        """The page that defines the rule's primary control (SARIF's helpUri)."""
        return self.implements[0].url

    def config_schema(self) -> dict[str, Any]:
        """The rule's settings as it declares them, narrowed by SETTING_CONSTRAINTS: the one schema the Pulumi CLI
        validates a `--policy-pack-config` file against and `modelops check` and `policy-config` validate with."""
        narrowed = {
            name: _narrowed(schema, SETTING_CONSTRAINTS.get(name, {})) for name, schema in self.settings.items()
        }
        return {**narrowed, "exemptions": exemptions_schema()}

    def defaults(self) -> dict[str, Any]:
        return {k: v["default"] for k, v in self.config_schema().items() if "default" in v}


# ---- what a policy config may say (issue #26, class 7) ----
# Patterns are RE2 as well as Python `re` (the CLI validates with gojsonschema, whose patterns are Go regexps,
# unanchored as Python's `search` is), and keywords draft-04 where they can be (`if`/`then` is draft-07).

ONE_WORD = r"^[^\s*?\[\]]+$"
"""A kind, namespace or name matched exactly: no wildcard (it would match nothing, yet reads as if it matched
everything) and no white space (a name no object has)."""

_DOMAIN_PART = r"[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?"
_PATH_PART = r"[a-z0-9]+(([_.]|__|-+)[a-z0-9]+)*"
IMAGE_PREFIX = (
    rf"^((localhost|{_DOMAIN_PART}(\.{_DOMAIN_PART})+)(:[0-9]{{1,5}})?|{_DOMAIN_PART}:[0-9]{{1,5}})/({_PATH_PART}/)*$"
)
"""A registry and repository path of whole components, ending with `/`, as the distribution reference grammar
spells them (https://github.com/distribution/reference/blob/main/reference.go): `123….amazonaws.com` without its
`/` admits `123….amazonaws.com.evil.example/…`, `nvcr.io/nvidia` admits `nvcr.io/nvidia-evil/…`, an empty
string admits everything, and a scheme or white space is a prefix no image reference has."""

HOST_PATH = r"^(/([^/.\s][^/\s]*|\.[^/.\s][^/\s]*|\.\.[^/\s]+))+$"
"""An absolute host path without `.` or `..` components, white space or a trailing `/`, matched exactly."""

AWS_REGION = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"

PREFIX_WORDS = "a registry and repository path of whole components ending with '/' (no scheme, no white space)"
ONE_WORD_WORDS = "one exact name (no wildcard, no white space)"
HOST_PATH_WORDS = "an absolute path without '.' or '..' components, white space or a trailing '/'"


def _exactly(pattern: str, words: str) -> dict[str, Any]:
    """`pattern` over the whole text, said in `words` (a `$comment`, which validators skip). Python's `$` also
    matches before a final line break (`nvcr.io/nvidia/` and a newline would pass) and no end-of-text anchor reads
    the same in RE2 (`\\z`) and Python 3.11 (`\\Z`): no white space anywhere, then."""
    return {"pattern": pattern, "not": {"pattern": r"\s"}, "$comment": words}


SETTING_CONSTRAINTS: dict[str, dict[str, Any]] = {
    "registries": {"items": _exactly(IMAGE_PREFIX, PREFIX_WORDS)},
    "repositoryPrefixes": {"items": _exactly(IMAGE_PREFIX, PREFIX_WORDS)},
    "allowlist": {
        "items": {
            "required": ["kind", "namespace", "name", "path"],
            "additionalProperties": False,
            "properties": {
                "kind": {"enum": ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"]},
                "namespace": {"type": "string", **_exactly(ONE_WORD, ONE_WORD_WORDS)},
                "name": {"type": "string", **_exactly(ONE_WORD, ONE_WORD_WORDS)},
                "path": {"type": "string", **_exactly(HOST_PATH, HOST_PATH_WORDS)},
            },
        }
    },
    # a budget or ceiling below zero is a typo, never a policy (infinite and NaN ones cannot be written in JSON)
    "budgetUsd": {"minimum": 0},
    "region": _exactly(AWS_REGION, "an AWS region (us-east-1)"),
    "minReplicas": {"minimum": 1},
    "maxColdStartSeconds": {"minimum": 0},
    "maxGpusPerPool": {"minimum": 0},
    "allowLoadBalancer": {},
}
"""Per setting name, what narrows the rule's own schema of it. Every setting of every rule has an entry (a test
holds it), so a new setting is decided on, not left as wide as its type."""


def _narrowed(schema: dict[str, Any], constraint: dict[str, Any]) -> dict[str, Any]:
    out = {**schema, **constraint}
    if "items" in schema and "items" in constraint:
        out["items"] = {**schema["items"], **constraint["items"]}
    return out


PULUMI_TYPE = r"^[a-z0-9-]+:[A-Za-z0-9/._-]*:[A-Za-z0-9]+$"
KUBERNETES_KIND = r"^[A-Z][A-Za-z0-9]*(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def exemptions_schema() -> dict[str, Any]:
    # a namespaced object declared without metadata.namespace has none: an entry without one would exempt it in
    # whichever namespace it lands
    names_its_namespace = {
        "if": {"properties": {"kind": {"not": {"anyOf": [{"pattern": ":"}, {"enum": sorted(CLUSTER_SCOPED_KINDS)}]}}}},
        "then": {"required": ["namespace"]},
    }
    return {**EXEMPTIONS_SCHEMA, "items": {**EXEMPTIONS_SCHEMA["items"], **names_its_namespace}}


EXEMPTIONS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "default": [],
    "description": "Resources this rule does not apply to, each named exactly (kind, namespace, name) with the "
    "reason: a pattern would let a new resource borrow another's exemption. The namespace is required except "
    "for a cluster-scoped kind or a non-Kubernetes type (`aws:…`).",
    "items": {
        "type": "object",
        "required": ["kind", "name", "reason"],
        "additionalProperties": False,
        "properties": {
            "kind": {
                "type": "string",
                **_exactly(ONE_WORD, ONE_WORD_WORDS),
                # a kind no resource can have exempts nothing: `deployment`, or `Deployment.apps` (Kubernetes' own
                # kinds are named bare, modelops_rules/pods.py qualified_kind)
                "allOf": [
                    {"anyOf": [{"pattern": PULUMI_TYPE}, {"pattern": KUBERNETES_KIND}]},
                    {"not": {"enum": sorted(f"{k}.{g}" for k, groups in BUILTIN_KINDS.items() for g in groups)}},
                ],
                "$comment": "a Pulumi type token (aws:iam/role:Role), a Kubernetes kind (Deployment), or another "
                "group's kind with its group (InferenceService.serving.kserve.io)",
            },
            "namespace": {"type": "string", **_exactly(ONE_WORD, ONE_WORD_WORDS)},
            "name": {"type": "string", **_exactly(ONE_WORD, ONE_WORD_WORDS)},
            "reason": {"type": "string", "pattern": r"\S", "$comment": "a reason, not blank"},
        },
    },
}

RULES: list[Rule] = []


def _register(rule: Rule) -> None:
    if not rule.implements:
        raise ValueError(f"{rule.id}: a rule names the published controls it implements (implements=...)")
    RULES.append(rule)


def resource_rule(
    rule_id: str,
    description: str,
    settings: dict[str, dict[str, Any]] | None = None,
    *,
    implements: tuple[Control, ...],
):
    def register(fn: Callable[[str, Mapping[str, Any], dict[str, Any]], Iterable[str]]):
        _register(Rule(rule_id, description, "resource", fn, implements, settings or {}))
        return fn

    return register


def stack_rule(
    rule_id: str,
    description: str,
    settings: dict[str, dict[str, Any]] | None = None,
    *,
    implements: tuple[Control, ...],
):
    def register(fn: Callable[[list[StackResource], dict[str, Any]], Iterable[tuple[StackResource, str]]]):
        _register(Rule(rule_id, description, "stack", fn, implements, settings or {}))
        return fn

    return register


# ---- what the program declared ----

PROGRAM_FIELD_MANAGER = "pulumi-kubernetes"
"""Prefix of the field manager the Kubernetes provider applies with (server-side apply)."""


def declares(props: Mapping[str, Any], *path: str) -> bool:
    """Whether the program sets the field at `path` of a Kubernetes object.

    Resource policies and previews see the program's inputs. Stack policies at `pulumi up` see the
    provider's outputs instead: the live object, with the API server's defaults filled in (a Deployment
    always has spec.replicas) and without the inputs. There, the object's managedFields tell which fields
    the provider's field manager applied.
    """
    managed = as_list(as_map(props.get("metadata")).get("managedFields"))
    if not managed:
        return dig(props, *path) is not None
    for entry in managed:
        entry = as_map(entry)
        if not str(entry.get("manager", "")).startswith(PROGRAM_FIELD_MANAGER):
            continue
        fields: Any = as_map(entry.get("fieldsV1"))
        for key in path:
            fields = as_map(fields).get(f"f:{key}")
            if fields is None:
                break
        else:
            return True
    return False


# ---- image references ----

DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """`repo[:tag][@digest]` -> (repo, tag, digest); a registry's port is not a tag."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        image, tag = image.rsplit(":", 1)
    return image, tag, digest


def is_full_digest(digest: str | None) -> bool:
    """`sha256:` and 64 lower-case hex digits: what registries resolve (a prefix pins nothing)."""
    return digest is not None and DIGEST_PATTERN.fullmatch(digest) is not None


# ---- reading props (proxied Mappings/Sequences under pulumi-policy) ----


# ---- Kubernetes helpers ----

CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "StorageClass",
    "CustomResourceDefinition",
    "PriorityClass",
    "NodePool",
    "EC2NodeClass",
    "NodeClaim",
    "IngressClass",
    "RuntimeClass",
    "APIService",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "GatewayClass",
    "ClusterIssuer",
    # custom kinds as an exemption names them (`Kind.group`, modelops_rules/pods.py qualified_kind)
    "NodePool.karpenter.sh",
    "NodeClaim.karpenter.sh",
    "EC2NodeClass.karpenter.k8s.aws",
    "GatewayClass.gateway.networking.k8s.io",
    "ClusterIssuer.cert-manager.io",
}


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The (first) pod spec a Kubernetes object runs, as the pack's one discovery finds it (modelops_rules/pods.py)."""
    from .pods import pod_sites  # pods builds on this module

    sites = pod_sites(resource_type, props)
    return sites[0].spec if sites else None


def pod_labels(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any]:
    from .pods import pod_labels as labels

    return labels(resource_type, props)


def containers(spec: Mapping[str, Any], include_init: bool = True) -> list[Mapping[str, Any]]:
    found = [as_map(c) for c in as_list(spec.get("containers"))]
    if include_init:
        found += [as_map(c) for c in as_list(spec.get("initContainers"))]
        found += [as_map(c) for c in as_list(spec.get("ephemeralContainers"))]
    return found


def workload_containers(
    resource_type: str, props: Mapping[str, Any], include_init: bool = True
) -> list[Mapping[str, Any]]:
    """The containers of every pod an object runs (modelops_rules/pods.py); none for anything that runs no pods."""
    from .pods import workload_containers as found

    return found(resource_type, props, include_init)


def is_gpu_resource(name: str) -> bool:
    return name == "nvidia.com/gpu" or name.startswith("nvidia.com/mig-")


def gpu_count(container: Mapping[str, Any]) -> int:
    limits = as_map(dig(container, "resources", "limits"))
    requests = as_map(dig(container, "resources", "requests"))
    total = 0
    for name in set(limits) | set(requests):
        if is_gpu_resource(name):
            total += int(float(str(limits.get(name, requests.get(name)) or 0)))
    return total


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a label set."""
    for label, value in as_map(selector.get("matchLabels")).items():
        if labels.get(label) != value:
            return False
    for item in as_list(selector.get("matchExpressions")):
        expr = as_map(item)
        key, op, values = str(expr.get("key")), expr.get("operator"), list(as_list(expr.get("values")))
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def object_name(props: Mapping[str, Any], fallback: str) -> str:
    name = dig(props, "metadata", "name")
    return name if isinstance(name, str) else fallback


def object_namespace(props: Mapping[str, Any]) -> str | None:
    ns = dig(props, "metadata", "namespace")
    return ns if isinstance(ns, str) else None


def is_exempt(settings: Mapping[str, Any], kind: str, namespace: str | None, name: str) -> str | None:
    """The reason, when the policy config exempts exactly this resource (kind, namespace, name) from a rule.
    An entry without a namespace exempts only a cluster-scoped object (or a non-Kubernetes resource)."""
    for entry in as_list(settings.get("exemptions")):
        entry = as_map(entry)
        if entry.get("namespace") is None and kind not in CLUSTER_SCOPED_KINDS and ":" not in kind:
            continue  # the schema refuses it; should a validator skip `if` (draft-04), it exempts nothing
        if (entry.get("kind"), entry.get("namespace"), entry.get("name")) == (kind, namespace, name):
            return str(entry.get("reason", "exempted"))
    return None


def rule_settings(rule: Rule, config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Schema defaults, then what the policy config sets for this rule."""
    merged = rule.defaults()
    merged.update({k: v for k, v in as_map(config).items() if k != "enforcementLevel"})
    return merged
