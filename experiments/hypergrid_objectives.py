#!/usr/bin/env python
"""Exact L1 against trajectories for TB, DB and SubTB(0.9) on the 4-D hypergrid.

Configuration of the foundation's acceptance test: D=4, H=8, R0=0.1 R1=0.5 R2=2,
batch 16, 2x256 MLP, Adam 1e-3 (log Z 1e-1), 160,000 trajectories, the library's
default schedule (cosine decay of the learning rates to 10 %). Several seeds.

  python experiments/hypergrid_objectives.py --seeds 0 1 2
  python experiments/hypergrid_objectives.py --objectives fl_db --set energy=coordinates --tag _coordinates

Each run is saved as experiments/results/hypergrid_objectives/OBJECTIVE_SEED.json (so
runs can be split across processes); every call then redraws
experiments/hypergrid_objectives.png and experiments/results/hypergrid_objectives.md
from all saved runs.
"""

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gflownet.config import RunConfig  # noqa: E402
from gflownet.trainer import Trainer  # noqa: E402

HERE = Path(__file__).resolve().parent


def curve(objective: str, seed: int, trajectories: int, every: int, assignments) -> list[dict]:
    config = RunConfig(env_params={"dim": 4, "side": 8}, objective=objective).apply(assignments)
    config.train.seed, config.train.trajectories = seed, trajectories
    trainer = Trainer(config)
    points = [{"trajectories": 0, **trainer.evaluate()}]
    every_steps = every // config.train.batch_size
    while trainer.step_count < trainer.total_steps:
        trainer.train_step()
        if trainer.step_count % every_steps == 0 or trainer.step_count == trainer.total_steps:
            points.append({"trajectories": trainer.step_count * config.train.batch_size, **trainer.evaluate()})
    print(f"{objective} seed {seed}: final L1 {points[-1]['l1']:.4f}", file=sys.stderr, flush=True)
    return points


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objectives", nargs="+", default=["tb", "db", "subtb"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--trajectories", type=int, default=160_000)
    p.add_argument("--every", type=int, default=8_000, help="trajectories between evaluations")
    p.add_argument("--set", action="append", default=[], help="any library parameter, KEY=VALUE")
    p.add_argument("--tag", default="", help="suffix of the saved runs' names, e.g. _coordinates for --set energy=...")
    p.add_argument("--plot-only", action="store_true", help="only redraw from the saved runs")
    args = p.parse_args()
    if args.plot_only:
        return plot(HERE / "results" / "hypergrid_objectives")
    runs = HERE / "results" / "hypergrid_objectives"
    runs.mkdir(parents=True, exist_ok=True)
    for objective in args.objectives:
        for seed in args.seeds:
            (runs / f"{objective}{args.tag}_{seed}.json").write_text(
                json.dumps(curve(objective, seed, args.trajectories, args.every, args.set))
            )
    plot(runs)


def plot(runs: Path):
    """The figure and table of every run saved in ``runs`` (one JSON file per objective and seed)."""
    results = {}
    for path in sorted(runs.glob("*.json")):
        objective, seed = path.stem.rsplit("_", 1)
        results.setdefault(objective, {})[int(seed)] = json.loads(path.read_text())
    order = ["tb", "db", "subtb", "fl_db", "fl_subtb", "fm", "mdb", "zvar"]
    results = dict(sorted(results.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))
    seeds = sorted({s for r in results.values() for s in r})
    out = runs.parent

    fig, ax = plt.subplots(figsize=(6.5, 4))
    table = [
        "| objective | " + " | ".join(f"seed {s}" for s in seeds) + " | mean of its seeds |",
        "|---|" + "---|" * (len(seeds) + 1),
    ]
    for color, (objective, curves) in zip([f"C{i}" for i in range(10)], results.items()):
        for i, points in enumerate(curves.values()):
            ax.plot(
                [q["trajectories"] for q in points],
                [q["l1"] for q in points],
                color=color,
                alpha=0.8,
                label=objective if i == 0 else None,
            )
        finals = [curves[s][-1]["l1"] for s in curves]
        cells = [f"{curves[s][-1]['l1']:.4f}" if s in curves else "-" for s in seeds]
        table.append(f"| {objective} | " + " | ".join(cells) + f" | {sum(finals) / len(finals):.4f} |")
    ax.axhline(0.03, color="gray", ls="--", lw=0.8)
    ax.set(
        xlabel="trajectories",
        ylabel="exact L1 to R/Z",
        yscale="log",
        title="4-D hypergrid H=8, batch 16 (one line per seed)",
    )
    ax.legend()
    fig.savefig(HERE / "hypergrid_objectives.png", dpi=110, bbox_inches="tight")
    (out / "hypergrid_objectives.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
