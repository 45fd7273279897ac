"""gflownet: learn samplers of compositional objects with probability proportional to a reward.

    import gflownet
    run = gflownet.train(env="hypergrid", objective="tb", out="runs/hg", dim=2, side=16)
    x, log_r = gflownet.load("runs/hg").sample(1000)

The names below are imported on first use, so ``import gflownet`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "train": "gflownet.api",
    "load": "gflownet.api",
    "make_config": "gflownet.api",
    "Run": "gflownet.run",
    "RunConfig": "gflownet.config",
    "GFlowNetError": "gflownet.errors",
}

if TYPE_CHECKING:
    from gflownet.api import load, make_config, train
    from gflownet.config import RunConfig
    from gflownet.errors import GFlowNetError
    from gflownet.run import Run


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gflownet' has no attribute {name!r}")


__all__ = ["GFlowNetError", "Run", "RunConfig", "__version__", "load", "make_config", "train"]
