#!/usr/bin/env python
"""RNA binding L14 (target RNA1; ViennaRNA duplexfold, environments/rna.py): TB, SubTB
and FL-SubTB GFlowNets against a genetic algorithm, at a fixed budget of reward calls.

Reward calls: distinct sequences folded against the target (the environment caches, so
a sequence costs once). FL-SubTB also folds every prefix (its energy, environments/rna.py),
and those folds count against its budget too. Reported over the distinct 14-mers each
method scored: the number with f >= 0.9 (modes), the mean f of the best 100, the best f,
and the mean Hamming distance between the best 100 (diversity).

GFlowNets: 2x256 MLP, batch 16, Adam 1e-3 (log Z 1e-1), constant rates, learned P_B,
training reward max(f, 1e-3)^8, epsilon-uniform exploration 0.05.
GA: population 64, binary tournaments, uniform crossover, mutation 1/14 per position,
elitist survival (children win ties), started from 64 uniform sequences.

  python experiments/rna.py --quick                      # < 60 s
  python experiments/rna.py --budget 100000 --seeds 0    # the issue's budget

Writes experiments/results/rna_l14_{quick,b<budget>}.{csv,md,png}.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seqbench import arguments, benchmark, genetic_algorithm, train_gflownet  # noqa: E402

from gflownet.environments.rna import RNABinding  # noqa: E402

HERE = Path(__file__).resolve().parent
LENGTH, THRESHOLD = 14, 0.9
OBJECTIVES = {"tb": "tb", "subtb": "subtb", "fl_subtb": "fl_subtb"}


def _calls(env, record):
    return env.calls


def _fitness(env, tokens):
    return env.fitness(tokens)  # cached: no new folds


def main(argv=None):
    parser = arguments(__doc__.splitlines()[1], 100_000, [*OBJECTIVES, "ga"], HERE / "results")
    parser.add_argument("--workers", type=int, default=2, help="folding processes")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    budget = 600 if args.quick else args.budget
    params = {"length": LENGTH, "targets": "RNA1", "workers": args.workers}

    def run(method, seed):
        if method != "ga":
            return train_gflownet(
                "rna",
                params,
                OBJECTIVES[method],
                seed,
                budget,
                THRESHOLD,
                _calls,
                _fitness,
                LENGTH,
                epsilon=0.05,
                hidden=64 if args.quick else 256,
            )
        env = RNABinding(**params)
        initial = torch.randint(4, (64, LENGTH), generator=torch.Generator().manual_seed(seed))
        curve = genetic_algorithm(env.fitness, initial, 4, budget, seed, THRESHOLD)
        env.close()
        return curve

    notes = (
        f"Budget {budget} reward calls per run, seeds {args.seeds}; `python experiments/rna.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`. FL-SubTB's budget includes its prefix folds."
    )
    stem = "rna_l14_quick" if args.quick else f"rna_l14_b{budget}"
    rows = benchmark(
        "rna_l14_RNA1",
        args.seeds,
        args.methods,
        run,
        Path(args.out),
        stem,
        "RNA binding L14 (RNA1)",
        "with f >= 0.9",
        notes,
        args.merge,
    )
    return rows


if __name__ == "__main__":
    main()
