"""GGUF causal LMs (how Gemma-3-270M, Qwen2.5-Coder-1.5B and SmolLM2 arrive): a tiny Llama written
as a GGUF file in the test, with llama.cpp's tensor names and q/k layout and a byte-level BPE
vocabulary (one merge), must load through the lm rung's path (the one .gguf in a folder, dequantized by
transformers) with the same logits as the torch model it was written from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

HEADS, KV_HEADS = 2, 1


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte (what byte-level BPE vocabularies list)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's convert script stores q/k rows interleaved for its rotary kernel; transformers
    undoes it on load."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(folder: Path):
    import gguf
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokens = list(_bytes_to_unicode().values()) + ["<s>", "</s>", "ra"]  # one merge: r + a
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokens), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=64,
                         rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=256, eos_token_id=257)
    model = LlamaForCausalLM(config).eval()
    folder.mkdir(parents=True)
    writer = gguf.GGUFWriter(str(folder / "tiny.gguf"), "llama")
    writer.add_context_length(64)
    writer.add_embedding_length(16)
    writer.add_block_count(2)
    writer.add_feed_forward_length(32)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(16 // HEADS)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.NORMAL] * 256 + [gguf.TokenType.CONTROL] * 2 + [gguf.TokenType.NORMAL])
    writer.add_token_merges(["r a"])
    writer.add_bos_token_id(256)
    writer.add_eos_token_id(257)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for i in range(2):
        for theirs, ours in per_layer.items():
            names[f"model.layers.{i}.{theirs}.weight"] = f"blk.{i}.{ours}.weight"
    for name, tensor in model.state_dict().items():
        w = tensor.float().numpy()
        if name.endswith("q_proj.weight"):
            w = _permute(w, HEADS)
        elif name.endswith("k_proj.weight"):
            w = _permute(w, KV_HEADS)
        writer.add_tensor(names[name], np.ascontiguousarray(w))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gguf") / "tiny-llama"
    return folder, write_tiny_gguf(folder)


def test_a_gguf_folder_loads_with_the_logits_it_was_written_from(tiny_gguf):
    import torch

    from rightsize.rungs.lm import _gguf_file

    folder, model = tiny_gguf
    name = _gguf_file(str(folder), folder)
    assert name == "tiny.gguf"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=name, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=name, local_files_only=True)
    ids = tokenizer("rain on the bank", add_special_tokens=False)["input_ids"]
    assert len(ids) == len("rain on the bank") - 1  # one byte, one token, but "ra" is merged
    assert tokenizer.convert_ids_to_tokens(ids[:2]) == ["ra", "i"]
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits
        got = loaded(torch.tensor([ids])).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_the_lm_rung_runs_a_gguf_folder(tiny_gguf, tiny_task):
    from rightsize.energy import make_meter
    from rightsize.evaluate import evaluate_rung
    from rightsize.models import count_parameters
    from rightsize.rungs import RunContext, RungSpec
    from rightsize.tasks import load_data, load_task

    folder, model = tiny_gguf
    spec = RungSpec("tiny-gguf", "lm", str(folder), {"batch_size": 4})
    record = evaluate_rung(load_data(load_task(tiny_task)), spec, make_meter("estimate"), RunContext())
    assert record.status == "ok", record.error
    assert record.facts["gguf_file"] == "tiny.gguf" and record.facts["lm_params"] == count_parameters(model)
    assert sorted(record.label_names) == ["money", "sports", "weather"]
    assert len(record.predictions) == record.n_examples and set(record.predictions) <= {0, 1, 2}
