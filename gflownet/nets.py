"""Network trunks: ``trunk(features, cond) -> [N, hidden]``, features as the
environment's ``featurize`` makes them, ``cond`` ``[N, C]`` or None.

``TRUNKS`` maps ``--set arch=NAME`` to a builder ``(env, hidden, layers, cond_dim)
-> nn.Module``; environment families register their own (a GNN for graphs, a
transformer for sequences). The MLP is written with plain ``F.linear`` calls: at
the small batch sizes of a rollout step, module-call overhead is a visible cost."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gflownet.transformer import causal_transformer_trunk, transformer_trunk


class MLP(nn.Module):
    """``layers`` hidden layers of width ``hidden`` with ReLU: ``[N, n_in] -> [N, hidden]``."""

    def __init__(self, n_in: int, hidden: int, layers: int):
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(n_in if i == 0 else hidden, hidden) for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for linear in self.linears:
            x = F.linear(x, linear.weight, linear.bias).relu_()
        return x


class MLPTrunk(nn.Module):
    """MLP over ``cat(features, cond)``: ``[N, feature_dim] (+ [N, C]) -> [N, hidden]``."""

    def __init__(self, feature_dim: int, cond_dim: int, hidden: int, layers: int):
        super().__init__()
        self.mlp = MLP(feature_dim + cond_dim, hidden, layers)

    def forward(self, features: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(features if cond is None else torch.cat([features, cond], -1))


def mlp_trunk(env, hidden: int, layers: int, cond_dim: int) -> nn.Module:
    return MLPTrunk(env.feature_dim, cond_dim, hidden, layers)


def gnn_trunk(env, hidden: int, layers: int, cond_dim: int) -> nn.Module:
    """Message passing over graph environments (gflownet/gnn.py, torch-geometric)."""
    from gflownet.gnn import build_gnn_trunk

    return build_gnn_trunk(env, hidden, layers, cond_dim)


TRUNKS: dict[str, Callable[..., nn.Module]] = {"mlp": mlp_trunk, "gnn": gnn_trunk}
TRUNKS.update({"transformer": transformer_trunk, "causal_transformer": causal_transformer_trunk})


def build_trunk(arch: str, env, hidden: int, layers: int, cond_dim: int = 0) -> nn.Module:
    """The trunk ``arch`` ("auto": the environment's ``default_arch``) for ``env``."""
    from gflownet.config import unknown_name

    name = env.default_arch if arch == "auto" else arch
    if name not in TRUNKS:
        raise unknown_name("architecture", name, TRUNKS)
    return TRUNKS[name](env, hidden, layers, cond_dim)
