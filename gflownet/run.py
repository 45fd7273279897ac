"""A trained run on disk: load it, sample from it, evaluate it.

    run = Run.load("runs/hg4")
    x, log_r = run.sample(1000)
    run.write_csv("samples.csv", 10_000)
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from gflownet import checkpoint
from gflownet.config import RunConfig
from gflownet.errors import ConfigError
from gflownet.metrics import sampled_metrics
from gflownet.sampler import sample_forward
from gflownet.trainer import Trainer


class Run:
    def __init__(self, trainer: Trainer, path: Path | None = None):
        self.trainer, self.path = trainer, path
        self.env, self.policy, self.config = trainer.env, trainer.policy, trainer.config

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "Run":
        """The run in folder ``path`` at its last checkpoint."""
        path = Path(path)
        state = checkpoint.load(path / "checkpoint.pt")
        config = RunConfig.from_dict(state["config"])
        if device:
            config.train.device = device
        trainer = Trainer(config)
        trainer.load_state_dict(state, str(path / "checkpoint.pt"))
        return cls(trainer, path)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, seed: int = 0, batch_size: int = 4096, beta=None):
        """``n`` terminal objects ``[n, *state_shape]`` and their log-rewards ``[n]``; a
        reward-conditioned run samples at ``beta`` (default: its largest)."""
        if n < 1:
            raise ConfigError(f"the number of samples must be >= 1, got {n}")
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        generator = torch.Generator(self.trainer.device).manual_seed(seed)
        xs = []
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            cond = self.env.cond_for(beta, size) if self.trainer.cond_dim else None
            traj = sample_forward(self.env, self.policy, size, cond=cond, temperature=temperature,
                                  generator=generator)
            xs.append(traj.terminal)
        x = torch.cat(xs)
        if self.trainer.cond_dim:
            return x, self.env.log_reward_cond(x, self.env.cond_for(beta, len(x)))
        return x, self.env.log_reward(x)

    def write_csv(self, path: str | Path, n: int, temperature: float = 1.0, seed: int = 0) -> Path:
        """Sample ``n`` objects and write them (one column per coordinate + log_reward), atomically."""
        x, log_r = self.sample(n, temperature, seed)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(self.env.object_columns() + ["log_reward"])
        for row, value in zip(self.env.object_rows(x.cpu()), log_r.tolist()):
            writer.writerow(row + [f"{value:.6g}"])
        checkpoint.atomic_write(Path(path), lambda f: f.write(text.getvalue().encode()))
        return Path(path)

    def evaluate(self, n_samples: int = 10_000, seed: int = 0) -> dict:
        """Exact metrics (enumerable spaces) and metrics of ``n_samples`` samples."""
        out = {"trajectories_trained": self.trainer.step_count * self.config.train.batch_size}
        out.update(self.trainer.evaluate())
        if n_samples:
            x, log_r = self.sample(n_samples, seed=seed)
            out.update(sampled_metrics(self.env, x, log_r))
        return out
