"""`rightsize check`: each verdict on a recorded run, the JSON/JUnit/Markdown outputs, exit codes 0/1/2."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from rightsize.adequacy import comparable
from rightsize.check import (CRITERIA, SCHEMA, Current, check, evaluate_for_check, find_current, load_current,
                             same_evaluation, to_junit, to_markdown)
from rightsize.cli import cli
from rightsize.errors import RightsizeError
from rightsize.recommend import largest
from rightsize.records import Record
from rightsize.results import RunLog

FIXTURE = Path(__file__).parent / "fixtures" / "runs"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return RunLog(FIXTURE, create=False).records()


def statuses(result) -> dict[str, str]:
    return {c.name: c.status for c in result.criteria}


def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def test_the_fixture_is_what_its_generator_writes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_runs", FIXTURE.parent / "make_runs.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    for name, text in generator.render().items():
        assert (FIXTURE / name).read_text(encoding="utf-8") == text, f"rerun tests/fixtures/make_runs.py ({name})"


# ------------------------------------------------------------------------------------------ verdicts


def test_pass_adequate_and_cheapest(records):
    result = check(records, Current("minilm-probe"))
    assert statuses(result) == {"meets-target": "pass", "within-energy-budget": "skipped", "not-oversized": "pass",
                                "complete-evidence": "skipped"}
    assert result.exit_code == 0 and result.passed
    assert result.summary().startswith("rightsize check: PASS — minilm-probe")
    assert result.n_examples == 400  # the 400-example run, not the earlier --limit 100 record


def test_oversized_names_the_cheaper_adequate_config_and_the_saving(records):
    result = check(records, Current("mpnet-probe"))
    assert statuses(result)["meets-target"] == "pass"  # the best config is adequate...
    assert statuses(result)["not-oversized"] == "fail"  # ...but minilm-probe is 81% cheaper
    assert result.exit_code == 1
    line = result.summary()
    assert line.startswith("rightsize check: FAIL oversized — mpnet-probe costs 2.4 mJ/query")
    assert "minilm-probe is adequate at 450 µJ/query (81% less" in line
    assert result.cheapest_adequate["rung"] == "minilm-probe"
    assert result.cheapest_adequate["saving_pct"] == pytest.approx(100 * (1 - 4.5e-4 / 2.4e-3))


def test_below_target_says_why_and_what_would_pass(records):
    result = check(records, Current("tfidf"))
    assert statuses(result) == {"meets-target": "fail", "within-energy-budget": "skipped", "not-oversized": "pass",
                                "complete-evidence": "skipped"}
    assert result.exit_code == 1
    line = result.summary()
    assert "FAIL below target" in line and "paired difference" in line
    assert "cheapest adequate: minilm-probe at 450 µJ/query" in line


def test_energy_budget(records):
    over = check(records, Current("minilm-probe"), max_joules_per_query=1e-4)
    assert statuses(over)["within-energy-budget"] == "fail" and over.exit_code == 1
    assert "FAIL over budget" in over.summary() and "100 µJ/query" in over.summary()
    within = check(records, Current("minilm-probe"), max_joules_per_query=1e-3)
    assert statuses(within)["within-energy-budget"] == "pass" and within.exit_code == 0


def test_min_metric_overrides_the_target_with_the_ci_lower_bound(records):
    # Under a floor of 0.80 minilm-knn (0.86, CI lower bound > 0.80) is adequate and 4.4% cheaper than
    # minilm-probe: inside the default 10% tolerance, outside a 1% one.
    lenient = check(records, Current("minilm-probe"), min_metric=0.80)
    assert lenient.target == {"rule": "min", "value": 0.80, "from": "--min-metric"}
    assert lenient.cheapest_adequate["rung"] == "minilm-knn"
    assert statuses(lenient)["not-oversized"] == "pass" and lenient.exit_code == 0
    strict = check(records, Current("minilm-probe"), min_metric=0.80, tolerance_pct=1)
    assert statuses(strict)["not-oversized"] == "fail" and "4% less" in strict.summary()
    # A floor above every lower bound: nothing is adequate, and the point estimate alone does not pass.
    high = check(records, Current("mpnet-probe"), min_metric=0.93)  # mpnet-probe scores exactly 0.93
    assert statuses(high)["meets-target"] == "fail" and "no evaluated config meets it" in high.summary()


def test_a_failed_current_config_fails_the_gate(records):
    result = check(records, Current("smollm-zeroshot"))
    assert statuses(result)["meets-target"] == "fail" and result.exit_code == 1
    assert "MemoryError" in result.summary() and result.current["status"] == "failed"


def test_unknown_rung_is_bad_input(records):
    with pytest.raises(RightsizeError, match="no such rung.*rungs: minilm-knn"):
        check(records, Current("gpt-5"))


def test_bad_numbers_are_bad_input(records):
    with pytest.raises(RightsizeError, match="--tolerance"):
        check(records, Current("tfidf"), tolerance_pct=100)
    with pytest.raises(RightsizeError, match="no records"):
        check([], Current("tfidf"))


# ------------------------------------------------------------------------------------------ --current


def test_config_file_matches_the_record_with_defaults_filled(records, tmp_path):
    plain = tmp_path / "deploy.yaml"
    plain.write_text(f"kind: probe\nmodel: {MINILM}\n")
    explicit = tmp_path / "explicit.yml"
    explicit.write_text(f"name: shipped\nkind: probe\nmodel: {MINILM}\nbatch_size: 64\n")
    for file in (plain, explicit):
        current = load_current(str(file))
        assert current.config is not None
        assert check(records, current).current["rung"] == "minilm-probe"


def test_config_file_not_evaluated_or_invalid(records, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text("kind: tfidf\nngram_max: 3\n")
    with pytest.raises(RightsizeError, match="was not evaluated in this run"):
        check(records, load_current(str(other)))
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: probe\n")
    with pytest.raises(RightsizeError, match="needs a 'model'"):
        load_current(str(bad))
    with pytest.raises(RightsizeError, match="no such config file"):
        load_current(str(tmp_path / "missing.yaml"))


# ------------------------------------------------------------------------------------------ outputs


def test_json_schema(records):
    doc = check(records, Current("mpnet-probe"), max_joules_per_query=0.01).to_dict()
    json.dumps(doc, allow_nan=False)
    assert doc["schema"] == SCHEMA == "rightsize.check/1"
    assert set(doc) == {"schema", "verdict", "exit_code", "summary", "task", "split", "n_examples", "metric",
                        "target", "tolerance_pct", "max_joules_per_query", "energy_source", "energy_estimated",
                        "current", "cheapest_adequate", "criteria", "certain", "coverage", "objective",
                        "footprint", "multiplicity", "test_verdict"}
    assert doc["objective"] == {"name": "per-query", "queries_per_day": 10_000, "days": 365}
    assert doc["verdict"] == "fail" and doc["exit_code"] == 1 and doc["energy_estimated"] is True
    assert [c["name"] for c in doc["criteria"]] == list(CRITERIA)
    for c in doc["criteria"]:
        assert set(c) == {"name", "status", "message", "value", "threshold"} and c["status"] in ("pass", "fail", "skipped")
    config_keys = {"rung", "label", "key", "config", "metric", "ci", "joules_per_query", "n_params", "adequate", "status",
                   "error"}
    assert set(doc["current"]) == config_keys
    assert set(doc["cheapest_adequate"]) == config_keys | {"saving_pct"}
    budget = doc["criteria"][1]
    assert budget["value"] == pytest.approx(2.4e-3) and budget["threshold"] == 0.01


def test_junit_has_one_case_per_criterion(records):
    root = ET.fromstring(to_junit(check(records, Current("mpnet-probe"))))
    assert root.tag == "testsuites" and root.get("tests") == "4" and root.get("failures") == "1"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == list(CRITERIA)
    by_name = {c.get("name"): c for c in cases}
    assert by_name["not-oversized"].find("failure").get("message").startswith("mpnet-probe costs")
    assert by_name["within-energy-budget"].find("skipped") is not None
    assert by_name["meets-target"].find("failure") is None
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["current"] == "mpnet-probe" and props["energy_source"] == "estimate"


def test_markdown_summary(records):
    text = to_markdown(check(records, Current("mpnet-probe")))
    assert text.startswith("### rightsize check: ❌ FAIL — `mpnet-probe` on intents")
    assert "| not-oversized | ❌ fail |" in text and "| within-energy-budget | ⏭️ skipped |" in text
    assert "cheapest adequate: `minilm-probe`" in text and "an estimate from CPU time" in text
    compared = check(records, Current("mpnet-probe")).multiplicity["compared"]
    assert f"{compared} configs compared; verdicts Holm-corrected for multiplicity" in text


# ------------------------------------------------------------------------------------------ the command


def test_cli_exit_codes_and_outputs(tmp_path):
    ok = run("check", FIXTURE, "--current", "minilm-probe")
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("rightsize check: PASS")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    junit, md = tmp_path / "out" / "check.xml", tmp_path / "check.md"
    fail = run("check", FIXTURE, "--current", "mpnet-probe", "--junit", junit, "--markdown", md, "--json",
               env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert fail.exit_code == 1, fail.output
    assert json.loads(fail.stdout)["verdict"] == "fail"
    assert ET.parse(junit).getroot().get("failures") == "1"
    assert md.read_text().startswith("### rightsize check: ❌ FAIL")
    assert summary.read_text().startswith("earlier step\n### rightsize check: ❌ FAIL")  # appended, not replaced


@pytest.mark.parametrize("args, fragment", [
    (["--current", "gpt-5"], "gpt-5"),
    (["--current", "tfidf", "--limit", "10"], "--limit only applies when SOURCE is a task file"),
    (["--current", "missing.yaml"], "missing.yaml"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, fragment):
    result = run("check", FIXTURE, *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.output


def test_cli_option_out_of_range_is_a_usage_error():
    result = run("check", FIXTURE, "--current", "tfidf", "--tolerance", "150")
    assert result.exit_code == 2 and "'--tolerance': 150.0 is not in the range" in result.output


def test_cli_bad_source(tmp_path):
    for source, fragment in ((tmp_path / "nothing", "no such run folder or task file"),
                             (tmp_path, "holds no runs.jsonl")):
        result = run("check", source, "--current", "tfidf")
        assert result.exit_code == 2 and fragment in result.output, result.output


def test_cli_with_a_task_evaluates_first(tiny_task, tiny_ladder, tmp_path):
    out = tmp_path / "run"
    shipped = tmp_path / "shipped.yaml"
    shipped.write_text("name: tfidf-unigrams\nkind: tfidf\nngram_max: 1\n")
    result = run("check", tiny_task, "--current", shipped, "--ladder", tiny_ladder, "--out", out, "--meter",
                 "estimate", "--limit", "12", "--json")
    assert result.exit_code in (0, 1), result.output
    doc = json.loads(result.stdout)
    assert doc["current"]["rung"] == "tfidf-unigrams" and doc["n_examples"] == 12
    rungs = [r.rung for r in RunLog(out, create=False).records()]
    assert rungs == ["tfidf", "tiny-knn", "tiny-probe", "tfidf-unigrams"]
    # The current config runs on its own (rung specs, no ladder file): its plan lists just it.
    plans = RunLog(out, create=False).plans()
    assert [[r["name"] for r in p["rungs"]] for p in plans] == [["tfidf", "tiny-knn", "tiny-probe"], ["tfidf-unigrams"]]
    # Again, by rung name: everything is recorded, so nothing is evaluated twice.
    again = run("check", tiny_task, "--current", "tiny-probe", "--ladder", tiny_ladder, "--out", out, "--meter",
                "estimate", "--limit", "12")
    assert again.exit_code in (0, 1) and again.stdout.startswith("rightsize check: ")
    assert len(RunLog(out, create=False).records()) == 4


def test_cli_task_with_an_unknown_rung_evaluates_nothing(tiny_task, tiny_ladder, tmp_path):
    out = tmp_path / "run"
    result = run("check", tiny_task, "--current", "nope", "--ladder", tiny_ladder, "--out", out)
    assert result.exit_code == 2 and "no such rung" in result.output
    assert not (out / "runs.jsonl").exists()


def test_a_current_config_the_ladder_has_under_another_name_is_evaluated_once(tiny_task, tiny_ladder, tmp_path):
    from rightsize.runner import EvaluationRequest

    shipped = tmp_path / "shipped.yaml"
    shipped.write_text("name: shipped\nkind: tfidf\n")  # the ladder's tfidf rung, renamed
    request = EvaluationRequest(task=tiny_task, ladder=tiny_ladder, out_dir=tmp_path / "run", meter="estimate",
                                limit=12)
    seen = []
    records, plans = evaluate_for_check(request, load_current(str(shipped)), on_start=lambda *a: seen.append(a[2].name))
    assert [r.rung for r in records] == seen == ["tfidf", "tiny-knn", "tiny-probe"] and len(plans) == 1
    assert all("_shown_status" not in r.extra for r in records)
    assert check(records, load_current(str(shipped))).current["rung"] == "tfidf"
    with pytest.raises(RightsizeError, match="no such rung"):
        evaluate_for_check(request, Current("nope"))
    assert len(RunLog(tmp_path / "run", create=False).records()) == 3


def test_check_does_not_write_into_the_run_folder(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    before = sorted(p.name for p in run_dir.iterdir())
    assert run("check", run_dir, "--current", "tfidf").exit_code == 1
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_cli_task_with_an_unreachable_current_model_evaluates_nothing(tiny_task, tiny_ladder, tmp_path):
    shipped = tmp_path / "shipped.yaml"
    shipped.write_text("kind: probe\nmodel: no-such-org/no-such-model\n")
    out = tmp_path / "run"
    result = run("check", tiny_task, "--current", shipped, "--ladder", tiny_ladder, "--out", out)
    assert result.exit_code == 2 and "no-such-org/no-such-model" in result.output, result.output
    assert not (out / "runs.jsonl").exists()


def test_a_config_only_evaluated_on_test_is_not_judged(records):
    test_only = [replace(r, rung="confirmed-only") for r in records if r.split == "test"]
    with pytest.raises(RightsizeError, match="no such rung"):
        check(list(records) + test_only, Current("confirmed-only"))


def test_the_current_configs_test_verdict_is_shown_not_gated(records):
    def on_test(record, right):
        refs, n = record.references, len(record.label_names)
        return replace(record, key=record.key + "-test", split="test",
                       predictions=refs if right else [(p + 1) % n for p in refs],
                       metrics={**record.metrics, "accuracy": 1.0 if right else 0.0})

    current = find_current(records, Current("minilm-probe"))
    biggest = largest(comparable(same_evaluation(records, current)))
    assert biggest.key != current.key
    result = check([*records, on_test(current, False), on_test(biggest, True)], Current("minilm-probe"))
    assert result.test_verdict["confirmed"] is False and result.passed  # shown, not gated
    assert "test verdict: NOT CONFIRMED" in to_markdown(result)
    assert result.to_dict()["test_verdict"] == result.test_verdict
    assert check(records, Current("minilm-probe")).test_verdict["confirmed"] is None


def test_not_oversized_decides_on_the_jpq_intervals_when_recorded(records):
    def with_interval(record, low, high):
        return replace(record, joules_per_query_repeats={"repeats": 5, "interval": [low, high]})

    plain = check(records, Current("mpnet-probe"))
    cheapest, current = plain.cheapest_adequate, plain.current
    assert cheapest["key"] != current["key"]
    gate = {c.name: c for c in plain.criteria}["not-oversized"]
    assert gate.status == "fail"
    # Intervals that overlap within the tolerance: the same records no longer show the current config oversized.
    widened = [with_interval(r, r.joules_per_query * 0.5, cheapest["joules_per_query"] * 1.0 / 0.95)
               if r.key == current["key"] else
               with_interval(r, r.joules_per_query, current["joules_per_query"] * 0.5 / 0.95)
               if r.key == cheapest["key"] else r for r in records]
    gate = {c.name: c for c in check(widened, Current("mpnet-probe")).criteria}["not-oversized"]
    assert gate.status == "pass", gate.message
