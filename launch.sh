#!/usr/bin/env bash
# Run a sweep: every combination of the override values, train then evaluate each.
#
#   ./launch.sh [LAUNCHER] CONFIG RUNS_DIR key=v1,v2,... [key=...] [--parallel N] [-- FLAGS]
#
#   ./launch.sh experiments/beta_vae.py runs/beta_sweep beta=0.25,1,4,16 seed=0,1 \
#       -- --config.num_epochs=10 --num_importance_samples=500
#
# One workdir per point (RUNS_DIR/beta=1__seed=0) with train.log and evaluate.log;
# FLAGS after `--`: --config.* go to training, the rest to `python -m aejax.evaluate`.
# Rerunning the same command skips finished points and resumes interrupted ones.
# Paths are relative to the repository root (the script runs from there, so that
# experiments/ configs import).
# Summarise with: python -m aejax.sweep_summary RUNS_DIR
#
# LAUNCHER (default: local) picks a launch_<name> function below; a cluster
# launcher is one more function (e.g. launch_slurm: an array job whose task i
# runs `python -m aejax.sweep point i CONFIG RUNS_DIR ...`; `plan` lists the points).
set -euo pipefail
cd "$(dirname "$0")"

if [ -n "${PYTHON:-}" ]; then :
elif [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python
else PYTHON=python3
fi

# Every point on this machine, --parallel at once (default: one per core).
launch_local() {
  exec "$PYTHON" -m aejax.sweep run "$@"
}

launcher=local
if [ $# -gt 0 ] && declare -F "launch_$1" >/dev/null; then
  launcher=$1
  shift
fi
if [ $# -lt 2 ]; then
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
"launch_$launcher" "$@"
