"""Rewards scored in worker processes: a local process pool or a Ray cluster.

An expensive oracle (docking, folding, a large proxy) is a callable ``reward(objects)
-> sequence of float rewards``, one per object; the pool splits each batch into
chunks, scores them in parallel and gives the rewards back in order. ``submit``
returns at once, so the trainer can sample the next batch while this one is scored:

    pool = RewardPool(reward, backend="ray", workers=8)
    pending = pool.submit(objects)     # scoring starts
    ...                                # sample the next batch meanwhile
    rewards = pending.result()         # float64 [N], in the order of objects

A chunk whose worker raised or died (killed, out of memory) is resubmitted, up to
``retries`` more times; then its objects are scored one by one, and an object that
still fails gets the ``floor`` reward, a warning, and a count in ``pool.failures``.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import warnings
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Sequence

import torch

from gflownet.errors import ConfigError, RewardError

BACKENDS = ("local", "ray")


def _apply(reward: Callable, chunk: list) -> list[float]:
    values = [float(v) for v in reward(chunk)]
    if len(values) != len(chunk):
        raise RewardError(f"the reward returned {len(values)} values for {len(chunk)} objects")
    return values


class _LocalBackend:
    """A ``ProcessPoolExecutor`` (spawned workers), rebuilt when a worker dies."""

    def __init__(self, workers: int):
        self.workers, self.executor = workers, None

    def run(self, reward, chunk):
        for _ in range(2):  # a pool broken by a dead worker refuses work: rebuild it once
            if self.executor is None:
                self.executor = concurrent.futures.ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn")
                )
            try:
                return self.executor.submit(_apply, reward, chunk)
            except BrokenProcessPool:
                self.executor.shutdown(wait=False, cancel_futures=True)
                self.executor = None
        raise RewardError("the local reward pool cannot start workers")

    @staticmethod
    def wait(handle):
        return handle.result()

    def close(self):
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None


class _RayBackend:
    """Ray tasks (one CPU each) on the cluster ``ray.init(address)`` joins (None: a local one)."""

    def __init__(self, workers: int, address: str | None):
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray reward pool needs Ray: pip install 'gflownet[dist]'") from None
        if not ray.is_initialized():
            ray.init(
                address=address, num_cpus=None if address else workers, include_dashboard=False, log_to_driver=False
            )
        self.ray = ray
        self.task = ray.remote(num_cpus=1, max_retries=0)(_apply)  # retries are the pool's

    def run(self, reward, chunk):
        return self.task.remote(reward, chunk)

    def wait(self, handle):
        return self.ray.get(handle)

    def close(self):
        pass  # the Ray instance may serve others; ray.shutdown() is the caller's


class RewardPool:
    """Score batches of objects with ``reward`` in ``workers`` parallel workers.

    Args:
        reward: picklable callable, ``reward(list of objects) -> sequence of N floats``.
        backend: "local" (a process pool on this machine) or "ray".
        chunk_size: objects per task (default: the batch split evenly over the workers).
        retries: resubmissions of a failed chunk (and of each of its objects) before the floor.
        floor: the reward given to an object that keeps failing.
        address: Ray cluster address ("auto", "ray://host:port"); None starts a local instance.
    """

    def __init__(
        self,
        reward: Callable,
        backend: str = "local",
        workers: int = 2,
        chunk_size: int | None = None,
        retries: int = 2,
        floor: float = 0.0,
        address: str | None = None,
    ):
        if backend not in BACKENDS:
            raise ConfigError(f"reward pool backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if workers < 1 or retries < 0 or (chunk_size is not None and chunk_size < 1):
            raise ConfigError(
                f"reward pool: need workers >= 1, retries >= 0, chunk_size >= 1 "
                f"(got {workers}, {retries}, {chunk_size})"
            )
        self.reward, self.workers, self.chunk_size, self.retries, self.floor = (
            reward,
            workers,
            chunk_size,
            retries,
            float(floor),
        )
        self.backend = _LocalBackend(workers) if backend == "local" else _RayBackend(workers, address)
        self.failures = 0  # objects scored at the floor so far

    def submit(self, objects: Sequence) -> "PendingRewards":
        """Start scoring ``objects``; returns at once."""
        objects = list(objects)
        size = self.chunk_size or max(1, -(-len(objects) // self.workers))
        chunks = [objects[i : i + size] for i in range(0, len(objects), size)]
        return PendingRewards(self, [(chunk, self.backend.run(self.reward, chunk)) for chunk in chunks])

    def score(self, objects: Sequence) -> torch.Tensor:
        """The rewards of ``objects``, float64 ``[N]`` (blocking)."""
        return self.submit(objects).result()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _collect(self, chunk: list, handle) -> list[float]:
        """The rewards of one chunk, resubmitting it while it fails; then object by object."""
        for attempt in range(self.retries + 1):
            try:
                return self.backend.wait(handle)
            except Exception as exc:  # a raised reward, a dead worker, a broken pool: all retried alike
                error = exc
                if attempt < self.retries:
                    handle = self.backend.run(self.reward, chunk)
        if len(chunk) > 1:
            return [v for obj in chunk for v in self._collect([obj], self.backend.run(self.reward, [obj]))]
        self.failures += 1
        reason = (str(error).strip().splitlines() or [""])[-1]  # Ray wraps the worker's traceback
        warnings.warn(
            f"reward failed {self.retries + 1} times on {chunk[0]!r} ({type(error).__name__}: "
            f"{reason}); scored at the floor {self.floor} ({self.failures} so far)",
            RuntimeWarning,
            stacklevel=3,
        )
        return [self.floor]


class PendingRewards:
    """The rewards of a submitted batch; ``result()`` waits for them."""

    def __init__(self, pool: RewardPool, tasks: list):
        self.pool, self.tasks, self._result = pool, tasks, None

    def result(self) -> torch.Tensor:
        """float64 ``[N]``, in the order the objects were submitted."""
        if self._result is None:
            values = [v for chunk, handle in self.tasks for v in self.pool._collect(chunk, handle)]
            self._result = torch.tensor(values, dtype=torch.float64)
        return self._result


class Deferred:
    """A value computed on the first ``result()`` (then kept): work already started
    elsewhere (a reward pool) or still to do here."""

    def __init__(self, compute):
        self.compute, self.done, self.value = compute, False, None

    def result(self):
        if not self.done:
            self.value, self.done, self.compute = self.compute(), True, None
        return self.value


def scores_in_workers(env) -> bool:
    """True where ``env`` scores in worker processes (``submit_log_reward``, a pool): then
    submitting before other work pays. A wrapper that forwards attributes does not count."""
    return getattr(type(env), "submit_log_reward", None) is not None and getattr(env, "pool", None) is not None


def submit_log_reward(env, states: torch.Tensor, cond: torch.Tensor | None = None) -> Deferred:
    """log R ``[B]`` of ``states`` (``cond``: ``[B, C]`` or None) as a Deferred: scoring starts
    now where ``env`` scores in worker processes, else it runs on ``result()``."""
    if scores_in_workers(env):
        return env.submit_log_reward(states, cond)
    return Deferred(lambda: env.log_reward(states) if cond is None else env.log_reward_cond(states, cond))
