"""Set generation (Pan et al. 2023, "Better Training of GFlowNets with Local Credit
and Incomplete Trajectories"): build a subset S of |S| = ``set_size`` elements of
a universe U of ``size`` elements, one element at a time.

A state is the membership vector ``[size]`` (long, 0/1). Forward action u < size
adds element u (legal while u is not in S and |S| < set_size); action ``size``
exits, legal only at a full set, where it is the only legal action. Backward
action u removes element u. Every trajectory has exactly ``set_size`` moves, then
the exit. States with more than ``set_size`` elements are enumerated but
unreachable: no action is legal there.

Energy, as in the released code: 10 values v drawn uniformly in [-1, 1] by a
torch.Generator seeded with ``seed`` (``torch.rand(10) * 2 - 1``); element u has
e(u) = v[u % 10], so each value repeats |U|/10 times (for size < 10: the first
``size`` values). Any state has energy E(S) = sum_{u in S} e(u) / temperature,
and a full set has reward R(S) = exp(-E(S)). log Z is exact (``log_partition``).

The 2^size states are enumerated up to size 20; up to size 62 ``state_index``
(the bits of S) still works, so a batch's distinct states are evaluated once.
"""

from __future__ import annotations

import torch

from gflownet.environments.base import Environment, checked_int, unit_moves
from gflownet.errors import ConfigError

_MAX_ENUMERABLE = 20  # 2^20 states
_MAX_INDEXABLE = 62  # sum_u s_u 2^u fits in an int64


class SetGeneration(Environment):
    """Subsets of ``set_size`` of ``size`` elements; R(S) = exp(-sum_{u in S} e(u) / temperature)."""

    def __init__(
        self,
        size: int = 30,
        set_size: int = 20,
        temperature: float = 1.0,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ):
        checked_int("sets", "size", size)
        checked_int("sets", "set_size", set_size)
        if set_size > size:
            raise ConfigError(f"sets: set_size must be <= size ({size}), got {set_size}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ConfigError(f"sets: temperature must be a number > 0, got {temperature!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"sets: seed must be an integer, got {seed!r}")
        self.size, self.set_size, self.temperature, self.seed = size, set_size, float(temperature), seed
        self.device = torch.device(device)
        self.n_actions = size + 1
        self.n_backward_actions = size
        self.state_shape = (size,)
        self.feature_dim = size
        self.max_steps = set_size + 1
        self.n_states = 2**size if size <= _MAX_ENUMERABLE else None
        values = torch.rand(10, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        self.energies = values[torch.arange(size) % 10].to(self.device)  # e(u), float [size]
        # Row a of `_delta` is the move of action a (the exit row is zero).
        self._delta = unit_moves(size, self.device)
        self._powers = 2 ** torch.arange(min(size, _MAX_INDEXABLE), device=self.device)

    # -- dynamics ------------------------------------------------------------
    def reset(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.size, dtype=torch.long, device=self.device)

    def forward_mask(self, states):
        n = states.sum(-1, keepdim=True)
        return torch.cat([(states == 0) & (n < self.set_size), n == self.set_size], -1)

    def backward_mask(self, states):
        return states == 1

    def step(self, states, actions):
        return states + self._delta[actions]

    def backward_step(self, states, actions):
        return states - self._delta[actions]

    def featurize(self, states):
        return states.float()

    # -- energy and reward -------------------------------------------------------
    def log_energy(self, states):
        """E(S) = sum_{u in S} e(u) / temperature, float ``[B]``, for any state."""
        return (states.float() @ self.energies) / self.temperature

    def log_reward(self, states):
        """log R(S) = -E(S) ``[B]`` (a reward where S is full)."""
        return -self.log_energy(states)

    def log_partition(self) -> float:
        """log Z = log e_k(w_1..w_n), the elementary symmetric polynomial of degree
        k = set_size of w_u = exp(-e(u)/temperature): the O(n k) recursion
        e_j <- e_j + w_u e_{j-1}, in float64 log space (no overflow at n = 100)."""
        log_w = -self.energies.double().cpu() / self.temperature
        log_e = torch.full((self.set_size + 1,), float("-inf"), dtype=torch.float64)
        log_e[0] = 0.0
        for lw in log_w:
            log_e[1:] = torch.logaddexp(log_e[1:], lw + log_e[:-1])
        return float(log_e[-1])

    # -- enumeration -------------------------------------------------------------
    @property
    def indexable(self):
        return self.size <= _MAX_INDEXABLE

    def all_states(self):
        if not self.enumerable:
            return super().all_states()
        index = torch.arange(self.n_states, device=self.device)
        return (index[:, None] // self._powers) % 2

    def state_index(self, states):
        if not self.indexable:
            return super().state_index(states)
        return (states * self._powers).sum(-1)

    def object_columns(self):
        return ["elements"]

    def object_rows(self, states):
        """One row per state: its elements, sorted, separated by spaces."""
        return [[" ".join(str(u) for u, b in enumerate(row) if b)] for row in states.tolist()]
