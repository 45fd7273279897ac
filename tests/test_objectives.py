"""The losses: hand values, zeros at the exact flows, gradients, padding, registry.

Conventions (ALGORITHMS.md): trajectory b has L_b transitions, the exit included;
per-transition tensors are [B, T]; log_pb is ignored at the exit; the DB exit
residual is log F(x) + log P_F(stop|x) - log R(x); SubTB nodes k = 0..L_b with
node L_b's flow := R(x); FM: forward logits are log edge flows, exit included.
"""
import math

import pytest
import torch

from gflownet.environments.hypergrid import HyperGrid
from gflownet.errors import ConfigError
from gflownet.metrics import Flows, exact_flows
from gflownet.objectives import OBJECTIVES, get_objective
from gflownet.objectives.db import detailed_balance
from gflownet.objectives.fm import flow_matching
from gflownet.objectives.modified_db import modified_detailed_balance
from gflownet.objectives.subtb import subtrajectory_balance
from gflownet.objectives.tb import trajectory_balance, vargrad
from gflownet.policy import Policy, masked_log_softmax
from gflownet.sampler import sample_backward, sample_forward
from gflownet.trajectories import Trajectories


@pytest.fixture(autouse=True)
def _fixed_global_seed():
    """Each test starts from the same global RNG state (policy initialisation); sampling uses Generators."""
    torch.manual_seed(0)


F64 = torch.float64


# ----------------------------------------------------------------------------------
# Reference losses: explicit loops over Python floats (lists), no tensor algebra.
# ----------------------------------------------------------------------------------
def ref_tb_residuals(pf, pb, logr, L):
    out = []
    for b in range(len(L)):
        r = -logr[b]
        for t in range(L[b]):
            r += pf[b][t]
            if t < L[b] - 1:  # log_pb is ignored at the exit
                r -= pb[b][t]
        out.append(r)
    return out


def ref_tb(pf, pb, logr, logz, L):
    res = ref_tb_residuals(pf, pb, logr, L)
    return sum((logz[b] + res[b]) ** 2 for b in range(len(L))) / len(L)


def ref_vargrad(pf, pb, logr, L):
    res = ref_tb_residuals(pf, pb, logr, L)
    mean = sum(res) / len(res)
    return sum((r - mean) ** 2 for r in res) / len(res)


def ref_db(pf, pb, flow, logr, L):
    total, count = 0.0, 0
    for b in range(len(L)):
        for t in range(L[b]):
            if t == L[b] - 1:
                r = flow[b][t] + pf[b][t] - logr[b]
            else:
                r = flow[b][t] + pf[b][t] - flow[b][t + 1] - pb[b][t]
            total += r * r
            count += 1
    return total / count


def ref_subtb(pf, pb, flow, logr, L, lam):
    per_traj = []
    for b in range(len(L)):
        n = L[b]
        node = [flow[b][k] for k in range(n)] + [logr[b]]
        num = den = 0.0
        for i in range(n + 1):
            for j in range(i + 1, n + 1):
                d = node[i] - node[j]
                for t in range(i, j):
                    d += pf[b][t]
                    if t < n - 1:
                        d -= pb[b][t]
                w = lam ** (j - i)
                num += w * d * d
                den += w
        per_traj.append(num / den)
    return sum(per_traj) / len(per_traj)


def ref_fm(inflow, outflow, exit_flow, logr, L):
    total, count = 0.0, 0
    for b in range(len(L)):
        for t in range(1, L[b]):
            total += (inflow[b][t] - outflow[b][t]) ** 2
            count += 1
    matching = total / count if count else 0.0
    return matching + sum((exit_flow[b] - logr[b]) ** 2 for b in range(len(L))) / len(L)


def ref_mdb(pf, pb, pf_exit, state_logr, L):
    total, count = 0.0, 0
    for b in range(len(L)):
        for t in range(L[b] - 1):
            r = (state_logr[b][t + 1] + pb[b][t] + pf_exit[b][t]
                 - state_logr[b][t] - pf[b][t] - pf_exit[b][t + 1])
            total += r * r
            count += 1
    return total / count if count else 0.0


def t64(x):
    return torch.tensor(x, dtype=F64)


def random_batch(seed, lengths=(5, 3, 1, 2), T=None, exit_pb_zero=True):
    """Random per-transition inputs; padding filled with junk, log_pb 0 at exits."""
    g = torch.Generator().manual_seed(seed)
    L = torch.tensor(lengths)
    B, T = len(L), T or int(L.max())
    r = lambda *s: torch.randn(*s, generator=g, dtype=F64)  # noqa: E731
    batch = dict(log_pf=r(B, T) - 1, log_pb=r(B, T) - 1, log_flow=r(B, T), log_reward=r(B), log_z=r(B),
                 log_inflow=r(B, T), log_outflow=r(B, T), log_exit_flow=r(B), log_pf_exit=r(B, T) - 1,
                 state_log_reward=r(B, T), lengths=L)
    if exit_pb_zero:
        batch["log_pb"][torch.arange(B), L - 1] = 0.0
    return batch


def as_lists(batch):
    return {k: v.tolist() for k, v in batch.items()}


def call(name, b, lam=0.9):
    L = b["lengths"]
    mask = torch.arange(b["log_pf"].shape[1]) < L[:, None]
    if name == "tb":
        return trajectory_balance(b["log_pf"], b["log_pb"], b["log_reward"], b["log_z"], mask)
    if name == "vargrad":
        return vargrad(b["log_pf"], b["log_pb"], b["log_reward"], mask)
    if name == "db":
        return detailed_balance(b["log_pf"], b["log_pb"], b["log_flow"], b["log_reward"], L)
    if name == "subtb":
        return subtrajectory_balance(b["log_pf"], b["log_pb"], b["log_flow"], b["log_reward"], L, lam)
    if name == "fm":
        return flow_matching(b["log_inflow"], b["log_outflow"], b["log_exit_flow"], b["log_reward"], L)
    if name == "mdb":
        return modified_detailed_balance(b["log_pf"], b["log_pb"], b["log_pf_exit"], b["state_log_reward"], L)
    raise KeyError(name)


def reference(name, b, lam=0.9):
    x = as_lists(b)
    L = x["lengths"]
    if name == "tb":
        return ref_tb(x["log_pf"], x["log_pb"], x["log_reward"], x["log_z"], L)
    if name == "vargrad":
        return ref_vargrad(x["log_pf"], x["log_pb"], x["log_reward"], L)
    if name == "db":
        return ref_db(x["log_pf"], x["log_pb"], x["log_flow"], x["log_reward"], L)
    if name == "subtb":
        return ref_subtb(x["log_pf"], x["log_pb"], x["log_flow"], x["log_reward"], L, lam)
    if name == "fm":
        return ref_fm(x["log_inflow"], x["log_outflow"], x["log_exit_flow"], x["log_reward"], L)
    if name == "mdb":
        return ref_mdb(x["log_pf"], x["log_pb"], x["log_pf_exit"], x["state_log_reward"], L)
    raise KeyError(name)


# Which [B, T] inputs each loss reads (for the padding / gradient checks).
SEQ_INPUTS = {
    "tb": ["log_pf", "log_pb"],
    "vargrad": ["log_pf", "log_pb"],
    "db": ["log_pf", "log_pb", "log_flow"],
    "subtb": ["log_pf", "log_pb", "log_flow"],
    "fm": ["log_inflow", "log_outflow"],
    "mdb": ["log_pf", "log_pb", "log_pf_exit", "state_log_reward"],
}
VEC_INPUTS = {"tb": ["log_reward", "log_z"], "vargrad": ["log_reward"], "db": ["log_reward"],
              "subtb": ["log_reward"], "fm": ["log_exit_flow", "log_reward"], "mdb": []}
LOSSES = list(SEQ_INPUTS)


# ----------------------------------------------------------------------------------
# Hand values
# ----------------------------------------------------------------------------------
# Two trajectories, lengths 2 and 1, padded to T = 2 (padding entries are junk).
HAND = dict(
    log_pf=t64([[-0.5, -1.0], [-0.3, 7.0]]),
    log_pb=t64([[-0.7, 0.0], [0.0, 9.0]]),
    log_flow=t64([[0.4, 1.1], [0.9, 5.0]]),
    log_reward=t64([1.0, 0.5]),
    log_z=t64([2.0, 2.0]),
    log_inflow=t64([[4.0, 0.3], [-3.0, 6.0]]),
    log_outflow=t64([[1.5, 0.8], [2.0, -6.0]]),
    log_exit_flow=t64([0.7, 0.2]),
    log_pf_exit=t64([[-1.2, -0.9], [-2.0, 3.0]]),
    state_log_reward=t64([[0.2, 0.6], [0.1, -4.0]]),
    lengths=torch.tensor([2, 1]),
)


def test_hand_tb():
    # residuals: 2 - 0.5 - 1.0 + 0.7 - 1.0 = 0.2 ; 2 - 0.3 - 0.5 = 1.2
    assert call("tb", HAND).item() == pytest.approx((0.2**2 + 1.2**2) / 2, abs=1e-12)
    assert call("tb", HAND).item() == pytest.approx(0.74, abs=1e-12)


def test_hand_vargrad():
    # residuals without log Z: -1.8, -0.8 ; mean -1.3 ; variance 0.25
    assert call("vargrad", HAND).item() == pytest.approx(0.25, abs=1e-12)


def test_hand_db():
    # traj 0: move 0.4 - 0.5 - 1.1 + 0.7 = -0.5 ; exit 1.1 - 1.0 - 1.0 = -0.9
    # traj 1: exit 0.9 - 0.3 - 0.5 = 0.1
    assert call("db", HAND).item() == pytest.approx((0.25 + 0.81 + 0.01) / 3, abs=1e-12)


@pytest.mark.parametrize("lam", [0.9, 0.5, 1.0, 2.0])
def test_hand_subtb(lam):
    # traj 0: nodes 0.4, 1.1, R=1.0 ; d01 = -0.5, d12 = -0.9, d02 = 0.4 + 0.2 - 1.0 - 1.0 = -1.4
    traj0 = (lam * 0.25 + lam * 0.81 + lam**2 * 1.96) / (2 * lam + lam**2)
    traj1 = 0.1**2  # d01 = 0.9 - 0.3 - 0.5
    assert call("subtb", HAND, lam).item() == pytest.approx((traj0 + traj1) / 2, abs=1e-12)


def test_hand_fm():
    # inner state: traj 0, t = 1: (0.3 - 0.8)^2 ; exits: (0.7 - 1)^2, (0.2 - 0.5)^2
    assert call("fm", HAND).item() == pytest.approx(0.25 + (0.09 + 0.09) / 2, abs=1e-12)


def test_hand_mdb():
    # one move: 0.6 + (-0.7) + (-1.2) - 0.2 - (-0.5) - (-0.9) = -0.1
    assert call("mdb", HAND).item() == pytest.approx(0.01, abs=1e-12)


@pytest.mark.parametrize("name", LOSSES)
def test_hand_matches_reference_loops(name):
    assert call(name, HAND).item() == pytest.approx(reference(name, HAND), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lengths", [(5, 3, 1, 2), (1, 1), (4,), (2, 6, 6, 3, 1)])
@pytest.mark.parametrize("name", LOSSES)
def test_random_matches_reference_loops(name, lengths, seed):
    b = random_batch(seed, lengths, T=max(lengths) + 1)  # one extra column of pure padding
    assert call(name, b).item() == pytest.approx(reference(name, b), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("lam", [0.9, 0.3, 1.0, 1.7])
@pytest.mark.parametrize("seed", [0, 1])
def test_subtb_lambdas_match_reference(lam, seed):
    b = random_batch(seed, (6, 2, 1, 4))
    assert call("subtb", b, lam).item() == pytest.approx(reference("subtb", b, lam), rel=1e-10)


def test_subtb_small_lambda_tends_to_db_per_trajectory():
    """lam -> 0: only length-1 sub-trajectories count, i.e. the DB residuals of each trajectory."""
    b = random_batch(3, (3, 3))  # equal lengths: per-trajectory mean = per-transition mean
    assert call("subtb", b, 1e-9).item() == pytest.approx(call("db", b).item(), rel=1e-6)


@pytest.mark.parametrize("name", ["db", "subtb", "mdb"])
def test_log_pb_at_exit_is_ignored(name):
    b = random_batch(4, (3, 1, 2), exit_pb_zero=True)
    base = call(name, b).item()
    b["log_pb"][torch.arange(3), b["lengths"] - 1] = t64([5.0, -3.0, 11.0])
    assert call(name, b).item() == pytest.approx(base, abs=1e-12)


@pytest.mark.parametrize("name", ["tb", "vargrad"])
def test_tb_log_pb_at_exit_is_ignored(name):
    """Convention: log_pb is ignored at the exit (the exit has no backward probability).
    DB/SubTB/MDB honour it; TB sums log_pb over the whole mask, exit included."""
    b = random_batch(4, (3, 1, 2), exit_pb_zero=True)
    base = call(name, b).item()
    b["log_pb"][torch.arange(3), b["lengths"] - 1] = t64([5.0, -3.0, 11.0])
    assert call(name, b).item() == pytest.approx(base, abs=1e-12)


# ----------------------------------------------------------------------------------
# Zero at the exact flows (and only there)
# ----------------------------------------------------------------------------------
def user_reward(s):
    r = (1.0 + (s[:, 0] - 2 * s[:, 1]).abs().double()) ** 1.5 / 3.0
    return torch.where(s.sum(-1) == 3, 0.0, r)  # some zeros: LOG_REWARD_FLOOR


ENVS = {
    "d2s4": lambda: HyperGrid(dim=2, side=4),
    "d3s3": lambda: HyperGrid(dim=3, side=3),
    "user": lambda: HyperGrid(dim=2, side=4, reward=user_reward),
}


def random_log_pb(env, g):
    states = env.all_states()
    logits = 2 * torch.randn(len(states), env.n_backward_actions, generator=g, dtype=F64)
    return masked_log_softmax(logits, env.backward_mask(states))


def inflow_outflow_tables(env, edge):
    """log total inflow / outflow of every state from a log edge-flow table [N, A] (loops)."""
    states = env.all_states()
    inflow, outflow = [], []
    for s in states:
        terms = []
        for d in range(env.dim):
            if s[d] > 0:
                parent = s.clone()
                parent[d] -= 1
                terms.append(edge[int(env.state_index(parent[None])), d])
        inflow.append(torch.stack(terms).logsumexp(0) if terms else edge.new_tensor(0.0))
        legal = env.forward_mask(s[None])[0]
        outflow.append(edge[int(env.state_index(s[None]))][legal].logsumexp(0))
    return torch.stack(inflow), torch.stack(outflow)


def exact_inputs(env, flows: Flows, tr: Trajectories):
    B, T = tr.actions.shape
    a = tr.actions
    t = torch.arange(T)
    move = t < (tr.lengths - 1)[:, None]
    idx = env.state_index(tr.states[:, :T])
    nxt = env.state_index(tr.states[:, 1:T + 1])
    back = env.backward_action(tr.states[:, :T].reshape(B * T, -1), torch.where(move, a, 0).reshape(-1)).view(B, T)
    edge = flows.log_flow[:, None] + flows.log_pf  # log F(s -> .), exit included
    inflow, outflow = inflow_outflow_tables(env, edge)
    x = env.state_index(tr.terminal)
    return dict(
        log_pf=flows.log_pf[idx, a],
        log_pb=torch.where(move, flows.log_pb[nxt, back], 0.0),
        log_flow=flows.log_flow[idx],
        log_reward=env.log_reward(tr.terminal).double(),
        log_z=torch.full((B,), flows.log_z, dtype=F64),
        log_inflow=inflow[idx],
        log_outflow=outflow[idx],
        log_exit_flow=edge[x, env.exit_action],
        log_pf_exit=flows.log_pf[idx, env.exit_action],
        state_log_reward=env.log_reward(env.all_states()).double()[idx],
        lengths=tr.lengths,
    )


def sample(env, how, g, batch=64):
    policy = Policy(env, hidden=16)
    if how == "forward":
        return sample_forward(env, policy, batch, generator=g)
    terminals = env.all_states()[torch.randint(env.n_states, (batch,), generator=g)]
    return sample_backward(env, policy, terminals, generator=g)


def renormalised(env, log_pf, g, scale=0.5):
    states = env.all_states()
    noisy = log_pf + scale * torch.randn(log_pf.shape, generator=g, dtype=F64)
    return masked_log_softmax(noisy.nan_to_num(neginf=0.0), env.forward_mask(states))


@pytest.mark.parametrize("how", ["forward", "backward"])
@pytest.mark.parametrize("pb", ["uniform", "random"])
@pytest.mark.parametrize("env_name", list(ENVS))
def test_losses_vanish_at_exact_flows(env_name, pb, how):
    env = ENVS[env_name]()
    g = torch.Generator().manual_seed(7)
    flows = exact_flows(env, None if pb == "uniform" else random_log_pb(env, g))
    tr = sample(env, how, g)
    assert int(tr.lengths.max()) > 2 and int(tr.lengths.min()) < int(tr.lengths.max())
    b = exact_inputs(env, flows, tr)
    for name in LOSSES:
        assert abs(call(name, b).item()) < 1e-8, name
    for lam in (0.5, 2.0):
        assert abs(call("subtb", b, lam).item()) < 1e-8


@pytest.mark.parametrize("pb", ["uniform", "random"])
@pytest.mark.parametrize("env_name", list(ENVS))
def test_losses_positive_away_from_exact_flows(env_name, pb):
    env = ENVS[env_name]()
    g = torch.Generator().manual_seed(8)
    flows = exact_flows(env, None if pb == "uniform" else random_log_pb(env, g))
    tr = sample(env, "forward", g)
    noise = 0.3 * torch.randn(flows.log_flow.shape, generator=g, dtype=F64)
    # 1. flows perturbed (P_F, P_B kept): DB, SubTB; log Z shifted: TB.
    wrong_flow = exact_inputs(env, Flows(flows.log_flow + noise, flows.log_pf, flows.log_pb, flows.log_z), tr)
    for name in ("db", "subtb"):
        assert call(name, wrong_flow).item() > 1e-4, name
    wrong_z = exact_inputs(env, Flows(flows.log_flow, flows.log_pf, flows.log_pb, flows.log_z + 0.1), tr)
    assert call("tb", wrong_z).item() == pytest.approx(0.01, rel=1e-6)
    # 2. a different (still normalised) forward policy: TB, VarGrad, MDB, DB, SubTB, FM.
    wrong_pf = exact_inputs(env, Flows(flows.log_flow, renormalised(env, flows.log_pf, g), flows.log_pb,
                                       flows.log_z), tr)
    for name in LOSSES:
        assert call(name, wrong_pf).item() > 1e-4, name
    # 3. FM: perturb the edge-flow table (log F(s) + log P_F(a|s)) at legal edges.
    edge_noise = 0.3 * torch.randn(flows.log_pf.shape, generator=g, dtype=F64)
    wrong_edges = Flows(flows.log_flow, flows.log_pf + edge_noise, flows.log_pb, flows.log_z)
    assert call("fm", exact_inputs(env, wrong_edges, tr)).item() > 1e-4


def test_losses_see_a_wrong_reward():
    """Consistent P_F/P_B/F but a shifted reward: every loss that reads R must see it."""
    env = HyperGrid(dim=2, side=4)
    g = torch.Generator().manual_seed(9)
    flows = exact_flows(env)
    tr = sample(env, "forward", g)
    b = exact_inputs(env, flows, tr)
    b["log_reward"] = b["log_reward"] + 0.2
    for name in ("tb", "db", "subtb", "fm"):
        assert call(name, b).item() > 1e-4, name


# ----------------------------------------------------------------------------------
# Gradients
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LOSSES)
def test_gradcheck(name):
    b = random_batch(11, (3, 1, 2), T=4)
    keys = SEQ_INPUTS[name] + VEC_INPUTS[name]
    inputs = tuple(b[k].clone().requires_grad_(True) for k in keys)

    def fn(*xs):
        return call(name, {**b, **dict(zip(keys, xs))}, lam=0.7)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", LOSSES)
def test_padding_gets_zero_gradient_and_does_not_change_the_loss(name):
    b = random_batch(12, (4, 1, 2), T=6)
    L, T = b["lengths"], 6
    pad = torch.arange(T) >= L[:, None]
    leaves = {k: b[k].clone().requires_grad_(True) for k in SEQ_INPUTS[name] + VEC_INPUTS[name]}
    loss = call(name, {**b, **leaves})
    loss.backward()
    for k in SEQ_INPUTS[name]:
        assert leaves[k].grad[pad].abs().max().item() == 0.0, k
        assert torch.isfinite(leaves[k].grad).all(), k
    # Junk of any finite size in the padding leaves the value unchanged.
    junk = {k: torch.where(pad, 1e3 * torch.randn(b[k].shape, dtype=F64), b[k]) for k in SEQ_INPUTS[name]}
    assert call(name, {**b, **junk}).item() == pytest.approx(loss.item(), abs=1e-12)


@pytest.mark.parametrize("name", ["db", "subtb", "mdb"])
def test_exit_log_pb_gets_zero_gradient(name):
    b = random_batch(13, (4, 1, 2), T=5)
    L = b["lengths"]
    log_pb = b["log_pb"].clone().requires_grad_(True)
    call(name, {**b, "log_pb": log_pb}).backward()
    assert log_pb.grad[torch.arange(len(L)), L - 1].abs().max().item() == 0.0


@pytest.mark.parametrize("lengths", [(1,), (1, 1, 1), (1, 3, 1)])
@pytest.mark.parametrize("name", LOSSES)
def test_length_one_trajectories_are_finite(name, lengths):
    b = random_batch(14, lengths, T=max(lengths))
    leaves = {k: b[k].clone().requires_grad_(True) for k in SEQ_INPUTS[name] + VEC_INPUTS[name]}
    loss = call(name, {**b, **leaves})
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(reference(name, b), abs=1e-12)
    loss.backward()
    for k, v in leaves.items():
        assert torch.isfinite(v.grad).all(), k


def _policy_for_all_objectives(env):
    return Policy(env, hidden=16, layers=2, backward="learned", flow=True)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_length_one_batch_through_policy_is_finite(name):
    """A batch where every trajectory is s_0 -> exit, evaluated by the policy: finite loss and grads."""
    env = HyperGrid(dim=2, side=4)
    policy = _policy_for_all_objectives(env)
    B = 3
    traj = Trajectories(states=torch.zeros(B, 2, 2, dtype=torch.long),
                        actions=torch.full((B, 1), env.exit_action), lengths=torch.ones(B, dtype=torch.long))
    traj.log_reward = env.log_reward(traj.terminal)
    objective = get_objective(name)
    loss = objective(policy.evaluate(env, traj, objective.needs))
    assert torch.isfinite(loss)
    loss.backward()
    for p in policy.parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all()


# ----------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------
def test_unknown_objective_names_it_and_lists_known():
    with pytest.raises(ConfigError) as info:
        get_objective("nope")
    message = str(info.value)
    assert "nope" in message
    for known in OBJECTIVES:
        assert known in message
    assert set(OBJECTIVES) >= {"tb", "zvar", "db", "subtb", "fm", "mdb"}


def _evaluation(name, seed=0):
    env = HyperGrid(dim=2, side=4)
    policy = _policy_for_all_objectives(env)
    g = torch.Generator().manual_seed(seed)
    traj = sample_forward(env, policy, 16, generator=g, epsilon=0.5)
    traj.log_reward = env.log_reward(traj.terminal)
    return policy.evaluate(env, traj, get_objective(name).needs)


@pytest.mark.parametrize("lam", [0.0, -0.5])
def test_subtb_nonpositive_lambda_is_config_error(lam):
    ev = _evaluation("subtb")
    with pytest.raises(ConfigError, match="lam"):
        get_objective("subtb")(ev, lam=lam)


def test_unknown_objective_parameter_is_config_error():
    ev = _evaluation("tb")
    with pytest.raises(ConfigError, match="lam"):
        get_objective("tb")(ev, lam=0.5)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_registry_calls_the_pure_loss_on_the_evaluation(name):
    ev = _evaluation(name, seed=1)
    got = get_objective(name)(ev).item()
    if name == "tb":
        want = trajectory_balance(ev.log_pf, ev.log_pb, ev.log_reward, ev.log_z, ev.mask)
    elif name == "zvar":
        want = vargrad(ev.log_pf, ev.log_pb, ev.log_reward, ev.mask)
    elif name == "db":
        want = detailed_balance(ev.log_pf, ev.log_pb, ev.log_flow, ev.log_reward, ev.lengths)
    elif name == "subtb":
        want = subtrajectory_balance(ev.log_pf, ev.log_pb, ev.log_flow, ev.log_reward, ev.lengths, 0.9)
    elif name == "fm":
        want = flow_matching(ev.log_inflow, ev.log_outflow, ev.log_exit_flow, ev.log_reward, ev.lengths)
    elif name == "mdb":
        want = modified_detailed_balance(ev.log_pf, ev.log_pb, ev.log_pf_exit, ev.state_log_reward, ev.lengths)
    else:
        pytest.skip(f"no direct reference for {name}")
    assert math.isfinite(got)
    assert got == pytest.approx(want.item(), rel=1e-6)
