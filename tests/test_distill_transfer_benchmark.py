"""benchmarks/distill_transfer.py: the transfer set it builds and the ladder that names it."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from distill_transfer import WITH_TRANSFER, ladder_with_transfer, transfer_texts  # noqa: E402
from rightsize.evaluate import subsample  # noqa: E402
from rightsize.ladder import load_ladder  # noqa: E402
from rightsize.tasks import load_data, load_task, normalized  # noqa: E402


def test_the_transfer_set_is_train_texts_outside_the_sample_and_the_held_out_splits(tiny_task):
    data = load_data(load_task(tiny_task))
    texts, counts = transfer_texts(tiny_task, train_limit=20, size=10, seed=0)
    sample, _ = subsample(data.train, 20, 0)  # what evaluate_rung fits on with --train-limit 20 --seed 0
    outside = {normalized(t) for t in sample + data.validation.texts + data.test.texts}
    assert len(texts) == counts["transfer"] == 10 and len({normalized(t) for t in texts}) == 10
    assert not {normalized(t) for t in texts} & outside
    assert set(texts) <= set(data.train.texts)
    assert transfer_texts(tiny_task, train_limit=20, size=10, seed=0)[0] == texts  # seeded
    assert transfer_texts(tiny_task, train_limit=20, size=10, seed=1)[0] != texts


def test_the_ladder_names_the_transfer_set_for_each_student_and_loads(tmp_path):
    (tmp_path / "transfer.jsonl").write_text('{"text": "an unlabelled text"}\n')
    (tmp_path / "ladder.yaml").write_text(yaml.safe_dump(ladder_with_transfer("transfer.jsonl")))
    ladder = load_ladder(tmp_path / "ladder.yaml")
    students = [s for s in ladder.rungs if s.kind == "distill"]
    assert [s.name for s in students if s.knobs.get("transfer")] == [s.name for s in students
                                                                    if s.name.endswith(WITH_TRANSFER)]
    assert len(students) == 4 and all(s.knobs["transfer"] == str(tmp_path / "transfer.jsonl")
                                      for s in students if s.name.endswith(WITH_TRANSFER))
    assert all(s.knobs["teacher"] == ladder["mpnet-probe"].config() for s in students)
