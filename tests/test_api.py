"""The Python API reads like the CLI and gives the same run; version and typing markers."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

import gflownet
from gflownet.cli import main
from gflownet.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(dim=2, side=4, batch_size=8, trajectories=400, hidden=32)


def test_train_equals_the_cli(tmp_path, capsys):
    run = gflownet.train(env="hypergrid", objective="db", out=tmp_path / "api", **SMALL)
    assert (
        main(
            [
                "train",
                "--env",
                "hypergrid",
                "--objective",
                "db",
                "--set",
                "dim=2",
                "--set",
                "side=4",
                "--batch-size",
                "8",
                "--trajectories",
                "400",
                "--set",
                "hidden=32",
                "--no-progress",
                "--out",
                str(tmp_path / "cli"),
            ]
        )
        == 0
    )
    cli = gflownet.load(tmp_path / "cli")
    for (name, a), (_, b) in zip(run.policy.state_dict().items(), cli.policy.state_dict().items()):
        assert torch.equal(a, b), name
    assert run.summary["l1"] == cli.summary["l1"] and run.summary["steps"] == 50
    x, log_r = run.sample(100)
    assert x.shape == (100, 2) and torch.equal(log_r, run.env.log_reward(x))
    assert run.evaluate(0)["l1"] == pytest.approx(cli.summary["l1"])
    assert {p.name for p in run.plot()} == {"training_curve.png", "heatmap.png"}


def test_train_without_a_folder_and_qualified_names():
    run = gflownet.train(
        env="sets",
        objective="fl_db",
        size=6,
        set_size=3,
        env__temperature=2.0,
        batch_size=8,
        trajectories=80,
        hidden=16,
    )
    assert run.path is None and run.config.env_params == {"size": 6, "set_size": 3, "temperature": 2.0}
    assert run.summary["trajectories"] == 80 and "l1" in run.summary
    with pytest.raises(ConfigError, match="needs a run folder"):
        gflownet.train(env="sets", size=6, set_size=3, trajectories=8, batch_size=8, logger="tensorboard")
    with pytest.raises(ConfigError, match="unknown parameter 'sidee'; did you mean side"):
        gflownet.make_config("hypergrid", sidee=3)


def test_config_file_then_overrides(tmp_path):
    (tmp_path / "run.yaml").write_text("env: sets\nenv_params: {size: 8}\nobjective: subtb\ntrain: {lr: 0.01}\n")
    config = gflownet.make_config(config=tmp_path / "run.yaml", set_size=2, lam=0.5)
    assert (config.env, config.objective, config.train.lr) == ("sets", "subtb", 0.01)  # the file's, kept
    assert config.env_params == {"size": 8, "set_size": 2} and config.objective_params == {"lam": 0.5}
    config = gflownet.make_config("hypergrid", "db", config=config)  # another env starts from its defaults
    assert (config.env, config.env_params, config.objective, config.train.lr) == ("hypergrid", {}, "db", 0.01)


def test_version_everywhere():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert gflownet.__version__ == version
    out = subprocess.run([sys.executable, "-m", "gflownet.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"gflownet {version}"
    assert (ROOT / "gflownet" / "py.typed").exists()
