"""The stand-in AWS, docker-build and docker provider against the AWS emulator: AWS's own rules answer.

Two levels. The provider class is driven directly with the protocol's requests against a moto server (fast;
no CLI). Then, with the tier's tools, a small program of this module's own goes through the real `pulumi`
CLI, so that what only the emulator sees fails `pulumi up` as it would against AWS: a malformed IAM policy
(`MalformedPolicyDocument`), an immutable image tag pushed again (`ImageTagAlreadyExistsException`), and a
Function without its required `role` (the provider's `Check`).

What the docs say, and where:
- IAM parses every policy document and refuses a malformed one with MalformedPolicyDocument (a statement
  without Resource among others): https://docs.aws.amazon.com/IAM/latest/APIReference/API_PutRolePolicy.html
- ECR: with IMMUTABLE_WITH_EXCLUSION, tags matching an exclusion filter (WILDCARD, `^[0-9a-zA-Z._*-]{1,128}$`)
  stay mutable, every other tag is immutable and a push over it fails with ImageTagAlreadyExistsException:
  https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageTagMutabilityExclusionFilter.html,
  https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html
- DeleteRepository refuses a repository that still has images unless `force`: RepositoryNotEmptyException
  (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DeleteRepository.html)
- Lambda keeps 100 of the account's concurrency unreserved ("You can reserve up to the Unreserved account
  concurrency value minus 100"): https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
- pulumi-docker-build's Image deletes its pushed tags on delete unless retainOnDelete (its Image docs, "Tag
  deletion and refreshes"); the bridge's Check wording: pulumi-terraform-bridge pkg/tfbridge/provider_test.go.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import json_format, struct_pb2

# google.rpc.Status as the SDK registers it: a second copy (google.rpc.status_pb2) collides in one process
from pulumi.runtime.proto import provider_pb2, status_pb2

from tests.e2e import standin_aws
from tests.e2e.aws_emulator import ACCOUNT_ID, AwsEmulator
from tests.e2e.pulumi_cli import ROOT
from tests.e2e.standin_provider import FAIL_CREATE, UNKNOWN, StandinProvider

REGION = "us-west-2"
REGISTRY = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com"
LAMBDA_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
NO_RESOURCE_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]}  # no Resource
)


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class FakeContext:
    """What a gRPC servicer is handed: `abort` raises, trailing metadata is kept."""

    def __init__(self) -> None:
        self.trailing: tuple[tuple[str, bytes], ...] = ()

    def abort(self, code: grpc.StatusCode, message: str) -> None:
        raise Aborted(code, message)

    def set_trailing_metadata(self, metadata: tuple[tuple[str, bytes], ...]) -> None:
        self.trailing = metadata


def _struct(d: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(d)
    return s


def _dict(s: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(s)


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:unit::standin::{type_}::{name}"


class Driver:
    """The engine's side of the protocol, for one provider instance."""

    def __init__(self, provider: StandinProvider):
        self.provider = provider

    def configure(self, **config: Any) -> None:
        variables = {
            f"{self.provider.package}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()
        }
        self.provider.Configure(provider_pb2.ConfigureRequest(variables=variables), FakeContext())

    def check(self, type_: str, name: str, news: dict[str, Any], olds: dict[str, Any] | None = None) -> Any:
        request = provider_pb2.CheckRequest(
            urn=urn(type_, name), news=_struct(news), olds=_struct(olds or {}), randomSeed=name.encode() * 4
        )
        return self.provider.Check(request, FakeContext())

    def create(self, type_: str, name: str, inputs: dict[str, Any], preview: bool = False) -> tuple[str, dict]:
        checked = self.check(type_, name, inputs)
        assert list(checked.failures) == [], checked.failures
        request = provider_pb2.CreateRequest(urn=urn(type_, name), properties=checked.inputs, preview=preview)
        response = self.provider.Create(request, FakeContext())
        return response.id, _dict(response.properties)

    def update(self, type_: str, name: str, resource_id: str, olds: dict, news: dict) -> dict[str, Any]:
        request = provider_pb2.UpdateRequest(
            urn=urn(type_, name), id=resource_id, olds=_struct(olds), news=_struct(news), old_inputs=_struct(olds)
        )
        return _dict(self.provider.Update(request, FakeContext()).properties)

    def delete(self, type_: str, name: str, resource_id: str, state: dict[str, Any]) -> None:
        request = provider_pb2.DeleteRequest(urn=urn(type_, name), id=resource_id, properties=_struct(state))
        self.provider.Delete(request, FakeContext())

    def invoke(self, token: str, args: dict[str, Any]) -> dict[str, Any]:
        response = self.provider.Invoke(provider_pb2.InvokeRequest(tok=token, args=_struct(args)), FakeContext())
        assert list(response.failures) == [], response.failures
        return _dict(getattr(response, "return"))


@pytest.fixture(scope="module")
def emulator() -> Iterator[AwsEmulator]:
    server = AwsEmulator()
    yield server
    server.stop()


@pytest.fixture
def providers(emulator, monkeypatch) -> dict[str, Driver]:
    """The three stand-in packages, configured as the program configures them, against an empty emulator."""
    emulator.reset()
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", FAIL_CREATE):
        monkeypatch.delenv(key, raising=False)
    for key, value in emulator.env(REGION).items():
        monkeypatch.setenv(key, value)
    drivers = {package: Driver(StandinProvider(package)) for package in ("aws", "docker-build", "docker")}
    drivers["aws"].configure(region=REGION, allowedAccountIds=[ACCOUNT_ID], defaultTags={"tags": {"team": "ml"}})
    drivers["docker-build"].configure()
    return drivers


def repository(aws: Driver, name: str = "modelops/unit/app", filters: tuple[str, ...] = ("buildcache-*",)) -> dict:
    _, outputs = aws.create(
        "aws:ecr/repository:Repository",
        "app-repo",
        {
            "name": name,
            "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filter": f, "filterType": "WILDCARD"} for f in filters],
            "imageScanningConfiguration": {"scanOnPush": True},
            "forceDelete": False,
        },
    )
    return outputs


def image_inputs(aws: Driver, repository_url: str, tag: str, label: str, password: str | None = None) -> dict:
    token = aws.invoke("aws:ecr/getAuthorizationToken:getAuthorizationToken", {"registryId": ACCOUNT_ID})
    return {
        "tags": [f"{repository_url}:{tag}"],
        "push": True,
        "registries": [{"address": REGISTRY, "username": token["userName"], "password": password or token["password"]}],
        "context": {"location": str(ROOT / "models" / "sentiment")},
        "platforms": ["linux/amd64"],
        "labels": {"build": label},
        "cacheTo": [{"registry": {"ref": f"{repository_url}:buildcache-serving", "ignoreError": False}}],
    }


def tags_in(emulator: AwsEmulator, repository_name: str) -> dict[str, str]:
    ids = emulator.client("ecr", REGION).list_images(repositoryName=repository_name)["imageIds"]
    return {i["imageTag"]: i["imageDigest"] for i in ids if "imageTag" in i}


# ---- Check -------------------------------------------------------------------------------------


def test_check_refuses_a_function_without_its_role_as_the_real_provider_does(providers):
    checked = providers["aws"].check("aws:lambda/function:Function", "fn", {"packageType": "Image", "imageUri": "x"})
    assert [f.reason for f in checked.failures] == [
        'Missing required argument. The argument "role" is required, but no definition was found.. '
        "Examine values at 'fn.role'."
    ]


def test_check_refuses_wrong_types_and_lets_unknowns_and_secrets_through(providers):
    aws = providers["aws"]
    wrong = aws.check(
        "aws:lambda/function:Function", "fn", {"role": "arn", "memorySize": "lots", "architectures": "x86_64"}
    )
    reasons = sorted(f.reason for f in wrong.failures)
    assert reasons == [
        "Inappropriate value for attribute \"architectures\": a list is required. Examine values at 'fn.architectures'.",
        "Inappropriate value for attribute \"memory_size\": a number is required. Examine values at 'fn.memorySize'.",
    ]
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "arn:aws:iam::1:role/r"}
    fine = aws.check("aws:lambda/function:Function", "fn", {"role": secret, "memorySize": UNKNOWN, "timeout": 30.0})
    assert list(fine.failures) == []
    # a policy is a JSON string or a typed document, as the schema's union says
    document = json.loads(LAMBDA_TRUST)
    assert list(aws.check("aws:iam/role:Role", "r", {"assumeRolePolicy": document}).failures) == []
    assert [f.reason for f in aws.check("aws:iam/role:Role", "r", {"assumeRolePolicy": 3}).failures]


def test_check_auto_names_from_the_engine_seed_and_keeps_the_name_on_later_checks(providers):
    aws = providers["aws"]
    first = _dict(aws.check("aws:iam/role:Role", "fn-role", {"assumeRolePolicy": LAMBDA_TRUST}).inputs)
    assert first["name"].startswith("fn-role-") and len(first["name"]) == len("fn-role-") + 7
    assert first["__defaults"] == ["name"]
    again = _dict(aws.check("aws:iam/role:Role", "fn-role", {"assumeRolePolicy": "{}"}, olds=first).inputs)
    assert again["name"] == first["name"]
    named = _dict(aws.check("aws:iam/role:Role", "fn-role", {"assumeRolePolicy": "{}", "name": "mine"}).inputs)
    assert named["name"] == "mine" and "__defaults" not in named


def test_the_vendored_schema_is_what_the_locked_sdks_say_and_covers_every_type_the_stand_in_serves():
    """An SDK bump without re-running extract_schema.py fails here, and so does a resource type or invoke the
    stand-in answers without its schema."""
    import importlib.util

    path = ROOT / "tests" / "upstream" / "pulumi-aws" / "extract_schema.py"
    spec = importlib.util.spec_from_file_location("extract_schema", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    vendored = json.loads((path.parent / "schema-subset.json").read_text())
    assert module.build_schema() == vendored
    assert {h.token for h in standin_aws.HANDLERS} <= set(vendored["resources"])
    invokes = standin_aws.Invokes(aws=None)  # type: ignore[arg-type]  # only its table is read
    assert set(invokes.handlers) <= set(vendored["functions"])


# ---- IAM ---------------------------------------------------------------------------------------


def test_iam_refuses_a_malformed_policy_document(providers):
    aws = providers["aws"]
    role_id, role = aws.create("aws:iam/role:Role", "fn-role", {"assumeRolePolicy": LAMBDA_TRUST})
    assert role["arn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{role_id}" and role["uniqueId"].startswith("AROA")
    assert role["tagsAll"] == {"team": "ml"}  # the provider's defaultTags
    with pytest.raises(Aborted) as refused:
        aws.create("aws:iam/rolePolicy:RolePolicy", "fn-policy", {"role": role_id, "policy": NO_RESOURCE_POLICY})
    assert "MalformedPolicyDocument" in refused.value.message
    attachment_id, _ = aws.create(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "fn-xray",
        {"role": role_id, "policyArn": "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"},
    )
    assert attachment_id == f"{role_id}/arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"


# ---- ECR and the docker-build push -------------------------------------------------------------


def test_an_immutable_tag_is_never_pushed_twice_and_the_cache_tag_moves(providers, emulator):
    aws, build = providers["aws"], providers["docker-build"]
    repo = repository(aws)
    _, first = build.create(
        "docker-build:index:Image", "app-image", image_inputs(aws, repo["repositoryUrl"], "1.0-a", "a")
    )
    cache_before = tags_in(emulator, repo["name"])["buildcache-serving"]
    with pytest.raises(Aborted) as refused:
        build.create("docker-build:index:Image", "app-image-2", image_inputs(aws, repo["repositoryUrl"], "1.0-a", "b"))
    assert "ImageTagAlreadyExistsException" in refused.value.message
    # another tag: pushed, and the mutable cache tag (an exclusion) is overwritten by the new build's cache
    _, second = build.create(
        "docker-build:index:Image", "app-image-3", image_inputs(aws, repo["repositoryUrl"], "1.1-b", "b")
    )
    tags = tags_in(emulator, repo["name"])
    assert tags["1.0-a"] == first["digest"] and tags["1.1-b"] == second["digest"] != first["digest"]
    assert tags["buildcache-serving"] != cache_before
    assert first["ref"] == f"{repo['repositoryUrl']}:1.0-a@{first['digest']}"


def test_exclusion_filters_are_wildcards_over_the_whole_tag(providers, emulator):
    """moto matches a filter as a regular expression from the tag's start (`latest` would cover `latest-2`);
    ECR's WILDCARD filter must match the whole tag."""
    assert standin_aws.wildcard_matches("buildcache-*", "buildcache-serving")
    assert not standin_aws.wildcard_matches("buildcache-*", "1.0-buildcache-x")
    assert not standin_aws.wildcard_matches("latest", "latest-2")
    assert standin_aws.wildcard_matches("*-dev", "1.0-dev")
    aws, build = providers["aws"], providers["docker-build"]
    repo = repository(aws, filters=("latest",))
    inputs = image_inputs(aws, repo["repositoryUrl"], "latest-2", "a")
    inputs["cacheTo"] = []
    build.create("docker-build:index:Image", "img", inputs)
    with pytest.raises(Aborted, match="ImageTagAlreadyExistsException"):
        build.create("docker-build:index:Image", "img-again", {**inputs, "labels": {"build": "b"}})
    latest = {**inputs, "tags": [f"{repo['repositoryUrl']}:latest"]}
    build.create("docker-build:index:Image", "img-latest", latest)
    build.create("docker-build:index:Image", "img-latest-2", {**latest, "labels": {"build": "c"}})  # mutable


def test_a_push_without_the_registry_token_gets_401(providers):
    aws, build = providers["aws"], providers["docker-build"]
    repo = repository(aws)
    inputs = image_inputs(aws, repo["repositoryUrl"], "1.0", "a", password="not-the-token")
    with pytest.raises(Aborted, match="401 Unauthorized"):
        build.create("docker-build:index:Image", "img", inputs)


def test_the_pushed_digest_pins_the_function_and_answers_registry_lookups(providers, emulator):
    aws, build, docker = providers["aws"], providers["docker-build"], providers["docker"]
    repo = repository(aws)
    _, image = build.create("docker-build:index:Image", "img", image_inputs(aws, repo["repositoryUrl"], "2.0-x", "a"))
    listed = aws.invoke("aws:ecr/getImages:getImages", {"repositoryName": repo["name"]})
    assert {"imageDigest": image["digest"], "imageTag": "2.0-x"} in listed["imageIds"]
    assert aws.invoke("aws:ecr/getRepositories:getRepositories", {})["names"] == [repo["name"]]
    token = aws.invoke("aws:ecr/getAuthorizationToken:getAuthorizationToken", {"registryId": ACCOUNT_ID})
    docker.configure(registryAuth=[{"address": REGISTRY, "username": "AWS", "password": token["password"]}])
    elsewhere = docker.invoke("docker:index/getRegistryImage:getRegistryImage", {"name": "nvcr.io/nvidia/x:1.0"})
    assert elsewhere["sha256Digest"].startswith("sha256:")  # no network here: the offline engine's answer
    looked_up = docker.invoke(
        "docker:index/getRegistryImage:getRegistryImage", {"name": f"{repo['repositoryUrl']}:2.0-x"}
    )
    assert looked_up["sha256Digest"] == image["digest"]
    role_id, role = aws.create("aws:iam/role:Role", "fn-role", {"assumeRolePolicy": LAMBDA_TRUST})
    function = {
        "name": "modelops-unit-app",
        "packageType": "Image",
        "imageUri": f"{repo['repositoryUrl']}@{image['digest']}",
        "role": role["arn"],
        "memorySize": 1024,
        "publish": True,
    }
    fn_id, fn = aws.create("aws:lambda/function:Function", "fn", function)
    assert fn["arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:modelops-unit-app" and fn["version"] == "1"
    with pytest.raises(Aborted, match="does not exist"):
        aws.create(
            "aws:lambda/function:Function",
            "fn2",
            {**function, "name": "other", "imageUri": f"{repo['repositoryUrl']}:9.9"},
        )
    updated = aws.update("aws:lambda/function:Function", "fn", fn_id, fn, {**fn, "memorySize": 2048})
    assert updated["version"] == "2"  # publish: a new version per change, which the alias then takes


def test_deleting_an_image_deletes_its_tags_and_a_repository_with_images_stays(providers, emulator):
    aws, build = providers["aws"], providers["docker-build"]
    repo = repository(aws)
    image_id, image = build.create(
        "docker-build:index:Image", "img", image_inputs(aws, repo["repositoryUrl"], "3.0", "a")
    )
    build.delete("docker-build:index:Image", "img", image_id, image)
    assert set(tags_in(emulator, repo["name"])) == {"buildcache-serving"}  # the cache is no tag of the Image
    with pytest.raises(Aborted, match="RepositoryNotEmptyException"):
        aws.delete("aws:ecr/repository:Repository", "app-repo", repo["name"], repo)
    aws.delete("aws:ecr/repository:Repository", "app-repo", repo["name"], {**repo, "forceDelete": True})
    assert emulator.client("ecr", REGION).describe_repositories()["repositories"] == []


def test_a_reservation_leaving_fewer_than_100_unreserved_fails_and_the_function_is_recorded(providers):
    aws = providers["aws"]
    _, role = aws.create("aws:iam/role:Role", "fn-role", {"assumeRolePolicy": LAMBDA_TRUST})
    inputs = {"name": "greedy", "role": role["arn"], "reservedConcurrentExecutions": 901}
    checked = aws.check("aws:lambda/function:Function", "greedy", inputs)
    context = FakeContext()
    request = provider_pb2.CreateRequest(urn=urn("aws:lambda/function:Function", "greedy"), properties=checked.inputs)
    with pytest.raises(Aborted) as refused:
        aws.provider.Create(request, context)
    assert "below its minimum value of [100]" in refused.value.message
    status = status_pb2.Status.FromString(dict(context.trailing)["grpc-status-details-bin"])
    detail = provider_pb2.ErrorResourceInitFailed()
    assert status.details[0].Unpack(detail) and detail.id == "greedy"  # the engine keeps it in the state


# ---- the protocol's own behaviour ----------------------------------------------------------------


def test_a_preview_of_a_create_keeps_inputs_and_leaves_computed_outputs_unknown(providers, emulator):
    resource_id, outputs = providers["aws"].create(
        "aws:ecr/repository:Repository", "app-repo", {"name": "previewed"}, preview=True
    )
    assert resource_id == "" and outputs["name"] == "previewed"
    assert {outputs[k] for k in ("arn", "registryId", "repositoryUrl")} == {UNKNOWN}
    assert emulator.client("ecr", REGION).describe_repositories()["repositories"] == []


def test_an_injected_failure_creates_nothing(providers, emulator, monkeypatch):
    monkeypatch.setenv(FAIL_CREATE, "fn-role")
    aws = Driver(StandinProvider("aws"))
    aws.configure(region=REGION)
    with pytest.raises(Aborted, match="injected failure creating fn-role"):
        aws.create("aws:iam/role:Role", "fn-role", {"assumeRolePolicy": LAMBDA_TRUST})
    assert emulator.client("iam", REGION).list_roles()["Roles"] == []


def test_credentials_of_an_account_outside_allowed_account_ids_are_refused(providers):
    aws = Driver(StandinProvider("aws"))
    with pytest.raises(Aborted, match="AWS account ID not allowed: 123456789012"):
        aws.configure(region=REGION, allowedAccountIds=["210987654321"])


def test_an_explicit_providers_json_encoded_inputs_are_read(providers):
    """An explicit provider's object and list inputs reach Configure's `args` JSON-encoded (as the real CLI
    sends `defaultTags` and `allowedAccountIds` of `aws.Provider(...)`)."""
    aws = Driver(StandinProvider("aws"))
    args = {"region": REGION, "allowedAccountIds": '["210987654321"]', "defaultTags": '{"tags": {"team": "ml"}}'}
    with pytest.raises(Aborted, match="not allowed"):
        aws.provider.Configure(provider_pb2.ConfigureRequest(args=_struct(args)), FakeContext())
    args["allowedAccountIds"] = json.dumps([ACCOUNT_ID])
    aws.provider.Configure(provider_pb2.ConfigureRequest(args=_struct(args)), FakeContext())
    _, role = aws.create("aws:iam/role:Role", "r", {"assumeRolePolicy": LAMBDA_TRUST})
    assert role["tagsAll"] == {"team": "ml"}


def test_a_refresh_finds_what_the_account_lost(providers, emulator):
    aws, build = providers["aws"], providers["docker-build"]
    role_id, role = aws.create("aws:iam/role:Role", "r", {"assumeRolePolicy": LAMBDA_TRUST})
    repo = repository(aws)
    image_id, image = build.create(
        "docker-build:index:Image", "img", image_inputs(aws, repo["repositoryUrl"], "4.0", "a")
    )
    emulator.client("iam", REGION).delete_role(RoleName=role_id)
    emulator.client("ecr", REGION).batch_delete_image(repositoryName=repo["name"], imageIds=[{"imageTag": "4.0"}])

    def read(driver: Driver, type_: str, name: str, resource_id: str, state: dict) -> Any:
        request = provider_pb2.ReadRequest(
            urn=urn(type_, name), id=resource_id, properties=_struct(state), inputs=_struct(state)
        )
        return driver.provider.Read(request, FakeContext())

    assert read(aws, "aws:iam/role:Role", "r", role_id, role).id == ""  # gone: the engine drops it
    refreshed = read(build, "docker-build:index:Image", "img", image_id, image)
    assert _dict(refreshed.inputs)["tags"] == []  # the next update pushes the tag again


def test_a_force_new_property_replaces_and_others_update(providers):
    provider = providers["aws"].provider
    olds = {"name": "a", "retentionInDays": 7}

    def diff(news: dict[str, Any]) -> Any:
        request = provider_pb2.DiffRequest(
            urn=urn("aws:cloudwatch/logGroup:LogGroup", "logs"), olds=_struct(olds), news=_struct(news)
        )
        return provider.Diff(request, FakeContext())

    assert list(diff({**olds, "name": "b"}).replaces) == ["name"]
    in_place = diff({**olds, "retentionInDays": 30})
    assert list(in_place.replaces) == [] and list(in_place.diffs) == ["retentionInDays"]


def test_the_partition_answers_from_the_region(providers):
    assert providers["aws"].invoke("aws:index/getPartition:getPartition", {})["partition"] == "aws"


# ---- through the real CLI ----------------------------------------------------------------------

CHECKS_PROGRAM = '''"""Small programs whose defects only AWS (here: the emulator) or the provider's Check can see."""
import json

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

config = pulumi.Config()
case = config.require("case")
if case == "malformed-policy":
    role = aws.iam.Role("checks-role", assume_role_policy=json.dumps(TRUST))
    aws.iam.RolePolicy("checks-policy", role=role.id, policy=json.dumps(POLICY))
elif case == "push":
    repo = aws.ecr.Repository(
        "checks-repo",
        name="standin-checks/app",
        image_tag_mutability="IMMUTABLE_WITH_EXCLUSION",
        image_tag_mutability_exclusion_filters=[{"filter": "buildcache-*", "filter_type": "WILDCARD"}],
        force_delete=True,
    )
    token = aws.ecr.get_authorization_token_output(registry_id=repo.registry_id)
    tag, label = config.require("tag"), config.require("label")
    image = docker_build.Image(
        "checks-image",
        tags=[repo.repository_url.apply(lambda url: f"{url}:{tag}")],
        push=True,
        context={"location": "."},
        labels={"build": label},
        registries=[{"address": repo.repository_url.apply(lambda url: url.split("/")[0]),
                     "username": token.user_name, "password": token.password}],
        cache_to=[{"registry": {"ref": repo.repository_url.apply(lambda url: f"{url}:buildcache-app")}}],
    )
    pulumi.export("digest", image.digest)
elif case == "function-without-role":
    # a typed SDK refuses this before the engine sees it; another language's SDK or YAML would not
    pulumi.CustomResource("aws:lambda/function:Function", "checks-fn", {"packageType": "Image", "imageUri": "x"})
'''


@pytest.fixture(scope="module")
def checks(tier) -> Iterator[Any]:
    """`organization/standin-checks/checks`, a stack of the program above (in the project's environment)."""
    project = tier.cli.workdir / "standin-checks"
    project.mkdir(exist_ok=True)
    runtime = {"name": "python", "options": {"toolchain": "pip", "virtualenv": str(ROOT / ".venv")}}
    (project / "Pulumi.yaml").write_text(
        yaml.safe_dump({"name": "standin-checks", "main": "__main__.py", "runtime": runtime})
    )
    program = CHECKS_PROGRAM.replace("TRUST", repr(json.loads(LAMBDA_TRUST))).replace(
        "POLICY", repr(json.loads(NO_RESOURCE_POLICY))
    )
    (project / "__main__.py").write_text(program)
    run = _runner(tier, project)
    for step in (["stack", "init", "organization/standin-checks/checks"], ["config", "set", "aws:region", REGION]):
        result = run(*step)
        assert result.returncode == 0 or "already exists" in result.stderr, result.explain()
    yield run
    run("destroy", "--yes", "--skip-preview")


def _runner(tier, project: Path):
    def run(*args: str, **config: str) -> Any:
        for key, value in config.items():
            assert tier.cli.run("config", "set", key, value, "-s", "checks", cwd=project).returncode == 0
        return (
            tier.cli.run(*args, "-s", "checks", cwd=project)
            if args[:1] != ("stack",)
            else tier.cli.run(*args, cwd=project)
        )

    return run


def test_up_fails_on_a_policy_document_iam_refuses(checks):
    result = checks("up", "--yes", "--skip-preview", case="malformed-policy")
    assert result.returncode != 0
    assert "MalformedPolicyDocument" in result.stdout + result.stderr, result.explain()
    assert checks("destroy", "--yes", "--skip-preview").returncode == 0


def test_up_fails_on_an_immutable_tag_pushed_again_and_moves_the_cache_tag(checks, tier):
    first = checks("up", "--yes", "--skip-preview", case="push", tag="1.0.0", label="a")
    assert first.returncode == 0, first.explain()
    ecr = tier.aws.client("ecr", REGION)

    def tags() -> dict[str, str]:
        ids = ecr.list_images(repositoryName="standin-checks/app")["imageIds"]
        return {i["imageTag"]: i["imageDigest"] for i in ids if "imageTag" in i}

    cache = tags()["buildcache-app"]
    again = checks("up", "--yes", "--skip-preview", label="b")  # new bytes under the same tag
    assert again.returncode != 0
    assert "ImageTagAlreadyExistsException" in again.stdout + again.stderr, again.explain()
    moved = checks("up", "--yes", "--skip-preview", tag="1.0.1", label="b")
    assert moved.returncode == 0, moved.explain()
    after = tags()
    assert after["1.0.0"] != after["1.0.1"] and after["buildcache-app"] != cache
    assert checks("destroy", "--yes", "--skip-preview").returncode == 0


def test_preview_fails_on_a_function_without_its_role(checks):
    result = checks("preview", case="function-without-role")
    assert result.returncode != 0
    assert 'The argument "role" is required' in result.stdout + result.stderr, result.explain()
