"""What every benchmark script shares: real texts, the machine's description, and one JSON result.

Each benchmark prints exactly one JSON object on stdout (progress goes to stderr), shaped as::

    {"benchmark": name, "target": "...", "met": true|false|null, "figures": {...}, "config": {...},
     "machine": {...}, "seconds": wall time of the script}

``met`` is null where a benchmark has no pass/fail target (it only reports).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("RIGHTSIZE_SHARED_DATA", ROOT.parent / "shared" / "data"))
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
_START = time.perf_counter()


def quiet() -> None:
    """Offline and silent libraries: a benchmark never reaches the hub, and its stdout is JSON only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    warnings.filterwarnings("ignore")


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _START:7.1f}s] {message}", file=sys.stderr, flush=True)


def read_texts(dataset: str, n: int, split: str = "train", data_root: Path = DEFAULT_DATA) -> list[str]:
    """The first ``n`` texts of ``<data_root>/<dataset>/<split>.jsonl`` (repeated if the file is shorter)."""
    return read_examples(dataset, n, split, data_root)[0]


def read_examples(dataset: str, n: int, split: str = "train",
                  data_root: Path = DEFAULT_DATA) -> tuple[list[str], list[str]]:
    """The first ``n`` texts and labels of ``<data_root>/<dataset>/<split>.jsonl`` (repeated if the
    file is shorter)."""
    path = data_root / dataset / f"{split}.jsonl"
    if not path.exists():
        raise SystemExit(f"benchmark data missing: {path} (set RIGHTSIZE_SHARED_DATA)")
    texts: list[str] = []
    labels: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                texts.append(row["text"])
                labels.append(str(row.get("label")))
                if len(texts) == n:
                    break
    if not texts:
        raise SystemExit(f"benchmark data empty: {path}")
    while len(texts) < n:  # only for sizes beyond the file: cycle, and say so in the config
        labels.extend(labels[: n - len(texts)])
        texts.extend(texts[: n - len(texts)])
    return texts, labels


def machine() -> dict[str, Any]:
    from rightsize.environment import cpu_model

    facts: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                             "platform": platform.platform()}
    try:
        facts["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        facts["torch"] = torch.__version__
        facts["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM), MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(name: str, target: str, met: bool | None, figures: dict[str, Any], config: dict[str, Any],
         **extra: Any) -> None:
    """Print the one JSON result (``extra``: more top-level facts, such as the meter's description)."""
    result = {"benchmark": name, "target": target, "met": met, "figures": figures, "config": config,
              "machine": machine(), **extra, "seconds": round(time.perf_counter() - _START, 2)}
    print(json.dumps(result, indent=None, sort_keys=False))


def small_encoder(folder: Path, hidden: int = 128, layers: int = 2) -> Path:
    """A small sentence encoder with MiniLM's real tokenizer (so texts split into the same tokens)
    and a narrow BERT body with random weights: a fast stand-in where only the pipeline's
    behaviour is measured (scaling), never accuracy. Saved as a sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer import modules as st_modules
    except ImportError:
        from sentence_transformers import models as st_modules
    from rightsize.models import resolve_model

    st_dir = folder / "st"
    if (st_dir / "modules.json").exists():
        return st_dir
    hf = folder / "hf"
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(MINILM)))
    tokenizer.save_pretrained(hf)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=4 * hidden, max_position_embeddings=512)
    BertModel(config).save_pretrained(hf)
    transformer = st_modules.Transformer(str(hf), max_seq_length=64)
    pooling = st_modules.Pooling(transformer.get_embedding_dimension(), "mean")
    SentenceTransformer(modules=[transformer, pooling]).save(str(st_dir))
    return st_dir
