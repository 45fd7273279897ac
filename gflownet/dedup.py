"""Evaluate each distinct state once: trajectories of a batch share many states."""

import torch


def distinct(keys: torch.Tensor, dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of one occurrence of each distinct key ``[U]``, and the position of each
    key among the distinct ones ``[N]`` (so ``x[first][inverse]`` equals ``x`` row-wise).

    ``keys`` is ``[N]`` (or ``[N, k]`` rows with ``dim=0``).
    """
    unique, inverse = torch.unique(keys, dim=dim, return_inverse=True)
    first = torch.empty(len(unique), dtype=torch.long, device=keys.device)
    # Several positions write the same slot; any of them is a valid representative.
    first.scatter_(0, inverse, torch.arange(len(keys), device=keys.device))
    return first, inverse
