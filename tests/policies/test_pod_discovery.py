"""Issue #26, class 3: pods the pack must judge wherever Kubernetes and the serving operators keep them.

Every pod rule reads pods through one discovery (policies/modelops_rules/pods.py). These tests put a pod spec that
breaks one rule at every place a pod spec can live, generated with Hypothesis, and assert that the rule sees
it there, and that the same spec without the breakage passes. The places, as each upstream API defines them:

- Kubernetes: Pod `spec`; Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job
  `spec.template`; CronJob `spec.jobTemplate.spec.template`; PodTemplate `template`
  (https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/).
- KServe InferenceService (serving.kserve.io/v1beta1): `spec.predictor`, `spec.transformer`, `spec.explainer`
  each embed a PodSpec inline, with the model server's container beside it (`model`, `sklearn`, …, `art`) and a
  multi-node `workerSpec` PodSpec (https://github.com/kserve/kserve/blob/master/pkg/apis/serving/v1beta1/
  predictor.go, explainer.go); ComponentExtensionSpec `annotations` go to the component's pod (component.go).
- LeaderWorkerSet (leaderworkerset.x-k8s.io/v1): `spec.leaderWorkerTemplate.leaderTemplate` / `workerTemplate`,
  pod templates (https://lws.sigs.k8s.io/docs/reference/leaderworkerset.v1/).
- KubeRay (ray.io/v1, https://ray-project.github.io/kuberay/reference/api/): RayCluster
  `spec.headGroupSpec.template`, `spec.workerGroupSpecs[].template`; RayService `spec.rayClusterConfig`;
  RayJob `spec.rayClusterSpec` and `spec.submitterPodTemplate`.
- Any other custom resource (Argo Rollouts, Kubeflow's PyTorchJob `spec.pytorchReplicaSpecs.<role>.template`,
  JobSet `spec.replicatedJobs[].template.spec.template`): searched for an object with `containers`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelops_rules import RULES
from pulumi_policy.proxy import unknown_checking_proxy

from modelops_cli.plan import UNKNOWN
from tests.policies.test_rules import IMAGE, compliant

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/"


def good_pod() -> dict:
    return copy.deepcopy(compliant()[0][2]["spec"]["template"]["spec"])


def first(spec: dict) -> dict:
    return spec["containers"][0]


def ctx(spec: dict) -> dict:
    return first(spec)["securityContext"]


BREAKS: dict[str, Callable[[dict], Any]] = {
    "k8s-no-privileged": lambda s: ctx(s).update(privileged=True),
    "k8s-no-host-namespaces": lambda s: s.update(hostPID=True),
    "k8s-no-hostpath": lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/var/run"}}),
    "k8s-drop-capabilities": lambda s: ctx(s)["capabilities"].update(add=["SYS_ADMIN"]),
    "k8s-no-privilege-escalation": lambda s: ctx(s).pop("allowPrivilegeEscalation"),
    "k8s-run-as-non-root": lambda s: ctx(s).update(runAsUser=0),
    "k8s-seccomp": lambda s: ctx(s).update(seccompProfile={"type": "Unconfined"}),
    "k8s-no-host-process": lambda s: ctx(s).update(windowsOptions={"hostProcess": True}),
    "k8s-apparmor": lambda s: ctx(s).update(appArmorProfile={"type": "Unconfined"}),
    "k8s-selinux": lambda s: ctx(s).update(seLinuxOptions={"type": "spc_t"}),
    "k8s-proc-mount": lambda s: ctx(s).update(procMount="Unmasked"),
    "k8s-safe-sysctls": lambda s: s["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
    "k8s-volume-types": lambda s: s["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
    "k8s-memory-volume-limit": lambda s: s["volumes"].append({"name": "m", "emptyDir": {"medium": "Memory"}}),
    "k8s-readonly-rootfs": lambda s: ctx(s).pop("readOnlyRootFilesystem"),
    "k8s-image-tag": lambda s: first(s).update(image=f"{REGISTRY}m/chat:latest"),
    "k8s-image-digest": lambda s: first(s).update(image=f"{REGISTRY}m/chat:1.0"),
    "k8s-allowed-registries": lambda s: first(s).update(image="nginx@sha256:" + "b" * 64),
    "k8s-requests-limits": lambda s: first(s)["resources"]["limits"].pop("memory"),
    "k8s-probes": lambda s: first(s).pop("livenessProbe") and first(s).pop("startupProbe"),
    "k8s-sa-token": lambda s: s.pop("automountServiceAccountToken"),
    "k8s-no-secret-env": lambda s: first(s)["env"].append({"name": "DBPASSWORD", "value": "x"}),
    "gpu-scheduling": lambda s: s.pop("tolerations"),
    "gpu-limits-match-requests": lambda s: first(s)["resources"]["limits"].update({"nvidia.com/gpu": "2"}),
    "gpu-startup-probe": lambda s: first(s).pop("startupProbe"),
    "gpu-env-bypass": lambda s: s["containers"].append(
        {
            **copy.deepcopy(first(s)),
            "name": "sidecar",
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
            "env": [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}],
        }
    ),
}
"""One way to break each pod rule, applied to a pod spec every rule accepts."""

SETTINGS = {"k8s-allowed-registries": {"registries": [REGISTRY]}}


def template(spec: dict) -> dict:
    return {"metadata": {"labels": {"app": "x"}}, "spec": spec}


def ray_cluster(head: dict, worker: dict | None = None, index: int = 0) -> dict:
    groups = [{"groupName": f"g{i}", "template": template(good_pod())} for i in range(index)]
    if worker is not None:
        groups.append({"groupName": "w", "template": template(worker)})
    return {"headGroupSpec": {"template": template(head)}, "workerGroupSpecs": groups}


PLACES: dict[str, tuple[str, Callable[[dict], dict]]] = {
    "Pod": ("kubernetes:core/v1:Pod", lambda s: {"spec": s}),
    "PodPatch": ("kubernetes:core/v1:PodPatch", lambda s: {"spec": s}),
    "PodTemplate": ("kubernetes:core/v1:PodTemplate", lambda s: {"template": template(s)}),
    "Deployment": ("kubernetes:apps/v1:Deployment", lambda s: {"spec": {"template": template(s)}}),
    "DeploymentPatch": ("kubernetes:apps/v1:DeploymentPatch", lambda s: {"spec": {"template": template(s)}}),
    "StatefulSet": ("kubernetes:apps/v1:StatefulSet", lambda s: {"spec": {"template": template(s)}}),
    "DaemonSet": ("kubernetes:apps/v1:DaemonSet", lambda s: {"spec": {"template": template(s)}}),
    "ReplicaSet": ("kubernetes:apps/v1:ReplicaSet", lambda s: {"spec": {"template": template(s)}}),
    "ReplicationController": (
        "kubernetes:core/v1:ReplicationController",
        lambda s: {"spec": {"template": template(s)}},
    ),
    "Job": ("kubernetes:batch/v1:Job", lambda s: {"spec": {"template": template(s)}}),
    "CronJob": (
        "kubernetes:batch/v1:CronJob",
        lambda s: {"spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template(s)}}}},
    ),
    "CronJobPatch": (
        "kubernetes:batch/v1:CronJobPatch",
        lambda s: {"spec": {"jobTemplate": {"spec": {"template": template(s)}}}},
    ),
    "InferenceService predictor": (
        "kubernetes:serving.kserve.io/v1beta1:InferenceService",
        lambda s: {"spec": {"predictor": s}},
    ),
    "InferenceService transformer": (
        "kubernetes:serving.kserve.io/v1beta1:InferenceService",
        lambda s: {"spec": {"predictor": good_pod(), "transformer": s}},
    ),
    "InferenceService explainer": (
        "kubernetes:serving.kserve.io/v1beta1:InferenceService",
        lambda s: {"spec": {"predictor": good_pod(), "explainer": s}},
    ),
    "InferenceService workerSpec": (
        "kubernetes:serving.kserve.io/v1beta1:InferenceService",
        lambda s: {"spec": {"predictor": {**good_pod(), "workerSpec": s}}},
    ),
    "LeaderWorkerSet leader": (
        "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet",
        lambda s: {
            "spec": {"leaderWorkerTemplate": {"leaderTemplate": template(s), "workerTemplate": template(good_pod())}}
        },
    ),
    "LeaderWorkerSet worker": (
        "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet",
        lambda s: {"spec": {"leaderWorkerTemplate": {"size": 2, "workerTemplate": template(s)}}},
    ),
    "RayCluster head": ("kubernetes:ray.io/v1:RayCluster", lambda s: {"spec": ray_cluster(s)}),
    "RayCluster worker group": ("kubernetes:ray.io/v1:RayCluster", lambda s: {"spec": ray_cluster(good_pod(), s, 2)}),
    "RayService": (
        "kubernetes:ray.io/v1:RayService",
        lambda s: {"spec": {"rayClusterConfig": ray_cluster(good_pod(), s, 1)}},
    ),
    "RayJob cluster": ("kubernetes:ray.io/v1:RayJob", lambda s: {"spec": {"rayClusterSpec": ray_cluster(s)}}),
    "RayJob submitter": (
        "kubernetes:ray.io/v1:RayJob",
        lambda s: {"spec": {"entrypoint": "python x.py", "submitterPodTemplate": template(s)}},
    ),
    "Argo Rollout": ("kubernetes:argoproj.io/v1alpha1:Rollout", lambda s: {"spec": {"template": template(s)}}),
    "PyTorchJob": (
        "kubernetes:kubeflow.org/v1:PyTorchJob",
        lambda s: {"spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": template(s)}}}},
    ),
    "JobSet": (
        "kubernetes:jobset.x-k8s.io/v1alpha2:JobSet",
        lambda s: {"spec": {"replicatedJobs": [{"name": "w", "template": {"spec": {"template": template(s)}}}]}},
    ),
}
"""Where a pod spec lives: (type token, the object's inputs around a pod spec)."""

JOB_KINDS = {"Job", "CronJob", "CronJobPatch"}  # k8s-probes does not ask a run-to-completion pod for probes


def rules_by_id() -> dict[str, Any]:
    return {r.id: r for r in RULES}


def violations(rule_id: str, type_: str, inputs: dict) -> list[str]:
    rule = rules_by_id()[rule_id]
    settings = {**rule.defaults(), **SETTINGS.get(rule_id, {})}
    props = unknown_checking_proxy({"metadata": {"name": "w", "namespace": "models"}, **inputs})
    return list(rule.check(type_, props, settings))


def test_every_pod_rule_has_a_way_to_break_it():
    pod_rules = {r for r in rules_by_id() if r.startswith(("k8s-", "gpu-"))} - {
        "k8s-namespace",  # about any object's namespace
        "k8s-service-exposure",  # Services
        "k8s-s3-mount-readonly",  # PersistentVolumes
        "k8s-netpol-coverage",  # stack rules, judged by labels
        "k8s-pdb",
        "k8s-replicas-hpa",
        "k8s-scale-to-zero",
        "gpu-hpa-within-pool",
        "gpu-cost-ceiling",
    }
    assert pod_rules == set(BREAKS)


@given(place=st.sampled_from(sorted(PLACES)), rule_id=st.sampled_from(sorted(BREAKS)))
@settings(max_examples=300, deadline=None)
def test_each_pod_rule_sees_a_pod_wherever_it_is_placed(place, rule_id):
    type_, wrap = PLACES[place]
    if rule_id == "k8s-probes" and place in JOB_KINDS:
        return
    assert violations(rule_id, type_, wrap(good_pod())) == [], (place, rule_id)
    broken = good_pod()
    BREAKS[rule_id](broken)
    found = violations(rule_id, type_, wrap(broken))
    assert found, (place, rule_id)


@given(
    path=st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", min_size=1, max_size=8), max_size=5),
    in_list=st.lists(st.booleans(), min_size=5, max_size=5),
    rule_id=st.sampled_from(sorted(BREAKS)),
)
@settings(max_examples=200, deadline=None)
def test_a_custom_resource_is_searched_for_pods_at_any_depth(path, in_list, rule_id):
    """An operator the pack has never heard of keeps its pod spec wherever its API says; the pack finds it."""
    if rule_id == "k8s-probes" or any(p in ("status", "containers", "managedFields") for p in path):
        return
    broken = good_pod()
    BREAKS[rule_id](broken)
    value: Any = {"template": template(broken)}
    for key, listed in zip(reversed(path), in_list, strict=False):
        value = {key: [{"other": 1}, value] if listed else value}
    assert violations(rule_id, "kubernetes:example.com/v1:ModelServer", {"spec": value}), (path, rule_id)


@pytest.mark.parametrize("field", ["model", "sklearn", "huggingface", "triton", "pytorch"])
def test_kserve_model_server_containers_are_containers(field):
    """KServe runs `spec.predictor.<framework>` (an inline corev1.Container) as its kserve-container."""
    model = {"modelFormat": {"name": "x"}, "image": IMAGE, "securityContext": {"privileged": True}}
    found = violations(
        "k8s-no-privileged",
        "kubernetes:serving.kserve.io/v1beta1:InferenceService",
        {"spec": {"predictor": {field: model}}},
    )
    assert found and f"spec.predictor.{field}" in found[0]


@pytest.mark.parametrize(
    "annotations_at",
    [
        lambda a: {"metadata": {"name": "w", "namespace": "models", "annotations": a}, "spec": {"predictor": {}}},
        lambda a: {"spec": {"predictor": {"annotations": a}}},
    ],
)
def test_kserve_pod_annotations_from_the_service_and_the_component(annotations_at):
    """ComponentExtensionSpec.annotations, and the InferenceService's own, reach the component's pod."""
    inputs = annotations_at({"container.apparmor.security.beta.kubernetes.io/kserve-container": "unconfined"})
    inputs["spec"]["predictor"].update(good_pod())
    assert violations("k8s-apparmor", "kubernetes:serving.kserve.io/v1beta1:InferenceService", inputs)


def test_an_unknown_object_that_may_hide_a_pod_is_not_evaluated_never_passed():
    from pulumi_policy.proxy import UNKNOWN_OBJECT_VALUE, UnknownValueError

    with pytest.raises(UnknownValueError):
        violations("k8s-no-privileged", "kubernetes:example.com/v1:ModelServer", {"spec": {"a": UNKNOWN_OBJECT_VALUE}})
    # nor does the string marker pass: the Python SDK sends every unknown as it (pulumi/runtime/rpc.py UNKNOWN) and
    # the engine passes it on (sdk/go/common/resource/plugin/rpc.go), so an unknown object arrives looking like one
    with pytest.raises(UnknownValueError):
        violations("k8s-no-privileged", "kubernetes:argoproj.io/v1alpha1:Rollout", {"spec": {"template": UNKNOWN}})


def test_a_custom_resource_too_deep_or_too_large_to_search_is_refused_never_passed():
    """A pod spec past the search's limits would go unread: the resource is malformed (offline exit 2), not clean.
    And `status` is skipped only at the top: a pod spec under `spec.status` is still a pod spec."""
    from modelops_rules.pods import MAX_DEPTH, MAX_NODES, TooLargeToJudge

    broken = good_pod()
    BREAKS["k8s-no-privileged"](broken)
    deep: dict = {"template": template(broken)}
    for _ in range(MAX_DEPTH + 1):
        deep = {"x": deep}
    for inputs in ({"spec": deep}, {"spec": {"pad": [0] * (MAX_NODES + 1), "template": template(broken)}}):
        with pytest.raises(TooLargeToJudge):
            violations("k8s-no-privileged", "kubernetes:argoproj.io/v1alpha1:Rollout", inputs)
    nested = {"spec": {"status": {"template": template(broken)}}}
    assert violations("k8s-no-privileged", "kubernetes:argoproj.io/v1alpha1:Rollout", nested)


def test_objects_that_run_no_pods_have_no_pod_sites():
    from modelops_rules.pods import pod_sites

    for type_, _, inputs in compliant():
        if "karpenter" in type_:  # a NodePool's spec.template.spec is a node's, not a pod's
            assert pod_sites(type_, unknown_checking_proxy(inputs)) == [], type_
    assert pod_sites("kubernetes:core/v1:Service", unknown_checking_proxy({"spec": {"containers": []}})) == []
    assert pod_sites("aws:lambda/function:Function", {"spec": {"containers": []}}) == []


@pytest.mark.parametrize("key", ["workers", "a.b", "x[0]"])
def test_a_searched_pod_template_brings_its_annotations(key):
    """A pod template's metadata reaches its pods wherever the custom resource keeps the template, even under a
    key with dots or brackets in it (a CRD's map keys are free text)."""
    meta = {"annotations": {"container.apparmor.security.beta.kubernetes.io/server": "unconfined"}}
    inputs = {"spec": {key: [{"template": {"metadata": meta, "spec": good_pod()}}]}}
    assert violations("k8s-apparmor", "kubernetes:example.com/v1:ModelServer", inputs)
    assert not violations(
        "k8s-apparmor", "kubernetes:example.com/v1:ModelServer", {"spec": {key: [template(good_pod())]}}
    )
