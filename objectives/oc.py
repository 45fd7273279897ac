"""Outcome-conditioned GFlowNets (Pan, Jain, Madan, Bengio 2024, arXiv 2310.03419).

Pretraining is reward-free: the target outcome y is part of the conditioning and
the conditional reward is R(x|y) = 1[x = y]. log 0 is not representable, so a
failure gets ``log R(x|y) = log_floor`` (``outcome_log_reward``); the default
floor, -10 (R ~ 4.5e-5), keeps a failure's residual at the scale of a few nats
while still making a failed edge ~e^10 times less likely than a succeeded one.

Outcome teleportation: the trajectory's terminal log R(x|y) enters the balance of
every move of it, so one failure pushes all of its moves down at once:
    move t:  log F(s_t|y) + log P_F(s_{t+1}|s_t,y) - log F(s_{t+1}|y) - log P_B(s_t|s_{t+1},y) - log R(x|y)
    exit:    log F(x|y) + log P_F(stop|x,y) - log R(x|y)
The exit is DB's own boundary, where R enters anyway: it is not teleported a second
time there. On a success log R = 0 and both reduce to plain conditional DB, so the
flows learnt on successes are the exact conditional flows F(s|y).

Fine-tuning on a downstream reward R' with the amortised predictor: a network N
(unnormalised edge flows, N(s'|s)) and a posterior Q(y|s, s') over outcomes satisfy
    N(s'|s) Q(y|s, s') = R'(y) F(s|y) P_F(s'|s,y)     for every y,
so N is the marginal numerator sum_y R'(y) F(s|y) P_F(s'|s,y), and sampling
s' ~ N(.|s) / sum N(.|s) is the marginal policy P_F^{R'}.
"""

import math

import torch

from gflownet.objectives.db import detailed_balance
from gflownet.trajectories import transition_masks

DEFAULT_LOG_FLOOR = -10.0


def outcome_log_reward(success: torch.Tensor, log_floor: float = DEFAULT_LOG_FLOOR) -> torch.Tensor:
    """log R(x|y) ``[B]``: 0 where ``success`` (bool ``[B]``), else ``log_floor``."""
    return torch.where(success, 0.0, log_floor)


def teleported_detailed_balance(log_pf, log_pb, log_flow, log_reward, lengths, complete=None):
    """Conditional DB with outcome teleportation: the mean over all transitions of the squared
    residual above. Shapes as ``detailed_balance``: ``log_pf``, ``log_pb`` ``[B, T]``,
    ``log_flow`` ``[B, T+1]`` (F(s_t|y_b)), ``log_reward`` ``[B]`` (log R(x_b|y_b)),
    ``lengths`` ``[B]`` long, ``complete`` ``[B]`` bool or None."""
    moves, _ = transition_masks(lengths, complete, log_pf.shape[1])
    teleported = torch.where(moves, log_reward[:, None], 0.0)  # the exit's own R is DB's boundary term
    # DB on (log F, log P_F, log P_B + teleported R): the exit residual is left as it is
    return detailed_balance(log_pf, log_pb + teleported, log_flow, log_reward, lengths, complete)


def amortised_finetune_loss(log_n, log_q, log_target):
    """Mean squared residual of log N(s'|s) + log Q(y|s, s') - log[R'(y) F(s|y) P_F(s'|s,y)].

    Args:
        log_n: ``[M]`` log N of M transitions (unnormalised).
        log_q: ``[M, K]`` log Q of K outcomes drawn for each transition.
        log_target: ``[M, K]`` log R'(y) + log F(s|y) + log P_F(s'|s,y) of those outcomes.
    """
    return (log_n[:, None] + log_q - log_target).pow(2).mean()


def importance_finetune_loss(log_n, log_q, log_target, log_proposal, valid):
    """The fine-tuning loss with N regressed on an importance-sampled marginal instead of the
    residual alone.

    With Q fixed, the residual above pins log N to E_y[log target(y) - log Q(y)]: a lower bound of
    log sum_y target(y) that is short by KL(Q || the exact posterior), different for every action,
    so N's policy stays biased until Q is exact on every transition. Here log N is fitted to
        log (1/K) sum_k target(y_k) / proposal(y_k)        (detached; y_k ~ proposal),
    which tends to log sum_y target(y) for any proposal that covers the reachable outcomes, and Q
    is fitted by the residual with N held fixed (its minimiser is Q = target / N).

    Args:
        log_n: ``[M]`` log N of M transitions.
        log_q: ``[M, K]`` log Q of the K outcomes drawn for each transition (differentiable).
        log_target: ``[M, K]`` log R'(y) + log F(s|y) + log P_F(s'|s,y).
        log_proposal: ``[M, K]`` log-density of the distribution the outcomes were drawn from.
        valid: bool ``[M, K]``: draws whose R' is known. The others (past a reward-call budget) weigh
            0 in the estimate, which then targets the marginal over the evaluated outcomes only, and
            are left out of Q's residual; a transition without a valid draw is left out.
    """
    residual = (log_n.detach()[:, None] + log_q - log_target)[valid].pow(2).mean()
    return importance_marginal_loss(log_n, log_target, log_proposal, valid) + residual


def importance_marginal_loss(log_n, log_target, log_proposal, valid):
    """N's half of ``importance_finetune_loss``: the mean over transitions with a valid draw of
    (log N - log (1/K) sum_k target(y_k) / proposal(y_k))^2 (the estimate detached), on its own
    for a proposal that is no learnt Q (``Amortised`` with ``posterior="terminal"``). Shapes as
    ``importance_finetune_loss``."""
    weights = torch.where(valid, log_target - log_proposal, float("-inf"))
    counted = valid.any(1)
    log_estimate = weights.logsumexp(1) - math.log(valid.shape[1])
    return (log_n - log_estimate.detach())[counted].pow(2).mean()
