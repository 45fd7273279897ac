"""The one training loop: sample -> score -> loss -> step -> log -> evaluate -> checkpoint.

Every objective goes through it; the objective says which heads the policy
needs. A run folder holds ``config.json``, ``metrics.jsonl`` (one JSON object
per line), ``checkpoint.pt`` (atomic, resumable) and ``summary.json``.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from gflownet.environments import make_env
from gflownet import checkpoint
from gflownet.config import RunConfig
from gflownet.compiled import CompiledRollout, use_compiled
from gflownet.distributed import DataParallel, stream_seed
from gflownet import graphed
from gflownet.errors import CheckpointError, ConfigError, GFlowNetError
from gflownet.metrics import exact_metrics, transitions
from gflownet.policy import Policy
from gflownet.reward_pool import Deferred, scores_in_workers, submit_log_reward
from gflownet.sampler import sample_forward
from gflownet.objectives import get_objective
from gflownet.optim import Adam

# Settings that may change when a run is resumed: they do not affect the parameters.
RUNTIME_FIELDS = {"device", "threads", "compile", "cuda_graph", "log_every", "eval_every", "checkpoint_every"}
# Environment parameters of the same kind (where rewards are computed, not what they are).
RUNTIME_ENV_PARAMS = {"reward_workers"}
# Exact evaluation is skipped above this many (state, action) pairs (the DP's tables).
MAX_EXACT_PAIRS = 1 << 24


_DEFAULT_THREADS = torch.get_num_threads()
# Below this batch size one thread is fastest: the matrices are too small to split.
# Measured on a 2-core machine (4-D hypergrid, 2x256 MLP): batch 16 ran ~10 % faster on
# one thread, batch 256 ~30 % faster on two.
MULTITHREAD_MIN_BATCH = 64


def set_threads(threads: int, batch_size: int) -> None:
    """torch's CPU threads: ``threads``, or with 0 the fastest choice for ``batch_size``."""
    if threads <= 0:
        threads = 1 if batch_size < MULTITHREAD_MIN_BATCH else _DEFAULT_THREADS
    torch.set_num_threads(threads)


def resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r} (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA device")
    return device


class Trainer:
    """Builds environment, policy and optimiser from a ``RunConfig`` and trains.

    ``out`` is the run folder (None: keep nothing on disk). ``world``: this process's
    place in a data-parallel group (``gflownet.distributed``), or None; then each rank
    samples its share of ``train.batch_size`` and only rank 0 writes to ``out``.
    """

    def __init__(
        self,
        config: RunConfig,
        out: str | Path | None = None,
        progress: bool = False,
        world: DataParallel | None = None,
    ):
        self.config, self.out, self.progress, self.world = config, Path(out) if out else None, progress, world
        self.writes = world is None or world.is_main
        t = config.train
        for name in ("batch_size", "trajectories", "log_every", "checkpoint_every"):
            if getattr(t, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(t, name)}")
        if not (
            t.lr > 0
            and t.lr_logz > 0
            and 0 < t.lr_final <= 1
            and 0 <= t.lr_decay_start <= 1
            and 0 <= t.epsilon <= 1
            and t.temperature > 0
        ):
            raise ConfigError(
                "need lr > 0, lr_logz > 0, 0 < lr_final <= 1, 0 <= lr_decay_start <= 1, "
                "0 <= epsilon <= 1, temperature > 0"
            )
        if t.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"train.lr_schedule must be 'constant' or 'cosine', got {t.lr_schedule!r}")
        self.device = resolve_device(t.device)
        set_threads(t.threads, t.batch_size // (world.world_size if world else 1))
        self.objective = get_objective(config.objective)
        self.objective_params = self.objective.check_params(config.objective_params)
        if t.max_moves < 0 or (t.random_cut and t.max_moves < 1):
            raise ConfigError(f"train.max_moves must be >= 0 (>= 1 with random_cut), got {t.max_moves}")
        torch.manual_seed(t.seed)
        random.seed(t.seed)
        self.env = make_env(config.env, device=self.device, **config.env_params)
        if "state_energy" in self.objective.needs and not self.env.has_energy:
            raise ConfigError(
                f"objective {config.objective!r} needs an energy of every state, and environment "
                f"{config.env!r} defines no log_energy"
            )
        m = config.model
        needs = self.objective.needs
        if self.cond_dim() and "state_energy" in needs:
            raise ConfigError(
                f"objective {config.objective!r} needs an energy of every state; it is not defined "
                "for a conditioned reward (set beta_max=0)"
            )
        self.policy = Policy(
            self.env,
            m.hidden,
            m.layers,
            m.backward,
            flow="log_flow" in needs,
            log_z="log_z" in needs,
            arch=m.arch,
            cond_dim=self.cond_dim(),
        )
        self.policy.to(self.device)
        self.local_batch = world.local_batch(t.batch_size) if world else t.batch_size
        if world:
            world.broadcast_parameters(self.policy)
        log_z = {id(p) for p in self.policy.log_z_parameters()}
        # whether to capture the step as a CUDA graph is decided at the first step (gflownet.graphed)
        self._graph_pending = graphed.use_cuda_graph(t.cuda_graph, self.device)
        self.graphed = None
        self.optimizer = Adam(
            fused=True,
            params=[
                {"params": [p for p in self.policy.parameters() if id(p) not in log_z], "lr": t.lr},
                {"params": self.policy.log_z_parameters(), "lr": t.lr_logz},
            ],
        )
        self.base_lrs = [t.lr, t.lr_logz]
        self._lr_factor = None  # of the learning rates set last
        self.total_steps = math.ceil(t.trajectories / t.batch_size)
        self.step_count = 0
        self.generator = torch.Generator(self.device).manual_seed(self._stream_seed())
        # the same draws and actions as sample_forward, so a run may switch it on resume
        self.rollout = None
        if use_compiled(
            t.compile, self.env, self.policy, self.cond_dim(), t.max_moves, self.local_batch, self.total_steps
        ):
            self.rollout = CompiledRollout(self.env, self.policy, self.local_batch, t.temperature, t.epsilon)
        self.transitions = torch.zeros((), dtype=torch.long, device=self.device)  # transitions trained on
        self.elapsed = 0.0  # seconds spent training (evaluation excluded), across resumes
        self.exact = self.env.enumerable and self.env.n_states * self.env.n_actions <= MAX_EXACT_PAIRS
        self._dag = None
        self._metrics_offset = 0  # bytes of metrics.jsonl that belong to the run so far (resume)
        self.loggers = []  # more sinks of the metrics records (gflownet.tracking)
        self._pending_reward = None  # (trajectories, Deferred log R) while worker processes score them

    # -- hooks a task overrides (outcome-conditioned pretraining: gflownet.pretrain) ---
    def cond_dim(self) -> int:
        """Width of the policy's conditioning tensor: the environment's ``cond_dim`` where its
        reward is conditioned (temperature), else 0."""
        return getattr(self.env, "cond_dim", 0)

    def collect(self):
        """The scored trajectories of one training step: a fresh on-policy batch."""
        t = self.config.train
        if self.rollout is not None:
            traj = self.rollout.sample(self.generator)
        else:
            cond = self.env.sample_cond(self.local_batch, self.generator) if self.cond_dim() else None
            traj = sample_forward(
                self.env,
                self.policy,
                self.local_batch,
                cond=cond,
                epsilon=t.epsilon,
                temperature=t.temperature,
                generator=self.generator,
                max_moves=self._cut(),
            )
        pending = self._score(traj)
        if scores_in_workers(self.env):  # learn() runs the forward pass while the workers score
            self._pending_reward = (traj, pending)
        else:
            traj.log_reward = pending.result()
        return traj

    def estimate_log_z(self) -> float | None:
        return self.policy.estimate_log_z(self.env, self.objective.needs)

    # -- one step -------------------------------------------------------------------
    def _schedule(self) -> float:
        t = self.config.train
        if t.lr_schedule == "constant":
            return 1.0
        start = t.lr_decay_start * self.total_steps
        progress = max(self.step_count - start, 0) / max(self.total_steps - start, 1)
        return t.lr_final + (1 - t.lr_final) * 0.5 * (1 + math.cos(math.pi * progress))

    def _stream_seed(self) -> int:
        """Seed of the sampling stream: ``train.seed``; per rank (and step) when data-parallel."""
        seed = self.config.train.seed
        return seed if self.world is None else stream_seed(seed, self.world.rank, self.step_count)

    def train_step(self) -> torch.Tensor:
        """One optimisation step on the batch ``collect`` gives; returns the (detached) loss.
        Replays a CUDA graph of the whole step where ``train.cuda_graph`` allows one."""
        if self._graph_pending:
            self._graph_pending = False
            reason, forced = graphed.unsupported(self), self.config.train.cuda_graph == "true"
            if reason is None and (forced or graphed.pays_off(self.env, self.local_batch)):
                self.graphed = graphed.GraphedStep(self)
            elif reason and forced:
                raise ConfigError(f"train.cuda_graph=true: the step cannot be captured here: {reason}")
        if self.graphed is None:
            return self.learn(self.collect())
        self._apply_schedule()
        loss, transitions = self.graphed.step()
        self.last_trajectories = self.graphed.trajectories
        self.transitions += transitions
        self.step_count += 1
        return loss

    def _apply_schedule(self) -> None:
        """The learning rates of this step (in place where they are tensors read by a CUDA graph)."""
        factor = self._schedule()
        if factor == self._lr_factor:  # constant most of the run: no kernel launch then
            return
        self._lr_factor = factor
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(base * factor)
            else:
                group["lr"] = base * factor

    def learn(self, traj) -> torch.Tensor:
        """One optimisation step on scored trajectories (gradients averaged over the ranks
        when data-parallel); returns the (detached) loss."""
        t = self.config.train
        self._apply_schedule()
        self.transitions += traj.lengths.sum()
        self.last_trajectories = traj
        evaluation = self.policy.evaluate(self.env, traj, self.objective.needs)
        if traj.log_reward is None and self._pending_reward and self._pending_reward[0] is traj:
            traj.log_reward = evaluation.log_reward = self._pending_reward[1].result()
            self._pending_reward = None
        loss = self.objective(evaluation, **self.objective_params)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.world:
            self.world.average_gradients(self.policy.parameters())
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), t.grad_clip)
        self.optimizer.step()
        self.step_count += 1
        return loss.detach()

    def _cut(self):
        """Moves after which each rollout is cut: None, an int or ``[B]``."""
        t = self.config.train
        if t.max_moves == 0:
            return None
        if not t.random_cut:
            return t.max_moves
        return torch.randint(1, t.max_moves + 1, (self.local_batch,), device=self.device, generator=self.generator)

    def _score(self, traj) -> Deferred:
        """log R of the trajectories that exited (the others are never scored: 0); scoring
        starts now where the environment scores in worker processes."""
        rows = slice(None) if traj.complete is None else traj.complete
        pending = submit_log_reward(self.env, traj.terminal[rows], None if traj.cond is None else traj.cond[rows])
        if traj.complete is None:
            return pending

        def padded():
            log_reward = torch.zeros(len(traj), device=self.device)
            log_reward[traj.complete] = pending.result()
            return log_reward

        return Deferred(padded)

    def evaluate(self) -> dict:
        """Exact metrics where the space is enumerable; else the log Z error where the
        environment knows its exact log Z; else an empty dict."""
        log_z = self.estimate_log_z()
        if self.exact:
            if self._dag is None:
                self._dag = transitions(self.env)
            return exact_metrics(self.env, self.policy, log_z, self._dag)
        try:
            true_log_z = self.env.log_partition()
        except NotImplementedError:
            return {}
        out = {"true_log_z": true_log_z}
        if log_z is not None:
            out.update(log_z=log_z, log_z_error=abs(log_z - true_log_z))
        return out

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> dict:
        t = self.config.train
        eval_steps = math.ceil(t.eval_every / t.batch_size) if t.eval_every > 0 else 0
        metrics_file = self._open_metrics()
        bar = tqdm(
            total=self.total_steps,
            initial=self.step_count,
            disable=not (self.progress and self.writes),
            desc="train",
            unit="step",
            mininterval=0.5,
        )
        window, window_start, window_steps = torch.zeros((), device=self.device), time.perf_counter(), 0
        last, evaluation = {}, {}
        try:
            while self.step_count < self.total_steps:
                start = time.perf_counter()
                window += self.train_step()
                window_steps += 1
                self.elapsed += time.perf_counter() - start
                bar.update(1)
                step = self.step_count
                at_end = step == self.total_steps
                if step % t.log_every == 0 or at_end:
                    loss = float(window) / window_steps
                    if not math.isfinite(loss):
                        raise GFlowNetError(
                            f"training diverged at step {step}: the loss is {loss}; "
                            "the last checkpoint holds the parameters before it"
                        )
                    seconds = time.perf_counter() - window_start
                    last = {
                        "kind": "train",
                        "step": step,
                        "trajectories": step * t.batch_size,
                        "transitions": int(self.transitions),
                        "loss": loss,
                        "log_z": self.estimate_log_z(),
                        "lr": float(self.optimizer.param_groups[0]["lr"]),
                        "traj_per_s": window_steps * t.batch_size / seconds,
                    }
                    self._log(metrics_file, last)
                    bar.set_postfix(loss=f"{loss:.3g}")
                    window.zero_()
                    window_steps, window_start = 0, time.perf_counter()
                if (eval_steps and step % eval_steps == 0) or at_end:
                    evaluation = self.evaluate()
                    if evaluation:
                        self._log(
                            metrics_file,
                            {"kind": "eval", "step": step, "trajectories": step * t.batch_size, **evaluation},
                        )
                        shown = "l1" if "l1" in evaluation else "log_z_error"
                        if shown in evaluation:
                            bar.set_postfix({"loss": last.get("loss"), shown: f"{evaluation[shown]:.3g}"})
                if self.out and self.writes and (step % t.checkpoint_every == 0 or at_end):
                    metrics_file.flush()
                    self.save_checkpoint()
        finally:
            bar.close()
            if metrics_file:
                metrics_file.close()
        summary = {
            "steps": self.step_count,
            "trajectories": self.step_count * t.batch_size,
            "train_seconds": self.elapsed,
            "traj_per_s": self.step_count * t.batch_size / max(self.elapsed, 1e-9),
            **{f"final_{k}": v for k, v in last.items() if k in ("loss", "log_z")},
            **(evaluation if self.step_count == self.total_steps and evaluation else self.evaluate()),
        }
        if self.out and self.writes:
            checkpoint.write_json(self.out / "summary.json", summary)
        return summary

    def _open_metrics(self):
        if not (self.out and self.writes):
            return None
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "metrics.jsonl"
        f = open(path, "ab")
        f.truncate(self._metrics_offset if path.exists() else 0)
        f.seek(0, 2)
        return f

    def _log(self, f, record: dict) -> None:
        if f:
            f.write((json.dumps(record) + "\n").encode())
        for logger in self.loggers:
            logger.log(record)

    # -- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict:
        metrics = self.out / "metrics.jsonl" if self.out else None
        return {
            "config": self.config.to_dict(),
            "step": self.step_count,
            "transitions": self.transitions.cpu(),
            "elapsed": self.elapsed,
            "policy": self.policy.state_dict(),
            "optimizer": self._optimizer_state(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "metrics_offset": metrics.stat().st_size if metrics and metrics.exists() else 0,
        }

    def _optimizer_state(self) -> dict:
        """Adam's state with plain learning rates (tensors while a CUDA graph reads them)."""
        state = self.optimizer.state_dict()
        for group in state["param_groups"]:
            group["lr"] = float(group["lr"])
        return state

    def save_checkpoint(self) -> None:
        checkpoint.save(self.out / "checkpoint.pt", self.state_dict())

    def load_state_dict(self, state: dict, source: str = "checkpoint") -> None:
        diffs = [
            d for d in checkpoint.config_difference(_comparable(state["config"]), _comparable(self.config.to_dict()))
        ]
        if diffs:
            raise CheckpointError(f"{source} was written by a run with another configuration: " + "; ".join(diffs))
        try:
            self.policy.load_state_dict(state["policy"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{source} does not fit this model: {str(exc).splitlines()[0]}") from None
        for group in self.optimizer.param_groups:  # not the writer's: a graph sets it when it records
            group["capturable"] = False
        self._lr_factor = None
        if self.graphed is not None:  # the graph read the optimiser's old state tensors: record anew
            self.graphed, self._graph_pending = None, True
        self.step_count, self.elapsed = int(state["step"]), float(state["elapsed"])
        self.transitions = state["transitions"].to(self.device)
        if len(state["generator"]) == len(self.generator.get_state()):
            self.generator.set_state(state["generator"])
        else:  # a generator of another kind of device (CUDA's: seed and offset): its stream cannot go on here
            self.generator.manual_seed(stream_seed(self.config.train.seed, 0, self.step_count))
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        self._metrics_offset = int(state["metrics_offset"])
        if self.world:  # the checkpoint holds rank 0's stream; each rank starts its own
            self.generator.manual_seed(self._stream_seed())

    def resume(self) -> bool:
        """Load ``out/checkpoint.pt`` if there is one; True if the run was resumed."""
        path = self.out / "checkpoint.pt" if self.out else None
        if not path or not path.exists():
            return False
        self.load_state_dict(checkpoint.load(path), str(path))  # CPU first: RNG states must stay there
        return True


def _comparable(config: dict) -> dict:
    config = json.loads(json.dumps(config))
    for name in RUNTIME_FIELDS:
        config.get("train", {}).pop(name, None)
    for name in RUNTIME_ENV_PARAMS:
        config.get("env_params", {}).pop(name, None)
    return config
