"""Adequacy: the target, its wording, and judge()'s answers on hand-made records.

Verdicts are checked by reasoning about the bootstrap, not by calling the function twice: with a
candidate equal to the best except on k examples (where only the best is right), the paired
difference of a resample is -(number of those k examples drawn) / n, a Binomial(n, k/n) count.
"""

import pytest

from rightsize import metrics as M
from rightsize import recommend as R
from rightsize.adequacy import DEFAULT_WITHIN, Target, comparable, constraint, judge
from rightsize.check import Current, check
from rightsize.tasks import Target as TaskTarget
from test_recommend import flipped, record, refs

KEY = "{}-validation-None"  # record()'s key for a rung


def verdicts(records, target, metric="accuracy"):
    return judge(records, target, metric).verdicts


# ------------------------------------------------------------------------------------ the target


def test_target_from_every_spelling():
    assert Target.from_any({"min": 0.9}) == Target(min=0.9) == Target.from_any({"min": 0.9, "within": None})
    assert Target.from_any({"within": 0.05}) == Target(within=0.05)
    assert Target.from_any({"min": None, "within": 0.05}).rule == "within"
    assert Target.from_any(None) == Target.from_any({}) == Target() == Target(within=DEFAULT_WITHIN)
    t = Target(min=1)
    assert Target.from_any(t) is t and t.value == 1.0 and isinstance(t.value, float)
    assert TaskTarget is Target  # a task file's target is this type
    with pytest.raises(ValueError, match="not both"):
        Target(min=0.9, within=0.02)
    with pytest.raises(TypeError):
        Target.from_any(0.9)


def test_target_fields_dict_and_bar():
    floor, margin = Target(min=0.9), Target(within=0.02)
    assert (floor.rule, floor.value, floor.min, floor.within) == ("min", 0.9, 0.9, None)
    assert (margin.rule, margin.value, margin.min, margin.within) == ("within", 0.02, None, 0.02)
    assert floor.to_dict() == {"min": 0.9} and margin.to_dict() == {"within": 0.02}
    # What records and a search study store (both keys): it reads back as the same target.
    assert floor.record_form() == {"min": 0.9, "within": None} and margin.record_form() == {"min": None, "within": 0.02}
    assert Target.from_any(margin.record_form()) == margin
    assert floor.threshold(0.99) == 0.9 and margin.threshold(0.95) == pytest.approx(0.93)


def test_target_wording():
    floor, margin = Target(min=0.9), Target(within=0.02)
    assert str(floor) == "min 0.9" and str(margin) == "within 0.02"
    assert floor.short("accuracy") == "accuracy CI lower bound ≥ 0.9"
    assert margin.short("macro_f1") == "macro_f1 within 0.02 of the best"
    assert floor.description("accuracy") == "accuracy ≥ 0.9 (95% CI lower bound)"
    assert floor.description("accuracy", level=0.9) == "accuracy ≥ 0.9 (90% CI lower bound)"
    assert margin.description("accuracy") == "accuracy within 0.02 of the best config (paired bootstrap)"


# ------------------------------------------------------------------------------------ within


def test_within_one_flip_in_100_is_not_within_002_but_is_within_005():
    y = refs(100)
    best, cand = record("best", y, y, jpq=2.0), record("cand", flipped(y, 1), y, jpq=1.0)
    # Flips drawn per resample X ~ Binomial(100, 0.01): P(X >= 3) = 7.9% > 2.5%, so the 2.5% quantile of
    # the difference is at most -0.03 (not within 0.02); P(X >= 5) = 0.34% < 2.5%, so it is at least -0.04.
    strict = verdicts([best, cand], {"within": 0.02})[KEY.format("cand")]
    assert not strict.adequate and -0.04 <= strict.bound <= -0.03
    assert strict.threshold == -0.02 and strict.rule == "within"
    loose = judge([best, cand], Target(within=0.05), "accuracy")
    assert loose.verdicts[KEY.format("cand")].adequate
    assert "best" in loose.verdicts[KEY.format("cand")].detail and "-0.05" in loose.verdicts[KEY.format("cand")].detail
    assert loose.best.rung == "best" and loose.bar == pytest.approx(0.95)
    assert loose.cheapest_adequate.rung == "cand"


def test_within_five_flips_in_1000_is_within_002():
    y = refs(1000)
    best, cand = record("best", y, y), record("cand", flipped(y, 5), y)
    # X ~ Binomial(1000, 0.005), mean 5: P(X >= 6) = 38% so the bound is below -0.005; P(X >= 20) ~ 1e-6,
    # so it is well above -0.02. Same 0.5% loss as one flip in 200, but 10x the evidence.
    verdict = verdicts([best, cand], {"within": 0.02})[KEY.format("cand")]
    assert verdict.adequate and -0.02 < verdict.bound < -0.005


def test_identical_predictions_are_non_inferior_and_the_best_is_adequate_even_with_zero_margin():
    y = refs(60)
    best, twin = record("best", y, y, jpq=1.0), record("twin", flipped(y, 0), y, jpq=2.0)  # tie: cheaper is best
    judged = verdicts([best, twin], {"within": 0.0}, "macro_f1")
    assert judged[KEY.format("best")].adequate  # the best itself, trivially
    assert judged[KEY.format("twin")].bound == 0.0
    assert not judged[KEY.format("twin")].adequate  # 0 > -0 fails: non-inferiority needs a margin
    assert verdicts([best, twin], {"within": 0.001}, "macro_f1")[KEY.format("twin")].adequate


# ------------------------------------------------------------------------------------ min


def test_min_rule_uses_the_ci_lower_bound():
    y = refs(100)
    ninety = record("ninety", flipped(y, 10), y)
    perfect = record("perfect", y, y)
    # 90 of 100 right: bootstrap accuracy ~ N(0.90, 0.03); 2.5% quantile ~ 0.84.
    loose = verdicts([ninety, perfect], {"min": 0.80})[KEY.format("ninety")]
    assert loose.adequate and loose.rule == "min"
    strict = judge([ninety, perfect], {"min": 0.88}, "accuracy")
    verdict = strict.verdicts[KEY.format("ninety")]
    assert not verdict.adequate  # the point estimate 0.90 clears 0.88, the evidence does not
    # The bound is the stored 95% CI's lower end (same resamples, same seed).
    assert verdict.bound == pytest.approx(ninety.ci["accuracy"][0])
    assert "0.88" in verdict.detail
    assert strict.bar == 0.88 and strict.cheapest_adequate.rung == "perfect"
    # Every resample of an all-correct config scores 1.0: the bound equals min 1.0, and ">=" clears it.
    assert verdicts([perfect], {"min": 1.0})[KEY.format("perfect")].adequate


# ------------------------------------------------------------------------------------ judge's answers


def test_cheapest_adequate_takes_least_joules_then_fewest_params():
    y = refs(100)
    big = record("big", y, y, jpq=5.0, n_params=100)
    fat = record("fat", y, y, jpq=1.0, n_params=50)
    lean = record("lean", y, y, jpq=1.0, n_params=10)
    costly = record("costly", y, y, jpq=3.0, n_params=1)
    for order in ([big, fat, lean, costly], [costly, lean, fat, big]):
        assert judge(order, {"within": 0.02}, "accuracy").cheapest_adequate.rung == "lean"
    weak = record("weak", flipped(y, 30), y, jpq=0.1, n_params=1)  # cheapest but 70% accurate
    assert judge([big, weak], {"within": 0.02}, "accuracy").cheapest_adequate.rung == "big"
    assert judge([weak], {"min": 0.9}, "accuracy").cheapest_adequate is None


def test_best_ties_go_to_the_lower_joules():
    y = refs(30)
    a, b = record("a", y, y, jpq=2.0, n_params=10), record("b", y, y, jpq=1.0, n_params=10)
    judged = judge([a, b], {"within": 0.02}, "accuracy")
    assert judged.best.rung == "b" and judged.bar == pytest.approx(0.98)


def test_constraints_are_the_gap_to_the_bar_signed_by_adequacy():
    y = refs(100)
    best, weak = record("best", y, y), record("weak", flipped(y, 30), y)
    judged = judge([best, weak], {"within": 0.02}, "accuracy")
    gaps = judged.constraints
    assert gaps[KEY.format("best")] == constraint(judged.verdicts[KEY.format("best")]) <= 0
    v = judged.verdicts[KEY.format("weak")]
    assert gaps[KEY.format("weak")] == pytest.approx(v.threshold - v.bound) and gaps[KEY.format("weak")] > 0


def test_judge_runs_the_bootstrap_once(monkeypatch):
    y = refs(50)
    records = [record("a", y, y, jpq=2.0), record("b", flipped(y, 1), y, jpq=1.0), record("c", flipped(y, 9), y)]
    calls = []
    draw = M.bootstrap_indices
    monkeypatch.setattr(M, "bootstrap_indices", lambda *a: calls.append(a) or draw(*a))
    assert judge(records, {"within": 0.1}, "accuracy").cheapest_adequate.rung == "b"
    assert len(calls) == 1
    calls.clear()
    rec = R.recommend(records, target={"within": 0.1})
    assert len(calls) == 1 and rec.chosen["rung"] == "b"
    calls.clear()
    result = check(records, Current(name="a"), min_metric=0.8)
    assert len(calls) == 1 and result.cheapest_adequate["rung"] == "b"


def test_judge_without_records_and_on_different_examples():
    empty = judge([], {"within": 0.02}, "accuracy")
    assert (empty.verdicts, empty.best, empty.cheapest_adequate, empty.bar) == ({}, None, None, None)
    assert judge([], {"min": 0.7}, "accuracy").bar == 0.7
    with pytest.raises(ValueError, match="comparable"):
        judge([record("a", refs(10), refs(10)), record("b", refs(12), refs(12))], {"within": 0.02}, "accuracy")


# ------------------------------------------------------------------------------------ comparable


def test_comparable_keeps_ok_validation_records_on_the_same_examples_latest_per_key():
    y = refs(40)
    old = record("a", flipped(y, 9), y)
    new = record("a", y, y)  # same key, rerun with --force: replaces the old one
    failed = record("b", y, y, status="failed")
    test = record("c", y, y, split="test")
    other = record("d", refs(20), refs(20), limit=20)  # another sample: a smaller group
    group = comparable([old, failed, test, other, new, record("e", y, y)])
    assert [r.rung for r in group] == ["a", "e"]
    assert group[0].metrics["accuracy"] == 1.0
