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


def test_fl_sets_small_stop_ends_at_the_first_crossing():
    """A run with ``stop_at_target`` is the unstopped run's prefix up to its first L1 <= target;
    trajectories are counted with the configured batch size."""
    import fl_sets

    kwargs = dict(seeds=[0], trajectories=320, every=32, epsilon=0.0, temperature=0.25, methods=["db"])
    kwargs["assignments"] = ["batch_size=8"]
    full, _ = fl_sets.small_study(**kwargs)
    assert [r["trajectories"] for r in full] == list(range(32, 321, 32))
    target = full[len(full) // 2]["l1"]  # L1 falls from the start at this temperature
    first = next(i for i, r in enumerate(full) if r["l1"] <= target)
    assert 0 < first < len(full) - 1
    stopped, summary = fl_sets.small_study(**kwargs, target=target, stop_at_target=True)
    assert stopped == full[: first + 1]
    assert summary["db"]["trajectories_to_target"] == [full[first]["trajectories"]]


def test_rna_quick(tmp_path):
    import rna

    rows = rna.main(["--quick", "--out", str(tmp_path)])
    table = (tmp_path / "rna_l14_quick.md").read_text()
    for method in ("tb", "subtb", "fl_subtb", "ga"):
        assert f"| {method} |" in table
    assert all(0 <= r["best"] <= 1.5 and r["calls"] <= 600 + 16 * 14 for r in rows)  # f ~ 0.3 to 0.97
    assert (tmp_path / "rna_l14_quick.png").read_bytes()[:4] == b"\x89PNG"


def test_ehrlich_quick(tmp_path):
    import ehrlich

    rows = ehrlich.main(["--quick", "--out", str(tmp_path)])
    table = (tmp_path / "ehrlich_quick.md").read_text()
    for method in ("tb", "subtb", "ga"):
        assert f"| {method} |" in table
    finals = {r["method"]: r for r in rows}  # the last row of each method
    assert all(0 <= r["best"] <= 1 and 800 <= r["calls"] <= 800 + 64 for r in finals.values())
    assert (tmp_path / "ehrlich_quick.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_molecules_quick(tmp_path):
    import bench_molecules

    rows = bench_molecules.main(["--quick", "--out", str(tmp_path)])
    assert [r["case"] for r in rows] == [
        "rollout",
        "rollout+qed workers(0)",
        "train tb/qed workers(0)",
        "rollout+qed workers(2)",
        "train tb/qed workers(2)",
    ]
    assert all(r["per_s"] > 0 for r in rows)
    assert "| rollout | 64 |" in (tmp_path / "bench_molecules_quick.md").read_text()
    assert all(r["per_cpu_s"] >= r["per_s"] * 0.9 for r in rows)


def test_seh_frag_quick(tmp_path):
    import seh_frag

    rows = seh_frag.main(["--quick", "--parents", "last", "leaves", "--out", str(tmp_path)])
    assert {(r["method"], r["parents"]) for r in rows} == {
        (m, p) for m in ("tb", "subtb", "fl_subtb") for p in ("last", "leaves")
    }
    assert all(0 < r["top100"] <= 100 / 8 and r["unique"] >= 1 for r in rows)
    assert "| fl_subtb | leaves | 0 | 32 |" in (tmp_path / "seh_frag_quick.md").read_text()
    assert (tmp_path / "seh_frag_quick.png").read_bytes()[:4] == b"\x89PNG"


def test_seh_frag_released_settings_reach_the_trainer():
    """--epsilon and --min-blocks / --max-blocks: every sampled molecule has 2 or 3 blocks,
    and the behaviour policy gets the random-action rate."""
    import seh_frag

    trainer = seh_frag.make_trainer("fl_db", 32, 16, 0, 16, 1, 4.0, "leaves", epsilon=0.1, blocks=(2, 3))
    assert trainer.config.train.epsilon == 0.1
    for _ in range(2):
        trainer.train_step()
        placed = trainer.env.n_placed(trainer.last_trajectories.terminal)
        assert placed.min() >= 2 and placed.max() <= 3


def test_seh_fl_energy_quick(tmp_path):
    import seh_fl_energy

    rows = seh_fl_energy.main(["--quick", "--policy", "tb", "--out", str(tmp_path)])
    assert [r["blocks"] for r in rows][-1] == "all" and rows[-1]["states"] == sum(r["states"] for r in rows[:-1])
    assert all(-1 <= r["spearman_mean"] <= 1 for r in rows[-1:]) and all(0 <= r["at_floor"] <= 1 for r in rows)
    assert "| all | " in (tmp_path / "seh_fl_energy_tb_quick.md").read_text()
    assert (tmp_path / "seh_fl_energy_tb_quick.png").read_bytes()[:4] == b"\x89PNG"


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


def test_ocgfn_tfbind8_downstream_quick(tmp_path):
    import ocgfn

    methods = ["amortised", "amortised_terminal", "scratch", "scratch_replay"]
    runs = ocgfn.main(
        ["--quick", "--downstream-tfbind8", "--tfbind8-reward", "shen", "--methods", *methods, "--out", str(tmp_path)]
    )
    for method in methods:
        last = [r for r in runs if r["method"] == method][-1]
        assert last["reward_calls"] >= 160 and 0 <= last["top100_found"] <= 100
    for method in ("amortised", "amortised_terminal"):
        amortised = [r for r in runs if r["method"] == method]
        assert amortised[-1]["reward_calls"] == 160  # the budget of distinct sequences evaluated, exactly
    terminal = [r for r in runs if r["method"] == "amortised_terminal"]
    assert terminal[0]["reward_calls"] <= terminal[0]["samples"]  # at most one call per trajectory
    text = (tmp_path / "ocgfn_tfbind8_downstream_shen.md").read_text()
    assert "| amortised_terminal |" in text and "A perfect sampler of R'/Z' finds" in text
    assert (tmp_path / "ocgfn_tfbind8_downstream_shen.png").read_bytes()[:4] == b"\x89PNG"


def test_ocgfn_sampler_ceiling_draws_without_replacement_in_proportion_to_the_reward():
    import ocgfn
    import pytest
    import torch

    top = torch.arange(1000) < 100
    everything = ocgfn.sampler_ceiling(torch.zeros(1000), top, 1000, repeats=5)
    assert everything == (100.0, 0.0)  # every outcome drawn once
    only_top = ocgfn.sampler_ceiling(torch.where(top, 0.0, float("-inf")), top, 100, repeats=5)
    assert only_top == (100.0, 0.0)  # R' = 0 elsewhere: the first 100 draws are the top
    mean, sd = ocgfn.sampler_ceiling(torch.zeros(1000), top, 250, repeats=400)
    assert mean == pytest.approx(25.0, abs=1.0) and sd > 0  # uniform: 250 of 1000, a quarter of the top


def test_ocgfn_amortised_defaults_are_the_cli_defaults():
    import ocgfn

    from gflownet.finetune import AmortisedSettings

    assert AmortisedSettings(**ocgfn.amortised_settings(ocgfn.parse_args([]))) == AmortisedSettings()


def test_bench_hypergrid_quick(tmp_path):
    """This library's side alone (the peers' side venvs are not part of the test setup)."""
    import bench_hypergrid

    rows = bench_hypergrid.main(["--quick", "--peers", "--out", str(tmp_path)])
    assert [(r["dim"], r["side"], r["batch"]) for r in rows] == [(2, 8, 16), (2, 8, 64)]
    assert all(r["ours_whole"] > 0 and r["torchgfn_whole"] is None for r in rows)
    assert 0 <= rows[1]["ours_l1"] <= 2
    assert "| 2 | 8 | 64 | 2,560 |" in (tmp_path / "bench_hypergrid_quick.md").read_text()
    assert (tmp_path / "bench_hypergrid_quick.png").read_bytes()[:4] == b"\x89PNG"


def test_compiled_rollout_quick(tmp_path):
    import compiled_rollout

    (row,) = compiled_rollout.main(["--quick", "--out", str(tmp_path)])
    assert (row["dim"], row["side"], row["batch"], row["pairs"]) == (2, 6, 8, 20)
    assert row["compile_s"] > 0 and row["eager_step_ms"] > 0 and row["compiled_step_ms"] > 0
    assert "| 2 | 6 | 8 | 1 |" in (tmp_path / "compiled_rollout_quick.md").read_text()
    assert (tmp_path / "compiled_rollout_quick.png").read_bytes()[:4] == b"\x89PNG"


def test_memory_hypergrid_quick(tmp_path):
    import memory_hypergrid

    peak, leak = memory_hypergrid.main(["--quick", "--out", str(tmp_path)])
    assert peak["peak_rss_mib"] >= peak["rss_before_mib"] > 0 and peak["steps"] >= 1
    assert leak["steps"] >= 10 and leak["rss_end_mib"] > 0
    assert "| leak check |" in (tmp_path / "memory_hypergrid_quick.md").read_text()
