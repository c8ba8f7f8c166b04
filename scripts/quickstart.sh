#!/usr/bin/env bash
# The offline quick start: install, then apply the example manifest into ./models on the
# embedded SQLite store, then show that a second plan has nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"
reconciler --models-dir ./models validate examples/quickstart
reconciler --models-dir ./models apply -y examples/quickstart
reconciler --models-dir ./models status
reconciler --models-dir ./models plan --detailed-exitcode examples/quickstart
echo "quick start: models installed in ./models, and a second plan has no changes"
