#!/usr/bin/env python
"""Outcome-conditioned pretraining and fine-tuning (Pan, Jain, Madan, Bengio 2024, arXiv 2310.03419)
on the 2-D hypergrid.

1. Pretrain an OC-GFN reward-free (explorer outcomes, teleported DB, hindsight replay) and
   record its success rate (y uniform, x ~ P_F(.|y), fraction x = y) during training.
2. On several downstream rewards never seen in pretraining (``RandomModes``: ``n_modes``
   random cells, each the top of a sharp bump over a floor), compare at one budget of
   samples (terminal objects generated while adapting):
     amortised  N, Q trained with the fine-tuning loss (``--loss``; importance-sampled by default) on
                N's rollouts and teacher rollouts of the pretrained P_F(.|y) (samples from N);
     exact      the exact marginal policy (samples drawn by rollouts of its table), with
                F(s|y) from the flow head, as the formula is written;
     exact_visits  the same with F(s|y) read off the visits of P_F(.|y) (one DP);
     scratch    a DB GFlowNet trained on R' from scratch;
     continue   the same, initialised from the pretrained trunk.
   (TF Bind 8 also has ``scratch_replay``: scratch with the amortised predictor's compute, i.e.
   ``--updates`` steps a batch at ``--ft-lr``, the extra ones on trajectories replayed from the last
   ``--replay`` transitions.)
   Metrics: distinct modes found among the samples so far; the reward calls spent (exact
   and amortised query R' on outcomes, once each; scratch / continue once per sample);
   the exact L1 of the final sampler to R'/Z' (by DP).

  python experiments/ocgfn.py --quick          # well under a minute
  python experiments/ocgfn.py --side 32 --pretrain-trajectories 512000 --evals 16 --budget 2000
  python experiments/ocgfn.py --pretrain-only tfbind8 --pretrain-trajectories 96000   # success rate only
  python experiments/ocgfn.py --downstream-tfbind8 --pretrain-trajectories 96000 --budget 10000 \
      --k 1 --updates 1 --replay 0 --teacher 0 --q-epsilon 0.05   # amortised vs scratch, 10,000 R' calls
  python experiments/ocgfn.py --downstream-tfbind8 --tfbind8-reward shen \
      --methods amortised_terminal scratch continue            # R' = 10 b^3 / max b^3 (floored)
  python experiments/ocgfn.py --downstream-tfbind8 --pretrain-trajectories 96000 --evals 8 --budget 10000 \
      --methods amortised_terminal --updates 16 --tag _updates16   # 16 updates a step (README, the binding)

Writes experiments/results/ocgfn_<tag>.csv / _pretrain.csv / .json / .md / .png.
"""

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from gflownet.config import RunConfig  # noqa: E402
from gflownet.environments.tfbind8 import REWARDS as TFBIND8_REWARDS  # noqa: E402
from gflownet.environments.tfbind8 import TFBind8  # noqa: E402
from gflownet.finetune import (  # noqa: E402
    Amortised,
    AmortisedSettings,
    DownstreamTrainer,
    ExactMarginal,
    RewardSwap,
    TreeOracle,
)
from gflownet.metrics import distances, policy_log_probs, target_distribution, terminal_distribution  # noqa: E402
from gflownet.pretrain import OCConfig, PretrainTrainer, conditional_log_probs  # noqa: E402
from gflownet.replay import ReplayBuffer  # noqa: E402

HERE = Path(__file__).resolve().parent
METHODS = ["amortised", "exact", "exact_visits", "scratch", "continue"]


class RandomModes:
    """R'(x) = floor + sum_m exp(-|x - m|^2 / (2 width^2)) over ``n_modes`` distinct random cells m."""

    def __init__(self, dim, side, n_modes, seed, floor=1e-3, width=0.75):
        generator = torch.Generator().manual_seed(seed)
        cells = torch.randperm(side**dim, generator=generator)[:n_modes]
        self.modes = torch.stack([(cells // side**d) % side for d in range(dim)], -1)
        self.floor, self.width = floor, width

    def __call__(self, x):
        distance2 = (x[:, None, :] - self.modes[None]).pow(2).sum(-1).double()
        return self.floor + (-distance2 / (2 * self.width**2)).exp().sum(-1)

    def mode_index(self, env):
        return env.state_index(self.modes)


def pretrain(args, out, env="hypergrid", env_params=None):
    config = RunConfig(env=env, env_params={"dim": 2, "side": args.side} if env_params is None else env_params)
    config.model.hidden = args.hidden
    t = config.train
    t.batch_size, t.trajectories, t.lr, t.lr_schedule = args.batch_size, args.pretrain_trajectories, 1e-3, "constant"
    t.eval_every, t.log_every, t.threads = args.pretrain_trajectories // args.evals, 50, 1
    oc = OCConfig(hindsight_batch=args.batch_size, success_samples=args.success_samples)
    trainer = PretrainTrainer(config, oc, out / "pre", progress=not args.quick)
    trainer.resume()
    trainer.run()
    curve = [json.loads(line) for line in (out / "pre" / "metrics.jsonl").read_text().splitlines()]
    return trainer, [r for r in curve if r["kind"] == "eval"]


def downstream_config(env, env_params, args, seed):
    """A DB GFlowNet on the downstream reward (scratch / continue), one fine-tuning batch a step."""
    config = RunConfig(env=env, env_params=env_params, objective="db")
    config.model.hidden = args.hidden
    config.train.batch_size, config.train.seed, config.train.lr_schedule = args.ft_batch, seed, "constant"
    config.train.threads = 1
    return config


def amortised_settings(args):
    return {
        "loss": args.loss,
        "lr": args.ft_lr,
        "k": args.k,
        "q_epsilon": args.q_epsilon,
        "updates": args.updates,
        "teacher": args.teacher,
        "replay": args.replay,
        "minibatch": args.minibatch,
        "posterior": args.posterior,
    }


def tfbind8_amortised_settings(method, args):
    """``amortised``: the settings of the arguments; ``amortised_terminal`` (and ``_oracle``): the same
    with no Q, each move's outcome its rollout's own end state (one R' call a trajectory)."""
    settings = amortised_settings(args)
    if method.startswith("amortised_terminal"):
        settings.update(posterior="terminal", k=1, teacher=0)
    return settings


def finetune_curve(method, trainer, reward, args, seed, tables):
    """Rows (samples, modes found, reward calls) while adapting, and the final exact L1; ``tables``
    are the pretrained model's conditional tables (they do not depend on the reward)."""
    env = trainer.env
    log_reward = lambda x: reward(x).log().float()  # noqa: E731
    modes = reward.mode_index(env)
    found = torch.zeros(env.n_states, dtype=torch.bool)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    steps = args.budget // args.ft_batch
    if method.startswith("exact"):
        flows = "visits" if method == "exact_visits" else "head"
        sampler = ExactMarginal(env, trainer.policy, log_reward, tables, flows)
        draw = lambda: (sampler.sample(args.ft_batch, generator).terminal, sampler.reward_calls)  # noqa: E731
    elif method == "amortised":
        sampler = Amortised(env, trainer.policy, log_reward, args.hidden, 2, **amortised_settings(args))
        draw = lambda: (sampler.step(args.ft_batch, generator)[0].terminal, sampler.reward_calls)  # noqa: E731
    else:
        config = downstream_config("hypergrid", {"dim": 2, "side": args.side}, args, seed)
        sampler = DownstreamTrainer(config, log_reward, trainer.policy if method == "continue" else None)
        calls = iter(range(args.ft_batch, 10**12, args.ft_batch))

        def draw():
            sampler.train_step()
            return sampler.last_trajectories.terminal, next(calls)

    rows = []
    for step in range(1, steps + 1):
        x, reward_calls = draw()
        found[env.state_index(x)] = True
        if step % max(steps // 20, 1) == 0 or step == steps:
            rows.append(
                {"samples": step * args.ft_batch, "modes_found": int(found[modes].sum()), "reward_calls": reward_calls}
            )
    if method.startswith("exact"):
        log_pf = sampler.log_pf
    else:
        log_pf, _ = policy_log_probs(env, sampler.n if method == "amortised" else sampler.policy)
    target, _ = target_distribution(RewardSwap(env, log_reward))
    return rows, distances(terminal_distribution(env, log_pf), target)["l1"]


def summarise(finals, methods):
    """Markdown table: per method, modes found at the budget and exact L1 (mean and sd)."""

    def stat(values):
        return f"{statistics.mean(values):.2f} ± {statistics.pstdev(values):.2f}"

    lines = ["| method | modes found (of n) | reward calls | exact L1 to R'/Z' |", "|---|---|---|---|"]
    for m in methods:
        rows = [f for f in finals if f["method"] == m]
        lines.append(
            f"| {m} | {stat([r['modes_found'] for r in rows])} (of {rows[0]['n_modes']}) | "
            f"{stat([r['reward_calls'] for r in rows])} | {stat([r['l1'] for r in rows])} |"
        )
    return "\n".join(lines)


def plot(curve, rows, methods, path):
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot([r["trajectories"] for r in curve], [r["success_rate"] for r in curve], marker="o")
    a.set(xlabel="pretraining trajectories", ylabel="success rate", title="pretraining", ylim=(0, 1.02))
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        xs = sorted({r["samples"] for r in mine})
        ys = [statistics.mean(r["modes_found"] for r in mine if r["samples"] == x) for x in xs]
        b.plot(xs, ys, label=m)
    b.set(xlabel="samples while adapting", ylabel="modes found (mean over tasks and seeds)", title="fine-tuning")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


SEQUENCE_TASKS = {"tfbind8": ("tfbind8", {}), "bitseq40": ("bitseq", {"n": 40, "k": 4})}


def pretrain_study(args, out):
    """Pretraining alone on a sequence task: the success-rate curve, as CSV and markdown."""
    env, params = SEQUENCE_TASKS[args.pretrain_only]
    _, curve = pretrain(args, out / f"ocgfn_{args.pretrain_only}", env, params)
    with open(out / f"ocgfn_{args.pretrain_only}_pretrain.csv", "w", newline="") as f:
        writer = csv.DictWriter(
            f, fieldnames=["trajectories", "success_rate", "train_success_rate"], extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows(curve)
    text = (
        f"# OC-GFN pretraining on {args.pretrain_only} ({env} {params})\n\n| trajectories | success rate |\n"
        "|---|---|\n" + "".join(f"| {r['trajectories']} | {r['success_rate']:.3f} |\n" for r in curve)
    )
    (out / f"ocgfn_{args.pretrain_only}.md").write_text(text)
    print(text)
    return curve


def top_found(env, top, sequences):
    """Distinct sequences of the top set (bool ``[n_states]``) among ``sequences`` ``[N, L]``."""
    seen = torch.zeros_like(top)
    seen[env.state_index(sequences)] = True
    return int((seen & top).sum())


TFBIND8_METHODS = [
    "amortised",
    "amortised_terminal",
    "amortised_terminal_oracle",
    "scratch",
    "scratch_replay",
    "continue",
]


def tfbind8_run(method, pre, top, log_reward, args, seed):
    """Rows (R' calls, samples, top-100 found among the evaluated sequences, and for the amortised
    predictor among N's unevaluated samples) while adapting on ``log_reward``, until ``args.budget``
    R' calls. A call is one distinct sequence evaluated: scratch / continue evaluate each new sample,
    the amortised predictor each new outcome Q proposes, or each new end state of N's rollouts with
    the terminal posterior (``RewardCache``). ``amortised_terminal_oracle`` fine-tunes the exact
    OC-GFN of the tree (``TreeOracle``) instead of the pretrained one: a control, since that carries
    nothing about R'."""
    env = pre.env
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    rows, samples = [], 0
    if method.startswith("amortised"):
        sampler = Amortised(
            env,
            TreeOracle(env) if method == "amortised_terminal_oracle" else pre.policy,
            log_reward,
            args.hidden,
            2,
            **tfbind8_amortised_settings(method, args),
            max_reward_calls=args.budget,
        )
        drawn = torch.zeros_like(top)
        while sampler.reward_calls < args.budget and samples < args.max_samples:
            traj, _ = sampler.step(args.ft_batch, generator)
            samples += args.ft_batch
            drawn[env.state_index(traj.terminal)] = True
            evaluated, _ = sampler.rewards.evaluated()
            rows.append(
                {
                    "reward_calls": sampler.reward_calls,
                    "samples": samples,
                    "top100_found": top_found(env, top, evaluated),
                    "top100_sampled": int((drawn & top).sum()),
                }
            )
        return rows
    config = downstream_config("tfbind8", {}, args, seed)
    replay = None
    if method == "scratch_replay":  # the amortised predictor's updates, lr and replayed transitions
        config.train.lr = args.ft_lr
        replay = ReplayBuffer(max(args.replay // env.max_steps, 1), env.max_steps, env.exit_action)
    trainer = DownstreamTrainer(config, log_reward, pre.policy if method == "continue" else None)
    seen = torch.zeros_like(top)
    while int(seen.sum()) < args.budget and samples < args.max_samples:
        trainer.train_step()
        fresh = trainer.last_trajectories
        samples += args.ft_batch
        if replay is not None:
            replay.add(fresh)
            for _ in range(args.updates - 1):
                trainer.learn(replay.sample(max(args.minibatch // env.max_steps, 1), generator))
        seen[env.state_index(fresh.terminal)] = True
        found = int((seen & top).sum())
        rows.append(
            {"reward_calls": int(seen.sum()), "samples": samples, "top100_found": found, "top100_sampled": found}
        )
    return rows


def sampler_ceiling(log_reward, top, calls, repeats=200, seed=0):
    """Top-100 found (mean, sd over ``repeats``) by a perfect sampler of R'/Z' in its first ``calls``
    distinct draws: the first ``calls`` of a random order drawn without replacement in proportion to
    R' (keys log(u) / R', u uniform; Efraimidis and Spirakis 2006). ``log_reward`` ``[Y]`` of the
    outcomes, ``top`` bool ``[Y]``."""
    generator = torch.Generator().manual_seed(seed)
    weights = (log_reward.double() - log_reward.max()).exp()
    found = []
    for _ in range(repeats):
        keys = torch.rand(len(weights), generator=generator, dtype=torch.float64).log() / weights
        found.append(float(top[keys.topk(calls).indices].sum()))
    return statistics.mean(found), statistics.pstdev(found)


def at_samples(rows, n):
    """The last row with at most ``n`` samples."""
    return [r for r in rows if r["samples"] <= n][-1]


def downstream_study(args, out):
    """TF Bind 8 with R' = the measured binding or its "shen" transform (``--tfbind8-reward``; the
    pretraining is reward-free, one for both): the amortised OC-GFN against DB GFlowNets from scratch
    and from the pretrained trunk, the same budget of R' calls; distinct top-100 sequences found among
    the evaluated ones (the same 100 for both rewards: the transform is increasing)."""
    pre, _ = pretrain(args, out / "ocgfn_tfbind8", "tfbind8", {})
    env = pre.env
    log_reward = TFBind8(reward=args.tfbind8_reward, device=env.device).log_reward
    outcomes = env.all_outcomes()
    top = torch.zeros(env.n_states, dtype=torch.bool)
    top[env.state_index(outcomes[env.binding.topk(100).indices])] = True
    name = f"ocgfn_tfbind8_downstream_{args.tfbind8_reward}{args.tag}"
    runs = []
    for method in args.methods:
        for seed in args.seeds:
            rows = tfbind8_run(method, pre, top, log_reward, args, seed)
            runs += [{"method": method, "seed": seed, **r} for r in rows]
            print(method, seed, rows[-1], file=sys.stderr)
    with open(out / f"{name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(runs[0]))
        writer.writeheader()
        writer.writerows(runs)
    fig, ax = plt.subplots(figsize=(6, 4))
    lines = [
        f"# TF Bind 8, R' = {args.tfbind8_reward}: top-100 sequences found with {args.budget} R' calls\n",
        "| method | found at the budget (per seed) | mean | samples drawn | found within 10,000 samples |",
        "|---|---|---|---|---|",
    ]
    for method in args.methods:
        finals, within, drawn = [], [], []
        for seed in args.seeds:
            mine = [r for r in runs if r["method"] == method and r["seed"] == seed]
            ax.plot(
                [r["reward_calls"] for r in mine],
                [r["top100_found"] for r in mine],
                color=f"C{args.methods.index(method)}",
                label=method if seed == args.seeds[0] else None,
            )
            finals.append(mine[-1]["top100_found"])
            within.append(at_samples(mine, 10_000)["top100_found"])
            drawn.append(mine[-1]["samples"])
        lines.append(
            f"| {method} | {', '.join(map(str, finals))} | {statistics.mean(finals):.1f} | "
            f"{', '.join(map(str, drawn))} | {', '.join(map(str, within))} |"
        )
    ax.set(
        xlabel="R' calls (distinct sequences evaluated)",
        ylabel="top-100 found",
        title=f"TF Bind 8, R' = {args.tfbind8_reward}",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=120)
    plt.close(fig)
    top_outcomes = top[env.state_index(outcomes)]
    mean, sd = sampler_ceiling(log_reward(outcomes), top_outcomes, min(args.budget, len(outcomes)))
    lines.append(f"\nA perfect sampler of R'/Z' finds {mean:.1f} ± {sd:.1f} at the budget (mean ± sd over 200 runs).")
    text = "\n".join(lines) + "\n"
    (out / f"{name}.md").write_text(text)
    print(text)
    return runs


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a small grid and budgets, for CI")
    p.add_argument("--side", type=int, default=16)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64, help="pretraining trajectories per step")
    p.add_argument("--pretrain-trajectories", type=int, default=96_000)
    p.add_argument("--evals", type=int, default=12, help="success-rate measurements during pretraining")
    p.add_argument("--success-samples", type=int, default=500)
    p.add_argument("--tasks", type=int, default=3, help="downstream random rewards")
    p.add_argument("--n-modes", type=int, default=12)
    p.add_argument("--budget", type=int, default=2000, help="samples generated while adapting")
    p.add_argument("--ft-batch", type=int, default=16)
    amortised = AmortisedSettings()  # the defaults of `gflownet finetune --method amortised`
    p.add_argument("--k", type=int, default=amortised.k, help="outcomes per transition (amortised)")
    p.add_argument("--loss", choices=["importance", "residual"], default=amortised.loss, help="amortised loss")
    p.add_argument("--q-epsilon", type=float, default=amortised.q_epsilon, help="uniform share of Q's proposal")
    p.add_argument("--ft-lr", type=float, default=amortised.lr, help="learning rate of N and Q (amortised)")
    p.add_argument("--updates", type=int, default=amortised.updates, help="gradient steps per batch (amortised)")
    p.add_argument("--teacher", type=int, default=amortised.teacher, help="pretrained rollouts a step")
    p.add_argument("--replay", type=int, default=amortised.replay, help="transitions kept for the updates")
    p.add_argument("--minibatch", type=int, default=amortised.minibatch, help="transitions per update (0: all)")
    p.add_argument("--posterior", default=amortised.posterior, help="amortised Q (AmortisedSettings.posterior)")
    p.add_argument("--max-samples", type=int, default=40_000, help="TF Bind 8: stop a run here if calls remain")
    p.add_argument(
        "--methods",
        nargs="+",
        choices=TFBIND8_METHODS,
        default=["amortised", "scratch"],
        help="TF Bind 8 methods",
    )
    p.add_argument("--tfbind8-reward", choices=TFBIND8_REWARDS, default="binding", help="TF Bind 8 downstream R'")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--tag", default="", help="TF Bind 8: appended to the result files' names")
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument(
        "--pretrain-only",
        choices=sorted(SEQUENCE_TASKS),
        help="pretrain on a sequence task and report its success rate (no fine-tuning)",
    )
    p.add_argument(
        "--downstream-tfbind8",
        action="store_true",
        help="TF Bind 8 on --tfbind8-reward: top-100 found by --methods within --budget R' calls",
    )
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.quick:
        args.side, args.hidden, args.batch_size, args.pretrain_trajectories = 5, 64, 32, 4800
        args.evals, args.success_samples, args.tasks, args.n_modes = 3, 200, 1, 3
        args.budget, args.seeds = 160, [0]
    torch.set_num_threads(1)
    out = Path(args.out)
    if args.pretrain_only:
        return pretrain_study(args, out)
    if args.downstream_tfbind8:
        return downstream_study(args, out)
    tag = "quick" if args.quick else f"h{args.side}"
    trainer, curve = pretrain(args, out / f"ocgfn_{tag}")
    rows, finals = [], []
    tables = conditional_log_probs(trainer.env, trainer.policy, trainer.env.all_outcomes())
    for task in range(args.tasks):
        reward = RandomModes(2, args.side, args.n_modes, seed=1000 + task)
        for method in METHODS:
            for seed in args.seeds:
                curve_rows, l1 = finetune_curve(method, trainer, reward, args, seed, tables)
                rows += [{"task": task, "method": method, "seed": seed, **r} for r in curve_rows]
                finals.append(
                    {"task": task, "method": method, "seed": seed, "l1": l1, "n_modes": args.n_modes, **curve_rows[-1]}
                )
                print(f"task {task} {method:9s} seed {seed}: {curve_rows[-1]}, L1 {l1:.3f}", file=sys.stderr)
    with open(out / f"ocgfn_{tag}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(out / f"ocgfn_{tag}_pretrain.csv", "w", newline="") as f:
        writer = csv.DictWriter(
            f, fieldnames=["trajectories", "success_rate", "train_success_rate"], extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows(curve)
    table = summarise(finals, METHODS)
    final_success = curve[-1]["success_rate"]
    text = (
        f"# OC-GFN on a 2-D hypergrid of side {args.side}\n\n"
        f"Pretraining: {args.pretrain_trajectories} trajectories, final success rate {final_success:.3f} "
        f"({args.success_samples} uniform outcomes).\n\n"
        f"Fine-tuning: {args.tasks} random rewards x {len(args.seeds)} seeds, {args.budget} samples each "
        f"({args.n_modes} modes per reward).\n\n{table}\n"
    )
    (out / f"ocgfn_{tag}.md").write_text(text)
    (out / f"ocgfn_{tag}.json").write_text(json.dumps({"pretrain": curve, "finals": finals}, indent=1))
    plot(curve, rows, METHODS, out / f"ocgfn_{tag}.png")
    print(text)


if __name__ == "__main__":
    main()
