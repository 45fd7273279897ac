"""Evaluation: exact distributions by dynamic programming over the DAG, and
sampled metrics where the space cannot be enumerated.

Exact terminal distribution (ALGORITHMS.md): s_0 has mass 1, every move sends
mass(s) * P_F(s'|s) to s', and the exit sends mass(x) * P_F(stop|x) to x.
Mass is propagated by one sweep per DAG level (``env.max_steps`` sweeps of a
vectorised gather/scatter over all states), in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gflownet.dedup import distinct
from gflownet.environments.base import Environment
from gflownet.policy import Policy, masked_log_softmax


@dataclass
class Transitions:
    """The DAG of an enumerable environment: ``children[s, a]`` is the index of
    step(s, a) for each non-exit action a (legal where ``legal[s, a]``), and
    ``back[s, a]`` the backward action at that child leading back to s."""

    children: torch.Tensor  # [N, A-1] long
    legal: torch.Tensor  # [N, A-1] bool
    back: torch.Tensor  # [N, A-1] long
    can_exit: torch.Tensor  # [N] bool


def transitions(env: Environment) -> Transitions:
    states = env.all_states()
    N, moves = len(states), env.n_actions - 1
    mask = env.forward_mask(states)
    legal = mask[:, :moves]
    actions = torch.arange(moves, device=states.device).repeat(N)
    parents = states.repeat_interleave(moves, 0)
    ok = legal.reshape(-1)
    children = torch.zeros(N * moves, dtype=torch.long, device=states.device)
    children[ok] = env.state_index(env.step(parents[ok], actions[ok]))
    back = torch.zeros_like(children)
    back[ok] = env.backward_action(parents[ok], actions[ok])
    return Transitions(children.view(N, moves), legal, back.view(N, moves), mask[:, env.exit_action])


@torch.no_grad()
def policy_log_probs(env: Environment, policy: Policy, chunk: int = 1 << 16):
    """log P_F ``[N, A]`` and log P_B ``[N, A_b]`` of the policy at every state."""
    log_pf, log_pb = [], []
    for states in env.all_states().split(chunk):
        features = env.featurize(states)
        log_pf.append(masked_log_softmax(policy.forward_logits(features), env.forward_mask(states)))
        log_pb.append(masked_log_softmax(policy.backward_logits(features), env.backward_mask(states)))
    return torch.cat(log_pf).double(), torch.cat(log_pb).double()


def terminal_distribution(env: Environment, log_pf: torch.Tensor, dag: Transitions | None = None) -> torch.Tensor:
    """Exact P_T(x) ``[N]`` of a forward policy given as log P_F ``[N, A]``."""
    dag = dag or transitions(env)
    prob = log_pf.double().exp()
    start = torch.zeros(len(prob), dtype=torch.float64, device=prob.device)
    start[env.state_index(env.reset(1))] = 1.0
    moves = prob[:, :-1] * dag.legal
    mass = start
    for _ in range(env.max_steps - 1):
        mass = start.index_add(0, dag.children.reshape(-1), (mass[:, None] * moves).reshape(-1))
    return mass * prob[:, -1]


def target_distribution(env: Environment) -> tuple[torch.Tensor, float]:
    """R(x)/Z over all states ``[N]`` (0 where exiting is illegal) and log Z."""
    states = env.all_states()
    log_r = env.log_reward(states).double()
    log_r = log_r.masked_fill(~env.forward_mask(states)[:, env.exit_action], float("-inf"))
    log_z = torch.logsumexp(log_r, 0)
    return (log_r - log_z).exp(), float(log_z)


def distances(p: torch.Tensor, q: torch.Tensor) -> dict[str, float]:
    """L1, KL(q || p) and Jensen-Shannon divergence between a model p and a target q."""
    tiny = 1e-300
    m = 0.5 * (p + q)

    def kl(a, b):
        return float(torch.where(a > 0, a * ((a + tiny).log() - (b + tiny).log()), 0.0).sum())

    return {"l1": float((p - q).abs().sum()), "kl": kl(q, p), "jsd": 0.5 * kl(p, m) + 0.5 * kl(q, m)}


@torch.no_grad()
def exact_metrics(
    env: Environment, policy: Policy, log_z: float | None = None, dag: Transitions | None = None
) -> dict[str, float]:
    """L1 / KL / JSD of the model's exact terminal distribution to R/Z, and the error
    of the model's estimate ``log_z`` of log Z (when given)."""
    log_pf, _ = policy_log_probs(env, policy)
    model = terminal_distribution(env, log_pf, dag)
    target, true_log_z = target_distribution(env)
    out = distances(model, target)
    out["true_log_z"] = true_log_z
    if log_z is not None:
        out.update(log_z=log_z, log_z_error=abs(log_z - true_log_z))
    return out


@dataclass
class Flows:
    """Exact flows of an enumerable environment for a fixed P_B (tables over all states)."""

    log_flow: torch.Tensor  # [N] log F(s)
    log_pf: torch.Tensor  # [N, A] the forward policy those flows induce
    log_pb: torch.Tensor  # [N, A_b] the backward policy they were built with
    log_z: float


def exact_flows(env: Environment, log_pb: torch.Tensor | None = None) -> Flows:
    """The unique flows consistent with R and P_B (uniform when ``log_pb`` is None):
    F(s) = R(s)[s may exit] + sum_{s -> s'} F(s') P_B(s|s'), swept to the fixed point."""
    dag = transitions(env)
    states = env.all_states()
    if log_pb is None:
        log_pb = masked_log_softmax(
            torch.zeros(len(states), env.n_backward_actions, dtype=torch.float64, device=states.device),
            env.backward_mask(states),
        )
    log_pb = log_pb.double()
    exit_flow = env.log_reward(states).double().masked_fill(~dag.can_exit, float("-inf")).exp()
    pb_into = log_pb[dag.children, dag.back].exp() * dag.legal  # [N, A-1]: P_B(s | child)
    flow = exit_flow.clone()
    for _ in range(env.max_steps):
        flow = exit_flow + (flow[dag.children] * pb_into).sum(1)
    log_flow = flow.log()
    log_pf = torch.cat(
        [log_flow[dag.children] + pb_into.log() - log_flow[:, None], (exit_flow.log() - log_flow)[:, None]], 1
    )
    # No flow passes where no terminal state lies below (e.g. unreachable states):
    # P_F is arbitrary there; take it uniform (as Policy does) rather than 0/0 = NaN,
    # which would poison terminal_distribution through 0 * NaN.
    uniform = masked_log_softmax(torch.zeros_like(log_pf), env.forward_mask(states))
    log_pf = torch.where((flow == 0)[:, None], uniform, log_pf)
    return Flows(log_flow, log_pf, log_pb, float(log_flow[env.state_index(env.reset(1))]))


def sampled_metrics(env: Environment, terminals: torch.Tensor, log_reward: torch.Tensor, top_k: int = 100):
    """Modes found, mean reward of the top-k distinct objects, fraction of distinct samples."""
    first, _ = distinct(terminals.reshape(len(terminals), -1), dim=0)
    reward = log_reward[first].exp()
    k = min(top_k, len(first))
    out = {
        "n_samples": len(terminals),
        "unique_fraction": len(first) / max(len(terminals), 1),
        f"top{top_k}_mean_reward": float(reward.topk(k).values.mean()) if k else math.nan,
        "mean_reward": float(log_reward.exp().mean()),
    }
    modes = env.is_mode(terminals[first])
    if modes is not None:
        out["modes_found"] = int(modes.sum())
        total = env.n_modes()
        if total is not None:
            out["modes_total"] = total
    return out
