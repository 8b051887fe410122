"""The `lm` rung: label scoring by log-likelihood with a tiny Llama built in a fixture.

The tiny model has random weights, so its predictions mean nothing; what is tested is that the
shared-prefix / option-tree scoring equals plain full-sequence scoring, that a model ignoring the
custom mask is caught, and that the rung (zero-shot and retrieval few-shot) yields sound records.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import FILLER, WORDS
from rightsize.cli import cli
from rightsize.energy import make_meter
from rightsize.errors import RightsizeError
from rightsize.evaluate import evaluate_rung
from rightsize.ladder import parse_ladder
from rightsize.lm_scoring import ContinuationScorer
from rightsize.results import RunLog
from rightsize.rungs import RunContext, RungSpec
from rightsize.rungs.lm import LmRung, split_template, verbalize
from rightsize.tasks import load_data, load_task

PROMPT_WORDS = "Classify text into one of these categories Category Text sports money weather".split()


def build_tiny_lm(folder: Path) -> Path:
    """A 2-layer Llama with a word-level tokenizer (BOS added), saved as a transformers folder."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = ["<pad>", "<unk>", "<s>", "</s>", ":", ".", ","] + sorted(
        set(FILLER + PROMPT_WORDS + [w for ws in WORDS.values() for w in ws]))
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         bos_token_id=2, eos_token_id=3, pad_token_id=0)
    LlamaForCausalLM(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="module")
def lm_model(tiny_lm):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(tiny_lm)).eval()


def reference_scores(model, prefix, prompts, options) -> np.ndarray:
    """One unpadded forward pass per (prompt, option): the definition of the score."""
    import torch

    out = np.zeros((len(prompts), len(options)))
    with torch.inference_mode():
        for i, prompt in enumerate(prompts):
            for j, option in enumerate(options):
                seq = list(prefix) + list(prompt) + list(option)
                logp = torch.log_softmax(model(input_ids=torch.tensor([seq])).logits[0].float(), -1)
                start = len(seq) - len(option)
                out[i, j] = sum(float(logp[start + k - 1, t]) for k, t in enumerate(option))
    return out


def random_case(seed: int, n_prompts: int = 4, prefix_len: int = 6):
    rng = np.random.default_rng(seed)
    prefix = rng.integers(4, 40, size=prefix_len).tolist()
    prompts = [rng.integers(4, 40, size=int(n)).tolist() for n in rng.integers(1, 9, size=n_prompts)]
    options = [rng.integers(4, 40, size=int(n)).tolist() for n in (1, 3, 2, 4)]
    return prefix, prompts, options


@pytest.mark.parametrize("prefix_len", [6, 0])
def test_shared_prefix_tree_scoring_equals_full_sequences(lm_model, prefix_len):
    prefix, prompts, options = random_case(1, prefix_len=prefix_len)
    scorer = ContinuationScorer(lm_model, batch_size=3)  # 2 batches of uneven prompt lengths: padding
    shared = scorer.score_shared(prefix, prompts, options)
    expected = reference_scores(lm_model, prefix, prompts, options)
    np.testing.assert_allclose(shared, expected, atol=1e-5)
    np.testing.assert_allclose(scorer.score_naive(prefix, prompts, options), expected, atol=1e-5)


def test_the_first_call_verifies_and_keeps_the_shared_path(lm_model):
    prefix, prompts, options = random_case(2)
    scorer = ContinuationScorer(lm_model, batch_size=4)
    scores = scorer.score(prefix, prompts, options)
    assert scorer.kv_reuse is True
    np.testing.assert_allclose(scores, reference_scores(lm_model, prefix, prompts, options), atol=1e-5)


def test_a_model_that_ignores_the_tree_mask_falls_back_to_plain_scoring(lm_model, caplog):
    import torch

    class IgnoresCustomMasks(torch.nn.Module):
        """Drops 4D masks, as a model with its own mask logic might: the tree would leak."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, use_cache=None,
                    logits_to_keep=0):
            if attention_mask is not None and attention_mask.dim() == 4:
                attention_mask = None
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                              cache=cache, use_cache=use_cache, logits_to_keep=logits_to_keep)

    prefix, prompts, options = random_case(3)
    scorer = ContinuationScorer(IgnoresCustomMasks(lm_model), batch_size=4)
    with caplog.at_level(logging.WARNING, logger="rightsize.lm_scoring"):
        scores = scorer.score(prefix, prompts, options)
    assert scorer.kv_reuse is False
    assert "disagrees" in caplog.text
    np.testing.assert_allclose(scores, reference_scores(lm_model, prefix, prompts, options), atol=1e-5)


def test_verbalize_and_template_split():
    assert verbalize("lost_or_stolen_card") == "lost or stolen card"
    assert verbalize("card-arrival") == "card arrival"
    assert verbalize("ABBR", {"ABBR": "abbreviation"}) == "abbreviation"
    head, query = split_template("Labels: {labels}.\n\n{shots}Q: {text}\nA:")
    assert head == "Labels: {labels}.\n\n" and query == "Q: {text}\nA:"
    head, query = split_template("Labels: {labels}\nQ: {text}\nA:")  # no {shots}: cut at the {text} line
    assert head == "Labels: {labels}\n" and query == "Q: {text}\nA:"


@pytest.mark.parametrize("template, fragment", [
    ("no placeholder", "{text} exactly once"),
    ("{text} then {shots}", "before {text}"),
    ("{text} {text}", "{text} exactly once"),
])
def test_bad_templates_are_rejected_when_the_ladder_is_read(template, fragment):
    doc = {"rungs": [{"name": "lm", "kind": "lm", "model": "x/y", "template": template}]}
    with pytest.raises(RightsizeError, match=fragment.replace("{", r"\{").replace("}", r"\}")):
        parse_ladder(doc, "ladder.yaml")


def test_label_words_must_map_to_words():
    doc = {"rungs": [{"name": "lm", "kind": "lm", "model": "x/y", "label_words": {"money": ""}}]}
    with pytest.raises(RightsizeError, match="label 'money' needs non-empty words"):
        parse_ladder(doc, "ladder.yaml")


@pytest.fixture
def data(tiny_task):
    return load_data(load_task(tiny_task))


def test_zero_shot_record(data, tiny_lm, lm_model):
    spec = RungSpec("lm0", "lm", str(tiny_lm), {"batch_size": 4})
    record = evaluate_rung(data, spec, make_meter("estimate"), RunContext())
    assert record.status == "ok", record.error
    assert record.n_params == sum(p.numel() for p in lm_model.parameters())
    facts = record.facts
    assert facts["kv_reuse"] is True and facts["labels_scored"] == 3 and facts["prefix_tokens"] > 5
    assert len(record.predictions) == record.n_examples == len(data.validation.texts)
    assert record.joules["infer"] > 0 and record.cache["misses"] == 0  # no encoder: nothing to cache


class BagOfWords:
    """A retriever with meaningful neighbours (the random tiny encoder's embeddings nearly coincide)."""

    params = 0
    namespace = None
    vocab = sorted(set(FILLER + [w for ws in WORDS.values() for w in ws]))

    def encode(self, texts):
        out = np.zeros((len(texts), len(self.vocab)), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.split():
                out[i, self.vocab.index(word)] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def close(self):
        pass


def test_few_shot_puts_the_nearest_train_examples_last(data, tiny_lm, tiny_encoder):
    spec = RungSpec("lm2", "lm", str(tiny_lm), {"shots": 2, "retriever": str(tiny_encoder)})
    rung = LmRung(spec, RunContext(), make_meter("estimate"))
    rung.load()
    rung.retriever = BagOfWords()
    train = list(dict.fromkeys(data.train.texts))[:30]
    labels = [data.train.labels[data.train.texts.index(t)] for t in train]
    rung.fit(train, labels)
    shots = rung._shots([train[7], train[11]])
    assert [s[-1] for s in shots] == [7, 11]  # a train text's nearest neighbour is itself
    prompt = rung._prompt("rain storm", shots[0])
    assert prompt.endswith("Text: rain storm\nCategory:")
    assert prompt.index(train[shots[0][0]]) < prompt.index(train[7]) < prompt.index("rain storm")
    assert f"{train[7]}\nCategory: {verbalize(labels[7])}\n\n" in prompt
    rung.close()


@pytest.mark.parametrize("calibrate", [True, False])
def test_calibration_subtracts_the_content_free_score(data, tiny_lm, calibrate):
    spec = RungSpec("lm0", "lm", str(tiny_lm), {"calibrate": calibrate})
    rung = LmRung(spec, RunContext(), make_meter("estimate"))
    rung.load()
    rung.fit(data.train.texts, data.train.labels)
    texts = data.validation.texts[:6]
    raw = rung._scores([rung._ids(rung._prompt(t, [])) for t in texts])
    content_free = rung._scores([rung._ids("Text: N/A\nCategory:")])[0]
    np.testing.assert_allclose(rung.baseline, content_free if calibrate else 0.0, atol=1e-9)
    expected = [rung.classes[i] for i in (raw - (content_free if calibrate else 0.0)).argmax(axis=1)]
    assert rung.predict(texts) == expected
    rung.close()


def test_few_shot_record_counts_the_retriever(data, tiny_lm, tiny_encoder, lm_model):
    from sentence_transformers import SentenceTransformer

    spec = RungSpec("lm2", "lm", str(tiny_lm), {"shots": 2, "retriever": str(tiny_encoder), "batch_size": 4})
    record = evaluate_rung(data, spec, make_meter("estimate"), RunContext())
    assert record.status == "ok", record.error
    retriever = sum(p.numel() for p in SentenceTransformer(str(tiny_encoder)).parameters())
    assert record.n_params == sum(p.numel() for p in lm_model.parameters()) + retriever
    assert record.facts["retriever_params"] == retriever and record.facts["index"] == "flat"
    # the retriever embeds the train split (fit) and every query (infer): both are in the rung's cost
    assert record.cache["misses"] == record.n_train + record.n_examples


def test_models_lists_the_retriever_only_for_few_shot():
    zero = RungSpec("a", "lm", "org/lm", {})
    few = RungSpec("b", "lm", "org/lm", {"shots": 4, "retriever": "org/enc"})
    assert LmRung.models(zero) == ["org/lm"]
    assert LmRung.models(few) == ["org/lm", "org/enc"]


def test_optional_rung_with_a_missing_model_is_skipped(tiny_task, tmp_path):
    ladder = tmp_path / "l.yaml"
    ladder.write_text("rungs:\n  - {name: t, kind: tfidf}\n"
                      "  - {name: big, kind: lm, model: no-such-org/no-such-lm, optional: true}\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["evaluate", str(tiny_task), "--ladder", str(ladder), "--out", str(out),
                                      "--meter", "estimate", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "big skipped (optional)" in result.output and "no-such-org/no-such-lm" in result.output
    assert [r.rung for r in RunLog(out, create=False).records()] == ["t"]


def test_a_missing_retriever_stops_the_run_before_any_evaluation(tiny_task, tmp_path, tiny_lm):
    ladder = tmp_path / "l.yaml"
    ladder.write_text(f"rungs:\n  - {{name: t, kind: tfidf}}\n"
                      f"  - {{name: few, kind: lm, model: '{tiny_lm}', shots: 2, retriever: no-such-org/enc}}\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["evaluate", str(tiny_task), "--ladder", str(ladder), "--out", str(out)])
    assert result.exit_code == 2 and "no-such-org/enc" in result.output
    assert not (out / "runs.jsonl").exists()


@pytest.mark.slow
def test_smollm2_zero_shot_on_real_weights(data):
    """SmolLM2-135M (GGUF, dequantized): loads offline, tree scoring verified against plain scoring."""
    spec = RungSpec("smol", "lm", "HuggingFaceTB/SmolLM2-135M-Instruct", {"batch_size": 4})
    from rightsize.evaluate import EvalPlan

    record = evaluate_rung(data, spec, make_meter("estimate"), RunContext(), EvalPlan(limit=6))
    assert record.status == "ok", record.error
    assert record.facts["kv_reuse"] is True and record.facts["gguf_file"].endswith(".gguf")
    assert 130e6 < record.n_params < 140e6


def test_options_sharing_leading_tokens_are_fed_once(lm_model):
    from rightsize.lm_scoring import _Tree

    options = [[5, 6, 7], [5, 6, 8], [5, 9], [10]]
    tree = _Tree(options)
    assert tree.tokens == [5, 6]  # the prefixes (5,) and (5, 6) once each; last tokens are never fed
    assert tree.mask.tolist() == [[True, False], [True, True]]
    prefix, prompts, _ = random_case(4)
    scorer = ContinuationScorer(lm_model, batch_size=3)
    np.testing.assert_allclose(scorer.score_shared(prefix, prompts, options),
                               reference_scores(lm_model, prefix, prompts, options), atol=1e-5)


def test_optional_must_be_a_boolean():
    doc = {"rungs": [{"name": "lm", "kind": "lm", "model": "x/y", "optional": "yes"}]}
    with pytest.raises(RightsizeError, match="'optional' must be true or false"):
        parse_ladder(doc, "ladder.yaml")
    doc["rungs"][0]["optional"] = True
    spec = parse_ladder(doc, "ladder.yaml").rungs[0]
    assert spec.optional and "optional" not in spec.config()  # not part of what is evaluated
