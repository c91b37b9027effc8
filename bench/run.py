"""The offline engine's benchmark: prints eight figures for this machine, measured in one run.

  ./run bench            (or: .venv/bin/python bench/run.py [--repeat N] [--skip-cold-start])

1. floor ratio: `modelops check --stack prod` (which plans, then checks) and `plan` + `check` as two
   commands, over a bare import of the SDKs with the same lazy sub-module imports (medians);
2. SDK ratio: planning a generated 100-model stack over the SDK's stock mocks registering the same
   resources with the same inputs directly;
3. scaling: plan + check time per model and peak RSS at N = 10, 50, 200;
4. graph shape: the longest dependency chain (parents, depends_on, output-to-input) in prod and at N = 200;
5. blast radius: resources of other models whose inputs change when one model's version moves (50 models);
6. cold start: the environment set-up into an empty virtualenv (uv, warm package cache);
7. real engine: the real `pulumi preview -s prod --policy-pack` against a local API server (the tier of
   tests/e2e, tools built by ./run tools) over `modelops check` of the same stack file;
8. real engine scaling: `pulumi preview` and `pulumi up` of 10, 50 and 200 generated models through the real
   CLI against a local API server (bench/real_scaling.py): wall time, peak memory of the CLI and its plugins,
   and where the time goes (language host, program, each provider's calls, the policy pack) from the engine's
   own spans.

Figures only: it exits non-zero when it cannot run, never because a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PYTHON = sys.executable
MODELOPS = str(Path(PYTHON).parent / "modelops")
SDK_PACKAGES = ("pulumi", "pulumi_kubernetes", "pulumi_aws", "pulumi_docker_build", "pulumi_docker", "pydantic")


def sdk_modules_loaded_by_plan() -> list[str]:
    """The SDK modules (top packages and the sub-modules loaded lazily) a prod plan imports: the floor
    imports exactly these, so the ratio measures our work, not the SDKs' import time."""
    code = (
        "import sys, contextlib, io; sys.argv=['modelops']; from modelops_cli.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): main(['plan', '--stack', 'prod'])\n"
        f"print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in {SDK_PACKAGES!r})))"
    )
    out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return out.split()


def wall(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def floor_ratio(repeat: int) -> dict:
    modules = sdk_modules_loaded_by_plan()
    imports = wall([PYTHON, "-c", "; ".join(f"import {m}" for m in modules)], repeat)
    plan = wall([MODELOPS, "plan", "--stack", "prod"], repeat)
    check = wall([MODELOPS, "check", "--stack", "prod"], repeat)
    return {
        "modules": len(modules),
        "import_s": imports,
        "plan_s": plan,
        "check_s": check,
        "check_over_import": check / imports,
        "plan_plus_check_over_import": (plan + check) / imports,
    }


def _plan_file(n: int, directory: Path, version_bump: str | None = None, name: str | None = None) -> dict:
    from bench.generate import write_stack
    from modelops_cli.common import plan_stack

    path = write_stack(n, directory, version_bump, name)
    return plan_stack(path.stem.split(".", 1)[1], stack_file=str(path))


def _stock_registration(plan: dict) -> float:
    """Register every resource of `plan` with the same inputs through the SDK's stock mocks, timed."""
    import pulumi

    class Stock(pulumi.runtime.Mocks):
        def new_resource(self, args):
            return f"{args.name}-id", args.inputs

        def call(self, args):
            return {}

    steps = [
        s
        for s in plan["steps"]
        if s["op"] == "create" and s["newState"].get("custom") and not s["newState"]["type"].startswith("pulumi:")
    ]

    def program():
        for s in steps:
            pulumi.CustomResource(s["newState"]["type"], s["urn"].rsplit("::", 1)[-1], dict(s["newState"]["inputs"]))

    # the stock mocks run on the current event loop, which the offline engine closed after its run (it
    # opens a fresh one itself when it finds it closed)
    previous = asyncio.get_event_loop()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(Stock(), project="modelops", stack="stock", preview=True)
    started = time.perf_counter()
    try:
        pulumi.runtime.mocks.test(program)()
        return time.perf_counter() - started
    finally:
        loop.close()
        asyncio.set_event_loop(previous)


def sdk_ratio(directory: Path, repeat: int, n: int = 100) -> dict:
    from bench.generate import write_stack
    from modelops_cli.common import plan_stack

    path = write_stack(n, directory)
    stack = path.stem.split(".", 1)[1]
    plan = plan_stack(stack, stack_file=str(path))  # warms imports for both sides
    _stock_registration(plan)
    ours, stock = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        plan = plan_stack(stack, stack_file=str(path))
        ours.append(time.perf_counter() - started)
        stock.append(_stock_registration(plan))
    resources = sum(1 for s in plan["steps"] if s["newState"].get("custom"))
    return {
        "models": n,
        "resources": resources,
        "plan_s": statistics.median(ours),
        "stock_mocks_s": statistics.median(stock),
        "ratio": statistics.median(ours) / statistics.median(stock),
    }


def _child_scaling(n: int) -> None:
    """In a fresh process: plan + check N models; print time (imports excluded) and peak RSS."""
    from modelops_cli.check import load_policy_config, run_checks
    from modelops_cli.plan import from_json

    with tempfile.TemporaryDirectory() as tmp:
        _plan_file(1, Path(tmp), name="warm")  # imports and first-use costs, not per-model work
        started = time.perf_counter()
        plan = _plan_file(n, Path(tmp))
        run_checks(from_json(plan), load_policy_config(ROOT / "policies" / "config" / "prod.json"))
        elapsed = time.perf_counter() - started
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"models": n, "seconds": elapsed, "rss_mib": rss_mib, "resources": len(plan["steps"])}))


def scaling(sizes: tuple[int, ...]) -> list[dict]:
    rows = []
    for n in sizes:
        out = subprocess.run(
            [PYTHON, __file__, "--child-scaling", str(n)], cwd=ROOT, capture_output=True, text=True, check=True
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["per_model_ms"] = row["seconds"] / n * 1000
        rows.append(row)
    return rows


def longest_chain(plan: dict) -> tuple[int, int]:
    """The longest path of parent, depends_on and output-to-input edges: (all resources on it, custom
    resources on it). Components and the stack create nothing, so only the second waits in `pulumi up`."""
    edges, custom = {}, {}
    for s in plan["steps"]:
        state = s["newState"]
        deps = set(state.get("dependencies", []))
        if state.get("parent"):
            deps.add(state["parent"])
        for urns in state.get("propertyDependencies", {}).values():
            deps.update(urns)
        edges[s["urn"]] = deps
        custom[s["urn"]] = bool(state.get("custom")) and not state["type"].startswith("pulumi:providers:")
    depth: dict[str, tuple[int, int]] = {}

    def visit(urn: str) -> tuple[int, int]:
        if urn not in depth:
            below = max((visit(d) for d in edges.get(urn, ()) if d in edges), default=(0, 0))
            depth[urn] = (below[0] + 1, below[1] + int(custom[urn]))
        return depth[urn]

    sys.setrecursionlimit(10000)
    return max(visit(u) for u in edges)


def blast_radius(directory: Path, n: int = 50) -> dict:
    from bench.generate import model_name

    bumped = model_name(7)
    before = _plan_file(n, directory, name="blast")
    after = _plan_file(n, directory, version_bump=bumped, name="blast")
    old = {s["urn"]: s["newState"].get("inputs") for s in before["steps"]}
    new = {s["urn"]: s["newState"].get("inputs") for s in after["steps"]}
    changed = [u for u in old if old[u] != new.get(u)]
    own = [u for u in changed if u.rsplit("::", 1)[-1].startswith(bumped)]
    return {
        "models": n,
        "changed": len(changed),
        "of_the_bumped_model": len(own),
        "of_other_models": len(changed) - len(own),
    }


def cold_start() -> dict:
    uv = ROOT / ".tools" / "bin" / "uv"
    if not uv.exists():
        return {"skipped": "no .tools/bin/uv (run ./run once)"}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(Path(tmp) / "venv")}
        started = time.perf_counter()
        subprocess.run([str(uv), "sync", "--locked", "--compile-bytecode", "--quiet"], cwd=ROOT, env=env, check=True)
        return {"seconds": time.perf_counter() - started, "cache": "warm uv cache (packages already downloaded)"}


def real_preview(repeat: int) -> dict:
    """Median wall time of the real CLI's policy-checked preview of prod and of `modelops check` on it."""
    from tests.e2e.cluster import LocalCluster, tools_bin_dir
    from tests.e2e.pulumi_cli import PulumiCli

    bin_dir = tools_bin_dir()
    if bin_dir is None:
        return {"skipped": "the real-engine tools are not built (./run tools)"}
    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(bin_dir, Path(tmp) / "cluster")
        try:
            cluster.start()
            cli = PulumiCli(bin_dir, Path(tmp) / "pulumi")
            cli.platform_stack("prod", cluster.kubeconfig())
            cli.init_stack("prod")
            real, offline = [], []
            for _ in range(repeat):
                started = time.perf_counter()
                result = cli.preview("prod")
                real.append(time.perf_counter() - started)
                if result.returncode != 0:
                    return {"skipped": "the real preview failed:\n" + result.explain()}
                started = time.perf_counter()
                # the repository's prod stack: the same stack as the copy but for the kubeconfig stack's name
                subprocess.run(
                    [MODELOPS, "check", "--stack", "prod"],
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    check=False,
                )
                offline.append(time.perf_counter() - started)
        finally:
            cluster.stop()
    real_s, offline_s = statistics.median(real), statistics.median(offline)
    return {"real_s": real_s, "offline_s": offline_s, "ratio": real_s / offline_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs per median (default 5)")
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--skip-real-engine", action="store_true")
    parser.add_argument("--only", metavar="N[,N]", help="print only these figures (e.g. --only 1,7)")
    parser.add_argument(
        "--real-sizes", default="10,50,200", metavar="N[,N]", help="figure 8's stack sizes (default 10,50,200)"
    )
    parser.add_argument(
        "--real-up-max", type=int, default=200, metavar="N", help="figure 8 runs `up` up to this size (default 200)"
    )
    parser.add_argument("--child-scaling", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_scaling:
        _child_scaling(args.child_scaling)
        return 0

    wanted = {int(n) for n in args.only.split(",")} if args.only else set(range(1, 9))
    print(f"modelops bench on {os.cpu_count()} cores, Python {sys.version.split()[0]}; medians of {args.repeat}")
    if 1 in wanted:
        figure_1(args.repeat)
    if wanted & {2, 3, 4, 5}:
        figures_2_to_5(args.repeat, wanted)
    if 6 in wanted:
        if args.skip_cold_start:
            print("6. cold start: skipped")
        else:
            c = cold_start()
            print(
                "6. cold start: "
                + (
                    c["skipped"]
                    if "skipped" in c
                    else f"set-up into an empty virtualenv {c['seconds']:.1f}s ({c['cache']})"
                )
            )
    if 7 in wanted:
        if args.skip_real_engine:
            print("7. real engine: skipped")
        else:
            r = real_preview(max(1, min(3, args.repeat)))
            print(
                "7. real engine: "
                + (
                    r["skipped"]
                    if "skipped" in r
                    else f"pulumi preview -s prod --policy-pack {r['real_s']:.1f}s / modelops check "
                    f"--stack prod {r['offline_s']:.1f}s = {r['ratio']:.1f}x (target >= 10)"
                )
            )
    if 8 in wanted:
        if args.skip_real_engine:
            print("8. real engine scaling: skipped")
        else:
            figure_8(tuple(int(n) for n in args.real_sizes.split(",")), args.real_up_max)
    return 0


def figure_1(repeat: int) -> None:
    f = floor_ratio(repeat)
    print(
        f"1. floor ratio: check --stack prod {f['check_s']:.2f}s / bare imports of the {f['modules']} SDK "
        f"modules a plan loads {f['import_s']:.2f}s = "
        f"{f['check_over_import']:.2f} (target <= 1.5); plan {f['plan_s']:.2f}s + check as two commands = "
        f"{f['plan_plus_check_over_import']:.2f}"
    )


def figures_2_to_5(repeat: int, wanted: set[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if 2 in wanted:
            _figure_2(Path(tmp), repeat)
        if 3 in wanted:
            _figure_3()
        if 4 in wanted:
            _figure_4(Path(tmp))
        if 5 in wanted:
            b = blast_radius(Path(tmp))
            print(
                f"5. blast radius: bumping one model of {b['models']} changes {b['of_the_bumped_model']} of its own "
                f"resources and {b['of_other_models']} of other models (target 0)"
            )


def _figure_2(tmp: Path, repeat: int) -> None:
    s = sdk_ratio(tmp, max(3, repeat // 2))
    print(
        f"2. SDK ratio at N={s['models']} ({s['resources']} resources): plan {s['plan_s']:.2f}s / stock mocks "
        f"{s['stock_mocks_s']:.2f}s = {s['ratio']:.2f} (target <= 1.25)"
    )


def _figure_3() -> None:
    rows = scaling((10, 50, 200))
    for r in rows:
        print(
            f"3. scaling N={r['models']:>3}: plan+check {r['seconds']:.2f}s, {r['per_model_ms']:.1f} ms/model, "
            f"{r['resources']} resources, peak RSS {r['rss_mib']:.0f} MiB"
        )
    print(
        f"   per-model cost at 200 / at 10 = {rows[-1]['per_model_ms'] / rows[0]['per_model_ms']:.2f} "
        "(target <= 1.3); 200 models within 1 GiB: "
        f"{'yes' if rows[-1]['rss_mib'] < 1024 else 'no'}"
    )


def _figure_4(tmp: Path) -> None:
    from modelops_cli.common import plan_stack

    prod_chain = longest_chain(plan_stack("prod"))
    big_chain = longest_chain(_plan_file(200, tmp))
    print(
        f"4. graph shape: longest dependency chain prod = {prod_chain[1]} resources to create "
        f"({prod_chain[0]} with the stack and components), N=200 = {big_chain[1]} ({big_chain[0]}) "
        "(target <= 6, not growing with N)"
    )


def real_scaling(sizes: tuple[int, ...], up_max: int) -> list[dict] | str:
    """Figure 8's rows (bench/real_scaling.py), each size on a fresh cluster; a reason string when it cannot run."""
    from bench.real_scaling import measure_size
    from tests.e2e.cluster import tools_bin_dir

    bin_dir = tools_bin_dir()
    if bin_dir is None:
        return "the real-engine tools are not built (./run tools)"
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure_size(bin_dir, Path(tmp), n, up=n <= up_max))
    return rows


def figure_8(sizes: tuple[int, ...], up_max: int) -> None:
    from bench.real_scaling import format_rows

    rows = real_scaling(sizes, up_max)
    if isinstance(rows, str):
        print(f"8. real engine scaling: {rows}")
        return
    load = os.getloadavg()[0]
    for line in format_rows(rows):
        print(line if line.startswith(" ") else f"8. {line}")
    print(f"   load average at the end: {load:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    sys.exit(main())
