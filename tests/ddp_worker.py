"""One rank of the data-parallel test (tests/test_distributed.py): two training steps
on its share of the batch, then a checkpoint written by rank 0 alone.

  RANK=r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=p python tests/ddp_worker.py RUN_DIR
"""

import sys
from pathlib import Path

import torch

from gflownet.distributed import DataParallel
from gflownet.trainer import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from test_distributed import small_config  # noqa: E402


def parameters(trainer):
    return {k: v.detach().clone() for k, v in trainer.policy.state_dict().items()}


def main(run_dir: Path):
    world = DataParallel.from_environment("cpu")
    trainer = Trainer(small_config(), out=run_dir, world=world)
    initial = parameters(trainer)
    trainer.train_step()
    traj = trainer.last_trajectories
    record = {
        "initial": initial,
        "after": parameters(trainer),
        "states": traj.states,
        "actions": traj.actions,
        "lengths": traj.lengths,
        "log_reward": traj.log_reward,
    }
    trainer.train_step()
    if trainer.writes:
        trainer.save_checkpoint()
    record["checkpointed"] = parameters(trainer)
    torch.save(record, run_dir / f"rank{world.rank}.pt")
    world.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
