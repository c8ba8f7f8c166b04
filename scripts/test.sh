#!/usr/bin/env bash
# Lint, layering contracts, then the test suite. Assumes scripts/install.sh has run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
ruff check reconciler tests bench examples
lint-imports
pytest -q "$@"
