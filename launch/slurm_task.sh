#!/usr/bin/env bash
# One task of a SLURM job (started by srun, see launch/slurm.sh): works out from the
# SLURM environment where this process sits in the job and execs the toolkit with the
# explicit multi-host flags, so every task joins the same JAX run.
#   SLURM_JOB_NODELIST  the job's nodes; the first one hosts the coordinator
#   SLURM_NTASKS        --num_processes
#   SLURM_PROCID        --process_id
#   SLURM_LOCALID       --local_device_ids (--per-gpu: this task's GPU on its node)
#   SLURM_JOB_ID        picks the default port, so jobs sharing a node do not collide
#   SCONTROL            the scontrol command (default scontrol); where it cannot be
#                       found, simple nodelists (node[001-004],gpu7) are parsed here
# Paths are relative to the repository root, as for launch/run_local.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=launch/common.sh
source launch/common.sh

usage() {
  cat <<EOF
usage: launch/slurm_task.sh [--dry-run] [--per-gpu|--per-node] [--port PORT] [--python PY] \\
         CONFIG WORKDIR [--config.key=value ...]
  --per-gpu    one process per GPU: this task uses GPU \$SLURM_LOCALID (default)
  --per-node   one process per node, using all of the node's GPUs
  --port PORT  coordinator port (default 10000 + SLURM_JOB_ID % 20000)
  --python PY  Python interpreter (default .venv/bin/python)
  --dry-run    print the command instead of running it; outside SLURM, example
               values stand in for the SLURM variables that are not set
EOF
}

DRY=0 MODE=per-gpu PORT="" PYTHON=.venv/bin/python
while [[ $# -gt 0 ]]; do
  case $1 in
    --per-gpu) MODE=per-gpu; shift ;;
    --per-node) MODE=per-node; shift ;;
    --port) need_value "$@"; PORT=$2; shift 2 ;;
    --python) need_value "$@"; PYTHON=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) die_usage "unknown option $1" ;;
    *) break ;;
  esac
done
[[ $# -ge 2 ]] || die_usage "CONFIG and WORKDIR are required"
CONFIG=$1 WORKDIR=$2; shift 2
[[ -z $PORT || $PORT =~ ^[0-9]+$ ]] || die_usage "--port needs a number"

# A dry run outside a job shows the command with example values; a real run needs them.
SLURM_JOB_NODELIST=${SLURM_JOB_NODELIST:-${SLURM_NODELIST:-}}
if [[ $DRY == 1 && -z $SLURM_JOB_NODELIST ]]; then
  echo "# not in a SLURM job: example values stand in for the unset SLURM variables" >&2
  SLURM_JOB_NODELIST="node[001-002]" SLURM_NTASKS=${SLURM_NTASKS:-2}
  SLURM_PROCID=${SLURM_PROCID:-0} SLURM_LOCALID=${SLURM_LOCALID:-0}
fi
for var in SLURM_JOB_NODELIST SLURM_NTASKS SLURM_PROCID; do
  if [[ -z ${!var:-} ]]; then
    echo "error: \$$var is not set: run this inside a SLURM job (srun)" >&2; exit 2
  fi
done
if [[ $MODE == per-gpu && -z ${SLURM_LOCALID:-} ]]; then
  echo "error: \$SLURM_LOCALID is not set (needed by --per-gpu)" >&2; exit 2
fi

# The first host of the nodelist, as scontrol expands it.
first_host() {
  local sc=${SCONTROL:-scontrol} out re='^([^],[]+)\[([^],-]+)'
  if command -v "$sc" >/dev/null 2>&1; then
    out=$("$sc" show hostnames "$1")
    printf '%s\n' "${out%%$'\n'*}"
  elif [[ $1 =~ $re ]]; then               # prefix[001-004,...]  ->  prefix001
    printf '%s\n' "${BASH_REMATCH[1]}${BASH_REMATCH[2]}"
  else                                      # host1,host2  ->  host1
    printf '%s\n' "${1%%,*}"
  fi
}
HOST=$(first_host "$SLURM_JOB_NODELIST")
[[ -n $HOST ]] || { echo "error: no host in the nodelist '$SLURM_JOB_NODELIST'" >&2; exit 2; }
PORT=${PORT:-$((10000 + ${SLURM_JOB_ID:-0} % 20000))}

CMD=("$PYTHON" -m jaxtickets.main --config="$CONFIG" --workdir="$WORKDIR"
     --coordinator_address="$HOST:$PORT" --num_processes="$SLURM_NTASKS"
     --process_id="$SLURM_PROCID")
if [[ $MODE == per-gpu ]]; then CMD+=(--local_device_ids="$SLURM_LOCALID"); fi
CMD+=("$@")
echo "slurm_task: process $SLURM_PROCID of $SLURM_NTASKS on $(hostname), coordinator $HOST:$PORT" >&2
echo "+ $(qjoin "${CMD[@]}")"
# exec: the toolkit gets srun's signals directly and its exit status is the task's.
if [[ $DRY == 0 ]]; then exec "${CMD[@]}"; fi
