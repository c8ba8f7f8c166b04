#!/usr/bin/env bash
# The offline quick start: install, then apply the example manifest (manifests/, the default
# when no path is given) into ./models (the default models dir) on the embedded SQLite store,
# then show that a second plan has nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"
reconciler validate
reconciler apply -y
reconciler status
reconciler plan --detailed-exitcode
echo "quick start: models installed in ./models, and a second plan has no changes"
