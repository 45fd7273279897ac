"""Atom environment: valence masks by hand, inverses of every move, 10,000
sanitising samples, and TB through the GNN on the exact distribution of a tiny space."""

import pytest
import torch
from rdkit import Chem

from env_checks import check_steps_invert
from mol_checks import exact_terminal_distribution, small_config
from gflownet.environments.atoms import AtomEnv
from gflownet.errors import ConfigError
from gflownet.trainer import Trainer


def random_states(env, n, seed=0, stop=0.1, visited=None):
    """Random rollouts: each legal action equally likely, the exit with probability ``stop``;
    ``visited`` (a list) collects every state on the way."""
    g = torch.Generator().manual_seed(seed)
    s = env.reset(n)
    for _ in range(env.max_steps):
        if visited is not None:
            visited.append(s)
        mask = env.forward_mask(s)
        weights = torch.where(mask, torch.rand(mask.shape, generator=g), -1.0)
        a = weights[:, :-1].argmax(-1)
        exit_ = ~mask[:, :-1].any(-1) | (mask[:, -1] & (torch.rand(n, generator=g) < stop))
        s = env.step(s, torch.where(exit_, env.exit_action, a))
    return s


def test_valence_masks_by_hand():
    env = AtomEnv(elements="C,O,F", max_atoms=3)
    E, T, N = 3, 3, 3
    s = env.step(env.reset(1), torch.tensor([env.n_add_atom + env.n_add_bond + 1]))  # O
    mask = env.forward_mask(s)[0]
    add_atom = mask[: env.n_add_atom].view(N, E, T)
    # on O (valence 2): C by single or double, O by single or double, F by single only
    assert add_atom[0].tolist() == [[True, True, False], [True, True, False], [True, False, False]]
    assert not add_atom[1:].any() and not mask[env.n_add_atom : env.exit_action].any() and mask[-1]
    s = env.step(s, torch.tensor([(0 * E + 0) * T + 1]))  # O=C
    assert env.free_valence(s)[0].tolist() == [0, 2, 0]
    assert Chem.MolToSmiles(env.to_mols(s)[0]) == "C=O"
    mask = env.forward_mask(s)[0]
    assert not mask[: env.n_add_atom].view(N, E, T)[0].any()  # O is full
    assert mask[: env.n_add_atom].view(N, E, T)[1, 0].tolist() == [True, True, False]


def test_steps_invert():
    env = AtomEnv(elements="C,N,O", max_atoms=5)
    visited = []
    for seed in range(3):
        random_states(env, 30, seed, 0.0, visited)
    triples = check_steps_invert(env, torch.cat(visited).unique(dim=0))
    assert sum(len(t[0]) for t in triples) > 200


@pytest.mark.parametrize("n", [1000, pytest.param(10_000, marks=pytest.mark.slow)])
def test_samples_sanitize(n):
    env = AtomEnv(max_atoms=12)
    s = torch.cat([random_states(env, n // 4, seed, stop=0.02) for seed in range(4)])
    mols = env.to_mols(s)
    assert all(m is not None and Chem.MolFromSmiles(Chem.MolToSmiles(m)) is not None for m in mols)
    assert env.n_atoms(s).max() == 12 and len(mols) == n
    assert any(Chem.MolFromSmiles(Chem.MolToSmiles(m)).GetRingInfo().NumRings() for m in mols)


def test_unknown_element_is_named():
    with pytest.raises(ConfigError, match="unknown element 'Xx'"):
        AtomEnv(elements="C,Xx")


def test_tb_with_uniform_pb_matches_the_exact_distribution_on_a_dag():
    trainer = Trainer(small_config("atoms", {"elements": "C,O", "max_atoms": 3, "reward": "qed", "beta": 4.0}))
    env = trainer.env
    terminals, p0 = exact_terminal_distribution(env, trainer.policy.forward_logits)
    smiles = [r[0] for r in env.object_rows(terminals)]
    assert len(set(smiles)) < len(smiles)  # atoms in another slot order: the same molecule, another state
    target = env.log_reward(terminals).softmax(0)
    assert torch.allclose(p0.sum(), torch.tensor(1.0), atol=1e-5) and (p0 - target).abs().sum() > 0.3
    trainer.run()
    _, p = exact_terminal_distribution(env, trainer.policy.forward_logits)
    assert (p - target).abs().sum() < 0.15
