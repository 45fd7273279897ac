"""Molecule rewards scored in-process or by RDKit in worker processes.

``MoleculeScoring`` gives the molecule environments their ``log_reward``,
``log_reward_cond`` and ``log_energy``. With ``reward_workers = N > 0`` (``--set
reward_workers=N``) the states are sent to N spawned worker processes
(``gflownet.reward_pool.RewardPool``, local backend), each of which builds its own copy
of the environment once and turns states into RDKit molecules, canonical SMILES and
scores s(x); the parent only applies beta * log s. ``submit_log_reward`` and
``submit_log_energy`` return at once, so the trainer runs the policy's forward pass
while the batch is scored. Rewards come back in order and equal the in-process ones
bit for bit (the same float64 scores, the same transform).

A molecule whose reward fails (a factor raised or gave NaN / a negative) scores at the
floor either way: in-process ``MoleculeReward`` warns and counts; from a worker it
comes back as NaN and the parent warns, naming the state, and counts it in
``reward.failures``. A chunk whose worker raised or died is retried by the pool (its
failures at the floor are counted in ``pool.failures``).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from gflownet.environments.base import checked_int
from gflownet.reward_pool import Deferred, RewardPool

_WORKER_ENVS: dict = {}  # in a worker process: (class, parameters) -> its environment


class StateScores:
    """Picklable ``rows -> scores``: s(x) of each state (a numpy row ``state_shape``),
    computed by the environment ``env_class(**params)`` built once per worker."""

    def __init__(self, env_class: type, params: dict):
        self.env_class, self.params = env_class, dict(params)

    def __call__(self, rows: list) -> list[float]:
        key = (self.env_class, tuple(sorted(self.params.items())))
        if key not in _WORKER_ENVS:
            torch.set_num_threads(1)
            env = self.env_class(**self.params)
            env.reward.floor_failures = False  # the parent warns and counts
            _WORKER_ENVS[key] = env
        env = _WORKER_ENVS[key]
        return env.reward.scores(env.to_mols(torch.from_numpy(np.stack(rows))))


class MoleculeScoring:
    """Rewards of a molecule environment (needs ``reward``, ``to_mols``, ``beta_max``)."""

    def _init_scoring(self, reward_workers: int, params: dict):
        """``params``: the constructor arguments a worker rebuilds the environment from."""
        checked_int(type(self).__name__, "reward_workers", reward_workers, minimum=0)
        self.reward_workers = reward_workers
        self.pool = RewardPool(StateScores(type(self), params), workers=reward_workers) if reward_workers else None

    def submit_scores(self, states: torch.Tensor) -> Deferred:
        """Start scoring s(x) of each state (once per distinct state); ``.result()``: float64 ``[B]`` on CPU."""
        distinct, inverse = torch.unique(states.flatten(1).cpu(), dim=0, return_inverse=True)
        distinct = distinct.view(-1, *states.shape[1:])
        if self.pool is None:
            return Deferred(
                lambda: torch.tensor(self.reward.scores(self.to_mols(distinct)), dtype=torch.float64)[inverse]
            )
        pending = self.pool.submit(list(distinct.numpy()))
        return Deferred(lambda: self._floored(pending.result(), distinct)[inverse])

    def _floored(self, scores: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Worker scores with each failure (NaN) at the floor, a warning and a count."""
        failed = scores.isnan()
        for i in failed.nonzero()[:, 0].tolist():
            self.reward.failures += 1
            warnings.warn(
                f"reward {self.reward.spec!r} failed for the molecule of state {states[i].tolist()}: "
                f"scored at the floor ({self.reward.failures} molecules so far)",
                RuntimeWarning,
                stacklevel=4,
            )
        return scores.masked_fill(failed, 0.0)

    def submit_log_reward(self, states: torch.Tensor, cond: torch.Tensor | None = None) -> Deferred:
        """Start scoring log R ``[B]`` (with ``cond`` ``[B, 1]``: log R_beta, beta = cond * beta_max)."""
        beta = None if cond is None else (cond[:, 0] * self.beta_max).cpu()
        scores = self.submit_scores(states)
        return Deferred(lambda: self.reward.log_reward_of_scores(scores.result(), beta).to(states.device))

    def log_reward(self, states: torch.Tensor) -> torch.Tensor:
        return self.submit_log_reward(states).result()

    def log_reward_cond(self, states: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """log R_beta(x) = beta * log s(x) ``[B]`` with beta = cond * beta_max."""
        return self.submit_log_reward(states, cond).result()

    def submit_log_energy(self, states: torch.Tensor) -> Deferred:
        """Start computing E(s) = -log R(molecule of s) of every state ``[B]`` (0 for the empty one)."""
        log_reward = self.submit_log_reward(states)
        return Deferred(lambda: torch.where(self.is_initial(states), 0.0, -log_reward.result()))

    def log_energy(self, states: torch.Tensor) -> torch.Tensor:
        """E(s) = -log R(molecule of s) for every state (each is a valid molecule; the
        empty one has E = 0): the forward-looking objectives' intermediate energy."""
        return self.submit_log_energy(states).result()

    def close(self) -> None:
        """Stop the worker processes (if any)."""
        if self.pool is not None:
            self.pool.close()
