"""Figure 8's measuring code (bench/real_scaling.py) on small, made inputs: the spans it reads, the busy times it
sums, the process tree it samples, the quotas it raises. The figure itself needs a cluster and minutes per size, so
it is not run here (./run bench --only 8 runs it).

The span shapes below are those `pulumi --otel-traces file://<path>` (pulumi v3.274.1, built by tools/build) wrote
for a preview of a generated stack on the real-engine tier: one OTLP/JSON export request per line
(https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding: times as decimal strings of Unix nanoseconds,
ids as hex, attributes as key/typed-value pairs, span kind 2 server and 3 client); the CLI's spans carry
`service.name` "pulumi-cli", each plugin start is a `newPlugin` span with `kind` and `prefix` attributes and the
plugin's `Handshake` as its child, and the engine's gRPC client spans name their peer in `net.peer.name` (the
OpenTracing gRPC interceptor's tag). `--tracing file:` writes appdash's gob format instead (not JSON): "Use the
file: scheme to write tracing data to a local file" (`pulumi --help`), read by `pulumi view-trace` and converted
by `pulumi convert-trace` to pprof or sent to an OTLP endpoint (pulumi's developer docs, "Performance").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.generate import generate_stack
from bench.real_scaling import (
    TreeMemory,
    busy_seconds,
    format_rows,
    nodes_for,
    pods_per_pool,
    process_label,
    read_otel_spans,
    time_breakdown,
    write_policy_config,
)

T0 = 1_796_557_542_000_000_000


def about(seconds: float):
    """Times in nanoseconds since 1970 as floats keep about 0.2 µs: well below what is measured."""
    return pytest.approx(seconds, abs=1e-3)


def span(name, start, end, span_id, parent="", span_kind=1, **attributes):
    return {
        "traceId": "b2006ca56f18a58eed47037b23db4ca7",
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "kind": span_kind,
        "startTimeUnixNano": str(T0 + int(start * 1e9)),
        "endTimeUnixNano": str(T0 + int(end * 1e9)),
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()],
    }


def export(service, *spans):
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {}, "spans": list(spans)}]}]})


def client(name, start, end, span_id, peer, parent="p0"):
    return span(name, start, end, span_id, parent, span_kind=3, **{"net.peer.name": peer})


K8S, AWS, PACK, HOST = "127.0.0.1:41323", "127.0.0.1:37271", "127.0.0.1:35339", "127.0.0.1:41801"


def preview_trace(tmp_path: Path) -> Path:
    """A preview of 10 s: the language host starts at 0.1-0.4 s, the pack and two providers start, the program
    runs from 2 s (first registration at 2.5 s) to 9 s; Kubernetes calls overlap (2.6-3.6 and 3.0-4.0 s)."""
    lines = [
        export(
            "pulumi-cli",
            span("pulumi", 0, 10, "r0"),
            span("pulumi-plan", 1, 9.8, "p0", "r0"),
            span("newPlugin", 0.1, 0.4, "n0", "p0", kind="language", prefix="python"),
            client("pulumirpc.LanguageRuntime/GetRequiredPackages", 0.4, 0.6, "c0", HOST),
            span("newPlugin", 1.0, 1.5, "n1", "p0", kind="analyzer", prefix="/x/policies (analyzer)"),
            client("pulumirpc.Analyzer/Handshake", 1.5, 1.5, "h1", PACK, parent="n1"),
            span("newPlugin", 2.6, 2.8, "n2", "p0", kind="resource", prefix="kubernetes (resource)"),
            client("pulumirpc.ResourceProvider/Handshake", 2.8, 2.8, "h2", K8S, parent="n2"),
            span("newPlugin", 2.6, 2.7, "n3", "p0", kind="resource", prefix="aws (resource)"),
            client("pulumirpc.ResourceProvider/Handshake", 2.7, 2.7, "h3", AWS, parent="n3"),
            client("pulumirpc.LanguageRuntime/Run", 2.0, 9.0, "run", HOST),
            span("pulumirpc.ResourceMonitor/RegisterResource", 2.5, 4.0, "g0", "run", span_kind=2),
            span("pulumirpc.ResourceMonitor/RegisterResource", 2.6, 4.1, "g1", "run", span_kind=2),
            client("pulumirpc.ResourceProvider/Create", 2.9, 3.6, "k0", K8S),
            client("pulumirpc.ResourceProvider/Create", 3.0, 4.0, "k1", K8S),
            client("pulumirpc.ResourceProvider/Create", 3.0, 3.5, "a0", AWS),
            client("pulumirpc.Analyzer/Analyze", 4.0, 4.25, "z0", PACK),
        ),
        # the Kubernetes provider's own server span of the same call: not the engine's, not counted twice
        export(
            "pulumi-resource-provider", span("/pulumirpc.ResourceProvider/Create", 2.9, 3.6, "s0", "k0", span_kind=2)
        ),
    ]
    path = tmp_path / "preview.otel.json"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_spans_are_read_from_otlp_json_lines(tmp_path):
    spans = read_otel_spans(preview_trace(tmp_path))
    assert len(spans) == 18
    plugin = next(s for s in spans if s.span_id == "n2")
    assert plugin.attributes == {"kind": "resource", "prefix": "kubernetes (resource)"}
    assert plugin.service == "pulumi-cli" and plugin.parent_id == "p0"
    assert plugin.seconds == about(0.2)


def test_the_time_is_split_between_host_program_and_plugins(tmp_path):
    spans = time_breakdown(read_otel_spans(preview_trace(tmp_path)))
    assert spans["registrations"] == 2
    assert spans["cli"] == about(10)
    assert spans["before_program"] == about(2.0)
    assert spans["language_host"] == about(0.3 + 0.2)  # its start and GetRequiredPackages
    assert spans["program_start"] == about(0.5)  # Run to the first registration
    assert spans["program"] == about(6.5)
    assert spans["after_program"] == about(1.0)
    plugins = spans["plugins"]
    # calls found by the peer their plugin's Handshake named; overlapping calls counted once (2.9-4.0 s)
    assert plugins["kubernetes"] == {"start": about(0.2), "calls": about(1.1), "count": 3}
    assert plugins["aws"] == {"start": about(0.1), "calls": about(0.5), "count": 2}
    assert plugins["policy pack"] == {"start": about(0.5), "calls": about(0.25), "count": 2}


def test_busy_time_is_the_union_of_the_calls():
    assert busy_seconds([]) == 0
    assert busy_seconds([(0, 2), (1, 3), (5, 6)]) == about(4)
    assert busy_seconds([(5, 6), (0, 10)]) == about(10)  # one call inside another


def test_the_printed_figure_names_every_part_and_the_growth(tmp_path):
    spans = time_breakdown(read_otel_spans(preview_trace(tmp_path)))

    def run(wall):
        return {"wall": wall, "peak_mib": 800.0, "peak_by_process_mib": {"pulumi": 180.0, "uv": 0.2}, "spans": spans}

    rows = [
        {"models": 10, "preview": run(10), "preview_traced": run(11), "up": run(40), "resources": 208},
        {"models": 200, "preview": run(100), "preview_traced": run(105)},
    ]
    rows[0]["preview_unchanged"] = run(12)
    lines = format_rows(rows)
    assert lines[0].startswith("real engine scaling N= 10 (2 registrations): preview 10.0s (traced 11.0s)")
    assert "up 40.0s (traced), peak 800 MiB, 208 resources" in lines[0]
    assert "kubernetes 1.1s (3 calls, start 0.2s), aws 0.5s (2 calls" in lines[1]
    assert "policy pack 0.2s (2 calls" in lines[1]
    assert "preview with nothing to change 12.0s (traced)" in lines[0]
    assert lines[3].startswith("   preview, nothing to change: CLI 10.0s = before the program 2.0s")
    assert any("up not run at this size" in line for line in lines)
    assert any(line.endswith("pulumi 180 MiB") for line in lines)  # processes under 1 MiB left out
    assert lines[-1] == "   preview (traced) per model at N=200 / at N=10 = 0.53s / 1.10s = 0.48"


def test_memory_is_summed_over_the_cli_process_tree(tmp_path):
    """A stand-in `pulumi` (Python under that name) whose child holds 64 MiB: the sampler finds the tree by the
    CLI's path and adds the child's RSS to its own."""
    cli = tmp_path / "pulumi"
    cli.symlink_to(sys.executable)
    child = "x = bytearray(64 * 2**20); import time; time.sleep(1.5)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    with TreeMemory(str(cli), interval=0.1) as memory:
        subprocess.run([str(cli), "-c", parent], check=True)
    assert memory.peak_by_command["pulumi"] >= 64 * 1024
    assert memory.peak_total_kib >= 64 * 1024 + 1024


def test_processes_are_labelled_by_what_they_run():
    assert process_label(["/cache/bin/pulumi-resource-kubernetes", "41323"]) == "pulumi-resource-kubernetes"
    assert process_label(["/r/.venv/bin/python", "-u", "-m", "tests.e2e.standin_provider", "aws"]) == "standin-provider"
    assert process_label(["/p/policies/venv/bin/python", "-u", "-m", "pulumi.policy", "."]) == "policy-pack (python)"
    assert process_label(["/p/.venv/bin/python", "/bin/pulumi-language-python-exec", "--", "__main__.py"]) == (
        "program (python)"
    )
    assert process_label([]) == "?"


def test_nodes_hold_every_pod_of_the_generated_stack():
    pods = pods_per_pool(50)
    assert set(pods) == {"a10g", "l4", None} and sum(pods.values()) >= 100
    nodes = nodes_for(50)
    for pool, count in pods.items():
        mine = [node for node in nodes if node.pool == pool]
        assert len(mine) * 100 >= 2 * count  # twice the minimum replicas: room for a rolling update's surge
        assert {node.zone for node in mine} == {"us-east-1a", "us-east-1b", "us-east-1c"}
        for node in mine:
            capacity = node.manifest()["status"]["capacity"]
            assert capacity["ephemeral-storage"] == "8Ti"  # 100 pods' 52Gi of scratch each
            assert bool(node.manifest()["spec"]["taints"]) == (pool is not None) and node.gpus == (100 if pool else 0)


def test_the_pack_config_raises_only_the_quotas_the_generated_stack_outgrows(tmp_path):
    config = generate_stack(200)["config"]
    path = tmp_path / "bench200.json"
    write_policy_config(path, config)
    written = json.loads(path.read_text())
    prod = json.loads((Path(__file__).resolve().parents[2] / "policies" / "config" / "prod.json").read_text())
    assert written["karpenter-gpu-limit"]["maxGpusPerPool"] == config["modelops:gpuPools"]["a10g"]["gpuLimit"] > 32
    assert written["gpu-cost-ceiling"] == {**prod["gpu-cost-ceiling"], "budgetUsd": 10_000_000}
    assert written["all"] == "mandatory"
    assert {k: v for k, v in written.items() if k not in ("karpenter-gpu-limit", "gpu-cost-ceiling")} == {
        k: v for k, v in prod.items() if k not in ("karpenter-gpu-limit", "gpu-cost-ceiling")
    }


def test_run_py_prints_figure_8_from_the_sizes_asked(tmp_path, monkeypatch, capsys):
    """`bench/run.py --only 8` wiring, with the measuring (a cluster per size) replaced by rows of the made trace."""
    import bench.run

    spans = time_breakdown(read_otel_spans(preview_trace(tmp_path)))
    asked = []

    def measured(sizes, up_max):
        asked.append((sizes, up_max))
        run = {"wall": 9.0, "peak_mib": 700.0, "peak_by_process_mib": {"pulumi": 150.0}, "spans": spans}
        return [{"models": n, "preview_traced": run} for n in sizes]

    monkeypatch.setattr(bench.run, "real_scaling", measured)
    monkeypatch.setattr(sys, "argv", ["run.py", "--only", "8", "--real-sizes", "10,200", "--real-up-max", "10"])
    assert bench.run.main() == 0
    printed = capsys.readouterr().out.splitlines()
    assert asked == [((10, 200), 10)]
    assert printed[1].startswith("8. real engine scaling N= 10 (2 registrations): preview 9.0s")
    assert "   preview (traced) per model at N=200 / at N=10 = 0.04s / 0.90s = 0.05" in printed
    assert printed[1].endswith("preview 9.0s (traced), peak 700 MiB; up not run at this size")
    assert printed[-1].startswith("   load average at the end: ")


def test_prebuilt_images_are_in_the_registry_their_refs_pin(tmp_path):
    """A model with a pre-built `image.ref` and a standby fallback needs that image in the account's ECR (Lambda
    refuses an image URI that is not there): the bench pushes each one into the emulator and pins the ref to the
    digest ECR then reports."""
    from bench.real_scaling import Workbench, push_prebuilt_images
    from tests.e2e.aws_emulator import AwsEmulator

    models = generate_stack(12)["config"]["modelops:models"]
    aws = AwsEmulator(log_path=tmp_path / "moto.log")
    try:
        push_prebuilt_images(Workbench(cluster=None, cli=None, aws=aws, gateway=None), models)
        ecr = aws.client("ecr", "us-east-1")
        ref = models["m006"]["image"]["ref"]
        assert ref.startswith("123456789012.dkr.ecr.us-east-1.amazonaws.com/modelops/prod/m006:1.0.0@sha256:")
        digest = ref.split("@", 1)[1]
        found = ecr.describe_images(repositoryName="modelops/prod/m006", imageIds=[{"imageDigest": digest}])
        assert found["imageDetails"][0]["imageTags"] == ["1.0.0"]
        assert [m for m, model in models.items() if "ref" in model["image"]] == ["m006"]  # built ones untouched
    finally:
        aws.stop()
