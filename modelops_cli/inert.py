"""Values from elsewhere (a stack file, a plan, a policy config, an HTTP answer) made inert where they are shown.

Every verb that prints or writes such a value passes it through one of these, so a value can only ever be
text: never a terminal control sequence, a Markdown heading, an HTML comment, a link, or the end of the
code span, table cell or `<details>` block it sits in.

- `terminal`: one line for a terminal or a log. C0/C1 controls (ESC and so every ANSI/OSC sequence,
  newlines, carriage returns, DEL), Unicode format characters (zero-width and bidi controls such as U+202E,
  which reorder what a reader sees: "Trojan Source", CVE-2021-42574), line/paragraph separators and
  unassigned or private code points are shown as `\\xNN`/`\\uNNNN` escapes: `str.isprintable` is exactly
  "not in categories Cc, Cf, Cs, Co, Cn, Zl, Zp, Zs other than the space". Printable Unicode stays.
- `md_code`: a GitHub-flavoured Markdown code span. Inside one, CommonMark reads no emphasis, link, raw HTML,
  entity or mention; what can end it is a backtick run as long as its fence (so the fence is longer than any
  run inside), a line ending (none survive `terminal`) and, in a table row, an unescaped `|` (GFM splits cells
  before it parses code spans: https://github.github.com/gfm/#tables-extension-, "include a pipe in a cell's
  content by escaping it, including inside other inline spans").
- `md_text`: inline Markdown text. Every ASCII punctuation character CommonMark or GitHub gives a meaning to
  is backslash-escaped (https://spec.commonmark.org/0.31.2/#backslash-escapes: any ASCII punctuation may be);
  `<`, `>` and `&` become entities, so no raw HTML (`<!--`, `</details>`) and no entity survives. With no line
  ending left, nothing can start a block (a heading, quote, list, fence or HTML block) either.
"""

from __future__ import annotations

import re
from typing import Any

_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MD_PUNCTUATION = set("\\`*_{}[]()#+-.!|~$:@=\"'%")
"""Escaped in `md_text`: emphasis, code, links and images, headings, lists, tables, strikethrough, GitHub's
math (`$`), emoji shortcodes (`:`), mentions (`@`) and setext underlines (`=`), with the quotes for attributes."""


def _escape(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def terminal(value: Any, limit: int | None = None) -> str:
    """`value` as one inert line of printable text, at most `limit` characters (then "…")."""
    text = value if isinstance(value, str) else str(value)
    shown = "".join(c if c.isprintable() else _escape(c) for c in text)
    return shown if limit is None or len(shown) <= limit else shown[:limit] + "…"


def _escape_cell_pipes(text: str) -> str:
    """Every `|` preceded by an odd run of backslashes: GFM's cell scanner reads `\\\\` as an escaped
    backslash, so the `|` after an even run (none included) would end the cell."""
    return re.sub(r"(\\*)\|", lambda m: m.group(1) + ("" if len(m.group(1)) % 2 else "\\") + "|", text)


def md_code(value: Any, limit: int | None = None, cell: bool = True) -> str:
    """`value` as one Markdown code span; `cell` when it sits in a table row (pipes escaped)."""
    text = terminal(value, limit)
    if cell:
        text = _escape_cell_pipes(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    # a blank span keeps its spaces (CommonMark strips them only around other content); a value starting or
    # ending with a backtick is padded with a space, which CommonMark strips again, so it does not join the fence
    if not text.strip(" "):
        return f"{fence}{text or ' '}{fence}"
    pad = " " if text[0] == "`" or text[-1] == "`" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_text(value: Any, limit: int | None = None) -> str:
    """`value` as inline Markdown that renders as exactly its (terminal-safe) text; safe in a table cell."""
    text = terminal(value, limit)
    return "".join(_ENTITIES.get(c) or (f"\\{c}" if c in _MD_PUNCTUATION else c) for c in text)


def md_cell(value: Any, limit: int | None = None) -> str:
    """A table cell's value: a code span (identifiers, paths, values a plan holds)."""
    return md_code(value, limit, cell=True)


def terminal_lines(text: str) -> str:
    """A multi-line report made of lines composed elsewhere (the program's pre-flight report, shared with
    `pulumi up`, which cannot import this module): each line through `terminal`, the line structure kept."""
    return "\n".join(terminal(line) for line in text.splitlines())


_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")


def without_credentials(text: Any) -> str:
    """`text` with the `user:password@` of every URL in it removed: error messages quote the URLs they failed
    on (botocore's "Could not connect to the endpoint URL: ..."), credentials included."""
    return _URL_CREDENTIALS.sub(r"\1", text if isinstance(text, str) else str(text))
