"""Images, registries, serverless, storage and IAM rules (Checkov and Pulumi compliance anchors)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from .framework import StackResource, is_full_digest, resource_rule, split_image, stack_rule
from .standards import doc, fsbp
from .values import as_list, as_map

ECR_REPOSITORY = "aws:ecr/repository:Repository"
ECR_POLICY = "aws:ecr/repositoryPolicy:RepositoryPolicy"
ECR_LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
LAMBDA_FUNCTION = "aws:lambda/function:Function"
IAM_POLICY_TYPES = {
    "aws:iam/policy:Policy",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
}
BUCKET_TYPES = {"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"}
_READ_VERBS = ("Get", "List", "Describe", "Head", "BatchGet", "Query", "Scan", "Search", "View", "Lookup", "Select")


def _statements(policy: Any) -> list[Mapping[str, Any]] | None:
    """Statements of a policy document given as JSON text or as an object; None when it is neither, or when the text
    repeats a key: Python keeps the last of two `Action`s (or `Statement`s), which one IAM reads is not documented,
    so a document that could be read two ways is not judged one way (it is refused)."""
    if isinstance(policy, str):
        try:
            policy = json.loads(policy, object_pairs_hook=_unique_keys)
        except (json.JSONDecodeError, _RepeatedKey, RecursionError):
            return None
    if not isinstance(policy, Mapping):
        return None
    statements = policy.get("Statement")
    if isinstance(statements, Mapping):
        return [statements]
    return [as_map(s) for s in as_list(statements)]


class _RepeatedKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _RepeatedKey(keys)
    return dict(pairs)


def _listed(value: Any) -> list[Any]:
    return list(as_list(value)) if not isinstance(value, str | Mapping) else [value]


def _public_principal(statement: Mapping[str, Any]) -> bool:
    """Principal '*' (or AWS '*'), or NotPrincipal with Allow: everyone but those listed, a combination AWS calls
    unsupported (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html)."""
    if "NotPrincipal" in list(statement):
        return True
    principal = statement.get("Principal")
    if principal == "*":
        return True
    return "*" in _listed(as_map(principal).get("AWS"))


CACHE_TAG_PREFIX = "buildcache-"
"""The one tag namespace that may stay mutable: BuildKit layer caches, which every build overwrites and no
workload or function runs (the program's ModelImage keeps them there; a test holds the two equal)."""


@resource_rule("ecr-immutable-tags", "ECR repositories must have immutable tags.", implements=(fsbp("ECR.2"),))
def ecr_immutable_tags(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    if resource_type != ECR_REPOSITORY:
        return
    mutability = props.get("imageTagMutability", "MUTABLE")
    if mutability == "IMMUTABLE_WITH_EXCLUSION":
        filters = [as_map(f).get("filter") for f in _listed(props.get("imageTagMutabilityExclusionFilters"))]
        loose = [f for f in filters if not (isinstance(f, str) and f.startswith(CACHE_TAG_PREFIX))]
        if loose:
            yield (
                f"imageTagMutabilityExclusionFilters {loose} leave tags that can name images mutable; only "
                f"build-cache tags ({CACHE_TAG_PREFIX}*) may move"
            )
    elif mutability != "IMMUTABLE":
        yield (
            f"imageTagMutability is {props.get('imageTagMutability', 'MUTABLE (default)')}; set IMMUTABLE so a "
            "tag always names the same image"
        )


@resource_rule("ecr-scan-on-push", "ECR repositories must scan images on push.", implements=(fsbp("ECR.1"),))
def ecr_scan_on_push(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    if (
        resource_type == ECR_REPOSITORY
        and as_map(props.get("imageScanningConfiguration")).get("scanOnPush") is not True
    ):
        yield "imageScanningConfiguration.scanOnPush is not true; set it"


@resource_rule(
    "ecr-not-public",
    "ECR repository policies must not grant Principal '*'.",
    implements=(
        doc(
            "Amazon ECR",
            "repository policies",
            "https://docs.aws.amazon.com/AmazonECR/latest/userguide/repository-policies.html",
        ),
    ),
)
def ecr_not_public(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    if resource_type != ECR_POLICY:
        return
    statements = _statements(props.get("policy"))
    if statements is None:
        yield "policy is not a JSON policy document; it cannot be judged, so it is refused"
        return
    for statement in statements:
        if statement.get("Effect", "Allow") == "Allow" and _public_principal(statement):
            yield "policy grants Principal '*'; name the accounts or roles that may pull"


@resource_rule(
    "lambda-url-iam",
    "Lambda function URLs must use AWS_IAM auth and no wildcard CORS origin.",
    implements=(
        fsbp("Lambda.1"),
        doc("AWS Lambda", "function URL auth", "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"),
    ),
)
def lambda_url_iam(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    if resource_type != "aws:lambda/functionUrl:FunctionUrl":
        return
    if props.get("authorizationType") != "AWS_IAM":
        yield f"authorizationType is {props.get('authorizationType')}; set AWS_IAM (NONE opens the model to anyone)"
    if "*" in _listed(as_map(props.get("cors")).get("allowOrigins")):
        yield "cors.allowOrigins contains '*'; list the origins that may call the model"


@resource_rule(
    "lambda-permission-scoped", "Lambda permissions must name a principal and a source.", implements=(fsbp("Lambda.1"),)
)
def lambda_permission_scoped(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    if resource_type != "aws:lambda/permission:Permission":
        return
    if props.get("principal") == "*":
        yield "principal is '*'; name the service or account"
    if not props.get("sourceArn") and not props.get("sourceAccount"):
        yield "neither sourceArn nor sourceAccount is set; any resource of that principal could invoke it"


@resource_rule(
    "lambda-image-pinned",
    "Image Lambdas must run a digest-pinned image from the stack's ECR.",
    settings={
        "repositoryPrefixes": {
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "ECR prefixes the stack's functions may run from.",
        }
    },
    implements=(
        doc("AWS Lambda", "container images", "https://docs.aws.amazon.com/lambda/latest/dg/images-create.html"),
    ),
)
def lambda_image_pinned(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    if resource_type != LAMBDA_FUNCTION or props.get("packageType") != "Image":
        return
    image = str(props.get("imageUri") or "")
    prefixes = [str(p) for p in as_list(settings.get("repositoryPrefixes"))]
    if not any(image.startswith(p) for p in prefixes):
        yield f"imageUri {image} is outside the stack's ECR repositories ({', '.join(prefixes) or 'none configured'})"
    _, tag, digest = split_image(image)
    if not is_full_digest(digest):
        yield f"imageUri {image} is not pinned by a full digest; use repo@sha256:<64 hex digits>"
    elif tag is not None:
        # Lambda takes `repo:tag` or `repo@sha256:…`; it refuses `repo:tag@sha256:…` at create.
        yield f"imageUri {image} names both a tag and a digest, which Lambda refuses; use repo@sha256:…"


@stack_rule("ecr-lifecycle-policy", "ECR repositories must have a lifecycle policy.", implements=(fsbp("ECR.3"),))
def ecr_lifecycle_policy(resources: list[StackResource], settings: dict) -> Iterator[tuple[StackResource, str]]:
    governed = {r.props.get("repository") for r in resources if r.type == ECR_LIFECYCLE}
    for repository in resources:
        if repository.type == ECR_REPOSITORY and repository.props.get("name", repository.name) not in governed:
            yield (
                repository,
                (
                    "no lifecycle policy names this repository: every pushed image (and build cache) is "
                    "kept, and billed, forever; add an aws.ecr.LifecyclePolicy"
                ),
            )


@resource_rule(
    "lambda-tracing", "Functions must have active X-Ray tracing.", implements=(fsbp("Lambda.7", "Security Hub"),)
)
def lambda_tracing(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    if resource_type == LAMBDA_FUNCTION and as_map(props.get("tracingConfig")).get("mode") != "Active":
        yield "tracingConfig.mode is not Active; a failing fallback leaves no trace of where it failed; set Active"


CLOUDWATCH_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


@resource_rule(
    "cloudwatch-alarm-actions",
    "CloudWatch alarms must notify someone when they fire.",
    implements=(
        fsbp("CloudWatch.15", "Security Hub"),
        doc(
            "AWS Config",
            "cloudwatch-alarm-action-check",
            "https://docs.aws.amazon.com/config/latest/developerguide/cloudwatch-alarm-action-check.html",
        ),
    ),
)
def cloudwatch_alarm_actions(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    if resource_type != CLOUDWATCH_ALARM:
        return
    if props.get("actionsEnabled") is False:
        yield "actionsEnabled is false: the alarm changes state and nothing happens; remove it or enable its actions"
    elif not as_list(props.get("alarmActions")):
        yield (
            "no alarmActions: the alarm fires and notifies nobody; give it an SNS topic "
            "(modelops:cluster.alarmTopicArn for the fallbacks' alarms)"
        )


@resource_rule(
    "lambda-concurrency-cap",
    "Fallback functions must reserve (and so cap) their concurrency.",
    implements=(
        doc(
            "AWS Lambda",
            "reserved concurrency",
            "https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html",
        ),
    ),
)
def lambda_concurrency_cap(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    if resource_type == LAMBDA_FUNCTION and props.get("reservedConcurrentExecutions") in (None, -1):
        yield "reservedConcurrentExecutions is not set; a runaway fallback is a runaway bill; set a cap"


AWS_MANAGED_POLICY = re.compile(r"arn:[^:]*:iam::aws:policy/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)", re.IGNORECASE)
NARROW_MANAGED_POLICIES = frozenset(
    {
        "AWSXRayDaemonWriteAccess",  # the fallbacks' traces: xray:Put* and sampling reads
        "AWSXrayWriteOnlyAccess",  # the same actions, its older name
        "AWSLambdaBasicExecutionRole",  # logs:CreateLogGroup/CreateLogStream/PutLogEvents
        "AWSLambdaVPCAccessExecutionRole",  # the above and the ENI actions a VPC function needs
        "CloudWatchLambdaInsightsExecutionRolePolicy",  # logs for the Lambda Insights group only
    }
)
"""AWS managed policies known to grant no service wildcard and no data read: every other one is refused. A list of
wide ones cannot be complete (SecretsManagerReadWrite is `secretsmanager:*` on `*`, AmazonSSMReadOnlyAccess and
AmazonDynamoDBReadOnlyAccess read every parameter and item, as an independent review found beside AdministratorAccess,
PowerUserAccess, the *FullAccess and job-function policies:
https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_job-functions.html). Security Hub IAM.1/IAM.21 judge
customer policies only; attaching a wide AWS one is a service wildcard by another name. A policy of the account's own
(`arn:aws:iam::<account>:policy/…`) is judged by its document where the stack holds it."""


def wide_managed_policy(arn: str) -> bool:
    found = AWS_MANAGED_POLICY.fullmatch(arn.strip())
    return found is not None and found.group(1) not in NARROW_MANAGED_POLICIES


ATTACHMENT_TYPES = {
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "policyArn",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment": "policyArn",
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment": "policyArn",
    "aws:iam/policyAttachment:PolicyAttachment": "policyArn",
    "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive": "policyArns",
    "aws:iam/userPolicyAttachmentsExclusive:UserPolicyAttachmentsExclusive": "policyArns",
    "aws:iam/groupPolicyAttachmentsExclusive:GroupPolicyAttachmentsExclusive": "policyArns",
    "aws:iam/role:Role": "managedPolicyArns",
}
"""Every resource of the locked pulumi-aws (7.x, `pulumi_aws/iam/`) that attaches managed policies, with the input
naming them. The *PoliciesExclusive types name inline policies only (their documents are RolePolicy,
UserPolicy and GroupPolicy resources, judged as such)."""


def _policy_documents(resource_type: str, props: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(where, document) for every policy document a resource carries."""
    if resource_type in IAM_POLICY_TYPES:
        yield "policy", props.get("policy")
    if resource_type == "aws:iam/role:Role":
        for i, inline in enumerate(as_list(props.get("inlinePolicies"))):
            if as_map(inline).get("policy") is not None:  # an empty block only clears the role's inline policies
                yield f"inlinePolicies[{i}].policy", as_map(inline).get("policy")


def _managed_arns(resource_type: str, props: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    field = ATTACHMENT_TYPES.get(resource_type)
    if field is None:
        return
    value = props.get(field)
    if isinstance(value, str):
        yield field, value
        return
    for i, arn in enumerate(as_list(value)):
        yield f"{field}[{i}]", str(arn)


@resource_rule(
    "iam-no-wildcard",
    "IAM policies must not allow Action '*', a service's every action ('s3:*'), NotAction or NotResource, nor "
    "data reads or writes on every resource, nor iam:PassRole on any role without a condition; nor attach a wide "
    "AWS managed policy.",
    implements=(fsbp("IAM.1"), fsbp("IAM.21")),
)
def iam_no_wildcard(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for where, arn in _managed_arns(resource_type, props):
        if wide_managed_policy(arn):
            yield (
                f"{where} attaches {arn}, an AWS managed policy not known to be narrow "
                f"({', '.join(sorted(NARROW_MANAGED_POLICIES))}); attach a policy listing what is needed"
            )
    for where, document in _policy_documents(resource_type, props):
        statements = _statements(document)
        if statements is None:
            yield f"{where} is not a JSON policy document; it cannot be judged, so it is refused"
            continue
        for i, statement in enumerate(statements):
            yield from (f"{where} {m}" for m in _statement_findings(i, statement))
    if resource_type == "aws:iam/role:Role" and props.get("assumeRolePolicy") is not None:
        statements = _statements(props.get("assumeRolePolicy"))
        if statements is None:
            yield "assumeRolePolicy is not a JSON policy document; it cannot be judged, so it is refused"
            return
        for i, statement in enumerate(statements):
            yield from (f"assumeRolePolicy {m}" for m in _trust_findings(i, statement))
    if resource_type in RESOURCE_POLICY_TYPES and props.get("policy") is not None:
        yield from _resource_policy_findings(props.get("policy"))


RESOURCE_POLICY_TYPES = (
    "aws:kms/key:Key",
    "aws:kms/keyPolicy:KeyPolicy",
    "aws:secretsmanager/secretPolicy:SecretPolicy",
    "aws:sns/topicPolicy:TopicPolicy",
    "aws:sqs/queuePolicy:QueuePolicy",
)
"""Resource policies no other rule reads (ECR's and S3's have their own): who may use the key, secret, topic or
queue. Their `kms:*` on `*` is the usual key policy for the account itself (Resource `*` is the key), so only the
principal is judged here."""


def _resource_policy_findings(policy: Any) -> Iterator[str]:
    statements = _statements(policy)
    if statements is None:
        yield "policy is not a JSON policy document; it cannot be judged, so it is refused"
        return
    for i, statement in enumerate(statements):
        narrowing = list(_narrowing_conditions(statement))
        if (
            statement.get("Effect", "Allow") == "Allow"
            and _public_principal(statement)
            and not any(key.lower() in PRINCIPAL_KEYS for key, _ in narrowing)
        ):
            yield (
                f"policy Statement[{i}] grants any AWS principal (Principal '*' or NotPrincipal); name the principals, "
                "or narrow it by aws:PrincipalOrgID, aws:PrincipalAccount or aws:PrincipalArn"
            )


PRINCIPAL_KEYS = (
    "aws:principalorgid",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:sourceaccount",
    "aws:sourcearn",
)
"""Condition keys that name who may act, narrowing Principal '*' (any other condition, aws:SecureTransport say,
leaves it anyone: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html)."""


def _trust_findings(i: int, statement: Mapping[str, Any]) -> Iterator[str]:
    """Who may assume the role: not anyone (Principal '*' without a Condition), and, through an EKS cluster's
    OIDC provider, only the service account named by a `<issuer>:sub` condition without wildcards: with `aud`
    alone every service account of the cluster may assume it
    (https://docs.aws.amazon.com/eks/latest/userguide/associate-service-account-role.html)."""
    if statement.get("Effect", "Allow") != "Allow":
        return
    narrowing = list(_narrowing_conditions(statement))
    if _public_principal(statement) and not any(key.lower() in PRINCIPAL_KEYS for key, _ in narrowing):
        yield (
            f"Statement[{i}] lets any AWS principal assume the role; name the principals (or narrow Principal '*' "
            "by aws:PrincipalOrgID, aws:PrincipalAccount or aws:PrincipalArn)"
        )
    federated = [str(f) for f in _listed(as_map(statement.get("Principal")).get("Federated"))]
    if not any(":oidc-provider/" in f for f in federated):
        return
    subjects = [value for key, values in narrowing if key.endswith(":sub") for value in values]
    if not subjects:
        yield (
            f"Statement[{i}] trusts the cluster's OIDC provider without a `:sub` condition naming service accounts "
            "(StringEquals or StringLike): every service account may assume the role"
        )
    elif any("*" in str(v) or "?" in str(v) for v in subjects):
        yield f"Statement[{i}] trusts service accounts {subjects} by pattern; name the one service account"


DATA_ACTIONS = re.compile(
    r"s3:(Get|Put|Delete|List)\w*|s3-object-lambda:\w+|secretsmanager:GetSecretValue|ssm:GetParameters?\w*"
    r"|kms:(Decrypt|GenerateDataKey\w*)|dynamodb:(Get|BatchGet|Query|Scan|Put|Update|Delete|BatchWrite)\w*"
    r"|sqs:(ReceiveMessage|SendMessage)|ecr:(BatchGetImage|GetDownloadUrlForLayer)|iam:PassRole",
    re.IGNORECASE,
)
"""Actions that read or hand over data (objects, secrets, parameters, keys, items, messages, images, roles):
granted on every resource, a prefix-scoped role becomes one for every bucket, secret or key of the account."""


def is_wide_resource(resource: str) -> bool:
    """Whether a Resource covers every resource of its type: `*`, an ARN whose resource part is a wildcard
    (`arn:aws:dynamodb:*:*:table/*`, `arn:aws:iam::123456789012:role/*`), or an S3 ARN with a wildcard in the
    bucket name (`arn:aws:s3:::*/*`, `arn:aws:s3:::*`, `arn:aws:s3:::model*/x`): a bucket ARN's first segment is
    the bucket (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html)."""
    resource = resource.strip()
    if resource in ("*", "arn:*"):
        return True
    parts = resource.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return False
    service, remainder = parts[2], parts[5]
    if service in ("*", "") or remainder.startswith(("*", "?")):
        return True
    if service == "s3":
        return any(w in remainder.split("/", 1)[0] for w in ("*", "?"))
    for separator in ("/", ":"):
        kind, sep, name = remainder.partition(separator)
        if sep and "/" not in kind and ":" not in kind and name.startswith(("*", "?")):
            return True
    return False


def _statement_findings(i: int, statement: Mapping[str, Any]) -> Iterator[str]:
    """What a statement allows too widely (Security Hub IAM.1: Action '*'; IAM.21: `service:*`, whatever the
    resource: https://docs.aws.amazon.com/securityhub/latest/userguide/iam-controls.html#iam-21): the widest
    grant only, since narrowing it changes what else the statement allows."""
    if statement.get("Effect", "Allow") != "Allow":
        return
    negated = _negated_grant(statement)
    if negated:
        yield f"Statement[{i}] {negated}"
        return
    actions = [str(a).strip().lower() for a in _listed(statement.get("Action"))]
    every_resource = any(is_wide_resource(str(r)) for r in _listed(statement.get("Resource")))
    every_action = _every_action_grant(actions)
    if every_action:
        yield f"Statement[{i}] {every_action}"
    elif every_resource:
        yield from (f"Statement[{i}] {m}" for m in _every_resource_grants(statement, actions))


def _negated_grant(statement: Mapping[str, Any]) -> str | None:
    keys = list(statement)
    if "NotAction" in keys:
        return "allows NotAction: every action but those listed; list the actions allowed instead"
    if "NotResource" in keys:
        return "allows on NotResource: every resource but those listed; list the resources instead"
    return None


def _every_action_grant(actions: list[str]) -> str | None:
    if any(a in ("*", "*:*") or a.startswith("*") for a in actions):
        return "allows Action '*'; list the actions the workload needs"
    # IAM's `*` matches any run of characters and `?` one: `s3:**`, `s3:?*` and `s3:*?` are `s3:*` too
    service_wide = [a for a in actions if _every_action(a.split(":", 1)[-1])]
    if service_wide:
        return f"allows every action of {service_wide}; list the actions the workload needs"
    return None


def _every_resource_grants(statement: Mapping[str, Any], actions: list[str]) -> Iterator[str]:
    """What a statement whose resource is every resource of a kind allows: data reads or writes (then nothing
    more is said), other writes, and iam:PassRole without a narrowing condition."""
    data = [a for a in actions if _covers_data_action(a)]
    if data:
        yield f"allows {data} on every resource of their kind; name the buckets, keys or roles"
        return
    writes = [
        a
        for a in actions
        if a != "iam:passrole" and not a.split(":", 1)[-1].startswith(tuple(v.lower() for v in _READ_VERBS))
    ]
    if writes:
        yield f"allows write actions {writes} on every resource; name the resources"
    # PassRole on any role hands the caller every role of the account to give a service; a Condition
    # (iam:PassedToService) narrows it (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html)
    if "iam:passrole" in actions and not _narrows_pass_role(statement):
        yield (
            "allows iam:PassRole on every role without an iam:PassedToService or "
            "iam:AssociatedResourceArn condition; name the roles"
        )


PASS_ROLE_KEYS = ("iam:passedtoservice", "iam:associatedresourcearn")
"""The condition keys that narrow iam:PassRole (the service, or the resource, a role is passed to):
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#ck_PassedToService."""


def _narrows_pass_role(statement: Mapping[str, Any]) -> bool:
    return any(str(key).lower() in PASS_ROLE_KEYS for key, _ in _narrowing_conditions(statement))


NARROWING_OPERATORS = ("stringequals", "stringlike", "arnequals", "arnlike")
"""Condition operators that can only narrow who or what a statement applies to (with `IfExists` they pass when the
key is absent, and the `Not…` forms admit everything else: neither narrows)
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html)."""


def _narrowing_conditions(statement: Mapping[str, Any]) -> Iterator[tuple[str, list[Any]]]:
    """(key, values) of the conditions that narrow: a positive operator (ForAllValues admits an empty set, so only
    ForAnyValue or none) whose values are not wildcards alone (`"*"` under StringLike narrows nothing;
    `arn:aws:ec2:*` does)."""
    for operator, entries in as_map(statement.get("Condition")).items():
        name = str(operator).lower()
        qualifier, _, base = name.rpartition(":")
        if base not in NARROWING_OPERATORS or qualifier not in ("", "foranyvalue"):
            continue
        for key, values in as_map(entries).items():
            listed = _listed(values)
            if listed and all(str(v).strip("*?") for v in listed):
                yield str(key), listed


def _every_action(name: str) -> bool:
    """An action name part that matches every action of its service: only `*` and `?`, at least one `*` (or
    nothing at all)."""
    return name == "" or ("*" in name and set(name) <= {"*", "?"})


def _covers_data_action(action: str) -> bool:
    """Whether an action (wildcards included: `s3:Get*`, `secretsmanager:Get*Value`) covers a data action."""
    if DATA_ACTIONS.fullmatch(action):
        return action != "iam:passrole"  # judged with its Condition below
    if "*" not in action and "?" not in action:
        return False
    pattern = re.compile(re.escape(action).replace(r"\*", ".*").replace(r"\?", "."), re.IGNORECASE)
    return any(pattern.fullmatch(example) for example in _DATA_EXAMPLES)


_DATA_EXAMPLES = (
    "s3:getobject",
    "s3:putobject",
    "s3:deleteobject",
    "s3:listbucket",
    "secretsmanager:getsecretvalue",
    "ssm:getparameter",
    "kms:decrypt",
    "dynamodb:getitem",
    "dynamodb:scan",
    "sqs:receivemessage",
    "ecr:batchgetimage",
    "iam:passrole",
)


@stack_rule(
    "s3-model-bucket-private",
    "Model buckets must block all public access and grant no Principal '*'.",
    implements=(fsbp("S3.2"), fsbp("S3.3"), fsbp("S3.8")),
)
def s3_model_bucket_private(resources: list[StackResource], settings: dict) -> Iterator[tuple[StackResource, str]]:
    blocks = [r for r in resources if r.type == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"]
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    for bucket in (r for r in resources if r.type in BUCKET_TYPES):
        names = {bucket.name, bucket.urn, str(bucket.props.get("bucket", ""))}
        block = next((b for b in blocks if str(b.props.get("bucket")) in names), None)
        if block is None:
            yield bucket, f"bucket {bucket.name}: no BucketPublicAccessBlock; add one with all four flags true"
        elif not all(block.props.get(f) is True for f in flags):
            off = [f for f in flags if block.props.get(f) is not True]
            yield block, f"bucket {bucket.name}: public access block leaves {', '.join(off)} off; set all four true"
    for policy in (r for r in resources if r.type == "aws:s3/bucketPolicy:BucketPolicy"):
        statements = _statements(policy.props.get("policy"))
        if statements is None:
            yield policy, f"bucket policy {policy.name} is not a JSON policy document; it cannot be judged"
            continue
        for statement in statements:
            if statement.get("Effect", "Allow") == "Allow" and _public_principal(statement):
                yield policy, f"bucket policy {policy.name} grants Principal '*'; name the principals"
