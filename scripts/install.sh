#!/usr/bin/env bash
# Create .venv and install model-reconciler with everything the tests need.
# constraints.txt pins torch==2.13.0: on CPU-only machines pip then takes the local CPU wheel
# (about 20 s) instead of resolving the newest torch with several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
