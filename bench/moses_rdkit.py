"""The MOSES metrics of a genlab molecule run's samples, recomputed by the reference tools: RDKit
for validity, canonical forms, Morgan fingerprints, BRICS fragments and Murcko scaffolds (as
molsets 0.3.1's `metrics.py` and `metrics/utils.py` define each metric), and fcd_torch 1.0.7 (the
package MOSES calls) for FCD/Test, which genlab does not compute. Prints each metric beside the
value genlab recorded in the run's eval.json, against the same vendored training subset and test
split.

    /path/to/venv/bin/pip install torch==2.9.0 rdkit==2026.9.1 scipy numpy
    /path/to/venv/bin/pip install --no-deps fcd_torch==1.0.7
    /path/to/venv/bin/python bench/moses_rdkit.py runs/moses-charrnn [--fcd-cache /tmp/moses-fcd-test.npz]

FCD/Test's test statistics (ChemNet over all 176,074 test molecules) take minutes on a CPU and are
cached in --fcd-cache. Not part of the test suite.
"""
import argparse
import gzip
import json
import os
from collections import Counter

import numpy as np
from rdkit import Chem, DataStructs, RDLogger
from rdkit.Chem import AllChem, rdFingerprintGenerator
from rdkit.Chem.Scaffolds import MurckoScaffold

RDLogger.DisableLog("rdApp.*")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_csv(name):
    with gzip.open(os.path.join(ROOT, "data/moses", name), "rt") as f:
        return [l.strip() for l in f.read().splitlines()[1:] if l.strip()]


def get_mol(s):
    # molsets' get_mol: an empty string or one RDKit cannot read or sanitise is no molecule.
    if len(s) == 0:
        return None
    m = Chem.MolFromSmiles(s)
    if m is None:
        return None
    try:
        Chem.SanitizeMol(m)
    except ValueError:
        return None
    return m


def fingerprints(mols):
    # MOSES's fingerprint(fp_type="morgan"): Morgan radius 2, 1,024 bits.
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    return [gen.GetFingerprint(m) for m in mols]


def int_div(fps, p):
    total = 0.0
    for f in fps:
        sims = np.array(DataStructs.BulkTanimotoSimilarity(f, fps))
        total += (sims**p).sum()
    return 1 - (total / len(fps) ** 2) ** (1 / p)


def snn(gen_fps, ref_fps):
    return float(np.mean([max(DataStructs.BulkTanimotoSimilarity(f, ref_fps)) for f in gen_fps]))


def fragments(mols):
    c = Counter()
    for m in mols:
        c.update(Chem.MolToSmiles(AllChem.FragmentOnBRICSBonds(m)).split("."))
    return c


def scaffolds(mols):
    c = Counter()
    for m in mols:
        s = MurckoScaffold.GetScaffoldForMol(m)
        smiles = Chem.MolToSmiles(s)
        if smiles and len(Chem.GetSymmSSSR(s)) >= 2:
            c[smiles] += 1
    return c


def cosine(a, b):
    keys = sorted(set(a) | set(b))
    x = np.array([a.get(k, 0) for k in keys], dtype=float)
    y = np.array([b.get(k, 0) for k in keys], dtype=float)
    return float(x @ y / np.sqrt((x @ x) * (y @ y)))


def chemnet(fcd, smiles):
    # fcd_torch's get_predictions, with each batch's activations copied: its numpy views of the
    # last LSTM step keep every batch's whole output sequence alive (tens of GB over the test set).
    import torch
    from torch.utils.data import DataLoader
    from fcd_torch.utils import SmilesDataset

    out = []
    with torch.no_grad():
        for batch in DataLoader(SmilesDataset(smiles, canonize=True), batch_size=128):
            out.append(fcd.model(batch.transpose(1, 2).float()).numpy().copy())
    return np.vstack(out)


def fcd(gen, test, cache):
    """FCD/Test as fcd_torch 1.0.7 computes it for MOSES (RDKit-canonical SMILES into ChemNet, the
    Frechet distance of the activations' Gaussians), the test statistics cached."""
    from fcd_torch import FCD
    from fcd_torch.utils import calculate_frechet_distance

    model = FCD(device="cpu", n_jobs=1)
    if os.path.exists(cache):
        z = np.load(cache)
        mu, sigma = z["mu"], z["sigma"]
    else:
        act = chemnet(model, test)
        mu, sigma = act.mean(0), np.cov(act.T)
        np.savez(cache, mu=mu, sigma=sigma)
    act = chemnet(model, gen)
    return float(calculate_frechet_distance(mu, sigma, act.mean(0), np.cov(act.T)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--fcd-cache", default="/tmp/moses-fcd-test.npz")
    a = ap.parse_args()
    with open(os.path.join(a.run, "samples/molecules.smi")) as f:
        gen = f.read().splitlines()[1:]
    genlab = json.load(open(os.path.join(a.run, "eval.json")))
    recorded = genlab.get("molecules") or genlab.get("evaluation", {}).get("molecules")
    train, test = read_csv("train.csv.gz"), read_csv("test.csv.gz")
    mols = [get_mol(s) for s in gen]
    valid = [m for m in mols if m is not None]
    canon = [Chem.MolToSmiles(m) for m in valid]
    train_set = set(train)  # MOSES's SMILES are RDKit-canonical
    # FCD first, before the test molecules are held in memory (ChemNet over 176,074 strings).
    try:
        fcd_value = fcd(canon, test, a.fcd_cache)
    except ImportError:
        fcd_value = float("nan")
    test_mols = [Chem.MolFromSmiles(s) for s in test]
    out = {
        "valid": len(valid) / len(gen),
        "unique@1000": len(set(canon[:1000])) / len(canon[:1000]),
        "unique@10000": len(set(canon[:10000])) / len(canon[:10000]),
        "novelty": len(set(canon) - train_set) / len(set(canon)),
    }
    fps = fingerprints(valid)
    out["int_div1"] = int_div(fps, 1)
    out["int_div2"] = int_div(fps, 2)
    out["snn"] = snn(fps, fingerprints(test_mols))
    out["frag"] = cosine(fragments(test_mols), fragments(valid))
    out["scaf"] = cosine(scaffolds(test_mols), scaffolds(valid))
    out["fcd"] = fcd_value
    keys = {"unique@1000": None, "unique@10000": None, "fcd": None}
    print(f"{a.run}: {len(gen)} samples; RDKit {Chem.rdBase.rdkitVersion}")
    print("| metric | RDKit / fcd_torch (MOSES's definitions) | genlab |\n|---|---|---|")
    for k, v in out.items():
        if k.startswith("unique@"):
            g = next((u["fraction"] for u in recorded["unique"] if f"unique@{u['k']}" == k), None)
        elif k in keys:
            g = None
        else:
            g = recorded.get(k)
        print(f"| {k} | {v:.4f} | {'' if g is None else f'{g:.4f}'} |")


if __name__ == "__main__":
    main()
