"""Pictures of a run: learned vs target distribution, and the training curves."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gflownet.checkpoint import atomic_write  # noqa: E402
from gflownet.metrics import policy_log_probs, target_distribution, terminal_distribution  # noqa: E402


def _save(fig, path: Path) -> Path:
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def grid_heatmap(env, policy, path: Path) -> Path:
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
    return _save(fig, path)


def training_curves(metrics_path: Path, path: Path) -> Path:
    """Loss and (where evaluated) exact L1 against trajectories seen."""
    train, evals = [], []
    for line in Path(metrics_path).read_text().splitlines():
        record = json.loads(line)
        (evals if record["kind"] == "eval" else train).append(record)
    fig, axes = plt.subplots(1, 2 if evals else 1, figsize=(10 if evals else 5, 3.8), squeeze=False)
    axes[0, 0].plot([r["trajectories"] for r in train], [r["loss"] for r in train])
    axes[0, 0].set(xlabel="trajectories", ylabel="loss", yscale="log", title="training loss")
    if evals:
        axes[0, 1].plot([r["trajectories"] for r in evals], [r["l1"] for r in evals], marker="o")
        axes[0, 1].set(xlabel="trajectories", ylabel="exact L1 to R/Z", yscale="log", title="exact L1")
    return _save(fig, path)
