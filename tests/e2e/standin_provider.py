"""STAND-IN resource provider for the packages the real-engine tier cannot build: aws, docker-build, docker.

pulumi-aws and pulumi-docker embed Terraform providers patched in git submodules, and pulumi-docker-build
is not served by the Go module proxy reachable here, so none of the three can be built from source on
this machine. This plugin speaks the same provider gRPC protocol (CheckConfig, Configure, Check, Diff,
Create, Read, Update, Delete, Invoke) so that the real `pulumi` engine can preview, update and destroy
the whole program, and does the work against an AWS emulator: moto in server mode on 127.0.0.1
(tests/e2e/aws_emulator.py, at AWS_ENDPOINT_URL), so that AWS's own rules answer.

Behaviour, modelled on the real providers:
- `Check` validates inputs against the real providers' input schema (required inputs, types; vendored in
  tests/upstream/pulumi-aws) and auto-names as the Terraform bridge does (tests/e2e/standin_schema.py);
- Create/Read/Update/Delete call the emulator through boto3 (tests/e2e/standin_aws.py): ids, ARNs, versions
  and digests are the emulator's; AWS's errors (MalformedPolicyDocument, ImageTagAlreadyExistsException,
  RepositoryNotEmptyException, ...) fail the step with their code, as the real provider's do; what moto
  lacks and AWS documents is added there, with the documentation (ADDED_RULES);
- the docker-build Image "pushes" a manifest derived from its build inputs through ECR's API and attempts
  to delete its tags on Delete, as pulumi-docker-build does;
- previews of a create return the inputs and leave every computed output unknown, as Terraform-bridged
  providers do (`supportsPreview`);
- properties that Terraform marks ForceNew (names, the repository a policy belongs to, ...) replace the
  resource when they change; everything else updates in place;
- MODELOPS_STANDIN_FAIL_CREATE=<resource name> makes the create of that resource fail, to test recovery.

Run as `python -m tests.e2e.standin_provider <package>` by the `pulumi-resource-<package>` launcher
scripts the harness writes; it prints its port and serves until the engine stops it.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import any_pb2, empty_pb2, json_format, struct_pb2

# google.rpc.Status as the SDK registers it: a second copy (google.rpc.status_pb2) collides in one process
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc, status_pb2

from tests.e2e import standin_aws
from tests.e2e.standin_schema import Checker, autoname

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = "4dabf18193072939515e22adb298388d"

# package -> the version it reports (the locked Python SDK's, so the engine sees the plugin it asks for)
PACKAGES = {"aws": "7.51.1", "docker-build": "0.0.22", "docker": "5.2.0"}

# Properties whose change replaces the resource (Terraform ForceNew in the real providers' schemas).
REPLACE_ON_CHANGE: dict[str, set[str]] = {
    "aws:ecr/repository:Repository": {"name", "encryptionConfigurations"},
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": {"repository"},
    "aws:iam/role:Role": {"name", "namePrefix", "path"},
    "aws:iam/rolePolicy:RolePolicy": {"name", "namePrefix", "role"},
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": {"role", "policyArn"},
    "aws:lambda/function:Function": {"name", "packageType"},
    "aws:lambda/alias:Alias": {"name", "functionName"},
    "aws:lambda/functionUrl:FunctionUrl": {"functionName", "qualifier"},
    "aws:cloudwatch/logGroup:LogGroup": {"name", "namePrefix", "kmsKeyId"},
    "aws:cloudwatch/metricAlarm:MetricAlarm": {"name"},
}
FAIL_CREATE = "MODELOPS_STANDIN_FAIL_CREATE"


def _to_dict(s: struct_pb2.Struct | None) -> dict[str, Any]:
    return json_format.MessageToDict(s) if s is not None else {}


def _to_struct(d: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(d)
    return s


def _plain(value: Any) -> Any:
    """Secrets unwrapped (the provider sees values; the engine keeps them secret in state)."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return _plain(value.get("value"))
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _contains_unknown(value: Any) -> bool:
    if value == UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(_contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_unknown(v) for v in value)
    return False


def _name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _type_of(urn: str) -> str:
    return urn.split("::")[2].rsplit("$", 1)[-1]


def _failed(context, code: grpc.StatusCode, message: str, detail: Any = None) -> None:
    """End the call with an error the engine reads (with a typed detail when there is one)."""
    if detail is not None:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status = status_pb2.Status(code=code.value[0], message=message, details=[packed])
        context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    context.abort(code, message)


class StandinProvider(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self, package: str):
        import os

        self.package = package
        self.version = PACKAGES[package]
        self.config: dict[str, Any] = {}
        self.fail_create = os.environ.get(FAIL_CREATE, "")
        self.checker = Checker()
        self._aws: standin_aws.Aws | None = None
        self._handlers: dict[str, Any] = {}

    # --- the emulator -------------------------------------------------------------------------
    @property
    def aws(self) -> standin_aws.Aws:
        if self._aws is None:
            self._aws = standin_aws.Aws()
            self._handlers = {h.token: h(self._aws) for h in standin_aws.HANDLERS}
        return self._aws

    def _handler(self, type_: str, context) -> Any:
        self.aws  # noqa: B018 - connects on first use
        if type_ not in self._handlers:
            _failed(context, grpc.StatusCode.UNIMPLEMENTED, f"stand-in {self.package} provider: no {type_}")
        return self._handlers[type_]

    def _ctx(self, inputs: dict[str, Any]) -> standin_aws.Context:
        import os

        region = (
            inputs.get("region") or self.config.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        )
        default_tags = (self.config.get("defaultTags") or {}).get("tags") or {}
        return standin_aws.Context(region=str(region), default_tags=dict(default_tags))

    # --- protocol -----------------------------------------------------------------------------
    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=self.version)

    def GetSchema(self, request, context):
        return provider_pb2.GetSchemaResponse(schema=json.dumps({"name": self.package, "version": self.version}))

    def CheckConfig(self, request, context):
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request, context):
        olds, news = _plain(_to_dict(request.old_inputs)), _plain(_to_dict(request.news))
        changed = sorted(k for k in set(olds) | set(news) if olds.get(k) != news.get(k) and k != "version")
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE,
            diffs=changed,
        )

    def Configure(self, request, context):
        self.config = {}
        for key, value in request.variables.items():
            short = key.rsplit(":", 1)[-1]
            try:
                self.config[short] = json.loads(value)
            except ValueError:
                self.config[short] = value
        self.config.update(_plain(_to_dict(request.args)))
        # an explicit provider's object and list inputs arrive JSON-encoded, as to any bridged provider
        for key, value in self.config.items():
            if isinstance(value, str) and value[:1] in ("{", "["):
                with contextlib.suppress(ValueError):
                    self.config[key] = json.loads(value)
        if self.package == "aws" and self.config.get("allowedAccountIds") and not _contains_unknown(self.config):
            self._require_allowed_account(context)
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True, acceptResources=True)

    def _require_allowed_account(self, context) -> None:
        """As the real provider: credentials of an account outside `allowedAccountIds` are refused."""
        allowed = [str(a) for a in self.config["allowedAccountIds"]]
        account = self.aws.account_id(self._ctx({}).region)
        if account not in allowed:
            _failed(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"stand-in aws provider: AWS account ID not allowed: {account} (allowedAccountIds: {allowed})",
            )

    def Check(self, request, context):
        type_ = request.type or _type_of(request.urn)
        name = request.name or _name_of(request.urn)
        news = _to_dict(request.news)
        if not self.checker.knows(type_):
            return provider_pb2.CheckResponse(inputs=request.news)
        news = autoname(type_, name, news, _to_dict(request.olds), bytes(request.randomSeed))
        reasons = self.checker.check(type_, name, {k: v for k, v in news.items() if k != "__defaults"})
        return provider_pb2.CheckResponse(
            inputs=_to_struct(news), failures=[provider_pb2.CheckFailure(reason=r) for r in reasons]
        )

    def Diff(self, request, context):
        type_ = request.type or _type_of(request.urn)
        olds = _to_dict(request.old_inputs) if request.HasField("old_inputs") else _to_dict(request.olds)
        news = _to_dict(request.news)
        ignored = set(request.ignoreChanges)
        keys = sorted(
            k
            for k in set(olds) | set(news)
            if k not in ignored and k != "__defaults" and _plain(olds.get(k)) != _plain(news.get(k))
        )
        replace_keys = REPLACE_ON_CHANGE.get(type_, set())
        detailed = {}
        replaces = []
        for k in keys:
            if k not in news:
                kind = provider_pb2.PropertyDiff.DELETE
            elif k not in olds:
                kind = provider_pb2.PropertyDiff.ADD
            else:
                kind = provider_pb2.PropertyDiff.UPDATE
            if k in replace_keys:
                kind = provider_pb2.PropertyDiff.Kind.Value(provider_pb2.PropertyDiff.Kind.Name(kind) + "_REPLACE")
                replaces.append(k)
            detailed[k] = provider_pb2.PropertyDiff(kind=kind, inputDiff=True)
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if keys else provider_pb2.DiffResponse.DIFF_NONE,
            diffs=keys,
            replaces=replaces,
            detailedDiff=detailed,
            hasDetailedDiff=True,
            deleteBeforeReplace=False,
        )

    def Create(self, request, context):
        type_ = request.type or _type_of(request.urn)
        name = request.name or _name_of(request.urn)
        inputs = _to_dict(request.properties)
        handler = self._handler(type_, context)
        if request.preview:
            # As a Terraform-bridged provider previews a create: inputs known, computed outputs unknown.
            return provider_pb2.CreateResponse(
                id="", properties=_to_struct({**inputs, **{k: UNKNOWN for k in handler.computed if k not in inputs}})
            )
        if self.fail_create and name == self.fail_create:
            _failed(
                context,
                grpc.StatusCode.UNKNOWN,
                f"stand-in {self.package} provider: injected failure creating {name} ({FAIL_CREATE})",
            )
        if _contains_unknown(inputs):
            _failed(context, grpc.StatusCode.INVALID_ARGUMENT, f"stand-in: unknown input in a create of {name}")
        plain = _plain(inputs)
        try:
            resource_id, outputs = handler.create(name, plain, self._ctx(plain))
        except standin_aws.PartialCreate as partial:
            detail = provider_pb2.ErrorResourceInitFailed(
                id=partial.resource_id,
                properties=_to_struct(partial.outputs),
                reasons=[str(partial)],
                inputs=request.properties,
            )
            _failed(context, grpc.StatusCode.UNKNOWN, f"creating {name}: {partial}", detail)
        except standin_aws.AwsError as exc:
            _failed(context, grpc.StatusCode.UNKNOWN, f"creating {type_} {name}: {exc}")
        return provider_pb2.CreateResponse(id=resource_id, properties=_to_struct(outputs))

    def Read(self, request, context):
        type_ = request.type or _type_of(request.urn)
        handler = self._handler(type_, context)
        inputs = _plain(_to_dict(request.inputs))
        state = {**_plain(_to_dict(request.properties)), **inputs}
        found = handler.read(request.id, state, self._ctx(state))
        if found is None:  # gone from the account: the engine drops it from the state
            return provider_pb2.ReadResponse(id="")
        if type_ == standin_aws.Image.token and "tags" in inputs:
            # a tag the registry lost reads as not pushed: the next update pushes it again
            inputs = {**_to_dict(request.inputs), "tags": found["tags"]}
            return provider_pb2.ReadResponse(id=request.id, properties=_to_struct(found), inputs=_to_struct(inputs))
        return provider_pb2.ReadResponse(id=request.id, properties=_to_struct(found), inputs=request.inputs)

    def Update(self, request, context):
        type_ = request.type or _type_of(request.urn)
        name = request.name or _name_of(request.urn)
        handler = self._handler(type_, context)
        news, olds = _to_dict(request.news), _to_dict(request.olds)
        old_inputs = _to_dict(request.old_inputs) if request.HasField("old_inputs") else olds
        if request.preview:
            # known inputs and the old computed outputs, but those the update itself recomputes
            changing = set(getattr(handler, "changes_on_update", ()))
            computed = {k: (UNKNOWN if k in changing else olds.get(k, UNKNOWN)) for k in handler.computed}
            return provider_pb2.UpdateResponse(properties=_to_struct({**computed, **news}))
        plain = _plain(news)
        try:
            outputs = handler.update(request.id, _plain(old_inputs), plain, self._ctx(plain))
        except standin_aws.AwsError as exc:
            _failed(context, grpc.StatusCode.UNKNOWN, f"updating {type_} {name}: {exc}")
        return provider_pb2.UpdateResponse(properties=_to_struct(outputs))

    def Delete(self, request, context):
        type_ = request.type or _type_of(request.urn)
        handler = self._handler(type_, context)
        state = _plain(_to_dict(request.properties))
        try:
            handler.delete(request.id, state, self._ctx(state))
        except standin_aws.AwsError as exc:
            _failed(context, grpc.StatusCode.UNKNOWN, f"deleting {type_} {request.id}: {exc}")
        return empty_pb2.Empty()

    def Invoke(self, request, context):
        args = _plain(_to_dict(request.args))
        reasons = self.checker.check_invoke(request.tok, args)
        if reasons:
            return provider_pb2.InvokeResponse(failures=[provider_pb2.CheckFailure(reason=r) for r in reasons])
        self.aws  # noqa: B018 - connects on first use
        invokes = standin_aws.Invokes(self.aws)
        try:
            result = invokes.call(request.tok, args, self._ctx(args), self.config)
        except standin_aws.AwsError as exc:
            _failed(context, grpc.StatusCode.UNKNOWN, f"invoking {request.tok}: {exc}")
        return provider_pb2.InvokeResponse(**{"return": _to_struct(result)})

    def Cancel(self, request, context):
        return empty_pb2.Empty()

    def Attach(self, request, context):
        return empty_pb2.Empty()


def main() -> None:
    package = sys.argv[1]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.max_receive_message_length", 400 * 1024 * 1024)]
    )
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(StandinProvider(package), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop(0)


if __name__ == "__main__":
    main()
