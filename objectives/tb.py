"""Trajectory balance (Malkin et al. 2022, arXiv 2201.13259) and its VarGrad variant."""

import torch


def trajectory_balance(log_pf, log_pb, log_reward, log_z, mask):
    """mean_b (log Z + sum_t log P_F - log R - sum_t log P_B)^2.

    Args:
        log_pf: ``[B, T]`` log P_F of each transition (the exit included).
        log_pb: ``[B, T]`` log P_B of each transition (ignored at the exit).
        log_reward: ``[B]`` log R(x).
        log_z: ``[B]`` log Z (of each trajectory's conditioning).
        mask: ``[B, T]`` bool, True on the trajectory's transitions; the rest is ignored.
    Returns: scalar loss.
    """
    return tb_residuals(log_pf, log_pb, log_reward, mask).add(log_z).pow(2).mean()


def vargrad(log_pf, log_pb, log_reward, mask):
    """TB with log Z replaced by its batch estimate (VarGrad / "ZVar"; Zhang et al. 2023).

    log Z_hat = mean_b (log R + sum log P_B - sum log P_F), so the loss is the batch
    variance of sum log P_F - sum log P_B - log R. Shapes as ``trajectory_balance``.
    """
    residual = tb_residuals(log_pf, log_pb, log_reward, mask)
    return (residual - residual.mean()).pow(2).mean()


def tb_residuals(log_pf, log_pb, log_reward, mask):
    """``[B]``: sum_t (log P_F - log P_B) - log R, the TB residual without log Z
    (log P_B at the exit, the last True of each row of ``mask``, is ignored)."""
    is_move = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)
    return torch.where(mask, log_pf, 0.0).sum(1) - torch.where(is_move, log_pb, 0.0).sum(1) - log_reward
