"""`gflownet demo`: writes what it promises, and (slow) learns the four corner modes."""

import json

import pytest
import torch

from gflownet.cli import main
from gflownet.metrics import policy_log_probs, target_distribution, terminal_distribution
from gflownet.run import Run


def test_demo_writes_its_outputs(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--trajectories", "1280", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for name in ("heatmap.png", "training_curve.png", "samples.csv", "evaluation.json"):
        assert (out / name).stat().st_size > 0 and str(out / name) in printed
    assert (out / "heatmap.png").read_bytes()[:4] == b"\x89PNG"
    assert {"l1", "modes_found"} <= set(json.loads((out / "evaluation.json").read_text()))
    assert len((out / "samples.csv").read_text().splitlines()) == 10_001


@pytest.mark.slow
def test_demo_learns_the_four_corners(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    run = Run.load(out)
    model = terminal_distribution(run.env, policy_log_probs(run.env, run.policy)[0]).view(32, 32)
    target = target_distribution(run.env)[0].view(32, 32)
    corners = [
        (slice(0, 8), slice(0, 8)),
        (slice(0, 8), slice(24, 32)),
        (slice(24, 32), slice(0, 8)),
        (slice(24, 32), slice(24, 32)),
    ]
    for rows, cols in corners:  # each corner holds its share of the mass, within 20 %
        assert float(model[rows, cols].sum()) == pytest.approx(float(target[rows, cols].sum()), rel=0.2)
    assert json.loads((out / "evaluation.json").read_text())["l1"] < 0.2
    assert torch.isclose(model.sum(), torch.tensor(1.0, dtype=model.dtype))
