"""User rewards for the molecule tests (python:module:function)."""


def heavy_atoms(smiles):
    return [float(len([c for c in s if c.isalpha() and c not in "Hl"])) for s in smiles]


def fails_on_nitrogen(smiles):
    for s in smiles:
        if "N" in s or "n" in s:
            raise ValueError(f"cannot score {s}")
    return [1.0] * len(smiles)


def nan_on_oxygen(smiles):
    return [float("nan") if "O" in s else 2.0 for s in smiles]
