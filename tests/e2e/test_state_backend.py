"""Stacks on Pulumi's DIY S3 backend, against moto's S3 on 127.0.0.1, through the real `pulumi` CLI: state
locking between two concurrent `up`s, a stale lock left by a killed `up` and `pulumi cancel`, and a
StackReference between two stacks of that backend.

How the CLI (v3.274.1) reaches the bucket. `pulumi login 's3://<bucket>?endpoint=127.0.0.1:<port>
&disableSSL=true&s3ForcePathStyle=true&region=us-east-1'`, the form users give for S3-compatible stores
(https://github.com/pulumi/pulumi/issues/3592, MinIO). Pulumi's DIY backend guide
(https://www.pulumi.com/docs/iac/guides/basics/using-a-diy-backend/) says that locking is on by default for
every DIY backend and lays the bucket out under `.pulumi/`: meta.yaml, stacks/, locks/, history/. gocloud.dev v0.46's s3blob talks through the AWS SDK v2 and refuses the v1
name `disableSSL`, so the CLI rewrites v1-era parameters before opening the bucket:
`translateLegacyS3Params` in pkg/v3/backend/diy/backend.go turns `disableSSL=true` with a scheme-less
endpoint into `endpoint=http://…` + `disable_https=true`, and adds `request_checksum_calculation=
when_required` whenever an endpoint is set (the v2 SDK's default CRC32 aws-chunked uploads are refused by
some third-party stores). gocloud.dev/blob/s3blob/s3blob.go accepts `s3ForcePathStyle` (= `use_path_style`)
and `disable_https`; gocloud.dev/aws/aws.go `V2ConfigFromURLParams` accepts `region`, `endpoint`,
`request_checksum_calculation` and refuses any other parameter. Credentials come from the environment
(fake ones here). moto answers reads without a checksum header, so the SDK logs "Response has no supported
checksum. Not validating response payload." on stderr: a warning, not an error.

How locking works (pkg/v3/backend/diy/lock.go, v3.274.1): `Update`, `Refresh`, `Destroy`, `Import`, stack
removal, renaming and `stack import` call `Lock` (backend.go); `Preview` does not. `Lock` lists
`.pulumi/locks/organization/<project>/<stack>/`, refuses if any object is there ("the stack is currently
locked by N lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi
cancel`.", then per lock its URL and `created by user@host (pid N) at time`), writes its own
`<backend uuid>.json` ({pid, username, hostname, timestamp}), lists again and backs off if another
appeared. `Unlock` deletes the object when the operation ends, so a killed CLI leaves it behind; `pulumi
cancel` (`CancelCurrentUpdate`) deletes every lock object of the stack. No environment variable is
needed: `PULUMI_SELF_MANAGED_STATE_LOCKING=1` (pulumi/pulumi#2697) was removed when locking became the
default (pulumi/pulumi#8565; https://github.com/pulumi/pulumi/issues/9253), and env.go of v3.274.1 has no
DIY locking variable. The update's history entry is written only when the update ends (`addToHistory`,
backend.go `apply`), so a killed update leaves no entry.

The programs are small Python programs of this module's own, not the modelops program. The update that
holds the lock creates dynamic resources (`pulumi.dynamic`) whose create waits at a gate (a file) the test
opens: the overlap of the two `up`s is certain, not a race against a sleep. Python dynamic providers run
as the plugin `pulumi-resource-pulumi-python` (upstream ships it beside the CLI:
sdk/python/dist/pulumi-resource-pulumi-python, `python -u -m pulumi.dynamic`); the tools build does not
install it, so a launcher here runs the same module in the project's environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from tests.aws_fakes import MotoServer
from tests.e2e.cluster import required_tools
from tests.e2e.pulumi_cli import PASSPHRASE, ROOT, CommandResult

BUCKET = "modelops-pulumi-state"
LOCKED_PROJECT = "statelock"
LOCKED_STACK = f"organization/{LOCKED_PROJECT}/locked"
LOCK_PREFIX = f".pulumi/locks/{LOCKED_STACK}/"
LOCKED_MESSAGE = "the stack is currently locked by 1 lock(s)"
REFUSAL_SECONDS = 120
"""A refused `up` ends in a second or two; one still running after this was let in (and waits at the gate)."""

GATED_PROGRAM = '''"""Slots whose create waits at a gate the test opens: an update that lasts as long as the test needs."""
import time
from pathlib import Path

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider


class GatedSlot(ResourceProvider):
    def create(self, props):
        workdir = Path(props["workdir"])
        (workdir / f"waiting-{props['slot']}").touch()
        deadline = time.monotonic() + 300
        while not (workdir / "gate-open").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the gate never opened")
            time.sleep(0.1)
        with open(workdir / "created.log", "a") as ledger:
            ledger.write(props["slot"] + "\\n")
        return CreateResult(id_=props["slot"], outs={"slot": props["slot"], "workdir": props["workdir"]})

    def diff(self, _id, olds, news):
        changed = [key for key in ("slot", "workdir") if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changed), replaces=changed)


class Slot(Resource):
    def __init__(self, name, workdir):
        super().__init__(GatedSlot(), name, {"slot": name, "workdir": workdir})


config = pulumi.Config()
slots = [Slot(f"slot-{i}", config.require("workdir")) for i in range(config.require_int("slots"))]
pulumi.export("slots", [slot.id for slot in slots])
'''

PRODUCER_PROGRAM = '''"""A stack other stacks read: a plain output and a secret one."""
import pulumi

config = pulumi.Config()
pulumi.export("endpoint", config.require("endpoint"))
pulumi.export("token", config.require_secret("token"))
'''

CONSUMER_PROGRAM = '''"""Reads another stack of the same backend through a StackReference."""
import pulumi

source = pulumi.StackReference(pulumi.Config().require("source"))
pulumi.export("endpointSeen", source.require_output("endpoint").apply(lambda endpoint: f"consumer of {endpoint}"))
pulumi.export("tokenSeen", source.require_output("token"))
'''


@dataclass
class S3State:
    """A PULUMI_HOME logged in to the moto bucket, the CLI's environment, and a boto3 view of the bucket."""

    bin_dir: Path
    workdir: Path
    moto: MotoServer

    @property
    def url(self) -> str:
        return (
            f"s3://{BUCKET}?endpoint=127.0.0.1:{self.moto.port}&disableSSL=true&s3ForcePathStyle=true&region=us-east-1"
        )

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "AWS_", "KUBECONFIG"))}
        launchers = self.workdir / "plugins"
        env.update(
            {
                "PATH": os.pathsep.join([str(launchers), str(self.bin_dir), env.get("PATH", "")]),
                "PULUMI_HOME": str(self.workdir / "pulumi-home"),
                "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
                "PULUMI_SKIP_UPDATE_CHECK": "true",
                "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
                "NO_COLOR": "1",
                # moto accepts any key; nothing may reach a real AWS account or the instance metadata service
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": str(self.workdir / "no-aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(self.workdir / "no-aws-credentials"),
            }
        )
        return env

    def argv(self, *args: str) -> list[str]:
        return [str(self.bin_dir / "pulumi"), *args, "--non-interactive"]

    def run(self, *args: str, cwd: Path, timeout: float = 600) -> CommandResult:
        argv = self.argv(*args)
        done = subprocess.run(argv, cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=timeout)
        return CommandResult(argv, done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str, cwd: Path) -> CommandResult:
        result = self.run(*args, cwd=cwd)
        assert result.returncode == 0, result.explain()
        return result

    def start(self, *args: str, cwd: Path, log: Path) -> subprocess.Popen:
        """A CLI run in the background, its stdout in `log`, its stderr in `log` + `.stderr`."""
        with open(log, "w") as out, open(stderr_log(log), "w") as err:
            return subprocess.Popen(self.argv(*args), cwd=cwd, env=self.env(), stdout=out, stderr=err)

    def s3(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.moto.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def keys(self, prefix: str) -> list[str]:
        listing = self.s3().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return [item["Key"] for item in listing.get("Contents", [])]

    def read(self, key: str) -> bytes:
        return self.s3().get_object(Bucket=BUCKET, Key=key)["Body"].read()


def write_project(directory: Path, name: str, program: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    runtime = {"name": "python", "options": {"toolchain": "pip", "virtualenv": str(ROOT / ".venv")}}
    (directory / "Pulumi.yaml").write_text(yaml.safe_dump({"name": name, "main": "__main__.py", "runtime": runtime}))
    (directory / "__main__.py").write_text(program)
    return directory


def stderr_log(log: Path) -> Path:
    return log.with_name(log.name + ".stderr")


def output(log: Path) -> str:
    return f"--- stdout\n{log.read_text()[-4000:]}\n--- stderr\n{stderr_log(log).read_text()[-4000:]}"


def wait_for(condition: Callable[[], bool], what: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the update ended ({proc.returncode}) before {what}:\n{output(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{output(log)}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Iterator[S3State]:
    bin_dir = required_tools()
    workdir = tmp_path_factory.mktemp("s3-state")
    launchers = workdir / "plugins"
    launchers.mkdir()
    launcher = launchers / "pulumi-resource-pulumi-python"
    launcher.write_text(f'#!/bin/sh\nexec "{ROOT / ".venv" / "bin" / "python"}" -u -m pulumi.dynamic "$@"\n')
    launcher.chmod(0o755)
    moto = MotoServer()
    try:
        s3 = S3State(bin_dir, workdir, moto)
        s3.s3().create_bucket(Bucket=BUCKET)
        login = s3.ok("login", s3.url, cwd=workdir)
        assert f"s3://{BUCKET}" in login.stdout + login.stderr, login.explain()
        yield s3
    finally:
        moto.stop()


@dataclass
class GatedStack:
    """The `statelock` project's one stack, its gate and the ledger of the creates that completed."""

    s3: S3State
    project: Path
    gates: Path

    def close_gate(self) -> None:
        (self.gates / "gate-open").unlink(missing_ok=True)

    def open_gate(self) -> None:
        (self.gates / "gate-open").touch()

    def created(self) -> list[str]:
        ledger = self.gates / "created.log"
        return ledger.read_text().split() if ledger.exists() else []

    def waiting(self, slot: str) -> bool:
        return (self.gates / f"waiting-{slot}").exists()

    def run(self, *args: str) -> CommandResult:
        return self.s3.run(*args, "-s", LOCKED_STACK, cwd=self.project)

    def ok(self, *args: str) -> CommandResult:
        result = self.run(*args)
        assert result.returncode == 0, result.explain()
        return result

    def start_up(self, log_name: str) -> tuple[subprocess.Popen, Path]:
        log = self.s3.workdir / log_name
        return self.s3.start("up", "--yes", "--skip-preview", "-s", LOCKED_STACK, cwd=self.project, log=log), log

    def refused_up(self, log_name: str) -> CommandResult:
        """An `up` the lock must refuse. One that runs instead would wait at the closed gate: it is killed
        (with its plugins) after REFUSAL_SECONDS and the test fails, rather than hanging."""
        proc, log = self.start_up(log_name)
        try:
            proc.wait(timeout=REFUSAL_SECONDS)
        except subprocess.TimeoutExpired:
            kill_tree(proc)
            raise AssertionError(f"the up was let in while the lock was held:\n{output(log)}") from None
        argv = self.s3.argv("up", "--yes", "--skip-preview", "-s", LOCKED_STACK)
        return CommandResult(argv, proc.returncode, log.read_text(), stderr_log(log).read_text())

    def history(self) -> list[dict[str, Any]]:
        result = self.run("stack", "history", "--json")
        assert result.returncode == 0, result.explain()
        return result.json()

    def slot_resources(self) -> list[str]:
        result = self.run("stack", "export")
        assert result.returncode == 0, result.explain()
        deployment = result.json()["deployment"]
        assert not deployment.get("pending_operations"), deployment["pending_operations"]
        return sorted(r["urn"].rsplit("::", 1)[1] for r in deployment["resources"] if "dynamic:Resource" in r["type"])

    def lock_content(self) -> dict[str, Any]:
        keys = self.s3.keys(LOCK_PREFIX)
        assert len(keys) == 1, keys
        return json.loads(self.s3.read(keys[0]))


@pytest.fixture(scope="module")
def gated(state: S3State) -> GatedStack:
    project = write_project(state.workdir / LOCKED_PROJECT, LOCKED_PROJECT, GATED_PROGRAM)
    gates = state.workdir / "gates"
    gates.mkdir()
    stack = GatedStack(state, project, gates)
    state.ok("stack", "init", LOCKED_STACK, cwd=project)
    stack.ok("config", "set", "workdir", str(gates))
    stack.ok("config", "set", "slots", "2")
    return stack


# ---- the backend is the bucket ----


def test_login_puts_the_state_in_the_bucket(state, gated):
    """`stack init` on the S3 backend writes the backend's metadata and the stack's state into the bucket
    (project layout: `.pulumi/meta.yaml`, `.pulumi/stacks/<project>/<stack>.json`)."""
    whoami = state.ok("whoami", "--verbose", cwd=gated.project)
    assert f"s3://{BUCKET}" in whoami.stdout, whoami.explain()
    keys = state.keys(".pulumi/")
    assert ".pulumi/meta.yaml" in keys, keys
    assert any(k.startswith(f".pulumi/stacks/{LOCKED_PROJECT}/locked.json") for k in keys), keys


# ---- state locking: two concurrent `up`s ----


def test_a_concurrent_up_is_refused_while_the_first_holds_the_lock(gated):
    gated.close_gate()
    first, log = gated.start_up("first-up.log")
    try:
        wait_for(lambda: bool(gated.s3.keys(LOCK_PREFIX)), "the first up's lock object", first, log)
        wait_for(lambda: gated.waiting("slot-0") and gated.waiting("slot-1"), "its creates to start", first, log)
        lock = gated.lock_content()
        assert lock["pid"] == first.pid, lock
        assert lock["hostname"] == socket.gethostname(), lock

        second = gated.refused_up("second-up.log")
        assert second.returncode != 0, second.explain()
        assert LOCKED_MESSAGE in second.stderr, second.explain()
        assert "pulumi cancel" in second.stderr, second.explain()
        assert f"(pid {first.pid})" in second.stderr, second.explain()
        assert LOCK_PREFIX in second.stderr, second.explain()
        # the lock's URL is the backend URL as the CLI rewrote it for the AWS SDK v2 (module docstring)
        for rewritten in ("disable_https=true", "endpoint=http%3A%2F%2F127.0.0.1", "request_checksum_calculation"):
            assert rewritten in second.stderr, second.explain()
        # refused before its program ran: nothing of the second up was created
        assert gated.created() == [], gated.created()
        # a preview takes no lock (backend.go `Preview`): a pull request's preview runs beside a deploy
        preview = gated.run("preview")
        assert preview.returncode == 0, preview.explain()
        assert len(gated.s3.keys(LOCK_PREFIX)) == 1
    finally:
        gated.open_gate()
        first.wait(timeout=300)
    assert first.returncode == 0, output(log)
    assert gated.s3.keys(LOCK_PREFIX) == [], "the first up did not release its lock"


def test_the_refused_up_left_the_state_intact(gated):
    """One update recorded, every resource present and created once, and another `up` changes nothing."""
    history = gated.history()
    assert [(h["kind"], h["result"]) for h in history] == [("update", "succeeded")], history
    assert gated.slot_resources() == ["slot-0", "slot-1"]
    assert sorted(gated.created()) == ["slot-0", "slot-1"]
    gated.ok("up", "--yes", "--skip-preview", "--expect-no-changes")
    assert sorted(gated.created()) == ["slot-0", "slot-1"]


# ---- a stale lock: the CLI killed in the middle of an up ----


def test_a_killed_up_leaves_a_stale_lock_that_pulumi_cancel_removes(gated):
    updates_before = len(gated.history())
    gated.ok("config", "set", "slots", "3")
    gated.close_gate()
    killed, log = gated.start_up("killed-up.log")
    try:
        wait_for(lambda: gated.waiting("slot-2"), "the third slot's create to start", killed, log)
    finally:
        kill_tree(killed)  # as a CI runner dies: the CLI and every plugin it started, so no Unlock runs

    assert gated.lock_content()["pid"] == killed.pid
    blocked = gated.refused_up("blocked-up.log")
    assert blocked.returncode != 0, blocked.explain()
    assert LOCKED_MESSAGE in blocked.stderr and f"(pid {killed.pid})" in blocked.stderr, blocked.explain()

    cancel = gated.ok("cancel", "--yes")
    assert "has been canceled" in cancel.stdout, cancel.explain()
    assert gated.s3.keys(LOCK_PREFIX) == []
    assert len(gated.history()) == updates_before, "a killed update recorded history"

    # The next update proceeds, warns about the create the kill interrupted and keeps it pending
    # (pulumi/pulumi#9293; resource/deploy/deployment_executor.go); here the ledger shows it never completed,
    # so the documented repair applies: `pulumi refresh --clear-pending-creates`
    # (https://www.pulumi.com/docs/iac/operations/troubleshooting/interrupted-updates/).
    assert sorted(gated.created()) == ["slot-0", "slot-1"]
    gated.open_gate()
    recovered = gated.ok("up", "--yes", "--skip-preview")
    assert "1 pending operations from previous deployment" in recovered.stdout, recovered.explain()
    assert "slot-2, interrupted while creating" in recovered.stdout, recovered.explain()
    assert sorted(gated.created()) == ["slot-0", "slot-1", "slot-2"]
    gated.ok("refresh", "--yes", "--skip-preview", "--clear-pending-creates")
    assert gated.slot_resources() == ["slot-0", "slot-1", "slot-2"]
    gated.ok("up", "--yes", "--skip-preview", "--expect-no-changes")
    assert sorted(gated.created()) == ["slot-0", "slot-1", "slot-2"]


def kill_tree(cli: subprocess.Popen) -> None:
    """SIGKILL a CLI we started and every process under it, and wait until they are gone. The CLI starts
    its plugins in process groups of their own (sdk/go/common/util/cmdutil/child_unix.go
    `RegisterProcessGroup`), so they are found by parentage, not by group; a survivor (the dynamic provider
    waiting at its gate) would otherwise go on creating after the test opens the gate."""
    tree = descendants(cli.pid)
    for pid in [cli.pid, *tree]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    cli.wait(timeout=30)
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in tree):
        if time.monotonic() > deadline:
            raise AssertionError(f"processes of the killed CLI survived: {[p for p in tree if alive(p)]}")
        time.sleep(0.1)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for its new parent to reap it."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


# ---- a StackReference between two stacks of the backend ----


def test_a_stack_reads_another_through_a_stack_reference(state):
    """DIY backends name stacks `organization/<project>/<stack>` (the only organization they accept:
    pkg/v3/backend/diy/store.go `ParseReference`); the builtin `pulumi:pulumi:StackReference` reads the
    producer's outputs from the bucket, and a secret output stays secret in the consumer's state."""
    token = secrets.token_hex(12)
    producer = write_project(state.workdir / "producer", "producer", PRODUCER_PROGRAM)
    consumer = write_project(state.workdir / "consumer", "consumer", CONSUMER_PROGRAM)
    state.ok("stack", "init", "organization/producer/base", cwd=producer)
    state.ok("config", "set", "endpoint", "https://models.example.internal", "-s", "base", cwd=producer)
    state.ok("config", "set", "--secret", "token", token, "-s", "base", cwd=producer)
    state.ok("up", "--yes", "--skip-preview", "-s", "base", cwd=producer)

    state.ok("stack", "init", "organization/consumer/reader", cwd=consumer)
    state.ok("config", "set", "source", "organization/producer/base", "-s", "reader", cwd=consumer)
    state.ok("up", "--yes", "--skip-preview", "-s", "reader", cwd=consumer)

    shown = state.ok("stack", "output", "--json", "-s", "reader", cwd=consumer).json()
    assert shown == {"endpointSeen": "consumer of https://models.example.internal", "tokenSeen": "[secret]"}
    revealed = state.ok("stack", "output", "--json", "--show-secrets", "-s", "reader", cwd=consumer).json()
    assert revealed["tokenSeen"] == token
    # every object of the backend (states, their backups, history): the secret only ever encrypted
    keys = state.keys(".pulumi/")
    assert ".pulumi/stacks/producer/base.json" in keys and ".pulumi/stacks/consumer/reader.json" in keys, keys
    plain = [key for key in keys if token.encode() in state.read(key)]
    assert plain == [], f"the secret is in plain text in {plain}"


def test_a_stack_reference_outside_organization_is_refused(state):
    consumer = write_project(state.workdir / "consumer", "consumer", CONSUMER_PROGRAM)
    state.ok("stack", "init", "organization/consumer/elsewhere", cwd=consumer)
    state.ok("config", "set", "source", "acme/producer/base", "-s", "elsewhere", cwd=consumer)
    result = state.run("up", "--yes", "--skip-preview", "-s", "elsewhere", cwd=consumer)
    assert result.returncode != 0, result.explain()
    assert "organization name must be 'organization'" in result.stdout + result.stderr, result.explain()
