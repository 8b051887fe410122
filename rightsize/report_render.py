"""The report's renderers: one document (:mod:`rightsize.report_document`) as Markdown and as a
self-contained HTML page (inline CSS, plots embedded: base64 PNG or the SVG itself), so the two say
the same thing and the HTML opens offline. Text from data is escaped by each renderer.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Sequence

from rightsize import markdown as md
from rightsize.report_document import Block

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def to_markdown(doc: list[Block]) -> str:
    """Markdown of the document: its **bold** and `code` markup kept, everything else escaped."""
    out = []
    for block in doc:
        kind = block[0]
        if kind == "h1":
            out.append(f"# {_md_inline(block[1])}")
        elif kind == "h2":
            out.append(f"## {_md_inline(block[1])}")
        elif kind == "p":
            out.append(_md_inline(block[1]))
        elif kind == "ul":
            out.append("\n".join(f"- {_md_inline(item)}" for item in block[1]))
        elif kind == "code":
            fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", block[1])), default=0))
            out.append(f"{fence}\n{block[1]}\n{fence}")
        elif kind == "plot":
            out.append(f"![{md.text(block[1], brackets=True)}]({block[2]})")
        elif kind == "table":
            _, headers, rows, align = block
            cells = lambda row: "| " + " | ".join(_md_inline(str(c), table=True) for c in row) + " |"  # noqa: E731
            rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
            out.append("\n".join([cells(headers), rule, *map(cells, rows)]))
    return "\n\n".join(out) + "\n"


_MARKUP = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*")


def _md_inline(text: str, table: bool = False) -> str:
    """A block's text in Markdown: its `code` and **bold** as such, the rest escaped (rightsize.markdown)."""
    out, pos = [], 0
    for m in _MARKUP.finditer(text):
        out.append(md.text(text[pos:m.start()]))
        out.append(md.code(m.group(1), table) if m.group(1) is not None else f"**{_md_inline(m.group(2), table)}**")
        pos = m.end()
    out.append(md.text(text[pos:]))
    return "".join(out)


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;max-width:1200px;margin:2em auto;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:.5em 0;display:block;overflow-x:auto}
th,td{padding:4px 8px;border-bottom:1px solid #e5e5e5;text-align:left;vertical-align:top}th{background:#f5f5f5}
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td:first-child,td code{white-space:nowrap}
code,pre{font:13px ui-monospace,Menlo,Consolas,monospace;background:#f3f3f3;border-radius:3px;padding:1px 4px}
pre{padding:8px;overflow-x:auto}figure{margin:1em 0}img,svg{max-width:100%;height:auto}
""".strip()


def _inline(text: str) -> str:
    escaped = html.escape(str(text), quote=False)
    return _CODE.sub(r"<code>\1</code>", _BOLD.sub(r"<strong>\1</strong>", escaped))


def to_html(doc: list[Block], *, title: str, plots: Sequence[Path]) -> str:
    """A standalone page: inline CSS and the plots embedded (PNG as base64, SVG inline); no links out."""
    by_name = {p.name: p for p in plots}
    body = []
    for block in doc:
        kind = block[0]
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{_inline(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline(block[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "code":
            body.append(f"<pre><code>{html.escape(block[1])}</code></pre>")
        elif kind == "plot":
            body.append(f"<figure>{_embedded(by_name[block[2]], block[1])}</figure>")
        elif kind == "table":
            _, headers, rows, align = block
            cls = lambda i: ' class="r"' if align[i] == "r" else ""  # noqa: E731
            head = "".join(f"<th{cls(i)}>{_inline(h)}</th>" for i, h in enumerate(headers))
            trs = "".join("<tr>" + "".join(f"<td{cls(i)}>{_inline(c)}</td>" for i, c in enumerate(row)) + "</tr>"
                          for row in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _embedded(plot: Path, alt: str) -> str:
    if plot.suffix == ".svg":
        svg = plot.read_text(encoding="utf-8")
        return svg[svg.index("<svg"):]  # drop the XML prolog and doctype: not allowed inside HTML
    data = base64.b64encode(plot.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
