"""Helpers shared by the molecule tests: a small GNN training configuration and the
exact terminal distribution of a small molecule space."""

import torch

from gflownet.config import RunConfig
from gflownet.policy import masked_log_softmax


def small_config(env: str, env_params: dict, steps: int = 300) -> RunConfig:
    """TB with a 2 x 32 GNN, uniform P_B, batch 32, ``steps`` steps, one thread."""
    config = RunConfig(env=env, env_params=env_params)
    config.model.hidden, config.model.layers, config.model.backward = 32, 2, "uniform"
    config.train.batch_size, config.train.trajectories, config.train.threads = 32, 32 * steps, 1
    config.train.lr, config.train.eval_every = 3e-3, 0
    return config


def exact_terminal_distribution(env, forward_logits):
    """Every terminal state and P_T(x), by forward DP over the DAG: states grouped by
    the number of moves made, which every move raises by one. ``forward_logits(features)``
    gives the policy's logits."""
    level, prob = env.reset(1), torch.ones(1)
    terminals, p_terminal = [], []
    with torch.no_grad():
        while len(level):
            mask = env.forward_mask(level)
            pf = masked_log_softmax(forward_logits(env.featurize(level)), mask).exp()
            can_stop = mask[:, -1]
            terminals.append(level[can_stop])
            p_terminal.append((prob * pf[:, -1])[can_stop])
            rows, actions = mask[:, :-1].nonzero(as_tuple=True)
            level, inverse = env.step(level[rows], actions).unique(dim=0, return_inverse=True)
            prob = torch.zeros(len(level)).index_add_(0, inverse, prob[rows] * pf[rows, actions])
    return torch.cat(terminals), torch.cat(p_terminal)
