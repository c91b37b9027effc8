"""Kubernetes rules that need the whole stack: network policy coverage, disruption budgets, autoscaling."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from . import cron, promql
from .contracts import COLD_START_ANNOTATION, PAUSED_REPLICAS_ANNOTATION
from .framework import StackResource, declares, object_name, object_namespace, selector_matches, stack_rule
from .pods import is_builtin, pod_labels, pod_sites, qualified_kind
from .standards import doc
from .values import as_list, as_map, dig, k8s_kind

SCALED_OBJECT = "ScaledObject.keda.sh"


def stack_kind(resource_type: str) -> str | None:
    """The kind a stack rule files an object under: Kubernetes' own by name (patch resources apart), any other
    with its API group, so that a custom resource called NetworkPolicy or PodDisruptionBudget (which enforces
    nothing) never stands in for the real one, nor one called ScaledObject for KEDA's."""
    kind = k8s_kind(resource_type)
    return kind if kind is None or is_builtin(resource_type) else qualified_kind(resource_type)


_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"}


_MEMO: dict[str, tuple[tuple[int, int, int, int], Any]] = {}
"""What a stack rule derives from the stack's resources (objects by kind, autoscalers, selector indexes), kept
for the one resource list rules are currently given: helpers called once per workload would otherwise rescan
the whole stack each time, and `check` grew quadratically with workloads (issue #26, class 10)."""


def _memo(resources: list[StackResource], what: str, build: Callable[[], Any]) -> Any:
    key = (id(resources), len(resources), id(resources[0]) if resources else 0, id(resources[-1]) if resources else 0)
    held = _MEMO.get(what)
    if held is not None and held[0] == key:
        return held[1]
    value = build()
    _MEMO[what] = (key, value)
    return value


def _of_kind(resources: list[StackResource], *kinds: str) -> list[StackResource]:
    by_kind: dict[str, list[StackResource]] = _memo(resources, "kinds", lambda: _kinds(resources))
    if len(kinds) == 1:
        return by_kind.get(kinds[0], [])
    return [r for r in resources if stack_kind(r.type) in kinds]


def _kinds(resources: list[StackResource]) -> dict[str, list[StackResource]]:
    by_kind: dict[str, list[StackResource]] = {}
    for r in resources:
        by_kind.setdefault(stack_kind(r.type) or "", []).append(r)  # not a Kubernetes type: no kind
    return by_kind


_PLAIN = (str, int, float, bool, type(None))


class _SelectorIndex:
    """Objects with a label selector, found by the labels of the pods they would select. Each object is filed
    under the rarest of its matchLabels pairs, in its namespace; a lookup reads only the objects filed under
    one of the pod's own pairs (and those without matchLabels, which any pod may match), then checks each with
    `selector_matches`: the same answer as scanning every object, in time that does not grow with the stack."""

    def __init__(self, objects: list[StackResource], selector_of: Callable[[StackResource], Any]):
        self._order = {id(o): i for i, o in enumerate(objects)}
        self._selectors: dict[int, Any] = {}
        entries = []
        counts: Counter = Counter()
        for obj in objects:
            selector = selector_of(obj)
            if selector is None:
                continue
            self._selectors[id(obj)] = selector
            pairs = [(k, v) for k, v in as_map(selector.get("matchLabels")).items() if isinstance(v, _PLAIN)]
            entries.append((obj, object_namespace(obj.props), pairs))
            counts.update((object_namespace(obj.props), k, v) for k, v in pairs)
        self._filed: dict[tuple, list[StackResource]] = {}
        self._anywhere: dict[str | None, list[StackResource]] = {}
        for obj, namespace, pairs in entries:
            if pairs:
                rarest = min(pairs, key=lambda kv: counts[(namespace, *kv)])
                self._filed.setdefault((namespace, *rarest), []).append(obj)
            else:
                self._anywhere.setdefault(namespace, []).append(obj)

    def matching(self, namespace: str | None, labels: Any) -> list[StackResource]:
        found = {id(o): o for o in self._anywhere.get(namespace, [])}
        for k, v in as_map(labels).items():
            if isinstance(v, _PLAIN):
                found.update((id(o), o) for o in self._filed.get((namespace, k, v), []))
        return sorted(
            (o for o in found.values() if selector_matches(self._selectors[id(o)], labels)),
            key=lambda o: self._order[id(o)],
        )


def _label(r: StackResource) -> str:
    return f"{k8s_kind(r.type)} {object_namespace(r.props) or '-'}/{object_name(r.props, r.name)}"


@stack_rule(
    "k8s-netpol-coverage",
    "Every workload's pods must be selected by a NetworkPolicy.",
    implements=(
        doc(
            "Kubernetes",
            "network policies",
            "https://kubernetes.io/docs/concepts/services-networking/network-policies/",
        ),
    ),
)
def k8s_netpol_coverage(resources: list[StackResource], settings: dict) -> Iterator[tuple[StackResource, str]]:
    policies = _SelectorIndex(
        [p for p in _of_kind(resources, "NetworkPolicy") if _limits_ingress(p)],
        lambda p: as_map(dig(p.props, "spec", "podSelector")),
    )
    for workload in _of_kind(resources, *_WORKLOADS):
        labels = pod_labels(workload.type, workload.props)
        covered = policies.matching(object_namespace(workload.props), labels)
        if not covered:
            yield (
                workload,
                f"{_label(workload)}: no NetworkPolicy selects its pods; add one that admits only expected callers",
            )
    # the serving operators' and any other custom resource's pods (modelops_rules/pods.py), each pod template by its labels
    for workload in resources:
        if is_builtin(workload.type) or k8s_kind(workload.type) is None:
            continue
        for site in pod_sites(workload.type, workload.props):
            if not policies.matching(object_namespace(workload.props), site.labels()):
                yield (
                    workload,
                    f"{_label(workload)}: no NetworkPolicy selects the pods of {site.path}; add one that admits only "
                    "expected callers",
                )


def _limits_ingress(policy: StackResource) -> bool:
    """Whether a NetworkPolicy limits who may call the pods it selects: its policyTypes include Ingress (absent, they
    do), and no ingress rule admits every source (a rule without `from` does). An Egress-only policy, or one with
    `ingress: [{}]`, selects pods and restricts no caller
    (https://kubernetes.io/docs/concepts/services-networking/network-policies/)."""
    spec = as_map(policy.props.get("spec"))
    types = spec.get("policyTypes")
    if types is not None and "Ingress" not in as_list(types):
        return False
    return all(as_list(as_map(rule).get("from")) for rule in as_list(spec.get("ingress")))


def _desired_replicas_problem(metadata: Any) -> str | None:
    """A cron trigger's `desiredReplicas` as KEDA reads it (Go's strconv.Atoi: `00` and `+0` are 0, anything else
    not a number is refused, so the trigger holds nothing); None when it holds at least one replica."""
    text = str(as_map(metadata).get("desiredReplicas", "1"))
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return f"desiredReplicas {text!r} is not a number KEDA reads"
    return None if int(text) > 0 else f"desiredReplicas {text}"


def paused_replicas(scaler: StackResource) -> int | None:
    """The count a ScaledObject holds its target at while paused with a count, else None."""
    value = as_map(dig(scaler.props, "metadata", "annotations")).get(PAUSED_REPLICAS_ANNOTATION)
    if stack_kind(scaler.type) != SCALED_OBJECT or value is None:
        return None
    try:
        return max(0, int(str(value)))
    except ValueError:
        return None  # KEDA ignores a count it cannot parse: the object keeps scaling


def _autoscalers(resources: list[StackResource]) -> dict[tuple[str | None, Any], tuple[StackResource, int, int]]:
    """(namespace, Deployment name) -> (autoscaler, min, max) for HPAs and KEDA ScaledObjects (a ScaledObject
    paused at a count: that count, both ways)."""
    return _memo(resources, "autoscalers", lambda: _find_autoscalers(resources))


def _find_autoscalers(resources: list[StackResource]) -> dict[tuple[str | None, Any], tuple[StackResource, int, int]]:
    found: dict[tuple[str | None, Any], tuple[StackResource, int, int]] = {}
    for r in _of_kind(resources, "HorizontalPodAutoscaler", SCALED_OBJECT):
        spec = as_map(r.props.get("spec"))
        target = as_map(spec.get("scaleTargetRef"))
        if target.get("kind", "Deployment") != "Deployment":
            continue
        held = paused_replicas(r)
        if held is not None:
            found[(object_namespace(r.props), target.get("name"))] = (r, held, held)
            continue
        if stack_kind(r.type) == SCALED_OBJECT:
            low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        else:
            low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
        found[(object_namespace(r.props), target.get("name"))] = (r, int(low or 0), int(high or 0))
    return found


def _deployment_replicas(deployment: StackResource, scalers: dict) -> tuple[int, int]:
    """The replica range a Deployment runs at: its autoscaler's, else its fixed count (default 1)."""
    key = (object_namespace(deployment.props), object_name(deployment.props, deployment.name))
    if key in scalers:
        _, low, high = scalers[key]
        return low, high
    declared = dig(deployment.props, "spec", "replicas")
    replicas = 1 if declared is None else int(declared)  # 0 is a count (a canary at weight 0), not "unset"
    return replicas, replicas


def _percent_or_count(value: Any, total: int) -> int:
    """A PDB's minAvailable or maxUnavailable as a count of `total` pods, rounded up as the disruption
    controller rounds both (GetScaledValueFromIntOrPercent(..., roundUp=true)): minAvailable 90% of 2 is 2."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(total * int(value[:-1]) / 100)
    return int(value)


@stack_rule(
    "k8s-pdb",
    "Every Deployment needs a PodDisruptionBudget that allows voluntary disruption.",
    implements=(doc("Kubernetes", "disruptions", "https://kubernetes.io/docs/concepts/workloads/pods/disruptions/"),),
)
def k8s_pdb(resources: list[StackResource], settings: dict) -> Iterator[tuple[StackResource, str]]:
    budgets = _SelectorIndex(
        _of_kind(resources, "PodDisruptionBudget"), lambda b: as_map(dig(b.props, "spec", "selector"))
    )
    scalers = _autoscalers(resources)
    for deployment in _of_kind(resources, "Deployment"):
        labels = pod_labels(deployment.type, deployment.props)
        matching = budgets.matching(object_namespace(deployment.props), labels)
        low, high = _deployment_replicas(deployment, scalers)
        if high == 0:
            continue  # never runs a pod (a rolled-back canary): nothing to disrupt, nothing to protect
        if not matching:
            yield deployment, f"{_label(deployment)}: no PodDisruptionBudget; add one with maxUnavailable: 1"
            continue
        if len(matching) > 1:
            # The eviction API refuses a pod more than one budget selects, whatever each allows (500 "This pod
            # has more than one PodDisruptionBudget, which the eviction subresource does not support":
            # kubernetes/kubernetes pkg/registry/core/pod/storage/eviction.go): a drain hangs on every such pod.
            names = ", ".join(_label(b) for b in matching)
            yield (
                deployment,
                f"{_label(deployment)}: its pods are selected by {len(matching)} PodDisruptionBudgets ({names}); "
                "the eviction API refuses such pods, so node drains hang; keep one",
            )
        for budget in matching:
            spec = as_map(budget.props.get("spec"))
            if "maxUnavailable" in spec:
                allowed = _percent_or_count(spec["maxUnavailable"], low)
            else:
                allowed = low - _percent_or_count(spec.get("minAvailable", 0), low)
            if allowed < 1:
                yield (
                    budget,
                    (
                        f"{_label(budget)}: allows no voluntary disruption at {low} replica(s); node drains "
                        "would hang; use maxUnavailable: 1"
                    ),
                )


@stack_rule(
    "k8s-replicas-hpa",
    "Autoscalers keep enough replicas, can scale, and own their Deployment's replicas.",
    settings={
        "minReplicas": {"type": "integer", "default": 2, "description": "Smallest minReplicas an autoscaler may have."}
    },
    implements=(
        doc(
            "Kubernetes",
            "HorizontalPodAutoscaler",
            "https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/",
        ),
    ),
)
def k8s_replicas_hpa(resources: list[StackResource], settings: dict) -> Iterator[tuple[StackResource, str]]:
    floor = int(settings.get("minReplicas", 2))
    scalers = _autoscalers(resources)
    for (_ns, _target), (scaler, low, high) in sorted(scalers.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        if paused_replicas(scaler) is not None:
            continue  # a fixed count KEDA holds (a canary's share), judged like a Deployment's replicas
        if low == 0 and stack_kind(scaler.type) == SCALED_OBJECT:
            pass  # scale to zero, a deliberate choice: k8s-scale-to-zero asks for its cold-start budget
        elif low < floor:
            yield (
                scaler,
                f"{_label(scaler)}: minimum replicas {low} < {floor}; one replica is one failure from an outage",
            )
        if high <= low:
            yield scaler, f"{_label(scaler)}: maximum replicas {high} <= minimum {low}; it cannot scale"
    for deployment in _of_kind(resources, "Deployment"):
        key = (object_namespace(deployment.props), object_name(deployment.props, deployment.name))
        if key in scalers and declares(deployment.props, "spec", "replicas"):
            yield (
                deployment,
                (
                    f"{_label(deployment)}: spec.replicas is set while an autoscaler targets it; "
                    "every apply would reset the scale; remove spec.replicas"
                ),
            )


SERVER_METRIC_PREFIXES = ("vllm:", "nv_inference_", "nv_gpu_", "nv_cpu_", "nv_cache_", "tgi_")
"""Series only an inference server's own pods export (vLLM, Triton, TGI): empty once it has no pods."""
NO_WAKE_TRIGGERS = {"cpu", "memory"}
"""KEDA's resource triggers cannot scale from zero: with no pod there is no utilisation to measure
(keda.sh/docs/latest/scalers/cpu/: "scaling to zero is only possible with other triggers")."""


def _sleeping_floor(scaler: StackResource) -> int | None:
    """The replica count an autoscaler may leave its target at when idle: KEDA's `idleReplicaCount` when set
    (KEDA scales to it while every trigger is inactive, below `minReplicaCount`), else its minimum."""
    spec = as_map(scaler.props.get("spec"))
    if stack_kind(scaler.type) == SCALED_OBJECT:
        idle = spec.get("idleReplicaCount")
        return int(idle) if isinstance(idle, int | float) else int(spec.get("minReplicaCount", 0) or 0)
    low = spec.get("minReplicas", 1)
    return int(low) if isinstance(low, int | float) else None


def _target_services(scaler: StackResource, resources: list[StackResource]) -> set[str]:
    """What the target's pods are scraped as: the Services selecting them (the `service`/`job` labels the
    Prometheus Operator gives their series), and the target's own name."""
    target = as_map(dig(scaler.props, "spec", "scaleTargetRef"))
    namespace, name = object_namespace(scaler.props), str(target.get("name", ""))
    by_name = _memo(resources, "workloads by name", lambda: _workloads_by_name(resources))
    workload = by_name.get((str(target.get("kind", "Deployment")), namespace, name))
    labels = pod_labels(workload.type, workload.props) if workload else {}
    services = _memo(resources, "services", lambda: _SelectorIndex(_of_kind(resources, "Service"), _service_selector))
    selected = {object_name(s.props, s.name) for s in services.matching(namespace, labels)} if labels else set()
    return {name, *selected}


def _workloads_by_name(resources: list[StackResource]) -> dict[tuple[str, str | None, str], StackResource]:
    """(kind, namespace, name) -> the first object of that identity."""
    found: dict[tuple[str, str | None, str], StackResource] = {}
    for r in resources:
        found.setdefault((k8s_kind(r.type) or "", object_namespace(r.props), object_name(r.props, r.name)), r)
    return found


def _service_selector(service: StackResource) -> dict[str, Any] | None:
    """A Service's selector as a LabelSelector; none (selects no pods by label) when it is empty."""
    selector = as_map(dig(service.props, "spec", "selector"))
    return {"matchLabels": dict(selector)} if selector else None


def _cannot_wake(scaler: StackResource, resources: list[StackResource]) -> str | None:
    """Why a ScaledObject at zero would never wake, or None: no trigger that can fire while the target has no
    pods (a cron trigger can; a Prometheus query can when it still returns a live series, read by PromQL's
    rules: components/promql.py)."""
    triggers = [as_map(t) for t in as_list(dig(scaler.props, "spec", "triggers"))]
    services = _target_services(scaler, resources)
    asleep: list[str] = []
    for trigger in triggers:
        kind = trigger.get("type")
        if kind in NO_WAKE_TRIGGERS:
            asleep.append(f"a {kind} trigger")
            continue
        if kind == "cron":
            metadata = as_map(trigger.get("metadata"))
            problem = cron.cron_problem(str(metadata.get("start", ""))) or _desired_replicas_problem(metadata)
            if problem is None:
                return None
            asleep.append(f"a cron trigger that never holds a replica ({problem})")
            continue
        if kind != "prometheus":
            return None  # an event source outside the pods (a queue, the HTTP add-on)
        query = str(as_map(trigger.get("metadata")).get("query", ""))
        try:
            own = promql.pod_only_series(query, SERVER_METRIC_PREFIXES, services)
        except promql.PromQLError as exc:
            asleep.append(f"a query that is not PromQL ({exc})")
            continue
        if not own:
            return None
        asleep += own
    return ", ".join(dict.fromkeys(asleep)) if asleep else "no trigger at all"


@stack_rule(
    "k8s-scale-to-zero",
    "A model that scales to zero must state its cold-start budget and be able to wake.",
    settings={
        "maxColdStartSeconds": {
            "type": "integer",
            "default": 3600,
            "description": "The longest first-request wait (node launch, pull, load) a scale-to-zero model may have.",
        }
    },
    implements=(
        doc(
            "KEDA",
            "scaling to zero (minReplicaCount, activation)",
            "https://keda.sh/docs/latest/concepts/scaling-deployments/",
        ),
    ),
)
def k8s_scale_to_zero(resources: list[StackResource], settings: dict) -> Iterator[tuple[StackResource, str]]:
    ceiling = int(settings.get("maxColdStartSeconds", 3600))
    for scaler in _of_kind(resources, SCALED_OBJECT, "HorizontalPodAutoscaler"):
        if _sleeping_floor(scaler) != 0:
            continue
        stated = as_map(as_map(scaler.props.get("metadata")).get("annotations")).get(COLD_START_ANNOTATION)
        asleep = _cannot_wake(scaler, resources) if stack_kind(scaler.type) == SCALED_OBJECT else None
        if asleep:
            yield (
                scaler,
                (
                    f"{_label(scaler)}: scales to zero on {asleep}, which only the model's own pods export (or "
                    "nothing that follows traffic): at zero replicas the query is empty and KEDA never wakes it; "
                    "add a cron trigger (activeHours) or a metric from outside the pods (the gateway's requests)"
                ),
            )
        if stated is None or not str(stated).isdigit():
            yield (
                scaler,
                (
                    f"{_label(scaler)}: scales to zero without a {COLD_START_ANNOTATION} annotation; state how "
                    "long a first request may wait after idle (or keep a replica, or a serverless standby)"
                ),
            )
        elif int(stated) > ceiling:
            yield (
                scaler,
                (
                    f"{_label(scaler)}: a first request after idle may wait {stated}s, above this stack's "
                    f"{ceiling}s; keep a replica or shorten the start-up"
                ),
            )


def replicas_range(deployment: StackResource, resources: list[StackResource]) -> tuple[int, int]:
    return _deployment_replicas(deployment, _autoscalers(resources))
