"""``torch.optim.Adam`` that imports ``torch._dynamo`` only once something may compile.

torch.optim guards its methods against tracing by ``torch.compile``
(``add_param_group``, ``zero_grad``, ``state_dict`` and ``load_state_dict`` through
``torch._disable_dynamo``, ``step`` through graph breaks), and each guard imports
``torch._dynamo`` on first use: about 1 s on a 2-core CPU, a tenth of a short
training run. Outside a compiled frame the guards do nothing, and nothing can be
compiling while ``torch._dynamo`` is not loaded; so until it is, ``Adam`` calls
torch's own unguarded methods (the same arithmetic: the same ``adam`` function and
fused kernel), and from then on torch's guarded ones.
"""

from __future__ import annotations

import inspect
import sys

import torch
from torch.optim.optimizer import _use_grad_for_differentiable

_PLAIN_STEP = inspect.unwrap(torch.optim.Adam.step)
_GUARDED_STEP = _use_grad_for_differentiable(_PLAIN_STEP)


def _dynamo_loaded() -> bool:
    return "torch._dynamo" in sys.modules


def _unguarded(name: str):
    """Optimizer method ``name``, calling past its dynamo guard while torch._dynamo is not loaded."""
    guarded = getattr(torch.optim.Optimizer, name)
    plain = inspect.unwrap(guarded)

    def method(self, *args, **kwargs):
        return (guarded if _dynamo_loaded() else plain)(self, *args, **kwargs)

    method.__name__, method.__doc__ = name, guarded.__doc__
    return method


class Adam(torch.optim.Adam):
    """``torch.optim.Adam`` (same arguments, state and results) without the start-up cost."""

    add_param_group = _unguarded("add_param_group")
    zero_grad = _unguarded("zero_grad")
    state_dict = _unguarded("state_dict")
    load_state_dict = _unguarded("load_state_dict")

    def step(self, closure=None):
        if _dynamo_loaded():
            return _GUARDED_STEP(self, closure)
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return _PLAIN_STEP(self, closure)
