"""Experiment tracking: where the metrics stream goes besides ``metrics.jsonl``.

Every record the trainer writes to ``metrics.jsonl`` (``{"kind": "train" | "eval",
"step": ..., "trajectories": ..., <metrics>}``) is also handed to each logger
chosen with ``--logger`` (``gflownet train --logger jsonl,tensorboard,wandb``).
``metrics.jsonl`` is always written: resuming, ``gflownet plot`` and
``gflownet report`` read it.

A logger is any object with ``log(record: dict)`` and ``close()``; add one to
``LOGGERS`` (name -> builder(out, config)) to make it selectable by name.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

from gflownet.config import RunConfig, unknown_name
from gflownet.errors import ConfigError


class Logger(Protocol):
    def log(self, record: dict) -> None: ...

    def close(self) -> None: ...


def _scalars(record: dict) -> dict[str, float]:
    """The numeric metrics of a record, named ``kind/metric`` (``train/loss``, ``eval/l1``)."""
    skip = {"kind", "step", "trajectories"}
    return {
        f"{record['kind']}/{k}": float(v)
        for k, v in record.items()
        if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _missing(name: str, package: str) -> ConfigError:
    return ConfigError(f"--logger {name} needs the {package} package: pip install 'gflownet[tracking]'")


class TensorBoardLogger:
    """Scalars into ``out/tensorboard`` (``tensorboard --logdir out/tensorboard``),
    against the number of trajectories trained on."""

    def __init__(self, out: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing("tensorboard", "tensorboard") from None
        self.writer = SummaryWriter(log_dir=str(out / "tensorboard"))

    def log(self, record: dict) -> None:
        for name, value in _scalars(record).items():
            self.writer.add_scalar(name, value, global_step=record["trajectories"])

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """A Weights & Biases run in ``out/wandb``, offline unless ``WANDB_MODE`` says
    otherwise (``wandb sync out/wandb/offline-run-*`` uploads it later)."""

    def __init__(self, out: Path, config: RunConfig):
        try:
            import wandb
        except ImportError:
            raise _missing("wandb", "wandb") from None
        out.mkdir(parents=True, exist_ok=True)
        self.wandb = wandb
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "gflownet"),
            name=out.name,
            dir=str(out),
            config=config.to_dict(),
            mode=os.environ.get("WANDB_MODE", "offline"),
            reinit="create_new",
        )

    def log(self, record: dict) -> None:
        self.run.log({**_scalars(record), "trajectories": record["trajectories"]}, step=record["step"])

    def close(self) -> None:
        self.run.finish()
        self.wandb.teardown()  # waits for W&B's writer process: the run is complete on disk when training returns


#: name -> builder(out, config) of the loggers beside metrics.jsonl
LOGGERS: dict[str, Callable[[Path, RunConfig], Logger]] = {
    "tensorboard": lambda out, config: TensorBoardLogger(out),
    "wandb": WandbLogger,
}
#: the name of metrics.jsonl itself in ``--logger`` (always written)
JSONL = "jsonl"


def parse_loggers(spec: str | Sequence[str]) -> list[str]:
    """``"jsonl,tensorboard"`` or ``["jsonl", "tensorboard"]`` -> the checked names
    of the loggers to open besides metrics.jsonl."""
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
    for name in names:
        if name != JSONL and name not in LOGGERS:
            raise unknown_name("logger", name, [JSONL, *LOGGERS])
    return [n for n in dict.fromkeys(names) if n != JSONL]


@contextlib.contextmanager
def open_loggers(spec: str | Sequence[str], out: Path | None, config: RunConfig) -> Iterator[list[Logger]]:
    """The loggers named in ``spec`` for the run folder ``out``, closed on exit."""
    names = parse_loggers(spec)
    if names and out is None:
        raise ConfigError(f"--logger {','.join(names)} needs a run folder (out)")
    loggers: list[Logger] = []
    try:
        for name in names:
            loggers.append(LOGGERS[name](out, config))
        yield loggers
    finally:
        for logger in loggers:
            logger.close()
