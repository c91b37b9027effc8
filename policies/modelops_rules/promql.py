"""A PromQL reader for one question: can a query return a live series while a model has no pods?

KEDA wakes a model scaled to zero when its Prometheus query passes the activation threshold. At zero
replicas nothing scrapes the model's own pods, so every series they export is gone, and PromQL drops a
result wherever an operand is empty: `a + b`, `a * 0`, `a and b`, `sum(a)`, `rate(a[1m])` are all empty when
`a` is (prometheus.io/docs/prometheus/latest/querying/operators/: vector matching keeps only the elements
with a partner on both sides); only `or` (either side) and `unless` (its left side) survive an empty operand.
An empty result reads as 0 to KEDA (kedacore/keda#4883) and the model never wakes. This module parses the
query (the grammar of prometheus/promql/parser) and answers the question by that algebra, so rewrites such as
`pod_series + 0 * outside_series`, `{__name__="vllm:..."}` or `vector(1) or pod_series` are read as PromQL reads
them.

A series is the model's own ("pod-only") when its name is one only an inference server exports (a runtime's
prefix) or when its selector names the model's own scrape target: the `service` / `job` labels the
Prometheus Operator sets from the model's Service, or its pods' names. Everything else (the gateway's request
counts, kube-state-metrics) lives outside the pods.

The policy pack runs without the components (its own environment): policies/modelops_rules/promql.py is a copy of this
file, held identical by a test.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

AGGREGATIONS = {
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
}
CONSTANT_FUNCTIONS = {"vector", "time", "pi", "absent", "absent_over_time"}
"""Functions whose result does not follow traffic: `vector(1)` is always 1, `absent(x)` is 1 exactly when x is
gone. Neither is a signal a model could wake on."""
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    "==": 3,
    "!=": 3,
    "<=": 3,
    "<": 3,
    ">=": 3,
    ">": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "atan2": 5,
    "^": 6,
}
_TOKEN = re.compile(
    r"""(?P<space>\s+|\#[^\n]*)
    |(?P<duration>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*(?![\w:]))
    |(?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    |(?P<ident>[A-Za-z_:][\w:]*)
    |(?P<op>=~|!~|==|!=|<=|>=|[-+*/%^<>=(){}\[\],@])""",
    re.VERBOSE,
)


class PromQLError(ValueError):
    """A query this reader cannot parse (and, very likely, Prometheus neither)."""


@dataclass(frozen=True)
class Selector:
    """A vector selector: its metric name (or None) and label matchers (label, op, value)."""

    name: str | None
    matchers: tuple[tuple[str, str, str], ...] = ()

    def names(self) -> list[str]:
        """The metric names it reads: its name, or the alternatives of a `__name__` matcher."""
        found = [self.name] if self.name else []
        for label, op, value in self.matchers:
            if label == "__name__" and op == "=":
                found.append(value)
            elif label == "__name__" and op == "=~":
                # `(vllm):num_requests_waiting` and `vll[m]:…` are spellings of a vLLM name: the literal text left
                # once grouping and one-character classes are read out (a regex that can match outside a prefix,
                # `.*vllm:…`, keeps its `.*` and so no prefix)
                literal = re.sub(r"\[(.)\]", r"\1", value).replace("(", "").replace(")", "").replace("\\", "")
                found += literal.split("|")
        return found


@dataclass(frozen=True)
class Node:
    """Any other expression: `kind` is number, string, call (with `name`), binary (with `name` as the operator),
    or unary."""

    kind: str
    name: str = ""
    args: tuple[Node | Selector, ...] = field(default_factory=tuple)
    value: float | None = None


Expr = Node | Selector


def _unquote(text: str) -> str:
    body = text[1:-1]
    return body if text[0] == "`" else re.sub(r"\\(.)", r"\1", body)


MAX_DEPTH = 128
"""Levels of nesting a query may have (parentheses, calls, operators in a chain): far beyond any query written by
hand, well inside Python's default recursion limit (1000)."""


class _Parser:
    def __init__(self, query: str):
        self.depth = 0
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(query):
            match = _TOKEN.match(query, pos)
            if match is None:
                raise PromQLError(f"unexpected {query[pos]!r} at position {pos}")
            pos = match.end()
            if match.lastgroup != "space":
                self.tokens.append((match.lastgroup or "", match.group()))
        self.at = 0

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", "")

    def take(self, expected: str | None = None) -> str:
        kind, text = self.peek()
        if kind == "end" or (expected is not None and text != expected):
            raise PromQLError(f"expected {expected or 'more'}, found {text or 'the end'}")
        self.at += 1
        return text

    def parse(self) -> Expr:
        expr = self.expression(1)
        if self.peek()[0] != "end":
            raise PromQLError(f"unexpected {self.peek()[1]!r}")
        return expr

    def expression(self, floor: int) -> Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise PromQLError(f"nested too deeply to read (more than {MAX_DEPTH} levels)")
        left = self.unary()
        while True:
            op = self.peek()[1]
            precedence = _PRECEDENCE.get(op)
            if precedence is None or precedence < floor:
                self.depth -= 1
                return left
            self.take()
            self.modifiers()
            right = self.expression(precedence if op == "^" else precedence + 1)
            self.depth -= 1
            left = Node("binary", op, (left, right))

    def modifiers(self) -> None:
        """`bool`, `on(...)`/`ignoring(...)`, `group_left(...)`/`group_right(...)`: matching options that do not
        change which operands must be present."""
        if self.peek()[1] == "bool":
            self.take()
        for words in (("on", "ignoring"), ("group_left", "group_right")):
            if self.peek()[1] in words:
                self.take()
                if self.peek()[1] == "(":
                    self.labels()

    def labels(self) -> list[str]:
        self.take("(")
        found = []
        while self.peek()[1] != ")":
            found.append(self.take())
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return found

    def unary(self) -> Expr:
        if self.peek()[1] in ("-", "+"):
            sign = self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise PromQLError(f"nested too deeply to read (more than {MAX_DEPTH} levels)")
            operand = self.unary()
            self.depth -= 1
            if sign == "-" and isinstance(operand, Node) and operand.kind == "number" and operand.value is not None:
                return Node("number", value=-operand.value)
            return Node("unary", sign, (operand,))
        return self.postfix(self.primary())

    def postfix(self, expr: Expr) -> Expr:
        while True:
            text = self.peek()[1]
            if text == "[":  # a range or a subquery: the series it reads are the operand's
                while self.take() != "]":
                    pass
            elif text == "offset":
                self.take()
                if self.peek()[1] == "-":
                    self.take()
                self.take()
            elif text == "@":
                self.take()
                if self.take() in ("start", "end"):
                    self.take("(")
                    self.take(")")
            else:
                return expr

    def primary(self) -> Expr:
        kind, text = self.peek()
        if text == "(":
            self.take()
            inner = self.expression(1)
            self.take(")")
            return inner
        if kind == "number":
            self.take()
            return Node("number", value=float(int(text, 16)) if text.lower().startswith("0x") else float(text))
        if kind == "string":
            self.take()
            return Node("string", _unquote(text))
        if text == "{":
            return Selector(None, self.matchers())
        if kind == "ident" and text.lower() in ("inf", "nan"):
            self.take()
            return Node("number", value=float(text))
        if kind == "ident" and text not in _KEYWORDS:
            return self.name_or_call()
        raise PromQLError(f"unexpected {text or 'end of query'!r}")

    def name_or_call(self) -> Expr:
        name = self.take()
        if name in AGGREGATIONS and self.peek()[1] in ("by", "without"):
            self.take()
            self.labels()
        if self.peek()[1] == "(":
            args = self.arguments()
            if name in AGGREGATIONS and self.peek()[1] in ("by", "without"):
                self.take()
                self.labels()
            return Node("call", name, tuple(args))
        return Selector(name, self.matchers() if self.peek()[1] == "{" else ())

    def arguments(self) -> list[Expr]:
        self.take("(")
        args = []
        while self.peek()[1] != ")":
            args.append(self.expression(1))
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return args

    def matchers(self) -> tuple[tuple[str, str, str], ...]:
        self.take("{")
        found = []
        while self.peek()[1] != "}":
            label_kind, label = self.peek()
            if label_kind not in ("ident", "string"):
                raise PromQLError(f"expected a label name, found {label!r}")
            self.take()
            if label_kind == "string" and self.peek()[1] in (",", "}"):
                found.append(("__name__", "=", _unquote(label)))  # Prometheus 3: {"metric.name"}
                if self.peek()[1] == ",":
                    self.take()
                continue
            op = self.take()
            if op not in ("=", "!=", "=~", "!~"):
                raise PromQLError(f"expected a label matcher operator after {label}, found {op!r}")
            value_kind, value = self.peek()
            if value_kind != "string":
                raise PromQLError(f"expected a quoted value for {label}, found {value!r}")
            self.take()
            found.append((_unquote(label) if label_kind == "string" else label, op, _unquote(value)))
            if self.peek()[1] == ",":
                self.take()
        self.take("}")
        return tuple(found)


def parse(query: str) -> Expr:
    """The query's expression tree; PromQLError when it is not PromQL, or nested deeper than MAX_DEPTH (as the
    parser descends, and as the tree that `a + a + …` builds leans left): the readers below recurse per level, and
    what they may do must not depend on the interpreter's recursion limit of the moment."""
    expr = _Parser(query).parse()
    deepest, pending = 0, [(expr, 1)]
    while pending:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        if isinstance(node, Node):
            pending.extend((arg, depth + 1) for arg in node.args)
    if deepest > MAX_DEPTH:
        raise PromQLError(f"nested too deeply to read (more than {MAX_DEPTH} levels)")
    return expr


def selectors(expr: Expr) -> Iterable[Selector]:
    if isinstance(expr, Selector):
        yield expr
        return
    for arg in expr.args:
        yield from selectors(arg)


def metric_names(query: str) -> list[str]:
    """Every metric name the query reads, in order, once."""
    names: list[str] = []
    for selector in selectors(parse(query)):
        names += [n for n in selector.names() if n not in names]
    return names


_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
    "^": operator.pow,
}


def _constant(expr: Expr) -> float | None:
    """The value of an expression of numbers alone (`1 - 1`, `-(2 ^ 3)`), else None."""
    if isinstance(expr, Selector):
        return None
    if expr.kind == "number":
        return expr.value
    if expr.kind == "unary":
        inner = _constant(expr.args[0])
        return None if inner is None else (-inner if expr.name == "-" else inner)
    if expr.kind == "binary" and expr.name in _ARITHMETIC:
        return _arithmetic(expr)
    return None


def _arithmetic(expr: Node) -> float | None:
    """A binary operator over two constants: its value, NaN where the operation fails (`1 / 0`)."""
    left, right = (_constant(a) for a in expr.args)
    if left is None or right is None:
        return None
    try:
        return _ARITHMETIC[expr.name](left, right)
    except (ArithmeticError, ValueError):
        return float("nan")


def can_be_live(expr: Expr, own: Callable[[Selector], bool]) -> bool:
    """Whether the expression can return a series that follows traffic when every selector `own` accepts is
    empty (by PromQL's operator semantics, see the module docstring)."""
    if isinstance(expr, Selector):
        return not own(expr)
    if expr.kind in ("number", "string"):
        return False
    if expr.kind == "call":
        return _call_can_be_live(expr, own)
    if expr.kind == "unary":
        return can_be_live(expr.args[0], own)
    return _binary_can_be_live(expr, own)


def _call_can_be_live(call: Node, own: Callable[[Selector], bool]) -> bool:
    if call.name in CONSTANT_FUNCTIONS:
        return False
    if call.name == "clamp_max" and len(call.args) == 2 and (_constant(call.args[1]) or 0) <= 0:
        return False  # never above 0: it can never pass an activation threshold
    return any(can_be_live(a, own) for a in call.args)


def _binary_can_be_live(expr: Node, own: Callable[[Selector], bool]) -> bool:
    left, right = expr.args
    if expr.name == "or":
        return can_be_live(left, own) or can_be_live(right, own)
    if expr.name == "unless":
        return can_be_live(left, own)
    constants = [_constant(side) for side in (left, right)]
    if _never_passes(expr.name, constants, (left, right), own):
        return False
    scalars = [c is not None or _is_scalar_call(side) for c, side in zip(constants, (left, right), strict=True)]
    if scalars[0] != scalars[1]:  # vector op scalar: the vector decides
        return can_be_live(right if scalars[0] else left, own)
    return can_be_live(left, own) and can_be_live(right, own)


def _never_passes(
    operator_name: str, constants: list[float | None], sides: tuple[Expr, Expr], own: Callable[[Selector], bool]
) -> bool:
    """Whether an arithmetic or comparison of `sides` (their `constants`, None where not constant) can never pass an
    activation threshold, whatever the series do."""
    if operator_name == "*" and 0 in constants:
        return True  # always 0
    if any(c is not None and math.isnan(c) for c in constants):
        return True  # NaN spreads through every arithmetic and comparison
    # `scalar(v)` of an empty vector is NaN (prometheus.io/docs/prometheus/latest/querying/functions/#scalar),
    # which then spreads: it is a scalar that needs its argument
    return any(
        isinstance(side, Node)
        and side.kind == "call"
        and side.name == "scalar"
        and not any(can_be_live(a, own) for a in side.args)
        for side in sides
    )


def _is_scalar_call(expr: Expr) -> bool:
    """`time()`, `pi()`, `scalar(v)`: scalars, which never empty a vector they meet."""
    return isinstance(expr, Node) and expr.kind == "call" and expr.name in ("time", "pi", "scalar")


def _literal_alternatives(pattern: str) -> list[str] | None:
    """`a|b` -> [a, b] when every alternative is a plain name; None for any other regular expression."""
    parts = pattern.split("|")
    return parts if all(re.fullmatch(r"[\w.:-]+", p) for p in parts) else None


def _matches(pattern: str, value: str) -> bool:
    """Whether a matcher's regular expression selects `value` (fully anchored, as Prometheus anchors it)."""
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return False


def owned_by(prefixes: tuple[str, ...], services: set[str]) -> Callable[[Selector], bool]:
    """A test of whether a selector reads only the model's own pods: a name only an inference server exports,
    or a `service`/`job` matcher naming the model's Services, or a `pod` matcher on its pods' names."""

    def own(selector: Selector) -> bool:
        names = selector.names()
        if prefixes and names and all(n.startswith(prefixes) for n in names):
            return True
        for label, op, value in selector.matchers:
            if label in ("service", "job") and op == "=" and value in services:
                return True
            alternatives = _literal_alternatives(value) if op == "=~" else None
            if label in ("service", "job") and alternatives and set(alternatives) <= services:
                return True
            # any other spelling that can select the model's Service (`(chat)`, `cha[t]`): a regular expression is
            # anchored and matches the whole value (RE2, as Prometheus compiles it)
            if label in ("service", "job") and op == "=~" and any(_matches(value, s) for s in services):
                return True
            # its pods by name, as kube-state-metrics (`pod`) and the DCGM exporter (`exported_pod`) label them
            pod_like = [f"{s}-{suffix}" for s in services for suffix in ("7d9f8b6c4d-x2x9z", "0")]
            if label in ("pod", "exported_pod") and (
                (op == "=" and any(value.startswith(f"{s}-") for s in services))
                or (op == "=~" and any(_matches(value, name) for name in pod_like))
            ):
                return True
        return False

    return own


def pod_only_series(query: str, prefixes: tuple[str, ...], services: set[str]) -> list[str]:
    """When the query cannot return a live series at zero replicas: the series it depends on that the model's
    own pods export (their names, or their selectors' text when nameless), else []."""
    expr = parse(query)
    own = owned_by(prefixes, services)
    if can_be_live(expr, own):
        return []
    found: list[str] = []
    for selector in selectors(expr):
        if own(selector):
            label = ", ".join(selector.names()) or "{" + ",".join(f"{k}{o}{v!r}" for k, o, v in selector.matchers) + "}"
            found += [label] if label not in found else []
    return found or ["no series at all (a constant)"]
