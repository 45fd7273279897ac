"""Network trunks. The MLP is written with plain ``F.linear`` calls: at the
small batch sizes of a rollout step, module-call overhead is a visible cost."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """``layers`` hidden layers of width ``hidden`` with ReLU: ``[N, n_in] -> [N, hidden]``."""

    def __init__(self, n_in: int, hidden: int, layers: int):
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(n_in if i == 0 else hidden, hidden) for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for linear in self.linears:
            x = F.linear(x, linear.weight, linear.bias).relu_()
        return x
