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

import argparse  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402

import torch  # noqa: E402
from gfn.estimators import DiscretePolicyEstimator, ScalarEstimator  # noqa: E402
from gfn.gflownet import DBGFlowNet, SubTBGFlowNet, TBGFlowNet  # noqa: E402
from gfn.gym import HyperGrid  # noqa: E402
from gfn.preprocessors import KHotPreprocessor  # noqa: E402
from gfn.utils.common import set_seed  # noqa: E402
from gfn.utils.modules import MLP  # noqa: E402

T_IMPORTED = time.perf_counter()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=4)
    p.add_argument("--side", type=int, default=8)
    p.add_argument("--r0", type=float, default=0.1)
    p.add_argument("--r1", type=float, default=0.5)
    p.add_argument("--r2", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--trajectories", type=int, default=160_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2, help="hidden layers in the trunk")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-logz", type=float, default=0.1)
    p.add_argument("--objective", choices=["tb", "db", "subtb"], default="tb")
    p.add_argument("--subtb-lambda", type=float, default=0.9)
    p.add_argument("--eval-every", type=int, default=16_000,
                   help="in trajectories; 0 = only at the end")
    p.add_argument("--warmup", type=int, default=20,
                   help="iterations excluded from steady-state timing")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=str, default=None)
    return p.parse_args()


def interpreter_startup_s():
    """Best effort (Linux): seconds from process start to the top of this script."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        since_boot = time.clock_gettime(time.CLOCK_BOOTTIME) - (time.time() - T_TOP_WALL)
        return since_boot - start_ticks / os.sysconf("SC_CLK_TCK")
    except Exception:
        return None


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
    for l in range(D * (H - 1) + 1):
        idx = (level == l).nonzero().squeeze(1)
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
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)
    env = HyperGrid(ndim=args.dim, height=args.side, reward_fn_str="original",
                    reward_fn_kwargs={"R0": args.r0, "R1": args.r1, "R2": args.r2},
                    device="cpu", calculate_partition=False, store_all_states=False,
                    debug=False)
    gfn, optimizer, n_params = build(args, env)
    reduction = "sum" if args.objective == "subtb" else "mean"  # as in the tutorial

    eval_s, evals = 0.0, []
    te = time.perf_counter()
    evaluator = Evaluator(env, args)
    if args.eval_every > 0:
        evals.append(evaluator(gfn, 0))
    eval_s += time.perf_counter() - te
    eval_pre_s = eval_s

    B = args.batch_size
    n_iters = args.trajectories // B
    next_eval = args.eval_every if args.eval_every > 0 else None
    t_train0 = time.perf_counter()
    t_steady0 = t_train0 if args.warmup <= 0 else None
    eval_s_at_steady0 = eval_s
    loss = torch.tensor(float("nan"))
    for it in range(n_iters):
        trajectories = gfn.sample_trajectories(env, n=B, save_logprobs=True,
                                               save_estimator_outputs=False, epsilon=0.0)
        samples = gfn.to_training_samples(trajectories)
        optimizer.zero_grad()
        loss = gfn.loss(env, samples, recalculate_all_logprobs=False, reduction=reduction)
        loss.backward()
        optimizer.step()
        done = (it + 1) * B
        if it + 1 == args.warmup:
            t_steady0, eval_s_at_steady0 = time.perf_counter(), eval_s
        if next_eval is not None and done >= next_eval and it + 1 < n_iters:
            te = time.perf_counter()
            evals.append(evaluator(gfn, done))
            print(json.dumps(evals[-1]), flush=True)
            while next_eval <= done:
                next_eval += args.eval_every
            eval_s += time.perf_counter() - te
    t_end = time.perf_counter()
    train_s = t_end - t_train0 - (eval_s - eval_pre_s)

    steady_iters = n_iters - max(args.warmup, 0)
    steady_s = (t_end - t_steady0 - (eval_s - eval_s_at_steady0)) if steady_iters > 0 else None
    whole_s = t_end - T_TOP - eval_s
    te = time.perf_counter()
    evals.append(evaluator(gfn, n_iters * B))
    eval_s += time.perf_counter() - te

    trained = n_iters * B
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
        "iterations": n_iters,
        "trajectories_trained": trained,
        "import_s": T_IMPORTED - T_TOP,
        "interpreter_startup_s": interpreter_startup_s(),
        "setup_s": t_train0 - T_IMPORTED - eval_pre_s,
        "train_s": train_s,
        "steady_iterations": steady_iters,
        "steady_s": steady_s,
        "steady_traj_per_s": steady_iters * B / steady_s if steady_s else None,
        "whole_process_s": whole_s,
        "whole_traj_per_s": trained / whole_s,
        "eval_s_total": eval_s,
        "dp_uniform_pf_sum": evaluator.uniform_sum,
        "final_loss": loss.item(),
        "evals": evals,
    }
    print(text := json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
