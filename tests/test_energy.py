"""Energy meter: the RAPL and estimate back-ends against fakes (no powercap or network), and the
meter's windows. NVML has its own file, test_nvml.py, with a fake that behaves like the real counter."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import pytest

from rightsize.energy import (
    DEFAULT_CPU_WATTS_PER_CORE,
    Measurement,
    Meter,
    available_sources,
    make_meter,
)
from rightsize.energy.rapl import RaplCounter
from rightsize.errors import RightsizeError
from rightsize.energy.counter import StepFree
from fake_nvml import FakeNvml

# --------------------------------------------------------------------------- fakes


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


class ScriptedCounter(StepFree):
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


def test_auto_prefers_rapl_when_readable(powercap, monkeypatch):
    root, _ = powercap
    fake = FakeNvml.of(2).install(monkeypatch)
    assert make_meter("auto", device="cpu", powercap_root=str(root)).source == "rapl"
    meter = make_meter("auto", device="cuda", powercap_root=str(root), clock=fake.clock.clock)
    assert meter.source == "nvml+rapl"
    meter.begin("w")
    m = meter.end("w")
    assert not m.estimated and {"gpu:0", "cpu-package:0", "dram:0"} <= set(m.parts)
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


def test_describe_is_json(powercap, monkeypatch, no_rapl):
    root, _ = powercap
    fake = FakeNvml.of(2).install(monkeypatch)
    fake.boards[1].energy_counter = False
    meters = [
        make_meter("estimate"),
        make_meter("rapl", powercap_root=str(root)),
        make_meter("auto", device="cuda", gpu_indices=[0, 1], powercap_root=no_rapl, clock=fake.clock.clock),
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
