"""Rollouts (forward and backward), Policy.evaluate, and the Trajectories batch."""

import math
from collections import Counter

import pytest
import torch

from gflownet.environments.hypergrid import HyperGrid
from gflownet.metrics import terminal_distribution
from gflownet.policy import Policy, masked_log_softmax
from gflownet.sampler import sample_backward, sample_forward
from gflownet.trajectories import Trajectories


ALL_NEEDS = frozenset({"log_pb", "log_flow", "log_z", "edge_flows", "log_pf_exit", "state_log_reward"})


def gen(seed):
    return torch.Generator().manual_seed(seed)


def check_legal(env, traj, start_at_s0=True, tight=True):
    """Every transition legal and consistent with env.step; exit at L_b - 1 of a complete
    trajectory, none in a cut one (L_b moves); the last state repeated after."""
    B, T = traj.actions.shape
    assert traj.states.shape[:2] == (B, T + 1)
    complete = traj.is_complete
    assert complete.shape == (B,) and complete.dtype == torch.bool
    assert (traj.lengths[complete] >= 1).all() and (traj.lengths >= 0).all() and (traj.lengths <= T).all()
    if tight:
        assert int(traj.lengths.max()) == T  # no column of pure padding
    exit_a = env.exit_action
    if start_at_s0:
        assert (traj.states[:, 0] == 0).all()
    for b in range(B):
        L, c = int(traj.lengths[b]), bool(complete[b])
        n_moves = L - 1 if c else L
        last = traj.states[b, n_moves]  # x, or the state where the trajectory was cut
        for t in range(T):
            s, a, s_next = traj.states[b, t], int(traj.actions[b, t]), traj.states[b, t + 1]
            if t < L:
                assert bool(env.forward_mask(s[None])[0, a]), (b, t)
                assert torch.equal(env.step(s[None], torch.tensor([a]))[0], s_next), (b, t)
                assert (a == exit_a) == (c and t == L - 1), (b, t)
            else:
                assert a == exit_a
            if t >= n_moves:
                assert torch.equal(s_next, last)
        assert torch.equal(traj.last_state[b], last)
        assert torch.equal(traj.states[b, L], last)
        if c:
            assert torch.equal(traj.terminal[b], last)
        assert n_moves == int(last.sum())  # hypergrid: one coordinate step per move


# ----------------------------------------------------------------------------------
# sample_forward
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dim,side", [(2, 4), (3, 3), (1, 6)])
@pytest.mark.parametrize("epsilon", [0.0, 0.3])
def test_sample_forward_is_legal(dim, side, epsilon):
    env = HyperGrid(dim=dim, side=side)
    traj = sample_forward(env, Policy(env, hidden=16), 200, epsilon=epsilon, generator=gen(1))
    assert len(traj) == 200 and traj.log_reward is None and traj.cond is None
    check_legal(env, traj)
    assert torch.equal(traj.mask, torch.arange(traj.max_length) < traj.lengths[:, None])


def biased_policy(env, exit_logit=20.0):
    """A policy that (almost) always exits at once."""
    policy = Policy(env, hidden=8)
    with torch.no_grad():
        policy.head.weight.zero_()
        policy.head.bias.zero_()
        policy.head.bias[env.exit_action] = exit_logit
    return policy


def uniform_pf_terminal(env):
    states = env.all_states()
    log_pf = masked_log_softmax(torch.zeros(len(states), env.n_actions, dtype=torch.float64), env.forward_mask(states))
    return terminal_distribution(env, log_pf)


def empirical(env, traj):
    counts = torch.bincount(env.state_index(traj.terminal), minlength=env.n_states).double()
    return counts / counts.sum()


def test_biased_policy_is_followed():
    env = HyperGrid(dim=2, side=4)
    traj = sample_forward(env, biased_policy(env), 1000, generator=gen(2))
    assert (traj.lengths == 1).all()


@pytest.mark.parametrize("kwargs", [dict(epsilon=1.0), dict(temperature=1e6)])
def test_exploration_gives_uniform_legal_actions(kwargs):
    env = HyperGrid(dim=2, side=4)
    n = 40_000
    traj = sample_forward(env, biased_policy(env), n, generator=gen(3), **kwargs)
    check_legal(env, Trajectories(traj.states[:50], traj.actions[:50], traj.lengths[:50]))
    # first action: uniform over the 3 legal ones
    freq = torch.bincount(traj.actions[:, 0], minlength=3).double() / n
    assert (freq - 1 / 3).abs().max().item() < 0.015  # sd ~ 0.0024
    # whole terminal distribution: that of the uniform P_F
    l1 = (empirical(env, traj) - uniform_pf_terminal(env)).abs().sum().item()
    assert l1 < 0.03


def test_epsilon_mixes_policy_and_uniform():
    env = HyperGrid(dim=2, side=4)
    n = 40_000
    traj = sample_forward(env, biased_policy(env), n, epsilon=0.5, generator=gen(4))
    # exit at s_0 with prob 0.5 * 1 + 0.5 * 1/3
    assert (traj.lengths == 1).double().mean().item() == pytest.approx(0.5 + 0.5 / 3, abs=0.015)


def test_sample_forward_reproducible_with_generator():
    env = HyperGrid(dim=3, side=4)
    policy = Policy(env, hidden=16)
    for kwargs in (dict(), dict(epsilon=0.2), dict(temperature=2.0)):
        a = sample_forward(env, policy, 64, generator=gen(42), **kwargs)
        b = sample_forward(env, policy, 64, generator=gen(42), **kwargs)
        c = sample_forward(env, policy, 64, generator=gen(43), **kwargs)
        assert torch.equal(a.states, b.states) and torch.equal(a.actions, b.actions)
        assert torch.equal(a.lengths, b.lengths)
        assert not (a.actions.shape == c.actions.shape and torch.equal(a.actions, c.actions))


@pytest.mark.parametrize("batch,max_moves", [(4, None), (200, None), (200, 3)])  # around DEDUPE_MIN_BATCH
def test_sample_forward_paths_agree(monkeypatch, batch, max_moves):
    """The environment's own dynamics, the walk of state indices through tables of the
    dynamics, and that walk with logits tabulated over all states (each with distinct-state
    rows or plain rows) use the same network and dynamics: with the same noise they take
    the same actions."""
    import gflownet.sampler as sampler

    env = HyperGrid(dim=3, side=4)
    policy = Policy(env, hidden=16)
    runs = []
    pairs = env.n_states * env.n_actions
    for walk, per_trajectory in ((0, 0), (pairs, 0), (pairs, env.n_states)):
        monkeypatch.setattr(sampler, "WALK_MAX_PAIRS", walk)
        monkeypatch.setattr(sampler, "TABLE_STATES_PER_TRAJECTORY", per_trajectory)
        runs.append(
            sample_forward(env, policy, batch, epsilon=0.2, temperature=1.5, generator=gen(7), max_moves=max_moves)
        )
    check_legal(env, runs[2], tight=max_moves is None)  # a cut batch may end on a column of padding
    for run in runs[1:]:
        assert torch.equal(runs[0].actions, run.actions) and torch.equal(runs[0].states, run.states)
        assert torch.equal(runs[0].is_complete, run.is_complete)


def test_sample_forward_with_cond():
    env = HyperGrid(dim=2, side=4)
    policy = Policy(env, hidden=16, cond_dim=2)
    cond = torch.randn(32, 2)
    traj = sample_forward(env, policy, 32, cond=cond, generator=gen(5))
    check_legal(env, traj)
    assert torch.equal(traj.cond, cond)


# ----------------------------------------------------------------------------------
# sample_forward(max_moves=...): trajectories cut after a number of moves
# ----------------------------------------------------------------------------------
def check_cut(env, full, cut, max_moves):
    """``cut`` is ``full`` (same generator) cut after ``max_moves[b]`` moves: a trajectory that
    exits before its cut, or reaches at its cut a state whose only legal action is the exit,
    is unchanged and complete (L = moves + 1); any other has L = cut, no exit, complete
    False, and follows the uncut one for its first L moves."""
    B = len(full)
    k = torch.as_tensor(max_moves).expand(B)
    assert cut.complete is not None and cut.complete.shape == (B,) and cut.complete.dtype == torch.bool
    for b in range(B):
        L_full, k_b = int(full.lengths[b]), int(k[b])
        L, c = int(cut.lengths[b]), bool(cut.complete[b])
        exit_only = L_full - 1 == k_b and not env.forward_mask(full.states[b, k_b][None])[0, :-1].any()
        if L_full - 1 < k_b or exit_only:  # exited (after L_full - 1 moves) before the cut, or had to
            assert c and L == L_full, (b, L_full, k_b, L, c)
            assert torch.equal(cut.states[b, : L + 1], full.states[b, : L + 1])
            assert torch.equal(cut.actions[b, :L], full.actions[b, :L])
            assert torch.equal(cut.last_state[b], full.terminal[b])
        else:
            assert not c and L == k_b, (b, L_full, k_b, L, c)
            assert torch.equal(cut.states[b, : L + 1], full.states[b, : L + 1])
            assert torch.equal(cut.actions[b, :L], full.actions[b, :L])
            assert (cut.actions[b, L:] == env.exit_action).all()
            assert torch.equal(cut.last_state[b], full.states[b, L])
    # at most one column of pure padding (the step at which the last cut trajectory stopped)
    T = cut.max_length
    assert int(cut.lengths.max()) <= T <= max(int(cut.lengths.max()) + 1, 1)
    check_legal(env, cut, tight=False)


@pytest.mark.parametrize("batch", [40, 200])  # below and above DEDUPE_MIN_BATCH
@pytest.mark.parametrize("epsilon", [0.0, 0.3])
@pytest.mark.parametrize("dim,side", [(2, 4), (3, 3)])
def test_sample_forward_max_moves_tensor(dim, side, epsilon, batch):
    env = HyperGrid(dim=dim, side=side)
    policy = Policy(env, hidden=16)
    cuts = torch.randint(0, env.max_steps + 1, (batch,), generator=gen(20))
    full = sample_forward(env, policy, batch, epsilon=epsilon, generator=gen(21))
    assert full.complete is None  # no cut asked for: no flag
    cut = sample_forward(env, policy, batch, epsilon=epsilon, generator=gen(21), max_moves=cuts)
    check_cut(env, full, cut, cuts)
    C, L = cut.complete, cut.lengths
    assert C.any() and (~C).any() and ((L == 0) & ~C).any() and ((L == 1) & ~C).any() and ((L == 1) & C).any()
    assert (L[~C] == cuts[~C]).all() and (L[C] <= cuts[C] + 1).all()  # + 1: a forced exit


@pytest.mark.parametrize("k", [1, 2, 3])
def test_sample_forward_max_moves_int_equals_tensor(k):
    env = HyperGrid(dim=2, side=5)
    policy = Policy(env, hidden=16)
    full = sample_forward(env, policy, 80, epsilon=0.2, generator=gen(22))
    a = sample_forward(env, policy, 80, epsilon=0.2, generator=gen(22), max_moves=k)
    b = sample_forward(env, policy, 80, epsilon=0.2, generator=gen(22), max_moves=torch.full((80,), k))
    check_cut(env, full, a, k)
    for f in ("states", "actions", "lengths", "complete"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert (~a.complete).any() and (a.lengths <= k + 1).all()
    assert (a.lengths[~a.complete] == k).all()
    assert (a.lengths[a.complete] <= k).all()  # at most k - 1 moves, then the exit


def test_sample_forward_max_moves_zero():
    env = HyperGrid(dim=2, side=4)
    traj = sample_forward(env, Policy(env, hidden=16), 12, generator=gen(23), max_moves=0)
    assert (traj.lengths == 0).all() and not traj.complete.any()
    assert (traj.states == 0).all() and (traj.last_state == 0).all()
    assert (traj.actions == env.exit_action).all() and not traj.mask.any()
    check_legal(env, traj, tight=False)


def test_sample_forward_max_moves_beyond_max_steps_cuts_nothing():
    env = HyperGrid(dim=2, side=4)
    policy = Policy(env, hidden=16)
    full = sample_forward(env, policy, 50, epsilon=0.5, generator=gen(24))
    for k in (env.max_steps, 100):  # a trajectory makes at most max_steps - 1 moves
        traj = sample_forward(env, policy, 50, epsilon=0.5, generator=gen(24), max_moves=k)
        assert traj.complete is not None and traj.complete.all()
        assert torch.equal(traj.states, full.states) and torch.equal(traj.lengths, full.lengths)
    # one move fewer: those that reached the far corner, where only the exit is legal, still exit
    traj = sample_forward(env, policy, 50, epsilon=0.5, generator=gen(24), max_moves=env.max_steps - 1)
    check_cut(env, full, traj, env.max_steps - 1)
    corner = full.lengths == env.max_steps
    assert corner.any() and traj.complete.all() and torch.equal(traj.lengths, full.lengths)


def test_sample_forward_max_moves_with_cond():
    env = HyperGrid(dim=2, side=4)
    policy = Policy(env, hidden=16, cond_dim=2)
    cond = torch.randn(32, 2)
    cuts = torch.arange(32) % 4
    full = sample_forward(env, policy, 32, cond=cond, generator=gen(25))
    cut = sample_forward(env, policy, 32, cond=cond, generator=gen(25), max_moves=cuts)
    check_cut(env, full, cut, cuts)
    assert torch.equal(cut.cond, cond)


# ----------------------------------------------------------------------------------
# sample_backward
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("backward", ["learned", "uniform"])
@pytest.mark.parametrize("dim,side", [(2, 4), (3, 3)])
def test_sample_backward_is_legal(dim, side, backward):
    env = HyperGrid(dim=dim, side=side)
    terminals = env.all_states()[torch.randint(env.n_states, (150,), generator=gen(6))]
    terminals[0] = 0  # s_0 itself: a trajectory s_0 -> exit
    terminals[1] = side - 1  # the far corner: the longest trajectory
    traj = sample_backward(env, Policy(env, hidden=16, backward=backward), terminals, generator=gen(7))
    check_legal(env, traj)
    assert torch.equal(traj.terminal, terminals)
    assert torch.equal(traj.lengths, terminals.sum(-1) + 1)
    assert int(traj.lengths[0]) == 1 and int(traj.lengths[1]) == env.max_steps


def test_sample_backward_only_s0():
    env = HyperGrid(dim=2, side=4)
    traj = sample_backward(env, Policy(env, hidden=8), torch.zeros(3, 2, dtype=torch.long))
    assert traj.actions.shape == (3, 1) and (traj.actions == env.exit_action).all()
    assert (traj.lengths == 1).all() and (traj.states == 0).all()


def path_pb_probability(env, states, L, log_pb_table):
    """P_B of one path (forward-ordered states s_0..s_{L-1}), as an explicit product."""
    p = 1.0
    for t in range(L - 1, 0, -1):
        child, parent = states[t], states[t - 1]
        d = int((child - parent).argmax())
        p *= math.exp(float(log_pb_table[int(env.state_index(child[None])), d]))
    return p


def all_paths(env, x):
    """Every forward path from s_0 to x, as tuples of states (recursive enumeration)."""
    if sum(x) == 0:
        return [((0,) * env.dim,)]
    out = []
    for d in range(env.dim):
        if x[d] > 0:
            parent = list(x)
            parent[d] -= 1
            out += [p + (tuple(x),) for p in all_paths(env, tuple(parent))]
    return out


@pytest.mark.parametrize("backward", ["uniform", "learned"])
def test_sample_backward_path_distribution(backward):
    env = HyperGrid(dim=3, side=3)
    policy = Policy(env, hidden=16, backward=backward)
    if backward == "learned":
        with torch.no_grad():
            policy.head.weight.mul_(5.0)
    states = env.all_states()
    with torch.no_grad():
        log_pb = masked_log_softmax(policy.backward_logits(env.featurize(states)), env.backward_mask(states))
    if backward == "uniform":  # P_B(parent|s) = 1 / number of parents, by hand
        for i, s in enumerate(states.tolist()):
            k = sum(c > 0 for c in s)
            for d in range(env.dim):
                if s[d] > 0:
                    assert math.exp(float(log_pb[i, d])) == pytest.approx(1 / k, rel=1e-6)
    x = (2, 1, 1)
    paths = all_paths(env, x)
    assert len(paths) == 12  # 4! / (2! 1! 1!)
    expected = {p: path_pb_probability(env, torch.tensor(p), len(p), log_pb) for p in paths}
    assert sum(expected.values()) == pytest.approx(1.0, abs=1e-6)
    n = 30_000
    traj = sample_backward(env, policy, torch.tensor([x] * n), generator=gen(8))
    L = sum(x) + 1
    assert (traj.lengths == L).all()
    seen = Counter(tuple(map(tuple, row)) for row in traj.states[:, :L].tolist())
    assert set(seen) <= set(paths)
    tv = 0.5 * sum(abs(seen.get(p, 0) / n - q) for p, q in expected.items())
    assert tv < 0.02
    chi2 = sum((seen.get(p, 0) - n * q) ** 2 / (n * q) for p, q in expected.items())
    assert chi2 < 45  # 11 degrees of freedom: P(chi2 > 45) ~ 5e-6


def test_sample_backward_reproducible():
    env = HyperGrid(dim=3, side=4)
    policy = Policy(env, hidden=16)
    terminals = env.all_states()[torch.randint(env.n_states, (40,), generator=gen(9))]
    a = sample_backward(env, policy, terminals, generator=gen(10))
    b = sample_backward(env, policy, terminals, generator=gen(10))
    assert torch.equal(a.states, b.states) and torch.equal(a.actions, b.actions)


# ----------------------------------------------------------------------------------
# Policy.evaluate against a naive per-transition computation
# ----------------------------------------------------------------------------------
PER_TRANSITION = ("log_pf", "log_pb")
PER_STATE = ("log_flow", "log_pf_exit", "state_log_reward", "log_inflow", "log_outflow")


def naive(env, policy, traj):
    """Per (b, t) transition and per (b, k) state: run the policy on the single state,
    masked log-softmax, by hand. Per-transition outputs are [B, T], per-state ones [B, T+1]
    (states k = 0..L_b are filled: column L_b is x again for a complete trajectory, the
    state where it was cut for an incomplete one); NaN elsewhere."""
    B, T = traj.actions.shape
    complete = traj.is_complete
    out = {k: torch.full((B, T), math.nan) for k in PER_TRANSITION}
    out.update({k: torch.full((B, T + 1), math.nan) for k in PER_STATE})
    out["log_exit_flow"] = torch.full((B,), math.nan)

    def heads(s, b):
        cond = None if traj.cond is None else traj.cond[b : b + 1]
        fwd, bwd, flow = policy.heads(env.featurize(s[None]), cond)
        if bwd is None:
            bwd = torch.zeros(1, env.n_backward_actions)
        return fwd[0], bwd[0], (None if flow is None else flow[0])

    for b in range(B):
        L, c = int(traj.lengths[b]), bool(complete[b])
        for t in range(L):
            s, a = traj.states[b, t], int(traj.actions[b, t])
            fwd, _, _ = heads(s, b)
            fmask = env.forward_mask(s[None])[0]
            lp = fwd.masked_fill(~fmask, -math.inf).log_softmax(-1)
            out["log_pf"][b, t] = lp[a]
            if c and t == L - 1:  # the exit: no backward probability
                out["log_pb"][b, t] = 0.0
                out["log_exit_flow"][b] = fwd[env.exit_action]
            else:  # a move s_t -> s_{t+1} (every transition of a cut trajectory)
                s_next = traj.states[b, t + 1]
                _, bwd, _ = heads(s_next, b)
                bmask = env.backward_mask(s_next[None])[0]
                out["log_pb"][b, t] = bwd.masked_fill(~bmask, -math.inf).log_softmax(-1)[a]
        for k in range(L + 1):
            s = traj.states[b, k]
            fwd, _, flow = heads(s, b)
            fmask = env.forward_mask(s[None])[0]
            lp = fwd.masked_fill(~fmask, -math.inf).log_softmax(-1)
            out["log_pf_exit"][b, k] = lp[env.exit_action]
            out["log_flow"][b, k] = flow if flow is not None else math.nan
            out["state_log_reward"][b, k] = env.log_reward(s[None])[0]
            # FM: edge flows are the forward logits
            out["log_outflow"][b, k] = fwd[fmask].logsumexp(0)
            into = []
            for d in range(env.dim):
                if s[d] > 0:
                    parent = s.clone()
                    parent[d] -= 1
                    into.append(heads(parent, b)[0][d])
            if into:
                out["log_inflow"][b, k] = torch.stack(into).logsumexp(0)
    return out


def state_mask(traj):
    """[B, T+1] bool: the states s_0..s_{L_b} of each trajectory."""
    return torch.arange(traj.max_length + 1) <= traj.lengths[:, None]


def compare(env, policy, traj, ev, ref, keys):
    valid = traj.mask
    states = state_mask(traj)
    for k in keys:
        got = getattr(ev, k)
        sel = (states if k in PER_STATE else valid).clone()
        assert got is not None and got.shape == sel.shape, k
        if k == "log_inflow":  # s_0 has no parent: the value there is a dummy
            B, T1 = sel.shape
            sel &= ~env.is_initial(traj.states.reshape(B * T1, *traj.states.shape[2:])).view(B, T1)
        assert torch.allclose(got[sel].float(), ref[k][sel], atol=1e-5, rtol=1e-5), k
    assert torch.equal(ev.lengths, traj.lengths) and torch.equal(ev.mask, valid)
    if traj.complete is None:
        assert ev.complete is None
    else:
        assert torch.equal(ev.complete, traj.complete)


def sampled(env, policy, cond=None, n=24, seed=11, max_moves=None):
    traj = sample_forward(env, policy, n, cond=cond, epsilon=0.3, generator=gen(seed), max_moves=max_moves)
    traj.log_reward = env.log_reward(traj.last_state)
    return traj


CUTS = torch.arange(24) % 6  # per-trajectory cuts 0..5 of a 24-trajectory batch


def check_mixed(traj):
    """The cut batch holds complete trajectories and cut ones with L = 0, 1 and >= 2 moves."""
    C, L = traj.complete, traj.lengths
    assert C is not None and C.any()
    assert ((L == 0) & ~C).any() and ((L == 1) & ~C).any() and ((L >= 2) & ~C).any()


@pytest.mark.parametrize("cut", [False, True], ids=["whole", "cut"])
@pytest.mark.parametrize("backward", ["learned", "uniform"])
@pytest.mark.parametrize("path", ["dedup", "no_dedup"])
def test_evaluate_matches_naive(backward, path, cut):
    env = HyperGrid(dim=2, side=4)
    if path == "no_dedup":
        env.n_states = None  # not enumerable: every (b, t) goes through the network
        assert not env.enumerable
    policy = Policy(env, hidden=16, backward=backward, flow=True)
    traj = sampled(env, policy, max_moves=CUTS if cut else None)
    if cut:
        check_mixed(traj)
    ev = policy.evaluate(env, traj, ALL_NEEDS)
    ref = naive(env, policy, traj)
    compare(
        env,
        policy,
        traj,
        ev,
        ref,
        ["log_pf", "log_pb", "log_flow", "log_pf_exit", "state_log_reward", "log_inflow", "log_outflow"],
    )
    C = traj.is_complete  # a cut trajectory has no exit: its exit flow is never read
    assert ev.log_exit_flow.shape == (len(traj),) and torch.isfinite(ev.log_exit_flow).all()
    assert torch.allclose(ev.log_exit_flow[C], ref["log_exit_flow"][C], atol=1e-5)
    assert torch.equal(ev.log_z, policy.log_z_param.expand(len(traj)))
    assert torch.equal(ev.log_reward, traj.log_reward)
    B, T = traj.actions.shape
    rows, L, C = torch.arange(B), traj.lengths, traj.is_complete
    assert (ev.log_pb[rows[C], L[C] - 1] == 0).all()  # the exits
    # per-state fields have T+1 columns; column L_b of a complete trajectory is x again
    for k in PER_STATE:
        assert getattr(ev, k).shape == (B, T + 1), k
        assert torch.equal(getattr(ev, k)[rows[C], L[C]], getattr(ev, k)[rows[C], L[C] - 1]), k
    if cut:
        check_cut_evaluation(env, policy, traj, ev)


def check_cut_evaluation(env, policy, traj, ev):
    """The last transition of a cut trajectory is a move into s_L: its log P_B is that of the
    move back from s_L, computed by hand; per-state fields at s_L are those of s_L."""
    seen = 0
    for b in range(len(traj)):
        L = int(traj.lengths[b])
        if traj.complete[b] or L == 0:
            continue
        s_prev, s_last, a = traj.states[b, L - 1], traj.states[b, L], int(traj.actions[b, L - 1])
        assert a != env.exit_action and torch.equal(s_last, traj.last_state[b])
        cond = None if traj.cond is None else traj.cond[b : b + 1]
        fwd, bwd, flow = policy.heads(env.featurize(s_last[None]), cond)
        if bwd is None:
            bwd = torch.zeros(1, env.n_backward_actions)
        log_pb = bwd[0].masked_fill(~env.backward_mask(s_last[None])[0], -math.inf).log_softmax(-1)
        back = int((s_last - s_prev).argmax())  # hypergrid: the coordinate the move incremented
        assert torch.allclose(ev.log_pb[b, L - 1], log_pb[back], atol=1e-5), b
        if ev.log_flow is not None:
            assert torch.allclose(ev.log_flow[b, L], flow[0], atol=1e-5), b
        seen += 1
    assert seen > 0


@pytest.mark.parametrize("cut", [False, True], ids=["whole", "cut"])
def test_evaluate_dedup_equals_no_dedup(cut):
    env = HyperGrid(dim=3, side=3)
    policy = Policy(env, hidden=16, flow=True)
    traj = sampled(env, policy, n=40, max_moves=torch.arange(40) % 5 if cut else None)
    a = policy.evaluate(env, traj, ALL_NEEDS)
    env.n_states = None
    b = policy.evaluate(env, traj, ALL_NEEDS)
    for k in ("log_pf", "log_pb", "log_flow", "log_pf_exit", "state_log_reward", "log_outflow"):
        m = state_mask(traj) if k in PER_STATE else traj.mask
        assert torch.allclose(getattr(a, k)[m], getattr(b, k)[m], atol=1e-6), k


@pytest.mark.parametrize("cut", [False, True], ids=["whole", "cut"])
@pytest.mark.parametrize("backward", ["learned", "uniform"])
def test_evaluate_conditional_matches_naive(backward, cut):
    env = HyperGrid(dim=2, side=4)
    policy = Policy(env, hidden=16, backward=backward, flow=True, cond_dim=2)
    cond = torch.randn(24, 2)
    traj = sampled(env, policy, cond=cond, max_moves=CUTS if cut else None)
    needs = ALL_NEEDS - {"edge_flows"}
    ev = policy.evaluate(env, traj, needs)
    ref = naive(env, policy, traj)
    compare(env, policy, traj, ev, ref, ["log_pf", "log_pb", "log_flow", "log_pf_exit", "state_log_reward"])
    assert torch.allclose(ev.log_z, policy.log_z(cond, len(cond)))
    if cut:
        check_mixed(traj)
        check_cut_evaluation(env, policy, traj, ev)


@pytest.mark.parametrize("cut", [False, True], ids=["whole", "cut"])
def test_evaluate_conditional_edge_flows(cut):
    """FM with a conditional policy: the parents' edge flows must see the same cond."""
    env = HyperGrid(dim=2, side=4)
    policy = Policy(env, hidden=16, cond_dim=2)
    traj = sampled(env, policy, cond=torch.randn(24, 2), max_moves=CUTS if cut else None)
    ev = policy.evaluate(env, traj, frozenset({"edge_flows"}))
    ref = naive(env, policy, traj)
    compare(env, policy, traj, ev, ref, ["log_inflow", "log_outflow"])


def test_evaluate_backward_sampled_batch():
    env = HyperGrid(dim=3, side=3)
    policy = Policy(env, hidden=16, flow=True)
    terminals = env.all_states()[torch.randint(env.n_states, (20,), generator=gen(12))]
    traj = sample_backward(env, policy, terminals, generator=gen(13))
    traj.log_reward = env.log_reward(traj.terminal)
    ev = policy.evaluate(env, traj, ALL_NEEDS)
    ref = naive(env, policy, traj)
    compare(env, policy, traj, ev, ref, ["log_pf", "log_pb", "log_flow", "log_outflow", "log_inflow"])


# ----------------------------------------------------------------------------------
# Trajectories
# ----------------------------------------------------------------------------------
def test_pad_to_keeps_semantics():
    env = HyperGrid(dim=2, side=4)
    traj = sampled(env, Policy(env, hidden=16), n=10)
    T = traj.max_length
    padded = traj.pad_to(T + 3, env.exit_action)
    assert padded.max_length == T + 3 and padded.states.shape[1] == T + 4
    assert torch.equal(padded.states[:, : T + 1], traj.states)
    assert torch.equal(padded.actions[:, :T], traj.actions)
    assert (padded.actions[:, T:] == env.exit_action).all()
    assert (padded.states[:, T + 1 :] == traj.terminal[:, None]).all()
    assert torch.equal(padded.lengths, traj.lengths) and torch.equal(padded.terminal, traj.terminal)
    assert torch.equal(padded.mask[:, :T], traj.mask) and not padded.mask[:, T:].any()
    assert torch.equal(padded.log_reward, traj.log_reward)
    check_legal(env, padded, tight=False)
    assert traj.pad_to(T, env.exit_action) is traj and traj.pad_to(T - 1, env.exit_action) is traj


def test_padding_does_not_change_evaluation():
    env = HyperGrid(dim=2, side=4)
    policy = Policy(env, hidden=16, flow=True)
    traj = sampled(env, policy, n=10)
    a = policy.evaluate(env, traj, ALL_NEEDS)
    b = policy.evaluate(env, traj.pad_to(traj.max_length + 2, env.exit_action), ALL_NEEDS)
    T = traj.max_length
    for k in ("log_pf", "log_pb", "log_flow", "log_inflow", "log_outflow", "log_pf_exit", "state_log_reward"):
        if k in PER_STATE:
            m = state_mask(traj)
            assert getattr(b, k).shape[1] == T + 3, k
            assert torch.allclose(getattr(b, k)[:, : T + 1][m], getattr(a, k)[m], atol=1e-6), k
        else:
            assert torch.allclose(getattr(b, k)[:, :T][traj.mask], getattr(a, k)[traj.mask], atol=1e-6), k
    assert torch.allclose(a.log_exit_flow, b.log_exit_flow, atol=1e-6)


def test_cat_keeps_semantics():
    env = HyperGrid(dim=3, side=3)
    policy = Policy(env, hidden=16, flow=True)
    short = sample_backward(env, policy, torch.tensor([[0, 0, 0], [1, 0, 0]]), generator=gen(14))
    short.log_reward = env.log_reward(short.terminal)
    long = sampled(env, policy, n=6)
    both = Trajectories.cat([short, long], env.exit_action)
    assert len(both) == 8 and both.max_length == max(short.max_length, long.max_length)
    assert torch.equal(both.lengths, torch.cat([short.lengths, long.lengths]))
    assert torch.equal(both.terminal, torch.cat([short.terminal, long.terminal]))
    assert torch.equal(both.log_reward, torch.cat([short.log_reward, long.log_reward]))
    assert both.cond is None
    check_legal(env, both)
    for part, rows in ((short, slice(0, 2)), (long, slice(2, 8))):
        T = part.max_length
        assert torch.equal(both.states[rows, : T + 1], part.states)
        assert torch.equal(both.actions[rows, :T], part.actions)
    ev_both = policy.evaluate(env, both, ALL_NEEDS)
    ev_long = policy.evaluate(env, long, ALL_NEEDS)
    T = long.max_length
    assert torch.allclose(ev_both.log_pf[2:, :T][long.mask], ev_long.log_pf[long.mask], atol=1e-6)
    # a missing log_reward on one side gives None; cond is joined when both have it
    assert Trajectories.cat([short, sample_forward(env, policy, 3)], env.exit_action).log_reward is None
    c1 = Trajectories(short.states, short.actions, short.lengths, cond=torch.zeros(2, 2))
    c2 = Trajectories(long.states, long.actions, long.lengths, cond=torch.ones(6, 2))
    assert torch.equal(
        Trajectories.cat([c1, c2], env.exit_action).cond, torch.cat([torch.zeros(2, 2), torch.ones(6, 2)])
    )


def test_cat_combines_the_complete_flags():
    """None (all complete) joined with a flagged batch: all True for the first part, the flags after."""
    env = HyperGrid(dim=2, side=4)
    policy = Policy(env, hidden=16, flow=True)
    whole = sampled(env, policy, n=5, seed=30)
    cut = sampled(env, policy, n=8, seed=31, max_moves=torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]))
    assert whole.complete is None and (~cut.complete).any()
    both = Trajectories.cat([whole, cut], env.exit_action)
    assert torch.equal(both.complete, torch.cat([torch.ones(5, dtype=torch.bool), cut.complete]))
    assert both.complete.dtype == torch.bool
    back = Trajectories.cat([cut, whole], env.exit_action)
    assert torch.equal(back.complete, torch.cat([cut.complete, torch.ones(5, dtype=torch.bool)]))
    assert Trajectories.cat([whole, whole], env.exit_action).complete is None
    assert torch.equal(Trajectories.cat([cut, cut], env.exit_action).complete, cut.complete.repeat(2))
    # the joined batch keeps each trajectory: lengths, last states, legality, evaluation
    assert torch.equal(both.lengths, torch.cat([whole.lengths, cut.lengths]))
    assert torch.equal(both.last_state, torch.cat([whole.last_state, cut.last_state]))
    check_legal(env, both, tight=False)
    ev_both = policy.evaluate(env, both, ALL_NEEDS)
    ev_cut = policy.evaluate(env, cut, ALL_NEEDS)
    T = cut.max_length
    assert torch.equal(ev_both.complete, both.complete)
    assert torch.allclose(ev_both.log_pb[5:, :T][cut.mask], ev_cut.log_pb[cut.mask], atol=1e-6)
    m = state_mask(cut)
    assert torch.allclose(ev_both.log_flow[5:, : T + 1][m], ev_cut.log_flow[m], atol=1e-6)


def test_pad_to_keeps_cut_trajectories():
    env = HyperGrid(dim=2, side=4)
    traj = sampled(env, Policy(env, hidden=16), n=12, max_moves=torch.arange(12) % 4)
    T = traj.max_length
    padded = traj.pad_to(T + 2, env.exit_action)
    assert torch.equal(padded.complete, traj.complete)
    assert torch.equal(padded.last_state, traj.last_state)
    assert (padded.states[:, T + 1 :] == traj.last_state[:, None]).all()
    check_legal(env, padded, tight=False)


def test_padding_does_not_change_evaluation_of_cut_trajectories():
    env = HyperGrid(dim=2, side=4)
    policy = Policy(env, hidden=16, flow=True)
    traj = sampled(env, policy, max_moves=CUTS)
    a = policy.evaluate(env, traj, ALL_NEEDS)
    b = policy.evaluate(env, traj.pad_to(traj.max_length + 2, env.exit_action), ALL_NEEDS)
    T = traj.max_length
    for k in PER_TRANSITION:
        assert torch.allclose(getattr(b, k)[:, :T][traj.mask], getattr(a, k)[traj.mask], atol=1e-6), k
    m = state_mask(traj)
    for k in PER_STATE:
        assert torch.allclose(getattr(b, k)[:, : T + 1][m], getattr(a, k)[m], atol=1e-6), k


@pytest.mark.parametrize("path", ["dedup", "no_dedup"])
def test_evaluate_cut_batch_without_padding_column(path):
    """A cut trajectory with L = T (no column of pure padding, as a rollout on CUDA returns it):
    its last state is column T, which every per-state field must hold."""
    env = HyperGrid(dim=2, side=4)
    if path == "no_dedup":
        env.n_states = None
    policy = Policy(env, hidden=16, flow=True)
    traj = sampled(env, policy, max_moves=2)
    T = int(traj.lengths.max())
    traj = Trajectories(
        traj.states[:, : T + 1], traj.actions[:, :T], traj.lengths, traj.log_reward, complete=traj.complete
    )
    assert T == 2 and ((traj.lengths == T) & ~traj.complete).any()
    check_legal(env, traj)
    ev = policy.evaluate(env, traj, ALL_NEEDS)
    ref = naive(env, policy, traj)
    compare(env, policy, traj, ev, ref, list(PER_TRANSITION + PER_STATE))
    check_cut_evaluation(env, policy, traj, ev)
