"""Stack files read as the Pulumi CLI reads them: YAML 1.2 scalars, resolved as gopkg.in/yaml.v3 resolves them.

The CLI decodes `Pulumi.<stack>.yaml` with gopkg.in/yaml.v3 into Go values (sdk/go/common/resource/config/
object.go, `UnmarshalYAML` into `any`) and hands the program each key as text: strings as they are, everything
else as Go JSON. PyYAML reads YAML 1.1, where `1:30` is the integer 5400 (base 60), `on`/`yes`/`off`/`no` are
booleans, and `1e3`, `0o17`, `08` and `+.5` are strings; yaml.v3 reads `1:30` and `on` as strings and `1e3`,
`0o17`, `08`, `+.5` as numbers. Read with PyYAML's defaults, a stack file would mean one thing offline and
another under `pulumi up`. This module holds PyYAML's parser (libyaml) but resolves every plain scalar by
yaml.v3's rules (resolve.go, `resolve`, v3.0.1: the version the Pulumi CLI pins), so both read the same values.

Read by the program (composition/stack_config.py, where the CLI's values cannot say where a secret sits) and by
`modelops` (offline/stackfile.py).
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
from typing import Any

import yaml

V3_PLAIN_TAG = "tag:modelops.dev,2026:yaml.v3-plain"
"""The tag every untagged plain scalar gets here: its value is resolved by `resolve_plain` (yaml.v3's rules)."""

_NULLS = ("", "~", "null", "Null", "NULL")
_SPECIAL: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(_NULLS, None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
"""resolve.go's resolveMap: the only spellings of booleans, null and the special floats (YAML 1.2 core schema)."""

_YAML_STYLE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
"""resolve.go's yamlStyleFloat."""
_GO_DECIMAL_FLOAT = re.compile(r"[-+]?([0-9_]+\.?[0-9_]*|\.[0-9_]+)([eE][-+]?[0-9][0-9_]*)?")
"""What Go's strconv.ParseFloat reads as a decimal number (underscores checked separately)."""
_INT64 = (-(1 << 63), (1 << 63) - 1)
_UINT64_MAX = (1 << 64) - 1

_DATE = r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{1,2})-(?P<d>[0-9]{1,2})"
_CLOCK = r"(?P<h>[0-9]{1,2}):(?P<mi>[0-9]{1,2}):(?P<s>[0-9]{1,2})(?:[.,][0-9]+)?"
_TIMESTAMPS = (
    re.compile(rf"{_DATE}[Tt]{_CLOCK}(?P<tz>Z|[-+](?P<tzh>[0-9]{{2}}):(?P<tzm>[0-9]{{2}}))"),
    re.compile(rf"{_DATE} {_CLOCK}"),
    re.compile(_DATE),
)
"""resolve.go's allowedTimestampFormats as Go's time.Parse reads them: `2006-1-2T15:4:5.999999999Z07:00` (and with
`t`), `2006-1-2 15:4:5.999999999`, `2006-1-2` (one- or two-digit fields but the year; an optional fraction)."""


class YamlV3Error(ValueError):
    """A scalar yaml.v3 refuses (an explicit tag its text does not fit)."""


class YearZeroTimestamp(str):
    """A timestamp in year 0: Go's time.Parse takes it (the CLI passes its time.String() text), Python's dates
    cannot hold it. Refused like every other unquoted date, never read as the plain text it is written as."""


def resolve_plain(text: str) -> Any:
    """The value yaml.v3 gives an untagged plain scalar: None, bool, int, float, a datetime.date/datetime (its
    timestamps, which the CLI turns into Go's time.String() text) or the text itself."""
    if text in _SPECIAL:
        return _SPECIAL[text]
    first = text[0]
    if first == ".":
        return _go_parse_float(text, text)
    if not (first.isascii() and (first.isdigit() or first in "+-")):
        return text  # the resolve table has no hint for it (or only for the words above): a string
    return _resolve_number_like(text)


def _resolve_number_like(text: str) -> Any:
    """A plain scalar that starts with a digit or a sign: a timestamp, an integer, a float, else the text."""
    timestamp = _timestamp(text)
    if timestamp is not None:
        return timestamp
    plain = text.replace("_", "")
    number = _go_parse_int(plain)
    if number is not None:
        return number
    if _YAML_STYLE_FLOAT.fullmatch(plain):
        return _go_parse_float(plain, text)
    return text


def _go_parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), else strconv.ParseUint(text, 0, 64): base from the prefix (`0x`, `0o`, `0b`,
    and a bare leading `0` for octal, as YAML 1.1 wrote it and yaml.v3 still reads it); None when neither takes it."""
    sign, digits = (text[0], text[1:]) if text[:1] in ("+", "-") else ("", text)
    base = 10
    if digits[:1] == "0" and len(digits) > 1:
        prefix = digits[1].lower()
        if len(digits) >= 3 and prefix in "box":
            base, digits = {"b": 2, "o": 8, "x": 16}[prefix], digits[2:]
        else:
            base, digits = 8, digits[1:]
    allowed = "0123456789abcdef"[:base]
    if not digits or any(c not in allowed for c in digits.lower()):
        return None
    value = -int(digits, base) if sign == "-" else int(digits, base)
    if _INT64[0] <= value <= _INT64[1] or (not sign and value <= _UINT64_MAX):
        return value
    return None


def _go_parse_float(number: str, text: str) -> float | str:
    """strconv.ParseFloat(number, 64) for decimal text: the float, or `text` unchanged when Go refuses it (bad
    syntax, misplaced `_`, or out of range: Go answers ErrRange and yaml.v3 keeps the string)."""
    if not _GO_DECIMAL_FLOAT.fullmatch(number) or not _underscores_between_digits(number):
        return text
    value = float(number.replace("_", ""))
    return text if math.isinf(value) else value


def _underscores_between_digits(text: str) -> bool:
    """Go's underscoreOK for a decimal number: each `_` between two digits."""
    return all(text[i - 1 : i].isdigit() and text[i + 1 : i + 2].isdigit() for i, c in enumerate(text) if c == "_")


def _timestamp(text: str) -> datetime.date | YearZeroTimestamp | None:
    """yaml.v3's parseTimestamp: a date (or date and time) only when Go's time.Parse accepts every field; a
    February 30th stays a string there, so it does here."""
    for pattern in _TIMESTAMPS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        fields = match.groupdict()
        if int(fields["y"]) == 0:
            return _year_zero(text, fields)
        try:
            day = datetime.date(int(fields["y"]), int(fields["mo"]), int(fields["d"]))
            if fields.get("h") is None:
                return day
            clock = datetime.time(int(fields["h"]), int(fields["mi"]), int(fields["s"]))
        except ValueError:
            continue
        if fields.get("tzh") is not None and (int(fields["tzh"]) > 24 or int(fields["tzm"]) > 60):
            continue
        return datetime.datetime.combine(day, clock)
    return None


def _year_zero(text: str, fields: dict[str, Any]) -> YearZeroTimestamp | None:
    """Year 0 is a leap year in Go's proleptic calendar, as 2000 is: the same fields are valid in both."""
    try:
        datetime.date(2000, int(fields["mo"]), int(fields["d"]))
        if fields.get("h") is not None:
            datetime.time(int(fields["h"]), int(fields["mi"]), int(fields["s"]))
    except ValueError:
        return None
    return YearZeroTimestamp(text)


def _explicit(tag: str, text: str) -> Any:
    """A scalar with an explicit core tag (`!!int 17`): yaml.v3 resolves the text and refuses what does not fit
    the tag (an int is also a float)."""
    value = resolve_plain(text)
    kinds = {"int": (int,), "float": (float, int), "bool": (bool,), "null": (type(None),)}[tag]
    if (isinstance(value, bool) and tag != "bool") or not isinstance(value, kinds):
        raise YamlV3Error(f"cannot decode {text!r} as a !!{tag} (YAML 1.2, as the Pulumi CLI reads it)")
    return float(value) if tag == "float" and isinstance(value, int | float) else value


class _V3Resolver(yaml.resolver.Resolver):
    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return "tag:yaml.org,2002:merge" if value == "<<" else V3_PLAIN_TAG
        if kind is yaml.ScalarNode:
            return "tag:yaml.org,2002:str"  # quoted, or a block scalar: always text
        return str(super().resolve(kind, value, implicit))


_BASE: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlV3Loader(_BASE, _V3Resolver):
    """libyaml's parser when PyYAML has it (a 100-model stack file parses 10x faster), yaml.v3's scalars, and
    duplicate keys refused as yaml.v3 refuses them (`mapping key "x" already defined`)."""

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        return _V3Resolver.resolve(self, kind, value, implicit)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        merges = 0
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == "<<":
                # yaml.v3's isMerge reads the text, quoted or not (decode.go), and refuses a second one
                key_node.tag = "tag:yaml.org,2002:merge"
                merges += 1
                if merges > 1:
                    raise yaml.constructor.ConstructorError(
                        None, None, 'mapping key "<<" already defined', key_node.start_mark
                    )
                continue  # merged keys may be overridden; only keys written twice are refused
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key is a list or a map", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _construct_plain(loader: YamlV3Loader, node: yaml.ScalarNode) -> Any:
    return resolve_plain(loader.construct_scalar(node))


def _construct_tagged(tag: str) -> Any:
    def construct(loader: YamlV3Loader, node: yaml.ScalarNode) -> Any:
        try:
            return _explicit(tag, loader.construct_scalar(node))
        except YamlV3Error as exc:
            raise yaml.constructor.ConstructorError(None, None, str(exc), node.start_mark) from None

    return construct


YamlV3Loader.add_constructor(V3_PLAIN_TAG, _construct_plain)
for _tag in ("int", "float", "bool", "null"):
    YamlV3Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _construct_tagged(_tag))


def load(text: str) -> Any:
    """One YAML document read as the Pulumi CLI reads a stack or project file. Raises yaml.YAMLError."""
    return yaml.load(text, Loader=YamlV3Loader)  # a safe loader: builds no Python objects


def as_cli_value(value: Any) -> Any:
    """What the program receives for a value the CLI read: it passes numbers as Go JSON text (encoding/json
    writes an integral float64 below 1e21 without a fraction: 1e3 -> `1000`), which the program reads back as
    JSON, so a whole-number float arrives as an int."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
        # Go writes the shortest digits that read back as the float, then zeros: 2**64 -> 18446744073709552000
        return int(decimal.Decimal(repr(value)))
    if isinstance(value, dict):
        return {k: as_cli_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_cli_value(v) for v in value]
    return value
