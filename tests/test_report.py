"""`rightsize report`: the Pareto plot and report.md/report.html, built from a recorded runs.jsonl."""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

from rightsize.cli import cli
from rightsize.plots import (DPI, HEIGHT_IN, WIDTH_IN, ParetoView, Point, draw_pareto, label_boxes, save_pareto,
                             text_box)
from rightsize.report import build_report, pareto_view

FIXTURE = Path(__file__).parent / "fixtures" / "runs"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return build_report(FIXTURE, out, region="de", queries_per_day=10_000, days=365)


# ------------------------------------------------------------------------------------------ the plot


def test_plot_files_are_written_at_the_right_size(built):
    png, svg = built.plots
    assert png.name == "pareto.png" and svg.name == "pareto.svg"
    assert png.stat().st_size > 20_000
    assert png_size(png) == (int(WIDTH_IN * DPI), int(HEIGHT_IN * DPI))
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and root.get("width") == f"{WIDTH_IN * 72:g}pt"


def test_plot_shows_what_the_policy_decided(built):
    view = pareto_view(built.recommendation)
    by_name = {p.name: p for p in view.points}
    assert set(by_name) == {"tfidf", "minilm-knn", "minilm-probe", "mpnet-knn", "mpnet-probe"}
    assert view.recommended == by_name["minilm-probe"].key and view.largest == by_name["mpnet-probe"].key
    assert {p.name for p in view.points if p.key in view.front} == {"tfidf", "minilm-knn", "minilm-probe",
                                                                      "mpnet-probe"}
    assert view.threshold == pytest.approx(0.93 - 0.02)  # within 0.02 of the best: drawn at best - d
    assert "paired bootstrap" in view.threshold_label
    assert "estimate" in view.caption and "not a measurement" in view.caption
    assert "12 W per core" in pareto_view(built.recommendation, watts_per_core=12.0).caption


def test_labels_name_the_recommended_and_largest_and_never_overlap(built):
    fig = draw_pareto(pareto_view(built.recommendation))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "minilm-probe (recommended)" in texts and "mpnet-probe (largest)" in texts
    assert_no_overlap(label_boxes(fig))


def test_crowded_plot_keeps_labels_apart():
    # 40 configs on a near-diagonal front: many labels compete for the same space.
    points = [Point(key=f"k{i}", name=f"config-{i:02d}", x=1e-5 * 1.25 ** i, y=0.6 + 0.008 * i, lo=0.58 + 0.008 * i,
                    hi=0.62 + 0.008 * i, adequate=i > 30) for i in range(40)]
    view = ParetoView(points=points, metric="accuracy", front=[p.key for p in points], recommended="k31",
                      largest="k39", threshold=0.84, threshold_label="target")
    fig = draw_pareto(view)
    texts = [" ".join(t.get_text().split()) for t in fig.axes[0].texts]  # a tag may wrap onto its own line
    assert "config-31 (recommended)" in texts and "config-39 (largest)" in texts
    assert len(texts) > 10
    assert_no_overlap(label_boxes(fig))


def test_configs_on_the_same_spot_share_one_label():
    a = Point(key="a", name="big-probe", x=1.23, y=0.922, lo=0.906, hi=0.938, adequate=True)
    b = Point(key="b", name="big-knn", x=1.24, y=0.9225, lo=0.906, hi=0.938, adequate=False)
    c = Point(key="c", name="small", x=0.15, y=0.927, lo=0.91, hi=0.943, adequate=True)
    fig = draw_pareto(ParetoView(points=[a, b, c], metric="accuracy", front=["c"], recommended="c", largest="a",
                                 extra_labels=["b"]))
    texts = sorted(" ".join(t.get_text().split()) for t in fig.axes[0].texts)
    assert texts == ["big-probe (largest) big-knn", "small (recommended)"]
    assert_no_overlap(label_boxes(fig))


# The full ladder on TREC-6 (--limit 50): 13 configs from 2 mJ to 29 J, several stacked in columns.
FULL_LADDER = [
    ("tfidf", 0.001841, 0.88, 0.78, 0.96), ("minilm-probe-onnx-int8", 0.03973, 0.88, 0.78, 0.96),
    ("minilm-l3-probe", 0.1788, 0.76, 0.64, 0.88), ("minilm-l3-knn", 0.1813, 0.62, 0.48, 0.74),
    ("minilm-probe", 0.4005, 0.88, 0.78, 0.96), ("minilm-knn", 0.4021, 0.72, 0.60, 0.84),
    ("mpnet-knn", 0.9509, 0.80, 0.68, 0.90), ("mpnet-probe", 0.9511, 0.92, 0.84, 0.98),
    ("embeddinggemma-probe", 1.723, 0.92, 0.84, 0.98), ("embeddinggemma-knn", 1.725, 0.82, 0.70, 0.92),
    ("smollm2-fewshot", 6.055, 0.38, 0.24, 0.50), ("gemma3-270m-fewshot", 6.937, 0.44, 0.30, 0.56),
    ("qwen2.5-coder-1.5b-fewshot", 29.18, 0.64, 0.50, 0.76),
]


def test_every_rung_of_a_shipped_ladder_is_named_on_its_plot():
    from rightsize.ladder import load_ladder
    from rightsize.report_document import LABEL_ALL_UP_TO

    ladders = sorted((Path(__file__).parents[1] / "rightsize" / "ladders").glob("*.yaml"))
    assert ladders
    for path in ladders:
        assert len(load_ladder(path).rungs) <= LABEL_ALL_UP_TO, path.name


def test_leader_lines_cross_no_other_label():
    points = [Point(key=name, name=name, x=x, y=y, lo=lo, hi=hi, adequate=name == "mpnet-probe")
              for name, x, y, lo, hi in FULL_LADDER]
    view = ParetoView(points=points, metric="accuracy", front=["tfidf", "mpnet-probe"], recommended="mpnet-probe",
                      largest="qwen2.5-coder-1.5b-fewshot", threshold=0.9, threshold_label="target",
                      extra_labels=[p.key for p in points])
    fig = draw_pareto(view)
    renderer = fig.canvas.get_renderer()
    texts = fig.axes[0].texts
    assert len(texts) >= 12
    leaders = [t for t in texts if t.arrow_patch is not None]
    assert leaders
    for t in leaders:
        # The drawn line, sampled along its path in display space, touches no other label's box.
        line = t.arrow_patch.get_path().interpolated(50).vertices
        assert np.ptp(line[:, 0]) > 5, f"the leader of {t.get_text()!r} runs along its own interval bar"
        for other in texts:
            if other is not t:
                box = text_box(other, renderer)
                inside = [(x, y) for x, y in line if box.x0 < x < box.x1 and box.y0 < y < box.y1]
                assert not inside, f"the leader of {t.get_text()!r} crosses {other.get_text()!r}"
    assert_no_overlap(label_boxes(fig))


def assert_no_overlap(boxes) -> None:
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), f"labels overlap: {a} {b}"


def test_plot_rejects_nothing_to_draw(tmp_path):
    with pytest.raises(ValueError, match="no evaluated config"):
        save_pareto(ParetoView(points=[], metric="accuracy"), tmp_path)


# ------------------------------------------------------------------------------------------ the report


def test_markdown_has_recommendation_rule_table_savings_lifetime_environment(built):
    md = built.markdown.read_text(encoding="utf-8")
    assert "Deploy **minilm-probe**" in md
    assert "Why it is adequate (within rule): paired difference to the best (mpnet-probe" in md
    assert "**81% less energy per query**" in md
    assert "![" in md and "](pareto.png)" in md
    table = [line for line in md.splitlines() if line.startswith("| `")]
    assert [re.match(r"\| `([^`]+)`", row).group(1) for row in table[:5]] == [
        "tfidf", "minilm-knn", "minilm-probe", "mpnet-knn", "mpnet-probe"]  # by J/query
    assert "| `minilm-probe` | probe | all-MiniLM-L6-v2 | - | 0.9250 [" in md
    assert "and gives up 0.0050 accuracy on validation." in md
    assert "recommended, front" in md and "largest, front" in md
    assert "`smollm-zeroshot` failed in load: MemoryError" in md
    assert "1 record(s) scored on other examples" in md
    assert "10,000 queries/day for 365 days" in md and "PUE 1.2" in md and "region `de` at" in md
    assert "| **saved** |" in md
    assert "Held-out test split (300 examples)" in md
    assert "host `ci-runner`, AMD EPYC 7763 × 2 CPUs" in md and "torch 2.13.0+cpu" in md
    assert "estimate (process CPU time × 12 W per core) — an estimate, not a measurement" in md


def test_terminal_and_report_print_the_same_grams(built):
    from rightsize.tables import human_grams

    assert [human_grams(g) for g in (None, 2.5e6, 1234.5, 12.0, 0.5, 1e-4)] == \
        ["-", "2.5 t", "1.23 kg", "12 g", "500 mg", "0.0001 g"]
    rec = built.recommendation
    chosen, largest = (human_grams(rec.chosen["lifetime_carbon_g"]), human_grams(rec.largest["lifetime_carbon_g"]))
    md = built.markdown.read_text(encoding="utf-8")
    assert f"| {chosen} |" in md and f"| {largest} |" in md
    result = run("recommend", FIXTURE, "--no-confirm", "--region", "de")  # the assumptions `built` was made with
    assert f"carbon     {chosen} vs {largest} CO2e" in result.output, result.output


def test_html_is_self_contained(built):
    page = built.html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "data:image/png;base64," in page
    # Nothing is fetched: no scripts, no stylesheets or fonts by link, no remote sources.
    for fetched in ("<script", "<link", "@import", "url(", 'src="http', "src='http"):
        assert fetched not in page
    assert "<strong>minilm-probe</strong>" in page and "<table>" in page
    assert len(page) < 400_000


def test_svg_only_is_inlined_in_the_html(tmp_path):
    files = build_report(FIXTURE, tmp_path, formats=["svg"])
    assert [p.name for p in files.plots] == ["pareto.svg"] and not (tmp_path / "pareto.png").exists()
    page = files.html.read_text(encoding="utf-8")
    assert "<svg" in page and "<?xml" not in page and "data:image" not in page
    assert "](pareto.svg)" in files.markdown.read_text(encoding="utf-8")


def test_without_a_region_no_carbon_is_claimed(tmp_path):
    md = build_report(FIXTURE, tmp_path, formats=["png"]).markdown.read_text(encoding="utf-8")
    assert "no region given, so no carbon figure" in md
    assert "| **saved** | 8.03 kJ | 0.00223 | - |" in md


def test_report_names_the_study_for_optuna_dashboard(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    (run_dir / "study.db").write_bytes(b"")
    result = run("report", run_dir, "--format", "png")
    assert result.exit_code == 0, result.output
    assert f"optuna-dashboard sqlite:///{(run_dir / 'study.db').resolve()}" in result.output
    assert "pip install optuna-dashboard" in result.output
    assert "optuna-dashboard sqlite:///" in (run_dir / "report.md").read_text()


# ------------------------------------------------------------------------------------------ the command


def test_cli_report_prints_where_files_went(tmp_path):
    result = run("report", FIXTURE, "--out", tmp_path / "r", "--region", "fr", "--days", "730")
    assert result.exit_code == 0, result.output
    for name in ("pareto.png", "pareto.svg", "report.md", "report.html"):
        assert f"wrote {tmp_path / 'r' / name}" in result.output
    assert "recommended: minilm-probe (450 µJ/query)" in result.output
    assert not (FIXTURE / "report.md").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--format", "pdf"], "--format pdf"),
    (["--region", "atlantis"], "atlantis"),
])
def test_cli_bad_input(tmp_path, args, fragment):
    result = run("report", FIXTURE, "--out", tmp_path, *args)
    assert result.exit_code == 2 and fragment in result.output and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_report_on_a_folder_without_records(tmp_path):
    result = run("report", tmp_path)
    assert result.exit_code == 2 and "holds no runs.jsonl" in result.output
    (tmp_path / "runs.jsonl").write_text(json.dumps({"rung": "x", "status": "failed", "split": "validation"}) + "\n")
    result = run("report", tmp_path)
    assert result.exit_code == 2 and "no successful validation records" in result.output


def test_failures_fixed_by_a_later_run_are_not_reported():
    from rightsize.records import Record
    from rightsize.report import unresolved_failures

    records = [
        Record(rung="a", key="k1", status="failed", error="E1"),
        Record(rung="a", key="k2", status="ok"),          # the rung run again with another knob
        Record(rung="b", key="k3", status="failed", error="E2"),
        Record(rung="b-again", key="k3", status="ok"),    # the same config under another name
        Record(rung="c", key="k4", status="ok"),
        Record(rung="c", key="k4", status="failed", error="E3"),  # broke after it worked: news
        Record(rung="d", key="k5", status="pruned"),
    ]
    assert [(r.rung, r.error) for r in unresolved_failures(records)] == [("c", "E3")]
