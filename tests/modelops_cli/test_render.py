"""`modelops render`: one valid manifest per Kubernetes object, unknowns visible, secrets masked."""

from __future__ import annotations

import pytest
import yaml

from modelops_cli.cli import main
from tests.conftest import ROOT, stack_raw
from tests.k8s_schema import validate_object
from tests.policies.test_rules import preview_json


def test_render_writes_one_valid_manifest_per_object(tmp_path, capsys):
    assert main(["render", "--stack", "prod", "--out", str(tmp_path)]) == 0
    files = sorted(tmp_path.rglob("*.yaml"))
    assert "wrote" in capsys.readouterr().out and len(files) > 40
    version = stack_raw("prod")["cluster"]["kubernetesVersion"]
    names = set()
    for path in files:
        doc = yaml.safe_load(path.read_text())
        assert list(doc)[:3] == ["apiVersion", "kind", "metadata"]
        validate_object(doc, version)
        names.add(path.relative_to(tmp_path).as_posix())
    assert {
        "models/deployment-chat.yaml",
        "_cluster/nodepool-a10g.yaml",
        "kube-system/daemonset-dcgm-exporter-a10g.yaml",
        "_cluster/namespace-models.yaml",
    } <= names


def test_unknown_images_are_marked_not_invented(tmp_path):
    assert main(["render", "--stack", "prod", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "models" / "deployment-chat.yaml").read_text()
    assert "# unknown until `pulumi up`: spec.template.spec.containers[0].image" in text
    assert "image: (known after pulumi up)" in text
    vision = (tmp_path / "models" / "deployment-vision.yaml").read_text()
    assert "unknown until" not in vision and "@sha256:" in vision


def test_secret_envelopes_from_any_plan_are_masked(tmp_path):
    """A preview written with the engine's secret envelope renders [secret], never the value."""
    import json

    from modelops_cli.plan import load_plan
    from modelops_cli.render import kubernetes_resources, render_text

    envelope = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "plaintext": '"hunter2"'}
    urn = "urn:pulumi:x::p::kubernetes:core/v1:Secret::db"
    plan = {
        "steps": [
            {
                "op": "create",
                "urn": urn,
                "newState": {
                    "urn": urn,
                    "custom": True,
                    "type": "kubernetes:core/v1:Secret",
                    "inputs": {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": "db", "namespace": "models"},
                        "stringData": {"password": envelope},
                    },
                },
            }
        ]
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    [resource] = kubernetes_resources(load_plan(path))
    _, text = render_text(resource)
    assert "hunter2" not in text and "password: '[secret]'" in text


def _plan_with_names(tmp_path, *names):
    from tests.policies.test_rules import preview_json

    resources = [
        (
            "kubernetes:core/v1:ConfigMap",
            f"cm{i}",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}},
        )
        for i, (ns, name) in enumerate(names)
    ]
    path = tmp_path / "plan.json"
    path.write_text(__import__("json").dumps(preview_json(resources)))
    return str(path)


@pytest.mark.parametrize(
    "namespace, name",
    [
        ("../../etc", "passwd"),
        ("models", "../../../tmp/x"),
        ("/abs", "x"),
        ("models", "a/b"),
        ("Models", "x"),
        ("models", ".."),
        ("models", "x\n"),
    ],
)
def test_render_never_writes_outside_out(tmp_path, capsys, namespace, name):
    plan = _plan_with_names(tmp_path, ("models", "fine"), (namespace, name))
    out = tmp_path / "out"
    assert main(["render", "--plan", plan, "--out", str(out)]) == 2
    assert "is not a Kubernetes name" in capsys.readouterr().err
    assert not out.exists()  # checked before anything is written


def test_render_refuses_two_objects_in_one_file(tmp_path, capsys):
    plan = _plan_with_names(tmp_path, ("models", "same"), ("models", "same"))
    assert main(["render", "--plan", plan, "--out", str(tmp_path / "out")]) == 2
    assert "would both be written to models/configmap-same.yaml" in capsys.readouterr().err


def test_render_output_errors_are_exit_2_not_tracebacks(tmp_path, capsys):
    plan = _plan_with_names(tmp_path, ("models", "fine"))
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    assert main(["render", "--plan", plan, "--out", str(a_file)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err
    # a directory that cannot be created, even as root (CI runs as root)
    assert main(["render", "--plan", plan, "--out", "/proc/modelops-render-test"]) == 2
    assert "cannot write under /proc/modelops-render-test" in capsys.readouterr().err


# ---- confinement and hostile plans (issue #26, classes 10 and 11) ----


def _only(tmp_path, name="fine"):
    return _plan_with_names(tmp_path, ("models", name))


@pytest.mark.parametrize("where", ["out", "namespace", "file"])
def test_a_symbolic_link_anywhere_render_writes_is_refused_before_anything_is_written(tmp_path, capsys, where):
    """Refused only after writing the other files before (issue #26, class 11); now nothing is written."""
    plan = _plan_with_names(tmp_path, ("aaa", "first"), ("models", "fine"))
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    out = tmp_path / "out"
    if where == "out":
        out.symlink_to(victim)
    else:
        out.mkdir()
        if where == "namespace":
            (out / "models").symlink_to(victim)
        else:
            (out / "models").mkdir()
            (out / "models" / "configmap-fine.yaml").symlink_to(victim / "keep.txt")
    assert main(["render", "--plan", plan, "--out", str(out)]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert not (out / "aaa").exists() and not (tmp_path / "victim" / "aaa").exists()
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"] and (victim / "keep.txt").read_text() == "keep"


def test_a_linked_directory_on_the_way_to_out_is_refused(tmp_path, capsys, monkeypatch):
    """`--out evil/manifests` with `evil -> elsewhere` planted in the working directory: refused, nothing written
    where the link points (it once wrote every manifest there: an independent review)."""
    plan = _only(tmp_path)
    target = tmp_path / "target"
    target.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / "evil").symlink_to(target, target_is_directory=True)
    monkeypatch.chdir(work)
    assert main(["render", "--plan", plan, "--out", "evil/manifests"]) == 2
    assert "evil is a symbolic link" in capsys.readouterr().err
    assert list(target.iterdir()) == []


def test_an_empty_out_is_refused_not_the_working_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = _only(tmp_path)
    assert main(["render", "--plan", plan, "--out", ""]) == 2
    assert "--out is empty" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()


def test_a_name_too_long_for_the_file_system_is_refused_before_writing(tmp_path, capsys):
    """A 253-character name (Kubernetes allows it) makes `configmap-<name>.yaml` 268 bytes: the file system's
    255 would have failed the write midway, after the files before it."""
    long_name = "a" * 253
    plan = _plan_with_names(tmp_path, ("aaa", "first"), ("models", long_name))
    out = tmp_path / "out"
    assert main(["render", "--plan", plan, "--out", str(out)]) == 2
    assert "file systems take 255" in capsys.readouterr().err
    assert not out.exists()


def test_files_are_replaced_atomically_and_leave_no_temporaries(tmp_path):
    plan = _only(tmp_path)
    out = tmp_path / "out"
    assert main(["render", "--plan", plan, "--out", str(out)]) == 0
    assert main(["render", "--plan", plan, "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "models").iterdir()) == ["configmap-fine.yaml"]


def test_a_urn_with_a_line_break_cannot_add_yaml_to_the_manifest(tmp_path):
    import json

    resources = [
        (
            "kubernetes:core/v1:ConfigMap",
            "cm\nkind: Secret\nstringData: {x: y}",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fine", "namespace": "models"}},
        )
    ]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(preview_json(resources)))
    out = tmp_path / "out"
    assert main(["render", "--plan", str(path), "--out", str(out)]) == 0
    text = (out / "models" / "configmap-fine.yaml").read_text()
    assert yaml.safe_load(text) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "fine", "namespace": "models"},
    }
    assert text.splitlines()[0].startswith("# ") and "\\nkind: Secret" in text.splitlines()[0]


@pytest.mark.parametrize(
    "inputs",
    [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": ["not", "a", "map"]},
        {"apiVersion": "v1", "kind": {"a": 1}, "metadata": {"name": "x"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": 5}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": "deep"},
    ],
    ids=["metadata-list", "kind-object", "name-number", "nested-too-deep"],
)
def test_malformed_and_deeply_nested_plans_are_exit_2_or_written_never_a_traceback(tmp_path, capsys, inputs):
    import json

    if inputs.get("data") == "deep":
        deep: dict = {}
        cursor = deep
        for _ in range(900):  # json reads it; every recursive walk after would not
            cursor["a"] = {}
            cursor = cursor["a"]
        inputs["data"] = deep
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(preview_json([("kubernetes:core/v1:ConfigMap", "cm", inputs)])))
    for verb in (
        ["render", "--out", str(tmp_path / "out")],
        ["check", "--policy-config", str(ROOT / "policies" / "config" / "prod.json")],
    ):
        code = main([verb[0], "--plan", str(path), *verb[1:]])
        captured = capsys.readouterr()
        assert code in (0, 1, 2) and "Traceback" not in captured.err
        if verb[0] == "render" and isinstance(inputs["metadata"], list):
            assert code == 2 and "is not a mapping" in captured.err
        if inputs["metadata"] == {"name": 5} or isinstance(inputs.get("kind"), dict):
            assert verb[0] != "render" or (code == 2 and "is not a Kubernetes name" in captured.err)
        if isinstance(inputs.get("data"), dict):
            assert code == 2 and "nested more than 100 levels" in captured.err


def test_a_device_is_written_in_place_never_replaced(tmp_path, capsys):
    """Atomic writes rename a temporary file over the destination: over /dev/full (as root) that replaced the
    device with a regular file. A destination that is not a regular file is written in place."""
    import os
    import stat

    before = os.stat("/dev/full")
    assert main(["schema", "--out", "/dev/full"]) == 2
    assert "No space left on device" in capsys.readouterr().err
    after = os.stat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert main(["schema", "--out", "/dev/null"]) == 0 and stat.S_ISCHR(os.stat("/dev/null").st_mode)
