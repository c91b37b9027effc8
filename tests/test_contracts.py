"""The strings the program writes and the policy pack reads (labels, annotations, the CSI driver name) are one
contract: the pack keeps its copies in policies/modelops_rules/contracts.py (it never imports components/), each equal to the
program's in components/contracts.py, and no rule spells one itself."""

from __future__ import annotations

import ast
from pathlib import Path

import modelops_rules.contracts as pack
import pytest

import components.contracts as program
from tests.conftest import ROOT

PACK_RULES = ROOT / "policies" / "modelops_rules"
MODEL_SERVICE_MODULES = ("common", "model_service", "model_tracks", "model_weights", "pod_spec")
"""The program's modules that write these strings: they name them from components/contracts.py."""


def _contracts(module) -> dict[str, str]:
    return {name: value for name, value in vars(module).items() if name.isupper() and isinstance(value, str)}


def _spelled(path: Path, values: set[str]) -> set[str]:
    """The contract strings a module writes as literals (docstrings and comments may name them in passing)."""
    return {
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in values
    }


def test_the_pack_reads_what_the_program_writes():
    copies = _contracts(pack)
    assert {"COLD_START_ANNOTATION", "PAUSED_REPLICAS_ANNOTATION", "S3_CSI_DRIVER"} <= set(copies)
    written = _contracts(program)
    assert {name: written.get(name) for name in copies} == copies


def test_every_contract_string_the_pack_reads_comes_from_its_contracts_module():
    values = set(_contracts(program).values())
    spelled = {
        path.name: found
        for path in sorted(PACK_RULES.glob("*.py"))
        if path.name != "contracts.py" and (found := _spelled(path, values))
    }
    assert spelled == {}


def test_every_pack_contract_is_read_by_a_rule():
    """A copy no rule reads is a contract nobody checks: drop it from the pack or read it."""
    imported = {
        alias.name
        for path in PACK_RULES.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module == "contracts" and node.level == 1
        for alias in node.names
    }
    assert imported == set(_contracts(pack))


@pytest.mark.parametrize("module", MODEL_SERVICE_MODULES)
def test_the_model_service_names_its_contract_strings(module):
    path = ROOT / "components" / f"{module}.py"
    assert _spelled(path, set(_contracts(program).values())) == set()


def test_the_scan_finds_a_contract_string_spelled_out(tmp_path):
    rule = tmp_path / "rule.py"
    rule.write_text(f'"""Reads {program.S3_CSI_DRIVER} volumes."""\nDRIVER = "{program.S3_CSI_DRIVER}"\n')
    assert _spelled(rule, set(_contracts(program).values())) == {program.S3_CSI_DRIVER}
