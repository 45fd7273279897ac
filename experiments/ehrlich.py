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

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seqbench import arguments, benchmark, genetic_algorithm, train_gflownet  # noqa: E402

from gflownet.environments.ehrlich import Ehrlich, sample_chain  # noqa: E402

HERE = Path(__file__).resolve().parent
SMALL = {"num_states": 32, "length": 32, "num_motifs": 2, "motif_length": 4, "quantization": 4}


def _calls(env, record):
    return len(record)


def _fitness(env, tokens):
    return env.function(tokens).double()


def main(argv=None):
    parser = arguments(__doc__.splitlines()[1], 50_000, ["tb", "subtb", "ga"], HERE / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    budget = 800 if args.quick else args.budget

    def run(method, seed):
        if method != "ga":
            return train_gflownet(
                "ehrlich",
                SMALL,
                method,
                seed,
                budget,
                1.0,
                _calls,
                _fitness,
                SMALL["length"],
                epsilon=0.05,
                hidden=64 if args.quick else 256,
            )
        f = Ehrlich(**SMALL).function
        g = torch.Generator().manual_seed(seed)
        initial = torch.stack([sample_chain(f.stationary, f.transition_matrix, f.length, g) for _ in range(64)])
        return genetic_algorithm(lambda x: f(x).double(), initial, f.num_states, budget, seed, 1.0)

    notes = (
        f"Small configuration {SMALL}, function seed 0; budget {budget} function calls per run, run seeds "
        f"{args.seeds}; `python experiments/ehrlich.py {' '.join(argv if argv is not None else sys.argv[1:])}`. "
        "Best f is the fraction of the optimum (1) reached."
    )
    rows = benchmark(
        "ehrlich_small",
        args.seeds,
        args.methods,
        run,
        Path(args.out),
        "ehrlich_quick" if args.quick else f"ehrlich_b{budget}",
        "Ehrlich function, small configuration",
        "optima (f = 1)",
        notes,
        args.merge,
    )
    return rows


if __name__ == "__main__":
    main()
