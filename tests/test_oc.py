"""Outcome-conditioned GFlowNets: the losses against hand-worked values, the exact marginal
policy against R'/Z' by DP, the success rate of a hand-made policy, replay with hindsight,
pretraining and fine-tuning on a tiny grid."""

import math

import pytest
import torch

from gflownet.config import RunConfig
from gflownet.environments import HyperGrid
from gflownet.errors import ConfigError
from gflownet.finetune import (
    Amortised,
    ExactMarginal,
    edge_reachability,
    initialise_from,
    marginal_log_pf,
    reachable_after,
    visit_log_flows,
)
from gflownet.metrics import distances, exact_flows, target_distribution, terminal_distribution
from gflownet.objectives.oc import amortised_finetune_loss, outcome_log_reward, teleported_detailed_balance
from gflownet.policy import Policy
from gflownet.pretrain import OCConfig, PretrainTrainer, conditional_log_probs, exact_success_rate, success_rate
from gflownet.replay import ReplayBuffer, hindsight_relabel
from gflownet.sampler import sample_forward


def test_teleported_db_against_hand_values():
    # trajectory 0: two moves then the exit, a success; trajectory 1: one move then the exit, a failure
    log_pf = torch.tensor([[-0.5, -1.0, -0.2], [-0.3, -0.7, 0.0]])
    log_pb = torch.tensor([[-0.1, -0.4, 0.0], [-0.6, 0.0, 0.0]])
    log_flow = torch.tensor([[0.0, -0.2, -0.9, -0.9], [0.0, -1.5, -1.5, -1.5]])
    log_r = outcome_log_reward(torch.tensor([True, False]), -10.0)
    lengths = torch.tensor([3, 2])
    residuals = [
        0.0 - 0.5 + 0.2 + 0.1,  # move: F(s0) P_F = F(s1) P_B (R = 1)
        -0.2 - 1.0 + 0.9 + 0.4,  # move
        -0.9 - 0.2 - 0.0,  # exit: log F(x) + log P_F(stop) - log R
        0.0 - 0.3 + 1.5 + 0.6 + 10.0,  # move of a failure: log R(x|y) = -10 teleported
        -1.5 - 0.7 + 10.0,  # its exit: R counted once
    ]
    expected = sum(r * r for r in residuals) / 5
    loss = teleported_detailed_balance(log_pf, log_pb, log_flow, log_r, lengths)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_amortised_loss_against_hand_values():
    log_n = torch.tensor([0.5, -1.0])
    log_q = torch.tensor([[-0.1, -2.0], [-0.3, -0.3]])
    log_target = torch.tensor([[0.2, -1.0], [-1.5, -2.0]])
    expected = ((0.5 - 0.1 - 0.2) ** 2 + (0.5 - 2.0 + 1.0) ** 2 + (-1.0 - 0.3 + 1.5) ** 2 + (-1.0 - 0.3 + 2.0) ** 2) / 4
    assert amortised_finetune_loss(log_n, log_q, log_target).item() == pytest.approx(expected, rel=1e-6)


def exact_conditional_tables(env):
    """log P_F(.|s,y) [S, Y, A] and log F(s|y) [S, Y] of the exact conditional GFlowNets
    R(x|y) = 1[x = y] with uniform P_B, one exact_flows DP per outcome."""
    outcomes = env.all_outcomes()
    log_pf, log_flow = [], []
    for y in outcomes:
        target = HyperGrid(env.dim, env.side, reward=lambda x, y=y: (x == y).all(-1).double())
        flows = exact_flows(target)
        log_pf.append(flows.log_pf)
        log_flow.append(flows.log_flow)
    return torch.stack(log_pf, 1), torch.stack(log_flow, 1), outcomes


@pytest.mark.parametrize("use_reachability", [True, False])
@pytest.mark.parametrize("flows", ["head", "visits"])
def test_exact_marginal_of_exact_conditional_flows_is_r_over_z(use_reachability, flows):
    env = HyperGrid(2, 4)
    log_pf_y, log_flow_y, outcomes = exact_conditional_tables(env)
    if flows == "visits":  # the flows read off the exact P_F are the exact flows
        visits = visit_log_flows(env, log_pf_y)
        reachable = torch.isfinite(log_flow_y) & (log_flow_y > -40)
        assert torch.allclose(visits[reachable], log_flow_y[reachable], atol=1e-9)
        log_flow_y = visits
    downstream = HyperGrid(2, 4, r0=0.01, r1=0.3, r2=5.0)
    log_r = downstream.log_reward(outcomes).double()
    reach = edge_reachability(env, outcomes) if use_reachability else None
    log_pf = marginal_log_pf(log_pf_y, log_flow_y, log_r, reach)
    target, _ = target_distribution(downstream)
    assert distances(terminal_distribution(env, log_pf), target)["l1"] < 1e-9
    # the formula's own denominator, sum_y R'(y) F(s|y), gives the same policy where flow passes
    weight = log_r[None] + log_flow_y
    by_formula = (weight[..., None] + log_pf_y).logsumexp(1) - weight.logsumexp(1, keepdim=True)
    legal = env.forward_mask(env.all_states())
    assert torch.allclose(by_formula.exp()[legal], log_pf.exp()[legal], atol=1e-9)


def test_reachability_after_moves_and_exits():
    env = HyperGrid(2, 3)
    states = torch.tensor([[1, 0], [1, 0], [2, 2]])
    actions = torch.tensor([0, 2, 2])  # a move along 0, two exits
    outcomes = torch.tensor([[1, 0], [2, 0], [2, 2], [0, 2]])
    reach = reachable_after(env, states, actions, outcomes)
    assert reach.tolist() == [[False, True, True, False], [True, False, False, False], [False, False, True, False]]


def uniform_conditional_policy(env):
    policy = Policy(env, hidden=8, layers=1, flow=True, cond_dim=env.outcome_dim, log_z=False)
    for p in policy.head.parameters():
        torch.nn.init.zeros_(p)
    return policy


def test_success_rate_of_the_uniform_policy():
    # 1-D grid of side 3, P_F uniform over legal actions: P(x=0) = 1/2, P(x=1) = 1/4, P(x=2) = 1/4,
    # so the success rate over uniform outcomes is (1/2 + 1/4 + 1/4) / 3 = 1/3.
    env = HyperGrid(1, 3)
    policy = uniform_conditional_policy(env)
    outcomes = env.all_outcomes()
    log_pf, _ = conditional_log_probs(env, policy, outcomes)
    assert exact_success_rate(env, log_pf, outcomes) == pytest.approx(1 / 3, abs=1e-6)  # float32 network
    sampled = success_rate(env, policy, 20_000, torch.Generator().manual_seed(0))
    assert sampled == pytest.approx(1 / 3, abs=0.015)


def test_replay_ring_and_hindsight_relabelling():
    env = HyperGrid(2, 4)
    policy = uniform_conditional_policy(env)
    generator = torch.Generator().manual_seed(0)
    buffer = ReplayBuffer(5, env.max_steps, env.exit_action)
    batches = []
    for _ in range(3):
        y = env.sample_outcomes(3, generator)
        traj = sample_forward(env, policy, 3, cond=env.encode_outcome(y), generator=generator)
        relabelled = hindsight_relabel(env, traj)
        assert torch.equal(relabelled.cond, env.encode_outcome(traj.terminal))
        assert torch.equal(relabelled.log_reward, torch.zeros(3))
        buffer.add(relabelled)
        batches.append(relabelled)
    assert len(buffer) == 5
    last_five = torch.cat([batches[1].terminal[1:], batches[2].terminal])
    stored = buffer.store["states"][torch.arange(5), buffer.store["lengths"]]
    assert sorted(map(tuple, stored.tolist())) == sorted(map(tuple, last_five.tolist()))
    replayed = buffer.sample(50, generator)
    T = replayed.max_length
    assert T == int(replayed.lengths.max())
    moves = replayed.mask & (replayed.actions != env.exit_action)
    stepped = env.step(replayed.states[:, :-1][moves], replayed.actions[moves])
    assert torch.equal(stepped, replayed.states[:, 1:][moves])  # every stored transition is a real one
    assert torch.equal(replayed.cond, env.encode_outcome(replayed.terminal))


def pretrain_config(side=3, trajectories=6400, seed=0):
    config = RunConfig(env="hypergrid", env_params={"dim": 2, "side": side})
    config.model.hidden = 64
    config.train.batch_size, config.train.trajectories, config.train.seed = 32, trajectories, seed
    config.train.eval_every, config.train.lr_schedule, config.train.lr = 0, "constant", 3e-3
    return config


@pytest.fixture(scope="module")
def pretrained():
    torch.manual_seed(0)
    trainer = PretrainTrainer(pretrain_config(), OCConfig(hindsight_batch=32, success_samples=200))
    summary = trainer.run()
    return trainer, summary


def test_pretraining_reaches_every_outcome_of_a_small_grid(pretrained):
    trainer, summary = pretrained
    env = trainer.env
    outcomes = env.all_outcomes()
    log_pf, log_flow = conditional_log_probs(env, trainer.policy, outcomes)
    assert exact_success_rate(env, log_pf, outcomes) > 0.9
    assert summary["success_rate"] > 0.85
    # Z(y) = F(s_0|y) = 1 for every outcome (R(y|y) = 1, and P_B sums to 1 over the paths into y)
    assert log_flow[0].abs().max() < 0.5


def test_fine_tuning_amortised_matches_exact_marginal(pretrained):
    trainer, _ = pretrained
    env = trainer.env
    downstream = HyperGrid(2, 3, r0=0.01, r1=0.3, r2=5.0, reward=lambda x: 0.1 + x.sum(-1) ** 2)
    exact = ExactMarginal(env, trainer.policy, downstream.log_reward)
    target, _ = target_distribution(downstream)
    exact_l1 = distances(terminal_distribution(env, exact.log_pf), target)["l1"]
    torch.manual_seed(0)
    plain = dict(lr=1e-3, updates=1, teacher=0, replay=0, minibatch=0)  # on-policy, one update a step
    amortised = Amortised(env, trainer.policy, downstream.log_reward, hidden=64, layers=2, **plain)
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        amortised.step(16, generator)
    from gflownet.metrics import policy_log_probs

    log_pf, _ = policy_log_probs(env, amortised.n)
    amortised_l1 = distances(terminal_distribution(env, log_pf), target)["l1"]
    assert exact_l1 < 0.3
    assert abs(amortised_l1 - exact_l1) < 0.1, (amortised_l1, exact_l1)
    assert amortised.reward_calls <= len(env.all_outcomes())


def test_continued_training_starts_from_the_pretrained_trunk(pretrained):
    trainer, _ = pretrained
    env = trainer.env
    plain = Policy(env, 64, 2, flow=True, log_z=False)
    initialise_from(plain, trainer.policy, env.feature_dim)
    states = env.all_states()
    features = env.featurize(states)
    zero_outcome = torch.zeros(len(states), env.outcome_dim)
    assert torch.allclose(plain.forward_logits(features), trainer.policy.forward_logits(features, zero_outcome))
    with pytest.raises(ConfigError, match="shape"):
        initialise_from(Policy(env, 32, 2, flow=True, log_z=False), trainer.policy, env.feature_dim)


def test_pretraining_refuses_an_environment_without_outcomes():
    config = RunConfig(env="sets", env_params={"size": 4, "set_size": 2})
    with pytest.raises(ConfigError, match="declares no outcome space"):
        PretrainTrainer(config)
    with pytest.raises(ConfigError, match="oc.outcomes"):
        PretrainTrainer(pretrain_config(), OCConfig(outcomes="everywhere"))
    assert math.isfinite(outcome_log_reward(torch.tensor([False])).item())


def test_sequence_outcomes_are_uniform_and_reachable_from_prefixes():
    from gflownet.environments.sequences import PrependAppendSequences, Sequences

    env = Sequences(alphabet="AB", max_length=3, min_length=1)
    y = env.sample_outcomes(40_000, torch.Generator().manual_seed(0))
    assert env.forward_mask(y)[:, env.exit_action].all()  # every outcome may exit
    counts = torch.bincount(env.state_index(y), minlength=env.n_states).double()
    terminal = env.forward_mask(env.all_states())[:, env.exit_action]
    assert (counts[~terminal] == 0).all()  # the empty sequence is not an outcome
    share = counts[terminal] / counts.sum()
    assert torch.allclose(share, torch.full_like(share, 1 / 14), atol=0.006)  # 2 + 4 + 8 sequences
    assert len(env.all_outcomes()) == 14
    s, ys = env.encode(["A", "A", "AB"]), env.encode(["AB", "BA", "AB"])
    assert env.outcome_reachable(s, ys).tolist() == [True, False, True]
    assert PrependAppendSequences(alphabet="AB", max_length=3).outcome_reachable(s, ys) is None


def test_exact_marginal_on_a_tree_of_sequences():
    """Append-only sequences: with exact conditional flows the marginal policy samples R'/Z'."""
    from gflownet.environments.sequences import Sequences

    env = Sequences(alphabet="ABC", max_length=3, min_length=2)
    outcomes = env.all_outcomes()
    tables = [
        exact_flows(
            Sequences(alphabet="ABC", max_length=3, min_length=2, reward=lambda x, y=y: (x == y).all(-1).double())
        )
        for y in outcomes
    ]
    log_pf_y = torch.stack([t.log_pf for t in tables], 1)
    log_flow_y = torch.stack([t.log_flow for t in tables], 1)
    downstream = Sequences(alphabet="ABC", max_length=3, min_length=2, seed=3)
    log_pf = marginal_log_pf(
        log_pf_y, log_flow_y, downstream.log_reward(outcomes).double(), edge_reachability(env, outcomes)
    )
    target, _ = target_distribution(downstream)
    assert distances(terminal_distribution(env, log_pf), target)["l1"] < 1e-9


def test_bit_sequence_outcomes_are_their_bits_word_by_word():
    from gflownet.environments.bitseq import BitSequences

    env = BitSequences(n=8, k=4, n_modes=2)
    y = env.encode_bits(["01101111", "10000001"])
    assert env.outcome_dim == 8
    assert env.encode_outcome(y).tolist() == [[-1, 1, 1, -1, 1, 1, 1, 1], [1, -1, -1, -1, -1, -1, -1, 1]]


def test_pretraining_copies_bit_sequences():
    """n = 6 in 2-bit words (64 outcomes, 3 steps of 4 actions): the exact success rate by DP."""
    torch.manual_seed(0)
    config = RunConfig(env="bitseq", env_params={"n": 6, "k": 2, "n_modes": 2})
    config.model.hidden = 64
    config.train.batch_size, config.train.trajectories, config.train.eval_every = 32, 9600, 0
    config.train.lr_schedule, config.train.lr = "constant", 3e-3
    trainer = PretrainTrainer(config, OCConfig(hindsight_batch=32, success_samples=500))
    summary = trainer.run()
    env, outcomes = trainer.env, trainer.env.all_outcomes()
    log_pf, _ = conditional_log_probs(env, trainer.policy, outcomes)
    assert exact_success_rate(env, log_pf, outcomes) > 0.9
    assert summary["success_rate"] > 0.9
