"""The reproduction scripts' quick modes run end to end (their full runs live in experiments/)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))


def test_fl_sets_quick(tmp_path):
    import fl_sets

    fl_sets.main(["--quick", "--out", str(tmp_path)])
    table = (tmp_path / "fl_sets_quick.md").read_text()
    for method in ("tb", "db", "subtb", "fl_db", "fl_subtb", "fl_db_cut"):
        assert f"| {method} |" in table
    summary = json.loads((tmp_path / "fl_sets_small.json").read_text())
    assert all(0 <= v <= 2 for s in summary.values() for v in s["final_l1"])  # finite, exact L1
    assert (tmp_path / "fl_sets_30_20.png").read_bytes()[:4] == b"\x89PNG"


def test_ocgfn_quick(tmp_path):
    import ocgfn

    ocgfn.main(["--quick", "--out", str(tmp_path)])
    table = (tmp_path / "ocgfn_quick.md").read_text()
    for method in ocgfn.METHODS:
        assert f"| {method} |" in table
    result = json.loads((tmp_path / "ocgfn_quick.json").read_text())
    assert 0 <= result["pretrain"][-1]["success_rate"] <= 1
    assert all(0 <= f["l1"] <= 2 and 0 <= f["modes_found"] <= f["n_modes"] for f in result["finals"])
    exact = [f for f in result["finals"] if f["method"].startswith("exact")]
    assert all(f["reward_calls"] == 25 for f in exact)  # R' of each of the 5x5 outcomes, once
    assert (tmp_path / "ocgfn_quick.png").read_bytes()[:4] == b"\x89PNG"
