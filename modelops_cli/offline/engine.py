"""The offline engine: run `__main__.py` under the Pulumi SDK's mock engine and capture a plan.

The program is the one `pulumi up` runs, unchanged. A capturing monitor records every registration
as the real engine would see it (URN, parent, provider, options, dependencies, inputs) and writes it
in the shape of `pulumi preview --json`: secrets as "[secret]", values unknown at preview as the
engine's unknown marker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import runpy
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from pulumi.runtime import mocks as sdk_mocks
from pulumi.runtime import settings as sdk_settings
from pulumi.runtime import stack as sdk_stack
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

from composition.preflight import PREFLIGHT_SWITCH

from ..plan import SECRET, SECRET_SIG, SIG_KEY, UNKNOWN, Registration, to_preview_json
from ..stackfile import StackSettings
from .mocks import OfflineMocks

_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
STACK_TYPE = "pulumi:pulumi:Stack"


class DuplicateUrnError(Exception):
    """Two resources registered under one URN (the real engine fails the update the same way)."""


class ProgramError(Exception):
    """The program itself failed (a RunError, or an exception): the message is what it said."""


def _plain(value: Any, urn_of: dict[str, str]) -> Any:
    """Protobuf JSON to plain JSON: secrets masked, resource references as URNs, whole numbers as ints."""
    if isinstance(value, dict):
        sig = value.get(SIG_KEY)
        if sig == SECRET_SIG:
            return SECRET
        if sig == _RESOURCE_SIG:
            return urn_of.get(value.get("urn", ""), value.get("urn"))
        return {k: _plain(value[k], urn_of) for k in sorted(value)}
    if isinstance(value, list):
        return [_plain(v, urn_of) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _timeouts(request) -> dict[str, float]:
    """`customTimeouts` as the engine keeps them in state: seconds per operation, unset ones left out."""
    if not request.HasField("customTimeouts"):
        return {}
    seconds = {}
    for op in ("create", "update", "delete"):
        text = getattr(request.customTimeouts, op)
        if text:
            seconds[op] = _duration_seconds(text)
    return seconds


def _duration_seconds(text: str) -> float:
    """A Go duration (`90m`, `1h30m`, `5400s`) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    total, number = 0.0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    return total


class CapturingMonitor(sdk_mocks.MockMonitor):
    """The SDK's mock monitor, plus a record of each registration with engine-accurate URNs."""

    def __init__(self, mocks: OfflineMocks, project: str, stack: str):
        super().__init__(mocks)
        self.project = project
        self.stack = stack
        self.registrations: list[Registration] = []
        self._by_mock_urn: dict[str, Registration] = {}
        self._urn_by_mock: dict[str, str] = {}
        self._qualified: dict[str, str] = {}  # engine URN -> type chain used by children
        # The SDK calls the monitor from its thread pool: registrations arrive concurrently.
        self._lock = threading.Lock()
        self.thread_loops: set[asyncio.AbstractEventLoop] = set()
        """The SDK's mock monitor serializes with `_sync_await` on the pool's threads, which gives each thread
        an event loop nobody closes; left to the garbage collector, one closes at interpreter exit after its
        file descriptors are gone ("Invalid file descriptor"). `capture` closes them."""

    def _open_thread_loop(self) -> None:
        """Give this worker thread an open loop (the last capture closed its old one), and remember it."""
        if threading.current_thread() is threading.main_thread():
            return
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            loop = None
        if loop is None or loop.is_closed():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
        with self._lock:
            self.thread_loops.add(loop)

    def _engine_urn(self, parent: Registration | None, type_: str, name: str) -> tuple[str, str]:
        qualified = type_ if parent is None or parent.type == STACK_TYPE else f"{self._qualified[parent.urn]}${type_}"
        return f"urn:pulumi:{self.stack}::{self.project}::{qualified}::{name}", qualified

    def _urn(self, mock_urn: str) -> str:
        return self._urn_by_mock.get(mock_urn, mock_urn)

    def _provider_ref(self, ref: str, type_: str = "", custom: bool = False, version: str = "") -> str | None:
        if not ref:
            if not custom or type_.startswith("pulumi:providers:"):
                return None
            # No explicit provider: the engine makes the package's default provider, named after the version
            # the SDK asks for (`default_0_0_22`; plain `default` for the engine's own `pulumi` package, whose
            # StackReference asks for none), and shows it as the resource's provider.
            package = type_.split(":", 1)[0]
            name = f"default_{version.replace('.', '_').replace('-', '_')}" if version else "default"
            return f"urn:pulumi:{self.stack}::{self.project}::pulumi:providers:{package}::{name}::{UNKNOWN}"
        urn = ref.rsplit("::", 1)[0]
        # A provider created in this update has no id yet: the real preview says so the same way.
        return f"{self._urn(urn)}::{UNKNOWN}"

    def Invoke(self, request):
        self._open_thread_loop()
        return super().Invoke(request)

    def RegisterResource(self, request):
        self._open_thread_loop()
        response = super().RegisterResource(request)
        raw_inputs = json_format.MessageToDict(request.object) if request.type != STACK_TYPE else {}
        with self._lock:
            self._record(request, response.urn, raw_inputs)
        return response

    def _record(self, request, mock_urn: str, raw_inputs: dict) -> None:
        parent = self._by_mock_urn.get(request.parent) if request.parent else None
        urn, qualified = self._engine_urn(parent, request.type, request.name)
        inputs = _plain(raw_inputs, self._urn_by_mock)
        if request.type.startswith("pulumi:providers:") and request.version:
            # The engine records the plugin version an explicit provider was asked for among its inputs.
            inputs = {**inputs, "version": request.version}
        reg = Registration(
            urn=urn,
            type=request.type,
            name=request.name,
            custom=bool(request.custom),
            parent=parent.urn if parent else None,
            provider=self._provider_ref(request.provider, request.type, bool(request.custom), request.version),
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            dependencies=sorted({self._urn(d) for d in request.dependencies}),
            property_dependencies={
                k: sorted({self._urn(u) for u in v.urns}) for k, v in sorted(request.propertyDependencies.items())
            },
            ignore_changes=list(request.ignoreChanges),
            inputs=inputs,
            custom_timeouts=_timeouts(request),
            additional_secret_outputs=list(request.additionalSecretOutputs),
            replace_on_changes=list(request.replaceOnChanges),
            delete_before_replace=bool(request.deleteBeforeReplace),
            aliases=[json_format.MessageToDict(a) for a in request.aliases],
        )
        self._remember(mock_urn, reg, qualified)

    def _remember(self, mock_urn: str, reg: Registration, qualified: str) -> None:
        if reg.urn in self._qualified:
            # The engine refuses a second registration of a URN; keeping one of the two would hide it.
            raise DuplicateUrnError(f"Duplicate resource URN '{reg.urn}'; try giving it a unique name")
        self._by_mock_urn[mock_urn] = reg
        self._urn_by_mock[mock_urn] = reg.urn
        self._qualified[reg.urn] = qualified
        self.registrations.append(reg)

    def ReadResource(self, request):
        self._open_thread_loop()
        response = super().ReadResource(request)
        raw_inputs = json_format.MessageToDict(request.properties)
        with self._lock:
            parent = self._by_mock_urn.get(request.parent) if request.parent else None
            urn, qualified = self._engine_urn(parent, request.type, request.name)
            reg = Registration(
                urn=urn,
                type=request.type,
                name=request.name,
                custom=True,
                parent=parent.urn if parent else None,
                provider=self._provider_ref(request.provider, request.type, True, request.version),
                protect=False,
                retain_on_delete=False,
                dependencies=sorted({self._urn(d) for d in request.dependencies}),
                property_dependencies={},
                ignore_changes=[],
                inputs=_plain(raw_inputs, self._urn_by_mock),
                op="read",
            )
            self._remember(response.urn, reg, qualified)
        return response

    def RegisterResourceOutputs(self, request):
        self._open_thread_loop()
        raw_outputs = json_format.MessageToDict(request.outputs)
        with self._lock:
            reg = self._by_mock_urn.get(request.urn)
            if reg is not None:
                reg.outputs = _plain(raw_outputs, self._urn_by_mock)
        return super().RegisterResourceOutputs(request)


class _RecordingEngine(sdk_mocks.MockEngine):
    """Keeps the program's log messages (warnings, placement decisions) as plan diagnostics."""

    def __init__(self, monitor: CapturingMonitor):
        super().__init__(logging.getLogger("modelops.offline"))
        self.monitor = monitor
        self.diagnostics: list[dict[str, str]] = []

    def Log(self, request):
        severity = {0: "debug", 1: "info", 2: "warning", 3: "error"}.get(request.severity, "info")
        if severity != "debug":
            entry = {"severity": severity, "message": request.message}
            if request.urn:
                entry["urn"] = self.monitor._urn(request.urn)
            self.diagnostics.append(entry)


@contextmanager
def _program_environment(settings: StackSettings, preflight: bool) -> Iterator[None]:
    root = str(settings.project.root)
    saved_path, saved_cwd = list(sys.path), os.getcwd()
    saved_switch = os.environ.get(PREFLIGHT_SWITCH)
    sys.path.insert(0, root)
    os.chdir(root)  # as under the CLI: the program runs in the project directory
    os.environ[PREFLIGHT_SWITCH] = "on" if preflight else "off"
    try:
        yield
    finally:
        sys.path[:] = saved_path
        os.chdir(saved_cwd)
        if saved_switch is None:
            os.environ.pop(PREFLIGHT_SWITCH, None)
        else:
            os.environ[PREFLIGHT_SWITCH] = saved_switch


def run_program(settings: StackSettings, preflight: bool = False, preview: bool = True) -> dict[str, Any]:
    """Evaluate the program for a validated stack; return the plan (preview-JSON shape).

    `preview=False` evaluates it as `pulumi up` would (the program sees `is_dry_run()` false), for
    testing what the program does only at update time, such as the pre-flight gate.
    """
    registrations, diagnostics = _evaluate(settings, preflight, preview)
    return to_preview_json(settings.config, settings.secret_keys, registrations, diagnostics)


def stack_exports(settings: StackSettings) -> dict[str, Any]:
    """What the stack exports (`pulumi stack output`), as the program computes them at preview."""
    registrations, _ = _evaluate(settings, preflight=False, preview=True)
    return next(r.outputs for r in registrations if r.type == STACK_TYPE)


def _evaluate(
    settings: StackSettings, preflight: bool, preview: bool
) -> tuple[list[Registration], list[dict[str, str]]]:
    project = settings.project
    cluster = settings.model.cluster

    def program() -> None:
        runpy.run_path(str(project.main), run_name="__main__")

    with _program_environment(settings, preflight):
        mock_stack = MockStack(
            project.name,
            settings.stack,
            cluster.account_id,
            cluster.region,
            settings.config,
            tuple(settings.secret_keys),
            reference_outputs=(cluster.kubeconfig_output,),
        )
        return capture(program, mock_stack, preview)


async def _wait_for_rpcs_linear(await_all_outstanding_tasks: bool = True) -> None:
    """The SDK's `wait_for_rpcs`, waiting for each outstanding output once.

    The SDK waits with `asyncio.wait(all pending, FIRST_COMPLETED)` in a loop, which re-registers a
    callback on every pending output after each completion: quadratic in the number of outputs, and
    the larger part of planning a 100-model stack (profiled). Gathering them settles the same set.
    """
    rpc_manager = sdk_settings._get_rpc_manager()
    while True:
        while rpc_manager.rpcs:
            await asyncio.sleep(0)
            try:
                await rpc_manager.rpcs.pop()
            except Exception as exn:
                if rpc_manager.unhandled_exception is not None:
                    raise exn from rpc_manager.unhandled_exception.with_traceback(rpc_manager.exception_traceback)
                raise
        if rpc_manager.unhandled_exception is not None:
            raise rpc_manager.unhandled_exception.with_traceback(rpc_manager.exception_traceback)
        if await_all_outstanding_tasks:
            while True:
                with sdk_settings.SETTINGS.lock:
                    pending = list(sdk_settings.SETTINGS.outputs)
                    sdk_settings.SETTINGS.outputs.clear()
                if not pending:
                    break
                for result in await asyncio.gather(*pending, return_exceptions=True):
                    if isinstance(result, BaseException):
                        raise result
        if not rpc_manager.rpcs:
            break


@contextmanager
def _linear_waits() -> Iterator[None]:
    saved = sdk_stack.wait_for_rpcs
    sdk_stack.wait_for_rpcs = _wait_for_rpcs_linear
    try:
        yield
    finally:
        sdk_stack.wait_for_rpcs = saved


@dataclass(frozen=True)
class MockStack:
    """The stack a program is evaluated as under the mock engine (the defaults: a component test's)."""

    project: str = "modelops"
    stack: str = "test"
    account_id: str = "123456789012"
    region: str = "us-east-1"
    config: dict[str, str] = field(default_factory=dict)
    secret_keys: tuple[str, ...] = ()
    reference_outputs: tuple[str, ...] = ("kubeconfig",)
    """The outputs a StackReference answers (the cluster stack's kubeconfig)."""


def capture(
    program: Callable[[], object], target: MockStack | None = None, preview: bool = True
) -> tuple[list[Registration], list[dict[str, str]]]:
    """Run `program` inside a fresh Stack under the mock engine; what it registered, and its log."""
    target = target or MockStack()
    project, stack = target.project, target.stack
    monitor = CapturingMonitor(OfflineMocks(target.account_id, target.region, target.reference_outputs), project, stack)
    engine = _RecordingEngine(monitor)
    sdk_settings.ROOT.set(None)
    set_all_config(dict(target.config), list(target.secret_keys))
    sdk_settings.configure(
        sdk_mocks.MockSettings(
            monitor=monitor,
            monitor_features=set(monitor.GetDeploymentInfo(None).supportedFeatures),
            engine=engine,
            project=project,
            stack=stack,
            dry_run=preview,
            organization="organization",
            callbacks=None,
        )
    )

    def run() -> None:
        program()  # a component test's program may return the component it made; the stack ignores it

    try:
        with _linear_waits():
            _sync_await(run_in_stack(run))
    except Exception as exc:
        message = str(exc).strip() or type(exc).__name__
        raise ProgramError(message) from exc
    finally:
        sdk_settings.ROOT.set(None)
        for loop in monitor.thread_loops:
            if not loop.is_running():
                loop.close()
    return monitor.registrations, engine.diagnostics


def plan_of(
    program: Callable[[], object], stack: str = "test", account_id: str = "123456789012", region: str = "us-east-1"
) -> dict[str, Any]:
    """The preview-JSON plan of any Pulumi program function (components in isolation, benchmarks)."""
    registrations, diagnostics = capture(program, MockStack(stack=stack, account_id=account_id, region=region))
    return to_preview_json({}, [], registrations, diagnostics)
