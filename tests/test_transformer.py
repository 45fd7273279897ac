"""Transformer trunks over partial sequences: masks, causality, conditioning, batching,
registration, and exact L1 after short training."""

import pytest
import torch

from gflownet.config import RunConfig
from gflownet.environments import make_env
from gflownet.errors import ConfigError
from gflownet.nets import TRUNKS, build_trunk
from gflownet.trainer import Trainer


def _states(env):
    return torch.cat([env.reset(1), env.encode(["A", "CG", "TTA", "GATTAC"])])


@pytest.mark.parametrize("arch", ["transformer", "causal_transformer"])
def test_shapes_and_batching(arch):
    env = make_env("sequence", alphabet="ACGT", max_length=6, min_length=1)
    trunk = build_trunk(arch, env, hidden=32, layers=2).eval()
    states = _states(env)
    out = trunk(env.featurize(states))
    assert out.shape == (5, 32) and torch.isfinite(out).all()
    one_by_one = torch.cat([trunk(env.featurize(s[None])) for s in states])
    assert torch.allclose(out, one_by_one, atol=1e-5)
    assert len({tuple(r) for r in out.round(decimals=4).tolist()}) == 5


@pytest.mark.parametrize("arch", ["transformer", "causal_transformer"])
def test_pads_are_masked(arch):
    """Changing the pad symbol's embedding changes nothing: no real position attends to a pad."""
    env = make_env("sequence", alphabet="ACGT", max_length=6, min_length=1)
    trunk = build_trunk(arch, env, hidden=32, layers=2).eval()
    features = env.featurize(_states(env))
    before = trunk(features)
    with torch.no_grad():
        trunk.embed.weight[:, env.pad] += 5.0
    assert torch.allclose(trunk(features)[:4], before[:4], atol=1e-5)  # the full-length row has no pad


def test_causal_reads_the_last_real_token():
    """Causal: the empty sequence reads the summary token (no token embedding matters), and a
    sequence's output does not depend on what could follow it."""
    env = make_env("sequence", alphabet="ACGT", max_length=6, min_length=1)
    trunk = build_trunk("causal_transformer", env, hidden=32, layers=1).eval()
    features = env.featurize(_states(env))
    before = trunk(features)
    with torch.no_grad():
        trunk.embed.weight[:, : env.pad] += 1.0
    after = trunk(features)
    assert torch.allclose(after[0], before[0], atol=1e-6) and not torch.allclose(after[1:], before[1:])


def test_conditioning_token():
    env = make_env("prepend_append", alphabet="AB", max_length=4)
    trunk = build_trunk("transformer", env, hidden=16, layers=1, cond_dim=3).eval()
    features = env.featurize(env.reset(2))
    out = trunk(features, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
    assert out.shape == (2, 16) and not torch.allclose(out[0], out[1])


def test_registered_and_refused_off_sequences():
    assert {"transformer", "causal_transformer"} <= set(TRUNKS)
    with pytest.raises(ConfigError, match="needs a sequence environment"):
        build_trunk("transformer", make_env("hypergrid"), hidden=16, layers=1)


def test_short_training_reaches_low_exact_l1():
    config = RunConfig(env="sequence", env_params={"alphabet": "ACG", "max_length": 4, "min_length": 2})
    config.model.hidden, config.model.arch = 64, "causal_transformer"
    config.train.batch_size, config.train.trajectories, config.train.eval_every = 16, 6400, 0
    summary = Trainer(config).run()
    assert summary["l1"] < 0.1 and summary["log_z_error"] < 0.05  # measured: 0.048 (causal, tree)
