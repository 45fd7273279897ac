"""`gflownet report`: a self-contained page with exact figures, the family hook, and a real browser."""

import base64
import importlib.util
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import gflownet
from gflownet.cli import main
from gflownet.environments import HyperGrid, SetGeneration
from gflownet.environments.bitseq import BitSequences
from gflownet.environments.fragments import FragmentEnv
from gflownet.environments.sequences import Sequences
from gflownet.report import FAMILY_SECTIONS, best_samples, molecule_sections, sequence_composition

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(batch_size=16, trajectories=320, hidden=16, eval_every=160, log_every=5)


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "grid"
    gflownet.train(env="hypergrid", out=out, dim=2, side=6, **TINY)
    return out


def test_best_samples_counts_and_target():
    env = HyperGrid(dim=2, side=4, reward=lambda s: (s.sum(-1) + 1).double())  # R(x) = x0 + x1 + 1
    x = torch.tensor([[0, 0], [3, 3], [0, 0], [1, 2], [3, 3], [3, 3]])
    header, rows = best_samples(env, x, env.log_reward(x), k=2)
    assert header == ["x0", "x1", "log_reward", "count", "sampled frequency", "R/Z"]
    z = 16 + 2 * 4 * (0 + 1 + 2 + 3)  # sum over the 4x4 grid of x0 + x1 + 1
    assert rows[0][:2] == [3, 3] and rows[0][3:5] == [3, 0.5]
    assert rows[0][2] == pytest.approx(torch.tensor(7.0).log().item()) and rows[0][5] == pytest.approx(7 / z)
    assert rows[1][:2] == [1, 2] and rows[1][3:] == [1, 1 / 6, pytest.approx(4 / z)]


def test_report_is_self_contained(grid_run, capsys):
    assert main(["report", str(grid_run), "--samples", "2000", "--top-k", "5"]) == 0
    page = (grid_run / "report.html").read_text()
    assert str(grid_run / "report.html") in capsys.readouterr().out
    assert not re.search(r"(src|href)=\"(?!data:)", page) and "http" not in page  # nothing to fetch
    assert "<script" not in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3  # training curves, reward histogram, heat maps (the hypergrid section)
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    for heading in (
        "Metrics",
        "Training curves",
        "Rewards",
        "Target and learned distribution",
        "Top 5 distinct samples",
    ):
        assert f"<h2>{heading}</h2>" in page
    assert page.count("<tr>") >= 5 + 1


def test_generic_fallback_and_family_hook(tmp_path, monkeypatch):
    run = gflownet.train(env="sets", out=tmp_path / "sets", size=21, set_size=2, **TINY)  # 2^21 states
    assert not run.env.enumerable and "log_z_error" in run.summary and "l1" not in run.summary
    page = run.report(n_samples=500).read_text()
    assert page.count("data:image/png") == 2 and "Target and learned" not in page  # no sets section
    assert "<td>log_z_error</td>" in page and "<th>R/Z</th>" not in page  # no exact target to show
    assert [p.name for p in run.plot()] == ["training_curve.png"]  # its curve: the log Z error
    monkeypatch.setitem(FAMILY_SECTIONS, SetGeneration, lambda run, x, log_r: [("Sizes", f"<p>{len(x)}</p>")])
    assert "<h2>Sizes</h2><p>500</p>" in run.report(n_samples=500).read_text()


def _browser_missing():
    if not Path("/usr/bin/chromium").exists():
        return "no Chromium at /usr/bin/chromium (apt-get install -y chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install 'gflownet[docs]')"
    return None


@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_report_in_headless_chromium(grid_run, tmp_path):
    from PIL import Image

    sys.path.insert(0, str(ROOT / "docs"))
    from report_screenshot import screenshot

    page = gflownet.load(grid_run).report(tmp_path / "report.html", n_samples=1000)
    seen = screenshot(page, tmp_path / "shot.png")
    assert seen == {"errors": [], "images_ok": True, "n_images": 3}
    pixels = Image.open(tmp_path / "shot.png").convert("L")
    low, high = pixels.getextrema()
    assert pixels.height > 1500 and high - low > 200  # a long page with dark text on white, not blank
    assert len(pixels.resize((64, 64)).getcolors(4096)) > 20  # many grey levels: text, plots, tables


def test_sequence_composition_by_position():
    env = Sequences(alphabet="AB", max_length=3, min_length=1)
    x = torch.tensor([[0, 1, 2], [0, 0, 0], [1, 2, 2], [0, 1, 1]])  # "AB", "AAA", "B", "ABB" (2 = none)
    header, rows = sequence_composition(env, x)
    assert header == ["position", "A", "B", "(none)"]
    assert rows == [[1, 0.75, 0.25, 0.0], [2, 0.25, 0.5, 0.25], [3, 0.25, 0.25, 0.5]]
    words = BitSequences(n=16, k=8, n_modes=4)  # 256 symbols: the three most frequent of each position
    header, rows = sequence_composition(words, torch.tensor([[5, 7], [5, 9], [6, 9]]))
    assert header == ["position", "most frequent", "second", "third"] and len(rows) == 2
    assert rows[0][:3] == [1, f"{words.symbols[5]} (0.667)", f"{words.symbols[6]} (0.333)"]
    assert rows[1][:3] == [2, f"{words.symbols[9]} (0.667)", f"{words.symbols[7]} (0.333)"]


def test_sequence_run_report_has_the_composition(tmp_path):
    run = gflownet.train(env="sequence", out=tmp_path / "seq", alphabet="ACGT", max_length=3, **TINY)
    page = run.report(n_samples=400).read_text()
    assert "<h2>Composition by position</h2>" in page
    assert "<th>position</th><th>A</th><th>C</th><th>G</th><th>T</th>" in page


def test_molecule_section_draws_the_best_distinct_molecules():
    from rdkit import Chem
    from rdkit.Chem import QED

    env = FragmentEnv(max_blocks=2, reward="qed")
    blocks = [0, 1, 3]  # benzene, methanol, formaldehyde (blocks 1 and 2 are both CO)
    x = torch.tensor([[[b, -1, -1], [-1, -1, -1]] for b in blocks + [1]])  # single-block molecules, one twice
    ((title, body),) = molecule_sections(SimpleNamespace(env=env), x, env.log_reward(x))
    smiles = [Chem.MolToSmiles(Chem.MolFromSmiles(env.vocab.smiles[b])) for b in blocks]
    qed = {s: QED.qed(Chem.MolFromSmiles(s)) for s in smiles}
    best = sorted(set(smiles), key=lambda s: -qed[s])
    assert title == f"Top {len(best)} molecules"
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', body)[1])
    assert png[:4] == b"\x89PNG"
    cells = re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td><td>([^<]+)</td><td>(\d+)</td></tr>", body)
    assert [c[1] for c in cells] == best
    assert [float(c[2]) for c in cells] == pytest.approx([qed[s] for s in best], rel=1e-5)
    assert {c[1]: int(c[3]) for c in cells}[smiles[1]] == 2  # block 1 was sampled twice
