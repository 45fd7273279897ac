"""The whole training step as one CUDA graph (gflownet.graphed).

On CPU: the fixed-length rollout takes the eager rollout's actions, the padded loss
equals the deduplicated one, the step run eagerly trains like the default trainer
(same parameters, same exact L1), and the train.cuda_graph switch refuses what it
cannot capture. On CUDA (skipped without one): the captured step equals the eager
step, trains to the exact distribution, and its checkpoint resumes on the CPU."""

import pytest
import torch

from gflownet.config import RunConfig
from gflownet.environments.hypergrid import HyperGrid
from gflownet.errors import ConfigError
from gflownet.graphed import GraphedStep, fixed_rollout, pays_off, unsupported, use_cuda_graph
from gflownet.objectives import get_objective
from gflownet.policy import Policy
from gflownet.sampler import sample_forward
from gflownet.trainer import Trainer

DIM, SIDE, BATCH = 2, 6, 8
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def config(objective="tb", steps=200, device="cpu", **train):
    c = RunConfig(env_params={"dim": DIM, "side": SIDE}, objective=objective)
    c.model.hidden = 32
    c.train.batch_size, c.train.trajectories, c.train.eval_every = BATCH, BATCH * steps, 0
    c.train.device, c.train.cuda_graph = device, "false"
    for key, value in train.items():
        setattr(c.train, key, value)
    return c


def parameters(trainer):
    return torch.cat([p.detach().flatten() for p in trainer.policy.parameters()])


def test_fixed_rollout_takes_the_eager_actions():
    env = HyperGrid(dim=DIM, side=SIDE)
    policy = Policy(env, hidden=32)
    fixed_gen, eager_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for _ in range(4):
        fixed = fixed_rollout(env, policy, BATCH, 1.5, 0.2, fixed_gen)
        eager = sample_forward(env, policy, BATCH, epsilon=0.2, temperature=1.5, generator=eager_gen)
        T = eager.max_length
        assert fixed.max_length == env.max_steps and torch.equal(fixed.lengths, eager.lengths)
        assert torch.equal(fixed.actions[:, :T], eager.actions)
        assert (fixed.actions[:, T:] == env.exit_action).all()
        assert torch.equal(fixed.states[:, : T + 1], eager.states)
        assert torch.equal(fixed.terminal, eager.terminal)
    assert torch.equal(fixed_gen.get_state(), eager_gen.get_state())


@pytest.mark.parametrize("objective", ["tb", "db", "subtb", "mdb"])
def test_padded_loss_equals_the_deduplicated_one(objective):
    env = HyperGrid(dim=DIM, side=SIDE)
    needs = get_objective(objective).needs
    policy = Policy(env, hidden=32, flow="log_flow" in needs)
    traj = fixed_rollout(env, policy, BATCH, 1.0, 0.0, torch.Generator().manual_seed(0))
    traj.log_reward = env.log_reward(traj.terminal)
    losses, grads = [], []
    for dedupe in (True, False):
        policy.zero_grad()
        loss = get_objective(objective)(policy.evaluate(env, traj, needs, dedupe=dedupe))
        loss.backward()
        losses.append(loss.detach())
        grads.append(torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None]))
    torch.testing.assert_close(losses[0], losses[1])
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("objective", ["tb", "db"])
def test_the_step_trains_like_the_default_trainer(objective):
    """Run eagerly, the graph's step draws the same noise and takes the same actions as the
    default trainer: the same parameters after training, the same (small) exact L1."""
    runs = []
    for fixed in (False, True):
        trainer = Trainer(config(objective, steps=300, lr_schedule="cosine"))
        if fixed:
            trainer.graphed = GraphedStep(trainer, capture=False)
        summary = trainer.run()
        runs.append((parameters(trainer), summary["l1"], int(trainer.transitions)))
    torch.testing.assert_close(runs[0][0], runs[1][0], rtol=1e-4, atol=1e-5)
    assert runs[0][1] == pytest.approx(runs[1][1], abs=1e-4)
    assert runs[0][2] == runs[1][2]  # padding is not counted as transitions
    if objective == "tb":
        assert runs[1][1] < 0.3  # ~1.0 before training


def test_auto_keeps_the_eager_step_where_it_tabulates_logits_of_long_trajectories():
    assert pays_off(HyperGrid(dim=2, side=8), 512) and pays_off(HyperGrid(dim=2, side=8), 4096)
    assert pays_off(HyperGrid(dim=4, side=8), 4096)  # tables, 122,880 padded rows
    assert pays_off(HyperGrid(dim=4, side=20), 4096)  # no tables (160,000 states)
    assert not pays_off(HyperGrid(dim=2, side=64), 4096)  # tables, 524,288 padded rows


def test_the_switch_and_what_it_refuses():
    with pytest.raises(ConfigError, match="cuda_graph"):
        use_cuda_graph("maybe", torch.device("cpu"))
    with pytest.raises(ConfigError, match="CUDA"):
        use_cuda_graph("true", torch.device("cpu"))
    assert not use_cuda_graph("auto", torch.device("cpu"))
    assert use_cuda_graph("auto", torch.device("cuda")) and not use_cuda_graph("false", torch.device("cuda"))
    with pytest.raises(ConfigError, match="CUDA"):
        Trainer(config(cuda_graph="true"))
    assert "not cuda" in unsupported(Trainer(config()))
    assert "objective 'fl_db'" in unsupported(Trainer(config("fl_db")))
    assert "conditioned" in unsupported(_Conditioned(config()))
    assert "cut" in unsupported(Trainer(config("db", max_moves=3)))
    user = config()
    user.env_params["side"] = 2**11 + 1  # 2-D, 4.2 million states: no reward table
    assert "capturable" in unsupported(Trainer(user))


class _Conditioned(Trainer):
    def cond_dim(self):
        return 2


def test_a_checkpoint_of_a_graphed_run_loads_on_cpu(tmp_path):
    """A checkpoint written by a CUDA-graph run holds capturable Adam groups and a CUDA
    generator's state; on the CPU the trainer takes its own setting, reseeds its stream from
    (seed, step), and keeps training."""
    trainer = Trainer(config(steps=8), out=tmp_path)
    for _ in range(4):
        trainer.train_step()
    state = trainer.state_dict()
    for group in state["optimizer"]["param_groups"]:
        group["capturable"] = True
    state["generator"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state (seed, offset)
    again = Trainer(config(steps=8))
    again.load_state_dict(state)
    assert not any(g["capturable"] for g in again.optimizer.param_groups)
    again.run()
    assert again.step_count == 8


@cuda
def test_captured_step_equals_the_eager_step():
    runs = []
    for capture in (False, True):
        trainer = Trainer(config(steps=50, device="cuda", lr_schedule="cosine"))
        trainer.graphed = GraphedStep(trainer, capture=capture)
        trainer.run()
        runs.append(parameters(trainer).cpu())
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-4, atol=1e-5)


@cuda
def test_graphed_training_reaches_the_exact_distribution(tmp_path):
    trainer = Trainer(config(steps=300, device="cuda", cuda_graph="auto"), out=tmp_path / "whole")
    summary = trainer.run()
    assert trainer.graphed is not None and trainer.graphed.graph is not None
    assert summary["l1"] < 0.3
    half = Trainer(config(steps=300, device="cuda", cuda_graph="auto"), out=tmp_path / "half")
    for _ in range(150):
        half.train_step()
    half.save_checkpoint()
    again = Trainer(config(steps=300, device="cpu"), out=tmp_path / "half")  # resumes on the CPU
    assert again.resume() and again.step_count == 150
    assert again.run()["l1"] < 0.3
