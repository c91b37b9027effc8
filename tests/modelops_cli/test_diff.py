"""`modelops diff` on hand-made plans and on the real CLI's previews."""

from __future__ import annotations

import json

import pytest

from modelops_cli.cli import main
from modelops_cli.diff import diff_plans, diff_steps, format_markdown
from modelops_cli.plan import from_json, load_plan
from tests.conftest import CLI_FIXTURES, reference_plan


def plan_with(mutate):
    plan = reference_plan("prod")
    for step in plan["steps"]:
        mutate(step)
    return from_json(plan, "head")


def test_identical_plans_have_no_changes():
    assert diff_plans(from_json(reference_plan("prod")), from_json(reference_plan("prod"))).empty


def test_an_update_lists_the_changed_paths_old_and_new():
    def bump(step):
        if step["urn"].endswith("::chat-scaler"):  # vLLM scales on its queue (KEDA)
            step["newState"]["inputs"]["spec"]["maxReplicaCount"] = 8

    d = diff_plans(from_json(reference_plan("prod")), plan_with(bump))
    assert [(r.op, r.name) for r in d.resources] == [("update", "chat-scaler")]
    change = d.resources[0].changes[0]
    assert (change.path, change.old, change.new) == ("spec.maxReplicaCount", 6, 8)


def test_renaming_a_kubernetes_object_is_a_replace():
    def rename(step):
        if step["urn"].endswith("::chat-svc"):
            step["newState"]["inputs"]["metadata"]["name"] = "chat-v2"

    d = diff_plans(from_json(reference_plan("prod")), plan_with(rename))
    assert [(r.op, r.name, r.replace_reasons) for r in d.resources] == [("replace", "chat-svc", ("metadata.name",))]


def test_creates_and_deletes():
    base = from_json(reference_plan("dev"))
    head = from_json(reference_plan("prod"))
    d = diff_plans(base, head)
    counts = d.counts()
    assert counts["create"] > 50 and counts["delete"] > 5  # different stack names: nothing shared


def test_secrets_are_masked(capsys, tmp_path):
    base = reference_plan("dev")
    head = json.loads(json.dumps(base))
    for plan, password in ((base, "old-password"), (head, "new-password")):
        for step in plan["steps"]:
            if step["urn"].endswith("::sentiment-image-1.2.0"):
                step["newState"]["inputs"]["registries"][0]["password"] = password
                step["newState"]["inputs"]["registries"][0]["address"] = password + ".example"
    paths = []
    for name, plan in (("base", base), ("head", head)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(plan))
    assert main(["diff", *map(str, paths), "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert "new-password.example" in out  # the diff is real...
    assert '"new-password"' not in out and '"old-password"' not in out  # ...and the secret is not in it


def test_real_cli_update_matches_the_cli_own_verdict():
    base, head = (
        load_plan(CLI_FIXTURES / "sample-preview-creates.json"),
        load_plan(CLI_FIXTURES / "sample-preview-update.json"),
    )
    d = diff_plans(base, head)
    assert [(r.op, r.name) for r in d.resources] == [("update", "docsHandler")]
    assert [c.path for c in d.resources[0].changes] == ["code.hash"]
    own = diff_steps(head)
    assert [(r.op, r.type) for r in own.resources] == [("update", "aws:lambda/function:Function")]


def test_real_cli_deletes():
    d = diff_steps(load_plan(CLI_FIXTURES / "sample-preview-deletes.json"))
    assert d.counts() == {"create": 0, "update": 0, "replace": 0, "delete": 14}
    between = diff_plans(
        load_plan(CLI_FIXTURES / "sample-preview-update.json"), load_plan(CLI_FIXTURES / "sample-preview-deletes.json")
    )
    assert between.counts()["delete"] == 14


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_cli_formats(fmt, capsys):
    args = [
        "diff",
        str(CLI_FIXTURES / "sample-preview-creates.json"),
        str(CLI_FIXTURES / "sample-preview-update.json"),
        "--format",
        fmt,
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "docsHandler" in out
    if fmt == "json":
        assert json.loads(out)["summary"] == {"create": 0, "update": 1, "replace": 0, "delete": 0}


def test_long_markdown_diffs_are_collapsed():
    d = diff_plans(from_json(reference_plan("dev")), from_json(reference_plan("prod")))
    assert "<details>" in format_markdown(d)


@pytest.mark.parametrize("change", ["delete", "replace"])
def test_deleting_or_replacing_a_protected_resource_is_refused_as_the_engine_refuses_it(change, tmp_path, capsys):
    # prod protects its ECR repositories; a real preview fails on their delete or replace, so the diff
    # (and the PR comment) must not read as a clean change.
    base = reference_plan("prod")
    head = reference_plan("prod")
    if change == "delete":
        head["steps"] = [s for s in head["steps"] if not s["urn"].endswith("::chat-repo")]
    else:
        next(s for s in head["steps"] if s["urn"].endswith("::chat-repo"))["newState"]["inputs"]["name"] = "x/chat"
    d = diff_plans(from_json(base), from_json(head))
    assert [r.name for r in d.refused] == ["chat-repo"]
    assert "❌ `chat-repo` is protected" in format_markdown(d)
    paths = []
    for name, plan in (("base", base), ("head", head)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(plan))
    assert main(["diff", *map(str, paths)]) == 1
    assert f"error: chat-repo is protected: `pulumi preview` and `up` refuse to {change} it" in capsys.readouterr().out


def test_unprotected_deletes_are_not_refused():
    head = reference_plan("prod")
    head["steps"] = [s for s in head["steps"] if not s["urn"].endswith("::chat-scaler")]
    assert diff_plans(from_json(reference_plan("prod")), from_json(head)).refused == []


def test_a_long_value_shows_the_part_that_changed():
    """A digest bump showed as two identical truncated strings; each side now shows where they differ."""
    from modelops_cli.diff import _pair

    repo = "123456789012.dkr.ecr.us-east-1.amazonaws.com/modelops/prod/chat@sha256:"
    old, new = repo + "a" * 60 + "1111", repo + "a" * 60 + "2222"
    for limit in (40, 80):
        shown_old, shown_new = _pair(old, new, limit)
        assert shown_old != shown_new and "1111" in shown_old and "2222" in shown_new
        assert len(shown_old) <= limit and len(shown_new) <= limit
        assert shown_old.startswith("…")  # the shared beginning is cut, and said to be
    # values that fit, or a value appearing or going, show as they are
    assert _pair("a", "b") == ("a", "b")
    assert _pair(None, old, 40) == ("null", old[:39] + "…")
