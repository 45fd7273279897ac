"""Replay buffers of trajectories, and hindsight relabelling of outcomes.

The buffer keeps the last ``capacity`` trajectories (a ring), padded to the
environment's ``max_steps``, with their conditioning and log-rewards, and hands
back uniform random batches as ``Trajectories`` that any objective trains on.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from gflownet.environments.base import Environment
from gflownet.errors import ConfigError
from gflownet.trajectories import Trajectories


def hindsight_relabel(env: Environment, traj: Trajectories) -> Trajectories:
    """The complete trajectories of ``traj`` relabelled with the outcome they reached, y := x:
    ``cond`` becomes ``env.encode_outcome(x)`` and log R(x|y) = 0 (a success by construction)."""
    done = traj.is_complete
    keep = replace(
        traj,
        states=traj.states[done],
        actions=traj.actions[done],
        lengths=traj.lengths[done],
        cond=None,
        complete=None,
        log_reward=None,
    )
    keep.cond = env.encode_outcome(keep.terminal)
    keep.log_reward = torch.zeros(len(keep), device=traj.lengths.device)
    return keep


class ReplayBuffer:
    """A ring of the last ``capacity`` scored trajectories (with or without ``cond``)."""

    def __init__(self, capacity: int, max_length: int, exit_action: int):
        if capacity < 1:
            raise ConfigError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity, self.max_length, self.exit_action = capacity, max_length, exit_action
        self.store: dict[str, torch.Tensor] = {}
        self.size = 0  # filled slots
        self.position = 0  # next slot to write

    def __len__(self) -> int:
        return self.size

    def add(self, traj: Trajectories) -> None:
        """Append a scored batch (``log_reward`` set), overwriting the oldest entries when full."""
        if traj.log_reward is None:
            raise ConfigError("only scored trajectories (log_reward set) can be replayed")
        traj = traj.pad_to(self.max_length, self.exit_action)
        data = {
            "states": traj.states,
            "actions": traj.actions,
            "lengths": traj.lengths,
            "log_reward": traj.log_reward,
            "cond": traj.cond,
            "complete": traj.is_complete,
        }
        data = {k: v[-self.capacity :] for k, v in data.items() if v is not None}
        if not self.store:
            self.store = {k: v.new_empty(self.capacity, *v.shape[1:]) for k, v in data.items()}
        n = len(data["lengths"])
        slots = (self.position + torch.arange(n, device=data["lengths"].device)) % self.capacity
        for k, v in data.items():
            self.store[k][slots] = v
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Trajectories:
        """``n`` stored trajectories drawn uniformly with replacement, trimmed to their longest."""
        if not self.size:
            raise ConfigError("the replay buffer is empty")
        device = self.store["lengths"].device
        picked = torch.randint(0, self.size, (n,), device=device, generator=generator)
        rows = {k: v[picked] for k, v in self.store.items()}
        T = max(int(rows["lengths"].max()), 1)
        return Trajectories(
            rows["states"][:, : T + 1],
            rows["actions"][:, :T],
            rows["lengths"],
            rows["log_reward"],
            rows.get("cond"),
            rows["complete"],
        )

    def state_dict(self) -> dict:
        return {"store": self.store, "size": self.size, "position": self.position}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.store = {k: v.to(device) for k, v in state["store"].items()}
        self.size, self.position = int(state["size"]), int(state["position"])


__all__ = ["ReplayBuffer", "hindsight_relabel"]
