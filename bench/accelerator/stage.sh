#!/usr/bin/env bash
# Stages what `python -m bench.accelerator` needs on a machine with an accelerator and no
# network, inside the project checkout: the wheels that machine lacks (.whl/) and the
# data files (.devdata/), both kept out of git through .git/info/exclude.
#
#   bash bench/accelerator/stage.sh [--tfds] [--data mnist|cifar10|DIR/FILE.npz ...]
#       [--python 3.12] [--data_dir ../shared/data]
#
# The target is assumed to have Python with jax (for its accelerator), flax, optax,
# orbax-checkpoint, absl-py, numpy, pillow, PyYAML and protobuf, as GPU images usually do;
# the script fetches ml_collections and tensorboardX, and with --tfds the TFDS, Grain and
# array_record wheels the streamed-pipeline part needs (about 10 MB), at the versions of
# constraints.txt. It prints the size that will travel, then the install line and the
# command to run there (BENCHMARKS.md, "Accelerator check").
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
python_version=3.12
data_dir=../shared/data
tfds=0
data=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tfds) tfds=1;;
    --data) data+=("$2"); shift;;
    --data_dir) data_dir="$2"; shift;;
    --python) python_version="$2"; shift;;
    -h|--help) sed -n 2,15p "$0"; exit 0;;
    *) echo "stage.sh: unknown argument $1 (see --help)" >&2; exit 2;;
  esac
  shift
done

base=(ml_collections tensorboardX)
streamed=(tensorflow-datasets array_record grain portpicker dm-tree immutabledict
          simple-parsing termcolor toml docstring_parser tensorflow-metadata
          googleapis-common-protos promise)
packages=("${base[@]}")
[ "$tfds" = 1 ] && packages+=("${streamed[@]}")

pinned() {  # NAME==VERSION from constraints.txt (names compared case- and -/_-blind)
  local key
  key=$(echo "$1" | tr 'A-Z_' 'a-z-')
  awk -F'==' -v k="$key" '{n=tolower($1); gsub("_","-",n)} n==k {print $1"=="$2; exit}' \
    constraints.txt
}

for d in .whl .devdata; do
  grep -qxF "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude
done
rm -rf .whl .devdata
mkdir -p .whl .devdata

platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
         manylinux_2_17_x86_64 manylinux2014_x86_64; do
  platforms+=(--platform "$p")
done
for name in "${packages[@]}"; do
  spec=$(pinned "$name")
  [ -n "$spec" ] || { echo "stage.sh: $name is not in constraints.txt" >&2; exit 2; }
  if ! python3 -m pip download -q --no-deps --only-binary=:all: \
       --python-version "$python_version" --implementation cp "${platforms[@]}" \
       -d .whl "$spec" 2>/dev/null; then
    python3 -m pip wheel -q --no-deps -w .whl "$spec"  # published as a source archive only
  fi
done

for item in "${data[@]}"; do
  case "$item" in
    mnist) src="$data_dir/mnist.npz";;
    cifar10) src="$data_dir/cifar10_jpeg.npz";;
    *) src="$item";;
  esac
  [ -f "$src" ] || { echo "stage.sh: no data file $src" >&2; exit 2; }
  cp "$src" .devdata/
done

python3 - <<'PY'
import os
import subprocess

listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                        capture_output=True, check=True).stdout.split(b"\0")
tree = sum(os.path.getsize(f) for f in listed if f and os.path.isfile(f))
def size(folder):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(folder) for f in fs)
wheels, data, limit = size(".whl"), size(".devdata"), 64 * 2 ** 20
total = tree + wheels + data
print(f"travels: checkout {tree / 2**20:.1f} MiB + wheels {wheels / 2**20:.1f} MiB + "
      f"data {data / 2**20:.1f} MiB = {total / 2**20:.1f} MiB (limit {limit / 2**20:.0f} MiB)")
if total > limit:
    raise SystemExit("over the limit: stage fewer data files, or leave out --tfds")
PY
echo 'send with the checkout: .whl .devdata'
# shellcheck disable=SC2016  # $PWD and $OUT are the remote shell's, printed unexpanded
echo 'run there: python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir' \
     '--target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD &&' \
     'PYTHONUNBUFFERED=1 python3 -m bench.accelerator --out $OUT --data_dir .devdata' \
     '--budget_s 420'
