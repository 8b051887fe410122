"""recommend, report and check with --regions, --heat-reuse, --intensity-profile, --window and
--traffic-profile: the figures through the CLI, the report's two charts, and bad input as one line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from rightsize import carbon
from rightsize import footprint as F
from rightsize.cli import cli
from rightsize.results import RunLog

FIXTURE = Path(__file__).parent / "fixtures" / "runs"
KWH = F.JOULES_PER_KWH


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.output}"
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in: {lines[0]}"


def night_profile(tmp_path: Path) -> Path:
    """400 g/kWh all day but 100 from 02:00 to 06:00 UTC."""
    path = tmp_path / "hours.csv"
    path.write_text("hour,g_per_kwh\n" + "".join(f"{h},{100 if 2 <= h < 6 else 400}\n" for h in range(24)))
    return path


def test_recommend_json_carries_each_figure_with_unit_and_assumptions(tmp_path):
    result = invoke("recommend", FIXTURE, "--no-confirm", "--json", "--regions", "pl,fr,de", "--pue", "1.1",
                    "--heat-reuse", "0.3", "--intensity-profile", night_profile(tmp_path),
                    "--window", "2026-12-03T00:00Z/2026-12-03T12:00Z")
    doc = json.loads(result.output)
    fp, rec = doc["footprint"], doc["chosen"]
    # Regions sorted cleanest first, each the lifetime IT energy x PUE x that grid's intensity.
    grids = [carbon.intensity(r) for r in ("pl", "fr", "de")]
    assert [r["region"] for r in fp["regions"]] == [g.region for g in sorted(grids, key=lambda g: g.g_per_kwh)]
    fr = next(r for r in fp["regions"] if r["region"] == "fr")
    expected = rec["lifetime_joules"] / KWH * 1.1 * carbon.intensity("fr").g_per_kwh
    assert fr["lifetime_carbon"]["recommended"] == {"value": pytest.approx(expected), "unit": "gCO2e",
                                                   "assumptions": {"pue": 1.1, "region": "fr"}}
    # The facility: IT x 1.1, 30% of that reusable, ERE = 1.1 x 0.7.
    e = fp["facility"]["recommended"]
    assert e["facility"]["value"] == pytest.approx(e["it"]["value"] * 1.1) and e["facility"]["unit"] == "kWh"
    assert e["reused_heat"]["value"] == pytest.approx(e["it"]["value"] * 1.1 * 0.3)
    assert e["ere"]["value"] == pytest.approx(0.77)
    assert carbon.attribution() in fp["attribution"]
    # Each fit is a one-time job: its best start is in the clean night, 75% cleaner than midnight.
    fits = [s for s in fp["shifts"] if s["job"].startswith("fit of")]
    assert fits and all(s["best_start"].startswith("2026-12-03T02:") for s in fits)
    assert all(s["saved"]["assumptions"]["saved_percent"] == pytest.approx(75.0) for s in fits)
    # Flat traffic: the daily mean intensity, (4 x 100 + 20 x 400) / 24 = 350 g/kWh.
    assert fp["serving"]["intensity"]["value"] == pytest.approx(350.0)


def test_traffic_profile_weighs_serving_by_the_hours(tmp_path):
    traffic = tmp_path / "traffic.csv"
    traffic.write_text("hour,weight\n" + "".join(f"{h},{1 if 2 <= h < 6 else 0}\n" for h in range(24)))
    result = invoke("recommend", FIXTURE, "--no-confirm", "--json", "--intensity-profile", night_profile(tmp_path),
                    "--traffic-profile", traffic)
    fp = json.loads(result.output)["footprint"]
    assert fp["serving"]["intensity"]["value"] == pytest.approx(100.0)
    assert fp["serving"]["intensity"]["assumptions"]["weighting"] == "traffic profile"


def test_defaults_keep_pue_1_2_and_no_reuse():
    doc = json.loads(invoke("recommend", FIXTURE, "--no-confirm", "--json").output)
    assert doc["footprint"]["assumptions"]["pue"] == 1.2 and doc["footprint"]["assumptions"]["heat_reuse"] == 0.0
    assert doc["footprint"]["regions"] == [] and doc["footprint"]["shifts"] == []
    assert doc["footprint"]["facility"]["recommended"]["ere"]["value"] == pytest.approx(1.2)


def test_a_search_folder_shifts_the_search_itself(tmp_path):
    run = RunLog(tmp_path / "run")
    for r in RunLog(FIXTURE, create=False).records():
        run.append(replace(r, search={"study": "s", "trial": 0, "searched": {}}))
    (tmp_path / "run" / "environment.jsonl").write_text((FIXTURE / "environment.jsonl").read_text())
    result = invoke("recommend", tmp_path / "run", "--no-confirm", "--json", "--intensity-profile",
                    night_profile(tmp_path), "--window", "2026-12-03T00:00Z/2026-12-03T12:00Z")
    shifts = {s["job"]: s for s in json.loads(result.output)["footprint"]["shifts"]}
    records = RunLog(FIXTURE, create=False).records()
    spent = sum(sum((r.joules_spent or r.joules).values()) for r in records if r.status in ("ok", "pruned"))
    assert shifts["search"]["it_energy"]["value"] == pytest.approx(spent / KWH)


def test_report_draws_the_region_and_hour_charts_and_lists_them(tmp_path):
    out = tmp_path / "out"
    result = invoke("report", FIXTURE, "--out", out, "--regions", "de,fr,pl", "--intensity-profile",
                    night_profile(tmp_path), "--window", "2026-12-03T00:00Z/2026-12-03T12:00Z")
    assert result.exit_code == 0, result.output
    for name in ("regions.png", "regions.svg", "hours.png", "hours.svg"):
        assert (out / name).stat().st_size > 0 and f"wrote {out / name}" in result.output
    md = (out / "report.md").read_text()
    assert "](regions.png)" in md and "](hours.png)" in md and "## Where and when" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3  # pareto, regions, hours embedded


def test_check_prints_the_footprint_when_asked():
    result = invoke("check", FIXTURE, "--current", "tfidf", "--regions", "fr", "--heat-reuse", "0.3")
    assert "where and when" in result.output and "region fr" in result.output and "heat reuse 0.3" in result.output
    assert carbon.attribution() in result.output


@pytest.mark.parametrize("content, fragments", [
    ("timestamp,g_per_kwh\n", ("no rows",)),
    ("timestamp,g_per_kwh\n2026-12-03T01:00Z,100\n2026-12-03T00:00Z,200\n", ("timestamps must increase",)),
    ("timestamp,g_per_kwh\n2026-12-03T00:00Z,-5\n", ("'-5'", "negative")),
])
def test_bad_profiles_are_one_line(tmp_path, content, fragments):
    path = tmp_path / "profile.csv"
    path.write_text(content)
    assert_one_line_error(invoke("recommend", FIXTURE, "--no-confirm", "--intensity-profile", path),
                          "--intensity-profile", *fragments)


@pytest.mark.parametrize("args, fragments", [
    (("--regions", "de,atlantis"), ("--regions", "'atlantis'")),
    (("--heat-reuse", "1"), ("--heat-reuse", "1.0")),
    (("--heat-reuse", "-0.1"), ("--heat-reuse", "-0.1")),
    (("--window", "2026-12-03T00:00Z"), ("--window", "START/END")),
    (("--window", "tomorrow/later"), ("--window start", "'tomorrow'")),
])
def test_bad_options_are_one_line(tmp_path, args, fragments):
    if args[0] == "--window":
        args = (*args, "--intensity-profile", night_profile(tmp_path))
    for command in (("recommend", FIXTURE, "--no-confirm"), ("report", FIXTURE, "--out", tmp_path / "r"),
                    ("check", FIXTURE, "--current", "tfidf")):
        assert_one_line_error(invoke(*command, *args), *fragments)
