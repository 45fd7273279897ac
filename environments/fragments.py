"""Fragment-based molecule generation (Bengio et al. 2021; the sEH task of the
forward-looking GFlowNet paper): start from an empty graph, add a block of a
``Vocabulary`` at a free stem, stop; at most ``max_blocks`` blocks.

A state is a long tensor ``[max_blocks, 3]``, one row per slot in build order:
(block id, parent slot, parent's stem index), -1 where empty; slot 0 holds the
first block (parent -1). A later block attaches through its own first stem to
stem ``parent stem`` of block ``parent``. Everything the rollout needs (masks,
steps, features) is arithmetic on these tensors; RDKit builds the molecule of a
terminal state only (reward, SMILES).

Forward actions: ``(slot, stem, block)`` -> ``(slot * S + stem) * V + block``
(S = most stems of a block, V = blocks); then V actions "first block b"; then the
exit (legal once a block is placed). A stem is free if it exists, is not the one
its block attached through, and no block hangs on it. Blocks without a hydrogen
for each of their stems (three of the 105, e.g. O=S=O) are never offered:
attaching them would break a valence, and every terminal state must sanitise.

The state records the build order, so the state graph is a tree: the only
backward action removes the last block (P_B = 1). The same molecule built in two
orders is two terminal states, as in the original environment's
sequence-of-blocks view; rewards are cached by canonical SMILES.
"""

from __future__ import annotations

import torch

from gflownet.environments.base import Environment, checked_int
from gflownet.environments.molpool import MoleculeScoring
from gflownet.environments.molrewards import MoleculeReward, TemperatureConditioning, make_reward
from gflownet.environments.vocabulary import Vocabulary

BLOCK, PARENT, PARENT_STEM = 0, 1, 2


class FragmentEnv(MoleculeScoring, TemperatureConditioning, Environment):
    """Molecules of at most ``max_blocks`` fragments; R given by ``reward`` (``molrewards``)."""

    default_arch = "gnn"

    def __init__(
        self,
        max_blocks: int = 9,
        vocabulary: str = "seh_105",
        reward: str = "qed",
        beta: float = 1.0,
        targets: str = "",
        beta_max: float = 0.0,
        reward_workers: int = 0,
        device: str | torch.device = "cpu",
    ):
        checked_int("fragments", "max_blocks", max_blocks)
        self.vocab = Vocabulary.seh_105() if vocabulary == "seh_105" else Vocabulary.from_json(vocabulary)
        self.reward: MoleculeReward = make_reward(reward, beta=beta, targets=targets)
        self.device = torch.device(device)
        self._init_conditioning(beta_max)
        self._init_scoring(
            reward_workers,
            dict(max_blocks=max_blocks, vocabulary=vocabulary, reward=reward, beta=beta, targets=targets),
        )
        self.max_blocks, V, S = max_blocks, len(self.vocab), self.vocab.max_stems
        self.n_blocks, self.n_stems_max = V, S
        self.n_attach = max_blocks * S * V
        self.n_actions = self.n_attach + V + 1
        self.n_backward_actions = 1
        self.state_shape = (max_blocks, 3)
        self.max_steps = max_blocks + 1
        self.block_stems = torch.tensor([len(s) for s in self.vocab.stems], device=self.device)  # [V]
        self.usable = torch.tensor(self.vocab.usable, device=self.device)  # [V] bool
        # graph layout for the GNN trunk (gflownet.gnn): node tokens, edge tokens, logit segments
        self.node_vocab, self.edge_vocab = V + 1, S
        self.max_nodes = max_blocks
        self.forward_layout = (("node", S * V), ("graph", V + 1))
        self.backward_layout = (("graph", 1),)

    # -- dynamics ---------------------------------------------------------------------
    def reset(self, batch):
        return torch.full((batch, self.max_blocks, 3), -1, dtype=torch.long, device=self.device)

    def n_placed(self, states):
        """Blocks placed, long ``[B]``."""
        return (states[..., BLOCK] >= 0).sum(-1)

    def free_stems(self, states):
        """bool ``[B, max_blocks, S]``: stems that exist, are open and may take a block."""
        B, N, S = len(states), self.max_blocks, self.n_stems_max
        block = states[..., BLOCK]
        filled = block >= 0
        stem = torch.arange(S, device=states.device)
        n_stems = self.block_stems[block.clamp_min(0)]
        exists = filled[..., None] & (stem < n_stems[..., None])
        exists[:, 1:, 0] = False  # a later block used its first stem to attach
        used = torch.zeros(B, N * S + 1, dtype=torch.bool, device=states.device)
        child = filled & (states[..., PARENT] >= 0)
        target = torch.where(child, states[..., PARENT] * S + states[..., PARENT_STEM], N * S)
        used.scatter_(1, target, True)
        return exists & ~used[:, : N * S].view(B, N, S)

    def forward_mask(self, states):
        n = self.n_placed(states)
        free = self.free_stems(states) & (n < self.max_blocks)[:, None, None]
        attach = (free[..., None] & self.usable).reshape(len(states), -1)
        first = (n == 0)[:, None] & self.usable
        return torch.cat([attach, first, (n >= 1)[:, None]], -1)

    def step(self, states, actions):
        V, S = self.n_blocks, self.n_stems_max
        n = self.n_placed(states)
        attach = actions < self.n_attach
        first = (actions >= self.n_attach) & (actions < self.exit_action)
        a = actions.clamp_max(self.n_attach - 1)
        row = torch.stack(
            [
                torch.where(attach, a % V, actions - self.n_attach),
                torch.where(attach, a // (S * V), -1),
                torch.where(attach, (a // V) % S, -1),
            ],
            -1,
        )
        moves = attach | first
        slot = torch.where(moves, n, 0)
        out = states.clone()
        index = torch.arange(len(states), device=states.device)
        out[index, slot] = torch.where(moves[:, None], row, states[index, slot])
        return out

    def backward_mask(self, states):
        return (self.n_placed(states) >= 1)[:, None]

    def backward_step(self, states, actions):
        out = states.clone()
        last = (self.n_placed(states) - 1).clamp_min(0)
        out[torch.arange(len(states), device=states.device), last] = -1
        return out

    def backward_action(self, states, actions):
        return torch.zeros_like(actions)

    def forward_action(self, states, actions):
        """The action that added the last block of ``states``."""
        V, S = self.n_blocks, self.n_stems_max
        last = states[torch.arange(len(states), device=states.device), (self.n_placed(states) - 1).clamp_min(0)]
        attach = (last[:, PARENT] * S + last[:, PARENT_STEM]) * V + last[:, BLOCK]
        return torch.where(last[:, PARENT] >= 0, attach, self.n_attach + last[:, BLOCK])

    # -- network input ----------------------------------------------------------------
    def featurize(self, states):
        """A torch_geometric Batch: one node per slot (token = block + 1, 0 empty), one
        edge each way per attachment (token = the parent's stem index)."""
        from gflownet.gnn import tree_batch

        return tree_batch(states[..., BLOCK] + 1, states[..., PARENT], states[..., PARENT_STEM].clamp_min(0))

    # -- molecules and rewards ------------------------------------------------------------
    def to_mols(self, states):
        """RDKit molecules of the states (the empty state gives None), with each open
        stem atom flagged by the atom property ``stem`` (the sEH proxy reads it)."""
        from gflownet.environments.chem import assemble

        free = self.free_stems(states).cpu().tolist()
        rows = states.cpu().tolist()
        return [assemble(self.vocab, row, free[i]) for i, row in enumerate(rows)]

    def object_columns(self):
        return ["smiles"]

    def object_rows(self, states):
        from gflownet.environments.chem import smiles

        return [[smiles(m)] for m in self.to_mols(states)]
