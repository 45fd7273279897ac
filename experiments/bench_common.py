"""What the two sides of the hypergrid benchmark share: the command line (so both
train the same configuration) and the timing record (so both are timed alike).

Plain Python: imported by this library's runner and by the peers' runners, each
in its own virtual environment.
"""

import argparse
import json
import os
import time


def parse_args(description: str, extra=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--dim", type=int, default=4)
    p.add_argument("--side", type=int, default=8)
    p.add_argument("--r0", type=float, default=0.1)
    p.add_argument("--r1", type=float, default=0.5)
    p.add_argument("--r2", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--trajectories", type=int, default=160_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2, help="hidden layers in the trunk")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-logz", type=float, default=0.1)
    p.add_argument("--objective", choices=["tb", "db", "subtb"], default="tb")
    p.add_argument("--subtb-lambda", type=float, default=0.9)
    p.add_argument("--eval-every", type=int, default=16_000, help="in trajectories; 0 = only at the end")
    p.add_argument("--warmup", type=int, default=20, help="iterations excluded from steady-state timing")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=str, default=None)
    if extra:
        extra(p)
    return p.parse_args()


def interpreter_startup_s(top_wall: float):
    """Best effort (Linux): seconds from process start to ``top_wall`` (time.time())."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        since_boot = time.clock_gettime(time.CLOCK_BOOTTIME) - (time.time() - top_wall)
        return since_boot - start_ticks / os.sysconf("SC_CLK_TCK")
    except Exception:
        return None


class Clock:
    """Training time with evaluation time taken out; steady state after ``warmup`` iterations."""

    def __init__(self, top: float, warmup: int):
        self.top, self.warmup, self.eval_s = top, warmup, 0.0
        self.start = time.perf_counter()
        self.steady_start = self.start if warmup <= 0 else None
        self.eval_at_steady = 0.0

    def iteration_done(self, iteration: int):
        if iteration == self.warmup:
            self.steady_start, self.eval_at_steady = time.perf_counter(), self.eval_s

    def timed_eval(self, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        self.eval_s += time.perf_counter() - t
        return out

    def record(self, iterations: int, batch: int, imported: float, top_wall: float) -> dict:
        end = time.perf_counter()
        steady_iters = iterations - max(self.warmup, 0)
        steady_s = end - self.steady_start - (self.eval_s - self.eval_at_steady) if steady_iters > 0 else None
        whole_s = end - self.top - self.eval_s
        return {
            "iterations": iterations,
            "trajectories_trained": iterations * batch,
            "import_s": imported - self.top,
            "interpreter_startup_s": interpreter_startup_s(top_wall),
            "train_s": end - self.start - self.eval_s,
            "steady_iterations": steady_iters,
            "steady_s": steady_s,
            "steady_traj_per_s": steady_iters * batch / steady_s if steady_s else None,
            "whole_process_s": whole_s,
            "whole_traj_per_s": iterations * batch / whole_s,
            "eval_s_total": self.eval_s,
        }


def train_loop(clock: Clock, iterations: int, batch: int, eval_every: int, step, evaluate):
    """``step()`` ``iterations`` times, ``evaluate(trajectories)`` at 0 and every
    ``eval_every`` trajectories (timed apart); returns the evaluations and the last loss."""
    evals = [clock.timed_eval(evaluate, 0)] if eval_every > 0 else []
    next_eval = eval_every if eval_every > 0 else None
    loss = float("nan")
    for it in range(iterations):
        loss = step()
        done = (it + 1) * batch
        clock.iteration_done(it + 1)
        if next_eval is not None and done >= next_eval and it + 1 < iterations:
            evals.append(clock.timed_eval(evaluate, done))
            print(json.dumps(evals[-1]), flush=True)
            while next_eval <= done:
                next_eval += eval_every
    return evals, float(loss)


def write_result(result: dict, path: str | None) -> None:
    print(text := json.dumps(result, indent=2))
    if path:
        with open(path, "w") as f:
            f.write(text + "\n")
