"""The components as a package another Pulumi program uses, through the real CLI.

A platform team's own program, in a directory of its own: `pulumi package add <repository>/components`
runs the component plugin (components/PulumiPlugin.yaml, its __main__.py under the project's uv
environment), generates a Python SDK from the schema it serves and links it into the program; a preview of
that program constructs GpuNodePool across the plugin boundary against the staging API server. The node role
and the cluster's name are another of the team's stacks' outputs, read through a StackReference and passed
as Inputs (left out of the nested `cluster`). What it emits is what the same component emits offline from the
same inputs: one component, not two.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import yaml

from components.__main__ import component_provider
from modelops_cli.offline.engine import plan_of
from tests.e2e.fidelity import differences, kubernetes_inputs
from tests.e2e.pulumi_cli import ROOT

CONSUMER = "platform-pools"
POOL = "consumer-l4"
PLATFORM = "platform-cluster"
"""The team's stack that owns the cluster: it exports the node role and the cluster's name."""
PLATFORM_OUTPUTS = {"nodeRole": "KarpenterNodeRole-ml-staging", "clusterName": "ml-staging"}

# What the consumer passes, in the schema's (camelCase) names: the same values reach the offline
# construction below, and the consumer program spells them with the generated SDK's classes.
INPUTS = {
    "pool": {"instanceFamilies": ["g6"], "instanceTypes": ["g6.xlarge"], "gpuLimit": 4, "amiVersion": "v1.66.0"},
    "cluster": {"region": "us-west-2", "accountId": "123456789012", "kubernetesVersion": "1.31"},
    **PLATFORM_OUTPUTS,
    "environment": "staging",
    "costOwner": "platform",
    "capacityTypes": ["on-demand"],
}

PROGRAM = f'''"""A platform team's program: one of its GPU pools is a modelops GpuNodePool, on the cluster another
of its stacks owns."""
import pulumi
import pulumi_modelops as modelops

platform = pulumi.StackReference("organization/{PLATFORM}/test")
pool = modelops.GpuNodePool(
    "{POOL}",
    pool=modelops.GpuPoolConfigArgs(
        instance_families=["g6"], instance_types=["g6.xlarge"], gpu_limit=4, ami_version="v1.66.0"
    ),
    cluster=modelops.ClusterConfigArgs(region="us-west-2", account_id="123456789012", kubernetes_version="1.31"),
    cluster_name=platform.require_output("clusterName"),
    node_role=platform.require_output("nodeRole"),
    environment=modelops.Environment.STAGING,
    cost_owner="platform",
    capacity_types=[modelops.CapacityType.ON_DEMAND],
)
pulumi.export("nodePoolName", pool.node_pool_name)
pulumi.export("tolerations", pool.tolerations)
'''


def pinned_pulumi() -> str:
    """The pulumi SDK version the project locks: the consumer runs the same, as a platform team pinning it would."""
    lock = (ROOT / "uv.lock").read_text()
    block = lock[lock.index('[[package]]\nname = "pulumi"\n') :]
    return block.split('version = "', 1)[1].split('"', 1)[0]


def provider_plugins() -> dict[str, str]:
    """name -> version of the provider plugins the components' environment requires (the SDKs that ship a
    pulumi-plugin.json, as the language host reports them): the tier's project installs the same lock."""
    found = {}
    for dist in importlib.metadata.distributions():
        for file in dist.files or []:
            if file.name == "pulumi-plugin.json" and file.parent.name.startswith("pulumi_"):
                manifest = json.loads(file.read_text())
                if manifest.get("resource"):
                    found[manifest["name"]] = manifest["version"].lstrip("v")
    return found


def install_provider_plugins(cli) -> None:
    """`package add` installs the plugin's own dependencies into the plugin cache, never looking on PATH:
    an air-gapped user installs them from files first (`pulumi plugin install --file`), as here from the
    tier's binaries and stand-in launchers. A run still uses the PATH ones first, the same files."""
    for name, version in sorted(provider_plugins().items()):
        binary = cli.bin_dir / f"pulumi-resource-{name}"
        if not binary.exists():
            binary = cli.launchers / f"pulumi-resource-{name}"
        done = cli.run("plugin", "install", "resource", name, version, "--file", str(binary))
        assert done.returncode == 0, done.explain()


PLATFORM_PROGRAM = '''"""The team's cluster stack, as far as the pools need it: the nodes' role and the cluster's name."""
import pulumi

config = pulumi.Config()
pulumi.export("nodeRole", config.require("nodeRole"))
pulumi.export("clusterName", config.require("clusterName"))
'''


def platform_stack(cli) -> None:
    """`organization/platform-cluster/test`, up, exporting PLATFORM_OUTPUTS (the program runs in the project's
    environment: it needs only the pulumi SDK)."""
    project = cli.workdir / PLATFORM
    project.mkdir(parents=True, exist_ok=True)
    runtime = {"name": "python", "options": {"toolchain": "pip", "virtualenv": str(ROOT / ".venv")}}
    (project / "Pulumi.yaml").write_text(yaml.safe_dump({"name": PLATFORM, "main": "__main__.py", "runtime": runtime}))
    (project / "__main__.py").write_text(PLATFORM_PROGRAM)
    steps = [["stack", "init", f"organization/{PLATFORM}/test"]]
    steps += [["config", "set", key, value, "-s", "test"] for key, value in PLATFORM_OUTPUTS.items()]
    for step in [*steps, ["up", "--yes", "--skip-preview", "-s", "test"]]:
        done = cli.run(*step, cwd=project)
        assert done.returncode == 0, done.explain()


def write_consumer(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Pulumi.yaml").write_text(
        yaml.safe_dump({"name": CONSUMER, "runtime": {"name": "python", "options": {"toolchain": "uv"}}})
    )
    (directory / "pyproject.toml").write_text(
        f'[project]\nname = "{CONSUMER}"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f'dependencies = ["pulumi=={pinned_pulumi()}"]\n'
    )
    (directory / "__main__.py").write_text(PROGRAM)


def test_another_program_adds_the_package_and_previews_a_component_through_the_real_cli(tier):
    cli = tier.cli
    consumer = cli.workdir / "consumer"
    write_consumer(consumer)
    kubeconfig = cli.workdir / "consumer-kubeconfig"
    kubeconfig.write_text(tier.clusters["staging"].kubeconfig())

    assert set(provider_plugins()) == {"aws", "docker", "docker-build", "kubernetes"}
    install_provider_plugins(cli)
    platform_stack(cli)
    added = cli.run("package", "add", str(cli.project / "components"), cwd=consumer)
    assert added.returncode == 0, added.explain()
    # the SDK generated from the schema the plugin served, linked into the program
    sdk = consumer / "sdks" / "modelops"
    assert (sdk / "pulumi_modelops" / "gpu_node_pool.py").is_file(), added.explain()
    # the generated SDK takes the node role as an Input (an Output of another stack), the nested cluster plain
    generated = (sdk / "pulumi_modelops" / "gpu_node_pool.py").read_text()
    assert "node_role: pulumi.Input[Optional[_builtins.str]] = None" in generated
    assert "cluster: 'ClusterConfigArgs'," in generated
    assert json.loads((sdk / "pulumi_modelops" / "pulumi-plugin.json").read_text())["name"] == "modelops"
    project = yaml.safe_load((consumer / "Pulumi.yaml").read_text())
    source = project["packages"]["modelops"]
    source = source["source"] if isinstance(source, dict) else source
    assert (consumer / source).resolve() == (cli.project / "components").resolve()
    assert "sdks/modelops" in (consumer / "pyproject.toml").read_text()

    init = cli.run("stack", "init", f"organization/{CONSUMER}/test", cwd=consumer)
    assert init.returncode == 0, init.explain()
    preview = cli.run("preview", "-s", "test", "--json", cwd=consumer, env={"KUBECONFIG": str(kubeconfig)})
    assert preview.returncode == 0, preview.explain()
    real = preview.json()

    steps = {s["urn"]: s for s in real["steps"]}
    component = next(urn for urn in steps if urn.endswith(f"modelops:index:GpuNodePool::{POOL}"))
    assert steps[component]["op"] == "create"
    children = {
        urn.rsplit("::", 1)[-1]: step["newState"]
        for urn, step in steps.items()
        if step["newState"].get("parent") == component
    }
    assert children[f"{POOL}-node-pool"]["type"] == "kubernetes:karpenter.sh/v1:NodePool"
    assert children[f"{POOL}-node-class"]["type"] == "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
    node_pool = children[f"{POOL}-node-pool"]["inputs"]["spec"]
    assert node_pool["limits"]["nvidia.com/gpu"] == "4"
    assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in node_pool["template"]["spec"]["taints"]
    # an enum list crossed the plugin boundary as its values (the SDK's provider alone sent `[{}]`)
    assert {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]} in node_pool["template"][
        "spec"
    ]["requirements"]
    # the other stack's outputs reached the node class, read at preview through the StackReference
    node_class = children[f"{POOL}-node-class"]["inputs"]["spec"]
    assert node_class["role"] == PLATFORM_OUTPUTS["nodeRole"]
    assert node_class["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": PLATFORM_OUTPUTS["clusterName"]}}]

    # The same component from the same inputs, offline: the same Kubernetes objects, input for input.
    provider = component_provider()
    offline = plan_of(lambda: provider.construct(POOL, "modelops:index:GpuNodePool", INPUTS))
    by_name = lambda plan: {urn.rsplit("::", 1)[-1]: v for urn, v in kubernetes_inputs(plan).items()}  # noqa: E731
    real_objects, offline_objects = by_name(real), by_name(offline)
    assert set(real_objects) == set(offline_objects) and len(real_objects) >= 2
    for name in sorted(real_objects):
        assert differences(offline_objects[name], real_objects[name]) == [], name
