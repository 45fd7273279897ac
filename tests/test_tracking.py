"""Loggers: TensorBoard events and an offline W&B run hold exactly the metrics.jsonl values."""

import json
import sys

import pytest

from gflownet.cli import main
from gflownet.errors import ConfigError
from gflownet.tracking import parse_loggers

TRAIN = [
    "train",
    "--set",
    "dim=2",
    "--set",
    "side=4",
    "--batch-size",
    "8",
    "--trajectories",
    "160",
    "--set",
    "hidden=16",
    "--set",
    "log_every=5",
    "--set",
    "eval_every=40",
    "--no-progress",
]


def records(run, kind):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def test_tensorboard_events_hold_the_metrics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "tb"
    assert main([*TRAIN, "--logger", "jsonl,tensorboard", "--out", str(run)]) == 0
    events = EventAccumulator(str(run / "tensorboard")).Reload()
    loss = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert loss == [(r["trajectories"], pytest.approx(r["loss"], rel=1e-6)) for r in records(run, "train")]
    l1 = [(e.step, e.value) for e in events.Scalars("eval/l1")]
    assert l1 == [(r["trajectories"], pytest.approx(r["l1"], rel=1e-6)) for r in records(run, "eval")]
    assert len(l1) == 4


def test_wandb_offline_run(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline is the default
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "wb"
    assert main([*TRAIN, "--logger", "wandb", "--out", str(run)]) == 0
    (offline,) = (run / "wandb").glob("offline-run-*")
    (log,) = offline.glob("run-*.wandb")  # protobuf records; metric values are stored as JSON text
    data = log.read_bytes()
    last_train, last_eval = records(run, "train")[-1], records(run, "eval")[-1]
    for text in (
        "train/loss",
        "eval/l1",
        json.dumps(last_train["loss"]),
        json.dumps(last_eval["l1"]),
        json.dumps(json.loads((run / "config.json").read_text())["model"], separators=(",", ":")),
    ):
        assert text.encode() in data, text


@pytest.mark.parametrize("logger, module", [("wandb", "wandb"), ("tensorboard", "torch.utils.tensorboard")])
def test_missing_package_names_the_extra(tmp_path, monkeypatch, capsys, logger, module):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"an earlier run")
    assert main([*TRAIN, "--logger", logger, "--overwrite", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --logger {logger} needs the") and "pip install 'gflownet[tracking]'" in err
    assert (run / "checkpoint.pt").read_bytes() == b"an earlier run"  # refused before anything was touched


def test_logger_names():
    assert parse_loggers("jsonl, tensorboard,tensorboard") == ["tensorboard"]
    assert parse_loggers(["wandb"]) == ["wandb"]
    with pytest.raises(ConfigError, match="unknown logger 'tensorbord'; did you mean tensorboard"):
        parse_loggers("tensorbord")
