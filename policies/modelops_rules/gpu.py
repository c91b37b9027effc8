"""GPU serving rules: this project's own (no public anchor has them)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from .framework import StackResource, gpu_count, is_gpu_resource, object_name, resource_rule, stack_rule
from .k8s_stack import replicas_range
from .pods import PodSite, describe, pod_sites, qualified_kind, workload_containers
from .standards import K8S_GPUS, KARPENTER_NODECLASSES, KARPENTER_NODEPOOLS, doc, fsbp
from .values import as_list, as_map, dig, k8s_kind

NODE_POOL = "NodePool.karpenter.sh"
EC2_NODE_CLASS = "EC2NodeClass.karpenter.k8s.aws"
"""Karpenter's kinds, with their API groups: a custom resource of another group that shares the name is no pool."""

GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_TAINT_KEY, "value": "true", "effect": "NoSchedule"}
"""The taint every GPU pool carries (karpenter-gpu-taint) and every GPU pod must tolerate (gpu-scheduling)."""


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Kubernetes' matching (k8s.io/api/core/v1 Toleration.ToleratesTaint): the effect is empty or the taint's;
    `Exists` matches any value of the key (an empty key: every taint); `Equal`, the default operator, needs the
    same key and the same value."""
    if toleration.get("effect") not in (None, "", taint["effect"]):
        return False
    operator = toleration.get("operator") or "Equal"
    key = toleration.get("key") or ""
    if operator == "Exists":
        return key in ("", taint["key"])
    return operator == "Equal" and key == taint["key"] and (toleration.get("value") or "") == taint["value"]


CATALOGUE = Path(__file__).resolve().parent / "data" / "gpu_instances.json"
"""The components' GPU catalogue, through a link that travels with this package (the pack never imports them)."""


@cache
def catalogue() -> dict[str, Any]:
    return json.loads(CATALOGUE.read_text())


def _gpu_families() -> set[str]:
    return {t["family"] for t in catalogue()["instanceTypes"].values()}


def _requirements(props: Mapping[str, Any]) -> dict[str, list[str]]:
    return {
        str(as_map(r).get("key")): [str(v) for v in as_list(as_map(r).get("values"))]
        for r in as_list(dig(props, "spec", "template", "spec", "requirements"))
        if as_map(r).get("operator", "In") == "In"
    }


_GPU_FAMILY = re.compile(r"(g|p)[0-9]")
"""EC2's GPU families (g4dn, g5, g6e, gr6, p4d, p5, ...) whether or not the price catalogue lists them."""
_GPU_KEYS = (
    "karpenter.k8s.aws/instance-gpu-count",
    "karpenter.k8s.aws/instance-gpu-name",
    "karpenter.k8s.aws/instance-gpu-manufacturer",
    "karpenter.k8s.aws/instance-gpu-memory",
)


def _is_gpu_family(family: str) -> bool:
    return family in _gpu_families() or bool(_GPU_FAMILY.match(family)) or family.startswith("gr")


def admits_gpus(props: Mapping[str, Any]) -> bool:
    """Whether a NodePool can launch GPU instances: unless its requirements rule them out, it can.

    Karpenter launches any instance type its requirements allow, so a pool with no instance requirement,
    with `NotIn` on other categories, or asking for GPUs by count, name or category admits GPUs; only a
    requirement that excludes every GPU type (families, types, categories or a GPU count of 0) does not.
    """
    if any(as_map(t).get("key") == GPU_TAINT_KEY for t in as_list(dig(props, "spec", "template", "spec", "taints"))):
        return True
    for requirement in as_list(dig(props, "spec", "template", "spec", "requirements")):
        r = as_map(requirement)
        key, op = str(r.get("key")), str(r.get("operator", "In"))
        values = [str(v) for v in as_list(r.get("values"))]
        if _excludes_gpus(key, op, values):
            return False
    return True


def _excludes_gpus(key: str, op: str, values: list[str]) -> bool:
    """Whether one NodePool requirement leaves no GPU instance type."""
    if key in _GPU_EXCLUDING:
        return _GPU_EXCLUDING[key](op, values)
    return key in _GPU_KEYS and op == "DoesNotExist"


def _types_exclude_gpus(op: str, values: list[str]) -> bool:
    return (op == "In" and not any(_is_gpu_family(v.split(".", 1)[0]) for v in values)) or op == "DoesNotExist"


def _families_exclude_gpus(op: str, values: list[str]) -> bool:
    return (op == "In" and not any(_is_gpu_family(v) for v in values)) or op == "DoesNotExist"


def _categories_exclude_gpus(op: str, values: list[str]) -> bool:
    gpu_categories = {"g", "p"} & set(values)
    return {"In": not gpu_categories, "NotIn": gpu_categories == {"g", "p"}, "DoesNotExist": True}.get(op, False)


def _gpu_counts_exclude_gpus(op: str, values: list[str]) -> bool:
    if op == "Lt":
        return bool(values) and values[0].isdigit() and int(values[0]) <= 1
    return {"In": all(v == "0" for v in values), "DoesNotExist": True}.get(op, False)


_GPU_EXCLUDING: dict[str, Callable[[str, list[str]], bool]] = {
    "node.kubernetes.io/instance-type": _types_exclude_gpus,
    "karpenter.k8s.aws/instance-family": _families_exclude_gpus,
    "karpenter.k8s.aws/instance-category": _categories_exclude_gpus,
    "karpenter.k8s.aws/instance-gpu-count": _gpu_counts_exclude_gpus,
}
"""Per requirement key Karpenter selects instance types by, whether an operator and values leave no GPU type."""


def pool_instance_types(props: Mapping[str, Any]) -> list[str]:
    """Catalogue types a NodePool allows: its explicit types, else all types of its families."""
    reqs = _requirements(props)
    if reqs.get("node.kubernetes.io/instance-type"):
        return reqs["node.kubernetes.io/instance-type"]
    families = set(reqs.get("karpenter.k8s.aws/instance-family", []))
    return [n for n, t in catalogue()["instanceTypes"].items() if t["family"] in families]


def pool_gpu_limit(props: Mapping[str, Any]) -> int | None:
    value = as_map(dig(props, "spec", "limits")).get(GPU_TAINT_KEY)
    return int(float(str(value))) if value is not None else None


def gpu_pools(resources: list[StackResource]) -> list[StackResource]:
    return [r for r in resources if qualified_kind(r.type) == NODE_POOL and admits_gpus(r.props)]


NODEPOOL_LABEL = "karpenter.sh/nodepool"
"""The label Karpenter puts on every node with its NodePool's name (https://karpenter.sh/docs/reference/
well-known-labels/): a pod may select a pool by it."""


def pool_node_labels(pool: StackResource) -> dict[str, set[str] | None]:
    """The labels a pool's nodes may carry, each with the values it may take (None: any value): the template's
    labels, the pool's name, and its requirements (an `In` requirement's values; any other operator, any)."""
    labels: dict[str, set[str] | None] = {
        str(k): {str(v)} for k, v in as_map(dig(pool.props, "spec", "template", "metadata", "labels")).items()
    }
    labels[NODEPOOL_LABEL] = {object_name(pool.props, pool.name)}
    for requirement in as_list(dig(pool.props, "spec", "template", "spec", "requirements")):
        r = as_map(requirement)
        key, op = str(r.get("key")), r.get("operator", "In")
        if op == "In" and key not in labels:
            labels[key] = {str(v) for v in as_list(r.get("values"))}
        elif op in ("NotIn", "Exists", "Gt", "Lt") and key not in labels:
            labels[key] = None
    return labels


def _term_admits(expressions: Any, labels: dict[str, set[str] | None]) -> bool:
    """Whether some node of the pool can satisfy every expression of one nodeSelectorTerm (Kubernetes ANDs an
    expression list; https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#node-affinity)."""
    for item in as_list(expressions):
        e = as_map(item)
        key, op, values = str(e.get("key")), e.get("operator"), {str(v) for v in as_list(e.get("values"))}
        possible = labels.get(key, set())
        has = key in labels
        if op == "In" and not (has and (possible is None or possible & values)):
            return False
        if op == "NotIn" and has and possible is not None and possible <= values:
            return False
        if op in ("Exists", "Gt", "Lt") and not has:
            return False
        if op == "DoesNotExist" and has:
            return False
    return True


def site_admits_pool(site: PodSite, pool: StackResource) -> bool:
    """Whether a pod's node constraints let it run on the pool: its nodeSelector, and one of its required node
    affinity's terms (ORed). A pod without either may run on any pool that admits it."""
    labels = pool_node_labels(pool)
    for key, value in as_map(site.spec.get("nodeSelector")).items():
        possible = labels.get(str(key), set())
        if str(key) not in labels or (possible is not None and str(value) not in possible):
            return False
    terms = as_list(
        dig(
            site.spec,
            "affinity",
            "nodeAffinity",
            "requiredDuringSchedulingIgnoredDuringExecution",
            "nodeSelectorTerms",
        )
    )
    return not terms or any(_term_admits(as_map(t).get("matchExpressions"), labels) for t in terms)


def has_node_constraints(site: PodSite) -> bool:
    required = dig(site.spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution")
    return bool(as_map(site.spec.get("nodeSelector"))) or bool(as_list(as_map(required).get("nodeSelectorTerms")))


def workload_pools(props: Mapping[str, Any], resource_type: str, pools: list[StackResource]) -> list[StackResource]:
    """The NodePools a workload's pods may run on, by its node selector and its required node affinity: a pod
    that names a pool either way, or several through an `In` list, counts against each."""
    sites = pod_sites(resource_type, props)
    if not sites or not has_node_constraints(sites[0]):
        return []
    return [pool for pool in pools if site_admits_pool(sites[0], pool)]


def workload_pool(props: Mapping[str, Any], resource_type: str, pools: list[StackResource]) -> StackResource | None:
    """The first NodePool the workload's pods may run on (see `workload_pools`)."""
    found = workload_pools(props, resource_type, pools)
    return found[0] if found else None


@resource_rule(
    "gpu-limits-match-requests",
    "GPU requests must equal GPU limits.",
    implements=(doc("Kubernetes", "scheduling GPUs", K8S_GPUS),),
)
def gpu_limits_match_requests(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for c in workload_containers(resource_type, props):
        requests = as_map(dig(c, "resources", "requests"))
        limits = as_map(dig(c, "resources", "limits"))
        for name in sorted(set(requests) | set(limits)):
            if is_gpu_resource(name) and str(requests.get(name, limits.get(name))) != str(limits.get(name)):
                yield (
                    f"{describe(c)}: {name} request {requests.get(name)} != limit "
                    f"{limits.get(name)}; Kubernetes needs them equal (set resources.limits.{name})"
                )


@resource_rule(
    "gpu-scheduling",
    "GPU pods must tolerate the GPU taint and select a GPU pool.",
    implements=(
        doc(
            "Kubernetes",
            "taints and tolerations",
            "https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/",
        ),
    ),
)
def gpu_scheduling(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for site in pod_sites(resource_type, props):
        if not any(gpu_count(c) for c in site.containers()):
            continue
        if not any(tolerates(as_map(t), GPU_TAINT) for t in as_list(site.spec.get("tolerations"))):
            yield site.where + (
                f"no toleration matches the GPU pools' taint {GPU_TAINT_KEY}={GPU_TAINT['value']}:NoSchedule; the "
                "pod can never schedule on a GPU pool"
            )
        if not has_node_constraints(site):
            yield site.where + "no nodeSelector or required node affinity for a GPU pool; set the pool's node selector"


VISIBLE_DEVICES = "NVIDIA_VISIBLE_DEVICES"
"""What the NVIDIA container runtime reads to decide which GPUs a container sees, whatever it was allocated
(https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/docker-specialized.html)."""


@resource_rule(
    "gpu-env-bypass",
    "Containers without a GPU limit must not set NVIDIA_VISIBLE_DEVICES.",
    implements=(
        doc(
            "NVIDIA",
            "container toolkit environment",
            "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/docker-specialized.html",
        ),
    ),
)
def gpu_env_bypass(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for c in workload_containers(resource_type, props):
        if gpu_count(c):
            continue
        for env in as_list(c.get("env")):
            env = as_map(env)
            if env.get("name") == VISIBLE_DEVICES and env.get("value") not in ("void", "none", ""):
                yield (
                    f"{describe(c)}: sets {VISIBLE_DEVICES} without a GPU limit; it would reach GPUs it was not "
                    "given; request nvidia.com/gpu instead"
                )
        for source in as_list(c.get("envFrom")):
            prefix = str(as_map(source).get("prefix") or "")
            if prefix and VISIBLE_DEVICES.startswith(prefix):
                yield (
                    f"{describe(c)}: envFrom with prefix {prefix} can set {VISIBLE_DEVICES} without a GPU limit; "
                    "drop the prefix or request nvidia.com/gpu"
                )
    if k8s_kind(resource_type) in ("ConfigMap", "Secret"):
        for field in ("data", "stringData", "binaryData"):
            if VISIBLE_DEVICES in list(as_map(props.get(field))):
                yield (
                    f"{field} holds {VISIBLE_DEVICES}: a container taking this {k8s_kind(resource_type)} through "
                    "envFrom would reach GPUs it was not given; request nvidia.com/gpu instead"
                )


@resource_rule(
    "gpu-startup-probe",
    "GPU containers need a startupProbe (model loading outlasts liveness).",
    implements=(
        doc(
            "Kubernetes",
            "startup probes",
            "https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/#startup-probe",
        ),
    ),
)
def gpu_startup_probe(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for c in workload_containers(resource_type, props, include_init=False):
        if gpu_count(c) and c.get("startupProbe") is None:
            yield f"{describe(c)}: GPU container without a startupProbe; liveness would kill it mid-load"


@stack_rule(
    "gpu-hpa-within-pool",
    "The GPUs models can scale to must fit their pool's GPU limit.",
    implements=(doc("Karpenter", "NodePool limits", f"{KARPENTER_NODEPOOLS}#speclimits"),),
)
def gpu_hpa_within_pool(resources: list[StackResource], settings: dict) -> Iterator[tuple[StackResource, str]]:
    pools = gpu_pools(resources)
    demand: dict[str, list[tuple[str, int]]] = {}
    for r in resources:
        if k8s_kind(r.type) not in ("Deployment", "StatefulSet"):
            continue
        sites = pod_sites(r.type, r.props)
        per_pod = sum(gpu_count(c) for c in sites[0].containers(include_init=False)) if sites else 0
        if not per_pod:
            continue
        _, high = replicas_range(r, resources)
        for pool in workload_pools(r.props, r.type, pools):
            demand.setdefault(pool.urn, []).append((object_name(r.props, r.name), high * per_pod))
    for pool in pools:
        users = demand.get(pool.urn, [])
        limit = pool_gpu_limit(pool.props)
        total = sum(n for _, n in users)
        if users and limit is not None and total > limit:
            detail = " + ".join(f"{name} {n}" for name, n in users)
            yield (
                pool,
                (
                    f"NodePool {object_name(pool.props, pool.name)}: models can scale to {total} GPUs "
                    f"({detail}) but the pool's limit is {limit}; raise the limit or lower maxReplicas"
                ),
            )


@resource_rule(
    "karpenter-gpu-limit",
    "GPU NodePools must cap GPUs, within the stack's ceiling.",
    settings={"maxGpusPerPool": {"type": "integer", "default": 64, "description": "The most GPUs one pool may allow."}},
    implements=(doc("Karpenter", "NodePool limits", f"{KARPENTER_NODEPOOLS}#speclimits"),),
)
def karpenter_gpu_limit(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    if qualified_kind(resource_type) != NODE_POOL or not admits_gpus(props):
        return
    limit = pool_gpu_limit(props)
    ceiling = int(settings.get("maxGpusPerPool", 64))
    if limit is None:
        yield f'spec.limits["{GPU_TAINT_KEY}"] is not set; an uncapped GPU pool is an uncapped bill'
    elif limit > ceiling:
        yield f'spec.limits["{GPU_TAINT_KEY}"] is {limit}, above this stack\'s ceiling of {ceiling}'


@resource_rule(
    "karpenter-gpu-taint",
    "GPU NodePools must taint nodes nvidia.com/gpu:NoSchedule.",
    implements=(doc("Karpenter", "NodePool taints", f"{KARPENTER_NODEPOOLS}#spectemplatespectaints"),),
)
def karpenter_gpu_taint(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    if qualified_kind(resource_type) != NODE_POOL or not admits_gpus(props):
        return
    taints = as_list(dig(props, "spec", "template", "spec", "taints"))
    if not any(all(as_map(t).get(k) == v for k, v in GPU_TAINT.items()) for t in taints):
        yield (
            f"spec.template.spec.taints lacks {GPU_TAINT_KEY}={GPU_TAINT['value']}:NoSchedule (the taint GPU pods "
            "tolerate); CPU pods would fill GPU nodes"
        )


@resource_rule(
    "karpenter-ami-pinned",
    "EC2NodeClasses must pin their AMIs: a versioned alias or an AMI id.",
    implements=(doc("Karpenter", "AMI selector terms (drift)", f"{KARPENTER_NODECLASSES}#specamiselectorterms"),),
)
def karpenter_ami_pinned(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    # Karpenter treats a new AMI behind a term that follows releases as drift and replaces every node of the
    # class: each AMI release would roll every GPU node (and restart every model on it) outside any change review.
    if qualified_kind(resource_type) != EC2_NODE_CLASS:
        return
    if not as_list(dig(props, "spec", "amiSelectorTerms")):
        # v1 requires terms; v1beta1 without them took the newest EKS-optimized AMI of its amiFamily
        yield "spec.amiSelectorTerms is empty: the node class would follow every AMI release; pin an alias version or an id"
    for i, term in enumerate(as_list(dig(props, "spec", "amiSelectorTerms"))):
        problem = _unpinned(as_map(term))
        if problem:
            yield (
                f"amiSelectorTerms[{i}] {problem}, and each new AMI replaces every node; pin a version "
                "(alias bottlerocket@v1.66.0) or an AMI id, and move it in a reviewed change"
            )


_WILDCARDS = ("*", "?")


def _unpinned(term: Mapping[str, Any]) -> str | None:
    """Why an amiSelectorTerm follows AMI releases, or None when it names one AMI. Karpenter's terms
    (https://karpenter.sh/docs/concepts/nodeclasses/#specamiselectorterms): `alias` family@version (`latest`
    follows every release), `id`, `name` (wildcards allowed; the newest match wins), `ssmParameter` (whatever
    image id the parameter holds now), `tags` (any AMI tagged so, `*` any value), `owner`."""
    alias = term.get("alias")
    if isinstance(alias, str):
        version = alias.partition("@")[2]
        return f"alias {alias} follows every AMI release" if version.lower() in ("", "latest") else None
    if term.get("id") is not None:
        return None
    if term.get("ssmParameter") is not None:
        return f"ssmParameter {term.get('ssmParameter')} follows whatever AMI id the parameter holds"
    name = term.get("name")
    if isinstance(name, str) and any(w in name for w in _WILDCARDS):
        return f"name {name} matches every AMI so named, the newest winning"
    tags = as_map(term.get("tags"))
    if name is None and tags:
        return f"tags {dict(tags)} select whichever AMI is tagged so, the newest winning"
    return None


@resource_rule("node-imdsv2", "EC2NodeClasses must require IMDSv2 with a hop limit of 1.", implements=(fsbp("EC2.8"),))
def node_imdsv2(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    if qualified_kind(resource_type) != EC2_NODE_CLASS:
        return
    options = as_map(dig(props, "spec", "metadataOptions"))
    tokens = options.get("httpTokens")
    if tokens is not None and tokens != "required":
        yield f"spec.metadataOptions.httpTokens is {tokens}; set required (IMDSv2)"
    hops = options.get("httpPutResponseHopLimit")
    if hops is not None and int(hops) > 1:
        yield f"spec.metadataOptions.httpPutResponseHopLimit is {hops}; set 1 so pods cannot reach node credentials"


@resource_rule(
    "node-disk-encrypted",
    "EC2NodeClass block devices must be encrypted.",
    implements=(doc("Karpenter", "block device mappings", f"{KARPENTER_NODECLASSES}#specblockdevicemappings"),),
)
def node_disk_encrypted(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    if qualified_kind(resource_type) != EC2_NODE_CLASS:
        return
    for device in as_list(dig(props, "spec", "blockDeviceMappings")):
        if dig(device, "ebs", "encrypted") is not True:
            yield f"blockDeviceMappings {as_map(device).get('deviceName')}: ebs.encrypted is not true; set it"


def monthly_ceiling(props: Mapping[str, Any], region: str) -> tuple[float, str | None]:
    """(USD per month at the pool's GPU limit on its priciest allowed instance, or a reason it can't be priced)."""
    limit = pool_gpu_limit(props)
    data = catalogue()
    prices = data["onDemandUsdPerHour"].get(region)
    if prices is None:
        return 0.0, f"no GPU prices for region {region}"
    types = pool_instance_types(props)
    unpriced = [t for t in types if t not in prices or t not in data["instanceTypes"]]
    if not types or unpriced:
        return 0.0, f"no price for {', '.join(unpriced) or 'its instances'}"
    if limit is None:
        return math.inf, "no GPU limit"
    per_gpu = max(prices[t] / data["instanceTypes"][t]["gpus"] for t in types)
    return limit * per_gpu * data["hoursPerMonth"], None


@stack_rule(
    "gpu-cost-ceiling",
    "The stack's monthly GPU ceiling must stay within its budget.",
    settings={
        "budgetUsd": {"type": "number", "default": 0, "description": "Monthly GPU budget in USD."},
        "region": {"type": "string", "default": "us-east-1", "description": "Region the prices come from."},
    },
    implements=(doc("Karpenter", "NodePool limits", f"{KARPENTER_NODEPOOLS}#speclimits"),),
)
def gpu_cost_ceiling(resources: list[StackResource], settings: dict) -> Iterator[tuple[StackResource, str]]:
    pools = gpu_pools(resources)
    if not pools:
        return
    budget = float(settings.get("budgetUsd") or 0)
    region = str(settings.get("region", "us-east-1"))
    total = 0.0
    priced = []
    for pool in sorted(pools, key=lambda p: object_name(p.props, p.name)):
        cost, problem = monthly_ceiling(pool.props, region)
        if problem:
            yield pool, f"NodePool {object_name(pool.props, pool.name)}: cannot price its GPU ceiling ({problem})"
            continue
        total += cost
        priced.append((cost, object_name(pool.props, pool.name), pool))
    if total > budget:
        parts = ", ".join(f"{name} ${cost:,.0f}" for cost, name, _ in priced)
        # Blamed on the costliest pool (whatever order the engine lists resources in): the first to lower.
        costliest = max(priced, key=lambda p: (p[0], p[1]))[2]
        yield (
            costliest,
            (
                f"monthly GPU ceiling ${total:,.0f} ({parts}) exceeds the budget of "
                f"${budget:,.0f}; lower pool GPU limits or raise modelops:budget"
            ),
        )
