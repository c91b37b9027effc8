"""`modelops render`: one valid manifest per Kubernetes object, unknowns visible, secrets masked."""

from __future__ import annotations

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
    assert {"models/deployment-chat.yaml", "_cluster/nodepool-a10g.yaml", "kube-system/daemonset-dcgm-exporter-a10g.yaml",
            "_cluster/namespace-models.yaml"} <= names


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

    envelope = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "plaintext": "\"hunter2\""}
    urn = "urn:pulumi:x::p::kubernetes:core/v1:Secret::db"
    plan = {"steps": [{"op": "create", "urn": urn, "newState": {"urn": urn, "custom": True,
            "type": "kubernetes:core/v1:Secret", "inputs": {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "models"}, "stringData": {"password": envelope}}}}]}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    [resource] = kubernetes_resources(load_plan(path))
    _, text = render_text(resource)
    assert "hunter2" not in text and "password: '[secret]'" in text
