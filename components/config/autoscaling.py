"""How a model scales: an HPA on CPU, or KEDA on a Prometheus query, and KEDA's active hours."""

import zoneinfo
from functools import cache
from typing import Self

from pydantic import Field, field_validator, model_validator

from ..cron import cron_problem
from .base import ConfigModel

_CRON_FIELD = r"[0-9A-Za-z*,/?-]+"
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})
"""Files of a zoneinfo directory that name no place: `localtime` is the host's own setting (a link the KEDA
operator's image need not have), `posixrules` a tzcode default, `Factory` a placeholder whose abbreviation says
"Local time zone must be set"."""


@cache
def iana_zones() -> frozenset[str]:
    """The IANA time zone names, read from the locked `tzdata` package when there (the same list on every machine
    that runs `pulumi up`), else from the host's zoneinfo. KEDA's cron trigger loads its `timezone` with Go's
    time.LoadLocation (https://keda.sh/docs/2.17/scalers/cron/: "timezone - One of the acceptable values from the
    IANA Time Zone Database"), which reads these same names."""
    try:
        from importlib import resources

        names = frozenset(resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split())
    except (ModuleNotFoundError, OSError):
        names = frozenset(zoneinfo.available_timezones())
    return names - _NOT_ZONES


class ActiveHours(ConfigModel):
    """When KEDA keeps at least one replica (its cron trigger): outside these hours a scale-to-zero model
    releases its GPUs once idle, and within them it is up before the first request."""

    timezone: str = Field(min_length=1)
    """An IANA time zone, e.g. `America/Los_Angeles`."""
    start: str = Field(pattern=rf"^{_CRON_FIELD}( {_CRON_FIELD}){{4}}$")
    """Cron expression (minute hour day-of-month month day-of-week) at which the hours begin."""
    end: str = Field(pattern=rf"^{_CRON_FIELD}( {_CRON_FIELD}){{4}}$")
    """Cron expression at which they end (not the same as `start`)."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in iana_zones():
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. America/Los_Angeles, Europe/Berlin, UTC)")
        return value

    @field_validator("start", "end")
    @classmethod
    def _fires(cls, value: str) -> str:
        problem = cron_problem(value)
        if problem:
            raise ValueError(f"{value!r}: {problem}")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.start == self.end:
            raise ValueError("start and end are the same time: KEDA's cron trigger refuses that")
        return self


class AutoscalingConfig(ConfigModel):
    target_cpu_utilization: int = Field(default=70, ge=10, le=100)
    """An HPA on CPU. CPU models scale on it by default; a GPU model only when this is set (a choice): a GPU
    server is not CPU-bound, and vLLM, TGI and Triton models otherwise scale on their engine's queue (KEDA)."""
    prometheus_query: str | None = Field(default=None, min_length=1)
    """With this, a KEDA ScaledObject scales on the query (e.g. queue depth) instead of an HPA on CPU. Default
    for a GPU model of the vllm, tgi or triton runtime: the engine's own queue (see the README's Runtimes)."""
    prometheus_threshold: str = Field(default="10", pattern=r"^[0-9]{1,15}(\.[0-9]+)?$")
    """KEDA's target value per replica (default for a runtime's own query: the runtime's)."""

    @field_validator("prometheus_threshold")
    @classmethod
    def _positive_target(cls, value: str) -> str:
        # KEDA writes the threshold into its HPA as a quantity of three decimals (scaler.go, quantityFromFloat64:
        # "%.3f"), and the API server refuses a target that is not positive (autoscaling validation,
        # validateMetricTarget: "must be positive"): below 0.0005 the HPA is never created
        if float(format(float(value), ".3f")) <= 0:
            raise ValueError(
                f"{value!r}: KEDA writes the target with three decimals into its HPA, where it must be positive (at "
                "least 0.001)"
            )
        return value

    activation_threshold: str = Field(default="0", pattern=r"^[0-9]+(\.[0-9]+)?$")
    """With `replicas.min: 0`: KEDA wakes the model from zero once the query exceeds this."""
    prometheus_address: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090",
        pattern=r"^https?://[a-z0-9.-]+(:[0-9]+)?(/[\x21-\x7e]*)?$",
    )
    active_hours: ActiveHours | None = None
    """KEDA keeps a replica during these hours (a cron trigger beside the query); with `replicas.min: 0` the
    model is up before the day's first request and scales to zero after hours."""
