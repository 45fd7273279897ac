"""A compiled, fixed-shape rollout for tensor environments (the hypergrid first).

The eager rollout (``gflownet.sampler.sample_forward``) runs some twenty small
eager ops per step, and each costs more than its arithmetic at small batch sizes.
Here a chunk of ``CHUNK`` rollout steps is one ``torch.compile`` graph (inductor,
``fullgraph=True``, static shapes: ``[B]`` rows and ``CHUNK`` steps, whatever the
data), reused for every chunk of every training step. Finished rows idle on the
exit, as in the eager rollout; between chunks one check stops the rollout once every
row has exited. The noise is drawn for the whole rollout up front, with the same
generator calls in the same order as ``sample_forward``, so the compiled rollout
takes the same actions as the eager one.

The loss stays eager: ``Policy.evaluate`` evaluates each distinct state once, which
costs less than a compiled forward over every padded row (measured; README,
"Compiled rollout").
"""

from __future__ import annotations

import math

import torch

from gflownet.environments.base import Environment
from gflownet.errors import ConfigError
from gflownet.nets import MLPTrunk
from gflownet.policy import Policy
from gflownet.sampler import (
    DEDUPE_MIN_BATCH,
    GUMBEL_MAX_ACTIONS,
    _gumbel_argmax,
    rollout_noise,
    tabulates_logits,
)
from gflownet.trajectories import Trajectories

#: rollout steps per compiled graph: fewer chunk calls against a longer compile
CHUNK = 8
# ``train.compile=auto`` compiles from this many training steps on, and only below the
# batch size from which the eager rollout evaluates each distinct state once (at batch
# 256 a compiled step took 1.3x as long as the eager one). Measured on a busy 2-core
# machine (4-D H=8, 2x256 MLP, TB, batch 16, experiments/bench_hypergrid.py --compiled):
# 10,000 steps ran 1.22x faster in whole-process time compiled, on an empty inductor
# cache; 1,500 steps ran 0.27-0.50x as fast (README, "Compiled rollout").
AUTO_MIN_STEPS = 10_000


def rollout_chunk(env, policy, s, done, log_noise, temperature=1.0, explore=None, uniform_noise=None):
    """``K`` Gumbel-max rollout steps from states ``s`` ``[B, *state_shape]``.

    Args:
        done: ``[B]`` bool, rows that have exited (they keep taking the exit).
        log_noise: ``[K, B, A]`` log E, E ~ Exp(1).
        explore: ``[K, B]`` bool, where a uniformly random legal action replaces
            P_F's (drawn with ``uniform_noise`` ``[K, B, A]``), or None.
    Returns: the states after each step ``[K, B, *state_shape]``, the actions
    ``[K, B]``, and the last states and ``done``.
    """
    states, actions = [], []
    for t in range(log_noise.shape[0]):
        mask = env.forward_mask(s)
        logits = policy.forward_logits(env.featurize(s))
        if temperature != 1.0:
            logits = logits / temperature
        a = _gumbel_argmax(logits, mask, log_noise[t])
        if explore is not None:
            uniform = _gumbel_argmax(torch.zeros_like(logits), mask, uniform_noise[t])
            a = torch.where(explore[t], uniform, a)
        a = a.masked_fill(done, env.exit_action)
        s = env.step(s, a)
        done = a == env.exit_action
        states.append(s)
        actions.append(a)
    return torch.stack(states), torch.stack(actions), s, done


def unsupported(env: Environment, policy: Policy, cond_dim: int, max_moves: int) -> str | None:
    """Why the compiled rollout cannot run this configuration, or None when it can."""
    if not env.fixed_shape:
        return f"{type(env).__name__} does not declare fixed-shape dynamics (Environment.fixed_shape)"
    if not isinstance(policy.trunk, MLPTrunk):
        return "the trunk is not the MLP"
    if cond_dim:
        return "the policy is conditioned"
    if max_moves:
        return "rollouts are cut (train.max_moves)"
    if env.n_actions > GUMBEL_MAX_ACTIONS:
        return f"more than {GUMBEL_MAX_ACTIONS} actions"
    return None


def use_compiled(
    setting: str, env: Environment, policy: Policy, cond_dim: int, max_moves: int, batch: int, steps: int
) -> bool:
    """``train.compile``: "true" (an error where the configuration cannot compile),
    "false", or "auto" (on CPU, where the run is long enough to pay the compile back and
    the eager rollout neither dedups states nor walks tables of the whole space)."""
    if setting not in ("auto", "true", "false"):
        raise ConfigError(f"train.compile must be 'auto', 'true' or 'false', got {setting!r}")
    reason = unsupported(env, policy, cond_dim, max_moves)
    if setting == "true" and reason:
        raise ConfigError(f"train.compile=true: the rollout cannot be compiled here: {reason}")
    if setting == "auto":
        small = batch < DEDUPE_MIN_BATCH and not tabulates_logits(env, batch)
        long_enough = reason is None and env.device.type == "cpu" and small and steps >= AUTO_MIN_STEPS
        return long_enough and has_cpp_compiler()
    return setting == "true"


def has_cpp_compiler() -> bool:
    """Whether inductor finds the C++ compiler its CPU code needs (``auto`` stays eager without one)."""
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()
    except Exception:  # inductor raises its own InvalidCxxCompiler, or fails to import its toolchain
        return False
    return True


class CompiledRollout:
    """``sample(generator)``: ``batch`` on-policy trajectories, as ``sample_forward``
    returns them, from one compiled graph of ``CHUNK`` steps (fewer where
    ``env.max_steps`` is shorter)."""

    def __init__(self, env: Environment, policy: Policy, batch: int, temperature: float = 1.0, epsilon: float = 0.0):
        self.env, self.policy, self.batch = env, policy, batch
        self.temperature, self.epsilon = temperature, epsilon
        self.chunk = min(CHUNK, env.max_steps)
        self.chunks = math.ceil(env.max_steps / self.chunk)
        self._chunk = torch.compile(self._chunk_impl, fullgraph=True, dynamic=False)

    def _chunk_impl(self, s, done, log_noise, explore, uniform_noise):
        return rollout_chunk(self.env, self.policy, s, done, log_noise, self.temperature, explore, uniform_noise)

    def _noise(self, generator):
        """``[chunks * chunk, B, A]`` log-noise (zero past ``max_steps``, where every
        row has exited) and, with exploration, the explore flags and uniform noise."""
        env = self.env
        draws = rollout_noise(env.max_steps, self.batch, env.n_actions, self.epsilon, True, env.device, generator)
        padding = self.chunks * self.chunk - env.max_steps
        return tuple(None if d is None else torch.cat([d, d.new_zeros(padding, *d.shape[1:])]) for d in draws)

    @torch.no_grad()
    def sample(self, generator: torch.Generator | None = None) -> Trajectories:
        """Trajectories without rewards, equal to ``sample_forward``'s on the same generator."""
        env = self.env
        log_noise, explore, uniform_noise = self._noise(generator)
        s = env.reset(self.batch)
        done = torch.zeros(self.batch, dtype=torch.bool, device=env.device)
        states, actions = [s[None]], []
        for c in range(self.chunks):
            window = slice(c * self.chunk, (c + 1) * self.chunk)
            chunk_states, chunk_actions, s, done = self._chunk(
                s,
                done,
                log_noise[window],
                None if explore is None else explore[window],
                None if uniform_noise is None else uniform_noise[window],
            )
            states.append(chunk_states)
            actions.append(chunk_actions)
            if bool(done.all()):
                break
        actions = torch.cat(actions).T
        lengths = (actions != env.exit_action).sum(1) + 1
        steps = int(lengths.max())  # no column of pure padding, as sample_forward returns them
        return Trajectories(torch.cat(states)[: steps + 1].transpose(0, 1), actions[:, :steps], lengths)
