#!/usr/bin/env python
"""Ehrlich functions (holo's closed form, environments/ehrlich.py): TB and SubTB
GFlowNets against a genetic algorithm at a fixed budget of function calls, on the small
configuration (32 states, length 32, 2 motifs of length 4, quantization 4) by default.

Budget: distinct sequences scored. The GFlowNets only build feasible sequences (the
environment masks banned transitions); the GA scores whatever it breeds, and an
infeasible child (f = -inf, holo's value) costs a call and never survives. Reported: the
best f (the optimum is 1, so it is also the fraction of the optimum reached), how many
distinct optima (f = 1) were found, the mean f of the best 100 and their diversity.

GFlowNets: 2x256 MLP, batch 16, Adam 1e-3 (log Z 1e-1), constant rates, learned P_B,
training reward max(f, 1e-3)^3, epsilon-uniform exploration 0.05.
GA: population 64, binary tournaments, uniform crossover, mutation 1/L per position,
elitist survival (children win ties), started from 64 samples of the function's Markov chain (feasible).

  python experiments/ehrlich.py --quick                  # < 60 s
  python experiments/ehrlich.py --budget 50000 --seeds 0 1 2

Writes experiments/results/ehrlich_{quick,b<budget>}.{csv,md,png}.
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seqbench import benchmark, genetic_algorithm, train_gflownet  # noqa: E402

from gflownet.environments.ehrlich import Ehrlich, sample_chain  # noqa: E402

HERE = Path(__file__).resolve().parent
SMALL = {"num_states": 32, "length": 32, "num_motifs": 2, "motif_length": 4, "quantization": 4}


def _calls(env, record):
    return len(record)


def _fitness(env, tokens):
    return env.function(tokens).double()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="a tiny budget, for CI (< 60 s)")
    parser.add_argument("--budget", type=int, default=50_000, help="function calls per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the run (the function is seed 0)")
    parser.add_argument("--methods", nargs="+", default=["tb", "subtb", "ga"])
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--merge", action="store_true",
                        help="rerun only --methods, keeping the other methods' rows of the existing CSV")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    budget = 800 if args.quick else args.budget

    def run(method, seed):
        if method != "ga":
            return train_gflownet("ehrlich", SMALL, method, seed, budget, 1.0, _calls, _fitness, SMALL["length"],
                                  epsilon=0.05, hidden=64 if args.quick else 256)
        f = Ehrlich(**SMALL).function
        g = torch.Generator().manual_seed(seed)
        initial = torch.stack([sample_chain(f.stationary, f.transition_matrix, f.length, g) for _ in range(64)])
        return genetic_algorithm(lambda x: f(x).double(), initial, f.num_states, budget, seed, 1.0)

    notes = (f"Small configuration {SMALL}, function seed 0; budget {budget} function calls per run, run seeds "
             f"{args.seeds}; `python experiments/ehrlich.py {' '.join(argv if argv is not None else sys.argv[1:])}`. "
             "Best f is the fraction of the optimum (1) reached.")
    if args.merge:
        notes += f" Rows of methods other than {', '.join(args.methods)} are kept from the earlier run."
    rows = benchmark("ehrlich_small", args.seeds, args.methods, run, Path(args.out),
                     "ehrlich_quick" if args.quick else f"ehrlich_b{budget}", "Ehrlich function, small configuration",
                     "optima (f = 1)", notes, args.merge)
    return rows


if __name__ == "__main__":
    main()
