"""Each fallback mode's plan, and `auto` switching on a moto-backed pre-flight."""

from __future__ import annotations

import json

import pytest
import yaml

from modelops_cli.cli import main
from tests.conftest import ROOT, reference_plan

pytestmark = pytest.mark.slow  # plans several stacks or starts servers

G_ON_DEMAND, G_SPOT = "L-DB2E81BA", "L-3819A6DF"


def names(plan):
    return {s["urn"].rsplit("::", 1)[-1] for s in plan["steps"]}


def test_dev_is_serverless_only_with_no_gpu_pool(dev_plan):
    types = {s["newState"]["type"] for s in dev_plan["steps"]}
    assert "modelops:index:ServerlessFallback" in types
    assert not {"modelops:index:GpuNodePool", "modelops:index:ModelService"} & types
    url = next(s for s in dev_plan["steps"] if s["newState"]["type"] == "aws:lambda/functionUrl:FunctionUrl")
    assert url["newState"]["inputs"]["authorizationType"] == "AWS_IAM"


def test_standby_deploys_both_and_exports_both(prod_plan):
    from modelops_cli.offline.engine import stack_exports
    from modelops_cli.stackfile import load_stack

    assert {"sentiment-deployment", "sentiment-fallback-function"} <= names(prod_plan)
    exported = stack_exports(load_stack("prod"))["models"]["sentiment"]
    assert exported["endpoint"] == "https://models.acme.example/sentiment"
    assert exported["fallback"]["url"].endswith(".lambda-url.us-east-1.on.aws/")


def test_none_deploys_no_function(prod_plan):
    assert not any(n.startswith("chat-fallback") for n in names(prod_plan))


def test_no_function_url_anywhere_is_open():
    for stack in ("dev", "staging", "prod"):
        for step in reference_plan(stack)["steps"]:
            if step["newState"]["type"] == "aws:lambda/functionUrl:FunctionUrl":
                assert step["newState"]["inputs"]["authorizationType"] == "AWS_IAM"


def plan_prod_with_preflight(tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert main(["plan", "--stack", "prod", "--preflight", "--json", str(out)]) == 0
    capsys.readouterr()
    return json.loads(out.read_text())


def test_auto_stays_on_gpus_when_the_quota_covers_the_pool(fake_aws, tmp_path, capsys):
    fake_aws.quotas.update({G_ON_DEMAND: 512, G_SPOT: 512})
    plan = plan_prod_with_preflight(tmp_path, capsys)
    assert "summarizer-deployment" in names(plan)
    assert not any(n.startswith("summarizer-fallback") for n in names(plan))
    assert any(
        d["message"].startswith(
            "model summarizer: auto: GPU pool l4, as modelops:models.summarizer.placement "
            "records (pre-flight passed)"
        )
        for d in plan["diagnostics"]
    )


def test_a_short_quota_warns_and_moves_nothing(fake_aws, tmp_path, capsys):
    # The quota check informs; the GPU Deployment stays until the stack file says placement: serverless.
    fake_aws.quotas.update({G_ON_DEMAND: 4, G_SPOT: 4})  # below even the minimum replicas' 8 vCPUs
    plan = plan_prod_with_preflight(tmp_path, capsys)
    assert "summarizer-deployment" in names(plan)
    assert not any(n.startswith("summarizer-fallback") for n in names(plan))
    warning = next(
        d["message"]
        for d in plan["diagnostics"]
        if d["severity"] == "warning" and d["message"].startswith("model summarizer")
    )
    assert "quota L-DB2E81BA allows 4 vCPUs, the pool's limit of 8 GPUs on g6.2xlarge needs 64" in warning
    assert "set modelops:models.summarizer.placement: serverless" in warning


def test_a_recorded_serverless_placement_deploys_the_fallback_with_its_cpu_image(tmp_path, capsys):
    def move(config):
        config["modelops:models"]["summarizer"]["placement"] = "serverless"

    data = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    move(data["config"])
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(data))
    plan_file = tmp_path / "plan.json"
    assert main(["plan", "--stack-file", str(path), "--json", str(plan_file)]) == 0
    plan = json.loads(plan_file.read_text())
    assert "summarizer-deployment" not in names(plan)
    assert "summarizer-fallback-function" in names(plan)
    cpu_image = next(s for s in plan["steps"] if s["urn"].endswith("::summarizer-cpu-image-3.1.0"))
    assert cpu_image["newState"]["inputs"]["dockerfile"]["location"] == "models/summarizer/Dockerfile.cpu"
    # the other models are untouched by the move
    assert {"chat-deployment", "vision-deployment", "sentiment-deployment"} <= names(plan)
