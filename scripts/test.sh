#!/usr/bin/env bash
# The README's test command: install what the tests need, start the Docker engine they use,
# then run the whole suite (Docker tests included, not skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

"$PY" -c 'import torch' 2>/dev/null || "$PY" -m pip install -q "torch==2.13.0"
"$PY" -m pip install -q -e '.[dev,example]'
if [ -f scripts/ci-docker.sh ]; then
  bash scripts/ci-docker.sh
fi
"$PY" -m ruff check buildgraph tests      # lint (the layering itself is a test)
"$PY" -m mypy buildgraph/core             # the pure core is strictly typed
"$PY" -m pytest -q "$@"
