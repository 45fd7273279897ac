#!/usr/bin/env python
"""Peer benchmark: train torchgfn 2.4.1 on HyperGrid; report throughput and exact L1.

Run with the side venv's python (see setup_torchgfn.sh), e.g.
  .venv-torchgfn/bin/python experiments/peers/torchgfn_hypergrid.py \
      --dim 4 --side 8 --batch-size 16 --trajectories 16000 --json /tmp/out.json

Setup follows torchgfn's tutorials/examples/train_hypergrid.py with `--tied`:
KHotPreprocessor, one MLP trunk shared by the P_F head, the learned P_B head and (for
DB/SubTB) the log F(s) head; TB's log Z is an nn.Parameter with its own learning rate;
on-policy sampling (epsilon 0, log-probs saved during sampling and reused by the loss),
no replay buffer. Deviations from the tutorial: Adam (not AdamW, weight decay 1e-4),
env debug=False (tutorial passes __debug__), and states for the exact evaluation are
enumerated here (outside the timed region) instead of via store_all_states=True.
"""
import time

T_TOP = time.perf_counter()  # first statement: everything below counts as "process"
T_TOP_WALL = time.time()

import os  # noqa: E402
import sys  # noqa: E402
import importlib.metadata  # noqa: E402
import math  # noqa: E402

import torch  # noqa: E402
from gfn.estimators import DiscretePolicyEstimator, ScalarEstimator  # noqa: E402
from gfn.gflownet import DBGFlowNet, SubTBGFlowNet, TBGFlowNet  # noqa: E402
from gfn.gym import HyperGrid  # noqa: E402
from gfn.preprocessors import KHotPreprocessor  # noqa: E402
from gfn.utils.common import set_seed  # noqa: E402
from gfn.utils.modules import MLP  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from bench_common import Clock, parse_args, train_loop, write_result  # noqa: E402

T_IMPORTED = time.perf_counter()


def build(args, env):
    """P_F / P_B (/ log F) heads on one shared trunk, as the tutorial's --tied does."""
    pre = KHotPreprocessor(height=args.side, ndim=args.dim)
    mlp = dict(input_dim=pre.output_dim, hidden_dim=args.hidden, n_hidden_layers=args.layers)
    pf_module = MLP(output_dim=env.n_actions, **mlp)
    pb_module = MLP(output_dim=env.n_actions - 1, trunk=pf_module.trunk, **mlp)
    pf = DiscretePolicyEstimator(pf_module, env.n_actions, preprocessor=pre)
    pb = DiscretePolicyEstimator(pb_module, env.n_actions, preprocessor=pre, is_backward=True)
    if args.objective == "tb":
        gfn = TBGFlowNet(pf=pf, pb=pb, init_logZ=0.0)
    else:
        logF = ScalarEstimator(MLP(output_dim=1, trunk=pf_module.trunk, **mlp), preprocessor=pre)
        if args.objective == "db":
            gfn = DBGFlowNet(pf=pf, pb=pb, logF=logF)
        else:
            gfn = SubTBGFlowNet(pf=pf, pb=pb, logF=logF, weighting="geometric_within",
                                lamda=args.subtb_lambda)
    # named_parameters() de-duplicates the shared trunk (registered under pf first).
    named = dict(gfn.named_parameters())
    logz = [v for k, v in named.items() if "logZ" in k]
    rest = [v for k, v in named.items() if "logZ" not in k]
    groups = [{"params": rest, "lr": args.lr}]
    if logz:
        groups.append({"params": logz, "lr": args.lr_logz})
    return gfn, torch.optim.Adam(groups), sum(v.numel() for v in named.values())


def enumerate_states(H, D):
    """All H^D states in torchgfn's canonical (row-major) order."""
    axes = [torch.arange(H)] * D
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, D)


def terminal_dist(probs, coords, H):
    """Exact P_T by DP in topological order (coordinate sum).

    probs: [H^D, D+1] forward-action probabilities (last = exit), masked actions = 0.
    """
    N, D = coords.shape
    strides = H ** torch.arange(D - 1, -1, -1)
    level = coords.sum(-1)
    mass = torch.zeros(N, dtype=probs.dtype)
    mass[0] = 1.0  # s0 = (0,...,0)
    for depth in range(D * (H - 1) + 1):
        idx = (level == depth).nonzero().squeeze(1)
        m = mass[idx]
        for d in range(D):
            ok = coords[idx, d] < H - 1
            src = idx[ok]
            mass.index_add_(0, src + strides[d], m[ok] * probs[src, d])
    return mass * probs[:, D]


class Evaluator:
    def __init__(self, env, args):
        H, D = args.side, args.dim
        self.coords = enumerate_states(H, D)
        assert torch.equal(env.get_states_indices(self.coords), torch.arange(H**D))
        self.states = env.States(self.coords.clone())
        r = env.reward(self.states).double()
        self.true_log_z = math.log(r.sum().item())
        self.target = r / r.sum()
        self.H, self.env = H, env
        # Sanity: uniform P_F over allowed actions must give a distribution summing to 1.
        fm = self.states.forward_masks.double()
        self.uniform_sum = terminal_dist(fm / fm.sum(-1, keepdim=True), self.coords, H).sum().item()
        assert abs(self.uniform_sum - 1.0) < 1e-9, self.uniform_sum

    @torch.no_grad()
    def __call__(self, gfn, n_traj):
        out = gfn.pf(self.states)
        dist = gfn.pf.to_probability_distribution(self.states, out)
        probs = torch.softmax(dist.logits.double(), -1)  # masked actions (-inf) -> 0
        p_t = terminal_dist(probs, self.coords, self.H)
        if isinstance(gfn, TBGFlowNet):
            log_z = gfn.logZ.item()
        else:  # DB / SubTB: log Z is estimated by log F(s0)
            log_z = gfn.logF(self.env.States(self.coords[:1].clone())).item()
        return {"trajectories": n_traj, "l1": (p_t - self.target).abs().sum().item(),
                "log_z": log_z, "true_log_z": self.true_log_z, "p_t_sum": p_t.sum().item()}


def main():
    args = parse_args(__doc__.splitlines()[0])
    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)
    env = HyperGrid(ndim=args.dim, height=args.side, reward_fn_str="original",
                    reward_fn_kwargs={"R0": args.r0, "R1": args.r1, "R2": args.r2},
                    device="cpu", calculate_partition=False, store_all_states=False,
                    debug=False)
    gfn, optimizer, n_params = build(args, env)
    reduction = "sum" if args.objective == "subtb" else "mean"  # as in the tutorial

    B, n_iters = args.batch_size, args.trajectories // args.batch_size
    clock = Clock(T_TOP, args.warmup)
    evaluator = clock.timed_eval(Evaluator, env, args)

    def step():
        trajectories = gfn.sample_trajectories(env, n=B, save_logprobs=True,
                                               save_estimator_outputs=False, epsilon=0.0)
        samples = gfn.to_training_samples(trajectories)
        optimizer.zero_grad()
        loss = gfn.loss(env, samples, recalculate_all_logprobs=False, reduction=reduction)
        loss.backward()
        optimizer.step()
        return loss.item()

    evals, loss = train_loop(clock, n_iters, B, args.eval_every, step, lambda done: evaluator(gfn, done))
    timing = clock.record(n_iters, B, T_IMPORTED, T_TOP_WALL)
    evals.append(evaluator(gfn, n_iters * B))
    result = {
        "library": "torchgfn",
        "torchgfn_version": importlib.metadata.version("torchgfn"),
        "torch_version": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "config": vars(args),
        "trunk_shared_pf_pb": gfn.pf.module.trunk is gfn.pb.module.trunk,
        "logF_head": (None if args.objective == "tb" else
                      "shared_trunk" if gfn.logF.module.trunk is gfn.pf.module.trunk
                      else "own_mlp"),
        "log_z_source": "logZ parameter" if args.objective == "tb" else "logF(s0)",
        "subtb_weighting": "geometric_within" if args.objective == "subtb" else None,
        "loss_reduction": reduction,
        "n_params": n_params,
        **timing,
        "dp_uniform_pf_sum": evaluator.uniform_sum,
        "final_loss": loss,
        "evals": evals,
    }
    write_result(result, args.json)


if __name__ == "__main__":
    main()
