#!/usr/bin/env bash
# GPU check: on a CUDA machine, in one command that stays inside one 600 s device command:
#   0. setup: a venv that sees the machine's CUDA build of torch (requirements.lock installed where
#      a package index is reachable, else carried wheels in .whl/, else what the image has);
#   1. characterise: benchmarks/meter_characterise.py, first: the GPU's energy counter step polled
#      under load, idle watts, board, driver, power limit, MIG mode; a resolved and a short window;
#   2. pytest -m gpu (the tests that need a real CUDA device);
#   3. encode: benchmarks/encode_throughput.py at fp32/bf16 x sdpa/eager, all four in one process,
#      J/text with its uncertainty;
#   4. overhead: benchmarks/meter_overhead.py on cuda (the cost of an NVML window).
# Every step runs under its own time limit, all of them together under TOTAL_LIMIT_S (530 s), and
# the summary $OUT/gpu_check.json is rewritten after each step and on exit (a hang or a kill keeps
# what finished). Other files in $OUT (or .cache/gpu-check/): characterise.json, encode.jsonl,
# meter_overhead.json, pytest.log, pytest.xml, setup.log, stages.jsonl.
#
# A lent GPU machine has no network and gets only the repository, so stage what it needs first,
# on a machine with the data and the assembled MiniLM (`make models`):
#     scripts/gpu_check.sh --stage          # writes .cache/gpu-stage/ (~2 MB, git-ignored)
# then run there (carrying .cache/gpu-stage):
#     scripts/gpu_check.sh
# MiniLM's weights (87 MB) exceed what can be carried; without them the check builds the same
# architecture (config and tokenizer are staged) with random weights: the same shapes, tokens and
# FLOPs, so throughput and energy are MiniLM's; gpu_check.json says which it used. pynvml (one
# pure-Python file) is staged too, for an image without it.
#
# Other modes: --dry-run (CPU, small sizes, no install: checks this script here, same limits);
#              --no-install (use the current environment's python as is).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STAGE=$ROOT/.cache/gpu-stage
MINILM=sentence-transformers/all-MiniLM-L6-v2
MODE=gpu INSTALL=1
for arg in "$@"; do
  case $arg in
    --stage) MODE=stage ;;
    --dry-run) MODE=dry INSTALL=0 ;;
    --no-install) INSTALL=0 ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 PIP_NO_INPUT=1

# Time limits, seconds: each step's own, and all of them together (a device command gets 600 s,
# minus the machine's start and the transfers).
TOTAL_LIMIT_S=530
declare -A LIMIT=([setup]=60 [model]=25 [characterise]=45 [pytest]=120 [encode]=200 [overhead]=60)
STEPS="setup model characterise pytest encode overhead"

# ------------------------------------------------------------------ stage (on a dev machine)
if [[ $MODE == stage ]]; then
  PY=${PYTHON:-$ROOT/.venv/bin/python}
  DATA=${RIGHTSIZE_SHARED_DATA:-$ROOT/../shared/data}
  rm -rf "$STAGE" && mkdir -p "$STAGE/data/sst2" "$STAGE/data/trec6" "$STAGE/site" || exit 1
  head -n 5000 "$DATA/sst2/train.jsonl" >"$STAGE/data/sst2/train.jsonl" || exit 1
  head -n 1000 "$DATA/sst2/validation.jsonl" >"$STAGE/data/sst2/validation.jsonl" || exit 1
  head -n 4000 "$DATA/trec6/train.jsonl" >"$STAGE/data/trec6/train.jsonl" || exit 1
  cp "$DATA/trec6/test.jsonl" "$STAGE/data/trec6/test.jsonl" || exit 1
  # Everything of MiniLM but its weights (config, tokenizer, sentence-transformers modules), and
  # pynvml: the GPU meter needs it, and it is one pure-Python file.
  "$PY" - "$MINILM" "$STAGE" <<'EOF' || exit 1
import json, shutil, sys
from importlib import metadata
from pathlib import Path
import pynvml
from rightsize.models import resolve_model
src, stage = resolve_model(sys.argv[1]), Path(sys.argv[2])
dst = stage / "minilm"
for f in src.rglob("*"):
    if f.is_file() and f.suffix not in (".safetensors", ".bin", ".onnx", ".h5", ".msgpack") and "onnx" not in f.parts:
        (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dst / f.relative_to(src))
shutil.copy2(pynvml.__file__, stage / "site" / "pynvml.py")
files = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
(stage / "manifest.json").write_text(json.dumps({
    "carry": [".cache/gpu-stage"], "model": sys.argv[1], "nvidia-ml-py": metadata.version("nvidia-ml-py"),
    "files": files}, indent=1) + "\n")
EOF
  du -sh "$STAGE"
  echo "staged: carry .cache/gpu-stage (e.g. run(command='scripts/gpu_check.sh', carry=['.cache/gpu-stage']))"
  exit 0
fi

OUTDIR=${OUT:-$ROOT/.cache/gpu-check}
mkdir -p "$OUTDIR"
LOG=$OUTDIR/setup.log
: >"$LOG"
: >"$OUTDIR/stages.jsonl"
say() { echo "[gpu_check $(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }
START=$(date +%s)
DEADLINE=$(( START + TOTAL_LIMIT_S ))
PY=${PYTHON:-$( [[ -x $ROOT/.venv/bin/python ]] && echo "$ROOT/.venv/bin/python" || echo python3 )}
MODEL=$MINILM WEIGHTS=unknown

# limited SECONDS CMD...: CMD under `timeout`, never past the deadline (status 124 when none is left).
limited() {
  local want=$1 left=$(( DEADLINE - $(date +%s) ))
  shift
  (( left <= 0 )) && return 124
  timeout -k 5 $(( want < left ? want : left )) "$@"
}

# step NAME OUT ERR CMD...: run one step under its limit, its stdout to OUT and stderr to ERR (files,
# appended to when they are the same), and record how it ended in stages.jsonl.
step() {
  local name=$1 out=$2 err=$3 t0 rc
  shift 3
  t0=$(date +%s)
  if [[ $out == "$err" ]]; then limited "${LIMIT[$name]}" "$@" >>"$out" 2>&1
  else limited "${LIMIT[$name]}" "$@" >"$out" 2>>"$err"; fi
  rc=$?
  local status=ok
  (( rc == 124 || rc == 137 )) && status=timed-out
  (( rc != 0 && rc != 124 && rc != 137 )) && status=failed
  echo "{\"step\": \"$name\", \"status\": \"$status\", \"exit_code\": $rc, \"seconds\": $(( $(date +%s) - t0 )), \"limit_s\": ${LIMIT[$name]}}" \
    >>"$OUTDIR/stages.jsonl"
  say "$name: $status (exit $rc, $(( $(date +%s) - t0 )) s of ${LIMIT[$name]} s)"
  summarise
  return $rc
}

# The summary, from whatever the steps have written so far; python3 if the venv's is unusable.
summarise() {
  local py=$PY
  "$py" -c '' 2>/dev/null || py=python3
  timeout 20 "$py" - "$OUTDIR" "$MODEL" "$WEIGHTS" "$(( $(date +%s) - START ))" "$TOTAL_LIMIT_S" "$MODE" \
    "$(for s in $STEPS; do printf '%s=%s ' "$s" "${LIMIT[$s]}"; done)" <<'EOF' >/dev/null 2>>"$LOG"
import json, sys
from pathlib import Path
out, model, weights, seconds, total, mode, limits = sys.argv[1:]
out = Path(out)

def lines(name):
    try:
        return [json.loads(l) for l in (out / name).read_text().splitlines() if l.strip().startswith("{")]
    except (OSError, ValueError):
        return []

stages = {s["step"]: s for s in lines("stages.jsonl")}
limits = {k: int(v) for k, v in (x.split("=") for x in limits.split())}
characterise = (lines("characterise.json") or [None])[-1]
overhead = (lines("meter_overhead.json") or [None])[-1]
log = (out / "pytest.log").read_text(errors="replace").strip().splitlines() if (out / "pytest.log").exists() else []
encode = []
for e in lines("encode.jsonl"):
    f = e["figures"]
    encode.append({"precision": e["config"]["precision"], "attn": e["config"]["attn"], **{k: f.get(k) for k in (
        "rightsize_j_per_text", "rightsize_j_per_text_uncertainty", "rightsize_j_per_text_gross",
        "sentence_transformers_j_per_text", "sentence_transformers_j_per_text_uncertainty", "energy_basis",
        "passes_per_window", "below_resolution", "speedup", "rightsize_texts_per_s",
        "sentence_transformers_texts_per_s", "energy_source", "min_cosine_between_paths")}})
summary = {
    "mode": mode, "model": model, "weights": weights, "seconds": int(seconds), "total_limit_s": int(total),
    "limits_s": limits, "stages": {s: stages.get(s, {"status": "not run"}) for s in limits},
    "meter": characterise and characterise["figures"],
    "pytest_gpu": {"last_line": log[-1] if log else None, **({"exit_code": stages["pytest"]["exit_code"]}
                                                             if "pytest" in stages else {})},
    "encode": encode,
    "meter_overhead": overhead and overhead["figures"],
    "machine": characterise and characterise["machine"],
}
tmp = out / "gpu_check.json.tmp"
tmp.write_text(json.dumps(summary, indent=2) + "\n")
tmp.replace(out / "gpu_check.json")
EOF
}
trap 'summarise; say "summary: $OUTDIR/gpu_check.json"' EXIT

# ------------------------------------------------------------------ 0. setup
# Picks the python the other steps use (written to $OUTDIR/python.txt).
setup() {
  local py=$PY
  if [[ $INSTALL == 1 ]]; then
    local base=${PYTHON:-python3} venv=$ROOT/.cache/venv-gpu  # git-ignored
    if [[ ! -x $venv/bin/python ]]; then
      say "creating $venv from $base"
      "$base" -m venv --system-site-packages "$venv" >>"$LOG" 2>&1 || { say "venv creation failed"; return 1; }
      # When the machine's python is itself a venv (its CUDA torch lives there), --system-site-packages
      # reaches only the interpreter below it: bridge to the parent's site-packages with a .pth file.
      local site
      site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
      "$base" -c 'import site; print("\n".join(site.getsitepackages()))' >"$site/_gpu_check_parent.pth"
    fi
    py=$venv/bin/python
    # torch stays the machine's CUDA build: requirements.lock pins the CPU wheel.
    grep -v -E '^(torch|triton)==' requirements.lock >"$venv/requirements-gpu.txt"
    if "$py" -m pip install -q --retries 0 --timeout 5 -r "$venv/requirements-gpu.txt" >>"$LOG" 2>&1; then
      say "installed requirements.lock (torch excepted) from the package index"
    elif [[ -d .whl ]] && "$py" -m pip install -q --no-index --find-links .whl -r "$venv/requirements-gpu.txt" >>"$LOG" 2>&1; then
      say "installed requirements.lock from carried wheels (.whl/)"
    else
      say "no package index and no complete .whl/: using the machine's packages (versions in setup.log)"
    fi
    "$py" -m pip install -q --no-deps --no-build-isolation -e . >>"$LOG" 2>&1 || say "editable install failed; using PYTHONPATH"
  fi
  "$py" -c 'import torch' >>"$LOG" 2>&1 || { say "$py cannot import torch"; return 1; }
  if [[ $MODE == gpu ]]; then
    "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
      || { say "torch.cuda.is_available() is False for $py: not a usable CUDA machine"; return 1; }
  fi
  "$py" - >>"$LOG" 2>&1 <<'EOF'
import importlib, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
for name in ("transformers", "sentence_transformers", "pynvml", "sklearn", "faiss", "optuna", "rightsize"):
    try:
        m = importlib.import_module(name)
        print(name, getattr(m, "__version__", "?"))
    except Exception as e:
        print(name, "MISSING", e)
EOF
  echo "$py" >"$OUTDIR/python.txt"
}
export -f setup say
export PY INSTALL MODE ROOT OUTDIR LOG
step setup "$LOG" "$LOG" bash -c setup || exit 1
read -r PY <"$OUTDIR/python.txt"
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
"$PY" -c 'import pynvml' 2>/dev/null || { [[ -f $STAGE/site/pynvml.py ]] && export PYTHONPATH=$PYTHONPATH:$STAGE/site && say "pynvml from the stage"; }

if [[ $MODE == gpu ]]; then
  DEVICE=cuda N=2000 ROUNDS=3 METER=nvml CONFIGS=fp32:sdpa,fp32:eager,bf16:sdpa,bf16:eager THREADS=() PAIRS=20000 PHASE_REPEATS=15
else  # the dry run checks every step on a CPU, small; bf16 on a CPU is slow and checks nothing more
  DEVICE=cpu N=200 ROUNDS=1 METER=auto CONFIGS=fp32:sdpa,fp32:eager THREADS=(--threads 1) PAIRS=2000 PHASE_REPEATS=3
fi

# ------------------------------------------------------------------ data and model
if [[ -z ${RIGHTSIZE_SHARED_DATA:-} ]]; then
  if [[ -f $ROOT/../shared/data/sst2/train.jsonl ]]; then export RIGHTSIZE_SHARED_DATA=$ROOT/../shared/data
  elif [[ -f $STAGE/data/sst2/train.jsonl ]]; then export RIGHTSIZE_SHARED_DATA=$STAGE/data
  else say "no SST-2 data (../shared/data or a staged .cache/gpu-stage): run --stage first"; exit 1; fi
fi
build_model() {
  if "$PY" -c "from rightsize.models import resolve_model as r; r('$MINILM')" >/dev/null 2>&1; then
    echo "$MINILM real" >"$OUTDIR/model.txt"
  elif [[ -f $STAGE/minilm/config.json ]]; then
    # Built outside the stage, which must stay small enough to carry.
    local model=${TMPDIR:-/tmp}/rightsize-gpu-minilm
    if [[ ! -f $model/model.safetensors ]]; then
      rm -rf "$model" && cp -r "$STAGE/minilm" "$model" || return 1
      "$PY" - "$model" >>"$LOG" 2>&1 <<'EOF' || return 1
import sys, torch
from transformers import AutoConfig, AutoModel
torch.manual_seed(0)
folder = sys.argv[1]
AutoModel.from_config(AutoConfig.from_pretrained(folder)).save_pretrained(folder)  # model.safetensors
EOF
    fi
    echo "$model random-init" >"$OUTDIR/model.txt"
  else
    say "MiniLM is neither in the HF cache nor staged: run --stage first"; return 1
  fi
}
export -f build_model
export PY MINILM STAGE
step model "$LOG" "$LOG" bash -c build_model || exit 1
read -r MODEL WEIGHTS <"$OUTDIR/model.txt"
say "device $DEVICE, model $MODEL ($WEIGHTS weights), data $RIGHTSIZE_SHARED_DATA"

# ------------------------------------------------------------------ 1. the meter, first
step characterise "$OUTDIR/characterise.json" "$LOG" \
  "$PY" benchmarks/meter_characterise.py --device "$DEVICE" --meter "$METER"

# ------------------------------------------------------------------ 2. pytest -m gpu
# Only the modules that hold gpu tests: others may import packages the machine lacks (optuna, faiss).
GPU_TESTS=$(grep -l -E 'mark\.gpu' tests/test_*.py)
: >"$OUTDIR/pytest.log"
step pytest "$OUTDIR/pytest.log" "$OUTDIR/pytest.log" \
  "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider --junitxml="$OUTDIR/pytest.xml" $GPU_TESTS
PYTEST_RC=$?

# ------------------------------------------------------------------ 3. encode: every configuration in one process
step encode "$OUTDIR/encode.jsonl" "$LOG" "$PY" benchmarks/encode_throughput.py --model "$MODEL" --device "$DEVICE" \
  --configs "$CONFIGS" --meter "$METER" --n "$N" --rounds "$ROUNDS" --batch-size 64 "${THREADS[@]}"

# ------------------------------------------------------------------ 4. meter overhead
step overhead "$OUTDIR/meter_overhead.json" "$LOG" \
  "$PY" benchmarks/meter_overhead.py --device "$DEVICE" --pairs "$PAIRS" --phase-repeats "$PHASE_REPEATS"

say "done in $(( $(date +%s) - START )) s of $TOTAL_LIMIT_S s; results in $OUTDIR"
FAILED=$(grep -c -v '"status": "ok"' "$OUTDIR/stages.jsonl")
(( FAILED == 0 )) || (( PYTEST_RC == 5 && FAILED == 1 ))  # 5: no gpu test collected (a CPU dry run)
