"""What the energy meter knows about this machine before it measures anything, and what its windows
are worth: for a GPU (NVML), the counter's update step polled under load, the idle watts, and the
board's name, driver, power limit and MIG mode (``rightsize.energy.board``); then steady work in a
window long enough for the counters to resolve, and in one shorter than a step, with the uncertainty
and the flag each carries. ``scripts/gpu_check.sh`` runs this first.

Usage: python benchmarks/meter_characterise.py [--device cpu|cuda] [--meter auto|nvml|rapl|estimate]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--meter", default="auto")
    args = p.parse_args(argv)
    C.quiet()
    import torch

    from rightsize.energy import make_meter

    start = time.perf_counter()
    meter = make_meter(args.meter, device=args.device)  # CUDA warm-up and the counters' characterisation
    opened_s = time.perf_counter() - start
    C.log(f"meter {meter.source} opened in {opened_s:.2f} s: resolution {meter.resolution_s * 1000:.1f} ms")
    size = 4096 if args.device.startswith("cuda") else 256
    a = torch.randn(size, size, device=args.device)
    b = a / a.norm()

    def window(name: str, seconds: float) -> dict:
        """Matmuls for ``seconds`` (host time, waiting for the device every few) in one window."""
        meter.begin(name)
        while meter.elapsed(name) < seconds:
            for _ in range(4):
                a.copy_(b @ b)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
        m = meter.end(name)
        C.log(f"{name}: {m.seconds:.3f} s, {m.joules:.2f} J gross, {m.net_joules:.2f} J net, "
              f"± {m.uncertainty:.2f} J{' (below resolution)' if m.below_resolution else ''}")
        return {"seconds": m.seconds, "joules_gross": m.joules, "joules_net": m.net_joules,
                "uncertainty_j": m.uncertainty,
                "relative_uncertainty": m.uncertainty / m.joules if m.joules > 0 else None,
                "below_resolution": m.below_resolution, "read_errors": m.read_errors,
                "watts_gross": m.joules / m.seconds if m.seconds > 0 else None}

    resolved = window("resolved", max(meter.min_window_s * 1.5, 0.2))
    short = window("short", max(meter.resolution_s * 0.5, 0.01))
    facts = meter.describe()
    meter.close()
    boards = facts.get("gpu_boards") or {}
    figures = {
        "meter_open_s": round(opened_s, 3),
        "energy_source": facts["source"],
        "resolution_s": facts["resolution_s"],
        "min_window_s": facts["min_window_s"],
        "energy_basis": facts["energy_basis"],
        "idle_watts": facts["idle_watts"],
        "gpu_boards": boards,
        "gpu_energy": facts.get("gpu_energy", "measured" if boards else "no GPU meter"),
        "resolved_window": resolved,
        "short_window": short,
    }
    # Met: a GPU meter whose counter step was seen and whose resolved window is within 10%.
    met = None
    if boards:
        met = bool(all(b.get("update_interval_s") for b in boards.values())
                   and not resolved["below_resolution"] and (resolved["relative_uncertainty"] or 1) <= 0.1)
    C.emit("meter_characterise", "GPU counter step seen under load; a resolved window within 10%", met, figures,
           {"device": args.device, "meter": args.meter}, meter=facts)


if __name__ == "__main__":
    main()
