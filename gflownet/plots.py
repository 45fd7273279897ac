"""Pictures of a run: learned vs target distribution, and the training curves."""

from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gflownet.checkpoint import atomic_write  # noqa: E402
from gflownet.errors import ConfigError  # noqa: E402
from gflownet.metrics import policy_log_probs, target_distribution, terminal_distribution  # noqa: E402


def _save(fig, path: Path) -> Path:
    data = png_bytes(fig)
    atomic_write(path, lambda f: f.write(data))
    return path


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (closed afterwards)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def grid_heatmap(env, policy, path: Path) -> Path:
    """``grid_heatmap_figure`` written to ``path`` (PNG)."""
    return _save(grid_heatmap_figure(env, policy), path)


def grid_heatmap_figure(env, policy):
    """Side-by-side heat maps of R/Z and of the model's exact P_T on a hypergrid
    (for D > 2, the marginal over the first two coordinates)."""
    log_pf, _ = policy_log_probs(env, policy)
    model = terminal_distribution(env, log_pf).float().cpu()
    target, _ = target_distribution(env)
    shape = (env.side,) * env.dim

    def as_image(p):  # all_states() enumerates coordinate 0 fastest
        image = p.reshape(shape[::-1])
        return image.sum(tuple(range(env.dim - 2))) if env.dim > 2 else image

    images = [as_image(target.float().cpu()), as_image(model)]
    vmax = max(float(i.max()) for i in images)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, image, title in zip(axes, images, ["target R(x)/Z", "learned P_T(x) (exact)"]):
        shown = ax.imshow(image.numpy(), origin="lower", cmap="viridis", vmin=0, vmax=vmax)
        ax.set(title=title, xlabel="x0", ylabel="x1")
    fig.colorbar(shown, ax=axes, shrink=0.85)
    return fig


def training_curves(metrics_path: Path, path: Path) -> Path:
    """``training_curves_figure`` written to ``path`` (PNG)."""
    return _save(training_curves_figure(metrics_path), path)


# Evaluation metrics drawn against trajectories, the first one a run's records hold.
_EVAL_CURVES = {"l1": "exact L1 to R/Z", "log_z_error": "|log Z estimate - log Z|"}


def training_curves_figure(metrics_path: Path):
    """Loss and (where evaluated) exact L1, else the log Z error, against trajectories seen."""
    train, evals = [], []
    for line in Path(metrics_path).read_text().splitlines():
        record = json.loads(line)
        (evals if record["kind"] == "eval" else train).append(record)
    shown = next((k for k in _EVAL_CURVES if evals and k in evals[-1]), None)
    fig, axes = plt.subplots(1, 2 if shown else 1, figsize=(10 if shown else 5, 3.8), squeeze=False)
    axes[0, 0].plot([r["trajectories"] for r in train], [r["loss"] for r in train])
    axes[0, 0].set(xlabel="trajectories", ylabel="loss", yscale="log", title="training loss")
    if shown:
        points = [(r["trajectories"], r[shown]) for r in evals if shown in r]
        axes[0, 1].plot(*zip(*points), marker="o")
        axes[0, 1].set(xlabel="trajectories", ylabel=_EVAL_CURVES[shown], yscale="log", title=_EVAL_CURVES[shown])
    return fig


def plot_run(run, out: Path | None = None) -> list[Path]:
    """The PNGs of a run (training curves; the heat map for hypergrids) in ``out``
    (default: the run folder); returns their paths."""
    if run.path is None:
        raise ConfigError("only a run with a folder (its metrics.jsonl) can be plotted")
    out = Path(out or run.path)
    written = [training_curves(run.path / "metrics.jsonl", out / "training_curve.png")]
    if run.config.env == "hypergrid":
        written.append(grid_heatmap(run.env, run.policy, out / "heatmap.png"))
    return written
