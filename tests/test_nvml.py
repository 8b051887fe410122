"""GPU energy from NVML, against a fake that behaves like the real counter (tests/fake_nvml.py): it
moves every 100 ms, the board draws idle or load watts, and time passes only when the test says.
No GPU, no sleeping: every figure below can be worked out by hand.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import types

import pytest

from rightsize.energy import board, cuda, make_meter
from rightsize.energy.counter import MIN_STEPS
from rightsize.energy.meter import Meter
from rightsize.energy.nvml import NvmlCounter, probe
from rightsize.errors import RightsizeError
from fake_nvml import FakeBoard, FakeClock, FakeNvml, FakeTorchCuda


@pytest.fixture
def no_rapl(tmp_path) -> str:
    return str(tmp_path / "no-powercap")


def h200(monkeypatch, count: int = 1, **board_kwargs) -> FakeNvml:
    """``count`` fake H200 boards (70 W idle, 400 W busy, 700 W limit, a 100 ms counter) as pynvml."""
    return FakeNvml.of(count, **board_kwargs).install(monkeypatch)


def nvml_meter(fake: FakeNvml, **kwargs) -> Meter:
    """A GPU-only meter of CUDA device 0 on the fake's clock (no torch: CUDA_VISIBLE_DEVICES order)."""
    return make_meter("nvml", device="cuda", clock=fake.clock.clock, **kwargs)


# ------------------------------------------------------------------ knowing the counter


def test_the_counter_is_characterised_once_per_board_idle_step_and_facts(monkeypatch, no_rapl):
    fake = h200(monkeypatch, count=2)
    fake.boards[1].step_s = 0.05
    fake.boards[1].idle_w = 90.0
    counter = NvmlCounter([0, 1], clock=fake.clock.clock, load=lambda: fake.load(0))
    gpu0, gpu1 = counter.profiles["gpu:0"], counter.profiles["gpu:1"]
    # The step: the median gap between counter moves, polled every millisecond.
    assert gpu0.update_interval_s == pytest.approx(0.1, abs=board.POLL_S)
    assert gpu1.update_interval_s == pytest.approx(0.05, abs=board.POLL_S)
    assert gpu0.polled_under_load and counter.resolution_s == pytest.approx(0.1, abs=board.POLL_S)
    # Idle: between two counter updates 5 steps apart, so the step does not blur it.
    assert gpu0.idle_watts == pytest.approx(70.0, rel=0.01) and gpu1.idle_watts == pytest.approx(90.0, rel=0.01)
    assert gpu0.idle_window_s == pytest.approx(board.IDLE_STEPS * 0.1, abs=2 * board.POLL_S)
    assert (gpu0.name, gpu0.driver, gpu0.power_limit_w, gpu0.mig_mode) == ("NVIDIA H200", "570.86.15", 700.0,
                                                                         "disabled")
    assert counter.idle_watts == pytest.approx({"gpu:0": 70.0, "gpu:1": 90.0}, rel=0.01)
    spent = fake.clock.now()
    assert spent - 1000.0 < 2 * 1.2  # cheap: per board, a settle + 5 idle steps + 5 loaded steps

    # Once per board per process: a second meter measures nothing again.
    reads = fake.boards[0].energy_reads
    again = NvmlCounter([0], clock=fake.clock.clock)
    assert fake.clock.now() == spent and fake.boards[0].energy_reads == reads + 1  # its first read only
    assert again.profiles["gpu:0"] is gpu0


def test_a_counter_that_never_moves_is_reported_not_observed(monkeypatch):
    fake = h200(monkeypatch, step_s=10.0)  # slower than the characterisation polls
    counter = NvmlCounter([0], clock=fake.clock.clock, load=lambda: fake.load(0))
    p = counter.profiles["gpu:0"]
    assert p.update_interval_s is None and p.idle_watts is None
    assert counter.resolution_s == board.BUDGET_S  # at least as coarse as the longest poll
    assert counter.idle_watts == {}


def test_the_characterisation_goes_into_describe_and_the_environment(monkeypatch, no_rapl):
    from rightsize import environment

    fake = h200(monkeypatch)
    cuda_ = FakeTorchCuda(fake).install(monkeypatch)
    meter = make_meter("auto", device="cuda", powercap_root=no_rapl, clock=fake.clock.clock)
    facts = json.loads(json.dumps(meter.describe()))
    b = facts["gpu_boards"]["gpu:0"]
    assert b["uuid"] == fake.boards[0].uuid and b["name"] == "NVIDIA H200" and b["driver"] == "570.86.15"
    assert b["power_limit_w"] == 700.0 and b["mig_mode"] == "disabled" and b["polled_under_load"] is True
    assert b["update_interval_s"] == pytest.approx(0.1, abs=board.POLL_S)
    assert b["idle_watts"] == pytest.approx(70.0, rel=0.01)
    assert facts["resolution_s"] == pytest.approx(0.1, abs=board.POLL_S)
    assert facts["min_window_s"] == pytest.approx(MIN_STEPS * 0.1, abs=MIN_STEPS * board.POLL_S)
    assert facts["energy_basis"] == "net-of-idle" and facts["idle_watts"] == pytest.approx(70.0, rel=0.01)
    env = environment.collect("run-1", "cuda", meter.describe())
    assert env["meter"]["gpu_boards"]["gpu:0"]["idle_watts"] == b["idle_watts"]
    assert env["gpu_in_use"] == {"index": 0, "name": "NVIDIA H200", "uuid": cuda_.uuid(0)}


# ------------------------------------------------------------------ windows: uncertainty, resolution, idle


@pytest.mark.parametrize("offset", [0.0, 0.013, 0.05, 0.087, 0.099])
def test_a_window_is_within_its_uncertainty_of_the_truth(monkeypatch, offset):
    fake = h200(monkeypatch)
    meter = nvml_meter(fake)
    fake.clock.advance(offset)  # where the window's edges fall between counter updates
    meter.begin("w")
    fake.work(0.7)
    fake.clock.advance(0.8)  # idle after the work
    m = meter.end("w")
    truth = 400.0 * 0.7 + 70.0 * 0.8  # 336 J
    assert m.seconds == pytest.approx(1.5) and not m.below_resolution
    # By hand: one 100 ms step x the window's mean power (the reading / 1.5 s).
    step = meter.resolution_s
    assert m.uncertainty == pytest.approx(step * m.joules / 1.5)
    assert abs(m.joules - truth) <= m.uncertainty
    assert m.uncertainty == pytest.approx(0.1 * truth / 1.5, rel=0.1)  # ~22 J, 7% of the reading


def test_a_window_shorter_than_a_few_steps_is_flagged_and_bounded_by_the_power_limit(monkeypatch):
    fake = h200(monkeypatch)
    meter = nvml_meter(fake)
    readings = set()
    for _ in range(8):  # 50 ms of work reads 0 J or a whole 100 ms step, depending on where it falls
        meter.begin("short")
        fake.work(0.05)
        m = meter.end("short")
        readings.add(round(m.joules))
        assert m.below_resolution
        assert m.uncertainty == pytest.approx(meter.resolution_s * 700.0)  # the limit: the mean is unreliable
        fake.clock.advance(0.031)
    assert 0 in readings and len(readings) > 1  # the noise the flag warns about
    assert meter.min_window_s == pytest.approx(MIN_STEPS * meter.resolution_s)


def test_idle_is_measured_when_the_meter_opens_and_net_leaves_it_out(monkeypatch):
    fake = h200(monkeypatch)
    meter = nvml_meter(fake)
    idle_w = meter.idle_watts["gpu:0"]
    assert meter.basis == "net-of-idle" and idle_w == pytest.approx(70.0, rel=0.01)

    meter.begin("cpu-only")  # a TF-IDF fit on a CUDA run: the GPU only idles
    fake.clock.advance(2.0)
    m = meter.end("cpu-only")
    assert m.joules == pytest.approx(140.0, abs=1.0)  # gross: the board's idle draw
    assert m.idle == pytest.approx({"gpu:0": idle_w * 2.0})
    assert m.net_joules == pytest.approx(0.0, abs=m.uncertainty)

    meter.begin("gpu")
    fake.work(1.0)
    fake.clock.advance(1.0)
    m = meter.end("gpu")
    assert m.joules == pytest.approx(470.0, abs=m.uncertainty)  # 400 J of work + 70 J idle
    assert m.net_joules == pytest.approx(m.joules - idle_w * 2.0)  # 330 J: what the work added
    assert m.net_parts == pytest.approx({"gpu:0": m.net_joules})


def test_net_is_never_negative(monkeypatch):
    fake = h200(monkeypatch)
    meter = nvml_meter(fake)
    fake.clock.advance(0.07)
    meter.begin("w")  # a window with no counter update in it reads 0 J, below its idle share
    fake.clock.advance(0.02)
    m = meter.end("w")
    assert m.joules == 0.0 and m.idle["gpu:0"] > 0 and m.net_joules == 0.0


def test_per_pass_divides_everything_measured():
    from rightsize.energy import Measurement

    m = Measurement(2.0, 10.0, "nvml", {"gpu:0": 10.0}, uncertainty=1.0, below_resolution=False,
                    idle={"gpu:0": 4.0}, read_errors=1)
    one = m.per_pass(4)
    assert (one.seconds, one.joules, one.parts, one.uncertainty, one.idle) == (0.5, 2.5, {"gpu:0": 2.5}, 0.25,
                                                                                {"gpu:0": 1.0})
    assert one.net_joules == pytest.approx(1.5) and one.read_errors == 1 and one.source == "nvml"


# ------------------------------------------------------------------ the GPU in use


def test_only_the_gpu_torch_uses_is_read_found_by_uuid(monkeypatch, no_rapl):
    fake = h200(monkeypatch, count=2)
    cuda_ = FakeTorchCuda(fake, visible=[1, 0]).install(monkeypatch)  # CUDA's device 0 is board 1
    meter = make_meter("auto", device="cuda", powercap_root=no_rapl, clock=fake.clock.clock)
    assert cuda_.warmed == [0]  # CUDA started (context, cuBLAS, a matmul) before any window
    facts = meter.describe()
    assert facts["gpu_indices"] == [0] and facts["gpu_identified_by"] == "uuid"
    assert facts["gpu_visible_as"] == {"gpu:0": fake.boards[1].uuid}
    reads_board0 = fake.boards[0].energy_reads
    meter.begin("w")
    fake.work(1.5, index=0)  # another process's work on the other board: not ours
    m = meter.end("w")
    assert set(m.parts) == {"gpu:0", "cpu-estimate"}
    assert m.parts["gpu:0"] == pytest.approx(70.0 * 1.5, abs=m.uncertainty)  # board 1 idled
    assert fake.boards[0].energy_reads == reads_board0 == 0  # the other board is never read
    assert cuda_.synced == [0, 0]  # only the device in use is waited for

    # cuda:1 is board 0, and "cuda" follows torch's current device.
    assert make_meter("nvml", device="cuda:1", clock=fake.clock.clock).describe()["gpu_visible_as"] == {
        "gpu:1": fake.boards[0].uuid}
    cuda_.current = 1
    assert make_meter("nvml", device="cuda", clock=fake.clock.clock).describe()["gpu_indices"] == [1]


def test_a_mig_instance_is_refused_with_the_reason(monkeypatch, no_rapl, caplog):
    fake = h200(monkeypatch)
    fake.boards[0].mig_instances = ["MIG-1111aaaa-2222-3333-4444-555566667777"]
    FakeTorchCuda(fake, visible=[("mig", 0, 0)]).install(monkeypatch)
    with pytest.raises(RightsizeError, match=r"^--meter nvml: cuda:0 is a MIG instance of GPU-0000"):
        make_meter("nvml", device="cuda", clock=fake.clock.clock)
    with caplog.at_level(logging.WARNING, logger="rightsize"):
        meter = make_meter("auto", device="cuda", powercap_root=no_rapl, clock=fake.clock.clock)
    assert meter.source == "estimate" and "GPU energy is NOT measured" in caplog.text
    assert meter.describe()["gpu_energy"].startswith("not measured: cuda:0 is a MIG instance")


def test_an_unknown_uuid_is_refused(monkeypatch):
    fake = h200(monkeypatch)
    cuda_ = FakeTorchCuda(fake).install(monkeypatch)
    monkeypatch.setattr(cuda_, "uuid", lambda i: "ffffffff-0000-0000-0000-000000000000")
    with pytest.raises(RightsizeError, match="no GPU that NVML sees has the UUID of cuda:0"):
        make_meter("nvml", device="cuda", clock=fake.clock.clock)


def test_without_torch_cuda_indices_follow_cuda_visible_devices(monkeypatch, no_rapl):
    fake = FakeNvml.of(3, clock=FakeClock()).install(monkeypatch)
    for i, b in enumerate(fake.boards):
        b.idle_w = 100.0 * (i + 1)  # 100, 200, 300 W: which board was read shows in the joules

    def gpu_joules(**kwargs) -> dict[str, float]:
        meter = make_meter("nvml", powercap_root=no_rapl, clock=fake.clock.clock, **kwargs)
        meter.begin("w")
        fake.clock.advance(1.0)
        return {p: round(j) for p, j in meter.end("w").parts.items()}

    assert gpu_joules(device="cuda:1") == {"gpu:1": 200}
    assert gpu_joules(device="cuda", gpu_indices=[0, 2]) == {"gpu:0": 100, "gpu:2": 300}
    # CUDA_VISIBLE_DEVICES renumbers: CUDA index 0 is NVML device 2, CUDA 1 is NVML device 0.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,GPU-0000")
    assert gpu_joules(device="cuda", gpu_indices=[0, 1]) == {"gpu:0": 300, "gpu:1": 100}
    with pytest.raises(RightsizeError, match="not among the 2 visible GPUs"):
        make_meter("nvml", device="cuda:2", powercap_root=no_rapl, clock=fake.clock.clock)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-1111aaaa")
    assert probe() == "CUDA_VISIBLE_DEVICES names MIG instances; NVML gives no energy for a MIG instance"


# ------------------------------------------------------------------ robustness


def test_a_transient_read_error_keeps_the_last_value_and_marks_the_window(monkeypatch, caplog):
    fake = h200(monkeypatch)
    meter = nvml_meter(fake)
    meter.begin("a")
    fake.work(1.5)
    fake.boards[0].fail_reads = 1  # the read at the end of "a" fails
    with caplog.at_level(logging.WARNING, logger="rightsize"):
        a = meter.end("a")
    assert a.read_errors == 1 and a.joules == 0.0  # the last value (the start's) held
    assert "keeping the last value" in caplog.text
    meter.begin("b")
    fake.work(1.5)
    b = meter.end("b")
    assert b.read_errors == 0
    # Nothing is lost: the next good read brings the counter up to date (b's begin read it).
    assert b.joules == pytest.approx(600.0, abs=b.uncertainty)


def test_a_board_that_cannot_be_read_at_the_start_makes_nvml_unusable(monkeypatch, no_rapl):
    fake = h200(monkeypatch)
    fake.boards[0].fail_reads = 2
    assert nvml_meter(fake).source == "nvml"  # two failures, then a good read: usable
    fake = h200(monkeypatch)
    fake.boards[0].fail_reads = 3
    with pytest.raises(RightsizeError, match="nvmlDeviceGetTotalEnergyConsumption failed"):
        nvml_meter(fake)
    fake.boards[0].fail_reads = 3
    assert make_meter("auto", device="cuda", powercap_root=no_rapl, clock=fake.clock.clock).source == "estimate"


def test_a_cuda_error_at_the_window_edge_closes_the_window(monkeypatch):
    fake = h200(monkeypatch)
    cuda_ = FakeTorchCuda(fake).install(monkeypatch)
    meter = nvml_meter(fake)
    meter.begin("w")
    cuda_.sync_error = RuntimeError("CUDA error: an illegal memory access was encountered")
    with pytest.raises(RuntimeError, match="illegal memory access"):
        meter.end("w")
    assert meter.open_windows == []  # closed: the meter is usable for the next config
    cuda_.sync_error = None
    meter.begin("w")
    meter.discard("w")
    meter.discard("never opened")
    assert meter.open_windows == []


# ------------------------------------------------------------------ boards without a counter, set-up


def test_power_sampling_fallback_integrates_constant_power_in_the_background(monkeypatch):
    # Real time here: the background sampler is a thread on a real period.
    fake = FakeNvml.of(1, energy_counter=False, power_average_s=0.0, idle_w=100.0).install(monkeypatch)
    meter = make_meter("nvml", device="cuda")
    assert meter.describe()["gpu_methods"] == {"gpu:0": "power-sampling@20ms"}
    assert meter.resolution_s == board.POWER_AVERAGE_S  # a ~1 s average: a window must be long
    calls = fake.power_calls
    meter.begin("w")
    time.sleep(0.2)
    m = meter.end("w")
    meter.close()
    assert m.parts["gpu:0"] == pytest.approx(100.0 * m.seconds, rel=0.01)
    assert m.parts["gpu:0"] >= 19.9  # the window lasted at least the 0.2 s sleep
    assert fake.power_calls - calls > 3  # the background thread sampled between the edges
    assert m.below_resolution and m.uncertainty == pytest.approx(board.POWER_AVERAGE_S * 700.0)


def test_power_integration_is_trapezoid(monkeypatch):
    fake = FakeNvml.of(1, energy_counter=False, power_average_s=0.0, idle_w=100.0).install(monkeypatch)
    counter = NvmlCounter(clock=fake.clock.clock, sample_period_s=3600)  # the thread never fires
    assert counter.profiles["gpu:0"].idle_watts == 100.0
    counter.read()  # 100 W at the start
    fake.boards[0].idle_w = 200.0
    fake.clock.advance(1.0)
    assert counter.read() == pytest.approx({"gpu:0": 150.0})  # (100 + 200) / 2 W * 1 s
    fake.clock.advance(2.0)
    assert counter.read() == pytest.approx({"gpu:0": 550.0})  # + 200 W * 2 s
    counter.close()


def test_auto_on_cuda_adds_host_cpu_and_inits_nvml_once(monkeypatch, no_rapl):
    fake = h200(monkeypatch)
    meter = make_meter("auto", device="cuda", powercap_root=no_rapl, clock=fake.clock.clock)
    make_meter("auto", device="cuda", powercap_root=no_rapl, clock=fake.clock.clock)
    assert fake.init_calls == 1
    meter.begin("w")
    fake.work(1.5)
    m = meter.end("w")
    assert m.source == "nvml+estimate" and m.estimated
    assert set(m.parts) == {"gpu:0", "cpu-estimate"}
    assert m.joules == pytest.approx(sum(m.parts.values()))


def test_auto_on_cpu_device_ignores_gpus(monkeypatch, no_rapl):
    fake = h200(monkeypatch)
    assert make_meter("auto", device="cpu", powercap_root=no_rapl).source == "estimate"
    assert fake.init_calls == 0


def test_no_visible_gpu_and_init_failure_and_no_pynvml_are_reasons(monkeypatch, no_rapl):
    from rightsize.energy import available_sources

    fake = h200(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert available_sources(no_rapl)["nvml"].startswith("no GPU visible")
    with pytest.raises(RightsizeError, match="^--meter nvml: no GPU visible"):
        nvml_meter(fake)
    assert make_meter("auto", device="cuda", powercap_root=no_rapl).source == "estimate"

    fake = FakeNvml(FakeClock(), [FakeBoard(uuid="GPU-1")], init_error="Driver Not Loaded").install(monkeypatch)
    assert available_sources(no_rapl)["nvml"] == "nvmlInit failed: Driver Not Loaded"
    with pytest.raises(RightsizeError, match="^--meter nvml: nvmlInit failed: Driver Not Loaded$"):
        nvml_meter(fake)
    assert fake.init_calls == 1  # the failure is remembered, not retried per meter

    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    assert available_sources(no_rapl)["nvml"].startswith("pynvml is not importable")
    assert make_meter("auto", device="cuda", powercap_root=no_rapl).source == "estimate"


def test_probe_does_not_characterise(monkeypatch):
    fake = h200(monkeypatch)
    assert probe() == "ok" and fake.clock.now() == 1000.0  # no time spent polling


# ------------------------------------------------------------------ CUDA: start-up, sync, load


def test_cuda_is_synchronized_at_window_edges_and_never_on_cpu(monkeypatch, no_rapl):
    fake = FakeNvml(FakeClock(), [FakeBoard(uuid="GPU-1")], init_error="Driver Not Loaded").install(monkeypatch)
    cuda_ = FakeTorchCuda(fake).install(monkeypatch)
    meter = make_meter("auto", device="cuda", powercap_root=no_rapl)  # no NVML: still synced
    meter.begin("w")
    meter.end("w")
    assert cuda_.synced == [0, 0] and meter.describe()["cuda_sync"] is True

    cuda_.synced.clear()
    cpu = make_meter("auto", device="cpu", powercap_root=no_rapl)
    cpu.begin("w")
    cpu.end("w")
    assert cuda_.synced == [] and cpu.describe()["cuda_sync"] is False


def test_cuda_sync_waits_only_once_cuda_started():
    calls: list = []
    state = {"available": True, "initialized": False}
    torch = types.SimpleNamespace(cuda=types.SimpleNamespace(
        is_available=lambda: state["available"], is_initialized=lambda: state["initialized"],
        synchronize=lambda device=None: calls.append(device)))
    sync = cuda.synchronizer([1])
    sys.modules["torch"], real = torch, sys.modules.get("torch")
    try:
        sync()  # CUDA not started: a synchronize would create a context
        state["initialized"] = True
        sync()
    finally:
        sys.modules["torch"] = real
    assert calls == [1]


def test_the_meter_never_imports_torch(monkeypatch, no_rapl):
    fake = h200(monkeypatch)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    real = __import__

    def guarded(mod, *args, **kwargs):
        if mod == "torch" or mod.startswith("torch."):
            raise AssertionError("torch must not be imported by the meter")
        return real(mod, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", guarded)
    meter = make_meter("auto", device="cuda", powercap_root=no_rapl, clock=fake.clock.clock)
    meter.begin("w")
    assert meter.end("w").source == "nvml+estimate"


class _Tensor:
    def __init__(self, log: list, what: str) -> None:
        self.log, self.what = log, what

    def __matmul__(self, other) -> "_Tensor":
        self.log.append("matmul")
        return _Tensor(self.log, "product")

    def sum(self) -> "_Tensor":
        return self

    def item(self) -> float:
        self.log.append("item")
        return 0.0


def test_warm_up_makes_the_context_and_cublas_handle_then_waits(monkeypatch):
    log: list = []
    torch = types.SimpleNamespace(
        ones=lambda shape, device: (log.append(f"ones {device}"), _Tensor(log, "a"))[1],
        cuda=types.SimpleNamespace(synchronize=lambda i: log.append(f"sync {i}")))
    cuda.warm_up(torch, 3)
    assert log == ["ones cuda:3", "matmul", "item", "sync 3"]

    def broken(shape, device):
        raise RuntimeError("CUDA error: out of memory\nmore")

    torch.ones = broken
    with pytest.raises(RightsizeError, match=r"^cuda:3: CUDA start-up failed \(CUDA error: out of memory\)$"):
        cuda.warm_up(torch, 3)


def test_busy_refills_the_queue_only_when_it_ran_dry():
    queued: list = []

    class Event:
        def __init__(self) -> None:
            self.finished = False

        def record(self) -> None:
            events.append(self)

        def query(self) -> bool:
            return self.finished

    events: list[Event] = []

    class Device:
        def __init__(self, i): pass
        def __enter__(self): return self
        def __exit__(self, *a): return False

    torch = types.SimpleNamespace(
        randn=lambda shape, device: ("tensor", device),
        mm=lambda a, b: queued.append(a[1]),
        cuda=types.SimpleNamespace(device=Device, Event=Event))
    keep_busy = cuda.busy(torch, 2)
    keep_busy()
    keep_busy()  # the first batch is still running: nothing more queued
    assert len(queued) == cuda.BUSY_QUEUE and set(queued) == {"cuda:2"} and len(events) == 1
    events[0].finished = True
    keep_busy()
    assert len(queued) == 2 * cuda.BUSY_QUEUE and len(events) == 2
