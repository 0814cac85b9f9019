#!/usr/bin/env bash
# Idempotent set-up: a virtualenv with pinned dependencies, and the Fashion-MNIST
# Debian package where root or sudo is available. Both README commands call it;
# `bash setup.sh --tests` (the test command, CI) also installs Debian's Chromium.
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

# Debian packages: Fashion-MNIST (the default dataset) and, with --tests, Chromium (a test opens a
# run's inspect/index.html in it).
data_dir="${AEJAX_DATA_DIR:-/usr/share/datasets/fashion-mnist}"
missing=()
[ -f "$data_dir/train-images-idx3-ubyte.gz" ] || missing+=(dataset-fashion-mnist)
if [ "${1:-}" = "--tests" ] && ! command -v chromium >/dev/null; then missing+=(chromium); fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" != none ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian's ${missing[*]}" >&2
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "[setup] missing Debian packages (${missing[*]}) and this user cannot install packages." >&2
    echo "        Ask an admin to run: sudo apt-get install ${missing[*]}" >&2
    echo "        (for Fashion-MNIST, instead: put the four IDX .gz files in a directory and" >&2
    echo "        export AEJAX_DATA_DIR=that/dir)" >&2
  fi
fi
