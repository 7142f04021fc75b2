#!/usr/bin/env bash
# The one command for an offline GPU node: everything ferjax can learn from a
# 10-minute call, written to OUT_DIR in at most 8 files.
#
#   bash gpu/gpu_check.sh OUT_DIR               # on the node, after
#                                                      # gpu/gpu_pack.sh here
#   bash gpu/gpu_check.sh --cpu-standin PLAN OUT_DIR
#                  # here, from gpu/gpu_rehearse.sh: the GPU parts on the CPU
#
# On the node (Python 3.12, jax/flax/optax/orbax/opencv/PyTorch preinstalled,
# no index) it installs the pack's wheels offline into a target folder,
# starts unpacking and preparing FER2013 in the background, then
#   a. env.json          versions, nvidia-smi (written before anything is
#                        imported, so a failure still says what the node is),
#                        jax.devices(), and "preflight": ferjax imports, a
#                        tiny jit, --xla_gpu_deterministic_ops accepted (else
#                        dropped from every later part), jax.shard_map and
#                        the Orbax API run/checkpoint.py uses present
#   b. review.jsonl      first: the four families of
#                        experiments/fer2013_review.py on FER2013 (one seed,
#                        bfloat16). Each family runs one epoch, whose
#                        measured time sets the epochs of a second run that
#                        fits its share; both end normally with their
#                        evaluation, and the longer one is the row
#   c. tests.txt         a GPU test selection that fits (training,
#                        exact resume under deterministic kernels, padded
#                        eval, bfloat16), XLA_PYTHON_CLIENT_PREALLOCATE=false
#   d. throughput.jsonl  benchmarks/train_step.py per family, ferjax against
#                        its PyTorch twin, float32 and bfloat16/AMP, one
#                        round; throughput_deterministic.jsonl: LeNet-5
#                        under deterministic kernels
#   e. summary.json and results.md (gpu/gpu_report.py): one JSON of
#                        everything and a markdown fragment for RESULTS.md,
#                        rebuilt on exit from whatever finished, however the
#                        run ends
# and gpu_check.log, the whole console. GPU_CHECK_SECONDS (default 480, a
# margin inside a 600 s call) is shared out part by part; a part that fails
# or runs out of time is recorded and the next runs. GPU_CHECK_PYTHON is the
# node's Python (python3), GPU_PACK the pack (.gpu beside the tree).
#
# --cpu-standin PLAN (gpu/standin.py plan, which gpu/gpu_rehearse.sh writes)
# runs every part on the CPU with the GPU work replaced by stand-ins that
# take the plan's integer scale times as long: each family trains and
# evaluates on the plan's slices of FER2013 in float32, the throughput part
# times the plan's families at 8 images a step, and every time above is
# multiplied by the scale.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

standin=
if [[ "${1:-}" == --cpu-standin ]]; then standin=$(realpath "${2:-}"); shift 2; fi
if (( $# != 1 )); then
  echo "usage: bash gpu/gpu_check.sh [--cpu-standin PLAN] OUT_DIR" >&2
  exit 2
fi
out=$(mkdir -p "$1" && cd "$1" && pwd) || { echo "gpu_check.sh: cannot create $1" >&2; exit 2; }
exec > >(tee -a "$out/gpu_check.log") 2>&1
python=${GPU_CHECK_PYTHON:-python3}
# Every time below is the node's, times the stand-ins' scale (1 on the node).
scale=1
if [[ -n $standin ]]; then
  scale=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['scale'])" "$standin") ||
    { echo "gpu_check.sh: $standin is not a plan of gpu/standin.py" >&2; exit 2; }
  export JAX_PLATFORMS=cpu
fi
budget=${GPU_CHECK_SECONDS:-$(( 480 * scale ))}
t0=$SECONDS
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ferjax-gpu-check.XXXXXX")
left() { echo $(( budget - (SECONDS - t0) )); }
# CPU seconds of the finished child processes: with the wall time, what a
# part would take on a host with a core to spare (gpu/standin.py timeline).
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%d", ($16 + $17) / hz}' /proc/$$/stat 2>/dev/null; }
part() { echo; echo "== $1 ($(( SECONDS - t0 )) s in, $(left) s left, $(cpu) cpu-s)"; }
failures=()
prepare_pid=

# Whatever ends the run (the end, a failed install, a signal), the summary
# is rebuilt from the files that exist.
finish() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n $prepare_pid ]] && kill "$prepare_pid" 2>/dev/null
  part "e. summary.json and results.md"
  "$python" gpu/gpu_report.py summary --out "$out" --failures "${failures[*]:-}" \
      --seconds $(( SECONDS - t0 )) || failures+=("report")
  cat "$out/results.md" 2>/dev/null
  echo
  echo "gpu_check.sh: $(( SECONDS - t0 )) s, $(cpu) cpu-s; failed parts: ${failures[*]:-none}"
  rm -rf "$scratch"
  (( rc == 0 && ${#failures[@]} == 0 )) || exit $(( rc ? rc : 1 ))
}
trap finish EXIT
trap 'failures+=("cut"); exit 143' INT TERM

pack=${GPU_PACK:-$repo/.gpu}

part "a. environment, as the node is"
# Before the pack or anything of ferjax is imported: a failure below still
# returns what the node has.
"$python" - "$out/env.json" <<'PY'
import importlib.metadata, json, platform, subprocess, sys
names = ["jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy",
         "protobuf", "tensorflow-datasets", "opencv-python-headless", "torch"]
versions = {}
for name in names:
  try:
    versions[name] = importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    versions[name] = None
try:
  smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True,
                       timeout=20).stdout
except (OSError, subprocess.TimeoutExpired) as e:
  smi = f"nvidia-smi: {e}"
env = {"python": sys.version, "platform": platform.platform(),
       "node_versions": versions, "nvidia_smi": smi}
json.dump(env, open(sys.argv[1], "w"), indent=1)
print(json.dumps(versions))
print(smi)
PY

part "install the pack offline ($pack)"
site=$scratch/site
"$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target "$site" "$pack"/wheels/*.whl || { echo "gpu_check.sh: the pack did not install"; failures+=("install"); exit 1; }
export PYTHONPATH="$site:$repo/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export FERJAX_COMPILATION_CACHE=$scratch/jax_cache
ferjax=("$python" -m ferjax.cli)

# FER2013 unpacks and prepares while the preflight and the tests run.
data=$scratch/fer2013
if [[ -f "$pack/fer2013.tar.gz" ]]; then
  mkdir -p "$data"
  ( tar -C "$data" -xzf "$pack/fer2013.tar.gz" &&
    echo "FER2013 unpacked at $(( SECONDS - t0 )) s" &&
    "${ferjax[@]}" data prepare fer2013 --manual-dir "$data" \
        --data-dir "$scratch/tfds" &&
    echo "FER2013 prepared at $(( SECONDS - t0 )) s" ) > "$scratch/prepare.log" 2>&1 &
  prepare_pid=$!
fi

part "a. preflight: what of ferjax runs on the node's versions"
deterministic=--xla_gpu_deterministic_ops=true
timeout $(( 60 * scale )) "$python" - "$out/env.json" "$deterministic" <<'PY' || failures+=("preflight")
import importlib.metadata, json, os, subprocess, sys, time
path, flag = sys.argv[1], sys.argv[2]
env = json.load(open(path))
found, start = {}, time.monotonic()
def check(name, fn):
  try:
    result = fn()
    found[name] = True if result is None else result
  except Exception as e:  # Recorded, not raised: later parts adapt.
    found[name] = f"{type(e).__name__}: {e}"[:300]
import jax, jax.numpy as jnp
env["backend"] = jax.default_backend()
env["devices"] = [str(d) for d in jax.devices()]
env["device_kind"] = jax.devices()[0].device_kind
env["versions"] = {}
for name in env["node_versions"]:
  try:
    env["versions"][name] = importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    env["versions"][name] = None
def import_ferjax():
  import ferjax.cli, ferjax.train.loop, ferjax.data.fer2013  # noqa: F401
check("import_ferjax", import_ferjax)
check("tiny_jit", lambda: float(jax.jit(lambda x: (x * x).sum())(
    jnp.arange(4.0))) == 14.0 or "wrong value")
check("shard_map", lambda: callable(jax.shard_map) or "absent")
def orbax():
  import orbax.checkpoint as ocp
  from orbax.checkpoint import checkpoint_managers as cm
  for obj, name in ((ocp, "CheckpointManager"),
                    (ocp, "CheckpointManagerOptions"),
                    (ocp, "StandardCheckpointHandler"),
                    (ocp.args, "StandardSave"), (ocp.args, "StandardRestore"),
                    (cm, "LatestN"), (cm, "BestN"),
                    (cm, "AnyPreservationPolicy")):
    getattr(obj, name)
check("orbax_api", orbax)
code = "import jax, jax.numpy as j; print(float(jax.jit(lambda x: x.sum())(j.ones(3))))"
run = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
    env={**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {flag}"})
found["deterministic_flag"] = (True if run.returncode == 0 else
                               run.stderr.strip()[-300:])
found["seconds"] = round(time.monotonic() - start, 1)
env["preflight"] = found
json.dump(env, open(path, "w"), indent=1)
print(json.dumps(found))
PY
preflight() {  # the preflight's finding $1 is true
  "$python" -c "import json,sys; sys.exit(json.load(open('$out/env.json')).get('preflight', {}).get('$1') is not True)"
}
preflight deterministic_flag || { echo "--xla_gpu_deterministic_ops refused: dropped"; deterministic=; }
ferjax_ok=1
preflight import_ferjax || { echo "ferjax does not import: only the environment comes back"; ferjax_ok=0; failures+=("import"); }

part "b. the four-family review on FER2013"
families=()
if [[ -z $prepare_pid ]]; then
  echo "the pack holds no FER2013: skipped"
  failures+=("data")
elif (( ferjax_ok )); then
  families=(lenet5 alexnet vgg11_bn googlenet)
  [[ -n $standin ]] && mapfile -t families < <("$python" -c \
      "import json,sys; print('\n'.join(json.load(open(sys.argv[1]))['families']))" "$standin")
  if wait "$prepare_pid"; then
    grep -h "^FER2013" "$scratch/prepare.log"
  else
    failures+=("prepare"); families=(); tail -n 20 "$scratch/prepare.log"
  fi
  prepare_pid=
  echo "FER2013 ready at $(( SECONDS - t0 )) s, $(cpu) cpu-s"
fi
# The tests and the throughput part keep their time after the review
# (gpu/README.md: the rehearsal's projected H100 timeline).
reserve=$(( 180 * scale ))
: > "$out/review.jsonl"
train_family() {  # family workdir epochs seconds: one training, its eval
  local per_call=()
  # LeNet-5's GPU step is shorter than the host's work around it: 16 steps
  # per dispatch (a window of 32 steps; its 201-step epoch ends in shorter
  # calls). The larger families keep one: their unrolled steps would
  # compile for minutes of the node's time.
  [[ $1 == lenet5 ]] && per_call=(--config.log_every_steps=32 --config.train.steps_per_call=auto)
  # The CPU stand-in: the plan's slices of FER2013, in float32 (XLA:CPU's
  # bfloat16 convolutions are emulated).
  local standin_args=(--config.model.dtype=bfloat16)
  [[ -n $standin ]] && mapfile -t standin_args < <("$python" -c \
      "import json,sys; print('\n'.join(['--config.model.dtype=float32'] + json.load(open(sys.argv[1]))['families'][sys.argv[2]]['overrides']))" "$standin" "$1")
  # A safety net only: the epochs were chosen to end well inside it.
  timeout -s INT -k $(( 20 * scale )) "$4" "${ferjax[@]}" train \
      --config "experiments/fer2013_review.py:family=$1" \
      --workdir "$2" --config.seed=0 --config.num_epochs="$3" \
      --config.input.data_dir="$scratch/tfds" --config.input.manual_dir="$data" \
      --config.eval_every_epochs=1 "${standin_args[@]}" "${per_call[@]}"
}
# Every family's first epoch comes before any second run: each has an
# evaluated epoch before the time for more is shared out. The first runs'
# limits are safety nets (what a first run leaves, the next may use).
declare -A first_wall first_status
for i in "${!families[@]}"; do
  family=${families[$i]}
  limit=$(( ( $(left) - reserve ) / ( ${#families[@]} - i ) ))
  (( limit < 30 * scale )) && limit=$(( 30 * scale ))
  start=$SECONDS
  train_family "$family" "$scratch/review/$family.1" 1 "$limit"
  first_status[$family]=$?
  first_wall[$family]=$(( SECONDS - start ))
  echo "$family: first epoch at $(( SECONDS - t0 )) s, $(cpu) cpu-s (${first_wall[$family]} s of $limit, exit ${first_status[$family]})"
done
for i in "${!families[@]}"; do
  family=${families[$i]}
  share=$(( ( $(left) - reserve ) / ( ${#families[@]} - i ) ))
  wall=${first_wall[$family]}
  status=${first_status[$family]}
  workdir=$scratch/review/$family.1
  full=$("$python" -c "from ferjax import config as c; print(c.load_config('experiments/fer2013_review.py:family=$family').num_epochs)" 2>/dev/null || echo 1)
  # Epochs that fit the share at the first run's cost per epoch (an upper
  # bound: it includes compiling), less 20 s of start-up; the second run
  # compiles from the cache, so this count ends inside the share.
  epochs=$(( (share - 20 * scale) / (wall > 0 ? wall : 1) ))
  (( epochs > full )) && epochs=$full
  if (( status == 0 && epochs >= 2 )); then
    echo "$family: $epochs epochs in its share of $share s"
    workdir=$scratch/review/$family
    start=$SECONDS
    train_family "$family" "$workdir" "$epochs" "$share"
    status=$?
    wall=$(( SECONDS - start ))
  fi
  timeout $(( 60 * scale )) "${ferjax[@]}" eval --workdir "$workdir" --checkpoint latest --json \
      > "$scratch/eval_$family.json" 2>"$scratch/eval_$family.err" || true
  "$python" gpu/gpu_report.py review-row --family "$family" \
      --workdir "$workdir" --exit "$status" --wall "$wall" --budget "$share" \
      --eval "$scratch/eval_$family.json" >> "$out/review.jsonl" || failures+=("review-$family")
  echo "$family: done at $(( SECONDS - t0 )) s, $(cpu) cpu-s (exit $status)"
done

part "c. the GPU test selection"
if (( ferjax_ok )); then
  # Four trainings that fit the cap on one GPU (the device-count test needs
  # several); two JAX processes share the GPU, so neither preallocates it.
  tests=(tests/integration/test_train.py::test_loss_falls_and_accuracy_beats_chance
         tests/integration/test_train.py::test_kill_9_then_resume_is_bit_identical
         tests/integration/test_train.py::test_eval_counts_every_example_once
         tests/integration/test_bfloat16_training.py)
  tests_budget=$(( $(left) - 50 * scale ))
  (( tests_budget > 110 * scale )) && tests_budget=$(( 110 * scale ))
  (( tests_budget < 20 * scale )) && tests_budget=$(( 20 * scale ))
  XLA_PYTHON_CLIENT_PREALLOCATE=false XLA_FLAGS="${XLA_FLAGS:-} $deterministic" \
    timeout "$tests_budget" "$python" -m pytest -q -p no:cacheprovider \
    -o addopts="" "${tests[@]}" > "$out/tests.txt" 2>&1 || failures+=("tests")
  tail -n 5 "$out/tests.txt"
fi

part "d. train-step throughput, ferjax and PyTorch"
models=lenet5,alexnet_bn,vgg11_bn,googlenet_bn
# torch.compile takes about a minute a model: GPU_CHECK_TORCH_MODES adds it.
step_args=(--rounds 1 --round-seconds "$scale"
           --torch-modes "${GPU_CHECK_TORCH_MODES:-eager,channels_last}")
if [[ -n $standin ]]; then
  # The CPU stand-in: the plan's families, 8 images a step (a step of 64
  # takes seconds on the CPU; compilation and the rest stay as they are).
  models=$("$python" -c \
    "import json,sys; print(','.join(f['model'] for f in json.load(open(sys.argv[1]))['families'].values()))" "$standin")
  step_args+=(--batch 8)
fi
step_args+=(--models "$models")
: > "$out/throughput.jsonl"
: > "$out/throughput_deterministic.jsonl"
if (( ferjax_ok )); then
  # bfloat16 first, with half of what is left: the H100's dtype, and what
  # the review trains in; float32 half of the rest; unused time moves on.
  for dtype in bfloat16 float32; do
    step_budget=$(( ( $(left) - 10 * scale ) / 2 ))
    (( step_budget < 5 * scale )) && { failures+=("throughput-$dtype"); continue; }
    timeout "$step_budget" "$python" benchmarks/train_step.py --json --dtype "$dtype" \
        "${step_args[@]}" >> "$out/throughput.jsonl" || failures+=("throughput-$dtype")
  done
  # What parallel.deterministic_gpu costs: LeNet-5's step under the flag.
  step_budget=$(( $(left) - 10 * scale ))
  if [[ -n $deterministic ]] && (( step_budget >= 5 * scale )); then
    XLA_FLAGS="${XLA_FLAGS:-} $deterministic" \
      timeout "$step_budget" "$python" benchmarks/train_step.py --json --dtype bfloat16 \
      "${step_args[@]}" --models lenet5 --torch-modes eager \
      > "$out/throughput_deterministic.jsonl" || failures+=("throughput-deterministic")
  fi
fi
