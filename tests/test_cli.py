"""The command line: the issue's exact commands, and one clear error for each bad input."""

import csv
import json

import pytest
import torch

from gflownet.cli import main

SMALL = ["--set", "dim=2", "--set", "side=4", "--batch-size", "8", "--trajectories", "400", "--no-progress"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *words):
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_train_evaluate_sample(tmp_path, capsys):
    run = tmp_path / "hg"
    code, out, _ = run_cli(
        capsys,
        "train",
        "--env",
        "hypergrid",
        "--objective",
        "tb",
        *SMALL,
        "--seed",
        "0",
        "--set",
        "r0=0.01",
        "--set",
        "hidden=32",
        "--set",
        "layers=2",
        "--set",
        "lr=1e-3",
        "--set",
        "lr_logz=0.1",
        "--out",
        str(run),
    )
    assert code == 0 and "l1" in out
    config = json.loads((run / "config.json").read_text())
    assert config["env_params"] == {"dim": 2, "side": 4, "r0": 0.01}
    assert config["model"]["hidden"] == 32 and config["train"]["lr_logz"] == 0.1
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["kind"] == "eval" and records[-1]["trajectories"] == 400

    code, out, _ = run_cli(capsys, "evaluate", str(run), "--json", "--samples", "500")
    result = json.loads(out)
    assert code == 0 and {"l1", "kl", "jsd", "log_z_error"} <= set(result)
    assert 0 <= result["l1"] <= 2 and result["n_samples"] == 500

    code, _, _ = run_cli(capsys, "sample", str(run), "--n", "300", "--out", str(run / "samples.csv"))
    rows = list(csv.reader(open(run / "samples.csv")))
    assert code == 0 and rows[0] == ["x0", "x1", "log_reward"] and len(rows) == 301
    assert all(0 <= int(v) < 4 for row in rows[1:] for v in row[:2])
    r = torch.tensor([float(row[2]) for row in rows[1:]])
    assert torch.isclose(r.exp(), torch.tensor(0.01), rtol=1e-4).any()


def test_config_file_and_plot(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "env: hypergrid\nenv_params: {dim: 2, side: 3}\nobjective: db\n"
        "model: {hidden: 16}\ntrain: {batch_size: 4, trajectories: 80, log_every: 5}\n"
    )
    code, _, _ = run_cli(capsys, "train", "--config", str(cfg), "--no-progress", "--out", str(tmp_path / "r"))
    assert code == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["objective"] == "db"
    code, out, _ = run_cli(capsys, "plot", str(tmp_path / "r"))
    assert code == 0 and (tmp_path / "r" / "heatmap.png").stat().st_size > 1000
    assert (tmp_path / "r" / "training_curve.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--env", "hypergird"], ["'hypergird'", "hypergrid"]),
        (["--objective", "tbb"], ["'tbb'", "tb"]),
        (["--set", "dim=0"], ["dim", ">= 1", "0"]),
        (["--set", "side=0"], ["side", ">= 1"]),
        (["--set", "dim=abc"], ["dim", "'abc'"]),
        (["--set", "dimm=3"], ["'dimm'", "dim"]),
        (["--set", "lr"], ["key=value"]),
        (["--set", "reward=tests.user_rewards:nan_at_origin"], ["nan", "[0, 0]"]),
        (["--set", "reward=tests.user_rewards:negative"], ["-1.0", ">= 0"]),
        (["--set", "reward=tests.user_rewards:infinite"], ["inf"]),
        (["--set", "reward=tests.user_rewards:missing"], ["missing"]),
        (["--set", "reward=no_such_module:f"], ["no_such_module"]),
        (["--device", "tpu"], ["tpu"]),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path, capsys, argv, words):
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", *argv, "--no-progress", "--trajectories", "16", "--out", str(out))
    assert_one_line_error(code, err, *words)
    assert not out.exists()


def test_zero_reward_is_floored_not_an_error(tmp_path, capsys):
    code, _, _ = run_cli(
        capsys, "train", *SMALL, "--set", "reward=tests.user_rewards:zero_far", "--out", str(tmp_path / "r")
    )
    assert code == 0


def test_checkpoint_of_another_config_is_refused(tmp_path, capsys):
    run = tmp_path / "r"
    assert run_cli(capsys, "train", *SMALL, "--out", str(run))[0] == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    code, _, err = run_cli(capsys, "train", *SMALL, "--set", "side=5", "--out", str(run))
    assert_one_line_error(code, err, "another configuration", "side", "4", "5")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing touched


def test_truncated_checkpoint_is_refused(tmp_path, capsys):
    run = tmp_path / "r"
    assert run_cli(capsys, "train", *SMALL, "--out", str(run))[0] == 0
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    for argv in (
        ["evaluate", str(run)],
        ["sample", str(run), "--n", "5", "--out", str(tmp_path / "s.csv")],
        ["train", *SMALL, "--out", str(run)],
    ):
        code, _, err = run_cli(capsys, *argv)
        assert_one_line_error(code, err, "checkpoint.pt", "truncated or corrupt")
    assert not (tmp_path / "s.csv").exists()
    ckpt.write_bytes(b"not a checkpoint at all")
    assert_one_line_error(*run_cli(capsys, "evaluate", str(run))[::2], "truncated or corrupt")


def test_missing_run_and_bad_sample_count(tmp_path, capsys):
    assert_one_line_error(*run_cli(capsys, "evaluate", str(tmp_path / "nothing"))[::2], "no checkpoint")
    run = tmp_path / "r"
    assert run_cli(capsys, "train", *SMALL, "--out", str(run))[0] == 0
    code, _, err = run_cli(capsys, "sample", str(run), "--n", "0", "--out", str(tmp_path / "s.csv"))
    assert_one_line_error(code, err, ">= 1")
    assert not (tmp_path / "s.csv").exists()


def test_version_and_list(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and "gflownet" in capsys.readouterr().out
    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and "hypergrid" in out and "subtb" in out and "lr_logz" in out
