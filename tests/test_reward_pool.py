"""The reward pool (gflownet.reward_pool): every score comes back, in order, when a
worker is killed mid-batch; a reward that keeps failing is scored at the floor."""

import os
import sys
from pathlib import Path

import pytest
import torch

from gflownet.errors import ConfigError
from gflownet.reward_pool import RewardPool

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from pool_rewards import FailsOn, KillOnce  # noqa: E402


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(HERE), os.getcwd()])}},
    )
    yield ray
    ray.shutdown()


def squares(n):
    return torch.arange(n, dtype=torch.float64) ** 2


@pytest.mark.parametrize("backend", ["ray", "local"])
def test_killed_worker_mid_batch_every_score_back_in_order(backend, tmp_path, request):
    if backend == "ray":
        request.getfixturevalue("ray_instance")
    marker = tmp_path / "killed"
    with RewardPool(KillOnce(str(marker), trigger=13), backend=backend, workers=2, chunk_size=4) as pool:
        pending = pool.submit(range(32))  # returns at once: the batch is scored in the background
        assert torch.equal(pending.result(), squares(32))
        assert marker.exists(), "a worker must have been killed for this test to mean anything"
        assert pool.failures == 0
        assert torch.equal(pool.score(range(8)), squares(8))  # the pool still works afterwards


def test_reward_that_keeps_failing_gets_the_floor(ray_instance):
    with RewardPool(FailsOn(bad=3), backend="ray", workers=2, chunk_size=3, retries=1, floor=0.0) as pool:
        with pytest.warns(RuntimeWarning, match=r"reward failed 2 times on 3 .*ValueError.*floor 0.0 \(1 so far\)"):
            rewards = pool.score(range(7))
    assert rewards.tolist() == [1.0, 2.0, 3.0, 0.0, 5.0, 6.0, 7.0]
    assert pool.failures == 1


def test_bad_pool_settings():
    with pytest.raises(ConfigError, match="backend must be one of local, ray"):
        RewardPool(abs, backend="dask")
    with pytest.raises(ConfigError, match="workers >= 1"):
        RewardPool(abs, workers=0)
