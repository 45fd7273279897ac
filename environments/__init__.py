"""Environments: what can be built. ``make_env("hypergrid", dim=4, side=8)``."""

from __future__ import annotations

import inspect

from gflownet.environments.atoms import AtomEnv
from gflownet.environments.base import LOG_REWARD_FLOOR, Environment, checked_log
from gflownet.environments.fragments import FragmentEnv
from gflownet.environments.hypergrid import HyperGrid
from gflownet.environments.sets import SetGeneration
from gflownet.environments.bitseq import BitSequences
from gflownet.environments.ehrlich import Ehrlich
from gflownet.environments.rna import RNABinding
from gflownet.environments.sequences import PrependAppendSequences, Sequences
from gflownet.environments.tfbind8 import TFBind8
from gflownet.errors import ConfigError

ENVIRONMENTS: dict[str, type[Environment]] = {
    "hypergrid": HyperGrid,
    "sets": SetGeneration,
    "fragments": FragmentEnv,
    "atoms": AtomEnv,
}
ENVIRONMENTS.update(
    {
        "sequence": Sequences,
        "prepend_append": PrependAppendSequences,
        "tfbind8": TFBind8,
        "bitseq": BitSequences,
        "ehrlich": Ehrlich,
        "rna": RNABinding,
    }
)


def env_parameters(name: str) -> list[str]:
    """The keyword parameters an environment accepts (for ``--set``)."""
    cls = _lookup(name)
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "device")]


def make_env(name: str, device: str = "cpu", **params) -> Environment:
    """Build the environment ``name`` with ``params``; unknown names raise ConfigError."""
    cls = _lookup(name)
    unknown = set(params) - set(env_parameters(name))
    if unknown:
        raise ConfigError(
            f"environment {name!r} has no parameter {', '.join(sorted(unknown))} "
            f"(it takes: {', '.join(env_parameters(name))})"
        )
    return cls(device=device, **params)


def _lookup(name: str) -> type[Environment]:
    from gflownet.config import lookup

    return lookup("environment", name, ENVIRONMENTS)


__all__ = [
    "AtomEnv",
    "BitSequences",
    "ENVIRONMENTS",
    "Ehrlich",
    "Environment",
    "FragmentEnv",
    "HyperGrid",
    "LOG_REWARD_FLOOR",
    "PrependAppendSequences",
    "RNABinding",
    "Sequences",
    "SetGeneration",
    "TFBind8",
    "checked_log",
    "env_parameters",
    "make_env",
]
