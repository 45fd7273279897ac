"""The GNN trunk: logits laid out over the graph as the environment's actions say,
a batch featurised at once, and TB through it reaching the exact target distribution
of a small fragment space (enumerated here)."""

import pytest
import torch

from mol_checks import exact_terminal_distribution, small_config

from gflownet.environments.fragments import FragmentEnv
from gflownet.environments.vocabulary import Vocabulary
from gflownet.policy import Policy
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


@pytest.fixture
def tiny_vocab(tmp_path):
    path = tmp_path / "vocab.json"
    Vocabulary(["C", "O", "c1ccncc1"], [[0, 0], [0], [0, 2]]).to_json(path)
    return str(path)


def test_tb_with_the_gnn_matches_the_exact_distribution(tiny_vocab):
    trainer = Trainer(
        small_config("fragments", {"max_blocks": 2, "vocabulary": tiny_vocab, "reward": "qed", "beta": 4.0}, steps=250)
    )
    env = trainer.env
    terminals, p0 = exact_terminal_distribution(env, trainer.policy.forward_logits)
    target = env.log_reward(terminals).softmax(0)
    assert (p0 - target).abs().sum() > 0.3  # far from the target before training
    assert len(terminals) == 3 + 2 * 3 + 1 * 3 + 2 * 3  # C: 2 stems, O: 1, pyridine: 2
    trainer.run()
    _, p = exact_terminal_distribution(env, trainer.policy.forward_logits)
    assert torch.allclose(p.sum(), torch.tensor(1.0), atol=1e-5)
    l1 = (p - target).abs().sum()
    assert l1 < 0.1, l1


def test_temperature_conditioning_learns_every_beta(tiny_vocab):
    """One conditioned policy, trained on beta ~ U[1, 8], matches R^beta at beta = 1 and 8."""
    trainer = Trainer(
        small_config(
            "fragments", {"max_blocks": 2, "vocabulary": tiny_vocab, "reward": "qed", "beta": 1.0, "beta_max": 8.0}
        )
    )
    trainer.run()
    env, policy = trainer.env, trainer.policy
    for beta in (1.0, 8.0):
        cond = env.cond_for(beta, 1)
        terminals, p = exact_terminal_distribution(
            env, lambda features, cond=cond: policy.forward_logits(features, cond.expand(features.num_graphs, -1))
        )
        target = env.log_reward_cond(terminals, env.cond_for(beta, len(terminals))).softmax(0)
        assert (p - target).abs().sum() < 0.15, beta
    low, high = (env.log_reward_cond(terminals, env.cond_for(b, len(terminals))).softmax(0) for b in (1.0, 8.0))
    assert (low - high).abs().sum() > 0.3  # the two targets differ: conditioning matters


def test_large_action_spaces_draw_from_the_masked_softmax():
    """Above GUMBEL_MAX_ACTIONS the sampler inverts the CDF: frequencies match softmax."""
    from gflownet.sampler import GUMBEL_MAX_ACTIONS, _multinomial

    A, n = GUMBEL_MAX_ACTIONS + 500, 40_000
    logits = torch.randn(A).expand(n, A).clone()
    legal = torch.tensor([3, 700, A - 1])
    logits[:, legal] = torch.tensor([0.2, 0.3, 0.5]).log()
    mask = torch.zeros(n, A, dtype=torch.bool)
    mask[:, legal] = True
    a = _multinomial(logits, mask, torch.Generator().manual_seed(0))
    assert mask[torch.arange(n), a].all()
    freq = torch.stack([(a == i).float().mean() for i in legal])
    assert torch.allclose(freq, torch.tensor([0.2, 0.3, 0.5]), atol=0.01)
