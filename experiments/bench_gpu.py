#!/usr/bin/env python
"""GPU hypergrid benchmark: this library's CUDA-graph step against its eager step and
gfnx 0.0.1 (JAX on the same GPU), one case after the other in one run.

Each case trains this library with its default (``train.cuda_graph=auto``: the whole
step as one CUDA graph), then with ``cuda_graph=false`` (the eager step: the rollout
stops once every row has exited, the loss evaluates each distinct state once), then
gfnx, each in its own process, as ``bench_hypergrid.py`` does on CPU (TB, 2x256 ReLU
MLP shared by P_F and P_B, Adam 1e-3, log Z 1e-1, on-policy). A run that fails is
recorded with its error and the benchmark goes on.

  python experiments/bench_gpu.py --gfnx-python python3 --out DIR   # --quick: a short check

Writes DIR/bench_gpu.{json,csv,md,png}.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench_hypergrid import HERE, PEERS, fmt, run, speedup_bars, write_rows

# (dim, side, batch, trajectories, the other variants to run)
CASES = [
    (2, 8, 512, 1_024_000, ("eager", "gfnx")),
    (2, 8, 4096, 2_048_000, ("eager", "gfnx")),
    (2, 8, 16384, 3_276_800, ()),
    (2, 8, 65536, 6_553_600, ()),
    (4, 8, 16, 32_000, ("eager",)),
    (4, 8, 256, 256_000, ("eager", "gfnx")),
    (4, 8, 4096, 1_228_800, ("eager",)),
    (4, 20, 256, 128_000, ("eager", "gfnx")),
    (4, 20, 4096, 409_600, ("eager",)),
    (2, 64, 4096, 409_600, ("eager",)),
]
QUICK = [(2, 8, 64, 6_400, ("eager", "gfnx"))]


def attempt(python, script, case, extra, out):
    try:
        return run(python, script, (*case[:4], 0, ()), extra, out)
    except (subprocess.CalledProcessError, OSError, json.JSONDecodeError) as exc:
        print(f"failed: {exc}", file=sys.stderr, flush=True)
        return {"error": str(exc)}


def row(case, results) -> dict:
    ours = results["graph"]
    r = {"dim": case[0], "side": case[1], "batch": case[2], "trajectories": case[3]}
    r["gpu"] = ours.get("gpu")
    r["cuda_graph"] = ours.get("cuda_graph")
    for variant in ("graph", "eager", "gfnx"):
        res = results.get(variant, {})
        for kind in ("steady", "whole"):
            r[f"{variant}_{kind}"] = res.get(f"{kind}_traj_per_s")
        r[f"{variant}_l1"] = res["evals"][-1].get("l1") if res.get("evals") else None
        r[f"{variant}_peak_mib"] = res.get("peak_gpu_mib")
        r[f"{variant}_error"] = res.get("error")
    for variant in ("eager", "gfnx"):
        for kind in ("steady", "whole"):
            mine, theirs = r[f"graph_{kind}"], r[f"{variant}_{kind}"]
            r[f"over_{variant}_{kind}"] = mine / theirs if mine and theirs else None
    return r


def markdown(rows) -> str:
    lines = [
        "| D | H | batch | trajectories | CUDA graph (steady / whole) | eager (steady / whole) "
        "| graph / eager, x (steady / whole) | gfnx (steady / whole) | ours / gfnx, x (steady / whole) "
        "| exact L1 graph / eager | peak GPU MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [str(r["dim"]), str(r["side"]), str(r["batch"]), f"{r['trajectories']:,}"]
        for variant in ("graph", "eager", "gfnx"):
            cells.append(f"{fmt(r[f'{variant}_steady'], ',.0f')} / {fmt(r[f'{variant}_whole'], ',.0f')}")
            if variant != "graph":
                ratios = (r[f"over_{variant}_steady"], r[f"over_{variant}_whole"])
                cells.append(" / ".join(fmt(x, ".2f") for x in ratios))
        cells.append(f"{fmt(r['graph_l1'], '.3f')} / {fmt(r['eager_l1'], '.3f')}")
        cells.append(fmt(r["graph_peak_mib"], ",.0f"))
        lines.append("| " + " | ".join(cells) + " |")
    gpu = next((r["gpu"] for r in rows if r["gpu"]), "no GPU")
    return f"GPU: {gpu}. Trajectories per second.\n\n" + "\n".join(lines) + "\n"


def plot(rows, path: Path) -> None:
    labels = [f"D{r['dim']} H{r['side']}\nb{r['batch']}" for r in rows]
    series = {f"over {v}": [r[f"over_{v}_steady"] or 0 for r in rows] for v in ("eager", "gfnx")}
    speedup_bars(labels, series, "speed-up, steady state (x)", "CUDA-graph step over each, same run (GPU)", path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gfnx-python", default=None, help="python with gfnx and a GPU JAX (none: skip gfnx)")
    p.add_argument("--quick", action="store_true", help="one short case, to check the harness")
    p.add_argument("--cases", type=int, nargs="*", help="indices of CASES to run (default: all)")
    p.add_argument("--device", default="cuda", help="this library's device (cpu: to check the harness)")
    p.add_argument("--out", default=str(HERE / "results"), help="results folder")
    p.add_argument("--runs", default=None, help="folder of each run's own record (default: --out)")
    args = p.parse_args(argv)
    out, runs = Path(args.out), Path(args.runs or args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs.mkdir(parents=True, exist_ok=True)
    name = "bench_gpu_quick" if args.quick else "bench_gpu"
    cases = QUICK if args.quick else [CASES[i] for i in args.cases] if args.cases is not None else CASES
    ours, device = HERE / "ours_hypergrid.py", ["--set", f"device={args.device}"]
    rows, raw = [], []
    for case in cases:
        tag = "d{}_h{}_b{}_n{}".format(*case[:4])
        results = {"graph": attempt(sys.executable, ours, case, device, runs / f"graph_{tag}.json")}
        if "eager" in case[4]:
            flags = [*device, "--set", "cuda_graph=false"]
            results["eager"] = attempt(sys.executable, ours, case, flags, runs / f"eager_{tag}.json")
        if "gfnx" in case[4] and args.gfnx_python:
            results["gfnx"] = attempt(args.gfnx_python, PEERS["gfnx"], case, [], runs / f"gfnx_{tag}.json")
        raw.append({"case": case[:4], **results})
        rows.append(row(case, results))
        print(json.dumps(rows[-1]), flush=True)
        (out / f"{name}.json").write_text(json.dumps(raw, indent=1))
        write_rows(out, name, rows, markdown(rows), plot)  # after every case
    print(markdown(rows))
    return rows


if __name__ == "__main__":
    main()
