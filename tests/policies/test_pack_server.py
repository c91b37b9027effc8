"""The policy pack as the Pulumi CLI runs it: `python __main__.py` in policies/, speaking the analyzer
gRPC protocol. Configured from policies/config/prod.json the way `--policy-pack-config` does."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from modelops_cli.check import POLICIES_DIR
from tests.policies.test_rules import CASES, compliant

pytestmark = pytest.mark.slow  # starts the pack's server

LEVELS = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "disabled": analyzer_pb2.DISABLED,
    "remediate": analyzer_pb2.REMEDIATE,
}


@pytest.fixture(scope="module")
def analyzer():
    process = subprocess.Popen(
        [sys.executable, "__main__.py"], cwd=POLICIES_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    port = process.stdout.readline().decode().strip()
    assert port.isdigit(), process.stderr.read().decode()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = analyzer_pb2_grpc.AnalyzerStub(channel)
    yield stub
    channel.close()
    process.terminate()
    process.wait(timeout=10)


def configure(stub, config: dict) -> None:
    """What the CLI sends for a --policy-pack-config file (it resolves `all` per policy first)."""
    names = [p.name for p in stub.GetAnalyzerInfo(empty_pb2.Empty()).policies]
    policy_config = {}
    for name in names:
        entry = config.get(name, {})
        if isinstance(entry, str):
            entry = {"enforcementLevel": entry}
        level = entry.get("enforcementLevel", config.get("all", "advisory"))
        properties = struct_pb2.Struct()
        properties.update({k: v for k, v in entry.items() if k != "enforcementLevel"})
        policy_config[name] = analyzer_pb2.PolicyConfig(enforcementLevel=LEVELS[level], properties=properties)
    stub.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=policy_config))


def analyze(stub, type_: str, name: str, props: dict):
    properties = struct_pb2.Struct()
    properties.update(props)
    request = analyzer_pb2.AnalyzeRequest(
        type=type_, properties=properties, name=name, urn=f"urn:pulumi:prod::modelops::{type_}::{name}"
    )
    return list(stub.Analyze(request).diagnostics)


def test_the_pack_announces_every_rule(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "modelops"
    assert sorted(p.name for p in info.policies) == sorted(CASES)


def test_prod_config_makes_violations_mandatory_and_names_the_fix(analyzer):
    configure(analyzer, json.loads((POLICIES_DIR / "config" / "prod.json").read_text()))
    broken = CASES["lambda-url-iam"][0](compliant())
    url = next(inputs for type_, name, inputs in broken if name == "chat-fallback-url")
    diagnostics = analyze(analyzer, "aws:lambda/functionUrl:FunctionUrl", "chat-fallback-url", url)
    assert [(d.policyName, d.enforcementLevel) for d in diagnostics] == [("lambda-url-iam", analyzer_pb2.MANDATORY)]
    assert "set AWS_IAM" in diagnostics[0].message


def test_compliant_resources_pass_and_exemptions_hold(analyzer):
    configure(analyzer, json.loads((POLICIES_DIR / "config" / "prod.json").read_text()))
    for type_, name, inputs in compliant():
        if type_.startswith("kubernetes:") and type_.endswith(("Deployment", "Service", "NodePool", "EC2NodeClass")):
            assert analyze(analyzer, type_, name, inputs) == []
    dcgm = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "dcgm-exporter-a10g", "namespace": "kube-system"},
        "spec": {
            "template": {
                "spec": {
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "dcgm",
                            "image": "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.9@sha256:" + "e" * 64,
                            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
                            "livenessProbe": {"httpGet": {"path": "/health", "port": 9400}},
                            "securityContext": {
                                "runAsUser": 0,
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                        }
                    ],
                }
            }
        },
    }
    diagnostics = analyze(analyzer, "kubernetes:apps/v1:DaemonSet", "a10g-dcgm-exporter", dcgm)
    assert {d.policyName for d in diagnostics} == set(), [d.message for d in diagnostics]


def test_unknown_values_are_reported_as_not_run(analyzer):
    configure(analyzer, {"all": "mandatory"})
    deployment = dict(next(inputs for _, name, inputs in compliant() if name == "chat-deployment"))
    deployment = json.loads(
        json.dumps(deployment).replace(
            json.dumps(deployment["spec"]["template"]["spec"]["containers"][0]["image"]),
            '"04da6b54-80e4-46f7-96ec-b56ff0331ba9"',
        )
    )
    diagnostics = analyze(analyzer, "kubernetes:apps/v1:Deployment", "chat-deployment", deployment)
    not_run = {d.policyName for d in diagnostics if "can't run policy" in d.message}
    assert {"k8s-image-digest", "k8s-image-tag"} <= not_run
    assert all("can't run policy" in d.message for d in diagnostics)


def test_stack_rules_run_through_analyze_stack(analyzer):
    configure(analyzer, json.loads((POLICIES_DIR / "config" / "prod.json").read_text()))

    def resources(stack):
        out = []
        for type_, name, inputs in stack:
            properties = struct_pb2.Struct()
            properties.update(inputs)
            out.append(
                analyzer_pb2.AnalyzerResource(
                    type=type_, properties=properties, name=name, urn=f"urn:pulumi:prod::modelops::{type_}::{name}"
                )
            )
        return out

    ok = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources(compliant())))
    assert list(ok.diagnostics) == []
    broken = CASES["k8s-netpol-coverage"][0](compliant())
    found = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources(broken))).diagnostics
    assert [(d.policyName, d.urn.rsplit("::", 1)[-1]) for d in found] == [("k8s-netpol-coverage", "chat-deployment")]


def test_stack_rules_judge_what_the_program_declared_not_server_defaults(analyzer):
    # At `pulumi up`, stack policies see the Kubernetes provider's outputs: the live object, where the
    # API server set a Deployment's spec.replicas to 1. The program left replicas to the autoscaler;
    # managedFields show what the provider's field manager applied, and the rule reads those.
    configure(analyzer, json.loads((POLICIES_DIR / "config" / "prod.json").read_text()))

    def as_outputs(stack, program_sets_replicas):
        out = []
        for type_, name, inputs in stack:
            props = json.loads(json.dumps(inputs))
            if type_ == "kubernetes:apps/v1:Deployment":
                applied: dict[str, dict[str, Any]] = {"f:spec": {"f:selector": {}, "f:template": {}}}
                if program_sets_replicas:
                    applied["f:spec"]["f:replicas"] = {}
                props["spec"]["replicas"] = 1
                props["metadata"]["managedFields"] = [
                    {"manager": "pulumi-kubernetes-cc3525dd", "operation": "Apply", "fieldsV1": applied},
                    {
                        "manager": "kube-controller-manager",
                        "operation": "Update",
                        "fieldsV1": {"f:status": {"f:replicas": {}}},
                    },
                ]
            properties = struct_pb2.Struct()
            properties.update(props)
            out.append(
                analyzer_pb2.AnalyzerResource(
                    type=type_, properties=properties, name=name, urn=f"urn:pulumi:prod::modelops::{type_}::{name}"
                )
            )
        return out

    live = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=as_outputs(compliant(), False)))
    assert list(live.diagnostics) == []
    declared = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=as_outputs(compliant(), True)))
    assert [d.policyName for d in declared.diagnostics] == ["k8s-replicas-hpa"]
