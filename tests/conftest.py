"""Shared fixtures: a tiny sentence encoder built from a config, and a small task on disk.

Nothing here touches the network: the encoder is a 2-layer BERT with random weights and a
40-word vocabulary, saved as a real sentence-transformers folder, so every code path (tokenize,
forward, pool, FAISS, probe) runs for real in milliseconds.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from rightsize.energy.counter import StepFree

# Child processes (the CLI and writers the fault tests start) import this checkout's rightsize, not the
# copy an editable install of another checkout points at.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                          os.environ.get("PYTHONPATH")]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(autouse=True)
def _own_embedding_cache(monkeypatch, tmp_path_factory):
    """Each test gets an empty embedding cache: never the user's, never another test's hits."""
    monkeypatch.setenv("RIGHTSIZE_CACHE_DIR", str(tmp_path_factory.mktemp("embedding-cache")))


@pytest.fixture(autouse=True)
def _quick_energy_repeats(monkeypatch):
    """Five repeated inference windows of one pass each, never grown (growth 1), with a budget that
    a loaded machine does not exhaust: evaluations stay fast and always have an interval."""
    from rightsize import energy_repeats

    monkeypatch.setattr(energy_repeats, "POLICY", energy_repeats.RepeatPolicy(window_s=0.0, growth=1, budget_s=60.0))


class ScriptedCounter(StepFree):
    """Energy appears only where a test adds it."""

    name = "fake"
    source = "fake"

    def __init__(self) -> None:
        self.joules = 0.0

    def read(self) -> dict[str, float]:
        return {"fake": self.joules}

    def describe(self) -> dict:
        return {}

    def close(self) -> None:
        pass


@pytest.fixture
def counter(monkeypatch) -> ScriptedCounter:
    """A counter charged 1 J for each text an encoder actually runs through its model (meter it
    with ``Meter([counter])``): every joule in a record is then an exact count of texts encoded."""
    from rightsize.encoder import Encoder

    counter = ScriptedCounter()
    real_forward = Encoder._forward

    def forward(self, features):
        counter.joules += float(features["input_ids"].shape[0])
        return real_forward(self, features)

    monkeypatch.setattr(Encoder, "_forward", forward)
    return counter


WORDS = {
    "sports": "match goal team player score win league coach".split(),
    "money": "bank card loan cash account transfer fee rate".split(),
    "weather": "rain sun cloud storm wind snow cold warm".split(),
}
FILLER = "the a is of and to in it".split()


def build_tiny_encoder(folder: Path, layers: int = 2, words: bool = True) -> Path:
    """A 2-layer BERT of hidden size 32 as a sentence-transformers folder. ``words=False`` gives it a
    tokenizer that knows no word (each reads as [UNK]): an encoder that is at chance on any task."""
    from sentence_transformers import SentenceTransformer
    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer import modules as st_models
    except ImportError:
        from sentence_transformers import models as st_models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    hf = folder / "hf"
    hf.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + FILLER + [w for ws in WORDS.values() for w in ws]
    known = vocab if words else vocab[:5]
    # The vocabulary itself, not a file: transformers 5 ignores ``vocab_file`` and would read every word as [UNK].
    tokenizer = BertTokenizerFast(vocab={word: i for i, word in enumerate(known)})
    import torch

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    transformer = st_models.Transformer(str(hf), max_seq_length=32)
    pooling = st_models.Pooling(transformer.get_embedding_dimension(), "mean")
    st_dir = folder / "st"
    SentenceTransformer(modules=[transformer, pooling]).save(str(st_dir))
    return st_dir


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="session")
def blind_encoder(tmp_path_factory) -> Path:
    """The tiny encoder reading every word as [UNK]: hopeless on any task (what pruning tests need)."""
    return build_tiny_encoder(tmp_path_factory.mktemp("blind-encoder"), words=False)


def make_examples(n_per_class: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for label, words in WORDS.items():
        for _ in range(n_per_class):
            text = " ".join(rng.choice(words) if rng.random() < 0.6 else rng.choice(FILLER) for _ in range(8))
            rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def tiny_task(tmp_path) -> Path:
    """A 3-class task: 60 train (validation carved from it), 30 test."""
    write_jsonl(tmp_path / "data" / "train.jsonl", make_examples(20, seed=1))
    write_jsonl(tmp_path / "data" / "test.jsonl", make_examples(10, seed=2))
    task = tmp_path / "tiny.yaml"
    task.write_text(
        "name: tiny\n"
        "data: {train: data/train.jsonl, test: data/test.jsonl}\n"
        "metric: accuracy\n"
        "target: {within: 0.05}\n"
        "validation_fraction: 0.25\n"
    )
    return task


@pytest.fixture
def tiny_ladder(tmp_path, tiny_encoder) -> Path:
    ladder = tmp_path / "ladder.yaml"
    ladder.write_text(
        "rungs:\n"
        "  - {name: tfidf, kind: tfidf}\n"
        f"  - {{name: tiny-knn, kind: knn, model: '{tiny_encoder}', k: 5}}\n"
        f"  - {{name: tiny-probe, kind: probe, model: '{tiny_encoder}', batch_size: 8}}\n"
    )
    return ladder
