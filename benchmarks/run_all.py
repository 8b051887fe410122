"""Run every benchmark (each in its own process), print a summary, write benchmarks/results.json.

``make bench`` runs this. Each benchmark prints one JSON object on stdout; this collects them with
the date, machine and command into ``benchmarks/results.json``, the source of the figures in
``benchmarks/README.md``. A benchmark that fails is recorded as failed and the rest still run;
the exit code is 1 if any failed to run (a missed target is reported, not an error).

Usage: python benchmarks/run_all.py [--only encode_throughput,scaling] [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common as C  # noqa: E402

# name -> (script, arguments, arguments with --quick). Sizes are chosen so the whole set ends well
# inside 20 minutes on 2 cores; --quick is a smoke run of every script in a couple of minutes.
# One torch thread: on a 2-core machine shared with other work, two OpenMP threads stall on each
# other's descheduling (measured here: 5.7x the wall time and 5.5x the CPU time of one thread), which
# would make the figures measure the neighbours. Both sides of every ratio use the same setting.
ONE_THREAD = ["--threads", "1"]
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "encode_throughput": ("encode_throughput.py", ["--n", "2000", "--rounds", "5", *ONE_THREAD],
                          ["--n", "300", "--rounds", "1", *ONE_THREAD]),
    "meter_overhead": ("meter_overhead.py", [], ["--pairs", "2000", "--phase-repeats", "3"]),
    "cache_reuse": ("cache_reuse.py", ["--train-limit", "2000", "--limit", "500", *ONE_THREAD],
                    ["--train-limit", "200", "--limit", "50", *ONE_THREAD]),
    "scaling": ("scaling.py", ["--sizes", "1000,10000,50000", *ONE_THREAD], ["--sizes", "200,1000,2000", *ONE_THREAD]),
    "static_vs_probe": ("static_vs_probe.py", ["--train-limit", "2000", "--rounds", "5", *ONE_THREAD],
                        ["--train-limit", "200", "--limit", "100", "--rounds", "1", *ONE_THREAD]),
    "finetune_throughput": ("finetune_throughput.py", ["--n", "1000", "--epochs", "1", "--rounds", "2", *ONE_THREAD],
                            ["--n", "64", "--rounds", "1", *ONE_THREAD]),
    # The full comparison (Banking77 and TREC-6, 5 seeds, two targets) takes about 30 minutes here,
    # past the 20-minute budget of `make bench`, which runs its TREC-6 half with 3 seeds at the same
    # sizes; `python benchmarks/search_vs_exhaustive.py` on its own runs the whole of it.
    "search_vs_exhaustive": ("search_vs_exhaustive.py", ["--tasks", "trec6", "--seeds", "3", *ONE_THREAD],
                             ["--quick", *ONE_THREAD]),
}


def run_one(name: str, script: str, args: list[str]) -> dict:
    path = HERE / script
    if not path.exists():
        return {"benchmark": name, "status": "missing", "detail": f"{script} is not in benchmarks/ yet"}
    cmd = [sys.executable, str(path), *args]
    C.log(f"{name}: {' '.join(cmd[1:])}")
    start = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "PYTHONUNBUFFERED": "1"}
    # stderr passes through (progress lines); stdout is the JSON result.
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=HERE.parent)
    seconds = time.perf_counter() - start
    result = None
    for line in reversed(done.stdout.strip().splitlines()):
        try:
            result = json.loads(line)
            break
        except json.JSONDecodeError:
            continue
    if done.returncode != 0 or not isinstance(result, dict):
        return {"benchmark": name, "status": "failed", "exit_code": done.returncode, "seconds": round(seconds, 1),
                "detail": done.stdout[-1000:]}
    return {**result, "status": "ran", "command": " ".join(["python", f"benchmarks/{script}", *args]),
            "wall_seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated benchmark names")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not figures")
    p.add_argument("--out", type=Path, default=HERE / "results.json")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark {unknown[0]!r}; known: {', '.join(BENCHMARKS)}")

    started = time.perf_counter()
    results: list[dict] = []
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/run_all.py", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "machine": C.machine(),
        "total_seconds": None,
        "results": results,
    }
    for name in names:
        script, full, quick = BENCHMARKS[name]
        results.append(run_one(name, script, quick if args.quick else full))
        report["total_seconds"] = round(time.perf_counter() - started, 1)
        # Written after each benchmark: an interrupted run keeps the figures it finished.
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        tmp.replace(args.out)
    total = time.perf_counter() - started

    print(f"\n{'benchmark':<22} {'status':<8} {'met':<6} {'seconds':>8}  target")
    for r in results:
        met = {True: "yes", False: "NO", None: "-"}[r.get("met")] if r["status"] == "ran" else "-"
        print(f"{r['benchmark']:<22} {r['status']:<8} {met:<6} {r.get('wall_seconds', r.get('seconds', 0)):>8}  "
              f"{r.get('target', r.get('detail', ''))}")
    print(f"\ntotal {total / 60:.1f} min; results: {args.out}")
    return 1 if any(r["status"] == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
