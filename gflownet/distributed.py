"""Data-parallel training with torch.distributed (launched by ``torchrun``).

Every rank holds the same policy (rank 0's initial parameters are broadcast),
samples its share of the batch with its own random stream, and averages its
gradients with the others before each optimiser step. Since each objective's loss
is a mean over the trajectories of a batch, the averaged gradient of equal shares
is the gradient of the whole batch: one step equals a single-process step on the
ranks' trajectories concatenated. Only rank 0 writes the run folder; every rank
reads a checkpoint on resume, whatever the world size was when it was written.

  torchrun --nproc_per_node 2 -m gflownet.cli train --distributed --batch-size 64 ... --out run
"""

from __future__ import annotations

import hashlib
import os

import torch
import torch.distributed as dist
from torch import nn

from gflownet.errors import ConfigError


def stream_seed(seed: int, rank: int, step: int) -> int:
    """Seed of rank ``rank``'s sampling stream from training step ``step`` on: streams of
    different ranks (and of a run resumed at another step) do not overlap."""
    digest = hashlib.sha256(f"{seed}/{rank}/{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class DataParallel:
    """This process's place in the group: ``rank``, ``world_size``, ``local_rank``."""

    def __init__(self, rank: int, world_size: int, local_rank: int = 0):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank

    @classmethod
    def from_environment(cls, device: str) -> "DataParallel":
        """Join the process group that ``torchrun`` describes (RANK, WORLD_SIZE,
        LOCAL_RANK, MASTER_ADDR, MASTER_PORT): NCCL on CUDA, gloo on CPU."""
        missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
        if missing:
            raise ConfigError(
                f"--distributed needs the torchrun environment ({', '.join(missing)} unset): "
                "launch with torchrun --nproc_per_node N -m gflownet.cli train --distributed ..."
            )
        world = cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        return world

    def device(self, name: str) -> str:
        """The device of this rank: ``cuda`` becomes ``cuda:LOCAL_RANK``."""
        return f"cuda:{self.local_rank}" if name == "cuda" else name

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_batch(self, batch: int) -> int:
        """This rank's share of a batch of ``batch`` trajectories."""
        if batch % self.world_size:
            raise ConfigError(
                f"train.batch_size={batch} must be a multiple of the world size {self.world_size} "
                "(each rank samples an equal share)"
            )
        return batch // self.world_size

    def broadcast_parameters(self, module: nn.Module) -> None:
        """Every rank takes rank 0's parameters."""
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, 0)

    def average_gradients(self, parameters) -> None:
        """Replace each gradient by its mean over the ranks (one all-reduce; a parameter
        that has a gradient on some rank gets zeros on those where it has none)."""
        parameters = list(parameters)
        has_grad = torch.tensor(
            [p.grad is not None for p in parameters], dtype=torch.float32, device=parameters[0].device
        )
        dist.all_reduce(has_grad)
        used = [p for p, n in zip(parameters, has_grad.tolist()) if n > 0]
        if not used:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in used]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        for p, g in zip(used, flat.split([p.numel() for p in used])):
            p.grad = g.view_as(p)

    def barrier(self) -> None:
        dist.barrier()

    def close(self) -> None:
        """Leave the group once every rank is done (a rank leaving early aborts the others)."""
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
