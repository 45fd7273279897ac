"""Modified detailed balance for environments where every state is terminal
(Deleu et al. 2022, arXiv 2202.13903)."""
import torch


def modified_detailed_balance(log_pf, log_pb, log_pf_exit, state_log_reward, lengths):
    """Mean over non-exit transitions s_t -> s_{t+1} of the squared residual
        log R(s_{t+1}) + log P_B(s_t|s_{t+1}) + log P_F(stop|s_t)
      - log R(s_t) - log P_F(s_{t+1}|s_t) - log P_F(stop|s_{t+1}).
    No flow is learned: the rewards of the intermediate states stand in for it.

    Args:
        log_pf, log_pb: ``[B, T]`` per-transition log-probabilities.
        log_pf_exit: ``[B, T]`` log P_F(stop | s_t).
        state_log_reward: ``[B, T]`` log R(s_t).
        lengths: ``[B]`` long, L_b >= 1 transitions (exit included).
    Returns 0 for a batch with no move at all.
    """
    t = torch.arange(log_pf.shape[1], device=log_pf.device)
    is_move = t < (lengths - 1)[:, None]
    shift = lambda x: torch.cat([x[:, 1:], x[:, -1:]], dim=1)  # noqa: E731  value at s_{t+1}
    residual = (shift(state_log_reward) + log_pb + log_pf_exit
                - state_log_reward - log_pf - shift(log_pf_exit))
    return torch.where(is_move, residual.pow(2), 0.0).sum() / is_move.sum().clamp_min(1)
