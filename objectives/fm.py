"""Flow matching (Bengio et al. 2021a, arXiv 2106.04399)."""

import torch


def flow_matching(log_inflow, log_outflow, log_exit_flow, log_reward, lengths, complete=None):
    """Flow-matching residuals at visited states plus the reward-matching term.

    The network's forward logits are log edge flows log F(s -> s'), the exit's
    included (P_F is their softmax). At each visited s_t other than s_0
    (1 <= t <= L_b - 1 for a complete trajectory, 1 <= t <= L_b for a cut one):
        ( log sum_{p in Par(s_t)} F(p -> s_t)  -  log sum_{a legal at s_t} F(s_t -a->) )^2
    and at the x of each complete trajectory:  ( log F(x -> sink) - log R(x) )^2,
    so that the exit flow equals the reward. Loss = mean of the first + mean of the second.

    Args:
        log_inflow: ``[B, T+1]`` log of the total flow into s_t.
        log_outflow: ``[B, T+1]`` log of the total flow out of s_t (exit included).
        log_exit_flow: ``[B]`` log F(x -> sink).
        log_reward: ``[B]`` log R(x).
        lengths: ``[B]`` long, L_b transitions.
        complete: ``[B]`` bool or None (all complete).
    """
    complete = torch.ones_like(lengths, dtype=torch.bool) if complete is None else complete
    t = torch.arange(log_inflow.shape[1], device=log_inflow.device)
    inner = (t >= 1) & (t <= (lengths - complete.long())[:, None])
    matching = torch.where(inner, log_inflow - log_outflow, 0.0).pow(2).sum() / inner.sum().clamp_min(1)
    reward = torch.where(complete, log_exit_flow - log_reward, 0.0).pow(2).sum() / complete.sum().clamp_min(1)
    return matching + reward
