"""Fragment environment: masks against a hand count, step/backward inverses, the
molecule of a state, 10,000 sanitising samples, BRICS vocabularies."""

import pytest
import torch
from rdkit import Chem

from env_checks import check_steps_invert
from gflownet.environments.fragments import FragmentEnv
from gflownet.environments.vocabulary import Vocabulary
from gflownet.errors import ConfigError


@pytest.fixture(scope="module")
def env():
    return FragmentEnv(max_blocks=4)


def random_states(env, n, seed=0):
    """Terminal states of uniformly random rollouts (every legal action equally likely)."""
    g = torch.Generator().manual_seed(seed)
    s = env.reset(n)
    for _ in range(env.max_steps):
        mask = env.forward_mask(s)
        a = torch.where(mask, torch.rand(mask.shape, generator=g), -1.0).argmax(-1)
        s = env.step(s, a)
    return s


def test_initial_mask_offers_every_usable_block(env):
    mask = env.forward_mask(env.reset(1))[0]
    assert mask[: env.n_attach].sum() == 0 and not mask[env.exit_action]
    assert mask[env.n_attach : env.exit_action].tolist() == env.vocab.usable
    assert sum(env.vocab.usable) == 102  # O=PO, O=S=O and O=P[O-] lack a hydrogen at their stem


def test_mask_counts_free_stems_by_hand(env):
    V, S = env.n_blocks, env.n_stems_max
    s = env.reset(1)
    s = env.step(s, torch.tensor([env.n_attach + 0]))  # benzene first: 6 stems
    assert env.free_stems(s)[0, 0].sum() == 6
    s = env.step(s, torch.tensor([(0 * S + 1) * V + 4]))  # piperidine (stems [0, 3]) on benzene stem 1
    free = env.free_stems(s)[0]
    assert free[0].tolist() == [True, False, True, True, True, True]
    assert free[1].tolist() == [False, True, False, False, False, False]  # its stem 0 took the bond
    mask = env.forward_mask(s)[0]
    assert int(mask[: env.n_attach].sum()) == 6 * sum(env.vocab.usable) and mask[env.exit_action]
    assert Chem.MolToSmiles(env.to_mols(s)[0]) == Chem.CanonSmiles("c1ccc(C2CCNCC2)cc1")


def test_full_state_allows_only_exit(env):
    s = random_states(env, 200)
    full = env.n_placed(s) == env.max_blocks
    assert full.any()
    mask = env.forward_mask(s[full])
    assert mask[:, env.exit_action].all() and mask.sum(-1).eq(1).all()


def test_steps_invert(env):
    states = torch.cat([env.reset(1), *(random_states(env, 20, seed) for seed in range(3))])
    partial = states.clone()
    partial[:, 2:] = -1  # also states with one or two blocks
    triples = check_steps_invert(env, torch.cat([states, partial]).unique(dim=0))
    assert len(triples) > 100


@pytest.mark.parametrize("n", [1000, pytest.param(10_000, marks=pytest.mark.slow)])
def test_samples_sanitize(n):
    env = FragmentEnv()
    s = torch.cat([random_states(env, n // 5, seed) for seed in range(5)])
    mols = env.to_mols(s)
    assert len(mols) == n and all(m is not None for m in mols)
    for m in mols:  # round trip: the SMILES parses back
        assert Chem.MolFromSmiles(Chem.MolToSmiles(m)) is not None
    assert env.n_placed(s).max() == 9


def test_brics_vocabulary(tmp_path):
    smi = tmp_path / "mols.smi"
    smi.write_text("CCOC(=O)c1ccccc1\nCCOC(=O)c1ccncc1\nc1ccccc1OCC\n")
    vocab = Vocabulary.from_brics(smi, min_count=2)
    assert len(vocab) >= 1 and all(vocab.usable)
    by_smiles = dict(zip(vocab.smiles, vocab.stems))
    assert "CC" in by_smiles or "CCO" in by_smiles  # the ethyl / ethoxy fragment occurs 3 times
    env = FragmentEnv(max_blocks=3, vocabulary=str(_save(vocab, tmp_path)))
    assert all(m is not None for m in env.to_mols(random_states(env, 300)))


def _save(vocab, tmp_path):
    path = tmp_path / "vocab.json"
    vocab.to_json(path)
    return path


def test_bad_vocabulary_input_names_the_culprit(tmp_path):
    smi = tmp_path / "mols.smi"
    smi.write_text("CCO\nC1CC(\n")
    with pytest.raises(ConfigError, match=r"line 2: invalid SMILES 'C1CC\('"):
        Vocabulary.from_brics(smi)
    with pytest.raises(ConfigError, match="block 1 has an invalid SMILES"):
        Vocabulary(["CC", "C1C"], [[0], [0]])
    with pytest.raises(ConfigError, match="max_blocks"):
        FragmentEnv(max_blocks=0)
