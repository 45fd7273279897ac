"""The compiled rollout (gflownet.compiled): the eager rollout's actions, the eager run's
parameters and exact L1, and the train.compile switch.

One grid, batch and sampling setting throughout, so that inductor compiles one graph
(and later Trainers hit its cache)."""

import copy

import pytest
import torch

from gflownet.compiled import AUTO_MIN_STEPS, CompiledRollout, use_compiled
from gflownet.config import RunConfig
from gflownet.environments.bitseq import BitSequences
from gflownet.environments.hypergrid import HyperGrid
from gflownet.errors import ConfigError
from gflownet.policy import Policy
from gflownet.sampler import sample_forward
from gflownet.trainer import Trainer

# 2-D side 6: 11 steps at most, so two chunks of 8, and a rollout may stop after the first
DIM, SIDE, BATCH, TEMPERATURE, EPSILON = 2, 6, 8, 1.5, 0.2


def config(compile_setting, trajectories=BATCH * 500, **train):
    c = RunConfig(env_params={"dim": DIM, "side": SIDE})
    c.model.hidden = 32
    c.train.batch_size, c.train.trajectories, c.train.eval_every = BATCH, trajectories, 0
    c.train.temperature, c.train.epsilon = TEMPERATURE, EPSILON
    c.train.compile = compile_setting
    for key, value in train.items():
        setattr(c.train, key, value)
    return c


def test_compiled_rollout_takes_the_eager_actions():
    env = HyperGrid(dim=DIM, side=SIDE)
    policy = Policy(env, hidden=32)
    rollout = CompiledRollout(env, policy, BATCH, TEMPERATURE, EPSILON)
    compiled_gen, eager_gen = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    lengths = set()
    for _ in range(6):  # the same generator stream, draw after draw
        fast = rollout.sample(compiled_gen)
        slow = sample_forward(env, policy, BATCH, epsilon=EPSILON, temperature=TEMPERATURE, generator=eager_gen)
        assert torch.equal(fast.actions, slow.actions) and torch.equal(fast.states, slow.states)
        assert torch.equal(fast.lengths, slow.lengths) and fast.complete is None
        lengths.add(fast.max_length)
    assert min(lengths) <= 8 < max(lengths)  # stopped after one chunk, and ran two
    assert torch.equal(compiled_gen.get_state(), eager_gen.get_state())  # the same draws


@pytest.mark.parametrize("objective,steps", [("tb", 500), ("db", 100)])
def test_compiled_training_equals_eager(objective, steps):
    """Same seed: the same parameters after training and the same exact L1 (small after
    500 TB steps; the loss is the eager one, so every objective trains through it)."""
    summaries, params = [], []
    for setting in ("true", "false"):
        c = config(setting, trajectories=BATCH * steps)
        c.objective = objective
        trainer = Trainer(c)
        assert (trainer.rollout is not None) == (setting == "true")
        summaries.append(trainer.run())
        params.append(torch.cat([p.detach().flatten() for p in trainer.policy.parameters()]))
    torch.testing.assert_close(params[0], params[1])
    assert summaries[0]["l1"] == pytest.approx(summaries[1]["l1"], abs=1e-6)
    if objective == "tb":
        assert summaries[0]["l1"] < 0.25  # 1.05 before training


def test_auto_compiles_only_long_small_batch_cpu_runs():
    env = HyperGrid(dim=3, side=6)  # 216 states
    policy = Policy(env, hidden=8)

    def auto(batch=16, steps=AUTO_MIN_STEPS, cond_dim=0, max_moves=0):
        return use_compiled("auto", env, policy, cond_dim, max_moves, batch, steps)

    assert auto()
    assert not auto(steps=AUTO_MIN_STEPS - 1)  # too short to pay the compile back
    assert not auto(batch=256)
    assert not auto(batch=54)  # 216 states <= 4 per trajectory: the eager rollout walks tables
    assert not auto(cond_dim=2) and not auto(max_moves=3)
    assert not use_compiled("false", env, policy, 0, 0, 16, AUTO_MIN_STEPS)
    env.device = torch.device("cuda")  # only read here: auto is not measured there
    assert not auto()
    assert Trainer(config("auto")).rollout is None  # 500 steps


def test_compile_setting_errors_name_the_culprit():
    with pytest.raises(ConfigError, match="train.compile must be 'auto', 'true' or 'false', got 'yes please'"):
        Trainer(config("yes please"))
    with pytest.raises(ConfigError, match=r"cannot be compiled here: rollouts are cut \(train.max_moves\)"):
        Trainer(config("true", max_moves=3))
    env = BitSequences(n=4, k=2, n_modes=2)
    with pytest.raises(ConfigError, match="BitSequences does not declare fixed-shape dynamics"):
        use_compiled("true", env, Policy(env, hidden=8), 0, 0, 16, 10)
    assert RunConfig().apply(["compile=true"]).train.compile == "true"  # YAML's boolean, back to the string
    assert RunConfig().apply(["compile=false"]).train.compile == "false"


def test_a_run_may_switch_the_compiled_rollout_on_when_it_resumes():
    """Eager for the first half, compiled from the checkpoint on: where the eager run ends."""
    steps = 60
    half = Trainer(config("false", trajectories=BATCH * steps))
    for _ in range(steps // 2):
        half.train_step()
    resumed = Trainer(config("true", trajectories=BATCH * steps))
    resumed.load_state_dict(copy.deepcopy(half.state_dict()))  # as from a checkpoint: no shared tensors
    assert resumed.rollout is not None and resumed.step_count == steps // 2
    for _ in range(steps // 2):
        resumed.train_step()
        half.train_step()
    for a, b in zip(resumed.policy.parameters(), half.policy.parameters()):
        torch.testing.assert_close(a, b)
