"""Pre-flight against a moto server on 127.0.0.1 (offerings) with Service Quotas and faults served in front."""

from __future__ import annotations

import json

import pytest

from components.config import parse_stack_config
from composition import preflight
from offline.cli import main
from tests.conftest import stack_raw

pytestmark = pytest.mark.slow  # starts servers or plans several stacks

G_ON_DEMAND, G_SPOT = "L-DB2E81BA", "L-3819A6DF"


@pytest.fixture
def prod():
    return parse_stack_config(stack_raw("prod"))


def test_a_roomy_account_passes(fake_aws, prod):
    fake_aws.quotas.update({G_ON_DEMAND: 512, G_SPOT: 512})
    report = preflight.run_preflight(prod)
    assert report.ok, preflight.format_report(report)
    assert {n: c.status for n, c in report.pools.items()} == {"a10g": "pass", "l4": "pass"}


def test_a_short_quota_fails_with_a_plain_message(fake_aws, prod):
    fake_aws.quotas.update({G_ON_DEMAND: 64, G_SPOT: 512})
    report = preflight.run_preflight(prod)
    a10g = report.pools["a10g"]
    assert a10g.status == "fail"
    assert a10g.problems[0] == (
        "pool a10g: quota L-DB2E81BA allows 64 vCPUs, the pool's limit of 16 GPUs on " "g5.12xlarge needs 192"
    )


def test_pools_sharing_a_quota_are_checked_together(fake_aws, prod):
    fake_aws.quotas.update({G_ON_DEMAND: 200, G_SPOT: 0})
    report = preflight.run_preflight(prod)
    assert report.pools["a10g"].status == "fail"
    assert any(
        "pools a10g + l4 together need 256 vCPUs of quota L-DB2E81BA, which allows 200" in p
        for p in report.pools["a10g"].problems
    )


def test_types_missing_from_the_clusters_zones_fail(fake_aws, prod):
    fake_aws.quotas.update({G_ON_DEMAND: 512, G_SPOT: 512})
    raw = stack_raw("prod")
    raw["cluster"]["availabilityZones"] = ["us-east-1z"]
    report = preflight.run_preflight(parse_stack_config(raw), pools=["l4"])
    assert report.pools["l4"].status == "fail"
    assert report.pools["l4"].problems[0] == "pool l4: none of g6.xlarge, g6.2xlarge is offered in zones us-east-1z"


def test_default_quota_is_used_when_the_account_never_changed_it(fake_aws, prod):
    fake_aws.default_quotas.update({G_ON_DEMAND: 512, G_SPOT: 512})
    assert preflight.run_preflight(prod).ok
    assert "GetAWSDefaultServiceQuota" in fake_aws.calls


@pytest.mark.parametrize(
    "service, kind", [("quotas", "throttle"), ("quotas", "500"), ("ec2", "throttle"), ("ec2", "500")]
)
def test_throttling_and_5xx_are_retried(fake_aws, prod, service, kind):
    fake_aws.quotas.update({G_ON_DEMAND: 512, G_SPOT: 512})
    fake_aws.fail(service, kind, times=2)
    assert preflight.run_preflight(prod).ok
    assert not fake_aws.faults[service]


def test_retries_are_bounded_and_then_reported(fake_aws, prod):
    fake_aws.quotas.update({G_ON_DEMAND: 512, G_SPOT: 512})
    fake_aws.fail("quotas", "throttle", times=50)
    report = preflight.run_preflight(prod, pools=["a10g"])
    assert fake_aws.calls.count("GetServiceQuota") == preflight.MAX_ATTEMPTS
    assert report.pools["a10g"].status == "unknown"
    assert (
        f"GetServiceQuota failed after {preflight.MAX_ATTEMPTS} attempt(s): ThrottlingException"
        in report.pools["a10g"].problems[0]
    )


def test_access_denied_names_the_missing_permission(fake_aws, prod):
    fake_aws.fail("ec2", "denied")
    report = preflight.run_preflight(prod)
    assert report.pools["a10g"].problems == (
        "pool a10g: UnauthorizedOperation: the credentials lack ec2:DescribeInstanceTypeOfferings",
    )
    fake_aws.reset()
    fake_aws.fail("quotas", "denied", times=10)
    report = preflight.run_preflight(prod)
    assert (
        "AccessDeniedException: the credentials lack servicequotas:GetServiceQuota" in report.pools["a10g"].problems[0]
    )


def test_timeouts_are_bounded(fake_aws, prod, monkeypatch):
    monkeypatch.setattr(preflight, "READ_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(preflight, "MAX_ATTEMPTS", 2)
    fake_aws.slow_seconds = 2
    fake_aws.fail("ec2", "slow", times=5)
    report = preflight.run_preflight(prod)
    assert report.pools["a10g"].status == "unknown"
    assert "DescribeInstanceTypeOfferings failed after 2 attempt(s): Read timeout" in report.pools["a10g"].problems[0]


def test_no_credentials_means_not_run(prod, monkeypatch, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    report = preflight.run_preflight(prod)
    assert report.skipped == "pre-flight could not run: no AWS credentials" and not report.ok


def test_cli_reports_passing_and_failing_accounts(fake_aws, capsys, tmp_path):
    fake_aws.quotas.update({G_ON_DEMAND: 512, G_SPOT: 512})
    assert main(["preflight", "--stack", "prod"]) == 0
    assert "PASS    pool a10g" in capsys.readouterr().out
    fake_aws.quotas.update({G_ON_DEMAND: 64})
    out = tmp_path / "report.json"
    assert main(["preflight", "--stack", "prod", "--json", str(out)]) == 1
    assert "FAIL    pool a10g" in capsys.readouterr().out
    assert json.loads(out.read_text())["pools"]["a10g"]["status"] == "fail"


def test_during_up_a_failing_preflight_stops_the_update_before_any_resource(fake_aws, monkeypatch):
    """`preflight.duringUp`: evaluated as `pulumi up` (not a preview), a short quota registers nothing."""
    from offline import engine
    from offline.stackfile import load_stack

    fake_aws.quotas.update({G_ON_DEMAND: 64, G_SPOT: 512})
    settings = load_stack("prod")
    config = dict(settings.config)
    config["modelops:preflight"] = json.dumps({"duringUp": True})
    settings = type(settings)(settings.project, settings.stack, config, settings.secret_keys, settings.model)
    registered = []

    class Recording(engine.CapturingMonitor):
        def RegisterResource(self, request):
            registered.append(request.type)
            return super().RegisterResource(request)

    monkeypatch.setattr(engine, "CapturingMonitor", Recording)
    with pytest.raises(engine.ProgramError) as info:
        engine.run_program(settings, preflight=True, preview=False)
    assert "pre-flight failed (modelops:preflight.duringUp)" in str(info.value)
    assert "quota L-DB2E81BA allows 64 vCPUs" in str(info.value)
    assert registered == ["pulumi:pulumi:Stack"]
    # a preview with the same config plans normally: the gate is for `pulumi up` only
    assert engine.run_program(settings, preflight=True)["steps"]
