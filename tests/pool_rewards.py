"""Reward functions for tests/test_reward_pool.py (importable by worker processes)."""

import os
import signal
import time


class KillOnce:
    """R(x) = x^2, but the first worker to meet ``trigger`` dies (SIGKILL) mid-chunk;
    the file ``marker`` records that it happened."""

    def __init__(self, marker: str, trigger: int):
        self.marker, self.trigger = marker, trigger

    def __call__(self, objects):
        time.sleep(0.05)  # the other chunks are in flight when the worker dies
        if self.trigger in objects and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return [x * x for x in objects]


class FailsOn:
    """R(x) = x + 1, raising on every chunk that holds ``bad``."""

    def __init__(self, bad: int):
        self.bad = bad

    def __call__(self, objects):
        if self.bad in objects:
            raise ValueError(f"cannot score {self.bad}")
        return [x + 1.0 for x in objects]
