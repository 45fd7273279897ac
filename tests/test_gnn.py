"""The GNN trunk: logits laid out over the graph as the environment's actions say,
a batch featurised at once, and TB through it reaching the exact target distribution
of a small fragment space (enumerated here)."""
import pytest
import torch

from gflownet.config import RunConfig
from gflownet.environments.fragments import FragmentEnv
from gflownet.environments.vocabulary import Vocabulary
from gflownet.gnn import GraphHidden
from gflownet.policy import Policy, masked_log_softmax
from gflownet.trainer import Trainer


def test_attach_logits_come_from_the_slot_of_the_stem():
    env = FragmentEnv(max_blocks=3)
    policy = Policy(env, hidden=16, layers=1, backward="uniform")
    s = env.step(env.reset(2), torch.tensor([env.n_attach + 0, env.n_attach + 4]))
    hidden = policy.trunk(env.featurize(s))
    logits = policy.head(hidden)
    assert logits.shape == (2, env.n_actions)
    V, S = env.n_blocks, env.n_stems_max
    node_linear = policy.head.linears[0]
    slot, stem, block = 0, 2, 7
    expected = node_linear(hidden.nodes[:, slot])[:, stem * V + block]
    assert torch.allclose(logits[:, (slot * S + stem) * V + block], expected)
    graph_linear = policy.head.linears[1]
    assert torch.allclose(logits[:, env.exit_action], graph_linear(hidden.graph)[:, -1])


def test_featurize_builds_one_batch_with_tree_edges():
    env = FragmentEnv(max_blocks=3)
    s = env.reset(2)
    s = env.step(s, torch.tensor([env.n_attach + 0, env.n_attach + 4]))
    s = env.step(s, torch.tensor([(0 * env.n_stems_max + 3) * env.n_blocks + 1, env.exit_action]))
    batch = env.featurize(s)
    assert batch.num_graphs == 2 and batch.x.tolist() == [1, 2, 0, 5, 0, 0]
    assert sorted(map(tuple, batch.edge_index.T.tolist())) == [(0, 1), (1, 0)]
    assert batch.edge_attr.tolist() == [3, 3]


def _exact_terminal_distribution(env, policy):
    """log P_T(x) of every terminal state of a tree-shaped space, by enumeration."""
    frontier, log_p = env.reset(1), torch.zeros(1)
    terminals, log_pt = [], []
    with torch.no_grad():
        while len(frontier):
            mask = env.forward_mask(frontier)
            lp = masked_log_softmax(policy.forward_logits(env.featurize(frontier)), mask)
            terminals.append(frontier[mask[:, -1]])
            log_pt.append((log_p + lp[:, -1])[mask[:, -1]])
            rows, actions = mask[:, :-1].nonzero(as_tuple=True)
            frontier, log_p = env.step(frontier[rows], actions), log_p[rows] + lp[rows, actions]
    return torch.cat(terminals), torch.cat(log_pt)


@pytest.fixture
def tiny_vocab(tmp_path):
    path = tmp_path / "vocab.json"
    Vocabulary(["C", "O", "c1ccncc1"], [[0, 0], [0], [0, 2]]).to_json(path)
    return str(path)


def test_tb_with_the_gnn_matches_the_exact_distribution(tiny_vocab):
    config = RunConfig(env="fragments", env_params={"max_blocks": 2, "vocabulary": tiny_vocab, "reward": "qed",
                                                    "beta": 4.0})
    config.model.hidden, config.model.layers, config.model.backward = 32, 2, "uniform"
    config.train.batch_size, config.train.trajectories, config.train.threads = 32, 32 * 250, 1
    config.train.lr, config.train.eval_every = 3e-3, 0
    trainer = Trainer(config)
    env = trainer.env
    terminals, log_pt0 = _exact_terminal_distribution(env, trainer.policy)
    target = env.log_reward(terminals).softmax(0)
    assert (log_pt0.exp() - target).abs().sum() > 0.3  # far from the target before training
    assert len(terminals) == 3 + 2 * 3 + 1 * 3 + 2 * 3  # C: 2 stems, O: 1, pyridine: 2
    trainer.run()
    _, log_pt = _exact_terminal_distribution(env, trainer.policy)
    assert torch.allclose(log_pt.exp().sum(), torch.tensor(1.0), atol=1e-5)
    l1 = (log_pt.exp() - target).abs().sum()
    assert l1 < 0.1, l1
