"""The GPU code paths beyond the meter itself, on any machine: the vendor library (pynvml) is a fake
and torch.cuda is patched, so what rightsize does *around* a GPU is checked without one: device
resolution, the record an evaluation writes under an NVML meter, the encoder's device, precision
and attention choices, and the run environment.

Tests marked ``gpu`` run the same paths on a real CUDA device (``pytest -m gpu``, and
``scripts/gpu_check.sh`` on a lent GPU machine); they skip where there is none.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import torch

from rightsize.encoder import Encoder
from rightsize.energy import make_meter
from rightsize.errors import RightsizeError
from rightsize.evaluate import EvalPlan, evaluate_rung
from rightsize.ladder import load_ladder
from rightsize.rungs import RunContext
from rightsize.session import resolve_device
from rightsize.tasks import load_data, load_task
from test_energy import FakeNvml

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")


class Cuda:
    """torch.cuda as rightsize sees it on a one-GPU machine, with the calls it receives."""

    def __init__(self, monkeypatch, available: bool = True):
        self.synced: list = []
        self.emptied = 0
        monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: available)
        monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: self.synced.append(device))
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1 if available else 0)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H200")
        monkeypatch.setattr(torch.cuda, "empty_cache", self._empty)

    def _empty(self) -> None:
        self.emptied += 1


@pytest.fixture
def nvml(monkeypatch):
    """One fake GPU whose energy counter adds 250 mJ per read."""
    import sys

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakeNvml(count=1, energy={0: 250})
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    return fake


@pytest.fixture
def data(tiny_task):
    return load_data(load_task(tiny_task))


# ------------------------------------------------------------------ device resolution


def test_auto_device_follows_torch_cuda(monkeypatch):
    Cuda(monkeypatch, available=True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda") == "cuda" and resolve_device("cpu") == "cpu"
    Cuda(monkeypatch, available=False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(RightsizeError, match="--device cuda: no CUDA device"):
        resolve_device("cuda")


# ------------------------------------------------------------------ the record under an NVML meter


def test_a_gpu_meter_puts_gpu_and_host_energy_in_the_record(monkeypatch, nvml, data, tiny_ladder, tmp_path):
    cuda = Cuda(monkeypatch)
    meter = make_meter("auto", device="cuda", powercap_root=str(tmp_path / "no-rapl"))
    assert meter.source == "nvml+estimate"
    record = evaluate_rung(data, load_ladder(tiny_ladder)["tiny-probe"], meter, RunContext(), EvalPlan())
    assert record.status == "ok", record.error
    assert record.energy_source == "nvml+estimate"
    for phase in ("load", "fit", "infer"):
        parts = record.energy_parts[phase]
        assert set(parts) == {"gpu:0", "cpu-estimate"}
        # The fake GPU counter adds 250 mJ per read: a window (two reads) is 0.25 J.
        assert parts["gpu:0"] == pytest.approx(0.25)
        assert record.joules_spent[phase] == pytest.approx(sum(parts.values()))
    assert record.joules_per_query == pytest.approx(record.joules["infer"] / record.n_examples)
    # GPU work is waited for at both edges of every window (each phase, and the encoder's own).
    assert len(cuda.synced) >= 6 and set(cuda.synced) == {0}
    meter.close()


def test_nvml_missing_on_a_cuda_run_falls_back_to_host_energy_and_says_so(monkeypatch, tmp_path, caplog):
    import sys

    Cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` fails, as without the package
    with caplog.at_level(logging.WARNING, logger="rightsize"):
        meter = make_meter("auto", device="cuda", powercap_root=str(tmp_path / "no-rapl"))
    assert meter.source == "estimate"
    assert "GPU energy is NOT measured" in caplog.text


def test_the_run_environment_names_the_gpu(monkeypatch):
    from rightsize import environment

    Cuda(monkeypatch)
    env = environment.collect("run-1", "cuda", {"source": "nvml"})
    assert env["gpus"] == ["NVIDIA H200"] and env["device"] == "cuda"


# ------------------------------------------------------------------ the encoder's device and precision


def test_int8_is_refused_on_a_gpu_before_anything_loads(monkeypatch, tiny_encoder):
    import sentence_transformers

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer",
                        lambda *a, **k: pytest.fail("the model must not be loaded"))
    with pytest.raises(RightsizeError, match="int8 .* CPU only"):
        Encoder(str(tiny_encoder), device="cuda", precision="int8").load()


def test_the_device_and_attention_kernel_reach_sentence_transformers(monkeypatch, tiny_encoder):
    import sentence_transformers

    real = sentence_transformers.SentenceTransformer
    asked: dict = {}

    def recording(path, **kwargs):
        asked.update(kwargs)
        return real(path, **{**kwargs, "device": "cpu"})  # built on the CPU: there is no GPU here

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", recording)
    enc = Encoder(str(tiny_encoder), device="cuda", attn_implementation="eager")
    enc.load()
    assert asked["device"] == "cuda"
    assert asked["model_kwargs"] == {"attn_implementation": "eager"}
    assert asked["trust_remote_code"] is False and asked["local_files_only"] is True
    assert enc.st[0].model.config._attn_implementation == "eager"


def test_closing_a_gpu_encoder_returns_its_memory(monkeypatch, tiny_encoder):
    cuda = Cuda(monkeypatch)
    Encoder(str(tiny_encoder), device="cuda").close()
    assert cuda.emptied == 1
    Encoder(str(tiny_encoder), device="cpu").close()
    assert cuda.emptied == 1


def test_bf16_casts_the_weights_and_still_returns_normalized_float32(tiny_encoder):
    fp32 = Encoder(str(tiny_encoder))
    bf16 = Encoder(str(tiny_encoder), precision="bf16")
    fp32.load()
    bf16.load()
    assert {p.dtype for p in bf16.st.parameters()} == {torch.bfloat16}
    texts = ["the match goal team", "bank loan fee rate", "rain and cold wind"]
    a, b = fp32.encode(texts), bf16.encode(texts)
    assert b.dtype == np.float32
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert (np.sum(a * b, axis=1) > 0.98).all()  # the same vectors, at bf16's precision
    assert bf16.params == fp32.params


def test_fp16_on_a_cpu_is_allowed_with_a_warning(tiny_encoder, caplog):
    with caplog.at_level(logging.WARNING, logger="rightsize"):
        Encoder(str(tiny_encoder), precision="fp16").load()
    assert "fp16 on CPU" in caplog.text


# ------------------------------------------------------------------ on a real GPU


@pytest.mark.gpu
@needs_cuda
def test_gpu_vectors_match_the_cpu_at_each_precision_and_kernel(tiny_encoder):
    texts = ["the match goal team", "bank loan fee rate", "rain and cold wind"] * 30
    reference = Encoder(str(tiny_encoder))
    reference.load()
    ref = reference.encode(texts)
    for precision, floor in (("fp32", 0.9999), ("bf16", 0.98), ("fp16", 0.99)):
        for attn in ("sdpa", "eager"):
            enc = Encoder(str(tiny_encoder), device="cuda", precision=precision, attn_implementation=attn)
            enc.load()
            got = enc.encode(texts)
            assert got.dtype == np.float32 and got.shape == ref.shape
            assert (np.sum(ref * got, axis=1) > floor).all(), (precision, attn)
            enc.close()


@pytest.mark.gpu
@needs_cuda
def test_nvml_measures_real_gpu_work_and_the_window_waits_for_it():
    meter = make_meter("nvml", device="cuda")
    a = torch.randn(8192, 8192, device="cuda")
    torch.cuda.synchronize()
    meter.begin("work")
    start = time.perf_counter()
    for _ in range(200):  # queued asynchronously: returns long before the GPU is done
        a = a @ a
        a = a / a.norm()
    queued = time.perf_counter() - start
    m = meter.end("work")
    meter.close()
    assert m.seconds > queued  # end() waited for the queued kernels
    assert m.joules > 0 and set(m.parts) == {"gpu:0"}
    watts = m.joules / m.seconds
    assert 20 < watts < 2000, f"{watts:.0f} W is not a GPU's power"


@pytest.mark.gpu
@needs_cuda
def test_evaluate_on_cuda_records_gpu_energy(tiny_task, tiny_ladder, tmp_path):
    from click.testing import CliRunner

    from rightsize.cli import cli
    from rightsize.results import RunLog

    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["evaluate", str(tiny_task), "--ladder", str(tiny_ladder), "--rungs",
                                      "tiny-probe", "--device", "cuda", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    (record,) = RunLog(out, create=False).records()
    assert record.status == "ok" and record.device == "cuda"
    assert record.energy_source.startswith("nvml")
    assert all("gpu:0" in parts for parts in record.energy_parts.values())
