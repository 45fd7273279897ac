"""Sequences over any alphabet: append-only (a tree) and prepend-or-append (a DAG).

A state is the partial sequence ``[max_length]`` (long), left-aligned: tokens
``0..V-1`` in positions ``0..l-1``, then the pad value ``V`` (``env.pad``).

- ``Sequences`` (append-only, autoregressive): forward action v < V appends
  token v; action V exits. One backward action: remove the last token. Every
  state has one parent, so P_B = 1 and the space is a tree.
- ``PrependAppendSequences``: forward actions v < V append v, V + v prepend v,
  2V exits. Backward action 0 removes the last token, 1 the first. A state of
  length >= 2 has two parent edges (they lead to the same parent when the first
  and last tokens are equal, e.g. "AA"), so P_B matters. To keep one edge into a
  length-1 state, prepending is illegal on the empty sequence and "remove the
  first token" is illegal at length 1.

Lengths: the exit is legal once ``min_length`` tokens are placed and is the only
action at ``max_length`` (fixed length: ``min_length = max_length``, the default).

Reward: a pluggable scorer ``reward(tokens [B, max_length] long) -> R [B] >= 0``
(a callable or "module:function"), called only on states that may exit. The
default is a seeded random bigram energy, defined on any prefix:
    log R(x) = beta * (sum_i u[x_i] + sum_i b[x_i, x_{i+1}]),
u ~ N(0, 1)^V and b ~ N(0, 1)^{V x V} drawn in that order by a torch.Generator
seeded with ``seed``. Its negative is the energy of partial sequences (FL).
States that may not exit get ``LOG_REWARD_FLOOR``.

States are indexed by length, then lexicographically (first token most
significant): all states are enumerated while there are at most 2^22.
"""

from __future__ import annotations

from typing import Callable

import torch

from gflownet.config import load_callable
from gflownet.environments.base import LOG_REWARD_FLOOR, Environment, checked_int, checked_log
from gflownet.errors import ConfigError

_MAX_ENUMERABLE = 1 << 22
_MAX_INDEX = (1 << 63) - 1


def _symbols(who: str, alphabet) -> list[str]:
    """The alphabet's symbols: the characters of a string, a list of distinct strings,
    or "0".."V-1" for a size V."""
    if isinstance(alphabet, int) and not isinstance(alphabet, bool):
        return [str(v) for v in range(checked_int(who, "alphabet", alphabet, 2))]
    symbols = list(alphabet) if isinstance(alphabet, (str, list, tuple)) else []
    if len(symbols) < 2 or len(set(symbols)) != len(symbols) or not all(isinstance(s, str) and s for s in symbols):
        raise ConfigError(
            f"{who}: alphabet must be a string of >= 2 distinct characters, a list of >= 2 "
            f"distinct strings or a size >= 2, got {alphabet!r}"
        )
    return symbols


class Sequences(Environment):
    """Append-only sequences of ``min_length..max_length`` tokens of ``alphabet``."""

    name = "sequence"

    def __init__(
        self,
        alphabet: str | int = "ACGT",
        max_length: int = 6,
        min_length: int | None = None,
        reward: str | Callable | None = None,
        beta: float = 0.5,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ):
        who = self.name
        self.symbols = _symbols(who, alphabet)
        self.max_length = checked_int(who, "max_length", max_length)
        self.min_length = max_length if min_length is None else checked_int(who, "min_length", min_length)
        if self.min_length > self.max_length:
            raise ConfigError(f"{who}: min_length ({min_length}) must be <= max_length ({max_length})")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta >= 0:
            raise ConfigError(f"{who}: beta must be a number >= 0, got {beta!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"{who}: seed must be an integer, got {seed!r}")
        self.beta, self.seed = float(beta), seed
        self.device = torch.device(device)
        self.scorer = load_callable(reward) if isinstance(reward, str) else reward
        V, L = len(self.symbols), self.max_length
        self.n_tokens, self.pad = V, V
        self.state_shape = (L,)
        self.token_features = V + 1  # one-hot width of one position (pad included)
        self.feature_dim = L * (V + 1)
        self.max_steps = L + 1
        self._set_actions()
        sizes = [V**length for length in range(L + 1)]
        total = sum(sizes)
        self.n_states = total if total <= _MAX_ENUMERABLE else None
        self._indexable = total - 1 <= _MAX_INDEX
        if self._indexable:
            self._offsets = torch.tensor([sum(sizes[:length]) for length in range(L + 1)], device=self.device)
            self._powers = torch.tensor(sizes[:L], device=self.device)
        self._positions = torch.arange(L, device=self.device)
        self._one_hot = torch.eye(V + 1, device=self.device)
        if self.has_energy:
            self._bigram_tables(seed)

    def _bigram_tables(self, seed: int):
        V = self.n_tokens
        g = torch.Generator().manual_seed(seed)
        unigram = torch.randn(V, generator=g, dtype=torch.float64)
        bigram = torch.randn(V, V, generator=g, dtype=torch.float64)
        # padded with zeros for the pad token, so that the energy needs no masking
        self._unigram = torch.cat([unigram, torch.zeros(1, dtype=torch.float64)]).to(self.device)
        self._bigram = torch.zeros(V + 1, V + 1, dtype=torch.float64)
        self._bigram[:V, :V] = bigram
        self._bigram = self._bigram.to(self.device)

    def _set_actions(self):
        self.n_actions = self.n_tokens + 1
        self.n_backward_actions = 1

    # -- sequences -----------------------------------------------------------
    def lengths(self, states: torch.Tensor) -> torch.Tensor:
        """Number of tokens of each state, long ``[B]``."""
        return (states != self.pad).sum(-1)

    def _width(self) -> int | None:
        """The common number of characters of the symbols (None when they differ)."""
        widths = {len(s) for s in self.symbols}
        return widths.pop() if len(widths) == 1 else None

    def encode(self, sequences: list) -> torch.Tensor:
        """Sequences -> states ``[B, max_length]``. A sequence is a list of symbols, or a
        string (cut into symbols when they all have the same width). A symbol outside
        the alphabet or a length outside ``min_length..max_length`` is refused."""
        lookup = {s: v for v, s in enumerate(self.symbols)}
        width = self._width()
        shown = "".join(self.symbols) if width == 1 and len(self.symbols) <= 30 else f"of {len(self.symbols)} symbols"
        rows = []
        for seq in sequences:
            items = [seq[i : i + width] for i in range(0, len(seq), width)] if isinstance(seq, str) and width else seq
            if not isinstance(items, (list, tuple)) or not self.min_length <= len(items) <= self.max_length:
                lengths = (
                    f"{self.max_length}"
                    if self.min_length == self.max_length
                    else f"{self.min_length}..{self.max_length}"
                )
                raise ConfigError(f"{self.name}: sequence {seq!r} must have {lengths} symbols of the alphabet {shown}")
            bad = [s for s in items if s not in lookup]
            if bad:
                raise ConfigError(f"{self.name}: sequence {seq!r} has symbol {bad[0]!r} outside the alphabet {shown}")
            rows.append([lookup[s] for s in items] + [self.pad] * (self.max_length - len(items)))
        return torch.tensor(rows, dtype=torch.long, device=self.device).view(-1, self.max_length)

    def decode(self, states: torch.Tensor) -> list[str]:
        """States -> strings: symbols joined (by spaces when their widths differ)."""
        sep = "" if self._width() else " "
        return [sep.join(self.symbols[v] for v in row if v != self.pad) for row in states.tolist()]

    # -- dynamics --------------------------------------------------------------
    def reset(self, batch: int) -> torch.Tensor:
        return torch.full((batch, self.max_length), self.pad, dtype=torch.long, device=self.device)

    def forward_mask(self, states):
        n = self.lengths(states)[:, None]
        grow = (n < self.max_length).expand(-1, self.n_actions - 1)
        return torch.cat([grow, n >= self.min_length], -1)

    def backward_mask(self, states):
        return self.lengths(states)[:, None] > 0

    def _put(self, states, where, values):
        """``states`` with ``values`` ``[B]`` written at position ``where`` ``[B]`` (-1: nowhere)."""
        return torch.where(self._positions == where[:, None], values[:, None], states)

    def step(self, states, actions):
        moving = actions < self.n_tokens
        where = torch.where(moving, self.lengths(states), -1)
        return self._put(states, where, actions)

    def backward_step(self, states, actions):
        return self._put(states, self.lengths(states) - 1, torch.full_like(actions, self.pad))

    def backward_action(self, states, actions):
        return torch.zeros_like(actions)

    def forward_action(self, states, actions):
        """Appending the last token of ``states`` undoes "remove the last token"."""
        last = (self.lengths(states) - 1).clamp_min(0)
        return states.gather(1, last[:, None]).squeeze(1)

    def featurize(self, states):
        """One-hot of each position (pad included): float ``[B, max_length * (V + 1)]``."""
        return self._one_hot[states].view(len(states), self.feature_dim)

    # -- reward ----------------------------------------------------------------
    def bigram_log_reward(self, states: torch.Tensor) -> torch.Tensor:
        """The default log R of any state (see the module docstring), float ``[B]``."""
        unigram = self._unigram[states].sum(-1)
        bigram = self._bigram[states[:, :-1], states[:, 1:]].sum(-1)
        return (self.beta * (unigram + bigram)).float()

    def terminal_log_reward(self, states: torch.Tensor) -> torch.Tensor:
        """log R ``[B]`` of states that may exit (subclasses define their task here)."""
        if self.scorer is None:
            return self.bigram_log_reward(states)
        return checked_log(self.scorer(states), states, f"{self.name} reward function")

    def check_states(self, states: torch.Tensor) -> None:
        """Refuse, naming the first culprit, a batch that is not ``[B, max_length]`` of
        tokens ``0..V-1`` followed by pads ``V``."""
        if states.dim() != 2 or states.shape[1] != self.max_length:
            raise ConfigError(f"{self.name}: states must be [B, {self.max_length}], got {tuple(states.shape)}")
        outside = (states < 0) | (states > self.pad)
        gap = (states[:, 1:] != self.pad) & (states[:, :-1] == self.pad)
        bad = outside.any(-1) | gap.any(-1)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            why = (
                f"a token outside 0..{self.pad} (the alphabet has {self.n_tokens} symbols, {self.pad} pads)"
                if bool(outside[i].any())
                else "a token after a pad (sequences are left-aligned)"
            )
            raise ConfigError(f"{self.name}: state {states[i].tolist()} has {why}")

    def log_reward(self, states):
        self.check_states(states)
        can_exit = self.lengths(states) >= self.min_length
        if bool(can_exit.all()):
            return self.terminal_log_reward(states)
        out = torch.full((len(states),), LOG_REWARD_FLOOR, device=states.device)
        out[can_exit] = self.terminal_log_reward(states[can_exit])
        return out

    def log_energy(self, states):
        """E(s) = -(default bigram log R)(s), for any state (forward-looking objectives)."""
        return -self.bigram_log_reward(states)

    @property
    def has_energy(self):
        return self.scorer is None and type(self).terminal_log_reward is Sequences.terminal_log_reward

    def log_partition(self):
        if not self.enumerable:
            return super().log_partition()
        states = self.all_states()
        log_r = self.log_reward(states).double()
        return float(log_r[self.lengths(states) >= self.min_length].logsumexp(0))

    # -- enumeration -------------------------------------------------------------
    @property
    def indexable(self):
        return self._indexable

    def all_states(self):
        if not self.enumerable:
            return super().all_states()
        V, L = self.n_tokens, self.max_length
        blocks = []
        for length in range(L + 1):
            index = torch.arange(V**length, device=self.device)[:, None]
            digits = (index // self._powers[:length].flip(0)) % V
            blocks.append(torch.cat([digits, torch.full((len(index), L - length), self.pad, device=self.device)], 1))
        return torch.cat(blocks)

    def state_index(self, states):
        if not self.indexable:
            return super().state_index(states)
        n = self.lengths(states)
        exponents = (n[:, None] - 1 - self._positions).clamp_min(0)
        digits = torch.where(states == self.pad, 0, states)
        return self._offsets[n] + (digits * self._powers[exponents]).sum(-1)

    def object_columns(self):
        return ["sequence"]

    def object_rows(self, states):
        return [[s] for s in self.decode(states)]

    # -- outcomes: the sequences that may exit, coded as their features ---------
    @property
    def outcome_dim(self):
        return self.feature_dim

    def sample_outcomes(self, n, generator=None):
        """Uniform over the sequences of ``min_length..max_length`` tokens (a length is drawn with
        probability proportional to its number of sequences, then its tokens uniformly)."""
        V, L = self.n_tokens, self.max_length
        lengths = torch.arange(self.min_length, L + 1, device=self.device)
        weights = (lengths.double() - L) * torch.log(torch.tensor(float(V)))  # V^(l - L): no overflow
        length = lengths[torch.multinomial(weights.exp(), n, replacement=True, generator=generator)]
        tokens = torch.randint(0, V, (n, L), device=self.device, generator=generator)
        return torch.where(self._positions < length[:, None], tokens, self.pad)

    def outcome_reachable(self, states, outcomes):
        """Appending only: y can follow s when s is a prefix of y."""
        return ((states == outcomes) | (states == self.pad)).all(-1)


class PrependAppendSequences(Sequences):
    """Sequences built by prepending or appending tokens: a DAG, P_B matters."""

    name = "prepend_append"

    def outcome_reachable(self, states, outcomes):
        return None  # s must be a substring of y, at a place the moves can still reach: not tabulated

    def _set_actions(self):
        self.n_actions = 2 * self.n_tokens + 1
        self.n_backward_actions = 2

    def forward_mask(self, states):
        n = self.lengths(states)[:, None]
        append = (n < self.max_length).expand(-1, self.n_tokens)
        prepend = ((n > 0) & (n < self.max_length)).expand(-1, self.n_tokens)
        return torch.cat([append, prepend, n >= self.min_length], -1)

    def backward_mask(self, states):
        n = self.lengths(states)[:, None]
        return torch.cat([n > 0, n > 1], -1)

    def step(self, states, actions):
        V = self.n_tokens
        appended = super().step(states, torch.where(actions < V, actions, 2 * V))
        shifted = torch.cat([(actions - V).clamp(0, V - 1)[:, None], states[:, :-1]], 1)
        return torch.where(((actions >= V) & (actions < 2 * V))[:, None], shifted, appended)

    def backward_step(self, states, actions):
        without_last = super().backward_step(states, actions)
        without_first = torch.cat([states[:, 1:], torch.full_like(states[:, :1], self.pad)], 1)
        return torch.where((actions == 1)[:, None], without_first, without_last)

    def backward_action(self, states, actions):
        return (actions >= self.n_tokens).long()

    def forward_action(self, states, actions):
        """Append the last token (undoes action 0) or prepend the first (undoes action 1)."""
        return torch.where(actions == 1, self.n_tokens + states[:, 0], super().forward_action(states, actions))
