"""Screening output for molecule runs: dedup, property filters, a diverse
high-reward subset, CSV / SDF export (atomic), and a summary.

    gflownet sample RUN --n 10000 --out cands.csv --sdf cands.sdf --unique \\
        --filter "qed>0.5,sa<4" --diverse-top 100 --max-similarity 0.4

Rows hold the canonical SMILES, InChIKey, reward, log_reward and every property of
``molrewards.PROPERTIES``. ``--diverse-top k`` is sphere exclusion in reward order:
take the best molecule, drop every one with Morgan Tanimoto > ``max_similarity`` to
a taken one, repeat until k are taken.
"""

from __future__ import annotations

import csv
import io
import math
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path

from gflownet.checkpoint import atomic_write
from gflownet.errors import ConfigError

_FILTER = re.compile(r"^\s*([A-Za-z_]+)\s*(<=|>=|<|>|==)\s*([-+0-9.eE]+)\s*$")
_OPS = {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge, "==": operator.eq}
#: similarity under which two high-reward molecules count as distinct modes
MODE_SIMILARITY = 0.7
#: the mean pairwise Tanimoto is taken over the first this many candidates
PAIRWISE_MAX = 2000


@dataclass
class Candidate:
    smiles: str
    mol: object
    log_reward: float
    properties: dict
    count: int = 1
    fp: object = field(default=None, repr=False)

    @property
    def reward(self) -> float:
        return math.exp(self.log_reward)


def parse_filters(text: str, names) -> list:
    """``"qed>0.5,sa<4"`` -> [(name, op, value)]; unknown names raise ConfigError."""
    out = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        m = _FILTER.match(part)
        if not m:
            raise ConfigError(f"cannot read filter {part!r}: write NAME<VALUE, NAME>=VALUE, ...")
        name, op, value = m.group(1), m.group(2), float(m.group(3))
        if name not in names:
            raise ConfigError(f"filter {part!r}: unknown property {name!r} (known: {', '.join(sorted(names))})")
        out.append((name, _OPS[op], value))
    return out


def candidates(mols, log_rewards, unique: bool = False) -> list[Candidate]:
    """One Candidate per molecule (None skipped); with ``unique`` one per canonical
    SMILES, ``count`` being how often it was sampled."""
    from rdkit import Chem

    from gflownet.environments.molrewards import PROPERTIES, fingerprint

    out, seen = [], {}
    for mol, log_r in zip(mols, log_rewards):
        if mol is None:
            continue
        smi = Chem.MolToSmiles(mol)
        if unique and smi in seen:
            seen[smi].count += 1
            continue
        clean = Chem.MolFromSmiles(smi)  # drops the environment's atom properties
        props = {name: float(fn(clean)) for name, fn in PROPERTIES.items()}
        cand = Candidate(smi, clean, float(log_r), props, fp=fingerprint(clean))
        seen[smi] = cand
        out.append(cand)
    return out


def apply_filters(cands: list[Candidate], filters) -> list[Candidate]:
    def value(c, name):
        return {"reward": c.reward, "log_reward": c.log_reward}.get(name, c.properties.get(name))

    return [c for c in cands if all(op(value(c, name), v) for name, op, v in filters)]


def diverse_top(cands: list[Candidate], k: int, max_similarity: float) -> list[Candidate]:
    """Sphere exclusion in decreasing reward: at most ``k`` molecules, pairwise Tanimoto <= ``max_similarity``."""
    from rdkit import DataStructs

    chosen = []
    for c in sorted(cands, key=lambda c: -c.log_reward):
        if len(chosen) == k:
            break
        if not chosen or max(DataStructs.BulkTanimotoSimilarity(c.fp, [d.fp for d in chosen])) <= max_similarity:
            chosen.append(c)
    return chosen


def summary(cands: list[Candidate], n_sampled: int, mode_threshold: float | None = None) -> dict:
    """Unique fraction, mean pairwise Tanimoto (first ``PAIRWISE_MAX``), Murcko scaffolds, modes (reward >=
    ``mode_threshold``, default the 90th percentile, Tanimoto < 0.7 to every other mode)."""
    from rdkit import DataStructs
    from rdkit.Chem.Scaffolds import MurckoScaffold

    if not cands:
        return {"sampled": n_sampled, "unique": 0}
    distinct = {c.smiles for c in cands}
    fps = [c.fp for c in cands[:PAIRWISE_MAX]]
    pairs = sum(sum(DataStructs.BulkTanimotoSimilarity(fps[i], fps[i + 1 :])) for i in range(len(fps) - 1))
    n_pairs = len(fps) * (len(fps) - 1) / 2
    rewards = sorted(c.reward for c in cands)
    threshold = rewards[int(0.9 * (len(rewards) - 1))] if mode_threshold is None else mode_threshold
    modes = diverse_top([c for c in cands if c.reward >= threshold], len(cands), MODE_SIMILARITY)
    return {
        "sampled": n_sampled,
        "unique": len(distinct),
        "unique_fraction": len(distinct) / n_sampled,
        "mean_pairwise_tanimoto": pairs / n_pairs if n_pairs else 0.0,
        "scaffolds": len({MurckoScaffold.MurckoScaffoldSmiles(mol=c.mol) for c in cands}),
        "mode_threshold": threshold,
        "modes": len(modes),
        "top_reward": rewards[-1],
        "mean_reward": sum(rewards) / len(rewards),
    }


def write_csv(path: str | Path, cands: list[Candidate]) -> Path:
    from rdkit import Chem

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    names = list(cands[0].properties) if cands else []
    writer.writerow(["smiles", "inchikey", "reward", "log_reward", *names, "count"])
    for c in cands:
        writer.writerow(
            [
                c.smiles,
                Chem.MolToInchiKey(c.mol),
                f"{c.reward:.6g}",
                f"{c.log_reward:.6g}",
                *(f"{c.properties[n]:.6g}" for n in names),
                c.count,
            ]
        )
    atomic_write(Path(path), lambda f: f.write(text.getvalue().encode()))
    return Path(path)


def write_sdf(path: str | Path, cands: list[Candidate]) -> Path:
    from rdkit import Chem

    text = io.StringIO()
    writer = Chem.SDWriter(text)
    for c in cands:
        mol = Chem.Mol(c.mol)
        mol.SetProp("_Name", c.smiles)
        mol.SetDoubleProp("reward", c.reward)
        for name, value in c.properties.items():
            mol.SetDoubleProp(name, value)
        writer.write(mol)
    writer.close()
    atomic_write(Path(path), lambda f: f.write(text.getvalue().encode()))
    return Path(path)


def screen(
    env,
    states,
    log_rewards,
    unique=False,
    filters="",
    top: int = 0,
    max_similarity: float = 0.4,
    mode_threshold: float | None = None,
):
    """Candidates of terminal ``states`` after dedup, filters and the diverse subset, and the
    summary of the samples (before the filters)."""
    from gflownet.environments.molrewards import PROPERTIES

    parsed = parse_filters(filters, set(PROPERTIES) | {"reward", "log_reward"})
    cands = candidates(env.to_mols(states), log_rewards.tolist(), unique)
    stats = summary(cands, len(states), mode_threshold)
    cands = apply_filters(cands, parsed)
    stats["passed_filters"] = len(cands)
    if top:
        cands = diverse_top(cands, top, max_similarity)
    return cands, stats


def screen_run(
    run,
    n: int,
    out,
    sdf=None,
    unique=False,
    filters="",
    top=0,
    max_similarity=0.4,
    mode_threshold=None,
    temperature=1.0,
    seed=0,
    beta=None,
) -> dict:
    """Sample ``n`` molecules from a trained ``Run``, screen them, write ``out`` (CSV)
    and ``sdf``; returns the summary (with the number of rows written). ``beta``: the reward
    exponent to sample at, for a temperature-conditioned run."""
    if not 0 <= max_similarity <= 1:
        raise ConfigError(f"--max-similarity must be in [0, 1], got {max_similarity}")
    if top < 0:
        raise ConfigError(f"--diverse-top must be >= 0, got {top}")
    from gflownet.environments.molrewards import PROPERTIES

    parse_filters(filters, set(PROPERTIES) | {"reward", "log_reward"})  # bad filters fail before sampling
    states, log_rewards = run.sample(n, temperature, seed, beta=beta)
    cands, stats = screen(
        run.env, states.cpu(), log_rewards.cpu(), unique, filters, top, max_similarity, mode_threshold
    )
    write_csv(out, cands)
    if sdf:
        write_sdf(sdf, cands)
    return {**stats, "rows_written": len(cands)}
