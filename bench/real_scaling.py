"""Figure 8 of the benchmark: the real engine's cost as the work grows.

`pulumi preview` and `pulumi up` of generated stacks (bench/generate.py) through the real CLI, against a local
Kubernetes API server, the AWS emulator behind the stand-in AWS provider and Envoy Gateway (every model's
HTTPRoute awaits its Gateway's `Accepted`), with the real-engine tier's own harness (tests/e2e). Per run: the
wall time, the peak memory of the CLI and its plugins (the sum of their RSS, sampled from /proc), and where the
time goes, summed from the engine's OpenTracing spans (`--tracing file:...`).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.generate import generate_stack

ROOT = Path(__file__).resolve().parent.parent
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
PODS_PER_NODE = 100
"""kwok nodes advertise 110 pods (tests/e2e/cluster.py); a margin below it."""


# --- the cluster and workspace ------------------------------------------------------------------
@dataclass
class Workbench:
    """A local API server with Envoy Gateway, the AWS emulator and one Pulumi workspace (the tier's harness)."""

    cluster: Any
    cli: Any
    aws: Any
    gateway: Any
    stacks: list[str] = field(default_factory=list)


def pods_per_pool(n: int) -> dict[str | None, int]:
    """Minimum replicas (canaries included) of the generated stack of `n` models, by GPU pool (None: CPU)."""
    pods: dict[str | None, int] = {}
    for model in generate_stack(n)["config"]["modelops:models"].values():
        count = model["replicas"]["min"] + (1 if "canary" in model else 0)
        pods[model.get("pool")] = pods.get(model.get("pool"), 0) + count
    return pods


NODE_SCRATCH = "8Ti"
"""Each model pod requests 52Gi of ephemeral storage (its default scratch): a tier node's 500Gi holds nine."""


def nodes_for(n: int) -> list:
    """Enough simulated nodes (as Karpenter would launch them) for every pod of the `n`-model stack, in the three
    zones, with room to roll out (surge pods): each holds PODS_PER_NODE model pods (GPUs, CPU, memory, scratch)."""
    from tests.e2e.cluster import SimulatedNode

    class BigNode(SimulatedNode):
        def manifest(self) -> dict[str, Any]:
            manifest = super().manifest()
            for resources in (manifest["status"]["capacity"], manifest["status"]["allocatable"]):
                resources["ephemeral-storage"] = NODE_SCRATCH
            return manifest

    nodes = []
    for pool, pods in pods_per_pool(n).items():
        for i in range(max(3, -(-2 * pods // PODS_PER_NODE))):
            name, zone = f"{pool or 'cpu'}-{i}", ZONES[i % len(ZONES)]
            gpus = PODS_PER_NODE if pool else 0
            nodes.append(BigNode(name, zone, pool=pool, gpus=gpus, cpu="400", memory="1600Gi"))
    return nodes


@contextmanager
def workbench(bin_dir: Path, workdir: Path, largest: int) -> Iterator[Workbench]:
    from tests.e2e.aws_emulator import AwsEmulator
    from tests.e2e.cluster import LocalCluster
    from tests.e2e.gateway import EnvoyGateway
    from tests.e2e.pulumi_cli import PulumiCli

    cluster = LocalCluster(bin_dir, workdir / "cluster")
    aws = AwsEmulator(log_path=workdir / "aws-emulator.log")
    gateway = None
    try:
        cluster.start()
        cluster.apply(
            *(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                for ns in ("monitoring", "gateway-system")
            )
        )
        cluster.add_nodes(nodes_for(largest))
        gateway = EnvoyGateway(cluster)
        base = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())["config"]
        gateway.start(base["modelops:cluster"]["gateway"]["hostname"])
        cli = PulumiCli(bin_dir, workdir / "pulumi")
        cli.aws_env = aws.env()
        yield Workbench(cluster, cli, aws, gateway)
    finally:
        cluster.stop()
        if gateway is not None:
            gateway.stop()
        aws.stop()


def init_generated_stack(bench: Workbench, n: int) -> str:
    """`organization/modelops/bench<n>`: the generated stack of `n` models, its kubeconfig from a platform stack
    of the same name, a build context per built model (images are tagged by their context's fingerprint)."""
    cli = bench.cli
    name = f"bench{n}"
    cli.platform_stack(name, bench.cluster.kubeconfig())
    result = cli.run("stack", "init", f"organization/modelops/{name}")
    if result.returncode != 0 and "already exists" not in result.stderr:
        raise RuntimeError(result.explain())
    path = cli.project / "stacks" / f"Pulumi.{name}.yaml"
    written = yaml.safe_load(path.read_text()) if path.exists() else {}
    data = generate_stack(n)
    data["config"]["modelops:cluster"]["kubeconfigStack"] = f"organization/eks-platform/{name}"
    for key in ("encryptionsalt", "secretsprovider", "encryptedkey"):
        if key in written:
            data[key] = written[key]
    push_prebuilt_images(bench, data["config"]["modelops:models"])
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    dockerfile = ROOT / "models" / "chat" / "Dockerfile"
    for model in data["config"]["modelops:models"].values():
        context = model["image"].get("context")
        if context:
            (cli.project / context).mkdir(parents=True, exist_ok=True)
            shutil.copy2(dockerfile, cli.project / context / "Dockerfile")
    write_policy_config(cli.project / "policies" / "config" / f"{name}.json", data["config"])
    # the program's own uv environment, which the language host would otherwise build in the first measured run
    installed = cli.run("install", "--no-plugins")
    if installed.returncode != 0:
        raise RuntimeError(installed.explain())
    bench.stacks.append(name)
    return name


def push_prebuilt_images(bench: Workbench, models: dict[str, Any]) -> None:
    """The images the models with a pre-built `image.ref` name, pushed into the emulator's ECR as the pipeline that
    built them would have (a standby fallback's Lambda refuses an image that is not there), each ref pinned to its
    manifest's digest."""
    from tests.e2e.standin_aws import OCI_MANIFEST, manifest_digest

    ecr = bench.aws.client("ecr", "us-east-1")
    for name, model in models.items():
        ref = model["image"].get("ref")
        if not ref:
            continue
        repository_url, tag = ref.split("@", 1)[0].rsplit(":", 1)
        repository = repository_url.split("/", 1)[1]
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "annotations": {"model": name}})
        ecr.create_repository(repositoryName=repository)
        ecr.put_image(
            repositoryName=repository,
            imageManifest=manifest,
            imageManifestMediaType=OCI_MANIFEST,
            imageTag=tag,
            imageDigest=manifest_digest(manifest),
        )
        model["image"]["ref"] = f"{repository_url}:{tag}@{manifest_digest(manifest)}"


def write_policy_config(path: Path, config: dict[str, Any]) -> None:
    """prod's pack config with its two quotas raised to what the generated stack declares (as generate_stack
    raises the pools' limits and the budget): every rule runs, and the graph, not a quota, is what is measured."""
    settings = json.loads((ROOT / "policies" / "config" / "prod.json").read_text())
    pools = config["modelops:gpuPools"].values()
    settings["karpenter-gpu-limit"]["maxGpusPerPool"] = max(pool["gpuLimit"] for pool in pools)
    settings["gpu-cost-ceiling"]["budgetUsd"] = config["modelops:budget"]["monthlyGpuUsd"]
    path.write_text(json.dumps(settings, indent=2))


# --- one measured command -----------------------------------------------------------------------
class TreeMemory:
    """Samples, every `interval` seconds, the RSS of the `pulumi` CLI's process tree (the CLI, the language host,
    the program, providers, the policy pack): the peak of the sum, and the peak of each kind of process (the
    sum of that kind's processes in one sample: three stand-in providers, say)."""

    def __init__(self, cli_path: str, interval: float = 0.2):
        self.cli_path = cli_path
        self.interval = interval
        self.peak_total_kib = 0
        self.peak_by_command: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        processes = read_processes()
        roots = [pid for pid, (_, argv, _) in processes.items() if argv[:1] == [self.cli_path]]
        by_command: dict[str, int] = {}
        for pid in descendants(processes, roots):
            _, argv, rss = processes[pid]
            by_command[process_label(argv)] = by_command.get(process_label(argv), 0) + rss
        for command, kib in by_command.items():
            self.peak_by_command[command] = max(self.peak_by_command.get(command, 0), kib)
        self.peak_total_kib = max(self.peak_total_kib, sum(by_command.values()))


def read_processes() -> dict[int, tuple[int, list[str], int]]:
    """pid -> (parent pid, argv, RSS in KiB) of every process /proc shows now."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
            status = (entry / "status").read_text()
        except OSError:
            continue  # ended while we looked
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        found[int(entry.name)] = (parent, argv, rss)
    return found


def descendants(processes: dict[int, tuple[int, list[str], int]], roots: list[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def process_label(argv: list[str]) -> str:
    """What a process of the tree is: the CLI, a plugin binary, or which Python (program, pack, stand-in)."""
    if not argv:
        return "?"
    exe = Path(argv[0]).name
    if "python" not in exe:
        return exe
    joined = " ".join(argv)
    if "tests.e2e.standin_provider" in joined:
        return "standin-provider"
    if "pulumi.policy" in joined or "/policies" in joined:
        return "policy-pack (python)"
    if "pulumi-language-python-exec" in joined or "__main__" in joined:
        return "program (python)"
    return "python"


# --- where the time goes: the engine's OpenTelemetry spans ---------------------------------------
@dataclass
class Span:
    name: str
    start: float
    end: float
    span_id: str
    parent_id: str
    service: str
    kind: int
    attributes: dict[str, Any]

    @property
    def seconds(self) -> float:
        return self.end - self.start


def read_otel_spans(path: Path) -> list[Span]:
    """The spans of an OTLP/JSON file as `pulumi --otel-traces file://<path>` writes it (one `resourceSpans`
    export request per line; times in Unix nanoseconds)."""
    spans = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        for resource_spans in json.loads(line).get("resourceSpans", []):
            service = _attributes(resource_spans.get("resource", {}).get("attributes", [])).get("service.name", "")
            for scope in resource_spans.get("scopeSpans", []):
                for s in scope.get("spans", []):
                    spans.append(
                        Span(
                            name=s["name"],
                            start=int(s["startTimeUnixNano"]) / 1e9,
                            end=int(s["endTimeUnixNano"]) / 1e9,
                            span_id=s.get("spanId", ""),
                            parent_id=s.get("parentSpanId", ""),
                            service=service,
                            kind=int(s.get("kind", 0)),
                            attributes=_attributes(s.get("attributes", [])),
                        )
                    )
    return spans


def _attributes(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """OTLP key/value pairs as a dict (the first of repeated keys; values unwrapped from their type)."""
    found: dict[str, Any] = {}
    for pair in pairs:
        value = pair.get("value", {})
        found.setdefault(pair["key"], next(iter(value.values()), None) if value else None)
    return found


def busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """How long at least one of the intervals was in progress (their union's length): calls run in parallel,
    so their sum can exceed the wall time."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


CLIENT = 3
SERVER = 2


def plugin_of_peer(spans: list[Span]) -> dict[str, str]:
    """The engine's gRPC peer address -> the plugin behind it: each plugin's Handshake is a child of the
    `newPlugin` span that names it (`prefix`: "kubernetes (resource)", "<dir> (analyzer)", "python")."""
    started = {s.span_id: s for s in spans if s.name == "newPlugin"}
    peers = {}
    for s in spans:
        if s.kind == CLIENT and s.name.endswith("/Handshake") and s.parent_id in started:
            plugin = started[s.parent_id]
            peers[s.attributes.get("net.peer.name", "")] = plugin_name(plugin.attributes)
    return peers


def plugin_name(attributes: dict[str, Any]) -> str:
    kind = attributes.get("kind", "")
    if kind == "analyzer":
        return "policy pack"
    if kind == "language":
        return "language host"
    return str(attributes.get("prefix", "?")).removesuffix(" (resource)")


def time_breakdown(spans: list[Span]) -> dict[str, Any]:
    """Where one CLI run's time went, from its spans (seconds; `calls` are busy times: see busy_seconds)."""
    cli = [s for s in spans if s.service == "pulumi-cli"]
    root = max((s for s in cli if s.name == "pulumi"), key=lambda s: s.seconds)
    run = max((s for s in cli if s.name.endswith("LanguageRuntime/Run")), key=lambda s: s.seconds)
    monitor = [s for s in cli if s.kind == SERVER and "ResourceMonitor/" in s.name]
    first_call = min((s.start for s in monitor), default=run.end)
    started = [s for s in cli if s.name == "newPlugin"]
    language = [s for s in started if s.attributes.get("kind") == "language"]
    host_calls = [s for s in cli if s.kind == CLIENT and s.name.rsplit("/", 1)[-1] in ("About", "GetRequiredPackages")]
    peers = plugin_of_peer(cli)
    calls: dict[str, list[tuple[float, float]]] = {}
    for s in cli:
        if s.kind == CLIENT and ("ResourceProvider/" in s.name or "Analyzer/" in s.name):
            calls.setdefault(peers.get(s.attributes.get("net.peer.name", ""), "other"), []).append((s.start, s.end))
    plugins = {}
    for s in started:
        if s.attributes.get("kind") in ("resource", "analyzer"):
            name = plugin_name(s.attributes)
            intervals = calls.get(name, [])
            plugins[name] = {"start": s.seconds, "calls": busy_seconds(intervals), "count": len(intervals)}
    return {
        "registrations": sum(1 for s in monitor if s.name.endswith("/RegisterResource")),
        "cli": root.seconds,
        "before_program": run.start - root.start,
        "language_host": sum(s.seconds for s in language) + sum(s.seconds for s in host_calls),
        "program_start": first_call - run.start,
        "program": run.end - first_call,
        "after_program": root.end - run.end,
        "plugins": plugins,
    }


# --- the measured commands ----------------------------------------------------------------------
def run_measured(bench: Workbench, stack: str, args: list[str], traces: Path | None = None) -> dict[str, Any]:
    """One `pulumi` command of the CLI on `stack`, policy-checked (write_policy_config): wall time, peak memory
    of its process tree and, with `traces`, where the time went (the spans it wrote there)."""
    cli = bench.cli
    policy = ["-s", stack, "--policy-pack", str(cli.project / "policies")]
    policy += ["--policy-pack-config", str(cli.project / "policies" / "config" / f"{stack}.json")]
    tracing = ["--otel-traces", f"file://{traces}"] if traces else []
    with TreeMemory(str(cli.bin_dir / "pulumi")) as memory:
        started = time.perf_counter()
        result = cli.run(*args, *policy, *tracing)
        wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(result.explain())
    row: dict[str, Any] = {
        "wall": wall,
        "peak_mib": memory.peak_total_kib / 1024,
        "peak_by_process_mib": {k: v / 1024 for k, v in memory.peak_by_command.items()},
    }
    if traces:
        row["spans"] = time_breakdown(read_otel_spans(traces))
    return row


def measure_size(bin_dir: Path, workdir: Path, n: int, up: bool) -> dict[str, Any]:
    """A fresh cluster, emulator and workspace for `n` models: a traced preview and, if `up`, an untraced one (what
    tracing costs), a traced `up` and a traced preview of the deployed stack (nothing to change)."""
    with workbench(bin_dir, workdir, n) as bench:
        stack = init_generated_stack(bench, n)
        row: dict[str, Any] = {"models": n}
        if up:  # tracing's own cost, measured where time allows
            row["preview"] = run_measured(bench, stack, ["preview"])
        row["preview_traced"] = run_measured(bench, stack, ["preview"], workdir / "preview.otel.json")
        if up:
            row["up"] = run_measured(bench, stack, ["up", "--yes", "--skip-preview"], workdir / "up.otel.json")
            row["resources"] = len(bench.cli.export(stack)["deployment"]["resources"])
            row["preview_unchanged"] = run_measured(
                bench, stack, ["preview", "--expect-no-changes"], workdir / "unchanged.otel.json"
            )
        return row


# --- printing -----------------------------------------------------------------------------------
PLUGIN_ORDER = ("kubernetes", "aws", "docker-build", "docker", "policy pack")


def format_rows(rows: list[dict[str, Any]]) -> list[str]:
    """Figure 8 as printed: per size the commands' wall time and peak memory, where their time went, and the
    growth of the per-model cost from the smallest size to the largest."""
    lines = []
    for row in rows:
        traced = row["preview_traced"]
        preview = row.get("preview", traced)
        head = f"real engine scaling N={row['models']:>3} ({traced['spans']['registrations']} registrations): " + (
            f"preview {preview['wall']:.1f}s (traced {traced['wall']:.1f}s)"
            if "preview" in row
            else f"preview {traced['wall']:.1f}s (traced)"
        )
        head += f", peak {preview['peak_mib']:.0f} MiB"
        if "up" in row:
            head += (
                f"; up {row['up']['wall']:.1f}s (traced), peak {row['up']['peak_mib']:.0f} MiB, "
                f"{row['resources']} resources; preview with nothing to change "
                f"{row['preview_unchanged']['wall']:.1f}s (traced)"
            )
        else:
            head += "; up not run at this size"
        lines.append(head)
        lines.append("   preview: " + format_spans(traced["spans"]))
        if "up" in row:
            lines.append("   up: " + format_spans(row["up"]["spans"]))
            lines.append("   preview, nothing to change: " + format_spans(row["preview_unchanged"]["spans"]))
        largest = row.get("up", preview)
        by_process = sorted(largest["peak_by_process_mib"].items(), key=lambda kv: -kv[1])
        lines.append(
            f"   peak by process ({'up' if 'up' in row else 'preview'}): "
            + ", ".join(f"{name} {mib:.0f}" for name, mib in by_process if mib >= 1)
            + " MiB"
        )
    return lines + growth(rows)


def format_spans(spans: dict[str, Any]) -> str:
    plugins = spans["plugins"]
    busy = ", ".join(
        f"{name} {plugins[name]['calls']:.1f}s ({plugins[name]['count']} calls, start {plugins[name]['start']:.1f}s)"
        for name in PLUGIN_ORDER
        if name in plugins
    )
    return (
        f"CLI {spans['cli']:.1f}s = before the program {spans['before_program']:.1f}s (language host "
        f"{spans['language_host']:.1f}s) + program start {spans['program_start']:.1f}s + program "
        f"{spans['program']:.1f}s + after it {spans['after_program']:.1f}s; busy: {busy}"
    )


def growth(rows: list[dict[str, Any]]) -> list[str]:
    """The per-model cost at the largest size over the smallest, for each command measured at both."""
    if len(rows) < 2:
        return []
    lines = []
    for command, label in (("preview_traced", "preview (traced)"), ("up", "up")):
        measured = [r for r in rows if command in r]
        if len(measured) < 2:
            continue
        small, large = measured[0], measured[-1]
        per_small = small[command]["wall"] / small["models"]
        per_large = large[command]["wall"] / large["models"]
        lines.append(
            f"   {label} per model at N={large['models']} / at N={small['models']} = "
            f"{per_large:.2f}s / {per_small:.2f}s = {per_large / per_small:.2f}"
        )
    return lines
