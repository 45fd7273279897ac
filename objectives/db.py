"""Detailed balance (Bengio et al. 2021b, arXiv 2111.09266)."""
import torch


def detailed_balance(log_pf, log_pb, log_flow, log_reward, lengths):
    """Mean over all transitions of the squared DB residual.

    Transition t of trajectory b goes s_t -> s_{t+1}; its last one, t = L_b - 1,
    is the exit from x = s_{L_b - 1}:
        move:  log F(s_t) + log P_F(s_{t+1}|s_t) - log F(s_{t+1}) - log P_B(s_t|s_{t+1})
        exit:  log F(x) + log P_F(stop|x) - log R(x)

    Args:
        log_pf, log_pb: ``[B, T]`` per-transition log-probabilities (log_pb unused at exits).
        log_flow: ``[B, T]`` log F(s_t).
        log_reward: ``[B]`` log R(x).
        lengths: ``[B]`` long, L_b >= 1 transitions (exit included).
    """
    B, T = log_pf.shape
    t = torch.arange(T, device=log_pf.device)
    valid = t < lengths[:, None]
    is_exit = t == (lengths - 1)[:, None]
    next_flow = torch.cat([log_flow[:, 1:], log_flow[:, -1:]], dim=1)
    target = torch.where(is_exit, log_reward[:, None], next_flow + log_pb)
    residual = log_flow + log_pf - target
    return torch.where(valid, residual.pow(2), 0.0).sum() / valid.sum()
