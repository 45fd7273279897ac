"""Reward functions over hypergrid coordinates, good and bad, for the tests
(given to the CLI as ``--set reward=tests.user_rewards:NAME``)."""

import torch


def corner(x):
    return 1.0 + 9.0 * (x == 0).all(-1)


def nan_at_origin(x):
    r = torch.ones(len(x))
    r[(x == 0).all(-1)] = float("nan")
    return r


def negative(x):
    return -torch.ones(len(x))


def infinite(x):
    return torch.full((len(x),), float("inf"))


def zero_far(x):
    return (x.sum(-1) < 3).float()


def count_first_token(tokens):
    """A sequence reward: 2 where the first token is 0, else 1."""
    return 1.0 + (tokens[:, 0] == 0).float()
