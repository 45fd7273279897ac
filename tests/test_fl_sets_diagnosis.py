"""experiments/fl_sets_diagnosis.py: its terminal-flow variants of DB / FL-DB, and its quick mode."""

import sys
from pathlib import Path
from types import SimpleNamespace

import torch

from gflownet.environments import make_env
from gflownet.metrics import exact_flows
from gflownet.policy import Policy
from gflownet.sampler import sample_forward
from gflownet.trajectories import transition_masks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import fl_sets_diagnosis as diag  # noqa: E402

F64 = torch.float64


def _exact_evaluation(env, flows, fl):
    """An Evaluation-like batch at the exact flows (uniform P_B): log F, or log F~ = log F + E."""
    g = torch.Generator().manual_seed(0)
    traj = sample_forward(env, Policy(env, hidden=16), 32, generator=g, epsilon=0.5)
    B, T = traj.actions.shape
    states = traj.states.reshape(B * (T + 1), -1)
    idx = env.state_index(states).view(B, T + 1)
    energy = env.log_energy(states).double().view(B, T + 1)
    moves, _ = transition_masks(traj.lengths, traj.complete, T)
    ev = SimpleNamespace(
        log_pf=flows.log_pf[idx[:, :T], traj.actions],
        log_pb=torch.where(moves, flows.log_pb[idx[:, 1:], torch.where(moves, traj.actions, 0)], 0.0),
        log_flow=flows.log_flow[idx] + (energy if fl else 0.0),
        state_energy=energy,
        log_reward=env.log_reward(traj.terminal).double(),
        lengths=traj.lengths,
        complete=traj.complete,
    )
    exit_state = torch.arange(T + 1) == (traj.lengths - 1)[:, None]
    return ev, exit_state


def test_known_terminal_flow_replaces_only_the_exit_state():
    env = make_env("sets", size=6, set_size=3)
    flows = exact_flows(env)
    for db, known, fl in (("db", "db_known", False), ("fl_db", "fl_db_known", True)):
        ev, exit_state = _exact_evaluation(env, flows, fl)
        assert diag.objective_of(db)(ev) < 1e-20 and diag.objective_of(known)(ev) < 1e-20
        # a wrong terminal flow: the learned version sees it, the substituted one does not
        ev.log_flow = torch.where(exit_state, ev.log_flow + 0.5, ev.log_flow)
        assert diag.objective_of(db)(ev) > 1e-3
        assert diag.objective_of(known)(ev) < 1e-20
        # a wrong flow anywhere else: both see it
        ev.log_flow = torch.where(exit_state, ev.log_flow, ev.log_flow + torch.rand(ev.log_flow.shape, dtype=F64))
        assert diag.objective_of(known)(ev) > 1e-3


def test_released_fl_db_does_not_identify_the_reward():
    """The released set code's FL-DB has no exit residual: the exact flows of ANOTHER reward
    (other energies), read with this task's energies, zero it; FL-DB's pin does not."""
    env = make_env("sets", size=6, set_size=3)
    wrong = exact_flows(make_env("sets", size=6, set_size=3, seed=1))
    ev, _ = _exact_evaluation(env, wrong, fl=True)
    assert diag.objective_of("fl_db_free")(ev) < 1e-20
    assert diag.objective_of("fl_db")(ev) > 1e-2


def test_flow_head_scaling_keeps_the_start_and_scales_the_steps():
    env = make_env("sets", size=6, set_size=3)
    torch.manual_seed(0)
    a = Policy(env, hidden=16, flow=True)
    torch.manual_seed(0)
    b = Policy(env, hidden=16, flow=True)
    diag.scale_flow_head(b, 10.0)
    x = env.featurize(env.all_states())
    assert torch.allclose(a.heads(x)[2], b.heads(x)[2], atol=1e-6)
    with torch.no_grad():
        a.head.bias[-1] += 0.01
        b.head.bias[-1] += 0.01
    assert torch.allclose(b.heads(x)[2] - a.heads(x)[2], torch.full((len(x),), 0.09), atol=1e-5)


def test_leaky_trunk_is_leaky_relu():
    env = make_env("sets", size=6, set_size=3)
    policy = Policy(env, hidden=16, flow=True)
    x = env.featurize(env.all_states())
    relu = policy.trunk(x)
    diag.leaky_trunk(policy)
    want = x
    for linear in policy.trunk.mlp.linears:
        want = torch.nn.LeakyReLU()(linear(want))
    assert torch.allclose(policy.trunk(x), want)
    assert not torch.allclose(policy.trunk(x), relu)


def test_quick(tmp_path):
    diag.main(["--quick", "--out", str(tmp_path)])
    table = (tmp_path / "fl_sets_diagnosis.md").read_text()
    assert "trace db seed 0" in table and "trace fl_db seed 0" in table
    assert "| released |" in table
    assert (tmp_path / "fl_sets_diagnosis.csv").read_text().startswith("study,method,seed,trajectories")


def test_variants_stay_out_of_the_library_registry():
    from gflownet.objectives import OBJECTIVES

    assert not set(diag.LOSSES) & set(OBJECTIVES)
    assert diag.objective_of("fl_db_free").needs == diag.objective_of("fl_db").needs
