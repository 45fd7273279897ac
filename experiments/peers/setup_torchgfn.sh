#!/usr/bin/env bash
# Create the side venv used by experiments/peers/torchgfn_hypergrid.py.
# Usage: experiments/peers/setup_torchgfn.sh [VENV_PATH]   (default: <repo>/.venv-torchgfn)
# torch==2.13.0 is installed FIRST and explicitly (CPU wheel index), so that
# torchgfn's dependency resolution does not pull a multi-GB CUDA build of torch.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$REPO_ROOT/.venv-torchgfn}"
PYTHON="${PYTHON:-python3}"
TORCH_INDEX="${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"

"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --upgrade pip
"$VENV/bin/pip" install "torch==2.13.0" --index-url "$TORCH_INDEX"
"$VENV/bin/pip" install "torchgfn==2.4.1"
"$VENV/bin/python" -c "import torch, importlib.metadata as m; \
print('torch', torch.__version__, '| torchgfn', m.version('torchgfn'))"
echo "venv ready: $VENV/bin/python"
