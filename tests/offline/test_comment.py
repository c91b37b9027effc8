"""`modelops comment`: the pull-request comment per stack."""

from __future__ import annotations

import json

import pytest
import yaml

from offline.cli import main
from offline.common import plan_stack
from tests.conftest import ROOT, reference_plan

pytestmark = pytest.mark.slow  # plans several stacks or starts servers


def write_plans(tmp_path, mutate):
    data = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    mutate(data["config"])
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(data))
    base, head = tmp_path / "base.json", tmp_path / "head.json"
    base.write_text(json.dumps(reference_plan("prod")))
    head.write_text(json.dumps(plan_stack("prod", stack_file=str(stack_file))))
    return base, head


def comment(tmp_path, capsys, base, head, *extra):
    code = main(["comment", "--stack", "prod", "--base-plan", str(base), "--head-plan", str(head), *extra])
    return code, capsys.readouterr().out


def test_a_replica_change_is_exactly_that_update_with_an_unchanged_ceiling(tmp_path, capsys):
    def more_chat(config):
        config["modelops:models"]["chat"]["replicas"]["max"] = 8

    base, head = write_plans(tmp_path, more_chat)
    code, text = comment(tmp_path, capsys, base, head)
    assert code == 0
    assert text.startswith("<!-- modelops-comment stack=prod -->\n### modelops · stack `prod`")
    assert "**Changes**: 0 to create, 1 to update, 0 to replace, 0 to delete" in text
    assert (
        "| ~ | `chat-scaler` | `kubernetes:keda.sh/v1alpha1:ScaledObject` | `spec.maxReplicaCount`: `6` → `8` |" in text
    )
    assert "**GPU cost ceiling**: $22,271/month (unchanged) ✅ within the budget of $25,000" in text
    assert "✅ no mandatory failures" in text


def test_a_gpu_limit_raise_shows_the_new_ceiling_and_the_budget_verdict(tmp_path, capsys):
    def bigger_pool(config):
        config["modelops:gpuPools"]["a10g"]["gpuLimit"] = 24

    base, head = write_plans(tmp_path, bigger_pool)
    code, text = comment(tmp_path, capsys, base, head)
    # 8 more GPUs at $1.418/GPU-hour: +$8,281 -> $30,553, over the $25,000 budget (mandatory in prod)
    assert "**GPU cost ceiling**: $22,271 → $30,553/month (+$8,281) ❌ OVER the budget of $25,000" in text
    assert "`gpu-cost-ceiling` | mandatory | fail" in text
    assert code == 1


def test_the_comment_is_stable(tmp_path, capsys):
    base, head = write_plans(tmp_path, lambda config: None)
    first = comment(tmp_path, capsys, base, head)[1]
    second = comment(tmp_path, capsys, base, head)[1]
    assert first == second and "**Changes**: none" in first


def test_base_revision_is_planned_from_git_history(capsys):
    code = main(["comment", "--stack", "dev", "--base", "HEAD"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out.startswith("<!-- modelops-comment stack=dev -->")


def test_an_unknown_base_revision_is_a_usage_error(capsys):
    assert main(["comment", "--stack", "dev", "--base", "no-such-ref-anywhere"]) == 2
    assert "cannot check out no-such-ref-anywhere" in capsys.readouterr().err
