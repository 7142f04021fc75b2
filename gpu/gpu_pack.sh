#!/usr/bin/env bash
# Packs what an offline GPU node lacks, so that `gpu/gpu_check.sh` runs
# there with no package index: run here, on a machine with the index.
#
#   bash gpu/gpu_pack.sh [--out .gpu] [--python-version 3.12]
#                               [--fer2013 DIR] [--per-class N] [--no-data]
#
# Fills OUT (git-ignored; built beside it and moved into place whole) with
#   wheels/            each distribution ferjax needs that the node lacks
#                      (gpu/gpu_wheels.py: ferjax's requirements minus
#                      gpu/gpu_node_packages.txt), at its locked
#                      version, for CPython PYTHON_VERSION on manylinux x86-64;
#                      a pure-Python sdist is built into a py3 wheel here;
#   fer2013.tar.gz     FER2013's Training and PublicTest image folders
#                      (train/<class>/, test/<class>/ from --fer2013 DIR,
#                      default ../shared/data/fer2013; PrivateTest files are
#                      never packed); --per-class N keeps the first N files of
#                      each class and split (a smoke test's pack);
#   PACK.txt           what was packed, from where, and the sizes.
# It prints the pack's size and fails if the source tree (tracked files) and
# the pack together exceed the node's 64 MiB, or the data 45 MB.
set -euo pipefail
cd "$(dirname "$0")/.."

out=.gpu
pyver=3.12
fer2013="${FER2013_DIR:-../shared/data/fer2013}"
per_class=0
data=1
while (( $# )); do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --python-version) pyver=$2; shift 2 ;;
    --fer2013) fer2013=$2; shift 2 ;;
    --per-class) per_class=$2; shift 2 ;;
    --no-data) data=0; shift ;;
    *) echo "gpu_pack.sh: unknown argument $1 (see the header of $0)" >&2
       exit 2 ;;
  esac
done
python=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3 )}
limit_total=$(( 64 * 1024 * 1024 ))
limit_data=$(( 45 * 1000 * 1000 ))

tmp="$out.partial"
rm -rf "$tmp"
mkdir -p "$tmp/wheels"
trap 'rm -rf "$tmp"' EXIT

echo "== wheels for CPython $pyver (requirements: $python gpu/gpu_wheels.py)"
"$python" gpu/gpu_wheels.py --python-version "$pyver" > "$tmp/wheels.txt"
abi="cp${pyver/./}"
platforms=(manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_24_x86_64
           manylinux_2_27_x86_64 manylinux_2_28_x86_64 manylinux_2_31_x86_64
           manylinux_2_34_x86_64 manylinux_2_35_x86_64 manylinux1_x86_64)
platform_args=()
for p in "${platforms[@]}"; do platform_args+=(--platform "$p"); done
while read -r pin; do
  if ! "$python" -m pip download -q --no-deps --only-binary=:all: \
      --python-version "$pyver" --implementation cp --abi "$abi" --abi abi3 \
      --abi none "${platform_args[@]}" --platform any -d "$tmp/wheels" \
      "$pin" 2>"$tmp/pip.err"; then
    # No wheel on the index: build one here, which must then be pure Python.
    "$python" -m pip wheel -q --no-deps -w "$tmp/wheels" "$pin" \
        2>>"$tmp/pip.err" || { cat "$tmp/pip.err" >&2;
        echo "gpu_pack.sh: no wheel of $pin for CPython $pyver" >&2; exit 1; }
  fi
done < "$tmp/wheels.txt"
impure=$(cd "$tmp/wheels" && ls | grep -v -e "-${abi}-" -e "-abi3-" -e "-none-any.whl$" || true)
if [[ -n "$impure" ]]; then
  echo "gpu_pack.sh: wheels that will not install on CPython $pyver: $impure" >&2
  exit 1
fi
echo "$(ls "$tmp/wheels" | wc -l) wheels: $(ls "$tmp/wheels" | tr '\n' ' ')"

if (( data )); then
  echo "== FER2013 Training and PublicTest from $fer2013"
  for split in train test; do
    [[ -d "$fer2013/$split" ]] || { echo "gpu_pack.sh: $fer2013/$split is" \
      "not a directory (expected FER2013's image folders, see" \
      "src/ferjax/data/fer2013.py)" >&2; exit 1; }
  done
  (cd "$fer2013" && for d in train/* test/*; do
     find "$d" -maxdepth 1 -type f \( -name 'Training_*' -o -name 'PublicTest_*' \) \
       | sort | awk -v n="$per_class" 'n == 0 || NR <= n'
   done) > "$tmp/files.txt"
  tar -C "$fer2013" -czf "$tmp/fer2013.tar.gz" -T "$tmp/files.txt"
  n=$(wc -l < "$tmp/files.txt")
  data_bytes=$(stat -c %s "$tmp/fer2013.tar.gz")
  echo "$n images, fer2013.tar.gz $(( data_bytes / 1000000 )) MB"
  if (( data_bytes > limit_data )); then
    echo "gpu_pack.sh: the data is $data_bytes bytes, over 45 MB" >&2; exit 1
  fi
fi

tree_bytes=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
pack_bytes=$(du -sb "$tmp" | cut -f1)
total=$(( tree_bytes + pack_bytes ))
{
  echo "packed $(date -u +%FT%TZ) at commit $(git rev-parse --short HEAD 2>/dev/null || echo none)"
  echo "python_version=$pyver per_class=$per_class fer2013=$fer2013"
  echo "pack_bytes=$pack_bytes tree_bytes=$tree_bytes total_bytes=$total limit_bytes=$limit_total"
} > "$tmp/PACK.txt"
rm -f "$tmp/pip.err" "$tmp/files.txt"
printf 'pack %.1f MiB + source tree %.1f MiB = %.1f MiB of 64 MiB\n' \
  "$(echo "$pack_bytes/1048576" | bc -l)" "$(echo "$tree_bytes/1048576" | bc -l)" \
  "$(echo "$total/1048576" | bc -l)"
if (( total > limit_total )); then
  echo "gpu_pack.sh: source tree + pack exceed 64 MiB" >&2; exit 1
fi
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "ready: $out (carry it to the node beside the source tree)"
