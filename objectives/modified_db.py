"""Modified detailed balance for environments where every state is terminal
(Deleu et al. 2022, arXiv 2202.13903)."""

import torch

from gflownet.trajectories import transition_masks


def modified_detailed_balance(log_pf, log_pb, log_pf_exit, state_log_reward, lengths, complete=None):
    """Mean over moves s_t -> s_{t+1} of the squared residual
        log R(s_{t+1}) + log P_B(s_t|s_{t+1}) + log P_F(stop|s_t)
      - log R(s_t) - log P_F(s_{t+1}|s_t) - log P_F(stop|s_{t+1}).
    No flow is learned: the rewards of the intermediate states stand in for it.

    Args:
        log_pf: ``[B, T]`` log P_F of each transition.
        log_pb: ``[B, T]`` log P_B of each transition.
        log_pf_exit: ``[B, T+1]`` log P_F(stop | s_t).
        state_log_reward: ``[B, T+1]`` log R(s_t).
        lengths: ``[B]`` long, L_b transitions.
        complete: ``[B]`` bool or None (all complete).
    Returns 0 for a batch with no move at all.
    """
    moves, _ = transition_masks(lengths, complete, log_pf.shape[1])
    residual = (
        state_log_reward[:, 1:] + log_pb + log_pf_exit[:, :-1] - state_log_reward[:, :-1] - log_pf - log_pf_exit[:, 1:]
    )
    return torch.where(moves, residual, 0.0).pow(2).sum() / moves.sum().clamp_min(1)
