"""Runtime presets: each sets what its server documents (port, health endpoints, where /metrics is, the
launch flags) and its alerts read the metrics it exports; a model's own settings override the preset.

The facts below are the runtimes' documentation, for the versions the presets name:
- vLLM (docs.vllm.ai, 0.11): the OpenAI server listens on 8000 (`--port`), answers GET /health, serves
  /metrics on the same port (vllm:* metrics, and http_* from prometheus-fastapi-instrumentator): the histograms
  vllm:time_to_first_token_seconds and vllm:inter_token_latency_seconds (0.11 renamed
  vllm:time_per_output_token_seconds to it: vllm-project/vllm#24110; removed in 0.13: #32661), the gauge
  vllm:num_requests_waiting (requests the scheduler holds back); the image's
  ENTRYPOINT is `vllm serve`, whose model is the first positional argument (`--model` is refused since
  vllm-project/vllm#17944), its public name `--served-model-name`, GPUs per replica `--tensor-parallel-size`; NCCL needs a
  large /dev/shm.
- Triton (docs.nvidia.com, 24.08): `tritonserver --model-repository`, HTTP on 8000 (`--http-port`), GET
  /v2/health/ready and /v2/health/live, Prometheus metrics on 8002 (`--metrics-port`), counters
  nv_inference_request_success / _failure (requests: a batch-8 request counts 1), nv_inference_count
  (inferences: it counts 8), nv_inference_exec_count (batch executions), nv_inference_request_duration_us and
  nv_inference_queue_duration_us (cumulative µs) (docs/user_guide/metrics.md, "Counts").
- TGI (huggingface.co/docs/text-generation-inference, 3.x): `text-generation-launcher --model-id --port
  --num-shard`, GET /health, /metrics on the same port (docs/source/reference/metrics.md: tgi_request_count,
  tgi_request_failure{err}, the histograms tgi_request_queue_duration and tgi_request_mean_time_per_token_duration
  ("inter-token latency"), tgi_queue_size).
"""

import math
import re
from typing import Any

import pytest

from components import ModelService
from components.runtimes import PRESETS, Runtime
from modelops_cli.plan import Plan
from modelops_cli.render import kubernetes_resources, manifest
from tests.components.test_model_service import IMAGE, service_args
from tests.k8s_schema import validate_object

DOCUMENTED: dict[Runtime, dict[str, Any]] = {
    Runtime.VLLM: {
        "port": 8000,
        "ready": "/health",
        "live": "/health",
        "metrics_port": None,
        "positional": ["/models"],
        "flags": {"--served-model-name": "chat", "--port": "8000", "--tensor-parallel-size": "2"},
        "refused": {"--model"},
        "metrics": {
            "http_requests_total",
            "vllm:time_to_first_token_seconds_bucket",
            "vllm:inter_token_latency_seconds_bucket",
        },
    },
    Runtime.TRITON: {
        "port": 8000,
        "ready": "/v2/health/ready",
        "live": "/v2/health/live",
        "metrics_port": 8002,
        # the image's entrypoint (NVIDIA's entrypoint script) runs the command it is given
        "positional": ["tritonserver"],
        "flags": {"--model-repository": "/models", "--http-port": "8000", "--metrics-port": "8002"},
        "metrics": {
            "nv_inference_request_success",
            "nv_inference_request_failure",
            "nv_inference_request_duration_us",
        },
    },
    Runtime.TGI: {
        "port": 8080,
        "ready": "/health",
        "live": "/health",
        "metrics_port": None,
        "flags": {"--model-id": "/models", "--port": "8080", "--num-shard": "2"},
        "metrics": {
            "tgi_request_count",
            "tgi_request_failure",
            "tgi_request_queue_duration_bucket",
            "tgi_request_mean_time_per_token_duration_bucket",
        },
    },
}


KUBE_STATE_METRICS = {"kube_deployment_spec_replicas", "kube_deployment_status_replicas_available"}


def flags(args: list[str]) -> dict[str, str]:
    """`--name value` and `--name=value` pairs of a command line."""
    found, i = {}, 0
    while i < len(args):
        if args[i].startswith("--") and "=" in args[i]:
            name, value = args[i].split("=", 1)
            found[name] = value
        elif args[i].startswith("--") and i + 1 < len(args) and not args[i + 1].startswith("--"):
            found[args[i]] = args[i + 1]
            i += 1
        i += 1
    return found


def built(build, runtime: Runtime, **model):
    return build(lambda: ModelService("chat", service_args(model={"runtime": runtime, "gpus": 2, **model})))


@pytest.mark.parametrize("runtime", list(DOCUMENTED))
def test_each_preset_sets_what_its_runtime_documents(build, runtime):
    facts = DOCUMENTED[runtime]
    result = built(build, runtime)
    pod = result.inputs("chat-deployment")["spec"]["template"]["spec"]
    server = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports["http"] == facts["port"] and ports.get("metrics") == facts["metrics_port"]
    assert server["readinessProbe"]["httpGet"]["path"] == facts["ready"]
    assert server["livenessProbe"]["httpGet"]["path"] == facts["live"]
    assert flags(server["args"]).items() >= facts["flags"].items()
    # arguments before the first flag: what the entrypoint reads positionally
    first_flag = next((i for i, a in enumerate(server["args"]) if a.startswith("-")), len(server["args"]))
    assert server["args"][:first_flag] == facts.get("positional", [])
    assert not set(flags(server["args"])) & facts.get("refused", set())
    # /dev/shm sized per GPU for the runtime, inside the memory limit
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")["emptyDir"]
    assert shm == {"medium": "Memory", "sizeLimit": f"{2 * PRESETS[runtime].shm_gib_per_gpu}Gi"}
    # scraped where the runtime serves /metrics, and the NetworkPolicy lets Prometheus reach it
    endpoint = result.inputs("chat-monitor")["spec"]["endpoints"][0]
    assert endpoint["port"] == ("metrics" if facts["metrics_port"] else "http") and endpoint["path"] == "/metrics"
    service_ports = {p["name"]: p["port"] for p in result.inputs("chat-svc")["spec"]["ports"]}
    assert service_ports.get("metrics") == facts["metrics_port"]
    allowed = {p["port"] for p in result.inputs("chat-netpol")["spec"]["ingress"][0]["ports"]}
    assert allowed == {facts["port"], *([facts["metrics_port"]] if facts["metrics_port"] else [])}
    # the alerts read the runtime's own metrics
    exprs = " ".join(r["expr"] for r in result.inputs("chat-alerts")["spec"]["groups"][0]["rules"])
    read = set(re.findall(r"([a-zA-Z_:][\w:]*)\{", exprs)) - KUBE_STATE_METRICS
    assert read == facts["metrics"]
    for resource in kubernetes_resources(Plan(result.steps, {})):
        validate_object(manifest(resource), "1.31")


def test_a_single_gpu_tgi_runs_unsharded(build):
    server = built(build, Runtime.TGI, gpus=1).inputs("chat-deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--num-shard" not in server["args"]


def test_the_models_own_settings_override_the_preset(build):
    result = built(
        build,
        Runtime.VLLM,
        port=9000,
        probes={"ready_path": "/v1/models"},
        args=["/models", "--max-model-len", "8192"],
        resources={"shm": "3Gi"},
    )
    pod = result.inputs("chat-deployment")["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert server["ports"][0]["containerPort"] == 9000 and server["args"] == ["/models", "--max-model-len", "8192"]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v1/models"
    assert server["livenessProbe"]["httpGet"]["path"] == "/health"  # what was not overridden stays the preset's
    assert next(v for v in pod["volumes"] if v["name"] == "dshm")["emptyDir"]["sizeLimit"] == "3Gi"
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["HF_HOME"] == "/tmp/huggingface"  # caches on the writable volume (the root is read-only)


def test_custom_stays_the_projects_own_contract(build):
    server = build(lambda: ModelService("chat", service_args(model={"gpus": 0, "pool": None}, image=IMAGE))).inputs(
        "chat-deployment"
    )["spec"]["template"]["spec"]["containers"][0]
    assert server["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}] and "args" not in server
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


@pytest.mark.parametrize("runtime", list(DOCUMENTED))
def test_own_metric_prefixes_cover_the_metrics_only_the_server_exports(runtime):
    """What scale-to-zero validation treats as the pods' own series: every documented runtime-specific metric
    (and the queue each dashboard reads) carries one of the prefixes; the generic http_* names do not."""
    preset = PRESETS[runtime]
    specific = {m for m in DOCUMENTED[runtime]["metrics"] if not m.startswith("http_")}
    assert all(m.startswith(preset.own_metric_prefixes) for m in specific)
    queue_metrics = re.findall(r"([a-z_:]+)\{\{\{sel\}\}\}", preset.alerting.queue)
    assert queue_metrics and all(m.startswith(preset.own_metric_prefixes) for m in queue_metrics)
    assert not "http_requests_total".startswith(preset.own_metric_prefixes)
    assert PRESETS[Runtime.CUSTOM].own_metric_prefixes == ()


def test_every_preset_names_the_release_it_was_checked_against():
    for runtime, preset in PRESETS.items():
        assert preset.checked_against, runtime
        assert preset.port >= 1024  # pods run as non-root: no privileged ports


def alert_rules(result) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in result.inputs("chat-alerts")["spec"]["groups"][0]["rules"]}


@pytest.mark.parametrize("runtime", [Runtime.VLLM, Runtime.TGI])
def test_an_llm_is_judged_on_its_first_token_and_its_pace_not_the_whole_answer(build, runtime):
    """A streamed answer's whole-request time grows with its length: p99 above 2 s is every long answer, and
    never clears. The LLM alerts read time to first token (vLLM's histogram; TGI's queue wait before the
    prefill) and the time between tokens (vLLM's inter-token latency; TGI's mean time per token)."""
    rules = alert_rules(built(build, runtime))
    assert "ModelHighLatency" not in rules
    first, pace = rules["ModelSlowFirstToken"]["expr"], rules["ModelSlowTokens"]["expr"]
    expected = {
        Runtime.VLLM: ("vllm:time_to_first_token_seconds_bucket", "vllm:inter_token_latency_seconds_bucket"),
        Runtime.TGI: ("tgi_request_queue_duration_bucket", "tgi_request_mean_time_per_token_duration_bucket"),
    }[runtime]
    assert expected[0] in first and first.endswith("> 2") and "histogram_quantile(0.99" in first
    assert expected[1] in pace and pace.endswith("> 0.2")
    assert "request_duration" not in first + pace and "e2e" not in first + pace


def test_tritons_latency_divides_by_requests_not_batch_items(build):
    """nv_inference_count counts a batch-8 request as 8 inferences: request time divided by it is 8 times too
    short. Requests are nv_inference_request_success."""
    expr = alert_rules(built(build, Runtime.TRITON))["ModelHighLatency"]["expr"]
    assert "nv_inference_count" not in expr and "nv_inference_exec_count" not in expr
    assert re.search(
        r"nv_inference_request_duration_us\{[^}]*\}\[5m\]\)\) / sum by \(modelops_track\) \(rate\("
        r"nv_inference_request_success\{",
        expr,
    ), expr


@pytest.mark.parametrize("runtime", list(Runtime))
def test_errors_and_latency_are_judged_per_track(build, runtime):
    """The canary takes a share of the traffic: its failures would hide in the model's total (30% failing at
    10% is 3%). Every series carries its pod's track (the ServiceMonitor's podTargetLabels) and the alerts
    group by it."""
    result = built(build, runtime)
    monitor = result.inputs("chat-monitor")["spec"]
    assert monitor["podTargetLabels"] == ["modelops/track"]
    for name, rule in alert_rules(result).items():
        if name != "ModelUnavailable":
            assert "by (modelops_track)" in rule["expr"] or "by (le, modelops_track)" in rule["expr"], name
            assert "{{ $labels.modelops_track }} track" in rule["annotations"]["summary"], name


@pytest.mark.parametrize(("min_replicas", "waits"), [(3, "2m"), (0, f"{math.ceil((300 + 600 + 300 + 900) / 60)}m")])
def test_model_unavailable_pages_only_when_replicas_are_wanted(build, min_replicas, waits):
    """kube-state-metrics' spec replicas is what the HPA or KEDA wants: a model asleep at zero wants none and
    never pages; one woken from zero is given its cold start (node, pull, copy, load) before it does."""
    result = build(
        lambda: ModelService(
            "chat",
            service_args(
                model={
                    "runtime": Runtime.VLLM,
                    "gpus": 1,
                    "autoscaling": {"prometheus_query": "sum(rate(envoy_rq[2m]))"},
                },
                min_replicas=min_replicas,
            ),
        )
    )
    rule = alert_rules(result)["ModelUnavailable"]
    assert rule["expr"] == (
        'max by (namespace, deployment) (kube_deployment_spec_replicas{namespace="models",deployment=~"chat"}) > 0 '
        "and on (namespace, deployment) max by (namespace, deployment) "
        '(kube_deployment_status_replicas_available{namespace="models",deployment=~"chat"}) < 1'
    )
    assert rule["for"] == waits


def test_vllm_and_tgi_run_under_a_uid_without_a_passwd_entry(build):
    """Pods run as 65532, which the images' /etc/passwd lacks: getpass.getuser() (torch's inductor cache, at
    vLLM's start) raises unless LOGNAME or USER is set (vllm-project/vllm#46734)."""
    for runtime in (Runtime.VLLM, Runtime.TGI):
        server = built(build, runtime).inputs("chat-deployment")["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in server["env"]}
        assert env["USER"] and env["LOGNAME"], runtime


@pytest.mark.parametrize(
    ("runtime", "metric", "threshold"),
    [
        (Runtime.VLLM, "vllm:num_requests_waiting", "5"),
        (Runtime.TGI, "tgi_queue_size", "5"),
        (Runtime.TRITON, "nv_inference_queue_duration_us", "2"),
    ],
)
def test_a_gpu_server_scales_on_its_engines_queue_unless_cpu_is_chosen(build, runtime, metric, threshold):
    """A GPU server's CPU follows its tokenizer, not its load (the EKS guide scales inference on queue depth):
    a GPU model without a query of its own gets KEDA on its runtime's queue, for its own pods; CPU only when
    the stack sets targetCpuUtilization."""
    result = built(build, runtime)
    trigger = result.inputs("chat-scaler")["spec"]["triggers"][0]
    assert (
        metric in trigger["metadata"]["query"] and 'namespace="models",service="chat"' in trigger["metadata"]["query"]
    )
    assert trigger["metadata"]["threshold"] == threshold
    assert "chat-hpa" not in result.names()
    chosen = built(build, runtime, autoscaling={"target_cpu_utilization": 60})
    assert "chat-scaler" not in chosen.names()
    cpu = chosen.inputs("chat-hpa")["spec"]["metrics"][0]["resource"]
    assert cpu["name"] == "cpu" and cpu["target"]["averageUtilization"] == 60
