#!/usr/bin/env python
"""Hypergrid benchmark: this library against torchgfn 2.4.1 and gfnx 0.0.1, one run.

Each case trains every library one after the other (never two at once: on 2 cores
they would slow each other down), each in its own process, and records steady-state
and whole-process trajectories per second, and the exact L1 to R/Z at the end where
the library's grid is this one (this library and torchgfn; gfnx's grid ends a
trajectory that steps past the edge, so it is timed only). Configuration: TB, 2x256
ReLU MLP trunk shared by P_F and P_B, Adam 1e-3 (log Z 1e-1), on-policy, no exploration.

  experiments/peers/setup_torchgfn.sh /work/side/perf-torchgfn   # once: side venvs
  experiments/peers/setup_gfnx.sh /work/side/perf-gfnx
  python experiments/bench_hypergrid.py --torchgfn-python /work/side/perf-torchgfn/bin/python \
      --gfnx-python /work/side/perf-gfnx/bin/python             # --quick for a short check

Writes experiments/results/bench_hypergrid.{json,csv,md,png}. With --compiled, each case
also trains this library with its compiled rollout (train.compile=true) right after the
default run, twice: first on an empty inductor cache ("cold", compile time included), then
on the cache that run filled ("warm"); the ratios to the default run are in the table.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from gflownet.trainer import MULTITHREAD_MIN_BATCH

HERE = Path(__file__).resolve().parent
PEERS = {"torchgfn": HERE / "peers" / "torchgfn_hypergrid.py", "gfnx": HERE / "peers" / "gfnx_hypergrid.py"}
# (dim, side, batch, trajectories, eval_every, peers)
CASES = [
    (4, 8, 16, 24_000, 0, ("torchgfn", "gfnx")),
    (4, 8, 256, 96_000, 0, ("torchgfn", "gfnx")),
    (4, 20, 256, 12_800, 0, ("torchgfn", "gfnx")),
    (2, 8, 512, 25_600, 0, ("torchgfn", "gfnx")),
    (2, 32, 256, 25_600, 0, ("torchgfn",)),
    (2, 64, 4096, 81_920, 0, ("torchgfn",)),
    (4, 8, 16, 160_000, 16_000, ("torchgfn",)),
]
QUICK = [(2, 8, 16, 480, 0, ("torchgfn", "gfnx")), (2, 8, 64, 2_560, 320, ("torchgfn",))]


def run(
    python: str, script: Path, case, extra: list[str], out: Path, env: dict | None = None, threads: int = 0
) -> dict:
    dim, side, batch, n, eval_every, _ = case
    # torch's thread count as this library picks it (or ``threads``), for torchgfn too
    # (oversubscribed threads on busy cores slow a run down several times); gfnx (XLA) picks its own.
    threads = threads or (1 if batch < MULTITHREAD_MIN_BATCH else os.cpu_count() or 1)
    cmd = [
        python,
        str(script),
        "--dim",
        str(dim),
        "--side",
        str(side),
        "--batch-size",
        str(batch),
        "--trajectories",
        str(n),
        "--eval-every",
        str(eval_every),
        "--threads",
        str(threads),
        "--json",
        str(out),
        *extra,
    ]
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return json.loads(out.read_text())


def row(case, results: dict) -> dict:
    ours = results["ours"]
    r = {
        "dim": case[0],
        "side": case[1],
        "batch": case[2],
        "trajectories": case[3],
        "ours_steady": ours["steady_traj_per_s"],
        "ours_whole": ours["whole_traj_per_s"],
        "ours_l1": ours["evals"][-1].get("l1"),
    }
    for peer in ("torchgfn", "gfnx"):
        res = results.get(peer, {})
        for kind in ("steady", "whole"):
            ours_speed, peer_speed = ours[f"{kind}_traj_per_s"], res.get(f"{kind}_traj_per_s")
            r[f"{peer}_{kind}"] = peer_speed
            r[f"{peer}_{kind}_ratio"] = ours_speed / peer_speed if ours_speed and peer_speed else None
        r[f"{peer}_l1"] = res["evals"][-1].get("l1") if res else None
    for variant in ("compiled_cold", "compiled_warm"):
        if variant in results:
            for kind in ("steady", "whole"):
                speed = results[variant][f"{kind}_traj_per_s"]
                r[f"{variant}_{kind}"] = speed
                r[f"{variant}_{kind}_ratio"] = speed / ours[f"{kind}_traj_per_s"] if speed else None
    return r


def fmt(value, spec):
    return "–" if value is None else format(value, spec)


def markdown(rows) -> str:
    lines = [
        "| D | H | batch | trajectories | ours traj/s (steady / whole) | torchgfn (steady / whole) "
        "| ours / torchgfn, x (steady / whole) | gfnx (steady / whole) | ours / gfnx, x (steady / whole) "
        "| exact L1 ours / torchgfn |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [
            str(r["dim"]),
            str(r["side"]),
            str(r["batch"]),
            f"{r['trajectories']:,}",
            f"{fmt(r['ours_steady'], ',.0f')} / {r['ours_whole']:,.0f}",
        ]
        for peer in ("torchgfn", "gfnx"):
            cells.append(f"{fmt(r[f'{peer}_steady'], ',.0f')} / {fmt(r[f'{peer}_whole'], ',.0f')}")
            cells.append(f"{fmt(r[f'{peer}_steady_ratio'], '.2f')} / {fmt(r[f'{peer}_whole_ratio'], '.2f')}")
        cells.append(f"{fmt(r['ours_l1'], '.3f')} / {fmt(r['torchgfn_l1'], '.3f')}")
        lines.append("| " + " | ".join(cells) + " |")
    compiled = [r for r in rows if "compiled_cold_whole" in r]
    if compiled:
        lines += [
            "",
            "| D | H | batch | trajectories | ours default (steady / whole) | compiled, cold cache (steady / whole) "
            "| compiled, warm cache (steady / whole) | compiled / default, x (cold whole / warm whole / steady) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in compiled:
            cells = [str(r["dim"]), str(r["side"]), str(r["batch"]), f"{r['trajectories']:,}"]
            cells.append(f"{fmt(r['ours_steady'], ',.0f')} / {r['ours_whole']:,.0f}")
            for v in ("compiled_cold", "compiled_warm"):
                cells.append(f"{fmt(r[f'{v}_steady'], ',.0f')} / {r[f'{v}_whole']:,.0f}")
            ratios = (r["compiled_cold_whole_ratio"], r["compiled_warm_whole_ratio"], r["compiled_warm_steady_ratio"])
            cells.append(" / ".join(fmt(x, ".2f") for x in ratios))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows, path: Path) -> None:
    labels = [f"D{r['dim']} H{r['side']}\nb{r['batch']} n{r['trajectories'] // 1000}k" for r in rows]
    series = {f"vs {peer}": [r[f"{peer}_whole_ratio"] or 0 for r in rows] for peer in ("torchgfn", "gfnx")}
    speedup_bars(
        labels,
        series,
        "speed-up, whole process (x)",
        "this library's trajectories/s over each peer's, same run (CPU)",
        path,
    )


def speedup_bars(labels, series: dict, ylabel: str, title: str, path: Path) -> None:
    """Two bars a case (``series``: legend -> one ratio per label), a line at 1, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.3 * len(labels) + 2, 3.6))
    width = 0.38
    for k, (name, ratios) in enumerate(series.items()):
        ax.bar([i + (k - 0.5) * width for i in range(len(labels))], ratios, width, label=name)
    ax.axhline(1, color="k", lw=0.8)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--torchgfn-python",
        default=str(HERE.parent / ".venv-torchgfn" / "bin" / "python"),
        help="python of the torchgfn side venv (experiments/peers/setup_torchgfn.sh)",
    )
    p.add_argument(
        "--gfnx-python",
        default=str(HERE.parent / ".venv-gfnx" / "bin" / "python"),
        help="python of the gfnx side venv (experiments/peers/setup_gfnx.sh)",
    )
    p.add_argument(
        "--peers", nargs="*", default=list(PEERS), choices=list(PEERS), help="peers to run (none: this library alone)"
    )
    p.add_argument("--quick", action="store_true", help="short cases, to check the harness")
    p.add_argument("--cases", type=int, nargs="*", help="indices of CASES to run (default: all)")
    p.add_argument("--name", default="bench_hypergrid", help="name of the result files")
    p.add_argument("--set", action="append", default=[], help="passed to this library's runner")
    p.add_argument(
        "--compiled", action="store_true", help="also train with the compiled rollout, cold and warm inductor cache"
    )
    p.add_argument("--out", default=str(HERE / "results"), help="results folder")
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads of every run (0: as this library picks; 1 on busy cores)"
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extra = [a for kv in args.set for a in ("--set", kv)]
    pythons = {"torchgfn": args.torchgfn_python, "gfnx": args.gfnx_python}
    rows, raw = [], []
    cases = QUICK if args.quick else [CASES[i] for i in args.cases] if args.cases is not None else CASES
    for case in cases:
        tag = "d{}_h{}_b{}_n{}".format(*case[:4])
        ours = HERE / "ours_hypergrid.py"
        results = {"ours": run(sys.executable, ours, case, extra, out / f"ours_{tag}.json", threads=args.threads)}
        if args.compiled:
            with tempfile.TemporaryDirectory() as cache:
                env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
                for variant in ("compiled_cold", "compiled_warm"):
                    flags = [*extra, "--set", "compile=true"]
                    results[variant] = run(
                        sys.executable, ours, case, flags, out / f"{variant}_{tag}.json", env, args.threads
                    )
        for peer in case[5]:
            if peer in args.peers:
                results[peer] = run(
                    pythons[peer], PEERS[peer], case, [], out / f"{peer}_{tag}.json", threads=args.threads
                )
        raw.append({"case": case[:5], **results})
        rows.append(row(case, results))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        write(out, f"{args.name}_quick" if args.quick else args.name, raw, rows)  # after every case
    print(markdown(rows))
    return rows


def write(out: Path, name: str, raw, rows) -> None:
    (out / f"{name}.json").write_text(json.dumps(raw, indent=1))
    write_rows(out, name, rows, markdown(rows), plot)


def write_rows(out: Path, name: str, rows, table: str, plot_rows) -> None:
    """``rows`` as ``name.csv``, ``table`` as ``name.md``, ``plot_rows(rows, path)`` as ``name.png``."""
    with open(out / f"{name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / f"{name}.md").write_text(table)
    plot_rows(rows, out / f"{name}.png")


if __name__ == "__main__":
    main()
