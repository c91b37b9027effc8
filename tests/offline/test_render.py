"""`modelops render`: one valid manifest per Kubernetes object, unknowns visible, secrets masked."""

from __future__ import annotations

import pytest
import yaml

from offline.cli import main
from tests.conftest import stack_raw
from tests.k8s_schema import validate_object


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

    from offline.plan import load_plan
    from offline.render import kubernetes_resources, render_text

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
