"""Sub-trajectory balance SubTB(lambda) (Madan et al. 2023, arXiv 2209.12782)."""

import torch

from gflownet.trajectories import transition_masks


def subtrajectory_balance(log_pf, log_pb, log_flow, log_reward, lengths, lam=0.9, complete=None):
    """Mean over trajectories of sum_{i<j} lam^(j-i) delta_ij^2 / sum_{i<j} lam^(j-i).

    Nodes k = 0..L_b of trajectory b are its states; for a complete trajectory node
    L_b is the sink side of the exit from x, whose flow is R(x) (for an incomplete
    one it is the state where it was cut, with its learned flow). With
    C_k = sum_{t<k} (log P_F - log P_B)_t  (no log P_B at the exit),
        delta_ij = log F(s_i) + C_j - C_i - log F(s_j),   0 <= i < j <= L_b.
    All pairs at once from cumulative sums: O(T^2) memory per trajectory, no loop.

    Args:
        log_pf: ``[B, T]`` log P_F of each transition.
        log_pb: ``[B, T]`` log P_B of each transition.
        log_flow: ``[B, T+1]`` log F(s_t).
        log_reward: ``[B]`` log R(x) (unused for incomplete trajectories).
        lengths: ``[B]`` long, L_b transitions; trajectories with none are skipped.
        lam: weight decay per sub-trajectory length, > 0.
        complete: ``[B]`` bool or None (all complete).
    """
    B, T = log_pf.shape
    moves, exits = transition_masks(lengths, complete, T)
    step = torch.where(moves | exits, log_pf, 0.0) - torch.where(moves, log_pb, 0.0)
    cum = torch.cat([step.new_zeros(B, 1), step.cumsum(1)], dim=1)  # [B, T+1]
    k = torch.arange(T + 1, device=log_pf.device)
    sink = k == lengths[:, None]
    if complete is not None:
        sink = sink & complete[:, None]
    node = torch.where(sink, log_reward[:, None], log_flow)  # [B, T+1]
    delta = node[:, :, None] + cum[:, None, :] - cum[:, :, None] - node[:, None, :]  # [B, i, j]
    i, j = k[:, None], k[None, :]
    pair = (i < j) & (j <= lengths[:, None, None])  # [B, i, j]
    weight = torch.where(pair, lam ** (j - i).to(log_pf.dtype), 0.0)
    total = weight.sum((1, 2))
    per_trajectory = (weight * torch.where(pair, delta, 0.0).pow(2)).sum((1, 2)) / total.clamp_min(1e-30)
    has_pairs = total > 0
    return torch.where(has_pairs, per_trajectory, 0.0).sum() / has_pairs.sum().clamp_min(1)
