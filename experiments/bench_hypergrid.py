#!/usr/bin/env python
"""Hypergrid benchmark: this library against torchgfn 2.4.1, same configuration, one run.

Each case trains both libraries one after the other (never two at once: on 2 cores
they would slow each other down), each in its own process, and records steady-state
and whole-process trajectories per second and the exact L1 to R/Z at equal
trajectory counts. Configuration: TB, 2x256 ReLU MLP trunk shared by P_F and P_B,
Adam 1e-3 (log Z 1e-1), on-policy, no exploration.

  experiments/peers/setup_torchgfn.sh            # once: side venv .venv-torchgfn
  python experiments/bench_hypergrid.py          # all cases; --quick for a short check

Writes experiments/results/bench_hypergrid.{json,csv,md}.
"""
import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (dim, side, batch, trajectories, eval_every)
CASES = [(4, 8, 16, 24_000, 0), (4, 8, 256, 96_000, 0), (4, 8, 16, 160_000, 16_000)]
QUICK = [(4, 8, 16, 1_600, 0), (4, 8, 256, 6_400, 0)]


def run(python: str, script: Path, case, extra: list[str], out: Path) -> dict:
    dim, side, batch, n, eval_every = case
    cmd = [python, str(script), "--dim", str(dim), "--side", str(side), "--batch-size", str(batch),
           "--trajectories", str(n), "--eval-every", str(eval_every), "--json", str(out), *extra]
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peer-python", default=str(HERE.parent / ".venv-torchgfn" / "bin" / "python"),
                   help="python of the torchgfn side venv (experiments/peers/setup_torchgfn.sh)")
    p.add_argument("--quick", action="store_true", help="short cases, to check the harness")
    p.add_argument("--set", action="append", default=[], help="passed to this library's runner")
    p.add_argument("--out", default=str(HERE / "results"), help="results folder")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extra = [a for kv in args.set for a in ("--set", kv)]
    rows, raw = [], []
    for case in QUICK if args.quick else CASES:
        tag = "d{}_h{}_b{}_n{}".format(*case[:4])
        ours = run(sys.executable, HERE / "ours_hypergrid.py", case, extra, out / f"ours_{tag}.json")
        peer = run(args.peer_python, HERE / "peers" / "torchgfn_hypergrid.py", case, [], out / f"torchgfn_{tag}.json")
        raw.append({"case": case, "ours": ours, "torchgfn": peer})
        rows.append({
            "dim": case[0], "side": case[1], "batch": case[2], "trajectories": case[3],
            "ours_steady": ours["steady_traj_per_s"], "torchgfn_steady": peer["steady_traj_per_s"],
            "steady_ratio": ours["steady_traj_per_s"] / peer["steady_traj_per_s"],
            "ours_whole": ours["whole_traj_per_s"], "torchgfn_whole": peer["whole_traj_per_s"],
            "whole_ratio": ours["whole_traj_per_s"] / peer["whole_traj_per_s"],
            "ours_l1": ours["evals"][-1]["l1"], "torchgfn_l1": peer["evals"][-1]["l1"],
        })
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    (out / "bench_hypergrid.json").write_text(json.dumps(raw, indent=1))
    with open(out / "bench_hypergrid.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = ["| D | H | batch | trajectories | ours traj/s (steady / whole) | torchgfn traj/s (steady / whole) "
             "| ratio (steady / whole) | exact L1 ours / torchgfn |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['dim']} | {r['side']} | {r['batch']} | {r['trajectories']:,} "
                     f"| {r['ours_steady']:,.0f} / {r['ours_whole']:,.0f} "
                     f"| {r['torchgfn_steady']:,.0f} / {r['torchgfn_whole']:,.0f} "
                     f"| {r['steady_ratio']:.2f}x / {r['whole_ratio']:.2f}x "
                     f"| {r['ours_l1']:.3f} / {r['torchgfn_l1']:.3f} |")
    (out / "bench_hypergrid.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
