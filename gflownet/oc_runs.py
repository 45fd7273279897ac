"""Run folders of outcome-conditioned pretraining and of fine-tuning, as the CLI uses them.

    pre/  config.json, oc.json, metrics.jsonl, checkpoint.pt (kind "oc_pretrain"), summary.json
    ft/   finetune.json, checkpoint.pt (kind "oc_finetune": the sampler's policy), summary.json

``load_sampler`` opens either for ``gflownet sample`` and ``gflownet evaluate``: a pretrained OC-GFN samples
y uniformly and rolls out P_F(.|y) (columns: the object, then ``success``); a
fine-tuned one samples R' (columns: the object, then ``log_reward`` = log R'(x)).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gflownet import checkpoint
from gflownet.config import RunConfig, _build, unknown_name
from gflownet.environments import make_env
from gflownet.errors import CheckpointError, ConfigError
from gflownet.finetune import (
    METHODS,
    Amortised,
    AmortisedSettings,
    DownstreamTrainer,
    ExactMarginal,
    RewardSwap,
    TablePolicy,
    IndexFeatures,
    downstream_log_reward,
)
from gflownet.metrics import (
    distances,
    policy_log_probs,
    sampled_metrics,
    target_distribution,
    terminal_distribution,
)
from gflownet.policy import Policy
from gflownet.pretrain import PRETRAIN_KIND, OCConfig, PretrainTrainer, load_pretrained
from gflownet.run import write_objects_csv
from gflownet.sampler import sample_forward
from gflownet.trainer import resolve_device

FINETUNE_KIND = "oc_finetune"


def pretrain(config: RunConfig, oc: OCConfig, out: Path, overwrite: bool = False, progress: bool = True) -> dict:
    """Pretrain (or resume) the OC-GFN in ``out``; returns the summary."""
    from gflownet.cli import RUN_FILES, run_in_folder

    trainer = PretrainTrainer(config, oc, out, progress=progress)  # validates before touching the disk
    return run_in_folder(
        trainer, out, overwrite, files=RUN_FILES + ("oc.json",), extra_json={"oc.json": dataclasses.asdict(oc)}
    )


# Fine-tuning trajectories where none are asked for: the amortised predictor makes several updates
# of replayed transitions a step (2,000 trajectories made a 32 x 32 grid converge); a plain
# GFlowNet on R' makes one.
DEFAULT_TRAJECTORIES = {"amortised": 2_000}
PLAIN_TRAJECTORIES = 16_000


@dataclass
class FinetuneConfig:
    method: str = "amortised"
    reward: str = "default"
    trajectories: int | None = None  # None: DEFAULT_TRAJECTORIES of the method, else PLAIN_TRAJECTORIES
    batch_size: int = 16
    lr: float = 1e-3  # continue / scratch; the amortised predictor's is amortised.lr
    seed: int = 0
    device: str = "cpu"
    max_reward_calls: int | None = None  # distinct R' evaluations allowed (None: no limit)
    amortised: AmortisedSettings = field(default_factory=AmortisedSettings)

    def check(self) -> "FinetuneConfig":
        if self.method not in METHODS:
            raise ConfigError(f"unknown fine-tuning method {self.method!r} (known: {', '.join(METHODS)})")
        if self.trajectories is None:
            self.trajectories = DEFAULT_TRAJECTORIES.get(self.method, PLAIN_TRAJECTORIES)
        for name in ("trajectories", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"finetune {name} must be >= 1, got {getattr(self, name)}")
        if self.max_reward_calls is not None and self.max_reward_calls < 1:
            raise ConfigError(f"finetune max_reward_calls must be >= 1, got {self.max_reward_calls}")
        if not self.lr > 0:
            raise ConfigError(f"finetune lr must be > 0, got {self.lr}")
        if self.method != "amortised" and self.amortised != AmortisedSettings():
            raise ConfigError(f"the amortised settings (--set KEY=VALUE) do not apply to --method {self.method}")
        self.amortised.check()
        return self


def finetune_config(method: str = "amortised", reward: str = "default", **params) -> FinetuneConfig:
    """A FinetuneConfig from keyword parameters, as ``gflownet finetune --set KEY=VALUE`` reads them:
    an ``AmortisedSettings`` name (bare or ``amortised.KEY``; ``amortised__KEY`` as a keyword) or
    another FinetuneConfig field (``finetune.KEY`` where a name is both, as ``lr``). Not yet checked."""
    amortised_names = {f.name for f in dataclasses.fields(AmortisedSettings)}
    own_names = {f.name for f in dataclasses.fields(FinetuneConfig)} - {"method", "reward", "amortised"}
    amortised, own = {}, {}
    for key, value in params.items():
        section, _, name = key.replace("__", ".").rpartition(".")
        if section in ("", "amortised") and name in amortised_names:
            amortised[name] = value
        elif section in ("", "finetune") and name in own_names:
            own[name] = value
        else:
            raise unknown_name("finetune parameter", key, amortised_names | own_names)
    return FinetuneConfig(method, reward, amortised=_build(AmortisedSettings, amortised, "amortised"), **own)


def check_environment(pre: Path, saved: RunConfig, env: str | None, env_params: dict) -> None:
    """A clear error when the user names an environment other than the one ``pre`` was pretrained on."""
    if env is None and not env_params:
        return
    wanted = {**saved.env_params, **env_params}
    if (env or saved.env) != saved.env or wanted != saved.env_params:
        raise CheckpointError(
            f"{pre} was pretrained on {saved.env} {saved.env_params}, not on "
            f"{env or saved.env} {wanted}: pretrain that environment first"
        )


# Below this success rate a pretrained OC-GFN's marginal over outcomes is far from R'/Z' (the
# formulas assume P_F(.|y) reaches y): fine-tuning warns.
LOW_SUCCESS_RATE = 0.9


def pretrained_success_rate(pre: Path) -> float | None:
    """The success rate in ``pre/summary.json`` (None where pretraining wrote none)."""
    summary = pre / "summary.json"
    return json.loads(summary.read_text()).get("success_rate") if summary.exists() else None


def finetune(
    pre: Path,
    ft: FinetuneConfig,
    out: Path,
    env: str | None = None,
    env_params: dict | None = None,
    progress: bool = True,
) -> dict:
    """Adapt the OC-GFN pretrained in ``pre`` to ``ft.reward`` by ``ft.method``; writes ``out``."""
    ft.check()
    pretrained = load_pretrained(pre, ft.device)
    check_environment(pre, pretrained.config, env, env_params or {})
    base_env = pretrained.env
    log_reward = downstream_log_reward(base_env, ft.reward)
    log_reward(base_env.sample_outcomes(2))  # a missing or broken reward fails now, before any training
    torch.manual_seed(ft.seed)
    generator = torch.Generator(pretrained.device).manual_seed(ft.seed)
    start = time.perf_counter()
    summary = {"method": ft.method, "reward": ft.reward, "pretrained_success_rate": pretrained_success_rate(pre)}
    rate = summary["pretrained_success_rate"]
    if ft.method in ("exact", "exact_visits", "amortised") and rate is not None and rate < LOW_SUCCESS_RATE:
        warnings.warn(
            f"{pre} reaches the outcome asked for in {rate:.0%} of tries; the marginal over outcomes "
            "follows R' only as far as pretraining converged: pretrain longer (or use --method continue)",
            stacklevel=2,
        )
    if ft.method.startswith("exact"):
        _check_exact_budget(base_env, ft.max_reward_calls)
        sampler = ExactMarginal(
            base_env, pretrained.policy, log_reward, flows="visits" if ft.method == "exact_visits" else "head"
        )
        state, spec = {"log_pf": sampler.log_pf.float().cpu()}, None
        summary["reward_calls"] = sampler.reward_calls
    elif ft.method == "amortised":
        model = pretrained.config.model
        amortised = Amortised(
            base_env,
            pretrained.policy,
            log_reward,
            model.hidden,
            model.layers,
            max_reward_calls=ft.max_reward_calls,
            **dataclasses.asdict(ft.amortised),
        )
        for _ in _steps(math.ceil(ft.trajectories / ft.batch_size), progress):
            _, loss = amortised.step(ft.batch_size, generator)
        summary.update(final_loss=loss, reward_calls=amortised.reward_calls, amortised=dataclasses.asdict(ft.amortised))
        spec = {
            "hidden": model.hidden,
            "layers": model.layers,
            "backward": "uniform",
            "flow": False,
            "log_z": False,
            "arch": model.arch,
        }
        state = {"policy": amortised.n.state_dict()}
    else:
        config = RunConfig.from_dict(pretrained.config.to_dict())
        config.objective, config.objective_params = "db", {}
        t = config.train
        t.trajectories, t.batch_size, t.lr, t.seed, t.device = ft.trajectories, ft.batch_size, ft.lr, ft.seed, ft.device
        t.lr_schedule = "constant"
        init = pretrained.policy if ft.method == "continue" else None
        trainer = DownstreamTrainer(config, log_reward, init)
        steps = _downstream_steps(ft)
        for _ in _steps(steps, progress):
            trainer.train_step()
        m = config.model
        spec = {
            "hidden": m.hidden,
            "layers": m.layers,
            "backward": m.backward,
            "flow": True,
            "log_z": False,
            "arch": m.arch,
        }
        state = {"policy": trainer.policy.state_dict()}
        summary["reward_calls"] = steps * ft.batch_size  # one R' call per sample
    summary["max_reward_calls"] = ft.max_reward_calls
    summary["seconds"] = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    checkpoint.save(
        out / "checkpoint.pt",
        {
            "kind": FINETUNE_KIND,
            "method": ft.method,
            "pretrained": str(pre),
            "config": pretrained.config.to_dict(),
            "finetune": dataclasses.asdict(ft),
            "policy_spec": spec,
            **state,
        },
    )
    checkpoint.write_json(out / "finetune.json", {"pretrained": str(pre), **dataclasses.asdict(ft)})
    sampler = load_sampler(out, ft.device)
    summary.update(sampler.exact_metrics())
    checkpoint.write_json(out / "summary.json", summary)
    return summary


def _check_exact_budget(env, max_reward_calls: int | None) -> None:
    """The exact marginal reads R' on every outcome: refuse before any call if they exceed the budget."""
    if max_reward_calls is not None and env.enumerable and env.has_outcomes:
        n = len(env.all_outcomes())
        if n > max_reward_calls:
            raise ConfigError(
                f"the exact marginal evaluates R' on all {n} outcomes, more than --max-reward-calls "
                f"{max_reward_calls}; use --method amortised"
            )


def _downstream_steps(ft: FinetuneConfig) -> int:
    """Steps of a plain GFlowNet on R' (one call per sample): ``ft.trajectories``, cut to the budget."""
    steps = math.ceil(ft.trajectories / ft.batch_size)
    if ft.max_reward_calls is None:
        return steps
    if ft.max_reward_calls < ft.batch_size:
        raise ConfigError(
            f"--max-reward-calls {ft.max_reward_calls} is less than one batch of {ft.batch_size} samples "
            f"(--method {ft.method} evaluates R' on every sample)"
        )
    return min(steps, ft.max_reward_calls // ft.batch_size)


def _steps(n: int, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(
        range(n),
        disable=not progress,
        desc="finetune",
        unit="step",
        mininterval=0.5,
    )


class Sampler:
    """A sampler read from a run folder. A pretrained OC-GFN (``log_reward`` None) draws y uniformly
    and rolls out P_F(.|y); a fine-tuned one rolls out its policy and scores x with ``log_reward``.
    ``finetune``: the settings it was fine-tuned with (the saved ``FinetuneConfig`` as a dict; None for
    a pretrained model)."""

    def __init__(self, env, policy, log_reward=None, finetune: dict | None = None):
        self.env, self.policy, self.log_reward, self.finetune = env, policy, log_reward, finetune
        self._rollout_env = IndexFeatures(env) if isinstance(policy, TablePolicy) else env

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0):
        """``n`` objects ``[n, *state_shape]`` and their extra CSV columns (name -> ``[n]``)."""
        if n < 1:
            raise ConfigError(f"the number of samples must be >= 1, got {n}")
        generator = torch.Generator(self.env.device).manual_seed(seed)
        if self.log_reward is None:
            y = self.env.sample_outcomes(n, generator)
            x = sample_forward(self.env, self.policy, n, cond=self.env.encode_outcome(y), generator=generator).terminal
            return x, {"success": self.env.same_outcome(x, y).long()}
        x = sample_forward(self._rollout_env, self.policy, n, generator=generator).terminal
        return x, {"log_reward": self.log_reward(x)}

    def write_csv(self, path, n: int, seed: int = 0) -> Path:
        x, columns = self.sample(n, seed)
        return write_objects_csv(self.env, x, columns, path)

    def evaluate(self, n_samples: int = 10_000, seed: int = 0) -> dict:
        """What ``gflownet evaluate`` prints for an OC-GFN run folder. Pretrained: the success rate of
        ``n_samples`` draws (y uniform). Fine-tuned: the exact metrics to R'/Z' where the space is
        enumerable, and the metrics of ``n_samples`` samples under R' (no modes: those are the
        environment's own reward's)."""
        out = self.exact_metrics()
        if not n_samples:
            return out
        x, columns = self.sample(n_samples, seed)
        if self.log_reward is None:
            return {**out, "n_samples": n_samples, "success_rate": float(columns["success"].float().mean())}
        sampled = sampled_metrics(self.env, x, columns["log_reward"])
        return {**out, **{k: v for k, v in sampled.items() if not k.startswith("modes")}}

    @torch.no_grad()
    def exact_metrics(self) -> dict:
        """Exact L1 / KL / JSD of a fine-tuned sampler to R'/Z' where the space is enumerable, else {}."""
        if self.log_reward is None or not self.env.enumerable:
            return {}
        if isinstance(self.policy, TablePolicy):
            log_pf = self.policy.log_pf
        else:
            log_pf, _ = policy_log_probs(self.env, self.policy)
        target, _ = target_distribution(RewardSwap(self.env, self.log_reward))
        return distances(terminal_distribution(self.env, log_pf), target)


def load_sampler(path: str | Path, device: str | None = None) -> Sampler:
    """The sampler of a pretraining or fine-tuning run folder (see the module docstring)."""
    path = Path(path)
    state = checkpoint.load(path / "checkpoint.pt", map_location="cpu")
    kind = state.get("kind")
    if kind == PRETRAIN_KIND:
        trainer = load_pretrained(path, device)
        return Sampler(trainer.env, trainer.policy)
    if kind != FINETUNE_KIND:
        raise CheckpointError(f"{path} holds neither a pretrained nor a fine-tuned OC-GFN")
    config = RunConfig.from_dict(state["config"])
    env = make_env(config.env, device=resolve_device(device or state["finetune"]["device"]), **config.env_params)
    if state["method"].startswith("exact"):
        policy = TablePolicy(state["log_pf"])
    else:
        policy = Policy(env, **state["policy_spec"])
        policy.load_state_dict(state["policy"])
    settings = state["finetune"]
    return Sampler(env, policy.to(env.device), downstream_log_reward(env, settings["reward"]), settings)
