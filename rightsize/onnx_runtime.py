"""Sentence encoders run by onnxruntime: the whole module graph exported to ONNX once, kept on disk,
run on the CPU (the ``runtime: onnx`` knob).

Why: the same weights can cost less, or more, per query under onnxruntime (its fusions, int8
kernels and thread pool) than under torch; a right-sizing tool measures that rather than assume it.

* Export: the loaded sentence-transformers module (transformer, pooling and the model's own layers
  after it, with the ``layers`` and ``attn_implementation`` knobs already applied) with batch and
  sequence axes dynamic, by the TorchScript exporter (opset 17) and, where that fails or its graph
  does not reproduce torch, by ``torch.onnx.export(dynamo=True)`` (opset 18; it captures Gemma 3,
  which TorchScript does not). TorchScript first because onnxruntime runs its graph faster: with
  MiniLM-L6 at one thread, in one process, its fp32 graph took 0.99x torch's CPU time against the
  dynamo graph's 0.81x, int8 1.44x against 1.18x, same vectors (the dynamo graph keeps GELU unfused
  and slices around its attention); it also exports in 3 s instead of 25 s. onnxruntime's BERT
  fusion pass (Attention, SkipLayerNormalization, EmbedLayerNormalization) made it slower (0.84x
  fp32, 1.39x int8), so it is not run. Every export is checked against torch on texts of other
  lengths and another batch size (cosine >= :data:`CHECK_COSINE`) before it is used.
* int8: onnxruntime's dynamic quantization of the fp32 export: MatMul weights int8 per output
  channel, activations quantized per batch as it runs. MatMuls that narrow their input (the
  feed-forward down-projection, whose input after the activation carries outliers) stay fp32.
  Measured with MiniLM-L6 on 1,000 SST-2 texts at one thread: least cosine to torch fp32 0.973
  (mean 0.995); quantizing them too is faster but gave 0.959 (0.9905); per-tensor weights 0.88 (on
  300 texts). The vectors come first; throughput and why 0.99 is out of reach of per-tensor
  activation scales are in benchmarks/README.md.
* Cache: ``<embedding cache root>/onnx/<key>/model.onnx``, key = sha256 of the weights' hash, layers,
  attention kernel, precision, :data:`RECIPE` and the torch / onnx / onnxruntime versions; written
  in a temporary folder and renamed into place. Without an embedding cache (``--no-cache``) the export lives in a
  temporary folder for the encoder's lifetime.
* Threads: the session's ``intra_op_num_threads`` is the ``threads`` knob (unset: onnxruntime's
  default, one per physical core); spinning idle threads is off, so waiting costs no CPU time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rightsize.errors import RightsizeError

log = logging.getLogger(__name__)

ONNX_PRECISIONS = ("fp32", "int8")
CHECK_COSINE = 0.999
# How exports are made, in the order tried, and how int8 quantizes: part of the cache key, so a
# change here makes new exports instead of reusing old ones. Opsets: TorchScript's newest that
# onnxruntime's fusions know, and the dynamo exporter's own (no version conversion afterwards).
RECIPE = {"exporters": (("torchscript", 17), ("dynamo", 18)),
          "int8": {"op_types": ("MatMul",), "keep_fp32": "narrowing", "per_channel": True, "weights": "QInt8"}}
# Texts of several lengths that the exported graph must reproduce (none is the export's own example).
CHECK_TEXTS = (
    "How far is the moon from the earth?",
    "I was charged twice for the same coffee this morning and would like one of the payments back.",
    "ok",
    "Which river flows through Paris, and how long is it from its source to the sea?",
    "Great film.",
)
_EXAMPLE = ("an example", "a somewhat longer example sentence")


def export_key(facts: dict[str, Any]) -> str:
    """The export's folder name: what the graph depends on, plus the versions that write and run it."""
    import onnx
    import onnxruntime
    import torch

    blob = {**facts, "recipe": RECIPE, "torch": torch.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:24]


class OnnxEncoder:
    """One ONNX export of an encoder, in an onnxruntime session: padded token ids in, sentence
    embeddings out (as the torch module gives them: normalization is the caller's)."""

    def __init__(self, path: Path, threads: int | None, check_cosine: float | None = None,
                 exporter: str | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: onnxruntime's default
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a truncated or foreign file: say which
            raise RightsizeError(f"onnxruntime cannot load {path}: {exc}".splitlines()[0]) from None
        self.path = path
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.check_cosine = check_cosine  # least cosine to torch fp32 on CHECK_TEXTS, for the record
        self.exporter = exporter  # which of RECIPE's exporters made the graph, for the record

    def __call__(self, features: dict) -> np.ndarray:
        feed = {name: np.asarray(features[name], dtype=np.int64) for name in self.input_names}
        (out,) = self.session.run(None, feed)
        return out


def prepare(st, facts: dict[str, Any], precision: str, threads: int | None, root: Path) -> OnnxEncoder:
    """The ONNX encoder for the loaded sentence-transformers module ``st`` (fp32), at ``precision``:
    reused from ``root/<key>`` when there, else exported, checked and (int8) quantized there."""
    if precision not in ONNX_PRECISIONS:
        raise RightsizeError(f"runtime onnx runs precision {' or '.join(ONNX_PRECISIONS)}, not {precision}")
    folder = root / export_key({**facts, "precision": precision})
    path, report = folder / "model.onnx", folder / "check.json"
    if not (path.is_file() and report.is_file()):
        _build(st, folder, precision)
    with contextlib.suppress(OSError, ValueError, KeyError):
        checked = json.loads(report.read_text())
        return OnnxEncoder(path, threads, checked["cosine"], checked.get("exporter"))
    return OnnxEncoder(path, threads)


def _build(st, folder: Path, precision: str) -> None:
    """Export (and quantize) into a temporary folder beside ``folder``, then rename it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        fp32 = work / "fp32.onnx"
        exporter, cosine = _export(st, fp32)
        if precision == "int8":
            _quantize(fp32, work / "model.onnx")
            fp32.unlink()
            cosine = _check(st, OnnxEncoder(work / "model.onnx", threads=None))
        else:
            fp32.rename(work / "model.onnx")
        (work / "check.json").write_text(json.dumps({"cosine": cosine, "texts": len(CHECK_TEXTS),
                                                     "exporter": exporter}))
        try:
            os.rename(work, folder)
        except OSError:
            if not (folder / "model.onnx").is_file():  # not a concurrent export that got there first
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _traced(st, names: Sequence[str]):
    """What gets traced: token ids in the tokenizer's order in, ``sentence_embedding`` out."""
    import torch

    class Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.st = st

        def forward(self, *tensors):
            return self.st(dict(zip(names, tensors)))["sentence_embedding"]

    return Graph().eval()


def _export(st, path: Path) -> tuple[str, float]:
    """Export ``st`` to ``path`` by the first of RECIPE's exporters whose graph reproduces torch:
    that exporter's name and the graph's least cosine to torch. RightsizeError when none does."""
    failures = []
    for name, opset in RECIPE["exporters"]:
        try:
            _EXPORTERS[name](st, path, opset)
        except Exception as exc:  # an architecture this exporter cannot capture: try the next
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            failures.append(f"{name}: {exc.__class__.__name__}: {first}")
            continue
        cosine = _check(st, OnnxEncoder(path, threads=None))
        if cosine >= CHECK_COSINE:
            return name, cosine
        failures.append(f"{name}: cosine {cosine:.4f} < {CHECK_COSINE} on texts of other lengths")
    raise RightsizeError(f"cannot export this encoder to ONNX ({'; '.join(failures)}); use runtime torch")


@contextlib.contextmanager
def _quiet_export():
    """The exporters print their steps, warn, and log the torchvision ops they cannot register; a
    failure still raises."""
    import io
    import warnings

    import torch

    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            registration.setLevel(level)


def _export_torchscript(st, path: Path, opset: int) -> None:
    import torch

    example = st.tokenizer(list(_EXAMPLE), padding=True, return_tensors="pt")
    names = list(example.keys())
    with _quiet_export():
        torch.onnx.export(_traced(st, names), tuple(example[n] for n in names), str(path), dynamo=False,
                          input_names=names, output_names=["sentence_embedding"], opset_version=opset,
                          dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names},
                                        "sentence_embedding": {0: "batch"}})


def _export_dynamo(st, path: Path, opset: int) -> None:
    import torch

    example = st.tokenizer(list(_EXAMPLE), padding=True, return_tensors="pt")
    names = list(example.keys())
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with _quiet_export():
        torch.onnx.export(_traced(st, names), tuple(example[n] for n in names), str(path), dynamo=True,
                          input_names=names, output_names=["sentence_embedding"], opset_version=opset,
                          dynamic_shapes=(tuple({0: batch, 1: sequence} for _ in names),),
                          external_data=False, verbose=False)


_EXPORTERS = {"torchscript": _export_torchscript, "dynamo": _export_dynamo}


def _quantize(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    narrowing = [n.name for n in graph.node if n.op_type == "MatMul" and len(shapes.get(n.input[1], ())) == 2
                 and shapes[n.input[1]][0] > shapes[n.input[1]][1]]
    root, advice = logging.getLogger(), _DropPreprocessAdvice()
    root.addFilter(advice)
    try:
        recipe = RECIPE["int8"]
        quantize_dynamic(str(source), str(target), op_types_to_quantize=list(recipe["op_types"]),
                         per_channel=recipe["per_channel"], weight_type=QuantType[recipe["weights"]],
                         nodes_to_exclude=narrowing)
    finally:
        root.removeFilter(advice)


class _DropPreprocessAdvice(logging.Filter):
    """The quantizer advises its shape-inference pre-pass on the root logger at every call. Measured
    on MiniLM-L6 it changed neither speed nor cosine (its symbolic pass fails on these exports)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def _check(st, encoder: OnnxEncoder) -> float:
    """Least cosine between the export's and torch's embeddings of CHECK_TEXTS, run as one batch and
    as batches of two (shapes other than the example's)."""
    import torch

    least = 1.0
    for size in (len(CHECK_TEXTS), 2):
        for start in range(0, len(CHECK_TEXTS), size):
            features = st.tokenizer(list(CHECK_TEXTS[start : start + size]), padding=True, return_tensors="pt")
            with torch.inference_mode():
                ref = st(dict(features))["sentence_embedding"].float().numpy()
            got = encoder({k: v.numpy() for k, v in features.items()})
            cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1) + 1e-12)
            least = min(least, float(cos.min()))
    return least
