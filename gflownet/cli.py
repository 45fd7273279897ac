"""Command line: ``gflownet train | pretrain | finetune | evaluate | sample | plot | report | demo | list``.

Bad input ends with one line on stderr (``error: ...``) and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from gflownet import __version__
from gflownet.checkpoint import write_json
from gflownet.config import ModelConfig, RunConfig, TrainConfig, load_config_file
from gflownet.errors import GFlowNetError

RUN_FILES = ("checkpoint.pt", "metrics.jsonl", "config.json", "summary.json")


def _set_option(p: argparse.ArgumentParser, help: str) -> None:
    """The repeatable ``--set KEY=VALUE`` option, gathered into ``args.assignments``."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="assignments", help=help)


def _train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="YAML or JSON file laid out like a run's config.json")
    p.add_argument("--env", help="environment name (see `gflownet list`); default hypergrid")
    p.add_argument("--objective", help="objective name (see `gflownet list`); default tb")
    _set_option(
        p,
        "set any environment / objective / model / train parameter, e.g. --set dim=4 "
        "--set lr=1e-3 (qualify as env.KEY, model.KEY, train.KEY when ambiguous); repeatable",
    )
    p.add_argument("--batch-size", type=int, help="trajectories per step (train.batch_size)")
    p.add_argument("--trajectories", type=int, help="total trajectories (train.trajectories)")
    p.add_argument("--seed", type=int, help="random seed (train.seed)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (train.device)")
    p.add_argument(
        "--max-steps",
        type=int,
        dest="max_moves",
        metavar="K",
        help="cut rollouts after K moves: train on incomplete trajectories (train.max_moves)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--logger",
        default="jsonl",
        metavar="NAMES",
        help="where metrics go, comma-separated: jsonl (metrics.jsonl, always written), tensorboard "
        "(RUN/tensorboard), wandb (offline run in RUN/wandb); default jsonl",
    )


def build_config(args) -> RunConfig:
    config = load_config_file(args.config) if args.config else RunConfig()
    if args.env:
        config.env, config.env_params = args.env, {} if args.env != config.env else config.env_params
    if args.objective:
        config.objective = args.objective
    config.apply(args.assignments)
    for name in ("batch_size", "trajectories", "seed", "device", "max_moves"):
        if getattr(args, name) is not None:
            setattr(config.train, name, getattr(args, name))
    return config


def train(
    config: RunConfig,
    out: Path,
    overwrite: bool = False,
    progress: bool = True,
    world=None,
    loggers: str | Sequence[str] = "jsonl",
) -> dict:
    """Train (or resume) the run in ``out``; returns the summary. ``world``: a
    ``gflownet.distributed.DataParallel`` (rank 0 alone writes), or None. ``loggers``:
    the metric sinks (``gflownet.tracking``), e.g. ``"jsonl,tensorboard"``."""
    from gflownet.trainer import Trainer

    trainer = Trainer(config, out, progress=progress, world=world)  # validates everything before touching the disk
    return run_in_folder(trainer, out, overwrite, world, loggers)


def run_in_folder(
    trainer,
    out: Path,
    overwrite: bool = False,
    world=None,
    loggers: str | Sequence[str] = "jsonl",
    files=RUN_FILES,
    extra_json=None,
) -> dict:
    """Run a validated trainer in ``out``: clear its ``files`` (``overwrite``) or resume, write
    ``config.json`` (and ``extra_json``: file name -> data), train; returns the summary."""
    from gflownet.tracking import open_loggers, parse_loggers

    parse_loggers(loggers)
    if not trainer.writes:  # another rank of a data-parallel run: rank 0 settles the folder
        world.barrier()
        trainer.resume()
        return trainer.run()
    with open_loggers(loggers, out, trainer.config) as trainer.loggers:  # a logger's missing package loses nothing
        if overwrite:
            for name in files:
                (out / name).unlink(missing_ok=True)
        if world:
            world.barrier()  # the run folder is settled before any rank reads it
        if trainer.resume():
            print(f"resuming {out} at step {trainer.step_count} of {trainer.total_steps}", file=sys.stderr)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", trainer.config.to_dict())
        for name, data in (extra_json or {}).items():
            write_json(out / name, data)
        return trainer.run()


def cmd_train(args) -> None:
    out = Path(args.out)
    config = build_config(args)
    world = None
    if args.distributed:
        from gflownet.distributed import DataParallel

        world = DataParallel.from_environment(config.train.device)
        config.train.device = world.device(config.train.device)
    try:
        summary = train(config, out, args.overwrite, progress=not args.no_progress, world=world, loggers=args.logger)
    finally:
        if world:
            world.close()
    if world is None or world.is_main:
        print(_table(summary))
        print(f"run written to {out}/ (checkpoint.pt, metrics.jsonl, summary.json)")


def _is_oc_run(run: str) -> bool:
    """A pretrained or fine-tuned OC-GFN (gflownet/oc_runs.py) rather than a plain run folder."""
    from gflownet import checkpoint

    return "kind" in checkpoint.load(Path(run) / "checkpoint.pt")


def cmd_evaluate(args) -> None:
    from gflownet.oc_runs import load_sampler
    from gflownet.run import Run

    if _is_oc_run(args.run):
        result = load_sampler(args.run, args.device).evaluate(args.samples, args.seed)
    else:
        result = Run.load(args.run, args.device).evaluate(args.samples, args.seed)
    print(json.dumps(result, indent=2) if args.json else _table(result))


def cmd_sample(args) -> None:
    from gflownet.oc_runs import load_sampler
    from gflownet.run import Run

    if _is_oc_run(args.run):
        if args.temperature != 1.0:
            raise GFlowNetError("--temperature is not available for OC-GFN runs")
        path = load_sampler(args.run, args.device).write_csv(args.out, args.n, args.seed)
        print(f"{args.n} samples written to {path}")
        return
    run = Run.load(args.run, args.device, args.reward_workers)
    if hasattr(run.env, "to_mols"):  # molecules: screening output (gflownet/screening.py)
        from gflownet.screening import screen_run

        stats = screen_run(
            run,
            args.n,
            args.out,
            args.sdf,
            args.unique,
            args.filter,
            args.diverse_top,
            args.max_similarity,
            args.mode_threshold,
            args.temperature,
            args.seed,
            args.beta,
        )
        print(_table(stats))
        print(f"{stats['rows_written']} molecules written to {args.out}" + (f" and {args.sdf}" if args.sdf else ""))
        return
    path = run.write_csv(args.out, args.n, args.temperature, args.seed)
    print(f"{args.n} samples written to {path}")


def cmd_pretrain(args) -> None:
    from gflownet.oc_runs import pretrain
    from gflownet.pretrain import split_assignments

    oc, args.assignments = split_assignments(args.assignments)
    if args.objective not in (None, "oc_db"):
        raise GFlowNetError(f"pretraining trains the objective oc_db, not {args.objective!r}")
    args.objective = "oc_db"
    out = Path(args.out)
    summary = pretrain(build_config(args), oc, out, args.overwrite, progress=not args.no_progress)
    print(_table(summary))
    print(f"pretrained OC-GFN written to {out}/ (checkpoint.pt, metrics.jsonl, summary.json)")


def cmd_finetune(args) -> None:
    from gflownet.config import RunConfig, _parse_value
    from gflownet.environments import env_parameters
    from gflownet.errors import ConfigError
    from gflownet.oc_runs import finetune, finetune_config

    env_names = set(env_parameters(args.env)) if args.env else set()
    env_items, params = [], {}
    for item in args.assignments:  # with --env, environment parameters; the rest configure the fine-tuning
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        if key.strip().removeprefix("env.") in env_names:
            env_items.append(item)
        else:
            params[key.strip()] = _parse_value(raw)
    ft = finetune_config(args.method, args.reward, **params)
    for name in ("trajectories", "batch_size", "seed", "device", "max_reward_calls"):
        if getattr(args, name) is not None:
            setattr(ft, name, getattr(args, name))
    env_params = RunConfig(env=args.env).apply(env_items).env_params if args.env else {}
    out = Path(args.out)
    summary = finetune(Path(args.pretrained), ft, out, args.env, env_params, progress=not args.no_progress)
    print(_table(summary))
    print(
        f"fine-tuned sampler written to {out}/ (checkpoint.pt, summary.json); sample it with "
        f"`gflownet sample {out} --n N --out FILE`"
    )


def cmd_plot(args) -> None:
    from gflownet.run import Run

    written = Run.load(args.run).plot(args.out)
    print("plots written:", ", ".join(map(str, written)))


def cmd_report(args) -> None:
    from gflownet.run import Run

    print(f"report written to {Run.load(args.run).report(args.out, args.samples, args.top_k, args.seed)}")


def cmd_demo(args) -> None:
    from gflownet import plots
    from gflownet.run import Run

    out = Path(args.out)
    config = RunConfig(env="hypergrid", env_params={"dim": 2, "side": 32}, objective="tb")
    config.train.batch_size, config.train.trajectories = 64, args.trajectories
    config.train.eval_every, config.train.device = max(args.trajectories // 20, 64), args.device
    config.train.log_every = 25
    print(f"demo: TB on a 2-D hypergrid of side 32 ({args.trajectories} trajectories) -> {out}/", file=sys.stderr)
    start = time.perf_counter()
    train(config, out, overwrite=True, progress=not args.no_progress)
    run = Run.load(out, args.device)
    result = run.evaluate(10_000)
    write_json(out / "evaluation.json", result)
    samples = run.write_csv(out / "samples.csv", 10_000)
    heat = plots.grid_heatmap(run.env, run.policy, out / "heatmap.png")
    curve = plots.training_curves(out / "metrics.jsonl", out / "training_curve.png")
    print(_table(result))
    print(
        f"done in {time.perf_counter() - start:.0f} s. Wrote:\n  {heat}  (target vs learned distribution)\n"
        f"  {curve}  (loss and exact L1)\n  {samples}  (10,000 samples)\n"
        f"  {out / 'evaluation.json'}, {out / 'metrics.jsonl'}, {out / 'checkpoint.pt'}"
    )


def cmd_list(args) -> None:
    from gflownet.environments import ENVIRONMENTS, env_parameters
    from gflownet.objectives import OBJECTIVES

    print("environments:")
    for name, cls in ENVIRONMENTS.items():
        print(f"  {name:10s} parameters: {', '.join(env_parameters(name))}   {cls.__doc__.splitlines()[0]}")
    print("objectives:")
    for name, o in OBJECTIVES.items():
        params = f" parameters: {', '.join(f'{k}={v}' for k, v in o.defaults.items())}" if o.defaults else ""
        print(f"  {name:10s} {o.summary}{params}")
    from gflownet.finetune import AmortisedSettings

    for title, cls in (
        ("model", ModelConfig),
        ("train", TrainConfig),
        ("finetune --method amortised", AmortisedSettings),
    ):
        print(f"{title} parameters (--set KEY=VALUE):")
        for f in dataclasses.fields(cls):
            print(f"  {f.name:16s} {f.default!r:10} {f.metadata['help']}")


def _table(result: dict) -> str:
    width = max(map(len, result), default=0)
    fmt = lambda v: f"{v:.6g}" if isinstance(v, float) else str(v)  # noqa: E731
    return "\n".join(f"{k:<{width}}  {fmt(v)}" for k, v in result.items())


def _run_command(sub, name: str, help: str, func) -> argparse.ArgumentParser:
    """A subcommand that reads a trained run and draws samples from it."""
    p = sub.add_parser(name, help=help)
    p.add_argument("run", help="run folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples")
    p.add_argument("--device", help="device to run the policy on (default: cpu)")
    p.set_defaults(func=func)
    return p


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="gflownet", description="Train, evaluate and sample GFlowNets.")
    top.add_argument("--version", action="version", version=f"gflownet {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a GFlowNet (resumes the run in --out if there is one)")
    _train_options(p)
    p.add_argument("--out", required=True, help="run folder (config, metrics, checkpoint, summary)")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if --out holds a run")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the processes torchrun starts (train.batch_size is split among them)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("pretrain", help="reward-free outcome-conditioned pretraining (OC-GFN)")
    _train_options(p)
    p.add_argument("--out", required=True, help="run folder (config, metrics, checkpoint, summary)")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if --out holds a run")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("finetune", help="adapt a pretrained OC-GFN to a downstream reward")
    p.add_argument("pretrained", help="folder written by `gflownet pretrain`")
    p.add_argument(
        "--reward",
        default="default",
        help="'default' (the environment's own reward) or python:module:function of the objects",
    )
    p.add_argument(
        "--method",
        default="amortised",
        help="amortised (predictor N, Q), exact (marginalisation over enumerable outcomes), "
        "exact_visits (the same with F(s|y) read off P_F(.|y)), continue (plain GFlowNet "
        "from the pretrained trunk) or scratch",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--env", help="the environment the reward is meant for (checked against the checkpoint)")
    _set_option(
        p,
        "a setting of --method amortised (loss, updates, lr, k, q_epsilon, teacher, replay, ...: "
        "`gflownet list` shows them all with their defaults), or with --env an environment parameter "
        "(checked against the checkpoint); repeatable",
    )
    p.add_argument(
        "--trajectories",
        type=int,
        help="fine-tuning trajectories (default 2000 for amortised, 16000 for continue / scratch)",
    )
    p.add_argument(
        "--max-reward-calls",
        type=int,
        metavar="N",
        help="evaluate R' on at most N distinct objects (amortised: outcomes, cached; continue / scratch: "
        "samples, training stops; exact: refused if there are more outcomes)",
    )
    p.add_argument("--batch-size", type=int, help="trajectories per step (default 16)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_finetune)

    p = _run_command(sub, "evaluate", "exact and sampled metrics of a trained run", cmd_evaluate)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--samples", type=int, default=10_000, help="samples for the sampled metrics (0: none)")

    p = _run_command(sub, "sample", "write samples of a trained run to CSV", cmd_sample)
    p.add_argument("--n", type=int, required=True, help="number of samples")
    p.add_argument("--out", required=True, help="CSV file: one column per coordinate, then log_reward")
    p.add_argument("--temperature", type=float, default=1.0, help="sample softmax(logits / temperature)")
    screening = p.add_argument_group("molecule screening (molecule environments)")
    screening.add_argument("--sdf", help="also write the molecules to this SDF file")
    screening.add_argument("--unique", action="store_true", help="one row per canonical SMILES (with its count)")
    screening.add_argument("--filter", default="", help='property filters, e.g. "qed>0.5,sa<4,mw<=500"')
    screening.add_argument(
        "--diverse-top",
        type=int,
        default=0,
        metavar="K",
        help="keep K high-reward molecules, pairwise Tanimoto <= --max-similarity",
    )
    screening.add_argument("--max-similarity", type=float, default=0.4, help="for --diverse-top (default 0.4)")
    screening.add_argument(
        "--mode-threshold",
        type=float,
        help="reward above which a molecule may be a mode (default: the 90th percentile)",
    )
    screening.add_argument(
        "--beta", type=float, help="temperature-conditioned runs: the reward exponent to sample at (default: beta_max)"
    )
    screening.add_argument(
        "--reward-workers",
        type=int,
        metavar="N",
        help="score the rewards in N RDKit worker processes (default: the run's setting)",
    )

    p = sub.add_parser("plot", help="training curves (and heat map for hypergrids) of a run")
    p.add_argument("run", help="run folder")
    p.add_argument("--out", help="folder for the PNGs (default: the run folder)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("demo", help="train a 2-D hypergrid on CPU in about a minute and draw it")
    p.add_argument("--out", default="gflownet-demo", help="output folder (default: gflownet-demo)")
    p.add_argument("--trajectories", type=int, default=64_000, help="trajectories to train on")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("report", help="one self-contained HTML page about a run (curves, metrics, top-k)")
    p.add_argument("run", help="run folder")
    p.add_argument("--out", help="HTML file (default: RUN/report.html)")
    p.add_argument("--samples", type=int, default=10_000, help="samples drawn for the page")
    p.add_argument("--top-k", type=int, default=20, help="rows of the table of best distinct samples")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("list", help="environments, objectives and every parameter --set accepts")
    p.set_defaults(func=cmd_list)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except GFlowNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is intact; run the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
