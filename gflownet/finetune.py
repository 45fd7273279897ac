"""Adapting a pretrained OC-GFN to a downstream reward R' (ALGORITHMS.md, objectives/oc.py).

Three methods, one per class:
    ExactMarginal     P_F^{R'}(s'|s) = sum_y R'(y) F(s|y) P_F(s'|s,y) / sum_y R'(y) F(s|y),
                      tabulated over every state and outcome (enumerable spaces only);
    Amortised         N(s'|s) and Q(y|s, s') trained with the fine-tuning loss on
                      trajectories of N (and teacher rollouts of the pretrained model);
                      samples with N alone;
    DownstreamTrainer a plain GFlowNet trained on R' (the Trainer), from scratch or
                      initialised from the pretrained trunk ("continued training").
Where the environment knows which outcomes a state can still reach
(``env.outcome_reachable``), F(s|y) P_F(s'|s,y) is set to its exact value 0 wherever
y cannot follow s -> s' (after the exit only y = x can): the pretrained network never
saw those pairs, so its estimate there is arbitrary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from gflownet.config import _build, _f, load_callable
from gflownet.dedup import distinct
from gflownet.environments.base import Environment, checked_log
from gflownet.environments.sequences import Sequences
from gflownet.errors import ConfigError
from gflownet.metrics import transitions
from gflownet.nets import MLP
from gflownet.optim import Adam
from gflownet.objectives.oc import amortised_finetune_loss, importance_finetune_loss, importance_marginal_loss
from gflownet.policy import Policy, masked_log_softmax
from gflownet.pretrain import conditional_log_probs
from gflownet.sampler import sample_forward
from gflownet.trainer import Trainer
from gflownet.trajectories import Trajectories

METHODS = ("amortised", "exact", "exact_visits", "continue", "scratch")
# The exact marginal tabulates (state, outcome, action) triples; the amortised categorical Q scores every
# outcome at every transition. Above these sizes neither would fit in memory.
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

    capturable = False  # R' is any Python callable

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
def is_tree(env: Environment) -> bool:
    """One path from s_0 to every state: append-only sequences."""
    return isinstance(env, Sequences) and env.n_actions == env.n_tokens + 1


class TreeOracle(nn.Module):
    """The exact outcome-conditioned GFlowNet of an append-only tree of one-hot features
    (``Sequences``), in place of a pretrained policy (``heads``): F(s|y) = 1 where s is a prefix of y,
    P_F(.|s, y) = 1 on y's next token (the exit once s = y), log 0 read as -1e4. What a perfect
    pretraining converges to; it carries nothing about any downstream R'."""

    def __init__(self, env: Environment):
        super().__init__()
        self.env = env

    def heads(self, features: torch.Tensor, cond: torch.Tensor):
        """Forward logits ``[N, A]``, no backward logits, log F ``[N]`` for states and target outcomes
        given as their one-hot features ``[N, L * (V + 1)]``."""
        env = self.env
        width = env.n_tokens + 1
        s = features.view(len(features), env.max_length, width).argmax(-1)
        y = cond.view(len(cond), env.max_length, width).argmax(-1)
        prefix = ((s == y) | (s == env.pad)).all(-1)
        n = env.lengths(s)
        nxt = torch.where(n < env.max_length, y.gather(1, n.clamp_max(env.max_length - 1)[:, None]).squeeze(1), -1)
        nxt = torch.where(n < env.max_length, nxt, env.exit_action)
        fwd = torch.full((len(s), env.n_actions), -1e4, device=features.device).scatter(1, nxt[:, None], 0.0)
        return fwd, None, torch.where(prefix, 0.0, -1e4)


class RewardCache:
    """R' read once per distinct outcome: a repeated outcome costs no new call. At most ``budget``
    distinct outcomes are ever evaluated (None: no limit); ``calls`` counts them."""

    def __init__(self, log_reward: Callable, budget: int | None = None, key: Callable | None = None):
        """``key``: an integer id ``[N]`` long of outcomes ``[N, *state_shape]`` (``env.state_index``),
        which finds the distinct ones of a batch much faster than comparing whole rows."""
        self.log_reward, self.budget, self.key = log_reward, budget, key
        self.known: dict[tuple, float] = {}

    @property
    def calls(self) -> int:
        return len(self.known)

    def __call__(self, outcomes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log R' ``[N]`` of ``outcomes`` ``[N, *state_shape]`` and bool ``[N]``: evaluated (False only
        for new outcomes past the budget; their log R' reads 0)."""
        if self.key is None:
            unique, inverse = torch.unique(outcomes.flatten(1), dim=0, return_inverse=True)
        else:
            first, inverse = distinct(self.key(outcomes))
            unique = outcomes.flatten(1)[first]
        keys = [tuple(row) for row in unique.tolist()]
        new = [i for i, key in enumerate(keys) if key not in self.known]
        if self.budget is not None:
            new = new[: max(self.budget - self.calls, 0)]
        if new:
            values = self.log_reward(unique[new].view(len(new), *outcomes.shape[1:])).tolist()
            self.known.update(zip([keys[i] for i in new], values))
        log_r = torch.tensor([self.known.get(key, float("nan")) for key in keys], device=outcomes.device)
        evaluated = ~log_r.isnan()
        return log_r.nan_to_num(0.0)[inverse], evaluated[inverse]

    def evaluated(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The outcomes evaluated so far, long ``[calls, L]`` (flattened rows; ``[0, 0]`` before any call),
        and their log R' ``[calls]``."""
        rows = torch.tensor(list(self.known), dtype=torch.long).view(self.calls, -1 if self.known else 0)
        return rows, torch.tensor(list(self.known.values()), dtype=torch.float64)


class OutcomePosterior(nn.Module):
    """Q(y|s, a) as a categorical over the enumerated ``outcomes`` ``[Y, *state_shape]``: logits
    ``[M, Y]`` from ``featurize(s)`` and a one-hot a."""

    def __init__(self, env: Environment, outcomes: torch.Tensor, hidden: int, layers: int):
        super().__init__()
        self.n_actions = env.n_actions
        self.register_buffer("outcomes", outcomes)
        self.trunk = MLP(env.feature_dim + env.n_actions, hidden, layers)
        self.head = nn.Linear(hidden, len(outcomes))

    def forward(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        one_hot = nn.functional.one_hot(actions, self.n_actions).to(features.dtype)
        return self.head(self.trunk(torch.cat([features, one_hot], -1)))

    def propose(self, env, states, features, actions, k, epsilon, generator=None):
        """``k`` outcomes per transition from (1 - epsilon) Q + epsilon uniform over the outcomes still
        reachable: y ``[M, k, *state_shape]``, log Q(y) ``[M, k]`` (differentiable) and the log-density
        of the proposal they were drawn from ``[M, k]``."""
        logits = self(features, actions)
        reach = reachable_after(env, states, actions, self.outcomes)
        if reach is not None:
            logits = logits.masked_fill(~reach, float("-inf"))
        log_q = logits.log_softmax(-1)
        with torch.no_grad():
            support = reach.float() if reach is not None else torch.ones_like(log_q)
            proposal = (1 - epsilon) * log_q.exp() + epsilon * support / support.sum(-1, keepdim=True)
            picked = torch.multinomial(proposal, k, replacement=True, generator=generator)  # [M, k]
        return self.outcomes[picked], log_q.gather(1, picked), proposal.gather(1, picked).log()


class TokenPosterior(nn.Module):
    """Q(y|s, a) for append-only sequences of one length L over V tokens, never enumerating the V^L
    outcomes: y extends the child s' (the positions s' fills are y's; after the exit y = s) and each
    free position is an independent categorical over the tokens, logits ``[M, L, V]`` from
    ``featurize(s)`` and a one-hot a. A factorised Q cannot express every posterior; as the proposal
    of the importance-sampled marginal (``importance_finetune_loss``) it need not."""

    def __init__(self, env: Environment, hidden: int, layers: int):
        super().__init__()
        if not self.supports(env):
            raise ConfigError(
                f"the token posterior needs append-only sequences of one length; {type(env).__name__} is not"
            )
        self.n_actions, self.n_tokens, self.length = env.n_actions, env.n_tokens, env.max_length
        self.trunk = MLP(env.feature_dim + env.n_actions, hidden, layers)
        self.head = nn.Linear(hidden, env.max_length * env.n_tokens)

    @staticmethod
    def supports(env: Environment) -> bool:
        return isinstance(env, Sequences) and env.n_actions == env.n_tokens + 1 and env.min_length == env.max_length

    def propose(self, env, states, features, actions, k, epsilon, generator=None):
        """As ``OutcomePosterior.propose``; the uniform share draws every free position uniformly."""
        M, L, V = len(states), self.length, self.n_tokens
        one_hot = nn.functional.one_hot(actions, self.n_actions).to(features.dtype)
        log_p = self.head(self.trunk(torch.cat([features, one_hot], -1))).view(M, L, V).log_softmax(-1)
        children = env.step(states, actions)  # the exit leaves the state as it is
        free = (children == env.pad)[:, None].expand(M, k, L)
        with torch.no_grad():
            from_q = torch.multinomial(log_p.exp().repeat_interleave(k, 0).view(-1, V), 1, generator=generator)
            uniform = torch.randint(0, V, (M, k, L), device=states.device, generator=generator)
            explore = torch.rand(M, k, 1, device=states.device, generator=generator) < epsilon
            tokens = torch.where(explore, uniform, from_q.view(M, k, L))
            y = torch.where(free, tokens, children[:, None])
        log_q = (log_p[:, None].expand(M, k, L, V).gather(-1, y[..., None]).squeeze(-1) * free).sum(-1)
        log_uniform = -free.sum(-1) * math.log(V)
        share = torch.tensor([1 - epsilon, epsilon], dtype=log_q.dtype, device=log_q.device).log()
        return y, log_q, torch.logaddexp(share[0] + log_q.detach(), share[1] + log_uniform)


@dataclass
class AmortisedSettings:
    """How the amortised predictor trains (``Amortised``). The defaults are the settings that brought
    the 2-D grid of side 32 within 0.05 L1 of the exact marginal (README, OC-GFN section); the CLI
    (``gflownet finetune --set KEY=VALUE``) and experiments/ocgfn.py both start from them."""

    loss: str = _f("importance", "N on the importance-sampled marginal, or 'residual' (the paper's squares)")
    updates: int = _f(8, "gradient steps per batch of trajectories")
    lr: float = _f(3e-3, "Adam learning rate of N and Q")
    k: int = _f(8, "outcomes drawn from Q per transition")
    q_epsilon: float = _f(0.2, "uniform share of Q's proposal over the outcomes still reachable")
    epsilon: float = _f(0.0, "uniform share of N's own rollouts")
    posterior: str = _f(
        "auto",
        "Q: 'categorical' (listed outcomes), 'tokens' (sequences), 'auto', or 'terminal' (no Q: each move's "
        "outcome is its rollout's own end state, one R' call a trajectory; trees, k=1, teacher=0)",
    )
    teacher: int = _f(16, "pretrained rollouts to evaluated outcomes a step (0: none)")
    replay: int = _f(16_000, "transitions kept for the updates (0: this step's only)")
    minibatch: int = _f(1024, "transitions per update (0: all)")

    def check(self) -> "AmortisedSettings":
        if self.loss not in ("importance", "residual"):
            raise ConfigError(f"loss must be 'importance' or 'residual', got {self.loss!r}")
        if self.posterior not in ("auto", "categorical", "tokens", "terminal"):
            raise ConfigError(
                f"posterior must be 'auto', 'categorical', 'tokens' or 'terminal', got {self.posterior!r}"
            )
        if self.posterior == "terminal" and (self.k != 1 or self.teacher or self.loss != "importance"):
            raise ConfigError(
                "posterior='terminal' draws one outcome per move, the rollout's own end state, from N's rollouts "
                f"only, for the importance loss: set k=1, teacher=0, loss=importance (got k={self.k}, "
                f"teacher={self.teacher}, loss={self.loss!r})"
            )
        for name in ("updates", "k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"amortised {name} must be >= 1, got {getattr(self, name)}")
        for name in ("teacher", "replay", "minibatch"):
            if getattr(self, name) < 0:
                raise ConfigError(f"amortised {name} must be >= 0, got {getattr(self, name)}")
        if not (self.lr > 0 and 0 <= self.q_epsilon <= 1 and 0 <= self.epsilon <= 1):
            raise ConfigError("amortised fine-tuning needs lr > 0, 0 <= q_epsilon <= 1 and 0 <= epsilon <= 1")
        return self


class Amortised(nn.Module):
    """N(s'|s) (a Policy whose forward logits are log N) and Q(y|s, s'), trained by ``step``;
    ``settings`` are ``AmortisedSettings`` fields (keywords; the rest keep their defaults).

    Each step rolls out ``batch`` trajectories with N (``epsilon``-greedy) and ``teacher`` trajectories
    of the pretrained P_F(.|y) for outcomes y drawn in proportion to R' among those already evaluated
    (no new call: they cover the region the fine-tuned sampler should reach, where N's own rollouts
    may not go yet), keeps the last ``replay`` of their transitions (0: this step's only) and makes
    ``updates`` gradient steps on ``minibatch`` of them (0: all), each drawing ``k`` outcomes per
    transition from Q (with probability ``q_epsilon`` uniformly over the outcomes still reachable)
    and fitting log N + log Q to log R'(y) + log F(s|y) + log P_F(s'|s,y) of the frozen pretrained model:
    ``loss="importance"`` (``importance_finetune_loss``: N on the importance-sampled marginal) or
    ``"residual"`` (``amortised_finetune_loss``, the paper's squared residual for both). ``posterior``:
    "categorical" (``OutcomePosterior``, enumerable outcomes), "tokens" (``TokenPosterior``) or "auto"
    (categorical where the outcomes can be listed, else tokens). R'(y) is evaluated once per distinct
    outcome and at most ``max_reward_calls`` times (``reward_calls`` counts them); draws past that budget
    are left out of the loss.

    ``posterior="terminal"`` (append-only trees) learns no Q: the outcome of each move s -> s' of a
    rollout of N is that rollout's own end state x, which given s' was drawn with N's probability
    pi(x|s') of the path s' -> x (the behaviour policy, epsilon included, when it was sampled), so N
    is fitted to log target(x) - log pi(x|s') (``importance_marginal_loss``, K = 1). That costs one
    R' call per distinct end state instead of one per outcome Q proposes. At fixed pi the fit is
    E[log target / pi], short of log sum_y target(y) by KL(pi(.|s') || target / sum); the gap closes
    where N's own policy is the marginal (then every weight equals sum_y target(y)), so the exact
    marginal is the loss's fixed point.
    """

    def __init__(
        self,
        env: Environment,
        pretrained: Policy,
        log_reward: Callable,
        hidden: int = 256,
        layers: int = 2,
        *,
        max_reward_calls: int | None = None,
        **settings,
    ):
        super().__init__()
        self.settings = s = _build(AmortisedSettings, settings, "amortised").check()
        if s.loss == "residual" and max_reward_calls is not None:
            raise ConfigError("a reward-call budget needs loss='importance' (the residual cannot drop draws)")
        if not env.has_outcomes:
            raise ConfigError(f"the amortised predictor needs outcomes; {type(env).__name__} declares none")
        self.env, self.pretrained = env, pretrained
        self.k, self.q_epsilon, self.epsilon, self.loss, self.updates = s.k, s.q_epsilon, s.epsilon, s.loss, s.updates
        self.teacher, self.replay, self.minibatch = s.teacher, s.replay, s.minibatch
        self.hindsight = s.posterior == "terminal"
        if self.hindsight and not is_tree(env):
            raise ConfigError(
                f"posterior='terminal' needs a tree (append-only sequences), where one path leads to each "
                f"end state; {type(env).__name__} is not one"
            )
        self.stored = None  # the replayed transitions: states, actions (and end states, log pi(x|s'))
        self.rewards = RewardCache(log_reward, max_reward_calls, env.state_index if env.indexable else None)
        self.n = Policy(env, hidden, layers, backward="uniform", log_z=False)
        self.q = None if self.hindsight else self._posterior(env, s.posterior, hidden, layers)
        self.to(env.device)
        learnt = list(self.n.parameters()) + (list(self.q.parameters()) if self.q is not None else [])
        self.optimizer = Adam(learnt, lr=s.lr, fused=True)
        pretrained.requires_grad_(False)

    @staticmethod
    def _posterior(env: Environment, posterior: str, hidden: int, layers: int) -> nn.Module:
        listable = env.enumerable and len(env.all_outcomes()) <= MAX_CATEGORICAL_OUTCOMES
        if posterior == "tokens" or (posterior == "auto" and not listable and TokenPosterior.supports(env)):
            return TokenPosterior(env, hidden, layers)
        if not listable:
            raise ConfigError(
                f"the amortised predictor's categorical Q lists the outcomes: {type(env).__name__} has more "
                f"than {MAX_CATEGORICAL_OUTCOMES} (or cannot list them) and is not a sequence task of one "
                "length for the token posterior; use --method continue"
            )
        return OutcomePosterior(env, env.all_outcomes(), hidden, layers)

    @property
    def reward_calls(self) -> int:
        return self.rewards.calls

    def sample(self, n: int, generator: torch.Generator | None = None, epsilon: float = 0.0) -> Trajectories:
        return sample_forward(self.env, self.n, n, epsilon=epsilon, generator=generator)

    def step(self, batch: int, generator: torch.Generator | None = None) -> tuple[Trajectories, float | None]:
        """``updates`` gradient steps on ``batch`` fresh trajectories of N; returns them and the last
        loss (None when the reward budget left no draw to learn from)."""
        traj = self.sample(batch, generator, self.epsilon)
        columns = self._transitions([traj] + self._teacher_trajectories(generator))
        loss = None
        for _ in range(self.updates):
            picked = slice(None)
            if self.minibatch and len(columns[0]) > self.minibatch:
                picked = torch.randperm(len(columns[0]), device=traj.states.device, generator=generator)
                picked = picked[: self.minibatch]
            loss = self._update(*(column[picked] for column in columns), generator=generator)
        return traj, loss

    def _teacher_trajectories(self, generator) -> list[Trajectories]:
        if not (self.teacher and self.reward_calls):
            return []
        outcomes, log_r = (t.to(self.env.device) for t in self.rewards.evaluated())  # the generator's device
        weights = (log_r - log_r.max()).exp()
        y = outcomes[torch.multinomial(weights, self.teacher, replacement=True, generator=generator)]
        y = y.view(self.teacher, *self.env.state_shape)
        return [
            sample_forward(self.env, self.pretrained, self.teacher, self.env.encode_outcome(y), generator=generator)
        ]

    def _transitions(self, batches: list[Trajectories]) -> tuple[torch.Tensor, ...]:
        """The transitions to learn from, these batches' and, with ``replay``, the last ``replay`` kept
        before them: states ``[M, *state_shape]`` and actions ``[M]``; with the terminal posterior
        also each one's end state ``[M, *state_shape]`` and log pi(x|s') ``[M]``."""
        columns = [
            torch.cat([t.states[:, :-1][t.mask] for t in batches]),
            torch.cat([t.actions[t.mask] for t in batches]),
        ]
        if self.hindsight:  # N's own rollouts only (no teacher)
            (traj,) = batches
            ends = traj.terminal[:, None].expand(traj.states[:, :-1].shape)
            columns += [ends[traj.mask], self._suffix_log_probs(traj)[traj.mask]]
        if not self.replay:
            return tuple(columns)
        if self.stored is not None:
            columns = [torch.cat([kept, new]) for kept, new in zip(self.stored, columns)]
        self.stored = tuple(column[-self.replay :] for column in columns)
        return self.stored

    @torch.no_grad()
    def _suffix_log_probs(self, traj: Trajectories) -> torch.Tensor:
        """log pi(x|s_{t+1}) ``[B, T]``: the probability that N's rollout, as it was sampled (epsilon
        included), goes from each transition's child to the trajectory's end state (0 after the exit)."""
        log_pf = self.n.evaluate(self.env, traj, frozenset()).log_pf
        if self.epsilon:
            B, T = traj.actions.shape
            n_legal = self.env.forward_mask(traj.states[:, :-1].flatten(0, 1)).sum(-1).view(B, T)
            explore = math.log(self.epsilon) - n_legal.double().log()
            log_pf = torch.logaddexp(log_pf.double() + math.log1p(-self.epsilon), explore)
            log_pf = torch.where(traj.mask, log_pf, 0.0).to(torch.float32)
        return log_pf.sum(1, keepdim=True) - log_pf.cumsum(1)

    def _update(self, states, actions, ends=None, log_pi=None, generator=None) -> float | None:
        env, k, M = self.env, self.k, len(states)
        features = env.featurize(states)
        log_n = self.n.forward_logits(features).gather(1, actions[:, None]).squeeze(1)
        if self.hindsight:
            y, log_q, log_proposal = ends[:, None], None, log_pi[:, None]
        else:
            y, log_q, log_proposal = self.q.propose(env, states, features, actions, k, self.q_epsilon, generator)
        with torch.no_grad():
            rows = torch.arange(M, device=states.device).repeat_interleave(k)
            flat = y.flatten(0, 1)
            log_r, evaluated = self.rewards(flat)
            fwd, _, flow = self.pretrained.heads(features[rows], env.encode_outcome(flat))
            log_pf = masked_log_softmax(fwd, env.forward_mask(states[rows])).gather(1, actions[rows, None]).squeeze(1)
            log_target = (log_r.to(flow.dtype) + flow + log_pf).view(M, k)
            valid = evaluated.view(M, k)
        if not valid.any():
            return None
        if self.hindsight:
            loss = importance_marginal_loss(log_n, log_target, log_proposal, valid)
        elif self.loss == "importance":
            loss = importance_finetune_loss(log_n, log_q, log_target, log_proposal, valid)
        else:
            loss = amortised_finetune_loss(log_n, log_q, log_target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


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
