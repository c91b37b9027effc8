"""The offline plan: what it captures, its preview-JSON shape, secrets, determinism and bad stacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from modelops_cli.cli import main
from modelops_cli.offline.engine import ProgramError, run_program
from modelops_cli.plan import dumps
from modelops_cli.stackfile import SECRET_PLACEHOLDER, StackSettings, load_project, load_stack
from tests.conftest import CLI_FIXTURES, ROOT, reference_plan, step_named


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_parent_and_dependency_is_another_step(stack):
    plan = reference_plan(stack)
    urns = {s["urn"] for s in plan["steps"]}
    assert len(urns) == len(plan["steps"]), "URNs are unique"
    for step in plan["steps"]:
        state = step["newState"]
        if state["type"] != "pulumi:pulumi:Stack":
            assert state["parent"] in urns, step["urn"]
        for dep in state.get("dependencies", []):
            assert dep in urns, (step["urn"], dep)
        for deps in state.get("propertyDependencies", {}).values():
            assert set(deps) <= urns
        if "provider" in state:
            provider = state["provider"].rsplit("::", 1)[0]
            # a default provider is the engine's own: the real preview names it but lists no step for it
            assert provider in urns or provider.rsplit("::", 1)[1].startswith("default"), provider


def test_urns_follow_the_engine_scheme(prod_plan):
    step = step_named(prod_plan, "chat-deployment")
    assert step["urn"] == (
        "urn:pulumi:prod::modelops::modelops:index:ModelService$" "kubernetes:apps/v1:Deployment::chat-deployment"
    )
    assert step["newState"]["parent"] == "urn:pulumi:prod::modelops::modelops:index:ModelService::chat"
    component = next(
        s for s in prod_plan["steps"] if s["urn"] == "urn:pulumi:prod::modelops::modelops:index:ModelService::chat"
    )
    assert component["newState"]["parent"] == "urn:pulumi:prod::modelops::pulumi:pulumi:Stack::modelops-prod"
    assert component["newState"]["custom"] is False


def test_step_keys_match_the_real_cli(prod_plan):
    real = json.loads((CLI_FIXTURES / "sample-preview-creates.json").read_text())
    assert set(prod_plan) - {"diagnostics"} <= set(real)
    assert {"config", "steps", "changeSummary"} <= set(prod_plan)
    real_step_keys = {k for s in real["steps"] for k in s} | {"provider"}
    real_state_keys = {k for s in real["steps"] for k in s["newState"]}
    # keys the fixture's small program has no use for; the real-engine tier checks ours against the CLI's
    allowed_state = real_state_keys | {
        "outputs",
        "protect",
        "retainOnDelete",
        "ignoreChanges",
        "customTimeouts",
        "external",
        "id",
        "additionalSecretOutputs",
        "replaceOnChanges",
    }
    for step in prod_plan["steps"]:
        assert set(step) <= real_step_keys
        assert set(step["newState"]) <= allowed_state, set(step["newState"]) - allowed_state
    # the StackReference is read, and the CLI leaves reads out of the summary
    assert prod_plan["changeSummary"] == {"create": len(prod_plan["steps"]) - 1}


def test_providers_protect_and_stack_reference_are_captured(prod_plan):
    repo = step_named(prod_plan, "chat-repo")
    assert repo["newState"]["protect"] is True  # prod protects its registries
    assert repo["provider"].startswith("urn:pulumi:prod::modelops::pulumi:providers:aws::aws::")
    deployment = step_named(prod_plan, "chat-deployment")
    assert deployment["provider"].startswith("urn:pulumi:prod::modelops::pulumi:providers:kubernetes::k8s::")
    ref = step_named(prod_plan, "acme/eks-platform/prod")
    assert ref["op"] == "read"
    aws = step_named(prod_plan, "aws")["newState"]["inputs"]
    # provider configuration travels JSON-encoded, as the engine passes it
    assert aws["region"] == "us-east-1" and json.loads(aws["allowedAccountIds"]) == ["123456789012"]


def test_a_serverless_only_stack_never_reads_the_cluster(dev_plan):
    types = {s["newState"]["type"] for s in dev_plan["steps"]}
    assert "pulumi:providers:kubernetes" not in types and "pulumi:pulumi:StackReference" not in types


def test_dependencies_follow_outputs(prod_plan):
    function_deps = step_named(reference_plan("dev"), "sentiment-fallback-function")["newState"]["propertyDependencies"]
    assert function_deps["role"] == [
        "urn:pulumi:dev::modelops::modelops:index:ServerlessFallback$aws:iam/role:Role::sentiment-fallback-role"
    ]
    pool = step_named(prod_plan, "a10g-node-pool")["newState"]
    assert (
        "urn:pulumi:prod::modelops::modelops:index:GpuNodePool$kubernetes:karpenter.k8s.aws/v1:EC2NodeClass::a10g-node-class"
        in pool["dependencies"]
    )


def test_values_unknown_at_preview_use_the_engine_marker(prod_plan):
    deployment = step_named(prod_plan, "chat-deployment")["newState"]["inputs"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    vision = step_named(prod_plan, "vision-deployment")["newState"]["inputs"]
    assert "@sha256:" in vision["spec"]["template"]["spec"]["containers"][0]["image"]


def test_planning_twice_is_byte_identical():
    first = dumps(run_program(load_stack("prod")))
    second = dumps(run_program(load_stack("prod")))
    assert first == second


def write_stack(tmp_path, name: str, mutate) -> str:
    data = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    mutate(data["config"])
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_secrets_never_appear_in_clear(tmp_path, capsys):
    def use_secret_kubeconfig(config):
        del config["modelops:cluster"]["kubeconfigStack"]
        config["modelops:kubeconfig"] = {"secure": "v1:ZW5jcnlwdGVk:c2VjcmV0LWt1YmVjb25maWc="}
        config["modelops:models"]["sentiment"]["fallback"] = "standby"  # on the cluster too: it needs the kubeconfig

    path = write_stack(tmp_path, "secretive", use_secret_kubeconfig)
    out = tmp_path / "plan.json"
    assert main(["plan", "--stack-file", path, "--json", str(out)]) == 0
    text = out.read_text()
    plan = json.loads(text)
    assert plan["config"]["modelops:kubeconfig"] == "[secret]"
    assert step_named(plan, "k8s")["newState"]["inputs"]["kubeconfig"] == "[secret]"
    assert SECRET_PLACEHOLDER not in text and "c2VjcmV0LWt1YmVjb25maWc" not in text
    assert "[secret]" in step_named(plan, "sentiment-image-1.2.0")["newState"]["inputs"]["registries"][0]["password"]


def test_the_stack_reference_answers_the_output_the_config_names(tmp_path):
    # A cluster stack that exports its kubeconfig as `config`: the real engine reads that output; the
    # offline engine used to answer only `kubeconfig` and failed the plan.
    def named_output(config):
        config["modelops:cluster"]["kubeconfigOutput"] = "config"
        config["modelops:models"]["sentiment"]["fallback"] = "standby"

    out = tmp_path / "plan.json"
    assert main(["plan", "--stack-file", write_stack(tmp_path, "named", named_output), "--json", str(out)]) == 0
    assert step_named(json.loads(out.read_text()), "k8s")["newState"]["inputs"]["kubeconfig"] == "[secret]"


def test_secure_values_nested_in_an_object_keep_the_key_secret(tmp_path):
    # The CLI decrypts a `secure:` value anywhere in an object and makes the whole key secret.
    def nested_secret(config):
        config["modelops:models"]["sentiment"]["serverless"]["samplePayload"] = {
            "inputs": {"secure": "v1:bm9uY2U=:c2FtcGxlLXBheWxvYWQtc2VjcmV0"}
        }

    out = tmp_path / "plan.json"
    assert main(["plan", "--stack-file", write_stack(tmp_path, "nested", nested_secret), "--json", str(out)]) == 0
    text = out.read_text()
    assert json.loads(text)["config"]["modelops:models"] == "[secret]"
    assert "c2FtcGxlLXBheWxvYWQtc2VjcmV0" not in text and SECRET_PLACEHOLDER not in text


def test_env_from_secret_config_reaches_pods_and_functions_only_as_secrets(tmp_path):
    """A `secure:` env value was written in clear into the Deployment and the Lambda environment (and so the
    state). Pods now read it from a Kubernetes Secret; the function's variables are a secret output."""

    def secret_env(config):
        model = config["modelops:models"]["sentiment"]
        model["fallback"] = "standby"
        model["env"] = {"HF_TOKEN": {"secure": "v1:bm9uY2U=:aGYtdG9rZW4tc2VjcmV0"}, "LOG_LEVEL": "info"}

    out = tmp_path / "plan.json"
    assert main(["plan", "--stack-file", write_stack(tmp_path, "secretenv", secret_env), "--json", str(out)]) == 0
    text = out.read_text()
    assert SECRET_PLACEHOLDER not in text and "aGYtdG9rZW4tc2VjcmV0" not in text
    plan = json.loads(text)
    secret = step_named(plan, "sentiment-env")["newState"]["inputs"]
    assert secret["kind"] == "Secret" and secret["stringData"] == "[secret]"
    env = step_named(plan, "sentiment-deployment")["newState"]["inputs"]["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "sentiment-env", "key": "HF_TOKEN"}}} in env
    assert not [e for e in env if e["name"] in ("HF_TOKEN", "LOG_LEVEL") and "value" in e]
    assert (
        step_named(plan, "sentiment-fallback-function")["newState"]["inputs"]["environment"]["variables"] == "[secret]"
    )


@pytest.mark.parametrize(
    "text, where",
    [
        ("config:\n  modelops:environment: dev\n  modelops:environment: prod\n", "line 3"),
        ("config:\n  modelops:models:\n    a: {version: 1.0.0}\n    a: {version: 2.0.0}\n", "line 4"),
    ],
)
def test_duplicate_keys_are_refused_as_the_cli_refuses_them(text, where, tmp_path, capsys):
    path = tmp_path / "Pulumi.dup.yaml"
    path.write_text(text)
    assert main(["plan", "--stack-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert "duplicate key" in err and where in err


def test_bad_stack_exits_2_with_key_paths_and_writes_nothing(tmp_path, capsys):
    def break_it(config):
        config["modelops:models"]["sentiment"]["replicas"] = {"min": 4, "max": 2}
        config["modelops:models"]["sentiment"]["colour"] = "blue"

    path = write_stack(tmp_path, "broken", break_it)
    out = tmp_path / "plan.json"
    assert main(["plan", "--stack-file", path, "--json", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "modelops:models.sentiment.colour: unknown key" in err
    assert not out.exists()


def test_yaml_syntax_error_names_the_line(tmp_path, capsys):
    path = tmp_path / "Pulumi.typo.yaml"
    path.write_text("config:\n  modelops:environment: dev\n   bad: [\n")
    assert main(["plan", "--stack-file", str(path)]) == 2
    assert capsys.readouterr().err.startswith("Pulumi.typo.yaml: line 3")


def test_min_above_max_message(tmp_path, capsys):
    def break_it(config):
        config["modelops:models"]["sentiment"]["replicas"] = {"min": 4, "max": 2}

    assert main(["plan", "--stack-file", write_stack(tmp_path, "minmax", break_it)]) == 2
    assert capsys.readouterr().err.strip() == "modelops:models.sentiment.replicas.min: must be <= max (4 > 2)"


def test_unknown_stack_lists_the_stacks(capsys):
    assert main(["plan", "--stack", "qa"]) == 2
    assert "no stack named 'qa'; stacks: dev, prod, staging" in capsys.readouterr().err


def test_the_program_itself_refuses_a_broken_config_before_registering_anything(monkeypatch):
    """What `pulumi up` does with a config that slipped past the offline check: nothing registered."""
    from modelops_cli.offline import engine

    good = load_stack("dev")
    broken = dict(good.config)
    broken["modelops:models"] = json.dumps(
        {"sentiment": {"version": "1", "image": {"context": "x"}, "gpus": 2, "fallback": "none"}}
    )
    registered = []

    class Recording(engine.CapturingMonitor):
        def RegisterResource(self, request):
            registered.append(request.type)
            return super().RegisterResource(request)

        def ReadResource(self, request):
            registered.append(request.type)
            return super().ReadResource(request)

    monkeypatch.setattr(engine, "CapturingMonitor", Recording)
    with pytest.raises(ProgramError) as info:
        run_program(StackSettings(good.project, "dev", broken, [], good.model))
    assert "modelops:models.sentiment.gpus: 2 GPUs requested but no pool is set" in str(info.value)
    assert registered == ["pulumi:pulumi:Stack"]  # the root the SDK opens, and nothing of ours


def test_console_script_and_module_entry_point_agree():
    result = subprocess.run(
        [sys.executable, "-m", "modelops_cli", "plan", "--stack", "dev", "--json", "-"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan == reference_plan("dev")
    assert "modelops-dev:" in result.stderr
    assert "info: model sentiment: fallback only: serverless only" in result.stderr


@pytest.mark.parametrize("verb", ["plan", "preflight", "schema", "check", "diff", "comment", "render", "cost", "smoke"])
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as info:
        main([verb, "--help"])
    assert info.value.code == 0
    assert "usage: modelops" in capsys.readouterr().out


def test_project_file_is_a_normal_pulumi_project():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "modelops"
    assert project["runtime"]["name"] == "python"
    assert project["stackConfigDir"] == "stacks"
    assert load_project().stacks() == ["dev", "prod", "staging"]


def test_two_resources_with_one_urn_fail_the_plan_as_the_engine_fails_the_update():
    import pulumi_kubernetes as k8s

    from modelops_cli.offline.engine import ProgramError, plan_of

    def program():
        for _ in range(2):
            k8s.core.v1.ConfigMap("same", metadata={"name": "a"})

    with pytest.raises(
        ProgramError, match="Duplicate resource URN 'urn:pulumi:test::modelops::kubernetes:core/v1:ConfigMap::same'"
    ):
        plan_of(program)


BOMB = "config:\n  modelops:environment: dev\n  modelops:bomb:\n    a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"    {chr(97 + i)}: &{chr(97 + i)} [{', '.join(['*' + chr(96 + i)] * 9)}]\n" for i in range(1, 10)
)


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "config:\n  modelops:models:\n    s:\n      version: 2024-01-01\n",
            "config.modelops:models.s.version: an unquoted date (2024-01-01); quote it",
        ),
        (
            "config:\n  modelops:models:\n    1: {version: '1'}\n",
            "config.modelops:models: key 1 is not a string; quote it",
        ),
        ("config:\n  modelops:environment: !!binary aGVsbG8=\n", "config.modelops:environment: a bytes value"),
        ("config:\n  modelops:environment: !!set {a, b}\n", "config.modelops:environment: a set value"),
        (BOMB, "aliases expand to more than 200000 values; refused"),
    ],
)
def test_yaml_the_cli_would_not_read_as_config_is_exit_2_naming_file_and_key(text, expected, tmp_path, capsys):
    path = tmp_path / "Pulumi.odd.yaml"
    path.write_text(text)
    assert main(["plan", "--stack-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"Pulumi.odd.yaml: {expected}" in err or expected in err, err
    assert "Traceback" not in err


def test_non_utf8_and_directory_stack_files_are_exit_2(tmp_path, capsys):
    bad = tmp_path / "Pulumi.bytes.yaml"
    bad.write_bytes(b"config:\n  modelops:environment: \xff\n")
    assert main(["plan", "--stack-file", str(bad)]) == 2
    assert "Pulumi.bytes.yaml: not UTF-8 text" in capsys.readouterr().err
    folder = tmp_path / "Pulumi.folder.yaml"
    folder.mkdir()
    assert main(["plan", "--stack-file", str(folder)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_a_plan_leaves_no_event_loop_for_the_interpreter_to_close():
    """The SDK's mock engine ran the program on event loops nobody closed (one per worker thread of its
    monitor, and the main one); the interpreter closed them at exit, sometimes after their file descriptors
    were gone: an "Invalid file descriptor" traceback after a successful plan. Python's dev mode reports any
    loop left open."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-X", "dev", "-m", "modelops_cli", "plan", "--stack", "staging"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MODELOPS_PREFLIGHT": "off"},
    )
    assert result.returncode == 0, result.stderr
    for sign in ("unclosed event loop", "Exception ignored", "Traceback", "Invalid file descriptor"):
        assert sign not in result.stderr, result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "--stack", "dev", "--json", "/dev/full"],  # a full disk
        ["plan", "--stack", "dev", "--json", "{tmp}"],  # a directory
        ["schema", "--out", "/dev/full"],
        ["policy-config", "--stack", "dev", "--write"],  # under a file where a directory should be
    ],
)
def test_an_output_that_cannot_be_written_is_exit_2_not_a_traceback(argv, tmp_path, capsys, monkeypatch):
    if argv[0] == "policy-config":
        from modelops_cli import check

        blocked = tmp_path / "policies"
        blocked.mkdir()
        (blocked / "config").write_text("")
        monkeypatch.setattr(check, "POLICIES_DIR", blocked)
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "modelops: cannot write" in err and "Traceback" not in err, err


def test_a_reader_that_goes_away_ends_the_command_quietly():
    import subprocess
    import sys

    reader = subprocess.Popen(
        [sys.executable, "-m", "modelops_cli", "plan", "--stack", "dev", "--json", "-"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "MODELOPS_PREFLIGHT": "off"},
    )
    assert reader.stdout is not None
    reader.stdout.read(10)
    reader.stdout.close()  # as `| head -c 10` does
    _, err = reader.communicate(timeout=300)
    assert reader.returncode == 0 and b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
