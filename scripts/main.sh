#!/usr/bin/env bash
# The README's main job: install buildgraph and the example's Python packages, then run the
# CIFAR-10 example pipeline end to end (offline: synthetic CIFAR-10-format data).
# Extra arguments go to `bg run`, e.g. `scripts/main.sh --param threads=2`; hyperparameters are in params.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# torch: keep one that is already installed; otherwise take the CPU wheel this platform offers.
"$PY" -c 'import torch' 2>/dev/null || "$PY" -m pip install -q "torch==2.13.0"
"$PY" -m pip install -q -e '.[example]'
"$PY" -m buildgraph run "$@"   # the Buildfile's default target and executor; e.g. --executor docker --arg BASE=base-debian
"$PY" -m buildgraph metrics
