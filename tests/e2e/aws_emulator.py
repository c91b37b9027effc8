"""The AWS the real-engine tier's stand-in provider talks to: one moto server on 127.0.0.1 per tier session.

The stand-in (tests/e2e/standin_provider.py) creates, reads, updates and deletes every AWS object through
boto3 against this server, so AWS's own rules answer (ECR tag immutability, IAM's policy parser, Lambda's
names and concurrency). Settings that make moto answer as AWS does, each with its reason:

- `MOTO_LAMBDA_CONCURRENCY_QUOTA=1000`: an account's default concurrent executions per region; with it
  moto's PutFunctionConcurrency refuses a reservation that leaves fewer than 100 unreserved, as Lambda
  does ("You can reserve up to the Unreserved account concurrency value minus 100",
  https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html);
- `MOTO_IAM_LOAD_MANAGED_POLICIES=true`: AWS managed policies (AWSXRayDaemonWriteAccess, which every
  fallback's role attaches) exist, as in every account; moto leaves them out by default;
- Lambda without Docker (`POST /moto-api/config {"lambda": {"use_docker": false}}`): no container runs here;
- the account is moto's default, 123456789012 (the one every stack file names as `cluster.accountId`):
  moto picks an account per request from `x-moto-account-id`, else from the access key (an IAM user's),
  else the default; the throwaway key the tier passes is nobody's, so every stack lands in that account
  and staging (us-west-2) and dev/prod (us-east-1) are told apart by region, as in one real account.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.aws_fakes import free_port

ACCOUNT_ID = "123456789012"
"""moto's default account, and every reference stack's `cluster.accountId`."""
ACCESS_KEY_ID = "AKIAMODELOPSTIER0001"
SECRET_ACCESS_KEY = "modelops-tier-not-a-secret"
LAMBDA_ACCOUNT_CONCURRENCY = "1000"


class AwsEmulator:
    """A moto server in its own process, configured as above; `stop()` ends it."""

    def __init__(self, log_path: Path | None = None):
        self.port = free_port()
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
        env = {
            **os.environ,
            "MOTO_LAMBDA_CONCURRENCY_QUOTA": LAMBDA_ACCOUNT_CONCURRENCY,
            "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
        }
        env.pop("MOTO_ACCOUNT_ID", None)
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=log, env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_until_serving()
        self.post("/moto-api/config", {"lambda": {"use_docker": False}})

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                self.post("/moto-api/config", {"lambda": {"use_docker": False}})
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the AWS emulator (moto_server) did not start")

    def post(self, path: str, body: dict[str, Any]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            conn.getresponse().read()
        finally:
            conn.close()

    def reset(self) -> None:
        """Forget every object (moto's reset), keeping the settings."""
        self.post("/moto-api/reset", {})
        self.post("/moto-api/config", {"lambda": {"use_docker": False}})

    def env(self, region: str = "us-east-1") -> dict[str, str]:
        """What a process needs to talk to this emulator and nothing else: the endpoint, throwaway keys."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, service: str, region: str):
        import boto3

        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def inventory(emulator: AwsEmulator, region: str) -> set[tuple[str, str]]:
    """(resource type, id) of every object the stand-in's resource types can make, as the emulator holds
    them in one region (IAM, being global, in every call): what "exists in the account"."""
    found: set[tuple[str, str]] = set()
    ecr = emulator.client("ecr", region)
    for repo in ecr.describe_repositories()["repositories"]:
        name = repo["repositoryName"]
        found.add(("aws:ecr/repository:Repository", name))
        try:
            ecr.get_lifecycle_policy(repositoryName=name)
            found.add(("aws:ecr/lifecyclePolicy:LifecyclePolicy", name))
        except ecr.exceptions.LifecyclePolicyNotFoundException:
            pass
        for image in ecr.describe_images(repositoryName=name)["imageDetails"]:
            for tag in image.get("imageTags", []):
                found.add(("ecr-image-tag", f"{repo['repositoryUri']}:{tag}"))
    found |= _iam_inventory(emulator.client("iam", region))
    found |= _lambda_inventory(emulator.client("lambda", region))
    logs = emulator.client("logs", region)
    found |= {("aws:cloudwatch/logGroup:LogGroup", g["logGroupName"]) for g in logs.describe_log_groups()["logGroups"]}
    cloudwatch = emulator.client("cloudwatch", region)
    alarms = cloudwatch.describe_alarms()["MetricAlarms"]
    found |= {("aws:cloudwatch/metricAlarm:MetricAlarm", a["AlarmName"]) for a in alarms}
    return found


def _iam_inventory(iam) -> set[tuple[str, str]]:
    found = set()
    for role in iam.list_roles()["Roles"]:
        name = role["RoleName"]
        found.add(("aws:iam/role:Role", name))
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            found.add(("aws:iam/rolePolicy:RolePolicy", f"{name}:{policy}"))
        for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            found.add(("aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"{name}/{attached['PolicyArn']}"))
    return found


def _lambda_inventory(lambda_) -> set[tuple[str, str]]:
    found = set()
    for function in lambda_.list_functions()["Functions"]:
        name = function["FunctionName"]
        found.add(("aws:lambda/function:Function", name))
        for alias in lambda_.list_aliases(FunctionName=name)["Aliases"]:
            found.add(("aws:lambda/alias:Alias", alias["AliasArn"]))
            try:
                lambda_.get_function_url_config(FunctionName=name, Qualifier=alias["Name"])
                found.add(("aws:lambda/functionUrl:FunctionUrl", f"{name}/{alias['Name']}"))
            except lambda_.exceptions.ResourceNotFoundException:
                pass
    return found


REGIONS = ("us-east-1", "us-west-2")
"""The reference stacks' regions (dev and prod: us-east-1, staging: us-west-2)."""


def world(emulator: AwsEmulator) -> set[tuple[str, str]]:
    """Everything the emulator holds in the stacks' regions."""
    found: set[tuple[str, str]] = set()
    for region in REGIONS:
        found |= inventory(emulator, region)
    return found


def objects_of_state(resources: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(type, id) of what a stack's state says exists in AWS: its AWS resources by id, and each tag its
    pushed images carry."""
    recorded: set[tuple[str, str]] = set()
    for resource in resources:
        type_, outputs = resource["type"], resource.get("outputs") or {}
        if type_ == "docker-build:index:Image" and outputs.get("push"):
            recorded |= {("ecr-image-tag", tag) for tag in outputs.get("tags") or []}
        elif type_.startswith("aws:") and resource.get("id"):
            recorded.add((type_, resource["id"]))
    return recorded
