"""Molecule rewards in log space, batched, cached by SMILES.

A reward is written as a sum of products, e.g. ``"0.5*qed+0.5*sa"``,
``"seh*lipinski"``, ``"qed*logp[1,3]*mw[200,500]*pains"``: each term multiplies its
factors (numbers are weights), the terms add up to the score s(x) >= 0, and
log R(x) = beta * log s(x) (``beta``: the reward exponent, or temperature).
s = 0 maps to ``LOG_REWARD_FLOOR``.

Factors (``PROPERTIES`` gives the raw values that screening reports):
  qed            RDKit QED, in [0, 1]
  sa             (10 - SA score) / 9, in [0, 1] (RDKit Contrib's sascorer)
  seh            sEH binding proxy raw / 8, floored at 0.1 / 8 as in the original task
  logp[lo,hi]    1 inside the Crippen logP window, exp(-d^2 / 2) at distance d outside
  mw[lo,hi]      the same for the molecular weight (window in Da, d in units of 100 Da)
  tanimoto       greatest Tanimoto similarity (Morgan r=2, 2048 bits) to ``targets``
  lipinski       0.5 ** (number of violated Lipinski rules)
  pains          0.1 if a PAINS filter matches, else 1
  python:mod:fn  a user callable: list of SMILES -> list of scores >= 0
  cmd:COMMAND    a shell command reading SMILES (one a line) on stdin and printing
                 one score a line

A factor that raises, or returns NaN / a negative / a non-number, for a molecule
scores that molecule at the floor: a warning names it and ``failures`` counts it.
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import torch

from gflownet.environments.base import LOG_REWARD_FLOOR
from gflownet.errors import ConfigError, RewardError

_WINDOW = re.compile(r"^(logp|mw)\[([-+0-9.eE]+),([-+0-9.eE]+)\]$")


def _rdkit():
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    return Chem


@lru_cache(maxsize=1)
def _sascorer():
    import importlib.util
    import os

    from rdkit.Chem import RDConfig

    path = os.path.join(RDConfig.RDContribDir, "SA_Score", "sascorer.py")
    spec = importlib.util.spec_from_file_location("sascorer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=1)
def _pains():
    from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams

    params = FilterCatalogParams()
    params.AddCatalog(FilterCatalogParams.FilterCatalogs.PAINS)
    return FilterCatalog(params)


@lru_cache(maxsize=1)
def _seh():
    from gflownet.environments.seh import SEHProxy

    return SEHProxy.pretrained()


def _window(value: float, lo: float, hi: float, scale: float = 1.0) -> float:
    d = max(lo - value, value - hi, 0.0) / scale
    return math.exp(-0.5 * d * d)


def fingerprint(mol):
    """Morgan fingerprint, radius 2, 2048 bits."""
    return _morgan().GetFingerprint(mol)


@lru_cache(maxsize=1)
def _morgan():
    from rdkit.Chem import rdFingerprintGenerator

    return rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)


def lipinski_violations(mol) -> int:
    from rdkit.Chem import Crippen, Descriptors, Lipinski

    return (
        int(Descriptors.MolWt(mol) > 500)
        + int(Crippen.MolLogP(mol) > 5)
        + int(Lipinski.NumHDonors(mol) > 5)
        + int(Lipinski.NumHAcceptors(mol) > 10)
    )


def sa_score(mol) -> float:
    return float(_sascorer().calculateScore(mol))


def _qed(mol):
    from rdkit.Chem import QED

    return QED.qed(mol)


def _logp(mol):
    from rdkit.Chem import Crippen

    return Crippen.MolLogP(mol)


def _mw(mol):
    from rdkit.Chem import Descriptors

    return Descriptors.MolWt(mol)


#: raw properties of a molecule, by name (screening writes them all)
PROPERTIES: dict[str, Callable] = {
    "qed": _qed,
    "sa": sa_score,
    "logp": _logp,
    "mw": _mw,
    "lipinski_violations": lipinski_violations,
    "pains": lambda mol: int(_pains().HasMatch(mol)),
}


def read_targets(path: str | Path) -> list:
    """Fingerprints of the SMILES in ``path`` (one a line); an invalid one raises naming its line."""
    Chem = _rdkit()
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read targets file {path}: {exc.strerror}") from None
    fps = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            mol = Chem.MolFromSmiles(line.split()[0])
            if mol is None:
                raise ConfigError(f"{path}, line {number}: invalid SMILES {line.split()[0]!r}")
            fps.append(fingerprint(mol))
    if not fps:
        raise ConfigError(f"targets file {path} holds no SMILES")
    return fps


def _factor(name: str, targets: str) -> tuple[Callable[[list], list], bool]:
    """A batched factor ``mols -> scores`` and whether it reads the stem flags."""
    from rdkit import DataStructs

    simple = {
        "qed": _qed,
        "sa": lambda m: (10.0 - sa_score(m)) / 9.0,
        "lipinski": lambda m: 0.5 ** lipinski_violations(m),
        "pains": lambda m: 0.1 if _pains().HasMatch(m) else 1.0,
    }
    if name in simple:
        fn = simple[name]
        return (lambda mols: [fn(m) for m in mols]), False
    window = _WINDOW.match(name)
    if window:
        kind, lo, hi = window.group(1), float(window.group(2)), float(window.group(3))
        prop, scale = (_logp, 1.0) if kind == "logp" else (_mw, 100.0)
        return (lambda mols: [_window(prop(m), lo, hi, scale) for m in mols]), False
    if name == "seh":
        return (lambda mols: [max(r, 0.1) / 8.0 for r in _seh().score(mols)]), True
    if name == "tanimoto":
        if not targets:
            raise ConfigError("the tanimoto reward needs a targets file (--set targets=FILE)")
        fps = read_targets(targets)
        return (lambda mols: [max(DataStructs.BulkTanimotoSimilarity(fingerprint(m), fps)) for m in mols]), False
    if name.startswith("python:"):
        from gflownet.config import load_callable

        fn = load_callable(name)
        Chem = _rdkit()
        return (lambda mols: list(fn([Chem.MolToSmiles(m) for m in mols]))), False
    if name.startswith("cmd:"):
        return _command(name[4:]), False
    raise ConfigError(
        f"unknown reward factor {name!r} (known: qed, sa, seh, logp[lo,hi], mw[lo,hi], tanimoto, "
        "lipinski, pains, python:module:function, cmd:COMMAND)"
    )


def _command(command: str) -> Callable[[list], list]:
    Chem = _rdkit()
    if not shlex.split(command):
        raise ConfigError("cmd: reward needs a command")

    def run(mols):
        text = "".join(Chem.MolToSmiles(m) + "\n" for m in mols)
        done = subprocess.run(command, shell=True, input=text, capture_output=True, text=True)
        if done.returncode != 0:
            raise RewardError(f"reward command {command!r} exited with {done.returncode}: {done.stderr.strip()[:200]}")
        values = done.stdout.split()
        if len(values) != len(mols):
            raise RewardError(f"reward command {command!r} printed {len(values)} scores for {len(mols)} molecules")
        return [float(v) for v in values]

    return run


class MoleculeReward:
    """log R = beta * log(sum of products of factors), for a list of RDKit molecules."""

    def __init__(self, spec: str, beta: float = 1.0, targets: str = "", floor_failures: bool = True):
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
            raise ConfigError(f"reward beta must be a number > 0, got {beta!r}")
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigError(f"a reward is a non-empty string such as 'qed' or '0.5*qed+0.5*sa', got {spec!r}")
        self.spec, self.beta = spec, float(beta)
        self.terms = []  # [(weight, [factor fns])]
        self.uses_stems = False
        for term in _split(spec, "+"):
            weight, factors = 1.0, []
            for part in _split(term, "*"):
                try:
                    weight *= float(part)
                    continue
                except ValueError:
                    pass
                fn, stems = _factor(part, targets)
                self.uses_stems |= stems
                factors.append(fn)
            self.terms.append((weight, factors))
        self.cache: dict[str, float] = {}
        self.failures = 0
        # False: a failed molecule scores NaN, silently (a worker process: the parent warns and counts)
        self.floor_failures = floor_failures

    def key(self, mol) -> str:
        """Canonical SMILES; with the open stems marked (atom maps) where a factor reads them."""
        Chem = _rdkit()
        if not self.uses_stems:
            return Chem.MolToSmiles(mol)
        marked = Chem.Mol(mol)
        for atom in marked.GetAtoms():
            atom.SetAtomMapNum(1 if atom.HasProp("stem") else 0)
        return Chem.MolToSmiles(marked)

    def scores(self, mols: Sequence) -> list[float]:
        """s(x) >= 0 per molecule (None, the empty molecule, scores 0)."""
        keys = [None if m is None else self.key(m) for m in mols]
        todo = {}
        for k, m in zip(keys, mols):
            if k is not None and k not in self.cache:
                todo.setdefault(k, m)
        if todo:
            new_keys, new_mols = list(todo), list(todo.values())
            total = [0.0] * len(new_mols)
            for weight, factors in self.terms:
                product = [weight] * len(new_mols)
                for fn in factors:
                    product = [p * v for p, v in zip(product, self._checked(fn, new_mols, new_keys))]
                total = [t + p for t, p in zip(total, product)]
            self.cache.update(zip(new_keys, total))
        return [0.0 if k is None else self.cache[k] for k in keys]

    def _checked(self, fn, mols, keys) -> list[float]:
        """``fn(mols)``; a molecule whose value cannot be had scores 0 (the floor), with a warning."""
        try:
            values = list(fn(mols))
            if len(values) != len(mols):
                raise RewardError(f"returned {len(values)} values for {len(mols)} molecules")
        except Exception:  # one molecule's failure must not lose the run: retry one by one
            values = [self._one(fn, m) for m in mols]
        out = []
        for k, v in zip(keys, values):
            try:
                v = float(v)
            except (TypeError, ValueError):
                v = math.nan
            if not (math.isfinite(v) and v >= 0):
                if not self.floor_failures:
                    out.append(math.nan)
                    continue
                self.failures += 1
                warnings.warn(
                    f"reward {self.spec!r} gave {v} for {k}: scored at the floor ({self.failures} molecules so far)",
                    RuntimeWarning,
                    stacklevel=3,
                )
                v = 0.0
            out.append(v)
        return out

    @staticmethod
    def _one(fn, mol):
        try:
            return fn([mol])[0]
        except Exception:  # noqa: BLE001 - reported as a floor score with a warning
            return math.nan

    def log_reward(self, mols: Sequence, beta: torch.Tensor | float | None = None) -> torch.Tensor:
        """beta * log s(x) ``[B]`` (``beta``: a number or ``[B]``; default the reward's own),
        floored at ``LOG_REWARD_FLOOR``."""
        return self.log_reward_of_scores(torch.tensor(self.scores(mols), dtype=torch.float64), beta)

    def log_reward_of_scores(self, s: torch.Tensor, beta: torch.Tensor | float | None = None) -> torch.Tensor:
        """beta * log s ``[B]`` from scores s float64 ``[B]`` (computed here or in worker processes)."""
        beta = self.beta if beta is None else beta
        log_s = torch.where(s > 0, s.clamp_min(1e-300).log(), LOG_REWARD_FLOOR).float()
        return (torch.as_tensor(beta, dtype=torch.float32) * log_s).clamp_min(LOG_REWARD_FLOOR)


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside brackets (``mw[200,500]`` holds a comma, ``cmd:`` may hold anything)."""
    if text.strip().startswith(("cmd:", "python:")):  # a user reward is the whole reward
        return [text.strip()]
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == sep and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    if any(not p for p in parts):
        raise ConfigError(f"reward {text!r} has an empty term or factor")
    return parts


def make_reward(spec: str, beta: float = 1.0, targets: str = "") -> MoleculeReward:
    return MoleculeReward(spec, beta, targets)


class TemperatureConditioning:
    """Temperature-conditioned rewards for the molecule environments: with ``beta_max``
    > ``beta``, training draws beta ~ U[beta, beta_max] per trajectory, the policy sees
    cond = [beta / beta_max] and learns R_beta(x) = s(x)^beta for every beta at once;
    sampling picks beta (``cond_for``). ``beta_max = 0``: unconditional, R = s^beta."""

    def _init_conditioning(self, beta_max: float):
        if (
            isinstance(beta_max, bool)
            or not isinstance(beta_max, (int, float))
            or beta_max < 0
            or 0 < beta_max <= self.reward.beta
        ):
            raise ConfigError(f"beta_max must be 0 (no conditioning) or > beta = {self.reward.beta}, got {beta_max!r}")
        self.beta_max = float(beta_max)
        self.cond_dim = 1 if beta_max else 0

    def sample_cond(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[B, 1]``: beta / beta_max with beta ~ U[beta, beta_max]."""
        u = torch.rand(batch, 1, device=self.device, generator=generator)
        return (self.reward.beta + u * (self.beta_max - self.reward.beta)) / self.beta_max

    def cond_for(self, beta: float | None, batch: int) -> torch.Tensor:
        """``[B, 1]`` conditioning for sampling at ``beta`` (default: beta_max)."""
        beta = self.beta_max if beta is None else float(beta)
        if not self.reward.beta <= beta <= self.beta_max:
            raise ConfigError(f"beta must be in the trained range [{self.reward.beta}, {self.beta_max}], got {beta}")
        return torch.full((batch, 1), beta / self.beta_max, device=self.device)
