"""Throughput of the fragment molecule environment (sEH 105 blocks, at most 9
blocks, GNN trunk 2 x 64), batch 64, CPU, one torch thread in the sampling process:

  rollout                 sampled terminal states per second (tensor rollouts only)
  rollout+qed             the same plus the QED reward (RDKit molecule, canonical SMILES), in-process
  rollout+qed workers(W)  the library's reward pool (``reward_workers=W``): each batch is
                          scored in W RDKit worker processes while the next one is sampled
  train OBJ/qed workers(W)  training steps (rollout, QED reward, one packed backward);
                          with W > 0 the workers score while the forward pass runs

Wall-clock rates, and rates per CPU second of the sampling process (what one free
core would give where the machine is shared).

    python experiments/bench_molecules.py            # writes experiments/results/bench_molecules.*
    python experiments/bench_molecules.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from gflownet.config import RunConfig
from gflownet.environments.fragments import FragmentEnv
from gflownet.policy import Policy
from gflownet.reward_pool import submit_log_reward
from gflownet.sampler import sample_forward
from gflownet.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn, repeats):
    """(wall seconds, CPU seconds of this process, outputs) of ``repeats`` calls after a warm-up."""
    fn()
    start, cpu = time.perf_counter(), time.process_time()
    out = [fn() for _ in range(repeats)]
    return time.perf_counter() - start, time.process_time() - cpu, out


def row(case, n, seconds, cpu):
    return {"case": case, "per_s": n / seconds, "per_cpu_s": n / cpu}


def bench(batches: int, batch: int, workers: list[int], train_steps: int, objectives: list[str]) -> list[dict]:
    torch.set_num_threads(1)
    rows = []
    for n_workers in [0, *workers]:
        rows += bench_workers(n_workers, batches, batch, train_steps, objectives)
    for r in rows:
        r.update(batch=batch, unit="trajectories/s")
    return rows


def bench_workers(n_workers: int, batches: int, batch: int, train_steps: int, objectives: list[str]) -> list[dict]:
    """The cases with ``reward_workers = n_workers`` (0: in-process; then also the bare rollout)."""
    rows = []
    env = FragmentEnv(reward="qed", reward_workers=n_workers)
    policy = Policy(env, hidden=64, layers=2, backward="uniform")
    generator = torch.Generator().manual_seed(0)

    def rollout():
        return sample_forward(env, policy, batch, generator=generator).terminal

    if n_workers == 0:
        seconds, cpu, _ = timed(rollout, batches)
        rows.append(row("rollout", batches * batch, seconds, cpu))

    def pipelined():  # batch k is scored while batch k + 1 samples (as gflownet sample does)
        pending = [submit_log_reward(env, rollout()) for _ in range(batches)]
        return torch.cat([p.result() for p in pending])

    seconds, cpu, out = timed(pipelined, 1)
    assert all(len(o) == batches * batch and (o > -50).all() for o in out)
    rows.append(row(f"rollout+qed workers({n_workers})", batches * batch, seconds, cpu))
    env.close()
    for objective in objectives:
        config = RunConfig(env="fragments", env_params={"reward": "qed", "reward_workers": n_workers})
        config.objective = objective
        config.model.hidden, config.model.backward = 64, "uniform"
        config.train.batch_size, config.train.trajectories, config.train.threads = batch, batch * train_steps, 1
        trainer = Trainer(config)
        seconds, cpu, _ = timed(trainer.train_step, train_steps)
        rows.append(row(f"train {objective}/qed workers({n_workers})", train_steps * batch, seconds, cpu))
        trainer.env.close()
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="RDKit worker processes to try")
    p.add_argument("--objectives", nargs="+", default=["tb", "fl_subtb"], help="objectives of the training cases")
    p.add_argument("--train-steps", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="a few batches, 2 workers, TB only (CI)")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    if args.quick:
        args.batches, args.train_steps, args.workers, args.objectives = 2, 2, [2], ["tb"]
    rows = bench(args.batches, args.batch, args.workers, args.train_steps, args.objectives)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "bench_molecules_quick" if args.quick else "bench_molecules"
    (out / f"{name}.json").write_text(json.dumps(rows, indent=2))
    load = os.getloadavg()[0]
    lines = [
        f"load average {load:.1f} on {os.cpu_count()} cores during the run",
        "",
        "| case | batch | trajectories/s (wall) | per CPU second of the sampling process |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['case']} | {r['batch']} | {r['per_s']:.0f} | {r['per_cpu_s']:.0f} |" for r in rows]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return rows


if __name__ == "__main__":
    main()
