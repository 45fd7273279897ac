"""Data-parallel training (gflownet.distributed): two gloo ranks on CPU take the step a
single process takes on their trajectories concatenated; rank 0 alone writes the
checkpoint, and a single process resumes it."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gflownet.config import RunConfig
from gflownet.errors import ConfigError
from gflownet.trainer import Trainer
from gflownet.trajectories import Trajectories

HERE = Path(__file__).parent


def small_config() -> RunConfig:
    config = RunConfig(env_params={"dim": 3, "side": 4}, objective="tb")
    config.model.hidden = 32
    config.train.batch_size, config.train.trajectories, config.train.seed = 16, 64, 5
    config.train.checkpoint_every = 1000
    return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Run two ranks of tests/ddp_worker.py; their records and the run folder."""
    run_dir = tmp_path_factory.mktemp("ddp")
    port = str(free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "ddp_worker.py"), str(run_dir)],
            env={
                **os.environ,
                "RANK": str(r),
                "WORLD_SIZE": "2",
                "LOCAL_RANK": str(r),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
                "OMP_NUM_THREADS": "1",
                "PYTHONPATH": os.getcwd(),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=100)
        assert p.returncode == 0, out
    return [torch.load(run_dir / f"rank{r}.pt") for r in range(2)], run_dir


def test_one_step_equals_single_process_on_the_concatenated_batch(ranks):
    records, _ = ranks
    a, b = records
    assert not torch.equal(a["states"][:, :5], b["states"][:, :5]), "each rank samples its own stream"
    assert len(a["lengths"]) == len(b["lengths"]) == 8  # an equal share of batch_size 16
    single = Trainer(small_config())
    for name, value in single.policy.state_dict().items():
        assert torch.equal(value, a["initial"][name]) and torch.equal(value, b["initial"][name])
    parts = [Trajectories(r["states"], r["actions"], r["lengths"], r["log_reward"]) for r in records]
    single.learn(Trajectories.cat(parts, single.env.exit_action))
    for name, value in single.policy.state_dict().items():
        assert not torch.equal(value, a["initial"][name]), f"{name} did not move"
        torch.testing.assert_close(a["after"][name], value, rtol=1e-5, atol=1e-6)
        assert torch.equal(a["after"][name], b["after"][name]), "the ranks stay synchronised"


def test_rank_zero_checkpoint_resumes_on_one_process(ranks):
    records, run_dir = ranks
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.pt", "rank0.pt", "rank1.pt"]
    single = Trainer(small_config(), out=run_dir)
    assert single.resume() and single.step_count == 2
    for name, value in single.policy.state_dict().items():
        assert torch.equal(value, records[0]["checkpointed"][name])
    summary = single.run()
    assert summary["steps"] == 4


def test_batch_must_split_evenly():
    from gflownet.distributed import DataParallel

    with pytest.raises(ConfigError, match="multiple of the world size 3"):
        DataParallel(0, 3).local_batch(16)
