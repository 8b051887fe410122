"""Markdown from data, escaped: what a task, rung, label or error says is shown as its characters,
never read as HTML, a link or image, emphasis, a code span or a table cell break.

Both functions give one line (line breaks become spaces), so a value never starts a block of its own.
The escaping is as light as keeps the raw file readable: ``[`` stays as is (a link needs ``](``,
``][`` or ``]:``, so only such a ``]`` is escaped), and ``_`` only where it could open or close
emphasis (not inside a word such as ``macro_f1``).
"""

from __future__ import annotations

import re
from typing import Any

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_SPECIAL = re.compile(r"[&<>]|[\\`*~|]|\](?=[(\[:])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_SPECIAL_AND_BRACKETS = re.compile(_SPECIAL.pattern + r"|[\[\]]")
_BREAKS = re.compile(r"\s*[\r\n]+\s*")


def _one_line(value: Any) -> str:
    return _BREAKS.sub(" ", str(value))


def text(value: Any, brackets: bool = False) -> str:
    """``value`` as literal inline Markdown text (safe in a paragraph, a list item or a table cell);
    ``brackets``: every ``[`` and ``]`` escaped too (for the text of a link or an image)."""
    special = _SPECIAL_AND_BRACKETS if brackets else _SPECIAL
    return special.sub(lambda m: _ENTITIES.get(m.group(), "\\" + m.group()), _one_line(value))


def code(value: Any, table: bool = False) -> str:
    """``value`` as a code span that holds it whatever its backticks; ``table``: it stands in a table
    cell, where GitHub needs each ``|`` escaped even inside code."""
    s = _one_line(value)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s[:1] in ("`", " ") or s[-1:] in ("`", " ") else ""
    if table:
        s = s.replace("|", "\\|")
    return f"{fence}{pad}{s}{pad}{fence}"
