"""Batched rollouts, forward from s_0 and backward from given terminal objects.

Both run under ``torch.no_grad()`` and record states and actions only: the loss
recomputes log-probabilities in one packed forward (``Policy.evaluate``), which
also lets the same loss train on replayed or backward-sampled trajectories.

Actions are drawn with the Gumbel-max trick, argmax(logits - log E) with
E ~ Exp(1), on noise drawn for the whole rollout at once: no normalisation and
no per-step random-number call. Finished trajectories keep taking the (no-op)
exit action, so shapes stay fixed; on CUDA, completion is checked only every
few steps to keep host synchronisations out of the loop. In a small enumerable
space the forward rollout carries state indices and reads legal actions,
successors and features from tables built once per environment.
"""

from __future__ import annotations

import weakref

import torch

from gflownet.dedup import distinct
from gflownet.environments.base import Environment
from gflownet.policy import Policy
from gflownet.trajectories import Trajectories

_SYNC_EVERY_CUDA = 8
# From this batch size on, a rollout step evaluates each distinct state once (below it,
# sorting costs more than the rows it saves; experiments/bench_hypergrid.py).
DEDUPE_MIN_BATCH = 64
# A rollout in an enumerable space of at most this many (state, action) pairs walks state
# indices through tables of the dynamics (legal actions, successors, features): 3 lookups
# a step instead of the environment's mask, step and featurize.
WALK_MAX_PAIRS = 1 << 22
# Features of every state are tabulated up to this many numbers (else featurized a step at a time).
FEATURE_TABLE_MAX = 1 << 22
# A rollout evaluates the network once on every state of the space (then each step is a
# table lookup) when the space has at most this many states per trajectory of the batch
# (measured on the hypergrid: a win on 2-D side 32 at batch 256, a loss on 4-D side 8 at 256).
TABLE_STATES_PER_TRAJECTORY = 4
# Above this many actions a step draws its action with torch.multinomial: Gumbel noise for
# every (step, row, action) costs more than the network there (fragment molecules have
# ~5,700 actions; experiments/bench_molecules.py).
GUMBEL_MAX_ACTIONS = 1024


def _gumbel_argmax(logits, mask, log_noise):
    """Sample from softmax(logits) restricted to ``mask`` (None: logits are -inf where
    illegal already); ``log_noise`` = log E, E ~ Exp(1)."""
    if mask is None:
        return (logits - log_noise).argmax(-1)
    return torch.where(mask, logits - log_noise, float("-inf")).argmax(-1)


def _multinomial(logits, mask, generator):
    """Sample from softmax(logits) restricted to ``mask`` by inverting the CDF (one
    uniform per row; torch.multinomial is several times slower on CPU)."""
    cdf = torch.where(mask, logits, float("-inf")).softmax(-1).cumsum(-1)
    u = torch.rand(len(cdf), 1, device=cdf.device, generator=generator) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_max(cdf.shape[-1] - 1)


def walks_indices(env: Environment) -> bool:
    """Whether a rollout carries state indices through tables (``sample_forward``)."""
    return env.enumerable and env.n_states * env.n_actions <= WALK_MAX_PAIRS


def tabulates_logits(env: Environment, batch: int) -> bool:
    """Whether an unconditioned rollout of ``batch`` rows evaluates the network once on every
    state of the space, then reads each step's logits from that table (``sample_forward``)."""
    return walks_indices(env) and env.n_states <= TABLE_STATES_PER_TRAJECTORY * batch


_TRANSITION_TABLES = weakref.WeakKeyDictionary()


def transition_tables(env: Environment):
    """Every state ``[N, *state_shape]`` (in ``state_index`` order), the legal forward
    actions ``[N, A]`` and the index of each successor ``[N, A]`` long (-1 where illegal;
    the exit's successor is the state itself) of an enumerable environment, built once."""
    if env not in _TRANSITION_TABLES:
        every = env.all_states()
        legal = env.forward_mask(every)
        successor = torch.full(legal.shape, -1, dtype=torch.long, device=every.device)
        state, action = legal.nonzero(as_tuple=True)
        successor[state, action] = env.state_index(env.step(every[state], action))
        successor[:, env.exit_action] = torch.arange(len(every), device=every.device)
        _TRANSITION_TABLES[env] = every, legal, successor
    return _TRANSITION_TABLES[env]


_FEATURES = weakref.WeakKeyDictionary()


def feature_table(env: Environment) -> torch.Tensor | None:
    """``env.featurize`` of every state ``[N, ...]`` (``state_index`` order) of an enumerable
    environment, built once; None where it would hold more than FEATURE_TABLE_MAX numbers."""
    if env not in _FEATURES:
        every = transition_tables(env)[0]
        first = env.featurize(every[:1])
        small = isinstance(first, torch.Tensor) and len(every) * first.numel() <= FEATURE_TABLE_MAX
        _FEATURES[env] = env.featurize(every) if small else None
    return _FEATURES[env]


def _exp_noise(shape, device, generator):
    return torch.empty(shape, device=device).exponential_(generator=generator).log_()


def rollout_noise(steps: int, batch: int, n_actions: int, epsilon: float, gumbel: bool, device, generator):
    """The random draws of a whole rollout, in one fixed order (the compiled rollout draws
    the same): log-noise ``[T, B, A]`` for P_F's Gumbel-max (None without ``gumbel``), and
    with ``epsilon`` > 0 the exploring steps ``[T, B]`` bool and the uniform action's
    log-noise ``[T, B, A]`` (else None, None)."""
    shape = (steps, batch, n_actions)
    log_noise = _exp_noise(shape, device, generator) if gumbel else None
    if epsilon <= 0:
        return log_noise, None, None
    explore = torch.rand((steps, batch), device=device, generator=generator) < epsilon
    return log_noise, explore, _exp_noise(shape, device, generator) if gumbel else None


@torch.no_grad()
def sample_forward(
    env: Environment,
    policy: Policy,
    batch: int,
    cond: torch.Tensor | None = None,
    epsilon: float = 0.0,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    max_moves: int | torch.Tensor | None = None,
) -> Trajectories:
    """Roll out ``batch`` trajectories from s_0 with P_F(.|s, cond).

    Args:
        cond: ``[B, C]`` conditioning, or None.
        epsilon: probability of a uniformly random legal action at each step.
        temperature: P_F is sampled as softmax(logits / temperature).
        max_moves: cut each trajectory after this many moves (an int or ``[B]``
            long); those that have not exited by then come back incomplete, except
            where the exit is the only legal action left: that exit is still taken.
    Returns: Trajectories without rewards.
    """
    device, T, A = env.device, env.max_steps, env.n_actions
    exit_action = env.exit_action
    s = env.reset(batch)
    gumbel = A <= GUMBEL_MAX_ACTIONS
    log_noise, explore, uniform_noise = rollout_noise(T, batch, A, epsilon, gumbel, device, generator)
    sync_every = _SYNC_EVERY_CUDA if device.type == "cuda" else 1
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    cut = None if max_moves is None else torch.as_tensor(max_moves, device=device).expand(batch)
    incomplete = torch.zeros_like(done)
    steps = T
    walk = walks_indices(env)
    if walk:  # s is the state's index; tables give its legal actions, successors and features
        every_state, legal, successor = transition_tables(env)
        features = feature_table(env)
        featurize = features.__getitem__ if features is not None else lambda i: env.featurize(every_state[i])
        s = env.state_index(s)
    else:
        featurize = env.featurize
    states = s.new_empty(T + 1, *s.shape)  # time-major: one contiguous write a step
    states[0] = s
    actions = torch.full((T, batch), exit_action, dtype=torch.long, device=device)
    table = None
    if cond is None and tabulates_logits(env, batch):
        # The whole space in one pass; a step then reads its logits from the table.
        table = policy.forward_logits(featurize(torch.arange(len(every_state), device=device))) / temperature
        table = table.masked_fill(~legal, float("-inf"))
    dedupe = table is None and cond is None and env.indexable and batch >= DEDUPE_MIN_BATCH
    for t in range(T):
        if not walk:
            mask = env.forward_mask(s)
        elif table is None or epsilon > 0 or cut is not None or not gumbel:
            mask = legal[s]
        else:  # the table's logits are masked already
            mask = None
        if cut is not None:  # a state whose only option is the exit still takes it
            stop = (cut <= t) & ~done & mask[:, :exit_action].any(-1)
            incomplete |= stop
            done |= stop
        if table is not None:
            logits = table[s]
        else:
            if dedupe:  # one network row per distinct unfinished state
                first, inverse = distinct((s if walk else env.state_index(s)).masked_fill(done, -1))
                logits = policy.forward_logits(featurize(s[first]))[inverse]
            else:
                logits = policy.forward_logits(featurize(s), cond)
            if temperature != 1.0:
                logits = logits / temperature
        a = _gumbel_argmax(logits, mask, log_noise[t]) if gumbel else _multinomial(logits, mask, generator)
        if epsilon > 0:
            flat = torch.zeros_like(logits)
            uniform = _gumbel_argmax(flat, mask, uniform_noise[t]) if gumbel else _multinomial(flat, mask, generator)
            a = torch.where(explore[t], uniform, a)
        a.masked_fill_(done, exit_action)  # finished trajectories idle on the exit
        s = successor[s, a] if walk else env.step(s, a)
        states[t + 1] = s
        actions[t] = a
        done = a == exit_action
        if (t + 1) % sync_every == 0 and bool(done.all()):
            steps = t + 1
            break
    if walk:
        states = every_state[states[: steps + 1]]
    actions = actions[:steps].T
    lengths = (actions != exit_action).sum(1) + (~incomplete)  # moves, then the exit
    if sync_every > 1:
        steps = max(int(lengths.max()), 1)
        actions = actions[:, :steps]
    return Trajectories(
        states[: steps + 1].transpose(0, 1), actions, lengths, cond=cond, complete=None if cut is None else ~incomplete
    )


@torch.no_grad()
def sample_backward(
    env: Environment,
    policy: Policy,
    terminals: torch.Tensor,
    cond: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Trajectories:
    """Trajectories ending in the given terminal states, sampled backward with P_B.

    ``terminals`` is ``[B, *state_shape]``. The result is in forward order, as
    ``sample_forward`` returns it, so any objective trains on it unchanged.
    """
    B, T, device = len(terminals), env.max_steps, terminals.device
    rev_states = terminals.new_empty(B, T, *terminals.shape[1:])  # x, parent, grandparent, ...
    rev_actions = torch.zeros(B, T, dtype=torch.long, device=device)  # forward action into rev_states[k]
    s = terminals.clone()
    rev_states[:, 0] = s
    moves = torch.zeros(B, dtype=torch.long, device=device)
    for k in range(T - 1):
        mask = env.backward_mask(s)
        active = mask.any(-1)
        if not bool(active.any()):
            break
        logits = policy.backward_logits(env.featurize(s), cond)
        b = _gumbel_argmax(logits, mask, _exp_noise(mask.shape, device, generator))
        parent = s.clone()
        parent[active] = env.backward_step(s[active], b[active])
        rev_actions[:, k] = torch.where(active, env.forward_action(s, b), 0)
        moves += active
        s = parent
        rev_states[:, k + 1] = s
    # Forward order: states[b, t] = rev_states[b, moves_b - t] for t <= moves_b, then x.
    t = torch.arange(T + 1, device=device)
    src = (moves[:, None] - t).clamp_min(0)
    src = torch.where(t <= moves[:, None], src, 0)
    states = rev_states[torch.arange(B, device=device)[:, None], src]
    src_a = (moves[:, None] - 1 - t[:T]).clamp_min(0)
    actions = torch.where(t[:T] < moves[:, None], rev_actions.gather(1, src_a), env.exit_action)
    steps = int(moves.max()) + 1
    return Trajectories(states[:, : steps + 1], actions[:, :steps], moves + 1, cond=cond)
