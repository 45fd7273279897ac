"""Diversity of sampled sequences: Hamming and edit distances, modes reached
within a radius, novelty against a reference set.

Sequences are token tensors ``[N, L]`` (long) with an optional pad value after
the tokens (the sequence environments' states); Hamming distances need equal
lengths, edit distances do not.
"""

from __future__ import annotations

import torch

from gflownet.errors import ConfigError

_MAX_TABLE = 1 << 24  # entries of one edit-distance table batch


def hamming(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise Hamming distances, long ``[N, M]``, of ``a`` ``[N, L]`` and ``b`` ``[M, L]``."""
    if a.shape[1:] != b.shape[1:]:
        raise ConfigError(f"Hamming distance needs equal lengths, got {a.shape[1]} and {b.shape[1]}")
    return (a[:, None] != b[None]).sum(-1)


def edit_distance(a: torch.Tensor, b: torch.Tensor, pad: int | None = None) -> torch.Tensor:
    """Pairwise Levenshtein distances (unit insertions, deletions, substitutions), long
    ``[N, M]``; tokens equal to ``pad`` are not part of a sequence.

    One dynamic programme for all N*M pairs at once: ``L_a * L_b`` vectorised steps
    (rows of ``a`` in chunks that keep the tables under 2^24 entries)."""
    N, M, La, Lb = len(a), len(b), a.shape[1], b.shape[1]
    chunk = max(1, _MAX_TABLE // max(M * (La + 1) * (Lb + 1), 1))
    if N > chunk:
        return torch.cat([edit_distance(part, b, pad) for part in a.split(chunk)])
    device = a.device
    len_a = torch.full((N,), La, device=device) if pad is None else (a != pad).sum(-1)
    len_b = torch.full((M,), Lb, device=device) if pad is None else (b != pad).sum(-1)
    differ = (a[:, None, :, None] != b[None, :, None, :]).long()  # [N, M, La, Lb]
    prev = torch.arange(Lb + 1, device=device).expand(N, M, Lb + 1)  # row i = 0 of the table
    rows = [prev]
    for i in range(1, La + 1):
        row = [torch.full((N, M), i, device=device)]
        for j in range(1, Lb + 1):
            row.append(
                torch.minimum(
                    torch.minimum(prev[..., j] + 1, row[j - 1] + 1), prev[..., j - 1] + differ[:, :, i - 1, j - 1]
                )
            )
        prev = torch.stack(row, -1)
        rows.append(prev)
    table = torch.stack(rows, 2)  # [N, M, La + 1, Lb + 1]
    return table[
        torch.arange(N, device=device)[:, None], torch.arange(M, device=device)[None], len_a[:, None], len_b[None]
    ]


def modes_reached(samples: torch.Tensor, modes: torch.Tensor, radius: int, distance=hamming) -> torch.Tensor:
    """bool ``[n_modes]``: which modes lie within ``radius`` of at least one sample."""
    return (distance(samples, modes) <= radius).any(0)


def novelty(samples: torch.Tensor, reference: torch.Tensor, distance=hamming) -> torch.Tensor:
    """Distance of each sample to its nearest reference sequence, long ``[N]``."""
    return distance(samples, reference).min(-1).values


def mean_pairwise_distance(samples: torch.Tensor, distance=hamming) -> float:
    """Mean distance over the pairs i < j of a set of at least 2 sequences (diversity)."""
    n = len(samples)
    if n < 2:
        raise ConfigError("mean pairwise distance needs at least 2 sequences")
    d = distance(samples, samples).double()
    return float(d.triu(1).sum() / (n * (n - 1) / 2))
