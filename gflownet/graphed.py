"""A whole training step (rollout, reward, loss, backward, Adam) as one CUDA graph.

On a GPU, a training step of a small network is a few hundred tiny kernels, and its
time goes to launching them from Python, not to running them. For a fixed-shape
tensor environment (``Environment.fixed_shape``) whose reward is a device-side lookup
(``Environment.capturable``: the hypergrid) every shape of the step is static once

- the rollout always takes ``env.max_steps`` steps (finished rows idle on the exit,
  as in the eager rollout, which instead stops when every row has exited), and
- the loss evaluates every padded state (the eager loss evaluates each distinct state
  once, but ``torch.unique`` has a data-dependent size).

Such a step is recorded once with ``torch.cuda.CUDAGraph`` (after a few eager warm-up
steps on a side stream, as CUDA graphs need) and then replayed: one launch a step.
The rollout's noise comes from the trainer's generator, registered with the graph, so a
replay draws fresh noise each time. Adam runs with ``capturable=True`` and tensor
learning rates, which the schedule updates in place.

``GraphedStep(trainer, capture=False)`` runs the same step eagerly on any device: the
tests check on CPU that it trains to the exact distribution, and on CUDA that the
captured step equals the eager one.
"""

from __future__ import annotations

import torch

from gflownet.compiled import rollout_chunk
from gflownet.compiled import unsupported as rollout_unsupported
from gflownet.errors import ConfigError
from gflownet.reward_pool import scores_in_workers
from gflownet.sampler import rollout_noise, tabulates_logits
from gflownet.trajectories import Trajectories

#: eager steps before the capture (CUDA graphs want the allocator and kernels warm)
WARMUP_STEPS = 3
# Estimates whose computation synchronises with the host or has a data-dependent shape:
# energies are checked for finiteness, flow matching enumerates each state's parents.
UNCAPTURABLE_NEEDS = {"state_energy", "edge_flows"}
# Where the eager rollout walks tables of the whole space, its loss evaluates those few states
# once each, and the graph's loss every padded row: from this many padded rows on, the eager
# step wins. Measured on an H200 (experiments/bench_gpu.py): graph / eager 2.30x at 65,536
# padded rows (2-D H=8, batch 4096), 1.70x at 122,880 (4-D H=8, batch 4096), 0.80x at 524,288
# (2-D H=64, batch 4096); the bound lies between the last two.
MAX_PADDED_ROWS_WITH_TABLES = 1 << 18


@torch.no_grad()
def fixed_rollout(env, policy, batch: int, temperature: float, epsilon: float, generator) -> Trajectories:
    """``batch`` on-policy trajectories of exactly ``env.max_steps`` transitions (exits pad
    the end): ``sample_forward``'s actions on the same generator, without its early stop."""
    log_noise, explore, uniform_noise = rollout_noise(
        env.max_steps, batch, env.n_actions, epsilon, True, env.device, generator
    )
    s0 = env.reset(batch)
    done = torch.zeros(batch, dtype=torch.bool, device=env.device)
    states, actions, _, _ = rollout_chunk(env, policy, s0, done, log_noise, temperature, explore, uniform_noise)
    actions = actions.T
    lengths = (actions != env.exit_action).sum(1) + 1
    return Trajectories(torch.cat([s0[None], states]).transpose(0, 1), actions, lengths)


def unsupported(trainer) -> str | None:
    """Why ``trainer``'s step cannot be captured as a CUDA graph, or None when it can."""
    t, env = trainer.config.train, trainer.env
    reason = rollout_unsupported(env, trainer.policy, trainer.cond_dim(), t.max_moves)
    if reason:
        return reason
    if not getattr(env, "capturable", False):
        return f"{type(env).__name__}'s reward is not a device-side table (Environment.capturable)"
    if scores_in_workers(env):
        return "rewards are scored in worker processes"
    if trainer.objective.needs & UNCAPTURABLE_NEEDS:
        return f"objective {trainer.objective.name!r} needs estimates with host synchronisations"
    if trainer.world is not None:
        return "data-parallel training all-reduces gradients between backward and step"
    from gflownet.trainer import Trainer  # imported here: the trainer imports this module

    if type(trainer).collect is not Trainer.collect:
        return f"{type(trainer).__name__} collects its own batches"
    if trainer.device.type != "cuda":
        return f"the device is {trainer.device.type}, not cuda"
    return None


class GraphedStep:
    """``step()``: one training step of ``trainer`` (``trainer.local_batch`` fresh
    trajectories, its objective, its Adam); returns the detached loss and the number of
    transitions trained on, 0-d tensors on the device. With ``capture`` the first
    ``WARMUP_STEPS`` calls run eagerly, the next one records the graph, and every call
    from then on replays it. ``trajectories`` is the batch of the last step (its tensors
    are overwritten by the next replay)."""

    def __init__(self, trainer, capture: bool = True):
        self.trainer, self.capture = trainer, capture
        self.calls, self.graph = 0, None
        self.trajectories, self.loss, self.transitions = None, None, None

    def _step(self):
        tr, t = self.trainer, self.trainer.config.train
        traj = fixed_rollout(tr.env, tr.policy, tr.local_batch, t.temperature, t.epsilon, tr.generator)
        traj.log_reward = tr.env.log_reward(traj.terminal)
        evaluation = tr.policy.evaluate(tr.env, traj, tr.objective.needs, dedupe=False)
        loss = tr.objective(evaluation, **tr.objective_params)
        loss.backward()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(tr.policy.parameters(), t.grad_clip)
        tr.optimizer.step()
        self.trajectories, self.loss, self.transitions = traj, loss.detach(), traj.lengths.sum()

    def _record(self):
        optimizer = self.trainer.optimizer
        for group in optimizer.param_groups:  # lr: read by the graph from device memory, set in place
            group["capturable"] = True  # Adam's arithmetic is the same; its step checks this flag in a capture
            if not isinstance(group["lr"], torch.Tensor):
                group["lr"] = torch.tensor(float(group["lr"]), device=self.trainer.device)
        optimizer.zero_grad(set_to_none=True)  # backward in the capture allocates the gradients
        self.graph = torch.cuda.CUDAGraph()
        self.graph.register_generator_state(self.trainer.generator)
        with torch.cuda.graph(self.graph):
            self._step()

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        if not self.capture or self.calls <= WARMUP_STEPS:
            self.trainer.optimizer.zero_grad(set_to_none=True)
            if self.capture:  # warm-up on a side stream, as graph capture requires
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    self._step()
                torch.cuda.current_stream().wait_stream(side)
            else:
                self._step()
            return self.loss, self.transitions
        if self.graph is None:
            self._record()
        self.graph.replay()
        return self.loss.clone(), self.transitions.clone()


def pays_off(env, batch: int) -> bool:
    """Whether ``train.cuda_graph=auto`` captures a supported step: everywhere but where the
    eager step walks tables and the graph's loss would evaluate too many padded rows."""
    return not tabulates_logits(env, batch) or batch * (env.max_steps + 1) < MAX_PADDED_ROWS_WITH_TABLES


def use_cuda_graph(setting: str, device: torch.device) -> bool:
    """``train.cuda_graph``: "auto" (on CUDA, where the step can be captured and ``pays_off``),
    "true" (an error where it cannot be captured) or "false". Whether to prepare for one: the
    trainer decides at its first step, with ``unsupported``, once its environment is final."""
    if setting not in ("auto", "true", "false"):
        raise ConfigError(f"train.cuda_graph must be 'auto', 'true' or 'false', got {setting!r}")
    if setting == "true" and device.type != "cuda":
        raise ConfigError(f"train.cuda_graph=true needs a CUDA device, got {device}")
    return setting != "false" and device.type == "cuda"
