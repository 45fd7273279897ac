"""Forward-looking objectives: hand values, zero at the exact flows, the pin, bad input."""

import pytest
import torch

from gflownet.config import RunConfig
from gflownet.environments.base import Environment
from gflownet.environments.hypergrid import HyperGrid
from gflownet.errors import ConfigError, RewardError
from gflownet.metrics import exact_flows, target_distribution, terminal_distribution
from gflownet.objectives import detailed_balance, fl_detailed_balance, fl_subtrajectory_balance, get_objective
from gflownet.policy import Policy
from gflownet.sampler import sample_forward
from gflownet.trainer import Trainer
from gflownet.trajectories import transition_masks
from gflownet.environments import make_env

F64 = torch.float64


def t64(rows):
    return torch.tensor(rows, dtype=F64)


def test_hand_fl_db_and_pin():
    # One complete trajectory s0 -> s1 -> exit, one cut after one move.
    log_pf, log_pb = t64([[-0.5, -0.2], [-0.3, 9.0]]), t64([[-0.7, 9.0], [-0.9, 9.0]])
    log_fl, energy = t64([[0.4, 1.1, 1.1], [0.2, 0.5, 7.0]]), t64([[0.3, -0.6, -0.6], [0.1, 0.8, 5.0]])
    lengths, complete = torch.tensor([2, 1]), torch.tensor([True, False])
    # traj 0: move 0.4 - 0.5 - 1.1 + 0.7 + (-0.6 - 0.3) = -1.4 ; exit (pin, no reward): 1.1 - 0.2 = 0.9
    # traj 1 (cut): move 0.2 - 0.3 - 0.5 + 0.9 + (0.8 - 0.1) = 1.0
    want = (1.4**2 + 0.9**2 + 1.0**2) / 3
    assert fl_detailed_balance(log_pf, log_pb, log_fl, energy, lengths, complete).item() == pytest.approx(want)
    # SubTB with lam -> 0 weighs only single transitions: per-trajectory mean of the DB residuals.
    tiny = fl_subtrajectory_balance(log_pf, log_pb, log_fl, energy, lengths, 1e-9, complete).item()
    assert tiny == pytest.approx(((1.4**2 + 0.9**2) / 2 + 1.0) / 2, rel=1e-6)


def _exact_batch(env, flows, traj):
    """Per-transition / per-state inputs of the FL losses at the exact flows: log F~ = log F + E."""
    B, T = traj.actions.shape
    states = traj.states.reshape(B * (T + 1), -1)
    idx = env.state_index(states).view(B, T + 1)
    energy = env.log_energy(states).double().view(B, T + 1)
    from gflownet.trajectories import transition_masks

    moves, _ = transition_masks(traj.lengths, traj.complete, T)
    log_pf = flows.log_pf[idx[:, :T], traj.actions]
    log_pb = torch.where(moves, flows.log_pb[idx[:, 1:], torch.where(moves, traj.actions, 0)], 0.0)
    return log_pf, log_pb, flows.log_flow[idx] + energy, energy


@pytest.mark.parametrize("energy", ["reward", "coordinates"])
@pytest.mark.parametrize("max_moves", [None, 3])
@pytest.mark.parametrize("dim, side", [(2, 5), (3, 3), (2, 8)])
def test_exact_flows_are_a_zero_of_the_fl_losses(dim, side, max_moves, energy):
    env = HyperGrid(dim=dim, side=side, energy=energy)
    flows = exact_flows(env)
    g = torch.Generator().manual_seed(0)
    traj = sample_forward(env, Policy(env, hidden=16), 64, generator=g, epsilon=0.3, max_moves=max_moves)
    log_pf, log_pb, log_fl, energy = _exact_batch(env, flows, traj)
    sink = env.log_reward(traj.terminal).double()
    args = (log_pf, log_pb, log_fl, energy, traj.lengths)
    assert fl_detailed_balance(*args, traj.complete, sink) < 1e-20
    for lam in (0.5, 0.9, 1.0):
        assert fl_subtrajectory_balance(*args, lam, traj.complete, sink) < 1e-20
    noisy = log_fl + 0.1 * torch.randn(log_fl.shape, generator=g, dtype=F64)
    assert fl_detailed_balance(log_pf, log_pb, noisy, energy, traj.lengths, traj.complete, sink) > 1e-4
    # Without the sink-side reward the exit assumes E(x) = -log R(x): true only for energy="reward".
    assumed = fl_detailed_balance(*args, traj.complete)
    assert assumed < 1e-20 if env.energy == "reward" else assumed > 1e-3


def test_coordinate_energy_by_hand():
    env = HyperGrid(dim=2, side=8, energy="coordinates")
    # side 8: a_c = |c/7 - 0.5|; coordinate 1 is in the mode band (r = 2.6), 0 in the outer band
    # (0.6), 3 in the centre (0.1); E = -(log r(c1) + log r(c2)) / 2.
    states = torch.tensor([[1, 6], [0, 1], [3, 1], [3, 4]])
    want = -torch.tensor([2.6, (0.6 * 2.6) ** 0.5, (0.1 * 2.6) ** 0.5, 0.1]).log()
    assert torch.allclose(env.log_energy(states), want)
    # equal to -log R wherever every coordinate lies in one band
    assert torch.allclose(env.log_energy(states[[0, 3]]), -env.log_reward(states[[0, 3]]))
    with pytest.raises(ConfigError, match="energy"):
        HyperGrid(dim=2, energy="sum")
    with pytest.raises(ConfigError, match="coordinates"):
        HyperGrid(dim=2, energy="coordinates", reward=lambda x: x.sum(-1).float() + 1)


def test_exit_with_a_sink_reward_by_hand():
    # One trajectory s0 -> s1 -> exit; the sink side has log R(x) = -0.4 while E(s1) = -0.6.
    log_pf, log_pb = t64([[-0.5, -0.2]]), t64([[-0.7, 9.0]])
    log_fl, energy = t64([[0.4, 1.1, 1.1]]), t64([[0.3, -0.6, -0.6]])
    # move as in test_hand_fl_db_and_pin: -1.4; exit: 1.1 - 0.2 - (-0.4) - (-0.6) = 1.9
    got = fl_detailed_balance(log_pf, log_pb, log_fl, energy, torch.tensor([2]), log_reward=t64([-0.4]))
    assert got.item() == pytest.approx((1.4**2 + 1.9**2) / 2)


def test_without_the_pin_a_wrong_distribution_is_a_zero():
    """Exact flows of ANOTHER reward R' satisfy every move residual of FL-DB; only the pinned
    exit residual tells them apart. Left free (the sink-side F~ learned), the loss is zero
    for a policy whose terminal distribution is far from R/Z."""
    env = HyperGrid(dim=2, side=5)
    wrong_env = HyperGrid(dim=2, side=5, reward=lambda x: 1.0 + x.sum(-1).float())
    wrong = exact_flows(wrong_env)  # R'-flows with the uniform P_B
    l1 = (terminal_distribution(env, wrong.log_pf) - target_distribution(env)[0]).abs().sum()
    assert l1 > 0.2
    g = torch.Generator().manual_seed(1)
    traj = sample_forward(env, Policy(env, hidden=16), 64, generator=g, epsilon=0.5)
    log_pf, log_pb, log_fl, energy = _exact_batch(env, wrong, traj)
    pinned = fl_detailed_balance(log_pf, log_pb, log_fl, energy, traj.lengths)
    assert pinned > 1e-2
    # Unpinned: the sink side gets a free learned F~, whose best value zeroes each exit residual.
    x = traj.lengths
    free_sink = log_fl.gather(1, (x - 1)[:, None]).squeeze(1) + log_pf.gather(1, (x - 1)[:, None]).squeeze(1)
    sink_log_reward = free_sink - energy.gather(1, x[:, None]).squeeze(1)
    unpinned = detailed_balance(log_pf, log_pb, log_fl - energy, sink_log_reward, traj.lengths)
    assert unpinned < 1e-20


class NoEnergy(HyperGrid):
    log_energy = Environment.log_energy


class NaNEnergy(HyperGrid):
    def log_energy(self, states):
        energy = super().log_energy(states)
        return torch.where(states.sum(-1) == 2, float("nan"), energy)


def test_fl_objective_needs_an_energy(monkeypatch):
    from gflownet import environments

    monkeypatch.setitem(environments.ENVIRONMENTS, "noenergy", NoEnergy)
    config = RunConfig(env="noenergy", env_params={"dim": 2, "side": 3}, objective="fl_db")
    with pytest.raises(ConfigError, match="noenergy.*log_energy"):
        Trainer(config)


def test_non_finite_energy_is_refused_naming_the_state():
    env = NaNEnergy(dim=2, side=4)
    policy = Policy(env, hidden=8, flow=True)
    traj = sample_forward(env, policy, 16, generator=torch.Generator().manual_seed(0), epsilon=1.0)
    traj.log_reward = env.log_reward(traj.terminal)
    with pytest.raises(RewardError, match=r"NaNEnergy.log_energy returned nan for state \["):
        policy.evaluate(env, traj, get_objective("fl_db").needs)


@pytest.mark.parametrize(
    "objective, cut, energy",
    [("fl_db", 0, "reward"), ("fl_subtb", 0, "reward"), ("fl_db", 8, "reward"), ("fl_db", 8, "coordinates")],
)
def test_fl_training_learns_a_small_grid(objective, cut, energy):
    config = RunConfig(env_params={"dim": 2, "side": 5, "energy": energy}, objective=objective)
    config.model.hidden = 64
    t = config.train
    t.batch_size, t.trajectories, t.lr, t.max_moves, t.random_cut = 16, 16_000, 3e-3, cut, cut > 0
    summary = Trainer(config).run()
    assert summary["l1"] < 0.1, summary


def test_cut_rollouts_on_sets_keep_gradients_finite():
    """A cut set is not full: the exit is illegal there, so padding holds log P_F = -inf;
    no NaN may reach the parameters (regression)."""
    config = RunConfig(env="sets", env_params={"size": 8, "set_size": 4}, objective="fl_db")
    config.model.hidden = 32
    config.train.max_moves, config.train.random_cut, config.train.epsilon = 4, True, 1.0
    trainer = Trainer(config)
    for _ in range(20):
        assert torch.isfinite(trainer.train_step())
    assert all(torch.isfinite(p).all() for p in trainer.policy.parameters())
    assert (~trainer.last_trajectories.is_complete).any()


def test_reward_temperature_enters_db_and_fl_db_alike():
    """Sets at temperature 0.25 through the training pipeline: DB reads log R = -sum e(u) / T,
    FL-DB reads E(s) = sum e(u) / T on every state, and the exact flows of THIS temperature
    zero both losses, where those of T = 1 zero neither (a temperature dropped or applied
    twice in one objective would break one of the two)."""
    config = RunConfig(env="sets", env_params={"size": 8, "set_size": 4, "temperature": 0.25}, objective="db")
    config.model.hidden, config.train.epsilon = 16, 0.5
    trainer = Trainer(config)
    trainer.train_step()
    env, traj = trainer.env, trainer.last_trajectories
    needs = get_objective("db").needs | get_objective("fl_db").needs
    ev = trainer.policy.evaluate(env, traj, needs)
    hand_energy = (traj.states.double() @ env.energies.double()) / 0.25  # [B, T+1]
    assert torch.allclose(ev.log_reward.double(), -(traj.terminal.double() @ env.energies.double()) / 0.25, atol=1e-5)
    assert torch.allclose(ev.state_energy.double(), hand_energy, atol=1e-5)
    idx = env.state_index(traj.states)  # [B, T+1]
    T = traj.actions.shape[1]
    moves, _ = transition_masks(traj.lengths, traj.complete, T)
    for flows_env, zero in ((env, True), (make_env("sets", size=8, set_size=4), False)):
        flows = exact_flows(flows_env)
        ev.log_pf = flows.log_pf[idx[:, :T], traj.actions]
        ev.log_pb = torch.where(moves, flows.log_pb[idx[:, 1:], torch.where(moves, traj.actions, 0)], 0.0)
        ev.log_flow = flows.log_flow[idx]
        db = get_objective("db")(ev)
        ev.log_flow = flows.log_flow[idx] + hand_energy  # log F~ = log F + E
        fl = get_objective("fl_db")(ev)
        assert (db < 1e-8 and fl < 1e-8) if zero else (db > 1e-2 and fl > 1e-2), (db, fl)
