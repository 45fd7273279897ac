#!/usr/bin/env bash
# Create the side venv used by experiments/peers/gfnx_hypergrid.py (gfnx pins numpy 1.26.4,
# so it cannot share this library's environment).
# Usage: experiments/peers/setup_gfnx.sh [VENV_PATH]   (default: <repo>/.venv-gfnx)
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$REPO_ROOT/.venv-gfnx}"
"${PYTHON:-python3}" -m venv "$VENV"
"$VENV/bin/pip" install "gfnx==0.0.1" equinox optax "jax[cpu]"
"$VENV/bin/python" -c "import jax, importlib.metadata as m; print('jax', jax.__version__, '| gfnx', m.version('gfnx'))"
