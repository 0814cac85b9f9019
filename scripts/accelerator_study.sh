#!/usr/bin/env bash
# The accelerator study, in one command sized for ≤ 10 minutes on one H200:
#
#   scripts/accelerator_study.sh [OUT]              # default OUT=runs/accelerator (or $OUT on the device tool)
#   AEJAX_STUDY=smoke scripts/accelerator_study.sh   # a CPU rehearsal: the same commands at smoke size
#
# 1. The dSprites β-VAE study at Locatello et al.'s settings (experiments/beta_vae_dsprites_locatello.py:
#    conv 32-32-64-64 + dense 256, 10 latents, Adam 1e-4, batch 64, 300,000 steps) for β ∈ {1,2,4,6,8,16} ×
#    seeds {0,1,2}, as ONE population (18 members, one vmapped program), then evaluated in the same process
#    (ELBO on the 5,000 eval images, BetaVAE, FactorVAE, MIG, DCI), then summarised.
# 2. The bench's vae, population (throughput of 1/4/16 members; the 1-epoch β sweep both ways) and conv sections.
#
# Size estimate (from FLOPs, before any run): a training image costs ~3 x 33 MFLOP (forward: encoder convs
# 8.1M + decoder transposed convs 8.1M + dense 0.5M multiply-adds), so a step of batch 64 is 6.3 GFLOP and
# the population step (18 members) 114 GFLOP; 300,000 steps are 34 PFLOP. At ~100 TFLOP/s (a fifth of the
# H200's dense TF32 rate: small convs with few channels keep it far from its 495 TFLOP/s) that is ~6 min, plus
# ~1 min of compile and data preparation, ~2 min of evaluation (DCI's boosted trees on the 16 CPU cores, a
# run per core) and ~1 min of bench. Set AEJAX_STUDY_STEPS to trade length for time; the summary says how
# many steps ran. The device image has jax/flax/optax/orbax but not ml_collections, tensorflow-datasets,
# grain or tensorboardX: carry them as wheels in .whl/ (see the device tool's README); they are installed
# from there when present.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-runs/accelerator}}
PY=${PYTHON:-python3}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONUNBUFFERED=1
if [ "${AEJAX_STUDY:-}" = smoke ]; then
  CONFIG=experiments/beta_vae_dsprites_locatello.py:smoke STEPS=${AEJAX_STUDY_STEPS:-20}
  BENCH=(--dataset=digits --epochs=1 --steps=3 --repeats=1 --members=1,2 --sweep_epochs=0)
else
  CONFIG=experiments/beta_vae_dsprites_locatello.py STEPS=${AEJAX_STUDY_STEPS:-300000}
  BENCH=(--epochs=3 --sweep_epochs=1)
fi
mkdir -p "$OUT"
$PY -c "import jax; print('devices:', jax.devices())" | tee "$OUT/devices.txt"
start=$(date +%s)
$PY -m aejax.sweep run "$CONFIG" "$OUT/study" beta=1,2,4,6,8,16 seed=0,1,2 --population --parallel 1 --python "$PY" \
    -- --config.num_train_steps="$STEPS" --num_importance_samples=1 --noclustering
echo "study: $STEPS steps x 18 members in $(( $(date +%s) - start )) s" | tee "$OUT/study_time.txt"
$PY -m aejax.sweep_summary "$OUT/study" --metrics=elbo,kl,reconstruction_nll,active_units,disentanglement/beta_vae/eval_accuracy,disentanglement/factor_vae/eval_accuracy,disentanglement/mig/score,disentanglement/dci/disentanglement \
    | tee "$OUT/study_summary.md"
$PY -m aejax.bench --sections=vae,population,conv "${BENCH[@]}" | tee "$OUT/bench.txt"
echo "accelerator study finished in $(( $(date +%s) - start )) s"
