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


def test_bench_hypergrid_quick(tmp_path):
    """This library's side alone (the peers' side venvs are not part of the test setup)."""
    import bench_hypergrid

    rows = bench_hypergrid.main(["--quick", "--peers", "--out", str(tmp_path)])
    assert [(r["dim"], r["side"], r["batch"]) for r in rows] == [(2, 8, 16), (2, 8, 64)]
    assert all(r["ours_whole"] > 0 and r["torchgfn_whole"] is None for r in rows)
    assert 0 <= rows[1]["ours_l1"] <= 2
    assert "| 2 | 8 | 64 | 2,560 |" in (tmp_path / "bench_hypergrid_quick.md").read_text()
    assert (tmp_path / "bench_hypergrid_quick.png").read_bytes()[:4] == b"\x89PNG"


def test_memory_hypergrid_quick(tmp_path):
    import memory_hypergrid

    peak, leak = memory_hypergrid.main(["--quick", "--out", str(tmp_path)])
    assert peak["peak_rss_mib"] >= peak["rss_before_mib"] > 0 and peak["steps"] >= 1
    assert leak["steps"] >= 10 and leak["rss_end_mib"] > 0
    assert "| leak check |" in (tmp_path / "memory_hypergrid_quick.md").read_text()
