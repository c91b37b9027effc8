"""The benchmark's own measuring code, on small inputs (the bench prints figures; tests check logic)."""

from __future__ import annotations

import pytest

from bench.generate import generate_stack, model_name
from bench.run import blast_radius, longest_chain, sdk_ratio
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


def test_the_sdk_ratio_alternates_our_plans_and_the_stock_mocks(tmp_path):
    """Figure 2 runs the offline engine and the SDK's stock mocks in turn in one process: each must find an
    open event loop after the other (the stock side once crashed on the loop the engine had closed)."""
    figure = sdk_ratio(tmp_path, repeat=2, n=3)
    assert figure["models"] == 3 and figure["resources"] > 3 * 10
    assert figure["plan_s"] > 0 and figure["stock_mocks_s"] > 0
