"""Where a Kubernetes object keeps the pods it runs: the one discovery every pod rule reads through.

Kubernetes' own workloads keep one pod template at a fixed place. Operators keep theirs elsewhere, and some
several: a KServe InferenceService's predictor, transformer and explainer are each a pod spec with the model
server's container written beside it (`spec.predictor.model`), a LeaderWorkerSet has a leader and a worker
template, a RayCluster a head group and any number of worker groups. A rule that read only
`spec.template.spec` passed all of these unread (issue #26, class 3). Here the known places are listed per API
group and kind, and any other custom resource is searched for a pod spec wherever it keeps one (any object
with a `containers` list), so that a new operator's pods are judged rather than skipped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .values import BUILTIN_KINDS, as_list, as_map, dig, k8s_kind


def api_group(resource_type: str) -> str | None:
    """`kubernetes:apps/v1:Deployment` -> `apps`; None for anything not a Kubernetes object."""
    if k8s_kind(resource_type) is None:
        return None
    group_version = resource_type.split(":", 2)[1]
    return group_version.rsplit("/", 1)[0] if "/" in group_version else "core"


def qualified_kind(resource_type: str) -> str | None:
    """The kind as an exemption must name it: `Deployment` for Kubernetes' own (patch resources included), and
    `Kind.group` (kubectl's `resource.group` form) for every kind another API group serves. An exemption for
    `Deployment` then never covers a custom resource that is also called Deployment (issue #26, class 3)."""
    kind = k8s_kind(resource_type)
    if kind is None:
        return None
    group = api_group(resource_type) or "core"
    base = kind.removesuffix("Patch")
    if group in BUILTIN_KINDS.get(base, ()):
        return base
    return f"{kind}.{group}"


def is_builtin(resource_type: str) -> bool:
    kind = qualified_kind(resource_type)
    return kind is not None and "." not in kind


# ---- what a pod rule reads ----


class LocatedContainer(Mapping[str, Any]):
    """A container as found, with where it was found: reads go to the container itself (unknown values still
    raise), and `label` names it in messages."""

    def __init__(self, container: Mapping[str, Any], label: str):
        self._container = container
        self.label = label

    def __getitem__(self, key: str) -> Any:
        return self._container[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._container)

    def __len__(self) -> int:
        return len(self._container)


def describe(container: Mapping[str, Any]) -> str:
    """How a message names a container: `container 'server'`, or where an operator keeps it."""
    if isinstance(container, LocatedContainer):
        return container.label
    return f"container {container.get('name')!r}"


@dataclass(frozen=True)
class PodSite:
    """One pod spec an object runs, and what else reaches its pods."""

    path: str
    """Where the pod spec is (`spec.template.spec`, `spec.predictor`, `spec.workerGroupSpecs[0].template.spec`)."""
    spec: Mapping[str, Any]
    builtin: bool = True
    """The one fixed place of one of Kubernetes' own kinds: messages need not say where."""
    metadata: tuple[Mapping[str, Any], ...] = ()
    """Metadata maps whose labels and annotations the pods get (the template's; for KServe, the component's
    `labels`/`annotations` and the InferenceService's own metadata, which KServe copies to its pods)."""
    inline: tuple[tuple[str, Mapping[str, Any]], ...] = field(default=())
    """Containers written outside `containers` ((path, container)): KServe's model and framework specs."""

    @property
    def where(self) -> str:
        return "" if self.builtin else f"{self.path}: "

    def containers(self, include_init: bool = True) -> list[Mapping[str, Any]]:
        keys = ("containers", "initContainers", "ephemeralContainers") if include_init else ("containers",)
        found: list[Mapping[str, Any]] = []
        for key in keys:
            for i, c in enumerate(as_list(self.spec.get(key))):
                c = as_map(c)
                found.append(c if self.builtin else LocatedContainer(c, f"{self.path}.{key}[{i}] {c.get('name')!r}"))
        for path, c in self.inline:
            found.append(LocatedContainer(c, f"{path} (the model server's container)"))
        return found

    def annotations(self) -> Iterator[tuple[str, Any]]:
        for meta in self.metadata:
            yield from as_map(meta.get("annotations")).items()

    def labels(self) -> Mapping[str, Any]:
        merged: dict[str, Any] = {}
        for meta in self.metadata:
            merged.update(as_map(meta.get("labels")))
        return merged


_TEMPLATE_KINDS = {
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
}


def _builtin_sites(kind: str, props: Mapping[str, Any]) -> list[PodSite]:
    base = kind.removesuffix("Patch")
    if base == "Pod":
        return [PodSite("spec", as_map(props.get("spec")), metadata=(as_map(props.get("metadata")),))]
    template: Any = None
    path = "spec.template"
    if base == "PodTemplate":
        template, path = props.get("template"), "template"
    elif base == "CronJob":
        template, path = dig(props, "spec", "jobTemplate", "spec", "template"), "spec.jobTemplate.spec.template"
    elif base in _TEMPLATE_KINDS:
        template = dig(props, "spec", "template")
    else:
        return []
    template = as_map(template)
    return [PodSite(f"{path}.spec", as_map(template.get("spec")), metadata=(as_map(template.get("metadata")),))]


def _template_site(template: Any, path: str) -> PodSite:
    template = as_map(template)
    return PodSite(f"{path}.spec", as_map(template.get("spec")), False, (as_map(template.get("metadata")),))


KSERVE_PREDICTOR_CONTAINERS = (
    "model",
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "huggingface",
    "pmml",
    "lightgbm",
    "paddle",
)
"""PredictorSpec's framework fields: each embeds a corev1.Container KServe runs as the model server
(https://github.com/kserve/kserve/blob/master/pkg/apis/serving/v1beta1/predictor.go)."""
KSERVE_EXPLAINER_CONTAINERS = ("art", "alibi", "aix")
"""ExplainerSpec's explainer fields (ExplainerExtensionSpec embeds a corev1.Container; alibi and aix in older
releases)."""


def _kserve_sites(props: Mapping[str, Any]) -> list[PodSite]:
    """An InferenceService (serving.kserve.io/v1beta1): the predictor, transformer and explainer each embed a
    PodSpec inline, with their ComponentExtensionSpec's `labels` and `annotations` for the pod."""
    sites = []
    spec = as_map(props.get("spec"))
    own = as_map(props.get("metadata"))
    for component, inline_keys in (
        ("predictor", KSERVE_PREDICTOR_CONTAINERS),
        ("transformer", ()),
        ("explainer", KSERVE_EXPLAINER_CONTAINERS),
    ):
        if component not in list(spec):
            continue
        body = as_map(spec.get(component))
        path = f"spec.{component}"
        inline = tuple((f"{path}.{key}", as_map(body.get(key))) for key in inline_keys if body.get(key) is not None)
        sites.append(PodSite(path, body, False, (own, body), inline))
        if body.get("workerSpec") is not None:  # multi-node serving: the workers' own PodSpec
            sites.append(PodSite(f"{path}.workerSpec", as_map(body.get("workerSpec")), False, (own, body)))
    return sites


def _ray_cluster_sites(cluster: Any, path: str) -> list[PodSite]:
    """A RayClusterSpec (ray.io/v1): the head group's template and each worker group's."""
    cluster = as_map(cluster)
    sites = [_template_site(dig(cluster, "headGroupSpec", "template"), f"{path}.headGroupSpec.template")]
    for i, group in enumerate(as_list(cluster.get("workerGroupSpecs"))):
        sites.append(_template_site(as_map(group).get("template"), f"{path}.workerGroupSpecs[{i}].template"))
    return sites


def _operator_sites(group: str, kind: str, props: Mapping[str, Any]) -> list[PodSite]:
    spec = as_map(props.get("spec"))
    if group == "serving.kserve.io" and kind == "InferenceService":
        return _kserve_sites(props)
    if group == "leaderworkerset.x-k8s.io" and kind == "LeaderWorkerSet":
        lwt = as_map(spec.get("leaderWorkerTemplate"))
        path = "spec.leaderWorkerTemplate"
        sites = [_template_site(lwt.get("workerTemplate"), f"{path}.workerTemplate")]
        if lwt.get("leaderTemplate") is not None:  # without one, the leader runs the worker template
            sites.insert(0, _template_site(lwt.get("leaderTemplate"), f"{path}.leaderTemplate"))
        return sites
    if group == "ray.io" and kind == "RayCluster":
        return _ray_cluster_sites(spec, "spec")
    if group == "ray.io" and kind == "RayService":
        return _ray_cluster_sites(spec.get("rayClusterConfig"), "spec.rayClusterConfig")
    if group == "ray.io" and kind == "RayJob":
        sites = []
        if spec.get("rayClusterSpec") is not None:
            sites += _ray_cluster_sites(spec.get("rayClusterSpec"), "spec.rayClusterSpec")
        if spec.get("submitterPodTemplate") is not None:
            sites.append(_template_site(spec.get("submitterPodTemplate"), "spec.submitterPodTemplate"))
        return sites
    return []


# ---- any other custom resource: search it ----

MAX_DEPTH = 24
"""Deeper than any operator keeps a pod spec (KServe's is 3 levels down, a Ray worker group's 5)."""
MAX_NODES = 50_000
_SKIPPED_KEYS = ("containers", "initContainers", "ephemeralContainers", "managedFields")
"""Never a pod spec's parent. (`status` is skipped at the top only: `spec.status.template.spec` is a pod spec.)"""


class TooLargeToJudge(ValueError):
    """A custom resource deeper or larger than the search reads: judged as malformed (offline: exit 2; under the
    engine: an error), never passed, since a pod spec past the limits would go unread (issue #26, class 3)."""


def _searched_sites(props: Mapping[str, Any]) -> list[PodSite]:
    """Every object under `spec` (or a PodTemplate-like top-level `template`) that has a `containers` key: a
    pod spec, wherever the custom resource keeps it. A value unknown at preview that could be an object or a
    list may hide one: any unknown raises (the rule is then not evaluated, never passed): the Python SDK sends
    every unknown as the string marker (pulumi/runtime/rpc.py UNKNOWN), so an unknown scalar cannot be told from
    an unknown object. Past MAX_DEPTH or MAX_NODES the resource is TooLargeToJudge."""
    search = _Search()
    for key in ("spec", "template"):
        if key in list(props):
            search.visit(_get(props, key), key, 0)
    return search.found


def _get(container: Any, key: Any) -> Any:
    return container[key]  # an unknown raises UnknownValueError: not evaluated


@dataclass
class _Search:
    """One resource's search: the pod specs found so far, and how many more values it may read."""

    found: list[PodSite] = field(default_factory=list)
    budget: int = MAX_NODES

    def visit(self, value: Any, path: str, depth: int, parent: Any = None) -> None:
        self.budget -= 1
        if depth > MAX_DEPTH or self.budget < 0:
            raise TooLargeToJudge(
                f"{path}: nested deeper than {MAX_DEPTH} levels or larger than {MAX_NODES} values: a pod spec there "
                "would go unread, so the resource is refused"
            )
        if isinstance(value, Mapping):
            keys = list(value)
            if "containers" in keys:
                # a pod spec under a template's `spec`: the template's metadata (labels, annotations) is the pods'
                template = parent if path.endswith(".spec") and isinstance(parent, Mapping) else {}
                meta = _get(template, "metadata") if "metadata" in list(template) else None
                # and a pod spec carrying its own `labels`/`annotations` (KServe's ServingRuntimePodSpec) is read too
                self.found.append(PodSite(path, value, False, (as_map(meta), value)))
            for key in keys:
                if key not in _SKIPPED_KEYS:
                    self.visit(_get(value, key), f"{path}.{key}", depth + 1, value)
        elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
            for i in range(len(value)):
                self.visit(_get(value, i), f"{path}[{i}]", depth + 1, value)


# ---- the discovery ----

_MEMO: OrderedDict[int, tuple[Mapping[str, Any], str, list[PodSite]]] = OrderedDict()
"""The last objects' sites (every pod rule asks for the same object in turn); the props are held with their
sites so that an id is never reused while remembered."""


def pod_sites(resource_type: str, props: Mapping[str, Any]) -> list[PodSite]:
    """Every pod spec a Kubernetes object runs: Kubernetes' own kinds at their one place (server-side-apply
    patch resources included), the serving operators' at theirs, any other custom resource wherever it keeps
    one. Empty for anything that runs no pods."""
    held = _MEMO.get(id(props))
    if held is not None and held[0] is props and held[1] == resource_type:
        return held[2]
    sites = _discover(resource_type, props)
    _MEMO[id(props)] = (props, resource_type, sites)
    while len(_MEMO) > 1024:
        _MEMO.popitem(last=False)
    return sites


def _discover(resource_type: str, props: Mapping[str, Any]) -> list[PodSite]:
    kind = k8s_kind(resource_type)
    if kind is None:
        return []
    if is_builtin(resource_type):
        return _builtin_sites(kind, props)
    sites = _operator_sites(api_group(resource_type) or "", kind, props)
    known = {s.path for s in sites}
    for site in _searched_sites(props):
        if site.path not in known:
            sites.append(site)
            known.add(site.path)
    return sites


def workload_containers(
    resource_type: str, props: Mapping[str, Any], include_init: bool = True
) -> list[Mapping[str, Any]]:
    """The containers of every pod an object runs; none for anything that runs no pods."""
    return [c for site in pod_sites(resource_type, props) for c in site.containers(include_init)]


def pod_labels(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any]:
    """The labels of the pods of a workload's (first) pod template."""
    sites = pod_sites(resource_type, props)
    return sites[0].labels() if sites else {}
