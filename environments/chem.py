"""RDKit helpers shared by the molecule environments, rewards and screening."""

from __future__ import annotations

from rdkit import Chem, RDLogger

RDLogger.DisableLog("rdApp.*")


def assemble(vocab, row: list[list[int]], free) -> Chem.Mol | None:
    """The molecule of one fragment state ``row`` (``[max_blocks, 3]`` as a list:
    block, parent slot, parent stem), sanitised; None for the empty state.

    ``free`` (bool ``[max_blocks, S]``) marks the open stems: their atoms get the
    integer property ``stem`` = 1. Each junction is a single bond that replaces one
    hydrogen on either side (explicit ones, as on ``[nH]``, are removed)."""
    mol, offsets, stem_atoms = None, [], []
    for slot, (block, _parent, _parent_stem) in enumerate(row):
        if block < 0:
            break
        offsets.append(0 if mol is None else mol.GetNumAtoms())
        mol = Chem.Mol(vocab.mols[block]) if mol is None else Chem.CombineMols(mol, vocab.mols[block])
        stems = vocab.stems[block]
        stem_atoms.extend(offsets[slot] + stems[s] for s in range(len(stems)) if free[slot][s])
    if mol is None:
        return None
    rw = Chem.RWMol(mol)
    for slot, (block, parent, parent_stem) in enumerate(row[: len(offsets)]):
        if parent < 0:
            continue
        a = offsets[parent] + vocab.stems[row[parent][0]][parent_stem]
        b = offsets[slot] + vocab.stems[block][0]
        rw.AddBond(a, b, Chem.BondType.SINGLE)
        for atom in (rw.GetAtomWithIdx(a), rw.GetAtomWithIdx(b)):
            if atom.GetNumExplicitHs():
                atom.SetNumExplicitHs(atom.GetNumExplicitHs() - 1)
    for idx in stem_atoms:
        rw.GetAtomWithIdx(idx).SetIntProp("stem", 1)
    out = rw.GetMol()
    Chem.SanitizeMol(out)
    return out


def smiles(mol: Chem.Mol | None) -> str:
    """Canonical SMILES ("" for None)."""
    return "" if mol is None else Chem.MolToSmiles(mol)
