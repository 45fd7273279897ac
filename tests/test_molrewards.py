"""Molecule rewards: values against RDKit and hand-worked numbers, the sEH proxy
against the original code's scores (fixture), failures scored at the floor."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from rdkit import Chem
from rdkit.Chem import QED, Crippen

from gflownet.environments.base import LOG_REWARD_FLOOR
from gflownet.environments.fragments import FragmentEnv
from gflownet.environments.molrewards import MoleculeReward, sa_score
from gflownet.environments.seh import SEHProxy, mol_graph
from gflownet.errors import ConfigError

FIXTURE = json.loads((Path(__file__).parent / "data" / "seh_reference_scores.json").read_text())["scores"]
ASPIRIN, CAFFEINE = Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O"), Chem.MolFromSmiles("Cn1c(=O)c2c(ncn2C)n(C)c1=O")


def test_seh_proxy_matches_the_original_on_the_fixture():
    proxy = SEHProxy.pretrained()
    raw = proxy.score_graphs([mol_graph(Chem.MolFromSmiles(s["smiles"])) for s in FIXTURE])
    for s, r in zip(FIXTURE, raw):
        assert abs(r - s["raw"]) < 1e-4, s["name"]
    no_flag = proxy.score_graphs([mol_graph(Chem.MolFromSmiles(s["smiles"]), []) for s in FIXTURE])
    for s, r in zip(FIXTURE, no_flag):
        assert abs(r - s["raw_stem_mask_all_zero"]) < 1e-4, s["name"]


def test_seh_proxy_matches_the_original_code_on_26_molecules():
    data = json.loads((Path(__file__).parent / "data" / "seh_original_26.json").read_text())["scores"]
    raw = SEHProxy.pretrained().score_graphs([mol_graph(Chem.MolFromSmiles(s["smiles"])) for s in data])
    assert len(data) == 26
    for s, r in zip(data, raw):
        assert abs(r - s["raw"]) < 1e-4, s["smiles"]


def test_seh_of_fragment_states_matches_the_original_environment():
    """States rebuilt from the original's block indices and junctions score raw_mdp."""
    env = FragmentEnv()
    proxy = SEHProxy.pretrained()
    checked = 0
    for s in FIXTURE:
        if "raw_mdp" not in s:
            continue
        blocks = s["mdp_blockidxs"]
        state = env.reset(1)
        state[0, 0] = torch.tensor([blocks[0], -1, -1])
        for a, b, atom_a, atom_b in s["mdp_jbonds"]:
            assert env.vocab.stems[blocks[b]][0] == atom_b  # a later block attaches by its first stem
            state[0, b] = torch.tensor([blocks[b], a, env.vocab.stems[blocks[a]].index(atom_a)])
        assert abs(proxy.score(env.to_mols(state))[0] - s["raw_mdp"]) < 1e-4, s["name"]
        checked += 1
    assert checked == 3


def test_property_rewards_match_rdkit_and_hand_values():
    r = MoleculeReward("0.25*qed+0.75*sa")
    expected = [0.25 * QED.qed(m) + 0.75 * (10 - sa_score(m)) / 9 for m in (ASPIRIN, CAFFEINE)]
    assert r.scores([ASPIRIN, CAFFEINE]) == pytest.approx(expected)
    logp = Crippen.MolLogP(ASPIRIN)  # 1.31
    w = MoleculeReward("logp[2,3]").scores([ASPIRIN])[0]
    assert w == pytest.approx(math.exp(-0.5 * (2 - logp) ** 2))
    assert MoleculeReward("mw[100,200]").scores([ASPIRIN]) == [1.0]  # 180.16 Da
    assert MoleculeReward("qed*lipinski").scores([ASPIRIN]) == pytest.approx([QED.qed(ASPIRIN)])
    log_r = MoleculeReward("qed", beta=4).log_reward([ASPIRIN, None])
    assert log_r.tolist() == pytest.approx([4 * math.log(QED.qed(ASPIRIN)), LOG_REWARD_FLOOR])


def test_tanimoto_to_targets(tmp_path):
    targets = tmp_path / "targets.smi"
    targets.write_text("CC(=O)Oc1ccccc1C(=O)O\n")
    assert MoleculeReward("tanimoto", targets=str(targets)).scores([ASPIRIN]) == [1.0]
    targets.write_text("CCO\nnot_a_smiles\n")
    with pytest.raises(ConfigError, match="line 2: invalid SMILES 'not_a_smiles'"):
        MoleculeReward("tanimoto", targets=str(targets))


def test_cache_by_smiles():
    r = MoleculeReward("qed")
    r.scores([ASPIRIN, Chem.MolFromSmiles("OC(=O)c1ccccc1OC(C)=O")])  # the same molecule written twice
    assert len(r.cache) == 1


@pytest.fixture
def user_module_path(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


def test_user_callable_and_failures_scored_at_the_floor(user_module_path):
    assert MoleculeReward("python:user_mol_rewards:heavy_atoms").scores([ASPIRIN]) == [13.0]
    r = MoleculeReward("python:user_mol_rewards:fails_on_nitrogen")
    with pytest.warns(RuntimeWarning, match="scored at the floor"):
        log_r = r.log_reward([ASPIRIN, CAFFEINE])
    assert log_r.tolist() == [0.0, LOG_REWARD_FLOOR] and r.failures == 1
    r = MoleculeReward("python:user_mol_rewards:nan_on_oxygen")
    with pytest.warns(RuntimeWarning, match="gave nan"):
        assert r.scores([ASPIRIN, Chem.MolFromSmiles("CCN")]) == [0.0, 2.0]
    assert r.failures == 1


def test_command_reward():
    command = f'{sys.executable} -c "import sys; [print(len(l.strip())) for l in sys.stdin]"'
    assert MoleculeReward(f"cmd:{command}").scores([ASPIRIN, Chem.MolFromSmiles("CCO")]) == [21.0, 3.0]


def test_bad_reward_specs():
    with pytest.raises(ConfigError, match="unknown reward factor 'qde'"):
        MoleculeReward("qde")
    with pytest.raises(ConfigError, match="empty term"):
        MoleculeReward("qed+")
    with pytest.raises(ConfigError, match="beta"):
        MoleculeReward("qed", beta=0)
