"""Stack files read as the Pulumi CLI reads them: YAML 1.2 scalars as gopkg.in/yaml.v3 resolves them.

The CLI decodes stack files with gopkg.in/yaml.v3 (v3.0.1) into `any` (pulumi/pulumi
sdk/go/common/resource/config/object.go, `UnmarshalYAML`; numbers then go to the program as Go JSON, and a one-key
`secure:` map is a secret only when its value is a string, `isSecureValue`). yaml.v3's resolve.go
(https://github.com/go-yaml/yaml/blob/v3.0.1/resolve.go) resolves plain scalars by the YAML 1.2 core schema, with
its own extensions: only `true/True/TRUE/false/False/FALSE` are booleans (`on`, `yes`, `y` are strings: "Bools are
per 1.2 spec"), base-60 `1:30` is unsupported ("Base 60 floats are a bad idea, were dropped in YAML 1.2"), `0o17`
and the 1.1 octal `017` are both ints ("Octals from the 1.1 spec, spelled as 0777, are still decoded by default in
v3"), underscores are dropped from numbers, and anything Go's strconv.ParseFloat reads is a float (`1e3`, `+.5`,
`08`). The expected values below are yaml.v3's own decode tests (decode_test.go, "Floats from spec", "Ints from
spec", "Bools are per 1.2 spec") and the rules of resolve.go, read from the module cache.
"""

from __future__ import annotations

import datetime
import json
import math
import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from components.config import StackConfigError
from composition import stack_yaml
from modelops_cli.cli import main
from modelops_cli.stackfile import load_stack
from tests.conftest import ROOT

V3_SCALARS = [
    # YAML 1.1 (PyYAML) reads these as numbers or booleans; yaml.v3 (YAML 1.2) as strings
    ("1:30", "1:30"),
    ("190:20:30", "190:20:30"),
    ("on", "on"),
    ("On", "On"),
    ("yes", "yes"),
    ("off", "off"),
    ("no", "no"),
    ("y", "y"),
    ("n", "n"),
    ("=", "="),
    # YAML 1.1 reads these as strings; yaml.v3 as numbers
    ("0o17", 15),
    ("-0o2472256", -685230),
    ("08", 8.0),
    ("1e3", 1000.0),
    ("1.5e3", 1500.0),
    ("6.8523e+5", 6.8523e5),
    ("+.5", 0.5),
    ("-.1", -0.1),
    # both agree
    ("017", 15),
    ("02472256", 685230),
    (".5", 0.5),
    (".1", 0.1),
    ("1_000", 1000),
    ("+685_230", 685230),
    ("685.230_15e+03", 685230.15),
    ("685_230.15", 685230.15),
    ("0x_0A_74_AE", 685230),
    ("0b1010_0111_0100_1010_1110", 685230),
    ("-0b101010", -42),
    ("-0b1000000000000000000000000000000000000000000000000000000000000000", -9223372036854775808),
    ("4294967296", 4294967296),
    ("18446744073709551615", 18446744073709551615),  # ParseUint takes what ParseInt cannot
    ("18446744073709551616", 1.8446744073709552e19),  # neither does: a float
    ("true", True),
    ("TRUE", True),
    ("False", False),
    ("~", None),
    ("null", None),
    ("NULL", None),
    # Go's ParseFloat refuses these (out of range, misplaced underscore): yaml.v3 keeps the text
    ("1e999", "1e999"),
    ("._5", "._5"),
    ("0x", "0x"),
    ("+", "+"),
    ("tRUE", "tRUE"),
    (".Nan", ".Nan"),
    # timestamps only where Go's time.Parse accepts every field
    ("2024-02-03", datetime.date(2024, 2, 3)),
    ("2024-1-2 3:04:05", datetime.datetime(2024, 1, 2, 3, 4, 5)),
    ("2024-02-30", "2024-02-30"),
    ("2024-13-01", "2024-13-01"),
    ("24-02-03", "24-02-03"),
]


@pytest.mark.parametrize(("text", "expected"), V3_SCALARS)
def test_plain_scalars_resolve_as_yaml_v3_does(text, expected):
    value = stack_yaml.load(f"v: {text}\n")["v"]
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("text", [".nan", ".NaN", ".inf", "-.Inf", "+.INF"])
def test_special_floats_are_floats(text):
    value = stack_yaml.resolve_plain(text)
    assert isinstance(value, float) and not math.isfinite(value)


def test_quoted_and_block_scalars_are_always_strings_and_merge_keys_merge():
    data = stack_yaml.load("a: '1:30'\nb: \"on\"\nc: |\n  017\nd: &x {k: 1, on: 2}\ne: {<<: *x, k: 3}\n")
    assert data == {"a": "1:30", "b": "on", "c": "017\n", "d": {"k": 1, "on": 2}, "e": {"k": 3, "on": 2}}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("v: !!int 1:30", "cannot decode '1:30' as a !!int"),
        ("v: !!bool on", "cannot decode 'on' as a !!bool"),
        ("v: !!null 0", "cannot decode '0' as a !!null"),
        ("v: 1\nv: 2", "duplicate key 'v'"),
        ("? [1]\n: 2", "a mapping key is a list or a map"),
        ("d: &x {k: 1}\ne: {<<: *x, '<<': *x}", 'mapping key "<<" already defined'),  # decode.go uniqueKeys
    ],
)
def test_what_yaml_v3_refuses_is_refused(text, why):
    """resolve.go: an explicit tag the text does not fit fails (`cannot decode !!str ... as a !!int`); decode.go
    refuses a key written twice (`mapping key "v" already defined`)."""
    with pytest.raises(yaml.YAMLError, match=why.replace("[", r"\[").replace("!", "!")):
        stack_yaml.load(text)


def test_explicit_core_tags_convert_as_yaml_v3_does():
    assert stack_yaml.load("a: !!int 017\nb: !!float 1\nc: !!str 1:30\nd: !!bool TRUE") == {
        "a": 15,
        "b": 1.0,
        "c": "1:30",
        "d": True,
    }


_SCALAR_TEXT = st.text(alphabet="0123456789+-._:eEoOxXbBaAfFnNyYtT~ ", min_size=1, max_size=12).filter(
    lambda t: t == t.strip() and not t.startswith(("-", "?", ":", "~ ")) and ": " not in t and " #" not in t
)


@settings(max_examples=400, deadline=None)
@given(_SCALAR_TEXT)
def test_any_number_like_scalar_resolves_to_one_json_value_never_a_traceback(text):
    """Whatever number-like text a stack file holds, it becomes one JSON value (what the CLI passes on) or a
    parse error, never a Python exception of another kind; and a quoted copy is always the text itself."""
    try:
        value = stack_yaml.load(f"v: {text}\n")
    except yaml.YAMLError:
        return
    assert stack_yaml.load(f"v: '{text}'\n") == {"v": text}
    resolved = value["v"]
    assert resolved is None or isinstance(resolved, bool | int | float | str | datetime.date)
    if isinstance(resolved, int) and not isinstance(resolved, bool):
        assert -(1 << 63) <= resolved < (1 << 64)
        assert "." not in text and ":" not in text  # an int is never a sexagesimal or a decimal fraction
    if isinstance(resolved, str):
        assert resolved == text


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1))
def test_canonical_integers_read_back_as_themselves(number):
    assert stack_yaml.load(f"v: {number}")["v"] == number


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_read_back_as_themselves_and_reach_the_program_as_go_json_would(number):
    """encoding/json writes an integral float64 below 1e21 without a fraction (`1000`), which the program reads
    back as an int; other floats stay floats (https://pkg.go.dev/encoding/json#Marshal, floatEncoder)."""
    value = stack_yaml.load(f"v: {number!r}")["v"]
    assert value == number
    sent = stack_yaml.as_cli_value(value)
    # Go writes the shortest digits that read back as the float (strconv 'f', -1): past 2**53 that decimal is not
    # the float's exact value, but the same float again
    assert float(sent) == number
    assert isinstance(sent, int) == (number.is_integer() and abs(number) < 1e21)


def write(tmp_path, config: str):
    path = tmp_path / "Pulumi.yamlcheck.yaml"
    path.write_text((ROOT / "stacks" / "Pulumi.dev.yaml").read_text().replace("config:\n", f"config:\n{config}", 1))
    return path


def test_a_yaml_1_1_boolean_is_the_string_the_cli_reads(tmp_path, capsys):
    """`modelops:costOwner: on` is the string "on" to the CLI (YAML 1.1 would make it `true`, which is no owner)."""
    path = write(tmp_path, "  modelops:costOwner: on\n")
    settings_ = load_stack("yamlcheck", stack_file=path)
    assert settings_.model.cost_owner == "on"
    assert settings_.config["modelops:costOwner"] == "on"


def test_a_sexagesimal_is_the_string_the_cli_reads(tmp_path):
    """YAML 1.1 would read `1:30` as 5400 and the schema would take it as a threshold; the CLI passes "1:30", which
    is no number: refused with the key path, as `pulumi up` would refuse it."""
    text = (ROOT / "stacks" / "Pulumi.dev.yaml").read_text()
    path = tmp_path / "Pulumi.yamlcheck.yaml"
    path.write_text(text.replace("      version: ", "      replicas: {max: 1:30}\n      version: ", 1))
    with pytest.raises(StackConfigError) as info:
        load_stack("yamlcheck", stack_file=path)
    assert any(p.startswith("modelops:models.sentiment.replicas.max:") for p in info.value.problems)


def test_numbers_reach_the_program_as_the_cli_passes_them(tmp_path):
    """`1e3` is a float to yaml.v3, which the CLI passes as Go JSON `1000`: the program reads an int."""
    text = (ROOT / "stacks" / "Pulumi.dev.yaml").read_text()
    path = tmp_path / "Pulumi.yamlcheck.yaml"
    path.write_text(text.replace("      version: ", "      replicas: {max: 2e0}\n      version: ", 1))
    settings_ = load_stack("yamlcheck", stack_file=path)
    assert json.loads(settings_.config["modelops:models"])["sentiment"]["replicas"] == {"max": 2}


@pytest.mark.parametrize("number", [".nan", ".inf", "-.inf"])
def test_nan_and_infinity_are_refused_as_the_cli_cannot_pass_them(number, tmp_path, capsys):
    """encoding/json refuses NaN and infinities (`json: unsupported value`), so the CLI cannot hand them to a
    program: exit 2 naming the key."""
    text = (ROOT / "stacks" / "Pulumi.dev.yaml").read_text()
    path = tmp_path / "Pulumi.yamlcheck.yaml"
    path.write_text(re.sub(r"monthlyGpuUsd: \S+", f"monthlyGpuUsd: {number}", text))
    assert main(["plan", "--stack-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert "modelops:budget.monthlyGpuUsd" in err and "JSON has no NaN or infinity" in err
    assert "Traceback" not in err


def test_a_secure_map_whose_value_is_not_text_is_no_secret(tmp_path):
    """isSecureValue: `{secure: 17}` is a plain map to the CLI, not a secret; the schema then refuses it as the
    wrong type where a string belongs, rather than taking it for a secret."""
    text = (ROOT / "stacks" / "Pulumi.dev.yaml").read_text()
    path = tmp_path / "Pulumi.yamlcheck.yaml"
    path.write_text(text.replace("      version: ", "      env: {TOKEN: {secure: 17}}\n      version: ", 1))
    with pytest.raises(StackConfigError) as info:
        load_stack("yamlcheck", stack_file=path)
    assert any(p.startswith("modelops:models.sentiment.env.TOKEN:") for p in info.value.problems)


_EDGE_SCALARS = [
    "1:30",
    "on",
    "off",
    "yes",
    "0o17",
    "017",
    "08",
    ".5",
    "+.5",
    "1_000",
    "1e3",
    "1e999",
    ".inf",
    "-.inf",
    ".nan",
    "2024-02-30",
    "2024-02-03",
    "2024-1-2 3:04:05",
    "~",
    "null",
    "''",
    '""',
    "!!binary aGk=",
    "!!int 1:30",
    "!!float x",
    "!!str 017",
    "!!set {a}",
    "[1, 2]",
    "{a: 1}",
    "{secure: 17}",
    "{secure: v1:abc}",
    "'\\x1b[31m'",
    '"\\u202e"',
    "0x_1F",
    "-0b101",
    "9223372036854775808",
    "18446744073709551616",
    "=",
    "<<",
    "|\n        on",
]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.sampled_from(_EDGE_SCALARS))
def test_any_scalar_of_a_stack_file_is_read_or_refused_by_key_never_a_traceback(tmp_path_factory, position, scalar):
    """Replace one value of the dev stack file with an edge scalar of YAML 1.1/1.2: the stack loads, or it is
    refused with lines naming the file or a `modelops:` key, never another exception."""
    lines = (ROOT / "stacks" / "Pulumi.dev.yaml").read_text().splitlines()
    values = [i for i, line in enumerate(lines) if re.match(r"^\s+[A-Za-z]+: \S", line) and "modelops:" not in line]
    index = values[position % len(values)]
    key = lines[index].split(":", 1)[0]
    lines[index] = f"{key}: {scalar}"
    path = tmp_path_factory.mktemp("stack") / "Pulumi.edge.yaml"
    path.write_text("\n".join(lines) + "\n")
    try:
        load_stack("edge", stack_file=path)
    except StackConfigError as exc:
        assert exc.problems
        assert all(p.startswith(("Pulumi.edge.yaml:", "modelops:")) for p in exc.problems), exc.problems


def test_the_reading_differences_an_independent_review_found_are_gone():
    """Where yaml.v3 and this reader used to part (decode.go, resolve.go of v3.0.1; encoding/json's float format):
    a quoted `<<` merges there too (isMerge reads the text); year 0 is a timestamp to Go's time.Parse, so the unquoted
    date is refused as every date is; a whole float at or past 2**53 reaches the program as Go writes it."""
    assert stack_yaml.load("d: &x {k: 1}\ne: {'<<': *x, j: 2}\n") == {"d": {"k": 1}, "e": {"k": 1, "j": 2}}
    assert isinstance(stack_yaml.load("v: 0000-01-01")["v"], stack_yaml.YearZeroTimestamp)
    assert not isinstance(stack_yaml.load("v: 0000-02-30")["v"], stack_yaml.YearZeroTimestamp)  # no such day
    assert stack_yaml.as_cli_value(18446744073709551616.0) == 18446744073709552000
    assert stack_yaml.as_cli_value(9007199254740993.0) == 9007199254740992  # the float the text became
    assert stack_yaml.as_cli_value(1e3) == 1000
