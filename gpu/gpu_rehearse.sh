#!/usr/bin/env bash
# The GPU node's call rehearsed here: gpu_check.sh run as the node runs it,
# offline, with its GPU work replaced by CPU stand-ins.
#
#   bash gpu/gpu_rehearse.sh OUT_DIR           # FER2013 in full, four families
#   bash gpu/gpu_rehearse.sh --short OUT_DIR   # CI's: 40 images a class, LeNet-5
#
#  1. the pack: `gpu/gpu_pack.sh` as for the node (CPython 3.12 manylinux
#     wheels, FER2013's Training and PublicTest), into .gpu/ (--short: 40
#     images a class, into a scratch folder); GPU_PACK=DIR uses a pack
#     already built;
#  2. the node image: a Python 3.12 venv with what gpu_node_packages.txt says
#     the node has (gpu_wheels.py --provided) at gpu_node_versions.txt's
#     versions (jax 0.11.2 on the CPU, PyTorch 2.11.0), built once into
#     NODE_VENV (~/.cache/ferjax/node-venv-py312) and reused while those
#     lists are unchanged; PYTHON312 names the interpreter;
#  3. the stand-ins' plan (gpu/standin.py plan, REHEARSAL_SCALE, default 3;
#     2 with --short): each family's slices of FER2013 sized so that the
#     CPU takes the scale times the H100's projected seconds;
#  4. the tree as the device tool carries it (tracked and untracked files
#     that git does not ignore) and the pack as .gpu/ beside it, copied into
#     a fresh folder, checked against the node's 64 MiB;
#  5. there, in a network namespace with no network (`unshare -n`; its
#     loopback up), with no pip configuration and a bare environment:
#     `bash gpu/gpu_check.sh --cpu-standin PLAN OUT_DIR/check`, the node's
#     command but for the stand-ins, in 480 s x the scale;
#  6. the checks of the issue's acceptance (gpu/standin.py verify: the 8
#     files, a review row with an evaluated epoch for every family, the
#     time inside the budget) and the timeline, part by part, with the H100's
#     it implies (OUT_DIR/timeline.md).
# Everything it runs is under `nice -n 19`. OUT_DIR/rehearse.log is the console.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

short=0
if [[ "${1:-}" == --short ]]; then short=1; shift; fi
if (( $# != 1 )); then
  echo "usage: bash gpu/gpu_rehearse.sh [--short] OUT_DIR" >&2
  exit 2
fi
out=$(mkdir -p "$1" && cd "$1" && pwd) || { echo "gpu_rehearse.sh: cannot create $1" >&2; exit 2; }
exec > >(tee "$out/rehearse.log") 2>&1
t0=$SECONDS
step() { echo; echo "== rehearsal: $1 ($(( SECONDS - t0 )) s in; $(uptime | sed 's/.*load/load/'))"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ferjax-rehearsal.XXXXXX")
trap 'rm -rf "$work"' EXIT
build=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3 )}
scale=${REHEARSAL_SCALE:-$( (( short )) && echo 2 || echo 3 )}
nice=(nice -n 19)

fer2013=${FER2013_DIR:-../shared/data/fer2013}
if [[ -z ${GPU_PACK:-} && ! -d "$fer2013/train" ]]; then
  echo "gpu_rehearse.sh: no FER2013 image folders at $fer2013 (expected train/<class>/ and test/<class>/; set FER2013_DIR): the rehearsal packs and trains on FER2013" >&2
  exit 2
fi

step "1. the pack"
if [[ -n ${GPU_PACK:-} ]]; then
  pack=$(realpath "$GPU_PACK")
  echo "the pack at $pack, built before ($(head -n 1 "$pack/PACK.txt"))"
elif (( short )); then
  pack=$work/pack
  PYTHON=$build "${nice[@]}" bash gpu/gpu_pack.sh --out "$pack" --per-class 40 --fer2013 "$fer2013"
else
  PYTHON=$build "${nice[@]}" bash gpu/gpu_pack.sh --fer2013 "$fer2013"
  pack=$repo/.gpu
fi
train_images=$(tar -tzf "$pack/fer2013.tar.gz" | grep -c '/Training_')
public_images=$(tar -tzf "$pack/fer2013.tar.gz" | grep -c '/PublicTest_')
echo "the pack holds $train_images Training and $public_images PublicTest images"

step "2. the node image: a Python 3.12 venv"
py312=${PYTHON312:-}
for candidate in python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
  [[ -n $py312 ]] && break
  "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && py312=$candidate
done
[[ -n $py312 ]] || { echo "gpu_rehearse.sh: no Python 3.12 (PYTHON312)" >&2; exit 1; }
venv=${NODE_VENV:-$HOME/.cache/ferjax/node-venv-py312}
"$build" gpu/gpu_wheels.py --provided --python-version 3.12 | sed 's/==.*//' > "$work/node.txt"
stamp=$( { "$py312" -V; cat gpu/gpu_node_versions.txt "$work/node.txt"; } | sha256sum | cut -c1-16)
if [[ "$(cat "$venv/stamp" 2>/dev/null)" != "$stamp" ]]; then
  echo "building $venv (the node's distributions, newest but for gpu/gpu_node_versions.txt)"
  rm -rf "$venv"
  "${nice[@]}" "$py312" -m venv "$venv"
  "${nice[@]}" "$venv/bin/python" -m pip install -q -c gpu/gpu_node_versions.txt -r "$work/node.txt"
  echo "$stamp" > "$venv/stamp"  # Last: a build cut short is redone.
fi
"$venv/bin/python" -m pip list 2>/dev/null | grep -i -E '^(jax|jaxlib|flax|optax|orbax-checkpoint|numpy|protobuf|torch|opencv-python-headless) '

step "3. the stand-ins' plan (scale $scale)"
families=$( (( short )) && echo lenet5 || echo "" )
PYTHONPATH=$repo/src "${nice[@]}" "$build" gpu/standin.py plan --scale "$scale" \
    --train-images "$train_images" --public-test-images "$public_images" \
    --families "$families" > "$out/standin.json"
"$build" -c "
import json, sys
plan = json.load(open(sys.argv[1]))
for family, spec in plan['families'].items():
  print(family, {k: v['images'] for k, v in spec['splits'].items()},
        f\"H100 epoch {spec['h100_epoch_seconds']:.2f} s\")" "$out/standin.json"

step "4. the tree and .gpu/ as the device tool carries them"
node=$work/node
mkdir -p "$node"
git ls-files -z --cached --others --exclude-standard \
  | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$node" -xf -
cp -r "$pack" "$node/.gpu"
carried=$(du -sb "$node" | cut -f1)
printf 'carried: %.1f MiB of 64 MiB\n' "$(echo "$carried/1048576" | bc -l)"
(( carried <= 64 * 1024 * 1024 )) || { echo "gpu_rehearse.sh: over the node's 64 MiB" >&2; exit 1; }

step "5. gpu_check.sh offline, as on the node"
if [[ $(id -u) == 0 ]]; then netns=(unshare -n); else netns=(unshare -r -n); fi
check=$out/check
rm -rf "$check"
set +e
(cd "$node" && "${nice[@]}" "${netns[@]}" env -i PATH="$PATH" HOME="$HOME" \
    LANG=C.UTF-8 TMPDIR="${TMPDIR:-/tmp}" PIP_CONFIG_FILE=/dev/null \
    GPU_CHECK_PYTHON="$venv/bin/python" \
    bash -c 'ip link set lo up 2>/dev/null
             "$GPU_CHECK_PYTHON" -c "
import socket
for host in (\"pypi.org\", \"151.101.0.223\"):  # by name, and PyPI by address
  try:
    socket.create_connection((host, 443), timeout=5)
    raise SystemExit(f\"{host} is reachable: not a rehearsal of the node\")
  except OSError as e:
    print(f\"no network: {host}: {e}\")" || exit 3
             exec bash gpu/gpu_check.sh --cpu-standin "$0" "$1"' \
    "$out/standin.json" "$check")
rc=$?
set -e
echo "gpu_check.sh exited $rc"

step "6. the acceptance checks and the timeline"
verified=0
"$build" gpu/standin.py verify --plan "$out/standin.json" --out "$check" || verified=$?
{
  echo "Rehearsal $(date -u +%FT%TZ), $(( SECONDS - t0 )) s in all, load: $(uptime | sed 's/.*average: //')"
  echo
  grep -h "^== rehearsal" "$out/rehearse.log"
  echo
  "$build" gpu/standin.py timeline --plan "$out/standin.json" --out "$check"
} > "$out/timeline.md"
cat "$out/timeline.md"
(( rc == 0 && verified == 0 ))
