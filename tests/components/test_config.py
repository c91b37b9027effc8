"""The stack schema, as plain pytest: valid stacks pass, each broken one names its key path."""

from __future__ import annotations

import json
import re

import pytest

from components.config import ENVIRONMENT_DEFAULTS, SECRET_SET, StackConfigError, parse_stack_config
from modelops_cli.schema import json_schema
from tests.conftest import ROOT, stack_raw


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_reference_stacks_validate(stack):
    cfg = parse_stack_config(stack_raw(stack))
    assert cfg.environment == stack
    assert cfg.models


def test_prod_reference_stack_has_the_promised_shape():
    cfg = parse_stack_config(stack_raw("prod"))
    pools_used = {m.pool for m in cfg.models.values() if m.pool}
    assert len(cfg.models) >= 3 and len(pools_used) >= 2
    assert any(m.canary for m in cfg.models.values())
    assert any(cfg.fallback(m) == "auto" for m in cfg.models.values())
    assert any(m.gpus == 0 and m.pool is None for m in cfg.models.values())


def test_dev_is_serverless_only_without_gpu_pools():
    cfg = parse_stack_config(stack_raw("dev"))
    assert cfg.gpu_pools == {}
    assert all(cfg.fallback(m) == "only" for m in cfg.models.values())


def test_environment_defaults_come_from_one_table():
    raw = stack_raw("staging")
    raw["models"]["sentiment"].pop("fallback")
    cfg = parse_stack_config(raw)
    model = cfg.models["sentiment"]
    assert cfg.min_replicas(model) == ENVIRONMENT_DEFAULTS["staging"].min_replicas
    assert cfg.max_replicas(model) == ENVIRONMENT_DEFAULTS["staging"].max_replicas
    assert cfg.fallback(model) == ENVIRONMENT_DEFAULTS["staging"].fallback
    assert cfg.capacity_types(cfg.gpu_pools["l4"]) == list(ENVIRONMENT_DEFAULTS["staging"].capacity_types)


def problems_of(raw) -> list[str]:
    with pytest.raises(StackConfigError) as info:
        parse_stack_config(raw)
    return info.value.problems


def break_prod(path: str, value, delete: bool = False):
    raw = stack_raw("prod")
    *parents, last = path.split(".")
    node = raw
    for part in parents:
        node = node[part]
    if delete:
        del node[last]
    else:
        node[last] = value
    return raw


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("models.chat.replicas.min", 9, "modelops:models.chat.replicas.min: must be <= max (9 > 6)"),
        ("models.chat.pool", "h100", "modelops:models.chat.pool: unknown GPU pool 'h100' (gpuPools: a10g, l4)"),
        ("models.sentiment.gpus", 1, "modelops:models.sentiment.gpus: 1 GPUs requested but no pool is set"),
        (
            "models.chat.canary.weight",
            120,
            "modelops:models.chat.canary.weight: Input should be less than or equal to 100",
        ),
        (
            "models.chat.canary.weight",
            -5,
            "modelops:models.chat.canary.weight: Input should be greater than or equal to 0",
        ),
        ("models.chat.gpus", "two", "modelops:models.chat.gpus: Input should be a valid integer"),
        ("models.chat.colour", "blue", "modelops:models.chat.colour: unknown key"),
        ("environment", "qa", "modelops:environment: Input should be 'dev', 'staging' or 'prod'"),
        ("gpuPools.a10g.gpuLimit", 0, "modelops:gpuPools.a10g.gpuLimit: Input should be greater than or equal to 1"),
        ("gpuPools.a10g.instanceTypes", ["g5.mega"], "modelops:gpuPools.a10g: unknown GPU instance types ['g5.mega']"),
        (
            "models.chat.gpus",
            8,
            "modelops:models.chat.gpus: 8 GPUs per replica, but pool 'a10g' has at most 4 GPUs per instance",
        ),
        # requests must fit an instance type of the pool beside what the node keeps (0.5 vCPU, 1.5 GiB)
        (
            "models.chat.resources",
            {"cpu": "48", "memory": "24Gi"},
            "modelops:models.chat.resources: 48 CPU and 24Gi with 1 GPU(s) fit none of pool a10g's instance types",
        ),
        (
            "models.summarizer.resources",
            {"cpu": "3", "memory": "60Gi"},
            "modelops:models.summarizer.resources: 3 CPU and 60Gi with 1 GPU(s) fit none of pool l4's instance types",
        ),
        (
            "models.summarizer.resources",
            {"cpu": "8", "memory": "8Gi"},
            "modelops:models.summarizer.resources: 8 CPU and 8Gi with 1 GPU(s) fit none",
        ),
        ("cluster.accountId", "1234", "modelops:cluster.accountId: String should match pattern"),
        ("registry.allowedRegistries", ["nvcr.io"], "modelops:registry.allowedRegistries: 'nvcr.io' must end with '/'"),
        (
            "models.chat.canary.version",
            "2.4.0",
            "modelops:models.chat.canary.version: equals the stable version '2.4.0'",
        ),
        (
            "models.summarizer.serverless.memoryMb",
            20000,
            "modelops:models.summarizer.serverless.memoryMb: Input should be less than or equal to 10240",
        ),
        # values the real systems would refuse, refused here with the key named
        ("budget.monthlyGpuUsd", float("nan"), "modelops:budget.monthlyGpuUsd: Input should be a finite number"),
        ("budget.monthlyGpuUsd", float("inf"), "modelops:budget.monthlyGpuUsd: Input should be a finite number"),
        ("cluster.nodeRole", "", "modelops:cluster.nodeRole: String should match pattern"),
        ("cluster.nodeRole", "role with spaces", "modelops:cluster.nodeRole: String should match pattern"),
        ("cluster.discoveryTag", "", "modelops:cluster.discoveryTag: String should have at least 1 character"),
        ("cluster.gateway.name", "", "modelops:cluster.gateway.name: String should match pattern"),
        (
            "cluster.gateway.hostname",
            "Models.Acme.Example",
            "modelops:cluster.gateway.hostname: String should match pattern",
        ),
        (
            "cluster.gateway.namespace",
            "gateway_system",
            "modelops:cluster.gateway.namespace: String should match pattern",
        ),
        ("cluster.alarmTopicArn", "ml-oncall", "modelops:cluster.alarmTopicArn: String should match pattern"),
        ("cluster.ingressCidrs", ["10.0.0.1/16"], "modelops:cluster.ingressCidrs: '10.0.0.1/16' is not a CIDR block"),
        ("cluster.ingressCidrs", ["vpc"], "modelops:cluster.ingressCidrs: 'vpc' is not a CIDR block"),
        ("models.chat.namespace", "kube-system", "modelops:models.chat.namespace: 'kube-system' is not the project's"),
        ("models.chat.namespace", "kube-public", "modelops:models.chat.namespace: 'kube-public' is not the project's"),
        ("models.chat.namespace", "default", "modelops:models.chat.namespace: 'default' is not the project's"),
        ("models.chat.namespace", "monitoring", "modelops:models.chat.namespace: 'monitoring' is not the project's"),
        ("models.chat.namespace", "gateway-system", "modelops:models.chat.namespace: 'gateway-system' is not the"),
        # image references: the distribution grammar, with a registry
        (
            "models.vision.image",
            {"ref": "nvcr.io/nvidia/Triton:24.08"},
            "modelops:models.vision.image.ref: " "'nvcr.io/nvidia/Triton:24.08' is not an image reference",
        ),  # upper-case path
        (
            "models.vision.image",
            {"ref": "nvcr.io/nvidia/triton:-bad"},
            "modelops:models.vision.image.ref: 'nvcr.io/nvidia/triton:-bad' is not",
        ),
        ("models.vision.image", {"ref": "nvcr.io/nvidia/triton:" + "t" * 129}, "modelops:models.vision.image.ref"),
        ("models.vision.image", {"ref": "nvcr.io/nvidia//triton:1"}, "modelops:models.vision.image.ref"),
        ("models.vision.image", {"ref": "nvcr.io/nvidia/triton@sha256:abc"}, "modelops:models.vision.image.ref"),
        ("models.vision.image", {"ref": "nvcr.io/nvidia/triton:1\n"}, "modelops:models.vision.image.ref"),
        (
            "models.vision.image",
            {"ref": "library/triton:1"},
            "modelops:models.vision.image.ref: " "'library/triton:1' names no registry",
        ),
        (
            "models.vision.image",
            {"ref": "r.example/" + "a/" * 130 + "b:1"},
            "modelops:models.vision.image.ref: the " "repository name is longer than 255 characters",
        ),
        # versions are tags and label values at once
        ("models.chat.version", "-2.4.0", "modelops:models.chat.version: String should match pattern"),
        ("models.chat.version", "2.4.0.", "modelops:models.chat.version: String should match pattern"),
        ("models.chat.version", "2.4+build", "modelops:models.chat.version: String should match pattern"),
        ("models.chat.canary.version", "v" * 64, "modelops:models.chat.canary.version: String should match pattern"),
        # env: Lambda's key rule, names the program sets, Lambda's reserved keys
        ("models.chat.env", {"1ST": "x"}, "modelops:models.chat.env: '1ST': env names are a letter"),
        ("models.chat.env", {"A-B": "x"}, "modelops:models.chat.env: 'A-B': env names"),
        ("models.chat.env", {"X": "x"}, "modelops:models.chat.env: 'X': env names"),
        ("models.chat.env", {"MODEL_DIR": "/elsewhere"}, "modelops:models.chat.env: MODEL_DIR: set by the program"),
        ("models.chat.env", {"AWS_REGION": "eu-west-1"}, "modelops:models.chat.env: AWS_REGION: set by"),
        ("models.sentiment.env", {"BIG": "x" * 4100}, "modelops:models.sentiment.env: 4"),
        # Karpenter's CRD: an AMI alias is at most 30 characters
        ("gpuPools.a10g.amiVersion", "v1.66.0" + "0" * 20, "modelops:gpuPools.a10g: amiVersion: the AMI alias"),
        # required strings that must not be empty or malformed
        ("cluster.kubeconfigOutput", "", "modelops:cluster.kubeconfigOutput: String should have at least 1 character"),
        ("models.chat.probes.readyPath", "", "modelops:models.chat.probes.readyPath: String should match pattern"),
        ("models.chat.probes.livePath", "health", "modelops:models.chat.probes.livePath: String should match pattern"),
        (
            "models.summarizer.autoscaling.prometheusThreshold",
            "ten",
            "modelops:models.summarizer.autoscaling.prometheusThreshold: String should match pattern",
        ),
        (
            "models.summarizer.autoscaling.prometheusQuery",
            "",
            "modelops:models.summarizer.autoscaling.prometheusQuery: String should have at least 1 character",
        ),
        (
            "models.summarizer.autoscaling.prometheusAddress",
            "Prometheus:9090",
            "modelops:models.summarizer.autoscaling.prometheusAddress: String should match pattern",
        ),
    ],
)
def test_broken_values_name_their_key_path(path, value, expected):
    problems = problems_of(break_prod(path, value))
    assert any(p.startswith(expected) for p in problems), problems


def test_lambda_fallback_needs_an_image_in_this_accounts_ecr():
    raw = break_prod("models.vision.fallback", "standby")
    assert parse_stack_config(raw)  # vision's pre-built image is in the stack's own ECR
    raw["models"]["vision"]["image"] = {"ref": "nvcr.io/nvidia/tritonserver:24.08-py3"}
    assert problems_of(raw)[0].startswith(
        "modelops:models.vision.image.ref: fallback 'standby' runs the image on Lambda"
    )


def test_gpu_pools_need_a_priced_region_but_serverless_stacks_do_not():
    raw = stack_raw("prod")
    raw["cluster"]["region"] = "eu-west-1"
    assert any(p.startswith("modelops:cluster.region: no GPU price list for eu-west-1") for p in problems_of(raw))
    dev = stack_raw("dev")
    dev["cluster"]["region"] = "eu-west-1"
    assert parse_stack_config(dev).cluster.region == "eu-west-1"


def test_missing_required_key_is_named():
    problems = problems_of(break_prod("budget", None, delete=True))
    assert "modelops:budget: required" in problems


def test_unknown_top_level_key_is_named():
    raw = stack_raw("dev")
    raw["colour"] = "blue"
    assert "modelops:colour: unknown key" in problems_of(raw)


def test_every_problem_is_reported_at_once():
    raw = break_prod("models.chat.replicas.min", 9)
    raw["models"]["vision"]["pool"] = "nope"
    problems = problems_of(raw)
    assert len(problems) == 2


def test_kubeconfig_must_come_from_a_stack_or_a_secret():
    raw = stack_raw("dev")
    del raw["cluster"]["kubeconfigStack"]
    assert problems_of(raw)[0].startswith("modelops:kubeconfig: required unless modelops:cluster.kubeconfigStack")
    raw["kubeconfig"] = "apiVersion: v1"
    assert problems_of(raw)[0].startswith("modelops:kubeconfig: must be a secret")
    raw["kubeconfig"] = SECRET_SET
    assert parse_stack_config(raw).cluster.kubeconfig_stack is None


def test_published_json_schema_is_current():
    committed = json.loads((ROOT / "stacks" / "schema.json").read_text())
    assert committed == json.loads(
        json.dumps(json_schema(), sort_keys=True)
    ), "stacks/schema.json is stale: run `modelops schema --out stacks/schema.json`"


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_reference_stack_files_match_the_published_schema(stack):
    import jsonschema
    import yaml

    data = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    jsonschema.validate(data, json_schema())


def test_published_schema_rejects_an_unknown_key():
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"config": {"modelops:colour": "blue"}}, json_schema())


def test_the_canary_fetches_its_own_version_weights():
    # "2.5.0 at 10%" must serve 2.5.0: the canary's artifact is derived from the stable one's version
    # segment, or given; a URI with no version segment and no canary artifact is refused.
    cfg = parse_stack_config(stack_raw("prod"))
    assert cfg.models["chat"].canary_artifact_uri == "s3://acme-models-prod/chat/2.5.0"
    assert cfg.models["chat"].canary_artifact_prefix == "chat/2.5.0"

    raw = stack_raw("prod")
    raw["models"]["chat"]["artifactUri"] = "s3://acme-models-prod/chat/current"
    assert problems_of(raw) == [
        "modelops:models.chat.canary.artifactUri: required: artifactUri has no '2.4.0' path "
        "segment to derive the canary's weights from, and the canary must not serve the "
        "stable weights"
    ]
    raw["models"]["chat"]["canary"]["artifactUri"] = "s3://acme-models-prod/chat/current"
    assert problems_of(raw) == [
        "modelops:models.chat.canary.artifactUri: is the stable version's artifact; the "
        "canary would serve the stable weights"
    ]
    raw["models"]["chat"]["canary"]["artifactUri"] = "s3://other-bucket/chat/2.5.0"
    assert problems_of(raw) == [
        "modelops:models.chat.canary.artifactUri: must be in the model's bucket " "'acme-models-prod'"
    ]
    raw["models"]["chat"]["canary"]["artifactUri"] = "s3://acme-models-prod/chat/next"
    assert parse_stack_config(raw).models["chat"].canary_artifact_prefix == "chat/next"


@pytest.mark.parametrize("name", ["9lives", "chat\n", "Chat", "chat_bot", "-chat", "chat-", "x" * 43])
def test_model_names_must_be_service_names(name):
    raw = stack_raw("prod")
    raw["models"][name] = raw["models"].pop("sentiment")
    expected = f"{'modelops:models.' + name!r}: model names must be DNS labels starting with a letter"
    assert any(p.startswith(expected) for p in problems_of(raw)), problems_of(raw)


@pytest.mark.parametrize("name, track", [("chat-canary", "canary"), ("chat-stable", "stable")])
def test_a_model_named_like_another_models_track_is_refused(name, track):
    raw = stack_raw("prod")
    raw["models"][name] = raw["models"].pop("sentiment")
    assert (
        f"modelops:models.{name}: collides with model 'chat''s {track} track (its Deployment and Service have "
        "this name); rename one" in problems_of(raw)
    )


def test_the_images_the_program_runs_itself_must_be_allowed():
    """The registry rule judges the program's own images too: a stack that does not allow them fails every
    preview, so validation says which prefix to add."""
    raw = stack_raw("prod")
    raw["registry"]["allowedRegistries"] = ["docker.io/amazon/"]
    problems = problems_of(raw)
    assert (
        "modelops:registry.allowedRegistries: must allow public.ecr.aws/aws-cli/ (the artifact fetcher the "
        "model pods' init containers run)" in problems
    )
    assert any("must allow nvcr.io/nvidia/ (the GPU pools'" in p for p in problems)
    # dev runs no pods: nothing of the program's own to allow
    raw = stack_raw("dev")
    raw["registry"]["allowedRegistries"] = []
    parse_stack_config(raw)


def test_the_artifact_fetcher_comes_from_a_registry_without_anonymous_pull_limits():
    from components.common import ARTIFACT_FETCHER_IMAGE

    # Docker Hub limits anonymous pulls per IP (a NAT gateway's whole fleet of new GPU nodes); ECR Public does not
    assert ARTIFACT_FETCHER_IMAGE.startswith("public.ecr.aws/")
    assert re.fullmatch(r"[^@]+@sha256:[0-9a-f]{64}", ARTIFACT_FETCHER_IMAGE)


def test_lambda_function_names_are_never_cut_into_a_collision():
    """`modelops-<stack>-<model>` was cut to 64 characters: two long model names then shared one function.
    Lambda takes at most 64 letters, digits, '-' and '_' (a stack name may contain '.')."""
    from components.config import lambda_function_name

    raw = stack_raw("prod")
    long_a, long_b = "m" * 41 + "a", "m" * 41 + "b"
    raw["models"][long_a] = raw["models"].pop("sentiment")
    raw["models"][long_b] = raw["models"].pop("summarizer")
    assert lambda_function_name("production-east", long_a)[:64] == lambda_function_name("production-east", long_b)[:64]
    with pytest.raises(StackConfigError) as refused:
        parse_stack_config(raw, "production-east")
    assert (
        sum("which Lambda refuses (at most 64 letters, digits, '-' or '_')" in p for p in refused.value.problems) == 2
    )
    with pytest.raises(StackConfigError) as refused:
        parse_stack_config(stack_raw("prod"), "prod.eu")
    assert any("'modelops-prod.eu_sentiment'" in p for p in refused.value.problems)
    # a model that never runs on Lambda has no function to name
    parse_stack_config(stack_raw("prod"), "prod")


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_files_point_editors_at_the_schema_whose_fields_are_documented(stack):
    """The YAML language server reads the modeline; the schema carries each field's docstring as its
    description, so an editor explains a key on hover."""
    first = (ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=./schema.json"
    schema = json.loads((ROOT / "stacks" / "schema.json").read_text())
    probes = schema["$defs"]["ProbeConfig"]["properties"]["startupSeconds"]
    assert probes["description"].startswith("How long a replica may take to load its model")


def test_raid0_is_refused_for_instance_types_without_an_instance_store(monkeypatch):
    """Every catalogued GPU type carries local NVMe; a type without (as a future catalogue entry could be) cannot
    have its disks striped, and Karpenter would launch it with nothing to stripe."""
    from dataclasses import replace

    from components import gpu_catalogue
    from components.config import pool

    real = gpu_catalogue.load_catalogue()
    stripped = replace(
        real,
        instance_types={
            **real.instance_types,
            "g5.xlarge": replace(real.instance_types["g5.xlarge"], instance_store_gb=0),
        },
    )
    monkeypatch.setattr(pool, "load_catalogue", lambda: stripped)
    raw = stack_raw("prod")
    assert any("instanceStorePolicy: g5.xlarge have no local NVMe instance store" in p for p in problems_of(raw))
    raw["gpuPools"]["a10g"].pop("instanceStorePolicy")
    parse_stack_config(raw)
    assert all(t.instance_store_gb > 0 for t in real.instance_types.values())


def test_scale_to_zero_needs_keda():
    raw = stack_raw("prod")
    raw["models"]["sentiment"]["replicas"]["min"] = 0
    assert any(
        p.startswith("modelops:models.sentiment.replicas.min: 0 (scale to zero) needs KEDA") for p in problems_of(raw)
    )
    raw["models"]["sentiment"]["autoscaling"] = {
        "prometheusQuery": "sum(rate(gateway_requests{route='sentiment'}[2m]))"
    }
    assert parse_stack_config(raw).min_replicas(parse_stack_config(raw).models["sentiment"]) == 0


POD_ONLY = "modelops:models.chat.replicas.min: 0 with a query over series only the model's own pods export"


@pytest.mark.parametrize(
    "query",
    [
        "sum(vllm:num_requests_waiting)",
        'sum(rate(vllm:request_success_total{model_name="chat"}[2m])) + sum(vllm:num_requests_running)',
        # any FastAPI server exports http_*: these are the model's own, by its Service (and its pods' names)
        'sum(rate(http_requests_total{service="chat"}[5m]))',
        'sum(rate(http_requests_total{namespace="models",job=~"chat|chat-canary"}[5m]))',
        'sum(rate(http_requests_total{pod=~"chat-.*"}[5m]))',
        # rewrites that mention an outside series without depending on it: PromQL drops `a + b` when `a` is
        # empty, `0 * b` is always 0, `or vector(0)` is a constant
        'sum({__name__="vllm:num_requests_waiting"})',
        'sum({__name__=~"vllm:num_requests_.*"})',
        "sum(vllm:num_requests_waiting) + 0 * sum(rate(envoy_rq[2m]))",
        "sum(rate(envoy_rq[2m])) * (1 - 1) + sum(vllm:num_requests_waiting)",
        "sum(vllm:num_requests_waiting) or vector(0)",
        "sum(vllm:num_requests_waiting) and on() sum(rate(envoy_rq[2m])) > 0",
    ],
)
def test_scale_to_zero_cannot_wake_on_metrics_only_its_pods_export(query):
    """At zero replicas nothing exports the model's own series: the query is empty (KEDA's
    ignoreNullValues reads it as 0) and the model never wakes (kedacore/keda#4883, llm-d/llm-d#2492). The
    query is read as PromQL evaluates it (components/promql.py), not by the names it mentions."""
    raw = stack_raw("prod")
    raw["models"]["chat"]["replicas"]["min"] = 0
    raw["models"]["chat"]["autoscaling"] = {"prometheusQuery": query}
    problems = problems_of(raw)
    assert any(p.startswith(POD_ONLY) for p in problems), problems
    # working hours wake it (KEDA's cron trigger), whatever the query reads
    raw["models"]["chat"]["autoscaling"]["activeHours"] = {
        "timezone": "Europe/Berlin",
        "start": "0 7 * * 1-5",
        "end": "0 19 * * 1-5",
    }
    assert parse_stack_config(raw).models["chat"].autoscaling.active_hours is not None


@pytest.mark.parametrize(
    "query",
    [
        "sum(rate(envoy_rq{route='chat'}[2m]))",
        "sum(vllm:num_requests_waiting) or sum(rate(envoy_rq{route='chat'}[2m]))",
        'sum(rate(http_requests_total{service="gateway"}[2m]))',  # another Service's requests
        "sum(rate(envoy_rq{route='chat'}[2m])) / 1e6 * 2 ^ 3",
        "time() - max(envoy_last_rq_timestamp{route='chat'}) < 600",  # a scalar never empties a vector
    ],
)
def test_scale_to_zero_wakes_on_a_series_from_outside_the_pods(query):
    raw = stack_raw("prod")
    raw["models"]["chat"]["replicas"]["min"] = 0
    raw["models"]["chat"]["autoscaling"] = {"prometheusQuery": query}
    try:
        parse_stack_config(raw)
    except StackConfigError as exc:
        assert not any(p.startswith(POD_ONLY) for p in exc.problems), exc.problems


def test_a_query_that_is_not_promql_is_refused():
    raw = stack_raw("prod")
    raw["models"]["summarizer"]["autoscaling"]["prometheusQuery"] = "sum(rate(nv_inference_queue_duration_us[1m]"
    assert any(
        p.startswith("modelops:models.summarizer.autoscaling.prometheusQuery: not a PromQL query (")
        for p in problems_of(raw)
    )


def test_a_gpu_model_scales_on_cpu_only_by_choice():
    """CPU use of a GPU server follows its tokenizer, not its load (the EKS guide: "Autoscale AI inference with
    HPA and KEDA" scales on queue depth): vLLM, TGI and Triton models default to their engine's queue (KEDA); a
    custom GPU server names its signal or chooses CPU explicitly."""
    raw = stack_raw("prod")
    raw["models"]["vision"].pop("autoscaling")
    assert any(
        p.startswith("modelops:models.vision.autoscaling: a GPU server is not CPU-bound") for p in problems_of(raw)
    )
    raw["models"]["vision"]["autoscaling"] = {"targetCpuUtilization": 70}
    cfg = parse_stack_config(raw)
    assert cfg.models["vision"].keda_query("vision") is None  # an HPA on CPU, chosen
    chat = cfg.models["chat"]
    assert chat.keda_query("chat") == 'sum(vllm:num_requests_waiting{namespace="models",service="chat"})'
    assert chat.keda_threshold() == "5"
    # a CPU model keeps the HPA on CPU; a GPU model's own query and threshold win over the runtime's
    assert cfg.models["sentiment"].keda_query("sentiment") is None
    raw["models"]["chat"]["autoscaling"] = {"prometheusThreshold": "3"}
    assert parse_stack_config(raw).models["chat"].keda_threshold() == "3"


def test_a_gpu_runtimes_default_query_cannot_wake_a_model_at_zero():
    """The runtime's default query reads the pods' own queue: at zero it needs activeHours or a query of
    the stack's from outside the pods."""
    raw = stack_raw("prod")
    raw["models"]["chat"]["replicas"]["min"] = 0
    assert any(
        p.startswith("modelops:models.chat.replicas.min: 0 with the runtime's default query over series only")
        for p in problems_of(raw)
    )


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        ({"timezone": "Mars/Olympus", "start": "0 8 * * *", "end": "0 20 * * *"}, "is not an IANA time zone"),
        ({"timezone": "UTC", "start": "0 8 * * *", "end": "0 8 * * *"}, "start and end are the same time"),
        ({"timezone": "UTC", "start": "8am", "end": "0 20 * * *"}, "activeHours.start: String should match pattern"),
        (
            {"timezone": "UTC", "start": "0 8 * * *\n", "end": "0 20 * * *"},
            "activeHours.start: String should match pattern",
        ),
        # what robfig/cron (KEDA's cron scaler) refuses, and hours that never begin (issue #26: a model at zero
        # whose activeHours never fire never wakes)
        ({"timezone": "UTC", "start": "0 25 * * *", "end": "0 20 * * *"}, "hour: '25' is outside 0-23"),
        ({"timezone": "UTC", "start": "0 8 * * 1-5", "end": "0 20 * * MON-FRY"}, "'FRY' is not a number or a name"),
        (
            {"timezone": "UTC", "start": "0 8 30 2 *", "end": "0 20 * * *"},
            "never falls in month(s) [2]: it never fires",
        ),
        ({"timezone": "UTC", "start": "0 8 31 4,6,9,11 *", "end": "0 20 * * *"}, "it never fires"),
        ({"timezone": "UTC", "start": "*/0 8 * * *", "end": "0 20 * * *"}, "minute: '*/0' has no positive step"),
    ],
)
def test_active_hours_are_what_kedas_cron_trigger_accepts(hours, expected):
    raw = stack_raw("staging")
    raw["models"]["summarizer"]["autoscaling"]["activeHours"] = hours
    assert any(expected in p for p in problems_of(raw)), problems_of(raw)


@pytest.mark.parametrize(
    "expression", ["0 8 * * 1-5", "*/15 8-18 * * MON-FRI", "0 8 29 2 *", "0 8 30 2 1", "0 8 ? * SUN"]
)
def test_active_hours_that_keda_runs(expression):
    raw = stack_raw("staging")
    raw["models"]["summarizer"]["autoscaling"]["activeHours"]["start"] = expression
    hours = parse_stack_config(raw).models["summarizer"].autoscaling.active_hours
    assert hours is not None and hours.start == expression


def test_active_hours_need_keda():
    raw = stack_raw("prod")
    raw["models"]["sentiment"]["autoscaling"] = {
        "activeHours": {"timezone": "UTC", "start": "0 8 * * *", "end": "0 20 * * *"}
    }
    assert (
        "modelops:models.sentiment.autoscaling.activeHours: a KEDA cron trigger; set autoscaling.prometheusQuery "
        "(KEDA) too" in problems_of(raw)
    )


def test_mounted_artifacts_need_an_artifact():
    raw = stack_raw("prod")
    raw["models"]["sentiment"]["artifactAccess"] = "mount"
    raw["models"]["sentiment"].pop("artifactUri")
    assert (
        "modelops:models.sentiment.artifactAccess: 'mount' serves artifactUri from S3; set artifactUri"
        in problems_of(raw)
    )


def test_signed_weights_need_an_s3_prefix_and_trusted_keys():
    """A registered version is pinned by its registry tag, which carries no signature: refused, not ignored."""
    raw = stack_raw("prod")
    raw["security"] = {"modelSigningKeys": ["keys/models.pub"]}
    raw["mlflow"] = {"trackingUri": "https://mlflow.example.com", "artifactBuckets": ["acme-models-prod"]}
    chat = raw["models"]["chat"]
    chat["artifactUri"] = "models:/chat@champion"
    chat["canary"] = {**chat["canary"], "artifactUri": "models:/chat@challenger", "signature": "key"}
    assert problems_of(raw) == [
        "modelops:models.chat.canary.signature: signed weights are pinned from their s3:// prefix by `modelops "
        "weights`; a registered version (models:/…) is pinned by its registry tag, which carries no signature: give "
        "the s3:// prefix"
    ]
    del raw["models"]["chat"]
    raw["models"]["sentiment"]["signature"] = "key"
    cfg = parse_stack_config(raw)
    assert cfg.models["sentiment"].signature_for("stable") == "key"
    assert cfg.security.model_signing_keys == ["keys/models.pub"]
