#!/usr/bin/env bash
# Run any experiment on this machine: prepares the TFDS copy of the offline data sets
# if needed, then starts (or resumes) the run. Usage:
#   launch/run_local.sh [--dry-run] CONFIG WORKDIR [--config.key=value ...]
# Environment: TFDS_DIR (default ~/tensorflow_datasets), DATA_SRC (default ../shared/data),
# PYTHON (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=launch/common.sh
source launch/common.sh
usage() { echo "usage: launch/run_local.sh [--dry-run] CONFIG WORKDIR [--config.key=value ...]"; }
DRY=0
case "${1:-}" in
  --dry-run) DRY=1; shift ;;
  -h|--help) usage; exit 0 ;;
  -*) die_usage "unknown option $1" ;;
esac
if [[ $# -lt 2 ]]; then die_usage "CONFIG and WORKDIR are required"; fi
CONFIG=$1; WORKDIR=$2; shift 2
PYTHON=${PYTHON:-.venv/bin/python}
TFDS_DIR=${TFDS_DIR:-$HOME/tensorflow_datasets}
DATA_SRC=${DATA_SRC:-../shared/data}

declare -A FILES=([mnist]=mnist.npz [cifar10]=cifar10_jpeg.npz)
for ds in mnist cifar10; do
  if ! ls -d "$TFDS_DIR/$ds"/*/ >/dev/null 2>&1 && [[ -f "$DATA_SRC/${FILES[$ds]}" ]]; then
    run "$PYTHON" -m jaxtickets.data.prepare --dataset "$ds" \
      --source "$DATA_SRC/${FILES[$ds]}" --data_dir "$TFDS_DIR"
  fi
done
run "$PYTHON" -m jaxtickets.main --config="$CONFIG" --workdir="$WORKDIR" \
  --config.data.data_dir="$TFDS_DIR" "$@"
