"""TF Bind 8: DNA 8-mers built left to right, scored by their measured binding to
the SIX6 transcription factor (the exhaustive table of all 4^8 = 65,536 8-mers,
vendored in ``data/tfbind8``; README and licence there).

An append-only ``Sequences`` environment over "ACGT" of fixed length 8, so the
87,381 states are enumerated and the exact terminal distribution is a DP.

Rewards (``reward=``), with y in [0, 1] the normalised binding:
- "binding" (default): R(x) = y(x), exact (no proxy); the one 8-mer with y = 0
  gets ``LOG_REWARD_FLOOR``.
- "shen": R(x) = max(10 y^3 / max y^3, 0.001), the transform of Shen et al. 2023
  (maxwshen/gflownet) reused by later GFlowNet papers.
- a callable or "module:function" scoring tokens ``[B, 8]`` (0..3 = A, C, G, T).

Modes (Shen et al. 2023): 328 8-mers (0.5 %), chosen greedily: in order of y,
descending, keep an 8-mer when its Hamming distance to every kept one is >= 2,
until 328 are kept. Ties in y are taken in index order; the set does not
depend on that choice (checked when the table was vendored, by
breaking ties the other way). "Modes found" counts distinct
samples in that set.
"""

from __future__ import annotations

from importlib import resources
from typing import Callable

import numpy as np
import torch

from gflownet.environments.base import checked_log
from gflownet.environments.sequences import Sequences
from gflownet.errors import ConfigError

N_MODES = 328
REWARDS = ("binding", "shen")


def load_binding() -> torch.Tensor:
    """The vendored table: float32 ``[65536]``, entry i the 8-mer with base-4 digits i."""
    with resources.files("gflownet.environments").joinpath("data/tfbind8/tfbind8.npz").open("rb") as f:
        return torch.from_numpy(np.load(f, allow_pickle=False)["binding"])


def greedy_modes(binding: torch.Tensor, n_modes: int = N_MODES, length: int = 8) -> torch.Tensor:
    """Indices of the greedy modes (module docstring), long ``[n_modes]``, in order of y."""
    order = torch.sort(-binding, stable=True).indices
    blocked = torch.zeros(len(binding), dtype=torch.bool)
    # the 3 * length sequences at Hamming distance 1 differ by (d - x_i) 4^p at one position p
    powers = 4 ** torch.arange(length - 1, -1, -1)
    shifts = torch.arange(1, 4)
    kept = []
    for i in order.tolist():
        if blocked[i]:
            continue
        kept.append(i)
        if len(kept) == n_modes:
            break
        digits = (i // powers) % 4
        neighbours = i + (((digits[:, None] + shifts) % 4 - digits[:, None]) * powers[:, None]).reshape(-1)
        blocked[i] = True
        blocked[neighbours] = True
    return torch.tensor(kept)


class TFBind8(Sequences):
    """DNA 8-mers; R = measured SIX6 binding (or the "shen" transform, or a user scorer)."""

    name = "tfbind8"

    def __init__(self, reward: str | Callable = "binding", device: str | torch.device = "cpu"):
        user = None if reward in REWARDS else reward
        if isinstance(user, str) and ":" not in user:
            raise ConfigError(
                f"tfbind8: reward must be one of {', '.join(REWARDS)} or 'module:function', got {reward!r}"
            )
        super().__init__(alphabet="ACGT", max_length=8, reward=user, device=device)
        self.reward_name = reward if user is None else "user"
        binding = load_binding()
        self.binding = binding.to(self.device)
        if reward == "shen":
            cube = binding.double() ** 3
            transformed = (10 * cube / cube.max()).clamp_min(0.001)
        else:
            transformed = binding
        self._log_reward_table = checked_log(transformed, binding[:, None], "tfbind8 reward").to(self.device)
        self.mode_indices = greedy_modes(binding).to(self.device)
        self._is_mode = torch.zeros(len(binding), dtype=torch.bool, device=self.device)
        self._is_mode[self.mode_indices] = True

    def sequence_index(self, states: torch.Tensor) -> torch.Tensor:
        """Row of each complete 8-mer in the table, long ``[B]`` (pads read as A)."""
        return (torch.where(states == self.pad, 0, states) * self._powers.flip(0)).sum(-1)

    def terminal_log_reward(self, states):
        if self.scorer is not None:
            return super().terminal_log_reward(states)
        return self._log_reward_table[self.sequence_index(states)]

    def is_mode(self, states):
        return self._is_mode[self.sequence_index(states)] & (self.lengths(states) == 8)

    def n_modes(self):
        return N_MODES
