"""The OC-GFN command line: pretrain -> finetune (every method) -> sample on a tiny grid, the
checkpoint's device mapping, and one clear error for each bad input."""

import csv
import dataclasses
import json

import pytest
import torch

import gflownet.api

from gflownet import checkpoint
from gflownet.cli import main
from gflownet.errors import ConfigError
from gflownet.finetune import Amortised, AmortisedSettings
from gflownet.oc_runs import FinetuneConfig, load_sampler
from gflownet.pretrain import load_pretrained
from test_cli import assert_one_line_error, run_cli

TINY = [
    "--env",
    "hypergrid",
    "--set",
    "dim=2",
    "--set",
    "side=3",
    "--set",
    "hidden=16",
    "--batch-size",
    "8",
    "--trajectories",
    "80",
    "--no-progress",
]


@pytest.fixture(scope="module")
def pre(tmp_path_factory):
    out = tmp_path_factory.mktemp("oc") / "pre"
    assert main(["pretrain", *TINY, "--set", "hindsight_batch=8", "--set", "oc.log_floor=-5", "--out", str(out)]) == 0
    return out


def test_pretrain_writes_a_run_with_success_rates(pre):
    assert json.loads((pre / "oc.json").read_text())["log_floor"] == -5
    assert json.loads((pre / "config.json").read_text())["objective"] == "oc_db"
    evals = [
        json.loads(line)
        for line in (pre / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["kind"] == "eval"
    ]
    assert evals and 0 <= evals[-1]["success_rate"] <= 1 and "train_success_rate" in evals[-1]


def finetune_cli(capsys, pre, out, *extra):
    """``gflownet finetune`` of ``pre`` on the corner reward, 32 trajectories: (code, stdout, stderr)."""
    argv = ["--reward", "tests.user_rewards:corner", "--trajectories", "32", "--batch-size", "8", "--no-progress"]
    return run_cli(capsys, "finetune", str(pre), *argv, *extra, "--out", str(out))


def finetune_tiny(capsys, pre, out, *extra):
    """``finetune_cli``, which must succeed; its summary.json."""
    code, _, err = finetune_cli(capsys, pre, out, *extra)
    assert code == 0, err
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("method", ["exact", "exact_visits", "amortised", "continue", "scratch"])
def test_finetune_then_sample(pre, tmp_path, capsys, method):
    ft = tmp_path / method
    code, out, err = finetune_cli(capsys, pre, ft, "--method", method)
    assert code == 0, err
    summary = json.loads((ft / "summary.json").read_text())
    assert summary["method"] == method and 0 <= summary["l1"] <= 2
    code, _, _ = run_cli(capsys, "sample", str(ft), "--n", "50", "--out", str(ft / "s.csv"))
    rows = list(csv.reader(open(ft / "s.csv")))
    assert code == 0 and rows[0] == ["x0", "x1", "log_reward"] and len(rows) == 51
    for x0, x1, log_r in rows[1:]:  # log R'(x) of the corner reward: log 10 at the origin, log 1 elsewhere
        expected = torch.tensor(10.0 if (x0, x1) == ("0", "0") else 1.0).log().item()
        assert float(log_r) == pytest.approx(expected, abs=1e-5)


def test_exact_marginal_sampler_reports_its_exact_distance(pre, tmp_path):
    ft = tmp_path / "exact"
    assert main(["finetune", str(pre), "--method", "exact", "--no-progress", "--out", str(ft)]) == 0
    summary = json.loads((ft / "summary.json").read_text())
    assert summary["reward_calls"] == 9  # R' of every outcome of the 3x3 grid, once
    sampler = load_sampler(ft)
    x, columns = sampler.sample(20_000, seed=1)
    empirical = torch.bincount(sampler.env.state_index(x), minlength=9).double() / len(x)
    from gflownet.metrics import terminal_distribution

    exact = terminal_distribution(sampler.env, sampler.policy.log_pf)
    assert (empirical - exact).abs().max() < 0.02  # the table sampler draws its own exact distribution


def test_finetune_warns_when_pretraining_has_not_converged(pre, tmp_path):
    rate = json.loads((pre / "summary.json").read_text())["success_rate"]
    assert rate < 0.9  # 80 trajectories of pretraining
    with pytest.warns(UserWarning, match=f"{rate:.0%} of tries"):
        main(["finetune", str(pre), "--method", "exact", "--no-progress", "--out", str(tmp_path / "ft")])
    assert json.loads((tmp_path / "ft" / "summary.json").read_text())["pretrained_success_rate"] == rate


def test_evaluate_oc_run_folders(pre, tmp_path, capsys):
    ft = tmp_path / "exact"
    assert main(["finetune", str(pre), "--method", "exact", "--no-progress", "--out", str(ft)]) == 0
    summary = json.loads((ft / "summary.json").read_text())
    capsys.readouterr()
    code, out, err = run_cli(capsys, "evaluate", str(ft), "--samples", "500", "--json")
    result = json.loads(out)
    assert code == 0, err
    assert result["l1"] == pytest.approx(summary["l1"]) and result["n_samples"] == 500
    assert not any(k.startswith("modes") for k in result)  # the environment's modes are not R''s
    _, columns = load_sampler(ft).sample(500, seed=0)
    assert result["mean_reward"] == pytest.approx(float(columns["log_reward"].exp().mean()))
    code, out, err = run_cli(capsys, "evaluate", str(pre), "--samples", "400", "--json")
    result = json.loads(out)
    _, columns = load_sampler(pre).sample(400, seed=0)
    assert code == 0 and result["success_rate"] == pytest.approx(float(columns["success"].float().mean()))


def test_sample_a_pretrained_model(pre, tmp_path, capsys):
    code, _, _ = run_cli(capsys, "sample", str(pre), "--n", "40", "--out", str(tmp_path / "s.csv"))
    rows = list(csv.reader(open(tmp_path / "s.csv")))
    assert code == 0 and rows[0] == ["x0", "x1", "success"] and {r[2] for r in rows[1:]} <= {"0", "1"}


def test_checkpoint_loads_on_the_device_asked_for(pre, tmp_path):
    trainer = load_pretrained(pre, "cpu")
    assert all(p.device.type == "cpu" for p in trainer.policy.parameters())
    # a checkpoint written by a CUDA run maps onto the CPU: its config names cuda, its tensors are read
    # onto the CPU and copied into a policy built on the device asked for
    state = checkpoint.load(pre / "checkpoint.pt")
    state["config"]["train"]["device"] = "cuda:0"
    moved = tmp_path / "moved"
    checkpoint.save(moved / "checkpoint.pt", {k: v for k, v in state.items() if k != "format_version"})
    on_cpu = load_pretrained(moved, "cpu")
    for a, b in zip(on_cpu.policy.parameters(), trainer.policy.parameters()):
        assert torch.equal(a, b)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            load_pretrained(moved)  # its own device, which this machine lacks: one clear error


def test_bad_inputs_give_one_clear_error(pre, tmp_path, capsys):
    ft = str(tmp_path / "ft")
    code, _, err = run_cli(capsys, "finetune", str(pre), "--env", "hypergrid", "--set", "side=5", "--out", ft)
    assert_one_line_error(code, err, "pretrained on hypergrid")
    code, _, err = run_cli(capsys, "finetune", str(pre), "--reward", "tests.user_rewards:missing", "--out", ft)
    assert_one_line_error(code, err, "no attribute")
    code, _, err = run_cli(capsys, "finetune", str(pre), "--reward", "tests.user_rewards:negative", "--out", ft)
    assert_one_line_error(code, err, "downstream reward")
    code, _, err = run_cli(capsys, "finetune", str(pre), "--method", "psychic", "--out", ft)
    assert_one_line_error(code, err, "psychic")
    code, _, err = run_cli(capsys, "finetune", str(tmp_path), "--out", ft)
    assert_one_line_error(code, err, "no checkpoint")
    assert not (tmp_path / "ft").exists()  # nothing written by a refused command
    plain = tmp_path / "plain"
    assert main(["train", *TINY, "--out", str(plain)]) == 0
    code, _, err = run_cli(capsys, "finetune", str(plain), "--out", ft)
    assert_one_line_error(code, err, "not an outcome-conditioned pretraining checkpoint")
    tf = tmp_path / "tf"
    assert (
        main(
            [
                "pretrain",
                "--env",
                "tfbind8",
                "--set",
                "hidden=8",
                "--batch-size",
                "4",
                "--trajectories",
                "4",
                "--set",
                "success_samples=4",
                "--no-progress",
                "--out",
                str(tf),
            ]
        )
        == 0
    )
    # exact: 87,381 states x 65,536 outcomes, refused, not an out-of-memory; the amortised predictor's
    # token posterior draws outcomes without listing them, each distinct one evaluated once
    code, _, err = run_cli(capsys, "finetune", str(tf), "--method", "exact", "--out", ft)
    assert_one_line_error(code, err, "outcomes")
    argv = ["finetune", str(tf), "--method", "amortised", "--trajectories", "8", "--batch-size", "4"]
    on_policy = ["--set", "updates=1", "--set", "teacher=0", "--set", "replay=0"]
    code, _, err = run_cli(capsys, *argv, *on_policy, "--no-progress", "--out", str(tmp_path / "tf_ft"))
    assert code == 0, err
    summary = json.loads((tmp_path / "tf_ft" / "summary.json").read_text())
    assert 2 <= summary["reward_calls"] <= 2 * 4 * 9 * 8  # 2 steps x 4 trajectories x 9 transitions x k = 8
    code, _, err = run_cli(capsys, *argv, "--max-reward-calls", "50", "--no-progress", "--out", str(tmp_path / "b"))
    assert code == 0, err  # Q proposes thousands of distinct 8-mers at the defaults; 50 are evaluated
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["reward_calls"] == 50
    # the terminal posterior: one call per distinct end state of N's rollouts (2 steps x 4 trajectories)
    terminal = ["--set", "posterior=terminal", "--set", "k=1", "--set", "teacher=0"]
    code, _, err = run_cli(capsys, *argv, *terminal, "--no-progress", "--out", str(tmp_path / "t"))
    assert code == 0, err
    assert 1 <= json.loads((tmp_path / "t" / "summary.json").read_text())["reward_calls"] <= 8
    code, _, err = run_cli(capsys, *argv, "--set", "posterior=terminal", "--out", str(tmp_path / "t2"))
    assert_one_line_error(code, err, "posterior='terminal'")
    code, _, err = run_cli(capsys, "pretrain", "--env", "sets", "--no-progress", "--out", str(tmp_path / "p"))
    assert_one_line_error(code, err, "declares no outcome space")
    code, _, err = run_cli(capsys, "pretrain", *TINY, "--set", "oc.floor=1", "--out", str(tmp_path / "p"))
    assert_one_line_error(code, err, "oc parameter")


def test_amortised_settings_from_the_command_line(pre, tmp_path, capsys):
    settings = ["--set", "k=2", "--set", "updates=1", "--set", "amortised.teacher=0", "--set", "lr=0.01"]
    free = finetune_tiny(capsys, pre, tmp_path / "free", *settings)
    capped = finetune_tiny(capsys, pre, tmp_path / "capped", *settings, "--max-reward-calls", "4")
    assert free["reward_calls"] > 4 and capped["reward_calls"] == 4  # the budget, not the draws, stops the calls
    expected = {**dataclasses.asdict(AmortisedSettings()), "k": 2, "updates": 1, "teacher": 0, "lr": 0.01}
    assert capped["amortised"] == expected and capped["max_reward_calls"] == 4
    assert json.loads((tmp_path / "capped" / "finetune.json").read_text())["amortised"] == expected
    sampler = load_sampler(tmp_path / "capped")  # what `gflownet sample` reads back
    assert sampler.finetune["amortised"] == expected and sampler.finetune["max_reward_calls"] == 4
    api = gflownet.api.finetune(
        pre, tmp_path / "api", reward="tests.user_rewards:corner", trajectories=32, batch_size=8,
        k=2, updates=1, amortised__teacher=0, lr=0.01, max_reward_calls=4,
    )  # fmt: skip
    assert {**api, "seconds": 0} == {**capped, "seconds": 0}  # the Python API and the CLI are one path
    # continue / scratch evaluate R' on every sample: the budget stops training after whole batches
    assert (
        finetune_tiny(capsys, pre, tmp_path / "db", "--method", "scratch", "--max-reward-calls", "20")["reward_calls"]
        == 16
    )


def test_amortised_defaults_have_one_source(pre, tmp_path, capsys):
    converged = dict(loss="importance", updates=8, lr=3e-3, k=8, teacher=16, replay=16_000, minibatch=1024)
    assert AmortisedSettings() == AmortisedSettings(**converged)  # the H=32 grid settings of the README
    assert FinetuneConfig().amortised == AmortisedSettings()
    # the amortised predictor updates several times a step: fewer trajectories by default
    assert FinetuneConfig("amortised").check().trajectories == 2_000
    assert FinetuneConfig("scratch").check().trajectories == FinetuneConfig("continue").check().trajectories == 16_000
    assert FinetuneConfig("scratch", trajectories=48).check().trajectories == 48
    pretrained = load_pretrained(pre)
    model = Amortised(pretrained.env, pretrained.policy, pretrained.env.log_reward, 16, 2)
    assert model.settings == AmortisedSettings()
    assert finetune_tiny(capsys, pre, tmp_path / "ft")["amortised"] == dataclasses.asdict(AmortisedSettings())


BAD_SETTINGS = [
    (["--set", "kk=3"], "unknown finetune parameter 'kk'; did you mean k? (known: batch_size, device, epsilon"),
    (["--set", "amortised.side=3"], "unknown finetune parameter 'amortised.side'"),
    (["--set", "k"], "--set expects key=value"),
    (["--env", "hypergrid", "--set", "tau=3"], "unknown finetune parameter 'tau'"),
    (["--set", "k=0"], "amortised k must be >= 1"),
    (["--set", "k=two"], "amortised.k must be int"),
    (["--method", "exact", "--set", "k=2"], "do not apply to --method exact"),
    (["--set", "loss=residual", "--max-reward-calls", "5"], "needs loss='importance'"),
    (["--method", "exact", "--max-reward-calls", "5"], "all 9 outcomes"),
    (["--method", "scratch", "--max-reward-calls", "5"], "less than one batch"),
]


@pytest.mark.parametrize("argv, message", BAD_SETTINGS)
def test_bad_amortised_settings_give_one_clear_error(pre, tmp_path, capsys, argv, message):
    code, _, err = run_cli(capsys, "finetune", str(pre), *argv, "--out", str(tmp_path / "ft"))
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "ft").exists()


@pytest.fixture(scope="module")
def pre_on(tmp_path_factory):
    """A tiny pretrained run per device, written on that device."""
    runs = {}

    def pretrained(device):
        if device not in runs:
            runs[device] = tmp_path_factory.mktemp(f"oc_{device}") / "pre"
            args = ["pretrain", *TINY, "--device", device, "--set", "hindsight_batch=8", "--out", str(runs[device])]
            assert main(args) == 0
        return runs[device]

    return pretrained


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("written, used", [("cpu", "cuda"), ("cuda", "cpu")])
@pytest.mark.parametrize("method", ["exact", "amortised", "continue"])
def test_pretrained_on_one_device_finetunes_and_samples_on_the_other(pre_on, tmp_path, capsys, written, used, method):
    ft = tmp_path / "ft"
    code, _, err = finetune_cli(capsys, pre_on(written), ft, "--method", method, "--device", used)
    assert code == 0, err
    assert 0 <= json.loads((ft / "summary.json").read_text())["l1"] <= 2
    code, _, err = run_cli(capsys, "sample", str(ft), "--n", "50", "--device", written, "--out", str(ft / "s.csv"))
    assert code == 0, err
    assert len(list(csv.reader(open(ft / "s.csv")))) == 51
