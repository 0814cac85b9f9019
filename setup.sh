#!/usr/bin/env bash
# Idempotent set-up: a virtualenv with pinned dependencies, and the Fashion-MNIST
# Debian package where root or sudo is available. Both README commands call it.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=${AEJAX_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtualenv $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.aejax-requirements"
want="$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing pinned dependencies (once; a few minutes)" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r requirements.txt
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi

data_dir="${AEJAX_DATA_DIR:-/usr/share/datasets/fashion-mnist}"
if [ ! -f "$data_dir/train-images-idx3-ubyte.gz" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" != none ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian's dataset-fashion-mnist" >&2
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "[setup] Fashion-MNIST is missing and this user cannot install packages." >&2
    echo "        Ask an admin to run: sudo apt-get install dataset-fashion-mnist" >&2
    echo "        or put the four IDX .gz files in a directory and export AEJAX_DATA_DIR=that/dir" >&2
  fi
fi
