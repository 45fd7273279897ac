"""Ehrlich functions (Stanton et al. 2024, arXiv 2407.00236): a closed-form
biological-sequence benchmark with a known optimum of 1.

Structure, drawn from ``torch.Generator().manual_seed(seed)`` in the order of
pytorch-holo 0.0.5 (``holo.test_functions.closed_form.Ehrlich``, whose ``dim``
is ``length`` here), so that a seed gives holo's function
(tests/test_ehrlich.py compares with a fixture written by holo, tolerance 0):
1. a transition matrix over the ``num_states`` symbols: ``randn`` logits at
   softmax temperature 0.5, kept on a banded mask (bandwidth
   ``int(0.4 * num_states)``, wrapping around) whose rows are shuffled by a
   ``randperm``, plus the diagonal, rows renormalised; banned transitions
   (entries 0) make a sequence infeasible;
2. ``num_motifs`` motifs of ``motif_length``: one DMP sample of
   ``num_motifs * motif_length`` steps from the stationary distribution, cut in
   chunks (so a feasible optimum exists);
3. per motif, ``motif_length - 1`` spacings ``1 + floor(s * w)`` with
   s = (length - num_motifs * motif_length) // num_motifs and w a ``rand``
   draw normalised to sum 1.

Value: f(x) = prod over motifs of r(q(x)), where q is the best, over offsets,
quantised fraction of the motif's elements present at their spacings
(``quantization`` levels), and r(q) = (1 + epistasis * q (q - 1)) q; infeasible
sequences get -inf (holo's convention) in ``EhrlichFunction``.

Environment: an append-only ``Sequences`` of fixed length whose forward mask
bans the transitions the matrix forbids, so every sequence built is feasible.
Training reward: R(x) = max(f(x), floor)^beta (defaults 1e-3 and 3); a state
is a mode when f(x) = 1, the optimum.
"""

from __future__ import annotations

import math

import torch

from gflownet.environments.base import LOG_REWARD_FLOOR, checked_int
from gflownet.environments.sequences import Sequences
from gflownet.errors import ConfigError


def banded_mask(n: int, bandwidth: int) -> torch.Tensor:
    """bool ``[n, n]``: True where the circular distance between row and column is <= bandwidth."""
    i = torch.arange(n)
    gap = (i[None] - i[:, None]) % n
    return (gap <= bandwidth) | (n - gap <= bandwidth)


def sample_transition_matrix(num_states: int, generator: torch.Generator) -> torch.Tensor:
    """The sparse ergodic transition matrix, float32 ``[S, S]`` (module docstring, step 1)."""
    dense = (torch.randn(num_states, num_states, generator=generator) / 0.5).softmax(dim=-1)
    mask = banded_mask(num_states, int(num_states * 0.4))[torch.randperm(num_states, generator=generator)]
    mask = mask | torch.eye(num_states, dtype=torch.bool)
    matrix = torch.where(mask, dense, torch.zeros_like(dense))
    matrix = matrix / matrix.sum(dim=-1, keepdim=True)
    if not (torch.linalg.matrix_power(matrix, (num_states - 1) ** 2 + 1) > 0).all():
        raise ConfigError("ehrlich: the sampled transition matrix is not ergodic (try another seed)")
    return matrix


def stationary_distribution(matrix: torch.Tensor) -> torch.Tensor:
    """pi with pi P = pi, sum pi = 1, float32 ``[S]``: least squares by QR, as holo solves it."""
    n = len(matrix)
    a = torch.cat([(torch.eye(n) - matrix).T, torch.ones(1, n)])
    b = torch.zeros(n + 1, 1)
    b[-1] = 1
    q, r = torch.linalg.qr(a)
    return torch.linalg.solve(r, q.T @ b).squeeze(-1)


def sample_chain(initial: torch.Tensor, matrix: torch.Tensor, steps: int, generator: torch.Generator) -> torch.Tensor:
    """One sample of the Markov chain, long ``[steps]`` (draws in holo's order)."""
    x = torch.zeros(steps, dtype=torch.int64)
    x[0] = torch.multinomial(initial, 1, replacement=True, generator=generator)[0]
    for t in range(1, steps):
        x[t] = torch.multinomial(matrix[x[t - 1]], 1, generator=generator)[0]
    return x


class EhrlichFunction:
    """The closed form: ``f(x [B, length] long) -> [B]`` float32, -inf where infeasible."""

    def __init__(
        self,
        num_states: int = 32,
        length: int = 32,
        num_motifs: int = 2,
        motif_length: int = 4,
        quantization: int | None = None,
        epistasis: float = 0.0,
        seed: int = 0,
    ):
        for name, value in (
            ("num_states", num_states),
            ("length", length),
            ("num_motifs", num_motifs),
            ("motif_length", motif_length),
        ):
            checked_int("ehrlich", name, value, 2 if name in ("num_states", "motif_length") else 1)
        quantization = motif_length if quantization is None else checked_int("ehrlich", "quantization", quantization)
        if quantization > motif_length:
            raise ConfigError(f"ehrlich: quantization ({quantization}) must be <= motif_length ({motif_length})")
        slack = length - num_motifs * motif_length
        if slack < 0:
            raise ConfigError(f"ehrlich: {num_motifs} motifs of length {motif_length} do not fit in length {length}")
        self.num_states, self.length, self.quantization, self.epistasis = num_states, length, quantization, epistasis
        g = torch.Generator().manual_seed(seed)
        self.transition_matrix = sample_transition_matrix(num_states, g)
        self.stationary = stationary_distribution(self.transition_matrix)
        chain = sample_chain(self.stationary, self.transition_matrix, num_motifs * motif_length, g)
        self.motifs = chain.view(num_motifs, motif_length)
        spacings = []
        for _ in range(num_motifs):
            weights = torch.rand(motif_length - 1, generator=g)
            weights /= weights.sum()
            spacings.append(1 + ((slack // num_motifs) * weights).floor().to(torch.int64))
        self.spacings = torch.stack(spacings)  # [c, k - 1]
        # offsets of each motif element from the motif's start, [c, k]
        self.offsets = torch.cat([torch.zeros(num_motifs, 1, dtype=torch.long), self.spacings.cumsum(-1)], 1)

    def feasible(self, x: torch.Tensor) -> torch.Tensor:
        """bool ``[B]``: no banned transition (every first symbol is allowed)."""
        matrix = self.transition_matrix.to(x.device)
        return (matrix[x[:, :-1], x[:, 1:]] > 0).all(-1)

    def motif_presence(self, x: torch.Tensor) -> torch.Tensor:
        """Best quantised fraction of each motif present, float32 ``[c, B]``."""
        k = self.motifs.shape[1]
        per_level = math.ceil(k / self.quantization)
        levels = k / per_level
        out = []
        for motif, offsets in zip(self.motifs.to(x.device), self.offsets.to(x.device)):
            starts = torch.arange(self.length - int(offsets[-1]), device=x.device)
            windows = x[:, starts[:, None] + offsets]  # [B, n_starts, k]
            count = windows.eq(motif).float().sum(-1)
            out.append((count // per_level / levels).max(-1).values)
        return torch.stack(out)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        q = self.motif_presence(x)
        value = ((self.epistasis * q * (q - 1.0) + 1.0) * q).prod(dim=0)
        return torch.where(self.feasible(x), value, -float("inf"))

    def optimal_solution(self) -> torch.Tensor:
        """A sequence with f = 1, long ``[length]``: the motifs at their spacings, each
        gap filled by repeating the element before it (repeats are always allowed)."""
        x = []
        for motif, offsets in zip(self.motifs.tolist(), self.offsets.tolist()):
            for j, element in enumerate(motif):
                x += [element] * ((offsets[j + 1] - offsets[j]) if j + 1 < len(motif) else 1)
        return torch.tensor(x + [x[-1]] * (self.length - len(x)))


class Ehrlich(Sequences):
    """Sequences of ``length`` symbols avoiding banned transitions; R = max(f, floor)^beta."""

    name = "ehrlich"

    def __init__(
        self,
        num_states: int = 32,
        length: int = 32,
        num_motifs: int = 2,
        motif_length: int = 4,
        quantization: int | None = 4,
        epistasis: float = 0.0,
        beta: float = 3.0,
        floor: float = 1e-3,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ):
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 < floor <= 1:
            raise ConfigError(f"ehrlich: floor must be a number in (0, 1], got {floor!r}")
        self.function = EhrlichFunction(num_states, length, num_motifs, motif_length, quantization, epistasis, seed)
        self.floor = float(floor)
        super().__init__(alphabet=num_states, max_length=length, beta=beta, seed=seed, device=device)
        self._allowed = (self.function.transition_matrix > 0).to(self.device)  # [S, S]

    def forward_mask(self, states):
        mask = super().forward_mask(states)
        n = self.lengths(states)
        last = states.gather(1, (n - 1).clamp_min(0)[:, None]).squeeze(1).clamp_max(self.n_tokens - 1)
        allowed = self._allowed[last] | (n == 0)[:, None]
        return torch.cat([mask[:, :-1] & allowed, mask[:, -1:]], -1)

    def terminal_log_reward(self, states):
        f = self.function(states)
        log_r = self.beta * f.clamp_min(self.floor).log()
        return torch.where(torch.isfinite(f), log_r, LOG_REWARD_FLOOR)

    def is_mode(self, states):
        return self.function(states) >= 1.0
