"""Meter overhead: what one measurement window (``begin`` + ``end``) costs, alone and against a short phase.

Measured for each meter that can run here: the CPU-time estimate, RAPL over a fake powercap tree
(the same ``pread`` path as the real sysfs files, so the cost is representative), NVML when a GPU
is present, and the ``auto`` meter rightsize would pick. The short phase is a real one: the
``infer`` phase of the TF-IDF rung on 1,500 TREC-6 questions (about 100 ms on 2 cores), timed with
and without a window around it. The share is the per-window cost over the phase's median time.

Usage: python benchmarks/meter_overhead.py [--pairs 20000] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

TARGET_SHARE = 0.01


def fake_powercap(root: Path) -> Path:
    """A powercap tree with one package zone and its dram subzone, as the kernel lays it out."""
    for zone, name in (("intel-rapl:0", "package-0"), ("intel-rapl:0/intel-rapl:0:0", "dram")):
        d = root / zone
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")
        (d / "energy_uj").write_text("123456789\n")
        (d / "max_energy_range_uj").write_text("262143328850\n")
    return root


def window_cost_us(meter, pairs: int, repeats: int = 5) -> float:
    """Median over ``repeats`` of the mean cost of one begin/end pair, in microseconds."""
    for i in range(min(pairs, 1000)):  # warm-up: first reads start pollers, fill caches
        meter.begin("w")
        meter.end("w")
    costs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for i in range(pairs):
            meter.begin("w")
            meter.end("w")
        costs.append((time.perf_counter() - t) / pairs * 1e6)
    return C.median(costs)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=20000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--phase-repeats", type=int, default=15)
    args = p.parse_args(argv)
    C.quiet()

    from rightsize.energy import available_sources, make_meter
    from rightsize.rungs import RunContext, RungSpec, build_rung

    per_window: dict[str, float] = {}
    sources = available_sources()
    with tempfile.TemporaryDirectory() as tmp:
        meters = {"estimate": make_meter("estimate"),
                  "rapl (fake powercap tree)": make_meter("rapl", powercap_root=str(fake_powercap(Path(tmp) / "pc")))}
        if sources["rapl"] == "ok":
            meters["rapl"] = make_meter("rapl")
        if sources["nvml"] == "ok":
            meters["nvml"] = make_meter("nvml", device=args.device)
        auto = make_meter("auto", device=args.device)
        meters[f"auto ({auto.source})"] = auto
        for name, meter in meters.items():
            per_window[name] = window_cost_us(meter, args.pairs)
            C.log(f"{name}: {per_window[name]:.2f} µs per window")

        # A real short phase: TF-IDF inference on 1,500 TREC-6 questions the rung was not fit on.
        texts = C.read_texts("trec6", 3500)
        train, queries = texts[:2000], texts[2000:]
        labels = [str(i % 6) for i in range(len(train))]  # labels do not change the inference cost
        rung = build_rung(RungSpec("tfidf", "tfidf"), RunContext())
        rung.load()
        rung.fit(train, labels)
        rung.predict(queries)  # warm-up
        bare, windowed = [], []
        for _ in range(args.phase_repeats):  # alternate, so load changes hit both alike
            t = time.perf_counter()
            rung.predict(queries)
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            auto.begin("infer")
            rung.predict(queries)
            auto.end("infer")
            windowed.append(time.perf_counter() - t)
        for meter in meters.values():
            meter.close()

    phase_s = C.median(bare)
    auto_name = next(k for k in per_window if k.startswith("auto"))
    shares = {name: us * 1e-6 / phase_s for name, us in per_window.items()}
    figures = {
        "per_window_us": {k: round(v, 2) for k, v in per_window.items()},
        "short_phase": f"tfidf infer, {len(queries)} TREC-6 questions",
        "short_phase_ms": round(phase_s * 1e3, 2),
        "short_phase_windowed_ms": round(C.median(windowed) * 1e3, 2),
        "share_of_short_phase": {k: f"{v:.4%}" for k, v in shares.items()},
        "auto_share": shares[auto_name],
        "sources_here": sources,
    }
    met = max(shares.values()) < TARGET_SHARE
    C.emit("meter_overhead", f"one window < {TARGET_SHARE:.0%} of a short (~100 ms) phase", met, figures,
           {"pairs": args.pairs, "device": args.device, "phase_repeats": args.phase_repeats})


if __name__ == "__main__":
    main()
