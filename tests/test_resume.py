"""Kill a training run, resume it: it ends exactly where an uninterrupted run ends."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from gflownet import checkpoint
from gflownet.config import RunConfig
from gflownet.trainer import Trainer

ARGS = [
    "--set",
    "dim=3",
    "--set",
    "side=5",
    "--set",
    "hidden=64",
    "--set",
    "checkpoint_every=20",
    "--set",
    "log_every=10",
    "--set",
    "eval_every=800",
    "--set",
    "epsilon=0.1",
    "--objective",
    "subtb",
    "--batch-size",
    "8",
    "--trajectories",
    "8000",
    "--seed",
    "3",
    "--no-progress",
]


def train_cmd(out):
    return [sys.executable, "-m", "gflownet.cli", "train", *ARGS, "--out", str(out)]


def final_parameters(run):
    return checkpoint.load(run / "checkpoint.pt")["policy"]


def metric_lines(run):
    """metrics.jsonl without the wall-clock field."""
    return [
        {k: v for k, v in json.loads(line).items() if k != "traj_per_s"}
        for line in (run / "metrics.jsonl").read_text().splitlines()
    ]


def test_killed_run_resumes_to_the_same_parameters(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    reference = tmp_path / "reference"
    subprocess.run(train_cmd(reference), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = checkpoint.load(killed / "checkpoint.pt")["step"]
    assert 0 < step < 1000, "the run must be killed mid-way for this test to mean anything"

    result = subprocess.run(train_cmd(killed), env=env, capture_output=True, text=True, check=True)
    assert f"resuming {killed} at step {step}" in result.stderr
    a, b = final_parameters(reference), final_parameters(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert metric_lines(reference) == metric_lines(killed)


def test_resume_in_process_is_exact(tmp_path):
    config = RunConfig(env_params={"dim": 2, "side": 5}, objective="tb")
    config.model.hidden = 32
    config.train.batch_size, config.train.trajectories, config.train.epsilon = 4, 400, 0.2
    config.train.checkpoint_every = 30
    whole = Trainer(config, tmp_path / "whole")
    whole.run()

    first = Trainer(config, tmp_path / "parts")
    step = first.train_step

    def interrupted_step():
        if first.step_count == 45:
            raise KeyboardInterrupt
        return step()

    first.train_step = interrupted_step
    with pytest.raises(KeyboardInterrupt):
        first.run()
    second = Trainer(config, tmp_path / "parts")
    assert second.resume() and second.step_count == 30  # the last checkpoint; steps 31-45 are redone
    second.run()
    for p, q in zip(whole.policy.parameters(), second.policy.parameters()):
        assert torch.equal(p, q)
