"""The sEH fragment task (Bengio et al. 2021; the molecule experiment of the
forward-looking GFlowNet paper, Pan et al. 2023): TB, SubTB and FL-SubTB on the
105-block vocabulary, at most 9 blocks, GNN trunk, uniform P_B; also DB and FL-DB
(``--methods db fl_db``), the pair that paper's released molecule code compares.

Reward: s(x) = max(proxy(x), 0.1) / 8 and R = s^beta (beta = 10 by default, the
exponent of the original fragment GFlowNet; 4 in the FL paper's code). FL-* use the energy
E(s) = -log R of every partial molecule. Reported against trajectories seen:
  top100   mean s(x) of the 100 best distinct molecules sampled so far
  modes    distinct molecules with proxy >= --mode-raw (default 7.0, i.e. s >= 0.875)
           and Morgan Tanimoto < 0.7 to every other mode (greedy in reward order)

    python experiments/seh_frag.py --trajectories 6400 --seeds 0 1   # experiments/results/seh_frag.*
    python experiments/seh_frag.py --methods tb --parents last leaves --name seh_frag_parents
    python experiments/seh_frag.py --methods db fl_db --beta 4 --seeds 0 1 2 --trajectories 6400 \\
        --every 1280 --workers 1 --name seh_frag_db_beta4
    python experiments/seh_frag.py --methods db fl_db --beta 4 --parents leaves --epsilon 0.1 \\
        --min-blocks 2 --max-blocks 8 --workers 1 --name seh_frag_released   # the released code's settings
    python experiments/seh_frag.py --quick                  # a smoke run (CI)
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from rdkit import DataStructs  # noqa: E402

from gflownet.config import RunConfig  # noqa: E402
from gflownet.environments.molrewards import fingerprint  # noqa: E402
from gflownet.trainer import Trainer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = {
    "tb": ("tb", {}),
    "subtb": ("subtb", {"lam": 0.9}),
    "fl_subtb": ("fl_subtb", {"lam": 0.9}),
    "db": ("db", {}),  # DB and FL-DB: the comparison of the FL paper's released molecule code
    "fl_db": ("fl_db", {}),
}
DEFAULT_METHODS = ["tb", "subtb", "fl_subtb"]
MODE_SIMILARITY = 0.7


class Discovered:
    """Distinct molecules sampled during training (canonical SMILES -> s(x)) and their modes."""

    def __init__(self, mode_score: float):
        self.score, self.mode_score, self.modes = {}, mode_score, []

    def add(self, env, states):
        from rdkit import Chem

        mols = env.to_mols(states)
        for mol, s in zip(mols, env.reward.scores(mols)):
            smi = Chem.MolToSmiles(mol)
            if smi in self.score:
                continue
            self.score[smi] = s
            if s >= self.mode_score:
                fp = fingerprint(mol)
                if not self.modes or max(DataStructs.BulkTanimotoSimilarity(fp, self.modes)) < MODE_SIMILARITY:
                    self.modes.append(fp)

    def top100(self) -> float:
        best = sorted(self.score.values(), reverse=True)[:100]
        return sum(best) / len(best)


def make_trainer(
    method, trajectories, batch, seed, hidden, layers, beta, parents="last", workers=0, epsilon=0.0, blocks=(1, 9)
) -> Trainer:
    """The trainer of one run of the task: ``method`` (a key of METHODS) on R = s(x)^beta, molecules
    of ``blocks`` = (min, max) blocks, a random legal action at each rollout step with probability
    ``epsilon`` (the same behaviour policy for every method)."""
    objective, params = METHODS[method]
    env_params = {"reward": "seh", "beta": beta, "parents": parents, "reward_workers": workers}
    env_params["min_blocks"], env_params["max_blocks"] = blocks
    config = RunConfig(
        env="fragments",
        env_params=env_params,
        objective=objective,
        objective_params=dict(params),
    )
    config.model.hidden, config.model.layers, config.model.backward = hidden, layers, "uniform"
    t = config.train
    t.batch_size, t.trajectories, t.seed, t.threads, t.eval_every = batch, trajectories, seed, 1, 0
    t.epsilon = epsilon
    t.lr, t.lr_logz, t.lr_schedule = 5e-4, 5e-2, "constant"
    return Trainer(config)


def run_method(
    method, trajectories, batch, seed, hidden, layers, every, mode_raw, beta, parents="last", workers=0, **settings
):
    """One run; ``settings``: ``epsilon`` and ``blocks`` of ``make_trainer``."""
    trainer = make_trainer(method, trajectories, batch, seed, hidden, layers, beta, parents, workers, **settings)
    found = Discovered(mode_raw / 8)
    rows, start = [], time.perf_counter()
    while trainer.step_count < trainer.total_steps:
        loss = float(trainer.train_step())
        found.add(trainer.env, trainer.last_trajectories.terminal)
        seen = trainer.step_count * batch
        if seen % every < batch or trainer.step_count == trainer.total_steps:
            rows.append(
                {
                    "method": method,
                    "parents": parents,
                    "seed": seed,
                    "trajectories": seen,
                    "loss": loss,
                    "top100": found.top100(),
                    "modes": len(found.modes),
                    "unique": len(found.score),
                    "seconds": time.perf_counter() - start,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    trainer.env.close()
    return rows


def plot(rows, path):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("top100", "modes")):
        for (m, parents, seed), mine in groups(rows).items():
            label = f"{m}{'' if parents == 'last' else ' (leaves)'} seed {seed}"
            ax.plot([float(r["trajectories"]) for r in mine], [float(r[key]) for r in mine], label=label)
        ax.set_xlabel("trajectories")
        ax.set_ylabel({"top100": "top-100 mean reward (proxy / 8)", "modes": "modes"}[key])
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def groups(rows) -> dict:
    """(method, parents, seed) -> its rows, in the order they first appear (CSVs written
    before ``parents`` existed hold "last" runs)."""
    out = {}
    for r in rows:
        out.setdefault((r["method"], r.get("parents") or "last", int(r["seed"])), []).append(r)
    return out


def write_csv_and_table(rows, out: Path, name: str, title: str, header: list, body: list) -> str:
    """``rows`` (dicts) to out/name.csv, and a markdown table (``title``, the ``header`` cells,
    then one line of cells per entry of ``body``) to out/name.md; returns the table."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in cells) + " |" for cells in body]
    table = "\n".join(lines) + "\n"
    (out / f"{name}.md").write_text(table)
    return table


def write_outputs(rows, out: Path, name: str, title: str) -> str:
    """CSV, PNG and a markdown table (last row of each method and seed) of ``rows``."""
    header = ["method", "parents", "seed", "trajectories", "top-100 mean reward", "modes", "distinct molecules"]
    body = [
        [m, parents, seed, mine[-1]["trajectories"], f"{float(mine[-1]['top100']):.3f}", mine[-1]["modes"]]
        + [mine[-1]["unique"], f"{float(mine[-1]['seconds']):.0f}"]
        for (m, parents, seed), mine in groups(rows).items()
    ]
    table = write_csv_and_table(rows, out, name, title, header + ["seconds"], body)
    plot(rows, out / f"{name}.png")
    return table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=list(METHODS))
    p.add_argument("--trajectories", type=int, default=4000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--every", type=int, default=512, help="trajectories between two rows")
    p.add_argument("--mode-raw", type=float, default=7.0, help="proxy value from which a molecule may be a mode")
    p.add_argument("--beta", type=float, default=10.0, help="reward exponent")
    p.add_argument("--parents", nargs="+", default=["last"], choices=["last", "leaves"], help="backward moves")
    p.add_argument("--workers", type=int, default=0, help="RDKit reward worker processes (reward_workers)")
    p.add_argument("--epsilon", type=float, default=0.0, help="random-action rate of the behaviour policy")
    p.add_argument("--min-blocks", type=int, default=1, help="fewest blocks before the exit")
    p.add_argument("--max-blocks", type=int, default=9, help="most blocks in a molecule")
    p.add_argument("--name", default="seh_frag", help="stem of the output files")
    p.add_argument(
        "--combine",
        nargs="+",
        metavar="CSV",
        help="only rebuild the table and plot from these CSVs (runs made separately)",
    )
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.trajectories, args.batch, args.every = 32, 16, 16
    title = (
        f"sEH fragments, batch {args.batch}, beta {args.beta}, GNN {args.layers}x{args.hidden}, "
        f"modes: proxy >= {args.mode_raw}, {args.min_blocks}-{args.max_blocks} blocks, epsilon {args.epsilon}"
    )
    if args.combine:
        rows = [r for path in args.combine for r in csv.DictReader(open(path))]
    else:
        rows = [
            r
            for seed in args.seeds
            for parents in args.parents
            for method in args.methods
            for r in run_method(
                method,
                args.trajectories,
                args.batch,
                seed,
                args.hidden,
                args.layers,
                args.every,
                args.mode_raw,
                args.beta,
                parents,
                args.workers,
                epsilon=args.epsilon,
                blocks=(args.min_blocks, args.max_blocks),
            )
        ]
    table = write_outputs(rows, Path(args.out), f"{args.name}_quick" if args.quick else args.name, title)
    print(table)
    return rows


if __name__ == "__main__":
    main()
