"""Pre-flight against a moto server on 127.0.0.1 (offerings) with Service Quotas and faults served in front."""

from __future__ import annotations

import json

import pytest

from components.config import parse_stack_config
from composition import preflight
from modelops_cli.cli import main
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
    """Below what the models' minimum replicas need (a10g: chat 3 x g5.2xlarge, vision 2 x g5.xlarge = 32 vCPUs,
    each replica on the smallest type that holds it), the pool fails."""
    fake_aws.quotas.update({G_ON_DEMAND: 16, G_SPOT: 512})
    report = preflight.run_preflight(prod)
    a10g = report.pools["a10g"]
    assert a10g.status == "fail"
    assert a10g.problems[0] == (
        "pool a10g: quota L-DB2E81BA allows 16 vCPUs, the pool's limit of 16 GPUs on g5.12xlarge needs 192"
    )


def test_a_quota_below_the_ceiling_but_above_the_minimum_is_a_warning_that_does_not_block(fake_aws, prod, capsys):
    """The pool's GPU limit is a ceiling: a quota that holds the minimum replicas but not the whole limit
    lets the deploy go on (the pool cannot grow to its limit), so pre-flight warns and passes."""
    fake_aws.quotas.update({G_ON_DEMAND: 64, G_SPOT: 512})
    report = preflight.run_preflight(prod)
    assert report.ok, preflight.format_report(report)
    assert any(
        n.startswith("warning: quota L-DB2E81BA allows 64 vCPUs, less than the 192 the pool's limit of 16 GPUs on "
                     "g5.12xlarge needs, but enough for its models' minimum replicas (32)")
        for n in report.pools["a10g"].notes
    ), report.pools["a10g"].notes  # fmt: skip
    assert main(["preflight", "--stack", "prod"]) == 0
    assert "warning: quota L-DB2E81BA allows 64 vCPUs" in capsys.readouterr().out


def test_types_no_replica_fits_are_not_what_the_pool_is_sized_on(fake_aws):
    """Karpenter launches only types that can hold a pending pod: the pool is sized on those. g5.xlarge (4 vCPUs,
    16 GiB) holds no replica asking for 6 CPUs and 24Gi, so the pool's ceiling is 16 GPUs on g5.2xlarge."""
    raw = stack_raw("prod")
    raw["gpuPools"]["a10g"]["instanceTypes"] = ["g5.xlarge", "g5.2xlarge"]
    for model in raw["models"].values():
        if model.get("pool") == "a10g":
            model["resources"] = {"cpu": "6", "memory": "24Gi"}
    fake_aws.quotas.update({G_ON_DEMAND: 512, G_SPOT: 512})
    report = preflight.run_preflight(parse_stack_config(raw), pools=["a10g"])
    notes = report.pools["a10g"].notes
    assert any("g5.xlarge holds no replica of the pool's models" in n for n in notes), notes
    # 16 GPUs on g5.2xlarge (8 vCPUs each): 128, not the 64 that g5.xlarge would take
    assert any("the pool needs 128" in n for n in notes), notes


def test_pools_sharing_a_quota_are_checked_together(fake_aws, prod):
    """a10g (192 vCPUs at its limit, 32 for its minimum replicas) and l4 (64 and 8) share the on-demand G
    quota when spot is 0: their limits together do not fit 200 (a warning), their minimums do (a pass);
    at 36 the minimums do not fit together and the second pool counted fails."""
    fake_aws.quotas.update({G_ON_DEMAND: 200, G_SPOT: 0})
    report = preflight.run_preflight(prod)
    assert report.ok, preflight.format_report(report)
    assert (
        "warning: pools a10g + l4 together need 256 vCPUs of quota L-DB2E81BA at their limits, which allows 200: "
        "they cannot all grow to their limits at once"
    ) in report.pools["a10g"].notes
    fake_aws.quotas.update({G_ON_DEMAND: 36})
    report = preflight.run_preflight(prod)
    assert report.pools["a10g"].status == "pass"
    assert report.pools["l4"].problems == (
        "pools a10g + l4 together need more than quota L-DB2E81BA allows (36 vCPUs) for their minimum replicas: "
        "32 for the others, 8 for l4",
    )


def test_a_pool_its_spot_quota_covers_does_not_count_against_on_demand(fake_aws, prod):
    """l4 allows spot and on-demand; Karpenter prefers spot. With spot covering l4, a10g has the on-demand
    quota to itself: 192 of 192 fit, no failure and no shared warning."""
    fake_aws.quotas.update({G_ON_DEMAND: 192, G_SPOT: 64})
    report = preflight.run_preflight(prod)
    assert report.ok, preflight.format_report(report)
    assert not any("together" in n for c in report.pools.values() for n in c.notes)


def test_types_missing_from_the_clusters_zones_fail(fake_aws, prod):
    fake_aws.quotas.update({G_ON_DEMAND: 512, G_SPOT: 512})
    raw = stack_raw("prod")
    raw["cluster"]["availabilityZones"] = ["us-east-1z"]
    report = preflight.run_preflight(parse_stack_config(raw), pools=["l4"])
    assert report.pools["l4"].status == "fail"
    assert report.pools["l4"].problems[0] == (
        "pool l4: none of g6.xlarge, g6.2xlarge can be launched: g6.xlarge is not offered in zones us-east-1z; "
        "g6.2xlarge is not offered in zones us-east-1z"
    )


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
    fake_aws.quotas.update({G_ON_DEMAND: 16})
    out = tmp_path / "report.json"
    assert main(["preflight", "--stack", "prod", "--json", str(out)]) == 1
    assert "FAIL    pool a10g" in capsys.readouterr().out
    assert json.loads(out.read_text())["pools"]["a10g"]["status"] == "fail"


def test_during_up_a_failing_preflight_stops_the_update_before_any_resource(fake_aws, monkeypatch):
    """`preflight.duringUp`: evaluated as `pulumi up` (not a preview), a short quota registers nothing."""
    from modelops_cli.offline import engine
    from modelops_cli.stackfile import load_stack

    fake_aws.quotas.update({G_ON_DEMAND: 16, G_SPOT: 512})
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
    assert "quota L-DB2E81BA allows 16 vCPUs" in str(info.value)
    assert registered == ["pulumi:pulumi:Stack"]
    # a preview with the same config plans normally: the gate is for `pulumi up` only
    assert engine.run_program(settings, preflight=True)["steps"]


def test_a_pool_asking_for_another_architecture_can_launch_nothing(fake_aws):
    raw = stack_raw("prod")
    raw["gpuPools"]["l4"]["architecture"] = "arm64"
    fake_aws.quotas.update({G_ON_DEMAND: 512, G_SPOT: 512})
    report = preflight.run_preflight(parse_stack_config(raw), pools=["l4"])
    assert report.pools["l4"].problems == (
        "pool l4: none of g6.xlarge, g6.2xlarge can be launched: g6.xlarge is amd64, the pool asks for arm64; "
        "g6.2xlarge is amd64, the pool asks for arm64",
    )
