#!/usr/bin/env python
"""Write tests/data/ehrlich_fixture.npz from pytorch-holo 0.0.5's Ehrlich functions.

Run in a side venv that has pytorch-holo (it pins numpy < 2, so it cannot live in the
library's environment):
  python -m venv /work/side/seq-holo
  /work/side/seq-holo/bin/pip install /opt/wheels/torch-2.13.0+cpu-*.whl   # torch first: no CUDA build
  /work/side/seq-holo/bin/pip install pytorch-holo==0.0.5
  /work/side/seq-holo/bin/python experiments/peers/ehrlich_fixture.py

For each configuration and seed the fixture holds holo's transition matrix, motifs,
spacings and values (``evaluate_true``: -inf where infeasible) on sequences of three
kinds: samples of the DMP, uniform samples, and mutated optima (1 to 4 random point
mutations of holo's optimal solution). Keys: ``{name}_s{seed}_{field}``, and ``configs``
(one row per configuration: num_states, dim, num_motifs, motif_length, quantization,
epistasis_factor), ``names`` and ``seeds``.
"""
import argparse
import importlib.metadata
from pathlib import Path

import numpy as np
import torch
from holo.test_functions.closed_form import Ehrlich
from holo.test_functions.elemental import sample_dmp

# name: num_states, dim, num_motifs, motif_length, quantization, epistasis_factor
CONFIGS = {
    "holo_default": (5, 7, 1, 3, 3, 0.0),
    "small": (32, 32, 2, 4, 4, 0.0),
    "epistatic": (20, 24, 3, 3, 3, 0.5),
    "coarse": (16, 40, 2, 6, 3, 0.0),
    "benchmark": (32, 256, 4, 8, 8, 0.0),
}
SEEDS = (0, 1, 2)


def sequences(f: Ehrlich, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + seed)
    dmp = sample_dmp(f.stationary_dist.squeeze(-1), f.transition_matrix, f.dim, n, generator=g)
    uniform = torch.randint(f.num_states, (n, f.dim), generator=g)
    optimum = f.optimal_solution().expand(n, -1).clone()
    for row in optimum:
        k = int(torch.randint(1, 5, (1,), generator=g))
        where = torch.randperm(f.dim, generator=g)[:k]
        row[where] = torch.randint(f.num_states, (k,), generator=g)
    return torch.cat([dmp, uniform, f.optimal_solution()[None], optimum])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "tests/data/ehrlich_fixture.npz"))
    parser.add_argument("--per-kind", type=int, default=400, help="sequences of each kind per config and seed")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = {"configs": np.array(list(CONFIGS.values()), dtype=np.float64), "names": np.array(list(CONFIGS)),
            "seeds": np.array(SEEDS), "holo_version": np.array(importlib.metadata.version("pytorch-holo"))}
    for name, (states, dim, motifs, length, quantization, epistasis) in CONFIGS.items():
        for seed in SEEDS:
            f = Ehrlich(num_states=states, dim=dim, num_motifs=motifs, motif_length=length,
                        quantization=quantization, epistasis_factor=epistasis, random_seed=seed)
            x = sequences(f, args.per_kind, seed)
            key = f"{name}_s{seed}_"
            data[key + "transition"] = f.transition_matrix.numpy()
            data[key + "motifs"] = torch.stack(f.motifs).numpy()
            data[key + "spacings"] = torch.stack(f.spacings).numpy()
            data[key + "x"] = x.numpy().astype(np.int8)
            data[key + "values"] = f.evaluate_true(x).numpy()
            print(f"{name} seed {seed}: {len(x)} sequences, {int(np.isinf(data[key + 'values']).sum())} infeasible, "
                  f"max {data[key + 'values'].max():.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **data)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
