"""The GPU code paths beyond the meter itself, on any machine: the vendor library (pynvml) is a fake
that behaves like a real board (tests/fake_nvml.py) and torch.cuda is patched, so what rightsize does
*around* a GPU is checked without one: device resolution, the encoder's device, precision and
attention choices, and the run environment. The energy a record carries on a GPU is in
test_gpu_energy.py.

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
from rightsize.session import resolve_device
from fake_nvml import FakeNvml, FakeTorchCuda

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")


@pytest.fixture
def gpu(monkeypatch) -> FakeTorchCuda:
    """One fake H200: pynvml and torch.cuda."""
    return FakeTorchCuda(FakeNvml.of(1).install(monkeypatch)).install(monkeypatch)


# ------------------------------------------------------------------ device resolution


def test_auto_device_follows_torch_cuda(gpu):
    assert resolve_device("auto") == "cuda" and resolve_device("cuda") == "cuda" and resolve_device("cpu") == "cpu"
    gpu.available = False
    assert resolve_device("auto") == "cpu"
    with pytest.raises(RightsizeError, match="--device cuda: no CUDA device"):
        resolve_device("cuda")


# ------------------------------------------------------------------ the meter on a CUDA run


def test_nvml_missing_on_a_cuda_run_falls_back_to_host_energy_and_says_so(monkeypatch, gpu, tmp_path, caplog):
    import sys

    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` fails, as without the package
    with caplog.at_level(logging.WARNING, logger="rightsize"):
        meter = make_meter("auto", device="cuda", powercap_root=str(tmp_path / "no-rapl"))
    assert meter.source == "estimate"
    assert "GPU energy is NOT measured" in caplog.text
    assert meter.describe()["gpu_energy"].startswith("not measured: pynvml is not importable")
    assert gpu.warmed == [0]  # CUDA is warmed up whatever meters it


def test_the_run_environment_names_the_gpu(gpu):
    from rightsize import environment

    env = environment.collect("run-1", "cuda", {"source": "nvml"})
    assert env["gpus"] == ["NVIDIA H200"] and env["device"] == "cuda"
    assert env["gpu_in_use"] == {"index": 0, "name": "NVIDIA H200", "uuid": gpu.uuid(0)}
    assert environment.collect("run-1", "cpu", {"source": "estimate"})["gpu_in_use"] is None


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


def test_closing_a_gpu_encoder_returns_its_memory(gpu, tiny_encoder):
    Encoder(str(tiny_encoder), device="cuda").close()
    assert gpu.emptied == 1
    Encoder(str(tiny_encoder), device="cpu").close()
    assert gpu.emptied == 1


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
    # The counter as characterised when the meter opened: a step, an idle draw, the board's facts.
    facts = meter.describe()
    b = facts["gpu_boards"]["gpu:0"]
    assert facts["gpu_identified_by"] == "uuid" and b["mig_mode"] != "enabled"
    assert b["update_interval_s"] is not None and 0.001 <= b["update_interval_s"] <= 1.0, b
    assert b["idle_watts"] is not None and 5 < b["idle_watts"] < (b["power_limit_w"] or 2000), b
    if not m.below_resolution:  # one step x the window's mean power
        assert m.uncertainty == pytest.approx(b["resolution_s"] * max(watts, b["idle_watts"]), rel=1e-6)


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
    assert record.energy_basis == "net-of-idle" and record.idle_watts > 0
    assert set(record.energy_uncertainty) == {"load", "fit", "infer"}
    # The tiny probe's inference takes milliseconds: repeated to a resolvable window, or flagged.
    assert record.infer_repeats[0] > 1 or "infer" in record.below_resolution
