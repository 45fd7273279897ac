import subprocess
import sys

import pytest
import torch

import gflownet.optim
from gflownet.optim import Adam


def _train(make_optimizer, steps=5):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    log_z = torch.nn.Parameter(torch.zeros(1))
    opt = make_optimizer([{"params": net.parameters(), "lr": 1e-3}, {"params": [log_z], "lr": 0.1}])
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        (net(torch.randn(5, 4)).square().sum() + (log_z - 3).square().sum()).backward()
        opt.step()
    return [p.detach().clone() for p in [*net.parameters(), log_z]], opt


@pytest.mark.parametrize("dynamo_loaded", [False, True])
@pytest.mark.parametrize("fused", [True, False])
def test_adam_equals_torch_adam(fused, dynamo_loaded, monkeypatch):
    monkeypatch.setattr(gflownet.optim, "_dynamo_loaded", lambda: dynamo_loaded)
    ours, opt = _train(lambda groups: Adam(groups, fused=fused))
    theirs, ref = _train(lambda groups: torch.optim.Adam(groups, fused=fused))
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    state = opt.state_dict()
    assert str(state) == str(ref.state_dict())
    opt.load_state_dict(state)  # and back: the same state


def test_adam_leaves_torch_dynamo_unloaded():
    script = (
        "import sys, torch\n"
        "from gflownet.optim import Adam\n"
        "p = torch.nn.Parameter(torch.ones(3))\n"
        "opt = Adam([p], fused=True)\n"
        "p.sum().backward(); opt.step(); opt.zero_grad(); opt.load_state_dict(opt.state_dict())\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
