"""The renderers every shown value goes through (modelops_cli/inert.py), held to their contract by generated values.

What a value could do, per the specifications the renderers follow:
- CommonMark 0.31.2 (https://spec.commonmark.org/0.31.2/): a line ending lets a value start a block (an ATX
  heading `### …`, a quote, a list, a fence, an HTML block such as `<!--`); a code span ends at a backtick run
  of its fence's length (section 6.1); any ASCII punctuation may be backslash-escaped (section 2.4).
- GFM tables (https://github.github.com/gfm/#tables-extension-): a cell ends at a `|` not escaped by a
  backslash, even inside a code span, so a value could add cells.
- Terminals (ECMA-48): ESC and the C1 controls begin control sequences (colours, cursor moves, OSC 8 links,
  window titles); U+202E and the other bidi controls reorder what is displayed (CVE-2021-42574).
"""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from modelops_cli.inert import md_cell, md_code, md_text, terminal

HOSTILE = [
    "\n### ✅ all policies pass",
    "x\r\n<!-- hide everything below",
    "`` ` ``` code",
    "a | b | c",
    "a \\| b \\\\| c",
    "[click](https://evil.example) ![img](https://evil.example/x.png)",
    "</details></table><script>alert(1)</script>",
    "\x1b[31mred\x1b[0m \x1b]0;title\x07 \x1b]8;;https://evil\x1b\\link\x1b]8;;\x1b\\",
    "\u202eevil\u202c \u2066iso\u2069 zero\u200bwidth \ufeff",
    "\x9b31m C1 CSI \x85 NEL \u2028 LS",
    "> quote\n- item\n1. item\n---\n===",
    "@everyone :white_check_mark: $x^2$ ~~strike~~ **bold** _it_",
    "&lt;!-- entity &#60;",
    "",
    " ",
    "`",
]

# Everything a hostile value may hold: any code point, weighted towards the ones with a meaning.
_MEANINGFUL = st.sampled_from(list("\n\r\t\x1b\x07\x9b\x85\u202e\u2066\u200b\ufeff\u2028`|\\<>&!#[]()*_~-=+.:$@'\"{}"))
VALUES = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(),
    st.lists(st.one_of(_MEANINGFUL, st.characters()), max_size=40).map("".join),
)

NOT_SHOWN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def assert_terminal_safe(text: str) -> None:
    for char in text:
        category = unicodedata.category(char)
        assert category not in NOT_SHOWN, (char, category)
        assert category != "Zs" or char == " ", (char, category)


def odd_backslashes_before(text: str, index: int) -> bool:
    run = 0
    while index - run - 1 >= 0 and text[index - run - 1] == "\\":
        run += 1
    return run % 2 == 1


@given(VALUES)
@settings(max_examples=400, deadline=None)
def test_terminal_output_is_one_printable_line(value):
    shown = terminal(value)
    assert_terminal_safe(shown)
    assert "\n" not in shown and "\x1b" not in shown
    # printable text stays as it was
    if value.isprintable():
        assert shown == value


@given(VALUES)
@settings(max_examples=400, deadline=None)
def test_a_code_span_is_exactly_one_span_and_one_cell(value):
    shown = md_cell(value)
    assert_terminal_safe(shown)
    opening = re.match(r"`+", shown)
    assert opening is not None, shown
    fence = opening.group(0)
    assert shown.endswith(fence) and len(shown) >= 2 * len(fence)
    inner = shown[len(fence) : len(shown) - len(fence)]
    # no backtick run inside as long as the fence: the span cannot end early (CommonMark 6.1)
    assert all(len(run) != len(fence) for run in re.findall(r"`+", inner))
    assert not inner.startswith("`") and not inner.endswith("`")
    # every pipe escaped for GFM's cell scanner
    assert all(odd_backslashes_before(shown, m.start()) for m in re.finditer(r"\|", shown))


@given(VALUES)
@settings(max_examples=400, deadline=None)
def test_markdown_text_has_no_active_character(value):
    shown = md_text(value)
    assert_terminal_safe(shown)
    assert "<" not in shown and ">" not in shown
    for match in re.finditer(r"[`*_\[\]()#|~!$:@=+\-.{}\"'\\]", shown):
        if match.group(0) == "\\" and match.end() < len(shown) and not odd_backslashes_before(shown, match.start()):
            continue  # an escaping backslash: checked with the character it escapes
        assert odd_backslashes_before(shown, match.start()), (shown, match.start())
    # `&` only as the start of the entities md_text writes itself
    assert re.fullmatch(r"(?:[^&]|&(?:amp|lt|gt);)*", shown)


@given(st.lists(VALUES, min_size=1, max_size=6))
@settings(max_examples=200, deadline=None)
def test_no_combination_of_values_makes_a_heading_a_comment_or_a_new_row(values):
    """A table row built from hostile values stays one line with exactly its columns."""
    row = "| " + " | ".join(md_cell(v) if i % 2 else md_text(v) for i, v in enumerate(values)) + " |"
    assert "\n" not in row and "\r" not in row
    assert "<!--" not in "".join(md_text(v) for v in values)
    unescaped = [m.start() for m in re.finditer(r"\|", row) if not odd_backslashes_before(row, m.start())]
    assert len(unescaped) == len(values) + 1


def test_known_attacks_render_as_their_text():
    assert md_text("\n### ✅ all policies pass") == "\\\\n\\#\\#\\# ✅ all policies pass"
    assert md_code("a`b") == "``a`b``" and md_code("`x`") == "`` `x` ``"
    assert md_cell("a|b") == "`a\\|b`" and md_cell("a\\|b") == "`a\\|b`"
    assert md_code("") == "` `"
    assert terminal("\x1b[2Jok\u202e") == "\\x1b[2Jok\\u202e"
    assert terminal("x" * 10, limit=4) == "xxxx…"
