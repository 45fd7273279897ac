"""The policy: one trunk, heads for P_F, P_B, log F(s), and log Z(cond).

``Policy.evaluate`` recomputes, in one forward pass, every estimate a loss
needs for a batch of trajectories. Where the environment can index its states,
each distinct state of the batch goes through the network once (trajectories
share their early states, and padding repeats the terminal state).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gflownet.environments.base import Environment
from gflownet.dedup import distinct
from gflownet.errors import ConfigError, RewardError
from gflownet.nets import MLP, build_trunk
from gflownet.reward_pool import scores_in_workers
from gflownet.trajectories import Trajectories, transition_masks


@dataclass
class Evaluation:
    """Estimates for a batch: per transition ``[B, T]``, per state ``[B, T+1]``
    (states s_0..s_T), None where not asked for."""

    lengths: torch.Tensor  # [B]
    mask: torch.Tensor  # [B, T] bool
    complete: torch.Tensor | None  # [B] bool, None: all complete
    log_reward: torch.Tensor  # [B]
    log_pf: torch.Tensor  # [B, T]
    log_pb: torch.Tensor | None = None  # [B, T], 0 at the exit
    log_flow: torch.Tensor | None = None  # [B, T+1] log F(s_t)
    log_z: torch.Tensor | None = None  # [B]
    log_pf_exit: torch.Tensor | None = None  # [B, T+1] log P_F(stop | s_t)
    state_log_reward: torch.Tensor | None = None  # [B, T+1] log R(s_t)
    log_inflow: torch.Tensor | None = None  # [B, T+1] edge flows into s_t (FM)
    log_outflow: torch.Tensor | None = None  # [B, T+1] edge flows out of s_t (FM)
    log_exit_flow: torch.Tensor | None = None  # [B] F(x -> sink) (FM)
    state_energy: torch.Tensor | None = None  # [B, T+1] E(s_t) (forward-looking)


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log-softmax over the legal entries; illegal ones get -inf.

    A row with no legal entry (P_B at s_0) is normalised over all entries instead:
    it is never read, but a row of NaNs would poison the gradient.
    """
    mask = mask | ~mask.any(-1, keepdim=True)
    return logits.masked_fill(~mask, float("-inf")).log_softmax(-1)


def checked_energy(env: Environment, states: torch.Tensor, energy: torch.Tensor | None = None) -> torch.Tensor:
    """``env.log_energy(states)`` ``[N]`` (or ``energy``, computed already), refusing a non-finite
    energy with a clear error."""
    if not env.has_energy:
        raise ConfigError(f"{type(env).__name__} defines no log_energy: forward-looking objectives need one")
    energy = env.log_energy(states) if energy is None else energy
    bad = ~torch.isfinite(energy)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise RewardError(
            f"{type(env).__name__}.log_energy returned {energy[i].item()} for state "
            f"{states[i].tolist()}; energies must be finite"
        )
    return energy


class Policy(nn.Module):
    """A trunk over ``env.featurize(s)`` (and ``cond``) with linear heads.

    Args:
        env: the environment (fixes input and output widths).
        hidden, layers: trunk width and depth.
        arch: the trunk (``gflownet.nets.TRUNKS``; "auto": ``env.default_arch``).
        backward: "learned" (a P_B head) or "uniform" (P_B uniform over parents).
        flow: add a log F(s) head (DB, SubTB).
        cond_dim: width of the conditioning tensor (0: unconditional).
        log_z: learn log Z (TB): a scalar, or an MLP of ``cond`` when ``cond_dim > 0``.
    """

    def __init__(
        self,
        env: Environment,
        hidden: int = 256,
        layers: int = 2,
        backward: str = "learned",
        flow: bool = False,
        cond_dim: int = 0,
        log_z: bool = True,
        arch: str = "auto",
    ):
        super().__init__()
        if backward not in ("learned", "uniform"):
            raise ConfigError(f"backward policy must be 'learned' or 'uniform', got {backward!r}")
        if hidden < 1 or layers < 1:
            raise ConfigError(f"hidden and layers must be >= 1, got hidden={hidden}, layers={layers}")
        self.n_actions, self.n_backward = env.n_actions, env.n_backward_actions
        self.learned_backward, self.has_flow, self.cond_dim = backward == "learned", flow, cond_dim
        n_out = self.n_actions + (self.n_backward if self.learned_backward else 0) + int(flow)
        self.trunk = build_trunk(arch, env, hidden, layers, cond_dim)
        make_head = getattr(self.trunk, "make_head", None)  # graph trunks lay logits out over the graph
        self.head = make_head(self.learned_backward, flow) if make_head else nn.Linear(hidden, n_out)
        self.learns_log_z = log_z
        if log_z and cond_dim:
            self.log_z_net = nn.Sequential(MLP(cond_dim, hidden, 1), nn.Linear(hidden, 1))
        elif log_z:
            self.log_z_param = nn.Parameter(torch.zeros(1))

    def log_z_parameters(self) -> list[nn.Parameter]:
        if not self.learns_log_z:
            return []
        return list(self.log_z_net.parameters()) if self.cond_dim else [self.log_z_param]

    def log_z(self, cond: torch.Tensor | None, batch: int) -> torch.Tensor:
        """log Z(cond), ``[B]``."""
        if not self.learns_log_z:
            raise ConfigError("this policy learns no log Z (build it with log_z=True)")
        if self.cond_dim:
            return self.log_z_net(cond).squeeze(-1)
        return self.log_z_param.expand(batch)

    @torch.no_grad()
    def estimate_log_z(self, env: Environment, needs: frozenset) -> float | None:
        """The model's estimate of log Z (unconditional), read from the heads that the
        objective trains: log Z itself (TB); log F(s_0) (DB, SubTB); the total edge flow
        out of s_0 (FM); log R(s_0) - log P_F(stop|s_0) (modified DB); else None."""
        s0 = env.reset(1)
        cond = env.cond_for(None, 1) if self.cond_dim and hasattr(env, "cond_for") else None  # its default
        fwd, _, flow = self.heads(env.featurize(s0), cond)
        if "log_z" in needs:
            return float(self.log_z(cond, 1)[0])
        if "log_flow" in needs:
            return float(flow[0])
        mask = env.forward_mask(s0)
        if "edge_flows" in needs:
            return float(fwd.masked_fill(~mask, float("-inf")).logsumexp(-1)[0])
        if "state_log_reward" in needs:
            return float(env.log_reward(s0)[0] - masked_log_softmax(fwd, mask)[0, env.exit_action])
        return None

    def _hidden(self, features, cond):
        if self.cond_dim and cond is None:
            raise ConfigError("this policy is conditional: pass a cond tensor")
        return self.trunk(features, cond if self.cond_dim else None)

    def forward_logits(self, features: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``[N, n_actions]`` unnormalised forward logits (the only head a rollout needs)."""
        return self.head(self._hidden(features, cond))[:, : self.n_actions]  # all heads: fewer ops than slicing weights

    def backward_logits(self, features: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``[N, n_backward]`` backward logits (zeros: uniform, when P_B is not learned)."""
        if not self.learned_backward:
            if not isinstance(features, torch.Tensor):  # a torch_geometric Batch
                return torch.zeros(features.num_graphs, self.n_backward, device=next(self.head.parameters()).device)
            return features.new_zeros(len(features), self.n_backward)
        if not isinstance(self.head, nn.Linear):
            return self.heads(features, cond)[1]
        A, Ab = self.n_actions, self.n_backward
        return F.linear(self._hidden(features, cond), self.head.weight[A : A + Ab], self.head.bias[A : A + Ab])

    def heads(self, features, cond=None):
        """All heads at once: forward logits ``[N, A]``, backward logits ``[N, A_b]``
        (None when uniform), log F ``[N]`` (None without a flow head)."""
        out = self.head(self._hidden(features, cond))
        A, Ab = self.n_actions, self.n_backward if self.learned_backward else 0
        return out[:, :A], (out[:, A : A + Ab] if Ab else None), (out[:, -1] if self.has_flow else None)

    # -- the packed forward of a training step -----------------------------------
    def evaluate(self, env: Environment, traj: Trajectories, needs: frozenset, dedupe: bool = True) -> Evaluation:
        """Estimates for every transition and state of ``traj`` (one forward over its states;
        with ``dedupe``, over each distinct state once where the environment indexes them)."""
        B, T = traj.actions.shape
        shape = traj.states.shape[2:]
        states = traj.states.reshape(B * (T + 1), *shape)
        cond = None if traj.cond is None else traj.cond[:, None].expand(B, T + 1, -1).reshape(B * (T + 1), -1)
        if dedupe and cond is None and env.indexable:  # each distinct state once
            first, rows = distinct(env.state_index(states))
            states = states[first]
        else:
            rows = torch.arange(B * (T + 1), device=traj.actions.device)
        # energies computed by worker processes while the network runs
        energy = env.submit_log_energy(states) if "state_energy" in needs and scores_in_workers(env) else None
        fwd, bwd, flow = self.heads(env.featurize(states), cond)
        fwd_mask = env.forward_mask(states)
        log_pf_all = masked_log_softmax(fwd, fwd_mask)
        rows = rows.view(B, T + 1)
        actions = traj.actions
        mask = traj.mask
        # 0 off the transitions: a padding exit may be illegal there (-inf)
        ev = Evaluation(
            traj.lengths,
            mask,
            traj.complete,
            traj.log_reward,
            log_pf=torch.where(mask, log_pf_all[rows[:, :T], actions], 0.0),
        )
        if "log_pb" in needs:
            moves, _ = transition_masks(traj.lengths, traj.complete, T)
            back = env.backward_action(
                traj.states[:, :T].reshape(B * T, *shape), torch.where(moves, actions, 0).reshape(-1)
            ).view(B, T)
            bwd_mask = env.backward_mask(states)
            if bwd is None:
                log_pb_all = -bwd_mask.sum(-1, keepdim=True).clamp_min(1).float().log().expand_as(bwd_mask)
            else:
                log_pb_all = masked_log_softmax(bwd, bwd_mask)
            ev.log_pb = torch.where(moves, log_pb_all[rows[:, 1:], back], 0.0)
        if "log_flow" in needs:
            if flow is None:
                raise ConfigError("this objective needs a flow head: build the Policy with flow=True")
            ev.log_flow = flow[rows]
        if "log_z" in needs:
            ev.log_z = self.log_z(traj.cond, B)
        if "log_pf_exit" in needs:
            ev.log_pf_exit = log_pf_all[rows, env.exit_action]
        if "state_log_reward" in needs:
            ev.state_log_reward = env.log_reward(states)[rows]
        if "state_energy" in needs:
            ev.state_energy = checked_energy(env, states, None if energy is None else energy.result())[rows]
        if "edge_flows" in needs:
            log_in, log_out = self._edge_flows(env, states, cond, fwd, fwd_mask)
            ev.log_inflow, ev.log_outflow = log_in[rows], log_out[rows]
            ev.log_exit_flow = fwd[rows[torch.arange(B), traj.lengths.clamp_min(1) - 1], env.exit_action]
        return ev

    def _edge_flows(self, env, states, cond, fwd, fwd_mask):
        """log total edge flow into and out of each state, ``[N]`` each (FM); ``cond``
        is None or ``[N, C]``, the conditioning of each state."""
        N, Ab = len(states), env.n_backward_actions
        legal = env.backward_mask(states)  # [N, Ab]
        back = torch.arange(Ab, device=states.device).repeat(N)
        child = states.repeat_interleave(Ab, 0)
        parents = child.clone()
        ok = legal.reshape(-1)
        parents[ok] = env.backward_step(child[ok], back[ok])
        into = env.forward_action(child, back)
        parent_cond = None if cond is None else cond.repeat_interleave(Ab, 0)
        parent_logits = self.forward_logits(env.featurize(parents), parent_cond)
        edge = parent_logits.gather(1, into[:, None]).view(N, Ab)
        # s_0 has no parent: give it a finite dummy inflow (never read) rather than -inf,
        # whose logsumexp gradient would be NaN.
        no_parent = torch.where(legal.any(-1, keepdim=True), float("-inf"), 0.0)
        log_in = torch.where(legal, edge, no_parent).logsumexp(-1)
        log_out = fwd.masked_fill(~fwd_mask, float("-inf")).logsumexp(-1)
        return log_in, log_out
