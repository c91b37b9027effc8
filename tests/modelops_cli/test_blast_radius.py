"""A version bump of one model changes that model's resources only."""

from __future__ import annotations

import yaml

from modelops_cli.common import plan_stack
from tests.conftest import ROOT, reference_plan


def inputs_by_urn(plan):
    return {s["urn"]: s["newState"].get("inputs") for s in plan["steps"]}


def test_bumping_one_models_version_touches_that_model_alone(tmp_path):
    data = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    data["config"]["modelops:models"]["sentiment"]["version"] = "1.4.0"
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(data))
    before = inputs_by_urn(reference_plan("prod"))
    after = inputs_by_urn(plan_stack("prod", stack_file=str(path)))
    # the version's image and its weights' read grant are resources of their own: the old ones go at the end (the
    # image stays in the repository for a roll-back; old pods read until they are gone), the new ones come;
    # everything else is updated in place
    names = {urn.rsplit("::", 1)[-1] for urn in before.keys() ^ after.keys()}
    assert names == {f"sentiment-{kind}-{v}" for kind in ("image", "artifact-read") for v in ("1.3.0", "1.4.0")}
    changed = sorted(urn.rsplit("::", 1)[-1] for urn in before.keys() & after.keys() if before[urn] != after[urn])
    assert changed, "the bump must change something"
    assert all(name.startswith("sentiment") for name in changed), changed
    assert "sentiment-deployment" in changed
