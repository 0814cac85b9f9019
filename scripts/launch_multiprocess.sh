#!/usr/bin/env bash
# Train one run as N cooperating JAX processes (data parallel over all their devices).
#
#   scripts/launch_multiprocess.sh N CONFIG WORKDIR [--config.key=value ...]
#
# Inside a SLURM allocation (SLURM_JOB_ID set): `srun --ntasks=N` starts the
# processes, and jax finds the coordinator from SLURM's variables.
# Elsewhere: N local processes, coordinator on 127.0.0.1 at a free port; the
# log of process i goes to WORKDIR/logs/process_i.log (process 0 also to the
# terminal). If one process fails, the others are stopped and the exit status
# is the failed one's. SIGTERM to this script is passed on to every process
# (Ctrl-C on a terminal reaches them all): they agree on a step, save it and
# exit 143 (130), which this script then waits for rather than stopping the others. Each process reads only its
# part of each global batch; process 0 writes metrics and figures; all write the
# checkpoint together.
# PYTHON picks the interpreter (default: .venv/bin/python if present, else python).
set -euo pipefail

if [[ $# -lt 3 ]]; then
  echo "usage: $0 N CONFIG WORKDIR [--config.key=value ...]" >&2
  exit 2
fi
num_processes=$1 config=$2 workdir=$3
shift 3
if ! [[ $num_processes =~ ^[1-9][0-9]*$ ]]; then
  echo "error: N must be a positive integer, got '$num_processes'" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
python=${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python)}
args=(-m aejax.main "--config=$config" "--workdir=$workdir" --multihost "$@")

if [[ -n ${SLURM_JOB_ID:-} ]] && command -v srun >/dev/null; then
  exec srun --ntasks="$num_processes" "$python" "${args[@]}"
fi

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$workdir/logs"
pids=()
for ((i = 0; i < num_processes; i++)); do
  log="$workdir/logs/process_$i.log"
  env JAX_COORDINATOR_ADDRESS="127.0.0.1:$port" JAX_NUM_PROCESSES="$num_processes" JAX_PROCESS_ID="$i" \
    "$python" "${args[@]}" >"$log" 2>&1 &
  pids+=($!)
done
tail --pid="${pids[0]}" -n +1 -f "$workdir/logs/process_0.log" 2>/dev/null &
tail_pid=$!
# SIGTERM to this script goes on to every process; Ctrl-C on a terminal reaches them all already.
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' TERM
trap ':' INT

status=0
alive=("${pids[@]}")
while ((${#alive[@]} > 0)); do
  still=()
  for pid in "${alive[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      still+=("$pid")
    else
      wait "$pid" || status=$?
    fi
  done
  alive=("${still[@]}")
  if ((status != 0 && status != 130 && status != 143)); then  # 130/143: stopped by a signal, after saving
    echo "error: a process exited with status $status; stopping the others (logs in $workdir/logs)" >&2
    for pid in "${alive[@]}"; do kill "$pid" 2>/dev/null || true; done
    break
  fi
  ((${#alive[@]} == 0)) || sleep 0.5
done
wait "${pids[@]}" 2>/dev/null || true
wait "$tail_pid" 2>/dev/null || true
exit "$status"
