import pytest

from rightsize.errors import RightsizeError
from rightsize.ladder import default_ladder_path, load_ladder, parse_ladder


def test_default_ladder_is_small_to_large_with_the_required_rungs():
    ladder = load_ladder()
    assert [r.name for r in ladder.rungs] == ["tfidf", "minilm-knn", "minilm-probe", "mpnet-knn", "mpnet-probe"]
    assert ladder["minilm-probe"].model == "sentence-transformers/all-MiniLM-L6-v2"
    assert ladder["mpnet-knn"].model == "sentence-transformers/all-mpnet-base-v2"
    assert default_ladder_path().exists()


def test_defaults_apply_only_to_rungs_that_accept_the_knob():
    ladder = parse_ladder({"defaults": {"batch_size": 16}, "rungs": [
        {"name": "t", "kind": "tfidf"}, {"name": "p", "kind": "probe", "model": "x/y"}]}, "l.yaml")
    assert "batch_size" not in ladder["t"].knobs
    assert ladder["p"].knobs["batch_size"] == 16


def test_select_keeps_ladder_order_and_rejects_unknown_names():
    ladder = load_ladder()
    assert [r.name for r in ladder.select(["mpnet-probe", "tfidf"]).rungs] == ["tfidf", "mpnet-probe"]
    with pytest.raises(RightsizeError, match="no rung named 'nope'"):
        ladder.select(["nope"])


@pytest.mark.parametrize("doc, message", [
    (None, "must be a mapping"),
    ({"rungs": []}, "non-empty list"),
    ({"rungs": [{"name": "a", "kind": "tfidf"}], "extra": 1}, "unknown key 'extra'"),
    ({"rungs": [{"name": "a", "kind": "nope"}]}, "unknown rung kind 'nope'"),
    ({"rungs": [{"name": "a", "kind": "tfidf"}, {"name": "a", "kind": "tfidf"}]}, "duplicate rung name 'a'"),
    ({"rungs": [{"name": "a", "kind": "probe"}]}, "needs a 'model'"),
    ({"rungs": [{"name": "a", "kind": "tfidf", "model": "x/y"}]}, "takes no 'model'"),
    ({"rungs": [{"name": "a", "kind": "knn", "model": "x/y", "k": 0}]}, "'k' = 0 is below its minimum"),
    ({"rungs": [{"name": "a", "kind": "knn", "model": "x/y", "k": 10**9}]}, "above its maximum"),
    ({"rungs": [{"name": "a", "kind": "knn", "model": "x/y", "k": "ten"}]}, "'k' must be int"),
    ({"rungs": [{"name": "a", "kind": "probe", "model": "x/y", "precision": "fp8"}]}, "'fp8' is not one of"),
    ({"rungs": [{"name": "a", "kind": "probe", "model": "x/y", "colour": 1}]}, "unknown key 'colour'"),
    ({"rungs": [{"name": "bad name", "kind": "tfidf"}]}, "'name' must be a word"),
    ({"rungs": [{"name": "a\n", "kind": "tfidf"}]}, "'name' must be a word"),
    ({"defaults": {"max_lenght": 128}, "rungs": [{"name": "a", "kind": "probe", "model": "x/y"}]},
     "defaults: no rung of this ladder has a knob 'max_lenght'"),
    ({"defaults": {"max_length": 128}, "rungs": [{"name": "a", "kind": "tfidf"}]},
     "defaults: no rung of this ladder has a knob 'max_length'"),
])
def test_bad_ladders_name_the_problem(doc, message):
    with pytest.raises(RightsizeError, match=message):
        parse_ladder(doc, "ladder.yaml")


def test_malformed_yaml_reports_the_line(tmp_path):
    path = tmp_path / "l.yaml"
    path.write_text("rungs:\n  - {name: a, kind: tfidf\n")
    with pytest.raises(RightsizeError, match=r"not valid YAML at line \d"):
        load_ladder(path)


def test_missing_ladder_file(tmp_path):
    with pytest.raises(RightsizeError, match="does not exist"):
        load_ladder(tmp_path / "none.yaml")
