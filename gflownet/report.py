"""``gflownet report RUN``: one self-contained HTML page about a trained run.

The page holds the configuration and summary, the training curves, the exact
metrics (enumerable spaces) and those of fresh samples, a histogram of the
samples' log-rewards against the target's, and the top-k distinct samples.
Plots are PNGs embedded as base64: the file needs no network and no other file.

Families add their own sections: ``FAMILY_SECTIONS`` maps an environment class
to ``sections(run, x, log_r) -> [(title, html)]`` (``x`` ``[n, *state_shape]``
samples, ``log_r`` ``[n]``); the most specific class of the run's environment
wins, and an environment without an entry gets the generic page only.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch

from gflownet import __version__, plots
from gflownet.checkpoint import atomic_write
from gflownet.dedup import distinct
from gflownet.environments import Environment, HyperGrid
from gflownet.environments.fragments import FragmentEnv
from gflownet.environments.sequences import Sequences
from gflownet.errors import ConfigError
from gflownet.metrics import sampled_metrics, target_distribution
from gflownet.run import Run

Section = tuple[str, str]  # (title, HTML body)


def image(fig, alt: str) -> str:
    """A matplotlib figure as an inline ``<img>`` (base64 PNG)."""
    return png_image(plots.png_bytes(fig), alt)


def png_image(png: bytes, alt: str) -> str:
    """PNG bytes as an inline ``<img>``."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def table(header: list[str], rows: list[list]) -> str:
    """An HTML table; floats with 6 significant digits."""

    def cell(v):
        return html.escape(f"{v:.6g}" if isinstance(v, float) else str(v))

    head = "".join(f"<th>{cell(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def reward_histogram(env: Environment, log_r: torch.Tensor):
    """Histogram of the samples' log R against log R under x ~ R/Z (enumerable spaces)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    sampled = log_r.double().cpu().numpy()
    ranges = [sampled]
    if env.enumerable:
        probs, _ = target_distribution(env)
        target_log_r, probs = env.log_reward(env.all_states()).double().cpu().numpy(), probs.cpu().numpy()
        ranges.append(target_log_r[probs > 0])
    low, high = min(r.min() for r in ranges), max(r.max() for r in ranges)
    bins = np.linspace(low, max(high, low + 1e-6), 41)
    ax.hist(
        sampled, bins=bins, weights=np.full(len(sampled), 1 / len(sampled)), alpha=0.6, label=f"{len(sampled)} samples"
    )
    if env.enumerable:
        ax.hist(
            target_log_r,
            bins=bins,
            weights=probs,
            histtype="step",
            linewidth=2,
            color="black",
            label="target R/Z (exact)",
        )
    ax.set(xlabel="log R(x)", ylabel="probability", title="log-reward of samples vs target")
    ax.legend()
    return fig


def best_samples(env: Environment, x: torch.Tensor, log_r: torch.Tensor, k: int) -> tuple[list[str], list[list]]:
    """The k distinct samples of highest reward: their columns, log R, count among the
    samples and sampled frequency (and R/Z where the space is enumerable)."""
    first, inverse = distinct(x.reshape(len(x), -1), dim=0)
    counts = torch.bincount(inverse, minlength=len(first))
    order = log_r[first].argsort(descending=True)[:k]
    best = first[order]
    header = env.object_columns() + ["log_reward", "count", "sampled frequency"]
    rows = [
        row + [float(lr), int(c), int(c) / len(x)]
        for row, lr, c in zip(env.object_rows(x[best].cpu()), log_r[best].tolist(), counts[order].tolist())
    ]
    if env.enumerable:
        header.append("R/Z")
        for row, p in zip(rows, target_distribution(env)[0][env.state_index(x[best])].tolist()):
            row.append(p)
    return header, rows


def hypergrid_sections(run: Run, x: torch.Tensor, log_r: torch.Tensor) -> list[Section]:
    """Target R/Z and the model's exact P_T side by side (first two coordinates)."""
    return [
        (
            "Target and learned distribution",
            image(plots.grid_heatmap_figure(run.env, run.policy), "heat maps of R/Z and of P_T"),
        )
    ]


MANY_SYMBOLS = 20  # above, the composition table lists each position's most frequent symbols only


def sequence_composition(env: Sequences, x: torch.Tensor) -> tuple[list[str], list[list]]:
    """Per-position composition of sequences ``x`` ``[n, max_length]``: the fraction of the samples
    holding each symbol there (and none, where lengths vary); with more than ``MANY_SYMBOLS``
    symbols, the three most frequent of each position instead."""
    freq = torch.nn.functional.one_hot(x.cpu(), env.n_tokens + 1).sum(0).double() / len(x)  # [L, V + 1]
    names = env.symbols + (["(none)"] if env.min_length < env.max_length else [])
    freq = freq[:, : len(names)]
    if len(names) <= MANY_SYMBOLS:
        return ["position", *names], [[i + 1, *row] for i, row in enumerate(freq.tolist())]
    top = freq.topk(3, dim=1)
    rows = [
        [i + 1, *(f"{names[v]} ({p:.3f})" for v, p in zip(idx, val))]
        for i, (val, idx) in enumerate(zip(top.values.tolist(), top.indices.tolist()))
    ]
    return ["position", "most frequent", "second", "third"], rows


def sequence_sections(run: Run, x: torch.Tensor, log_r: torch.Tensor) -> list[Section]:
    header, rows = sequence_composition(run.env, x)
    return [
        (
            "Composition by position",
            f"<p>Fraction of the {len(x)} samples with each symbol at each position.</p>" + table(header, rows),
        )
    ]


def molecule_sections(run: Run, x: torch.Tensor, log_r: torch.Tensor, k: int = 12) -> list[Section]:
    """2-D drawings (RDKit) of the ``k`` distinct molecules of highest reward, with SMILES and reward."""
    from rdkit import Chem
    from rdkit.Chem import Draw

    from gflownet.screening import candidates

    best = sorted(candidates(run.env.to_mols(x.cpu()), log_r.tolist(), unique=True), key=lambda c: -c.log_reward)[:k]
    grid = Draw.MolsToGridImage(
        [Chem.MolFromSmiles(c.smiles) for c in best],
        molsPerRow=4,
        subImgSize=(260, 200),
        legends=[f"{i + 1}. R = {c.reward:.3g}" for i, c in enumerate(best)],
    )
    buffer = io.BytesIO()
    grid.save(buffer, format="PNG")
    rows = [[i + 1, c.smiles, c.reward, c.count] for i, c in enumerate(best)]
    return [
        (
            f"Top {len(best)} molecules",
            png_image(buffer.getvalue(), "2-D drawings of the best molecules")
            + table(["#", "SMILES", "reward", "count"], rows),
        )
    ]


#: environment class -> extra sections of its report
FAMILY_SECTIONS: dict[type[Environment], Callable[[Run, torch.Tensor, torch.Tensor], list[Section]]] = {
    HyperGrid: hypergrid_sections,
    Sequences: sequence_sections,
    FragmentEnv: molecule_sections,
}


def family_sections(run: Run, x: torch.Tensor, log_r: torch.Tensor) -> list[Section]:
    for cls in type(run.env).__mro__:
        if cls in FAMILY_SECTIONS:
            return FAMILY_SECTIONS[cls](run, x, log_r)
    return []


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1.5em; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; }
img { max-width: 100%; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
"""


def build_report(run: Run, n_samples: int = 10_000, top_k: int = 20, seed: int = 0) -> str:
    """The HTML of the report of ``run`` (``n_samples`` fresh samples, the ``top_k`` best)."""
    x, log_r = run.sample(n_samples, seed=seed)
    metrics = run.evaluate(0)
    metrics.update(sampled_metrics(run.env, x, log_r))
    c = run.config
    sections: list[Section] = [
        (
            "Run",
            table(
                ["environment", "parameters", "objective", "trajectories trained"],
                [[c.env, json.dumps(c.env_params), c.objective, metrics.pop("trajectories_trained")]],
            )
            + f"<details><summary>configuration</summary><pre>{html.escape(json.dumps(c.to_dict(), indent=2))}"
            "</pre></details>",
        ),
        (
            "Metrics",
            "<p>Exact metrics compare the model's terminal distribution, computed by dynamic "
            "programming, with R/Z; sampled ones come from the samples drawn for this page.</p>"
            + table(["metric", "value"], [[key, value] for key, value in metrics.items()]),
        ),
    ]
    training = [[k, v] for k, v in run.summary.items() if k not in metrics]  # the rest is in Metrics
    if training:
        sections.append(("Training", table(["key", "value"], training)))
    metrics_file = run.path / "metrics.jsonl" if run.path else None
    if metrics_file and metrics_file.exists():
        sections.append(("Training curves", image(plots.training_curves_figure(metrics_file), "training curves")))
    sections.append(("Rewards", image(reward_histogram(run.env, log_r), "reward histogram")))
    sections.extend(family_sections(run, x, log_r))
    header, rows = best_samples(run.env, x, log_r, top_k)
    sections.append((f"Top {len(rows)} distinct samples", table(header, rows)))
    title = f"gflownet report: {run.path.name if run.path else c.env}"
    body = "".join(f"<section><h2>{html.escape(t)}</h2>{content}</section>" for t, content in sections)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>gflownet {__version__}, {stamp}, {n_samples} samples (seed {seed}).</p>{body}</body></html>\n"
    )


def write_report(
    run: Run, out: str | Path | None = None, n_samples: int = 10_000, top_k: int = 20, seed: int = 0
) -> Path:
    """Write the report of ``run`` to ``out`` (default ``report.html`` in the run folder), atomically."""
    if out is None and run.path is None:
        raise ConfigError("a run without a folder needs an explicit out path for its report")
    path = Path(out) if out else run.path / "report.html"
    text = build_report(run, n_samples, top_k, seed).encode()
    atomic_write(path, lambda f: f.write(text))
    return path
