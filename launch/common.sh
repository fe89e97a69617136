# shellcheck shell=bash
# Helpers shared by the launch scripts; sourced, never run. The caller sets DRY=1 for
# --dry-run and defines usage(), which prints its usage text on stdout.

# One word as the shell would need it typed: plain words stay as they are, anything
# else is single-quoted, so printed commands can be copied and pasted back.
q() {
  if [[ -n $1 && $1 =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
    printf '%s' "$1"
  elif [[ $1 =~ ^(--?[A-Za-z0-9_.-]+=)(.+)$ ]]; then
    # --opt=VALUE: quote the value only, which reads better and means the same.
    printf '%s' "${BASH_REMATCH[1]}"; q "${BASH_REMATCH[2]}"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

# Several words, quoted by q and joined by spaces: a command line as text.
qjoin() {
  local out="" w
  for w in "$@"; do out+="${out:+ }$(q "$w")"; done
  printf '%s' "$out"
}

# Prints a command as `+ cmd` and runs it, unless this is a dry run. Returns its status.
run() {
  echo "+ $(qjoin "$@")"
  if [[ ${DRY:-0} == 0 ]]; then "$@"; fi
}

# Bad usage: the reason and the usage text on stderr, exit status 2; nothing has run.
die_usage() {
  echo "error: $1" >&2
  usage >&2
  exit 2
}

# `--opt VALUE` needs its value: call as need_value "$@" before reading $2.
need_value() {
  if [[ $# -lt 2 || -z $2 || $2 == -* ]]; then die_usage "$1 needs a value"; fi
}
