#!/usr/bin/env python
"""Peer benchmark: train gfnx 0.0.1 (JAX, CPU) with TB on its HyperGrid; report throughput.

Run with the side venv's python (see setup_gfnx.sh), e.g.
  /work/side/perf-gfnx/bin/python experiments/peers/gfnx_hypergrid.py \
      --dim 4 --side 8 --batch-size 16 --trajectories 16000 --json /tmp/out.json

Training step as gfnx's TB hypergrid baseline does it, all in one jitted function:
`forward_rollout` (a scan over dim*side+1 steps, the MLP on every step), then the MLP
again over every padded step for log P_F / log P_B (`forward_trajectory_log_probs`),
TB loss, optax Adam (1e-3, log Z 1e-1). 2x256 ReLU MLP, P_F and P_B heads on one
trunk, reward R0/R1/R2 of the command line. gfnx's grid ends a trajectory that steps
past the edge, so its dynamics differ slightly from this library's: only speed is
compared (no exact L1; its ExactDistributionMetricsModule needs jax.tree_map, which
JAX >= 0.6 removed).
"""
import time

T_TOP = time.perf_counter()
T_TOP_WALL = time.time()

import importlib.metadata  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from gfnx.environment.hypergrid import HypergridEnvironment  # noqa: E402
from gfnx.reward.hypergrid import GeneralHypergridRewardModule  # noqa: E402
from gfnx.utils.rollout import forward_rollout, forward_trajectory_log_probs  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from bench_common import Clock, parse_args, train_loop, write_result  # noqa: E402

T_IMPORTED = time.perf_counter()


def init_mlp(key, sizes):
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        key, sub = jax.random.split(key)
        bound = 1 / n_in ** 0.5
        params.append({"w": jax.random.uniform(sub, (n_in, n_out), minval=-bound, maxval=bound),
                       "b": jnp.zeros(n_out)})
    return params


def mlp(params, x):
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def main():
    args = parse_args(__doc__.splitlines()[1])
    env = HypergridEnvironment(GeneralHypergridRewardModule(R0=args.r0, R1=args.r1, R2=args.r2),
                               dim=args.dim, side=args.side)
    key = jax.random.PRNGKey(args.seed)
    key, init_key = jax.random.split(key)
    env_params = env.init(init_key)
    n_fwd, n_bwd = args.dim + 1, args.dim
    key, net_key = jax.random.split(key)
    params = {"net": init_mlp(net_key, [args.dim * args.side] + [args.hidden] * args.layers + [n_fwd + n_bwd]),
              "log_z": jnp.zeros(())}
    labels = {"net": jax.tree.map(lambda _: "net", params["net"]), "log_z": "log_z"}
    optimizer = optax.multi_transform({"net": optax.adam(args.lr), "log_z": optax.adam(args.lr_logz)}, labels)
    opt_state = optimizer.init(params)

    def policy_fn(rng, obs, net):
        out = mlp(net, obs)
        return out[..., :n_fwd], {"forward_logits": out[..., :n_fwd], "backward_logits": out[..., n_fwd:]}

    def loss_fn(params, rng):
        traj, info = forward_rollout(rng, args.batch_size, policy_fn, jax.lax.stop_gradient(params["net"]),
                                     env, env_params)
        out = mlp(params["net"], traj.obs)  # the MLP again on every (padded) step
        traj = traj.replace(info={**traj.info, "forward_logits": out[..., :n_fwd],
                                  "backward_logits": out[..., n_fwd:]})
        log_pf, log_pb = forward_trajectory_log_probs(env, traj, env_params)
        return jnp.mean((params["log_z"] + log_pf - log_pb - info["log_gfn_reward"]) ** 2)

    @jax.jit
    def train_step(params, opt_state, rng):
        loss, grads = jax.value_and_grad(loss_fn)(params, rng)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    state = {"params": params, "opt": opt_state, "key": key}

    def step():
        state["key"], sub = jax.random.split(state["key"])
        state["params"], state["opt"], loss = train_step(state["params"], state["opt"], sub)
        return loss

    clock = Clock(T_TOP, args.warmup)
    iterations = -(-args.trajectories // args.batch_size)

    def evaluate(done):
        return {"trajectories": done, "log_z": float(state["params"]["log_z"])}

    evals, loss = train_loop(clock, iterations, args.batch_size, args.eval_every, lambda: step().block_until_ready(),
                             evaluate)
    timing = clock.record(iterations, args.batch_size, T_IMPORTED, T_TOP_WALL)
    evals.append(evaluate(iterations * args.batch_size))
    write_result({"library": "gfnx", "gfnx_version": importlib.metadata.version("gfnx"),
                  "jax_version": jax.__version__, "backend": jax.default_backend(), "config": vars(args),
                  **timing, "final_loss": loss,
                  "evals": evals}, args.json)


if __name__ == "__main__":
    main()
