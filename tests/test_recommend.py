"""The recommendation policy (orderings, energy and carbon) and `rightsize recommend`."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from rightsize import carbon
from rightsize import footprint as F
from rightsize import metrics as M
from rightsize import recommend as R
from rightsize.adequacy import Target
from rightsize.cli import cli
from rightsize.errors import RightsizeError
from rightsize.held_out import held_out_verdict
from rightsize.ladder import load_ladder
from rightsize.records import Record
from rightsize.results import RunLog
from rightsize.tables import relative_energy

N_CLASSES = 3


def record(rung, predictions, references, *, jpq=0.001, n_params=1000, fit=1.0, split="validation",
           target=None, metric="accuracy", source="rapl", limit=None, key=None, status="ok"):
    """A record as evaluate_rung writes it, built by hand."""
    y_true, y_pred = np.asarray(references), np.asarray(predictions)
    n = len(references)
    return Record(
        key=key or f"{rung}-{split}-{limit}", run_id="r", time="t",
        task="hand", task_file="/nonexistent/hand.yaml", metric=metric,
        target=target or {"min": None, "within": 0.02}, rung=rung,
        config={"kind": "tfidf", "model": None, "C": float(len(rung))} | {"tag": rung},
        split=split, limit=limit, train_limit=None, n_train=10, n_examples=n, device="cpu",
        seed=0, energy_source=source, seconds={"load": 0.1, "fit": 0.1, "infer": 0.1},
        joules={"load": 0.5, "fit": fit, "infer": jpq * n},
        energy_parts={p: {source: 0.1} for p in ("load", "fit", "infer")},
        metrics={m: M.score(m, y_true, y_pred, N_CLASSES) for m in M.METRICS},
        ci={m: list(M.confidence_interval(m, y_true, y_pred, N_CLASSES)) for m in M.METRICS},
        label_names=["a", "b", "c"], references=y_true.tolist(), predictions=y_pred.tolist(),
        n_params=n_params, facts={}, joules_per_query=jpq, joules_total=0.5 + fit + jpq * n,
        seconds_total=0.3, status=status,
    )


def refs(n):
    return [i % N_CLASSES for i in range(n)]


def flipped(references, k):
    """The references with the first k examples wrong."""
    out = list(references)
    for i in range(k):
        out[i] = (out[i] + 1) % N_CLASSES
    return out


# ------------------------------------------------------------------------------------ orderings


def test_largest_tie_breaks():
    y = refs(30)
    a = record("a", y, y, jpq=2.0, n_params=10)
    b = record("b", y, y, jpq=1.0, n_params=10)
    assert R.largest([a, b]).rung == "a"  # same params: more J/query
    assert R.largest([a, b, record("c", flipped(y, 5), y, jpq=0.1, n_params=11)]).rung == "c"


def test_pareto_front_on_a_hand_made_set():
    y = refs(100)
    # name: (wrong of 100, J/query). F (.91, 1 J) dominates A (.90, 1 J); B (.95, 2 J) dominates C (.94, 3 J);
    # D (1.0, 5 J) dominates E (1.0, 6 J). The front, cheapest first: F, B, D.
    points = {"A": (10, 1.0), "B": (5, 2.0), "C": (6, 3.0), "D": (0, 5.0), "E": (0, 6.0), "F": (9, 1.0)}
    records = [record(name, flipped(y, wrong), y, jpq=j) for name, (wrong, j) in points.items()]
    assert [r.rung for r in R.pareto_front(records, "accuracy")] == ["F", "B", "D"]


def test_spec_from_config_inverts_config(tiny_ladder):
    for spec in load_ladder(tiny_ladder).rungs:
        assert R.spec_from_config(spec.name, spec.config()) == spec
    with pytest.raises(RightsizeError, match="'nope'"):
        R.spec_from_config("x", {"kind": "tfidf", "model": None, "nope": 1})


# ------------------------------------------------------------------------------------ energy, carbon


def test_lifetime_joules_is_fit_plus_queries():
    r = record("a", refs(10), refs(10), jpq=0.002, fit=100.0)
    assert R.lifetime_joules(r, 1000, 10) == pytest.approx(100.0 + 1000 * 10 * 0.002)


def test_carbon_reads_the_shipped_table():
    from importlib import resources

    table = json.loads((resources.files("rightsize") / "data" / "grid-intensity-by-country.json").read_text())
    de = next(row for row in table["countries"] if row["name"] == "de")
    assert F.Facility(1.0).grams(3.6e6, carbon.intensity("DE").g_per_kwh) == pytest.approx(de["co2g_kwh"])
    assert carbon.intensity("uk").region == "gb"
    assert "CC BY 4.0" in carbon.attribution() and "Ember" in carbon.attribution()
    assert "Our World in Data" in (resources.files("rightsize") / "data" / "CARBON_SOURCE.md").read_text()


def test_unknown_region_is_named():
    with pytest.raises(RightsizeError, match=r"'atlantis'.*e\.g\. de, us, fr"):
        carbon.intensity("atlantis")


# ------------------------------------------------------------------------------------ recommend()


def test_recommend_savings_against_the_largest(monkeypatch):
    monkeypatch.setattr(carbon, "intensity", lambda region: carbon.GridIntensity("zz", 400.0, 2025))
    y = refs(100)
    small = record("small", flipped(y, 1), y, jpq=0.001, fit=10.0, n_params=10)
    big = record("big", y, y, jpq=0.004, fit=1000.0, n_params=1000)
    rec = R.recommend([big, small], target={"within": 0.05}, queries_per_day=1000, days=100, region="zz",
                     where=F.WhereAndWhen(F.Facility(1.5)))
    assert rec.chosen["rung"] == "small" and rec.largest["rung"] == "big" and rec.rule == "within"
    s = rec.savings
    # small: 10 + 1000*100*0.001 = 110 J; big: 1000 + 1000*100*0.004 = 1400 J
    assert s["joules_per_query_saved"] == pytest.approx(0.003) and s["percent_saved"] == pytest.approx(75.0)
    assert s["lifetime_joules_saved"] == pytest.approx(1290.0)
    assert s["lifetime_kwh_saved"] == pytest.approx(1290.0 / 3.6e6)
    assert s["lifetime_carbon_g_saved"] == pytest.approx(1290.0 / 3.6e6 * 1.5 * 400.0)
    assert rec.given_up == {"validation": pytest.approx(0.01), "test": None}
    assert not rec.estimated


def test_target_and_metric_default_to_the_records():
    y = refs(100)
    records = [record("a", flipped(y, 10), y, target={"min": 0.5, "within": None}, metric="macro_f1", jpq=0.1),
               record("b", y, y, target={"min": 0.5, "within": None}, metric="macro_f1", jpq=1.0)]
    rec = R.recommend(records)
    assert rec.rule == "min" and rec.target == {"min": 0.5} and rec.metric == "macro_f1"
    assert rec.chosen["rung"] == "a"


def test_test_records_never_influence_the_choice():
    y, t = refs(100), refs(50)
    cheap = record("cheap", flipped(y, 1), y, jpq=0.01, n_params=10)
    big = record("big", y, y, jpq=1.0, n_params=100)
    validation_only = R.recommend([cheap, big], target={"within": 0.05})
    # Test records that would change everything if they were used: the cheap config fails on test, a
    # config never seen on validation is perfect and free there, and the big one is perfect.
    tests = [record("cheap", flipped(t, 40), t, split="test", jpq=0.01, n_params=10),
             record("big", t, t, split="test", jpq=1.0, n_params=100),
             record("ghost", t, t, split="test", jpq=0.0, n_params=1)]
    rec = R.recommend([cheap, *tests, big], target={"within": 0.05})
    assert rec.chosen["rung"] == validation_only.chosen["rung"] == "cheap"
    assert [e["rung"] for e in rec.configs] == ["cheap", "big"]
    assert rec.chosen["metric"] == validation_only.chosen["metric"]
    # ... they are only reported, next to the validation score.
    assert rec.chosen["test"]["metric"] == pytest.approx(0.2) and rec.largest["test"]["metric"] == 1.0
    assert rec.given_up["test"] == pytest.approx(0.8)


def test_recommend_without_records_is_a_user_error():
    with pytest.raises(RightsizeError, match="rightsize evaluate"):
        R.recommend([])


def test_recommend_when_every_evaluation_stopped_says_what_was_tried():
    failed = record("a", refs(5), refs(5), status="failed")
    failed.error = "out of memory"
    pruned = record("b", refs(5), refs(5), status="pruned")
    pruned.pruned = {"reason": "accuracy 0.2 on 10/40 examples: 95% CI upper bound 0.4 < 0.8 needed"}
    with pytest.raises(R.NothingCompleted) as caught:
        R.recommend([failed, pruned])
    assert [(t["label"], t["status"], t["reason"]) for t in caught.value.tried] == [
        ("a", "failed", "out of memory"), ("b", "pruned", pruned.pruned["reason"])]


# ------------------------------------------------------------------------------------ CLI


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def write_run(folder, records):
    log = RunLog(folder)
    for r in records:
        log.append(r)
    return folder


def test_cli_nothing_adequate_exits_1_with_the_three_closest(tmp_path):
    y = refs(100)
    target = {"min": 0.99, "within": None}
    wrong = {"w40": 40, "w5": 5, "w20": 20, "w10": 10}
    folder = write_run(tmp_path / "run", [record(name, flipped(y, k), y, target=target) for name, k in wrong.items()])
    result = run("recommend", folder)
    assert result.exit_code == 1, result.output
    assert "no adequate configuration" in result.output
    closest = result.output.split("closest configs")[1].split("configs (validation")[0]
    assert [line.split(":")[0].strip() for line in closest.strip().splitlines()[1:]] == ["w5", "w10", "w20"]
    assert "test split" not in result.output  # nothing chosen, nothing confirmed
    as_json = run("recommend", folder, "--json")
    assert as_json.exit_code == 1 and json.loads(as_json.output)["adequate"] is False
    assert len(RunLog(folder, create=False).records()) == 4  # nothing appended


def test_cli_json_schema(tmp_path):
    y = refs(100)
    folder = write_run(tmp_path / "run", [record("small", y, y, jpq=0.001, n_params=10, source="estimate"),
                                          record("big", y, y, jpq=0.01, n_params=100, source="estimate")])
    result = run("recommend", folder, "--json", "--no-confirm", "--region", "FR", "--queries-per-day", 100, "--days", 10)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["schema"] == "rightsize.recommendation/1" and doc["adequate"] is True
    assert {"task", "metric", "target", "rule", "split", "n_examples", "chosen", "largest", "best", "configs", "closest",
            "savings", "given_up", "assumptions", "estimated", "excluded", "confirmation"} <= set(doc)
    assert doc["chosen"]["rung"] == "small" and doc["largest"]["rung"] == "big" and doc["confirmation"] is None
    assert {"rung", "metric", "ci", "joules_per_query", "n_params", "adequate", "rule", "detail", "bound", "threshold",
            "estimated", "test"} <= set(doc["chosen"])
    assert doc["estimated"] is True and doc["chosen"]["estimated"] is True
    a = doc["assumptions"]
    assert (a["region"], a["queries_per_day"], a["days"], a["pue"]) == ("fr", 100, 10, 1.2)
    assert a["grid_g_per_kwh"] == carbon.intensity("fr").g_per_kwh and "CC BY 4.0" in a["grid_source"]


@pytest.mark.parametrize("args, fragment", [(["--region", "atlantis"], "atlantis"), ([], "no runs.jsonl")])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, args, fragment):
    y = refs(10)
    folder = write_run(tmp_path / "run", [record("a", y, y)]) if args else tmp_path / "empty"
    result = run("recommend", folder, "--no-confirm", *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.output


def test_cli_end_to_end_with_test_confirmation(tiny_task, tiny_ladder, tmp_path):
    out = tmp_path / "run"
    evaluated = run("evaluate", tiny_task, "--ladder", tiny_ladder, "--rungs", "tfidf,tiny-probe", "--out", out,
                    "--meter", "estimate", "--quiet")
    assert evaluated.exit_code == 0, evaluated.output
    result = run("recommend", out, "--region", "de")
    # --rungs left tiny-knn out: it could set the bar of the task's `within` target, so the answer
    # is not certain (exit 3), and the output says which rung is missing.
    assert result.exit_code == 3, result.output
    assert "UNCERTAIN: tiny-knn was not evaluated: the best may be higher" in result.output
    records = RunLog(out, create=False).records()
    tests = [r for r in records if r.split == "test"]
    validation = {r.rung: r for r in records if r.split == "validation"}
    rec = R.recommend(records, region="de")
    # TF-IDF is perfect on this task and far cheaper than a BERT forward pass; the probe has more parameters.
    assert (rec.chosen["rung"], rec.largest["rung"]) == ("tfidf", "tiny-probe")
    assert {r.rung for r in tests} == {rec.chosen["rung"], rec.largest["rung"]}
    for t in tests:
        v = validation[t.rung]
        assert t.status == "ok" and t.config == v.config and t.n_examples == 30  # the whole test split
    assert f"recommendation: {rec.chosen['rung']}" in result.output
    assert "test " in result.output and "evaluated" in result.output and "estimate" in result.output
    assert rec.chosen["test"] is not None and rec.largest["test"] is not None
    assert "CO2e" in result.output and "Ember" in result.output
    again = run("recommend", out, "--region", "de")
    assert again.exit_code == 3 and "recorded earlier" in again.output
    assert len(RunLog(out, create=False).records()) == len(records)  # confirmed once, not again
    skipped = run("recommend", out, "--no-confirm")
    assert "not evaluated (--no-confirm)" in skipped.output and "--region" in skipped.output


def test_cli_task_without_test_split_says_so(tmp_path):
    from conftest import make_examples, write_jsonl

    write_jsonl(tmp_path / "data" / "train.jsonl", make_examples(20, seed=1))
    task = tmp_path / "notest.yaml"
    task.write_text("name: notest\ndata: {train: data/train.jsonl}\nmetric: accuracy\ntarget: {min: 0.5}\n")
    out = tmp_path / "run"
    assert run("evaluate", task, "--rungs", "tfidf", "--out", out, "--meter", "estimate", "--quiet").exit_code == 0
    result = run("recommend", out)
    assert result.exit_code == 0, result.output
    assert "tfidf no test split" in result.output and "test       not evaluated" in result.output
    assert all(r.split == "validation" for r in RunLog(out, create=False).records())


def _marginal_run(tmp_path):
    """A cheap config just over `min 0.9` on its own, eight poor ones and a large perfect one: ten compared."""
    y = refs(400)
    target = {"min": 0.9, "within": None}
    records = [record("cheap", flipped(y, 28), y, jpq=0.001, n_params=10, target=target),
               record("big", y, y, jpq=0.01, n_params=1000, target=target)]
    records += [record(f"poor{i}", flipped(y, 200 + i), y, jpq=0.002, n_params=20, target=target) for i in range(8)]
    return write_run(tmp_path / "run", records)


def test_cli_adjust_holm_by_default_says_what_the_uncorrected_rule_would_pick(tmp_path):
    folder = _marginal_run(tmp_path)
    holm = run("recommend", folder, "--no-confirm")
    assert holm.exit_code == 0, holm.output
    assert "recommendation: big" in holm.output
    assert "10 configs compared; verdicts Holm-corrected for multiplicity; without the correction the answer " \
           "would be cheap" in holm.output
    doc = json.loads(run("recommend", folder, "--no-confirm", "--json").output)
    assert doc["multiplicity"] == {"adjust": "holm", "compared": 10, "changed_answer": True,
                                   "uncorrected_choice": "cheap"}
    plain = run("recommend", folder, "--no-confirm", "--adjust", "none")
    assert plain.exit_code == 0 and "recommendation: cheap" in plain.output
    assert "10 configs compared; no multiplicity correction" in plain.output
    report = run("report", folder, "--format", "svg")
    assert report.exit_code == 0, report.output
    assert "without the correction the answer would be cheap" in (folder / "report.md").read_text()
    bad = run("recommend", folder, "--no-confirm", "--adjust", "bonferroni")
    assert bad.exit_code == 2 and "bonferroni" in bad.output


@pytest.mark.parametrize("percent, words", [(99.7, "99.7% less"), (99.96, "99.9% less"), (76.4, "76% less"),
                                            (-7562.0, "7562% more"), (-76.0, "76% more"), (0.2, "about the same")])
def test_savings_are_worded_without_negative_or_rounded_up_percentages(percent, words):
    assert relative_energy(percent) == words


# ------------------------------------------------------------------------------------ the test verdict


def test_held_out_verdict_rules():
    y = refs(200)
    min_target, within = Target(min=0.9), Target(within=0.05)
    good, poor = record("c", y, y, split="test"), record("c", flipped(y, 60), y, split="test")
    assert held_out_verdict(good, None, min_target, "accuracy")["confirmed"] is True
    missed = held_out_verdict(poor, None, min_target, "accuracy")
    assert missed["confirmed"] is False and missed["bound"] < 0.9 and missed["score"] == pytest.approx(0.7)
    # Within: the paired difference to the largest config on test; 3 of 200 worse is within 0.05.
    close = held_out_verdict(record("c", flipped(y, 3), y, split="test"), good, within, "accuracy")
    assert close["confirmed"] is True and close["score"] == pytest.approx(-0.015)
    assert held_out_verdict(poor, good, within, "accuracy")["confirmed"] is False
    assert held_out_verdict(good, None, within, "accuracy")["confirmed"] is None  # the largest was not tested


def test_cli_exits_1_when_the_test_split_does_not_confirm_the_choice(tmp_path):
    y = refs(100)
    target = {"min": 0.9, "within": None}
    folder = write_run(tmp_path / "run", [record("small", y, y, jpq=0.001, n_params=10, target=target),
                                          record("big", y, y, jpq=0.01, n_params=100, target=target),
                                          record("small", flipped(y, 40), y, split="test", target=target)])
    result = run("recommend", folder, "--no-confirm")
    assert result.exit_code == 1, result.output
    assert "recommendation: small" in result.output and "test verdict: NOT CONFIRMED" in result.output
    doc = json.loads(run("recommend", folder, "--no-confirm", "--json").output)
    assert doc["confirmed"] is False and doc["test_verdict"]["score"] == pytest.approx(0.6)
    assert doc["test_verdict"]["bound"] < doc["test_verdict"]["threshold"] == 0.9
    assert run("report", folder, "--format", "svg").exit_code == 0
    assert "test verdict: NOT CONFIRMED" in (folder / "report.md").read_text()


def test_the_largest_config_is_a_single_one_not_a_cascade_that_ends_in_it():
    from dataclasses import replace

    y = refs(50)
    big = record("mpnet-probe", y, y, n_params=110_000_000)
    cascade = replace(record("minilm-then-mpnet", y, y, n_params=133_000_000),
                      config={"kind": "cascade", "stages": ["minilm-probe", "mpnet-probe"]})
    assert R.largest([cascade, big]).rung == "mpnet-probe"
    assert R.largest([cascade]).rung == "minilm-then-mpnet"  # nothing else evaluated
