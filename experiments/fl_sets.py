#!/usr/bin/env python
"""Forward-looking GFlowNets on set generation (Pan et al. 2023, arXiv 2302.01687).

Three studies, each with several seeds:
  small   |U|=12, |S|=6: exact L1 against trajectories for DB and FL-DB, and FL-DB
          trained only on rollouts cut after k ~ U{1..|S|} moves, at the same budget
          of transitions as complete FL-DB;
  large   |U|, |S| in {30/20, 80/60, 100/80}: mean reward of the top 100 distinct sets
          sampled so far, and distinct sets above the reward's 99th percentile of 10^5
          uniformly random sets, against trajectories, for TB, DB, SubTB, FL-DB, FL-SubTB.
Settings of the released code: 2x256 MLP, Adam 1e-3 (log Z 1e-1), 16 trajectories a
step, learned P_B, epsilon-uniform behaviour (TB 0.0625, DB / SubTB 1.0, FL 0.5; 1.0 for
everything on the small task), constant learning rates. (The released code uses
LeakyReLU; this library's MLP uses ReLU.)

  python experiments/fl_sets.py --quick                 # a few minutes
  python experiments/fl_sets.py --steps 10000 --seeds 0 1 2
  python experiments/fl_sets.py --sizes --small-epsilon 0 --small-every 32 --small-trajectories 12800 \
      --small-methods db fl_db --small-stop --temperature 0.45 --seeds 0 1 2 3 4 \
      --tag _crossing_t0.45 --report fl_sets_crossing_t0.45.md
                                                        # trajectories to L1 <= 0.05 only

Writes experiments/results/fl_sets_*.csv / .json / .md / .png.
"""

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from gflownet.config import RunConfig  # noqa: E402
from gflownet.dedup import distinct  # noqa: E402
from gflownet.environments import make_env  # noqa: E402
from gflownet.sampler import sample_forward  # noqa: E402
from gflownet.trainer import Trainer  # noqa: E402

HERE = Path(__file__).resolve().parent
METHODS = ["tb", "db", "subtb", "fl_db", "fl_subtb"]
EPSILON = {"tb": 0.0625, "db": 1.0, "subtb": 1.0, "fl_db": 0.5, "fl_subtb": 0.5}


def trainer_for(size, set_size, objective, seed, epsilon, trajectories, max_moves=0, temperature=1.0, assignments=()):
    env_params = {"size": size, "set_size": set_size, "temperature": temperature}
    config = RunConfig(env="sets", env_params=env_params, objective=objective).apply(assignments)
    t = config.train
    t.seed, t.epsilon, t.trajectories, t.lr_schedule = seed, epsilon, trajectories, "constant"
    t.max_moves, t.random_cut = max_moves, max_moves > 0
    return Trainer(config)


SMALL_METHODS = ["db", "fl_db", "fl_db_cut"]


def small_study(
    seeds,
    trajectories,
    every,
    target=0.05,
    epsilon=1.0,
    temperature=1.0,
    assignments=(),
    methods=SMALL_METHODS,
    stop_at_target=False,
):
    """Exact L1 curves on |U|=12, |S|=6; trajectories (and transitions) to reach ``target``.
    ``epsilon`` (behaviour), ``temperature`` (of the reward) and the ``KEY=VALUE``
    ``assignments`` are shared by every method. ``fl_db_cut`` trains on cut rollouts up to
    the transitions of ``trajectories`` complete ones (|S| + 1 each). With
    ``stop_at_target`` a run ends at its first evaluation with L1 <= ``target``."""
    rows = []
    for seed in seeds:
        for name in methods:
            cut = 6 if name == "fl_db_cut" else 0
            objective = "fl_db" if cut else name
            trainer = trainer_for(
                12, 6, objective, seed, epsilon, trajectories if not cut else 10**9, cut, temperature, assignments
            )
            batch = trainer.config.train.batch_size
            budget = trajectories * (trainer.env.set_size + 1)
            while True:
                trainer.train_step()
                n = trainer.step_count * batch
                done = int(trainer.transitions) >= budget if cut else trainer.step_count >= trainer.total_steps
                if n % every == 0 or done:
                    rows.append(
                        {
                            "method": name,
                            "seed": seed,
                            "trajectories": n,
                            "transitions": int(trainer.transitions),
                            "l1": trainer.evaluate()["l1"],
                        }
                    )
                    done = done or (stop_at_target and rows[-1]["l1"] <= target)
                if done:
                    break
            print(
                f"small {name} seed {seed}: L1 {rows[-1]['l1']:.4f} after {rows[-1]['transitions']} transitions",
                file=sys.stderr,
                flush=True,
            )
    summary = {}
    for name in methods:
        firsts = []
        for seed in seeds:
            reached = [r["trajectories"] for r in rows_of(rows, name, seed) if r["l1"] <= target]
            firsts.append(reached[0] if reached else math.inf)
        summary[name] = {
            "trajectories_to_target": firsts,
            "median": sorted(firsts)[len(firsts) // 2],
            "final_l1": [rows_of(rows, name, s)[-1]["l1"] for s in seeds],
            "final_transitions": [rows_of(rows, name, s)[-1]["transitions"] for s in seeds],
        }
    return rows, summary


def rows_of(rows, method, seed):
    return [r for r in rows if r["method"] == method and r["seed"] == seed]


def large_study(size, set_size, methods, seeds, steps, every, epsilon=None):
    """Top-100 mean reward of distinct sampled sets, and distinct sets above the
    uniform 99th reward percentile, against trajectories; at the end, the top-100 mean
    reward of 4,096 sets drawn from the learned P_F alone (no exploration), since the
    training samples of a method with epsilon = 1 are uniformly random sets."""
    env = make_env("sets", size=size, set_size=set_size)
    g = torch.Generator().manual_seed(12345)
    random_sets = torch.rand(100_000, size, generator=g).argsort(1)[:, :set_size]
    random_log_r = -env.energies[random_sets].sum(1)
    threshold = float(random_log_r.quantile(0.99))
    rows = []
    for objective in methods:
        for seed in seeds:
            eps = EPSILON[objective] if epsilon is None else epsilon
            trainer = trainer_for(size, set_size, objective, seed, eps, steps * 16)
            seen = {}
            while trainer.step_count < trainer.total_steps:
                trainer.train_step()
                traj = trainer.last_trajectories
                for key, log_r in zip(
                    map(tuple, traj.terminal.nonzero()[:, 1].view(len(traj), -1).tolist()), traj.log_reward.tolist()
                ):
                    seen[key] = log_r
                if trainer.step_count % every == 0 or trainer.step_count == trainer.total_steps:
                    top = sorted(seen.values(), reverse=True)[:100]
                    rows.append(
                        {
                            "size": size,
                            "set_size": set_size,
                            "method": objective,
                            "seed": seed,
                            "trajectories": trainer.step_count * 16,
                            "top100_mean_reward": sum(math.exp(v) for v in top) / len(top),
                            "above_q99": sum(v >= threshold for v in seen.values()),
                            **{k: v for k, v in trainer.evaluate().items() if k == "log_z_error"},
                        }
                    )
            policy = sample_forward(env, trainer.policy, 4096, generator=torch.Generator().manual_seed(seed))
            log_r = env.log_reward(policy.terminal)[distinct(policy.terminal, dim=0)[0]]
            rows[-1]["policy_top100_mean_reward"] = float(log_r.topk(min(100, len(log_r))).values.exp().mean())
            print(
                f"large {size}/{set_size} {objective} seed {seed}: top-100 {rows[-1]['top100_mean_reward']:.4g}, "
                f"from P_F {rows[-1]['policy_top100_mean_reward']:.4g}",
                file=sys.stderr,
                flush=True,
            )
    return rows


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)


def plot(rows, x, y, path, title, log=False):
    fig, ax = plt.subplots(figsize=(6, 4))
    methods = sorted({r["method"] for r in rows}, key=lambda m: (METHODS + ["fl_db_cut"]).index(m))
    for color, method in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], methods):
        for i, seed in enumerate(sorted({r["seed"] for r in rows})):
            points = rows_of(rows, method, seed)
            ax.plot(
                [p[x] for p in points], [p[y] for p in points], color=color, alpha=0.8, label=method if i == 0 else None
            )
    ax.set(xlabel=x, ylabel=y, title=title, yscale="log" if log else "linear")
    ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short runs (CI): small sizes, few steps")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=10_000, help="training steps of the large study")
    p.add_argument(
        "--sizes", nargs="*", default=["30/20", "80/60", "100/80"], help="|U|/|S| of the large study (none: skip it)"
    )
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--small-trajectories", type=int, default=96_000)
    p.add_argument("--small-every", type=int, default=1600, help="trajectories between two exact evaluations")
    p.add_argument("--small-epsilon", type=float, default=1.0, help="exploration rate of the small study")
    p.add_argument("--temperature", type=float, default=1.0, help="reward temperature of the small study's sets")
    p.add_argument("--set", action="append", default=[], help="library parameter of the small study, KEY=VALUE")
    p.add_argument("--small-methods", nargs="+", default=SMALL_METHODS, choices=SMALL_METHODS)
    p.add_argument(
        "--small-stop", action="store_true", help="end each small-study run at its first L1 <= 0.05 (the crossing)"
    )
    p.add_argument("--skip-small", action="store_true")
    p.add_argument("--out", default=str(HERE / "results"), help="folder for the CSV / JSON / Markdown / PNG files")
    p.add_argument("--report", default="fl_sets.md", help="name of the Markdown table written in --out")
    p.add_argument("--epsilon", type=float, help="one exploration rate for every method of the large study")
    p.add_argument("--tag", default="", help="suffix of the result files' names")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.sizes, args.small_trajectories, args.small_every = [0], 60, ["30/20"], 3_200, 800
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = []
    if not args.skip_small:
        rows, summary = small_study(
            args.seeds,
            args.small_trajectories,
            args.small_every,
            epsilon=args.small_epsilon,
            temperature=args.temperature,
            assignments=args.set,
            methods=args.small_methods,
            stop_at_target=args.small_stop,
        )
        small = f"fl_sets_small{args.tag}"
        write_csv(rows, out / f"{small}.csv")
        plot(rows, "transitions", "l1", out / f"{small}.png", "|U|=12, |S|=6: exact L1", log=True)
        (out / f"{small}.json").write_text(json.dumps(summary, indent=1))
        report.append(
            f"| |U|=12, |S|=6, epsilon {args.small_epsilon}, temperature {args.temperature} | trajectories to "
            "L1 <= 0.05 (per seed) | median | final L1 | transitions |"
        )
        report.append("|---|---|---|---|---|")
        for name, s in summary.items():
            report.append(
                f"| {name} | {s['trajectories_to_target']} | {s['median']} | "
                f"{', '.join(f'{v:.3f}' for v in s['final_l1'])} | {s['final_transitions']} |"
            )
        if {"db", "fl_db"} <= summary.keys():
            report.append(
                f"\nFL-DB / DB median trajectories: {summary['fl_db']['median'] / summary['db']['median']:.2f}"
            )
    for spec in args.sizes:
        size, set_size = map(int, spec.split("/"))
        rows = large_study(size, set_size, args.methods, args.seeds, args.steps, max(args.steps // 20, 1), args.epsilon)
        tag = f"{size}_{set_size}{args.tag}"
        write_csv(rows, out / f"fl_sets_{tag}.csv")
        plot(rows, "trajectories", "top100_mean_reward", out / f"fl_sets_{tag}.png", f"|U|={size}, |S|={set_size}")
        report.append(
            f"\n| |U|={size}, |S|={set_size}{' ' + args.tag if args.tag else ''} | top-100 mean reward "
            "of training samples (per seed) | sets above q99 | top-100 of 4,096 sets from P_F |"
        )
        report.append("|---|---|---|---|")
        for method in args.methods:
            finals = [rows_of(rows, method, s)[-1] for s in args.seeds]
            rewards = ", ".join(f"{r['top100_mean_reward']:.4g}" for r in finals)
            counts = ", ".join(str(r["above_q99"]) for r in finals)
            policy = ", ".join(f"{r['policy_top100_mean_reward']:.4g}" for r in finals)
            report.append(f"| {method} | {rewards} | {counts} | {policy} |")
    (out / ("fl_sets_quick.md" if args.quick else args.report)).write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
