"""One command-line shape (issue #25): `-s/--stack` with one default rule on every verb that reads a stack,
`--format` and `--out` on every verb that writes a report, the old `--json PATH` kept as an alias that means
exactly `--format json --out PATH`, one module per verb, and argparse's errors as exit 2."""

from __future__ import annotations

import argparse
import json
from types import ModuleType

import pytest

from modelops_cli.cli import VERBS, build_parser, main
from modelops_cli.plan import dumps
from modelops_cli.verbs.flags import DEFAULT_STACK, stack_of, stack_unless_plan
from tests.conftest import reference_plan

READS_A_STACK = {"plan", "check", "cost", "comment", "render", "policy-config", "preflight", "smoke", "gate", "weights"}
WRITES_A_REPORT = {"plan", "schema", "check", "diff", "cost", "comment", "parity", "preflight", "smoke", "gate"}
JSON_ALIAS = {"plan", "preflight"}
REQUIRED = {"diff": ["a.json"], "render": ["--out", "manifests"]}
"""What a verb cannot be parsed without."""


def _sub(verb: str) -> argparse.ArgumentParser:
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[verb]


def _has(verb: str, flag: str) -> bool:
    return any(flag in a.option_strings for a in _sub(verb)._actions)


def _option(verb: str, flag: str) -> argparse.Action:
    return next(a for a in _sub(verb)._actions if flag in a.option_strings)


def _choices(verb: str) -> list[str]:
    return list(_option(verb, "--format").choices or ())


def _parsed(verb: str, *argv: str) -> argparse.Namespace:
    return build_parser().parse_args([verb, *REQUIRED.get(verb, []), *argv])


def test_the_verbs_are_the_ones_this_test_knows():
    """A new verb is sorted into the sets above (does it read a stack, does it write a report?)."""
    assert set(VERBS) == READS_A_STACK | WRITES_A_REPORT
    stacks = {verb for verb in VERBS if _has(verb, "--stack")}
    reports = {verb for verb in VERBS if _has(verb, "--format") and _has(verb, "--out")}
    aliases = {verb for verb in VERBS if _has(verb, "--json")}
    assert (stacks, reports, aliases) == (READS_A_STACK, WRITES_A_REPORT, JSON_ALIAS)


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_one_module_per_verb_with_add_arguments_and_run(verb):
    module = VERBS[verb]
    assert isinstance(module, ModuleType)
    assert module.__name__ == f"modelops_cli.verbs.{verb.replace('-', '_')}"
    assert callable(module.add_arguments) and callable(module.run) and module.HELP
    assert _sub(verb).get_default("handler") is module.run


@pytest.mark.parametrize("verb", sorted(READS_A_STACK))
def test_every_verb_that_reads_a_stack_takes_s_and_stack_alike(verb):
    assert _option(verb, "--stack").option_strings == ["-s", "--stack"]
    assert _parsed(verb, "-s", "staging").stack == "staging" == _parsed(verb, "--stack", "staging").stack
    assert _parsed(verb, "--stack=prod").stack == "prod"


@pytest.mark.parametrize("verb", sorted(READS_A_STACK))
def test_one_default_rule_dev_unless_a_plan_file_stands_in(verb):
    """Unnamed, the stack is dev; a verb given a plan file instead reads no stack (unless one is named)."""
    assert stack_of(_parsed(verb)) == DEFAULT_STACK == "dev"
    if _has(verb, "--plan"):
        assert stack_unless_plan(_parsed(verb)) == "dev"
        assert stack_unless_plan(_parsed(verb, "--plan", "p.json")) is None
        assert stack_unless_plan(_parsed(verb, "--plan", "p.json", "-s", "prod")) == "prod"
    assert "default: dev" in (_option(verb, "--stack").help or "")


@pytest.mark.parametrize("verb", sorted(WRITES_A_REPORT))
def test_every_report_writer_takes_format_and_out(verb):
    choices = _choices(verb)
    assert choices and _option(verb, "--format").default == choices[0]
    assert _option(verb, "--out").default == "-"
    parsed = _parsed(verb, "--format", choices[-1], "--out", "report.txt")
    assert (parsed.format, parsed.out) == (choices[-1], "report.txt")


@pytest.mark.parametrize("verb", sorted(JSON_ALIAS))
def test_the_json_alias_sets_exactly_format_json_and_out(verb, tmp_path):
    target = str(tmp_path / "r.json")
    by_alias, spelled = vars(_parsed(verb, "--json", target)), vars(_parsed(verb, "--format", "json", "--out", target))
    assert by_alias.pop("json_alias") is None and spelled.pop("json_alias") is None
    assert by_alias == spelled and by_alias["format"] == "json"
    assert vars(_parsed(verb, "--json", "-"))["out"] == "-"
    assert "deprecated alias of --format json --out" in (_option(verb, "--json").help or "")


def test_plan_json_alias_and_new_spelling_give_the_same_bytes_and_the_same_stdout(tmp_path, capsys):
    """The plan written and what stdout shows (the tree, data for a reader; nothing about the alias)."""
    assert main(["plan", "--stack", "dev", "--json", str(tmp_path / "old.json")]) == 0
    old_out = capsys.readouterr()
    assert main(["plan", "-s", "dev", "--format", "json", "--out", str(tmp_path / "new.json")]) == 0
    new_out = capsys.readouterr()
    assert (tmp_path / "old.json").read_bytes() == (tmp_path / "new.json").read_bytes()
    assert (tmp_path / "new.json").read_text() == dumps(reference_plan("dev"))
    assert old_out == new_out and "modelops-dev" in new_out.out and "json" not in new_out.out.lower()


def test_plan_json_to_stdout_keeps_stdout_json_and_the_tree_on_stderr(capsys):
    assert main(["plan", "--format", "json"]) == 0
    shown = capsys.readouterr()
    assert json.loads(shown.out) == reference_plan("dev")
    assert "modelops-dev" in shown.err
    assert main(["plan", "--json", "-"]) == 0
    assert capsys.readouterr() == shown


def test_plan_tree_to_a_file_is_what_stdout_shows(tmp_path, capsys):
    assert main(["plan"]) == 0
    printed = capsys.readouterr().out
    assert main(["plan", "--out", str(tmp_path / "tree.txt")]) == 0
    assert capsys.readouterr().out == ""
    assert (tmp_path / "tree.txt").read_text() == printed


def test_schema_and_parity_write_to_out_what_they_print(tmp_path, capsys):
    for verb in ("schema", "parity"):
        assert main([verb]) == 0
        printed = capsys.readouterr().out
        assert main([verb, "--format", _choices(verb)[0], "--out", str(tmp_path / verb)]) == 0
        assert (tmp_path / verb).read_text() == printed and capsys.readouterr().out == ""


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_argparse_errors_exit_2(verb, capsys):
    assert main([verb, *REQUIRED.get(verb, []), "--no-such-flag"]) == 2
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
    if verb in WRITES_A_REPORT:
        assert main([verb, *REQUIRED.get(verb, []), "--format", "no-such-format"]) == 2
        assert "invalid choice: 'no-such-format'" in capsys.readouterr().err
    if verb in READS_A_STACK:
        assert main([verb, *REQUIRED.get(verb, []), "-s", "../etc"]) == 2
        assert "not a stack name" in capsys.readouterr().err
        assert main([verb, *REQUIRED.get(verb, []), "-s"]) == 2
        assert "expected one argument" in capsys.readouterr().err
