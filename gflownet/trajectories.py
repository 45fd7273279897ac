"""The padded batch of trajectories every sampler produces and every loss reads."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class Trajectories:
    """B trajectories padded to T transitions.

    A complete trajectory b visits s_0 .. s_{L_b - 1} = x and then exits:
    transitions t = 0 .. L_b - 1, the last one the exit action. An incomplete one
    (cut before it exited) makes L_b moves s_0 -> .. -> s_{L_b} and stops there.
    Either way ``states[b, L_b]`` is its last state.

    Attributes:
        states: ``[B, T+1, *state_shape]``; after the last transition the state stays.
        actions: ``[B, T]`` long forward actions; exit-action padding after the last one.
        lengths: ``[B]`` long, L_b transitions (>= 1 for a complete trajectory).
        complete: ``[B]`` bool, False where the trajectory was cut before exiting;
            None means all are complete.
        log_reward: ``[B]`` log R(x) (read only where complete), or None until scored.
        cond: ``[B, C]`` conditioning, or None.
    """

    states: torch.Tensor
    actions: torch.Tensor
    lengths: torch.Tensor
    log_reward: torch.Tensor | None = None
    cond: torch.Tensor | None = None
    complete: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.actions.shape[0]

    @property
    def max_length(self) -> int:
        return self.actions.shape[1]

    @property
    def is_complete(self) -> torch.Tensor:
        """``[B]`` bool."""
        if self.complete is None:
            return torch.ones_like(self.lengths, dtype=torch.bool)
        return self.complete

    @property
    def last_state(self) -> torch.Tensor:
        """``states[b, L_b]``: x where complete, the state reached where cut. ``[B, *state_shape]``."""
        return self.states[torch.arange(len(self), device=self.lengths.device), self.lengths]

    @property
    def terminal(self) -> torch.Tensor:
        """x of each (complete) trajectory, ``[B, *state_shape]``."""
        return self.last_state

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

        complete = None
        if any(b.complete is not None for b in batches):
            complete = torch.cat([b.is_complete for b in batches])
        return Trajectories(
            join("states"), join("actions"), join("lengths"), join("log_reward"), join("cond"), complete
        )


def transition_masks(lengths: torch.Tensor, complete: torch.Tensor | None, T: int):
    """``(moves, exits)``, each ``[B, T]`` bool: which transitions are moves and which
    is the exit (t = L_b - 1 of a complete trajectory). Shared by the objectives."""
    t = torch.arange(T, device=lengths.device)
    valid = t < lengths[:, None]
    exits = t == (lengths - 1)[:, None]
    if complete is not None:
        exits = exits & complete[:, None]
    return valid & ~exits, exits
