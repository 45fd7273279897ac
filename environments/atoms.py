"""Atom-level molecule generation: add an atom (bonded to an existing one), add a
bond between two existing atoms, stop; at most ``max_atoms`` heavy atoms.

A state is a long tensor ``[max_atoms, max_atoms + 1]``: column 0 holds each slot's
element token (0 empty, e + 1 for ``elements[e]``), columns 1.. the bond-order
matrix (0 none, 1 single, 2 double, 3 triple), symmetric. Atoms fill slots in
order; each atom after the first is born bonded to an earlier one, so every state
is connected. Hydrogens are implicit.

Valence masks: an atom's bond orders add up to at most its element's default
valence in RDKit's periodic table (C 4, N 3, O 2, F 1, S 2, ...), computed
arithmetically on the tensors; no charges, so every state sanitises.

Forward actions, T = 3 bond orders, E elements, N = max_atoms:
    add atom e on atom i with order t+1:  (i * E + e) * T + t        [N * E * T]
    add bond of order t+1 between i < j:  N*E*T + (i * N + j) * T + t [N * N * T]
    first atom e, then the exit.
Backward actions: remove the bond (i, j), index i * N + j, legal where atom j keeps
another bond to an earlier atom (the state stays reachable); or remove the last atom,
index N * N, legal where it has at most one bond. P_B is uniform over these parents
by default: this state space is a DAG with many paths to a molecule.
"""

from __future__ import annotations

import torch

from gflownet.environments.base import Environment, checked_int
from gflownet.environments.molpool import MoleculeScoring
from gflownet.environments.molrewards import TemperatureConditioning, make_reward
from gflownet.errors import ConfigError

N_ORDERS = 3


def default_valences(elements: list[str]) -> list[int]:
    """RDKit's default valence of each element symbol; an unknown symbol raises naming it."""
    from rdkit import Chem

    table = Chem.GetPeriodicTable()
    numbers = {table.GetElementSymbol(z): z for z in range(1, 119)}  # RDKit would print a C++ trace
    out = []
    for symbol in elements:
        z = numbers.get(symbol, 0)
        if z == 0 or table.GetDefaultValence(z) <= 0:
            raise ConfigError(f"atoms: unknown element {symbol!r} (or one without a default valence)")
        out.append(table.GetDefaultValence(z))
    return out


class AtomEnv(MoleculeScoring, TemperatureConditioning, Environment):
    """Molecules of at most ``max_atoms`` heavy atoms of ``elements``; R given by ``reward``."""

    default_arch = "gnn"

    def __init__(
        self,
        elements: str = "C,N,O,F,S",
        max_atoms: int = 12,
        reward: str = "qed",
        beta: float = 1.0,
        targets: str = "",
        beta_max: float = 0.0,
        reward_workers: int = 0,
        device: str | torch.device = "cpu",
    ):
        checked_int("atoms", "max_atoms", max_atoms)
        self.elements = [e.strip() for e in str(elements).split(",") if e.strip()]
        if not self.elements or len(set(self.elements)) != len(self.elements):
            raise ConfigError(f"atoms: elements must be distinct symbols separated by commas, got {elements!r}")
        self.valence = torch.tensor([0] + default_valences(self.elements), device=device)  # by token
        self.reward = make_reward(reward, beta=beta, targets=targets)
        self.device = torch.device(device)
        self._init_conditioning(beta_max)
        self._init_scoring(
            reward_workers, dict(elements=elements, max_atoms=max_atoms, reward=reward, beta=beta, targets=targets)
        )
        N, E, T = max_atoms, len(self.elements), N_ORDERS
        self.max_atoms = N
        self.n_add_atom, self.n_add_bond = N * E * T, N * N * T
        self.n_actions = self.n_add_atom + self.n_add_bond + E + 1
        self.n_backward_actions = N * N + 1
        self.state_shape = (N, N + 1)
        self.max_steps = N + N * (N - 1) // 2 + 1
        self.node_vocab, self.edge_vocab, self.max_nodes = E + 1, T + 1, N
        self.forward_layout = (("node", E * T), ("pair", T), ("graph", E + 1))
        self.backward_layout = (("pair", 1), ("graph", 1))
        i = torch.arange(N, device=self.device)
        self._upper = i[:, None] < i[None, :]  # [N, N] pairs i < j

    # -- helpers ------------------------------------------------------------------------
    @staticmethod
    def _parts(states):
        return states[..., 0], states[..., 1:]

    def n_atoms(self, states):
        return (states[..., 0] > 0).sum(-1)

    def free_valence(self, states):
        """long ``[B, N]``: default valence minus the bond orders already used (0 on empty slots)."""
        element, bonds = self._parts(states)
        return self.valence[element] - bonds.sum(-1)

    # -- dynamics -----------------------------------------------------------------------
    def reset(self, batch):
        return torch.zeros(batch, *self.state_shape, dtype=torch.long, device=self.device)

    def forward_mask(self, states):
        B, N, E, T = len(states), self.max_atoms, len(self.elements), N_ORDERS
        element, bonds = self._parts(states)
        n = self.n_atoms(states)
        free = self.free_valence(states)  # [B, N]
        order = torch.arange(1, T + 1, device=states.device)
        present = element > 0
        room = (n < N)[:, None, None, None]
        add_atom = (
            present[:, :, None, None]
            & (free[:, :, None, None] >= order)
            & (self.valence[1:, None] >= order)[None, None]
            & room
        )  # [B, N, E, T]
        pair_free = torch.minimum(free[:, :, None], free[:, None, :])
        add_bond = ((bonds == 0) & self._upper & present[:, :, None] & present[:, None, :])[..., None] & (
            pair_free[..., None] >= order
        )  # [B, N, N, T]
        first = (n == 0)[:, None].expand(B, E)
        return torch.cat(
            [add_atom.reshape(B, self.n_add_atom), add_bond.reshape(B, self.n_add_bond), first, (n >= 1)[:, None]], -1
        )

    def step(self, states, actions):
        N, E, T = self.max_atoms, len(self.elements), N_ORDERS
        out = states.clone()
        rows = torch.arange(len(states), device=states.device)
        n = self.n_atoms(states)
        is_atom = actions < self.n_add_atom
        is_bond = (actions >= self.n_add_atom) & (actions < self.n_add_atom + self.n_add_bond)
        is_first = (actions >= self.n_add_atom + self.n_add_bond) & (actions < self.exit_action)
        a = actions.clamp_max(self.n_add_atom - 1)
        b = (actions - self.n_add_atom).clamp(0, self.n_add_bond - 1)
        # new atom (add atom / first atom) in slot n
        new_element = torch.where(is_atom, (a // T) % E + 1, actions - self.n_add_atom - self.n_add_bond + 1)
        grow = is_atom | is_first
        slot = n.clamp_max(N - 1)
        out[rows, slot, 0] = torch.where(grow, new_element, out[rows, slot, 0])
        # the bond: (anchor, slot) for add atom, (i, j) for add bond
        i = torch.where(is_atom, a // (E * T), b // (N * T))
        j = torch.where(is_atom, slot, (b // T) % N)
        order = torch.where(is_atom, a % T, b % T) + 1
        bonded = is_atom | is_bond
        for x, y in ((i, j), (j, i)):
            out[rows, x, 1 + y] = torch.where(bonded, order, out[rows, x, 1 + y])
        return out

    def backward_mask(self, states):
        B, N = len(states), self.max_atoms
        bonded = states[..., 1:] > 0
        n = self.n_atoms(states)
        earlier = (bonded & self._upper.T).sum(-1)  # [B, N]: bonds of atom j to atoms k < j
        remove_bond = bonded & self._upper & (earlier[:, None, :] >= 2)
        last = (n - 1).clamp_min(0)
        last_degree = bonded[torch.arange(B, device=states.device), last].sum(-1)
        remove_last = (n >= 1) & (last_degree <= 1)
        return torch.cat([remove_bond.reshape(B, N * N), remove_last[:, None]], -1)

    def backward_step(self, states, actions):
        N = self.max_atoms
        out = states.clone()
        rows = torch.arange(len(states), device=states.device)
        is_last = actions == N * N
        r, last = rows[is_last], (self.n_atoms(states) - 1).clamp_min(0)[is_last]
        out[r, last] = 0  # the atom and its bonds
        out[r, :, 1 + last] = 0
        r, a = rows[~is_last], actions[~is_last]
        out[r, a // N, 1 + a % N] = 0
        out[r, a % N, 1 + a // N] = 0
        return out

    def backward_action(self, states, actions):
        """Forward ``actions`` taken at ``states`` -> the backward action that undoes them."""
        N, T = self.max_atoms, N_ORDERS
        b = (actions - self.n_add_atom).clamp(0, self.n_add_bond - 1)
        is_bond = (actions >= self.n_add_atom) & (actions < self.n_add_atom + self.n_add_bond)
        return torch.where(is_bond, (b // (N * T)) * N + (b // T) % N, N * N)

    def forward_action(self, states, actions):
        """Backward ``actions`` at ``states`` -> the forward action from the parent back here."""
        N, E, T = self.max_atoms, len(self.elements), N_ORDERS
        element, bonds = self._parts(states)
        rows = torch.arange(len(states), device=states.device)
        is_last = actions == N * N
        i, j = (actions // N).clamp_max(N - 1), actions % N
        add_bond = self.n_add_atom + (i * N + j) * T + bonds[rows, i, j] - 1
        last = (self.n_atoms(states) - 1).clamp_min(0)
        anchor_row = bonds[rows, last]  # [B, N]: the last atom's single bond, if any
        anchor = anchor_row.argmax(-1)
        order = anchor_row.max(-1).values
        e = element[rows, last] - 1
        add_atom = (anchor * E + e) * T + order - 1
        first = self.n_add_atom + self.n_add_bond + e
        return torch.where(is_last, torch.where(order > 0, add_atom, first), add_bond)

    # -- network input, molecules ---------------------------------------------------------
    def featurize(self, states):
        from gflownet.gnn import graph_batch

        element, bonds = self._parts(states)
        b, i, j = bonds.nonzero(as_tuple=True)
        N = self.max_atoms
        return graph_batch(element, b * N + i, b * N + j, bonds[b, i, j])

    def to_mols(self, states):
        from rdkit import Chem

        kinds = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
        mols = []
        for row in states.cpu().tolist():
            atoms = [r[0] for r in row if r[0] > 0]
            if not atoms:
                mols.append(None)
                continue
            mol = Chem.RWMol()
            for token in atoms:
                mol.AddAtom(Chem.Atom(self.elements[token - 1]))
            for i in range(len(atoms)):
                for j in range(i + 1, len(atoms)):
                    if row[i][1 + j]:
                        mol.AddBond(i, j, kinds[row[i][1 + j]])
            out = mol.GetMol()
            Chem.SanitizeMol(out)
            mols.append(out)
        return mols

    def object_columns(self):
        return ["smiles"]

    def object_rows(self, states):
        from rdkit import Chem

        return [["" if m is None else Chem.MolToSmiles(m)] for m in self.to_mols(states)]
