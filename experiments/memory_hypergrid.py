#!/usr/bin/env python
"""Memory: peak RSS of a batch-4096 rollout on the 4-D hypergrid of side 20, and a leak
check (resident memory over a long training run).

  python experiments/memory_hypergrid.py              # 10-minute leak check
  python experiments/memory_hypergrid.py --minutes 3  # shorter; --quick for a test-sized run

The leak check trains TB (4-D, side 8, batch 256, 2x256 MLP) for the given time,
samples the resident set size every few steps, and reports its growth from the end of
the first tenth of the run (allocator and caches warmed up) to the end.
Writes experiments/results/memory_hypergrid.{json,md,png}.
"""

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from gflownet.config import RunConfig
from gflownet.environments import make_env
from gflownet.policy import Policy
from gflownet.sampler import sample_forward
from gflownet.trainer import Trainer

HERE = Path(__file__).resolve().parent
MIB = 1 << 20


def rss_mib() -> float:
    """Resident set size of this process now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / MIB


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def rollout_peak(dim: int, side: int, batch: int) -> dict:
    env = make_env("hypergrid", dim=dim, side=side)
    policy = Policy(env)
    before_rss, before_peak = rss_mib(), peak_rss_mib()
    start = time.perf_counter()
    traj = sample_forward(env, policy, batch, generator=torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - start
    return {
        "dim": dim,
        "side": side,
        "batch": batch,
        "steps": traj.max_length,
        "rollout_s": seconds,
        "rss_before_mib": before_rss,
        "peak_rss_mib": peak_rss_mib(),
        "peak_before_mib": before_peak,
        "trajectory_tensors_mib": (traj.states.nbytes + traj.actions.nbytes) / MIB,
    }


def leak_check(minutes: float, batch: int) -> dict:
    config = RunConfig(env_params={"dim": 4, "side": 8}, objective="tb")
    config.train.batch_size, config.train.trajectories = batch, 1 << 40  # stopped by the clock
    trainer = Trainer(config)
    samples, start = [], time.perf_counter()
    while (elapsed := time.perf_counter() - start) < minutes * 60:
        for _ in range(10):
            trainer.train_step()
        samples.append((elapsed, trainer.step_count, rss_mib()))
    warm = next(s for s in samples if s[0] >= samples[-1][0] / 10)
    return {
        "minutes": minutes,
        "batch": batch,
        "steps": trainer.step_count,
        "rss_warm_mib": warm[2],
        "rss_end_mib": samples[-1][2],
        "growth_mib": samples[-1][2] - warm[2],
        "rss_max_mib": max(s[2] for s in samples),
        "samples": samples,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="length of the leak check")
    p.add_argument("--quick", action="store_true", help="small rollout, 10-second leak check")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    peak = rollout_peak(2, 8, 256) if args.quick else rollout_peak(4, 20, 4096)
    leak = leak_check(1 / 6 if args.quick else args.minutes, 64 if args.quick else 256)
    name = "memory_hypergrid_quick" if args.quick else "memory_hypergrid"
    (out / f"{name}.json").write_text(json.dumps({"rollout": peak, "leak": leak}, indent=1))
    table = (
        f"| rollout D={peak['dim']} H={peak['side']} batch {peak['batch']} | {peak['steps']} steps "
        f"| RSS before {peak['rss_before_mib']:.0f} MiB | peak {peak['peak_rss_mib']:.0f} MiB "
        f"| trajectory tensors {peak['trajectory_tensors_mib']:.1f} MiB |\n|---|---|---|---|---|\n\n"
        f"| leak check | steps | RSS after the first tenth | RSS at the end | growth |\n|---|---|---|---|---|\n"
        f"| {leak['minutes']:.2f} min, 4-D H=8 TB batch {leak['batch']} | {leak['steps']:,} "
        f"| {leak['rss_warm_mib']:.1f} MiB | {leak['rss_end_mib']:.1f} MiB | {leak['growth_mib']:+.1f} MiB |\n"
    )
    (out / f"{name}.md").write_text(table)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([s[0] / 60 for s in leak["samples"]], [s[2] for s in leak["samples"]])
    ax.set_xlabel("minutes of training")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=120)
    plt.close(fig)
    print(table)
    return peak, leak


if __name__ == "__main__":
    main()
