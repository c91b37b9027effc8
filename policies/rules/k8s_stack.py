"""Kubernetes rules that need the whole stack: network policy coverage, disruption budgets, autoscaling."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from . import cron, promql
from .framework import (
    StackResource,
    as_list,
    as_map,
    declares,
    dig,
    k8s_kind,
    object_name,
    object_namespace,
    pod_labels,
    selector_matches,
    stack_rule,
)

_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"}


def _of_kind(resources: list[StackResource], *kinds: str) -> list[StackResource]:
    return [r for r in resources if k8s_kind(r.type) in kinds]


def _label(r: StackResource) -> str:
    return f"{k8s_kind(r.type)} {object_namespace(r.props) or '-'}/{object_name(r.props, r.name)}"


@stack_rule("k8s-netpol-coverage", "Every workload's pods must be selected by a NetworkPolicy.")
def k8s_netpol_coverage(resources: list[StackResource], settings: dict) -> Iterator[tuple[StackResource, str]]:
    policies = _of_kind(resources, "NetworkPolicy")
    for workload in _of_kind(resources, *_WORKLOADS):
        labels = pod_labels(workload.type, workload.props)
        ns = object_namespace(workload.props)
        covered = any(
            object_namespace(p.props) == ns and selector_matches(as_map(dig(p.props, "spec", "podSelector")), labels)
            for p in policies
        )
        if not covered:
            yield (
                workload,
                f"{_label(workload)}: no NetworkPolicy selects its pods; add one that admits only expected callers",
            )


PAUSED_REPLICAS_ANNOTATION = "autoscaling.keda.sh/paused-replicas"
"""KEDA holds the target at this count and stops scaling it (its HPA is deleted): a fixed count, not an
autoscaler (https://keda.sh/docs/2.21/concepts/scaling-deployments/#pause-autoscaling)."""


def paused_replicas(scaler: StackResource) -> int | None:
    """The count a ScaledObject holds its target at while paused with a count, else None."""
    value = as_map(dig(scaler.props, "metadata", "annotations")).get(PAUSED_REPLICAS_ANNOTATION)
    if k8s_kind(scaler.type) != "ScaledObject" or value is None:
        return None
    try:
        return max(0, int(str(value)))
    except ValueError:
        return None  # KEDA ignores a count it cannot parse: the object keeps scaling


def _autoscalers(resources: list[StackResource]) -> dict[tuple[str | None, Any], tuple[StackResource, int, int]]:
    """(namespace, Deployment name) -> (autoscaler, min, max) for HPAs and KEDA ScaledObjects (a ScaledObject
    paused at a count: that count, both ways)."""
    found: dict[tuple[str | None, Any], tuple[StackResource, int, int]] = {}
    for r in _of_kind(resources, "HorizontalPodAutoscaler", "ScaledObject"):
        spec = as_map(r.props.get("spec"))
        target = as_map(spec.get("scaleTargetRef"))
        if target.get("kind", "Deployment") != "Deployment":
            continue
        held = paused_replicas(r)
        if held is not None:
            low, high = held, held
        elif k8s_kind(r.type) == "ScaledObject":
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


@stack_rule("k8s-pdb", "Every Deployment needs a PodDisruptionBudget that allows voluntary disruption.")
def k8s_pdb(resources: list[StackResource], settings: dict) -> Iterator[tuple[StackResource, str]]:
    budgets = _of_kind(resources, "PodDisruptionBudget")
    scalers = _autoscalers(resources)
    for deployment in _of_kind(resources, "Deployment"):
        labels = pod_labels(deployment.type, deployment.props)
        ns = object_namespace(deployment.props)
        matching = [
            b
            for b in budgets
            if object_namespace(b.props) == ns and selector_matches(as_map(dig(b.props, "spec", "selector")), labels)
        ]
        low, high = _deployment_replicas(deployment, scalers)
        if high == 0:
            continue  # never runs a pod (a rolled-back canary): nothing to disrupt, nothing to protect
        if not matching:
            yield deployment, f"{_label(deployment)}: no PodDisruptionBudget; add one with maxUnavailable: 1"
            continue
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
)
def k8s_replicas_hpa(resources: list[StackResource], settings: dict) -> Iterator[tuple[StackResource, str]]:
    floor = int(settings.get("minReplicas", 2))
    scalers = _autoscalers(resources)
    for (_ns, _target), (scaler, low, high) in sorted(scalers.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        if paused_replicas(scaler) is not None:
            continue  # a fixed count KEDA holds (a canary's share), judged like a Deployment's replicas
        if low == 0 and k8s_kind(scaler.type) == "ScaledObject":
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


COLD_START_ANNOTATION = "modelops/cold-start-seconds"

SERVER_METRIC_PREFIXES = ("vllm:", "nv_inference_", "nv_gpu_", "nv_cpu_", "nv_cache_", "tgi_")
"""Series only an inference server's own pods export (vLLM, Triton, TGI): empty once it has no pods."""
NO_WAKE_TRIGGERS = {"cpu", "memory"}
"""KEDA's resource triggers cannot scale from zero: with no pod there is no utilisation to measure
(keda.sh/docs/latest/scalers/cpu/: "scaling to zero is only possible with other triggers")."""


def _sleeping_floor(scaler: StackResource) -> int | None:
    """The replica count an autoscaler may leave its target at when idle: KEDA's `idleReplicaCount` when set
    (KEDA scales to it while every trigger is inactive, below `minReplicaCount`), else its minimum."""
    spec = as_map(scaler.props.get("spec"))
    if k8s_kind(scaler.type) == "ScaledObject":
        idle = spec.get("idleReplicaCount")
        return int(idle) if isinstance(idle, int | float) else int(spec.get("minReplicaCount", 0) or 0)
    low = spec.get("minReplicas", 1)
    return int(low) if isinstance(low, int | float) else None


def _target_services(scaler: StackResource, resources: list[StackResource]) -> set[str]:
    """What the target's pods are scraped as: the Services selecting them (the `service`/`job` labels the
    Prometheus Operator gives their series), and the target's own name."""
    target = as_map(dig(scaler.props, "spec", "scaleTargetRef"))
    namespace, name = object_namespace(scaler.props), str(target.get("name", ""))
    workloads = [
        w
        for w in _of_kind(resources, str(target.get("kind", "Deployment")))
        if object_namespace(w.props) == namespace and object_name(w.props, w.name) == name
    ]
    labels = pod_labels(workloads[0].type, workloads[0].props) if workloads else {}
    selected = {
        object_name(s.props, s.name)
        for s in _of_kind(resources, "Service")
        if object_namespace(s.props) == namespace
        and as_map(dig(s.props, "spec", "selector"))
        and labels
        and all(labels.get(k) == v for k, v in as_map(dig(s.props, "spec", "selector")).items())
    }
    return {name, *selected}


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
            problem = cron.cron_problem(str(metadata.get("start", "")))
            if problem is None and str(metadata.get("desiredReplicas", "1")) != "0":
                return None
            asleep.append(f"a cron trigger that never holds a replica ({problem or 'desiredReplicas 0'})")
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
)
def k8s_scale_to_zero(resources: list[StackResource], settings: dict) -> Iterator[tuple[StackResource, str]]:
    ceiling = int(settings.get("maxColdStartSeconds", 3600))
    for scaler in _of_kind(resources, "ScaledObject", "HorizontalPodAutoscaler"):
        if _sleeping_floor(scaler) != 0:
            continue
        stated = as_map(as_map(scaler.props.get("metadata")).get("annotations")).get(COLD_START_ANNOTATION)
        asleep = _cannot_wake(scaler, resources) if k8s_kind(scaler.type) == "ScaledObject" else None
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
