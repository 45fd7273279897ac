"""How informative is the intermediate energy on the sEH fragment task?

Forward-looking objectives (FL-SubTB) rest on the energy of a partial molecule,
E(s) = -log R(s) = -beta log s(s), telling something about the rewards of the
molecules that s grows into: they learn F~(s) = F(s) exp(E(s)), which is easier
than F(s) only where log R(s) tracks log F(s). This measures that premise.

From the rollouts of a policy (uniform, or trained with a method of seh_frag.py),
up to --per-size distinct partial molecules s of each size n (blocks, 1 .. max - 1)
are completed --completions times by the same policy (stopping at once included:
s is its own descendant). Reported by n, and over all sizes pooled: the Spearman
rank correlation of -E(s) with the mean and with the max of log R over the
completions of s, and the spread of what a flow must learn without the energy (that
mean, ~ log F(s) within one size) and with it (the mean + E(s), ~ log F~(s)).

    python experiments/seh_fl_energy.py --policy uniform                # experiments/results/seh_fl_energy_uniform.*
    python experiments/seh_fl_energy.py --policy subtb --train-trajectories 6400
    python experiments/seh_fl_energy.py --quick --policy tb           # a smoke run (CI)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seh_frag import METHODS, RESULTS, make_trainer, write_csv_and_table  # noqa: E402

from gflownet.environments.fragments import FragmentEnv  # noqa: E402
from gflownet.policy import masked_log_softmax  # noqa: E402

SEH_FLOOR = 0.1 / 8  # the score of a molecule whose proxy is <= 0.1 (environments/molrewards.py)


@torch.no_grad()
def roll_out(env, logits_of, states: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Trajectories from ``states`` ``[B, *state_shape]``, each action drawn from
    softmax(``logits_of(states)`` ``[B, A]``) over the legal ones, until every row exits.
    Returns the visited states ``[B, T+1, *state_shape]`` (an exited row repeats its last state)."""
    visited = [states]
    done = torch.zeros(len(states), dtype=torch.bool, device=states.device)
    for _ in range(env.max_steps):
        if bool(done.all()):
            break
        probs = masked_log_softmax(logits_of(states), env.forward_mask(states)).exp()
        actions = torch.multinomial(probs, 1, generator=generator).squeeze(1).masked_fill(done, env.exit_action)
        states = env.step(states, actions)
        done |= actions == env.exit_action
        visited.append(states)
    return torch.stack(visited, 1)


def partial_states(env, logits_of, rollouts: int, per_size: int, generator) -> dict[int, torch.Tensor]:
    """n -> up to ``per_size`` distinct states of n blocks (n = 1 .. max_blocks - 1) visited by
    ``rollouts`` trajectories from s_0, in a random order."""
    visited = roll_out(env, logits_of, env.reset(rollouts), generator).flatten(0, 1)
    n_blocks = env.n_placed(visited)
    out = {}
    for n in range(1, env.max_blocks):
        distinct = torch.unique(visited[n_blocks == n], dim=0)
        if len(distinct):
            out[n] = distinct[torch.randperm(len(distinct), generator=generator)[:per_size]]
    return out


def descendant_log_rewards(env, logits_of, states: torch.Tensor, k: int, generator) -> torch.Tensor:
    """log R of ``k`` completions of each state, ``[N, k]``."""
    terminal = roll_out(env, logits_of, states.repeat_interleave(k, 0), generator)[:, -1]
    return env.log_reward(terminal).view(len(states), k)


def rank_correlation(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman's rho of two ``[N]`` tensors; NaN where either is constant (no ranking)."""
    if bool((x == x[0]).all()) or bool((y == y[0]).all()):
        return float("nan")
    return float(spearmanr(x, y).statistic)


def energy_correlation(energy: torch.Tensor, descendants: torch.Tensor, at_floor: torch.Tensor) -> dict:
    """Spearman correlation of -E(s) ``[N]`` with the mean and the max over the completions of
    s of log R ``[N, k]``; the spread (std) of -E(s), of that mean (what a flow log F(s) must
    follow) and of the mean + E(s) (what the forward-looking flow log F~(s) must follow:
    the energy helps where this is the smaller); the fraction of the s whose own score is
    the reward's floor (``at_floor`` ``[N]`` bool: E(s) then says nothing about s)."""
    mean, best = descendants.mean(1), descendants.max(1).values
    return {
        "states": len(energy),
        "spearman_mean": rank_correlation(-energy, mean),
        "spearman_max": rank_correlation(-energy, best),
        "std_log_r_s": float((-energy).std()),
        "std_mean_log_r_desc": float(mean.std()),
        "std_mean_plus_e": float((mean + energy).std()),
        "at_floor": float(at_floor.double().mean()),
    }


def policy_logits(args):
    """(environment, states -> logits): the uniform policy, or a policy trained with a method."""
    if args.policy == "uniform":
        env = FragmentEnv(reward="seh", beta=args.beta)
        return env, lambda s: torch.zeros(len(s), env.n_actions, device=s.device)
    trainer = make_trainer(
        args.policy, args.train_trajectories, args.batch, args.seed, args.hidden, args.layers, args.beta
    )
    while trainer.step_count < trainer.total_steps:
        trainer.train_step()
    policy = trainer.policy.eval()
    return trainer.env, lambda s: policy.forward_logits(trainer.env.featurize(s))


def measure(env, logits_of, rollouts, per_size, completions, seed) -> list[dict]:
    """One row per size n and one pooled row (size "all")."""
    generator = torch.Generator(device=env.device).manual_seed(seed)
    columns, rows = [], []
    for n, states in partial_states(env, logits_of, rollouts, per_size, generator).items():
        energy = env.log_energy(states)
        desc = descendant_log_rewards(env, logits_of, states, completions, generator)
        at_floor = env.submit_scores(states).result() <= SEH_FLOOR
        columns.append((energy, desc, at_floor))
        rows.append({"blocks": n, **energy_correlation(energy, desc, at_floor)})
    rows.append({"blocks": "all", **energy_correlation(*(torch.cat(c) for c in zip(*columns)))})
    return rows


def write_outputs(rows, out: Path, name: str, title: str) -> str:
    """CSV, markdown table and a plot of the correlations against the size."""
    header = ["blocks", "states", "Spearman with mean log R", "Spearman with max log R", "std of -E(s)"]
    body = [
        [r["blocks"], r["states"], f"{r['spearman_mean']:.2f}", f"{r['spearman_max']:.2f}", f"{r['std_log_r_s']:.2f}"]
        + [f"{r['std_mean_log_r_desc']:.2f}", f"{r['std_mean_plus_e']:.2f}", f"{r['at_floor']:.0%}"]
        for r in rows
    ]
    header += ["std of mean log R", "std of mean log R + E(s)", "s at the floor"]
    table = write_csv_and_table(rows, out, name, title, header, body)
    sizes = [r for r in rows if r["blocks"] != "all"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, label in (("spearman_mean", "mean of descendants"), ("spearman_max", "max of descendants")):
        ax.plot([r["blocks"] for r in sizes], [r[key] for r in sizes], marker="o", label=label)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("blocks in the partial molecule s")
    ax.set_ylabel("Spearman(-E(s), log R of descendants)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=100)
    plt.close(fig)
    return table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", default="uniform", choices=["uniform", *METHODS])
    p.add_argument("--train-trajectories", type=int, default=6400, help="training budget of a trained policy")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--beta", type=float, default=10.0, help="reward exponent")
    p.add_argument("--rollouts", type=int, default=512, help="trajectories the partial molecules are drawn from")
    p.add_argument("--per-size", type=int, default=64, help="partial molecules of each size")
    p.add_argument("--completions", type=int, default=8, help="completions of each partial molecule")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.train_trajectories, args.batch, args.rollouts, args.per_size, args.completions = 32, 16, 32, 4, 2
    torch.manual_seed(args.seed)
    env, logits_of = policy_logits(args)
    rows = measure(env, logits_of, args.rollouts, args.per_size, args.completions, args.seed)
    env.close()
    trained = "" if args.policy == "uniform" else f" trained for {args.train_trajectories} trajectories"
    title = (
        f"sEH fragments, beta {args.beta}: -E(s) against the log-rewards of {args.completions} completions "
        f"of s, policy {args.policy}{trained}, seed {args.seed}"
    )
    name = f"seh_fl_energy_{args.policy}" + (f"_seed{args.seed}" if args.seed else "")
    name += "_quick" if args.quick else ""
    table = write_outputs(rows, Path(args.out), name, title)
    print(table)
    return rows


if __name__ == "__main__":
    main()
