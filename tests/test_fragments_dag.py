"""Fragment environment with ``parents=leaves``: backward moves remove any leaf block
(a DAG). Checked against the generic step/backward inverses, an enumeration of a
tiny space (parents, numbers of build orders by the hook-length formula, states of
the build-order tree), and a TB policy that matches the exact distribution."""

import math
from collections import defaultdict

import pytest
import torch
from mol_checks import exact_terminal_distribution, small_config

from env_checks import check_steps_invert
from gflownet.environments.fragments import FragmentEnv
from gflownet.environments.vocabulary import Vocabulary
from gflownet.errors import ConfigError
from gflownet.trainer import Trainer


@pytest.fixture(scope="module")
def tiny_vocab(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.json"
    Vocabulary(["C", "O", "c1ccncc1"], [[0, 0], [0], [0, 2]]).to_json(path)
    return str(path)


def random_states(env, n, moves, seed=0):
    """States after ``moves`` uniformly random forward moves (exits leave a state as it is)."""
    g = torch.Generator().manual_seed(seed)
    s = env.reset(n)
    for _ in range(moves):
        mask = env.forward_mask(s)
        s = env.step(s, torch.where(mask, torch.rand(mask.shape, generator=g), -1.0).argmax(-1))
    return s


def enumerate_space(env):
    """Every state by number of blocks, and every forward move (parent, action, child)."""
    levels, edges = [env.reset(1)], []
    while len(levels[-1]):
        level = levels[-1]
        rows, actions = env.forward_mask(level)[:, :-1].nonzero(as_tuple=True)
        children = env.step(level[rows], actions)
        edges += list(zip(level[rows], actions.tolist(), children))
        levels.append(children.unique(dim=0))
    return levels[:-1], edges


def key(state):
    return tuple(state.flatten().tolist())


def hook_orders(state):
    """n! / prod over blocks of the size of the subtree they carry: the build orders of a tree."""
    parent = [p for b, p, _ in state.tolist() if b >= 0]
    size = [1] * len(parent)
    for i in reversed(range(1, len(parent))):  # a parent's slot comes before its children's
        size[parent[i]] += size[i]
    return math.factorial(len(parent)) // math.prod(size)


def test_steps_invert_on_the_seh_vocabulary():
    env = FragmentEnv(max_blocks=4, parents="leaves")
    states = torch.cat([random_states(env, 30, moves, seed) for moves in range(5) for seed in range(2)]).unique(dim=0)
    triples = check_steps_invert(env, states)
    assert len(triples) > 100
    assert (env.backward_mask(states).sum(-1) >= 2).any()  # several parents: a DAG
    placed = states[env.n_placed(states) > 0]
    assert all(mol.GetNumAtoms() > 0 for mol in env.to_mols(placed))  # canonical slot order assembles and sanitises


def test_tiny_space_parents_and_build_orders(tiny_vocab):
    dag = FragmentEnv(max_blocks=3, vocabulary=tiny_vocab, parents="leaves")
    tree = FragmentEnv(max_blocks=3, vocabulary=tiny_vocab)
    levels, edges = enumerate_space(dag)
    parents = defaultdict(set)
    for parent, action, child in edges:
        parents[key(child)].add((key(parent), action))
    paths = {key(levels[0][0]): 1}
    for parent, _, child in edges:  # edges come level by level
        paths[key(child)] = paths.get(key(child), 0) + paths[key(parent)]
    tree_levels, _ = enumerate_space(tree)
    for n, (level, tree_level) in enumerate(zip(levels, tree_levels, strict=True)):
        leaves = dag.backward_mask(level)
        for state, legal in zip(level, leaves):
            if n == 0:
                assert not legal.any()
                continue
            removed = {key(dag.backward_step(state[None], torch.tensor([k]))[0]) for k in legal.nonzero()[:, 0]}
            assert {p for p, _ in parents[key(state)]} == removed and len(parents[key(state)]) == int(legal.sum())
            assert paths[key(state)] == hook_orders(state)
        # every build order is one state of the "last" (tree) environment
        assert sum(paths[key(s)] for s in level) == len(tree_level)
    assert len(levels[3]) < len(tree_levels[3])  # orders collapse: fewer states
    assert max(hook_orders(s) for s in levels[3]) == 2  # a first block with two children


def test_tb_with_leaf_parents_matches_the_exact_distribution(tiny_vocab):
    config = small_config(
        "fragments", {"max_blocks": 3, "vocabulary": tiny_vocab, "reward": "qed", "beta": 4.0, "parents": "leaves"}
    )
    trainer = Trainer(config)
    env = trainer.env
    terminals, p0 = exact_terminal_distribution(env, trainer.policy.forward_logits)
    target = env.log_reward(terminals).softmax(0)
    assert (p0 - target).abs().sum() > 0.3
    trainer.run()
    _, p = exact_terminal_distribution(env, trainer.policy.forward_logits)
    assert torch.allclose(p.sum(), torch.tensor(1.0), atol=1e-5)
    assert (p - target).abs().sum() < 0.05  # 0.0067 measured


def test_one_block_space_has_one_parent_per_state():
    env = FragmentEnv(max_blocks=1, parents="leaves")
    s = env.step(env.reset(2), torch.tensor([env.n_attach, env.n_attach + 1]))
    assert s[:, 0, 0].tolist() == [0, 1] and env.backward_mask(s).tolist() == [[True], [True]]
    assert torch.equal(env.backward_step(s, torch.zeros(2, dtype=torch.long)), env.reset(2))


def test_bad_parents():
    with pytest.raises(ConfigError, match="parents must be one of last, leaves"):
        FragmentEnv(parents="all")


@pytest.mark.parametrize("parents", ["last", "leaves"])
def test_min_blocks_holds_the_exit_back_by_hand(tiny_vocab, parents):
    """Exactly two blocks under a uniform policy: the first block 1/3, then one of its free
    stems and a block uniformly (C and the pyridine: 2 stems x 3 blocks, O: 1 stem x 3).
    Two blocks have one build order, so the DAG has the tree's 15 terminal states."""
    env = FragmentEnv(max_blocks=2, min_blocks=2, vocabulary=tiny_vocab, parents=parents)
    one = env.step(env.reset(3), torch.arange(3) + env.n_attach)
    assert not env.forward_mask(one)[:, env.exit_action].any()
    terminals, p = exact_terminal_distribution(env, lambda f: torch.zeros(f.num_graphs, env.n_actions))
    assert env.n_placed(terminals).eq(2).all()
    assert sorted(p.tolist()) == pytest.approx([1 / 18] * 12 + [1 / 9] * 3)


def test_min_blocks_terminals_are_the_states_of_enough_blocks(tiny_vocab):
    env = FragmentEnv(max_blocks=3, min_blocks=2, vocabulary=tiny_vocab, parents="leaves")
    levels, _ = enumerate_space(env)
    terminals, p = exact_terminal_distribution(env, lambda f: torch.zeros(f.num_graphs, env.n_actions))
    assert {key(s) for s in terminals} == {key(s) for level in levels[2:] for s in level}
    assert float(p.sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("min_blocks, match", [(0, "min_blocks must be an integer >= 1"), (4, "min_blocks must be <=")])
def test_bad_min_blocks(min_blocks, match):
    with pytest.raises(ConfigError, match=match):
        FragmentEnv(max_blocks=3, min_blocks=min_blocks)
