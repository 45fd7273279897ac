"""HyperGrid (Bengio et al. 2021): walk on a D-dimensional grid of side H.

A state is the coordinate vector ``[D]`` (long). Forward action d < D adds 1 to
coordinate d (legal while it is < H-1); action D exits. Backward action d
subtracts 1 from coordinate d. Every state can terminate, so a trajectory has
at most ``D*(H-1) + 1`` transitions.

Standard reward (ALGORITHMS.md), with a_d = |s_d/(H-1) - 0.5|:
    R(s) = R0 + R1 * prod_d 1[0.25 < a_d] + R2 * prod_d 1[0.3 < a_d < 0.4]
Its modes are the 2^D corner regions where the R2 term is on. A user reward is
any callable mapping coordinates ``[B, D]`` (long) to R ``[B]`` (>= 0).

Energy of a walk (forward-looking objectives), ``energy=``:
    "reward"       E(s) = -log R(s): a state is scored as the object it would be if it stopped;
    "coordinates"  E(s) = -(1/D) sum_d log r(s_d), r(c) = R0 + R1 1[0.25 < a_c] + R2 1[0.3 < a_c < 0.4]:
                   the standard reward's terms taken one coordinate at a time, equal to
                   -log R(s) wherever all coordinates lie in the same band. Additive over
                   coordinates, so linear in the one-hot features: F~ = F e^E is as smooth as
                   F, where with "reward" it is F / R, which jumps at every band edge. The
                   exit then carries E(x') - E(x) with E(x') = -log R(x) on the sink side.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from gflownet.environments.base import Environment, checked_int, checked_log, unit_moves
from gflownet.config import load_callable
from gflownet.errors import ConfigError

# Above this many states, rewards are computed per batch instead of tabulated.
_MAX_TABLE = 1 << 22


class HyperGrid(Environment):
    """D-dimensional grid of side H; reward R0/R1/R2 at the corners or a user function."""

    fixed_shape = True

    def __init__(
        self,
        dim: int = 2,
        side: int = 8,
        r0: float = 0.1,
        r1: float = 0.5,
        r2: float = 2.0,
        reward: str | Callable | None = None,
        energy: str = "reward",
        device: str | torch.device = "cpu",
    ):
        checked_int("hypergrid", "dim", dim)
        checked_int("hypergrid", "side", side)
        if min(r0, r1, r2) < 0:
            raise ConfigError(f"hypergrid: r0, r1, r2 must be >= 0, got {r0}, {r1}, {r2}")
        self.dim, self.side, self.r0, self.r1, self.r2 = dim, side, float(r0), float(r1), float(r2)
        self.device = torch.device(device)
        self.user_reward = load_callable(reward) if isinstance(reward, str) else reward
        if energy not in ("reward", "coordinates"):
            raise ConfigError(f"hypergrid: energy must be 'reward' or 'coordinates', got {energy!r}")
        if energy == "coordinates" and self.user_reward is not None:
            raise ConfigError(
                "hypergrid: energy='coordinates' decomposes the standard reward; use 'reward' with reward="
            )
        self.energy = energy
        self.n_actions = dim + 1
        self.n_backward_actions = dim
        self.state_shape = (dim,)
        self.feature_dim = dim * side
        self.max_steps = dim * (side - 1) + 1
        self.n_states = side**dim
        # Row a of `_delta` is the move of action a (the exit row is zero).
        self._delta = unit_moves(dim, self.device)
        self._one_hot = torch.eye(side, device=self.device)
        self._strides = side ** torch.arange(dim, device=self.device)
        self._limits = torch.tensor([side - 1] * dim + [1], device=self.device)
        self._log_reward_table = None
        if self.n_states <= _MAX_TABLE:
            self._log_reward_table = self._compute_log_reward(self.all_states())

    # -- dynamics ------------------------------------------------------------
    def reset(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.dim, dtype=torch.long, device=self.device)

    def forward_mask(self, states):
        # Pad a zero "exit coordinate" whose limit is 1: one fused comparison, exit always legal.
        return F.pad(states, (0, 1)) < self._limits

    def backward_mask(self, states):
        return states > 0

    def step(self, states, actions):
        return states + self._delta[actions]

    def backward_step(self, states, actions):
        return states - self._delta[actions]

    def featurize(self, states):
        return self._one_hot[states].view(len(states), self.feature_dim)

    # -- reward ----------------------------------------------------------------
    def _compute_log_reward(self, states):
        if self.user_reward is not None:
            return checked_log(self.user_reward(states), states, "hypergrid reward function")
        a = (states / max(self.side - 1, 1) - 0.5).abs()
        reward = self.r0 + self.r1 * (a > 0.25).all(-1) + self.r2 * ((a > 0.3) & (a < 0.4)).all(-1)
        return checked_log(reward, states, "hypergrid reward")

    @property
    def capturable(self) -> bool:
        return self._log_reward_table is not None

    def log_reward(self, states):
        if self._log_reward_table is not None:
            return self._log_reward_table[self.state_index(states)]
        return self._compute_log_reward(states)

    def log_energy(self, states):
        """E(s) ``[B]`` of a walk that may still move on (``energy``, module docstring)."""
        if self.energy == "reward":
            return -self.log_reward(states)
        a = (states / max(self.side - 1, 1) - 0.5).abs()
        r = self.r0 + self.r1 * (a > 0.25) + self.r2 * ((a > 0.3) & (a < 0.4))
        return -r.log().mean(-1)

    def log_partition(self):
        """log Z: every state is terminal, so the logsumexp of the log-reward table."""
        if self._log_reward_table is None:
            return super().log_partition()
        return float(self._log_reward_table.double().logsumexp(0))

    # -- enumeration -------------------------------------------------------------
    def all_states(self):
        index = torch.arange(self.n_states, device=self.device)
        return (index[:, None] // self._strides) % self.side

    def state_index(self, states):
        return (states * self._strides).sum(-1)

    def is_mode(self, states):
        if self.user_reward is None:
            a = (states / max(self.side - 1, 1) - 0.5).abs()
            return ((a > 0.3) & (a < 0.4)).all(-1)
        log_r = self.log_reward(states)
        return log_r >= self._max_log_reward() - 1e-6

    def _max_log_reward(self):
        table = self._log_reward_table
        return float(table.max()) if table is not None else float("inf")

    def n_modes(self):
        return int(self.is_mode(self.all_states()).sum())

    def object_columns(self):
        return [f"x{d}" for d in range(self.dim)]

    # -- outcomes: every state is a terminal object, coded as its features (one-hot coordinates;
    # measured on 2-D grids, side 8 and 16, this learnt faster than thermometer codes) --
    @property
    def outcome_dim(self):
        return self.feature_dim

    def sample_outcomes(self, n, generator=None):
        return torch.randint(0, self.side, (n, self.dim), device=self.device, generator=generator)

    def outcome_reachable(self, states, outcomes):
        return (states <= outcomes).all(-1)
