"""A task's splits loaded: its files read, missing splits carved (seeded, stratified), labels checked.

* ``train`` + ``validation`` (+ ``test``): every split comes from its file.
* ``train`` (+ ``test``) without ``validation``: a seeded, stratified ``validation_fraction`` of the train
  file is carved off as validation (``source == "carved from train"``); the rest stays train.
* ``all``: for datasets with no official split. A seeded, stratified ``test_fraction`` *of the whole file* is
  carved off as test, then ``validation_fraction`` *of the whole file* as validation; the rest is train
  (defaults: 70 / 15 / 15).

Carving moves examples whose texts are equal after :func:`normalized` (case folded, whitespace collapsed)
together, so a duplicate never sits on both sides of a carve; the fractions are of the distinct texts.

**The test split is only for confirming a final choice.** Selection (which rung, which hyper-parameters,
whether a rung meets the target) must use the validation split; the test split is read once, at the end, to
report the chosen configuration's held-out score. ``test`` is ``None`` when the task gives no test data.

Every split is returned in a seeded shuffled order (file splits are shuffled too; several datasets are
sorted by label on disk), so a prefix of ``Split.texts`` / ``Split.labels`` (``--limit``) is a random sample.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass

from rightsize.errors import RightsizeError
from rightsize.tasks.files import read_split
from rightsize.tasks.spec import TaskSpec

log = logging.getLogger(__name__)

_MAX_NAMED = 5  # how many offending labels an error message lists


@dataclass(frozen=True)
class Split:
    """One split. ``source`` is ``"file"``, ``"carved from train"`` or ``"carved from all"``."""

    name: str
    texts: list[str]
    labels: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class TaskData:
    """The loaded splits; ``labels`` is the sorted label set of train (validation/test labels are a subset)."""

    task: TaskSpec
    train: Split
    validation: Split
    test: Split | None
    labels: list[str]




def normalized(text: str) -> str:
    """A text as carving and the leakage check compare texts: case folded, whitespace collapsed."""
    return " ".join(text.casefold().split())


def _carve(
    texts: list[str], labels: list[str], fraction: float, seed: int, what: str
) -> tuple[list[int], list[int]]:
    """Split indices 0..n-1 into (kept, carved) with ``fraction`` of the distinct texts carved, stratified by
    label when possible.

    Examples whose texts are equal after :func:`normalized` move together (a group stratified by its most
    common label), so a duplicate never lands on both sides. A label held by a single group cannot be
    stratified; its group always stays in ``kept`` (so the label never ends up only in the carved split). If
    stratification is still impossible (fewer groups to carve than labels), one group of each label is held
    in ``kept`` and the carve is drawn unstratified from the others, with a warning; so ``kept`` always has
    every label.
    """
    from sklearn.model_selection import train_test_split

    by_text: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        by_text.setdefault(normalized(text), []).append(i)
    members = list(by_text.values())
    group_labels = [Counter(labels[i] for i in m).most_common(1)[0][0] for m in members]
    holders = Counter(y for m in members for y in {labels[i] for i in m})
    pinned = [g for g, m in enumerate(members) if any(holders[labels[i]] < 2 for i in m)]
    rest = [g for g, m in enumerate(members) if all(holders[labels[i]] >= 2 for i in m)]
    rare = sorted(y for y, n in holders.items() if n < 2)
    if rare:
        log.warning(
            "%s: %d label(s) have a single example and stay in train unstratified: %s",
            what, len(rare), ", ".join(rare[:_MAX_NAMED]) + (" ..." if len(rare) > _MAX_NAMED else ""),
        )
    n_carve = max(1, round(fraction * len(members)))
    distinct = f", {len(members)} distinct texts" if len(members) < len(texts) else ""
    if len(rest) <= n_carve:
        raise RightsizeError(f"{what}: too few examples ({len(labels)}{distinct}) to carve {fraction:g} of them off")
    rest_labels = [group_labels[g] for g in rest]
    try:
        kept, carved = train_test_split(rest, test_size=n_carve, stratify=rest_labels, random_state=seed)
    except ValueError as e:
        log.warning("%s: cannot stratify (%s); carving unstratified", what, e)
        anchors: dict[str, int] = {}
        for g in random.Random(seed).sample(rest, len(rest)):
            anchors.setdefault(group_labels[g], g)
        pool = sorted(set(rest) - set(anchors.values()))
        if len(pool) <= n_carve:
            raise RightsizeError(
                f"{what}: too few examples ({len(labels)}{distinct}, {len(holders)} labels) to carve {fraction:g} of "
                "them off"
            ) from None
        kept, carved = train_test_split(pool, test_size=n_carve, random_state=seed)
        kept = list(kept) + list(anchors.values())
    kept = list(kept) + pinned
    return [i for g in kept for i in members[int(g)]], [i for g in carved for i in members[int(g)]]


def _shuffled(name: str, texts: list[str], labels: list[str], source: str, seed: int) -> Split:
    order = list(range(len(texts)))
    random.Random(f"{seed}:{name}").shuffle(order)
    return Split(name, [texts[i] for i in order], [labels[i] for i in order], source)


def _take(name: str, texts: list[str], labels: list[str], idx: list[int], source: str, seed: int) -> Split:
    return _shuffled(name, [texts[i] for i in idx], [labels[i] for i in idx], source, seed)


def _label_list(labels: set[str]) -> str:
    names = sorted(labels)
    more = f" and {len(names) - _MAX_NAMED} more" if len(names) > _MAX_NAMED else ""
    return ", ".join(repr(n) for n in names[:_MAX_NAMED]) + more


def load_data(task: TaskSpec) -> TaskData:
    """Read the task's files, carve missing splits (seeded, stratified) and check the result.

    Returns train, validation and (if the task has one) test. The test split exists to confirm a final
    choice once; never select or tune on it. Raises :class:`RightsizeError` for any data problem.
    """
    seed = task.seed
    test: Split | None = None
    if "all" in task.data:
        texts, labels = read_split(task, "all")
        where = f"{task.data['all']} (data.all of {task.path})"
        rest, test_idx = _carve(texts, labels, task.test_fraction, seed, where)
        # validation_fraction is a fraction of the whole file, so rescale it to the remainder
        val_share = task.validation_fraction / (1 - task.test_fraction)
        train_pos, val_pos = _carve([texts[i] for i in rest], [labels[i] for i in rest], val_share, seed, where)
        train = _take("train", texts, labels, [rest[i] for i in train_pos], "carved from all", seed)
        validation = _take("validation", texts, labels, [rest[i] for i in val_pos], "carved from all", seed)
        test = _take("test", texts, labels, test_idx, "carved from all", seed)
    else:
        texts, labels = read_split(task, "train")
        if "validation" in task.data:
            train = _shuffled("train", texts, labels, "file", seed)
            validation = _shuffled("validation", *read_split(task, "validation"), "file", seed)
        else:
            where = f"{task.data['train']} (data.train of {task.path})"
            train_idx, val_idx = _carve(texts, labels, task.validation_fraction, seed, where)
            train = _take("train", texts, labels, train_idx, "carved from train", seed)
            validation = _take("validation", texts, labels, val_idx, "carved from train", seed)
        if "test" in task.data:
            test = _shuffled("test", *read_split(task, "test"), "file", seed)
        del texts, labels

    train_labels = set(train.labels)
    if len(train_labels) < 2:
        raise RightsizeError(
            f"{task.data.get('train', task.data.get('all'))}: train split of {task.path} has a single label "
            f"{next(iter(train_labels))!r}; a classifier needs at least two"
        )
    for split in (validation, test):
        if split is None:
            continue
        unseen = set(split.labels) - train_labels
        if unseen:
            if split.source == "file":
                origin = f"{task.data[split.name]}: data.{split.name} of {task.path}"
            else:
                origin = f"{task.path}: {split.name} ({split.source})"
            raise RightsizeError(
                f"{origin} has {len(unseen)} label(s) never seen in train: {_label_list(unseen)}"
            )
    return TaskData(task=task, train=train, validation=validation, test=test, labels=sorted(train_labels))
