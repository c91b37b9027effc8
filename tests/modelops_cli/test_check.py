"""`modelops check`: the reference stacks pass, broken plans exit 1 naming rule and resource, every
format is well formed (SARIF against the OASIS 2.1.0 schema), and real CLI plans are read."""

from __future__ import annotations

import json

import jsonschema
import pytest

from modelops_cli.check import run_checks
from modelops_cli.cli import main
from modelops_cli.plan import from_json
from tests.conftest import CLI_FIXTURES, ROOT, UPSTREAM, reference_plan
from tests.policies.test_rules import CASES, compliant, preview_json


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_reference_stacks_have_no_mandatory_failure(stack, capsys):
    assert main(["check", "--stack", stack]) == 0
    out = capsys.readouterr().out
    assert "0 mandatory failure(s), 0 advisory" in out


def test_a_plan_with_the_classic_mistakes_exits_1_naming_rule_and_resource(tmp_path, capsys):
    resources = compliant()
    for rule in ("k8s-no-privileged", "k8s-image-tag", "gpu-scheduling", "karpenter-gpu-limit", "lambda-url-iam"):
        resources = CASES[rule][0](resources)
    plan = tmp_path / "bad.json"
    plan.write_text(json.dumps(preview_json(resources)))
    code = main(["check", "--plan", str(plan), "--policy-config", "policies/config/prod.json", "--format", "json"])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    failed = {(f["rule"], f["urn"].rsplit("::", 1)[-1]) for f in report["findings"] if f["outcome"] == "fail"}
    assert {
        ("k8s-no-privileged", "chat-deployment"),
        ("k8s-image-tag", "chat-deployment"),
        ("gpu-scheduling", "chat-deployment"),
        ("karpenter-gpu-limit", "a10g-node-pool"),
        ("lambda-url-iam", "chat-fallback-url"),
    } <= failed


def test_table_output_names_rule_and_resource(tmp_path, capsys):
    plan = tmp_path / "bad.json"
    plan.write_text(json.dumps(preview_json(CASES["lambda-url-iam"][0](compliant()))))
    assert main(["check", "--plan", str(plan), "--policy-config", "policies/config/dev.json"]) == 1
    out = capsys.readouterr().out
    assert "lambda-url-iam" in out and "chat-fallback-url" in out and "mandatory" in out


def test_sarif_is_valid_sarif_2_1_0(tmp_path, capsys):
    plan = tmp_path / "bad.json"
    plan.write_text(json.dumps(preview_json(CASES["k8s-no-privileged"][0](compliant()))))
    out = tmp_path / "report.sarif"
    assert (
        main(
            [
                "check",
                "--plan",
                str(plan),
                "--policy-config",
                "policies/config/prod.json",
                "--format",
                "sarif",
                "--out",
                str(out),
            ]
        )
        == 1
    )
    sarif = json.loads(out.read_text())
    schema = json.loads((UPSTREAM / "schemas" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.validate(sarif, schema)
    results = sarif["runs"][0]["results"]
    assert any(r["ruleId"] == "k8s-no-privileged" and r["level"] == "error" for r in results)


def test_sarif_of_prod_carries_not_evaluated_and_exempt_results(tmp_path):
    out = tmp_path / "prod.sarif"
    assert main(["check", "--stack", "prod", "--format", "sarif", "--out", str(out)]) == 0
    sarif = json.loads(out.read_text())
    jsonschema.validate(sarif, json.loads((UPSTREAM / "schemas" / "sarif-schema-2.1.0.json").read_text()))
    results = sarif["runs"][0]["results"]
    assert any(r["kind"] == "review" and r["level"] == "none" for r in results)
    assert any("suppressions" in r for r in results)


def test_markdown_summarises(capsys):
    assert main(["check", "--stack", "prod", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("**Policies**: ✅ no mandatory failures")
    assert "| `k8s-image-digest` | mandatory | not-evaluated |" in out


# the sample program attaches AWS managed policies that grant whole services (iam-no-wildcard, issue #26 class 5)
WIDE_ATTACHMENTS = {
    ("iam-no-wildcard", f"docsHandler-{suffix}")
    for suffix in ("4aaabb8e", "74d12784", "7cd09230", "a1de8170", "b5aeb6b6", "d32a66fa", "e1a3786d", "019020e7")
}


@pytest.mark.parametrize(
    "fixture, failing",
    [
        (
            "sample-preview-creates.json",
            {
                ("lambda-concurrency-cap", "docsHandler"),
                ("lambda-tracing", "docsHandler"),
                ("s3-model-bucket-private", "docs"),
            }
            | WIDE_ATTACHMENTS,
        ),
        (
            "sample-preview-update.json",
            {
                ("lambda-concurrency-cap", "docsHandler"),
                ("lambda-tracing", "docsHandler"),
                ("s3-model-bucket-private", "docs"),
            }
            | WIDE_ATTACHMENTS,
        ),
        ("sample-preview-deletes.json", {("s3-model-bucket-private", "docs")}),
    ],
)
def test_real_cli_plans_are_checked(fixture, failing, capsys):
    code = main(
        [
            "check",
            "--plan",
            str(CLI_FIXTURES / fixture),
            "--policy-config",
            "policies/config/prod.json",
            "--format",
            "json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert {(f["rule"], f["urn"].rsplit("::", 1)[-1]) for f in report["findings"] if f["outcome"] == "fail"} == failing
    if fixture == "sample-preview-creates.json":
        # the permission's sourceArn is unknown in the real preview: not evaluated, not failed
        assert any(
            f["rule"] == "lambda-permission-scoped" and f["outcome"] == "not-evaluated" for f in report["findings"]
        )
    if fixture == "sample-preview-deletes.json":
        assert report["summary"]["resources"] == 2  # deleted resources are not checked


def test_usage_errors_exit_2(tmp_path, capsys):
    assert (
        main(["check", "--plan", str(tmp_path / "missing.json"), "--policy-config", "policies/config/prod.json"]) == 2
    )
    assert main(["check", "--plan", str(CLI_FIXTURES / "sample-preview-creates.json")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"all": "strict"}')
    assert (
        main(["check", "--plan", str(CLI_FIXTURES / "sample-preview-creates.json"), "--policy-config", str(bad)]) == 2
    )
    err = capsys.readouterr().err
    assert "no such file" in err and "needs --policy-config" in err and "unknown enforcement level 'strict'" in err


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_policy_configs_carry_what_their_stack_file_decides(stack, capsys):
    # Registries, repository prefix, budget and region live in the stack file; the policy config the CLI
    # reads repeats them, written by `modelops policy-config --write`: this keeps them from drifting.
    assert main(["policy-config", "--stack", stack]) == 0
    assert capsys.readouterr().out == (UPSTREAM.parent.parent / "policies" / "config" / f"{stack}.json").read_text()


def test_policy_config_follows_a_changed_stack_file(tmp_path, monkeypatch, capsys):
    from components.config import parse_stack_config
    from modelops_cli.policy_config import derived_settings
    from tests.conftest import stack_raw

    raw = stack_raw("prod")
    raw["budget"]["monthlyGpuUsd"] = 30000
    raw["registry"]["allowedRegistries"] = ["public.ecr.aws/neuron/", "public.ecr.aws/aws-cli/", "nvcr.io/nvidia/"]
    derived = derived_settings(parse_stack_config(raw))
    assert derived["gpu-cost-ceiling"] == {"budgetUsd": 30000, "region": "us-east-1"}
    assert derived["k8s-allowed-registries"]["registries"] == [
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/",
        "public.ecr.aws/neuron/",
        "public.ecr.aws/aws-cli/",
        "nvcr.io/nvidia/",
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"{}", "not a `pulumi preview --json` document (no steps list)"),
        (b'{"all": "mandatory"}', "not a `pulumi preview --json` document"),  # a policy config
        (b'{"steps": "x"}', "no steps list"),
        (b'{"steps": [{"urn": 3}]}', "steps[0] has no urn"),
        (b'{"steps": [{"urn": "urn:pulumi:s::p::t::n", "op": 7}]}', "steps[0].op is not a string"),
        (b'{"steps": [{"urn": "urn:pulumi:s::p::t::n", "newState": []}]}', "steps[0].newState is not a resource state"),
        (
            b'{"steps": [], "diagnostics": [{"severity": "error", "message": "error: preview failed: boom"}]}',
            "the preview failed, so it plans nothing: error: preview failed: boom",
        ),
        (b"\xff\xfe{}", "not UTF-8 text"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ],
)
def test_files_that_are_not_plans_are_usage_errors_never_a_pass(content, message, tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_bytes(content)
    for argv in (
        ["check", "--plan", str(plan), "--policy-config", "policies/config/prod.json"],
        ["diff", str(plan)],
        ["cost", "--plan", str(plan)],
        ["render", "--plan", str(plan), "--out", str(tmp_path / "out")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)


def test_a_directory_or_three_plans_are_usage_errors(tmp_path, capsys):
    assert main(["check", "--plan", str(tmp_path), "--policy-config", "policies/config/prod.json"]) == 2
    assert "is a directory" in capsys.readouterr().err
    plan = CLI_FIXTURES / "sample-preview-creates.json"
    assert main(["diff", str(plan), str(plan), str(plan)]) == 2
    assert "diff takes one plan or two (BASE HEAD), not 3" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"\xff", b'"all"', b"[" * 100000])
def test_broken_policy_configs_are_usage_errors(content, tmp_path, capsys):
    config = tmp_path / "policy.json"
    config.write_bytes(content)
    assert (
        main(["check", "--plan", str(CLI_FIXTURES / "sample-preview-creates.json"), "--policy-config", str(config)])
        == 2
    )
    assert "Traceback" not in capsys.readouterr().err


def test_the_documented_canary_roll_back_passes_prod_policies(tmp_path, capsys):
    """`canary.weight: 0` (README: roll back) scales the canary to zero and drops its PDB; k8s-pdb asked for
    one anyway and failed prod. The real-engine tier found it; offline now agrees it passes."""
    import yaml

    data = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    data["config"]["modelops:models"]["chat"]["canary"]["weight"] = 0
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(data))
    plan = tmp_path / "plan.json"
    assert main(["plan", "--stack", "prod", "--stack-file", str(path), "--json", str(plan)]) == 0
    capsys.readouterr()
    assert (
        main(["check", "--plan", str(plan), "--policy-config", "policies/config/prod.json"]) == 0
    ), capsys.readouterr().out


def _plan_of_copies(copies: int):
    """prod's models' Kubernetes objects `copies` times over, each copy its own models (names, labels); the
    objects of no model (the GPU pools', the namespace) once."""
    base = reference_plan("prod")
    models = ("chat", "vision", "summarizer", "sentiment")
    kube = [
        s
        for s in base["steps"]
        if s["newState"]["type"].startswith("kubernetes:") and any(m in json.dumps(s) for m in models)
    ]
    steps = [s for s in base["steps"] if s not in kube]
    for i in range(copies):
        text = json.dumps(kube)
        for model in models:
            text = text.replace(model, f"{model}{i}")
        steps += json.loads(text)
    return from_json({"steps": steps, "config": {}})


def test_check_work_grows_linearly_with_workloads(monkeypatch):
    """Stack rules matched every workload against every PodDisruptionBudget, NetworkPolicy and Service, and
    re-derived the autoscalers once per workload: 1,000 workloads took 71 s where 100 took 2 (issue #26,
    class 10). Counted in selector matches and namespace reads, which a quadratic rule multiplies by 16 when
    the stack grows 4 times; wall time on shared cores is too noisy to assert on."""
    from modelops_rules import k8s_stack

    config = json.loads((ROOT / "policies" / "config" / "prod.json").read_text())
    calls = {"n": 0}

    def counted(function):
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(k8s_stack, "selector_matches", counted(k8s_stack.selector_matches))
    monkeypatch.setattr(k8s_stack, "object_namespace", counted(k8s_stack.object_namespace))
    work = {}
    for copies in (10, 40):
        plan = _plan_of_copies(copies)
        calls["n"] = 0
        report = run_checks(plan, config)
        work[copies] = calls["n"]
        assert report.resources > 40 * copies
    assert work[40] <= 4.5 * work[10], work
