"""Fragment-based molecule generation (Bengio et al. 2021; the sEH task of the
forward-looking GFlowNet paper): start from an empty graph, add a block of a
``Vocabulary`` at a free stem, stop; at most ``max_blocks`` blocks, at least ``min_blocks`` (default 1) before the exit.

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

Backward moves, ``parents``:
  "last"    the state records the build order, so the state graph is a tree: the only
            backward action removes the last block (P_B = 1). The same molecule built
            in two orders is two terminal states, as in the original environment's
            sequence-of-blocks view; rewards are cached by canonical SMILES.
  "leaves"  a DAG, as in the fragment GFlowNets of recursionpharma/gflownet: backward
            action k removes the block in slot k if it is a leaf (it holds no block;
            the first block only once it is alone), with a uniform or learned P_B
            (a logit per slot). The slots are kept in a canonical order, depth first
            from the first block with the children in stem order (the sort key of a
            block is its path of stems from the first block), so a tree of blocks is one
            state however it was built: a tree of n blocks is reached in
            n! / prod(subtree sizes) orders.
"""

from __future__ import annotations

import torch

from gflownet.environments.base import Environment, checked_int
from gflownet.environments.molpool import MoleculeScoring
from gflownet.environments.molrewards import MoleculeReward, TemperatureConditioning, make_reward
from gflownet.environments.vocabulary import Vocabulary
from gflownet.errors import ConfigError

BLOCK, PARENT, PARENT_STEM = 0, 1, 2
PARENTS = ("last", "leaves")


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
        parents: str = "last",
        min_blocks: int = 1,
        device: str | torch.device = "cpu",
    ):
        checked_int("fragments", "max_blocks", max_blocks)
        checked_int("fragments", "min_blocks", min_blocks)
        if min_blocks > max_blocks:
            raise ConfigError(f"fragments: min_blocks must be <= max_blocks ({max_blocks}), got {min_blocks}")
        if parents not in PARENTS:
            raise ConfigError(f"fragments: parents must be one of {', '.join(PARENTS)}, got {parents!r}")
        self.parents = parents
        self.vocab = Vocabulary.seh_105() if vocabulary == "seh_105" else Vocabulary.from_json(vocabulary)
        self.reward: MoleculeReward = make_reward(reward, beta=beta, targets=targets)
        self.device = torch.device(device)
        self._init_conditioning(beta_max)
        self._init_scoring(
            reward_workers,
            dict(max_blocks=max_blocks, vocabulary=vocabulary, reward=reward, beta=beta, targets=targets),
        )
        self.max_blocks, self.min_blocks, V, S = max_blocks, min_blocks, len(self.vocab), self.vocab.max_stems
        self.n_blocks, self.n_stems_max = V, S
        self.n_attach = max_blocks * S * V
        self.n_actions = self.n_attach + V + 1
        self.n_backward_actions = 1 if parents == "last" else max_blocks
        if parents == "leaves" and (S + 1) ** max_blocks >= 2**62:
            raise ConfigError(
                f"fragments: parents=leaves needs (max stems + 1) ** max_blocks < 2**62, got ({S} + 1) ** {max_blocks}"
            )
        self.state_shape = (max_blocks, 3)
        self.max_steps = max_blocks + 1
        self.block_stems = torch.tensor([len(s) for s in self.vocab.stems], device=self.device)  # [V]
        self.usable = torch.tensor(self.vocab.usable, device=self.device)  # [V] bool
        # graph layout for the GNN trunk (gflownet.gnn): node tokens, edge tokens, logit segments
        # parents=leaves: a child-to-parent edge has its own tokens, so that the network tells the
        # first block from a look-alike child (their states differ in P_B)
        self.node_vocab, self.edge_vocab = V + 1, S if parents == "last" else 2 * S
        self.max_nodes = max_blocks
        self.forward_layout = (("node", S * V), ("graph", V + 1))
        self.backward_layout = (("graph", 1),) if parents == "last" else (("node", 1),)

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
        return torch.cat([attach, first, (n >= self.min_blocks)[:, None]], -1)

    def step(self, states, actions):
        appended = self._append(states, actions)
        return appended if self.parents == "last" else self._canonical(appended)[0]

    def _append(self, states, actions):
        """The states with each new block in the first empty slot (the build order)."""
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
        # clamped: callers pass placeholder actions where there is no move (never read)
        slot = torch.where(moves, n, 0).clamp_max(self.max_blocks - 1)
        out = states.clone()
        index = torch.arange(len(states), device=states.device)
        out[index, slot] = torch.where(moves[:, None], row, states[index, slot])
        return out

    def _canonical(self, states):
        """(the states with their slots sorted depth first, children in stem order, ``[B, N]``
        rank: the new slot of each old one). A block's key is its path of stems from the
        first block, in base S + 1 (digit 0: past the path's end); empty slots go last."""
        N, base = self.max_blocks, self.n_stems_max + 1
        if N == 1:  # one block: already in order
            return states, torch.zeros_like(states[..., BLOCK])
        filled = states[..., BLOCK] >= 0
        parent, stem = states[..., PARENT], states[..., PARENT_STEM]
        node = torch.arange(N, device=states.device).expand_as(parent)
        digits, on_path = [], filled.clone()  # digits[d]: stem + 1 taken d steps above the slot
        for _ in range(N - 1):
            up = parent.gather(1, node)
            on_path = on_path & (up >= 0)
            digits.append(torch.where(on_path, stem.gather(1, node) + 1, 0))
            node = torch.where(on_path, up, node)
        digits = torch.stack(digits, -1)  # [B, N, N-1], nearest first
        depth = (digits > 0).sum(-1, keepdim=True)
        d = torch.arange(N - 1, device=states.device)
        from_root = torch.where(d < depth, digits.gather(2, (depth - 1 - d).clamp_min(0)), 0)
        key = (from_root * base ** (N - 2 - d)).sum(-1)
        key = torch.where(filled, key, base ** (N - 1))
        order = key.argsort(1)
        rank = torch.empty_like(order).scatter_(1, order, node.new_tensor(range(N)).expand_as(order))
        out = states.gather(1, order[..., None].expand_as(states)).clone()
        new_parent = out[..., PARENT]
        out[..., PARENT] = torch.where(new_parent >= 0, rank.gather(1, new_parent.clamp_min(0)), -1)
        return out, rank

    def leaves(self, states):
        """bool ``[B, max_blocks]``: blocks that hold no other block (the first one only alone)."""
        B, N = len(states), self.max_blocks
        filled = states[..., BLOCK] >= 0
        child = filled & (states[..., PARENT] >= 0)
        holds = torch.zeros(B, N + 1, dtype=torch.bool, device=states.device)
        holds.scatter_(1, torch.where(child, states[..., PARENT], N), True)
        leaf = filled & ~holds[:, :N]
        leaf[:, 0] &= self.n_placed(states) == 1
        return leaf

    def backward_mask(self, states):
        if self.parents == "leaves":
            return self.leaves(states)
        return (self.n_placed(states) >= 1)[:, None]

    def backward_step(self, states, actions):
        """Remove the last block ("last") or the leaf in slot ``actions`` ("leaves"; later
        slots move up one, their parent slots renumbered)."""
        N = self.max_blocks
        removed = (self.n_placed(states) - 1).clamp_min(0) if self.parents == "last" else actions
        slot = torch.arange(N, device=states.device)
        source = slot + (slot >= removed[:, None]).long()
        out = states.gather(1, source.clamp_max(N - 1)[..., None].expand_as(states)).clone()
        out[source >= N] = -1
        parent = out[..., PARENT]
        out[..., PARENT] = torch.where(parent > removed[:, None], parent - 1, parent)
        return out

    def backward_action(self, states, actions):
        if self.parents == "last":
            return torch.zeros_like(actions)
        _, rank = self._canonical(self._append(states, actions))
        return rank.gather(1, self.n_placed(states).clamp_max(self.max_blocks - 1)[:, None]).squeeze(1)

    def forward_action(self, states, actions):
        """The action that added the removed block (the last one, or the leaf ``actions``):
        its parent keeps its slot, which comes before it."""
        V, S = self.n_blocks, self.n_stems_max
        removed = (self.n_placed(states) - 1).clamp_min(0) if self.parents == "last" else actions
        row = states[torch.arange(len(states), device=states.device), removed]
        attach = (row[:, PARENT] * S + row[:, PARENT_STEM]) * V + row[:, BLOCK]
        return torch.where(row[:, PARENT] >= 0, attach, self.n_attach + row[:, BLOCK])

    # -- network input ----------------------------------------------------------------
    def featurize(self, states):
        """A torch_geometric Batch: one node per slot (token = block + 1, 0 empty), one
        edge each way per attachment (token = the parent's stem index; with parents=leaves
        the child-to-parent copy adds S: without it, a first block and a look-alike child
        are one node to the network, and TB with a uniform P_B plateaued at L1 ~0.14 on a
        3-block space)."""
        from gflownet.gnn import tree_batch

        up = 0 if self.parents == "last" else self.n_stems_max
        return tree_batch(states[..., BLOCK] + 1, states[..., PARENT], states[..., PARENT_STEM].clamp_min(0), up)

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
