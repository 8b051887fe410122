"""Distilled students of mpnet-probe with and without a transfer set, against the same students
trained on the gold labels: accuracy [95% CI], fit J, J/query and break-even against the teacher.

The transfer set is the task's own train split less the `--train-limit` sample the rungs fit on
(drawn by the evaluator's own `subsample`, same seed), less every text that is in that sample,
validation or test (compared as the leakage check compares texts): unlabelled texts of the same
distribution that no evaluated example shares. It is written, with a copy of the trained ladder
that names it, to the run folder (OUT/transfer.jsonl, OUT/ladder.yaml); then OUT is evaluated and
its table printed (benchmarks/trained_figures.py).

Usage: python benchmarks/distill_transfer.py TASK --out DIR [--limit 300] [--train-limit 1000]
       [--transfer 3000] [--seed 0] [--meter estimate] [--prepare-only | --table-only]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]  # this checkout's rightsize, not an installed one

from trained_figures import figures, table  # noqa: E402

from rightsize.adequacy import comparable  # noqa: E402
from rightsize.evaluate import subsample  # noqa: E402
from rightsize.metrics import bootstrap_indices, bootstrap_scores  # noqa: E402
from rightsize.results import RunLog  # noqa: E402
from rightsize.tasks import load_data, load_task, normalized  # noqa: E402

TRAINED = ROOT / "rightsize" / "ladders" / "trained.yaml"
STUDENTS = ("tfidf-from-mpnet", "minilm-probe-from-mpnet")
GOLD = ("tfidf", "minilm-probe")
TEACHER = "mpnet-probe"
WITH_TRANSFER = "-transfer"  # suffix of a student's name taught on the transfer set too


def transfer_texts(task_file: Path, train_limit: int, size: int, seed: int) -> tuple[list[str], dict]:
    """Up to ``size`` distinct train texts outside the evaluator's train sample, validation and test,
    in a seeded random order; and counts saying where they came from."""
    data = load_data(load_task(task_file))
    sample, _ = subsample(data.train, train_limit, seed)
    held = {normalized(t) for split in (data.validation, data.test) if split is not None for t in split.texts}
    excluded = held | {normalized(t) for t in sample}
    pool: dict[str, str] = {}
    for text in data.train.texts:
        pool.setdefault(normalized(text), text)
    candidates = [text for norm, text in pool.items() if norm not in excluded]
    order = np.random.default_rng(seed).permutation(len(candidates))[:size]
    chosen = [candidates[i] for i in sorted(order)]
    return chosen, {"train": len(data.train.texts), "train_sample": len(sample),
                    "distinct_outside_sample_and_held_out": len(candidates), "transfer": len(chosen)}


def ladder_with_transfer(transfer: str) -> dict:
    """The trained ladder's frozen baselines, teacher and students, plus each student again taught on
    ``transfer`` too (a path relative to the ladder file)."""
    ladder = yaml.safe_load(TRAINED.read_text())
    rungs = {r["name"]: r for r in ladder["rungs"]}
    kept = [rungs[name] for name in (*GOLD, *STUDENTS)]
    kept += [{**copy.deepcopy(rungs[name]), "name": name + WITH_TRANSFER, "transfer": transfer} for name in STUDENTS]
    return {"description": f"distillation with and without a transfer set ({transfer}), from {TRAINED.name}",
            "defaults": ladder.get("defaults", {}), "rungs": [*kept, rungs[TEACHER]]}


def evaluate(args: argparse.Namespace) -> bool:
    """Write the transfer set and the ladder into the run folder, then evaluate it (unless
    ``--prepare-only``: then False)."""
    args.out.mkdir(parents=True, exist_ok=True)
    texts, counts = transfer_texts(args.task, args.train_limit, args.transfer, args.seed)
    with open(args.out / "transfer.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    (args.out / "ladder.yaml").write_text(yaml.safe_dump(ladder_with_transfer("transfer.jsonl"), sort_keys=False))
    print(f"transfer set: {json.dumps(counts)}", file=sys.stderr)
    command = [sys.executable, "-m", "rightsize.cli", "evaluate", str(args.task), "--ladder", str(args.out / "ladder.yaml"),
               "--limit", str(args.limit), "--train-limit", str(args.train_limit), "--seed", str(args.seed),
               "--meter", args.meter, "--out", str(args.out), "--quiet"]
    print("$ " + " ".join(command[2:]), file=sys.stderr)
    if args.prepare_only:
        return False
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return True


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", type=Path)
    p.add_argument("--out", type=Path, required=True, help="run folder (outside the repository)")
    p.add_argument("--limit", type=int, default=300)
    p.add_argument("--train-limit", type=int, default=1000)
    p.add_argument("--transfer", type=int, default=3000, help="transfer texts to draw")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--meter", default="estimate")
    p.add_argument("--prepare-only", action="store_true", help="write the transfer set and ladder, evaluate nothing")
    p.add_argument("--table-only", action="store_true", help="print the tables of a finished run folder")
    args = p.parse_args(argv)

    if not args.table_only:
        if not evaluate(args):
            return
    rows = {r["config"]: r for r in figures(str(args.out), TEACHER)}
    order = (*GOLD, *STUDENTS, *(s + WITH_TRANSFER for s in STUDENTS), TEACHER)
    missing = [name for name in order if name not in rows]
    if missing:
        print(f"no ok record of {', '.join(missing)} in {args.out}", file=sys.stderr)
    print("\n".join(table([rows[name] for name in order if name in rows], TEACHER)))
    print("\n".join(paired_gains(args.out)))


def paired_gains(run_dir: Path, resamples: int = 2000) -> list[str]:
    """Each student's score minus the gold-trained student's on the same validation examples, with a
    paired percentile bootstrap interval (the same resampled rows for both) and the examples only
    one of the two gets right: the question a 300-example interval per config is too wide for."""
    records = {r.rung: r for r in comparable(RunLog(run_dir, create=False).records())}
    lines = ["| student | against | difference [95% CI, paired] | right only with the student | right only with gold |",
             "|---|---|---|---|---|"]
    for gold, student in [(g, s + suffix) for g, s in zip(GOLD, STUDENTS) for suffix in ("", WITH_TRANSFER)]:
        a, b = records.get(student), records.get(gold)
        if a is None or b is None or a.references != b.references:
            continue
        y, n_classes = np.asarray(a.references), len(a.label_names)
        idx = bootstrap_indices(len(y), resamples, seed=0)
        gains = (bootstrap_scores(a.metric, y, a.predictions, n_classes, idx)
                 - bootstrap_scores(b.metric, y, b.predictions, n_classes, idx))
        lo, hi = np.quantile(gains, [0.025, 0.975])
        right_a, right_b = np.asarray(a.predictions) == y, np.asarray(b.predictions) == y
        lines.append(f"| {student} | {gold} | {a.score(a.metric) - b.score(b.metric):+.3f} [{lo:+.3f}, {hi:+.3f}] "
                     f"| {int((right_a & ~right_b).sum())} | {int((right_b & ~right_a).sum())} |")
    return lines


if __name__ == "__main__":
    main()
