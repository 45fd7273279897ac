"""RNA binding: reference values (ViennaRNA 2.7.2, tests/data/rna_reference.json, a copy of
the task's reference file), targets, the conserved variant, caching and the pool, the
training transform, prefix energies, and clear errors."""

import json
import sys
from pathlib import Path

import pytest
import torch

from gflownet.environments import make_env
from gflownet.environments.rna import CONSERVED, RNABinding, duplex_energies, load_targets, revcomp
from gflownet.errors import ConfigError

REFERENCE = json.loads((Path(__file__).parent / "data" / "rna_reference.json").read_text())


def test_vendored_targets_are_the_reference_ones():
    assert load_targets() == REFERENCE["targets"]
    assert revcomp("AACGU") == "ACGUU"


@pytest.mark.parametrize("target", ["RNA1", "RNA2", "RNA3"])
def test_reference_values(target):
    import RNA

    assert tuple(int(v) for v in RNA.__version__.split(".")[:2]) >= (2, 7)  # reference: 2.7.2
    env = RNABinding(length=14, targets=target, workers=0)
    seqs = [v["seq"] for v in REFERENCE["visible"]]
    energies = duplex_energies([(REFERENCE["targets"][target], s) for s in seqs])
    assert energies == [v[target]["energy"] for v in REFERENCE["visible"]]
    f = env.fitness(env.encode(seqs))
    assert f.tolist() == pytest.approx([v[target]["f"] for v in REFERENCE["visible"]], abs=5e-7)


def test_two_targets_and_transform():
    seqs = [v["seq"] for v in REFERENCE["visible"]]
    env = make_env("rna", targets="RNA1,RNA2", beta=2.0, workers=0)
    f = env.fitness(env.encode(seqs))
    expected = [(v["RNA1"]["f"] + v["RNA2"]["f"]) / 2 for v in REFERENCE["visible"]]
    assert f.tolist() == pytest.approx(expected, abs=1e-6)
    assert env.log_reward(env.encode(seqs)).tolist() == pytest.approx(
        [2.0 * torch.tensor(e).log().item() for e in expected], abs=1e-5
    )
    assert env.is_mode(env.encode(seqs)).tolist() == [False] * 5
    assert RNABinding(mode_threshold=0.6, workers=0).is_mode(env.encode(seqs)).tolist() == [False] * 4 + [True]


def test_cache_and_pool():
    g = torch.Generator().manual_seed(0)
    env = RNABinding(workers=2)
    states = torch.randint(4, (40, 14), generator=g)
    states[20:] = states[:20]  # each sequence twice
    f = env.fitness(states)
    assert env.calls == 20 and torch.equal(f[:20], f[20:])
    env.fitness(states[:5])
    assert env.calls == 20  # never folded twice
    serial = RNABinding(workers=0)
    assert torch.equal(serial.fitness(states), f)  # the pool gives the in-process values
    env.close()


def test_prefix_energy():
    env = RNABinding(workers=0)
    full = env.encode(["GCCCCGCCGGAAUG"])
    prefix = env.backward_step(full, torch.zeros(1, dtype=torch.long))  # 13 nt
    energy = env.log_energy(torch.cat([env.reset(1), prefix, full]))
    target = REFERENCE["targets"]["RNA1"]
    norm13 = duplex_energies([(revcomp(target), target)])[0] * 13 / len(target)
    f13 = duplex_energies([(target, "GCCCCGCCGGAAU")])[0] / norm13
    assert energy.tolist() == pytest.approx(
        [0.0, -8 * torch.tensor(f13).log().item(), -env.log_reward(full).item()], abs=1e-4
    )
    assert env.has_energy


def test_conserved_region():
    env = RNABinding(length=100, conserved=True, workers=0)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(4, (2, 100), generator=g)
    x[1, 21:41] = env.encode(["GCCCGGCCCAUGUGAGCAUG" + "A" * 80])[0, :20]
    f = env.fitness(x)
    assert f[0] == 0 and f[1] > 0 and env.decode(x[1:])[0][21:41] == CONSERVED[1]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(targets="RNA9"), "unknown target 'RNA9'"),
        (dict(targets="RNA1,XX"), "unknown target 'XX'"),
        (dict(length=14, conserved=True), "length >= 41"),
        (dict(length=0), "length"),
        (dict(workers=-1), "workers"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RNABinding(**kwargs)


def test_bad_sequences():
    env = RNABinding(workers=0)
    with pytest.raises(ConfigError, match="'T' outside the alphabet ACGU"):
        env.encode(["ACGTACGTACGTAC"])
    with pytest.raises(ConfigError, match="must have 14 symbols"):
        env.encode(["ACGU"])


def test_missing_viennarna_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "RNA", None)  # import RNA now raises ImportError
    with pytest.raises(ConfigError, match=r"gflownet\[bio\]"):
        RNABinding()
