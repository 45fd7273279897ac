"""Fragment vocabularies: building blocks with attachment points ("stems").

A block is a SMILES and its stem list, atom indices into that SMILES (an atom may
appear several times: it takes that many bonds). Following the original fragment
environment (Bengio et al. 2021): the first block of a molecule offers all its
stems; a later block attaches through its first stem by a single bond to a free
stem of the molecule and offers the rest.

Two sources: the 105-block vocabulary of the sEH task (vendored, MIT licence, in
``environments/data/seh_proxy``) and ``from_brics``, which derives blocks from a
user's SMILES file by RDKit's BRICS decomposition.
"""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path

from gflownet.errors import ConfigError


def _chem():
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    return Chem


class Vocabulary:
    """Blocks ``smiles[i]`` with stems ``stems[i]`` (atom indices, first = attachment)."""

    def __init__(self, smiles: list[str], stems: list[list[int]], names: list[str] | None = None):
        Chem = _chem()
        if not smiles:
            raise ConfigError("a fragment vocabulary needs at least one block")
        self.smiles, self.stems = list(smiles), [list(s) for s in stems]
        self.names = names or [f"{s}_{i}" for i, s in enumerate(smiles)]
        self.mols = []
        for i, (smi, stem) in enumerate(zip(self.smiles, self.stems)):
            mol = Chem.MolFromSmiles(smi)
            if mol is None:
                raise ConfigError(f"vocabulary block {i} has an invalid SMILES {smi!r}")
            if not stem or any(not 0 <= a < mol.GetNumAtoms() for a in stem):
                raise ConfigError(
                    f"vocabulary block {i} ({smi}) has stems {stem} outside its {mol.GetNumAtoms()} atoms (or none)"
                )
            self.mols.append(mol)
        # A block is usable where each stem atom has a hydrogen for every bond it may
        # take: then any attachment pattern keeps every valence legal.
        self.usable = [
            all(self.mols[i].GetAtomWithIdx(a).GetTotalNumHs() >= k for a, k in Counter(s).items())
            for i, s in enumerate(self.stems)
        ]
        if not any(self.usable):
            raise ConfigError("no block of the vocabulary has a hydrogen at each of its stems")

    def __len__(self) -> int:
        return len(self.smiles)

    @property
    def max_stems(self) -> int:
        return max(len(s) for s in self.stems)

    @classmethod
    def seh_105(cls) -> "Vocabulary":
        """The 105 blocks of the sEH fragment task (``blocks_PDB_105.json``)."""
        text = resources.files("gflownet.environments").joinpath("data/seh_proxy/blocks_PDB_105.json").read_text()
        data = json.loads(text)
        keys = sorted(data["block_smi"], key=int)
        return cls(
            [data["block_smi"][k] for k in keys],
            [data["block_r"][k] for k in keys],
            [data["block_name"][k] for k in keys],
        )

    @classmethod
    def from_json(cls, path: str | Path) -> "Vocabulary":
        """A vocabulary file as ``to_json`` writes it: {"smiles": [...], "stems": [[...], ...]}."""
        try:
            data = json.loads(Path(path).read_text())
            return cls(data["smiles"], data["stems"], data.get("names"))
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read vocabulary file {path}: {exc}") from None

    def to_json(self, path: str | Path) -> None:
        from gflownet.checkpoint import write_json

        write_json(Path(path), {"smiles": self.smiles, "stems": self.stems, "names": self.names})

    @classmethod
    def from_brics(cls, smiles_file: str | Path, min_count: int = 1, max_stems: int = 4) -> "Vocabulary":
        """Blocks found by BRICS decomposition of the molecules in ``smiles_file`` (one
        SMILES per line, optional second column ignored) that occur in at least
        ``min_count`` molecules. A fragment's dummy atoms mark its stems (the atom
        each is bonded to); fragments with more than ``max_stems`` stems are dropped.
        An invalid SMILES raises an error naming its line."""
        from rdkit.Chem import BRICS

        Chem = _chem()
        try:
            lines = Path(smiles_file).read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read SMILES file {smiles_file}: {exc.strerror}") from None
        counts: Counter = Counter()
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.startswith("#"):
                continue
            smi = line.split()[0]
            mol = Chem.MolFromSmiles(smi)
            if mol is None:
                raise ConfigError(f"{smiles_file}, line {number}: invalid SMILES {smi!r}")
            counts.update(set(BRICS.BRICSDecompose(mol, keepNonLeafNodes=False)))
        blocks = {}
        for fragment, n in counts.items():
            if n >= min_count:
                block = _strip_dummies(Chem, fragment)
                if block and 1 <= len(block[1]) <= max_stems:
                    blocks.setdefault(block[0], block[1])
        if not blocks:
            raise ConfigError(f"no BRICS fragment of {smiles_file} occurs in >= {min_count} molecules")
        smiles = sorted(blocks)
        return cls(smiles, [blocks[s] for s in smiles])


def _strip_dummies(Chem, fragment: str):
    """A BRICS fragment ``[4*]CC(=O)[6*]`` -> (canonical SMILES without dummies,
    stem atom indices in that SMILES), or None if RDKit cannot parse it."""
    mol = Chem.MolFromSmiles(fragment)
    if mol is None:
        return None
    mol = Chem.RWMol(mol)
    stems = []
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() == 0:
            for neighbour in atom.GetNeighbors():
                stems.append(neighbour.GetIdx())
                if neighbour.GetNoImplicit() or neighbour.GetIsAromatic():  # the bond becomes a hydrogen
                    neighbour.SetNumExplicitHs(neighbour.GetNumExplicitHs() + 1)
    for idx in sorted((a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() == 0), reverse=True):
        mol.RemoveAtom(idx)
        stems = [s - (s > idx) for s in stems]
    try:
        Chem.SanitizeMol(mol)
    except Exception:  # RDKit raises several sanitisation exception types
        return None
    smiles = Chem.MolToSmiles(mol)
    order = list(map(int, mol.GetProp("_smilesAtomOutputOrder").strip("[]").split(",")))
    return smiles, sorted(order.index(s) for s in stems)
