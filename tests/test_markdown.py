"""Names, labels and errors from data are escaped in every Markdown output (report.md, check's summary):
rendered by a CommonMark renderer with raw HTML on, they show as the characters they are."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest

from rightsize import markdown as md
from rightsize.check import Current, check, to_markdown
from rightsize.report import build_report
from rightsize.results import RunLog

FIXTURE = Path(__file__).parent / "fixtures" / "runs"
RUNG = "tf<script>alert(1)</script>|*x*_y_[a](javascript:b)"
TICKED = "knn`<script>y</script>`|`x"  # a backtick inside a name the report shows as code: inert, if not verbatim
TASK = "<img src=x onerror=alert(1)> | # task *"
LABEL = "<b>bold</b>|lbl"
ERROR = "boom <script>x</script> | **not bold** `tick` [l](http://e.vil)\n# heading ![i](http://e.vil/p.png)"

markdown_it = pytest.importorskip("markdown_it")


def render(text: str) -> str:
    """HTML as GitHub-like renderers make it: CommonMark with raw HTML allowed, plus tables."""
    return markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(text)


def assert_inert(rendered: str) -> None:
    """No element came from data: no script, image (but the report's plot), link or raw HTML tag; every
    table row is whole."""
    rendered = re.sub(r'<img src="pareto\.svg" alt="[^"<]*" />', "", rendered)
    for tag in ("<script", "<img", "<a ", "<b>", "<em>"):
        assert tag not in rendered, tag
    assert rendered.count("<h1") <= 1  # the report's title; a line break in data would add one
    for table in re.findall(r"<table>.*?</table>", rendered, flags=re.S):
        width = len(re.findall(r"<th[ >]", table))
        assert all(len(re.findall(r"<td[ >]", row)) == width for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:])


def text_of(rendered: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", rendered))


@pytest.fixture(scope="module")
def nasty_run(tmp_path_factory) -> Path:
    """The fixture run with a task, a rung, a label and an error full of HTML and Markdown syntax."""
    run = tmp_path_factory.mktemp("nasty")
    shutil.copy(FIXTURE / "environment.jsonl", run)
    records = [json.loads(line) for line in (FIXTURE / "runs.jsonl").read_text().splitlines()]
    for r in records:
        r["task"] = TASK
        r["label_names"] = [LABEL] + r.get("label_names", [])[1:]
        r["rung"] = {"tfidf": RUNG, "minilm-knn": TICKED}.get(r["rung"], r["rung"])
        if r.get("status") == "failed":
            r["error"] = ERROR
    (run / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def test_text_and_code_are_shown_as_their_characters():
    value = "a<b>|*c* `d` [e](f) _g_ snake_case & \\ ~h~\nnext"
    rendered = render(f"| x |\n|---|\n| {md.text(value)} {md.code(value, table=True)} |\n\n{md.text(value)}")
    assert_inert(rendered)
    shown = text_of(rendered)
    assert shown.count(value.replace("\n", " ")) == 3, shown
    assert md.text("macro_f1 [0.91, 0.95]") == "macro_f1 [0.91, 0.95]"  # readable where nothing is at stake
    assert md.code("a`b") == "``a`b``" and md.code("`x") == "`` `x ``"


def test_report_markdown_escapes_names_labels_and_errors(nasty_run, tmp_path):
    files = build_report(nasty_run, tmp_path, formats=["svg"])
    text = files.markdown.read_text(encoding="utf-8")
    rendered = render(text)
    assert rendered.count('<img src="pareto.svg"') == 1  # the plot, its alt text escaped
    assert_inert(rendered)
    shown = text_of(rendered)
    assert f"rightsize report — {TASK}" in shown and RUNG in shown
    # (the report quotes an error's backticks as '; its ** stay the document's bold: both inert)
    assert "boom <script>x</script> | not bold 'tick' [l](http://e.vil) # heading ![i](http://e.vil/p.png)" in shown
    page = files.html.read_text(encoding="utf-8")  # the HTML report escapes as it did
    assert "<script" not in page and "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_check_markdown_escapes_names_and_errors(nasty_run):
    records = RunLog(nasty_run, create=False).records()
    for current in (RUNG, "smollm-zeroshot"):  # an adequate config, and one whose error is shown
        text = to_markdown(check(records, Current(current)))
        rendered = render(text)
        assert_inert(rendered)
        shown = text_of(rendered)
        assert TASK in shown and current in shown
    assert "boom <script>x</script> | **not bold** `tick`" in shown
