"""What the offline engine answers in place of providers: realistic, deterministic outputs.

Ids, ARNs and URLs are derived from the resource's name, so `.apply()` code runs as it would for real
and two plans of the same stack are identical. What a real preview cannot know either is left
unknown: the digest and reference of an image built in the same update.
"""

from __future__ import annotations

import hashlib

import pulumi

from ..stackfile import SECRET_PLACEHOLDER

UNKNOWN_AT_PREVIEW = {"docker-build:index:Image": {"digest", "ref", "contextHash"}}


def _short(*parts: str, n: int = 7) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:n]


class UnansweredInvoke(Exception):
    """The program called a data source the offline engine does not know how to answer."""


class OfflineMocks(pulumi.runtime.Mocks):
    def __init__(self, account_id: str, region: str, reference_outputs: tuple[str, ...] = ("kubeconfig",)):
        self.account_id = account_id
        self.region = region
        self.reference_outputs = reference_outputs
        """The outputs a StackReference answers with (secret placeholders): the ones the stack config names."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        t, name, inputs = args.typ, args.name, dict(args.inputs)
        suffix = _short(t, name)
        outputs = {k: v for k, v in inputs.items() if k not in UNKNOWN_AT_PREVIEW.get(t, ())}
        resource_id = f"{name}-{suffix}"
        acct, region = self.account_id, self.region
        if t.startswith("pulumi:providers:"):
            resource_id = f"{_short(t, name, n=8)}-offline-provider"
        elif t == "pulumi:pulumi:StackReference":
            output_names = list(self.reference_outputs)
            outputs = {
                "name": inputs.get("name", name),
                "outputs": {o: f"{SECRET_PLACEHOLDER}-{o}" for o in output_names},
                "secretOutputNames": output_names,
            }
            resource_id = inputs.get("name", name)
        elif t == "aws:ecr/repository:Repository":
            repo = inputs.get("name", name)
            outputs.update(
                arn=f"arn:aws:ecr:{region}:{acct}:repository/{repo}",
                registryId=acct,
                repositoryUrl=f"{acct}.dkr.ecr.{region}.amazonaws.com/{repo}",
            )
            resource_id = repo
        elif t == "aws:iam/role:Role":
            role = inputs.get("name") or f"{name}-{suffix}"
            outputs.update(arn=f"arn:aws:iam::{acct}:role/{role}", name=role, uniqueId=f"AROA{suffix.upper()}OFFLINE")
            resource_id = role
        elif t == "aws:lambda/function:Function":
            fn = inputs.get("name") or f"{name}-{suffix}"
            arn = f"arn:aws:lambda:{region}:{acct}:function:{fn}"
            outputs.update(
                arn=arn,
                name=fn,
                version="1",
                qualifiedArn=f"{arn}:1",
                invokeArn=f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations",
            )
            resource_id = fn
        elif t == "aws:lambda/alias:Alias":
            outputs.update(
                arn=f"arn:aws:lambda:{region}:{acct}:function:{inputs.get('functionName')}:{inputs.get('name')}"
            )
        elif t == "aws:lambda/functionUrl:FunctionUrl":
            outputs.update(
                functionUrl=f"https://{_short(t, name, n=32)}.lambda-url.{region}.on.aws/", urlId=_short(t, name, n=32)
            )
        elif t == "aws:cloudwatch/logGroup:LogGroup":
            group = inputs.get("name") or f"{name}-{suffix}"
            outputs.update(arn=f"arn:aws:logs:{region}:{acct}:log-group:{group}", name=group)
            resource_id = group
        elif t.startswith("aws:") and "arn" not in outputs:
            service = t.split(":")[1].split("/")[0]
            outputs["arn"] = f"arn:aws:{service}:{region}:{acct}:{name}-{suffix}"
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:  # type: ignore[override]  # the SDK takes a plain dict too
        token, inputs = args.token, args.args
        if token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            registry = inputs.get("registryId") or self.account_id
            return {
                "authorizationToken": SECRET_PLACEHOLDER,
                "userName": "AWS",
                "password": SECRET_PLACEHOLDER,
                "proxyEndpoint": f"https://{registry}.dkr.ecr.{self.region}.amazonaws.com",
                "expiresAt": "2000-01-01T12:00:00Z",
                "id": self.region,
                "registryId": registry,
            }
        # The offline account holds no images yet: every build is planned as a push.
        if token == "aws:ecr/getRepositories:getRepositories":
            return {"names": [], "id": self.region, "region": self.region}
        if token == "aws:ecr/getImages:getImages":
            return {
                "imageIds": [],
                "id": inputs.get("repositoryName", ""),
                "repositoryName": inputs.get("repositoryName"),
            }
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws", "reverseDnsPrefix": "com.amazonaws"}
        if token == "docker:index/getRegistryImage:getRegistryImage":
            name = inputs.get("name", "")
            digest = "sha256:" + hashlib.sha256(f"offline:{name}".encode()).hexdigest()
            return {"name": name, "sha256Digest": digest, "id": digest, "insecureSkipVerify": False}
        raise UnansweredInvoke(f"the offline engine has no answer for the invoke {token}")
