#!/usr/bin/env bash
# The review's four-family FER2013 table on one GPU: experiments/fer2013_review.py
# (LeNet-5, AlexNet, VGG-11-BN, GoogLeNet x seeds 0-2, full epochs) in bfloat16,
# then `ferjax report`. Relaunch the same command to resume after a crash.
#
#   bash gpu/gpu_review.sh              # on the GPU host
#   bash gpu/gpu_review.sh --runlocal   # CPU smoke test: every trial tiny
#   bash gpu/gpu_review.sh --help       # this text
#
#   FER2013_DIR=~/Downloads/fer2013 SEEDS=1 bash gpu/gpu_review.sh --runlocal
#
# Environment (defaults in brackets):
#   FER2013_DIR   FER2013's manual download: the image folders (train/,
#                 test/) or fer2013.csv [../shared/data/fer2013, beside the
#                 repository; set it to where yours is]
#   TFDS_DIR      TFDS data_dir the dataset is prepared into [TFDS's default]
#   WORKDIR       sweep directory [runs/fer2013_review, runs/fer2013_review_runlocal]
#   DTYPE         model.dtype: bfloat16 (every family computes in it; LRN and
#                 the losses stay float32) or float32 [bfloat16 on the GPU,
#                 float32 with --runlocal, where XLA:CPU has no fast bfloat16]
#   SEEDS         seeds per family [3]
#   FERJAX        the ferjax command [ferjax, or .venv/bin/ferjax if present]
#
# The expected time per family is printed first (gpu/review_budget.py:
# measured forward FLOPs, assumed GPU throughput; with --runlocal the
# measured CPU time per trial, about 5 minutes a seed on 2 cores). With
# --runlocal the report starts with a SMOKE TEST note and the chance
# levels of the evaluated images (gpu/smoke_note.py).
set -euo pipefail
cd "$(dirname "$0")/.."

runlocal=0
for arg in "$@"; do
  case "$arg" in
    --runlocal) runlocal=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
               exit 0 ;;
    *) echo "gpu_review.sh: unknown argument $arg (expected --runlocal or --help)" >&2
       exit 2 ;;
  esac
done

if [[ -z "${FERJAX:-}" ]]; then
  if [[ -x .venv/bin/ferjax ]]; then FERJAX=.venv/bin/ferjax; else FERJAX=ferjax; fi
fi
python="$(dirname "$(command -v "$FERJAX")")/python"
[[ -x "$python" ]] || python=python3
FER2013_DIR="${FER2013_DIR:-../shared/data/fer2013}"
if [[ ! -e "$FER2013_DIR" && -z "${TFDS_DIR:-}" ]]; then
  echo "gpu_review.sh: FER2013_DIR=$FER2013_DIR does not exist: set FER2013_DIR" \
       "to your FER2013 download (image folders or fer2013.csv), or TFDS_DIR" \
       "to a data dir where it is prepared (--help lists the variables)" >&2
  exit 2
fi
SEEDS="${SEEDS:-3}"
extra=()
if [[ -n "${TFDS_DIR:-}" ]]; then
  extra+=("--config.input.data_dir=$TFDS_DIR")
fi

if [[ "$runlocal" == 1 ]]; then
  arg="runlocal,seeds=$SEEDS"
  WORKDIR="${WORKDIR:-runs/fer2013_review_runlocal}"
  DTYPE="${DTYPE:-float32}"
  export JAX_PLATFORMS=cpu
  # One CPU device per trial: a 2-core machine runs one trial at a time.
  extra+=("--config.parallel.cpu_devices=1")
else
  arg="seeds=$SEEDS"
  WORKDIR="${WORKDIR:-runs/fer2013_review}"
  DTYPE="${DTYPE:-bfloat16}"
  if ! "$python" -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')"; then
    echo "gpu_review.sh: JAX sees no GPU here (pip install -c requirements.lock -e .[cuda]; .[cuda12] for older drivers); for a CPU" \
         "smoke test run: bash gpu/gpu_review.sh --runlocal" >&2
    exit 2
  fi
fi

echo "== expected time (gpu/review_budget.py $arg)"
"$python" gpu/review_budget.py "$arg"

echo "== ferjax sweep: $WORKDIR (model.dtype=$DTYPE)"
start=$(date +%s)
status=0
"$FERJAX" sweep --config "experiments/fer2013_review.py:$arg" \
    --workdir "$WORKDIR" \
    --config.input.manual_dir="$FER2013_DIR" \
    --config.model.dtype="$DTYPE" "${extra[@]}" || status=$?
echo "== sweep took $(( $(date +%s) - start )) s (exit $status)"

if [[ "$runlocal" == 1 ]]; then
  echo "== SMOKE TEST report: one epoch on 128 images per trial; the numbers" \
       "show that every family trains, not how well"
fi
"$FERJAX" report "$WORKDIR"
if [[ "$runlocal" == 1 ]]; then
  "$python" gpu/smoke_note.py "$WORKDIR" --into "$WORKDIR/report.md"
fi
exit "$status"
