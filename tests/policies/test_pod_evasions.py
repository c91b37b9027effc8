"""Issue #26, class 3: the ways around the pod rules, each tried both ways (blocked, and the honest form passes).

Upstream definitions each case follows are cited on the test.
"""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policies.test_rules import (
    LABELS,
    D,
    check,
    compliant,
    edit,
    failures,
    pod,
    server,
)


def with_resource(type_: str, name: str, inputs: dict) -> list:
    return [*compliant(), (type_, name, inputs)]


@pytest.mark.parametrize(
    "volumes, automount, passes",
    [
        ([], False, True),
        ([{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}], False, False),
        (
            [
                {
                    "name": "t",
                    "projected": {
                        "sources": [
                            {"configMap": {"name": "ca"}},
                            {"serviceAccountToken": {"path": "t", "audience": "vault", "expirationSeconds": 600}},
                        ]
                    },
                }
            ],
            False,
            False,
        ),
        ([{"name": "c", "projected": {"sources": [{"configMap": {"name": "ca"}}]}}], False, True),
        ([], True, False),
    ],
)
def test_a_projected_service_account_token_is_a_mounted_token(volumes, automount, passes, tmp_path):
    """A projected volume's `serviceAccountToken` source mounts a token whatever automountServiceAccountToken
    says; its audience defaults to the API server's
    (https://kubernetes.io/docs/concepts/storage/projected-volumes/#serviceaccounttoken)."""

    def mutate(i):
        pod(i)["volumes"].extend(volumes)
        pod(i)["automountServiceAccountToken"] = automount

    report = check(edit(D, mutate)(compliant()), tmp_path)
    assert (D not in failures(report, "k8s-sa-token")) is passes


@pytest.mark.parametrize(
    "source, passes",
    [
        ({"hostPath": {"path": "/", "type": "Directory"}}, False),
        ({"local": {"path": "/mnt/disks/ssd1"}, "nodeAffinity": {"required": {"nodeSelectorTerms": []}}}, False),
        ({"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-1"}}, True),
    ],
)
def test_a_host_path_persistent_volume_is_a_host_path(source, passes, tmp_path):
    """A PersistentVolume with `hostPath` or `local` is the node's filesystem, and any claim bound to it mounts
    it through `persistentVolumeClaim`, a type every profile allows
    (https://kubernetes.io/docs/concepts/storage/volumes/#hostpath, #local)."""
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "host"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], **source},
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "host", "namespace": "models"},
        "spec": {"volumeName": "host", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    resources = edit(
        D, lambda i: pod(i)["volumes"].append({"name": "h", "persistentVolumeClaim": {"claimName": "host"}})
    )(compliant())
    resources += [
        ("kubernetes:core/v1:PersistentVolume", "host-pv", pv),
        ("kubernetes:core/v1:PersistentVolumeClaim", "host-pvc", claim),
    ]
    report = check(resources, tmp_path)
    assert ("host-pv" not in failures(report, "k8s-no-hostpath")) is passes


def test_the_hostpath_allowlist_names_kubernetes_own_workloads_only(tmp_path):
    """An allowlist entry written for the DCGM DaemonSet lets neither a custom resource nor a Pod of the same
    namespace and name mount the path (the entry names its kind)."""
    entry = {"kind": "DaemonSet", "namespace": "models", "name": "w", "path": "/var/lib/x"}
    allow = {"k8s-no-hostpath": {"allowlist": [entry]}}
    volume = {"name": "h", "hostPath": {"path": "/var/lib/x"}}
    spec = copy.deepcopy(pod(compliant()[0][2]))
    spec["volumes"].append(volume)
    meta = {"name": "w", "namespace": "models"}
    daemon = ("kubernetes:apps/v1:DaemonSet", "daemon", {"metadata": meta, "spec": {"template": {"spec": spec}}})
    crd = ("kubernetes:example.com/v1:DaemonSet", "crd", {"metadata": meta, "spec": {"template": {"spec": spec}}})
    bare = ("kubernetes:core/v1:Pod", "bare-pod", {"metadata": meta, "spec": spec})
    report = check([*compliant(), daemon, crd, bare], tmp_path, {"all": "mandatory", **allow})
    assert sorted(failures(report, "k8s-no-hostpath")) == ["bare-pod", "crd"]


@pytest.mark.parametrize(
    "type_, kind, exempt",
    [
        ("kubernetes:apps/v1:Deployment", "Deployment", True),
        ("kubernetes:apps/v1:DeploymentPatch", "Deployment", True),
        ("kubernetes:example.com/v1:Deployment", "Deployment", False),
        ("kubernetes:example.com/v1:Deployment", "Deployment.example.com", True),
        ("kubernetes:apps/v1:Deployment", "Deployment.example.com", False),
        ("kubernetes:serving.kserve.io/v1beta1:InferenceService", "InferenceService", False),
        ("kubernetes:serving.kserve.io/v1beta1:InferenceService", "InferenceService.serving.kserve.io", True),
    ],
)
def test_an_exemption_names_the_api_group_of_any_kind_kubernetes_does_not_serve(type_, kind, exempt, tmp_path):
    """Kinds are unique within an API group only: a CRD may call itself Deployment
    (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/). An
    exemption names Kubernetes' own kinds bare, and any other as `Kind.group` (kubectl's `resource.group`)."""
    spec = copy.deepcopy(pod(compliant()[0][2]))
    spec.pop("automountServiceAccountToken")
    inputs = {"metadata": {"name": "w", "namespace": "models"}, "spec": {"template": {"spec": spec}}}
    if "kserve" in type_:
        inputs["spec"] = {"predictor": spec}
    entry = {"kind": kind, "namespace": "models", "name": "w", "reason": "calls the API"}
    report = check(
        with_resource(type_, "w", inputs), tmp_path, {"all": "mandatory", "k8s-sa-token": {"exemptions": [entry]}}
    )
    outcomes = {f.outcome for f in report.findings if f.rule == "k8s-sa-token" and f.resource == "w"}
    assert outcomes == ({"exempt"} if exempt else {"fail"})


def test_two_disruption_budgets_on_one_pod_are_refused(tmp_path):
    """The eviction API answers 500 "This pod has more than one PodDisruptionBudget, which the eviction
    subresource does not support" whatever each budget allows, so a drain never evicts it
    (https://github.com/kubernetes/kubernetes/blob/master/pkg/registry/core/pod/storage/eviction.go)."""
    second = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "chat-extra", "namespace": "models"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": LABELS}},
    }
    report = check(with_resource("kubernetes:policy/v1:PodDisruptionBudget", "extra-pdb", second), tmp_path)
    assert failures(report, "k8s-pdb") == [D]
    assert "2 PodDisruptionBudgets" in next(f.message for f in report.findings if f.rule == "k8s-pdb")
    other = {**second, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "other"}}}}
    report = check(with_resource("kubernetes:policy/v1:PodDisruptionBudget", "extra-pdb", other), tmp_path)
    assert failures(report, "k8s-pdb") == []


@pytest.mark.parametrize(
    "change, rule, passes",
    [
        (
            lambda c: c["env"].append(
                {"name": "HF_TOKEN", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "t"}}}
            ),
            "k8s-no-secret-env",
            False,
        ),
        (
            lambda c: c["env"].append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "x", "key": "t"}}}),
            "k8s-no-secret-env",
            True,
        ),
        (
            lambda c: c.update(envFrom=[{"prefix": "DB_PASSWORD_", "configMapRef": {"name": "x"}}]),
            "k8s-no-secret-env",
            False,
        ),
        (
            lambda c: c.update(envFrom=[{"prefix": "DB_PASSWORD_", "secretRef": {"name": "x"}}]),
            "k8s-no-secret-env",
            True,
        ),
        (lambda c: c.update(envFrom=[{"configMapRef": {"name": "settings"}}]), "k8s-no-secret-env", True),
    ],
)
def test_env_from_and_config_map_refs_are_read_like_env(change, rule, passes, tmp_path):
    """Variables come from `env` (value or valueFrom) and from `envFrom` (every key of a ConfigMap or Secret,
    each under `prefix`): https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/
    #environment-variables. A ConfigMap is plain text; a secret-looking name read from one is a secret in clear."""
    report = check(edit(D, lambda i: change(server(i)))(compliant()), tmp_path)
    assert (D not in failures(report, rule)) is passes


@pytest.mark.parametrize(
    "kind, data, rule, passes",
    [
        ("ConfigMap", {"data": {"DBPASSWORD": "x"}}, "k8s-no-secret-env", False),
        ("ConfigMap", {"data": {"tokenizer_config.json": "{}"}}, "k8s-no-secret-env", True),
        ("ConfigMap", {"data": {"NVIDIA_VISIBLE_DEVICES": "all"}}, "gpu-env-bypass", False),
        ("Secret", {"stringData": {"NVIDIA_VISIBLE_DEVICES": "all"}}, "gpu-env-bypass", False),
        ("ConfigMap", {"data": {"LOG_LEVEL": "info"}}, "gpu-env-bypass", True),
    ],
)
def test_what_env_from_would_hand_a_container_is_judged_where_it_is_written(kind, data, rule, passes, tmp_path):
    """envFrom takes every key of the ConfigMap or Secret it names: the rule judges the keys there."""
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "settings", "namespace": "models"}, **data}
    report = check(with_resource(f"kubernetes:core/v1:{kind}", "settings", obj), tmp_path)
    assert ("settings" not in failures(report, rule)) is passes


@pytest.mark.parametrize("prefix, passes", [("NVIDIA_", False), ("NVIDIA_VISIBLE_DEVICES", False), ("APP_", True)])
def test_an_env_from_prefix_that_spells_visible_devices_is_a_gpu_bypass(prefix, passes, tmp_path):
    def mutate(i):
        sidecar = copy.deepcopy(server(i))
        sidecar.update(
            name="sidecar", resources={"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
        )
        sidecar["envFrom"] = [{"prefix": prefix, "configMapRef": {"name": "settings"}}]
        pod(i)["containers"].append(sidecar)

    report = check(edit(D, mutate)(compliant()), tmp_path)
    assert (D not in failures(report, "gpu-env-bypass")) is passes


def _affinity(*terms: list[dict]) -> dict:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": t} for t in terms]
            }
        }
    }


@pytest.mark.parametrize(
    "affinity, over_limit",
    [
        (_affinity([{"key": "modelops/gpu-pool", "operator": "In", "values": ["a10g"]}]), True),
        (_affinity([{"key": "karpenter.sh/nodepool", "operator": "In", "values": ["a10g"]}]), True),
        (_affinity([{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g5.xlarge"]}]), True),
        (
            _affinity(
                [{"key": "x", "operator": "In", "values": ["y"]}], [{"key": "modelops/gpu-pool", "operator": "Exists"}]
            ),
            True,
        ),
        (_affinity([{"key": "modelops/gpu-pool", "operator": "In", "values": ["l4"]}]), False),
        (_affinity([{"key": "modelops/gpu-pool", "operator": "NotIn", "values": ["a10g"]}]), False),
    ],
)
def test_node_affinity_places_a_model_on_a_pool_as_a_node_selector_does(affinity, over_limit, tmp_path):
    """A pod's node constraints are its nodeSelector and its required node affinity, whose nodeSelectorTerms
    are ORed and whose matchExpressions are ANDed
    (https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#node-affinity); Karpenter labels
    every node with `karpenter.sh/nodepool` and the pool's requirements
    (https://karpenter.sh/docs/reference/well-known-labels/). A model placed by affinity counts against the
    pool's GPU limit like one placed by nodeSelector."""

    def mutate(i):
        pod(i).pop("nodeSelector")
        pod(i)["affinity"] = affinity

    resources = edit("chat-hpa", lambda i: i["spec"].update(maxReplicas=9))(edit(D, mutate)(compliant()))
    report = check(resources, tmp_path)
    assert ("a10g-node-pool" in failures(report, "gpu-hpa-within-pool")) is over_limit
    assert D not in failures(report, "gpu-scheduling")


def test_a_gpu_pod_without_any_node_constraint_is_refused(tmp_path):
    def mutate(i):
        pod(i).pop("nodeSelector")
        pod(i)["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}
        }

    assert D in failures(check(edit(D, mutate)(compliant()), tmp_path), "gpu-scheduling")


@pytest.mark.parametrize(
    "terms, passes",
    [
        ([{"alias": "bottlerocket@v1.66.0"}], True),
        ([{"alias": "al2023@v20240807"}], True),
        ([{"id": "ami-0123456789abcdef0"}], True),
        ([{"name": "my-gpu-ami-2024-08-01", "owner": "123456789012"}], True),
        ([{"alias": "al2023@latest"}], False),
        ([{"alias": "bottlerocket@latest"}], False),
        ([{"alias": "bottlerocket@LATEST"}], False),
        ([{"name": "amazon-eks-gpu-node-1.31-*"}], False),
        ([{"name": "my-ami-?", "owner": "self"}], False),
        (
            [
                {
                    "ssmParameter": "/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/nvidia/recommended/image_id"
                }
            ],
            False,
        ),
        ([{"tags": {"team": "ml"}}], False),
        ([{"id": "ami-0123456789abcdef0"}, {"name": "x-*"}], False),
        ([], False),  # v1beta1 without terms took the newest EKS-optimized AMI
    ],
)
def test_only_a_pinned_ami_passes(terms, passes, tmp_path):
    """Karpenter's amiSelectorTerms (https://karpenter.sh/docs/concepts/nodeclasses/#specamiselectorterms):
    `alias` family@version, where `latest` "will result in drift when a new AMI is released" (the vendored CRD's
    description); `name` takes wildcards and the newest match wins; `ssmParameter` is whatever image id the
    parameter holds (the EKS `recommended` parameters move with each release); `tags` select whichever AMI is
    tagged so. Terms are ORed: one that follows releases is enough. Pin with a versioned alias or an id
    (https://karpenter.sh/docs/tasks/managing-amis/)."""
    resources = edit("a10g-node-class", lambda i: i["spec"].update(amiSelectorTerms=terms))(compliant())
    if not terms:  # as the v1beta1 API allowed it
        resources = [(t.replace("aws/v1:", "aws/v1beta1:"), n, i) for t, n, i in resources]
    assert ("a10g-node-class" not in failures(check(resources, tmp_path), "karpenter-ami-pinned")) is passes


@pytest.mark.parametrize(
    "name, secret",
    [
        ("DBPASSWORD", True),
        ("APITOKEN", True),
        ("SECRETKEY", True),
        ("GITHUBTOKEN", True),
        ("OPENAIAPIKEY", True),
        ("dbpassword", True),
        ("MySecret", True),
        ("ＤＢ＿ＰＡＳＳＷＯＲＤ", True),  # full-width letters: NFKC folds them to DB_PASSWORD
        ("MAX_TOTAL_TOKENS", False),
        ("TOKENIZERS_PARALLELISM", False),
        ("MONKEY", False),
        ("PASSAGE_LIMIT", False),
        ("HOTKEY", False),
        # plurals (found by an independent review); `tokens` alone counts text, after an owner it is credentials
        ("API_TOKENS", True),
        ("HF_TOKENS", True),
        ("DB_PASSWORDS", True),
        ("API_KEYS", True),
        ("apiKeys", True),
        ("CREDS", True),
        ("MAX_NEW_TOKENS", False),
        ("NUM_TOKENS", False),
        ("MONKEYS", False),
        ("PASSAGES", False),
    ],
)
def test_secret_env_names_run_together(name, secret, tmp_path):
    """Env names are any printable characters but '=' (Kubernetes 1.34:
    https://kubernetes.io/docs/tasks/inject-data-application/define-environment-variable-container/): DBPASSWORD is
    DB_PASSWORD without its separator."""
    report = check(edit(D, lambda i: server(i)["env"].append({"name": name, "value": "x"}))(compliant()), tmp_path)
    assert (D in failures(report, "k8s-no-secret-env")) is secret, name


def test_kubernetes_own_kinds_have_one_pod_site_at_their_template():
    """A Deployment has one pod spec, at spec.template.spec; a Service, a NodePool or an EC2NodeClass none."""
    from modelops_rules.pods import pod_sites
    from pulumi_policy.proxy import unknown_checking_proxy

    for type_, _, inputs in compliant():
        sites = pod_sites(type_, unknown_checking_proxy(json.loads(json.dumps(inputs))))
        assert [s.path for s in sites] == (["spec.template.spec"] if type_.endswith(":Deployment") else []), type_


@pytest.mark.parametrize(
    "drop_name, impostor_type, rule",
    [
        ("chat-netpol", "kubernetes:example.com/v1:NetworkPolicy", "k8s-netpol-coverage"),
        ("chat-pdb", "kubernetes:example.com/v1:PodDisruptionBudget", "k8s-pdb"),
    ],
)
def test_a_custom_kind_named_like_kubernetes_own_stands_in_for_nothing(drop_name, impostor_type, rule, tmp_path):
    """Only networking.k8s.io's NetworkPolicy and policy's PodDisruptionBudget are enforced by Kubernetes: a
    custom resource of the same kind name in another group, with the same selector, protects nothing."""
    resources = compliant()
    real = next(inputs for _, name, inputs in resources if name == drop_name)
    resources = [r for r in resources if r[1] != drop_name] + [(impostor_type, "impostor", copy.deepcopy(real))]
    assert D in failures(check(resources, tmp_path), rule)


def test_a_node_pool_of_another_group_is_no_gpu_pool(tmp_path):
    """gpu-hpa-within-pool counts a model against Karpenter's NodePools (karpenter.sh) only: a same-named kind
    of another group with a larger limit and the same labels absorbs nothing."""
    resources = edit("chat-hpa", lambda i: i["spec"].update(maxReplicas=9))(compliant())
    pool = copy.deepcopy(next(inputs for _, name, inputs in resources if name == "a10g-node-pool"))
    pool["spec"]["limits"] = {"nvidia.com/gpu": "1000"}
    report = check([*resources, ("kubernetes:example.com/v1:NodePool", "impostor-pool", pool)], tmp_path)
    assert "a10g-node-pool" in failures(report, "gpu-hpa-within-pool")
    assert "impostor-pool" not in failures(report, "karpenter-gpu-limit")


SECRET_WORDS = ["password", "passwd", "passphrase", "token", "secret", "credentials", "apikey", "secretkey"]


@given(
    before=st.lists(st.sampled_from(["db", "openai", "hf", "github", "aws", "my", "app"]), max_size=3),
    word=st.sampled_from(SECRET_WORDS),
    separator=st.sampled_from(["", "_", "-", "."]),
    case=st.sampled_from([str.upper, str.lower, str.title]),
)
@settings(max_examples=300, deadline=None)
def test_a_secret_word_at_the_end_is_a_secret_however_it_is_joined(before, word, separator, case):
    """DB_PASSWORD, dbpassword, Db.Password, OPENAI-APIKEY: the separator (or none) and the case change nothing."""
    from modelops_rules.k8s_workloads import is_secret_name

    assert is_secret_name(separator.join(case(w) for w in [*before, word]))
