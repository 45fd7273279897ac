#!/usr/bin/env bash
# Create the side venv used by experiments/peers/torchgfn_hypergrid.py.
# Usage: experiments/peers/setup_torchgfn.sh [VENV_PATH]   (default: <repo>/.venv-torchgfn)
# torch==2.13.0 (the CPU wheel) is installed first and explicitly, so that torchgfn's
# dependency resolution does not pull a multi-GB CUDA build of torch.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$REPO_ROOT/.venv-torchgfn}"
"${PYTHON:-python3}" -m venv "$VENV"
"$VENV/bin/pip" install "torch==2.13.0"
"$VENV/bin/pip" install "torchgfn==2.4.1"
"$VENV/bin/python" -c "import torch, importlib.metadata as m; print('torch', torch.__version__, '| torchgfn', m.version('torchgfn'))"
