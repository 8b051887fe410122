#!/usr/bin/env bash
# GPU check: on a CUDA machine, in one command, well inside 10 minutes:
#   1. a venv that sees the machine's CUDA build of torch, with requirements.lock installed where
#      a package index is reachable (else carried wheels in .whl/, else what the image has);
#   2. `pytest -m gpu` (the tests that need a real CUDA device);
#   3. benchmarks/encode_throughput.py on cuda at fp32/bf16 x sdpa/eager, NVML energy per window;
#   4. benchmarks/meter_overhead.py on cuda (the cost of an NVML window).
# Results go to $OUT (or .cache/gpu-check/): gpu_check.json (the summary), encode.jsonl,
# meter_overhead.json, pytest.log, pytest.xml, setup.log.
#
# A lent GPU machine has no network and gets only the repository, so stage what it needs first,
# on a machine with the data and the assembled MiniLM (`make models`):
#     scripts/gpu_check.sh --stage          # writes .cache/gpu-stage/ (~1 MB, git-ignored)
# then run there (carrying .cache/gpu-stage):
#     scripts/gpu_check.sh
# MiniLM's weights (87 MB) exceed what can be carried; without them the check builds the same
# architecture (config and tokenizer are staged) with random weights: the same shapes, tokens and
# FLOPs, so throughput and energy are MiniLM's; gpu_check.json says which it used.
#
# Other modes: --dry-run (CPU, small sizes, no install: checks this script here);
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
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 PIP_NO_INPUT=1

# ------------------------------------------------------------------ stage (on a dev machine)
if [[ $MODE == stage ]]; then
  PY=${PYTHON:-$ROOT/.venv/bin/python}
  DATA=${RIGHTSIZE_SHARED_DATA:-$ROOT/../shared/data}
  rm -rf "$STAGE" && mkdir -p "$STAGE/data/sst2" "$STAGE/data/trec6" || exit 1
  head -n 5000 "$DATA/sst2/train.jsonl" >"$STAGE/data/sst2/train.jsonl" || exit 1
  head -n 1000 "$DATA/sst2/validation.jsonl" >"$STAGE/data/sst2/validation.jsonl" || exit 1
  head -n 4000 "$DATA/trec6/train.jsonl" >"$STAGE/data/trec6/train.jsonl" || exit 1
  cp "$DATA/trec6/test.jsonl" "$STAGE/data/trec6/test.jsonl" || exit 1
  # Everything of MiniLM but its weights: config, tokenizer, sentence-transformers modules.
  "$PY" - "$MINILM" "$STAGE/minilm" <<'EOF' || exit 1
import shutil, sys
from pathlib import Path
from rightsize.models import resolve_model
src, dst = resolve_model(sys.argv[1]), Path(sys.argv[2])
for f in src.rglob("*"):
    if f.is_file() and f.suffix not in (".safetensors", ".bin", ".onnx", ".h5", ".msgpack") and "onnx" not in f.parts:
        (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dst / f.relative_to(src))
EOF
  du -sh "$STAGE"
  echo "staged: carry .cache/gpu-stage (e.g. run(command='scripts/gpu_check.sh', carry=['.cache/gpu-stage']))"
  exit 0
fi

OUTDIR=${OUT:-$ROOT/.cache/gpu-check}
mkdir -p "$OUTDIR"
LOG=$OUTDIR/setup.log
: >"$LOG"
say() { echo "[gpu_check $(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }
START=$(date +%s)

# ------------------------------------------------------------------ 1. environment
if [[ $INSTALL == 1 ]]; then
  BASE=${PYTHON:-python3}
  VENV=$ROOT/.cache/venv-gpu  # git-ignored
  if [[ ! -x $VENV/bin/python ]]; then
    say "creating $VENV from $BASE"
    "$BASE" -m venv --system-site-packages "$VENV" >>"$LOG" 2>&1 || { say "venv creation failed"; exit 1; }
    # When the machine's python is itself a venv (its CUDA torch lives there), --system-site-packages
    # reaches only the interpreter below it: bridge to the parent's site-packages with a .pth file.
    SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    "$BASE" -c 'import site; print("\n".join(site.getsitepackages()))' >"$SITE/_gpu_check_parent.pth"
  fi
  PY=$VENV/bin/python
  # torch stays the machine's CUDA build: requirements.lock pins the CPU wheel.
  grep -v -E '^(torch|triton)==' requirements.lock >"$VENV/requirements-gpu.txt"
  if "$PY" -m pip install -q --retries 0 --timeout 5 -r "$VENV/requirements-gpu.txt" >>"$LOG" 2>&1; then
    say "installed requirements.lock (torch excepted) from the package index"
  elif [[ -d .whl ]] && "$PY" -m pip install -q --no-index --find-links .whl -r "$VENV/requirements-gpu.txt" >>"$LOG" 2>&1; then
    say "installed requirements.lock from carried wheels (.whl/)"
  else
    say "no package index and no complete .whl/: using the machine's packages (versions in gpu_check.json)"
  fi
  "$PY" -m pip install -q --no-deps --no-build-isolation -e . >>"$LOG" 2>&1 || say "editable install failed; using PYTHONPATH"
else
  PY=${PYTHON:-$( [[ -x $ROOT/.venv/bin/python ]] && echo "$ROOT/.venv/bin/python" || echo python3 )}
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}

if [[ $MODE == gpu ]]; then
  DEVICE=cuda N=2000 ROUNDS=5 METER=nvml THREADS=()
  "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || { say "torch.cuda.is_available() is False for $PY: not a usable CUDA machine"; exit 1; }
else
  DEVICE=cpu N=200 ROUNDS=1 METER=auto THREADS=(--threads 1)
fi
"$PY" - >>"$LOG" 2>&1 <<'EOF'
import importlib, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
for name in ("transformers", "sentence_transformers", "pynvml", "sklearn", "faiss", "optuna", "rightsize"):
    try:
        m = importlib.import_module(name)
        print(name, getattr(m, "__version__", "?"))
    except Exception as e:
        print(name, "MISSING", e)
EOF

# ------------------------------------------------------------------ data and model
if [[ -z ${RIGHTSIZE_SHARED_DATA:-} ]]; then
  if [[ -f $ROOT/../shared/data/sst2/train.jsonl ]]; then export RIGHTSIZE_SHARED_DATA=$ROOT/../shared/data
  elif [[ -f $STAGE/data/sst2/train.jsonl ]]; then export RIGHTSIZE_SHARED_DATA=$STAGE/data
  else say "no SST-2 data (../shared/data or a staged .cache/gpu-stage): run --stage first"; exit 1; fi
fi
WEIGHTS=real
if "$PY" -c "from rightsize.models import resolve_model as r; r('$MINILM')" >/dev/null 2>&1; then
  MODEL=$MINILM
elif [[ -f $STAGE/minilm/config.json ]]; then
  # Built outside the stage, which must stay small enough to carry.
  MODEL=${TMPDIR:-/tmp}/rightsize-gpu-minilm WEIGHTS=random-init
  if [[ ! -f $MODEL/model.safetensors ]]; then
    rm -rf "$MODEL" && cp -r "$STAGE/minilm" "$MODEL" || exit 1
    say "MiniLM weights not here: building its architecture with random weights"
    "$PY" - "$MODEL" >>"$LOG" 2>&1 <<'EOF' || { say "could not build the MiniLM architecture"; exit 1; }
import sys, torch
from transformers import AutoConfig, AutoModel
torch.manual_seed(0)
folder = sys.argv[1]
AutoModel.from_config(AutoConfig.from_pretrained(folder)).save_pretrained(folder)  # model.safetensors
EOF
  fi
else
  say "MiniLM is neither in the HF cache nor staged: run --stage first"; exit 1
fi
say "device $DEVICE, model $MODEL ($WEIGHTS weights), data $RIGHTSIZE_SHARED_DATA"

# ------------------------------------------------------------------ 2. pytest -m gpu
# Only the modules that hold gpu tests: others may import packages the machine lacks (optuna, faiss).
GPU_TESTS=$(grep -l -E 'mark\.gpu' tests/test_*.py)
timeout 240 "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider --junitxml="$OUTDIR/pytest.xml" $GPU_TESTS \
  >"$OUTDIR/pytest.log" 2>&1
PYTEST_RC=$?
say "pytest -m gpu: exit $PYTEST_RC ($(tail -n 1 "$OUTDIR/pytest.log"))"

# ------------------------------------------------------------------ 3. encode throughput, 4 configs
: >"$OUTDIR/encode.jsonl"
for precision in fp32 bf16; do
  for attn in sdpa eager; do
    [[ $MODE == dry && $precision == bf16 ]] && continue  # the dry run checks the loop; bf16 on a CPU is slow
    timeout 150 "$PY" benchmarks/encode_throughput.py --model "$MODEL" --device "$DEVICE" --precision $precision \
      --attn $attn --meter $METER --n $N --rounds $ROUNDS --batch-size 64 "${THREADS[@]}" >>"$OUTDIR/encode.jsonl" 2>>"$LOG" \
      || say "encode_throughput $precision/$attn failed (see setup.log)"
    say "encode_throughput $precision/$attn done"
  done
done

# ------------------------------------------------------------------ 4. meter overhead with NVML
timeout 120 "$PY" benchmarks/meter_overhead.py --device "$DEVICE" >"$OUTDIR/meter_overhead.json" 2>>"$LOG" \
  || say "meter_overhead failed (see setup.log)"

# ------------------------------------------------------------------ summary
"$PY" - "$OUTDIR" "$MODEL" "$WEIGHTS" "$PYTEST_RC" "$(( $(date +%s) - START ))" <<'EOF'
import json, sys
from pathlib import Path
out, model, weights, pytest_rc, seconds = Path(sys.argv[1]), *sys.argv[2:]
encode = [json.loads(l) for l in (out / "encode.jsonl").read_text().splitlines() if l.strip()]
try:
    meter = json.loads((out / "meter_overhead.json").read_text())
except (OSError, ValueError):
    meter = None
log = (out / "pytest.log").read_text(errors="replace").strip().splitlines()
summary = {
    "model": model, "weights": weights, "seconds": int(seconds),
    "pytest_gpu": {"exit_code": int(pytest_rc), "last_line": log[-1] if log else ""},
    "encode": [{"precision": e["config"]["precision"], "attn": e["config"]["attn"], **{k: e["figures"][k] for k in (
        "speedup", "rightsize_texts_per_s", "sentence_transformers_texts_per_s", "rightsize_j_per_text",
        "sentence_transformers_j_per_text", "energy_source", "min_cosine_between_paths")},
        "rounds_j": e["figures"]["rounds_j"]} for e in encode],
    "meter_overhead": meter and meter["figures"],
    "machine": encode[0]["machine"] if encode else None,
}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
EOF
say "done in $(( $(date +%s) - START )) s; results in $OUTDIR"
[[ $PYTEST_RC == 0 || $PYTEST_RC == 5 ]]  # 5: no gpu test collected (a CPU dry run)
