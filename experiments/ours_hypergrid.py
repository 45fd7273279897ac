#!/usr/bin/env python
"""This library's side of the hypergrid benchmark: same command line and timing
record as experiments/peers/torchgfn_hypergrid.py (see bench_common.py).

  python experiments/ours_hypergrid.py --dim 4 --side 8 --batch-size 16 --trajectories 24000
Extra: --set KEY=VALUE passes any library parameter (e.g. lr_schedule=constant).
"""

import time

T_TOP = time.perf_counter()
T_TOP_WALL = time.time()

import os  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402

from gflownet.config import RunConfig  # noqa: E402
from gflownet.trainer import Trainer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import Clock, parse_args, train_loop, write_result  # noqa: E402

T_IMPORTED = time.perf_counter()


def main():
    args = parse_args(
        __doc__.splitlines()[0], lambda p: p.add_argument("--set", action="append", default=[], dest="assignments")
    )
    config = RunConfig(
        env_params={"dim": args.dim, "side": args.side, "r0": args.r0, "r1": args.r1, "r2": args.r2},
        objective=args.objective,
        objective_params={"lam": args.subtb_lambda} if args.objective == "subtb" else {},
    )
    config.model.hidden, config.model.layers = args.hidden, args.layers
    t = config.train
    t.batch_size, t.trajectories, t.seed, t.lr, t.lr_logz = (
        args.batch_size,
        args.trajectories,
        args.seed,
        args.lr,
        args.lr_logz,
    )
    t.threads = args.threads or 0
    config.apply(args.assignments)
    clock = Clock(T_TOP, args.warmup)
    trainer = Trainer(config)

    def evaluate(done):
        return {"trajectories": done, **trainer.evaluate()}

    evals, loss = train_loop(clock, trainer.total_steps, args.batch_size, args.eval_every, trainer.train_step, evaluate)
    timing = clock.record(trainer.total_steps, args.batch_size, T_IMPORTED, T_TOP_WALL)
    evals.append(evaluate(trainer.total_steps * args.batch_size))
    result = {
        "library": "gflownet",
        "torch_version": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "config": vars(args),
        "library_config": config.to_dict(),
        **timing,
        "final_loss": loss,
        "evals": evals,
        "cuda_graph": trainer.graphed is not None,
    }
    if trainer.device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(trainer.device)
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated(trainer.device) / 2**20
    write_result(result, args.json)


if __name__ == "__main__":
    main()
