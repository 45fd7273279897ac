"""Forward-looking GFlowNets (Pan, Malkin, Zhang, Bengio 2023, arXiv 2302.01687).

The reward extends to every state through an energy E(s), with R(x) = exp(-E(x)),
and the state flow is reparametrised as log F(s) = log F~(s) - E(s): the network
learns F~, and every transition gets its own signal E(s') - E(s) (local credit).

FL-DB is DB, and FL-SubTB is SubTB, in this reparametrisation, with the flow on
the sink side of the exit pinned to F~ = 1 (never learned). The exit residual of
DB, log F(x) + log P_F(stop|x) - log R(x), then reads log F~(x) + log P_F(stop|x):
no reward term, so a residual needs only (s, s', E(s), E(s')) and these losses
train from incomplete trajectories. Leaving the sink-side F~ free would let every
terminal distribution be a zero of the loss (tests/test_fl.py shows it).

An environment may also give a state that can still move on an energy other than
-log R (the hypergrid's ``energy="coordinates"``): the exit x -> x' then carries the
energy difference E(x') - E(x) like any move, with E(x') = -log R(x) on the sink side
(pass ``log_reward``); with E(x) = -log R(x) this is the exit above.
"""

from gflownet.objectives.db import detailed_balance
from gflownet.objectives.subtb import subtrajectory_balance


def _sink_log_reward(energy, lengths, log_reward):
    """log R(x) on the sink side of each exit: ``log_reward``, or -E(x) of the last state."""
    if log_reward is not None:
        return log_reward
    return -energy.gather(1, lengths[:, None]).squeeze(1)


def fl_detailed_balance(log_pf, log_pb, log_fl_flow, energy, lengths, complete=None, log_reward=None):
    """Mean squared FL-DB residual over all transitions:
        move:  log F~(s_t) + log P_F(s_{t+1}|s_t) - log F~(s_{t+1}) - log P_B(s_t|s_{t+1}) + E(s_{t+1}) - E(s_t)
        exit:  log F~(x) + log P_F(stop|x) - log R(x) - E(x)   (= log F~(x) + log P_F(stop|x) where E(x) = -log R(x))

    Args:
        log_pf: ``[B, T]`` log P_F of each transition.
        log_pb: ``[B, T]`` log P_B of each transition (unused at exits).
        log_fl_flow: ``[B, T+1]`` log F~(s_t).
        energy: ``[B, T+1]`` E(s_t).
        lengths: ``[B]`` long, L_b transitions; complete: ``[B]`` bool or None (all complete).
        log_reward: ``[B]`` log R(x) of the sink side (read only where complete), or None: -E(x).
    """
    sink = _sink_log_reward(energy, lengths, log_reward)
    return detailed_balance(log_pf, log_pb, log_fl_flow - energy, sink, lengths, complete)


def fl_subtrajectory_balance(log_pf, log_pb, log_fl_flow, energy, lengths, lam=0.9, complete=None, log_reward=None):
    """SubTB(lam) with log F(s_k) = log F~(s_k) - E(s_k) at every node, and log R(x) (F~ = 1)
    on the sink side of an exit. Shapes as ``fl_detailed_balance``."""
    sink = _sink_log_reward(energy, lengths, log_reward)
    return subtrajectory_balance(log_pf, log_pb, log_fl_flow - energy, sink, lengths, lam, complete)
