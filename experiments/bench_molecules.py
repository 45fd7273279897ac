"""Throughput of the fragment molecule environment (sEH 105 blocks, at most 9
blocks, GNN trunk 2 x 64), batch 64, CPU, one torch thread in the sampling process:

  rollout          sampled terminal states per second (tensor rollouts only)
  rollout+smiles   the same plus RDKit molecules and canonical SMILES in-process
  rollout+workers  RDKit in W worker processes while the next batches are sampled
  train tb/qed     TB training steps (rollout, QED reward, one packed backward)

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
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from gflownet.config import RunConfig
from gflownet.environments.fragments import FragmentEnv
from gflownet.policy import Policy
from gflownet.sampler import sample_forward
from gflownet.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results"
_WORKER_ENV = None


def _init_worker():
    global _WORKER_ENV
    torch.set_num_threads(1)
    _WORKER_ENV = FragmentEnv()


def _smiles(states):
    return [row[0] for row in _WORKER_ENV.object_rows(torch.from_numpy(states))]


def timed(fn, repeats):
    """(wall seconds, CPU seconds of this process, outputs) of ``repeats`` calls after a warm-up."""
    fn()
    start, cpu = time.perf_counter(), time.process_time()
    out = [fn() for _ in range(repeats)]
    return time.perf_counter() - start, time.process_time() - cpu, out


def bench(batches: int, batch: int, workers: list[int], train_steps: int) -> list[dict]:
    torch.set_num_threads(1)
    env = FragmentEnv()
    policy = Policy(env, hidden=64, layers=2, backward="uniform")
    generator = torch.Generator().manual_seed(0)
    rows = []

    def rollout():
        return sample_forward(env, policy, batch, generator=generator).terminal

    seconds, cpu, _ = timed(rollout, batches)
    rows.append({"case": "rollout", "per_s": batches * batch / seconds, "per_cpu_s": batches * batch / cpu})
    seconds, cpu, out = timed(lambda: env.object_rows(rollout()), batches)
    rows.append({"case": "rollout+smiles", "per_s": batches * batch / seconds, "per_cpu_s": batches * batch / cpu})
    assert all(r[0] for rs in out for r in rs)
    for n_workers in workers:
        with ProcessPoolExecutor(n_workers, initializer=_init_worker) as pool:
            for f in [pool.submit(_smiles, rollout().numpy()) for _ in range(n_workers)]:
                f.result()  # start the workers
            start = time.perf_counter()
            futures = [pool.submit(_smiles, rollout().numpy()) for _ in range(batches)]
            smiles = [s for f in futures for s in f.result()]
            seconds = time.perf_counter() - start
        assert len(smiles) == batches * batch and all(smiles)
        rows.append({"case": f"rollout+workers({n_workers})", "per_s": len(smiles) / seconds, "per_cpu_s": None})
    config = RunConfig(env="fragments", env_params={"reward": "qed"})
    config.model.hidden, config.model.backward = 64, "uniform"
    config.train.batch_size, config.train.trajectories, config.train.threads = batch, batch * train_steps, 1
    trainer = Trainer(config)
    seconds, cpu, _ = timed(trainer.train_step, train_steps)
    rows.append(
        {"case": "train tb/qed", "per_s": train_steps * batch / seconds, "per_cpu_s": train_steps * batch / cpu}
    )
    for r in rows:
        r.update(batch=batch, unit="trajectories/s")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="RDKit worker processes to try")
    p.add_argument("--train-steps", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="a few batches (CI)")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    if args.quick:
        args.batches, args.train_steps = 2, 2
    rows = bench(args.batches, args.batch, args.workers, args.train_steps)
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
    lines += [
        f"| {r['case']} | {r['batch']} | {r['per_s']:.0f} | "
        f"{'-' if r['per_cpu_s'] is None else format(r['per_cpu_s'], '.0f')} |"
        for r in rows
    ]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return rows


if __name__ == "__main__":
    main()
