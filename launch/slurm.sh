#!/usr/bin/env bash
# Submit an experiment as a multi-node GPU SLURM job: writes a batch script whose tasks
# each run launch/slurm_task.sh (one JAX process per GPU or per node), and sbatch-es it.
# The job requeues itself on preemption and near its time limit; the rerun resumes
# from the workdir's last checkpoint. --dry-run prints the script and the sbatch command.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=launch/common.sh
source "$ROOT/launch/common.sh"

usage() {
  cat <<EOF
usage: launch/slurm.sh [options] CONFIG WORKDIR [--config.key=value ...]
WORKDIR must be on a file system all nodes see, at the same path (it is made absolute).
The batch script and the job's log go to WORKDIR.slurm/ (the workdir itself is the toolkit's).
  --nodes N            nodes (default 1)
  --gpus-per-node G    GPUs per node (default 1)
  --per-gpu            one process per GPU, G tasks per node (default)
  --per-node           one process per node, using all its GPUs
  --partition P        SLURM partition
  --time T             time limit, e.g. 24:00:00 (the job requeues itself 5 min before)
  --account A          account to charge
  --job-name NAME      job name (default jaxtickets)
  --cpus-per-task N    CPUs per task
  --port PORT          coordinator port (default 10000 + job id % 20000)
  --data-dir DIR       TFDS data_dir (adds --config.data.data_dir=DIR)
  --python PY          Python on the nodes (default .venv/bin/python of this repository)
  --sbatch OPTION      one more #SBATCH line, e.g. --sbatch --qos=high (repeatable)
  --no-requeue         no requeue on preemption or at the time limit
  --dry-run            print the batch script and the sbatch command, run nothing
EOF
}

DRY=0 NODES=1 GPUS=1 MODE=per-gpu PARTITION="" TIME="" ACCOUNT="" JOB_NAME=jaxtickets
CPUS="" PORT="" DATA_DIR="" PYTHON=.venv/bin/python REQUEUE=1 EXTRA=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --nodes) need_value "$@"; NODES=$2; shift 2 ;;
    --gpus-per-node) need_value "$@"; GPUS=$2; shift 2 ;;
    --per-gpu) MODE=per-gpu; shift ;;
    --per-node) MODE=per-node; shift ;;
    --partition) need_value "$@"; PARTITION=$2; shift 2 ;;
    --time) need_value "$@"; TIME=$2; shift 2 ;;
    --account) need_value "$@"; ACCOUNT=$2; shift 2 ;;
    --job-name) need_value "$@"; JOB_NAME=$2; shift 2 ;;
    --cpus-per-task) need_value "$@"; CPUS=$2; shift 2 ;;
    --port) need_value "$@"; PORT=$2; shift 2 ;;
    --data-dir) need_value "$@"; DATA_DIR=$2; shift 2 ;;
    --python) need_value "$@"; PYTHON=$2; shift 2 ;;
    --sbatch) [[ $# -ge 2 && $2 == -* ]] || die_usage "--sbatch needs an sbatch option"
              EXTRA+=("$2"); shift 2 ;;
    --no-requeue) REQUEUE=0; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) die_usage "unknown option $1" ;;
    *) break ;;
  esac
done
[[ $# -ge 2 ]] || die_usage "CONFIG and WORKDIR are required"
[[ $NODES =~ ^[1-9][0-9]*$ ]] || die_usage "--nodes needs a positive integer"
[[ $GPUS =~ ^[1-9][0-9]*$ ]] || die_usage "--gpus-per-node needs a positive integer"
[[ -z $PORT || $PORT =~ ^[0-9]+$ ]] || die_usage "--port needs a number"
CONFIG=$1 WORKDIR=${2%/}; shift 2
# Every node must find the same workdir whatever its current directory.
if [[ $WORKDIR != /* ]]; then WORKDIR=$PWD/$WORKDIR; fi
JOBDIR=$WORKDIR.slurm   # beside the workdir: the toolkit refuses a non-empty new workdir
SCRIPT=$JOBDIR/job.sbatch
if [[ $MODE == per-gpu ]]; then TASKS=$GPUS; else TASKS=1; fi

TASK=("$ROOT/launch/slurm_task.sh" "--$MODE" --python "$PYTHON")
if [[ -n $PORT ]]; then TASK+=(--port "$PORT"); fi
TASK+=(-- "$CONFIG" "$WORKDIR")
if [[ -n $DATA_DIR ]]; then TASK+=(--config.data.data_dir="$DATA_DIR"); fi
TASK+=("$@")

batch_script() {
  echo "#!/usr/bin/env bash"
  echo "#SBATCH --job-name=$(q "$JOB_NAME")"
  echo "#SBATCH --nodes=$NODES"
  echo "#SBATCH --ntasks-per-node=$TASKS"
  echo "#SBATCH --gpus-per-node=$GPUS"
  if [[ -n $CPUS ]]; then echo "#SBATCH --cpus-per-task=$CPUS"; fi
  if [[ -n $PARTITION ]]; then echo "#SBATCH --partition=$PARTITION"; fi
  if [[ -n $TIME ]]; then echo "#SBATCH --time=$TIME"; fi
  if [[ -n $ACCOUNT ]]; then echo "#SBATCH --account=$ACCOUNT"; fi
  # Appending: a requeued job keeps its id and so its log file.
  echo "#SBATCH --output=$JOBDIR/slurm-%j.out"
  echo "#SBATCH --open-mode=append"
  if [[ $REQUEUE == 1 ]]; then
    echo "#SBATCH --requeue"
    echo "#SBATCH --signal=B:USR1@300"
  else
    echo "#SBATCH --no-requeue"
  fi
  local opt; for opt in "${EXTRA[@]}"; do echo "#SBATCH $opt"; done
  cat <<EOF
# Written by launch/slurm.sh. Running this job again (requeued, or sbatch-ed anew)
# resumes the experiment from the last checkpoint in its workdir.
set -euo pipefail
cd $(q "$ROOT")
EOF
  if [[ $REQUEUE == 1 ]]; then
    cat <<EOF
# A requeued job's earlier run is dead, but the workdir lock it took on another node
# cannot be seen to be stale from here: remove it.
if [[ \${SLURM_RESTART_COUNT:-0} -gt 0 ]]; then rm -f $(q "$WORKDIR/.lock"); fi
# SLURM sends USR1 to this script 5 minutes before the time limit: requeue the job.
trap 'echo "time limit near: requeueing job \$SLURM_JOB_ID"; scontrol requeue "\$SLURM_JOB_ID"' USR1
EOF
  fi
  cat <<EOF
# srun in the background so that the trap can run while it works.
srun --kill-on-bad-exit=1 $(qjoin "${TASK[@]}") &
rc=0; wait "\$!" || rc=\$?
exit "\$rc"
EOF
}

if [[ $DRY == 1 ]]; then
  echo "# batch script $SCRIPT:"
  batch_script
  echo "# end of $SCRIPT"
else
  mkdir -p "$JOBDIR"
  batch_script >"$SCRIPT"
  echo "# wrote $SCRIPT"
fi
run sbatch "$SCRIPT"
