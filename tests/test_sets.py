"""The set-generation environment: dynamics, energies, enumeration, exact log Z, and
the generic machinery (exact DP, sampling, training, CLI) running on it."""

import csv
import itertools
import json
import math

import numpy as np
import pytest
from env_checks import check_steps_invert
import torch

from gflownet.cli import main
from gflownet.config import RunConfig
from gflownet.environments import make_env
from gflownet.environments.sets import SetGeneration
from gflownet.errors import ConfigError
from gflownet.metrics import exact_flows, exact_metrics, target_distribution, terminal_distribution
from gflownet.policy import Policy, masked_log_softmax
from gflownet.sampler import sample_backward, sample_forward
from gflownet.trainer import Trainer

F64 = torch.float64


def test_shapes_and_sizes():
    env = SetGeneration(size=12, set_size=6)
    assert env.n_actions == 13 and env.exit_action == 12 and env.n_backward_actions == 12
    assert env.state_shape == (12,) and env.feature_dim == 12 and env.max_steps == 7
    assert env.n_states == 4096 and env.enumerable and env.indexable
    s0 = env.reset(3)
    assert s0.shape == (3, 12) and s0.dtype == torch.long and (s0 == 0).all() and env.is_initial(s0).all()
    feats = env.featurize(torch.tensor([[1, 0] * 6]))
    assert feats.dtype == torch.float32 and feats.shape == (1, 12) and feats[0].tolist() == [1.0, 0.0] * 6
    default = SetGeneration()
    assert (default.size, default.set_size, default.temperature, default.max_steps) == (30, 20, 1.0, 21)


def test_masks():
    env = SetGeneration(size=4, set_size=2)
    states = torch.tensor([[0, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 1], [1, 1, 1, 0]])
    T, F = True, False
    assert env.forward_mask(states).tolist() == [[T, T, T, T, F], [F, T, T, T, F], [F, F, F, F, T], [F, F, F, F, F]]
    assert env.backward_mask(states).tolist() == [[F, F, F, F], [T, F, F, F], [T, F, F, T], [T, T, T, F]]
    assert env.is_initial(states).tolist() == [T, F, F, F]


def test_exit_is_legal_and_the_only_option_exactly_at_full_sets():
    env = SetGeneration(size=10, set_size=4)
    states = env.all_states()
    mask, n = env.forward_mask(states), states.sum(-1)
    assert torch.equal(mask[:, env.exit_action], n == 4)
    assert (mask[n == 4].sum(-1) == 1).all()  # P_F(stop | full set) = 1
    assert torch.equal(mask[n < 4, :-1].sum(-1), 10 - n[n < 4])  # every missing element can be added
    assert not mask[n > 4].any()  # unreachable: no legal action


def test_step_and_backward_step_are_inverse():
    env = SetGeneration(size=6, set_size=3)
    states = env.all_states()
    # a parent of an unreachable state (more than set_size elements) may not move
    for s, a, child in check_steps_invert(env, states, reachable=states.sum(-1) <= env.set_size):
        assert (child.sum(-1) == s.sum(-1) + 1).all() and (child[:, a] == 1).all()


def _recipe(seed, size):
    values = torch.rand(10, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return values, values[torch.arange(size) % 10]


@pytest.mark.parametrize("seed", [0, 7])
def test_energies_follow_the_seeded_recipe(seed):
    env = SetGeneration(size=30, set_size=20, seed=seed)
    values, expected = _recipe(seed, 30)
    assert env.energies.dtype == torch.float32 and torch.equal(env.energies, expected)
    assert ((values >= -1) & (values <= 1)).all() and len(set(values.tolist())) == 10
    assert torch.equal(env.energies.view(3, 10), values.expand(3, 10))  # each value 3 times
    assert torch.equal(SetGeneration(size=5, set_size=2, seed=seed).energies, values[:5])
    assert torch.equal(SetGeneration(size=30, set_size=20, seed=seed).energies, env.energies)
    assert not torch.equal(SetGeneration(size=30, set_size=20, seed=seed + 1).energies, env.energies)


def test_energy_and_reward_of_partial_and_full_sets():
    env = SetGeneration(size=12, set_size=3, temperature=0.5)
    e = env.energies
    states = torch.zeros(3, 12, dtype=torch.long)
    states[1, [2, 7]] = 1
    states[2, [0, 5, 11]] = 1
    energy = env.log_energy(states)
    assert energy.shape == (3,)
    assert energy.tolist() == pytest.approx([0.0, float(e[2] + e[7]) / 0.5, float(e[0] + e[5] + e[11]) / 0.5], abs=1e-6)
    assert torch.equal(env.log_reward(states), -energy)


def test_state_index_all_states_bijection():
    env = SetGeneration(size=12, set_size=6)
    states = env.all_states()
    assert states.shape == (4096, 12) and ((states == 0) | (states == 1)).all()
    assert len(torch.unique(states, dim=0)) == 4096
    assert torch.equal(env.state_index(states), torch.arange(4096))
    assert int(env.state_index(torch.tensor([[1, 0, 0, 1] + [0] * 8]))) == 1 + 8


def test_indexable_but_not_enumerable_above_size_20():
    env = SetGeneration(size=30, set_size=20)
    assert env.n_states is None and not env.enumerable and env.indexable
    with pytest.raises(NotImplementedError):
        env.all_states()
    states = torch.zeros(3, 30, dtype=torch.long)
    states[1, 29] = 1
    states[2] = 1
    assert env.state_index(states).tolist() == [0, 2**29, 2**30 - 1]
    assert SetGeneration(size=62, set_size=3).state_index(torch.ones(1, 62, dtype=torch.long)).item() == 2**62 - 1
    big = SetGeneration(size=100, set_size=80)
    assert not big.enumerable and not big.indexable
    with pytest.raises(NotImplementedError):
        big.state_index(big.reset(1))


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(size=0), r"\bsize\b"),
        (dict(size=1.5), r"\bsize\b"),
        (dict(size=True), r"\bsize\b"),
        (dict(set_size=0), "set_size"),
        (dict(size=4, set_size=5), "set_size"),
        (dict(set_size=2.0), "set_size"),
        (dict(temperature=0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(temperature="hot"), "temperature"),
        (dict(seed=1.5), "seed"),
    ],
)
def test_bad_parameters(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        SetGeneration(**kwargs)


# ----------------------------------------------------------------------------------
# Exact log Z and the exact DP
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("temperature", [1.0, 0.3, 4.0])
def test_log_partition_matches_brute_force(temperature):
    env = SetGeneration(size=12, set_size=6, temperature=temperature, seed=3)
    e = env.energies.double()
    log_r = torch.stack([-e[list(c)].sum() / temperature for c in itertools.combinations(range(12), 6)])
    assert env.log_partition() == pytest.approx(float(log_r.logsumexp(0)), abs=1e-10)
    assert env.log_partition() == pytest.approx(target_distribution(env)[1], abs=1e-5)  # float32 rewards


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_log_partition_large_universe(temperature):
    """size 100, set_size 80: no overflow, and a second method agrees. The ten distinct
    energies each occur 10 times, so e_80 is the z^80 coefficient of prod_i (1 + w_i z)^10,
    expanded with binomials in plain float64 on weights rescaled to <= 1."""
    env = SetGeneration(size=100, set_size=80, temperature=temperature)
    log_z = env.log_partition()
    values = env.energies[:10].double().numpy()
    log_w = -values / temperature
    shift = log_w.max()
    coef = np.ones(1)
    for lw in log_w:
        coef = np.polynomial.polynomial.polymul(
            coef, [math.comb(10, j) * math.exp(j * (lw - shift)) for j in range(11)]
        )
    assert math.isfinite(log_z)
    assert log_z == pytest.approx(math.log(coef[80]) + 80 * shift, abs=1e-9)
    best = float(-np.sort(env.energies.double().numpy())[:80].sum() / temperature)
    assert best < log_z <= best + math.log(math.comb(100, 80))


def test_target_lives_on_the_full_sets():
    env = SetGeneration(size=12, set_size=6)
    target, log_z = target_distribution(env)
    full = env.all_states().sum(-1) == 6
    assert float(target.sum()) == pytest.approx(1.0, abs=1e-12)
    assert (target[~full] == 0).all() and (target[full] > 0).all() and int(full.sum()) == math.comb(12, 6)
    expected = (env.log_reward(env.all_states()[full]).double() - log_z).exp()
    assert torch.allclose(target[full], expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("pb", ["uniform", "random"])
def test_exact_flows_sample_the_target(pb):
    """Unreachable states (more than set_size elements) carry no flow: the DP must
    stay finite there and give exactly R/Z on the full sets."""
    env = SetGeneration(size=8, set_size=4, temperature=0.7)
    states = env.all_states()
    log_pb = None
    if pb == "random":
        g = torch.Generator().manual_seed(1)
        log_pb = masked_log_softmax(torch.randn(len(states), 8, generator=g, dtype=F64), env.backward_mask(states))
    flows = exact_flows(env, log_pb)
    assert not flows.log_pf.isnan().any()
    model = terminal_distribution(env, flows.log_pf)
    target, _ = target_distribution(env)
    assert float((model - target).abs().sum()) < 1e-10
    assert flows.log_z == pytest.approx(env.log_partition(), abs=1e-5)
    reachable = states.sum(-1) <= 4
    assert torch.allclose(flows.log_pf[reachable].exp().sum(1), torch.ones(int(reachable.sum()), dtype=F64))
    assert (flows.log_flow[~reachable] == -math.inf).all()


def test_exact_metrics_of_a_random_policy():
    env = SetGeneration(size=8, set_size=4)
    m = exact_metrics(env, Policy(env, hidden=32), log_z=0.0)
    assert all(math.isfinite(v) for v in m.values())
    assert 0 < m["l1"] <= 2 and m["true_log_z"] == pytest.approx(env.log_partition(), abs=1e-5)


# ----------------------------------------------------------------------------------
# Sampling, training, CLI
# ----------------------------------------------------------------------------------
def _assert_legal(env, traj):
    B, T = traj.actions.shape
    assert (traj.lengths == env.set_size + 1).all() and T == env.set_size + 1
    for t in range(T):
        s, a = traj.states[:, t], traj.actions[:, t]
        assert env.forward_mask(s)[torch.arange(B), a].all()
        assert torch.equal(traj.states[:, t + 1], env.step(s, a))
    assert (traj.actions[:, -1] == env.exit_action).all() and (traj.actions[:, :-1] != env.exit_action).all()
    assert (traj.terminal.sum(-1) == env.set_size).all()


@pytest.mark.parametrize("size,set_size,batch", [(12, 6, 128), (30, 20, 64), (100, 80, 8)])
def test_sample_forward_and_backward(size, set_size, batch):
    env = SetGeneration(size=size, set_size=set_size)
    policy = Policy(env, hidden=32)
    g = torch.Generator().manual_seed(0)
    traj = sample_forward(env, policy, batch, generator=g)
    _assert_legal(env, traj)
    assert (traj.states[:, 0] == 0).all()
    back = sample_backward(env, policy, traj.terminal, generator=g)
    _assert_legal(env, back)
    assert (back.states[:, 0] == 0).all() and torch.equal(back.terminal, traj.terminal)


@pytest.mark.parametrize("objective", ["db", "tb"])
def test_training_smoke(objective):
    config = RunConfig(env="sets", env_params={"size": 8, "set_size": 4}, objective=objective)
    config.model.hidden = 32
    config.train.batch_size, config.train.trajectories, config.train.eval_every = 16, 800, 0
    summary = Trainer(config).run()
    assert summary["steps"] == 50 and math.isfinite(summary["final_loss"])
    assert {"l1", "kl", "jsd", "true_log_z", "log_z"} <= set(summary) and 0 <= summary["l1"] <= 2
    assert summary["true_log_z"] == pytest.approx(make_env("sets", size=8, set_size=4).log_partition(), abs=1e-5)


def test_make_env():
    env = make_env("sets", size=8, set_size=4, temperature=0.5, seed=2)
    assert isinstance(env, SetGeneration) and (env.size, env.set_size, env.temperature, env.seed) == (8, 4, 0.5, 2)
    with pytest.raises(ConfigError, match="sise"):
        make_env("sets", sise=3)


def test_cli_train_evaluate_sample(tmp_path, capsys):
    run = tmp_path / "sets"
    code = main(
        [
            "train",
            "--env",
            "sets",
            "--set",
            "size=8",
            "--set",
            "set_size=4",
            "--set",
            "env.temperature=0.5",
            "--set",
            "hidden=32",
            "--batch-size",
            "8",
            "--trajectories",
            "160",
            "--no-progress",
            "--out",
            str(run),
        ]
    )
    out, _ = capsys.readouterr()
    assert code == 0 and "l1" in out
    assert json.loads((run / "config.json").read_text())["env_params"] == {"size": 8, "set_size": 4, "temperature": 0.5}
    assert main(["evaluate", str(run), "--json", "--samples", "200"]) == 0
    assert json.loads(capsys.readouterr()[0])["n_samples"] == 200
    assert main(["sample", str(run), "--n", "50", "--out", str(run / "samples.csv")]) == 0
    rows = list(csv.reader(open(run / "samples.csv")))
    assert rows[0] == ["elements", "log_reward"] and len(rows) == 51
    env = make_env("sets", size=8, set_size=4, temperature=0.5)
    for elements, log_r in rows[1:]:
        members = [int(u) for u in elements.split()]
        assert len(members) == 4 and members == sorted(set(members)) and 0 <= members[0] and members[-1] < 8
        assert float(log_r) == pytest.approx(-float(env.energies[members].sum()) / 0.5, abs=1e-4)
