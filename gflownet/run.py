"""A trained run on disk: load it, sample from it, evaluate it.

run = Run.load("runs/hg4")
x, log_r = run.sample(1000)
run.write_csv("samples.csv", 10_000)
run.evaluate(), run.plot(), run.report()
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import torch

from gflownet import checkpoint
from gflownet.config import RunConfig
from gflownet.errors import ConfigError
from gflownet.metrics import sampled_metrics
from gflownet.reward_pool import submit_log_reward
from gflownet.sampler import sample_forward
from gflownet.trainer import Trainer


def write_objects_csv(env, x: torch.Tensor, columns: dict[str, torch.Tensor], path: str | Path) -> Path:
    """Terminal objects ``x`` (one column per ``env.object_columns``) and extra per-object
    ``columns`` (name -> ``[n]``) as a CSV file, written atomically."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(env.object_columns() + list(columns))
    values = zip(*(c.tolist() for c in columns.values()))
    for row, extra in zip(env.object_rows(x.cpu()), values):
        writer.writerow(row + [f"{v:.6g}" for v in extra])
    checkpoint.atomic_write(Path(path), lambda f: f.write(text.getvalue().encode()))
    return Path(path)


class Run:
    """A trained policy with its environment and configuration (``path``: its folder, if any).

    ``summary`` is the run's summary.json (an empty dict where there is none).
    """

    def __init__(self, trainer: Trainer, path: Path | None = None, summary: dict | None = None):
        self.trainer, self.path = trainer, Path(path) if path else None
        self.env, self.policy, self.config = trainer.env, trainer.policy, trainer.config
        if summary is None and self.path and (self.path / "summary.json").exists():
            summary = json.loads((self.path / "summary.json").read_text())
        self.summary: dict = summary or {}

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, reward_workers: int | None = None) -> "Run":
        """The run in folder ``path`` at its last checkpoint (``reward_workers``: score the
        rewards of a molecule run in that many worker processes instead of the run's own setting)."""
        path = Path(path)
        state = checkpoint.load(path / "checkpoint.pt")
        config = RunConfig.from_dict(state["config"])
        if device:
            config.train.device = device
        if reward_workers is not None:
            config.env_params["reward_workers"] = reward_workers
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
        xs, log_rewards = [], []
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            cond = self.env.cond_for(beta, size) if self.policy.cond_dim else None
            traj = sample_forward(self.env, self.policy, size, cond=cond, temperature=temperature, generator=generator)
            xs.append(traj.terminal)
            log_rewards.append(submit_log_reward(self.env, traj.terminal, cond))  # scored while the next batch samples
        return torch.cat(xs), torch.cat([r.result() for r in log_rewards])

    def write_csv(self, path: str | Path, n: int, temperature: float = 1.0, seed: int = 0) -> Path:
        """Sample ``n`` objects and write them (one column per coordinate + log_reward), atomically."""
        x, log_r = self.sample(n, temperature, seed)
        return write_objects_csv(self.env, x, {"log_reward": log_r}, path)

    def evaluate(self, n_samples: int = 10_000, seed: int = 0) -> dict:
        """Exact metrics (enumerable spaces) and metrics of ``n_samples`` samples."""
        out = {"trajectories_trained": self.trainer.step_count * self.config.train.batch_size}
        out.update(self.trainer.evaluate())
        if n_samples:
            x, log_r = self.sample(n_samples, seed=seed)
            out.update(sampled_metrics(self.env, x, log_r))
        return out

    def plot(self, out: str | Path | None = None) -> list[Path]:
        """Training curves (and the heat map for hypergrids) as PNGs in ``out`` (default: the run folder)."""
        from gflownet.plots import plot_run

        return plot_run(self, out)

    def report(self, out: str | Path | None = None, n_samples: int = 10_000, top_k: int = 20, seed: int = 0) -> Path:
        """One self-contained HTML page about the run (default: ``report.html`` in the run folder)."""
        from gflownet.report import write_report

        return write_report(self, out, n_samples, top_k, seed)
