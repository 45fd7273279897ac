"""Reward-free, outcome-conditioned pretraining (OC-GFN; ALGORITHMS.md, objectives/oc.py).

Each step trains P_F(.|s, y), P_B(.|s', y), F(s|y) with teleported conditional DB on
    tau+  a trajectory of the novelty explorer (``gflownet.explore``); its end state
          becomes the outcome, y := x+, a success by construction;
    tau-  an on-policy rollout of the OC-GFN for the same y (success or failure);
    and   hindsight: earlier tau- relabelled with the outcome they reached, from a
          replay buffer (``gflownet.replay``).
With ``outcomes="uniform"`` the explorer is off and y is drawn uniformly.

It runs in the one training loop (``gflownet.trainer.Trainer``) through its hooks:
the conditioning width, the batch of a step, the evaluation (success rate: y drawn
uniformly, roll out P_F(.|y), the fraction that ends at y) and the checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from gflownet.config import RunConfig, _build, unknown_name
from gflownet.environments.base import Environment
from gflownet.errors import CheckpointError, ConfigError
from gflownet.explore import NoveltyExplorer
from gflownet.metrics import terminal_distribution, transitions
from gflownet.objectives.oc import DEFAULT_LOG_FLOOR, outcome_log_reward
from gflownet.policy import Policy, masked_log_softmax
from gflownet.replay import ReplayBuffer, hindsight_relabel
from gflownet.sampler import sample_backward, sample_forward
from gflownet.trainer import Trainer
from gflownet.trajectories import Trajectories

PRETRAIN_KIND = "oc_pretrain"
OUTCOME_SOURCES = ("explorer", "backward", "uniform")


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class OCConfig:
    outcomes: str = _f("explorer", "where training outcomes come from: 'explorer' (novelty GFlowNet) or 'uniform'")
    log_floor: float = _f(DEFAULT_LOG_FLOOR, "log R(x|y) of a failure (R = 0 has no log)")
    replay_capacity: int = _f(10_000, "hindsight replay buffer size (trajectories)")
    hindsight_batch: int = _f(16, "relabelled trajectories replayed per step (0: no hindsight)")
    explorer_hidden: int = _f(64, "width of the explorer's and RND's networks")
    explorer_lr: float = _f(1e-3, "Adam learning rate of the explorer and RND")
    success_samples: int = _f(1000, "outcomes drawn to measure the success rate at each evaluation")

    def check(self) -> "OCConfig":
        if self.outcomes not in OUTCOME_SOURCES:
            raise ConfigError(f"oc.outcomes must be one of {', '.join(OUTCOME_SOURCES)}, got {self.outcomes!r}")
        if not self.log_floor < 0:
            raise ConfigError(f"oc.log_floor must be < 0, got {self.log_floor}")
        for name in ("replay_capacity", "explorer_hidden", "success_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"oc.{name} must be >= 1, got {getattr(self, name)}")
        if self.hindsight_batch < 0:
            raise ConfigError(f"oc.hindsight_batch must be >= 0, got {self.hindsight_batch}")
        return self


def split_assignments(assignments: list[str]) -> tuple[OCConfig, list[str]]:
    """``--set`` items naming an ``OCConfig`` field (bare or as ``oc.KEY``) -> an OCConfig;
    the rest are returned for ``RunConfig.apply``."""
    names = {f.name for f in dataclasses.fields(OCConfig)}
    values, rest = {}, []
    for item in assignments:
        key, _, raw = item.partition("=")
        name = key.strip().removeprefix("oc.")
        if key.strip().startswith("oc.") and name not in names:
            raise unknown_name("oc parameter", name, names)
        if name in names:
            values[name] = _parse(raw)
        else:
            rest.append(item)
    return _build(OCConfig, values, "oc"), rest


def _parse(raw: str):
    from gflownet.config import _parse_value

    return _parse_value(raw)


# -- success rate -----------------------------------------------------------------------
@torch.no_grad()
def success_rate(
    env: Environment, policy: Policy, n: int, generator: torch.Generator | None = None, batch_size: int = 1024
) -> float:
    """Sampled: y drawn uniformly (``env.sample_outcomes``), x ~ P_F(.|y); the fraction with x = y."""
    hits = 0
    for start in range(0, n, batch_size):
        y = env.sample_outcomes(min(batch_size, n - start), generator)
        x = sample_forward(env, policy, len(y), cond=env.encode_outcome(y), generator=generator).terminal
        hits += int(env.same_outcome(x, y).sum())
    return hits / n


@torch.no_grad()
def conditional_log_probs(env: Environment, policy: Policy, outcomes: torch.Tensor, chunk: int = 1 << 15):
    """log P_F(.|s, y) ``[S, Y, A]`` and log F(s|y) ``[S, Y]`` at every state s (``env.all_states``)
    for every outcome y of ``outcomes`` ``[Y, *state_shape]``, in float64."""
    states = env.all_states()
    S, Y = len(states), len(outcomes)
    s_index = torch.arange(S, device=states.device).repeat_interleave(Y)
    y_index = torch.arange(Y, device=states.device).repeat(S)
    features, cond, masks = env.featurize(states), env.encode_outcome(outcomes), env.forward_mask(states)
    log_pf, log_flow = [], []
    for s_rows, y_rows in zip(s_index.split(chunk), y_index.split(chunk)):
        fwd, _, flow = policy.heads(features[s_rows], cond[y_rows])
        log_pf.append(masked_log_softmax(fwd, masks[s_rows]).double())
        log_flow.append(
            flow.double() if flow is not None else torch.zeros(len(s_rows), dtype=torch.float64, device=states.device)
        )
    return torch.cat(log_pf).view(S, Y, -1), torch.cat(log_flow).view(S, Y)


def exact_success_rate(env: Environment, log_pf: torch.Tensor, outcomes: torch.Tensor) -> float:
    """Exact: the mean over ``outcomes`` y of P(x = y | y), each by DP over the DAG;
    ``log_pf`` ``[S, Y, A]`` as ``conditional_log_probs`` returns it."""
    dag = transitions(env)
    at = env.state_index(outcomes)
    hits = [terminal_distribution(env, log_pf[:, j], dag)[at[j]] for j in range(len(outcomes))]
    return float(torch.stack(hits).mean())


# -- the trainer ----------------------------------------------------------------------------
class PretrainTrainer(Trainer):
    """The Trainer with outcome-conditioned steps; ``config.objective`` is set to ``oc_db``."""

    def __init__(self, config: RunConfig, oc: OCConfig | None = None, out=None, progress: bool = False):
        config.objective, config.objective_params = "oc_db", {}
        self.oc = (oc or OCConfig()).check()
        super().__init__(config, out, progress)
        t = config.train
        self.replay = ReplayBuffer(self.oc.replay_capacity, self.env.max_steps, self.env.exit_action)
        self.explorer = None
        if self.oc.outcomes == "explorer":
            self.explorer = NoveltyExplorer(self.env, self.oc.explorer_hidden, self.oc.explorer_lr)
        self.train_success = torch.zeros((), device=self.device)  # successes of tau- since the last log
        self.train_tries = 0
        if t.max_moves:
            raise ConfigError("outcome-conditioned pretraining needs complete trajectories (no --max-steps)")

    def cond_dim(self) -> int:
        if not self.env.has_outcomes:
            raise ConfigError(
                f"environment {self.config.env!r} declares no outcome space: it cannot be pretrained "
                "outcome-conditioned (it needs outcome_dim, encode_outcome, sample_outcomes)"
            )
        return self.env.outcome_dim

    def estimate_log_z(self):
        return None  # Z(y) = F(s_0|y) is 1 for every y by construction: nothing to estimate

    def collect(self) -> Trajectories:
        t, env = self.config.train, self.env
        parts = []
        if self.explorer is not None:
            positive = self.explorer.sample(t.batch_size, self.generator)
            self.explorer.step(positive)
            y = positive.terminal
            parts.append(hindsight_relabel(env, positive))
        else:
            y = env.sample_outcomes(t.batch_size, self.generator)
        cond = env.encode_outcome(y)
        if self.oc.outcomes == "backward":
            positive = sample_backward(env, self.policy, y, cond=cond, generator=self.generator)
            positive.log_reward = torch.zeros(len(y), device=self.device)
            parts.append(positive)
        negative = sample_forward(
            env,
            self.policy,
            t.batch_size,
            cond=cond,
            epsilon=t.epsilon,
            temperature=t.temperature,
            generator=self.generator,
        )
        success = env.same_outcome(negative.terminal, y)
        self.train_success += success.sum()
        self.train_tries += len(success)
        negative.log_reward = outcome_log_reward(success, self.oc.log_floor)
        parts.append(negative)
        if self.oc.hindsight_batch:
            self.replay.add(hindsight_relabel(env, negative))
            parts.append(self.replay.sample(self.oc.hindsight_batch, self.generator))
        return Trajectories.cat(parts, env.exit_action)

    def evaluate(self) -> dict:
        out = {
            "success_rate": success_rate(
                self.env, self.policy, self.oc.success_samples, torch.Generator(self.device).manual_seed(12345)
            )
        }
        if self.train_tries:
            out["train_success_rate"] = float(self.train_success) / self.train_tries
            self.train_success.zero_()
            self.train_tries = 0
        return out

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "kind": PRETRAIN_KIND,
            "oc": dataclasses.asdict(self.oc),
            "replay": self.replay.state_dict(),
            "explorer": self.explorer.checkpoint_state() if self.explorer is not None else None,
        }

    def load_state_dict(self, state: dict, source: str = "checkpoint") -> None:
        if state.get("kind") != PRETRAIN_KIND:
            raise CheckpointError(f"{source} is not an outcome-conditioned pretraining checkpoint")
        if state["oc"] != dataclasses.asdict(self.oc):
            raise CheckpointError(f"{source} was written with other pretraining settings: {state['oc']}")
        super().load_state_dict(state, source)
        self.replay.load_state_dict(state["replay"], self.device)
        if self.explorer is not None:
            self.explorer.load_checkpoint_state(state["explorer"])


def load_pretrained(path, device: str | None = None) -> PretrainTrainer:
    """The pretrained model in folder ``path`` (its ``checkpoint.pt``) on ``device`` (default: the
    device it was trained on), for fine-tuning and sampling. The tensors are read onto the CPU,
    then ``load_state_dict`` copies them onto the policy's device, so a checkpoint written on
    one device loads on any other (to resume pretraining itself, use ``Trainer.resume``)."""
    from pathlib import Path

    from gflownet import checkpoint

    file = Path(path) / "checkpoint.pt"
    state = checkpoint.load(file, map_location="cpu")
    if state.get("kind") != PRETRAIN_KIND:
        raise CheckpointError(
            f"{file} is not an outcome-conditioned pretraining checkpoint (make one with `gflownet pretrain`)"
        )
    config = RunConfig.from_dict(state["config"])
    if device:
        config.train.device = device
    trainer = PretrainTrainer(config, OCConfig(**state["oc"]))
    try:
        trainer.policy.load_state_dict(state["policy"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{file} does not fit its own configuration: {str(exc).splitlines()[0]}") from None
    trainer.step_count = int(state["step"])
    return trainer
