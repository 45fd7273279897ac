"""Shared machinery of the sequence benchmarks (experiments/rna.py, experiments/ehrlich.py):
GFlowNets and a genetic-algorithm baseline at a fixed budget of reward calls, the record
of every distinct sequence each one evaluated, and the CSV / markdown / PNG outputs.

Budget: distinct sequences scored (a sequence scored twice costs once: the tasks cache).
Curves report, after each share of the budget, over the distinct full sequences scored
so far: how many have f >= the mode threshold, the mean f of the best 100, the best f.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from gflownet.config import RunConfig  # noqa: E402
from gflownet.diversity import hamming, mean_pairwise_distance  # noqa: E402
from gflownet.trainer import Trainer  # noqa: E402

CURVE_POINTS = 20


def arguments(description: str, budget: int, methods: list[str], out: Path) -> argparse.ArgumentParser:
    """The command line the benchmarks share (scripts add their own options)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a tiny budget, for CI (< 60 s)")
    parser.add_argument("--budget", type=int, default=budget, help="reward calls per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=methods)
    parser.add_argument("--out", default=str(out))
    parser.add_argument(
        "--merge", action="store_true", help="rerun only --methods, keeping the other methods' rows of the existing CSV"
    )
    return parser


class Record:
    """Distinct sequences in the order they were first scored, with their f."""

    def __init__(self):
        self.f: dict[tuple, float] = {}

    def add(self, sequences: torch.Tensor, values: torch.Tensor):
        for s, v in zip(sequences.tolist(), values.tolist()):
            self.f.setdefault(tuple(s), v)

    def __len__(self):
        return len(self.f)

    def stats(self, threshold: float) -> dict:
        """Over the distinct sequences so far; an infeasible one (f = -inf) counts as f = 0."""
        values = torch.tensor(list(self.f.values()), dtype=torch.float64).clamp_min(0)
        top = values.topk(min(100, len(values))).indices
        seqs = torch.tensor(list(self.f))[top]
        return {
            "distinct": len(values),
            "modes": int((values >= threshold).sum()),
            "top100_mean": float(values[top].mean()),
            "best": float(values.max()),
            "top100_hamming": mean_pairwise_distance(seqs, hamming) if len(seqs) > 1 else math.nan,
        }


def genetic_algorithm(
    fitness: Callable,
    initial: torch.Tensor,
    n_tokens: int,
    budget: int,
    seed: int,
    threshold: float,
    population: int = 64,
    mutation_rate: float | None = None,
):
    """A steady elitist GA: each generation breeds ``population`` children from parents
    picked by binary tournaments (uniform crossover, then each position resampled
    with probability ``mutation_rate``, default 1/L); the best ``population`` of
    parents and children survive, children winning ties (so that the population
    drifts across plateaus of f). ``fitness(tokens [B, L]) -> [B]`` (-inf: infeasible).
    Stops once ``budget`` distinct sequences were scored; returns the curve rows."""
    g = torch.Generator().manual_seed(seed)
    record, rows = Record(), []
    L = initial.shape[1]
    rate = 1.0 / L if mutation_rate is None else mutation_rate
    pop = initial
    fit = fitness(pop)
    record.add(pop, fit)
    every = max(budget // CURVE_POINTS, 1)
    while len(record) < budget:
        a, b = (torch.randint(len(pop), (2, population), generator=g) for _ in range(2))
        parents = [torch.where(fit[x[0]] >= fit[x[1]], x[0], x[1]) for x in (a, b)]
        mix = torch.rand(population, L, generator=g) < 0.5
        children = torch.where(mix, pop[parents[0]], pop[parents[1]])
        mutate = torch.rand(population, L, generator=g) < rate
        children = torch.where(mutate, torch.randint(n_tokens, (population, L), generator=g), children)
        before = len(record)
        child_fit = fitness(children)
        record.add(children, child_fit)
        pop, fit = torch.cat([children, pop]), torch.cat([child_fit, fit])  # children first: they win ties
        best = torch.sort(fit, descending=True, stable=True).indices[:population]
        pop, fit = pop[best], fit[best]
        if len(record) // every > before // every or len(record) >= budget:
            rows.append({"calls": len(record), **record.stats(threshold)})
    return rows


def train_gflownet(
    env_name: str,
    env_params: dict,
    objective: str,
    seed: int,
    budget: int,
    threshold: float,
    calls: Callable,
    fitness: Callable,
    length: int,
    epsilon: float = 0.0,
    **model,
):
    """Train until ``calls(env)`` reaches ``budget``; the terminal objects of every batch
    go into the record, their f read by ``fitness(env, tokens)``. Returns the curve rows."""
    config = RunConfig(env=env_name, env_params=env_params, objective=objective)
    t = config.train
    t.seed, t.epsilon, t.lr_schedule, t.trajectories, t.threads = seed, epsilon, "constant", 10**9, 1
    config.model.hidden = model.get("hidden", 256)
    trainer = Trainer(config)
    env = trainer.env
    record, rows = Record(), []
    every = max(budget // CURVE_POINTS, 1)
    while calls(env, record) < budget:
        before = calls(env, record)
        loss = float(trainer.train_step())
        if not math.isfinite(loss):
            raise RuntimeError(f"{objective} diverged at step {trainer.step_count}")
        terminal = trainer.last_trajectories.terminal
        full = env.lengths(terminal) == length
        record.add(terminal[full], fitness(env, terminal[full]))
        used = calls(env, record)
        if used // every > before // every or used >= budget:
            rows.append({"calls": used, **record.stats(threshold)})
    if hasattr(env, "close"):
        env.close()
    return rows


def benchmark(
    task: str,
    seeds: list[int],
    methods: list[str],
    run: Callable,
    out: Path,
    stem: str,
    title: str,
    mode_label: str,
    notes: str,
    merge: bool = False,
) -> list[dict]:
    """``run(method, seed)`` -> curve rows for every seed and method; prints the final
    row of each run and writes the outputs (``write_outputs``). With ``merge``, the rows
    of the other methods are kept from an earlier ``{stem}.csv`` (rerun a subset)."""
    rows = _read_rows(out / f"{stem}.csv", exclude=methods) if merge else []
    if merge:
        notes += f" Rows of methods other than {', '.join(methods)} are kept from the earlier run."
    for seed in seeds:
        for method in methods:
            start = time.perf_counter()
            curve = run(method, seed)
            rows += [{"task": task, "method": method, "seed": seed, **r} for r in curve]
            last = curve[-1]
            print(
                f"{method:9s} seed {seed}: {last['calls']} calls, {last['distinct']} distinct, {last['modes']} "
                f"{mode_label}, top-100 mean f {last['top100_mean']:.4f}, best f {last['best']:.4f} "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    write_outputs(out, stem, rows, title, mode_label, notes)
    return rows


FIELDS = ["task", "method", "seed", "calls", "distinct", "modes", "top100_mean", "best", "top100_hamming"]


def write_outputs(out: Path, stem: str, rows: list[dict], title: str, threshold_label: str, notes: str):
    """``{stem}.csv`` (every curve point), ``{stem}.md`` (final rows, mean over seeds), ``{stem}.png``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows({k: r.get(k) for k in FIELDS} for r in rows)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    finals = {m: [last for last in _finals(rows, m)] for m in methods}
    lines = [
        f"# {title}",
        "",
        notes,
        "",
        f"| method | seeds | reward calls | {threshold_label} | top-100 mean f | best f | top-100 mean Hamming |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        fin = finals[m]
        mean = {
            k: sum(r[k] for r in fin) / len(fin) for k in ("calls", "modes", "top100_mean", "best", "top100_hamming")
        }
        lines.append(
            f"| {m} | {len(fin)} | {mean['calls']:.0f} | {mean['modes']:.1f} | {mean['top100_mean']:.4f} | "
            f"{mean['best']:.4f} | {mean['top100_hamming']:.2f} |"
        )
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for m in methods:
        for seed in sorted({r["seed"] for r in rows if r["method"] == m}):
            curve = [r for r in rows if r["method"] == m and r["seed"] == seed]
            label = m if seed == min(r["seed"] for r in rows if r["method"] == m) else None
            color = f"C{methods.index(m)}"
            axes[0].plot([r["calls"] for r in curve], [r["modes"] for r in curve], color=color, label=label)
            axes[1].plot([r["calls"] for r in curve], [r["top100_mean"] for r in curve], color=color, label=label)
    axes[0].set(xlabel="reward calls", ylabel=threshold_label)
    axes[1].set(xlabel="reward calls", ylabel="top-100 mean f")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out / f"{stem}.png", dpi=100)
    plt.close(fig)
    return finals


def _read_rows(path: Path, exclude: list[str]) -> list[dict]:
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["method"] not in exclude]
    numeric = {
        "seed": int,
        "calls": int,
        "distinct": int,
        "modes": int,
        "top100_mean": float,
        "best": float,
        "top100_hamming": float,
    }
    return [{k: numeric[k](v) if k in numeric else v for k, v in r.items()} for r in rows]


def _finals(rows, method):
    seeds = sorted({r["seed"] for r in rows if r["method"] == method})
    return [[r for r in rows if r["method"] == method and r["seed"] == s][-1] for s in seeds]
