"""Screening: filters, dedup, sphere exclusion, summary and files, on hand-made sets."""

import csv

import pytest
import torch
from rdkit import Chem, DataStructs

from gflownet import screening
from gflownet.errors import ConfigError

SMILES = ["c1ccccc1O", "Oc1ccccc1", "c1ccccc1N", "CCCCCCCC", "CCCCCCCCO", "C1CCNCC1"]


class FakeEnv:
    """to_mols of 'states' that are indices into SMILES."""

    def to_mols(self, states):
        return [Chem.MolFromSmiles(SMILES[int(i)]) for i in states]


def test_dedup_filters_and_diverse_top():
    log_r = torch.tensor([0.0, 0.0, -0.1, -0.5, -0.2, -1.0])
    cands, stats = screening.screen(FakeEnv(), torch.arange(6), log_r, unique=True, filters="mw<120")
    assert stats["unique"] == 5 and stats["unique_fraction"] == pytest.approx(5 / 6)
    # phenol 94.1, aniline 93.1, octane 114.2, octanol 130.2 (out), piperidine 85.2 Da
    assert [c.smiles for c in cands] == ["Oc1ccccc1", "Nc1ccccc1", "CCCCCCCC", "C1CCNCC1"]
    assert cands[0].count == 2


def test_sphere_exclusion_respects_the_similarity_bound():
    log_r = torch.tensor([0.0, -9.0, -0.1, -0.5, -0.2, -1.0])
    cands = screening.candidates(FakeEnv().to_mols(range(6)), log_r.tolist(), unique=True)
    chosen = screening.diverse_top(cands, 3, max_similarity=0.3)
    assert chosen[0].smiles == "Oc1ccccc1"  # the best comes first
    for i, a in enumerate(chosen):
        for b in chosen[i + 1 :]:
            assert DataStructs.TanimotoSimilarity(a.fp, b.fp) <= 0.3
    assert len(chosen) == 3


def test_files_are_written_whole(tmp_path):
    cands = screening.candidates(FakeEnv().to_mols(range(6)), [0.0] * 6)
    path = screening.write_csv(tmp_path / "c.csv", cands)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 6 and rows[0]["inchikey"] == Chem.MolToInchiKey(Chem.MolFromSmiles("Oc1ccccc1"))
    assert float(rows[3]["mw"]) == pytest.approx(114.232, abs=1e-3)
    sdf = screening.write_sdf(tmp_path / "c.sdf", cands)
    assert len([m for m in Chem.SDMolSupplier(str(sdf))]) == 6
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_filter_names_the_culprit():
    with pytest.raises(ConfigError, match="unknown property 'qde'"):
        screening.parse_filters("qde>0.5", {"qed"})
    with pytest.raises(ConfigError, match="cannot read filter 'qed'"):
        screening.parse_filters("qed", {"qed"})


def test_sample_command_writes_the_screening_files(tmp_path, capsys):
    from gflownet.cli import main

    run = tmp_path / "frag"
    assert (
        main(
            [
                "train",
                "--env",
                "fragments",
                "--set",
                "max_blocks=3",
                "--set",
                "hidden=16",
                "--set",
                "threads=1",
                "--set",
                "reward=0.5*qed+0.5*sa",
                "--batch-size",
                "16",
                "--trajectories",
                "32",
                "--no-progress",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    out_csv, out_sdf = tmp_path / "cands.csv", tmp_path / "cands.sdf"
    assert (
        main(
            [
                "sample",
                str(run),
                "--n",
                "200",
                "--out",
                str(out_csv),
                "--sdf",
                str(out_sdf),
                "--unique",
                "--filter",
                "qed>0.2,sa<6",
                "--diverse-top",
                "20",
                "--max-similarity",
                "0.4",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "unique_fraction" in printed and "mean_pairwise_tanimoto" in printed and "modes" in printed
    rows = list(csv.DictReader(out_csv.open()))
    assert 1 <= len(rows) <= 20 and len({r["smiles"] for r in rows}) == len(rows)
    assert all(float(r["qed"]) > 0.2 and float(r["sa"]) < 6 for r in rows)
    assert len(list(Chem.SDMolSupplier(str(out_sdf)))) == len(rows)
    before = out_csv.read_bytes()
    assert main(["sample", str(run), "--n", "10", "--out", str(out_csv), "--filter", "qde>1"]) == 2
    assert "unknown property 'qde'" in capsys.readouterr().err
    assert out_csv.read_bytes() == before  # a failed command leaves the old file whole
