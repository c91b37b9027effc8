"""Cron expressions as KEDA's cron scaler reads them (github.com/robfig/cron v3's standard parser: minute, hour,
day of month, month, day of week; `*`, `?`, `a-b`, `/n`, lists, month and weekday names): what it refuses, and
expressions that never fire (February 30th). A model at zero whose hours never begin never wakes.

The policy pack runs without the components (its own environment): policies/modelops_rules/cron.py is a copy of this
file, held identical by a test.
"""

from __future__ import annotations

_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
"""The five fields KEDA's cron scaler reads (github.com/robfig/cron v3's standard parser): name, bounds, the
names it accepts for values (months from 1, weekdays from 0)."""
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _cron_value(text: str, low: int, names: tuple[str, ...]) -> int:
    upper = text.upper()
    if upper in names:
        return names.index(upper) + low
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number{' or a name' if names else ''}")
    return int(text)


def _cron_field(text: str, field: tuple[str, int, int, tuple[str, ...]]) -> set[int] | None:
    """The values a cron field selects (None when robfig/cron marks it unrestricted: `*` or `?` with no step or a
    step of 1, alone or in a list, which its getRange keeps as the star bit and dayMatches then ANDs the day fields
    on), as robfig/cron reads `a`, `a-b`, `*/n`, `a-b/n`, `a/n` and lists of them; ValueError for what it refuses."""
    name, low, high, names = field
    values: set[int] = set()
    star = False
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"{name}: {part!r} has no positive step")
        if span in ("*", "?"):
            star = star or step in (None, 1)  # `*/1` is `*` (getRange: only a step above 1 drops the star bit)
            first, last = low, high
        else:
            first_text, dash, last_text = span.partition("-")
            first = _cron_value(first_text, low, names)
            last = _cron_value(last_text, low, names) if dash else (high if step else first)
        if not low <= first <= last <= high:
            raise ValueError(f"{name}: {part!r} is outside {low}-{high} (or runs backwards)")
        values |= set(range(first, last + 1, step or 1))
    return None if star else values


def cron_problem(expression: str) -> str | None:
    """Why KEDA's cron trigger would refuse the expression or never fire on it, else None."""
    try:
        minute, hour, day, month, weekday = (
            _cron_field(t, f) for t, f in zip(expression.split(), _CRON_FIELDS, strict=True)
        )
    except ValueError as exc:
        return str(exc)
    # robfig/cron: with both day fields restricted, either may match; with the weekday free, the date must exist
    if day is not None and weekday is None:
        months = month if month is not None else set(range(1, 13))
        if not any(d <= _DAYS_IN_MONTH[m - 1] for m in months for d in day):
            return f"day of month {sorted(day)} never falls in month(s) {sorted(months)}: it never fires"
    return None
