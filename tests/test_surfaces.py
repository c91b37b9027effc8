"""Every OUTPUT surface of modelops, and the hostile classes tried against each (issue #26: "one place in the
tests that lists every input and output surface, with the hostile classes tried against each; a new feature
adds its rows"). The input side is tests/test_input_surfaces.py.

A row names a surface (what reaches a terminal, a PR, a file or a tool), how to produce it from a hostile plan,
what reads it (its format), and the classes tried here or, for those tried against a live counterpart (a hostile
API server, a hostile gateway), the tests that do. The classes:

- injection: a plan whose resource name and input carry a newline, a fake `### ✅` verdict, an opened HTML
  comment, ESC/OSC sequences, a bidi override, backticks and pipes. The output must stay inert for its reader
  (`terminal`: no control or format character; `markdown`: no line a value starts, no HTML outside code spans,
  tables keep their columns; `json`/`sarif`: parses; `yaml`: each manifest one document whose comments stay
  comments).
- secrets: an input that is a secret envelope (as `pulumi preview --json` writes one) never shows its text.
- tracebacks: a plan nested deeper than any engine writes is exit 2 with a message, never a traceback.
- confinement: a symbolic link at the output is refused and nothing is written through it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from modelops_cli.cli import main
from modelops_cli.plan import SECRET_SIG, SIG_KEY
from tests.conftest import ROOT, reference_plan

HOSTILE = (
    "x\n### ✅ all policies pass\n<!-- hidden \x1b[2J\x1b]8;;https://evil.example\x07link \u202eevil ``|`` </details>"
)
PLAINTEXT = "hunter2-plaintext-secret"
POLICIES = str(ROOT / "policies" / "config" / "prod.json")


@dataclass(frozen=True)
class Surface:
    name: str
    argv: Callable[[Path, Path, Path], list[str]] | None
    """(base plan, head plan, output path) -> the command; None: produced by `produce` instead."""
    format: str
    """terminal, markdown, json, yaml-dir"""
    classes: tuple[str, ...]
    writes_file: bool = False
    produce: Callable[[Path], str] | None = None
    elsewhere: dict[str, str] = field(default_factory=dict)
    """class -> the tests that try it against a live counterpart."""


def _tree(head: Path) -> str:
    from modelops_cli.offline.tree import render_tree

    return render_tree(json.loads(head.read_text()))


SURFACES = [
    Surface("plan tree (terminal)", None, "terminal", ("injection", "secrets"), produce=_tree),
    Surface(
        "check table",
        lambda b, h, o: ["check", "--plan", str(h), "--policy-config", POLICIES, "--out", str(o)],
        "terminal",
        ("injection", "secrets", "tracebacks", "confinement"),
        writes_file=True,
    ),
    Surface(
        "check markdown",
        lambda b, h, o: [
            "check",
            "--plan",
            str(h),
            "--policy-config",
            POLICIES,
            "--format",
            "markdown",
            "--out",
            str(o),
        ],
        "markdown",
        ("injection", "secrets", "tracebacks", "confinement"),
        writes_file=True,
    ),
    Surface(
        "check SARIF",
        lambda b, h, o: ["check", "--plan", str(h), "--policy-config", POLICIES, "--format", "sarif", "--out", str(o)],
        "json",
        ("injection", "secrets", "tracebacks", "confinement"),
        writes_file=True,
    ),
    Surface(
        "check JSON",
        lambda b, h, o: ["check", "--plan", str(h), "--policy-config", POLICIES, "--format", "json", "--out", str(o)],
        "json",
        ("injection", "secrets", "tracebacks", "confinement"),
        writes_file=True,
    ),
    Surface(
        "diff text",
        lambda b, h, o: ["diff", str(b), str(h), "--out", str(o)],
        "terminal",
        ("injection", "secrets", "tracebacks", "confinement"),
        writes_file=True,
    ),
    Surface(
        "diff markdown",
        lambda b, h, o: ["diff", str(b), str(h), "--format", "markdown", "--out", str(o)],
        "markdown",
        ("injection", "secrets", "tracebacks", "confinement"),
        writes_file=True,
    ),
    Surface(
        "diff JSON",
        lambda b, h, o: ["diff", str(b), str(h), "--format", "json", "--out", str(o)],
        "json",
        ("injection", "secrets", "tracebacks", "confinement"),
        writes_file=True,
    ),
    Surface(
        "PR comment",
        lambda b, h, o: [
            "comment",
            "--stack",
            "prod",
            "--base-plan",
            str(b),
            "--head-plan",
            str(h),
            "--policy-config",
            POLICIES,
            "--out",
            str(o),
        ],
        "markdown",
        ("injection", "secrets", "tracebacks", "confinement"),
        writes_file=True,
        elsewhere={"injection": "tests/modelops_cli/test_comment.py (fake verdicts, marker, --base)"},
    ),
    Surface(
        "cost text",
        lambda b, h, o: ["cost", "--plan", str(h), "--out", str(o)],
        "terminal",
        ("injection", "secrets", "tracebacks", "confinement"),
        writes_file=True,
    ),
    Surface(
        "cost JSON",
        lambda b, h, o: ["cost", "--plan", str(h), "--format", "json", "--out", str(o)],
        "json",
        ("injection", "secrets", "tracebacks", "confinement"),
        writes_file=True,
    ),
    Surface(
        "render manifests",
        lambda b, h, o: ["render", "--plan", str(h), "--out", str(o)],
        "yaml-dir",
        ("injection", "secrets", "tracebacks", "confinement"),
        writes_file=True,
        elsewhere={"confinement": "tests/modelops_cli/test_render.py (symlinks under --out, long names, empty --out)"},
    ),
    Surface(
        "messages (stderr)",
        None,
        "terminal",
        ("injection", "secrets"),
        produce=lambda head: _stderr_of_a_bad_stack(head),
        elsewhere={"secrets": "tests/modelops_cli/test_secrets.py (secrets refused by path, never quoted)"},
    ),
    Surface(
        "smoke (terminal)",
        None,
        "terminal",
        (),
        elsewhere={
            "injection": "tests/modelops_cli/test_smoke.py (escape sequences in bodies, redirects, HTML pages)",
            "tracebacks": "tests/modelops_cli/test_smoke.py (trickling answers cut at the stated timeout)",
            "secrets": "tests/modelops_cli/test_smoke.py (credentials in --base-url refused, never echoed)",
        },
    ),
    Surface(
        "gate (terminal, SARIF)",
        None,
        "terminal",
        (),
        elsewhere={
            "injection": "tests/modelops_cli/test_gate.py (escape sequences and bidi in a finding's name: terminal and SARIF)",
            "tracebacks": "tests/modelops_cli/test_gate.py (a bad modelops:security key or --wait: exit 2 naming it)",
        },
    ),
    Surface(
        "preflight --kubeconfig (terminal, JSON)",
        None,
        "terminal",
        (),
        elsewhere={
            "injection": "tests/modelops_cli/test_cluster_preflight.py, tests/modelops_cli/test_kubeapi_hostile.py "
            "(hostile API servers: escape sequences, HTML, endless and trickling bodies)",
            "secrets": "tests/modelops_cli/test_kubeconfig.py (tokens and credentials in server URLs never echoed)",
        },
    ),
]


def _stderr_of_a_bad_stack(head: Path) -> str:
    """A stack file whose model name and value carry the hostile text: the problems printed about it."""
    import contextlib
    import io

    data = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    data["config"]["modelops:models"][HOSTILE] = {"version": HOSTILE}
    data["config"]["modelops:cluster"]["ingressCidrs"] = [HOSTILE]
    path = head.parent / "Pulumi.hostile.yaml"
    path.write_text(yaml.safe_dump(data))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["plan", "--stack-file", str(path)]) == 2
    return err.getvalue()


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> tuple[Path, Path]:
    """prod's plan, and prod's plan with hostile names and values and a secret envelope in an input."""
    directory = tmp_path_factory.mktemp("surfaces")
    head = reference_plan("prod")
    step = next(s for s in head["steps"] if s["urn"].endswith("::chat-deployment"))
    step["urn"] = step["urn"].rsplit("::", 1)[0] + "::" + HOSTILE
    inputs = step["newState"]["inputs"]
    inputs["metadata"]["annotations"] = {"note": HOSTILE, "token": {SIG_KEY: SECRET_SIG, "value": PLAINTEXT}}
    inputs["spec"]["template"]["spec"]["containers"][0]["name"] = HOSTILE
    inputs["spec"]["template"]["spec"]["containers"][0].setdefault("securityContext", {})["privileged"] = True
    pool = next(s for s in head["steps"] if (s["newState"].get("inputs") or {}).get("kind") == "NodePool")
    pool["newState"]["inputs"]["metadata"]["name"] = "a10g" + HOSTILE
    base_path, head_path = directory / "base.json", directory / "head.json"
    base_path.write_text(json.dumps(reference_plan("prod")))
    head_path.write_text(json.dumps(head))
    return base_path, head_path


# ---- what each reader must see ----

_NOT_SHOWN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def assert_terminal_inert(text: str) -> None:
    for char in text:
        if char != "\n":
            assert unicodedata.category(char) not in _NOT_SHOWN, (repr(char), text[:200])
    assert not [line for line in text.splitlines() if line.lstrip().startswith("### ✅")]


def _outside_code_spans(line: str) -> str:
    from tests.modelops_cli.test_comment import outside_code_spans

    return outside_code_spans(line)


def assert_markdown_inert(text: str) -> None:
    assert_terminal_inert(text)
    lines = text.splitlines()
    headings = [line for line in lines if line.lstrip().startswith("#")]
    assert headings in ([], [lines[1]]), headings  # only the comment's own heading
    for line in lines:
        prose = _outside_code_spans(line)
        if line.startswith("<!-- modelops-comment stack="):
            continue
        assert "<!--" not in prose and "</details><" not in prose.replace("</details>", "", 1)
        if line.startswith("| "):
            assert len(re.findall(r"(?<!\\)\|", line)) in (5, 6), line


def assert_readable(surface: Surface, output: Path | str) -> str:
    if surface.format == "yaml-dir":
        assert isinstance(output, Path)
        texts = []
        for path in sorted(output.rglob("*.yaml")):
            text = path.read_text()
            assert len(list(yaml.safe_load_all(text))) == 1
            assert_terminal_inert(text)
            texts.append(text)
        return "".join(texts)
    text = output.read_text() if isinstance(output, Path) else output
    if surface.format == "json":
        json.loads(text)
    elif surface.format == "markdown":
        assert_markdown_inert(text)
    else:
        assert_terminal_inert(text)
    return text


def run(surface: Surface, base: Path, head: Path, out: Path) -> tuple[int, str]:
    if surface.produce is not None:
        return 0, surface.produce(head)
    assert surface.argv is not None
    code = main(surface.argv(base, head, out))
    return code, assert_readable(surface, out if surface.format == "yaml-dir" else out.read_text())


def rows(hostile_class: str) -> list:
    return [pytest.param(s, id=s.name) for s in SURFACES if hostile_class in s.classes]


@pytest.mark.slow
@pytest.mark.parametrize("surface", rows("injection"))
def test_hostile_values_stay_inert(surface, plans, tmp_path):
    base, head = plans
    code, text = run(surface, base, head, tmp_path / "out")
    assert code in (0, 1, 2)
    if surface.produce is not None:
        assert_readable(surface, text)


@pytest.mark.slow
@pytest.mark.parametrize("surface", rows("secrets"))
def test_secrets_never_show(surface, plans, tmp_path, capsys):
    base, head = plans
    _, text = run(surface, base, head, tmp_path / "out")
    captured = capsys.readouterr()
    assert PLAINTEXT not in text + captured.out + captured.err


@pytest.mark.parametrize("surface", rows("tracebacks"))
def test_plans_nested_too_deep_are_exit_2(surface, tmp_path, capsys):
    deep: dict = {}
    cursor = deep
    for _ in range(500):
        cursor["a"] = {}
        cursor = cursor["a"]
    plan = {"steps": [{"op": "create", "urn": "urn:pulumi:s::p::t::n", "newState": {"type": "t", "inputs": deep}}]}
    path = tmp_path / "deep.json"
    path.write_text(json.dumps(plan))
    assert surface.argv is not None
    assert main(surface.argv(path, path, tmp_path / "out")) == 2
    assert "nested more than 100 levels" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("surface", rows("confinement"))
def test_a_symbolic_link_at_the_output_is_refused(surface, plans, tmp_path, capsys):
    base, head = plans
    victim = tmp_path / "victim"
    victim.mkdir() if surface.format == "yaml-dir" else victim.write_text("keep")
    link = tmp_path / "out"
    link.symlink_to(victim)
    assert surface.argv is not None
    assert main(surface.argv(base, head, link)) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert (list(victim.iterdir()) == []) if victim.is_dir() else victim.read_text() == "keep"


PRODUCED = {
    "plan tree": "plan tree (terminal)",
    "plan json": "a plan is the engine's own JSON: tests/modelops_cli/test_plan.py (secrets never in clear)",
    "schema json": "no outside value: made from components/config.py alone",
    "parity markdown": "no outside value: the policy pack's own rules and configs",
    "smoke text": "smoke (terminal)",
    "gate table": "gate (terminal, SARIF)",
    "gate json": "gate (terminal, SARIF)",
    "gate sarif": "gate (terminal, SARIF)",
    "preflight text": "preflight --kubeconfig (terminal, JSON)",
    "preflight json": "preflight --kubeconfig (terminal, JSON)",
}
"""Reports with no command row above: the row that produces them another way, or why no outside value reaches them."""


def _report_formats() -> dict[str, tuple[str, ...]]:
    """Every verb that writes a report, and its formats (the first the default), from the command line's parser."""
    import argparse

    from modelops_cli.cli import build_parser

    verbs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    return {
        verb: tuple(action.choices or ())
        for verb, sub in verbs.items()
        for action in sub._actions
        if "--format" in action.option_strings
    }


def test_every_report_a_verb_writes_has_a_row():
    """A new verb or format adds its row (or, in PRODUCED, the row that covers it or why no outside value can
    reach it): the list of reports comes from the parser, not from this file."""
    formats = _report_formats()
    covered = set()
    for surface in SURFACES:
        if surface.argv is None:
            continue
        argv = surface.argv(Path("base.json"), Path("head.json"), Path("out"))
        if argv[0] not in formats:
            continue  # render writes manifests, not a report
        chosen = argv[argv.index("--format") + 1] if "--format" in argv else formats[argv[0]][0]
        covered.add(f"{argv[0]} {chosen.lower()}")
    reports = {f"{verb} {choice}" for verb, choices in formats.items() for choice in choices}
    names = {s.name for s in SURFACES}
    assert reports - covered - set(PRODUCED) == set()
    assert {row for row in PRODUCED.values() if ":" not in row} <= names  # a reason says why after a colon


def test_every_surface_has_a_class_tried_here_or_elsewhere():
    """A new output surface adds its row; a row with nothing tried is a gap, not a pass."""
    known = {"injection", "secrets", "tracebacks", "confinement"}
    for surface in SURFACES:
        assert set(surface.classes) | set(surface.elsewhere), surface.name
        assert set(surface.classes) <= known and set(surface.elsewhere) <= known, surface.name
        for reference in surface.elsewhere.values():
            assert (ROOT / reference.split(" ", 1)[0].rstrip(",")).exists(), reference


def test_policy_config_write_never_goes_through_a_symbolic_link(tmp_path, monkeypatch, capsys):
    """`policy-config --write` rewrote a symlinked config through the link (issue #26, class 7): the writer every
    verb shares refuses it, and the file the link points at is untouched."""
    from modelops_cli import check

    config_dir = tmp_path / "policies" / "config"
    config_dir.mkdir(parents=True)
    target = tmp_path / "elsewhere.json"
    target.write_text((ROOT / "policies" / "config" / "dev.json").read_text())
    before = target.read_text()
    (config_dir / "dev.json").symlink_to(target)
    monkeypatch.setattr(check, "POLICIES_DIR", tmp_path / "policies")
    assert main(["policy-config", "--stack", "dev", "--write"]) == 2
    assert "symbolic link" in capsys.readouterr().err and target.read_text() == before


MALFORMED = [float("nan"), float("inf"), "abc", True, None, [], {}, "1e400", 10**30, "2k"]


@pytest.mark.slow
@pytest.mark.parametrize("value", MALFORMED, ids=[repr(v) for v in MALFORMED])
def test_malformed_values_are_exit_2_with_a_message_never_a_traceback(value, tmp_path, capsys):
    """Counts and quantities that are NaN, infinite, words, lists or objects, where prod's plan has numbers:
    check and cost ended in a traceback (int(nan), float('2k')); every verb now answers 0, 1 or 2, and 2 names
    the plan's problem."""
    plan = reference_plan("prod")
    for step in plan["steps"]:
        inputs = step["newState"].get("inputs") or {}
        spec: dict = inputs.get("spec") or {}
        if inputs.get("kind") == "Deployment":
            spec["replicas"] = value
            spec["template"]["spec"]["containers"][0].setdefault("resources", {})["limits"] = {
                "nvidia.com/gpu": value,
                "memory": value,
            }
        if inputs.get("kind") in ("ScaledObject", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NodePool"):
            spec.update(minReplicaCount=value, maxReplicas=value, minReplicas=value, maxUnavailable=value)
            spec["limits"] = {"nvidia.com/gpu": value}
    head = tmp_path / "head.json"
    head.write_text(json.dumps(plan))
    for surface in SURFACES:
        if "tracebacks" not in surface.classes or surface.argv is None:
            continue
        code = main(surface.argv(head, head, tmp_path / f"out-{surface.name.replace(' ', '-')}"))
        err = capsys.readouterr().err
        assert code in (0, 1, 2), surface.name
        assert code != 2 or "malformed plan" in err, (surface.name, err)


def test_a_directory_link_planted_in_the_working_directory_is_refused(tmp_path, monkeypatch, capsys):
    """A checkout can carry `reports -> /somewhere`: `--out reports/comment.md` (or its absolute form) would write
    through it. Refused, and nothing lands where the link points."""
    victim = tmp_path / "victim"
    victim.mkdir()
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "reports").symlink_to(victim)
    monkeypatch.chdir(work)
    for out in ("reports/check.txt", str(work / "reports" / "check.txt")):
        assert main(["check", "--stack", "dev", "--out", out]) == 2
        assert "reports is a symbolic link" in capsys.readouterr().err
    assert list(victim.iterdir()) == []
