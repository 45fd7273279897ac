"""The batched environment protocol every family implements.

A state batch is a tensor ``[B, *state_shape]``. Forward actions are integers in
``[0, n_actions)``; the last one, ``exit_action``, ends the trajectory and leaves
the state unchanged (an environment whose objects have a fixed size simply makes
exit the only legal action there). Backward actions are integers in
``[0, n_backward_actions)``: each undoes one forward move.

Everything is batched: no Python loop over the states of a batch.
"""

from __future__ import annotations

import math

import torch

from gflownet.errors import ConfigError, RewardError

#: log R used where a reward is exactly 0 (R = 0 is legal; log 0 is not).
#: exp(-50) ~ 2e-22: far below any reward a user would compare with.
LOG_REWARD_FLOOR = -50.0


def checked_log(reward: torch.Tensor, states: torch.Tensor, who: str) -> torch.Tensor:
    """log of a batch of rewards ``[B]``, refusing NaN, +-inf and negatives.

    R = 0 maps to ``LOG_REWARD_FLOOR``; positive rewards keep their exact log.
    The error names the first bad state.
    """
    reward = torch.as_tensor(reward)
    if reward.shape != states.shape[:1]:
        raise RewardError(f"{who} returned shape {tuple(reward.shape)}, expected ({states.shape[0]},)")
    reward = reward.to(torch.float64)  # float32 would turn a finite 1e39 into inf
    bad = ~torch.isfinite(reward) | (reward < 0)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise RewardError(
            f"{who} returned {reward[i].item()} for state {states[i].tolist()} "
            f"({int(bad.sum())} bad values in a batch of {len(reward)}); "
            "rewards must be finite and >= 0"
        )
    return torch.where(reward > 0, reward.log(), LOG_REWARD_FLOOR).to(torch.float32)


def checked_int(who: str, name: str, value, minimum: int = 1) -> int:
    """``value`` if it is an integer >= ``minimum`` (not a bool), else a ConfigError naming ``who``'s ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{who}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def unit_moves(n: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """``[n + 1, n]`` long: row a < n adds 1 to coordinate a; row n (the exit) is zero."""
    return torch.cat([torch.eye(n, dtype=torch.long), torch.zeros(1, n, dtype=torch.long)]).to(device)


class Environment:
    """Base class: subclasses set the attributes and implement the methods.

    Attributes:
        n_actions: forward actions, the exit action last.
        n_backward_actions: backward actions.
        state_shape: shape of one state.
        feature_dim: width of ``featurize``'s output.
        max_steps: the most transitions a trajectory can take, exit included.
        n_states: number of states when the space is enumerable, else None.
    """

    n_actions: int
    n_backward_actions: int
    state_shape: tuple[int, ...]
    state_dtype: torch.dtype = torch.long
    feature_dim: int
    max_steps: int
    n_states: int | None = None
    device: torch.device = torch.device("cpu")
    #: the trunk ``--set arch=auto`` picks (``gflownet.nets.TRUNKS``)
    default_arch: str = "mlp"
    #: reset, forward_mask, featurize and step are tensor ops whose output shapes depend
    #: on the batch size only: the rollout may then be compiled (``gflownet.compiled``)
    fixed_shape: bool = False
    #: log_reward is a device-side lookup with no host synchronisation (a table validated when
    #: built): with ``fixed_shape``, a whole training step may be one CUDA graph (``gflownet.graphed``)
    capturable: bool = False

    @property
    def exit_action(self) -> int:
        return self.n_actions - 1

    def reset(self, batch: int) -> torch.Tensor:
        """``batch`` copies of the initial state s_0: ``[B, *state_shape]``."""
        raise NotImplementedError

    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        """Legal forward actions, bool ``[B, n_actions]``."""
        raise NotImplementedError

    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        """Legal backward actions, bool ``[B, n_backward_actions]`` (none at s_0)."""
        raise NotImplementedError

    def step(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Apply legal forward actions ``[B]``; exit leaves the state unchanged."""
        raise NotImplementedError

    def backward_step(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Apply legal backward actions ``[B]``: returns the parents."""
        raise NotImplementedError

    def backward_action(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The backward action at ``step(states, actions)`` that leads back to ``states``.

        ``actions`` are non-exit forward actions ``[B]``. Default: the same index.
        """
        return actions

    def forward_action(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The forward action from ``backward_step(states, actions)`` back to ``states``."""
        return actions

    def featurize(self, states: torch.Tensor) -> torch.Tensor:
        """Network input, float ``[B, feature_dim]``."""
        raise NotImplementedError

    def log_reward(self, states: torch.Tensor) -> torch.Tensor:
        """log R of terminal states, float ``[B]``, finite (see ``LOG_REWARD_FLOOR``)."""
        raise NotImplementedError

    def is_initial(self, states: torch.Tensor) -> torch.Tensor:
        """bool ``[B]``: which states are s_0."""
        return ~self.backward_mask(states).any(-1)

    # -- enumerable spaces (exact evaluation) -------------------------------
    def all_states(self) -> torch.Tensor:
        """Every state, ``[n_states, *state_shape]``, in the order of ``state_index``."""
        raise NotImplementedError(f"{type(self).__name__} cannot enumerate its states")

    def state_index(self, states: torch.Tensor) -> torch.Tensor:
        """A unique integer per state, long ``[B]`` (also used to evaluate each
        distinct state of a batch once)."""
        raise NotImplementedError(f"{type(self).__name__} has no state index")

    @property
    def enumerable(self) -> bool:
        """``all_states`` and ``state_index`` work: exact evaluation by DP."""
        return self.n_states is not None

    @property
    def indexable(self) -> bool:
        """``state_index`` works (a batch's distinct states are then evaluated once)."""
        return self.enumerable

    def log_partition(self) -> float:
        """Exact log Z = log sum_x R(x), where the environment can compute it."""
        raise NotImplementedError(f"{type(self).__name__} has no exact log Z")

    def log_energy(self, states: torch.Tensor) -> torch.Tensor:
        """Energy E(s) of any state, float ``[B]``, with R(x) = exp(-E(x)) at terminal
        states (forward-looking objectives)."""
        raise NotImplementedError(f"{type(self).__name__} defines no energy of its states")

    @property
    def has_energy(self) -> bool:
        return type(self).log_energy is not Environment.log_energy

    # -- objects ------------------------------------------------------------
    def object_columns(self) -> list[str]:
        """Column names used to write one terminal object as a CSV row."""
        return [f"x{i}" for i in range(math.prod(self.state_shape))]

    def object_rows(self, states: torch.Tensor) -> list[list]:
        """Terminal states as CSV rows (one list per state)."""
        return states.reshape(len(states), -1).tolist()

    def is_mode(self, states: torch.Tensor) -> torch.Tensor | None:
        """bool ``[B]``: which terminal states are modes, or None if undefined."""
        return None

    def n_modes(self) -> int | None:
        return None

    # -- outcomes (outcome-conditioned pretraining, OC-GFN) --------------------
    #: width of ``encode_outcome``'s output; None: the environment declares no outcome space
    outcome_dim: int | None = None

    @property
    def has_outcomes(self) -> bool:
        return self.outcome_dim is not None

    def encode_outcome(self, outcomes: torch.Tensor) -> torch.Tensor:
        """The conditioning tensor of target outcomes ``[B, *state_shape]``: float ``[B, outcome_dim]``.
        Default: the outcome's own features (then ``outcome_dim = feature_dim``)."""
        if not self.has_outcomes:
            raise NotImplementedError(f"{type(self).__name__} declares no outcome space")
        return self.featurize(outcomes)

    def sample_outcomes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` terminal objects drawn uniformly, ``[n, *state_shape]``."""
        raise NotImplementedError(f"{type(self).__name__} declares no outcome space")

    def all_outcomes(self) -> torch.Tensor:
        """Every terminal object, ``[Y, *state_shape]`` (enumerable spaces): the states that may exit."""
        states = self.all_states()
        return states[self.forward_mask(states)[:, self.exit_action]]

    def same_outcome(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """bool ``[B]``: terminal object x_b is the outcome y_b."""
        return (x == y).reshape(len(x), -1).all(-1)

    def outcome_reachable(self, states: torch.Tensor, outcomes: torch.Tensor) -> torch.Tensor | None:
        """bool ``[B]``: outcome y_b can still be reached from state s_b (then F(s|y) > 0), or None
        where the environment cannot tell."""
        return None
