"""STAND-IN resource provider for the packages the real-engine tier cannot build: aws, docker-build, docker.

pulumi-aws and pulumi-docker embed Terraform providers patched in git submodules, and pulumi-docker-build
is not served by the Go module proxy reachable here, so none of the three can be built from source on
this machine. This plugin speaks the same provider gRPC protocol (CheckConfig, Configure, Check, Diff,
Create, Read, Update, Delete, Invoke) so that the real `pulumi` engine can preview, update and destroy
the whole program. It is the only part of the tier that is not the real thing, and it says so in every
message it writes.

Behaviour, modelled on the real providers:
- outputs are the offline mocks' (`offline/mocks.py`: ARNs, URLs, ids derived from names), so a real and
  an offline run of the same stack see the same values after `up`;
- previews of a create return the inputs and leave every computed output unknown, as Terraform-bridged
  providers do (`supportsPreview`);
- properties that Terraform marks ForceNew (names, the repository a policy belongs to, ...) replace the
  resource when they change; everything else updates in place;
- a ledger file (MODELOPS_STANDIN_LEDGER) records what "exists in the account": created on Create,
  removed on Delete. Tests read it to prove that a failed `up` leaves nothing orphaned or duplicated;
- MODELOPS_STANDIN_FAIL_CREATE=<resource name> makes the create of that resource fail, to test recovery.

Run as `python -m tests.e2e.standin_provider <package>` by the `pulumi-resource-<package>` launcher
scripts the harness writes; it prints its port and serves until the engine stops it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

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


def _ledger_key(urn: str, type_: str, resource_id: str) -> str:
    """Stacks stand for separate accounts: the mocks' names are unique per stack, not across stacks
    (the real provider's autonaming adds a random suffix)."""
    stack = urn.split("::")[0].rsplit(":", 1)[-1]
    return f"{stack}/{type_}/{resource_id}"


class Ledger:
    """What exists in the stand-in's "account": one JSON object of id -> {urn, type}, locked per write."""

    def __init__(self, path: str | None):
        self.path = Path(path) if path else None

    def _update(self, change) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            text = fh.read()
            entries = json.loads(text) if text.strip() else {}
            change(entries)
            fh.seek(0)
            fh.truncate()
            json.dump(entries, fh, indent=1, sort_keys=True)

    def add(self, key: str, urn: str, type_: str) -> None:
        def change(entries: dict) -> None:
            if key in entries:
                raise RuntimeError(f"stand-in: {type_} {key!r} already exists (created by {entries[key]['urn']})")
            entries[key] = {"urn": urn, "type": type_}

        self._update(change)

    def remove(self, key: str) -> None:
        self._update(lambda entries: entries.pop(key, None))


class StandinProvider(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self, package: str):
        self.package = package
        self.version = PACKAGES[package]
        self.config: dict[str, Any] = {}
        self.ledger = Ledger(os.environ.get("MODELOPS_STANDIN_LEDGER"))
        self.fail_create = os.environ.get("MODELOPS_STANDIN_FAIL_CREATE", "")

    # --- mocks shared with the offline engine ---------------------------------------------------
    def _mocks(self):
        from offline.mocks import OfflineMocks

        accounts = self.config.get("allowedAccountIds")
        account = str(accounts[0]) if isinstance(accounts, list) and accounts else "123456789012"
        return OfflineMocks(account, str(self.config.get("region") or "us-east-1"))

    def _outputs(self, type_: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        import pulumi

        args = pulumi.runtime.MockResourceArgs(
            typ=type_, name=name, inputs=_plain(inputs), provider=None, resource_id=None, custom=True
        )
        resource_id, outputs = self._mocks().new_resource(args)
        if type_ == "docker-build:index:Image":
            outputs.update(self._built_image(inputs))
        merged = {**inputs, **outputs}
        return resource_id or name, merged

    @staticmethod
    def _built_image(inputs: dict[str, Any]) -> dict[str, Any]:
        """What a push would report: a digest of the build's inputs, the first tag pinned by it."""
        digest = "sha256:" + hashlib.sha256(json.dumps(_plain(inputs), sort_keys=True).encode()).hexdigest()
        tags = _plain(inputs.get("tags") or [])
        ref = f"{tags[0]}@{digest}" if tags else digest
        return {"digest": digest, "ref": ref, "contextHash": digest[7:23]}

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
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True, acceptResources=True)

    def Check(self, request, context):
        return provider_pb2.CheckResponse(inputs=request.news)

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
        if request.preview:
            # As a Terraform-bridged provider previews a create: inputs known, computed outputs unknown.
            _, outputs = self._outputs(type_, name, inputs)
            return provider_pb2.CreateResponse(
                id="", properties=_to_struct({k: (v if k in inputs else UNKNOWN) for k, v in outputs.items()})
            )
        if self.fail_create and name == self.fail_create:
            context.abort(
                grpc.StatusCode.UNKNOWN,
                f"stand-in {self.package} provider: injected failure creating {name} " "(MODELOPS_STANDIN_FAIL_CREATE)",
            )
        resource_id, outputs = self._outputs(type_, name, inputs)
        if _contains_unknown(inputs):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"stand-in: unknown input in a create of {name}")
        self.ledger.add(_ledger_key(request.urn, type_, resource_id), request.urn, type_)
        return provider_pb2.CreateResponse(id=resource_id, properties=_to_struct(outputs))

    def Read(self, request, context):
        return provider_pb2.ReadResponse(id=request.id, properties=request.properties, inputs=request.inputs)

    def Update(self, request, context):
        type_ = request.type or _type_of(request.urn)
        name = request.name or _name_of(request.urn)
        news = _to_dict(request.news)
        _, outputs = self._outputs(type_, name, news)
        if request.preview:
            olds = _to_dict(request.olds)
            outputs = {k: (v if k in news else olds.get(k, UNKNOWN)) for k, v in outputs.items()}
        return provider_pb2.UpdateResponse(properties=_to_struct(outputs))

    def Delete(self, request, context):
        type_ = request.type or _type_of(request.urn)
        self.ledger.remove(_ledger_key(request.urn, type_, request.id))
        return empty_pb2.Empty()

    def Invoke(self, request, context):
        import pulumi

        args = pulumi.runtime.MockCallArgs(token=request.tok, args=_plain(_to_dict(request.args)), provider="")
        try:
            result = self._mocks().call(args)
        except Exception as exc:
            return provider_pb2.InvokeResponse(failures=[provider_pb2.CheckFailure(reason=f"stand-in: {exc}")])
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
