"""The hypergrid environment: dynamics, enumeration, reward, bad input."""

import math

import pytest
from env_checks import check_steps_invert
import torch

from gflownet.environments import LOG_REWARD_FLOOR, make_env
from gflownet.environments.hypergrid import HyperGrid
from gflownet.errors import ConfigError, RewardError


def test_shapes_and_sizes():
    env = HyperGrid(dim=3, side=5)
    assert env.n_actions == 4 and env.exit_action == 3 and env.n_backward_actions == 3
    assert env.state_shape == (3,) and env.feature_dim == 15
    assert env.max_steps == 3 * 4 + 1 and env.n_states == 125 and env.enumerable
    s0 = env.reset(4)
    assert s0.shape == (4, 3) and s0.dtype == torch.long and (s0 == 0).all()
    assert env.is_initial(s0).all()
    feats = env.featurize(torch.tensor([[0, 4, 2]]))
    assert feats.shape == (1, 15)
    assert feats[0].tolist() == [1, 0, 0, 0, 0] + [0, 0, 0, 0, 1] + [0, 0, 1, 0, 0]


def test_masks():
    env = HyperGrid(dim=2, side=3)
    states = torch.tensor([[0, 0], [2, 0], [1, 2], [2, 2], [1, 1]])
    assert env.forward_mask(states).tolist() == [
        [True, True, True],
        [False, True, True],
        [True, False, True],
        [False, False, True],
        [True, True, True],
    ]
    assert env.backward_mask(states).tolist() == [
        [False, False],
        [True, False],
        [True, True],
        [True, True],
        [True, True],
    ]
    assert env.is_initial(states).tolist() == [True, False, False, False, False]


def test_step_and_backward_step_are_inverse():
    env = HyperGrid(dim=3, side=3)
    for s, a, child in check_steps_invert(env, env.all_states()):
        assert (child - s).sum(-1).eq(1).all() and (child[:, a] == s[:, a] + 1).all()


def test_state_index_all_states_bijection():
    for dim, side in ((1, 4), (2, 3), (3, 4), (4, 2)):
        env = HyperGrid(dim=dim, side=side)
        states = env.all_states()
        assert states.shape == (side**dim, dim)
        assert states.min() >= 0 and states.max() <= side - 1
        assert len(torch.unique(states, dim=0)) == side**dim
        assert torch.equal(env.state_index(states), torch.arange(side**dim))
    env = HyperGrid(dim=2, side=5)
    assert int(env.state_index(torch.tensor([[3, 2]]))) == 3 + 2 * 5


# Standard reward, dim 2, side 8: a_d = |s_d/7 - 0.5| is 0.5, .357, .214, .071, .071, .214, .357, .5
@pytest.mark.parametrize(
    "coords,reward",
    [
        ((1, 1), 2.6),
        ((6, 6), 2.6),
        ((1, 6), 2.6),
        ((6, 1), 2.6),  # modes: R0 + R1 + R2
        ((0, 0), 0.6),
        ((7, 7), 0.6),
        ((0, 1), 0.6),
        ((0, 7), 0.6),  # R0 + R1 (outer band, not a mode)
        ((3, 3), 0.1),
        ((2, 2), 0.1),
        ((0, 3), 0.1),
        ((1, 2), 0.1),
        ((4, 6), 0.1),  # R0 only
    ],
)
def test_standard_reward_values(coords, reward):
    env = HyperGrid(dim=2, side=8)
    log_r = env.log_reward(torch.tensor([coords]))
    assert log_r.shape == (1,)
    assert math.exp(float(log_r[0])) == pytest.approx(reward, rel=1e-6)


def test_reward_parameters():
    env = HyperGrid(dim=2, side=8, r0=0.0, r1=1.0, r2=3.0)
    r = env.log_reward(torch.tensor([[1, 1], [0, 0], [3, 3]])).exp()
    assert r[0].item() == pytest.approx(4.0, rel=1e-6) and r[1].item() == pytest.approx(1.0, rel=1e-6)
    assert env.log_reward(torch.tensor([[3, 3]])).item() == LOG_REWARD_FLOOR  # R = 0


def test_reward_untabulated_grid_matches_formula():
    env = HyperGrid(dim=12, side=4)  # 4^12 states: computed per batch, not tabulated
    states = torch.tensor([[0] * 12, [3] * 12, [1] * 12, [0] * 11 + [1]])
    r = env.log_reward(states).exp()
    # side 4: a = 0.5, .167, .167, .5 -> never a mode
    assert r.tolist() == pytest.approx([0.6, 0.6, 0.1, 0.1], rel=1e-6)


@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_n_modes_is_two_to_the_dim(dim):
    env = HyperGrid(dim=dim, side=8)
    assert env.n_modes() == 2**dim
    modes = env.all_states()[env.is_mode(env.all_states())]
    assert set(modes.flatten().tolist()) == {1, 6}
    assert torch.allclose(env.log_reward(modes).exp(), torch.full((2**dim,), 2.6), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs", [dict(dim=0), dict(side=0), dict(dim=1.5), dict(side=2.0), dict(dim=-1), dict(dim=True), dict(r0=-0.1)]
)
def test_bad_parameters(kwargs):
    with pytest.raises(ConfigError):
        HyperGrid(**kwargs)


def test_make_env():
    env = make_env("hypergrid", dim=3, side=4)
    assert isinstance(env, HyperGrid) and env.n_states == 64
    with pytest.raises(ConfigError, match="hypergrid"):
        make_env("hypergrdi")
    with pytest.raises(ConfigError, match="dimm"):
        make_env("hypergrid", dimm=2)


def _bad_at(value, where=(1, 2)):
    def reward(s):
        r = torch.ones(len(s), dtype=torch.float64)
        hit = (s == torch.tensor(where)).all(-1)
        return torch.where(hit, torch.tensor(value, dtype=torch.float64), r)

    return reward


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1.0, -1e-9])
def test_user_reward_bad_value_names_the_state(value):
    with pytest.raises(RewardError) as info:
        HyperGrid(dim=2, side=3, reward=_bad_at(value))
    message = str(info.value)
    assert "[1, 2]" in message
    assert "reward" in message


@pytest.mark.parametrize("shape", [lambda n: (n, 1), lambda n: (n - 1,), lambda n: (), lambda n: (n, 2)])
def test_user_reward_wrong_shape(shape):
    with pytest.raises(RewardError, match="shape"):
        HyperGrid(dim=2, side=3, reward=lambda s: torch.ones(shape(len(s))))


def test_user_reward_zero_becomes_floor():
    env = HyperGrid(dim=2, side=3, reward=lambda s: (s[:, 0] * s[:, 1]).double())
    log_r = env.log_reward(env.all_states())
    assert torch.isfinite(log_r).all()
    zero = env.all_states().prod(-1) == 0
    assert (log_r[zero] == LOG_REWARD_FLOOR).all()
    assert log_r[~zero].exp().tolist() == pytest.approx([1, 2, 2, 4], rel=1e-6)


def test_user_reward_any_callable_and_list_output():
    env = HyperGrid(dim=1, side=4, reward=lambda s: [float(c) + 1 for c in s[:, 0].tolist()])
    assert env.log_reward(env.all_states()).exp().tolist() == pytest.approx([1, 2, 3, 4], rel=1e-6)


def test_user_reward_large_finite_value_is_accepted():
    """A finite float64 reward above float32's range (3.4e38) is a legal reward, not 'inf'."""
    env = HyperGrid(dim=1, side=3, reward=lambda s: torch.full((len(s),), 1e39, dtype=torch.float64))
    assert env.log_reward(env.all_states()).tolist() == pytest.approx([math.log(1e39)] * 3, rel=1e-6)


def test_user_reward_tiny_positive_value_is_not_floored():
    """Only R = 0 maps to LOG_REWARD_FLOOR: a positive reward keeps its log."""
    env = HyperGrid(dim=1, side=3, reward=lambda s: torch.tensor([1e-30, 1e-25, 1.0], dtype=torch.float64))
    assert env.log_reward(env.all_states()).tolist() == pytest.approx([math.log(1e-30), math.log(1e-25), 0.0], rel=1e-5)
