"""Objectives: how flows are made to balance.

Each loss is a pure function of tensors (``objectives/<name>.py``). An
``Objective`` records which estimates it needs from the policy and how to call
its loss on an ``Evaluation`` (``gflownet.policy``) of a trajectory batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from gflownet.errors import ConfigError
from gflownet.objectives.db import detailed_balance
from gflownet.objectives.fl import fl_detailed_balance, fl_subtrajectory_balance
from gflownet.objectives.fm import flow_matching
from gflownet.objectives.modified_db import modified_detailed_balance
from gflownet.objectives.oc import teleported_detailed_balance
from gflownet.objectives.subtb import subtrajectory_balance
from gflownet.objectives.tb import trajectory_balance, vargrad


@dataclass(frozen=True)
class Objective:
    """A loss and the estimator heads it needs (``needs`` is a subset of {"log_pb",
    "log_flow", "log_z", "edge_flows", "log_pf_exit", "state_log_reward", "state_energy"})."""

    name: str
    loss: Callable
    needs: frozenset
    defaults: dict = field(default_factory=dict)
    summary: str = ""

    def check_params(self, params: dict) -> dict:
        """``params`` completed with the defaults; unknown names raise ConfigError."""
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ConfigError(
                f"objective {self.name!r} has no parameter {', '.join(sorted(unknown))}"
                f" (it takes: {', '.join(self.defaults) or 'none'})"
            )
        return {**self.defaults, **params}

    def __call__(self, ev, **params):
        return self.loss(ev, **self.check_params(params))


def _whole(ev, name):
    if ev.complete is not None and not bool(ev.complete.all()):
        raise ConfigError(
            f"{name} needs complete trajectories; train on cut ones with db, subtb, fl_db, fl_subtb, fm or mdb"
        )


def _tb(ev):
    _whole(ev, "tb")
    return trajectory_balance(ev.log_pf, ev.log_pb, ev.log_reward, ev.log_z, ev.mask)


def _zvar(ev):
    _whole(ev, "zvar")
    return vargrad(ev.log_pf, ev.log_pb, ev.log_reward, ev.mask)


def _db(ev):
    return detailed_balance(ev.log_pf, ev.log_pb, ev.log_flow, ev.log_reward, ev.lengths, ev.complete)


def _positive_lam(name, lam):
    if not lam > 0:
        raise ConfigError(f"{name}: lam must be > 0, got {lam}")


def _subtb(ev, lam):
    _positive_lam("subtb", lam)
    return subtrajectory_balance(ev.log_pf, ev.log_pb, ev.log_flow, ev.log_reward, ev.lengths, lam, ev.complete)


def _oc_db(ev):
    return teleported_detailed_balance(ev.log_pf, ev.log_pb, ev.log_flow, ev.log_reward, ev.lengths, ev.complete)


def _fl_db(ev):
    return fl_detailed_balance(
        ev.log_pf, ev.log_pb, ev.log_flow, ev.state_energy, ev.lengths, ev.complete, ev.log_reward
    )


def _fl_subtb(ev, lam):
    _positive_lam("fl_subtb", lam)
    return fl_subtrajectory_balance(
        ev.log_pf, ev.log_pb, ev.log_flow, ev.state_energy, ev.lengths, lam, ev.complete, ev.log_reward
    )


def _fm(ev):
    return flow_matching(ev.log_inflow, ev.log_outflow, ev.log_exit_flow, ev.log_reward, ev.lengths, ev.complete)


def _mdb(ev):
    return modified_detailed_balance(ev.log_pf, ev.log_pb, ev.log_pf_exit, ev.state_log_reward, ev.lengths, ev.complete)


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in [
        Objective("tb", _tb, frozenset({"log_pb", "log_z"}), summary="trajectory balance"),
        Objective("zvar", _zvar, frozenset({"log_pb"}), summary="TB with the batch (VarGrad) estimate of log Z"),
        Objective("db", _db, frozenset({"log_pb", "log_flow"}), summary="detailed balance"),
        Objective(
            "subtb",
            _subtb,
            frozenset({"log_pb", "log_flow"}),
            {"lam": 0.9},
            "sub-trajectory balance, weights lam^(j-i)",
        ),
        Objective("fm", _fm, frozenset({"edge_flows"}), summary="flow matching (logits are log edge flows)"),
        Objective(
            "fl_db",
            _fl_db,
            frozenset({"log_pb", "log_flow", "state_energy"}),
            summary="forward-looking DB: log F = log F~ - E, F~ = 1 past the exit",
        ),
        Objective(
            "fl_subtb",
            _fl_subtb,
            frozenset({"log_pb", "log_flow", "state_energy"}),
            {"lam": 0.9},
            "forward-looking SubTB(lam)",
        ),
        Objective(
            "oc_db",
            _oc_db,
            frozenset({"log_pb", "log_flow"}),
            summary="outcome-conditioned DB with outcome teleportation (gflownet pretrain)",
        ),
        Objective(
            "mdb",
            _mdb,
            frozenset({"log_pb", "log_pf_exit", "state_log_reward"}),
            summary="modified detailed balance (every state terminal)",
        ),
    ]
}


def get_objective(name: str) -> Objective:
    from gflownet.config import lookup

    return lookup("objective", name, OBJECTIVES)


__all__ = [
    "OBJECTIVES",
    "Objective",
    "get_objective",
    "trajectory_balance",
    "vargrad",
    "detailed_balance",
    "subtrajectory_balance",
    "flow_matching",
    "modified_detailed_balance",
    "fl_detailed_balance",
    "fl_subtrajectory_balance",
    "teleported_detailed_balance",
]
