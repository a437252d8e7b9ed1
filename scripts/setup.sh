#!/usr/bin/env bash
# Create .venv with everything vp3d needs (CPU torch, pinned by constraints.txt) and install vp3d
# in editable mode. Safe to run again: pip skips what is already there.
#   EXTRAS=dev bash scripts/setup.sh     # extras besides mediapipe (default: dev, the test tools)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' || {
  echo "vp3d needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V 2>&1))" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt)
# torch first, at the exact version in constraints.txt (a looser spec pulls a multi-GB CUDA build).
"${PIP[@]}" torch
"${PIP[@]}" -e ".[mediapipe,${EXTRAS:-dev}]"
# The default 2D detector, without its declared jax/opencv-contrib dependencies (see pyproject.toml).
"${PIP[@]}" --no-deps mediapipe==0.10.21
.venv/bin/python -c 'import torch; print("vp3d is set up in .venv with torch", torch.__version__)'
