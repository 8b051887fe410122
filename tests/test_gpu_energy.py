"""The energy a record carries on a GPU, with a fake board whose counter moves every 100 ms
(tests/fake_nvml.py) and rungs whose work is fake GPU time: inference repeated until the counter can
resolve it, phases that cannot be repeated flagged, uncertainty and net-of-idle energy by hand, the
embedding cache storing only resolved costs, a CUDA error failing one config and not the run, and
all of it shown by the terminal, the report and --json.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rightsize.cache import EmbeddingCache, text_keys
from rightsize.encoder import Encoder
from rightsize.token_batches import PackedTokens
from rightsize.energy import make_meter
from rightsize.evaluate import EvalPlan, evaluate_rung
from rightsize.ladder import load_ladder
from rightsize.records import Record
from rightsize.rungs import RunContext, RungSpec
from rightsize.rungs.tfidf import TfidfRung
from rightsize.tasks import load_data, load_task
from fake_nvml import FakeNvml, FakeTorchCuda

LOAD_W, IDLE_W, STEP_S, LIMIT_W = 400.0, 70.0, 0.1, 700.0


@pytest.fixture
def gpu(monkeypatch) -> FakeTorchCuda:
    return FakeTorchCuda(FakeNvml.of(1).install(monkeypatch)).install(monkeypatch)


@pytest.fixture
def meter(gpu):
    m = make_meter("nvml", device="cuda", clock=gpu.nvml.clock.clock)
    yield m
    m.close()


@pytest.fixture
def data(tiny_task):
    return load_data(load_task(tiny_task))


def gpu_tfidf(monkeypatch, gpu: FakeTorchCuda, load_s: float, fit_s: float, per_text_s: float) -> None:
    """TF-IDF whose phases also take fake GPU time: load ``load_s``, fit ``fit_s``, ``per_text_s`` a text."""
    work = gpu.nvml.work
    real = {name: getattr(TfidfRung, name) for name in ("load", "fit", "predict")}
    monkeypatch.setattr(TfidfRung, "load", lambda self: (real["load"](self), work(load_s))[0])
    monkeypatch.setattr(TfidfRung, "fit", lambda self, t, y: (real["fit"](self, t, y), work(fit_s))[0])
    monkeypatch.setattr(TfidfRung, "predict", lambda self, t: (real["predict"](self, t), work(per_text_s * len(t)))[0])


def gpu_encoder(monkeypatch, gpu: FakeTorchCuda, per_token_s: float) -> None:
    """Encoders whose real encoding also takes ``per_token_s`` of fake GPU time per token."""
    real = Encoder._compute

    def compute(self, texts, out=None, rows=None):
        vectors, tokens = real(self, texts, out=out, rows=rows)
        gpu.nvml.work(per_token_s * float(np.sum(tokens)))
        return vectors, tokens

    monkeypatch.setattr(Encoder, "_compute", compute)


# ------------------------------------------------------------------ a record's energy, by hand


def test_a_gpu_record_carries_net_and_gross_energy_its_uncertainty_and_flags(monkeypatch, gpu, meter, data):
    gpu_tfidf(monkeypatch, gpu, load_s=0.05, fit_s=1.5, per_text_s=0.004)
    record = evaluate_rung(data, RungSpec("tfidf", "tfidf"), meter, RunContext(device="cuda"), EvalPlan())
    assert record.status == "ok", record.error
    step, idle = meter.resolution_s, record.idle_watts
    assert step == pytest.approx(STEP_S, abs=1e-3) and idle == pytest.approx(IDLE_W, rel=0.01)
    assert record.energy_basis == "net-of-idle" and record.energy_resolution_s == step

    # load: 50 ms, half a step: below resolution, bounded by the board's power limit.
    assert record.below_resolution == ["load"]
    assert record.energy_uncertainty["load"] == pytest.approx(step * LIMIT_W)

    # fit: 1.5 s at 400 W, resolved. Gross is what the board read, net leaves the idle draw out.
    fit_gross, fit_s = record.joules_gross["fit"], record.seconds["fit"]
    assert fit_s == pytest.approx(1.5)
    assert record.energy_uncertainty["fit"] == pytest.approx(step * fit_gross / fit_s)  # ~40 J
    assert abs(fit_gross - LOAD_W * 1.5) <= record.energy_uncertainty["fit"]
    assert record.joules["fit"] == pytest.approx(fit_gross - idle * fit_s)
    assert record.energy_parts["fit"] == pytest.approx({"gpu:0": record.joules["fit"]})

    # infer: 4 ms a text is below resolution, so it ran until the window was MIN_STEPS steps long.
    n = record.n_examples
    one_pass = 0.004 * n
    passes = math.ceil(meter.min_window_s / one_pass - 1e-9)
    assert passes > 1 and record.infer_repeats == [passes]
    assert record.seconds["infer"] == pytest.approx(one_pass)  # per pass
    infer_gross = record.joules_gross["infer"]
    # The window's uncertainty (one step x its mean power), divided like the energy.
    assert record.energy_uncertainty["infer"] == pytest.approx(step * (infer_gross / one_pass) / passes)
    assert abs(record.joules["infer"] - (LOAD_W - IDLE_W) * one_pass) <= record.energy_uncertainty["infer"] + 0.01
    assert record.joules_per_query == pytest.approx(record.joules["infer"] / n)
    assert record.joules_per_query_gross == pytest.approx(infer_gross / n)
    assert record.energy_read_errors == []
    line = json.dumps(record.to_dict())  # every new field is JSON, and reads back as it was written
    again = Record.from_dict(json.loads(line))
    assert again == record and json.dumps(again.to_dict()) == line


def test_a_failed_read_marks_its_phase(monkeypatch, gpu, meter, data):
    gpu_tfidf(monkeypatch, gpu, load_s=0.0, fit_s=1.5, per_text_s=0.1)
    board = gpu.nvml.boards[0]
    real_fit = TfidfRung.fit

    def fit(self, t, y):
        real_fit(self, t, y)
        board.fail_reads = 1  # the read at the end of the fit's window fails

    monkeypatch.setattr(TfidfRung, "fit", fit)
    record = evaluate_rung(data, RungSpec("tfidf", "tfidf"), meter, RunContext(device="cuda"), EvalPlan())
    assert record.status == "ok" and record.energy_read_errors == ["fit"]


def test_a_cuda_error_at_a_window_edge_fails_that_config_not_the_run(monkeypatch, gpu, meter, data):
    gpu_tfidf(monkeypatch, gpu, load_s=0.0, fit_s=0.0, per_text_s=0.1)
    real_predict = TfidfRung.predict

    def faulting(self, texts):
        gpu.sync_error = RuntimeError("CUDA error: an illegal memory access was encountered")
        return real_predict(self, texts)

    monkeypatch.setattr(TfidfRung, "predict", faulting)
    failed = evaluate_rung(data, RungSpec("tfidf", "tfidf"), meter, RunContext(device="cuda"), EvalPlan())
    assert failed.status == "failed" and failed.failed_phase == "infer"
    assert failed.error == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert meter.open_windows == []
    gpu.sync_error = None  # the next config runs on (a real sticky CUDA error would fail it too)
    monkeypatch.setattr(TfidfRung, "predict", real_predict)
    ok = evaluate_rung(data, RungSpec("tfidf", "tfidf", knobs={"C": 1.0}), meter, RunContext(device="cuda"),
                       EvalPlan())
    assert ok.status == "ok"


def test_an_old_record_without_the_new_fields_still_reads():
    from rightsize import energy_quality
    from rightsize.tables import records_table

    old = Record.from_dict({"rung": "tfidf", "status": "ok", "metrics": {"accuracy": 0.9},
                            "ci": {"accuracy": [0.8, 0.95]}, "joules_per_query": 0.002, "joules_total": 3.0,
                            "seconds_total": 1.0, "energy_source": "rapl", "n_params": 1000, "n_examples": 10})
    assert old.basis == "gross" and old.gross_joules_per_query == 0.002 and "idle_watts" not in old.to_dict()
    assert energy_quality.jpq_uncertainty(old) is None and energy_quality.notes(old) == []
    assert energy_quality.reading_notes([old]) == []
    assert "2 mJ " in records_table([old], "accuracy") and "±" not in records_table([old], "accuracy")


# ------------------------------------------------------------------ the embedding cache


def test_the_cache_stores_a_cost_only_when_resolved_else_the_encode_rate(monkeypatch, gpu, meter, tiny_encoder,
                                                                          tmp_path):
    gpu_encoder(monkeypatch, gpu, per_token_s=0.01)
    cache = EmbeddingCache(tmp_path / "cache")
    enc = Encoder(str(tiny_encoder), device="cpu", cache=cache, meter=meter)
    enc.load()
    short = ["rain storm cold", "bank card fee"]  # ~10 tokens: 0.1 s, one step
    tokens_of = lambda texts: PackedTokens.of(enc.st.tokenizer, texts, enc.max_length).lengths.astype(float)  # noqa: E731

    enc.encode(short)
    assert cache.shards() == [] and enc.ledger.stored == 0  # unresolved, no rate yet: not kept
    assert cache.encode_rate(enc.namespace) is None

    long = [f"team goal win match {w}" for w in ("score", "league", "coach", "player", "rain", "sun", "cloud",
                                                  "storm", "wind", "snow", "cold", "warm", "bank", "card", "loan")]
    enc.encode(long)  # 15 texts x ~7 tokens x 10 ms: above one second, resolved
    assert enc.ledger.stored == len(long)
    rate = cache.encode_rate(enc.namespace)
    assert rate == pytest.approx((LOAD_W - IDLE_W) * 0.01, rel=0.1)  # net J per token: ~3.3 J
    served = cache.lookup(enc.namespace, text_keys(long), enc.dimension)
    assert served.found.all() and served.joules.sum() == pytest.approx(rate * tokens_of(long).sum())

    enc.encode(short)  # still unresolved, but now there is a rate: stored at its share
    served = cache.lookup(enc.namespace, text_keys(short), enc.dimension)
    assert served.found.all() and served.joules == pytest.approx(rate * tokens_of(short))
    charged = enc.ledger.charged_joules
    enc.encode(short)  # a hit is charged the rate's share, not a replayed 0 J or one-step reading
    assert enc.ledger.charged_joules - charged == pytest.approx(rate * tokens_of(short).sum())


def test_inference_that_filled_the_cache_is_flagged_a_cached_one_is_repeated(monkeypatch, gpu, meter, data,
                                                                             tiny_ladder, tmp_path):
    gpu_encoder(monkeypatch, gpu, per_token_s=0.005)
    real_lookup = EmbeddingCache.lookup

    def lookup(self, *args, **kwargs):
        gpu.nvml.clock.advance(0.01)  # reading shards takes host time; the GPU idles
        return real_lookup(self, *args, **kwargs)

    monkeypatch.setattr(EmbeddingCache, "lookup", lookup)
    context = RunContext(device="cpu", cache=EmbeddingCache(tmp_path / "cache"))
    knn = load_ladder(tiny_ladder)["tiny-knn"]
    cold = evaluate_rung(data, knn, meter, context, EvalPlan())
    assert cold.status == "ok"
    # The train encode (45 texts) is resolved and sets the rate; the validation encode (15 texts,
    # under a second) is stored at the rate's share, so repeating it would only read the cache.
    assert cold.infer_repeats == [1] and "infer" in cold.below_resolution
    assert cold.cache["misses"] == cold.n_train + cold.n_examples

    warm = evaluate_rung(data, RungSpec(knn.name, knn.kind, knn.model, {**knn.knobs, "k": 3}), meter, context,
                         EvalPlan())
    assert warm.status == "ok" and warm.cache["misses"] == 0
    # Served from the cache, the inference does the same work on every pass: repeated, and counted once.
    (passes,) = warm.infer_repeats
    assert passes > 1 and "infer" not in warm.below_resolution
    assert warm.cache["hits"] == warm.n_train + warm.n_examples
    # Charged once (not per pass): the validation texts' stored cost, the encode rate's share of their tokens.
    charged = warm.joules["infer"] - warm.joules_spent["infer"]
    enc = Encoder(knn.model, max_length=knn.knobs.get("max_length"))
    enc.load()
    tokens = PackedTokens.of(enc.st.tokenizer, list(data.validation.texts), enc.max_length).lengths.sum()
    rate = context.cache.encode_rate(cold.facts["embedding_cache"])
    assert charged == pytest.approx(rate * tokens)


# ------------------------------------------------------------------ shown: terminal, report, JSON


@pytest.fixture
def gpu_run(monkeypatch, gpu, meter, data, tmp_path):
    """A run folder with two TF-IDF records measured on the fake GPU, and its environment."""
    from rightsize import environment
    from rightsize.results import RunLog

    gpu_tfidf(monkeypatch, gpu, load_s=0.05, fit_s=1.5, per_text_s=0.004)
    out = tmp_path / "run"
    log = RunLog(out, create=True)
    log.write_environment(environment.collect("run-1", "cuda", meter.describe()))
    for c in (10.0, 1.0):
        spec = RungSpec("tfidf", "tfidf", knobs={"C": c})
        log.append(evaluate_rung(data, spec, meter, RunContext(device="cuda"), EvalPlan(), run_id="run-1"))
    return out


def test_the_terminal_shows_uncertainty_flags_and_basis(gpu_run):
    from rightsize import terminal
    from rightsize.results import RunLog

    records = RunLog(gpu_run, create=False).records()
    text = terminal.evaluation_text(records, gpu_run / "runs.jsonl")
    assert "±" in text and "below resolution: load" in text and "inference repeated x" in text
    idle = records[0].idle_watts
    assert idle == pytest.approx(IDLE_W, rel=0.01)
    assert f"J/query is net of the GPU's idle draw ({round(idle, 1):g} W, measured when the meter opened)" in text


def test_the_report_and_recommend_json_carry_them(gpu_run):
    from click.testing import CliRunner

    from rightsize.cli import cli

    result = CliRunner().invoke(cli, ["report", str(gpu_run)])
    assert result.exit_code == 0, result.output
    md = (gpu_run / "report.md").read_text()
    assert "±" in md and "below resolution: load" in md and "J/query is net of the GPU's idle draw" in md
    idle = json.loads((gpu_run / "runs.jsonl").read_text().splitlines()[0])["idle_watts"]
    assert (f"gpu:0: NVIDIA H200 (driver 570.86.15, power limit 700 W, MIG disabled), counter step 100 ms, "
            f"idle {idle:.1f} W") in md
    assert "±" in (gpu_run / "report.html").read_text()

    result = CliRunner().invoke(cli, ["recommend", str(gpu_run), "--json", "--no-confirm"])
    assert result.exit_code in (0, 3), result.output
    configs = json.loads(result.output)["configs"]
    for c in configs:
        assert c["energy_basis"] == "net-of-idle" and c["below_resolution"] == ["load"]
        assert c["joules_per_query_uncertainty"] > 0 and c["joules_per_query_gross"] > c["joules_per_query"]
