"""Adapting a pretrained OC-GFN to a downstream reward R' (ALGORITHMS.md, objectives/oc.py).

Three methods, one per class:
    ExactMarginal     P_F^{R'}(s'|s) = sum_y R'(y) F(s|y) P_F(s'|s,y) / sum_y R'(y) F(s|y),
                      tabulated over every state and outcome (enumerable spaces only);
    Amortised         N(s'|s) and Q(y|s, s') trained with the fine-tuning loss on
                      trajectories of N; samples with N alone;
    DownstreamTrainer a plain GFlowNet trained on R' (the Trainer), from scratch or
                      initialised from the pretrained trunk ("continued training").
Where the environment knows which outcomes a state can still reach
(``env.outcome_reachable``), F(s|y) P_F(s'|s,y) is set to its exact value 0 wherever
y cannot follow s -> s' (after the exit only y = x can): the pretrained network never
saw those pairs, so its estimate there is arbitrary.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from gflownet.config import load_callable
from gflownet.environments.base import Environment, checked_log
from gflownet.errors import ConfigError
from gflownet.metrics import transitions
from gflownet.nets import MLP
from gflownet.objectives.oc import amortised_finetune_loss
from gflownet.policy import Policy, masked_log_softmax
from gflownet.pretrain import conditional_log_probs
from gflownet.sampler import sample_forward
from gflownet.trainer import Trainer
from gflownet.trajectories import Trajectories

METHODS = ("amortised", "exact", "exact_visits", "continue", "scratch")
# The exact marginal tabulates (state, outcome, action) triples; the amortised Q is a categorical over the
# outcomes, scored against each of them at every transition. Above these sizes both would not fit in memory.
MAX_EXACT_TABLE = 1 << 27
MAX_CATEGORICAL_OUTCOMES = 1 << 13


def downstream_log_reward(env: Environment, reward: str | Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    """log R'(x) ``[B]`` of terminal states ``[B, *state_shape]``: ``"default"`` is the environment's own
    reward; a ``"module:function"`` string or a callable maps states to R' ``[B]`` (>= 0)."""
    if reward == "default":
        return env.log_reward
    function = load_callable(reward) if isinstance(reward, str) else reward
    return lambda x: checked_log(function(x), x, f"downstream reward {reward!r}")


class RewardSwap:
    """``env`` with its reward replaced by ``log_reward`` (every other attribute is env's)."""

    def __init__(self, env: Environment, log_reward: Callable[[torch.Tensor], torch.Tensor]):
        self._env, self._log_reward = env, log_reward

    def __getattr__(self, name):
        return getattr(self._env, name)

    def log_reward(self, states):
        return self._log_reward(states)

    def log_partition(self):
        return float(self.log_reward(self.all_outcomes()).double().logsumexp(0))


def reachable_after(
    env: Environment, states: torch.Tensor, actions: torch.Tensor, outcomes: torch.Tensor
) -> torch.Tensor | None:
    """bool ``[M, Y]``: outcome y can still be the result after taking action a_m in s_m (the exit:
    y = s_m; a move: y reachable from the child), or None where the environment cannot tell.
    ``states`` ``[M, *state_shape]``, ``actions`` ``[M]`` legal, ``outcomes`` ``[Y, *state_shape]``."""
    M, Y = len(states), len(outcomes)
    tail = [1] * (outcomes.dim() - 1)
    children = env.step(states, actions).repeat_interleave(Y, 0)
    every_y = outcomes.repeat(M, *tail)
    reach = env.outcome_reachable(children, every_y)
    if reach is None:
        return None
    exits = (actions == env.exit_action).repeat_interleave(Y)
    return torch.where(exits, env.same_outcome(children, every_y), reach).view(M, Y)


def edge_reachability(env: Environment, outcomes: torch.Tensor) -> torch.Tensor | None:
    """bool ``[S, Y, A]`` over all states: ``reachable_after`` for every legal action (False where
    illegal), or None where the environment cannot tell."""
    states = env.all_states()
    legal = env.forward_mask(states)
    columns = []
    for a in range(env.n_actions):
        actions = torch.full((len(states),), a, device=states.device)
        ok = legal[:, a]
        column = torch.zeros(len(states), len(outcomes), dtype=torch.bool, device=states.device)
        reach = reachable_after(env, states[ok], actions[ok], outcomes)
        if reach is None:
            return None
        column[ok] = reach
        columns.append(column)
    return torch.stack(columns, -1)


# -- exact marginalisation ------------------------------------------------------------------
def marginal_log_pf(
    log_pf: torch.Tensor, log_flow: torch.Tensor, log_r: torch.Tensor, reachable: torch.Tensor | None = None
) -> torch.Tensor:
    """log P_F^{R'}(a|s) ``[S, A]`` from log P_F(a|s,y) ``[S, Y, A]``, log F(s|y) ``[S, Y]`` and
    log R'(y) ``[Y]``: the numerator sum_y R'(y) F(s|y) P_F(a|s,y), normalised over a (with exact
    flows the normaliser is the formula's sum_y R'(y) F(s|y); with learnt ones it is what N's
    sampler does). ``reachable`` ``[S, Y, A]`` zeroes the terms where a makes y unreachable.
    A state no flow reaches gets a uniform row over its legal actions (never used by a rollout)."""
    joint = (log_r[None] + log_flow)[..., None] + log_pf
    if reachable is not None:
        joint = joint.masked_fill(~reachable, float("-inf"))
    numerator = joint.logsumexp(1)
    out = numerator - numerator.logsumexp(-1, keepdim=True)
    legal = torch.isfinite(log_pf).any(1)
    uniform = masked_log_softmax(torch.zeros_like(out), legal)
    return torch.where(torch.isfinite(out).any(1, keepdim=True), out, uniform)


def visit_log_flows(env: Environment, log_pf: torch.Tensor) -> torch.Tensor:
    """log F(s|y) ``[S, Y]`` read off the conditional policies ``log_pf`` ``[S, Y, A]`` instead of the
    flow head: F(s|y) = Z(y) P(a rollout of P_F(.|y) visits s), with Z(y) = R(y|y) = 1. One forward DP
    over the DAG for all outcomes at once; these flows are consistent with P_F by construction."""
    dag = transitions(env)
    S, Y, _ = log_pf.shape
    moves = (log_pf[:, :, :-1].exp() * dag.legal[:, None, :]).permute(0, 2, 1)  # [S, A-1, Y]
    start = torch.zeros(S, Y, dtype=moves.dtype, device=moves.device)
    start[env.state_index(env.reset(1))] = 1.0
    mass = start
    for _ in range(env.max_steps - 1):
        mass = start.index_add(0, dag.children.reshape(-1), (mass[:, None, :] * moves).reshape(-1, Y))
    return mass.log()


class IndexFeatures:
    """``env`` whose features are the state indices (for a policy given as a table)."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)

    def featurize(self, states):
        return self._env.state_index(states)


class TablePolicy(nn.Module):
    """A forward policy given as a table of log-probabilities ``[S, A]`` over state indices."""

    def __init__(self, log_pf: torch.Tensor):
        super().__init__()
        self.register_buffer("log_pf", log_pf.float().clamp_min(-1e4))  # finite: the sampler masks anyway

    def forward_logits(self, index: torch.Tensor, cond=None) -> torch.Tensor:
        return self.log_pf[index]


class ExactMarginal:
    """The exact marginal policy of a pretrained OC-GFN for R' (enumerable spaces)."""

    def __init__(self, env: Environment, pretrained: Policy, log_reward: Callable, tables=None, flows: str = "head"):
        """``tables``: ``conditional_log_probs(env, pretrained, env.all_outcomes())`` if already
        computed (they do not depend on R', so several rewards can share them). ``flows``: F(s|y)
        from the flow head ("head", the formula as written) or from the visits of P_F(.|y)
        ("visits", ``visit_log_flows``)."""
        if flows not in ("head", "visits"):
            raise ConfigError(f"flows must be 'head' or 'visits', got {flows!r}")
        if not (env.enumerable and env.has_outcomes):
            raise ConfigError(
                f"exact marginalisation needs an enumerable outcome space; "
                f"{type(env).__name__} has none (use --method amortised)"
            )
        self.env = env
        outcomes = env.all_outcomes()
        if env.n_states * len(outcomes) * env.n_actions > MAX_EXACT_TABLE:
            raise ConfigError(
                f"exact marginalisation would tabulate {env.n_states} states x {len(outcomes)} outcomes "
                f"x {env.n_actions} actions (more than {MAX_EXACT_TABLE}); use --method amortised"
            )
        log_pf_y, log_flow_y = tables or conditional_log_probs(env, pretrained, outcomes)
        if flows == "visits":
            log_flow_y = visit_log_flows(env, log_pf_y)
        log_r = log_reward(outcomes).double()
        self.reward_calls = len(outcomes)
        self.log_pf = marginal_log_pf(log_pf_y, log_flow_y, log_r, edge_reachability(env, outcomes))
        self.policy = TablePolicy(self.log_pf)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Trajectories:
        return sample_forward(IndexFeatures(self.env), self.policy, n, generator=generator)


# -- the amortised predictor ----------------------------------------------------------------
class OutcomePosterior(nn.Module):
    """Q(y|s, a): logits ``[M, Y]`` over the enumerated outcomes, from ``featurize(s)`` and a one-hot a."""

    def __init__(self, env: Environment, n_outcomes: int, hidden: int, layers: int):
        super().__init__()
        self.n_actions = env.n_actions
        self.trunk = MLP(env.feature_dim + env.n_actions, hidden, layers)
        self.head = nn.Linear(hidden, n_outcomes)

    def forward(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        one_hot = nn.functional.one_hot(actions, self.n_actions).to(features.dtype)
        return self.head(self.trunk(torch.cat([features, one_hot], -1)))


class Amortised(nn.Module):
    """N(s'|s) (a Policy whose forward logits are log N) and Q(y|s, s'), trained by ``step``.

    Each step rolls out ``batch`` trajectories with N (``epsilon``-greedy), draws ``k`` outcomes
    per transition from Q (uniform with probability ``q_epsilon``), and fits
    log N + log Q to log R'(y) + log F(s|y) + log P_F(s'|s,y) of the frozen pretrained model.
    R'(y) is computed once per outcome (``reward_calls`` counts them).
    """

    def __init__(
        self,
        env: Environment,
        pretrained: Policy,
        log_reward: Callable,
        hidden: int = 256,
        layers: int = 2,
        lr: float = 1e-3,
        k: int = 8,
        q_epsilon: float = 0.2,
        epsilon: float = 0.0,
    ):
        super().__init__()
        if not (env.enumerable and env.has_outcomes):
            raise ConfigError(
                f"the amortised predictor's Q is a categorical over the outcomes: "
                f"{type(env).__name__} cannot enumerate its outcomes"
            )
        self.env, self.pretrained, self.reward_fn = env, pretrained, log_reward
        self.k, self.q_epsilon, self.epsilon = k, q_epsilon, epsilon
        self.register_buffer("outcomes", env.all_outcomes())
        if len(self.outcomes) > MAX_CATEGORICAL_OUTCOMES:
            raise ConfigError(
                f"the amortised predictor's Q is a categorical over the outcomes: {len(self.outcomes)} "
                f"is more than {MAX_CATEGORICAL_OUTCOMES}; use --method continue"
            )
        self.register_buffer("log_r", torch.zeros(len(self.outcomes), device=env.device))
        self.register_buffer("known", torch.zeros(len(self.outcomes), dtype=torch.bool, device=env.device))
        self.n = Policy(env, hidden, layers, backward="uniform", log_z=False)
        self.q = OutcomePosterior(env, len(self.outcomes), hidden, layers)
        self.to(env.device)
        self.optimizer = torch.optim.Adam(list(self.n.parameters()) + list(self.q.parameters()), lr=lr)
        pretrained.requires_grad_(False)

    @property
    def reward_calls(self) -> int:
        return int(self.known.sum())

    def _outcome_log_reward(self, index: torch.Tensor) -> torch.Tensor:
        new = torch.unique(index[~self.known[index]])
        if len(new):
            self.log_r[new] = self.reward_fn(self.outcomes[new]).to(self.log_r.dtype)
            self.known[new] = True
        return self.log_r[index]

    def sample(self, n: int, generator: torch.Generator | None = None, epsilon: float = 0.0) -> Trajectories:
        return sample_forward(self.env, self.n, n, epsilon=epsilon, generator=generator)

    def step(self, batch: int, generator: torch.Generator | None = None) -> tuple[Trajectories, float]:
        """One update on ``batch`` fresh trajectories of N; returns them and the loss."""
        env, k = self.env, self.k
        traj = self.sample(batch, generator, self.epsilon)
        valid = traj.mask
        states = traj.states[:, :-1][valid]  # [M, *state_shape]
        actions = traj.actions[valid]
        features = env.featurize(states)
        log_n = self.n.forward_logits(features).gather(1, actions[:, None]).squeeze(1)
        q_logits = self.q(features, actions)
        reach = reachable_after(env, states, actions, self.outcomes)
        if reach is not None:
            q_logits = q_logits.masked_fill(~reach, float("-inf"))
        log_q_all = q_logits.log_softmax(-1)
        with torch.no_grad():
            proposal = log_q_all.exp() * (1 - self.q_epsilon)
            support = reach.float() if reach is not None else torch.ones_like(proposal)
            proposal += self.q_epsilon * support / support.sum(-1, keepdim=True)
            picked = torch.multinomial(proposal, k, replacement=True, generator=generator)  # [M, k]
            rows = torch.arange(len(states), device=states.device).repeat_interleave(k)
            y = self.outcomes[picked.reshape(-1)]
            fwd, _, flow = self.pretrained.heads(features[rows], env.encode_outcome(y))
            log_pf = masked_log_softmax(fwd, env.forward_mask(states[rows])).gather(1, actions[rows, None]).squeeze(1)
            log_target = (self._outcome_log_reward(picked.reshape(-1)) + flow + log_pf).view(-1, k)
        loss = amortised_finetune_loss(log_n, log_q_all.gather(1, picked), log_target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return traj, float(loss.detach())


# -- plain GFlowNets on R' ------------------------------------------------------------------
class DownstreamTrainer(Trainer):
    """The Trainer on R' (``config.env`` with its reward swapped); ``init`` is a pretrained policy
    whose trunk and heads start this one (continued training), or None (from scratch)."""

    def __init__(self, config, log_reward: Callable, init: Policy | None = None, out=None, progress=False):
        super().__init__(config, out, progress)
        self.env = RewardSwap(self.env, log_reward)
        if init is not None:
            initialise_from(self.policy, init, self.env.feature_dim)


@torch.no_grad()
def initialise_from(policy: Policy, pretrained: Policy, feature_dim: int) -> None:
    """Copy an outcome-conditioned policy into an unconditional one of the same shape: the first
    layer keeps the columns of the features (the outcome's columns are dropped, as if y = 0)."""
    source = pretrained.state_dict()
    target = policy.state_dict()
    for name, value in target.items():
        if name not in source:
            raise ConfigError(f"the pretrained model has no {name}: build the same architecture")
        weight = source[name]
        if weight.shape != value.shape and weight.dim() == 2 and weight.shape[0] == value.shape[0]:
            weight = weight[:, :feature_dim]
        if weight.shape != value.shape:
            raise ConfigError(f"the pretrained {name} has shape {tuple(weight.shape)}, this model {tuple(value.shape)}")
        value.copy_(weight)
