"""Your own environment in one screen: bags of beads, trained with trajectory balance.

A bag holds k beads of n colours, added one at a time; R(bag) = exp(number of
distinct colours). Run it: ``python examples/beads.py`` (about ten seconds on a CPU).
"""

# --8<-- [start:environment]
import torch

from gflownet.environments import Environment
from gflownet.environments.base import unit_moves


class Beads(Environment):
    """Bags of k beads of n colours (multisets), one bead at a time; R = exp(distinct colours)."""

    def __init__(self, n: int = 4, k: int = 6, device="cpu"):
        self.n, self.k, self.device = n, k, torch.device(device)
        self.n_actions, self.n_backward_actions = n + 1, n  # add a bead of colour c < n; action n exits
        self.state_shape, self.feature_dim, self.max_steps = (n,), n * (k + 1), k + 1
        self.n_states = (k + 1) ** n  # every count vector with counts <= k (totals above k: unreachable)
        self.moves = unit_moves(n, self.device)  # row c adds 1 to count c; the exit row is zero
        self.powers = (k + 1) ** torch.arange(n, device=self.device)

    def reset(self, batch):
        return torch.zeros(batch, self.n, dtype=torch.long, device=self.device)

    def forward_mask(self, states):  # add while the bag is not full; exit only when it is
        total = states.sum(-1, keepdim=True)
        return torch.cat([(total < self.k).expand_as(states), total == self.k], -1)

    def backward_mask(self, states):  # remove a bead of any colour present
        return states > 0

    def step(self, states, actions):
        return states + self.moves[actions]

    def backward_step(self, states, actions):
        return states - self.moves[actions]

    def featurize(self, states):
        return torch.nn.functional.one_hot(states, self.k + 1).flatten(1).float()

    def log_reward(self, states):
        return (states > 0).sum(-1).float()

    def all_states(self):  # for exact evaluation: every state, in the order of state_index
        return torch.arange(self.n_states, device=self.device)[:, None] // self.powers % (self.k + 1)

    def state_index(self, states):
        return (states * self.powers).sum(-1)


# --8<-- [end:environment]


# --8<-- [start:train]
import gflownet
from gflownet.environments import ENVIRONMENTS

ENVIRONMENTS["beads"] = Beads  # now `env="beads"` works like a built-in environment
run = gflownet.train(
    env="beads", objective="tb", out="runs/beads", n=4, k=6, batch_size=16, trajectories=12_000, overwrite=True
)
print(f"exact L1 to R/Z: {run.summary['l1']:.3f}, log Z error: {run.summary['log_z_error']:.3f}")
# --8<-- [end:train]

# --8<-- [start:check]
import itertools
import math

bags = list(itertools.combinations_with_replacement(range(4), 6))  # every bag of 6 beads of 4 colours
assert len(bags) == math.comb(4 + 6 - 1, 6) == 84
true_log_z = math.log(sum(math.exp(len(set(bag))) for bag in bags))
assert abs(run.summary["true_log_z"] - true_log_z) < 1e-9  # the DP enumerated exactly these 84 objects
assert run.summary["l1"] < 0.1

x, log_r = run.sample(1000)  # [1000, 4] bead counts, [1000] log R
assert bool((x.sum(-1) == 6).all())
print(f"{len(bags)} bags, log Z = {true_log_z:.4f}; 1000 samples, mean log R {log_r.mean():.3f}")
# --8<-- [end:check]
