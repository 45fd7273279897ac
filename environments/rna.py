"""RNA binding (FLEXS ``RNABinding``, as used by OC-GFN, LS-GFN, Chunk-GFN):
RNA sequences of fixed length L over "ACGU", built left to right (an append-only
``Sequences`` environment), scored by their hybridisation with target RNAs.

With ViennaRNA (the ``RNA`` module of the ``viennarna`` package; extra ``bio``),
for a target t (the 100-nt RNA1-RNA4 of FLEXS, vendored in ``data/rna_binding``):
    E(x, t)    = RNA.duplexfold(t, x).energy            (kcal/mol, negative)
    norm(t, L) = RNA.duplexfold(revcomp(t), t).energy * L / len(t)
    f(x)       = mean over the targets of E(x, t) / norm(t, L)
(revcomp maps A<->U, C<->G and reverses). f is about 0.3 for a random 14-mer and
0.9-0.97 for the best known. Problems: ``targets="RNA1"`` (one target), "RNA1,RNA2"
(two: the mean), and ``conserved=True`` (FLEXS ``C20_L100``: f = 0 unless
``x[21:41] == GCCCGGCCCAUGUGAGCAUG``; needs L >= 41). Lengths 14 (default), 50, 100.

Training reward: R(x) = max(f(x), 1e-3)^beta (beta = 8 by default, as LS-GFN
without its rescaling to a best of 10: a constant factor changes nothing but log Z).
Modes: sequences with f >= ``mode_threshold`` (0.9, as Chunk-GFN).
Prefix energy (forward-looking objectives): a prefix s of length l >= 1 has
E(s) = -beta * log max(f_l(s), 1e-3), f_l with the normaliser norm(t, l); the empty
sequence has E = 0. Every prefix so scored costs one fold per target.

Folding is batched and cached: each distinct sequence is folded once per
environment (``calls`` counts the folds, the reward-call budget), the missing ones
in a process pool of ``workers`` processes when a batch has at least 32 of them
(0: always in this process).
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ProcessPoolExecutor
from importlib import resources

import torch

from gflownet.environments.base import checked_int
from gflownet.environments.sequences import Sequences
from gflownet.errors import ConfigError

ALPHABET = "ACGU"
CONSERVED = (21, "GCCCGGCCCAUGUGAGCAUG")
F_FLOOR = 1e-3
_POOL_MIN = 32


def require_vienna():
    """The ``RNA`` module, or a ConfigError saying which extra installs it."""
    try:
        import RNA
    except ImportError:
        raise ConfigError(
            "the RNA binding task needs ViennaRNA (the 'RNA' module): "
            "pip install 'gflownet[bio]' (or pip install viennarna)"
        ) from None
    return RNA


def load_targets() -> dict[str, str]:
    with resources.files("gflownet.environments").joinpath("data/rna_binding/targets.json").open() as f:
        return json.load(f)["targets"]


def revcomp(seq: str) -> str:
    return seq[::-1].translate(str.maketrans("ACGU", "UGCA"))


def duplex_energies(pairs: list[tuple[str, str]]) -> list[float]:
    """``RNA.duplexfold(a, b).energy`` of each pair (runs in the worker processes)."""
    RNA = require_vienna()
    return [RNA.duplexfold(a, b).energy for a, b in pairs]


class BindingScorer:
    """f of sequences (strings) against fixed targets, cached, folded in a pool."""

    def __init__(self, targets: list[str], conserved: bool = False, workers: int = 2):
        require_vienna()
        self.targets, self.conserved, self.workers = targets, conserved, workers
        self._cache: dict[str, float] = {}
        self._norm_per_nt = [e / len(t) for e, t in zip(duplex_energies([(revcomp(t), t) for t in targets]), targets)]
        self._pool: ProcessPoolExecutor | None = None
        self.calls = 0  # sequences folded (each against every target)

    def _fold(self, sequences: list[str]) -> list[list[float]]:
        pairs = [(t, s) for s in sequences for t in self.targets]
        if self.workers > 0 and len(sequences) >= _POOL_MIN:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.workers)
            chunk = math.ceil(len(pairs) / self.workers)
            parts = self._pool.map(duplex_energies, [pairs[i : i + chunk] for i in range(0, len(pairs), chunk)])
            energies = [e for part in parts for e in part]
        else:
            energies = duplex_energies(pairs)
        n = len(self.targets)
        return [energies[i * n : (i + 1) * n] for i in range(len(sequences))]

    def __call__(self, sequences: list[str]) -> list[float]:
        missing = list(dict.fromkeys(s for s in sequences if s not in self._cache))
        for s, energies in zip(missing, self._fold(missing)):
            f = sum(e / (norm * len(s)) for e, norm in zip(energies, self._norm_per_nt)) / len(energies)
            if self.conserved and s[CONSERVED[0] : CONSERVED[0] + len(CONSERVED[1])] != CONSERVED[1]:
                f = 0.0
            self._cache[s] = f
        self.calls += len(missing)
        return [self._cache[s] for s in sequences]

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class RNABinding(Sequences):
    """RNA of ``length`` nt; R = max(f, 1e-3)^beta, f the normalised duplex energy with the targets."""

    name = "rna"

    def __init__(
        self,
        length: int = 14,
        targets: str | list = "RNA1",
        conserved: bool = False,
        beta: float = 8.0,
        mode_threshold: float = 0.9,
        workers: int = 2,
        device: str | torch.device = "cpu",
    ):
        known = load_targets()
        names = targets.split(",") if isinstance(targets, str) else list(targets)
        unknown = [t for t in names if t not in known]
        if not names or unknown:
            raise ConfigError(
                f"rna: unknown target {unknown[0] if unknown else targets!r} "
                f"(known: {', '.join(known)}; two targets as 'RNA1,RNA2')"
            )
        checked_int("rna", "length", length)
        if conserved and length < CONSERVED[0] + len(CONSERVED[1]):
            raise ConfigError(f"rna: the conserved region needs length >= 41, got {length}")
        checked_int("rna", "workers", workers, 0)
        super().__init__(alphabet=ALPHABET, max_length=length, beta=beta, device=device)
        self.target_names, self.conserved, self.mode_threshold = names, bool(conserved), float(mode_threshold)
        self.scorer_f = BindingScorer([known[t] for t in names], self.conserved, workers)

    @property
    def calls(self) -> int:
        """Sequences folded so far (each distinct one once)."""
        return self.scorer_f.calls

    def fitness(self, states: torch.Tensor) -> torch.Tensor:
        """f of states (any length >= 1, normalised at their own length), float64 ``[B]``."""
        return torch.tensor(self.scorer_f(self.decode(states)), dtype=torch.float64, device=states.device)

    def terminal_log_reward(self, states):
        return (self.beta * self.fitness(states).clamp_min(F_FLOOR).log()).float()

    def log_energy(self, states):
        n = self.lengths(states)
        energy = torch.zeros(len(states), device=states.device)
        some = n > 0
        if bool(some.any()):
            energy[some] = -self.terminal_log_reward(states[some])
        return energy

    @property
    def has_energy(self):
        return True

    def is_mode(self, states):
        return self.fitness(states) >= self.mode_threshold

    def close(self):
        """Stop the folding processes."""
        self.scorer_f.close()
