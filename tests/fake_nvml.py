"""A stand-in for pynvml whose boards behave like real energy counters, on a clock the test advances.

A fake board draws ``idle_w`` watts, or ``load_w`` while busy (``busy_for(seconds)``, or the
callable ``load()`` makes for the meter's characterisation). Its energy counter integrates that
power exactly but, like the real one, moves only every ``step_s`` (100 ms): a read returns the
energy at the board's last update, in whole millijoules, from an arbitrary starting value.
``nvmlDeviceGetPowerUsage`` is the mean power over the last ``power_average_s`` of updates (1 s on
recent boards; 0: the power right now). Nothing moves between calls: time passes only when the test
advances the clock (``clock.advance``, or ``clock.sleep`` from the code under test), and every NVML
call first brings the board up to the clock's time.

Also modelled: boards without an energy counter (NotSupported, power only), MIG instances (a board
in MIG mode with instance UUIDs; energy on an instance is NotSupported), reads that fail
(``fail_reads``), and nvmlInit failing.
"""

from __future__ import annotations

import math
import sys
import types
from collections import deque
from dataclasses import dataclass, field

from rightsize.energy.clock import Clock

NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_UNKNOWN = 999


class FakeClock:
    """Time that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)

    advance = sleep

    @property
    def clock(self) -> Clock:
        return Clock(now=self.now, sleep=self.sleep)


@dataclass
class FakeBoard:
    uuid: str
    name: str = "NVIDIA H200"
    idle_w: float = 70.0
    load_w: float = 400.0
    step_s: float = 0.1
    power_limit_w: float = 700.0
    power_average_s: float = 1.0
    energy_counter: bool = True
    mig_instances: list[str] = field(default_factory=list)  # MIG-... UUIDs: the board is in MIG mode
    fail_reads: int = 0  # the next N energy reads raise NVMLError (Unknown)
    start_mj: int = 123_456_789  # the counter's value at creation (energy since the driver loaded)
    # state
    t: float = math.nan  # the time the board has been brought up to
    joules: float = 0.0  # exact energy since creation
    latched: float = 0.0  # ``joules`` at the last update: what the counter shows
    busy_until: float = -math.inf
    origin: float = 0.0
    updates: int = 0
    energy_reads: int = 0
    history: deque = field(default_factory=lambda: deque(maxlen=64))  # (update time, joules)

    def start(self, now: float, phase_s: float) -> None:
        self.t = now
        self.origin = now + phase_s - self.step_s  # the first update falls phase_s from now
        self.history.append((now, 0.0))

    def power(self, t: float) -> float:
        return self.load_w if t < self.busy_until else self.idle_w

    @property
    def next_update(self) -> float:
        return self.origin + (self.updates + 1) * self.step_s

    def catch_up(self, now: float) -> None:
        while self.t < now:
            end = min(now, self.next_update)
            if self.t < self.busy_until < end:
                end = self.busy_until
            self.joules += self.power(self.t) * (end - self.t)
            self.t = end
            if self.t >= self.next_update - 1e-12:
                self.updates += 1
                self.latched = self.joules
                self.history.append((self.t, self.joules))

    def counter_mj(self) -> int:
        return self.start_mj + int(self.latched * 1000)

    def power_mw(self) -> int:
        if self.power_average_s <= 0 or len(self.history) < 2:
            return int(self.power(self.t) * 1000)
        t1, e1 = self.history[-1]
        t0, e0 = next(((t, e) for t, e in self.history if t >= t1 - self.power_average_s - 1e-9), self.history[0])
        if t1 <= t0:
            return int(self.power(self.t) * 1000)
        return int((e1 - e0) / (t1 - t0) * 1000)


class FakeNvml:
    """The fake pynvml module (``.module``) over ``boards``, all following ``clock``."""

    def __init__(self, clock: FakeClock, boards: list[FakeBoard], init_error: str | None = None,
                 phase_s: float = 0.037) -> None:
        self.clock = clock
        self.boards = boards
        for b in boards:
            b.start(clock.now(), phase_s)
        self.init_error = init_error
        self.init_calls = 0
        self.power_calls = 0
        self.module = self._module()

    @classmethod
    def of(cls, count: int = 1, clock: FakeClock | None = None, **board) -> "FakeNvml":
        """``count`` identical boards with UUIDs GPU-0000..., on a new clock unless given one."""
        boards = [FakeBoard(uuid=f"GPU-{i:04d}aaaa-0000-1111-2222-333344445555", **board) for i in range(count)]
        return cls(clock or FakeClock(), boards)

    def board(self, handle) -> FakeBoard:
        b = self.boards[handle[1]]
        b.catch_up(self.clock.now())
        return b

    def busy_for(self, seconds: float, index: int = 0) -> None:
        """Board ``index`` draws its load power for the next ``seconds`` (from the clock's now)."""
        b = self.boards[index]
        b.catch_up(self.clock.now())
        b.busy_until = max(b.busy_until, self.clock.now() + seconds)

    def work(self, seconds: float, index: int = 0) -> None:
        """GPU work that takes ``seconds``: busy, and the clock moves past it."""
        self.busy_for(seconds, index)
        self.clock.advance(seconds)

    def load(self, index: int = 0):
        """What the meter's characterisation gets as ``load``: a keep-busy callable for board ``index``."""
        return lambda: self.busy_for(0.01, index)

    def install(self, monkeypatch) -> "FakeNvml":
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        monkeypatch.setitem(sys.modules, "pynvml", self.module)
        return self

    def _module(self) -> types.ModuleType:
        m = types.ModuleType("pynvml")
        fake = self

        class NVMLError(Exception):
            def __init__(self, value: int = NVML_ERROR_UNKNOWN, text: str = "Unknown Error") -> None:
                super().__init__(text)
                self.value = value

        class NVMLError_NotSupported(NVMLError):
            def __init__(self) -> None:
                super().__init__(NVML_ERROR_NOT_SUPPORTED, "Not Supported")

        def nvmlInit() -> None:
            fake.init_calls += 1
            if fake.init_error:
                raise NVMLError(9, fake.init_error)

        def handle(i: int) -> tuple[str, int]:
            if not 0 <= i < len(fake.boards):
                raise NVMLError(2, "Invalid Argument")
            return ("board", i)

        def uuid(h) -> str:
            if h[0] == "mig":
                return fake.boards[h[1]].mig_instances[h[2]]
            return fake.boards[h[1]].uuid

        def energy(h) -> int:
            if h[0] == "mig":
                raise NVMLError_NotSupported()
            b = fake.board(h)
            if not b.energy_counter:
                raise NVMLError_NotSupported()
            b.energy_reads += 1
            if b.fail_reads > 0:
                b.fail_reads -= 1
                raise NVMLError()
            return b.counter_mj()

        def power(h) -> int:
            fake.power_calls += 1
            return fake.board(h).power_mw()

        def mig_mode(h) -> list[int]:
            b = fake.boards[h[1]]
            return [1, 1] if b.mig_instances else [0, 0]

        def mig_handle(h, j: int):
            if j >= len(fake.boards[h[1]].mig_instances):
                raise NVMLError(6, "Not Found")
            return ("mig", h[1], j)

        m.NVMLError = NVMLError
        m.NVMLError_NotSupported = NVMLError_NotSupported
        m.nvmlInit = nvmlInit
        m.nvmlDeviceGetCount = lambda: len(fake.boards)
        m.nvmlDeviceGetHandleByIndex = handle
        m.nvmlDeviceGetUUID = uuid
        m.nvmlDeviceGetName = lambda h: fake.boards[h[1]].name.encode()  # older pynvml returns bytes
        m.nvmlSystemGetDriverVersion = lambda: "570.86.15"
        m.nvmlDeviceGetEnforcedPowerLimit = lambda h: int(fake.boards[h[1]].power_limit_w * 1000)
        m.nvmlDeviceGetMigMode = mig_mode
        m.nvmlDeviceGetMaxMigDeviceCount = lambda h: 7 if fake.boards[h[1]].mig_instances else 0
        m.nvmlDeviceGetMigDeviceHandleByIndex = mig_handle
        m.nvmlDeviceGetTotalEnergyConsumption = energy
        m.nvmlDeviceGetPowerUsage = power
        return m


class FakeTorchCuda:
    """``torch.cuda`` as the meter sees it on a machine with these boards: UUIDs (bare, as torch
    reports them), the current device, and the synchronizes, warm-ups and loads it receives.

    ``visible`` lists the board indices CUDA shows, in CUDA order (CUDA_VISIBLE_DEVICES); an entry
    ("mig", board, j) is a MIG instance.
    """

    def __init__(self, nvml: FakeNvml, visible: list | None = None, current: int = 0,
                 available: bool = True) -> None:
        self.nvml = nvml
        self.visible = list(range(len(nvml.boards))) if visible is None else visible
        self.current = current
        self.available = available
        self.synced: list = []
        self.warmed: list[int] = []
        self.emptied = 0
        self.sync_error: Exception | None = None

    def uuid(self, index: int) -> str:
        v = self.visible[index]
        u = self.nvml.boards[v[1]].mig_instances[v[2]] if isinstance(v, tuple) else self.nvml.boards[v].uuid
        return u.split("-", 1)[1]  # torch prints the UUID without NVML's GPU-/MIG- prefix

    def install(self, monkeypatch) -> "FakeTorchCuda":
        """Patch the real torch.cuda (no CUDA here) and rightsize's CUDA start-up to this machine."""
        import torch

        from rightsize.energy import cuda as rs_cuda

        monkeypatch.setattr(torch.cuda, "is_available", lambda: self.available)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: self.available)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(self.visible) if self.available else 0)
        monkeypatch.setattr(torch.cuda, "empty_cache", self._empty)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current)
        monkeypatch.setattr(torch.cuda, "synchronize", self.synchronize)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: self.nvml.boards[0].name)
        monkeypatch.setattr(torch.cuda, "get_device_properties",
                            lambda i: types.SimpleNamespace(uuid=self.uuid(i), name=self.nvml.boards[0].name))
        # CUDA work itself cannot run here: the start-up is recorded, the load is the fake board's.
        monkeypatch.setattr(rs_cuda, "warm_up", lambda torch_, i: self.warmed.append(i))
        monkeypatch.setattr(rs_cuda, "busy", lambda torch_, i: self.nvml.load(self._board(i)))
        return self

    def _board(self, index: int) -> int:
        v = self.visible[index]
        return v[1] if isinstance(v, tuple) else v

    def _empty(self) -> None:
        self.emptied += 1

    def synchronize(self, device=None) -> None:
        self.synced.append(device)
        if self.sync_error is not None:
            raise self.sync_error
