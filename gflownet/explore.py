"""A reward-free explorer: a GFlowNet whose reward is a novelty bonus (GAFN-style,
Pan et al. 2023, arXiv 2210.03308, with random network distillation).

RND (Burda et al. 2019): a fixed random network f and a predictor g trained to
match it on the objects seen so far; the novelty of x is ||g(e(x)) - f(e(x))||^2,
large where little has been seen (e = ``env.encode_outcome``). The explorer is an
unconditional GFlowNet trained by VarGrad-TB on R(x) = novelty(x): with no
extrinsic reward the augmented reward R + eta * novelty is the bonus alone, and
eta only rescales it, which VarGrad's batch log Z absorbs. GAFN's bonuses on
intermediate states are left out: the terminal bonus alone spreads the outcomes.
"""

from __future__ import annotations

import torch
from torch import nn

from gflownet.environments.base import Environment
from gflownet.nets import MLP
from gflownet.optim import Adam
from gflownet.objectives.tb import vargrad
from gflownet.policy import Policy
from gflownet.sampler import sample_forward
from gflownet.trajectories import Trajectories

_NOVELTY_FLOOR = 1e-8  # log of a novelty that has reached 0


class RandomNetworkDistillation(nn.Module):
    """``novelty(e) -> [B]`` for encodings ``e`` ``[B, n_in]``; ``loss(e)`` trains the predictor."""

    def __init__(self, n_in: int, hidden: int = 64, n_out: int = 16):
        super().__init__()
        self.target = nn.Sequential(MLP(n_in, hidden, 2), nn.Linear(hidden, n_out))
        self.predictor = nn.Sequential(MLP(n_in, hidden, 2), nn.Linear(hidden, n_out))
        self.target.requires_grad_(False)

    def novelty(self, encoding: torch.Tensor) -> torch.Tensor:
        return (self.predictor(encoding) - self.target(encoding)).pow(2).mean(-1)


class NoveltyExplorer(nn.Module):
    """Proposes trajectories whose end states are novel; ``step(traj)`` trains it on them."""

    def __init__(self, env: Environment, hidden: int = 64, lr: float = 1e-3):
        super().__init__()
        self.env = env
        self.policy = Policy(env, hidden, 2, backward="uniform", log_z=False)
        self.rnd = RandomNetworkDistillation(env.outcome_dim, hidden)
        self.to(env.device)
        self.optimizer = Adam([p for p in self.parameters() if p.requires_grad], lr=lr)

    def sample(self, batch: int, generator: torch.Generator | None = None) -> Trajectories:
        return sample_forward(self.env, self.policy, batch, generator=generator)

    def step(self, traj: Trajectories) -> None:
        """One update of the policy (VarGrad on log novelty) and of the RND predictor."""
        encoding = self.env.encode_outcome(traj.terminal)
        novelty = self.rnd.novelty(encoding)
        log_reward = novelty.detach().clamp_min(_NOVELTY_FLOOR).log()
        ev = self.policy.evaluate(self.env, traj, frozenset({"log_pb"}))
        loss = vargrad(ev.log_pf, ev.log_pb, log_reward, ev.mask) + novelty.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def checkpoint_state(self) -> dict:
        return {"model": self.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_checkpoint_state(self, state: dict) -> None:
        self.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
