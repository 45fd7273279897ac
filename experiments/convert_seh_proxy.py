"""Convert the pretrained sEH proxy (GFNOrg/gflownet, mols/data/best_params.pkl.gz: a
pickled list of 22 numpy arrays, PyTorch Geometric 1.x layout) into the safe
``environments/data/seh_proxy/seh_proxy.npz`` the library loads (state-dict names of
``gflownet.environments.seh.SEHProxy``). Run once:

    python experiments/convert_seh_proxy.py PATH/best_params.pkl.gz

The pickle is read here, never by the library. NNConv's root weight was stored as an
(in, out) matrix applied as ``x @ root``; PyG 2.x applies ``lin.weight`` as
``x @ weight.T``, so it is transposed. The stem head (lin1, lin2) is not kept.
"""

import argparse
import gzip
import pickle
from pathlib import Path

import numpy as np

NAMES = [
    "lin0.weight",
    "lin0.bias",
    "conv.lin.weight",
    "conv.bias",
    "conv.nn.0.weight",
    "conv.nn.0.bias",
    "conv.nn.2.weight",
    "conv.nn.2.bias",
    "gru.weight_ih_l0",
    "gru.weight_hh_l0",
    "gru.bias_ih_l0",
    "gru.bias_hh_l0",
    None,
    None,
    None,
    None,
    "set2set.lstm.weight_ih_l0",
    "set2set.lstm.weight_hh_l0",
    "set2set.lstm.bias_ih_l0",
    "set2set.lstm.bias_hh_l0",
    "lin3.weight",
    "lin3.bias",
]
OUT = Path(__file__).resolve().parents[1] / "environments" / "data" / "seh_proxy" / "seh_proxy.npz"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("params", help="best_params.pkl.gz")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    with gzip.open(args.params) as f:
        params = pickle.load(f)  # trusted file from the original repository, read once
    assert len(params) == len(NAMES), len(params)
    arrays = {name: np.asarray(a, dtype=np.float32) for name, a in zip(NAMES, params) if name}
    arrays["conv.lin.weight"] = arrays["conv.lin.weight"].T.copy()
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({len(arrays)} arrays)")


if __name__ == "__main__":
    main()
