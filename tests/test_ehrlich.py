"""Ehrlich functions: equal to pytorch-holo 0.0.5 on its own fixture (tolerance 0), and
the environment that masks banned transitions."""

from pathlib import Path

import numpy as np
import pytest
import torch
from env_checks import check_steps_invert

from gflownet.environments import make_env
from gflownet.environments.ehrlich import Ehrlich, EhrlichFunction, banded_mask
from gflownet.errors import ConfigError
from gflownet.metrics import exact_flows, target_distribution, terminal_distribution
from gflownet.policy import Policy
from gflownet.sampler import sample_forward

FIXTURE = np.load(Path(__file__).parent / "data" / "ehrlich_fixture.npz")  # experiments/peers/ehrlich_fixture.py
CASES = [
    (str(name), tuple(config), int(seed))
    for name, config in zip(FIXTURE["names"], FIXTURE["configs"])
    for seed in FIXTURE["seeds"]
]
PER_KIND = (len(FIXTURE[f"{CASES[0][0]}_s0_x"]) - 1) // 3  # dmp, uniform, the optimum, mutated optima


def _function(config, seed):
    states, length, motifs, motif_length, quantization, epistasis = config
    return EhrlichFunction(
        int(states), int(length), int(motifs), int(motif_length), int(quantization), float(epistasis), seed
    )


@pytest.mark.parametrize("name,config,seed", CASES, ids=[f"{c[0]}-s{c[2]}" for c in CASES])
def test_equal_to_holo(name, config, seed):
    f = _function(config, seed)
    key = f"{name}_s{seed}_"
    assert np.array_equal(f.transition_matrix.numpy(), FIXTURE[key + "transition"])
    assert np.array_equal(f.motifs.numpy(), FIXTURE[key + "motifs"])
    assert np.array_equal(f.spacings.numpy(), FIXTURE[key + "spacings"])
    x = torch.from_numpy(FIXTURE[key + "x"].astype(np.int64))
    expected = FIXTURE[key + "values"]
    values = f(x).numpy()
    assert values.dtype == expected.dtype and np.array_equal(values, expected)  # tolerance 0, -inf included
    assert torch.equal(f.optimal_solution(), x[2 * PER_KIND]) and values[2 * PER_KIND] == 1.0


def test_fixture_exercises_every_branch():
    values = np.concatenate([FIXTURE[f"{n}_s{s}_values"] for n, _, s in CASES])
    assert np.isinf(values).any() and (values == 1).any() and (values == 0).any()
    assert ((values > 0) & (values < 1)).sum() > 1000 and str(FIXTURE["holo_version"]) == "0.0.5"


def test_banded_mask():
    assert banded_mask(5, 1).int().tolist() == [
        [1, 1, 0, 0, 1],
        [1, 1, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 1, 1],
        [1, 0, 0, 1, 1],
    ]


def test_environment_masks_banned_transitions():
    env = Ehrlich()  # the CI configuration: 32 states, length 32, 2 motifs of 4, quantization 4
    assert env.n_actions == 33 and env.max_steps == 33 and not env.indexable and env.default_arch == "mlp"
    traj = sample_forward(env, Policy(env, hidden=32), 64, generator=torch.Generator().manual_seed(0))
    assert env.function.feasible(traj.terminal).all()
    allowed = env.function.transition_matrix > 0
    for t in range(1, 32):
        s = traj.states[:, t]
        legal = env.forward_mask(s)[:, :-1]
        assert torch.equal(legal, allowed[s[:, t - 1]])
    log_r = env.log_reward(traj.terminal)
    f = env.function(traj.terminal)
    assert torch.allclose(log_r, 3.0 * f.clamp_min(1e-3).log())
    best = env.function.optimal_solution()[None]
    assert env.log_reward(best).item() == 0.0 and env.is_mode(best).all()
    infeasible = traj.terminal.clone()
    row = infeasible[0]
    row[1] = int((~allowed[row[0]]).nonzero()[0])
    assert env.log_reward(infeasible[:1]).item() == -50.0


def test_steps_invert_on_a_small_instance():
    env = make_env("ehrlich", num_states=4, length=5, num_motifs=1, motif_length=2, quantization=2)
    states = env.all_states()
    # parents of infeasible states cannot always take the move back: check only feasible prefixes
    n = env.lengths(states)
    feasible = torch.stack([env.function.feasible(s[None, : max(int(k), 1)])[0] for s, k in zip(states, n)])
    check_steps_invert(env, states, reachable=feasible)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(num_states=1), "num_states"),
        (dict(motif_length=1), "motif_length"),
        (dict(quantization=5), "quantization"),
        (dict(length=7), "do not fit"),
        (dict(floor=0), "floor"),
    ],
)
def test_bad_parameters(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        Ehrlich(**kwargs)


def test_exact_dp_respects_the_masked_transitions():
    """On an enumerable instance the exact flows sample R/Z over the feasible sequences:
    the masked dynamics and the reward agree (infeasible ones keep only the floor)."""
    env = Ehrlich(num_states=4, length=5, num_motifs=1, motif_length=2, quantization=2, beta=1.0)
    states = env.all_states()
    model = terminal_distribution(env, exact_flows(env).log_pf)
    target, _ = target_distribution(env)
    full = env.lengths(states) == 5
    feasible = full & env.function.feasible(torch.where(states == env.pad, 0, states))
    assert float((model - target).abs().sum()) < 1e-12 and float(model[full & ~feasible].sum()) == 0.0
    assert int((~feasible[full]).sum()) > 0  # the instance does ban some transitions
