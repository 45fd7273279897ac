"""Throughput of the fragment molecule environment (sEH 105 blocks, at most 9
blocks, GNN trunk 2 x 64), batch 64, CPU, one torch thread in the sampling process:

  rollout          sampled terminal states per second (tensor rollouts only)
  rollout+smiles   the same plus RDKit molecules and canonical SMILES in-process
  rollout+workers  RDKit in W worker processes while the next batch is sampled
  train tb/qed     TB training steps (rollout, QED reward, one packed backward)

    python experiments/bench_molecules.py            # writes experiments/results/bench_molecules.*
    python experiments/bench_molecules.py --quick
"""
from __future__ import annotations

import argparse
import json
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
    fn()  # warm-up
    start = time.perf_counter()
    out = [fn() for _ in range(repeats)]
    return time.perf_counter() - start, out


def bench(batches: int, batch: int, workers: int, train_steps: int) -> list[dict]:
    torch.set_num_threads(1)
    env = FragmentEnv()
    policy = Policy(env, hidden=64, layers=2, backward="uniform")
    generator = torch.Generator().manual_seed(0)
    rows = []

    def rollout():
        return sample_forward(env, policy, batch, generator=generator).terminal

    seconds, _ = timed(rollout, batches)
    rows.append({"case": "rollout", "per_s": batches * batch / seconds})
    seconds, out = timed(lambda: env.object_rows(rollout()), batches)
    rows.append({"case": "rollout+smiles", "per_s": batches * batch / seconds})
    assert all(r[0] for rs in out for r in rs)
    with ProcessPoolExecutor(workers, initializer=_init_worker) as pool:
        pool.submit(_smiles, rollout().numpy()).result()  # start the workers
        start = time.perf_counter()
        futures = [pool.submit(_smiles, rollout().numpy()) for _ in range(batches)]
        smiles = [s for f in futures for s in f.result()]
        seconds = time.perf_counter() - start
    assert len(smiles) == batches * batch and all(smiles)
    rows.append({"case": f"rollout+workers({workers})", "per_s": len(smiles) / seconds})
    config = RunConfig(env="fragments", env_params={"reward": "qed"})
    config.model.hidden, config.model.backward = 64, "uniform"
    config.train.batch_size, config.train.trajectories, config.train.threads = batch, batch * train_steps, 1
    trainer = Trainer(config)
    seconds, _ = timed(trainer.train_step, train_steps)
    rows.append({"case": "train tb/qed", "per_s": train_steps * batch / seconds})
    for r in rows:
        r.update(batch=batch, unit="trajectories/s")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
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
    lines = ["| case | batch | trajectories/s |", "|---|---|---|"]
    lines += [f"| {r['case']} | {r['batch']} | {r['per_s']:.0f} |" for r in rows]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return rows


if __name__ == "__main__":
    main()
