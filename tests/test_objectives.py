"""The losses: hand values, zeros at the exact flows, gradients, padding, registry.

Conventions (ALGORITHMS.md): trajectory b has L_b transitions. A complete one visits
s_0 .. s_{L_b - 1} = x and exits (its last transition, t = L_b - 1); an incomplete one
(``complete[b]`` False, cut before exiting) makes L_b moves s_0 -> .. -> s_{L_b} and
never exits (L_b = 0 allowed). Per-transition tensors are [B, T]; per-state tensors
are [B, T+1] (states s_0..s_T; for a complete trajectory column L_b is x again).
log_pb is ignored at the exit; the DB exit residual is log F(x) + log P_F(stop|x) - log R(x);
SubTB nodes k = 0..L_b with node L_b's flow := R(x) for a complete trajectory and the
learned log F(s_{L_b}) for an incomplete one; FM: forward logits are log edge flows, exit
included, and only complete trajectories have a reward-matching term.
"""

import math

import pytest
import torch

from gflownet.environments.hypergrid import HyperGrid
from gflownet.errors import ConfigError
from gflownet.metrics import Flows, exact_flows
from gflownet.objectives import OBJECTIVES, get_objective
from gflownet.objectives.db import detailed_balance
from gflownet.objectives.fl import fl_detailed_balance, fl_subtrajectory_balance
from gflownet.objectives.fm import flow_matching
from gflownet.objectives.modified_db import modified_detailed_balance
from gflownet.objectives.oc import teleported_detailed_balance
from gflownet.objectives.subtb import subtrajectory_balance
from gflownet.objectives.tb import trajectory_balance, vargrad
from gflownet.policy import Policy, masked_log_softmax
from gflownet.sampler import sample_backward, sample_forward
from gflownet.trajectories import Trajectories


F64 = torch.float64


# ----------------------------------------------------------------------------------
# Reference losses: explicit loops over Python floats (lists), no tensor algebra.
# Per-transition inputs are lists [B][T], per-state inputs lists [B][T+1]; C is the
# list of complete flags (None: all complete).
# ----------------------------------------------------------------------------------
def flags(C, B):
    return [True] * B if C is None else [bool(c) for c in C]


def is_exit(t, n, complete):
    """Transition t of a trajectory with n transitions is its exit."""
    return complete and t == n - 1


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


def ref_db(pf, pb, flow, logr, L, C=None):
    C = flags(C, len(L))
    total, count = 0.0, 0
    for b in range(len(L)):
        for t in range(L[b]):
            if is_exit(t, L[b], C[b]):
                r = flow[b][t] + pf[b][t] - logr[b]
            else:  # a move s_t -> s_{t+1}
                r = flow[b][t] + pf[b][t] - flow[b][t + 1] - pb[b][t]
            total += r * r
            count += 1
    return total / count if count else 0.0


def ref_subtb(pf, pb, flow, logr, L, lam, C=None):
    C = flags(C, len(L))
    per_traj = []
    for b in range(len(L)):
        n = L[b]
        if n == 0:
            continue  # no pair (i < j): the trajectory is skipped
        node = [flow[b][k] for k in range(n)] + [logr[b] if C[b] else flow[b][n]]
        num = den = 0.0
        for i in range(n + 1):
            for j in range(i + 1, n + 1):
                d = node[i] - node[j]
                for t in range(i, j):
                    d += pf[b][t]
                    if not is_exit(t, n, C[b]):
                        d -= pb[b][t]
                w = lam ** (j - i)
                num += w * d * d
                den += w
        per_traj.append(num / den)
    return sum(per_traj) / len(per_traj) if per_traj else 0.0


def ref_fm(inflow, outflow, exit_flow, logr, L, C=None):
    C = flags(C, len(L))
    total, count = 0.0, 0
    for b in range(len(L)):
        last = L[b] - 1 if C[b] else L[b]  # visited states other than s_0: 1..last
        for t in range(1, last + 1):
            total += (inflow[b][t] - outflow[b][t]) ** 2
            count += 1
    matching = total / count if count else 0.0
    rewards = [(exit_flow[b] - logr[b]) ** 2 for b in range(len(L)) if C[b]]
    return matching + (sum(rewards) / len(rewards) if rewards else 0.0)


def ref_mdb(pf, pb, pf_exit, state_logr, L, C=None):
    C = flags(C, len(L))
    total, count = 0.0, 0
    for b in range(len(L)):
        n_moves = L[b] - 1 if C[b] else L[b]
        for t in range(n_moves):
            r = state_logr[b][t + 1] + pb[b][t] + pf_exit[b][t] - state_logr[b][t] - pf[b][t] - pf_exit[b][t + 1]
            total += r * r
            count += 1
    return total / count if count else 0.0


def t64(x):
    return torch.tensor(x, dtype=F64)


def random_batch(seed, lengths=(5, 3, 1, 2), T=None, exit_pb_zero=True, complete=None):
    """Random inputs: per-transition [B, T], per-state [B, T+1]; padding filled with junk,
    log_pb 0 at exits. ``complete`` (a list of bools) adds the flag to the batch."""
    g = torch.Generator().manual_seed(seed)
    L = torch.tensor(lengths)
    B, T = len(L), T or max(int(L.max()), 1)
    r = lambda *s: torch.randn(*s, generator=g, dtype=F64)  # noqa: E731
    batch = dict(
        log_pf=r(B, T) - 1,
        log_pb=r(B, T) - 1,
        log_flow=r(B, T + 1),
        log_reward=r(B),
        log_z=r(B),
        log_inflow=r(B, T + 1),
        log_outflow=r(B, T + 1),
        log_exit_flow=r(B),
        log_pf_exit=r(B, T + 1) - 1,
        state_log_reward=r(B, T + 1),
        lengths=L,
    )
    C = flags(complete, B)
    assert all(n >= 1 for n, c in zip(lengths, C) if c), "a complete trajectory has at least its exit"
    if complete is not None:
        batch["complete"] = torch.tensor(C)
    if exit_pb_zero:
        for b in range(B):
            if C[b]:
                batch["log_pb"][b, lengths[b] - 1] = 0.0
    return batch


def completes(b):
    """[B] bool of a batch dict (all True without a flag)."""
    c = b.get("complete")
    return torch.ones(len(b["lengths"]), dtype=torch.bool) if c is None else c


def as_lists(batch):
    return {k: (None if v is None else v.tolist()) for k, v in batch.items()}


def call(name, b, lam=0.9):
    """The library loss on a batch dict; ``complete`` is passed (positionally) only when present."""
    L = b["lengths"]
    extra = (b["complete"],) if b.get("complete") is not None else ()
    mask = torch.arange(b["log_pf"].shape[1]) < L[:, None]
    if name == "tb":
        return trajectory_balance(b["log_pf"], b["log_pb"], b["log_reward"], b["log_z"], mask)
    if name == "vargrad":
        return vargrad(b["log_pf"], b["log_pb"], b["log_reward"], mask)
    if name == "db":
        return detailed_balance(b["log_pf"], b["log_pb"], b["log_flow"], b["log_reward"], L, *extra)
    if name == "subtb":
        return subtrajectory_balance(b["log_pf"], b["log_pb"], b["log_flow"], b["log_reward"], L, lam, *extra)
    if name == "fm":
        return flow_matching(b["log_inflow"], b["log_outflow"], b["log_exit_flow"], b["log_reward"], L, *extra)
    if name == "mdb":
        return modified_detailed_balance(b["log_pf"], b["log_pb"], b["log_pf_exit"], b["state_log_reward"], L, *extra)
    raise KeyError(name)


def reference(name, b, lam=0.9):
    x = as_lists(b)
    L, C = x["lengths"], x.get("complete")
    if name == "tb":
        assert C is None or all(C)
        return ref_tb(x["log_pf"], x["log_pb"], x["log_reward"], x["log_z"], L)
    if name == "vargrad":
        assert C is None or all(C)
        return ref_vargrad(x["log_pf"], x["log_pb"], x["log_reward"], L)
    if name == "db":
        return ref_db(x["log_pf"], x["log_pb"], x["log_flow"], x["log_reward"], L, C)
    if name == "subtb":
        return ref_subtb(x["log_pf"], x["log_pb"], x["log_flow"], x["log_reward"], L, lam, C)
    if name == "fm":
        return ref_fm(x["log_inflow"], x["log_outflow"], x["log_exit_flow"], x["log_reward"], L, C)
    if name == "mdb":
        return ref_mdb(x["log_pf"], x["log_pb"], x["log_pf_exit"], x["state_log_reward"], L, C)
    raise KeyError(name)


# Which inputs each loss reads (for the padding / gradient checks): per transition [B, T],
# per state [B, T+1], per trajectory [B].
TRANS_INPUTS = {
    "tb": ["log_pf", "log_pb"],
    "vargrad": ["log_pf", "log_pb"],
    "db": ["log_pf", "log_pb"],
    "subtb": ["log_pf", "log_pb"],
    "fm": [],
    "mdb": ["log_pf", "log_pb"],
}
STATE_INPUTS = {
    "tb": [],
    "vargrad": [],
    "db": ["log_flow"],
    "subtb": ["log_flow"],
    "fm": ["log_inflow", "log_outflow"],
    "mdb": ["log_pf_exit", "state_log_reward"],
}
VEC_INPUTS = {
    "tb": ["log_reward", "log_z"],
    "vargrad": ["log_reward"],
    "db": ["log_reward"],
    "subtb": ["log_reward"],
    "fm": ["log_exit_flow", "log_reward"],
    "mdb": [],
}
LOSSES = list(TRANS_INPUTS)
CUT_LOSSES = ["db", "subtb", "fm", "mdb"]  # the losses that accept incomplete trajectories


def inputs_of(name):
    return TRANS_INPUTS[name] + STATE_INPUTS[name] + VEC_INPUTS[name]


def padding_masks(b):
    """(per-transition [B, T], per-state [B, T+1], per-trajectory [B]) bool: entries no loss may read.
    Transitions t >= L_b; states k >= L_b of a complete trajectory (column L_b repeats x)
    and k > L_b of an incomplete one; per-trajectory reward / exit flow of an incomplete one."""
    L, C = b["lengths"], completes(b)
    T = b["log_pf"].shape[1]
    trans = torch.arange(T) >= L[:, None]
    state = torch.arange(T + 1) > (L - C.long())[:, None]
    return trans, state, ~C


# Mixed batches of complete and incomplete trajectories: (lengths, complete).
MIXED = [
    ((5, 3, 1, 2), (True, False, True, False)),
    ((0, 2, 1, 0, 4), (False, False, False, False, True)),
    ((1, 0, 2), (False, False, True)),
    ((2, 6, 6, 3, 1), (False, True, False, True, False)),
    ((3, 3), (False, False)),
]
MIXED_IDS = ["-".join(f"{n}{'c' if c else 'i'}" for n, c in zip(*m)) for m in MIXED]


# ----------------------------------------------------------------------------------
# Hand values
# ----------------------------------------------------------------------------------
# Two complete trajectories, lengths 2 and 1, padded to T = 2 transitions / 3 states
# (padding entries are junk; the per-state column L_b, x again, is junk too: never read).
HAND = dict(
    log_pf=t64([[-0.5, -1.0], [-0.3, 7.0]]),
    log_pb=t64([[-0.7, 0.0], [0.0, 9.0]]),
    log_flow=t64([[0.4, 1.1, -6.0], [0.9, 5.0, 5.0]]),
    log_reward=t64([1.0, 0.5]),
    log_z=t64([2.0, 2.0]),
    log_inflow=t64([[4.0, 0.3, -7.0], [-3.0, 6.0, 6.0]]),
    log_outflow=t64([[1.5, 0.8, 7.0], [2.0, -6.0, -6.0]]),
    log_exit_flow=t64([0.7, 0.2]),
    log_pf_exit=t64([[-1.2, -0.9, 4.0], [-2.0, 3.0, 3.0]]),
    state_log_reward=t64([[0.2, 0.6, -5.0], [0.1, -4.0, -4.0]]),
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


@pytest.mark.parametrize("name", CUT_LOSSES)
def test_hand_with_all_complete_flag_equals_no_flag(name):
    flagged = {**HAND, "complete": torch.tensor([True, True])}
    assert call(name, flagged).item() == pytest.approx(call(name, HAND).item(), abs=1e-15)


# Five trajectories, T = 3 transitions / 4 states, complete and cut mixed:
#   0: complete, L = 3 (two moves s_0 -> s_1 -> s_2 = x, then the exit)
#   1: cut,      L = 2 (two moves s_0 -> s_1 -> s_2, no exit)
#   2: cut,      L = 0 (stays at s_0: contributes nothing)
#   3: cut,      L = 1 (one move s_0 -> s_1)
#   4: complete, L = 1 (s_0 = x, exit)
# Junk (never read): transitions t >= L, states k >= L (complete) or k > L (cut), and the
# rewards / exit flows of the cut trajectories.
HAND_CUT = dict(
    log_pf=t64([[-0.5, -1.0, -0.2], [-0.3, -0.6, 7.0], [5.0, 6.0, 7.0], [-0.4, 8.0, 9.0], [-0.1, 3.0, 4.0]]),
    log_pb=t64([[-0.7, -0.2, 0.0], [-0.9, -0.4, 2.0], [1.0, 2.0, 3.0], [-0.8, 4.0, 5.0], [0.0, 6.0, 7.0]]),
    log_flow=t64(
        [
            [0.4, 1.1, 0.6, -9.0],
            [0.2, 0.5, 1.3, -9.0],
            [0.6, -9.0, -9.0, -9.0],
            [0.1, 0.9, -9.0, -9.0],
            [0.7, -9.0, -9.0, -9.0],
        ]
    ),
    log_reward=t64([1.0, 50.0, 60.0, 70.0, 0.5]),
    log_inflow=t64(
        [
            [-3.0, 0.3, 1.0, 9.0],
            [-3.0, 0.2, -0.5, 9.0],
            [-3.0, 9.0, 9.0, 9.0],
            [-3.0, 1.4, 9.0, 9.0],
            [-3.0, 9.0, 9.0, 9.0],
        ]
    ),
    log_outflow=t64(
        [
            [2.0, 0.8, 1.2, -9.0],
            [2.0, 0.5, -0.1, -9.0],
            [2.0, -9.0, -9.0, -9.0],
            [2.0, 1.0, -9.0, -9.0],
            [2.0, -9.0, -9.0, -9.0],
        ]
    ),
    log_exit_flow=t64([0.7, 30.0, 30.0, 30.0, 0.2]),
    log_pf_exit=t64(
        [
            [-1.2, -0.9, -0.5, 9.0],
            [-1.0, -0.8, -0.6, 9.0],
            [-1.1, 9.0, 9.0, 9.0],
            [-1.3, -0.7, 9.0, 9.0],
            [-1.5, 9.0, 9.0, 9.0],
        ]
    ),
    state_log_reward=t64(
        [
            [0.2, 0.6, 0.4, -9.0],
            [0.3, 0.1, 0.5, -9.0],
            [0.0, -9.0, -9.0, -9.0],
            [0.1, 0.2, -9.0, -9.0],
            [0.4, -9.0, -9.0, -9.0],
        ]
    ),
    lengths=torch.tensor([3, 2, 0, 1, 1]),
    complete=torch.tensor([True, False, False, False, True]),
)


def test_hand_cut_db():
    # traj 0: moves 0.4 - 0.5 - 1.1 + 0.7 = -0.5 ; 1.1 - 1.0 - 0.6 + 0.2 = -0.3 ; exit 0.6 - 0.2 - 1.0 = -0.6
    # traj 1 (cut, both transitions are moves): 0.2 - 0.3 - 0.5 + 0.9 = 0.3 ; 0.5 - 0.6 - 1.3 + 0.4 = -1.0
    # traj 2: nothing ; traj 3 (cut): 0.1 - 0.4 - 0.9 + 0.8 = -0.4 ; traj 4: exit 0.7 - 0.1 - 0.5 = 0.1
    want = (0.25 + 0.09 + 0.36 + 0.09 + 1.0 + 0.16 + 0.01) / 7
    assert want == pytest.approx(0.28, abs=1e-12)
    assert call("db", HAND_CUT).item() == pytest.approx(want, abs=1e-12)
    assert reference("db", HAND_CUT) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("lam", [0.9, 2.0])
def test_hand_cut_subtb(lam):
    # traj 0 (complete): nodes 0.4, 1.1, 0.6, R = 1.0 ; steps pf - pb: 0.2, -0.8, exit -0.2 (no pb)
    #   d01 = -0.5, d12 = -0.3, d23 = -0.6, d02 = 0.4 + 0.2 - 0.8 - 0.6 = -0.8,
    #   d13 = 1.1 - 0.8 - 0.2 - 1.0 = -0.9, d03 = 0.4 + 0.2 - 0.8 - 0.2 - 1.0 = -1.4
    traj0 = (lam * (0.25 + 0.09 + 0.36) + lam**2 * (0.64 + 0.81) + lam**3 * 1.96) / (3 * lam + 2 * lam**2 + lam**3)
    # traj 1 (cut): nodes 0.2, 0.5, learned F(s_2) = 1.3 (not R = 50) ; steps 0.6, -0.2
    #   d01 = 0.3, d12 = -1.0, d02 = 0.2 + 0.4 - 1.3 = -0.7
    traj1 = (lam * (0.09 + 1.0) + lam**2 * 0.49) / (2 * lam + lam**2)
    traj3 = 0.4**2  # cut, nodes 0.1, 0.9 ; d01 = 0.1 - 0.4 + 0.8 - 0.9
    traj4 = 0.1**2  # complete, d01 = 0.7 - 0.1 - 0.5
    want = (traj0 + traj1 + traj3 + traj4) / 4  # traj 2 has no pair: not counted
    assert call("subtb", HAND_CUT, lam).item() == pytest.approx(want, abs=1e-12)
    assert reference("subtb", HAND_CUT, lam) == pytest.approx(want, abs=1e-12)


def test_hand_cut_fm():
    # visited states other than s_0: traj 0 (complete): t = 1, 2 ; traj 1 (cut): t = 1, 2 ; traj 3 (cut): t = 1
    #   0.3 - 0.8 = -0.5, 1.0 - 1.2 = -0.2, 0.2 - 0.5 = -0.3, -0.5 + 0.1 = -0.4, 1.4 - 1.0 = 0.4
    # reward matching, complete trajectories only: (0.7 - 1.0)^2, (0.2 - 0.5)^2
    want = (0.25 + 0.04 + 0.09 + 0.16 + 0.16) / 5 + (0.09 + 0.09) / 2
    assert want == pytest.approx(0.23, abs=1e-12)
    assert call("fm", HAND_CUT).item() == pytest.approx(want, abs=1e-12)
    assert reference("fm", HAND_CUT) == pytest.approx(want, abs=1e-12)


def test_hand_cut_mdb():
    # moves: traj 0 t = 0, 1 ; traj 1 t = 0, 1 (its last transition is a move) ; traj 3 t = 0
    #   0.6 - 0.7 - 1.2 - 0.2 + 0.5 + 0.9 = -0.1 ;  0.4 - 0.2 - 0.9 - 0.6 + 1.0 + 0.5 = 0.2
    #   0.1 - 0.9 - 1.0 - 0.3 + 0.3 + 0.8 = -1.0 ;  0.5 - 0.4 - 0.8 - 0.1 + 0.6 + 0.6 = 0.4
    #   0.2 - 0.8 - 1.3 - 0.1 + 0.4 + 0.7 = -0.9
    want = (0.01 + 0.04 + 1.0 + 0.16 + 0.81) / 5
    assert want == pytest.approx(0.404, abs=1e-12)
    assert call("mdb", HAND_CUT).item() == pytest.approx(want, abs=1e-12)
    assert reference("mdb", HAND_CUT) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("name", CUT_LOSSES)
def test_hand_cut_complete_is_keyword_and_last_positional(name):
    """``complete`` is the last parameter: by keyword it gives the same value."""
    b = HAND_CUT
    L, C = b["lengths"], b["complete"]
    by_keyword = {
        "db": lambda: detailed_balance(b["log_pf"], b["log_pb"], b["log_flow"], b["log_reward"], L, complete=C),
        "subtb": lambda: subtrajectory_balance(
            b["log_pf"], b["log_pb"], b["log_flow"], b["log_reward"], L, lam=0.9, complete=C
        ),
        "fm": lambda: flow_matching(
            b["log_inflow"], b["log_outflow"], b["log_exit_flow"], b["log_reward"], L, complete=C
        ),
        "mdb": lambda: modified_detailed_balance(
            b["log_pf"], b["log_pb"], b["log_pf_exit"], b["state_log_reward"], L, complete=C
        ),
    }[name]()
    assert by_keyword.item() == pytest.approx(call(name, b).item(), abs=1e-15)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lengths", [(5, 3, 1, 2), (1, 1), (4,), (2, 6, 6, 3, 1)])
@pytest.mark.parametrize("name", LOSSES)
def test_random_matches_reference_loops(name, lengths, seed):
    b = random_batch(seed, lengths, T=max(lengths) + 1)  # one extra column of pure padding
    assert call(name, b).item() == pytest.approx(reference(name, b), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mixed", MIXED, ids=MIXED_IDS)
@pytest.mark.parametrize("name", CUT_LOSSES)
def test_random_incomplete_matches_reference_loops(name, mixed, seed):
    lengths, complete = mixed
    b = random_batch(seed, lengths, T=max(lengths) + 1, complete=complete)
    assert call(name, b).item() == pytest.approx(reference(name, b), rel=1e-10, abs=1e-12)
    if name == "subtb":
        for lam in (0.3, 1.0, 1.7):
            assert call(name, b, lam).item() == pytest.approx(reference(name, b, lam), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("lam", [0.9, 0.3, 1.0, 1.7])
@pytest.mark.parametrize("seed", [0, 1])
def test_subtb_lambdas_match_reference(lam, seed):
    b = random_batch(seed, (6, 2, 1, 4))
    assert call("subtb", b, lam).item() == pytest.approx(reference("subtb", b, lam), rel=1e-10)


def test_subtb_small_lambda_tends_to_db_per_trajectory():
    """lam -> 0: only length-1 sub-trajectories count, i.e. the DB residuals of each trajectory."""
    b = random_batch(3, (3, 3))  # equal lengths: per-trajectory mean = per-transition mean
    assert call("subtb", b, 1e-9).item() == pytest.approx(call("db", b).item(), rel=1e-6)
    cut = random_batch(3, (2, 2), complete=(False, True))  # two transitions each, one cut
    assert call("subtb", cut, 1e-9).item() == pytest.approx(call("db", cut).item(), rel=1e-6)


@pytest.mark.parametrize("name", ["db", "subtb", "mdb"])
def test_log_pb_at_exit_is_ignored(name):
    b = random_batch(4, (3, 1, 2), exit_pb_zero=True)
    base = call(name, b).item()
    b["log_pb"][torch.arange(3), b["lengths"] - 1] = t64([5.0, -3.0, 11.0])
    assert call(name, b).item() == pytest.approx(base, abs=1e-12)


@pytest.mark.parametrize("name", ["db", "subtb", "mdb"])
def test_log_pb_at_last_move_of_a_cut_trajectory_is_used(name):
    """A cut trajectory's last transition is a move: its log_pb counts (an exit's would not)."""
    b = random_batch(4, (3, 1, 2), exit_pb_zero=True, complete=(True, False, False))
    base = call(name, b).item()
    assert base == pytest.approx(reference(name, b), rel=1e-10)
    for row in (1, 2):
        changed = {**b, "log_pb": b["log_pb"].clone()}
        changed["log_pb"][row, b["lengths"][row] - 1] += 0.5
        assert abs(call(name, changed).item() - base) > 1e-6, row
        assert call(name, changed).item() == pytest.approx(reference(name, changed), rel=1e-10)
    # while the exit of the complete one is still ignored
    changed = {**b, "log_pb": b["log_pb"].clone()}
    changed["log_pb"][0, 2] = 5.0
    assert call(name, changed).item() == pytest.approx(base, abs=1e-12)


@pytest.mark.parametrize("name", ["tb", "vargrad"])
def test_tb_log_pb_at_exit_is_ignored(name):
    """Convention: log_pb is ignored at the exit (the exit has no backward probability).
    DB/SubTB/MDB honour it; TB sums log_pb over the whole mask, exit included."""
    b = random_batch(4, (3, 1, 2), exit_pb_zero=True)
    base = call(name, b).item()
    b["log_pb"][torch.arange(3), b["lengths"] - 1] = t64([5.0, -3.0, 11.0])
    assert call(name, b).item() == pytest.approx(base, abs=1e-12)


@pytest.mark.parametrize("name", CUT_LOSSES)
def test_cut_trajectories_ignore_reward_and_exit_flow(name):
    """No reward term for a trajectory that never exited: its log R / exit flow may be anything."""
    b = random_batch(5, (4, 2, 0, 3), complete=(True, False, False, False))
    base = call(name, b).item()
    cut = ~b["complete"]
    for junk in (1e3, -1e3, 0.0):
        changed = {
            **b,
            "log_reward": torch.where(cut, junk, b["log_reward"]),
            "log_exit_flow": torch.where(cut, -junk, b["log_exit_flow"]),
        }
        assert call(name, changed).item() == pytest.approx(base, abs=1e-12)
    # ... while the complete trajectory's reward counts (MDB reads no terminal reward at all)
    if name != "mdb":
        changed = {**b, "log_reward": b["log_reward"] + torch.tensor([0.5, 0.0, 0.0, 0.0], dtype=F64)}
        assert abs(call(name, changed).item() - base) > 1e-6


@pytest.mark.parametrize("name", CUT_LOSSES)
def test_empty_cut_trajectories_change_nothing(name):
    """Appending L = 0 cut trajectories (junk everywhere) leaves every loss unchanged:
    they have no transition, no visited state but s_0, no pair, no reward term."""
    b = random_batch(6, (3, 2, 1), T=3, complete=(True, False, True))
    extra = random_batch(7, (0, 0), T=3, complete=(False, False))
    both = {k: torch.cat([b[k], extra[k]]) for k in b}
    assert call(name, both).item() == pytest.approx(call(name, b).item(), rel=1e-12, abs=1e-15)
    lone = random_batch(8, (0, 0, 0), complete=(False,) * 3)
    assert call(name, lone).item() == 0.0
    assert reference(name, lone) == 0.0


@pytest.mark.parametrize("name", ["db", "mdb"])
def test_a_cut_trajectory_is_its_moves(name):
    """A trajectory cut after L moves counts exactly as the moves of one that went on: DB and MDB
    (per-move means) on [cut after L] equal those of the complete trajectory with its exit removed."""
    full = random_batch(9, (4, 3), T=4)  # complete: 3 and 2 moves, then the exit
    cut = {**full, "lengths": full["lengths"] - 1, "complete": torch.tensor([False, False])}
    if name == "mdb":  # MDB never reads the exit: the two are the same batch
        assert call(name, cut).item() == pytest.approx(call(name, full).item(), rel=1e-12)
    else:
        L = full["lengths"].tolist()
        x = as_lists(full)
        moves = [
            x["log_flow"][b][t] + x["log_pf"][b][t] - x["log_flow"][b][t + 1] - x["log_pb"][b][t]
            for b in range(2)
            for t in range(L[b] - 1)
        ]
        assert call(name, cut).item() == pytest.approx(sum(m * m for m in moves) / len(moves), rel=1e-12)
    assert call(name, cut).item() == pytest.approx(reference(name, cut), rel=1e-10)


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


CUT_LOG_REWARD = 123.0  # what a cut trajectory's log R is set to: it must never be read


def exact_inputs(env, flows: Flows, tr: Trajectories):
    """Loss inputs of a trajectory batch read from exact tables: per transition [B, T],
    per state [B, T+1] (s_0..s_T), per trajectory [B]; ``complete`` copied from the batch."""
    B, T = tr.actions.shape
    a = tr.actions
    complete = tr.is_complete
    t = torch.arange(T)
    move = t < (tr.lengths - complete.long())[:, None]  # all L_b transitions of a cut trajectory are moves
    states = env.state_index(tr.states)  # [B, T+1]
    idx, nxt = states[:, :T], states[:, 1:]
    back = env.backward_action(tr.states[:, :T].reshape(B * T, -1), torch.where(move, a, 0).reshape(-1)).view(B, T)
    edge = flows.log_flow[:, None] + flows.log_pf  # log F(s -> .), exit included
    inflow, outflow = inflow_outflow_tables(env, edge)
    x = env.state_index(tr.last_state)
    out = dict(
        log_pf=flows.log_pf[idx, a],
        log_pb=torch.where(move, flows.log_pb[nxt, back], 0.0),
        log_flow=flows.log_flow[states],
        log_reward=torch.where(complete, env.log_reward(tr.last_state).double(), CUT_LOG_REWARD),
        log_z=torch.full((B,), flows.log_z, dtype=F64),
        log_inflow=inflow[states],
        log_outflow=outflow[states],
        log_exit_flow=edge[x, env.exit_action],
        log_pf_exit=flows.log_pf[states, env.exit_action],
        state_log_reward=env.log_reward(env.all_states()).double()[states],
        lengths=tr.lengths,
    )
    if tr.complete is not None:
        out["complete"] = tr.complete
    return out


def sample(env, how, g, batch=64, max_moves=None):
    policy = Policy(env, hidden=16)
    if how == "forward":
        return sample_forward(env, policy, batch, generator=g, max_moves=max_moves)
    terminals = env.all_states()[torch.randint(env.n_states, (batch,), generator=g)]
    return sample_backward(env, policy, terminals, generator=g)


def cut_sample(env, g, batch=96):
    """Forward trajectories cut after a random number of moves each (0 .. max_steps - 1)."""
    cuts = torch.randint(0, env.max_steps, (batch,), generator=g)
    tr = sample(env, "forward", g, batch=batch, max_moves=cuts)
    C, L = tr.complete, tr.lengths
    # the batch mixes everything the losses distinguish
    assert C is not None and C.any() and (~C).any()
    assert ((L == 0) & ~C).any() and ((L == 1) & ~C).any() and ((L >= 2) & ~C).any()
    assert ((L >= 3) & C).any()
    return tr


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
    assert b["log_flow"].shape == (len(tr), tr.max_length + 1)
    for name in LOSSES:
        assert abs(call(name, b).item()) < 1e-8, name
    for lam in (0.5, 2.0):
        assert abs(call("subtb", b, lam).item()) < 1e-8


@pytest.mark.parametrize("pb", ["uniform", "random"])
@pytest.mark.parametrize("env_name", list(ENVS))
def test_losses_vanish_at_exact_flows_on_cut_trajectories(env_name, pb):
    """Trajectories cut by sample_forward(max_moves=...) at random per-trajectory cuts: every
    loss that accepts them is 0 at the exact flows (float64), for each part of the batch."""
    env = ENVS[env_name]()
    g = torch.Generator().manual_seed(17)
    flows = exact_flows(env, None if pb == "uniform" else random_log_pb(env, g))
    tr = cut_sample(env, g)
    b = exact_inputs(env, flows, tr)
    for name in CUT_LOSSES:
        assert abs(call(name, b).item()) < 1e-8, name
    for lam in (0.5, 2.0):
        assert abs(call("subtb", b, lam).item()) < 1e-8
    # the cut trajectories alone, too
    only_cut = {k: (v[~tr.complete] if torch.is_tensor(v) else v) for k, v in b.items()}
    for name in CUT_LOSSES:
        assert abs(call(name, only_cut).item()) < 1e-8, name


@pytest.mark.parametrize("pb", ["uniform", "random"])
@pytest.mark.parametrize("env_name", list(ENVS))
def test_losses_positive_away_from_exact_flows_on_cut_trajectories(env_name, pb):
    env = ENVS[env_name]()
    g = torch.Generator().manual_seed(18)
    flows = exact_flows(env, None if pb == "uniform" else random_log_pb(env, g))
    tr = cut_sample(env, g)
    cut_rows = ~tr.complete & (tr.lengths >= 1)

    def both(b):  # the whole batch, and its cut trajectories (with at least one move) alone
        return b, {k: (v[cut_rows] if torch.is_tensor(v) else v) for k, v in b.items()}

    noise = 0.3 * torch.randn(flows.log_flow.shape, generator=g, dtype=F64)
    for b in both(exact_inputs(env, Flows(flows.log_flow + noise, flows.log_pf, flows.log_pb, flows.log_z), tr)):
        for name in ("db", "subtb"):
            assert call(name, b).item() > 1e-4, name
    wrong_pf = exact_inputs(
        env, Flows(flows.log_flow, renormalised(env, flows.log_pf, g), flows.log_pb, flows.log_z), tr
    )
    for b in both(wrong_pf):
        for name in CUT_LOSSES:
            assert call(name, b).item() > 1e-4, name
    edge_noise = 0.3 * torch.randn(flows.log_pf.shape, generator=g, dtype=F64)
    wrong_edges = exact_inputs(env, Flows(flows.log_flow, flows.log_pf + edge_noise, flows.log_pb, flows.log_z), tr)
    for b in both(wrong_edges):
        assert call("fm", b).item() > 1e-4


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
    wrong_pf = exact_inputs(
        env, Flows(flows.log_flow, renormalised(env, flows.log_pf, g), flows.log_pb, flows.log_z), tr
    )
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


def test_cut_losses_see_a_wrong_reward_only_through_complete_trajectories():
    env = HyperGrid(dim=2, side=4)
    g = torch.Generator().manual_seed(19)
    flows = exact_flows(env)
    tr = cut_sample(env, g)
    b = exact_inputs(env, flows, tr)
    shifted = {**b, "log_reward": b["log_reward"] + 0.2 * tr.complete}
    for name in ("db", "subtb", "fm"):
        assert call(name, shifted).item() > 1e-4, name
    shifted = {**b, "log_reward": b["log_reward"] - 7.0 * ~tr.complete}
    for name in CUT_LOSSES:
        assert abs(call(name, shifted).item()) < 1e-8, name


# ----------------------------------------------------------------------------------
# Gradients
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LOSSES)
def test_gradcheck(name):
    b = random_batch(11, (3, 1, 2), T=4)
    keys = inputs_of(name)
    inputs = tuple(b[k].clone().requires_grad_(True) for k in keys)

    def fn(*xs):
        return call(name, {**b, **dict(zip(keys, xs))}, lam=0.7)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", CUT_LOSSES)
def test_gradcheck_incomplete(name):
    b = random_batch(11, (3, 1, 0, 2, 2), T=4, complete=(False, False, False, True, False))
    keys = inputs_of(name)
    inputs = tuple(b[k].clone().requires_grad_(True) for k in keys)

    def fn(*xs):
        return call(name, {**b, **dict(zip(keys, xs))}, lam=0.7)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def _padding_check(name, b):
    trans_pad, state_pad, vec_pad = padding_masks(b)
    pads = {
        **{k: trans_pad for k in TRANS_INPUTS[name]},
        **{k: state_pad for k in STATE_INPUTS[name]},
        **{k: vec_pad for k in VEC_INPUTS[name] if k != "log_z"},
    }
    leaves = {k: b[k].clone().requires_grad_(True) for k in inputs_of(name)}
    loss = call(name, {**b, **leaves})
    loss.backward()
    for k, pad in pads.items():
        if pad.any():
            assert leaves[k].grad[pad].abs().max().item() == 0.0, k
        assert torch.isfinite(leaves[k].grad).all(), k
    # Junk of any finite size in the padding leaves the value unchanged.
    junk = {k: torch.where(pad, 1e3 * torch.randn(b[k].shape, dtype=F64), b[k]) for k, pad in pads.items()}
    assert call(name, {**b, **junk}).item() == pytest.approx(loss.item(), abs=1e-12)
    return leaves


@pytest.mark.parametrize("name", LOSSES)
def test_padding_gets_zero_gradient_and_does_not_change_the_loss(name):
    b = random_batch(12, (4, 1, 2), T=6)
    _padding_check(name, b)


@pytest.mark.parametrize("mixed", MIXED, ids=MIXED_IDS)
@pytest.mark.parametrize("name", CUT_LOSSES)
def test_padding_gets_zero_gradient_incomplete(name, mixed):
    """With cut trajectories: per-state columns > L_b of a cut trajectory, its reward and exit
    flow, and the transitions t >= L_b are padding; column L_b of a cut one (its last state) is not."""
    lengths, complete = mixed
    b = random_batch(12, lengths, T=max(lengths) + 2, complete=complete)
    leaves = _padding_check(name, b)
    # the last state of a cut trajectory with a move is read by every loss that reads states
    for k in STATE_INPUTS[name]:
        for row, (n, c) in enumerate(zip(lengths, complete)):
            if not c and n >= 1:
                assert leaves[k].grad[row, n].abs().item() > 0.0, (k, row)


@pytest.mark.parametrize("name", ["db", "subtb", "mdb"])
def test_exit_log_pb_gets_zero_gradient(name):
    b = random_batch(13, (4, 1, 2), T=5)
    L = b["lengths"]
    log_pb = b["log_pb"].clone().requires_grad_(True)
    call(name, {**b, "log_pb": log_pb}).backward()
    assert log_pb.grad[torch.arange(len(L)), L - 1].abs().max().item() == 0.0


@pytest.mark.parametrize("name", ["db", "subtb", "mdb"])
def test_last_move_log_pb_of_cut_trajectory_gets_gradient(name):
    b = random_batch(13, (4, 1, 2, 3), T=5, complete=(True, False, False, True))
    L = b["lengths"]
    log_pb = b["log_pb"].clone().requires_grad_(True)
    call(name, {**b, "log_pb": log_pb}).backward()
    last = log_pb.grad[torch.arange(len(L)), L - 1]
    assert last[[0, 3]].abs().max().item() == 0.0  # exits
    assert (last[[1, 2]].abs() > 0).all()  # moves


@pytest.mark.parametrize("lengths", [(1,), (1, 1, 1), (1, 3, 1)])
@pytest.mark.parametrize("name", LOSSES)
def test_length_one_trajectories_are_finite(name, lengths):
    assert_finite_and_exact(name, random_batch(14, lengths, T=max(lengths)))


def assert_finite_and_exact(name, b):
    """The loss and its gradients are finite, and the loss equals the reference loop's."""
    leaves = {k: b[k].clone().requires_grad_(True) for k in inputs_of(name)}
    loss = call(name, {**b, **leaves})
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(reference(name, b), abs=1e-12)
    loss.backward()
    for k, v in leaves.items():
        assert torch.isfinite(v.grad).all(), k


@pytest.mark.parametrize(
    "mixed",
    [
        ((0,), (False,)),
        ((1,), (False,)),
        ((0, 0, 0), (False,) * 3),
        ((0, 1, 1), (False, False, True)),
        ((1, 1), (False, True)),
    ],
    ids=["0i", "1i", "0i-0i-0i", "0i-1i-1c", "1i-1c"],
)
@pytest.mark.parametrize("name", CUT_LOSSES)
def test_short_cut_trajectories_are_finite(name, mixed):
    lengths, complete = mixed
    assert_finite_and_exact(name, random_batch(14, lengths, complete=complete))


def _policy_for_all_objectives(env):
    return Policy(env, hidden=16, layers=2, backward="learned", flow=True)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_length_one_batch_through_policy_is_finite(name):
    """A batch where every trajectory is s_0 -> exit, evaluated by the policy: finite loss and grads."""
    env = HyperGrid(dim=2, side=4)
    policy = _policy_for_all_objectives(env)
    B = 3
    traj = Trajectories(
        states=torch.zeros(B, 2, 2, dtype=torch.long),
        actions=torch.full((B, 1), env.exit_action),
        lengths=torch.ones(B, dtype=torch.long),
    )
    traj.log_reward = env.log_reward(traj.terminal)
    objective = get_objective(name)
    loss = objective(policy.evaluate(env, traj, objective.needs))
    assert torch.isfinite(loss)
    loss.backward()
    for p in policy.parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all()


@pytest.mark.parametrize("max_moves", [0, 1])
@pytest.mark.parametrize("name", CUT_LOSSES)
def test_cut_batch_through_policy_is_finite(name, max_moves):
    """Batches cut after 0 moves (nothing to learn: loss 0) or 1 move, through the policy."""
    env = HyperGrid(dim=2, side=4)
    policy = _policy_for_all_objectives(env)
    traj = sample_forward(env, policy, 8, generator=torch.Generator().manual_seed(3), max_moves=max_moves)
    assert (traj.lengths <= max_moves + 1).all()
    traj.log_reward = env.log_reward(traj.last_state)
    objective = get_objective(name)
    loss = objective(policy.evaluate(env, traj, objective.needs))
    assert torch.isfinite(loss)
    if max_moves == 0:
        assert loss.item() == 0.0
    if loss.requires_grad:
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


def _evaluation(name, seed=0, max_moves=None):
    env = HyperGrid(dim=2, side=4)
    policy = _policy_for_all_objectives(env)
    g = torch.Generator().manual_seed(seed)
    traj = sample_forward(env, policy, 16, generator=g, epsilon=0.5, max_moves=max_moves)
    traj.log_reward = env.log_reward(traj.last_state)
    return policy.evaluate(env, traj, get_objective(name).needs)


CUTS = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7] * 2)  # per-trajectory cuts for 16 trajectories


@pytest.mark.parametrize("lam", [0.0, -0.5])
def test_subtb_nonpositive_lambda_is_config_error(lam):
    ev = _evaluation("subtb")
    with pytest.raises(ConfigError, match="lam"):
        get_objective("subtb")(ev, lam=lam)


def test_unknown_objective_parameter_is_config_error():
    ev = _evaluation("tb")
    with pytest.raises(ConfigError, match="lam"):
        get_objective("tb")(ev, lam=0.5)


def _pure(name, ev):
    """The pure loss called directly on the fields of an Evaluation."""
    if name == "tb":
        return trajectory_balance(ev.log_pf, ev.log_pb, ev.log_reward, ev.log_z, ev.mask)
    if name == "zvar":
        return vargrad(ev.log_pf, ev.log_pb, ev.log_reward, ev.mask)
    if name == "db":
        return detailed_balance(ev.log_pf, ev.log_pb, ev.log_flow, ev.log_reward, ev.lengths, ev.complete)
    if name == "subtb":
        return subtrajectory_balance(ev.log_pf, ev.log_pb, ev.log_flow, ev.log_reward, ev.lengths, 0.9, ev.complete)
    if name == "fm":
        return flow_matching(ev.log_inflow, ev.log_outflow, ev.log_exit_flow, ev.log_reward, ev.lengths, ev.complete)
    if name == "mdb":
        return modified_detailed_balance(
            ev.log_pf, ev.log_pb, ev.log_pf_exit, ev.state_log_reward, ev.lengths, ev.complete
        )
    if name == "fl_db":
        return fl_detailed_balance(ev.log_pf, ev.log_pb, ev.log_flow, ev.state_energy, ev.lengths, ev.complete)
    if name == "fl_subtb":
        return fl_subtrajectory_balance(
            ev.log_pf, ev.log_pb, ev.log_flow, ev.state_energy, ev.lengths, 0.9, ev.complete
        )
    if name == "oc_db":
        return teleported_detailed_balance(ev.log_pf, ev.log_pb, ev.log_flow, ev.log_reward, ev.lengths, ev.complete)
    raise AssertionError(f"no direct reference for {name}: add it here")


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_registry_calls_the_pure_loss_on_the_evaluation(name):
    ev = _evaluation(name, seed=1)
    assert ev.complete is None
    got = get_objective(name)(ev).item()
    want = _pure(name, ev)
    assert math.isfinite(got)
    assert got == pytest.approx(want.item(), rel=1e-6)


@pytest.mark.parametrize("name", CUT_LOSSES)
def test_registry_passes_complete_to_the_pure_loss(name):
    ev = _evaluation(name, seed=2, max_moves=CUTS)
    assert ev.complete is not None and (~ev.complete).any() and ev.complete.any()
    got = get_objective(name)(ev).item()
    assert math.isfinite(got)
    assert got == pytest.approx(_pure(name, ev).item(), rel=1e-6)
    # ... and the flag matters: ignoring it gives another value
    if name == "fm":
        ignored = flow_matching(ev.log_inflow, ev.log_outflow, ev.log_exit_flow, ev.log_reward, ev.lengths)
    elif name == "db":
        ignored = detailed_balance(ev.log_pf, ev.log_pb, ev.log_flow, ev.log_reward, ev.lengths.clamp_min(1))
    else:
        ignored = None
    if ignored is not None:
        assert abs(ignored.item() - got) > 1e-6


@pytest.mark.parametrize("name", ["tb", "zvar"])
def test_tb_refuses_incomplete_trajectories(name):
    ev = _evaluation(name, seed=3, max_moves=CUTS)
    assert (~ev.complete).any()
    with pytest.raises(ConfigError, match="complete"):
        get_objective(name)(ev)


@pytest.mark.parametrize("name", ["tb", "zvar"])
def test_tb_accepts_a_flag_that_says_all_complete(name):
    """max_moves large enough: every trajectory exits, the flag is all True, TB runs."""
    env = HyperGrid(dim=2, side=4)
    ev = _evaluation(name, seed=3, max_moves=env.max_steps)
    assert ev.complete is not None and ev.complete.all()
    assert get_objective(name)(ev).item() == pytest.approx(_pure(name, ev).item(), rel=1e-6)


def test_tb_refusal_names_only_objectives_that_exist():
    ev = _evaluation("tb", seed=3, max_moves=CUTS)
    with pytest.raises(ConfigError) as info:
        get_objective("tb")(ev)
    named = [w.strip(",;.") for w in str(info.value).split(" with ", 1)[1].replace(" or ", ", ").split(", ")]
    assert named and all(n in OBJECTIVES for n in named), named
