#!/usr/bin/env bash
# The one command for an offline GPU node: everything ferjax can learn from a
# 10-minute call, written to OUT_DIR in at most 8 files.
#
#   bash gpu/gpu_check.sh OUT_DIR               # on the node, after
#                                                      # gpu/gpu_pack.sh here
#   bash gpu/gpu_check.sh --cpu-smoke OUT_DIR   # here: the same script on
#                                                      # the CPU at tiny sizes
#
# On the node (Python 3.12, jax/flax/optax/orbax/opencv/PyTorch preinstalled,
# no index) it installs the pack's wheels offline into a target folder, then
#   a. env.json          versions, nvidia-smi, jax.devices()
#   b. tests.txt         the GPU test selection (both backends, bfloat16,
#                        exact resume with deterministic kernels, padded eval)
#   c. throughput.jsonl  benchmarks/train_step.py per family, ferjax against
#                        its PyTorch twin, float32 and bfloat16/AMP;
#      throughput_deterministic.jsonl  the same under deterministic kernels
#   d. review.jsonl      the four families of experiments/fer2013_review.py on
#                        FER2013 (one seed, bfloat16), as many epochs as the
#                        time left allows; PublicTest after every epoch,
#                        ten-crop at the end
#   e. summary.json and results.md (gpu/gpu_report.py): one JSON of
#                        everything and a markdown fragment for RESULTS.md
# and gpu_check.log, the whole console. Each part has its own time budget
# (GPU_CHECK_SECONDS in all, default 530, 1500 with --cpu-smoke); a part that fails or runs out of
# time is recorded and the next one runs.
#
# --cpu-smoke builds a pack for this machine's Python with 40 images per
# class (gpu_pack.sh), makes a fresh venv holding what the node would have
# (gpu/gpu_wheels.py --provided, from the index or pip's cache),
# installs the pack offline into it and runs every part at tiny sizes (the
# review with LeNet-5 alone: every family runs the same loop).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

smoke=0
if [[ "${1:-}" == --cpu-smoke ]]; then smoke=1; shift; fi
if (( $# != 1 )); then
  echo "usage: bash gpu/gpu_check.sh [--cpu-smoke] OUT_DIR" >&2
  exit 2
fi
out=$(mkdir -p "$1" && cd "$1" && pwd) || { echo "gpu_check.sh: cannot create $1" >&2; exit 2; }
exec > >(tee -a "$out/gpu_check.log") 2>&1
budget=${GPU_CHECK_SECONDS:-$( (( smoke )) && echo 1500 || echo 530 )}
t0=$SECONDS
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ferjax-gpu-check.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
left() { echo $(( budget - (SECONDS - t0) )); }
part() { echo; echo "== $1 ($(( SECONDS - t0 )) s in, $(left) s left)"; }
failures=()

pack=${GPU_PACK:-$repo/.gpu}
python=${GPU_CHECK_PYTHON:-python3}
if (( smoke )); then
  part "cpu smoke: a pack for $(python3 -V) and a venv as the node has it"
  pack=$scratch/pack
  pybuild=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3 )}
  pyver=$("$pybuild" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  fer2013=${FER2013_DIR:-../shared/data/fer2013}
  data_args=(--per-class 40 --fer2013 "$fer2013")
  if [[ ! -d "$fer2013/train" ]]; then
    echo "no FER2013 image folders at $fer2013 (FER2013_DIR): the review part is skipped"
    data_args=(--no-data)
  fi
  PYTHON=$pybuild bash gpu/gpu_pack.sh --out "$pack" --python-version "$pyver" \
      "${data_args[@]}" || exit 1
  "$pybuild" -m venv "$scratch/node"
  "$pybuild" gpu/gpu_wheels.py --provided --python-version "$pyver" > "$scratch/node.txt" || exit 1
  "$scratch/node/bin/pip" install -q -c requirements.lock -r "$scratch/node.txt" || exit 1
  python=$scratch/node/bin/python
  export JAX_PLATFORMS=cpu
fi

part "install the pack offline ($pack)"
site=$scratch/site
"$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target "$site" "$pack"/wheels/*.whl || { echo "gpu_check.sh: the pack did not install"; exit 1; }
export PYTHONPATH="$site:$repo/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export FERJAX_COMPILATION_CACHE=$scratch/jax_cache
ferjax=("$python" -m ferjax.cli)
"$python" - <<'PY' || { echo "gpu_check.sh: ferjax does not import"; exit 1; }
import importlib, ferjax.cli, ferjax.train.loop, ferjax.data.fer2013  # noqa: F401
PY

part "a. environment"
"$python" - "$out/env.json" <<'PY'
import importlib.metadata, json, platform, subprocess, sys
import jax
names = ["jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy",
         "tensorflow-datasets", "opencv-python-headless", "torch"]
versions = {}
for name in names:
  try:
    versions[name] = importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    versions[name] = None
try:
  smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True,
                       timeout=30).stdout
except (OSError, subprocess.TimeoutExpired) as e:
  smi = f"nvidia-smi: {e}"
env = {"python": sys.version, "platform": platform.platform(),
       "versions": versions, "backend": jax.default_backend(),
       "devices": [str(d) for d in jax.devices()],
       "device_kind": jax.devices()[0].device_kind, "nvidia_smi": smi}
json.dump(env, open(sys.argv[1], "w"), indent=1)
print(json.dumps({k: env[k] for k in ("versions", "backend", "devices")}))
print(smi)
PY

part "b. the GPU test selection"
tests=(tests/integration/test_train.py::test_loss_falls_and_accuracy_beats_chance
       tests/integration/test_train.py::test_backends_and_device_counts_agree
       tests/integration/test_train.py::test_kill_9_then_resume_is_bit_identical
       tests/integration/test_train.py::test_eval_counts_every_example_once
       tests/integration/test_bfloat16_training.py)
(( smoke )) && tests_budget=300 || tests_budget=60
XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_deterministic_ops=true" \
  timeout "$tests_budget" "$python" -m pytest -q -p no:cacheprovider \
  -o addopts="" "${tests[@]}" > "$out/tests.txt" 2>&1 || failures+=("tests")
tail -n 5 "$out/tests.txt"

part "c. train-step throughput, ferjax and PyTorch"
if (( smoke )); then
  step_args=(--models lenet5 --batch 16 --rounds 1 --round-seconds 0.2 --torch-modes eager)
  step_budget=120
  deterministic_models=lenet5
else
  # torch.compile takes about a minute a model: GPU_CHECK_TORCH_MODES adds it.
  step_args=(--models lenet5,alexnet_bn,vgg11_bn,googlenet_bn --rounds 3 --round-seconds 1
             --torch-modes "${GPU_CHECK_TORCH_MODES:-eager,channels_last}")
  step_budget=50
  deterministic_models=lenet5,vgg11_bn
fi
: > "$out/throughput.jsonl"
for dtype in float32 bfloat16; do
  timeout "$step_budget" "$python" benchmarks/train_step.py --json --dtype "$dtype" \
      "${step_args[@]}" >> "$out/throughput.jsonl" || failures+=("throughput-$dtype")
done
# What parallel.deterministic_gpu costs: the same step under the flag.
XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_deterministic_ops=true" \
  timeout "$step_budget" "$python" benchmarks/train_step.py --json --dtype bfloat16 \
  "${step_args[@]}" --models "$deterministic_models" --torch-modes eager \
  > "$out/throughput_deterministic.jsonl" || failures+=("throughput-deterministic")

part "d. the four-family review on FER2013"
if [[ ! -f "$pack/fer2013.tar.gz" ]]; then
  echo "the pack holds no FER2013: skipped"
  families=()
  (( smoke )) || failures+=("data")
else
  families=(lenet5 alexnet vgg11_bn googlenet)
  # On the CPU one family shows the path works: each is the same loop.
  (( smoke )) && families=(lenet5)
fi
data=$scratch/fer2013
if (( ${#families[@]} )); then
  mkdir -p "$data"
  tar -C "$data" -xzf "$pack/fer2013.tar.gz" || failures+=("data")
  "${ferjax[@]}" data prepare fer2013 --manual-dir "$data" --data-dir "$scratch/tfds" || failures+=("prepare")
fi
review_arg=$( (( smoke )) && echo ",runlocal" || echo "")
: > "$out/review.jsonl"
for i in "${!families[@]}"; do
  family=${families[$i]}
  # The time left, less a minute for ten-crop and the report, shared by the
  # families still to train.
  share=$(( ( $(left) - 60 ) / ( ${#families[@]} - i ) ))
  (( share < 20 )) && share=20
  workdir=$scratch/review/$family
  # LeNet-5's GPU step is shorter than the host's work around it: 16 steps
  # per dispatch (a window of 32 steps; its 201-step epoch ends in shorter
  # calls). The larger families keep one: their unrolled steps would
  # compile for minutes of the node's time.
  per_call=()
  [[ $family == lenet5 ]] && per_call=(--config.log_every_steps=32 --config.train.steps_per_call=auto)
  start=$SECONDS
  timeout -s INT -k 30 "$share" "${ferjax[@]}" train \
      --config "experiments/fer2013_review.py:family=$family$review_arg" \
      --workdir "$workdir" --config.seed=0 \
      --config.input.data_dir="$scratch/tfds" --config.input.manual_dir="$data" \
      --config.model.dtype="$( (( smoke )) && echo float32 || echo bfloat16 )" \
      --config.eval_every_epochs=1 "${per_call[@]}"
  status=$?
  wall=$(( SECONDS - start ))
  timeout 90 "${ferjax[@]}" eval --workdir "$workdir" --checkpoint latest --json \
      > "$scratch/eval_$family.json" 2>"$scratch/eval_$family.err" || true
  "$python" gpu/gpu_report.py review-row --family "$family" \
      --workdir "$workdir" --exit "$status" --wall "$wall" --budget "$share" \
      --eval "$scratch/eval_$family.json" >> "$out/review.jsonl" || failures+=("review-$family")
done

part "e. summary.json and results.md"
"$python" gpu/gpu_report.py summary --out "$out" --failures "${failures[*]:-}" \
    --seconds $(( SECONDS - t0 )) || failures+=("report")
cat "$out/results.md" 2>/dev/null
echo
echo "gpu_check.sh: $(( SECONDS - t0 )) s; failed parts: ${failures[*]:-none}"
(( ${#failures[@]} == 0 ))
