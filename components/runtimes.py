"""Inference runtime presets: what each model server needs and what users get wrong about it.

`modelops:models.<m>.runtime` picks one; `custom` (the default) is the project's own contract (the shipped
`models/sentiment` server). A preset sets the port, the probe paths, where the metrics are served, the
container arguments, the /dev/shm size, a cache directory on the writable volume, the metric names the
model's alerts read and, for GPU models, the engine signal KEDA scales on by default. A model's own `port`,
`probes`, `args` and `resources.shm` override the preset. The metric prefixes only a server's own pods export tell
which KEDA queries go empty at zero replicas (`pod_only_metrics`, read with promql.py).

Each preset names the runtime version whose documentation it was checked against; tests hold the presets to
those documented flags, endpoints and metrics.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from . import promql


class Runtime(StrEnum):
    CUSTOM = "custom"
    VLLM = "vllm"
    TRITON = "triton"
    TGI = "tgi"


@dataclass(frozen=True)
class LatencyAlert:
    """One latency alert over the runtime's own metrics. In the PromQL, `{sel}` is the Prometheus selector of
    the model's scraped series (namespace and service) and `{by}` the label that tells the tracks (stable,
    canary) apart: each track is judged on its own."""

    alert: str
    """The alert's name (ModelHighLatency, ModelSlowFirstToken, ModelSlowTokens)."""
    seconds: str
    """An expression of the latency in seconds, per track."""
    threshold_seconds: float
    """Above this for 10 minutes, the alert fires."""
    what: str
    """What is measured, for the alert's summary."""


@dataclass(frozen=True)
class Alerting:
    """PromQL for a model's alerts and dashboard, over the runtime's own metrics (`{sel}`, `{by}`: see
    LatencyAlert)."""

    latency: tuple[LatencyAlert, ...]
    """What a server of this kind can meet: an LLM streams, so its whole-request time grows with the answer's
    length and says nothing about health; it is judged on its first token and the pace of the rest."""
    error_ratio: str
    """An expression of the share of requests that failed, per track."""
    metrics: tuple[str, ...]
    """Every metric the alert expressions read (what the runtime must export)."""
    request_rate: str = ""
    """Requests per second (dashboards)."""
    queue: str = ""
    """Work waiting (dashboards; empty where the runtime exports none)."""


@dataclass(frozen=True)
class Scaling:
    """What KEDA scales a GPU model of this runtime on when the model names no query of its own: the engine's
    own measure of work waiting, per replica (KEDA's prometheus trigger divides the query's value by the
    replica count: `metricType` AverageValue, its default). `{sel}` as in LatencyAlert."""

    query: str
    threshold: str
    """Work waiting per replica above which KEDA adds one."""


@dataclass(frozen=True)
class RuntimePreset:
    checked_against: str
    """The runtime release whose documentation the preset follows."""
    port: int
    """The HTTP port the server listens on."""
    ready_path: str
    live_path: str
    metrics_port: int | None
    """Where /metrics is served when not on the HTTP port (Triton's own metrics port)."""
    args: Callable[[str, int, int], list[str]]
    """(model name, GPUs per replica, port) -> the container's arguments (its image's entrypoint runs them)."""
    shm_gib_per_gpu: int
    """/dev/shm per GPU: tensor-parallel runtimes exchange tensors through it (NCCL)."""
    alerting: Alerting
    scaling: Scaling | None = None
    """The default KEDA query for GPU models (None: the runtime exports no engine signal to scale on)."""
    sample: Callable[[str], tuple[str, str, dict | None]] | None = None
    """(model name) -> (method, path, JSON body) of the smallest real request (`modelops smoke --endpoints`);
    None: the model's own `serverless.samplePayload`, POSTed to /."""
    env: dict[str, str] = field(default_factory=dict)
    """Where the runtime writes caches: the root filesystem is read-only, /tmp is the writable volume."""
    metrics_path: str = "/metrics"
    other_ports: tuple[tuple[int, str], ...] = ()
    """Ports the runtime opens besides the HTTP one, (port, what it is): a model's `port` cannot take them."""
    own_metric_prefixes: tuple[str, ...] = ()
    """Metric names only the server's own pods export: a query over nothing else is empty at zero replicas,
    so KEDA cannot wake a scaled-to-zero model on it. Empty for `custom`: any FastAPI server exports http_*;
    the model's own are told apart by their selector (its Service), see components/promql.py."""


HTTP_LATENCY = LatencyAlert(
    "ModelHighLatency",
    "histogram_quantile(0.99, sum by (le, {by}) (rate(http_request_duration_seconds_bucket{{{sel}}}[5m])))",
    2,
    "p99 request latency",
)
HTTP_ERRORS = (
    # `5..` matches a code (503) and a class (the instrumentator groups codes into "5xx" by default) alike
    'sum by ({by}) (rate(http_requests_total{{{sel},status=~"5.."}}[5m])) '
    "/ sum by ({by}) (rate(http_requests_total{{{sel}}}[5m]))"
)
HTTP_METRICS = Alerting(
    latency=(HTTP_LATENCY,),
    error_ratio=HTTP_ERRORS,
    metrics=("http_request_duration_seconds_bucket", "http_requests_total"),
    request_rate="sum(rate(http_requests_total{{{sel}}}[5m]))",
)
"""prometheus-fastapi-instrumentator's defaults: the project's own servers, and vLLM's OpenAI server (which
instruments its FastAPI app with it: http_requests_total{handler,method,status})."""

LLM_FIRST_TOKEN_SECONDS = 2
"""p99 time to first token above which an LLM pages (warning): what a user waits before anything appears."""
LLM_TOKEN_SECONDS = 0.2
"""p99 time between output tokens above which an LLM pages (warning): slower than 5 tokens a second reads as
stalled."""
RUNTIME_USER = {"USER": "modelops", "LOGNAME": "modelops"}
"""Pods run as a uid without a passwd entry (65532): Python's getpass.getuser() reads LOGNAME, USER, LNAME,
USERNAME before it asks pwd, which raises for such a uid (KeyError; OSError from 3.13). vLLM (through torch's
inductor cache directory) calls it at start-up and dies (vllm-project/vllm#46734; llm-d/llm-d-benchmark#1573,
IBM/ado#1261 set USER for it); TGI's Python shards import the same torch."""

PRESETS: dict[Runtime, RuntimePreset] = {
    Runtime.CUSTOM: RuntimePreset(
        checked_against="models/sentiment (this repository)",
        port=8080,
        ready_path="/v2/health/ready",
        live_path="/v2/health/live",
        metrics_port=None,
        args=lambda name, gpus, port: [],
        shm_gib_per_gpu=1,
        alerting=HTTP_METRICS,
    ),
    # docs.vllm.ai (v0.11): the vllm/vllm-openai image's ENTRYPOINT is `vllm serve`, which takes the model as
    # its first positional argument and refuses `--model` (vllm-project/vllm#17944: "provide the model as a
    # positional argument ... instead of via the `--model` option"); OpenAI server on 8000, GET /health,
    # /metrics on the same port (vllm:* metrics and the FastAPI instrumentator's http_*).
    Runtime.VLLM: RuntimePreset(
        checked_against="vLLM 0.11 (vllm/vllm-openai)",
        port=8000,
        ready_path="/health",
        live_path="/health",
        metrics_port=None,
        args=lambda name, gpus, port: [
            "/models",
            "--served-model-name",
            name,
            "--port",
            str(port),
            "--tensor-parallel-size",
            str(max(1, gpus)),
        ],
        shm_gib_per_gpu=8,
        # vLLM 0.11 (vllm/v1/metrics/loggers.py): histograms vllm:time_to_first_token_seconds and
        # vllm:inter_token_latency_seconds (the rename of vllm:time_per_output_token_seconds, deprecated in 0.11 and
        # removed in 0.13: vllm-project/vllm#24110, #32661), labels model_name and engine.
        alerting=Alerting(
            latency=(
                LatencyAlert(
                    "ModelSlowFirstToken",
                    "histogram_quantile(0.99, sum by (le, {by}) "
                    "(rate(vllm:time_to_first_token_seconds_bucket{{{sel}}}[5m])))",
                    LLM_FIRST_TOKEN_SECONDS,
                    "p99 time to first token",
                ),
                LatencyAlert(
                    "ModelSlowTokens",
                    "histogram_quantile(0.99, sum by (le, {by}) "
                    "(rate(vllm:inter_token_latency_seconds_bucket{{{sel}}}[5m])))",
                    LLM_TOKEN_SECONDS,
                    "p99 inter-token latency",
                ),
            ),
            error_ratio=HTTP_ERRORS,
            metrics=(
                "vllm:time_to_first_token_seconds_bucket",
                "vllm:inter_token_latency_seconds_bucket",
                "http_requests_total",
            ),
            request_rate=HTTP_METRICS.request_rate,
            queue="sum(vllm:num_requests_waiting{{{sel}}})",
        ),
        # requests the scheduler holds back (no room in the batch or the KV cache): the demand signal the EKS
        # guide scales vLLM on (docs.aws.amazon.com/eks/latest/userguide/ml-inference-autoscaling-hpa-keda.html,
        # "queue depth (the primary demand signal)"), as vLLM's production stack does with KEDA
        # (docs.vllm.ai/projects/production-stack, "Autoscaling with KEDA"); CPU says nothing about a GPU server
        scaling=Scaling("sum(vllm:num_requests_waiting{{{sel}}})", "5"),
        # the OpenAI completions API, one token
        sample=lambda name: ("POST", "/v1/completions", {"model": name, "prompt": "ping", "max_tokens": 1}),
        env={"HF_HOME": "/tmp/huggingface", "VLLM_NO_USAGE_STATS": "1", **RUNTIME_USER},
        own_metric_prefixes=("vllm:",),
    ),
    # docs.nvidia.com Triton (24.08): tritonserver --model-repository, HTTP on 8000, GET /v2/health/ready and
    # /v2/health/live, Prometheus metrics on port 8002 (nv_inference_* counters in microseconds, no histogram
    # by default).
    Runtime.TRITON: RuntimePreset(
        checked_against="Triton Inference Server 24.08 (nvcr.io/nvidia/tritonserver)",
        port=8000,
        ready_path="/v2/health/ready",
        live_path="/v2/health/live",
        metrics_port=8002,
        args=lambda name, gpus, port: [
            "tritonserver",
            "--model-repository=/models",
            f"--http-port={port}",
            "--metrics-port=8002",
            "--allow-grpc=false",
        ],
        # KServe v2: an inference request needs the model's own tensors; its readiness is what all models share
        sample=lambda name: ("GET", f"/v2/models/{name}/ready", None),
        shm_gib_per_gpu=2,
        # Triton's user guide (metrics.md, "Counts"): nv_inference_request_success/_failure count requests (a
        # batch-8 request is 1), nv_inference_count counts inferences (it is 8), nv_inference_exec_count batch
        # executions; nv_inference_request_duration_us is the cumulative end-to-end time of requests. The mean
        # request latency divides that time by requests, never by inferences.
        alerting=Alerting(
            latency=(
                LatencyAlert(
                    "ModelHighLatency",
                    "sum by ({by}) (rate(nv_inference_request_duration_us{{{sel}}}[5m])) "
                    "/ sum by ({by}) (rate(nv_inference_request_success{{{sel}}}[5m])) / 1e6",
                    2,
                    "mean request latency",
                ),
            ),
            error_ratio=(
                "sum by ({by}) (rate(nv_inference_request_failure{{{sel}}}[5m])) / (sum by ({by}) "
                "(rate(nv_inference_request_success{{{sel}}}[5m])) + sum by ({by}) "
                "(rate(nv_inference_request_failure{{{sel}}}[5m])))"
            ),
            metrics=(
                "nv_inference_request_duration_us",
                "nv_inference_request_success",
                "nv_inference_request_failure",
            ),
            request_rate="sum(rate(nv_inference_request_success{{{sel}}}[5m]))",
            # average time a request waited in Triton's queue, in seconds
            queue=(
                "sum(rate(nv_inference_queue_duration_us{{{sel}}}[5m])) "
                "/ sum(rate(nv_inference_request_success{{{sel}}}[5m])) / 1e6"
            ),
        ),
        # Seconds of queueing per second is the mean number of requests waiting (Little's law): a queue depth, so
        # KEDA's per-replica average applies (a mean queue *time* would not divide by replicas).
        scaling=Scaling("sum(rate(nv_inference_queue_duration_us{{{sel}}}[1m])) / 1e6", "2"),
        own_metric_prefixes=("nv_inference_", "nv_gpu_", "nv_cpu_", "nv_cache_"),
        # the preset's --metrics-port (gRPC's 8001 is off: --allow-grpc=false)
        other_ports=((8002, "Triton's metrics port (--metrics-port=8002)"),),
    ),
    # huggingface.co/docs/text-generation-inference (3.x): text-generation-launcher (the image's entrypoint),
    # --model-id, --port, --num-shard; GET /health; /metrics on the same port (tgi_* metrics).
    Runtime.TGI: RuntimePreset(
        checked_against="Text Generation Inference 3.x (ghcr.io/huggingface/text-generation-inference)",
        port=8080,
        ready_path="/health",
        live_path="/health",
        metrics_port=None,
        args=lambda name, gpus, port: [
            "--model-id",
            "/models",
            "--port",
            str(port),
            *(["--num-shard", str(gpus)] if gpus > 1 else []),
        ],
        shm_gib_per_gpu=8,
        # TGI's metrics reference (docs/source/reference/metrics.md): tgi_request_queue_duration (time in the queue
        # per request, before its prefill: the part of the first token's wait that grows with load),
        # tgi_request_mean_time_per_token_duration ("inter-token latency"), tgi_request_count; failures are
        # tgi_request_failure{err} (router: validation, overloaded, incomplete, ...); a request the client got
        # wrong (err="validation") is not the server failing.
        alerting=Alerting(
            latency=(
                LatencyAlert(
                    "ModelSlowFirstToken",
                    "histogram_quantile(0.99, sum by (le, {by}) (rate(tgi_request_queue_duration_bucket{{{sel}}}[5m])))",
                    LLM_FIRST_TOKEN_SECONDS,
                    "p99 queue wait before the first token",
                ),
                LatencyAlert(
                    "ModelSlowTokens",
                    "histogram_quantile(0.99, sum by (le, {by}) "
                    "(rate(tgi_request_mean_time_per_token_duration_bucket{{{sel}}}[5m])))",
                    LLM_TOKEN_SECONDS,
                    "p99 inter-token latency",
                ),
            ),
            error_ratio=(
                'sum by ({by}) (rate(tgi_request_failure{{{sel},err!="validation"}}[5m])) '
                "/ sum by ({by}) (rate(tgi_request_count{{{sel}}}[5m]))"
            ),
            metrics=(
                "tgi_request_queue_duration_bucket",
                "tgi_request_mean_time_per_token_duration_bucket",
                "tgi_request_failure",
                "tgi_request_count",
            ),
            request_rate="sum(rate(tgi_request_count{{{sel}}}[5m]))",
            queue="sum(tgi_queue_size{{{sel}}})",
        ),
        scaling=Scaling("sum(tgi_queue_size{{{sel}}})", "5"),
        sample=lambda name: ("POST", "/generate", {"inputs": "ping", "parameters": {"max_new_tokens": 1}}),
        env={"HF_HOME": "/tmp/huggingface", **RUNTIME_USER},
        own_metric_prefixes=("tgi_",),
        # launcher.md: --master-port, "The address the master port will listen on. (setting used by torch
        # distributed)", default 29500: the shards of a multi-GPU replica meet there
        other_ports=((29500, "torch.distributed's master port (TGI's --master-port default)"),),
    ),
}


SERVER_METRIC_PREFIXES = tuple(dict.fromkeys(p for preset in PRESETS.values() for p in preset.own_metric_prefixes))
"""Series only an inference server's own pods export, whatever the model's runtime (a `custom` image may run any
of them)."""


def pod_only_metrics(query: str, services: set[str]) -> list[str]:
    """The series a query cannot do without that only the model's own pods export (a server's metric names, or
    any metric selected by the model's Services, `services`), when it can return nothing live at zero
    replicas; else []. Raises promql.PromQLError for a query that is not PromQL."""
    return promql.pod_only_series(query, SERVER_METRIC_PREFIXES, services)
