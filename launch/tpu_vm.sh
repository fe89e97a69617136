#!/usr/bin/env bash
# Run an experiment on a Cloud TPU VM (one host or a pod slice): create or reuse the VM,
# set up every worker, run the same --multihost command on all of them, rerun after a
# preemption (the toolkit resumes from the workdir), and copy the results back.
# Every step is a gcloud command printed as `+ ...`; --dry-run prints them and runs none.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=launch/common.sh
source "$ROOT/launch/common.sh"

# Fixed paths on every worker: the same on all hosts, so one command fits them all.
MNT=/mnt/jaxtickets          # gcsfuse mount of the bucket: workdirs and TFDS data
# shellcheck disable=SC2088  # the tildes are meant for the worker's shell
CODE='~/jaxtickets'          # the code
# shellcheck disable=SC2088
VENV='~/jaxtickets-venv'     # its Python environment, kept across reruns on one VM

usage() {
  cat <<EOF
usage: launch/tpu_vm.sh --tpu NAME --zone ZONE --bucket BUCKET [options] \\
         CONFIG WORKDIR_NAME [--config.key=value ...]
Runs python -m jaxtickets.main on every worker of a Cloud TPU VM with --multihost.
The workdir is gs://BUCKET/WORKDIR_NAME, seen by all workers as $MNT/WORKDIR_NAME.
  --tpu NAME          TPU VM name (required)
  --zone ZONE         zone, e.g. us-central2-b (required)
  --bucket BUCKET     GCS bucket (gs:// optional) for workdirs and data (required)
  --project PROJECT   GCP project (default: gcloud's configured project)
  --accelerator TYPE  accelerator type (default v4-8), e.g. v5litepod-16, v5p-32
  --version RUNTIME   TPU software version (default: chosen from the accelerator)
  --spot              create a Spot (preemptible) VM
  --data-dir SUBDIR   TFDS data_dir inside the bucket (default tensorflow_datasets)
  --upload-data DIR   first copy a local TFDS data_dir to gs://BUCKET/SUBDIR
  --repo URL          fetch the code on the workers with git clone/fetch of URL
  --ref REF           git ref to check out with --repo (default HEAD)
  --src DIR           copy this local checkout instead (default: this repository)
  --constraints       pip install with the code's constraints.txt (tested versions)
  --attempts N        runs at most N times when the VM is preempted (default 3)
  --results DIR       local copy of the workdir at the end (default runs/tpu/WORKDIR_NAME)
  --no-results        do not copy the workdir back
  --skip-checkpoints  do not copy step checkpoints (steps/ folders, only used to resume)
  --clear-lock        remove WORKDIR/.lock before running (left by a VM that is gone)
  --delete-after      delete the TPU VM once the run has finished
  --assume-exists     with --dry-run: act as if the VM exists and is READY
  --dry-run           print every command, run none
EOF
}

DRY=0 TPU="" ZONE="" BUCKET="" PROJECT="" ACCEL=v4-8 VERSION="" SPOT=0 DATA_SUB=tensorflow_datasets
UPLOAD="" REPO="" REF=HEAD SRC="$ROOT" CONSTRAINTS=0 ATTEMPTS=3 RESULTS="" NO_RESULTS=0
SKIP_CKPT=0 CLEAR_LOCK=0 DELETE_AFTER=0 ASSUME_EXISTS=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --tpu) need_value "$@"; TPU=$2; shift 2 ;;
    --zone) need_value "$@"; ZONE=$2; shift 2 ;;
    --bucket) need_value "$@"; BUCKET=${2#gs://}; BUCKET=${BUCKET%/}; shift 2 ;;
    --project) need_value "$@"; PROJECT=$2; shift 2 ;;
    --accelerator) need_value "$@"; ACCEL=$2; shift 2 ;;
    --version) need_value "$@"; VERSION=$2; shift 2 ;;
    --spot) SPOT=1; shift ;;
    --data-dir) need_value "$@"; DATA_SUB=${2%/}; shift 2 ;;
    --upload-data) need_value "$@"; UPLOAD=$2; shift 2 ;;
    --repo) need_value "$@"; REPO=$2; shift 2 ;;
    --ref) need_value "$@"; REF=$2; shift 2 ;;
    --src) need_value "$@"; SRC=$2; shift 2 ;;
    --constraints) CONSTRAINTS=1; shift ;;
    --attempts) need_value "$@"; ATTEMPTS=$2; shift 2 ;;
    --results) need_value "$@"; RESULTS=$2; shift 2 ;;
    --no-results) NO_RESULTS=1; shift ;;
    --skip-checkpoints) SKIP_CKPT=1; shift ;;
    --clear-lock) CLEAR_LOCK=1; shift ;;
    --delete-after) DELETE_AFTER=1; shift ;;
    --assume-exists) ASSUME_EXISTS=1; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) die_usage "unknown option $1" ;;
    *) break ;;
  esac
done
[[ $# -ge 2 ]] || die_usage "CONFIG and WORKDIR_NAME are required"
[[ -n $TPU && -n $ZONE && -n $BUCKET ]] || die_usage "--tpu, --zone and --bucket are required"
[[ $ATTEMPTS =~ ^[1-9][0-9]*$ ]] || die_usage "--attempts needs a positive integer"
CONFIG=$1 WNAME=${2%/}; shift 2
# The workdir is a path inside the bucket; absolute or upward paths would escape it.
[[ $WNAME != /* && /$WNAME/ != */../* ]] || die_usage "WORKDIR_NAME must be relative, without .."
RESULTS=${RESULTS:-runs/tpu/$WNAME}
if [[ -z $VERSION ]]; then
  case $ACCEL in
    v2-*|v3-*|v4-*) VERSION=tpu-ubuntu2204-base ;;
    v5litepod-*|v5e-*) VERSION=v2-alpha-tpuv5-lite ;;
    v5p-*) VERSION=v2-alpha-tpuv5 ;;
    v6e-*) VERSION=v2-alpha-tpuv6e ;;
    *) die_usage "no default runtime for $ACCEL: give --version" ;;
  esac
fi

LOC=(--zone="$ZONE"); PROJ=()
if [[ -n $PROJECT ]]; then PROJ=(--project="$PROJECT"); LOC+=("${PROJ[@]}"); fi
TPUVM=(gcloud compute tpus tpu-vm)
on_all() { run "${TPUVM[@]}" ssh "$TPU" "${LOC[@]}" --worker=all --command="$1"; }

# The VM's state as gcloud reports it (READY, PREEMPTED, ...), or MISSING. A dry run
# asks nothing: the VM is taken to be missing, or READY with --assume-exists.
STATE=""
query_state() {
  echo "+ $(qjoin "${TPUVM[@]}" describe "$TPU" "${LOC[@]}" --format='value(state)')"
  if [[ $DRY == 1 ]]; then
    if [[ $ASSUME_EXISTS == 1 ]]; then STATE=READY; else STATE=MISSING; fi
  else
    STATE=$("${TPUVM[@]}" describe "$TPU" "${LOC[@]}" --format='value(state)' 2>/dev/null) \
      || STATE=MISSING
    STATE=${STATE:-MISSING}
  fi
}

create_vm() {
  local spot=(); if [[ $SPOT == 1 ]]; then spot=(--spot); fi
  run "${TPUVM[@]}" create "$TPU" --zone="$ZONE" --accelerator-type="$ACCEL" \
    --version="$VERSION" "${spot[@]}" "${PROJ[@]}"
}

# Creates the VM if it is missing, replaces a preempted one, starts a stopped one.
ensure_vm() {
  query_state
  case $STATE in
    MISSING) create_vm ;;
    PREEMPTED|TERMINATED)
      run "${TPUVM[@]}" delete "$TPU" "${LOC[@]}" --quiet
      create_vm
      CLEAR_LOCK=1 ;;   # the lock's holder ran on the VM that was just deleted
    STOPPED) run "${TPUVM[@]}" start "$TPU" "${LOC[@]}" ;;
    *) echo "# reusing TPU VM $TPU ($STATE)" ;;
  esac
}

# What every worker runs. Each step is idempotent, so a rerun on the same VM is quick.
APT='sudo apt-get -o DPkg::Lock::Timeout=600 -y -q'   # waits for boot-time apt jobs
KEY=/usr/share/keyrings/cloud.google.asc
GCSFUSE_APT="deb [signed-by=$KEY] https://packages.cloud.google.com/apt gcsfuse-\$(lsb_release -cs) main"
GCSFUSE_INSTALL="command -v gcsfuse >/dev/null || { curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo tee $KEY >/dev/null && echo \"$GCSFUSE_APT\" | sudo tee /etc/apt/sources.list.d/gcsfuse.list >/dev/null && $APT update && $APT install gcsfuse; }"
# Metadata caching off: every host must see the files the others just wrote (the
# toolkit's hosts decide from the workdir together); directory renames are how
# checkpoints are committed, and gcsfuse refuses them unless given a limit.
GCSFUSE_FLAGS="--implicit-dirs --rename-dir-limit=200000 --metadata-cache-ttl-secs=0 --metadata-cache-negative-ttl-secs=0"
MOUNT="mountpoint -q $MNT || { $GCSFUSE_INSTALL && sudo mkdir -p $MNT && sudo chown \"\$(id -u):\$(id -g)\" $MNT && gcsfuse $GCSFUSE_FLAGS $(q "$BUCKET") $MNT; }"
PIP="$VENV/bin/pip install -q"
INSTALL="{ test -x $VENV/bin/pip || python3 -m venv $VENV || { rm -rf $VENV && $APT install python3-venv && python3 -m venv $VENV; }; } && $PIP --upgrade pip && $PIP"
if [[ $CONSTRAINTS == 1 ]]; then INSTALL+=" -c $CODE/constraints.txt"; fi
INSTALL+=" -e $CODE \"jax[tpu]\""
TRAIN="cd $CODE && $VENV/bin/python -m jaxtickets.main $(qjoin --config="$CONFIG" \
  --workdir="$MNT/$WNAME" --multihost --config.data.data_dir="$MNT/$DATA_SUB" "$@")"

# A local checkout travels as one tarball (copied to each worker), without what is
# local only: environments, results, caches, git history.
TMP="${TMPDIR:-/tmp}/jaxtickets.XXXXXX"
if [[ -z $REPO ]]; then
  if [[ $DRY == 0 ]]; then TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT; fi
  TARBALL=$TMP/jaxtickets-src.tgz
  run tar -czf "$TARBALL" --exclude=.git --exclude=.venv --exclude=./runs \
    --exclude=__pycache__ --exclude='*.egg-info' --exclude=.pytest_cache \
    --exclude=.hypothesis -C "$SRC" .
fi

setup_workers() {
  if [[ -n $REPO ]]; then
    on_all "{ test -d $CODE/.git || git clone -q $(q "$REPO") $CODE; } && git -C $CODE fetch -q origin $(q "$REF") && git -C $CODE checkout -q --detach FETCH_HEAD"
  else
    run "${TPUVM[@]}" scp "$TARBALL" "$TPU:jaxtickets-src.tgz" "${LOC[@]}" --worker=all
    on_all "rm -rf $CODE && mkdir -p $CODE && tar -xzf jaxtickets-src.tgz -C $CODE"
  fi
  on_all "$INSTALL"
  on_all "$MOUNT"
}

if [[ -n $UPLOAD ]]; then
  run gcloud storage rsync --recursive "$UPLOAD" "gs://$BUCKET/$DATA_SUB" "${PROJ[@]}"
fi
attempt=1
while true; do
  echo "# attempt $attempt of $ATTEMPTS"
  ensure_vm
  setup_workers
  if [[ $CLEAR_LOCK == 1 ]]; then
    # Only the primary process takes the lock, so worker 0's view is the one to clean.
    run "${TPUVM[@]}" ssh "$TPU" "${LOC[@]}" --worker=0 --command="rm -f $MNT/$WNAME/.lock"
    CLEAR_LOCK=0
  fi
  rc=0; on_all "$TRAIN" || rc=$?
  if [[ $rc == 0 ]]; then break; fi
  query_state
  # A preempted VM can still read READY for a moment; PREEMPT_WAIT: seconds to wait.
  if [[ $STATE == READY ]]; then sleep "${PREEMPT_WAIT:-60}"; query_state; fi
  case $STATE in
    PREEMPTED|TERMINATED|MISSING)
      if (( attempt >= ATTEMPTS )); then
        echo "error: TPU VM $TPU is $STATE after $attempt attempts; rerun to resume" >&2; exit "$rc"
      fi
      attempt=$((attempt + 1)); CLEAR_LOCK=1 ;;
    *) echo "error: the run failed (exit $rc) on a $STATE TPU VM: not a preemption" >&2
       exit "$rc" ;;
  esac
done
if [[ $DRY == 1 ]]; then
  echo "# if the run fails and the VM is then PREEMPTED or gone: the steps from describe on" \
    "repeat (at most $ATTEMPTS attempts), with the stale .lock removed; the run resumes"
fi

if [[ $NO_RESULTS == 0 ]]; then
  EXCLUDE=(); if [[ $SKIP_CKPT == 1 ]]; then EXCLUDE=(--exclude='(.*/)?steps/.*'); fi
  run mkdir -p "$RESULTS"
  run gcloud storage rsync --recursive "${EXCLUDE[@]}" "gs://$BUCKET/$WNAME" "$RESULTS" "${PROJ[@]}"
fi
if [[ $DELETE_AFTER == 1 ]]; then run "${TPUVM[@]}" delete "$TPU" "${LOC[@]}" --quiet; fi
