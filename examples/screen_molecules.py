"""Screen molecules: train a fragment GFlowNet on QED, sample, deduplicate, filter,
keep a diverse high-reward top-k, export CSV and SDF, draw the grid.
Run it: ``python examples/screen_molecules.py``.
"""

# --8<-- [start:train]
import torch

import gflownet

torch.set_num_threads(1)
run = gflownet.train(
    env="fragments",
    objective="tb",
    out="runs/qed",
    max_blocks=3,
    reward="qed",
    hidden=64,
    batch_size=16,
    trajectories=480,
    eval_every=0,
    overwrite=True,
)
print(run.summary)  # a short run: the point is the pipeline, not the optimum
# --8<-- [end:train]

# --8<-- [start:screen]
from gflownet import screening

states, log_r = run.sample(500, seed=0)
cands, stats = screening.screen(
    run.env, states, log_r, unique=True, filters="qed>0.5,mw<=400", top=12, max_similarity=0.4
)
print(stats)  # unique fraction, mean pairwise Tanimoto, scaffolds, modes, passed_filters
screening.write_csv("cands.csv", cands)
screening.write_sdf("cands.sdf", cands)
# --8<-- [end:screen]

# --8<-- [start:check]
import csv

from rdkit import Chem, DataStructs
from rdkit.Chem import QED, rdFingerprintGenerator

rows = list(csv.DictReader(open("cands.csv")))
assert [r["smiles"] for r in rows] == [c.smiles for c in cands] and 0 < len(rows) <= 12
assert len({r["smiles"] for r in rows}) == len(rows)  # deduplicated
mols = [Chem.MolFromSmiles(r["smiles"]) for r in rows]
for r, mol in zip(rows, mols):
    assert abs(float(r["reward"]) - QED.qed(mol)) < 1e-5  # R = QED (beta = 1)
    assert float(r["qed"]) > 0.5 and float(r["mw"]) <= 400  # the filters hold
rewards = [float(r["reward"]) for r in rows]
assert rewards == sorted(rewards, reverse=True)  # best first
fps = [rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048).GetFingerprint(m) for m in mols]
assert all(
    max(DataStructs.BulkTanimotoSimilarity(f, fps[:i]), default=0) <= 0.4 for i, f in enumerate(fps)
)  # pairwise Tanimoto <= 0.4
sdf = [m for m in Chem.SDMolSupplier("cands.sdf")]
assert [Chem.MolToSmiles(m) for m in sdf] == [r["smiles"] for r in rows]  # the same molecules
# --8<-- [end:check]

# --8<-- [start:draw]
from rdkit.Chem import Draw

grid = Draw.MolsToGridImage(mols, molsPerRow=4, subImgSize=(250, 200), legends=[f"QED {r:.2f}" for r in rewards])
grid.save("cands.png")
print(f"{len(mols)} molecules drawn to cands.png")
# --8<-- [end:draw]

# --8<-- [start:cli]
from gflownet.cli import main

assert (
    main(
        [
            "sample",
            "runs/qed",
            "--n",
            "500",
            "--out",
            "cli.csv",
            "--sdf",
            "cli.sdf",
            "--unique",
            "--filter",
            "qed>0.5,mw<=400",
            "--diverse-top",
            "12",
            "--max-similarity",
            "0.4",
        ]
    )
    == 0
)
assert open("cli.csv").read() == open("cands.csv").read()  # the command is the same pipeline
# --8<-- [end:cli]
