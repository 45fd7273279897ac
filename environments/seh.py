"""The sEH binding proxy of the fragment task (Bengio et al. 2021): a pretrained
atom-graph MPNN ("MPNNet_v2") rebuilt with torch-geometric, weights from
``environments/data/seh_proxy/seh_proxy.npz`` (MIT licence beside it; converted
from the original pickle by ``experiments/convert_seh_proxy.py``).

lin0 71->64, LeakyReLU; 12 x [NNConv(64, 64, edge net 4->128->4096, mean) ->
LeakyReLU -> GRU(64, 64)]; Set2Set(64, 3 steps); lin3 128->1. The output regresses
a normalised docking score (larger binds better); rewards use raw / 8.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

N_ATOM_FEATURES = 71
_SYMBOLS = {"H": 0, "C": 1, "N": 2, "O": 3, "F": 4}
_BONDS = {"SINGLE": 0, "DOUBLE": 1, "TRIPLE": 2, "AROMATIC": 3}
_HYBRID = {"SP": 10, "SP2": 11, "SP3": 12}


def mol_graph(mol, stem_atoms: list[int] | None = None):
    """Atom features ``[n, 71]``, edge index ``[2, E]`` and edge features ``[E, 4]`` of
    ``mol`` in its own atom order, as the original ``mol2graph``. Column 70 flags
    ``stem_atoms`` (default: the atoms with the property ``stem``, else atom 0)."""
    n = mol.GetNumAtoms()
    x = np.zeros((n, N_ATOM_FEATURES), dtype=np.float32)
    for atom in mol.GetAtoms():
        i, z = atom.GetIdx(), atom.GetAtomicNum()
        x[i, _SYMBOLS.get(atom.GetSymbol(), 5)] = 1
        x[i, 9] = atom.GetIsAromatic()
        hybrid = _HYBRID.get(str(atom.GetHybridization()))
        if hybrid:
            x[i, hybrid] = 1
        x[i, 13] = atom.GetTotalNumHs()
        if z <= 56:
            x[i, 13 + z] = 1
    if stem_atoms is None:
        stem_atoms = [a.GetIdx() for a in mol.GetAtoms() if a.HasProp("stem")] or [0]
    x[stem_atoms, 70] = 1
    pairs, attrs = [], []
    for bond in mol.GetBonds():
        a, b, t = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), _BONDS[str(bond.GetBondType())]
        pairs += [(a, b), (b, a)]
        attrs += [t, t]
    if not pairs:  # the original gives a bondless molecule one self-loop with a zero attribute
        edge_index, edge_attr = np.zeros((2, 1), dtype=np.int64), np.zeros((1, 4), dtype=np.float32)
    else:
        order = sorted(range(len(pairs)), key=lambda k: pairs[k])
        edge_index = np.array([pairs[k] for k in order], dtype=np.int64).T
        edge_attr = np.eye(4, dtype=np.float32)[[attrs[k] for k in order]]
    return x, edge_index, edge_attr


class SEHProxy(nn.Module):
    def __init__(self, dim: int = 64, steps: int = 12):
        from torch_geometric.nn import NNConv, Set2Set

        super().__init__()
        self.steps = steps
        self.lin0 = nn.Linear(N_ATOM_FEATURES, dim)
        edge_net = nn.Sequential(nn.Linear(4, 128), nn.LeakyReLU(), nn.Linear(128, dim * dim))
        self.conv = NNConv(dim, dim, edge_net, aggr="mean")
        self.gru = nn.GRU(dim, dim)
        self.set2set = Set2Set(dim, processing_steps=3)
        self.lin3 = nn.Linear(2 * dim, 1)

    @classmethod
    def pretrained(cls) -> "SEHProxy":
        path = resources.files("gflownet.environments").joinpath("data/seh_proxy/seh_proxy.npz")
        with resources.as_file(path) as file, np.load(file) as arrays:
            state = {k: torch.from_numpy(arrays[k]) for k in arrays.files}
        model = cls()
        model.load_state_dict(state)
        return model.eval()

    def forward(self, x, edge_index, edge_attr, batch) -> torch.Tensor:
        """Node features ``[n, 71]``, edges ``[2, E]`` + ``[E, 4]``, graph ids ``[n]`` -> raw ``[G]``.

        ``self.conv`` is applied as NNConv computes it, mean_j x_j @ W(e_ji) + lin(x_i) + bias,
        but with the edge network evaluated once for the five possible edge attributes (one-hot
        bond types, or zero on a self-loop) instead of once per edge and step: the same numbers,
        at a fraction of the cost."""
        from torch_geometric.utils import scatter

        conv, n = self.conv, len(x)
        kinds = torch.cat([torch.zeros(1, 4), torch.eye(4)]).to(x)
        weights = conv.nn(kinds).view(5, conv.in_channels, conv.out_channels)  # [5, in, out]
        kind = torch.where(edge_attr.sum(-1) > 0, edge_attr.argmax(-1) + 1, 0)
        src, dst = edge_index
        out = F.leaky_relu(self.lin0(x))
        h = out.unsqueeze(0)
        for _ in range(self.steps):
            per_kind = torch.einsum("ni,kio->nko", out, weights)  # x @ W(kind) for every node and kind
            aggregated = scatter(per_kind[src, kind], dst, dim=0, dim_size=n, reduce="mean")
            m = F.leaky_relu(aggregated + conv.lin(out) + conv.bias)
            out, h = self.gru(m.unsqueeze(0), h)
            out = out.squeeze(0)
        return self.lin3(self.set2set(out, batch)).squeeze(-1)

    @torch.no_grad()
    def score(self, mols, canonical: bool = True) -> list[float]:
        """Raw proxy outputs of RDKit molecules, one batched forward. A molecule without
        ``stem`` atoms is first put in canonical atom order (``canonical``), so that
        the atom-0 flag, and hence the score, does not depend on how it was written."""
        from rdkit import Chem

        graphs = []
        for mol in mols:
            if canonical and not any(a.HasProp("stem") for a in mol.GetAtoms()):
                mol = Chem.MolFromSmiles(Chem.MolToSmiles(mol))
            graphs.append(mol_graph(mol))
        return self.score_graphs(graphs)

    @torch.no_grad()
    def score_graphs(self, graphs) -> list[float]:
        """Raw outputs for ``mol_graph`` triples."""
        if not graphs:
            return []
        sizes = [len(g[0]) for g in graphs]
        offsets = np.cumsum([0] + sizes[:-1])
        x = torch.from_numpy(np.concatenate([g[0] for g in graphs]))
        edge_index = torch.from_numpy(np.concatenate([g[1] + o for g, o in zip(graphs, offsets)], 1))
        edge_attr = torch.from_numpy(np.concatenate([g[2] for g in graphs]))
        batch = torch.repeat_interleave(torch.arange(len(graphs)), torch.tensor(sizes))
        return self(x, edge_index, edge_attr, batch).tolist()
