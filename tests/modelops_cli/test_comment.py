"""`modelops comment`: the pull-request comment per stack."""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from modelops_cli.cli import main
from modelops_cli.common import plan_stack
from tests.conftest import ROOT, reference_plan, step_named

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


# ---- a comment whose values are hostile (issue #26, class 1) ----

FAKE_VERDICT = "x\n\n### ✅ modelops: no mandatory failures\n\n<!-- the real verdict is below, hidden"


def outside_code_spans(line: str) -> str:
    """The line with its code spans removed, as CommonMark reads them: a backtick run opens a span that the
    next run of the same length closes; an unmatched run is literal text."""
    out, i = [], 0
    while i < len(line):
        if line[i] != "`":
            out.append(line[i])
            i += 1
            continue
        ticks = re.match(r"`+", line[i:])
        assert ticks is not None
        run = len(ticks.group(0))
        closing = re.compile(rf"(?<!`)`{{{run}}}(?!`)")
        end = closing.search(line, i + run)
        if end is None:
            out.append(line[i : i + run])
            i += run
        else:
            i = end.end()
    return "".join(out)


def hostile_head_plan(tmp_path):
    """prod's plan with a privileged container (a mandatory failure) whose name, and a resource whose name and
    input, carry a fake heading, a fake verdict and an opened HTML comment."""
    plan = reference_plan("prod")
    deployment = step_named(plan, "chat-deployment")["newState"]["inputs"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["name"] = FAKE_VERDICT
    container.setdefault("securityContext", {})["privileged"] = True
    config_map = copy.deepcopy(step_named(plan, "chat-deployment"))
    config_map["urn"] = config_map["urn"].rsplit("::", 1)[0] + "::" + FAKE_VERDICT.replace("\n", "\r\n")
    config_map["newState"]["inputs"]["metadata"]["annotations"] = {"note": "`` | </details> " + FAKE_VERDICT}
    plan["steps"].append(config_map)
    path = tmp_path / "head.json"
    path.write_text(json.dumps(plan))
    base = tmp_path / "base.json"
    base.write_text(json.dumps(reference_plan("prod")))
    return base, path


def test_values_cannot_fake_a_verdict_or_hide_the_real_one(tmp_path, capsys):
    base, head = hostile_head_plan(tmp_path)
    code, text = comment(tmp_path, capsys, base, head)
    lines = text.splitlines()
    assert code == 1
    assert lines[0] == "<!-- modelops-comment stack=prod -->"
    assert lines[1] == "### modelops · stack `prod`"
    assert re.match(r"\*\*Verdict\*\*: ❌ blocked: [1-9]\d* mandatory policy failure\(s\)", lines[3])
    # the heading is the only one; the marker the only HTML; no value starts a line
    assert [line for line in lines if line.lstrip().startswith(("#", ">", "<", "-", "+", "=", "`"))] == lines[:2]
    prose = [outside_code_spans(line) for line in lines[1:]]
    assert not [line for line in prose if "<" in line.replace("<details><summary>", "").replace("</details>", "")]
    assert [line for line in lines if line.startswith("**Verdict**")] == [lines[3]]
    # each table row keeps its columns
    for line in lines:
        if line.startswith("| "):
            cells = [m.start() for m in re.finditer(r"(?<!\\)\|", line)]
            assert len(cells) in (5, 6), line


def test_the_marker_and_heading_take_only_a_stack_name(capsys, tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps(reference_plan("prod")))
    for stack in ("prod -->\n### ✅", "-x", "a b", "..", "x" * 101):
        code = main(["comment", f"--stack={stack}", "--base-plan", str(base), "--head-plan", str(base)])
        err = capsys.readouterr().err
        assert code == 2 and "not a stack name" in err and "\n###" not in err
    assert main(["comment", "--stack=", "--base-plan", str(base), "--head-plan", str(base)]) == 2


@pytest.mark.parametrize("ref", ["--output=/tmp/pwned", "-h", "--upload-pack=touch /tmp/x", ""])
def test_option_like_base_revisions_never_reach_git(ref, capsys, tmp_path, monkeypatch):
    """`git worktree add … <ref>` would read `--output=…` as an option; refused before git runs."""
    import modelops_cli.comment as comment_module

    ran = []
    monkeypatch.setattr(comment_module.subprocess, "run", lambda *a, **k: ran.append(a))
    code = main(["comment", "--stack", "dev", f"--base={ref}", "--head-plan", str(tmp_path / "none.json")])
    err = capsys.readouterr().err
    assert code == 2 and ran == []
    assert "--base" in err or "give --base" in err


def test_a_base_revision_is_resolved_to_a_commit_before_checkout(capsys):
    """`--end-of-options` keeps any value an operand of rev-parse; only the commit it names reaches worktree."""
    assert main(["comment", "--stack", "dev", "--base", "HEAD~0"]) == 0
    assert capsys.readouterr().out.startswith("<!-- modelops-comment stack=dev -->")


def test_a_base_revision_is_planned_as_its_own_cli_spells_it(tmp_path):
    """A base from before the CLI package was named modelops_cli has it as `offline`, which knows only `--json`."""
    from modelops_cli.comment import _plan_command_at

    assert _plan_command_at(tmp_path) == ["offline", "plan", "--json", "-"]
    (tmp_path / "modelops_cli").mkdir()
    assert _plan_command_at(tmp_path) == ["modelops_cli", "plan", "--format", "json", "--out", "-"]
