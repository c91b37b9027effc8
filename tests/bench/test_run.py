"""The benchmark's own measuring code, on small inputs (the bench prints figures; tests check logic)."""

from __future__ import annotations

import pytest

from bench.generate import generate_stack, model_name
from bench.run import blast_radius, longest_chain
from components.config import parse_stack_config

pytestmark = pytest.mark.slow  # plans several stacks or starts servers


def test_generated_stacks_are_valid_and_mixed():
    config = generate_stack(30)["config"]
    cfg = parse_stack_config({k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("modelops:")})
    assert len(cfg.models) == 30
    assert any(m.canary for m in cfg.models.values()) and any(m.gpus == 0 for m in cfg.models.values())
    assert any(m.image.ref for m in cfg.models.values())


def test_longest_chain_counts_resources_to_create():
    def step(urn, custom, deps=(), parent=None, type_="t:x:Y"):
        return {
            "urn": urn,
            "newState": {
                "custom": custom,
                "type": type_,
                "dependencies": list(deps),
                **({"parent": parent} if parent else {}),
            },
        }

    plan = {
        "steps": [
            step("s", False, type_="pulumi:pulumi:Stack"),
            step("c", False, parent="s"),
            step("a", True, parent="c"),
            step("b", True, deps=["a"], parent="c"),
        ]
    }
    assert longest_chain(plan) == (4, 2)


def test_blast_radius_of_a_bump_stays_in_the_model(tmp_path):
    result = blast_radius(tmp_path, n=12)
    assert result["of_the_bumped_model"] > 0 and result["of_other_models"] == 0
    assert model_name(7) == "m007"
