"""Sub-trajectory balance SubTB(lambda) (Madan et al. 2023, arXiv 2209.12782)."""
import torch


def subtrajectory_balance(log_pf, log_pb, log_flow, log_reward, lengths, lam=0.9):
    """Batch mean of sum_{i<j} lam^(j-i) delta_ij^2 / sum_{i<j} lam^(j-i).

    Nodes k = 0..L_b of trajectory b are s_0..s_{L_b - 1} = x and the sink side of the
    exit, whose flow is R(x). With C_k = sum_{t<k} (log P_F - log P_B)_t,
        delta_ij = log F(s_i) + C_j - C_i - log F(s_j),   0 <= i < j <= L_b.
    All pairs at once from cumulative sums: O(T^2) memory per trajectory, no loop.

    Args:
        log_pf, log_pb: ``[B, T]`` per-transition log-probabilities (log_pb unused at exits).
        log_flow: ``[B, T]`` log F(s_t).
        log_reward: ``[B]`` log R(x).
        lengths: ``[B]`` long, L_b >= 1 transitions (exit included).
        lam: weight decay per sub-trajectory length, > 0.
    """
    B, T = log_pf.shape
    t = torch.arange(T, device=log_pf.device)
    valid = t < lengths[:, None]
    is_move = t < (lengths - 1)[:, None]
    step = torch.where(valid, log_pf, 0.0) - torch.where(is_move, log_pb, 0.0)
    cum = torch.cat([step.new_zeros(B, 1), step.cumsum(1)], dim=1)  # [B, T+1]
    k = torch.arange(T + 1, device=log_pf.device)
    node = torch.cat([log_flow, log_flow.new_zeros(B, 1)], dim=1)
    node = torch.where(k == lengths[:, None], log_reward[:, None], node)  # [B, T+1]
    delta = node[:, :, None] + cum[:, None, :] - cum[:, :, None] - node[:, None, :]  # [B, i, j]
    i, j = k[:, None], k[None, :]
    pair = (i < j) & (j <= lengths[:, None, None])  # [B, i, j]
    weight = torch.where(pair, lam ** (j - i).to(log_pf.dtype), 0.0)
    per_trajectory = (weight * delta.pow(2)).sum((1, 2)) / weight.sum((1, 2))
    return per_trajectory.mean()
