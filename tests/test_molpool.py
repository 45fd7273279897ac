"""Molecule rewards in RDKit worker processes (``--set reward_workers=N``): the same
seed gives the same rewards, losses and samples as in-process scoring; failures land
at the floor with a warning and a count in the parent."""

from pathlib import Path

import pytest
import torch

from gflownet.config import RunConfig
from gflownet.environments.atoms import AtomEnv
from gflownet.environments.base import LOG_REWARD_FLOOR
from gflownet.errors import ConfigError
from gflownet.run import Run
from gflownet.trainer import Trainer


def trained(workers: int, objective: str, env_params: dict, steps: int = 3):
    """A fragment-env trainer after ``steps`` steps, with each step's (log R, loss)."""
    config = RunConfig(
        env="fragments", env_params={"max_blocks": 4, "reward_workers": workers, **env_params}, objective=objective
    )
    config.model.hidden, config.model.backward = 32, "uniform"
    config.train.batch_size, config.train.trajectories, config.train.threads = 16, 16 * steps, 1
    config.train.eval_every = 0
    trainer = Trainer(config)
    history = []
    for _ in range(steps):
        loss = float(trainer.train_step())
        history.append((trainer.last_trajectories.log_reward.clone(), loss))
    return trainer, history


def assert_same_history(a, b):
    for (log_r_a, loss_a), (log_r_b, loss_b) in zip(a, b, strict=True):
        assert torch.equal(log_r_a, log_r_b) and loss_a == loss_b


def test_conditioned_training_and_sampling_equal_in_process():
    params = {"reward": "qed", "beta": 1.0, "beta_max": 8.0}
    local, local_history = trained(0, "tb", params)
    pooled, pooled_history = trained(2, "tb", params)
    try:
        assert pooled.env.pool is not None and local.env.pool is None
        assert_same_history(local_history, pooled_history)
        assert (local_history[0][0] > LOG_REWARD_FLOOR).all()  # real molecules were scored
        x_local, log_r_local = Run(local).sample(40, beta=4.0, batch_size=16)
        x_pooled, log_r_pooled = Run(pooled).sample(40, beta=4.0, batch_size=16)
        assert torch.equal(x_local, x_pooled) and torch.equal(log_r_local, log_r_pooled)
    finally:
        pooled.env.close()


def test_forward_looking_energies_equal_in_process():
    """FL-SubTB scores every partial molecule (the energies), in the workers during the forward pass."""
    local, local_history = trained(0, "fl_subtb", {"reward": "qed"})
    pooled, pooled_history = trained(1, "fl_subtb", {"reward": "qed"})
    try:
        assert_same_history(local_history, pooled_history)
        states = local.last_trajectories.states.flatten(0, 1)
        assert torch.equal(local.env.log_energy(states), pooled.env.log_energy(states))
    finally:
        pooled.env.close()


def test_failures_in_workers_scored_at_the_floor_with_a_count(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # the workers inherit sys.path
    spec = "python:user_mol_rewards:nan_on_oxygen"
    local, pooled = AtomEnv(elements="C,O", max_atoms=2, reward=spec), None
    try:
        pooled = AtomEnv(elements="C,O", max_atoms=2, reward=spec, reward_workers=2)
        c, o = 1, 2  # element tokens
        states = torch.tensor([[[c, 0, 0], [0, 0, 0]], [[o, 0, 0], [0, 0, 0]], [[c, 0, 1], [c, 1, 0]]])
        with pytest.warns(RuntimeWarning, match="scored at the floor"):
            expected = local.log_reward(states)
        with pytest.warns(RuntimeWarning, match=r"failed for the molecule of state \[\[2, 0, 0\]"):
            got = pooled.log_reward(states)
        assert torch.equal(got, expected) and got.tolist() == pytest.approx([0.6931, LOG_REWARD_FLOOR, 0.6931], 1e-4)
        assert pooled.reward.failures == local.reward.failures == 1
    finally:
        if pooled is not None:
            pooled.close()


def test_sample_command_with_workers_writes_the_same_file(tmp_path):
    from gflownet.cli import main

    run = tmp_path / "run"
    train = ["train", "--env", "fragments", "--set", "max_blocks=3", "--set", "hidden=16", "--set", "threads=1"]
    assert main([*train, "--batch-size", "16", "--trajectories", "32", "--no-progress", "--out", str(run)]) == 0
    sample = ["sample", str(run), "--n", "64", "--unique"]
    assert main([*sample, "--out", str(tmp_path / "local.csv")]) == 0
    assert main([*sample, "--out", str(tmp_path / "pooled.csv"), "--reward-workers", "1"]) == 0
    assert (tmp_path / "local.csv").read_bytes() == (tmp_path / "pooled.csv").read_bytes()


def test_bad_worker_count():
    with pytest.raises(ConfigError, match="reward_workers must be an integer >= 0"):
        AtomEnv(reward_workers=-1)
