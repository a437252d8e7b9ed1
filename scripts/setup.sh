#!/usr/bin/env bash
# Create .venv with everything vp3d needs (CPU torch, pinned by constraints.txt) and install vp3d
# in editable mode, plus the Node tools the tests use (glTF validator, three.js) when npm is here.
# Safe to run again: pip and npm skip what is already there.
#   EXTRAS=dev bash scripts/setup.sh   # extras besides mediapipe (default: dev,blender,serve,cluster:
#                                      # the test tools, Blender's bpy module for FBX (a ~360 MB wheel),
#                                      # the service's FastAPI, and Dask for batches on a cluster)
# The browser tests need Chromium: installed with apt-get when missing and running as root.
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
"${PIP[@]}" -e ".[mediapipe,${EXTRAS:-dev,blender,serve,cluster}]"
# The default 2D detector, without its declared jax/opencv-contrib dependencies (see pyproject.toml).
"${PIP[@]}" --no-deps mediapipe==0.10.21
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
  else
    echo "Chromium not found: the browser tests need it (e.g. sudo apt-get install chromium)" >&2
  fi
fi
if command -v npm >/dev/null 2>&1; then
  bash scripts/setup_node_tools.sh
else
  echo "npm not found: the glTF validator and three.js checks will be skipped by the tests" >&2
fi
.venv/bin/python -c 'import torch; print("vp3d is set up in .venv with torch", torch.__version__)'
