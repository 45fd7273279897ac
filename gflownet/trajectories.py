"""The padded batch of trajectories every sampler produces and every loss reads."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class Trajectories:
    """B trajectories padded to T transitions.

    Trajectory b visits s_0 .. s_{L_b - 1} = x and then exits: transitions
    t = 0 .. L_b - 1, the last one being the exit action.

    Attributes:
        states: ``[B, T+1, *state_shape]``; after the exit the state stays at x.
        actions: ``[B, T]`` long forward actions; the exit at t = L_b - 1 and after.
        lengths: ``[B]`` long, L_b >= 1 (transitions, exit included).
        log_reward: ``[B]`` log R(x), or None until scored.
        cond: ``[B, C]`` conditioning, or None.
    """

    states: torch.Tensor
    actions: torch.Tensor
    lengths: torch.Tensor
    log_reward: torch.Tensor | None = None
    cond: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.actions.shape[0]

    @property
    def max_length(self) -> int:
        return self.actions.shape[1]

    @property
    def terminal(self) -> torch.Tensor:
        """x of each trajectory, ``[B, *state_shape]``."""
        return self.states[torch.arange(len(self), device=self.lengths.device), self.lengths - 1]

    @property
    def mask(self) -> torch.Tensor:
        """``[B, T]`` bool: True on each trajectory's transitions."""
        t = torch.arange(self.max_length, device=self.lengths.device)
        return t < self.lengths[:, None]

    def pad_to(self, length: int, exit_action: int) -> "Trajectories":
        """The same trajectories padded to ``length`` transitions."""
        extra = length - self.max_length
        if extra <= 0:
            return self
        last = self.states[:, -1:].expand(-1, extra, *self.states.shape[2:])
        pad = self.actions.new_full((len(self), extra), exit_action)
        return replace(self, states=torch.cat([self.states, last], 1), actions=torch.cat([self.actions, pad], 1))

    @staticmethod
    def cat(batches: list["Trajectories"], exit_action: int) -> "Trajectories":
        """Concatenate batches along B (padding to the longest)."""
        length = max(b.max_length for b in batches)
        batches = [b.pad_to(length, exit_action) for b in batches]

        def join(name):
            parts = [getattr(b, name) for b in batches]
            return None if any(p is None for p in parts) else torch.cat(parts)

        return Trajectories(join("states"), join("actions"), join("lengths"), join("log_reward"), join("cond"))
