"""Every rule of the catalogue, both ways: a compliant stack passes it, and a broken variant fails it.

Plans are built as `pulumi preview --json` documents, written to disk and read back like the CLI's.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from modelops_rules import RULES, adapters

from modelops_cli.check import run_checks
from modelops_cli.plan import UNKNOWN, load_plan
from tests.conftest import UPSTREAM

ALL_MANDATORY = {
    "all": "mandatory",
    "k8s-allowed-registries": {"registries": ["123456789012.dkr.ecr.us-east-1.amazonaws.com/"]},
    "lambda-image-pinned": {"repositoryPrefixes": ["123456789012.dkr.ecr.us-east-1.amazonaws.com/m/"]},
    "gpu-cost-ceiling": {"budgetUsd": 20000, "region": "us-east-1"},
    "karpenter-gpu-limit": {"maxGpusPerPool": 16},
}
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/m/chat@sha256:" + "a" * 64
LABELS = {"app.kubernetes.io/name": "chat"}


def container(**extra) -> dict:
    c = {
        "name": "server",
        "image": IMAGE,
        "ports": [{"name": "http", "containerPort": 8080}],
        "resources": {
            "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
            "limits": {"memory": "1Gi", "nvidia.com/gpu": "1"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
        "livenessProbe": {"httpGet": {"path": "/live", "port": "http"}},
        "startupProbe": {"httpGet": {"path": "/live", "port": "http"}, "failureThreshold": 60},
        "env": [{"name": "MODEL_DIR", "value": "/models"}],
    }
    c.update(extra)
    return c


def compliant() -> list[tuple[str, str, dict]]:
    """(type, name, inputs) of a small stack that every rule accepts."""
    meta = {"name": "chat", "namespace": "models"}
    pod = {
        "automountServiceAccountToken": False,
        "containers": [container()],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "nodeSelector": {"modelops/gpu-pool": "a10g"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "volumes": [{"name": "cache", "emptyDir": {}}],
    }
    pool_reqs = [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g5.xlarge"]}]
    return [
        (
            "kubernetes:apps/v1:Deployment",
            "chat-deployment",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": meta,
                "spec": {
                    "selector": {"matchLabels": LABELS},
                    "template": {"metadata": {"labels": LABELS}, "spec": pod},
                },
            },
        ),
        (
            "kubernetes:core/v1:Service",
            "chat-svc",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta,
                "spec": {"type": "ClusterIP", "selector": LABELS, "ports": [{"port": 80}]},
            },
        ),
        (
            "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
            "chat-hpa",
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": meta,
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "chat"},
                    "minReplicas": 2,
                    "maxReplicas": 4,
                },
            },
        ),
        (
            "kubernetes:policy/v1:PodDisruptionBudget",
            "chat-pdb",
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": meta,
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": LABELS}},
            },
        ),
        (
            "kubernetes:networking.k8s.io/v1:NetworkPolicy",
            "chat-netpol",
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": meta,
                "spec": {"podSelector": {"matchLabels": LABELS}, "policyTypes": ["Ingress"]},
            },
        ),
        (
            "kubernetes:karpenter.sh/v1:NodePool",
            "a10g-node-pool",
            {
                "apiVersion": "karpenter.sh/v1",
                "kind": "NodePool",
                "metadata": {"name": "a10g"},
                "spec": {
                    "template": {
                        "metadata": {"labels": {"modelops/gpu-pool": "a10g"}},
                        "spec": {
                            "requirements": pool_reqs,
                            "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
                        },
                    },
                    "limits": {"nvidia.com/gpu": "8"},
                },
            },
        ),
        (
            "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass",
            "a10g-node-class",
            {
                "apiVersion": "karpenter.k8s.aws/v1",
                "kind": "EC2NodeClass",
                "metadata": {"name": "a10g"},
                "spec": {
                    "amiSelectorTerms": [{"alias": "bottlerocket@v1.66.0"}],
                    "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
                    "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": True}}],
                },
            },
        ),
        (
            "aws:ecr/repository:Repository",
            "chat-repo",
            {"name": "m/chat", "imageTagMutability": "IMMUTABLE", "imageScanningConfiguration": {"scanOnPush": True}},
        ),
        ("aws:ecr/lifecyclePolicy:LifecyclePolicy", "chat-lifecycle", {"repository": "m/chat", "policy": "{}"}),
        (
            "aws:ecr/repositoryPolicy:RepositoryPolicy",
            "chat-repo-policy",
            {
                "repository": "m/chat",
                "policy": json.dumps(
                    {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                                "Action": "ecr:BatchGetImage",
                            }
                        ]
                    }
                ),
            },
        ),
        (
            "aws:lambda/function:Function",
            "chat-fallback-function",
            {
                "packageType": "Image",
                "imageUri": IMAGE,
                "reservedConcurrentExecutions": 5,
                "tracingConfig": {"mode": "Active"},
            },
        ),
        ("aws:lambda/functionUrl:FunctionUrl", "chat-fallback-url", {"authorizationType": "AWS_IAM"}),
        (
            "aws:cloudwatch/metricAlarm:MetricAlarm",
            "chat-fallback-errors-alarm",
            {"metricName": "Errors", "alarmActions": ["arn:aws:sns:us-east-1:123456789012:modelops-alarms"]},
        ),
        (
            "aws:lambda/permission:Permission",
            "chat-permission",
            {"principal": "s3.amazonaws.com", "sourceArn": "arn:aws:s3:::bucket", "action": "lambda:InvokeFunction"},
        ),
        (
            "aws:iam/rolePolicy:RolePolicy",
            "chat-artifact-read",
            {
                "policy": json.dumps(
                    {
                        "Statement": [
                            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::models/chat/*"},
                            {"Effect": "Allow", "Action": "xray:GetSamplingRules", "Resource": "*"},
                        ]
                    }
                )
            },
        ),
        ("aws:s3/bucket:Bucket", "models", {"bucket": "acme-models"}),
        (
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "models-block",
            {
                "bucket": "acme-models",
                "blockPublicAcls": True,
                "blockPublicPolicy": True,
                "ignorePublicAcls": True,
                "restrictPublicBuckets": True,
            },
        ),
    ]


def preview_json(resources: list[tuple[str, str, dict]]) -> dict:
    stack_urn = "urn:pulumi:test::modelops::pulumi:pulumi:Stack::modelops-test"
    steps = [
        {
            "op": "create",
            "urn": stack_urn,
            "newState": {"urn": stack_urn, "custom": False, "type": "pulumi:pulumi:Stack"},
        }
    ]
    for type_, name, inputs in resources:
        urn = f"urn:pulumi:test::modelops::{type_}::{name}"
        steps.append(
            {
                "op": "create",
                "urn": urn,
                "newState": {"urn": urn, "custom": True, "type": type_, "inputs": inputs, "parent": stack_urn},
            }
        )
    return {"config": {}, "steps": steps, "changeSummary": {"create": len(steps)}}


def check(resources, tmp_path: Path, config=None):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(preview_json(resources)))
    return run_checks(load_plan(path), ALL_MANDATORY if config is None else config)


def edit(name: str, change: Callable[[dict], None]) -> Callable[[list], list]:
    def mutate(resources):
        resources = copy.deepcopy(resources)
        for _, resource_name, inputs in resources:
            if resource_name == name:
                change(inputs)
        return resources

    return mutate


def pod(inputs):
    return inputs["spec"]["template"]["spec"]


def server(inputs):
    return pod(inputs)["containers"][0]


def drop(name: str) -> Callable[[list], list]:
    return lambda resources: [r for r in copy.deepcopy(resources) if r[1] != name]


def add(*extra: tuple[str, str, dict]) -> Callable[[list], list]:
    return lambda resources: copy.deepcopy(resources) + list(extra)


D = "chat-deployment"
CASES: dict[str, tuple[Callable[[list], list], str]] = {
    "karpenter-ami-pinned": (
        edit("a10g-node-class", lambda i: i["spec"].update(amiSelectorTerms=[{"alias": "bottlerocket@latest"}])),
        "a10g-node-class",
    ),
    "k8s-no-host-process": (
        edit(D, lambda i: pod(i)["securityContext"].update(windowsOptions={"hostProcess": True})),
        D,
    ),
    "k8s-apparmor": (edit(D, lambda i: server(i)["securityContext"].update(appArmorProfile={"type": "Unconfined"})), D),
    "k8s-selinux": (edit(D, lambda i: server(i)["securityContext"].update(seLinuxOptions={"type": "spc_t"})), D),
    "k8s-proc-mount": (edit(D, lambda i: server(i)["securityContext"].update(procMount="Unmasked")), D),
    "k8s-safe-sysctls": (
        edit(D, lambda i: pod(i)["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}])),
        D,
    ),
    "k8s-memory-volume-limit": (
        edit(D, lambda i: pod(i)["volumes"].append({"name": "dshm", "emptyDir": {"medium": "Memory"}})),
        D,
    ),
    "k8s-s3-mount-readonly": (
        lambda resources: [
            *resources,
            (
                "kubernetes:core/v1:PersistentVolume",
                "weights-pv",
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": "weights"},
                    "spec": {
                        "accessModes": ["ReadWriteMany"],
                        "mountOptions": ["allow-delete"],
                        "csi": {
                            "driver": "s3.csi.aws.com",
                            "volumeHandle": "w",
                            "volumeAttributes": {"bucketName": "b"},
                        },
                    },
                },
            ),
        ],
        "weights-pv",
    ),
    "k8s-volume-types": (
        edit(D, lambda i: pod(i)["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}})),
        D,
    ),
    "k8s-no-privileged": (edit(D, lambda i: server(i)["securityContext"].update(privileged=True)), D),
    "k8s-no-host-namespaces": (edit(D, lambda i: pod(i).update(hostNetwork=True)), D),
    "k8s-no-hostpath": (edit(D, lambda i: pod(i)["volumes"].append({"name": "h", "hostPath": {"path": "/etc"}})), D),
    "k8s-drop-capabilities": (
        edit(D, lambda i: server(i)["securityContext"]["capabilities"].update(add=["NET_ADMIN"])),
        D,
    ),
    "k8s-no-privilege-escalation": (edit(D, lambda i: server(i)["securityContext"].pop("allowPrivilegeEscalation")), D),
    "k8s-run-as-non-root": (edit(D, lambda i: server(i)["securityContext"].update(runAsUser=0)), D),
    "k8s-seccomp": (edit(D, lambda i: server(i)["securityContext"].update(seccompProfile={"type": "Unconfined"})), D),
    "k8s-readonly-rootfs": (edit(D, lambda i: server(i)["securityContext"].update(readOnlyRootFilesystem=False)), D),
    "k8s-image-tag": (
        edit(D, lambda i: server(i).update(image="123456789012.dkr.ecr.us-east-1.amazonaws.com/m/chat:latest")),
        D,
    ),
    "k8s-image-digest": (
        edit(D, lambda i: server(i).update(image="123456789012.dkr.ecr.us-east-1.amazonaws.com/m/chat:1.0")),
        D,
    ),
    "k8s-allowed-registries": (edit(D, lambda i: server(i).update(image="nginx@sha256:" + "b" * 64)), D),
    "k8s-requests-limits": (edit(D, lambda i: server(i)["resources"]["limits"].pop("memory")), D),
    "k8s-probes": (edit(D, lambda i: server(i).pop("readinessProbe")), D),
    "k8s-namespace": (edit("chat-svc", lambda i: i["metadata"].update(namespace="default")), "chat-svc"),
    "k8s-sa-token": (edit(D, lambda i: pod(i).pop("automountServiceAccountToken")), D),
    "k8s-no-secret-env": (edit(D, lambda i: server(i)["env"].append({"name": "HF_TOKEN", "value": "hf_abc"})), D),
    "k8s-service-exposure": (edit("chat-svc", lambda i: i["spec"].update(type="NodePort")), "chat-svc"),
    "k8s-netpol-coverage": (drop("chat-netpol"), D),
    "k8s-scale-to-zero": (
        lambda resources: edit(
            "chat-hpa",
            lambda i: i.update(
                apiVersion="keda.sh/v1alpha1",
                kind="ScaledObject",
                spec={"scaleTargetRef": {"name": "chat"}, "minReplicaCount": 0, "maxReplicaCount": 4, "triggers": []},
            ),
        )([(("kubernetes:keda.sh/v1alpha1:ScaledObject" if n == "chat-hpa" else t), n, i) for t, n, i in resources]),
        "chat-hpa",
    ),
    "k8s-pdb": (edit("chat-pdb", lambda i: i["spec"].update(maxUnavailable=0)), "chat-pdb"),
    "k8s-replicas-hpa": (edit("chat-hpa", lambda i: i["spec"].update(minReplicas=1)), "chat-hpa"),
    "gpu-limits-match-requests": (
        edit(D, lambda i: server(i)["resources"]["limits"].update({"nvidia.com/gpu": "2"})),
        D,
    ),
    "gpu-scheduling": (edit(D, lambda i: pod(i).pop("tolerations")), D),
    "gpu-env-bypass": (
        edit(
            D,
            lambda i: pod(i)["containers"].append(
                container(
                    name="sidecar",
                    resources={"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
                    env=[{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}],
                )
            ),
        ),
        D,
    ),
    "gpu-startup-probe": (edit(D, lambda i: server(i).pop("startupProbe")), D),
    "gpu-hpa-within-pool": (edit("chat-hpa", lambda i: i["spec"].update(maxReplicas=9)), "a10g-node-pool"),
    "karpenter-gpu-limit": (edit("a10g-node-pool", lambda i: i["spec"].pop("limits")), "a10g-node-pool"),
    "karpenter-gpu-taint": (
        edit("a10g-node-pool", lambda i: i["spec"]["template"]["spec"].pop("taints")),
        "a10g-node-pool",
    ),
    "node-imdsv2": (
        edit("a10g-node-class", lambda i: i["spec"]["metadataOptions"].update(httpTokens="optional")),
        "a10g-node-class",
    ),
    "node-disk-encrypted": (
        edit("a10g-node-class", lambda i: i["spec"]["blockDeviceMappings"][0]["ebs"].update(encrypted=False)),
        "a10g-node-class",
    ),
    "gpu-cost-ceiling": (
        edit(
            "a10g-node-pool",
            lambda i: i["spec"]["limits"].update({"nvidia.com/gpu": "16"})
            or i["spec"]["template"]["spec"]["requirements"][0].update(values=["g5.16xlarge"]),
        ),
        "a10g-node-pool",
    ),
    "ecr-immutable-tags": (edit("chat-repo", lambda i: i.pop("imageTagMutability")), "chat-repo"),
    "ecr-scan-on-push": (edit("chat-repo", lambda i: i.pop("imageScanningConfiguration")), "chat-repo"),
    "ecr-not-public": (
        edit(
            "chat-repo-policy",
            lambda i: i.update(
                policy=json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"}]})
            ),
        ),
        "chat-repo-policy",
    ),
    "lambda-url-iam": (edit("chat-fallback-url", lambda i: i.update(authorizationType="NONE")), "chat-fallback-url"),
    "lambda-permission-scoped": (edit("chat-permission", lambda i: i.update(principal="*")), "chat-permission"),
    "lambda-image-pinned": (
        edit("chat-fallback-function", lambda i: i.update(imageUri="public.ecr.aws/x/y:1")),
        "chat-fallback-function",
    ),
    "lambda-concurrency-cap": (
        edit("chat-fallback-function", lambda i: i.pop("reservedConcurrentExecutions")),
        "chat-fallback-function",
    ),
    "lambda-tracing": (
        edit("chat-fallback-function", lambda i: i.update(tracingConfig={"mode": "PassThrough"})),
        "chat-fallback-function",
    ),
    # the reference stacks had no alarmTopicArn: every fallback alarm fired into the void
    "cloudwatch-alarm-actions": (
        edit("chat-fallback-errors-alarm", lambda i: i.pop("alarmActions")),
        "chat-fallback-errors-alarm",
    ),
    "ecr-lifecycle-policy": (drop("chat-lifecycle"), "chat-repo"),
    "s3-model-bucket-private": (edit("models-block", lambda i: i.update(restrictPublicBuckets=False)), "models-block"),
    "iam-no-wildcard": (
        edit(
            "chat-artifact-read",
            lambda i: i.update(
                policy=json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}]})
            ),
        ),
        "chat-artifact-read",
    ),
}


def failures(report, rule_id: str) -> list[str]:
    return [f.resource for f in report.findings if f.rule == rule_id and f.outcome == "fail"]


def test_the_compliant_stack_passes_every_rule(tmp_path):
    report = check(compliant(), tmp_path)
    assert [f for f in report.findings if f.outcome != "exempt"] == []


def test_every_catalogue_rule_has_a_case():
    catalogue = set(re.findall(r"^\| ([a-z0-9-]+)(?: \(stack\))? \|", (UPSTREAM / "POLICY_RULES.md").read_text(), re.M))
    catalogue -= {"id", "---"}
    ids = {r.id for r in RULES}
    assert catalogue <= ids and ids == set(CASES)
    # rules beyond the catalogue are listed in the README with what they implement
    readme = (UPSTREAM.parent.parent / "README.md").read_text()
    assert [r for r in sorted(ids - catalogue) if f"| `{r}` |" not in readme] == []


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fails_the_broken_variant_and_names_the_resource(rule_id, tmp_path):
    mutate, culprit = CASES[rule_id]
    report = check(mutate(compliant()), tmp_path)
    assert culprit in failures(report, rule_id), [f for f in report.findings if f.rule == rule_id]
    others = {f.rule for f in report.findings if f.outcome == "fail"} - {rule_id}
    # a broken variant breaks its own rule; a few break a related one too, never a random one
    assert len(others) <= 2, others
    assert report.mandatory_failures


def test_unknown_values_are_not_evaluated_never_pass_or_fail(tmp_path):
    resources = edit(D, lambda i: server(i).update(image=UNKNOWN))(compliant())
    report = check(resources, tmp_path)
    outcomes = {(f.rule, f.outcome) for f in report.findings if f.resource == D}
    assert ("k8s-image-digest", "not-evaluated") in outcomes and ("k8s-image-tag", "not-evaluated") in outcomes
    assert not any(o == "fail" for _, o in outcomes)


def test_violations_found_before_an_unknown_still_fail(tmp_path):
    # The pack reports each violation as the rule yields it; meeting an unknown afterwards adds the
    # "can't run during preview" note but does not take the violation back (a mandatory one fails the preview).
    def privileged_then_unknown(inputs):
        server(inputs)["securityContext"]["privileged"] = True
        pod(inputs)["containers"].append(
            {**copy.deepcopy(server(inputs)), "name": "sidecar", "securityContext": UNKNOWN}
        )

    report = check(edit(D, privileged_then_unknown)(compliant()), tmp_path, {"all": "mandatory"})
    outcomes = {f.outcome for f in report.findings if f.rule == "k8s-no-privileged" and f.resource == D}
    assert outcomes == {"fail", "not-evaluated"}
    assert "k8s-no-privileged" in {f.rule for f in report.mandatory_failures if f.resource == D}


ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/m/chat"


@pytest.mark.parametrize(
    "mutability, filters, passes",
    [
        ("IMMUTABLE", None, True),
        ("IMMUTABLE_WITH_EXCLUSION", [{"filter": "buildcache-*", "filterType": "WILDCARD"}], True),
        ("IMMUTABLE_WITH_EXCLUSION", [{"filter": "*", "filterType": "WILDCARD"}], False),  # every tag mutable
        ("IMMUTABLE_WITH_EXCLUSION", [{"filter": "buildcache-*"}, {"filter": "latest"}], False),
        ("MUTABLE_WITH_EXCLUSION", [{"filter": "buildcache-*", "filterType": "WILDCARD"}], False),
        ("MUTABLE", None, False),
    ],
)
def test_only_build_cache_tags_may_move(mutability, filters, passes, tmp_path):
    def mutate(inputs):
        inputs.update(imageTagMutability=mutability)
        inputs.pop("imageTagMutabilityExclusionFilters", None)
        if filters is not None:
            inputs["imageTagMutabilityExclusionFilters"] = filters

    report = check(edit("chat-repo", mutate)(compliant()), tmp_path)
    assert bool(failures(report, "ecr-immutable-tags")) is not passes


def test_the_pack_and_the_program_agree_on_the_cache_tags():
    from modelops_rules.aws import CACHE_TAG_PREFIX as ALLOWED

    from components.model_image import CACHE_TAG_PREFIX

    assert CACHE_TAG_PREFIX == ALLOWED


@pytest.mark.parametrize(
    "image, passes",
    [
        (f"{ECR}@sha256:" + "a" * 64, True),
        (f"{ECR}:1.0@sha256:" + "a" * 64, False),  # Lambda refuses a tag and a digest together
        (f"{ECR}:1.0", False),
        (f"{ECR}@sha256:" + "a" * 12, False),  # a digest prefix pins nothing
        (f"{ECR}@sha256:" + "A" * 64, False),
        (f"{ECR}@sha512:" + "a" * 128, False),
    ],
)
def test_lambda_images_take_exactly_the_form_lambda_accepts(image, passes, tmp_path):
    report = check(edit("chat-fallback-function", lambda i: i.update(imageUri=image))(compliant()), tmp_path)
    assert bool(failures(report, "lambda-image-pinned")) is not passes


@pytest.mark.parametrize(
    "image, passes",
    [
        (f"{ECR}@sha256:" + "a" * 64, True),
        (f"{ECR}:1.0@sha256:" + "a" * 64, True),  # the kubelet pulls by the digest and ignores the tag
        ("registry.local:5000/m/chat@sha256:" + "b" * 64, True),
        (f"{ECR}:1.0", False),
        ("registry.local:5000/m/chat", False),  # a port is not a tag, nor a digest
        (f"{ECR}@sha256:abc", False),
    ],
)
def test_pod_images_must_carry_a_full_digest(image, passes, tmp_path):
    report = check(edit(D, lambda i: server(i).update(image=image))(compliant()), tmp_path)
    assert bool(failures(report, "k8s-image-digest")) is not passes


def test_enforcement_levels_follow_the_cli_semantics(tmp_path):
    broken = CASES["k8s-readonly-rootfs"][0](compliant())
    advisory = check(broken, tmp_path, {"all": "advisory"})
    assert failures(advisory, "k8s-readonly-rootfs") and not advisory.mandatory_failures
    per_rule = check(broken, tmp_path, {"all": "advisory", "k8s-readonly-rootfs": {"enforcementLevel": "mandatory"}})
    assert [f.rule for f in per_rule.mandatory_failures] == ["k8s-readonly-rootfs"]
    shorthand = check(broken, tmp_path, {"all": "mandatory", "k8s-readonly-rootfs": "disabled"})
    assert not failures(shorthand, "k8s-readonly-rootfs")
    default = check(broken, tmp_path, {})
    assert {f.level for f in default.findings} == {"advisory"}  # the pack's default


def test_exemptions_are_config_data_with_a_reason(tmp_path):
    broken = CASES["k8s-sa-token"][0](compliant())
    config = {
        "all": "mandatory",
        "k8s-sa-token": {
            "exemptions": [
                {
                    "kind": "Deployment",
                    "namespace": "models",
                    "name": "chat",
                    "reason": "calls the Kubernetes API to watch its ConfigMap",
                }
            ]
        },
    }
    report = check(broken, tmp_path, config)
    exempt = [f for f in report.findings if f.rule == "k8s-sa-token"]
    assert [f.outcome for f in exempt] == ["exempt"] and "watch its ConfigMap" in exempt[0].message


@pytest.mark.parametrize(
    "entry",
    [
        {"kind": "Deployment", "namespace": "other", "name": "chat"},  # another namespace
        {"kind": "StatefulSet", "namespace": "models", "name": "chat"},  # another kind, same name
        # no namespace: refused for a namespaced kind (tests/modelops_cli/test_policy_config.py)
    ],
)
def test_an_exemption_covers_exactly_the_resource_it_names(entry, tmp_path):
    broken = CASES["k8s-sa-token"][0](compliant())
    config = {"all": "mandatory", "k8s-sa-token": {"exemptions": [{**entry, "reason": "x"}]}}
    assert failures(check(broken, tmp_path, config), "k8s-sa-token")


@pytest.mark.parametrize("name", ["chat*", "ch?t", "[c]hat"])
def test_exemption_patterns_are_refused(name, tmp_path):
    # a pattern would let a new resource (dcgm-exporter-evil) borrow an exemption meant for another
    from modelops_cli.check import PolicyConfigError

    with pytest.raises(PolicyConfigError) as info:
        check(
            compliant(),
            tmp_path,
            {
                "k8s-sa-token": {
                    "exemptions": [{"kind": "Deployment", "namespace": "models", "name": name, "reason": "x"}]
                }
            },
        )
    assert "k8s-sa-token.exemptions.0.name" in "\n".join(info.value.problems)


def test_bad_policy_configs_are_refused(tmp_path):
    from modelops_cli.check import PolicyConfigError

    with pytest.raises(PolicyConfigError) as info:
        check(
            compliant(),
            tmp_path,
            {"all": "strict", "k8s-nope": "advisory", "k8s-sa-token": {"exemptions": [{"name": "x"}]}},
        )
    problems = "\n".join(info.value.problems)
    assert "all: unknown enforcement level 'strict'" in problems
    assert "k8s-nope: no such policy in the pack" in problems
    assert "k8s-sa-token.exemptions.0: 'reason' is a required property" in problems
    assert "k8s-sa-token.exemptions.0: 'kind' is a required property" in problems


def test_the_pack_registers_every_rule_id(monkeypatch):
    """Run policies/__main__.py with PolicyPack replaced by a recorder (the real one blocks forever)."""
    import runpy

    import pulumi_policy

    from modelops_cli.check import POLICIES_DIR

    recorded: dict[str, Any] = {}

    class Recorder:
        def __init__(self, name, enforcement_level, policies, **_):
            recorded.update(name=name, level=enforcement_level, policies=policies)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", Recorder)
    runpy.run_path(str(POLICIES_DIR / "__main__.py"), run_name="__main__")
    ids = [p.name for p in recorded["policies"]]
    assert sorted(ids) == sorted(CASES) and len(ids) == len(set(ids))
    stack_ids = {p.name for p in recorded["policies"] if isinstance(p, pulumi_policy.StackValidationPolicy)}
    assert stack_ids == {
        "k8s-netpol-coverage",
        "k8s-pdb",
        "k8s-replicas-hpa",
        "gpu-hpa-within-pool",
        "gpu-cost-ceiling",
        "s3-model-bucket-private",
        "ecr-lifecycle-policy",
        "k8s-scale-to-zero",
    }
    assert recorded["level"] == pulumi_policy.EnforcementLevel.ADVISORY
    # the CLI shows what each rule implements
    privileged = next(p for p in recorded["policies"] if p.name == "k8s-no-privileged")
    assert privileged.description.endswith("Implements: PSS baseline Privileged Containers.")


def test_pack_validators_report_through_the_cli_callback(monkeypatch):
    """The adapters the pack registers report the same violations the offline check finds."""
    from pulumi_policy.proxy import unknown_checking_proxy

    rule = next(r for r in RULES if r.id == "lambda-url-iam")
    reported = []

    from pulumi_policy import ResourceValidationArgs

    args = ResourceValidationArgs(
        "aws:lambda/functionUrl:FunctionUrl",
        unknown_checking_proxy({"authorizationType": "NONE"}),
        "urn:pulumi:s::p::aws:lambda/functionUrl:FunctionUrl::open-url",
        "open-url",
        None,  # type: ignore[arg-type]  # the resource options play no part in the rule
        None,
        config={},
    )
    adapters.resource_validator(rule)(args, lambda message, urn=None: reported.append(message))
    assert reported == ["authorizationType is NONE; set AWS_IAM (NONE opens the model to anyone)"]


def test_the_pack_project_files_are_a_normal_policy_pack():
    import yaml

    from modelops_cli.check import POLICIES_DIR

    pack = yaml.safe_load((POLICIES_DIR / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["name"] == "python" and pack["version"]
    requirements = (POLICIES_DIR / "requirements.txt").read_text()
    assert "pulumi-policy" in requirements
    # every line is hashed, and pip refuses a local directory in hash-checking mode: the pack imports its rules
    # from its own directory instead (policies/requirements.in)
    assert not [line for line in requirements.splitlines() if line.startswith((".", "/", "-e", "file:"))]
    assert (POLICIES_DIR / "modelops_rules" / "__init__.py").is_file()
    source = "\n".join(p.read_text() for p in (POLICIES_DIR).rglob("*.py"))
    assert "import components" not in source and "from components" not in source
    assert "import offline" not in source and "from offline" not in source


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_policy_configs_agree_with_their_stacks(env):
    """The allowlist, budget and region a policy config enforces are the stack's own."""
    from components.config import parse_stack_config
    from modelops_cli.check import POLICIES_DIR, resolve
    from tests.conftest import stack_raw

    cfg = parse_stack_config(stack_raw(env))
    resolved = resolve(json.loads((POLICIES_DIR / "config" / f"{env}.json").read_text()))
    assert resolved["k8s-allowed-registries"][1]["registries"] == list(cfg.allowed_registries())
    cost = resolved["gpu-cost-ceiling"][1]
    assert (cost["budgetUsd"], cost["region"]) == (cfg.budget.monthly_gpu_usd, cfg.cluster.region)
    assert resolved["lambda-image-pinned"][1]["repositoryPrefixes"] == [
        f"{cfg.cluster.ecr_registry}/{cfg.registry.repository_prefix}/"
    ]
    mandatory_in_prod = {"k8s-readonly-rootfs", "k8s-image-digest", "gpu-cost-ceiling"}
    levels = {r: lvl for r, (lvl, _) in resolved.items()}
    expected = "advisory" if env == "dev" else "mandatory"
    assert {levels[r] for r in mandatory_in_prod} == {expected}
    assert levels["k8s-no-privileged"] == "mandatory"


@pytest.mark.parametrize(
    "name, secret",
    [
        ("DB_PASSWORD", True),
        ("db-password", True),
        ("hfToken", True),
        ("HF_TOKEN", True),
        ("api-key", True),
        ("OPENAI_APIKEY", True),
        ("openaiApiKey", True),
        ("aws.secretAccessKey", True),
        ("Passphrase", True),
        ("GITHUB_AUTH", True),
        ("client_secret", True),
        ("MODEL_VERSION", False),
        ("MONKEY", False),
        ("KEYBOARD_LAYOUT", False),
        ("TOKENIZERS_PARALLELISM", False),
        ("HOME", False),
        ("PASSAGE_LIMIT", False),
    ],
)
def test_secret_env_names_in_any_spelling(name, secret, tmp_path):
    pod_env = edit(D, lambda i: server(i).setdefault("env", []).append({"name": name, "value": "x"}))
    lambda_env = edit("chat-fallback-function", lambda i: i.update(environment={"variables": {name: "x"}}))
    for mutate, culprit in ((pod_env, D), (lambda_env, "chat-fallback-function")):
        report = check(mutate(compliant()), tmp_path)
        assert (culprit in failures(report, "k8s-no-secret-env")) is secret, (name, culprit)


@pytest.mark.parametrize(
    "resource, passes",
    [
        # every way the program can grant a privilege, as a role policy document (string or object)
        (
            (
                "aws:iam/rolePolicy:RolePolicy",
                {"policy": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}},
            ),
            False,
        ),
        (
            (
                "aws:iam/rolePolicy:RolePolicy",
                {
                    "policy": json.dumps(
                        {"Statement": {"Effect": "Allow", "NotAction": "s3:DeleteBucket", "Resource": "*"}}
                    )
                },
            ),
            False,
        ),
        (
            (
                "aws:iam/rolePolicy:RolePolicy",
                {
                    "policy": json.dumps(
                        {
                            "Statement": [
                                {"Effect": "Allow", "Action": "iam:*", "Resource": "arn:aws:iam::123456789012:*"}
                            ]
                        }
                    )
                },
            ),
            False,
        ),
        (
            (
                "aws:iam/rolePolicy:RolePolicy",
                {
                    "policy": json.dumps(
                        {"Statement": [{"Effect": "Allow", "Action": "S3:*", "Resource": "arn:aws:s3:::*"}]}
                    )
                },
            ),
            False,
        ),
        (
            (
                "aws:iam/rolePolicy:RolePolicy",
                {
                    "policy": json.dumps(
                        {
                            "Statement": [
                                {"Effect": "Allow", "Action": "s3:PutObject", "NotResource": "arn:aws:s3:::x/*"}
                            ]
                        }
                    )
                },
            ),
            False,
        ),
        (("aws:iam/rolePolicy:RolePolicy", {"policy": "{not json"}), False),
        (
            (
                "aws:iam/rolePolicy:RolePolicy",
                {
                    "policy": json.dumps(
                        {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::models/chat/*"}]}
                    )
                },
            ),
            False,  # Security Hub IAM.21: a service's every action, whatever the resource
        ),
        (
            (
                "aws:iam/rolePolicy:RolePolicy",
                {"policy": json.dumps({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]})},
            ),
            True,
        ),
        # managed policies: AWS's admin ones are Action '*' by another name, in any partition
        (
            (
                "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                {"role": "r", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
            ),
            False,
        ),
        (
            (
                "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                {"role": "r", "policyArn": "arn:aws-us-gov:iam::aws:policy/PowerUserAccess"},
            ),
            False,
        ),
        (
            (
                "aws:iam/policyAttachment:PolicyAttachment",
                {"roles": ["r"], "policyArn": "arn:aws:iam::aws:policy/IAMFullAccess"},
            ),
            False,
        ),
        (
            (
                "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                {"role": "r", "policyArn": "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"},
            ),
            True,
        ),
        # a role's own properties
        (("aws:iam/role:Role", {"managedPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"]}), False),
        (
            (
                "aws:iam/role:Role",
                {
                    "inlinePolicies": [
                        {
                            "name": "x",
                            "policy": json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
                        }
                    ]
                },
            ),
            False,
        ),
        (
            (
                "aws:iam/role:Role",
                {
                    "inlinePolicies": [
                        {
                            "name": "x",
                            "policy": json.dumps(
                                {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
                            ),
                        }
                    ]
                },
            ),
            False,  # every object of every bucket
        ),
        (
            (
                "aws:iam/role:Role",
                {
                    "inlinePolicies": [
                        {
                            "name": "x",
                            "policy": json.dumps(
                                {"Statement": [{"Effect": "Allow", "Action": "xray:GetSamplingRules", "Resource": "*"}]}
                            ),
                        }
                    ]
                },
            ),
            True,
        ),
    ],
)
def test_iam_privileges_are_judged_however_they_are_granted(resource, passes, tmp_path):
    type_, inputs = resource
    report = check([*compliant(), (type_, "granted", inputs)], tmp_path)
    assert ("granted" not in failures(report, "iam-no-wildcard")) is passes, [f.message for f in report.findings]


@pytest.mark.parametrize(
    "mutate, passes",
    [
        # the Pod Security admission's edge cases, both ways
        (lambda i: pod(i)["securityContext"].update(sysctls=[{"name": "net.ipv4.tcp_syncookies", "value": "1"}]), True),
        (lambda i: pod(i)["securityContext"].update(sysctls=[{"name": "net.core.somaxconn", "value": "1"}]), False),
        (
            lambda i: server(i)["securityContext"].update(
                seLinuxOptions={"type": "container_init_t", "level": "s0:c1"}
            ),
            True,
        ),
        (lambda i: pod(i)["securityContext"].update(seLinuxOptions={"user": "root"}), False),
        (
            lambda i: server(i)["securityContext"].update(
                appArmorProfile={"type": "Localhost", "localhostProfile": "p"}
            ),
            True,
        ),
        (
            lambda i: i["spec"]["template"]
            .setdefault("metadata", {})
            .setdefault("annotations", {})
            .update({"container.apparmor.security.beta.kubernetes.io/server": "unconfined"}),
            False,
        ),
        (lambda i: server(i)["securityContext"].update(procMount="Default"), True),
        (lambda i: pod(i)["volumes"].append({"name": "c", "configMap": {"name": "x"}}), True),
        (lambda i: pod(i)["volumes"].append({"name": "g", "gitRepo": {"repository": "x"}}), False),
        (
            lambda i: pod(i)
            .setdefault("initContainers", [])
            .append(
                {
                    **copy.deepcopy(server(i)),
                    "name": "init",
                    "securityContext": {**server(i)["securityContext"], "windowsOptions": {"hostProcess": True}},
                }
            ),
            False,
        ),
    ],
)
def test_pod_security_edge_cases(mutate, passes, tmp_path):
    rules = {
        "k8s-safe-sysctls",
        "k8s-selinux",
        "k8s-apparmor",
        "k8s-proc-mount",
        "k8s-volume-types",
        "k8s-no-host-process",
    }
    report = check(edit(D, mutate)(compliant()), tmp_path)
    failed = {f.rule for f in report.findings if f.outcome == "fail" and f.resource == D} & rules
    assert (not failed) is passes, failed


def _privileged_pod() -> dict:
    pod_spec_ = copy.deepcopy(compliant()[0][2]["spec"]["template"]["spec"])
    pod_spec_["containers"][0]["securityContext"]["privileged"] = True
    return pod_spec_


@pytest.mark.parametrize(
    "type_, wrap",
    [
        ("kubernetes:core/v1:ReplicationController", lambda s: {"spec": {"template": {"spec": s}}}),
        ("kubernetes:argoproj.io/v1alpha1:Rollout", lambda s: {"spec": {"template": {"spec": s}}}),
        ("kubernetes:apps/v1:DeploymentPatch", lambda s: {"spec": {"template": {"spec": s}}}),
        ("kubernetes:core/v1:PodPatch", lambda s: {"spec": s}),
        ("kubernetes:batch/v1:CronJobPatch", lambda s: {"spec": {"jobTemplate": {"spec": {"template": {"spec": s}}}}}),
        ("kubernetes:example.com/v1:ModelServer", lambda s: {"spec": {"template": {"spec": s}}}),
    ],
)
def test_every_pod_template_the_program_can_emit_is_judged(type_, wrap, tmp_path):
    inputs = {
        "apiVersion": "x/v1",
        "kind": type_.rsplit(":", 1)[-1],
        "metadata": {"name": "w", "namespace": "models"},
        **wrap(_privileged_pod()),
    }
    report = check([*compliant(), (type_, "workload", inputs)], tmp_path)
    assert "workload" in failures(report, "k8s-no-privileged")


def test_service_patches_are_judged_like_services(tmp_path):
    patch = (
        "kubernetes:core/v1:ServicePatch",
        "exposed",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "chat", "namespace": "models"},
            "spec": {"type": "NodePort"},
        },
    )
    assert "exposed" in failures(check([*compliant(), patch], tmp_path), "k8s-service-exposure")


@pytest.mark.parametrize(
    "requirements, admits",
    [
        ([], True),  # no instance requirement: Karpenter may launch any type, GPUs included
        ([{"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["g"]}], True),
        ([{"key": "karpenter.k8s.aws/instance-category", "operator": "NotIn", "values": ["t", "c"]}], True),
        ([{"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0"]}], True),
        ([{"key": "karpenter.k8s.aws/instance-gpu-name", "operator": "In", "values": ["h100"]}], True),
        ([{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["p5en"]}], True),  # uncatalogued
        ([{"key": "karpenter.k8s.aws/instance-family", "operator": "NotIn", "values": ["g5"]}], True),
        ([{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["c7i", "m7i"]}], False),
        ([{"key": "karpenter.k8s.aws/instance-category", "operator": "NotIn", "values": ["g", "p"]}], False),
        ([{"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "DoesNotExist"}], False),
        ([{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m7i.large"]}], False),
    ],
)
def test_any_pool_that_can_launch_gpus_must_be_capped_and_tainted(requirements, admits, tmp_path):
    pool = (
        "kubernetes:karpenter.sh/v1:NodePool",
        "loose",
        {
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": "loose"},
            "spec": {"template": {"spec": {"requirements": requirements}}},
        },
    )
    report = check([*compliant(), pool], tmp_path)
    for rule in ("karpenter-gpu-limit", "karpenter-gpu-taint"):
        assert ("loose" in failures(report, rule)) is admits, rule


def test_a_gpu_family_missing_from_the_price_catalogue_is_a_finding(tmp_path):
    pool = (
        "kubernetes:karpenter.sh/v1:NodePool",
        "new-gpus",
        {
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": "new-gpus"},
            "spec": {
                "template": {
                    "spec": {
                        "requirements": [
                            {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["p5en"]}
                        ],
                        "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
                    }
                },
                "limits": {"nvidia.com/gpu": "8"},
            },
        },
    )
    report = check([*compliant(), pool], tmp_path, {"all": "mandatory", "gpu-cost-ceiling": {"budgetUsd": 100000}})
    assert "new-gpus" in failures(report, "gpu-cost-ceiling")


@pytest.mark.parametrize(
    "toleration, passes",
    [
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, True),
        ({"key": "nvidia.com/gpu", "operator": "Exists"}, True),  # any effect
        ({"operator": "Exists"}, True),  # every taint
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}, True),
        ({"key": "nvidia.com/gpu", "value": "true"}, True),  # Equal is the default
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}, False),
        ({"key": "nvidia.com/gpu", "effect": "NoSchedule"}, False),  # Equal to an empty value
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "nvidia.com/mig", "operator": "Exists"}, False),
        ({"key": "nvidia.com/gpu", "operator": "In", "value": "true"}, False),  # not an operator
    ],
)
def test_a_gpu_pod_toleration_must_match_the_pools_taint(toleration, passes, tmp_path):
    report = check(edit(D, lambda i: pod(i).update(tolerations=[toleration]))(compliant()), tmp_path)
    assert bool(failures(report, "gpu-scheduling")) is not passes


@pytest.mark.parametrize(
    "taint, passes",
    [
        ({"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}, True),
        ({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}, False),  # the pods tolerate "true"
        ({"key": "nvidia.com/gpu", "effect": "NoSchedule"}, False),
        ({"key": "nvidia.com/gpu", "value": "true", "effect": "PreferNoSchedule"}, False),
    ],
)
def test_gpu_pools_carry_exactly_the_taint_gpu_pods_tolerate(taint, passes, tmp_path):
    report = check(
        edit("a10g-node-pool", lambda i: i["spec"]["template"]["spec"].update(taints=[taint]))(compliant()), tmp_path
    )
    assert bool(failures(report, "karpenter-gpu-taint")) is not passes


def test_the_pack_and_the_program_agree_on_the_gpu_taint():
    from modelops_rules.gpu import GPU_TAINT

    from components.common import GPU_TAINT as EMITTED

    assert EMITTED == GPU_TAINT


@pytest.mark.parametrize(
    "resource, mutate, rule",
    [
        (D, lambda i: pod(i).update(containers="[secret]"), "k8s-no-privileged"),
        (D, lambda i: server(i).update(env="[secret]"), "k8s-no-secret-env"),
        (D, lambda i: server(i).update(securityContext="[secret]"), "k8s-no-privilege-escalation"),
        ("chat-artifact-read", lambda i: i.update(policy="[secret]"), "iam-no-wildcard"),
    ],
)
def test_secret_values_are_not_evaluated_offline_never_passed(resource, mutate, rule, tmp_path):
    """The real pack reads secrets in clear; an offline plan holds `[secret]`, which a rule would read as an
    empty list or an empty policy and pass."""
    report = check(edit(resource, mutate)(compliant()), tmp_path)
    outcomes = {(f.outcome, f.message) for f in report.findings if f.rule == rule and f.resource == resource}
    assert any(
        o == "not-evaluated" and "is a secret (the real policy pack reads it in clear)" in m for o, m in outcomes
    ), outcomes
    assert not any(o == "fail" for o, _ in outcomes)


def test_every_rule_cites_what_it_implements_and_the_readme_tables_are_current():
    from modelops_cli.parity import PSS_CONTROLS, parity_markdown

    for rule in RULES:
        assert rule.implements and rule.help_uri.startswith("https://"), rule.id
        assert rule.cited_description.startswith(rule.description + " Implements: "), rule.id
    table = parity_markdown()
    # every PSS control of both profiles has a rule (none says **none**)
    assert "**none**" not in table
    assert sum(len(c) for c in PSS_CONTROLS.values()) == 17
    readme = (UPSTREAM.parent.parent / "README.md").read_text()
    block = readme.split("<!-- parity:begin (generated: ./run modelops parity) -->\n", 1)[1].split(
        "<!-- parity:end -->"
    )[0]
    assert block == table, "README parity tables are stale: ./run modelops parity, and paste"


def test_a_rule_is_declared_with_what_it_implements():
    """Citations are registered with the rule, not looked up by id: a rule that names none is refused."""
    from modelops_rules import framework

    declared = list(framework.RULES)
    with pytest.raises(ValueError, match="x-uncited: a rule names the published controls it implements"):
        framework.resource_rule("x-uncited", "Checks nothing.", implements=())(lambda *_: iter(()))
    assert declared == framework.RULES


def test_sarif_names_each_rules_control_and_fingerprints_findings(tmp_path):
    from modelops_cli.report import format_sarif

    broken = CASES["k8s-no-privileged"][0](compliant())
    report = check(broken, tmp_path)
    sarif = json.loads(format_sarif(report, "plan.json"))
    rules = {r["id"]: r for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    assert (
        rules["k8s-no-privileged"]["helpUri"]
        == "https://kubernetes.io/docs/concepts/security/pod-security-standards/#baseline"
    )
    assert rules["ecr-immutable-tags"]["fullDescription"]["text"].endswith("Implements: AWS FSBP ECR.2.")
    results = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "k8s-no-privileged"]
    again = json.loads(format_sarif(check(broken, tmp_path), "plan.json"))["runs"][0]["results"]
    assert results and [r["partialFingerprints"] for r in results] == [
        r["partialFingerprints"] for r in again if r["ruleId"] == "k8s-no-privileged"
    ]


@pytest.mark.parametrize(
    "budget, min_replicas, passes",
    [
        ({"maxUnavailable": 1}, 2, True),
        ({"minAvailable": "90%"}, 2, False),  # the disruption controller rounds 1.8 up to 2: no disruption allowed
        ({"minAvailable": "50%"}, 2, True),  # 1 must stay: 1 may go
        ({"maxUnavailable": "10%"}, 3, True),  # 0.3 rounds up to 1
        ({"minAvailable": 2}, 2, False),
    ],
)
def test_pdb_percentages_round_as_kubernetes_rounds_them(budget, min_replicas, passes, tmp_path):
    def mutate(resources):
        resources = edit("chat-pdb", lambda i: i.update(spec={"selector": i["spec"]["selector"], **budget}))(resources)
        return edit("chat-hpa", lambda i: i["spec"].update(minReplicas=min_replicas))(resources)

    report = check(mutate(compliant()), tmp_path, {"all": "mandatory", "k8s-replicas-hpa": "disabled"})
    assert bool(failures(report, "k8s-pdb")) is not passes


def test_a_deployment_scaled_to_zero_needs_no_disruption_budget(tmp_path):
    """A canary rolled back with weight 0 runs no pod: the program drops its PDB, and the rule must not ask
    for one (the README's documented roll-back failed prod's policies)."""

    def rolled_back(resources):
        resources = drop("chat-pdb")(drop("chat-hpa")(resources))
        return edit(D, lambda i: i["spec"].update(replicas=0))(resources)

    report = check(rolled_back(compliant()), tmp_path, {"all": "mandatory"})
    assert not failures(report, "k8s-pdb")
    one = edit(D, lambda i: i["spec"].update(replicas=1))(drop("chat-pdb")(drop("chat-hpa")(compliant())))
    assert D in failures(check(one, tmp_path, {"all": "mandatory"}), "k8s-pdb")


@pytest.mark.parametrize(
    "annotations, passes",
    [
        ({"modelops/cold-start-seconds": "1800"}, True),
        ({}, False),  # no stated budget
        ({"modelops/cold-start-seconds": "soon"}, False),
        ({"modelops/cold-start-seconds": "7200"}, False),  # above the stack's 3600 s
    ],
)
def test_scale_to_zero_states_a_cold_start_budget_within_the_stacks(annotations, passes, tmp_path):
    def to_zero(resources):
        resources = [
            (("kubernetes:keda.sh/v1alpha1:ScaledObject" if n == "chat-hpa" else t), n, i) for t, n, i in resources
        ]
        return edit(
            "chat-hpa",
            lambda i: i.update(
                apiVersion="keda.sh/v1alpha1",
                kind="ScaledObject",
                metadata={**i["metadata"], "annotations": annotations},
                spec={
                    "scaleTargetRef": {"name": "chat"},
                    "minReplicaCount": 0,
                    "maxReplicaCount": 4,
                    "triggers": [CRON],
                },
            ),
        )(resources)

    report = check(to_zero(compliant()), tmp_path)
    assert bool(failures(report, "k8s-scale-to-zero")) is not passes
    # zero is the deliberate minimum of a scale-to-zero model, not a replica floor to enforce
    assert not failures(report, "k8s-replicas-hpa")


def test_a_sized_memory_volume_passes(tmp_path):
    sized = edit(
        D, lambda i: pod(i)["volumes"].append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}})
    )
    assert not failures(check(sized(compliant()), tmp_path), "k8s-memory-volume-limit")


CRON: dict[str, Any] = {
    "type": "cron",
    "metadata": {"timezone": "UTC", "start": "0 8 * * *", "end": "0 20 * * *", "desiredReplicas": "1"},
}


def prometheus(query: str) -> dict:
    return {"type": "prometheus", "metadata": {"query": query, "threshold": "5"}}


def scaled_to_zero(triggers: list[dict], kind: str = "Deployment", **spec) -> Callable:
    """The compliant stack with chat's HPA replaced by a ScaledObject that lets it sleep at zero."""

    def mutate(resources):
        resources = [
            (("kubernetes:keda.sh/v1alpha1:ScaledObject" if n == "chat-hpa" else t), n, i) for t, n, i in resources
        ]
        return edit(
            "chat-hpa",
            lambda i: i.update(
                apiVersion="keda.sh/v1alpha1",
                kind="ScaledObject",
                metadata={**i["metadata"], "annotations": {"modelops/cold-start-seconds": "1800"}},
                spec={
                    "scaleTargetRef": {"kind": kind, "name": "chat"},
                    "minReplicaCount": 0,
                    "maxReplicaCount": 4,
                    "triggers": triggers,
                    **spec,
                },
            ),
        )(resources)

    return mutate


@pytest.mark.parametrize(
    "triggers, passes",
    [
        ([prometheus("sum(vllm:num_requests_waiting)")], False),
        ([prometheus('sum(rate(nv_inference_count{model="c"}[2m]))')], False),
        ([prometheus("sum(vllm:num_requests_waiting)"), CRON], True),
        ([prometheus('sum(rate(envoy_rq{route="chat"}[2m]))')], True),
        # PromQL drops `a + b` where `a` is empty: the outside series does not rescue it; `or` does
        ([prometheus("sum(tgi_queue_size) + sum(rate(envoy_rq[2m]))")], False),
        ([prometheus("sum(tgi_queue_size) or sum(rate(envoy_rq[2m]))")], True),
        ([prometheus("sum(vllm:num_requests_waiting) + 0 * sum(rate(envoy_rq[2m]))")], False),
        ([prometheus("sum(rate(envoy_rq[2m])) * 0 + sum(vllm:num_requests_waiting)")], False),
        ([prometheus('sum({__name__="vllm:num_requests_waiting"})')], False),
        ([prometheus('sum({__name__=~"tgi_.*"})')], False),
        ([prometheus("vector(1) or sum(vllm:num_requests_waiting)")], False),  # a constant follows no traffic
        # the model's own Service (found by its selector): any metric its pods export, http_* included
        ([prometheus('sum(rate(http_requests_total{service="chat"}[2m]))')], False),
        ([prometheus('sum(rate(http_requests_total{job="chat"}[2m]))')], False),
        ([prometheus('sum(rate(http_requests_total{service="gateway"}[2m]))')], True),
        # rewrites an independent review found: NaN spreads (scalar() of an empty vector is NaN,
        # prometheus.io/docs/prometheus/latest/querying/functions/#scalar), clamp_max at 0 never passes, and the
        # model's pods spelled by regular expression or by another exporter's labels are still its own
        *(
            ([prometheus(query)], False)
            for query in (
                'sum(rate(gateway_requests_total[2m])) * scalar(sum(rate(http_requests_total{service="chat"}[2m])))',
                "sum(rate(gateway_requests_total[2m])) * NaN",
                "clamp_max(sum(rate(gateway_requests_total[2m])), 0)",
                'sum(rate(http_requests_total{service=~"(chat)"}[2m]))',
                'sum(rate(http_requests_total{service=~"cha[t]"}[2m]))',
                'sum(kube_pod_status_ready{pod=~"chat.+"})',
                'avg(DCGM_FI_DEV_GPU_UTIL{exported_pod=~"chat-.*"})',
                'sum({__name__=~"(vllm):num_requests_waiting"})',
                'sum({__name__=~"vll[m]:num_requests_waiting"})',
            )
        ),
        ([prometheus('sum({__name__=~"vllm:num_requests_waiting|gateway_requests_total"})')], True),
        ([prometheus("sum(rate(gateway_requests_total[2m])) * scalar(sum(rate(gateway_requests_total[2m])))")], True),
        ([{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}}], False),
        ([prometheus("sum(rate(envoy_rq[2m])")], False),  # not PromQL: KEDA's query fails, nothing wakes
        # hours that never begin (February 30th), or hold no replica, wake nothing either
        (
            [
                prometheus("sum(vllm:num_requests_waiting)"),
                {**CRON, "metadata": {**CRON["metadata"], "start": "0 8 30 2 *"}},
            ],
            False,
        ),
        (
            [
                prometheus("sum(vllm:num_requests_waiting)"),
                {**CRON, "metadata": {**CRON["metadata"], "desiredReplicas": "0"}},
            ],
            False,
        ),
        # spelled otherwise, the same (an independent review): KEDA reads desiredReplicas with strconv.Atoi, and
        # robfig/cron keeps `*/1` in the weekday as `*`, so the date of April 31st must exist, and never does
        *(
            (
                [
                    prometheus("sum(vllm:num_requests_waiting)"),
                    {**CRON, "metadata": {**CRON["metadata"], **change}},
                ],
                False,
            )
            for change in (
                {"desiredReplicas": "00"},
                {"desiredReplicas": "+0"},
                {"desiredReplicas": "one"},
                {"start": "0 9 31 4 */1"},
                {"start": "0 9 31 4 ?/1"},
            )
        ),
        (
            [
                prometheus("sum(vllm:num_requests_waiting)"),
                {**CRON, "metadata": {**CRON["metadata"], "start": "0 9 31 4 */2"}},
            ],
            True,
        ),
        ([], False),
    ],
)
def test_scale_to_zero_must_be_able_to_wake(triggers, passes, tmp_path):
    """At zero replicas nothing exports the model's own series: a ScaledObject that wakes on nothing else stays
    at zero (kedacore/keda#4883; llm-d/llm-d#2492: an empty result reads as 0). The query is read as PromQL
    evaluates it (prometheus.io/docs/prometheus/latest/querying/operators/: vector matching drops elements
    without a partner, `or` keeps either side)."""
    found = failures(check(scaled_to_zero(triggers)(compliant()), tmp_path), "k8s-scale-to-zero")
    assert bool(found) is not passes


def test_the_models_own_service_is_found_by_its_selector(tmp_path):
    """`service=` names the Service whose endpoints were scraped: whatever its name, a Service selecting the
    target's pods is the model's own."""
    renamed = edit("chat-svc", lambda i: i.update(metadata={**i["metadata"], "name": "chat-api"}))
    query = [prometheus('sum(rate(http_requests_total{service="chat-api"}[2m]))')]
    found = failures(check(scaled_to_zero(query)(renamed(compliant())), tmp_path), "k8s-scale-to-zero")
    assert found == ["chat-hpa"]


def test_keda_idle_replicas_and_statefulsets_scale_to_zero_too(tmp_path):
    """`idleReplicaCount: 0` puts a ScaledObject with `minReplicaCount: 1` to sleep whenever its triggers are
    inactive (keda.sh/docs/latest/reference/scaledobject-spec/#idlereplicacount), and a StatefulSet sleeps as a
    Deployment does: both are held to the same wake and cold-start checks."""
    asleep = [prometheus("sum(vllm:num_requests_waiting)")]
    idle = scaled_to_zero(asleep, minReplicaCount=1, idleReplicaCount=0)
    assert failures(check(idle(compliant()), tmp_path), "k8s-scale-to-zero") == ["chat-hpa"]
    awake = scaled_to_zero(asleep, minReplicaCount=1, idleReplicaCount=1)
    assert not failures(check(awake(compliant()), tmp_path), "k8s-scale-to-zero")
    stateful = scaled_to_zero(asleep, kind="StatefulSet")
    assert failures(check(stateful(compliant()), tmp_path), "k8s-scale-to-zero") == ["chat-hpa"]


def test_the_pack_reads_promql_as_the_schema_does():
    """The pack runs without the components (its own environment): its PromQL and cron readers are copies of
    the components' (byte for byte), and its server-only prefixes are the runtime presets'."""
    from modelops_rules.k8s_stack import SERVER_METRIC_PREFIXES

    from components.config import SERVER_METRIC_PREFIXES as SCHEMA_PREFIXES

    root = Path(__file__).resolve().parents[2]
    for shared in ("promql.py", "cron.py"):
        assert (root / "policies/modelops_rules" / shared).read_bytes() == (root / "components" / shared).read_bytes()
    assert set(SERVER_METRIC_PREFIXES) == set(SCHEMA_PREFIXES)


def _paused_at(count: str) -> Callable[[list], list]:
    """chat's autoscaler as a KEDA ScaledObject paused at `count` (`autoscaling.keda.sh/paused-replicas`)."""

    def mutate(resources):
        scaled = [("kubernetes:keda.sh/v1alpha1:ScaledObject" if n == "chat-hpa" else t, n, i) for t, n, i in resources]
        return edit(
            "chat-hpa",
            lambda i: i.update(
                kind="ScaledObject",
                apiVersion="keda.sh/v1alpha1",
                metadata={**i["metadata"], "annotations": {"autoscaling.keda.sh/paused-replicas": count}},
                spec={
                    "scaleTargetRef": i["spec"]["scaleTargetRef"],
                    "minReplicaCount": max(1, int(count)),
                    "maxReplicaCount": max(1, int(count)),
                    "triggers": [{"type": "prometheus", "metadata": {"query": "sum(q)", "threshold": "1"}}],
                },
            ),
        )(scaled)

    return mutate


def test_a_scaled_object_paused_at_a_count_is_a_fixed_count_not_an_autoscaler(tmp_path):
    """KEDA holds a paused target at its `paused-replicas` count and deletes its HPA
    (https://keda.sh/docs/2.21/concepts/scaling-deployments/#pause-autoscaling): the program holds a KEDA-scaled
    model's canary that way, so its replicas keep one owner. k8s-replicas-hpa does not judge it as an autoscaler
    (min = max is the point); k8s-pdb counts its pods: none at 0 (a rolled-back canary), a PDB at 2."""
    held = check(_paused_at("2")(compliant()), tmp_path, {"all": "mandatory"})
    assert not failures(held, "k8s-replicas-hpa") and not failures(held, "k8s-pdb")
    unprotected = check(drop("chat-pdb")(_paused_at("2")(compliant())), tmp_path, {"all": "mandatory"})
    assert D in failures(unprotected, "k8s-pdb")
    rolled_back = check(drop("chat-pdb")(_paused_at("0")(compliant())), tmp_path, {"all": "mandatory"})
    assert not failures(rolled_back, "k8s-pdb")


@pytest.mark.parametrize(
    "change, passes",
    [
        (lambda spec: None, True),
        (lambda spec: spec.update(policyTypes=["Egress"], egress=[]), False),
        (lambda spec: spec.update(ingress=[{}]), False),
        (lambda spec: spec.update(ingress=[{"ports": [{"port": 8000}]}]), False),
        (lambda spec: spec.pop("policyTypes", None), True),  # absent, Ingress is always among them
    ],
)
def test_a_network_policy_that_restricts_no_caller_covers_nothing(change, passes, tmp_path):
    """A NetworkPolicy selecting the pods but with Egress alone, or an ingress rule without `from` (every source),
    restricts no caller (https://kubernetes.io/docs/concepts/services-networking/network-policies/: "If no
    policyTypes are specified on a NetworkPolicy then by default Ingress will always be set"; a rule's empty
    `from` matches all sources). Found by an independent review."""
    resources = edit("chat-netpol", lambda i: change(i["spec"]))(compliant())
    assert ("chat" not in " ".join(failures(check(resources, tmp_path), "k8s-netpol-coverage"))) is passes


def _isvc(labels: dict) -> tuple[str, str, dict]:
    return (
        "kubernetes:serving.kserve.io/v1beta1:InferenceService",
        "isvc",
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "isvc", "namespace": "models"},
            "spec": {"predictor": {"labels": labels, "containers": [container()]}},
        },
    )


@pytest.mark.parametrize("covered", [False, True])
def test_an_operators_pods_need_a_network_policy_too(covered, tmp_path):
    """k8s-netpol-coverage reads every pod template the pack's discovery finds (rules/pods.py), not only Kubernetes'
    own workloads: an InferenceService's predictor pods carry its component labels. Found by an independent review."""
    policy = (
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        "isvc-netpol",
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "isvc", "namespace": "models"},
            "spec": {"podSelector": {"matchLabels": {"app": "isvc"}}, "policyTypes": ["Ingress"]},
        },
    )
    extra = [_isvc({"app": "isvc"})] + ([policy] if covered else [])
    found = failures(check(add(*extra)(compliant()), tmp_path), "k8s-netpol-coverage")
    assert ("isvc" not in found) is covered, found
