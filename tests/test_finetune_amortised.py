"""The amortised fine-tuning of an OC-GFN: the importance-sampled loss against hand values, the
reward cache and its budget, the token posterior's densities by enumeration, and the fitted N
against R'/Z' (or R' restricted to the evaluated outcomes) by DP on a small tree."""

import math

import pytest
import torch

from gflownet.environments.sequences import Sequences
from gflownet.errors import ConfigError
from gflownet.finetune import Amortised, RewardCache, TokenPosterior, TreeOracle
from gflownet.metrics import distances, policy_log_probs, target_distribution, terminal_distribution
from gflownet.objectives.oc import importance_finetune_loss


def test_importance_loss_against_hand_values():
    log_n = torch.tensor([0.5, -1.0, 2.0])
    log_q = torch.tensor([[-0.1, -2.0], [-0.3, -0.3], [-1.0, -1.0]])
    log_target = torch.tensor([[0.2, -1.0], [-1.5, -2.0], [0.0, 0.0]])
    log_proposal = torch.tensor([[-0.2, -1.5], [-0.7, -0.7], [0.0, 0.0]])
    valid = torch.tensor([[True, True], [True, False], [False, False]])
    # N: log of the mean over both draws of target / proposal, a draw past the budget weighing 0
    estimate_0 = math.log((math.exp(0.2 + 0.2) + math.exp(-1.0 + 1.5)) / 2)
    estimate_1 = math.log(math.exp(-1.5 + 0.7) / 2)
    n_term = ((0.5 - estimate_0) ** 2 + (-1.0 - estimate_1) ** 2) / 2  # row 2 has no valid draw
    residual = ((0.5 - 0.1 - 0.2) ** 2 + (0.5 - 2.0 + 1.0) ** 2 + (-1.0 - 0.3 + 1.5) ** 2) / 3
    loss = importance_finetune_loss(log_n, log_q, log_target, log_proposal, valid)
    assert loss.item() == pytest.approx(n_term + residual, rel=1e-6)


def test_importance_loss_vanishes_at_the_exact_marginal_and_posterior():
    log_target = torch.tensor([[0.3, -1.2, 0.3, -2.0]]).log_softmax(-1) + 1.7  # sum_y target = e^1.7
    log_posterior = log_target - 1.7
    loss = importance_finetune_loss(
        torch.tensor([1.7]), log_posterior, log_target, log_posterior, torch.ones(1, 4, dtype=torch.bool)
    )
    assert loss.item() == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("key", [None, lambda x: 10 * x[:, 0] + x[:, 1]], ids=["rows", "integer key"])
def test_reward_cache_evaluates_each_outcome_once_within_its_budget(key):
    calls = []

    def log_reward(x):
        calls.append(len(x))
        return x.sum(-1).float()

    cache = RewardCache(log_reward, budget=3, key=key)
    assert cache.evaluated()[0].shape == (0, 0) and cache.calls == 0
    log_r, evaluated = cache(torch.tensor([[1, 2], [0, 1], [1, 2]]))
    assert log_r.tolist() == [3.0, 1.0, 3.0] and evaluated.all() and calls == [2]
    log_r, evaluated = cache(torch.tensor([[0, 1], [5, 5], [4, 4], [1, 2]]))  # one new call left
    assert cache.calls == 3 and calls == [2, 1]
    assert evaluated.tolist() == [True, False, True, True]  # the budget went to [4, 4], first in sorted order
    assert log_r.tolist() == [1.0, 0.0, 8.0, 3.0]
    rows, log_r = cache.evaluated()
    assert sorted(zip(map(tuple, rows.tolist()), log_r.tolist())) == [((0, 1), 1.0), ((1, 2), 3.0), ((4, 4), 8.0)]


def test_token_posterior_draws_completions_with_their_exact_density():
    env = Sequences(alphabet=3, max_length=3)
    torch.manual_seed(0)
    q = TokenPosterior(env, hidden=16, layers=1)
    states = torch.tensor([[0, env.pad, env.pad], [2, 1, 0]])
    actions = torch.tensor([1, env.exit_action])  # append token 1: y = (0, 1, *); the exit: y = s
    y, log_q, log_proposal = q.propose(env, states, env.featurize(states), actions, 4000, 0.25)
    assert (y[0, :, :2] == torch.tensor([0, 1])).all() and (y[1] == states[1]).all()
    assert torch.allclose(log_q[1], torch.zeros(4000)) and torch.allclose(log_proposal[1], torch.zeros(4000), atol=1e-6)
    # Q sums to 1 over the 3 completions; the proposal is 0.75 Q + 0.25 uniform; draws follow it
    by_token = {int(t): (float(lq), float(lp)) for t, lq, lp in zip(y[0, :, 2], log_q[0].detach(), log_proposal[0])}
    assert sum(math.exp(by_token[v][0]) for v in range(3)) == pytest.approx(1.0, abs=1e-6)
    for v in range(3):
        log_q_v, log_p_v = by_token[v]
        assert math.exp(log_p_v) == pytest.approx(0.75 * math.exp(log_q_v) + 0.25 / 3, rel=1e-5)
        frequency = float((y[0, :, 2] == v).double().mean())
        assert frequency == pytest.approx(math.exp(log_p_v), abs=0.03)


def test_token_posterior_refuses_sequences_of_several_lengths():
    with pytest.raises(ConfigError, match="one length"):
        TokenPosterior(Sequences(alphabet=2, max_length=3, min_length=1), 8, 1)


def tree_reward(x):
    return 0.05 + (x == torch.tensor([1, 0, 1, 1])).double().sum(-1) ** 2


@pytest.mark.parametrize("budget", [None, 5])
def test_amortised_token_posterior_fits_r_over_z_on_a_tree(budget):
    env = Sequences(alphabet=2, max_length=4)
    torch.manual_seed(0)
    log_reward = lambda x: tree_reward(x).log().float()  # noqa: E731
    amortised = Amortised(
        env, TreeOracle(env), log_reward, hidden=32, layers=2, lr=3e-3, k=4, updates=2,
        max_reward_calls=budget, posterior="tokens", teacher=0, replay=0, minibatch=0,
    )  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    for _ in range(400):
        amortised.step(16, generator)
    evaluated, _ = amortised.rewards.evaluated()
    assert amortised.reward_calls == len(evaluated) == (16 if budget is None else budget)
    known = {tuple(row) for row in evaluated.tolist()}
    # the target: R' itself, or R' restricted to the evaluated outcomes once the budget is spent
    restricted = lambda x: torch.tensor([tuple(r) in known for r in x.tolist()]) * tree_reward(x)  # noqa: E731
    target_env = Sequences(alphabet=2, max_length=4, reward=restricted if budget else tree_reward)
    target, _ = target_distribution(target_env)
    log_pf, _ = policy_log_probs(env, amortised.n)
    assert distances(terminal_distribution(env, log_pf), target)["l1"] < (0.03 if budget is None else 0.08)


def test_terminal_posterior_proposal_is_the_rollout_probability_of_the_path_to_its_end():
    env = Sequences(alphabet=3, max_length=3, min_length=1)
    torch.manual_seed(0)
    amortised = Amortised(
        env, TreeOracle(env), lambda x: torch.zeros(len(x)), hidden=16, layers=1, k=1, teacher=0, replay=0,
        posterior="terminal", epsilon=0.3,
    )  # fmt: skip
    traj = amortised.sample(64, torch.Generator().manual_seed(1), epsilon=0.3)
    log_pf, _ = policy_log_probs(env, amortised.n)
    legal = torch.isfinite(log_pf)
    behaviour = (0.7 * log_pf.exp() + 0.3 * legal / legal.sum(-1, keepdim=True)).log()  # [S, A]
    suffix = amortised._suffix_log_probs(traj)
    for b in range(len(traj)):
        steps = [
            behaviour[env.state_index(traj.states[b, t : t + 1]), traj.actions[b, t]] for t in range(traj.lengths[b])
        ]
        for t in range(traj.lengths[b]):
            assert float(suffix[b, t]) == pytest.approx(float(sum(steps[t + 1 :], torch.zeros(1))), abs=1e-5)


def test_amortised_terminal_posterior_fits_the_exact_marginal_on_a_tree():
    env = Sequences(alphabet=2, max_length=4)
    torch.manual_seed(0)
    log_reward = lambda x: tree_reward(x).log().float()  # noqa: E731
    amortised = Amortised(
        env, TreeOracle(env), log_reward, hidden=32, layers=2, lr=3e-3, k=1, updates=2,
        posterior="terminal", teacher=0, replay=0, minibatch=0, epsilon=0.1,
    )  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    for _ in range(400):
        amortised.step(16, generator)
    assert amortised.q is None and amortised.reward_calls == 16  # one call per distinct end state
    # N(a|s_0) is the exact marginal numerator: the sum of R' over the outcomes that start with a
    outcomes = env.all_outcomes()
    log_n = amortised.n.forward_logits(env.featurize(env.reset(1)))[0, :2].detach()
    for token in range(2):
        exact = tree_reward(outcomes[outcomes[:, 0] == token]).sum().log()
        assert float(log_n[token]) == pytest.approx(float(exact), abs=0.1)
    target, _ = target_distribution(Sequences(alphabet=2, max_length=4, reward=tree_reward))
    log_pf, _ = policy_log_probs(env, amortised.n)
    assert distances(terminal_distribution(env, log_pf), target)["l1"] < 0.03


@pytest.mark.parametrize(
    "settings", [{"k": 8, "teacher": 0}, {"k": 1, "teacher": 16}, {"k": 1, "teacher": 0, "loss": "residual"}]
)
def test_terminal_posterior_refuses_settings_it_does_not_use(settings):
    env = Sequences(alphabet=2, max_length=3)
    with pytest.raises(ConfigError, match="posterior='terminal'"):
        Amortised(env, TreeOracle(env), lambda x: torch.zeros(len(x)), 8, 1, posterior="terminal", **settings)


def test_terminal_posterior_needs_a_tree():
    from gflownet.environments.sequences import PrependAppendSequences

    env = PrependAppendSequences(alphabet=2, max_length=3)
    with pytest.raises(ConfigError, match="needs a tree"):
        Amortised(env, TreeOracle(env), lambda x: torch.zeros(len(x)), 8, 1, posterior="terminal", k=1, teacher=0)
