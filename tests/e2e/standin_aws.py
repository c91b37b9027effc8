"""What the stand-in provider does to "AWS": each resource type's Create/Read/Update/Delete and each invoke,
through boto3 against the tier's emulator (tests/e2e/aws_emulator.py, moto in server mode).

Ids, ARNs, versions and digests are the emulator's. Where moto lacks a rule AWS documents, the rule is
added here with the documentation beside it (ADDED_RULES lists them; the README's tier section shows the
list). Errors keep AWS's error code in their message (`MalformedPolicyDocument`,
`ImageTagAlreadyExistsException`, ...), as the real provider's do.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ADDED_RULES = {
    "ecr-wildcard-exclusions": (
        "ECR tag-mutability exclusion filters are wildcards over the whole tag (`*` any characters); moto "
        "matches them as regular expressions from the tag's start",
        "https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageTagMutabilityExclusionFilter.html",
    ),
    "lambda-image-exists": (
        "Lambda refuses an image URI whose image is not in the account's ECR; moto checks it only with "
        "MOTO_LAMBDA_STUB_ECR=false and then reads a repository name with a `/` wrongly",
        "https://docs.aws.amazon.com/lambda/latest/dg/images-create.html",
    ),
    "ecr-push-credentials": (
        "a push to ECR needs the registry's current authorization token (GetAuthorizationToken); the "
        "docker-build stand-in checks the registry credentials it is given",
        "https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry_auth.html",
    ),
    "ecr-manifest-digest": (
        "an image's digest is the sha256 of its manifest; moto hashes the layers' digests, so the push passes "
        "PutImage's imageDigest",
        "https://github.com/opencontainers/image-spec/blob/main/descriptor.md#digests",
    ),
    "account-pinning": (
        "the provider refuses credentials of an account outside `allowedAccountIds` (caller identity from STS)",
        "https://www.pulumi.com/registry/packages/aws/api-docs/provider/#allowedaccountids_nodejs",
    ),
    "force-new": (
        "properties Terraform marks ForceNew replace the resource (REPLACE_ON_CHANGE in standin_provider)",
        "https://developer.hashicorp.com/terraform/plugin/sdkv2/schemas/schema-behaviors#forcenew",
    ),
}
"""What the stand-in adds to moto, and where AWS (or the provider) documents it."""

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com$")


class AwsError(Exception):
    """An AWS API error, spelt as the real provider reports it: `operation: Code: message`."""


class PartialCreate(Exception):
    """The object was created but a later step of its Create failed: the engine must record it."""

    def __init__(self, resource_id: str, outputs: dict[str, Any], reason: str):
        super().__init__(reason)
        self.resource_id, self.outputs = resource_id, outputs


@dataclass
class Context:
    """Per-call settings: the region (the resource's own `region` input or the provider's) and tags."""

    region: str
    default_tags: dict[str, str]


def _call(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """A boto3 call with AWS's own error code kept in the message."""
    from botocore.exceptions import ClientError

    try:
        return fn(**kwargs)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise AwsError(f"{exc.operation_name}: {error.get('Code')}: {error.get('Message')}") from exc


def _tag_list(tags: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in sorted(tags.items())]


def tags_all(inputs: dict[str, Any], ctx: Context) -> dict[str, str]:
    """The provider's `defaultTags` under the resource's own `tags` (what AWS gets, and `tagsAll`)."""
    return {**ctx.default_tags, **(inputs.get("tags") or {})}


class Aws:
    """boto3 clients for the emulator at AWS_ENDPOINT_URL (never a real AWS endpoint)."""

    def __init__(self) -> None:
        endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
        if not endpoint.startswith(("http://127.0.0.1:", "http://localhost:")):
            raise RuntimeError(
                "the stand-in AWS provider talks only to the tier's emulator: AWS_ENDPOINT_URL must be a "
                f"loopback address (got {endpoint!r})"
            )
        self.endpoint = endpoint
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str) -> Any:
        if (service, region) not in self._clients:
            import boto3

            self._clients[(service, region)] = boto3.session.Session().client(
                service, region_name=region, endpoint_url=self.endpoint
            )
        return self._clients[(service, region)]

    def account_id(self, region: str) -> str:
        return _call(self.client("sts", region).get_caller_identity)["Account"]


# ---- ECR ---------------------------------------------------------------------------------------


def wildcard_matches(pattern: str, tag: str) -> bool:
    """ECR's WILDCARD filter: `*` stands for any run of characters, everything else for itself, and the
    whole tag must match (filter pattern `^[0-9a-zA-Z._*-]{1,128}$`, API_ImageTagMutabilityExclusionFilter)."""
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), tag) is not None


def tag_is_mutable(repository: dict[str, Any], tag: str) -> bool:
    mutability = repository.get("imageTagMutability", "MUTABLE")
    filters = [f["filter"] for f in repository.get("imageTagMutabilityExclusionFilters") or []]
    excluded = any(wildcard_matches(f, tag) for f in filters)
    if mutability == "IMMUTABLE_WITH_EXCLUSION":
        return excluded
    if mutability == "MUTABLE_WITH_EXCLUSION":
        return not excluded
    return mutability == "MUTABLE"


class Repository:
    token = "aws:ecr/repository:Repository"
    computed = ("arn", "registryId", "repositoryUrl", "tagsAll")

    def __init__(self, aws: Aws):
        self.aws = aws

    def create(self, name: str, inputs: dict[str, Any], ctx: Context) -> tuple[str, dict[str, Any]]:
        ecr = self.aws.client("ecr", ctx.region)
        kwargs: dict[str, Any] = {
            "repositoryName": inputs["name"],
            "imageTagMutability": inputs.get("imageTagMutability", "MUTABLE"),
            "tags": _tag_list(tags_all(inputs, ctx)),
        }
        if inputs.get("imageTagMutabilityExclusionFilters"):
            kwargs["imageTagMutabilityExclusionFilters"] = _filters(inputs)
        if inputs.get("imageScanningConfiguration"):
            kwargs["imageScanningConfiguration"] = {
                "scanOnPush": bool(inputs["imageScanningConfiguration"].get("scanOnPush"))
            }
        if inputs.get("encryptionConfigurations"):
            config = inputs["encryptionConfigurations"][0]
            kwargs["encryptionConfiguration"] = {
                "encryptionType": config.get("encryptionType", "AES256"),
                **({"kmsKey": config["kmsKey"]} if config.get("kmsKey") else {}),
            }
        repo = _call(ecr.create_repository, **kwargs)["repository"]
        return repo["repositoryName"], self._outputs(inputs, repo, ctx)

    def _outputs(self, inputs: dict[str, Any], repo: dict[str, Any], ctx: Context) -> dict[str, Any]:
        return {
            **inputs,
            "arn": repo["repositoryArn"],
            "registryId": repo["registryId"],
            "repositoryUrl": repo["repositoryUri"],
            "tagsAll": tags_all(inputs, ctx),
        }

    def read(self, resource_id: str, inputs: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
        ecr = self.aws.client("ecr", ctx.region)
        try:
            repo = ecr.describe_repositories(repositoryNames=[resource_id])["repositories"][0]
        except ecr.exceptions.RepositoryNotFoundException:
            return None
        return self._outputs(inputs, repo, ctx)

    def update(self, resource_id: str, olds: dict[str, Any], news: dict[str, Any], ctx: Context) -> dict[str, Any]:
        ecr = self.aws.client("ecr", ctx.region)
        if _changed(olds, news, "imageTagMutability", "imageTagMutabilityExclusionFilters"):
            kwargs: dict[str, Any] = {"repositoryName": resource_id, "imageTagMutability": news["imageTagMutability"]}
            if news.get("imageTagMutabilityExclusionFilters"):
                kwargs["imageTagMutabilityExclusionFilters"] = _filters(news)
            _call(ecr.put_image_tag_mutability, **kwargs)
        if _changed(olds, news, "imageScanningConfiguration"):
            scan = bool((news.get("imageScanningConfiguration") or {}).get("scanOnPush"))
            _call(
                ecr.put_image_scanning_configuration,
                repositoryName=resource_id,
                imageScanningConfiguration={"scanOnPush": scan},
            )
        repo = ecr.describe_repositories(repositoryNames=[resource_id])["repositories"][0]
        _retag(ecr, repo["repositoryArn"], tags_all(olds, ctx), tags_all(news, ctx))
        return self._outputs(news, repo, ctx)

    def delete(self, resource_id: str, state: dict[str, Any], ctx: Context) -> None:
        # ECR refuses to delete a repository that still holds images unless forced (RepositoryNotEmptyException)
        ecr = self.aws.client("ecr", ctx.region)
        _call(ecr.delete_repository, repositoryName=resource_id, force=bool(state.get("forceDelete")))


def _filters(inputs: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"filter": f["filter"], "filterType": f.get("filterType", "WILDCARD")}
        for f in inputs["imageTagMutabilityExclusionFilters"]
    ]


def _changed(olds: dict[str, Any], news: dict[str, Any], *keys: str) -> bool:
    return any(olds.get(k) != news.get(k) for k in keys)


def _retag(ecr: Any, arn: str, old: dict[str, str], new: dict[str, str]) -> None:
    gone = sorted(set(old) - set(new))
    if gone:
        _call(ecr.untag_resource, resourceArn=arn, tagKeys=gone)
    if new and new != old:
        _call(ecr.tag_resource, resourceArn=arn, tags=_tag_list(new))


class LifecyclePolicy:
    token = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
    computed = ("registryId",)

    def __init__(self, aws: Aws):
        self.aws = aws

    def create(self, name: str, inputs: dict[str, Any], ctx: Context) -> tuple[str, dict[str, Any]]:
        return inputs["repository"], self.update(inputs["repository"], {}, inputs, ctx)

    def read(self, resource_id: str, inputs: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
        ecr = self.aws.client("ecr", ctx.region)
        try:
            policy = ecr.get_lifecycle_policy(repositoryName=resource_id)
        except (ecr.exceptions.LifecyclePolicyNotFoundException, ecr.exceptions.RepositoryNotFoundException):
            return None
        return {**inputs, "registryId": policy["registryId"]}

    def update(self, resource_id: str, olds: dict[str, Any], news: dict[str, Any], ctx: Context) -> dict[str, Any]:
        ecr = self.aws.client("ecr", ctx.region)
        policy = news["policy"] if isinstance(news["policy"], str) else json.dumps(news["policy"])
        answer = _call(ecr.put_lifecycle_policy, repositoryName=resource_id, lifecyclePolicyText=policy)
        return {**news, "registryId": answer["registryId"]}

    def delete(self, resource_id: str, state: dict[str, Any], ctx: Context) -> None:
        _call(self.aws.client("ecr", ctx.region).delete_lifecycle_policy, repositoryName=resource_id)


# ---- IAM ---------------------------------------------------------------------------------------


def _document(value: Any) -> str:
    """A policy input is a JSON string, or an object the SDK's typed PolicyDocument sends as is."""
    return value if isinstance(value, str) else json.dumps(value)


class Role:
    token = "aws:iam/role:Role"
    computed = ("arn", "uniqueId", "createDate", "tagsAll")

    def __init__(self, aws: Aws):
        self.aws = aws

    def create(self, name: str, inputs: dict[str, Any], ctx: Context) -> tuple[str, dict[str, Any]]:
        iam = self.aws.client("iam", ctx.region)
        kwargs: dict[str, Any] = {
            "RoleName": inputs["name"],
            "AssumeRolePolicyDocument": _document(inputs["assumeRolePolicy"]),
            "Path": inputs.get("path") or "/",
            "Tags": _tag_list(tags_all(inputs, ctx)),
        }
        if inputs.get("description"):
            kwargs["Description"] = inputs["description"]
        if inputs.get("maxSessionDuration"):
            kwargs["MaxSessionDuration"] = int(inputs["maxSessionDuration"])
        role = _call(iam.create_role, **kwargs)["Role"]
        return role["RoleName"], self._outputs(inputs, role, ctx)

    def _outputs(self, inputs: dict[str, Any], role: dict[str, Any], ctx: Context) -> dict[str, Any]:
        return {
            **inputs,
            "arn": role["Arn"],
            "name": role["RoleName"],
            "uniqueId": role["RoleId"],
            "createDate": role["CreateDate"].isoformat(),
            "tagsAll": tags_all(inputs, ctx),
        }

    def read(self, resource_id: str, inputs: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
        iam = self.aws.client("iam", ctx.region)
        try:
            return self._outputs(inputs, iam.get_role(RoleName=resource_id)["Role"], ctx)
        except iam.exceptions.NoSuchEntityException:
            return None

    def update(self, resource_id: str, olds: dict[str, Any], news: dict[str, Any], ctx: Context) -> dict[str, Any]:
        iam = self.aws.client("iam", ctx.region)
        if _changed(olds, news, "assumeRolePolicy"):
            _call(
                iam.update_assume_role_policy, RoleName=resource_id, PolicyDocument=_document(news["assumeRolePolicy"])
            )
        if _changed(olds, news, "description", "maxSessionDuration"):
            _call(
                iam.update_role,
                RoleName=resource_id,
                Description=news.get("description") or "",
                MaxSessionDuration=int(news.get("maxSessionDuration") or 3600),
            )
        old_tags, new_tags = tags_all(olds, ctx), tags_all(news, ctx)
        if set(old_tags) - set(new_tags):
            _call(iam.untag_role, RoleName=resource_id, TagKeys=sorted(set(old_tags) - set(new_tags)))
        if new_tags != old_tags and new_tags:
            _call(iam.tag_role, RoleName=resource_id, Tags=_tag_list(new_tags))
        return self._outputs(news, iam.get_role(RoleName=resource_id)["Role"], ctx)

    def delete(self, resource_id: str, state: dict[str, Any], ctx: Context) -> None:
        _call(self.aws.client("iam", ctx.region).delete_role, RoleName=resource_id)


class RolePolicy:
    """Inline policy; IAM parses the document (moto's validator: MalformedPolicyDocument)."""

    token = "aws:iam/rolePolicy:RolePolicy"
    computed = ()

    def __init__(self, aws: Aws):
        self.aws = aws

    def create(self, name: str, inputs: dict[str, Any], ctx: Context) -> tuple[str, dict[str, Any]]:
        resource_id = f"{inputs['role']}:{inputs['name']}"
        return resource_id, self.update(resource_id, {}, inputs, ctx)

    def read(self, resource_id: str, inputs: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
        iam = self.aws.client("iam", ctx.region)
        role, policy = resource_id.split(":", 1)
        try:
            iam.get_role_policy(RoleName=role, PolicyName=policy)
        except iam.exceptions.NoSuchEntityException:
            return None
        return dict(inputs)

    def update(self, resource_id: str, olds: dict[str, Any], news: dict[str, Any], ctx: Context) -> dict[str, Any]:
        iam = self.aws.client("iam", ctx.region)
        _call(
            iam.put_role_policy,
            RoleName=news["role"],
            PolicyName=news["name"],
            PolicyDocument=_document(news["policy"]),
        )
        return dict(news)

    def delete(self, resource_id: str, state: dict[str, Any], ctx: Context) -> None:
        role, policy = resource_id.split(":", 1)
        _call(self.aws.client("iam", ctx.region).delete_role_policy, RoleName=role, PolicyName=policy)


class RolePolicyAttachment:
    token = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    computed = ()

    def __init__(self, aws: Aws):
        self.aws = aws

    def create(self, name: str, inputs: dict[str, Any], ctx: Context) -> tuple[str, dict[str, Any]]:
        _call(
            self.aws.client("iam", ctx.region).attach_role_policy,
            RoleName=inputs["role"],
            PolicyArn=inputs["policyArn"],
        )
        return f"{inputs['role']}/{inputs['policyArn']}", dict(inputs)

    def read(self, resource_id: str, inputs: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
        iam = self.aws.client("iam", ctx.region)
        role, arn = resource_id.split("/", 1)
        try:
            attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
        except iam.exceptions.NoSuchEntityException:
            return None
        return dict(inputs) if any(p["PolicyArn"] == arn for p in attached) else None

    def update(self, resource_id: str, olds: dict[str, Any], news: dict[str, Any], ctx: Context) -> dict[str, Any]:
        raise AwsError("every input of a RolePolicyAttachment replaces it")

    def delete(self, resource_id: str, state: dict[str, Any], ctx: Context) -> None:
        role, arn = resource_id.split("/", 1)
        _call(self.aws.client("iam", ctx.region).detach_role_policy, RoleName=role, PolicyArn=arn)


# ---- Lambda ------------------------------------------------------------------------------------

FUNCTION_CONFIG_KEYS = (
    "role",
    "memorySize",
    "timeout",
    "ephemeralStorage",
    "tracingConfig",
    "loggingConfig",
    "environment",
    "description",
    "imageConfig",
)


def _function_config(inputs: dict[str, Any]) -> dict[str, Any]:
    """The pulumi-aws inputs -> Lambda's configuration parameters."""
    config: dict[str, Any] = {"Role": inputs["role"]}
    if inputs.get("memorySize") is not None:
        config["MemorySize"] = int(inputs["memorySize"])
    if inputs.get("timeout") is not None:
        config["Timeout"] = int(inputs["timeout"])
    if inputs.get("ephemeralStorage"):
        config["EphemeralStorage"] = {"Size": int(inputs["ephemeralStorage"]["size"])}
    if inputs.get("tracingConfig"):
        config["TracingConfig"] = {"Mode": inputs["tracingConfig"]["mode"]}
    if inputs.get("loggingConfig"):
        logging = inputs["loggingConfig"]
        config["LoggingConfig"] = {
            k: logging[w] for k, w in (("LogFormat", "logFormat"), ("LogGroup", "logGroup")) if logging.get(w)
        }
    if inputs.get("environment"):
        config["Environment"] = {"Variables": dict(inputs["environment"].get("variables") or {})}
    if inputs.get("description"):
        config["Description"] = inputs["description"]
    return config


class Function:
    token = "aws:lambda/function:Function"
    computed = (
        "arn",
        "version",
        "qualifiedArn",
        "invokeArn",
        "qualifiedInvokeArn",
        "lastModified",
        "codeSha256",
        "tagsAll",
    )
    changes_on_update = ("version", "qualifiedArn", "qualifiedInvokeArn", "lastModified", "codeSha256")

    def __init__(self, aws: Aws):
        self.aws = aws

    def create(self, name: str, inputs: dict[str, Any], ctx: Context) -> tuple[str, dict[str, Any]]:
        lambda_ = self.aws.client("lambda", ctx.region)
        if inputs.get("packageType") == "Image":
            require_image(self.aws, inputs.get("imageUri", ""), ctx.region)
        function = _call(
            lambda_.create_function,
            FunctionName=inputs["name"],
            PackageType=inputs.get("packageType", "Zip"),
            Code={"ImageUri": inputs["imageUri"]} if inputs.get("imageUri") else {"ZipFile": b""},
            Architectures=list(inputs.get("architectures") or ["x86_64"]),
            Publish=bool(inputs.get("publish")),
            Tags=tags_all(inputs, ctx),
            **_function_config(inputs),
        )
        resource_id = function["FunctionName"]
        outputs = self._outputs(inputs, function, ctx)
        if inputs.get("reservedConcurrentExecutions") is not None:
            try:
                self._concurrency(resource_id, inputs, ctx)
            except AwsError as exc:
                # as the real provider: the function exists, the engine records it and reports the failure
                raise PartialCreate(resource_id, outputs, str(exc)) from exc
        return resource_id, outputs

    def _concurrency(self, resource_id: str, inputs: dict[str, Any], ctx: Context) -> None:
        lambda_ = self.aws.client("lambda", ctx.region)
        reserved = inputs.get("reservedConcurrentExecutions")
        if reserved is None or int(reserved) < 0:  # -1: no reservation (pulumi-aws's documented default)
            _call(lambda_.delete_function_concurrency, FunctionName=resource_id)
        else:
            _call(
                lambda_.put_function_concurrency, FunctionName=resource_id, ReservedConcurrentExecutions=int(reserved)
            )

    def _outputs(self, inputs: dict[str, Any], function: dict[str, Any], ctx: Context) -> dict[str, Any]:
        arn = (
            function["FunctionArn"].rsplit(":", 1)[0]
            if function["FunctionArn"].count(":") > 6
            else function["FunctionArn"]
        )
        version = function.get("Version", "$LATEST")
        invoke = f"arn:aws:apigateway:{ctx.region}:lambda:path/2015-03-31/functions/{arn}/invocations"
        return {
            **inputs,
            "arn": arn,
            "version": version,
            "qualifiedArn": f"{arn}:{version}",
            "invokeArn": invoke,
            "qualifiedInvokeArn": invoke.replace(arn, f"{arn}:{version}"),
            "lastModified": function.get("LastModified", ""),
            "codeSha256": function.get("CodeSha256", ""),
            "tagsAll": tags_all(inputs, ctx),
        }

    def read(self, resource_id: str, inputs: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
        lambda_ = self.aws.client("lambda", ctx.region)
        try:
            config = lambda_.get_function(FunctionName=resource_id)["Configuration"]
        except lambda_.exceptions.ResourceNotFoundException:
            return None
        versions = lambda_.list_versions_by_function(FunctionName=resource_id)["Versions"]
        published = [v["Version"] for v in versions if v["Version"] != "$LATEST"]
        if inputs.get("publish") and published:
            config = {**config, "Version": max(published, key=int)}
        return self._outputs(inputs, config, ctx)

    def update(self, resource_id: str, olds: dict[str, Any], news: dict[str, Any], ctx: Context) -> dict[str, Any]:
        lambda_ = self.aws.client("lambda", ctx.region)
        changed = False
        if _changed(olds, news, *FUNCTION_CONFIG_KEYS):
            _call(lambda_.update_function_configuration, FunctionName=resource_id, **_function_config(news))
            changed = True
        if _changed(olds, news, "imageUri", "architectures"):
            require_image(self.aws, news.get("imageUri", ""), ctx.region)
            _call(
                lambda_.update_function_code,
                FunctionName=resource_id,
                ImageUri=news["imageUri"],
                Architectures=list(news.get("architectures") or ["x86_64"]),
            )
            changed = True
        if _changed(olds, news, "reservedConcurrentExecutions"):
            self._concurrency(resource_id, news, ctx)
        function = lambda_.get_function(FunctionName=resource_id)["Configuration"]
        if news.get("publish") and changed:
            function = {**function, **_call(lambda_.publish_version, FunctionName=resource_id)}
            function["FunctionArn"] = function["FunctionArn"].rsplit(":", 1)[0]
        elif news.get("publish"):
            function = {**function, "Version": olds.get("version", "$LATEST")}
        return self._outputs(news, function, ctx)

    def delete(self, resource_id: str, state: dict[str, Any], ctx: Context) -> None:
        _call(self.aws.client("lambda", ctx.region).delete_function, FunctionName=resource_id)


def require_image(aws: Aws, image_uri: str, region: str) -> None:
    """Lambda takes a container image only from ECR in the function's account and region, and only one that
    exists there (https://docs.aws.amazon.com/lambda/latest/dg/images-create.html); moto does not check it
    for a repository whose name has a `/`."""
    name, _, digest = image_uri.partition("@")
    host, _, path = name.partition("/")
    repository, _, tag = path.partition(":") if not digest else (path, "", "")
    if not ECR_HOST.match(host) or not repository:
        raise AwsError(f"CreateFunction: InvalidParameterValueException: Source image {image_uri} is not valid.")
    image_id = {"imageDigest": digest} if digest else {"imageTag": tag or "latest"}
    found = aws.client("ecr", region).batch_get_image(repositoryName=repository, imageIds=[image_id])["images"]
    if not found:
        raise AwsError(
            f"CreateFunction: InvalidParameterValueException: Source image {image_uri} does not exist. "
            "Provide a valid source image."
        )


class Alias:
    token = "aws:lambda/alias:Alias"
    computed = ("arn", "invokeArn")

    def __init__(self, aws: Aws):
        self.aws = aws

    def create(self, name: str, inputs: dict[str, Any], ctx: Context) -> tuple[str, dict[str, Any]]:
        alias = _call(
            self.aws.client("lambda", ctx.region).create_alias,
            FunctionName=inputs["functionName"],
            Name=inputs["name"],
            FunctionVersion=inputs["functionVersion"],
            Description=inputs.get("description") or "",
        )
        return alias["AliasArn"], self._outputs(inputs, alias, ctx)

    def _outputs(self, inputs: dict[str, Any], alias: dict[str, Any], ctx: Context) -> dict[str, Any]:
        arn = alias["AliasArn"]
        invoke = f"arn:aws:apigateway:{ctx.region}:lambda:path/2015-03-31/functions/{arn}/invocations"
        return {**inputs, "arn": arn, "invokeArn": invoke}

    def read(self, resource_id: str, inputs: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
        lambda_ = self.aws.client("lambda", ctx.region)
        try:
            alias = lambda_.get_alias(FunctionName=inputs["functionName"], Name=inputs["name"])
        except lambda_.exceptions.ResourceNotFoundException:
            return None
        return self._outputs(inputs, alias, ctx)

    def update(self, resource_id: str, olds: dict[str, Any], news: dict[str, Any], ctx: Context) -> dict[str, Any]:
        alias = _call(
            self.aws.client("lambda", ctx.region).update_alias,
            FunctionName=news["functionName"],
            Name=news["name"],
            FunctionVersion=news["functionVersion"],
            Description=news.get("description") or "",
        )
        return self._outputs(news, alias, ctx)

    def delete(self, resource_id: str, state: dict[str, Any], ctx: Context) -> None:
        lambda_ = self.aws.client("lambda", ctx.region)
        _call(lambda_.delete_alias, FunctionName=state["functionName"], Name=state["name"])


class FunctionUrl:
    token = "aws:lambda/functionUrl:FunctionUrl"
    computed = ("functionArn", "functionUrl", "urlId")

    def __init__(self, aws: Aws):
        self.aws = aws

    def _target(self, inputs: dict[str, Any]) -> dict[str, str]:
        return {
            "FunctionName": inputs["functionName"],
            **({"Qualifier": inputs["qualifier"]} if inputs.get("qualifier") else {}),
        }

    def create(self, name: str, inputs: dict[str, Any], ctx: Context) -> tuple[str, dict[str, Any]]:
        lambda_ = self.aws.client("lambda", ctx.region)
        url = _call(lambda_.create_function_url_config, AuthType=inputs["authorizationType"], **self._target(inputs))
        resource_id = "/".join(filter(None, (inputs["functionName"], inputs.get("qualifier"))))
        return resource_id, self._outputs(inputs, url)

    def _outputs(self, inputs: dict[str, Any], url: dict[str, Any]) -> dict[str, Any]:
        return {
            **inputs,
            "functionArn": url["FunctionArn"],
            "functionUrl": url["FunctionUrl"],
            "urlId": url["FunctionUrl"].split("://", 1)[-1].split(".", 1)[0],
        }

    def read(self, resource_id: str, inputs: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
        lambda_ = self.aws.client("lambda", ctx.region)
        try:
            return self._outputs(inputs, lambda_.get_function_url_config(**self._target(inputs)))
        except lambda_.exceptions.ResourceNotFoundException:
            return None

    def update(self, resource_id: str, olds: dict[str, Any], news: dict[str, Any], ctx: Context) -> dict[str, Any]:
        lambda_ = self.aws.client("lambda", ctx.region)
        url = _call(lambda_.update_function_url_config, AuthType=news["authorizationType"], **self._target(news))
        return self._outputs(news, url)

    def delete(self, resource_id: str, state: dict[str, Any], ctx: Context) -> None:
        _call(self.aws.client("lambda", ctx.region).delete_function_url_config, **self._target(state))


# ---- CloudWatch --------------------------------------------------------------------------------


class LogGroup:
    token = "aws:cloudwatch/logGroup:LogGroup"
    computed = ("arn", "tagsAll")

    def __init__(self, aws: Aws):
        self.aws = aws

    def create(self, name: str, inputs: dict[str, Any], ctx: Context) -> tuple[str, dict[str, Any]]:
        logs = self.aws.client("logs", ctx.region)
        kwargs: dict[str, Any] = {"logGroupName": inputs["name"], "tags": tags_all(inputs, ctx)}
        if inputs.get("kmsKeyId"):
            kwargs["kmsKeyId"] = inputs["kmsKeyId"]
        _call(logs.create_log_group, **kwargs)
        if inputs.get("retentionInDays"):
            _call(
                logs.put_retention_policy, logGroupName=inputs["name"], retentionInDays=int(inputs["retentionInDays"])
            )
        found = self.read(inputs["name"], inputs, ctx)
        assert found is not None, "a log group the emulator just created"
        return inputs["name"], found

    def read(self, resource_id: str, inputs: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
        groups = self.aws.client("logs", ctx.region).describe_log_groups(logGroupNamePrefix=resource_id)["logGroups"]
        group = next((g for g in groups if g["logGroupName"] == resource_id), None)
        if group is None:
            return None
        # the API's ARN ends in `:*`; the provider's `arn` does not
        return {**inputs, "arn": group["arn"].removesuffix(":*"), "tagsAll": tags_all(inputs, ctx)}

    def update(self, resource_id: str, olds: dict[str, Any], news: dict[str, Any], ctx: Context) -> dict[str, Any]:
        logs = self.aws.client("logs", ctx.region)
        if _changed(olds, news, "retentionInDays"):
            if news.get("retentionInDays"):
                _call(logs.put_retention_policy, logGroupName=resource_id, retentionInDays=int(news["retentionInDays"]))
            else:
                _call(logs.delete_retention_policy, logGroupName=resource_id)
        found = self.read(resource_id, news, ctx)
        if found is None:
            raise AwsError(f"UpdateLogGroup: ResourceNotFoundException: {resource_id}")
        return found

    def delete(self, resource_id: str, state: dict[str, Any], ctx: Context) -> None:
        _call(self.aws.client("logs", ctx.region).delete_log_group, logGroupName=resource_id)


class MetricAlarm:
    token = "aws:cloudwatch/metricAlarm:MetricAlarm"
    computed = ("arn", "tagsAll")

    def __init__(self, aws: Aws):
        self.aws = aws

    def create(self, name: str, inputs: dict[str, Any], ctx: Context) -> tuple[str, dict[str, Any]]:
        return inputs["name"], self.update(inputs["name"], {}, inputs, ctx)

    def _put(self, inputs: dict[str, Any], ctx: Context) -> None:
        optional = {
            "AlarmDescription": inputs.get("alarmDescription"),
            "Namespace": inputs.get("namespace"),
            "MetricName": inputs.get("metricName"),
            "Statistic": inputs.get("statistic"),
            "Period": int(inputs["period"]) if inputs.get("period") is not None else None,
            "Threshold": float(inputs["threshold"]) if inputs.get("threshold") is not None else None,
            "TreatMissingData": inputs.get("treatMissingData"),
            "AlarmActions": inputs.get("alarmActions"),
            "OKActions": inputs.get("okActions"),
            "Dimensions": [{"Name": k, "Value": v} for k, v in sorted((inputs.get("dimensions") or {}).items())]
            or None,
        }
        _call(
            self.aws.client("cloudwatch", ctx.region).put_metric_alarm,
            AlarmName=inputs["name"],
            ComparisonOperator=inputs["comparisonOperator"],
            EvaluationPeriods=int(inputs["evaluationPeriods"]),
            ActionsEnabled=bool(inputs.get("actionsEnabled", True)),
            Tags=_tag_list(tags_all(inputs, ctx)),
            **{k: v for k, v in optional.items() if v is not None},
        )

    def read(self, resource_id: str, inputs: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
        alarms = self.aws.client("cloudwatch", ctx.region).describe_alarms(AlarmNames=[resource_id])["MetricAlarms"]
        if not alarms:
            return None
        return {**inputs, "arn": alarms[0]["AlarmArn"], "tagsAll": tags_all(inputs, ctx)}

    def update(self, resource_id: str, olds: dict[str, Any], news: dict[str, Any], ctx: Context) -> dict[str, Any]:
        self._put(news, ctx)
        found = self.read(resource_id, news, ctx)
        assert found is not None, "an alarm the emulator just stored"
        return found

    def delete(self, resource_id: str, state: dict[str, Any], ctx: Context) -> None:
        _call(self.aws.client("cloudwatch", ctx.region).delete_alarms, AlarmNames=[resource_id])


# ---- ECR as a registry: the docker-build push and the registry lookups --------------------------


@dataclass
class EcrRef:
    """`<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag][@digest]`."""

    host: str
    account: str
    region: str
    repository: str
    tag: str
    digest: str

    @classmethod
    def parse(cls, ref: str) -> EcrRef:
        name, _, digest = ref.partition("@")
        host, _, path = name.partition("/")
        match = ECR_HOST.match(host)
        if match is None or not path:
            raise AwsError(f"{ref}: not an ECR image reference (the only registry the tier emulates)")
        repository, _, tag = path.partition(":")
        return cls(host, match["account"], match["region"], repository, tag, digest)


def registry_password(aws: Aws, account: str, region: str) -> str:
    """The password in the registry's current GetAuthorizationToken answer (the token is `AWS:<password>`)."""
    ecr = aws.client("ecr", region)
    token = _call(ecr.get_authorization_token, registryIds=[account])["authorizationData"][0]["authorizationToken"]
    return base64.b64decode(token).decode().split(":", 1)[1]


def require_credentials(aws: Aws, ref: EcrRef, registries: list[dict[str, Any]], action: str) -> None:
    """ECR serves a private repository only to a client with the registry's token (user `AWS`); without one a
    push or a manifest lookup gets 401 (https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry_auth.html)."""
    entry = next((r for r in registries if str(r.get("address", "")).removeprefix("https://") == ref.host), None)
    if (
        entry is None
        or entry.get("username") != "AWS"
        or entry.get("password") != registry_password(aws, ref.account, ref.region)
    ):
        raise AwsError(
            f"{action} {ref.host}/{ref.repository}: 401 Unauthorized: no basic auth credentials for {ref.host}"
        )


def _context_digest(inputs: dict[str, Any]) -> str:
    """sha256 over the build context's files (names and bytes), as BuildKit's context transfer sees them."""
    location = (inputs.get("context") or {}).get("location") or ""
    digest = hashlib.sha256()
    if location and os.path.isdir(location):
        for root, dirs, files in os.walk(location):
            dirs[:] = sorted(d for d in dirs if d not in {".git", "__pycache__", ".venv"})
            for file in sorted(files):
                path = os.path.join(root, file)
                digest.update(os.path.relpath(path, location).encode() + b"\0")
                with open(path, "rb") as fh:
                    digest.update(hashlib.sha256(fh.read()).digest())
    return "sha256:" + digest.hexdigest()


def image_manifest(inputs: dict[str, Any], kind: str = "image") -> str:
    """A small OCI image manifest whose config and layer digests derive from the build's inputs (what the
    build would produce) and never from credentials or where the cache goes."""
    build = {k: inputs.get(k) for k in ("dockerfile", "platforms", "buildArgs", "target", "labels", "context")}
    platform = (inputs.get("platforms") or ["linux/amd64"])[0]
    config = json.dumps(
        {
            "architecture": platform.split("/")[1],
            "os": platform.split("/")[0],
            "config": {"Labels": inputs.get("labels") or {}},
            "modelops.standin/build": hashlib.sha256(json.dumps(build, sort_keys=True).encode()).hexdigest(),
            "modelops.standin/kind": kind,
        },
        sort_keys=True,
    ).encode()
    layer = _context_digest(inputs)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
            "size": len(config),
        },
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 1024}],
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"))


def push(aws: Aws, ref: EcrRef, manifest: str) -> str:
    """PutImage of `manifest` under `ref.tag`; returns the image digest ECR computed. An immutable tag that
    exists is refused with ECR's ImageTagAlreadyExistsException (the documented wildcard rule decides which
    tags an exclusion filter makes mutable; moto's own check stays behind it)."""
    ecr = aws.client("ecr", ref.region)
    repository = _call(ecr.describe_repositories, repositoryNames=[ref.repository])["repositories"][0]
    existing = ecr.batch_get_image(repositoryName=ref.repository, imageIds=[{"imageTag": ref.tag}])["images"]
    if existing:
        same = existing[0]["imageManifest"] == manifest
        if not tag_is_mutable(repository, ref.tag):
            raise AwsError(
                f"PutImage: ImageTagAlreadyExistsException: The image tag '{ref.tag}' already exists in the "
                f"'{ref.repository}' repository and cannot be overwritten because the repository is immutable."
            )
        if same:  # a registry push of identical bytes to a mutable tag changes nothing
            return existing[0]["imageId"]["imageDigest"]
    answer = _call(
        ecr.put_image,
        repositoryName=ref.repository,
        imageManifest=manifest,
        imageManifestMediaType=OCI_MANIFEST,
        imageTag=ref.tag,
        imageDigest=manifest_digest(manifest),
    )
    return answer["image"]["imageId"]["imageDigest"]


def manifest_digest(manifest: str) -> str:
    """An image's digest is the sha256 of its manifest's bytes (the OCI image spec, descriptors); moto would
    hash the layer digests instead, so the push names it (PutImage's `imageDigest`)."""
    return "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()


class Image:
    """docker-build's Image: "builds" a manifest from the inputs and pushes it through ECR's API."""

    token = "docker-build:index:Image"
    computed = ("digest", "ref", "contextHash")
    changes_on_update = ("digest", "ref", "contextHash")

    def __init__(self, aws: Aws):
        self.aws = aws

    def create(self, name: str, inputs: dict[str, Any], ctx: Context) -> tuple[str, dict[str, Any]]:
        outputs = self.update(name, {}, inputs, ctx)
        return outputs["ref"] or outputs["digest"], outputs

    def update(self, resource_id: str, olds: dict[str, Any], news: dict[str, Any], ctx: Context) -> dict[str, Any]:
        manifest = image_manifest(news)
        digest = manifest_digest(manifest)
        registries = news.get("registries") or []
        tags = list(news.get("tags") or [])
        if news.get("push"):
            for tag in tags:
                ref = EcrRef.parse(tag)
                require_credentials(self.aws, ref, registries, "push to")
                digest = push(self.aws, ref, manifest)
            self._export_caches(news, registries)
        ref_out = f"{tags[0]}@{digest}" if tags else ""
        return {**news, "digest": digest, "ref": ref_out, "contextHash": _context_digest(news)[7:]}

    def _export_caches(self, inputs: dict[str, Any], registries: list[dict[str, Any]]) -> None:
        """`cacheTo` registry exports: the cache is a manifest of its own under its (mutable) cache tag,
        rewritten by every build; `ignoreError` makes a refused export a warning, as BuildKit does."""
        for cache in inputs.get("cacheTo") or []:
            registry = cache.get("registry")
            if not registry:
                continue
            try:
                ref = EcrRef.parse(registry["ref"])
                require_credentials(self.aws, ref, registries, "export cache to")
                push(self.aws, ref, image_manifest(inputs, kind="buildkit-cache"))
            except AwsError:
                if not registry.get("ignoreError"):
                    raise

    def read(self, resource_id: str, inputs: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
        """A refresh asks the registry for each pushed tag and keeps only those it holds, so that the next
        update pushes the missing ones again (pulumi-docker-build's Image docs, "Tag deletion and refreshes")."""
        if not inputs.get("push"):
            return dict(inputs)
        held = []
        for tag in inputs.get("tags") or []:
            ref = EcrRef.parse(tag)
            ecr = self.aws.client("ecr", ref.region)
            with contextlib.suppress(ecr.exceptions.RepositoryNotFoundException):
                if ecr.batch_get_image(repositoryName=ref.repository, imageIds=[{"imageTag": ref.tag}])["images"]:
                    held.append(tag)
        return {**inputs, "tags": held}

    def delete(self, resource_id: str, state: dict[str, Any], ctx: Context) -> None:
        """pulumi-docker-build's Image docs ("Tag deletion and refreshes", pulumi_docker_build/image.py): "When
        a `Image` is deleted, it will _attempt_ to also delete any pushed tags" unless `retainOnDelete` (the
        engine then never calls Delete). Deletion is an attempt: a tag already gone is not an error."""
        if not state.get("push"):
            return
        for tag in state.get("tags") or []:
            ref = EcrRef.parse(tag)
            ecr = self.aws.client("ecr", ref.region)
            with contextlib.suppress(ecr.exceptions.RepositoryNotFoundException):
                ecr.batch_delete_image(repositoryName=ref.repository, imageIds=[{"imageTag": ref.tag}])


# ---- invokes ----------------------------------------------------------------------------------


def _partition(region: str) -> dict[str, str]:
    partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
    suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return {"partition": partition, "dnsSuffix": suffix, "id": partition, "reverseDnsPrefix": "com.amazonaws"}


class Invokes:
    """The data sources the program calls, answered from the emulator."""

    def __init__(self, aws: Aws):
        self.aws = aws
        self.handlers: dict[str, Callable[[dict[str, Any], Context, dict[str, Any]], dict[str, Any]]] = {
            "aws:ecr/getAuthorizationToken:getAuthorizationToken": self.authorization_token,
            "aws:index/getPartition:getPartition": lambda args, ctx, cfg: _partition(ctx.region),
            "aws:ecr/getImages:getImages": self.images,
            "aws:ecr/getImage:getImage": self.image,
            "aws:ecr/getRepositories:getRepositories": self.repositories,
            "aws:ecr/getRepository:getRepository": self.repository,
            "docker:index/getRegistryImage:getRegistryImage": self.registry_image,
        }

    def call(self, token: str, args: dict[str, Any], ctx: Context, config: dict[str, Any]) -> dict[str, Any]:
        if token not in self.handlers:
            raise AwsError(f"the stand-in does not answer the invoke {token}")
        return self.handlers[token](args, ctx, config)

    def authorization_token(self, args: dict[str, Any], ctx: Context, config: dict[str, Any]) -> dict[str, Any]:
        ecr = self.aws.client("ecr", ctx.region)
        kwargs = {"registryIds": [args["registryId"]]} if args.get("registryId") else {}
        data = _call(ecr.get_authorization_token, **kwargs)["authorizationData"][0]
        user, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
        registry = data["proxyEndpoint"].removeprefix("https://").split(".", 1)[0]
        return {
            "authorizationToken": data["authorizationToken"],
            "expiresAt": data["expiresAt"].isoformat(),
            "id": ctx.region,
            "password": password,
            "proxyEndpoint": data["proxyEndpoint"],
            "registryId": args.get("registryId") or registry,
            "userName": user,
        }

    def images(self, args: dict[str, Any], ctx: Context, config: dict[str, Any]) -> dict[str, Any]:
        ecr = self.aws.client("ecr", ctx.region)
        kwargs = {
            "repositoryName": args["repositoryName"],
            **({"registryId": args["registryId"]} if args.get("registryId") else {}),
        }
        ids = _call(ecr.list_images, **kwargs)["imageIds"]
        return {
            "id": args["repositoryName"],
            "imageIds": [
                {"imageDigest": i["imageDigest"], **({"imageTag": i["imageTag"]} if "imageTag" in i else {})}
                for i in ids
            ],
            "region": ctx.region,
            "repositoryName": args["repositoryName"],
            "registryId": args.get("registryId") or self.aws.account_id(ctx.region),
        }

    def image(self, args: dict[str, Any], ctx: Context, config: dict[str, Any]) -> dict[str, Any]:
        ecr = self.aws.client("ecr", ctx.region)
        image_id = (
            {"imageDigest": args["imageDigest"]}
            if args.get("imageDigest")
            else {"imageTag": args.get("imageTag", "latest")}
        )
        details = _call(ecr.describe_images, repositoryName=args["repositoryName"], imageIds=[image_id])[
            "imageDetails"
        ][0]
        repo = _call(ecr.describe_repositories, repositoryNames=[args["repositoryName"]])["repositories"][0]
        return {
            **args,
            "id": details["imageDigest"],
            "imageDigest": details["imageDigest"],
            "imageTags": details.get("imageTags", []),
            "imagePushedAt": int(details["imagePushedAt"].timestamp()),
            "imageSizeInBytes": details.get("imageSizeInBytes", 0),
            "imageUri": f"{repo['repositoryUri']}@{details['imageDigest']}",
            "registryId": details["registryId"],
        }

    def repositories(self, args: dict[str, Any], ctx: Context, config: dict[str, Any]) -> dict[str, Any]:
        repos = self.aws.client("ecr", ctx.region).describe_repositories()["repositories"]
        return {"id": ctx.region, "names": sorted(r["repositoryName"] for r in repos), "region": ctx.region}

    def repository(self, args: dict[str, Any], ctx: Context, config: dict[str, Any]) -> dict[str, Any]:
        ecr = self.aws.client("ecr", ctx.region)
        repo = _call(ecr.describe_repositories, repositoryNames=[args["name"]])["repositories"][0]
        return {
            **args,
            "id": repo["repositoryName"],
            "arn": repo["repositoryArn"],
            "registryId": repo["registryId"],
            "repositoryUrl": repo["repositoryUri"],
            "imageTagMutability": repo.get("imageTagMutability", "MUTABLE"),
        }

    def registry_image(self, args: dict[str, Any], ctx: Context, config: dict[str, Any]) -> dict[str, Any]:
        """pulumi-docker's getRegistryImage: the tag's manifest digest, read with the provider's registryAuth."""
        if not ECR_HOST.match(args["name"].partition("/")[0]):
            # A public registry the tier cannot reach (nvcr.io's DCGM exporter, pinned by every GPU pool): a digest
            # derived from the ref, as the offline mocks answer (modelops_cli/offline/mocks.py). Only ECR is emulated.
            digest = "sha256:" + hashlib.sha256(f"offline:{args['name']}".encode()).hexdigest()
            return {"name": args["name"], "sha256Digest": digest, "id": digest, "insecureSkipVerify": False}
        ref = EcrRef.parse(args["name"])
        require_credentials(self.aws, ref, config.get("registryAuth") or [], "read manifest of")
        ecr = self.aws.client("ecr", ref.region)
        image_id = {"imageDigest": ref.digest} if ref.digest else {"imageTag": ref.tag or "latest"}
        details = _call(ecr.describe_images, repositoryName=ref.repository, imageIds=[image_id])["imageDetails"][0]
        return {
            "name": args["name"],
            "sha256Digest": details["imageDigest"],
            "id": details["imageDigest"],
            "insecureSkipVerify": bool(args.get("insecureSkipVerify", False)),
        }


HANDLERS = (
    Repository,
    LifecyclePolicy,
    Role,
    RolePolicy,
    RolePolicyAttachment,
    Function,
    Alias,
    FunctionUrl,
    LogGroup,
    MetricAlarm,
    Image,
)
