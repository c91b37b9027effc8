"""Inference runtime presets: what each model server needs and what users get wrong about it.

`modelops:models.<m>.runtime` picks one; `custom` (the default) is the project's own contract (the shipped
`models/sentiment` server). A preset sets the port, the probe paths, where the metrics are served, the
container arguments, the /dev/shm size, a cache directory on the writable volume, and the metric names the
model's alerts read. A model's own `port`, `probes`, `args` and `resources.shm` override the preset.

Each preset names the runtime version whose documentation it was checked against; tests hold the presets to
those documented flags, endpoints and metrics.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class Runtime(StrEnum):
    CUSTOM = "custom"
    VLLM = "vllm"
    TRITON = "triton"
    TGI = "tgi"


@dataclass(frozen=True)
class Alerting:
    """PromQL for a model's alerts, over the runtime's own metrics. `{sel}` is the Prometheus selector of the
    model's scraped series (namespace and service)."""

    latency_seconds: str
    """An expression of the request latency in seconds (p99 where the runtime has a histogram)."""
    error_ratio: str
    """An expression of the share of requests that failed."""
    metrics: tuple[str, ...]
    """Every metric the alert expressions read (what the runtime must export)."""
    request_rate: str = ""
    """Requests per second (dashboards)."""
    queue: str = ""
    """Work waiting (dashboards; empty where the runtime exports none)."""


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
    sample: Callable[[str], tuple[str, str, dict | None]] | None = None
    """(model name) -> (method, path, JSON body) of the smallest real request (`modelops smoke --endpoints`);
    None: the model's own `serverless.samplePayload`, POSTed to /."""
    env: dict[str, str] = field(default_factory=dict)
    """Where the runtime writes caches: the root filesystem is read-only, /tmp is the writable volume."""
    metrics_path: str = "/metrics"
    own_metric_prefixes: tuple[str, ...] = ()
    """Metric names only the server's own pods export: a query over nothing else is empty at zero replicas,
    so KEDA cannot wake a scaled-to-zero model on it. Empty for `custom` (its http_* names are common)."""


HTTP_METRICS = Alerting(
    latency_seconds="histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{{sel}}}[5m])))",
    # `5..` matches a code (503) and a class (5xx) alike
    error_ratio=(
        'sum(rate(http_requests_total{{{sel},status=~"5.."}}[5m])) / sum(rate(http_requests_total{{{sel}}}[5m]))'
    ),
    metrics=("http_request_duration_seconds_bucket", "http_requests_total"),
    request_rate="sum(rate(http_requests_total{{{sel}}}[5m]))",
)
"""prometheus-fastapi-instrumentator's defaults: the project's own servers, and vLLM's OpenAI server (which
instruments its FastAPI app with it)."""

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
        alerting=Alerting(
            latency_seconds=HTTP_METRICS.latency_seconds,
            error_ratio=HTTP_METRICS.error_ratio,
            metrics=HTTP_METRICS.metrics,
            request_rate=HTTP_METRICS.request_rate,
            queue="sum(vllm:num_requests_waiting{{{sel}}})",
        ),
        # the OpenAI completions API, one token
        sample=lambda name: ("POST", "/v1/completions", {"model": name, "prompt": "ping", "max_tokens": 1}),
        env={"HF_HOME": "/tmp/huggingface", "VLLM_NO_USAGE_STATS": "1"},
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
        alerting=Alerting(
            latency_seconds=(
                "sum(rate(nv_inference_request_duration_us{{{sel}}}[5m])) "
                "/ sum(rate(nv_inference_count{{{sel}}}[5m])) / 1e6"
            ),
            error_ratio=(
                "sum(rate(nv_inference_request_failure{{{sel}}}[5m])) / (sum(rate(nv_inference_request_success"
                "{{{sel}}}[5m])) + sum(rate(nv_inference_request_failure{{{sel}}}[5m])))"
            ),
            metrics=(
                "nv_inference_request_duration_us",
                "nv_inference_count",
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
        own_metric_prefixes=("nv_inference_", "nv_gpu_", "nv_cpu_", "nv_cache_"),
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
        alerting=Alerting(
            latency_seconds="histogram_quantile(0.99, sum by (le) (rate(tgi_request_duration_bucket{{{sel}}}[5m])))",
            error_ratio="sum(rate(tgi_request_failure{{{sel}}}[5m])) / sum(rate(tgi_request_count{{{sel}}}[5m]))",
            metrics=("tgi_request_duration_bucket", "tgi_request_failure", "tgi_request_count"),
            request_rate="sum(rate(tgi_request_count{{{sel}}}[5m]))",
            queue="sum(tgi_queue_size{{{sel}}})",
        ),
        sample=lambda name: ("POST", "/generate", {"inputs": "ping", "parameters": {"max_new_tokens": 1}}),
        env={"HF_HOME": "/tmp/huggingface"},
        own_metric_prefixes=("tgi_",),
    ),
}
