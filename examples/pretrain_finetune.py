"""Outcome-conditioned GFlowNets on a 4 x 4 hypergrid: pretrain once without a reward,
then sample a reward the pretraining never saw, by exact marginalisation and by the
amortised predictor. Run it: ``python examples/pretrain_finetune.py``.
"""

# --8<-- [start:pretrain]
from pathlib import Path

import torch

import gflownet
from gflownet.oc_runs import pretrain
from gflownet.pretrain import OCConfig

torch.set_num_threads(1)
config = gflownet.make_config(
    env="hypergrid", dim=2, side=4, hidden=64, lr=3e-3, batch_size=16, trajectories=16_000, eval_every=8000
)
summary = pretrain(config, OCConfig(), Path("runs/pre"), overwrite=True, progress=False)  # gflownet pretrain
print(f"success rate: {summary['success_rate']:.3f}")  # y drawn uniformly, the fraction of rollouts ending at y
assert summary["success_rate"] >= 0.95
# --8<-- [end:pretrain]

# --8<-- [start:reward]
import sys

Path("diagonal.py").write_text("""import torch


def reward(x):  # x: [B, 2] long grid points -> R'(x) [B], largest on the diagonal
    return torch.exp(-2.0 * (x[:, 0] - x[:, 1]).abs().float())
""")
sys.path.insert(0, str(Path.cwd()))  # python:diagonal:reward is imported from the working directory
# --8<-- [end:reward]

# --8<-- [start:exact]
from gflownet.metrics import terminal_distribution
from gflownet.oc_runs import FinetuneConfig, finetune, load_sampler

exact = finetune(
    Path("runs/pre"),
    FinetuneConfig(method="exact", reward="python:diagonal:reward"),
    Path("runs/ft_exact"),
    progress=False,
)  # gflownet finetune runs/pre --method exact ...
print({k: round(v, 4) for k, v in exact.items() if isinstance(v, float)})

sampler = load_sampler("runs/ft_exact")
p_model = terminal_distribution(sampler.env, sampler.policy.log_pf)  # exact P_T of the fine-tuned sampler, [16]
x = sampler.env.all_states()
p_target = sampler.log_reward(x).softmax(0)  # R'/Z' over the 16 states
l1 = (p_model - p_target).abs().sum().item()
assert abs(l1 - exact["l1"]) < 1e-6 and l1 < 0.05, l1
assert exact["reward_calls"] == 16  # R' of each outcome, once
# --8<-- [end:exact]

# --8<-- [start:cli]
from gflownet.cli import main

assert (
    main(
        [
            "finetune",
            "runs/pre",
            "--reward",
            "python:diagonal:reward",
            "--method",
            "amortised",
            "--trajectories",
            "800",
            "--out",
            "runs/ft_amortised",
            "--no-progress",
        ]
    )
    == 0
)
assert main(["sample", "runs/ft_amortised", "--n", "2000", "--out", "ft.csv"]) == 0

import csv
import json

amortised = json.loads(Path("runs/ft_amortised/summary.json").read_text())
rows = list(csv.DictReader(open("ft.csv")))
on_diagonal = sum(row["x0"] == row["x1"] for row in rows) / len(rows)
target_share = p_target[x[:, 0] == x[:, 1]].sum().item()
print(
    f"amortised: exact L1 {amortised['l1']:.3f}; {on_diagonal:.1%} of 2,000 samples on the diagonal, "
    f"R'/Z' puts {target_share:.1%} there"
)
assert list(rows[0]) == ["x0", "x1", "log_reward"] and len(rows) == 2000
assert amortised["l1"] < 0.1 and abs(on_diagonal - target_share) < 0.05
# --8<-- [end:cli]
