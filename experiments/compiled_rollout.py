#!/usr/bin/env python
"""Compiled against eager rollout, step by step in one process (gflownet.compiled).

On a machine shared with other jobs, separate timed runs differ by more than the
effect measured. Here one trainer alternates the two rollouts, step after step (the
order flips every pair), and trains on each batch, so both see the same load and the
same policy; the ratios are what the script reports. The compile time is that of the
first compiled rollout in this process (cold or warm depending on inductor's cache,
``TORCHINDUCTOR_CACHE_DIR``), and the break-even is the number of training steps
after which the compiled rollout has paid its compile back.

  python experiments/compiled_rollout.py                # 4-D H=8, batch 16 and 256
  python experiments/compiled_rollout.py --quick        # 2-D H=6, batch 8

Writes experiments/results/compiled_rollout{,_quick}.{csv,md,png}.
"""

import argparse
import time
from pathlib import Path

import torch
from bench_hypergrid import speedup_bars, write_rows

from gflownet.compiled import CompiledRollout
from gflownet.config import RunConfig
from gflownet.sampler import sample_forward
from gflownet.trainer import Trainer

HERE = Path(__file__).resolve().parent
CASES = [(4, 8, 16), (4, 8, 256)]  # (dim, side, batch)
QUICK = [(2, 6, 8)]


def measure(dim, side, batch, pairs, hidden, threads):
    config = RunConfig(env_params={"dim": dim, "side": side})
    config.model.hidden = hidden
    config.train.batch_size, config.train.trajectories, config.train.threads = batch, batch * 10**6, threads
    config.train.compile = "false"
    trainer = Trainer(config)
    compiled = CompiledRollout(trainer.env, trainer.policy, batch)
    start = time.perf_counter()
    compiled.sample(trainer.generator)
    compile_s = time.perf_counter() - start

    def eager():
        return sample_forward(trainer.env, trainer.policy, batch, generator=trainer.generator)

    seconds = {"eager": [0.0, 0.0], "compiled": [0.0, 0.0]}
    for i in range(pairs):
        order = [("eager", eager), ("compiled", compiled.sample)]
        for name, rollout in order if i % 2 else order[::-1]:
            t0 = time.perf_counter()
            traj = rollout()
            traj.log_reward = trainer.env.log_reward(traj.terminal)
            t1 = time.perf_counter()
            trainer.learn(traj)
            seconds[name][0] += t1 - t0
            seconds[name][1] += time.perf_counter() - t1
    eager_step, compiled_step = (sum(seconds[k]) / pairs for k in ("eager", "compiled"))
    saving = eager_step - compiled_step
    return {
        "dim": dim,
        "side": side,
        "batch": batch,
        "pairs": pairs,
        "threads": torch.get_num_threads(),
        "compile_s": compile_s,
        "eager_rollout_ms": 1e3 * seconds["eager"][0] / pairs,
        "compiled_rollout_ms": 1e3 * seconds["compiled"][0] / pairs,
        "eager_step_ms": 1e3 * eager_step,
        "compiled_step_ms": 1e3 * compiled_step,
        "rollout_speedup": seconds["eager"][0] / seconds["compiled"][0],
        "step_speedup": eager_step / compiled_step,
        "break_even_steps": compile_s / saving if saving > 0 else None,
    }


def markdown(rows) -> str:
    lines = [
        "| D | H | batch | threads | compile s | rollout ms eager / compiled | step ms eager / compiled "
        "| speed-up rollout / step, x | break-even steps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        even = "never" if r["break_even_steps"] is None else f"{r['break_even_steps']:,.0f}"
        lines.append(
            f"| {r['dim']} | {r['side']} | {r['batch']} | {r['threads']} | {r['compile_s']:.1f} "
            f"| {r['eager_rollout_ms']:.2f} / {r['compiled_rollout_ms']:.2f} "
            f"| {r['eager_step_ms']:.2f} / {r['compiled_step_ms']:.2f} "
            f"| {r['rollout_speedup']:.2f} / {r['step_speedup']:.2f} | {even} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows, path: Path) -> None:
    labels = [f"D{r['dim']} H{r['side']} b{r['batch']}" for r in rows]
    series = {kind: [r[f"{kind}_speedup"] for r in rows] for kind in ("rollout", "step")}
    speedup_bars(labels, series, "eager time / compiled time", "compiled rollout, alternating steps (CPU)", path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one tiny case, to check the script")
    p.add_argument("--pairs", type=int, default=300, help="eager + compiled training steps per case")
    p.add_argument("--threads", type=int, default=1, help="torch threads, the same for both rollouts")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    cases, hidden, pairs = (QUICK, 32, 20) if args.quick else (CASES, 256, args.pairs)
    rows = []
    for case in cases:
        rows.append(measure(*case, pairs, hidden, args.threads))
        print(rows[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "compiled_rollout_quick" if args.quick else "compiled_rollout"
    write_rows(out, name, rows, markdown(rows), plot)
    print(markdown(rows))
    return rows


if __name__ == "__main__":
    main()
