"""The Python API on a hypergrid: train, evaluate exactly, sample, plot, report.

Each call is one command of the CLI. Run it: ``python examples/hypergrid_api.py``.
"""

# --8<-- [start:train]
import gflownet

run = gflownet.train(
    env="hypergrid",
    objective="db",
    out="runs/grid",
    dim=2,
    side=8,
    hidden=64,
    batch_size=16,
    trajectories=12_000,
    eval_every=2000,
    overwrite=True,
)
print(run.summary)  # what `gflownet train` prints: steps, speed, final loss, exact L1 / KL / JSD, log Z
# --8<-- [end:train]

# --8<-- [start:load]
run = gflownet.load("runs/grid")  # gflownet evaluate runs/grid
metrics = run.evaluate(n_samples=2000)  # exact metrics by dynamic programming + metrics of 2,000 samples
print({k: round(v, 4) for k, v in metrics.items()})
# --8<-- [end:load]

# --8<-- [start:exact]
import torch

from gflownet.metrics import policy_log_probs, terminal_distribution

p_model = terminal_distribution(run.env, policy_log_probs(run.env, run.policy)[0])  # exact P_T, [64]
x, log_r = run.sample(20_000, seed=1)  # gflownet sample runs/grid --n 20000
counts = torch.bincount(run.env.state_index(x), minlength=run.env.n_states)
sampling_error = (counts / len(x) - p_model).abs().sum().item()
print(f"L1 between 20,000 samples and the exact P_T: {sampling_error:.3f} (sampling noise only)")
assert sampling_error < 0.1
# --8<-- [end:exact]

# --8<-- [start:outputs]
csv_path = run.write_csv("runs/grid/samples.csv", 1000)  # x0, x1, log_reward
pngs = run.plot()  # gflownet plot runs/grid
page = run.report(n_samples=2000)  # gflownet report runs/grid
print(csv_path, *pngs, page)
# --8<-- [end:outputs]
