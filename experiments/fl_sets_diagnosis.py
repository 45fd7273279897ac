#!/usr/bin/env python
"""Why FL-DB is not twice as fast as DB on the |U|=12, |S|=6 set task (issue 10).

Two studies, the small study's settings of ``fl_sets.py`` (2x256 MLP, Adam 1e-3 constant,
16 trajectories a step, learned P_B, one behaviour policy for both methods):

  --trace     exact L1 and the model's log F(s_0) against the exact log Z, every ``--every``
              trajectories: where the trajectories go.
  --variants  trajectories to exact L1 <= 0.05 (median over the seeds) of DB and FL-DB with
              the terminal flow handled four ways:
                ours      learned, tied to R by the exit residual (F(x) = R(x); FL: F~(x) = 1);
                released  as in the released set code (ling-pan/FL-GFN set/gflownet.py): DB
                          substitutes F(x) = R(x), FL-DB leaves F~(x) free (no exit residual);
                known     the known value substituted for both (F(x) = R(x), F~(x) = 1);
                flow_x10  ours, with the flow head's output multiplied by 10 (its row
                          initialised 10x smaller): Adam moves log F ten times as fast.
  --leaky     a LeakyReLU trunk (the released code's activation) for every run.

  python experiments/fl_sets_diagnosis.py --trace --seeds 1
  python experiments/fl_sets_diagnosis.py --variants --seeds 0 1 2
  python experiments/fl_sets_diagnosis.py --quick        # a few seconds (CI)

Writes experiments/results/fl_sets_diagnosis*.csv / .md.
"""

import argparse
import csv
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from gflownet.objectives import Objective, detailed_balance, get_objective
from gflownet.objectives.fl import fl_detailed_balance

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fl_sets import trainer_for  # noqa: E402

HERE = Path(__file__).resolve().parent
TARGET = 0.05


def known_terminal_flow(log_pf, log_flow, log_reward, lengths, complete):
    """``log_flow`` with log F(x) = log R(x) - log P_F(stop|x) at the exit state x of each complete
    trajectory (the value the exit residual asks for; log R(x) at a set, whose exit is forced)."""
    B, T = log_pf.shape
    exit_t = (lengths - 1).clamp_min(0)
    known = log_reward - log_pf.gather(1, exit_t[:, None]).squeeze(1)
    done = torch.ones(B, dtype=torch.bool, device=lengths.device) if complete is None else complete
    at_x = (torch.arange(T + 1, device=lengths.device) == exit_t[:, None]) & done[:, None]
    return torch.where(at_x, known[:, None], log_flow)


def db_known(ev):
    """DB with the known terminal flow substituted (the released set code's DB)."""
    log_flow = known_terminal_flow(ev.log_pf, ev.log_flow, ev.log_reward, ev.lengths, ev.complete)
    return detailed_balance(ev.log_pf, ev.log_pb, log_flow, ev.log_reward, ev.lengths, ev.complete)


def fl_db_known(ev):
    """FL-DB with F~(x) = 1 / P_F(stop|x) substituted (1 at a set)."""
    log_flow = ev.log_flow - ev.state_energy
    log_flow = known_terminal_flow(ev.log_pf, log_flow, ev.log_reward, ev.lengths, ev.complete)
    return detailed_balance(ev.log_pf, ev.log_pb, log_flow, ev.log_reward, ev.lengths, ev.complete)


def fl_db_free(ev):
    """The released set code's FL-DB: the moves only, F~(x) of the last state left to the network."""
    moves = ev.lengths - (1 if ev.complete is None else ev.complete.long())
    cut = torch.zeros_like(ev.lengths, dtype=torch.bool)
    return fl_detailed_balance(ev.log_pf, ev.log_pb, ev.log_flow, ev.state_energy, moves, cut, ev.log_reward)


# the variants' losses, each on the estimates of the library objective it modifies (kept out
# of the library's registry: they are diagnostics)
LOSSES = {"db_known": ("db", db_known), "fl_db_known": ("fl_db", fl_db_known), "fl_db_free": ("fl_db", fl_db_free)}


def objective_of(name):
    """The Objective ``name``: a library one, or a variant of LOSSES."""
    if name not in LOSSES:
        return get_objective(name)
    base, loss = LOSSES[name]
    return Objective(name, loss, get_objective(base).needs, summary="fl_sets_diagnosis variant")


VARIANTS = {
    "ours": ("db", "fl_db", 1.0),
    "released": ("db_known", "fl_db_free", 1.0),
    "known": ("db_known", "fl_db_known", 1.0),
    "flow_x10": ("db", "fl_db", 10.0),
}


def scale_flow_head(policy, factor):
    """Multiply the policy's log F output by ``factor``, its head row divided by it (same start)."""
    if factor == 1.0:
        return
    with torch.no_grad():
        policy.head.weight[-1] /= factor
        policy.head.bias[-1] /= factor
    heads = policy.heads

    def scaled(features, cond=None):
        fwd, bwd, flow = heads(features, cond)
        return fwd, bwd, flow * factor

    policy.heads = scaled


def leaky_trunk(policy):
    """The MLP trunk with LeakyReLU (slope 0.01, torch's default) for ReLU: the released code's."""
    mlp = policy.trunk.mlp

    def forward(x):
        for linear in mlp.linears:
            x = F.leaky_relu(F.linear(x, linear.weight, linear.bias))
        return x

    mlp.forward = forward


def run(objective, seed, epsilon, temperature, every, trajectories, factor=1.0, stop=True, assignments=(), leaky=False):
    """Rows (trajectories, L1, log F(s_0), exact log Z) every ``every`` trajectories."""
    base = LOSSES[objective][0] if objective in LOSSES else objective
    trainer = trainer_for(12, 6, base, seed, epsilon, trajectories, 0, temperature, ["threads=1", *assignments])
    trainer.objective = objective_of(objective)
    scale_flow_head(trainer.policy, factor)
    if leaky:
        leaky_trunk(trainer.policy)
    batch, rows = trainer.config.train.batch_size, []
    while trainer.step_count < trainer.total_steps:
        trainer.train_step()
        n = trainer.step_count * batch
        if n % every == 0:
            m = trainer.evaluate()
            rows.append({"trajectories": n, "l1": m["l1"], "log_f_s0": m["log_z"], "log_z": m["true_log_z"]})
            if stop and m["l1"] <= TARGET:
                break
    return rows


def crossing(rows):
    hits = [r["trajectories"] for r in rows if r["l1"] <= TARGET]
    return hits[0] if hits else math.inf


def median(values):
    return sorted(values)[len(values) // 2]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trace", action="store_true")
    p.add_argument("--variants", nargs="*", choices=list(VARIANTS), help="(no names: all four)")
    p.add_argument("--quick", action="store_true", help="a few seconds: one short trace, one variant")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epsilon", type=float, default=0.0, help="behaviour of both methods")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--every", type=int, default=32, help="trajectories between exact evaluations")
    p.add_argument("--trajectories", type=int, default=12_800)
    p.add_argument("--leaky", action="store_true", help="LeakyReLU trunk (the released code's) for every run")
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    if args.quick:
        args.trace, args.variants, args.seeds, args.every, args.trajectories = True, ["released"], [0], 160, 320
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report, rows = [], []
    if args.trace:
        for method in ("db", "fl_db"):
            for seed in args.seeds:
                trace = run(
                    method, seed, args.epsilon, args.temperature, args.every, args.trajectories, leaky=args.leaky
                )
                rows += [{"study": "trace", "method": method, "seed": seed, **r} for r in trace]
                report.append(f"\ntrace {method} seed {seed} (epsilon {args.epsilon}, T {args.temperature})")
                report.append("| trajectories | L1 | log F(s0) | log Z |\n|---|---|---|---|")
                report += [
                    f"| {r['trajectories']} | {r['l1']:.3f} | {r['log_f_s0']:.2f} | {r['log_z']:.2f} |" for r in trace
                ]
    if args.variants is not None:
        trunk = ", LeakyReLU" if args.leaky else ""
        report.append(
            f"\n| variant (epsilon {args.epsilon}, T {args.temperature}{trunk}) | DB (per seed) | FL-DB | ratio |"
        )
        report.append("|---|---|---|---|")
        for name in args.variants or list(VARIANTS):
            db, fl, factor = VARIANTS[name]
            found, cells = {}, {}
            for method in (db, fl):
                found[method], cells[method] = [], []
                for seed in args.seeds:
                    curve = run(
                        method,
                        seed,
                        args.epsilon,
                        args.temperature,
                        args.every,
                        args.trajectories,
                        factor,
                        leaky=args.leaky,
                    )
                    rows += [{"study": name, "method": method, "seed": seed, **r} for r in curve]
                    found[method].append(crossing(curve))
                    # a run that never crosses: its final L1
                    cells[method].append(
                        str(found[method][-1])
                        if found[method][-1] < math.inf
                        else f"none (L1 {curve[-1]['l1']:.3f} at {curve[-1]['trajectories']})"
                    )
                    print(f"{name} {method} seed {seed}: {cells[method][-1]}", file=sys.stderr, flush=True)
            d, f = median(found[db]), median(found[fl])
            report.append(f"| {name} | {', '.join(cells[db])} ({d}) | {', '.join(cells[fl])} ({f}) | {f / d:.2f} |")
    with open(out / f"fl_sets_diagnosis{args.tag}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["study", "method", "seed", "trajectories", "l1", "log_f_s0", "log_z"])
        writer.writeheader()
        writer.writerows(rows)
    (out / f"fl_sets_diagnosis{args.tag}.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
