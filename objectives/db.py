"""Detailed balance (Bengio et al. 2021b, arXiv 2111.09266)."""

import torch

from gflownet.trajectories import transition_masks


def detailed_balance(log_pf, log_pb, log_flow, log_reward, lengths, complete=None):
    """Mean over all transitions of the squared DB residual.

    Transition t of trajectory b goes s_t -> s_{t+1}; the last transition of a
    complete trajectory, t = L_b - 1, is the exit from x = s_{L_b - 1}:
        move:  log F(s_t) + log P_F(s_{t+1}|s_t) - log F(s_{t+1}) - log P_B(s_t|s_{t+1})
        exit:  log F(x) + log P_F(stop|x) - log R(x)
    An incomplete trajectory (cut before exiting) contributes its moves only.

    Args:
        log_pf: ``[B, T]`` log P_F of each transition.
        log_pb: ``[B, T]`` log P_B of each transition (unused at exits).
        log_flow: ``[B, T+1]`` log F(s_t), t = 0..T.
        log_reward: ``[B]`` log R(x) (unused for incomplete trajectories).
        lengths: ``[B]`` long, L_b transitions.
        complete: ``[B]`` bool or None (all complete).
    """
    moves, exits = transition_masks(lengths, complete, log_pf.shape[1])
    here = log_flow[:, :-1] + log_pf
    residual = torch.where(exits, here - log_reward[:, None], here - log_flow[:, 1:] - log_pb)
    valid = moves | exits
    # select before squaring: padding may hold -inf (an illegal exit), whose square's gradient is NaN
    return torch.where(valid, residual, 0.0).pow(2).sum() / valid.sum().clamp_min(1)
