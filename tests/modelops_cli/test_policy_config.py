"""Policy configs as hostile input (issue #26, class 7): entries that widen an allowlist, budgets no number is,
exemptions that name no namespace, hand-edited files, and a symlinked config.

Facts the reader and schema follow, from the Pulumi CLI (github.com/pulumi/pulumi
pkg/resource/plugin/analyzer_config.go): the file is decoded by Go's encoding/json into a map (so NaN, Infinity
and numbers beyond float64 such as 1e400 are refused, a duplicate key silently keeps the last, a list at the top
is refused); each value must be a string (an enforcement level) or an object whose `enforcementLevel` is a
string ("must be a string or object"); the reconciled settings (schema defaults, then the file) are validated
with gojsonschema against each policy's config schema, whose `pattern`s are Go regexps. So one schema
(policies/modelops_rules/framework.py `Rule.config_schema`) decides for the CLI and for `modelops check`/`policy-config`;
offline is stricter where Go is silent (duplicate keys, unknown settings, an empty file).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelops_rules import RULES, framework

from modelops_cli import check
from modelops_cli.check import resolve
from modelops_cli.cli import main
from modelops_cli.policy_config import MAX_BYTES, PolicyConfigError, read
from tests.conftest import ROOT

PLAN = {"steps": [{"op": "create", "urn": "urn:pulumi:s::p::t::n", "newState": {"type": "t", "inputs": {}}}]}
DEV = json.loads((ROOT / "policies" / "config" / "dev.json").read_text())


def _check(config_text: str | bytes, tmp_path: Path, capsys) -> tuple[int, str]:
    """`modelops check` of a one-resource plan under the policy config `config_text`: exit code and stderr."""
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    config = tmp_path / "policy.json"
    config.write_bytes(config_text.encode() if isinstance(config_text, str) else config_text)
    code = main(["check", "--plan", str(plan), "--policy-config", str(config)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _schema_refuses(rule_id: str, settings_: dict[str, Any]) -> bool:
    """Whether the schema the pack registers (and the CLI validates with) refuses these settings."""
    rule = next(r for r in RULES if r.id == rule_id)
    schema = {"type": "object", "properties": rule.config_schema()}  # as the CLI's convertSchema builds it
    return not jsonschema.Draft7Validator(schema).is_valid(framework.rule_settings(rule, settings_))


ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
WIDENING = [
    ("k8s-allowed-registries", "registries", ECR, "admits 123….amazonaws.com.evil.example/…"),
    ("k8s-allowed-registries", "registries", "", "admits everything"),
    ("k8s-allowed-registries", "registries", " nvcr.io/nvidia/", "white space"),
    ("k8s-allowed-registries", "registries", "nvcr.io/nvidia/\n", "a line break"),
    ("k8s-allowed-registries", "registries", "https://nvcr.io/nvidia/", "a scheme"),
    ("k8s-allowed-registries", "registries", "nvcr.io/nvidia", "admits nvcr.io/nvidia-evil/…"),
    ("k8s-allowed-registries", "registries", "nvcr.io/../", "a dot-dot component"),
    ("k8s-allowed-registries", "registries", "nvcr.io/*/", "a wildcard"),
    ("k8s-allowed-registries", "registries", "nvidia/", "no registry host"),
    ("lambda-image-pinned", "repositoryPrefixes", f"{ECR}/modelops/prod", "admits modelops/prod-evil"),
    ("lambda-image-pinned", "repositoryPrefixes", "", "admits everything"),
]


@pytest.mark.parametrize("rule, key, prefix, why", WIDENING, ids=[w[3] for w in WIDENING])
def test_prefixes_that_widen_an_allowlist_are_refused(rule, key, prefix, why, tmp_path, capsys):
    code, err = _check(json.dumps({rule: {key: [f"{ECR}/", prefix]}}), tmp_path, capsys)
    assert code == 2 and f"{rule}.{key}.1: " in err and "whole components ending with '/'" in err, err
    assert _schema_refuses(rule, {key: [prefix]}), "the CLI would accept it"


@settings(max_examples=200, deadline=None)
@given(st.from_regex(re.compile(r"[a-z0-9.:/-]{1,40}"), fullmatch=True))
def test_a_prefix_the_schema_accepts_admits_no_sibling(prefix):
    """Any prefix the schema takes ends a whole component: `<prefix minus '/'>-evil/…`, `.evil.example/…` and
    `evil/…` glued to its last component are never admitted, while an image under it is."""
    if _schema_refuses("k8s-allowed-registries", {"registries": [prefix]}):
        return
    rule = next(r for r in RULES if r.id == "k8s-allowed-registries")

    def admitted(image: str) -> bool:
        pod = {"spec": {"containers": [{"name": "c", "image": image}]}}
        return not list(rule.check("kubernetes:core/v1:Pod", pod, {"registries": [prefix]}))

    assert admitted(f"{prefix}app:1")
    for sibling in ("-evil/app:1", ".evil.example/app:1", "evil/app:1"):
        assert not admitted(prefix.rstrip("/") + sibling), (prefix, sibling)


BUDGETS = [
    ("Infinity", "Infinity is not a JSON number"),
    ("-Infinity", "-Infinity is not a JSON number"),
    ("NaN", "NaN is not a JSON number"),
    ("1e400", "'1e400' is beyond a float64"),
    ("-1e400", "'-1e400' is beyond a float64"),
    ("1" * 5000, "is beyond a float64"),  # Python's own int() limit (4,300 digits) ended in a ValueError
    ("-1", "gpu-cost-ceiling.budgetUsd: -1 is less than the minimum of 0"),
    ("true", "gpu-cost-ceiling.budgetUsd: True is not of type 'number'"),
    ('"25000"', "gpu-cost-ceiling.budgetUsd: '25000' is not of type 'number'"),
    ("[25000]", "is not of type 'number'"),
]


@pytest.mark.parametrize("budget, message", BUDGETS, ids=[b[0][:12] for b in BUDGETS])
def test_budgets_that_are_no_number_are_refused(budget, message, tmp_path, capsys):
    code, err = _check('{"gpu-cost-ceiling": {"budgetUsd": ' + budget + "}}", tmp_path, capsys)
    assert code == 2 and message in err, err


@pytest.mark.parametrize(
    "rule, settings_",
    [
        ("karpenter-gpu-limit", {"maxGpusPerPool": -1}),
        ("karpenter-gpu-limit", {"maxGpusPerPool": 1.5}),
        ("karpenter-gpu-limit", {"maxGpusPerPool": False}),
        ("k8s-replicas-hpa", {"minReplicas": 0}),
        ("k8s-scale-to-zero", {"maxColdStartSeconds": -60}),
        ("gpu-cost-ceiling", {"region": "us-east-1 "}),
        ("gpu-cost-ceiling", {"region": ""}),
        ("k8s-service-exposure", {"allowLoadBalancer": "false"}),
    ],
)
def test_limits_below_any_meaning_are_refused(rule, settings_, tmp_path, capsys):
    code, err = _check(json.dumps({rule: settings_}), tmp_path, capsys)
    assert code == 2 and f"{rule}.{next(iter(settings_))}: " in err, err
    assert _schema_refuses(rule, settings_)


def _exemption(**fields: str) -> str:
    return json.dumps({"k8s-probes": {"exemptions": [{"kind": "Deployment", "name": "chat", "reason": "r", **fields}]}})


@pytest.mark.parametrize(
    "config, message",
    [
        (_exemption(), "k8s-probes.exemptions.0: 'namespace' is a required property"),
        (_exemption(namespace="*"), "k8s-probes.exemptions.0.namespace: '*' is not one exact name"),
        (_exemption(namespace="models", name="chat-*"), "exemptions.0.name: 'chat-*' is not one exact name"),
        (_exemption(namespace="models", kind="*"), "exemptions.0.kind: '*' is not a Pulumi type token"),
        (_exemption(namespace=" models"), "exemptions.0.namespace: ' models' is not one exact name"),
        (_exemption(namespace=""), "exemptions.0.namespace: '' is not one exact name"),
        (_exemption(namespace="models", reason="  "), "exemptions.0.reason: '  ' is not a reason"),
        (_exemption(namespace="models", group="apps"), "Additional properties are not allowed ('group'"),
        # kinds no resource has exempt nothing (an independent review): lower case, or Kubernetes' own with a group
        (_exemption(namespace="models", kind="deployment"), "exemptions.0.kind: 'deployment'"),
        (_exemption(namespace="models", kind="Deployment.apps"), "exemptions.0.kind: 'Deployment.apps'"),
        (_exemption(namespace="models", kind="Pod.core"), "exemptions.0.kind: 'Pod.core'"),
        (
            json.dumps({"k8s-no-hostpath": {"allowlist": [{"name": "dcgm", "path": "/var/lib/kubelet"}]}}),
            "k8s-no-hostpath.allowlist.0: 'namespace' is a required property",
        ),
        (
            json.dumps(
                {
                    "k8s-no-hostpath": {
                        "allowlist": [{"kind": "DaemonSet", "namespace": "a", "name": "b", "path": "/var/../etc"}]
                    }
                }
            ),
            "allowlist.0.path: '/var/../etc' is not an absolute path without '.' or '..' components",
        ),
        (
            json.dumps(
                {"k8s-no-hostpath": {"allowlist": [{"kind": "DaemonSet", "namespace": "a", "name": "b", "path": "/"}]}}
            ),
            "allowlist.0.path: '/' is not an absolute path",
        ),
    ],
)
def test_exemptions_and_allowlists_name_exactly_one_object(config, message, tmp_path, capsys):
    code, err = _check(config, tmp_path, capsys)
    assert code == 2 and message in err, err


def test_an_exemption_without_a_namespace_stands_only_where_none_exists(tmp_path, capsys):
    """Cluster-scoped kinds and non-Kubernetes resources have no namespace: their exemptions need none. Should a
    validator skip the schema's `if` (draft-04), the pack still exempts no namespaced object by a bare name."""
    for kind in ("NodePool", "ClusterRole", "aws:iam/role:Role"):
        code, err = _check(
            json.dumps({"k8s-probes": {"exemptions": [{"kind": kind, "name": "x", "reason": "r"}]}}), tmp_path, capsys
        )
        assert code == 0, (kind, err)
    bare = {"exemptions": [{"kind": "Deployment", "name": "chat", "reason": "r"}]}
    assert framework.is_exempt(bare, "Deployment", None, "chat") is None
    assert framework.is_exempt(bare, "Deployment", "models", "chat") is None
    placed = {"exemptions": [{"kind": "Deployment", "namespace": "models", "name": "chat", "reason": "r"}]}
    assert framework.is_exempt(placed, "Deployment", "models", "chat") == "r"


HAND_EDITED = [
    (b"[1, 2]", "expected an object of policy names, not list"),
    (b'"mandatory"', "expected an object of policy names, not str"),
    (b'{"all": "advisory", "all": "mandatory"}', "'all' is given twice"),
    (b'{"k8s-probes": {"exemptions": [], "exemptions": []}}', "'exemptions' is given twice"),
    (b'{"k8s-probes": 5}', "'k8s-probes': int is not an enforcement level or an object"),
    (b'{"k8s-probes": null}', "'k8s-probes': NoneType is not an enforcement level or an object"),
    (b'{"k8s-probes": ["mandatory"]}', "'k8s-probes': list is not an enforcement level"),
    (b'{"k8s-probes": {"enforcementLevel": ["mandatory"]}}', "'k8s-probes'.enforcementLevel: ['mandatory'] is not"),
    (b'{"k8s-probes": {"exemptions": "all"}}', "k8s-probes.exemptions: 'all' is not of type 'array'"),
    (b'{"k8s-probes": {"exemptions": ["x"]}}', "k8s-probes.exemptions.0: 'x' is not of type 'object'"),
    (b'{"k8s-probes": {"exemptions": [{"name": 1}]}}', "k8s-probes.exemptions.0.name: 1 is not of type 'string'"),
    (b'{"all": {"enforcementLevel": "mandatory"}}', "all: unknown enforcement level"),
    (b"\xef\xbb\xbf{}", "not JSON (Unexpected UTF-8 BOM"),
    (b"\xff\xfe{\x00}\x00", "not UTF-8 text"),
    (b"", "not JSON"),  # the CLI takes an empty file as no config at all: every rule at the pack's default
    (b"{" * 100_000, "not JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"k8s-probes": "mandatory"' + b" " * MAX_BYTES + b"}", "larger than 1 MiB, not a policy config"),
    (b'{"\\u001b[2Jk8s": "mandatory"}', "no such policy in the pack"),
]


@pytest.mark.parametrize("content, message", HAND_EDITED, ids=[m for _, m in HAND_EDITED])
def test_hand_edited_files_are_exit_2_with_the_place_named(content, message, tmp_path, capsys):
    code, err = _check(content, tmp_path, capsys)
    assert code == 2 and message in err, err
    assert "\x1b" not in err and len(err) < 8000


def test_what_is_not_a_file_is_refused_unread(tmp_path, capsys):
    """A FIFO would block the reader, /dev/zero would fill memory, a directory is not a file: each is refused
    before a byte is read, wherever the path leads (a link planted in a checkout included)."""
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    for path, why in (
        (fifo, "not a regular file"),
        (tmp_path / "zero.json", "not a regular file"),
        (tmp_path, "is a directory"),
    ):
        with pytest.raises(PolicyConfigError, match=why):
            read(path)
    with pytest.raises(PolicyConfigError, match="no such policy config"):
        read(tmp_path / "absent.json")


@pytest.fixture
def policies_dir(tmp_path, monkeypatch) -> Path:
    """A policies/config directory of its own for `policy-config --write`, holding dev.json as committed."""
    config_dir = tmp_path / "policies" / "config"
    config_dir.mkdir(parents=True)
    (config_dir / "dev.json").write_text(json.dumps(DEV, indent=2) + "\n")
    monkeypatch.setattr(check, "POLICIES_DIR", tmp_path / "policies")
    return config_dir


def _places(value: Any, path: tuple = ()) -> list[tuple]:
    """Every key path in a JSON value (object keys and list indexes)."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _places(item, (*path, index))
    return found


def _replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy


@pytest.mark.slow
def test_wrong_types_at_every_level_never_crash_policy_config(policies_dir, capsys):
    """`policy-config` merges into the committed file: a list, number, null or object where anything else
    stood ended in AttributeError/TypeError inside the merge. It validates first: exit 0 or 2, never a
    traceback, and nothing is written when it refuses."""
    committed = (policies_dir / "dev.json").read_text()
    for path in _places(DEV):
        wrongs: tuple[Any, ...] = (None, 7, "x", [], {}, [None])
        for wrong in wrongs:
            (policies_dir / "dev.json").write_text(json.dumps(_replaced(DEV, path, wrong)))
            before = (policies_dir / "dev.json").read_text()
            code = main(["policy-config", "--stack", "dev", "--write"])
            err = capsys.readouterr().err
            assert code in (0, 2) and "Traceback" not in err, (path, wrong, err)
            if code == 2:
                assert (policies_dir / "dev.json").read_text() == before
    (policies_dir / "dev.json").write_text(committed)


def test_policy_config_never_writes_a_config_the_pack_refuses(policies_dir, monkeypatch, capsys):
    """A stack's allowedRegistries need only end with '/' (components/config.py): `https://nvcr.io/` would be
    written as an allowlist entry no image matches. The written config is validated as `check` validates it."""
    from modelops_cli.common import stack_settings
    from modelops_cli.verbs import policy_config as verb

    loaded = stack_settings("dev")
    registry = loaded.model.registry.model_copy(update={"allowed_registries": ["https://nvcr.io/nvidia/"]})
    hostile = dataclasses.replace(loaded, model=loaded.model.model_copy(update={"registry": registry}))
    monkeypatch.setattr(verb, "stack_settings", lambda stack: hostile)
    before = (policies_dir / "dev.json").read_text()
    assert main(["policy-config", "--stack", "dev", "--write"]) == 2
    err = capsys.readouterr().err
    assert "the settings of stack dev make a config the pack refuses" in err
    assert "k8s-allowed-registries.registries.1: 'https://nvcr.io/nvidia/' is not a registry" in err
    assert (policies_dir / "dev.json").read_text() == before


def test_the_write_replaces_the_file_atomically(policies_dir, capsys):
    """Written beside and renamed over (modelops_cli/common.py write_atomically): a hard link to the old file keeps the
    old text, so no reader ever sees half a file, and a link at the target is refused (tests/test_surfaces.py)."""
    target = policies_dir / "dev.json"
    target.write_text(json.dumps({**DEV, "k8s-probes": "advisory"}, indent=2))
    old_text = target.read_text()
    os.link(target, policies_dir / "old.json")
    assert main(["policy-config", "--stack", "dev", "--write"]) == 0
    assert (policies_dir / "old.json").read_text() == old_text
    assert json.loads(target.read_text())["k8s-probes"] == {"enforcementLevel": "advisory"}
    assert os.stat(target).st_ino != os.stat(policies_dir / "old.json").st_ino


def test_a_hand_written_entry_for_another_namespace_survives_the_merge(policies_dir, capsys):
    """Only the GPU daemons' own entries (kube-system, their name prefixes) are derived and replaced; an entry a
    person wrote for `nvidia-device-plugin-x` in another namespace is kept, not dropped by its name alone."""
    mine = {"kind": "DaemonSet", "namespace": "gpu-operator", "name": "nvidia-device-plugin-x", "reason": "r"}
    (policies_dir / "dev.json").write_text(json.dumps({**DEV, "k8s-probes": {"exemptions": [mine]}}))
    assert main(["policy-config", "--stack", "dev", "--write"]) == 0
    assert mine in json.loads((policies_dir / "dev.json").read_text())["k8s-probes"]["exemptions"]


def test_every_setting_of_every_rule_is_narrowed_on_purpose():
    """A new setting gets a SETTING_CONSTRAINTS entry (empty only when its type says all), so no allowlist or
    budget is left as wide as `string` or `number`."""
    declared = {name for rule in RULES for name in rule.settings}
    assert declared == set(framework.SETTING_CONSTRAINTS)
    for rule in RULES:
        for name, schema in rule.config_schema().items():
            if schema.get("type") in ("number", "integer"):
                assert "minimum" in schema, (rule.id, name)
            items = schema.get("items", {})
            if items.get("type") == "string":
                assert "pattern" in items, (rule.id, name)


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_the_committed_configs_pass_the_narrowed_schema(env):
    resolve(read(ROOT / "policies" / "config" / f"{env}.json"))


@pytest.mark.parametrize("run_from", ["checkout", "elsewhere"])
def test_a_linked_config_directory_in_the_checkout_is_refused(tmp_path, monkeypatch, capsys, run_from):
    """A checkout can carry `policies/config -> /somewhere`: `policy-config --write` would write the stack's
    config there. The path is the checkout's own, so a link on the way inside the checkout is refused from whichever
    directory the command runs (from outside it, it once wrote through: an independent review); nothing lands."""
    work = tmp_path / "checkout"
    (work / "policies").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "dev.json").write_text(json.dumps(DEV))
    (work / "policies" / "config").symlink_to(victim, target_is_directory=True)
    monkeypatch.setattr(check, "POLICIES_DIR", work / "policies")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(work if run_from == "checkout" else elsewhere)
    before = (victim / "dev.json").read_text()
    assert main(["policy-config", "--stack", "dev", "--write"]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert (victim / "dev.json").read_text() == before and sorted(p.name for p in victim.iterdir()) == ["dev.json"]
