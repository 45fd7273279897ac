"""The Python API: the command line as functions.

    import gflownet
    run = gflownet.train(env="hypergrid", objective="tb", out="runs/hg", dim=2, side=16, trajectories=8000)
    run.summary                       # what `gflownet train` prints
    run = gflownet.load("runs/hg")    # = gflownet.Run.load
    x, log_r = run.sample(1000)       # `gflownet sample`
    run.evaluate()                    # `gflownet evaluate`
    run.plot(); run.report()          # `gflownet plot`, `gflownet report`

Keyword parameters are the ``--set`` names (environment, objective, model and
training parameters; qualify an ambiguous one as ``env__temperature``), so
``gflownet train --env sets --set size=12 --batch-size 16`` reads
``gflownet.train(env="sets", size=12, batch_size=16)``. Fine-tuning a pretrained
OC-GFN (``gflownet finetune``) is ``gflownet.api.finetune("runs/pre", "runs/ft", k=16, teacher=32)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from gflownet.config import RunConfig, load_config_file
from gflownet.run import Run


def make_config(
    env: str | None = None, objective: str | None = None, config: RunConfig | str | Path | None = None, **params: Any
) -> RunConfig:
    """A ``RunConfig``: ``config`` (an object or a YAML/JSON file; default: the defaults,
    hypergrid and tb) with ``env``, ``objective`` (None: keep the config's) and the
    ``--set`` parameters ``params`` applied, as ``gflownet train`` does."""
    if isinstance(config, (str, Path)):
        config = load_config_file(config)
    config = RunConfig.from_dict(config.to_dict()) if config else RunConfig()
    if env is not None and env != config.env:
        config.env, config.env_params = env, {}
    if objective is not None:
        config.objective = objective
    for key, value in params.items():
        config.set(key.replace("__", "."), value)
    return config


def train(
    env: str | None = None,
    objective: str | None = None,
    out: str | Path | None = None,
    *,
    config: RunConfig | str | Path | None = None,
    logger: str | Sequence[str] = "jsonl",
    overwrite: bool = False,
    progress: bool = False,
    **params: Any,
) -> Run:
    """Train (or resume, as ``gflownet train``) a GFlowNet; returns the trained ``Run``.

    ``out`` is the run folder (None: nothing is written); ``logger`` names the
    metric sinks (``"jsonl,tensorboard,wandb"``); ``params`` are ``--set`` parameters.
    """
    from gflownet.cli import train as train_folder
    from gflownet.tracking import open_loggers
    from gflownet.trainer import Trainer

    run_config = make_config(env, objective, config, **params)
    if out is None:
        trainer = Trainer(run_config, progress=progress)
        with open_loggers(logger, None, run_config) as trainer.loggers:
            return Run(trainer, None, trainer.run())
    train_folder(run_config, Path(out), overwrite, progress, loggers=logger)
    return Run.load(out, run_config.train.device)


def load(path: str | Path, device: str | None = None) -> Run:
    """The trained run in folder ``path`` (``Run.load``)."""
    return Run.load(path, device)


def finetune(
    pretrained: str | Path,
    out: str | Path,
    method: str = "amortised",
    reward: str = "default",
    *,
    env: str | None = None,
    env_params: dict | None = None,
    progress: bool = False,
    **params: Any,
) -> dict:
    """Fine-tune the OC-GFN pretrained in folder ``pretrained`` (as ``gflownet finetune``) into ``out``;
    returns the summary. ``params`` are the ``--set`` names: the amortised predictor's settings
    (``gflownet.finetune.AmortisedSettings``: loss, updates, lr, k, teacher, ...) and
    ``trajectories``, ``batch_size``, ``seed``, ``device``, ``max_reward_calls`` (qualify as
    ``finetune__lr`` for the learning rate of ``continue`` / ``scratch``). ``env``, ``env_params``:
    the environment the reward is meant for, checked against the checkpoint."""
    from gflownet.oc_runs import finetune as finetune_folder
    from gflownet.oc_runs import finetune_config

    config = finetune_config(method, reward, **params)
    return finetune_folder(Path(pretrained), config, Path(out), env, env_params, progress)
