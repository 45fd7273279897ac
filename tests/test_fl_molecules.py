"""FL-SubTB on fragment molecules, as ALGORITHMS.md states it: E(s) = -log R of the
partial molecule, log F(s) = log F~(s) - E(s), and on the sink side of an exit the
reward itself (F~ = 1), never the flow of x compared with itself. The exact flows of a
tiny fragment DAG are a zero of the loss."""

import math

import pytest
import torch
from test_fragments_dag import enumerate_space, key

from gflownet.environments.fragments import FragmentEnv
from gflownet.environments.vocabulary import Vocabulary
from gflownet.objectives.fl import fl_subtrajectory_balance
from gflownet.objectives.subtb import subtrajectory_balance
from gflownet.policy import Policy
from gflownet.sampler import sample_forward

NEEDS = frozenset({"log_pb", "log_flow", "state_energy"})


@pytest.fixture(scope="module", params=["last", "leaves"])
def env(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.json"
    Vocabulary(["C", "O", "c1ccncc1"], [[0, 0], [0], [0, 2]]).to_json(path)
    return FragmentEnv(max_blocks=3, vocabulary=str(path), reward="qed", beta=4.0, parents=request.param)


def exact_log_flows(env):
    """log F(s) of every state (by key) under a uniform P_B: F(s) = R(s) + sum_children F(s') P_B(s|s')."""
    levels, edges = enumerate_space(env)
    states = torch.cat(levels)
    reward = dict(zip(map(key, states), env.log_reward(states).double().exp().tolist()))
    reward[key(levels[0][0])] = 0.0  # s_0 cannot exit
    n_parents = dict(zip(map(key, states), env.backward_mask(states).sum(-1).tolist()))
    flow = dict(reward)
    for parent, _, child in reversed(edges):  # children's flows are complete before their parents'
        flow[key(parent)] += flow[key(child)] / n_parents[key(child)]
    return {k: math.log(v) for k, v in flow.items()}, reward


def test_exact_flows_are_a_zero_and_the_sink_is_the_reward(env):
    policy = Policy(env, hidden=16, layers=1, backward="uniform", flow=True)
    traj = sample_forward(env, policy, 64, generator=torch.Generator().manual_seed(0), epsilon=1.0)
    traj.log_reward = env.log_reward(traj.terminal)
    ev = policy.evaluate(env, traj, NEEDS)
    B, T = traj.actions.shape
    lengths = traj.lengths
    log_flow, reward = exact_log_flows(env)
    log_f = torch.tensor([[log_flow[key(s)] for s in row] for row in traj.states]).float()  # [B, T+1]
    exit_ = traj.actions == env.exit_action
    here, there = log_f[:, :T], log_f[:, 1:]
    log_pf = torch.where(exit_, traj.log_reward[:, None] - here, there + ev.log_pb - here)  # exact P_F
    log_pf = torch.where(ev.mask, log_pf, 0.0)
    energy = ev.state_energy
    assert torch.equal(energy.gather(1, lengths[:, None]).squeeze(1), -traj.log_reward)  # E(x) = -log R(x)
    loss = fl_subtrajectory_balance(log_pf, ev.log_pb, log_f + energy, energy, lengths)
    assert loss < 1e-8
    # the same loss is SubTB with log F = log F~ - E at every node and log R(x) at the sink
    flows = torch.randn(B, T + 1, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(
        fl_subtrajectory_balance(log_pf, ev.log_pb, flows, energy, lengths),
        subtrajectory_balance(log_pf, ev.log_pb, flows - energy, traj.log_reward, lengths),
    )
    # comparing x's flow with itself would leave log P_F(stop|x) = log R(x) - log F(x) as the
    # exit residual: far from 0 at the exact flows (wherever x could still grow), so that loss
    # would not vanish there
    can_grow = env.forward_mask(traj.terminal)[:, : env.exit_action].any(-1, keepdim=True)
    assert (log_pf[exit_ & ev.mask & can_grow].abs() > 0.1).all() and (exit_ & ev.mask & can_grow).sum() >= 5
