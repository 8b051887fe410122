"""Energy meter: NVML, RAPL and estimate back-ends against fakes (no GPU, powercap or network)."""

from __future__ import annotations

import errno
import json
import os
import sys
import time
import types
from pathlib import Path

import pytest

from rightsize.energy import (
    DEFAULT_CPU_WATTS_PER_CORE,
    Measurement,
    Meter,
    available_sources,
    make_meter,
)
from rightsize.energy.nvml import NvmlCounter
from rightsize.energy.rapl import RaplCounter
from rightsize.errors import RightsizeError

# --------------------------------------------------------------------------- fakes


class FakeNvml:
    """A scripted stand-in for the pynvml module."""

    def __init__(
        self,
        count: int = 2,
        energy: dict[int, list[int] | int] | None = None,
        unsupported: set[int] = frozenset(),
        power_mw: dict[int, int] | None = None,
        init_error: str | None = None,
    ) -> None:
        self.count = count
        # per GPU, millijoules returned by successive calls: a list (the last value repeats), or
        # an int step (0, step, 2 * step, ...)
        self.energy = {i: 0 if isinstance(v, int) else list(v) for i, v in (energy or {}).items()}
        self.steps = {i: v for i, v in (energy or {}).items() if isinstance(v, int)}
        self.unsupported = set(unsupported)
        self.power_mw = power_mw or {}
        self.init_error = init_error
        self.init_calls = 0
        self.power_calls = 0
        self.module = self._module()

    def _module(self) -> types.ModuleType:
        m = types.ModuleType("pynvml")

        class NVMLError(Exception):
            def __init__(self, value: int = 999, text: str = "Unknown Error") -> None:
                super().__init__(text)
                self.value = value

        class NVMLError_NotSupported(NVMLError):
            def __init__(self) -> None:
                super().__init__(3, "Not Supported")

        def nvmlInit() -> None:
            self.init_calls += 1
            if self.init_error:
                raise NVMLError(9, self.init_error)

        def handle(i: int) -> tuple[str, int]:
            if not 0 <= i < self.count:
                raise NVMLError(2, "Invalid Argument")
            return ("handle", i)

        def energy(h: tuple[str, int]) -> int:
            i = h[1]
            if i in self.unsupported:
                raise NVMLError_NotSupported()
            seq = self.energy[i]
            if isinstance(seq, int):  # a step: every call adds it
                self.energy[i] = seq + self.steps[i]
                return seq
            return seq.pop(0) if len(seq) > 1 else seq[0]  # the last value repeats

        def power(h: tuple[str, int]) -> int:
            self.power_calls += 1
            return self.power_mw.get(h[1], 100_000)

        m.NVMLError = NVMLError
        m.NVMLError_NotSupported = NVMLError_NotSupported
        m.nvmlInit = nvmlInit
        m.nvmlDeviceGetCount = lambda: self.count
        m.nvmlDeviceGetHandleByIndex = handle
        m.nvmlDeviceGetUUID = lambda h: f"GPU-{h[1]:04d}-0000-aaaa"
        m.nvmlDeviceGetTotalEnergyConsumption = energy
        m.nvmlDeviceGetPowerUsage = power
        return m


@pytest.fixture
def fake_nvml(monkeypatch):
    """Install a FakeNvml built by the returned function as ``pynvml``."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def install(**kwargs) -> FakeNvml:
        fake = FakeNvml(**kwargs)
        monkeypatch.setitem(sys.modules, "pynvml", fake.module)
        return fake

    return install


@pytest.fixture
def no_rapl(tmp_path) -> str:
    return str(tmp_path / "no-powercap")


def write_zone(d: Path, name: str, energy_uj: int, max_uj: int = 262_143_328_850) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "name").write_text(name + "\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def set_energy(d: Path, energy_uj: int) -> None:
    (d / "energy_uj").write_text(f"{energy_uj}\n")  # same inode, as sysfs: the counter keeps its fd


@pytest.fixture
def powercap(tmp_path) -> tuple[Path, dict[str, Path]]:
    """Two packages with core/uncore/dram subzones, a psys zone and an mmio duplicate."""
    root = tmp_path / "powercap"
    z = {
        "pkg0": write_zone(root / "intel-rapl:0", "package-0", 1_000_000),
        "core0": write_zone(root / "intel-rapl:0" / "intel-rapl:0:0", "core", 500_000),
        "uncore0": write_zone(root / "intel-rapl:0" / "intel-rapl:0:1", "uncore", 100_000),
        "dram0": write_zone(root / "intel-rapl:0" / "intel-rapl:0:2", "dram", 200_000),
        "pkg1": write_zone(root / "intel-rapl:1", "package-1", 3_000_000),
        "dram1": write_zone(root / "intel-rapl:1" / "intel-rapl:1:0", "dram", 0),
        "psys": write_zone(root / "intel-rapl:2", "psys", 9_000_000),
        "mmio": write_zone(root / "intel-rapl-mmio:0", "package-0", 7_000_000),
    }
    (root / "intel-rapl").mkdir()  # the control-type directory, not a zone
    return root, z


class ScriptedCounter:
    name = "scripted"
    source = "scripted"

    def __init__(self, values: list[float]) -> None:
        self.values = list(values)

    def read(self) -> dict[str, float]:
        return {"x": self.values.pop(0)}

    def describe(self) -> dict:
        return {"scripted": True}

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- NVML


def test_nvml_energy_is_delta_over_gpus_in_joules(fake_nvml, no_rapl):
    # values per read: construction, begin, end
    fake = fake_nvml(energy={0: [1_000, 5_000, 17_000], 1: [0, 2_000, 2_500]})
    meter = make_meter("nvml", device="cuda", powercap_root=no_rapl)
    meter.begin("w")
    m = meter.end("w")
    assert m.source == "nvml" and not m.estimated
    assert m.parts == pytest.approx({"gpu:0": 12.0, "gpu:1": 0.5})
    assert m.joules == pytest.approx(12.5)
    assert fake.power_calls == 0  # power sampling only where the energy counter is unsupported
    assert meter.describe()["gpu_methods"] == {"gpu:0": "energy-counter", "gpu:1": "energy-counter"}


def test_auto_on_cuda_adds_host_cpu_and_inits_nvml_once(fake_nvml, no_rapl):
    fake = fake_nvml(energy={0: [0, 0, 1_000, 3_000], 1: [0]})  # two constructions, begin, end
    meter = make_meter("auto", device="cuda", powercap_root=no_rapl)
    make_meter("auto", device="cuda", powercap_root=no_rapl)
    assert fake.init_calls == 1
    meter.begin("w")
    m = meter.end("w")
    assert m.source == "nvml+estimate" and m.estimated
    assert set(m.parts) == {"gpu:0", "gpu:1", "cpu-estimate"}
    assert m.parts["gpu:0"] == pytest.approx(2.0)
    assert m.joules == pytest.approx(sum(m.parts.values()))


def test_auto_on_cpu_device_ignores_gpus(fake_nvml, no_rapl):
    fake = fake_nvml(energy={0: [0], 1: [0]})
    assert make_meter("auto", device="cpu", powercap_root=no_rapl).source == "estimate"
    assert fake.init_calls == 0


def test_gpu_selection(fake_nvml, monkeypatch, no_rapl):
    fake_nvml(count=3, energy={0: 1_000, 1: 2_000, 2: 4_000})  # mJ per read: per window too

    def parts(**kwargs) -> dict[str, float]:
        meter = make_meter("nvml", powercap_root=no_rapl, **kwargs)
        meter.begin("w")
        return meter.end("w").parts

    assert parts(device="cuda:1") == pytest.approx({"gpu:1": 2.0})
    assert parts(device="cuda", gpu_indices=[0, 2]) == pytest.approx({"gpu:0": 1.0, "gpu:2": 4.0})
    # CUDA_VISIBLE_DEVICES renumbers: CUDA index 0 is NVML device 2, CUDA 1 is NVML device 0.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,GPU-0000")
    assert parts(device="cuda") == pytest.approx({"gpu:0": 4.0, "gpu:1": 1.0})
    with pytest.raises(RightsizeError, match="not among the 2 visible GPUs"):
        make_meter("nvml", device="cuda:2", powercap_root=no_rapl)


def test_no_visible_gpu_is_unavailable(fake_nvml, monkeypatch, no_rapl):
    fake_nvml(energy={0: [0], 1: [0]})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert available_sources(no_rapl)["nvml"].startswith("no GPU visible")
    with pytest.raises(RightsizeError, match="^--meter nvml: no GPU visible"):
        make_meter("nvml", device="cuda", powercap_root=no_rapl)
    assert make_meter("auto", device="cuda", powercap_root=no_rapl).source == "estimate"


def test_nvml_init_failure_is_a_reason_not_a_crash(fake_nvml, no_rapl):
    fake = fake_nvml(init_error="Driver Not Loaded")
    reason = available_sources(no_rapl)["nvml"]
    assert reason == "nvmlInit failed: Driver Not Loaded"
    with pytest.raises(RightsizeError, match="^--meter nvml: nvmlInit failed: Driver Not Loaded$"):
        make_meter("nvml", device="cuda", powercap_root=no_rapl)
    assert make_meter("auto", device="cuda", powercap_root=no_rapl).source == "estimate"
    assert fake.init_calls == 1  # the failure is remembered, not retried per meter


def test_pynvml_missing(monkeypatch, no_rapl):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    assert available_sources(no_rapl)["nvml"].startswith("pynvml is not importable")
    assert make_meter("auto", device="cuda", powercap_root=no_rapl).source == "estimate"


def test_power_sampling_fallback_integrates_constant_power(fake_nvml, no_rapl):
    fake = fake_nvml(count=2, energy={0: [0, 1_000, 2_000]}, unsupported={1}, power_mw={1: 100_000})
    meter = make_meter("nvml", device="cuda", powercap_root=no_rapl)
    assert meter.describe()["gpu_methods"] == {
        "gpu:0": "energy-counter",
        "gpu:1": "power-sampling@20ms",
    }
    meter.begin("w")
    time.sleep(0.2)
    m = meter.end("w")
    meter.close()
    assert m.parts["gpu:0"] == pytest.approx(1.0)
    # 100 W over the window: ~20 J; the edges are sampled, so only the window length matters.
    assert m.parts["gpu:1"] == pytest.approx(100.0 * m.seconds, rel=0.1)
    assert m.parts["gpu:1"] >= 19.9  # the window lasted at least the 0.2 s sleep
    assert fake.power_calls > 3  # the background thread sampled between the edges


def test_power_integration_is_trapezoid(fake_nvml, monkeypatch):
    import rightsize.energy.nvml as nvml_mod

    fake = fake_nvml(count=1, energy={}, unsupported={0}, power_mw={0: 100_000})
    clock = iter([0.0, 1.0, 3.0])
    monkeypatch.setattr(nvml_mod, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    counter = NvmlCounter(sample_period_s=3600)  # the background thread never fires
    fake.power_mw[0] = 200_000
    assert counter.read() == pytest.approx({"gpu:0": 150.0})  # (100 + 200) / 2 W * 1 s
    assert counter.read() == pytest.approx({"gpu:0": 550.0})  # + 200 W * 2 s
    counter.close()


class CudaRecorder:
    def __init__(self, available: bool = True, initialized: bool = True) -> None:
        self.available = available
        self.initialized = initialized
        self.calls: list[int | None] = []

    def synchronize(self, device=None) -> None:
        self.calls.append(device)


def install_fake_torch(monkeypatch, rec: CudaRecorder) -> None:
    cuda = types.SimpleNamespace(
        is_available=lambda: rec.available,
        is_initialized=lambda: rec.initialized,
        synchronize=rec.synchronize,
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))


def test_cuda_synchronized_at_window_edges(fake_nvml, monkeypatch, no_rapl):
    fake_nvml(energy={0: [0], 1: [0]})
    rec = CudaRecorder()
    install_fake_torch(monkeypatch, rec)
    meter = make_meter("auto", device="cuda", powercap_root=no_rapl)
    meter.begin("w")
    assert rec.calls == [0, 1]  # every GPU being metered
    meter.end("w")
    assert rec.calls == [0, 1, 0, 1]
    assert meter.describe()["cuda_sync"] is True


def test_cuda_sync_without_nvml_and_never_on_cpu(fake_nvml, monkeypatch, no_rapl):
    fake_nvml(init_error="Driver Not Loaded")
    rec = CudaRecorder()
    install_fake_torch(monkeypatch, rec)
    meter = make_meter("auto", device="cuda", powercap_root=no_rapl)
    meter.begin("w")
    meter.end("w")
    assert rec.calls == [None, None]  # the current device

    rec.calls.clear()
    cpu = make_meter("auto", device="cpu", powercap_root=no_rapl)
    cpu.begin("w")
    cpu.end("w")
    assert rec.calls == [] and cpu.describe()["cuda_sync"] is False

    for available, initialized in [(False, False), (True, False)]:
        rec.available, rec.initialized = available, initialized
        meter.begin("w")
        meter.end("w")
    assert rec.calls == []  # no CUDA, or CUDA not started yet: nothing to wait for


def test_cuda_sync_works_without_torch(fake_nvml, monkeypatch, no_rapl):
    fake_nvml(energy={0: [0], 1: [0]})
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr("builtins.__import__", _forbid("torch"))
    meter = make_meter("auto", device="cuda", powercap_root=no_rapl)
    meter.begin("w")
    assert meter.end("w").source == "nvml+estimate"


def _forbid(name: str):
    real = __import__

    def guarded(mod, *args, **kwargs):
        if mod == name or mod.startswith(name + "."):
            raise AssertionError(f"{name} must not be imported by the meter")
        return real(mod, *args, **kwargs)

    return guarded


def test_cuda_sync_with_real_torch_api(fake_nvml, monkeypatch, no_rapl):
    torch = pytest.importorskip("torch")
    fake_nvml(energy={0: [0], 1: [0]})
    calls: list = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    meter = make_meter("auto", device="cuda:1", powercap_root=no_rapl)
    meter.begin("w")
    meter.end("w")
    assert calls == [1, 1]


# --------------------------------------------------------------------------- RAPL


def test_rapl_counts_packages_and_dram_only(powercap):
    root, z = powercap
    meter = make_meter("rapl", powercap_root=str(root))
    assert meter.source == "rapl"
    meter.begin("w")
    set_energy(z["pkg0"], 4_000_000)  # +3 J
    set_energy(z["dram0"], 700_000)  # +0.5 J
    set_energy(z["pkg1"], 3_250_000)  # +0.25 J
    set_energy(z["dram1"], 1_000_000)  # +1 J
    set_energy(z["core0"], 99_000_000)  # inside the package: must not count
    set_energy(z["psys"], 99_000_000)  # contains the package: must not count
    set_energy(z["mmio"], 99_000_000)  # duplicate of package-0
    m = meter.end("w")
    assert m.parts == pytest.approx(
        {"cpu-package:0": 3.0, "dram:0": 0.5, "cpu-package:1": 0.25, "dram:1": 1.0}
    )
    assert m.joules == pytest.approx(4.75)
    assert not m.estimated
    meter.close()


def test_rapl_wrap_around(tmp_path):
    root = tmp_path / "powercap"
    pkg = write_zone(root / "intel-rapl:0", "package-0", 1_999_000_000, max_uj=2_000_000_000)
    counter = RaplCounter(str(root))
    meter = Meter([counter])
    meter.begin("w")
    set_energy(pkg, 500_000)
    m = meter.end("w")
    assert m.parts == pytest.approx({"cpu-package:0": 1.5})  # (max - old) + new = 1e6 + 5e5 µJ
    counter.close()


def test_rapl_flat_sysfs_listing_not_double_counted(tmp_path):
    # /sys/class/powercap lists every zone flat as a symlink into the nested device tree.
    real = tmp_path / "devices" / "intel-rapl"
    pkg = write_zone(real / "intel-rapl:0", "package-0", 0)
    dram = write_zone(real / "intel-rapl:0" / "intel-rapl:0:0", "dram", 0)
    root = tmp_path / "class-powercap"
    root.mkdir()
    (root / "intel-rapl:0").symlink_to(real / "intel-rapl:0")
    (root / "intel-rapl:0:0").symlink_to(real / "intel-rapl:0" / "intel-rapl:0:0")
    meter = make_meter("rapl", powercap_root=str(root))
    meter.begin("w")
    set_energy(pkg, 2_000_000)
    set_energy(dram, 1_000_000)
    assert meter.end("w").parts == pytest.approx({"cpu-package:0": 2.0, "dram:0": 1.0})
    meter.close()


def test_rapl_unreadable_is_a_reason(powercap, monkeypatch):
    root, z = powercap
    energy = z["pkg0"] / "energy_uj"
    energy.chmod(0)
    real_open = os.open

    def guarded_open(path, flags, *args, **kwargs):  # root ignores chmod; the kernel does not
        if str(path).endswith("energy_uj"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    reason = available_sources(str(root))["rapl"]
    assert reason == f"{energy} is not readable (permission denied)"
    with pytest.raises(RightsizeError) as err:
        make_meter("rapl", powercap_root=str(root))
    assert str(err.value) == f"--meter rapl: {energy} is not readable (permission denied)"
    auto = make_meter("auto", powercap_root=str(root))
    assert auto.source == "estimate"
    auto.begin("w")
    assert auto.end("w").estimated


def test_rapl_absent(no_rapl, tmp_path):
    assert "does not exist" in available_sources(no_rapl)["rapl"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert available_sources(str(empty))["rapl"].startswith("no RAPL package zones")
    with pytest.raises(RightsizeError, match="^--meter rapl: "):
        make_meter("rapl", powercap_root=no_rapl)


def test_auto_prefers_rapl_when_readable(powercap, fake_nvml):
    root, _ = powercap
    fake_nvml(energy={0: [0], 1: [0]})
    assert make_meter("auto", device="cpu", powercap_root=str(root)).source == "rapl"
    meter = make_meter("auto", device="cuda", powercap_root=str(root))
    assert meter.source == "nvml+rapl"
    meter.begin("w")
    m = meter.end("w")
    assert not m.estimated and {"gpu:0", "gpu:1", "cpu-package:0", "dram:0"} <= set(m.parts)
    meter.close()


# --------------------------------------------------------------------------- estimate


def test_estimate_is_cpu_seconds_times_watts(monkeypatch):
    # (user, system, children_user, children_system, elapsed); own time comes from process_time.
    times = iter(
        [os.times_result((1.0, 0.5, 0.2, 0.1, 0.0)), os.times_result((3.0, 1.0, 0.7, 0.1, 0.0))]
    )
    own = iter([1.5, 4.0])
    monkeypatch.setattr(os, "times", lambda: next(times))
    monkeypatch.setattr(time, "process_time", lambda: next(own))
    meter = make_meter("estimate", cpu_watts=10.0)
    meter.begin("w")
    m = meter.end("w")
    assert m.source == "estimate" and m.estimated
    assert m.parts == pytest.approx({"cpu-estimate": 30.0})  # (2.5 own + 0.5 children) s * 10 W
    assert m.joules == pytest.approx(30.0)
    assert meter.describe()["cpu_watts_per_core"] == 10.0


def test_estimate_default_and_validation():
    assert 4.0 <= DEFAULT_CPU_WATTS_PER_CORE <= 12.0
    assert make_meter("estimate").describe()["cpu_watts_per_core"] == DEFAULT_CPU_WATTS_PER_CORE
    for bad in (0, -5.0):
        with pytest.raises(RightsizeError, match="positive"):
            make_meter("estimate", cpu_watts=bad)


def test_estimate_sees_real_cpu_work():
    # Spin until this process has used 50 ms of CPU (not wall) time, so a busy machine
    # cannot starve the loop and make the expectation wrong.
    meter = make_meter("estimate", cpu_watts=10.0)
    meter.begin("w")
    start_cpu, deadline = time.process_time(), time.perf_counter() + 10.0
    while time.process_time() - start_cpu < 0.05 and time.perf_counter() < deadline:
        pass
    used = time.process_time() - start_cpu
    m = meter.end("w")
    assert used >= 0.05
    assert m.joules == pytest.approx(10.0 * used, abs=0.1)  # ~0.5 J of busy-waiting


# --------------------------------------------------------------------------- meter


def test_nested_and_overlapping_windows():
    meter = Meter([ScriptedCounter([0.0, 10.0, 25.0, 30.0, 40.0, 45.0])])
    meter.begin("outer")  # 0
    meter.begin("inner")  # 10
    assert meter.end("inner").joules == pytest.approx(15.0)  # 25
    meter.begin("b")  # 30
    assert meter.end("outer").joules == pytest.approx(40.0)  # 40: overlaps "b"
    m = meter.end("b")  # 45
    assert m.joules == pytest.approx(15.0) and m.source == "scripted" and m.seconds >= 0
    assert meter.open_windows == []


def test_window_errors():
    meter = make_meter("estimate")
    with pytest.raises(ValueError, match="not open"):
        meter.end("never")
    meter.begin("a")
    with pytest.raises(ValueError, match="already open"):
        meter.begin("a")
    meter.end("a")
    with pytest.raises(ValueError, match="not open"):
        meter.end("a")
    meter.begin("a")  # a closed name can be reused
    meter.end("a")


def test_unknown_kind():
    with pytest.raises(RightsizeError, match="^--meter joulemeter: unknown meter"):
        make_meter("joulemeter")


def test_describe_is_json(powercap, fake_nvml, no_rapl):
    root, _ = powercap
    fake_nvml(energy={0: [0], 1: [0]}, unsupported={1})
    meters = [
        make_meter("estimate"),
        make_meter("rapl", powercap_root=str(root)),
        make_meter("auto", device="cuda", powercap_root=no_rapl),
    ]
    for meter in meters:
        facts = json.loads(json.dumps(meter.describe()))
        assert facts["source"] == meter.source and facts["counters"]
        meter.close()
    assert (
        facts["gpu_indices"] == [0, 1] and facts["cpu_watts_per_core"] == DEFAULT_CPU_WATTS_PER_CORE
    )


def test_measurement_estimated_flag():
    assert Measurement(1.0, 2.0, "nvml+estimate", {"gpu:0": 1.0, "cpu-estimate": 1.0}).estimated
    assert not Measurement(1.0, 2.0, "nvml+rapl", {"gpu:0": 1.0, "cpu-package:0": 1.0}).estimated


def test_estimate_overhead_is_small():
    meter = make_meter("estimate")
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        meter.begin("w")
        meter.end("w")
    per_pair = (time.perf_counter() - start) / n
    assert per_pair < 500e-6  # ~10 µs on a laptop core; generous for loaded CI runners
