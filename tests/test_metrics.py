"""Exact and sampled evaluation: DP against brute force, distances, Monte Carlo."""

import math

import pytest
import torch

from gflownet.environments.hypergrid import HyperGrid
from gflownet.metrics import (
    distances,
    exact_flows,
    exact_metrics,
    policy_log_probs,
    sampled_metrics,
    target_distribution,
    terminal_distribution,
    transitions,
)
from gflownet.policy import Policy, masked_log_softmax
from gflownet.sampler import sample_forward


F64 = torch.float64


def brute_force_terminal(env, log_pf):
    """P_T(x) by enumerating every path of the hypergrid DAG (recursion, explicit products)."""
    return brute_force_cut(env, log_pf, None)[0]


def random_log_pf(env, seed):
    g = torch.Generator().manual_seed(seed)
    states = env.all_states()
    logits = 1.5 * torch.randn(len(states), env.n_actions, generator=g, dtype=F64)
    return masked_log_softmax(logits, env.forward_mask(states))


@pytest.mark.parametrize("dim,side", [(2, 3), (3, 3), (1, 5), (2, 4)])
def test_terminal_distribution_matches_path_enumeration_random_table(dim, side):
    env = HyperGrid(dim=dim, side=side)
    log_pf = random_log_pf(env, dim * 10 + side)
    exact = terminal_distribution(env, log_pf)
    brute = brute_force_terminal(env, log_pf)
    assert exact.dtype == F64
    assert torch.allclose(exact, brute, rtol=0, atol=1e-12)
    assert exact.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert (exact >= 0).all()


@pytest.mark.parametrize("dim,side", [(2, 3), (3, 3)])
def test_terminal_distribution_of_a_policy_matches_path_enumeration(dim, side):
    env = HyperGrid(dim=dim, side=side)
    policy = Policy(env, hidden=32)
    log_pf, log_pb = policy_log_probs(env, policy)
    assert log_pf.shape == (env.n_states, env.n_actions) and log_pb.shape == (env.n_states, env.n_backward_actions)
    exact = terminal_distribution(env, log_pf)
    assert torch.allclose(exact, brute_force_terminal(env, log_pf), rtol=0, atol=1e-12)
    # The policy's log-softmax is float32: its rows sum to 1 only to float32 precision.
    assert exact.sum().item() == pytest.approx(1.0, abs=1e-6)
    # The DAG can be passed in (cached) with the same result.
    assert torch.equal(terminal_distribution(env, log_pf, transitions(env)), exact)


def test_transitions_table():
    env = HyperGrid(dim=2, side=3)
    dag = transitions(env)
    states = env.all_states()
    for i, s in enumerate(states):
        for a in range(env.dim):
            legal = bool(s[a] < env.side - 1)
            assert bool(dag.legal[i, a]) == legal
            if legal:
                child = s.clone()
                child[a] += 1
                assert int(dag.children[i, a]) == int(env.state_index(child[None]))
                assert int(dag.back[i, a]) == a
    assert dag.can_exit.all()


def standard_reward(coords, side, r0=0.1, r1=0.5, r2=2.0):
    """R of one coordinate tuple, straight from the formula (floats)."""
    a = [abs(c / (side - 1) - 0.5) for c in coords]
    return r0 + r1 * all(x > 0.25 for x in a) + r2 * all(0.3 < x < 0.4 for x in a)


@pytest.mark.parametrize("dim,side", [(2, 8), (3, 5), (2, 20)])
def test_target_distribution_is_reward_over_its_sum(dim, side):
    env = HyperGrid(dim=dim, side=side)
    rewards = [standard_reward(s, side) for s in env.all_states().tolist()]
    total = sum(rewards)
    target, log_z = target_distribution(env)
    want = torch.tensor([r / total for r in rewards], dtype=F64)
    # log R is stored in float32: relative precision ~1e-7.
    assert torch.allclose(target, want, rtol=1e-6, atol=0)
    assert log_z == pytest.approx(math.log(total), abs=1e-6)
    assert target.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_target_distribution_user_reward():
    env = HyperGrid(dim=2, side=3, reward=lambda s: (s[:, 0] + 2 * s[:, 1]).double())
    rewards = [float(a + 2 * b) for a, b in env.all_states().tolist()]
    target, log_z = target_distribution(env)
    want = torch.tensor([r / sum(rewards) for r in rewards], dtype=F64)
    assert torch.allclose(target, want, rtol=1e-6, atol=1e-20)  # R(s_0) = 0: floor, ~1e-22
    assert log_z == pytest.approx(math.log(sum(rewards)), abs=1e-6)


# ----------------------------------------------------------------------------------
# Distances
# ----------------------------------------------------------------------------------
def t64(x):
    return torch.tensor(x, dtype=F64)


def test_distances_identical():
    p = t64([0.2, 0.3, 0.5, 0.0])
    d = distances(p, p.clone())
    assert d["l1"] == 0.0
    assert abs(d["kl"]) < 1e-15 and abs(d["jsd"]) < 1e-15


def test_distances_full_support_hand_values():
    p, q = t64([0.5, 0.25, 0.25]), t64([0.25, 0.25, 0.5])
    d = distances(p, q)
    assert d["l1"] == pytest.approx(0.5, abs=1e-15)
    # KL(q || p) = 0.25 log(0.25/0.5) + 0 + 0.5 log(0.5/0.25) = 0.25 log 2
    assert d["kl"] == pytest.approx(0.25 * math.log(2), abs=1e-14)
    m = [0.375, 0.25, 0.375]
    kl_pm = 0.5 * math.log(0.5 / 0.375) + 0.25 * math.log(0.25 / 0.375)
    kl_qm = 0.25 * math.log(0.25 / 0.375) + 0.5 * math.log(0.5 / 0.375)
    assert m[1] == 0.25
    assert d["jsd"] == pytest.approx(0.5 * kl_pm + 0.5 * kl_qm, abs=1e-14)


def test_distances_zero_in_target():
    # the model puts mass where the target has none: KL(q||p) stays finite, exact
    p, q = t64([0.5, 0.25, 0.25]), t64([0.5, 0.5, 0.0])
    d = distances(p, q)
    assert d["l1"] == pytest.approx(0.5, abs=1e-15)
    assert d["kl"] == pytest.approx(0.5 * math.log(0.5 / 0.25), abs=1e-14)
    m = [0.5, 0.375, 0.125]
    kl_pm = 0.25 * math.log(0.25 / m[1]) + 0.25 * math.log(0.25 / m[2])
    kl_qm = 0.5 * math.log(0.5 / m[1])
    assert d["jsd"] == pytest.approx(0.5 * kl_pm + 0.5 * kl_qm, abs=1e-14)


def test_distances_zero_in_model():
    # the model misses part of the target: KL(q||p) is infinite (or a huge floor), JSD finite
    p, q = t64([0.5, 0.5, 0.0]), t64([0.5, 0.25, 0.25])
    d = distances(p, q)
    assert d["l1"] == pytest.approx(0.5, abs=1e-15)
    assert d["kl"] > 100 or d["kl"] == math.inf
    m = [0.5, 0.375, 0.125]
    kl_pm = 0.5 * math.log(0.5 / m[1])
    kl_qm = 0.25 * math.log(0.25 / m[1]) + 0.25 * math.log(0.25 / m[2])
    assert d["jsd"] == pytest.approx(0.5 * kl_pm + 0.5 * kl_qm, abs=1e-14)


def test_distances_disjoint_supports():
    d = distances(t64([0.5, 0.5, 0.0, 0.0]), t64([0.0, 0.0, 0.3, 0.7]))
    assert d["l1"] == pytest.approx(2.0, abs=1e-15)
    assert d["jsd"] == pytest.approx(math.log(2), abs=1e-14)
    assert math.isfinite(d["jsd"]) and not math.isnan(d["kl"])


# ----------------------------------------------------------------------------------
# The exact flows give the target
# ----------------------------------------------------------------------------------
ENVS = [
    lambda: HyperGrid(dim=2, side=4),
    lambda: HyperGrid(dim=3, side=3),
    lambda: HyperGrid(dim=2, side=5, reward=lambda s: (1 + s[:, 0] * s[:, 1]).double() ** 2),
]


@pytest.mark.parametrize("make", ENVS)
@pytest.mark.parametrize("pb", ["uniform", "random"])
def test_exact_flows_policy_samples_the_target(make, pb):
    """The DP is float64: the flows' P_F must give R/Z to 1e-12 (uniform P_B included)."""
    env = make()
    log_pb = None
    if pb == "random":
        g = torch.Generator().manual_seed(3)
        states = env.all_states()
        log_pb = masked_log_softmax(
            torch.randn(len(states), env.dim, generator=g, dtype=F64), env.backward_mask(states)
        )
    flows = exact_flows(env, log_pb)
    target, log_z = target_distribution(env)
    assert torch.allclose(terminal_distribution(env, flows.log_pf), target, rtol=0, atol=1e-12)
    assert flows.log_z == pytest.approx(log_z, abs=1e-10)
    # P_F rows are normalised over the legal actions, and are -inf elsewhere.
    states = env.all_states()
    legal = env.forward_mask(states)
    assert torch.allclose(flows.log_pf.exp().sum(1), torch.ones(len(states), dtype=F64), atol=1e-12)
    assert (flows.log_pf[~legal] == -math.inf).all()


class TablePolicy(Policy):
    """A Policy whose forward logits are a fixed table indexed by the state (decoded from the one-hot)."""

    def __init__(self, env, log_pf, log_z):
        super().__init__(env, hidden=4, layers=1)
        self.env, self.table = env, log_pf
        with torch.no_grad():
            self.log_z_param.fill_(log_z)

    def forward_logits(self, features, cond=None):
        coords = features.view(len(features), self.env.dim, self.env.side).argmax(-1)
        return self.table[self.env.state_index(coords)]


def test_exact_metrics_of_the_exact_policy():
    env = HyperGrid(dim=3, side=4)
    states = env.all_states()
    log_pb = masked_log_softmax(torch.randn(len(states), env.dim, dtype=F64), env.backward_mask(states))
    flows = exact_flows(env, log_pb)
    policy = TablePolicy(env, flows.log_pf, flows.log_z)
    m = exact_metrics(env, policy, log_z=float(policy.log_z_param.detach()))
    assert m["l1"] < 1e-10
    assert abs(m["kl"]) < 1e-10 and abs(m["jsd"]) < 1e-10
    assert m["log_z_error"] < 1e-5  # log Z is a float32 parameter
    assert m["true_log_z"] == pytest.approx(target_distribution(env)[1], abs=1e-12)


def test_exact_metrics_of_a_random_policy_is_far():
    env = HyperGrid(dim=2, side=8)
    policy = Policy(env, hidden=16)
    m = exact_metrics(env, policy, log_z=policy.estimate_log_z(env, frozenset({"log_z"})))
    model = terminal_distribution(env, policy_log_probs(env, policy)[0])
    d = distances(model, target_distribution(env)[0])
    assert m["l1"] == pytest.approx(d["l1"], abs=1e-12) and m["l1"] > 0.1
    assert m["log_z"] == pytest.approx(0.0) and m["log_z_error"] == pytest.approx(m["true_log_z"])
    assert "log_z" not in exact_metrics(env, policy)  # no estimate given, no error reported


# ----------------------------------------------------------------------------------
# Monte Carlo: the sampler realises the exact terminal distribution
# ----------------------------------------------------------------------------------
def test_monte_carlo_terminal_frequencies_match_exact():
    env = HyperGrid(dim=2, side=4)
    policy = Policy(env, hidden=32)
    with torch.no_grad():  # a markedly non-uniform policy
        policy.head.weight.mul_(4.0)
    n = 200_000
    traj = sample_forward(env, policy, n, generator=torch.Generator().manual_seed(5))
    counts = torch.bincount(env.state_index(traj.terminal), minlength=env.n_states).double()
    exact = terminal_distribution(env, policy_log_probs(env, policy)[0])
    l1 = (counts / n - exact).abs().sum().item()
    assert l1 < 0.02
    chi2 = (((counts - n * exact) ** 2) / (n * exact)).sum().item()
    assert chi2 < 60  # 15 degrees of freedom: P(chi2 > 60) ~ 1e-7
    # and the distribution is far from uniform, so the check has teeth
    assert (exact - 1 / env.n_states).abs().sum().item() > 0.1


def brute_force_cut(env, log_pf, k):
    """Exact law of (complete, last state) of hypergrid trajectories cut after k moves (None:
    never), by path enumeration (recursion, explicit products). A state whose only legal
    action is the exit is never cut. Returns (P(exit at x) [N], P(cut at s) [N])."""
    table = log_pf.double().exp().tolist()
    side, dim, exit_a = env.side, env.dim, env.exit_action
    done, cut = [0.0] * env.n_states, [0.0] * env.n_states

    def index(s):
        return sum(c * side**d for d, c in enumerate(s))

    def walk(s, prob, moves):
        if moves == k and any(c < side - 1 for c in s):  # not exited after k moves: cut here
            cut[index(s)] += prob
            return
        row = table[index(s)]
        done[index(s)] += prob * row[exit_a]
        for d in range(dim):
            if s[d] < side - 1:
                child = list(s)
                child[d] += 1
                walk(tuple(child), prob * row[d], moves + 1)

    walk((0,) * dim, 1.0, 0)
    return torch.tensor(done, dtype=F64), torch.tensor(cut, dtype=F64)


@pytest.mark.parametrize("k", [1, 3])
def test_monte_carlo_cut_trajectories_match_path_enumeration(k):
    """sample_forward(max_moves=k): which trajectories come back complete, and where the others
    stop, follow the exact law of the first k moves."""
    env = HyperGrid(dim=2, side=4)
    policy = Policy(env, hidden=32)
    with torch.no_grad():
        policy.head.weight.mul_(4.0)
    done, cut = brute_force_cut(env, policy_log_probs(env, policy)[0], k)
    assert (done.sum() + cut.sum()).item() == pytest.approx(1.0, abs=1e-6)
    n = 60_000
    traj = sample_forward(env, policy, n, generator=torch.Generator().manual_seed(6), max_moves=k)
    C = traj.complete
    assert (traj.lengths[~C] == k).all() and (traj.lengths[C] <= k).all()
    counts = torch.cat(
        [
            torch.bincount(env.state_index(traj.last_state[C]), minlength=env.n_states),
            torch.bincount(env.state_index(traj.last_state[~C]), minlength=env.n_states),
        ]
    ).double()
    exact = torch.cat([done, cut])
    assert (counts[exact == 0] == 0).all()
    support = exact > 0
    l1 = (counts / n - exact).abs().sum().item()
    assert l1 < 0.02
    chi2 = (((counts - n * exact)[support] ** 2) / (n * exact[support])).sum().item()
    dof = int(support.sum()) - 1
    assert chi2 < dof + 6 * math.sqrt(2 * dof)  # ~ 6 standard deviations


# ----------------------------------------------------------------------------------
# Sampled metrics
# ----------------------------------------------------------------------------------
def test_sampled_metrics_hand_batch():
    env = HyperGrid(dim=2, side=8)
    # R: (1,1), (6,6), (1,6) are modes (2.6); (0,0) gives R0 + R1 = 0.6
    terminals = torch.tensor([[1, 1], [1, 1], [6, 6], [0, 0], [1, 6]])
    m = sampled_metrics(env, terminals, env.log_reward(terminals), top_k=2)
    assert m["n_samples"] == 5
    assert m["unique_fraction"] == pytest.approx(4 / 5)
    assert m["top2_mean_reward"] == pytest.approx(2.6, rel=1e-6)
    assert m["mean_reward"] == pytest.approx((4 * 2.6 + 0.6) / 5, rel=1e-6)
    assert m["modes_found"] == 3
    assert m["modes_total"] == 4
    m = sampled_metrics(env, terminals, env.log_reward(terminals), top_k=100)
    assert m["top100_mean_reward"] == pytest.approx((3 * 2.6 + 0.6) / 4, rel=1e-6)


def test_sampled_metrics_no_modes_and_duplicates_only():
    env = HyperGrid(dim=2, side=8)
    terminals = torch.tensor([[3, 3]] * 4)
    m = sampled_metrics(env, terminals, env.log_reward(terminals), top_k=10)
    assert m["unique_fraction"] == pytest.approx(0.25)
    assert m["modes_found"] == 0
    assert m["top10_mean_reward"] == pytest.approx(0.1, rel=1e-6)


def test_sampled_metrics_user_reward_modes_are_the_maxima():
    env = HyperGrid(dim=2, side=3, reward=lambda s: (s[:, 0] * s[:, 1]).double())
    assert env.n_modes() == 1  # only (2, 2) reaches R = 4
    terminals = torch.tensor([[2, 2], [2, 1], [0, 0], [2, 2]])
    m = sampled_metrics(env, terminals, env.log_reward(terminals), top_k=2)
    assert m["modes_found"] == 1 and m["modes_total"] == 1
    assert m["top2_mean_reward"] == pytest.approx((4 + 2) / 2, rel=1e-6)
    assert m["unique_fraction"] == pytest.approx(3 / 4)
