"""The energy diagnostic of experiments/seh_fl_energy.py: rollouts from given states,
partial molecules by size, completions and the rank correlation, against exact answers."""

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import seh_fl_energy as diag  # noqa: E402

from gflownet.environments.fragments import FragmentEnv  # noqa: E402


@pytest.fixture(scope="module")
def env():
    return FragmentEnv(max_blocks=3, reward="qed", beta=2.0)


def uniform(env):
    return lambda s: torch.zeros(len(s), env.n_actions)


def exit_only(env):
    """Logits that put all the mass on the exit (where it is legal)."""

    def logits(s):
        out = torch.zeros(len(s), env.n_actions)
        out[:, env.exit_action] = 1e4
        return out

    return logits


def test_rank_correlation_hand_values():
    x = torch.tensor([0.0, 1.0, 2.0, 3.0])
    assert diag.rank_correlation(x, torch.tensor([10.0, 20.0, 30.0, 40.0])) == pytest.approx(1.0)
    assert diag.rank_correlation(x, torch.tensor([4.0, 3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    # ranks 1 3 2 4: rho = 1 - 6 * (0 + 1 + 1 + 0) / (4 * 15) = 0.8
    assert diag.rank_correlation(x, torch.tensor([1.0, 3.0, 2.0, 4.0])) == pytest.approx(0.8)
    assert math.isnan(diag.rank_correlation(x, torch.ones(4)))


def test_energy_correlation_columns():
    energy = torch.tensor([3.0, 2.0, 1.0, 0.0])  # -E increasing
    descendants = torch.tensor([[0.0, 2.0], [1.0, 3.0], [2.0, 4.0], [3.0, 1.0]])  # means 1 2 3 2, maxes 2 3 4 3
    row = diag.energy_correlation(energy, descendants, torch.tensor([True, False, False, False]))
    assert row["states"] == 4 and row["at_floor"] == 0.25
    # the means and the maxes both rank 1, 2.5, 4, 2.5 (a tie): rho is Pearson's r of the ranks
    ranks = torch.tensor([1.0, 2.5, 4.0, 2.5])
    expected = float(torch.corrcoef(torch.stack([torch.arange(1.0, 5.0), ranks]))[0, 1])
    assert row["spearman_mean"] == pytest.approx(expected) and row["spearman_max"] == pytest.approx(expected)
    assert row["std_log_r_s"] == pytest.approx(float(energy.std()))
    # mean + E = 4 4 4 2: std = sqrt(((1/2)^2 * 3 + (3/2)^2) / 3) = 1
    assert row["std_mean_log_r_desc"] == pytest.approx(float(torch.tensor([1.0, 2.0, 3.0, 2.0]).std()))
    assert row["std_mean_plus_e"] == pytest.approx(1.0)


def test_roll_out_keeps_the_start_and_stops_where_told(env):
    g = torch.Generator().manual_seed(0)
    starts = diag.roll_out(env, uniform(env), env.reset(64), g)[:, 1]  # one block each
    ends = diag.roll_out(env, uniform(env), starts, g)[:, -1]
    assert torch.equal(ends[:, 0], starts[:, 0]) and bool((env.n_placed(ends) >= 1).all())
    stopped = diag.roll_out(env, exit_only(env), starts, g)
    assert stopped.shape[1] == 2 and torch.equal(stopped[:, -1], starts)
    full = diag.roll_out(env, uniform(env), env.reset(8), g)
    full = full[:, -1][env.n_placed(full[:, -1]) == env.max_blocks]
    assert len(full) and torch.equal(diag.roll_out(env, uniform(env), full, g)[:, -1], full)


def test_completion_draws_from_the_softmax_over_legal_actions_only(env):
    """Exit logit log(L - 1) against 0 for the L - 1 legal moves: P(stop at once) = 1/2
    (were the illegal actions counted, it would be far less)."""
    g = torch.Generator().manual_seed(1)
    start = diag.roll_out(env, uniform(env), env.reset(1), g)[:, 1]
    legal = int(env.forward_mask(start).sum())

    def half_exit(s):
        out = torch.zeros(len(s), env.n_actions)
        out[:, env.exit_action] = math.log(legal - 1)
        return out

    n = 2000
    ends = diag.roll_out(env, half_exit, start.expand(n, -1, -1), g)[:, 1]
    stopped = (env.n_placed(ends) == 1).double().mean().item()
    assert abs(stopped - 0.5) < 5 * math.sqrt(0.25 / n)


def test_partial_states_by_size_and_completions(env):
    g = torch.Generator().manual_seed(2)
    groups = diag.partial_states(env, uniform(env), 64, 5, g)
    assert set(groups) == {1, 2}
    for n, states in groups.items():
        assert 1 <= len(states) <= 5 and bool((env.n_placed(states) == n).all())
        assert len(torch.unique(states, dim=0)) == len(states)
    states = groups[2]
    desc = diag.descendant_log_rewards(env, exit_only(env), states, 3, g)
    assert desc.shape == (len(states), 3)
    assert torch.equal(desc, env.log_reward(states)[:, None].expand(-1, 3))
