"""What the PyTorch twins of genlab's benchmarks share: their arguments, the vendored MNIST files,
and the timed loop that prints the RESULT line `compare.py` reads."""
import argparse
import gzip
import os
import struct
import time

import numpy as np
import torch


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    return a


def read_mnist(name):
    """One of the vendored MNIST IDX files genlab reads (`data/mnist/NAME`), as a uint8 array of
    the shape its header gives: [n, 28, 28] for images, [n] for labels."""
    with gzip.open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mnist", name)) as f:
        data = f.read()
    rank = struct.unpack(">I", data[:4])[0] & 0xFF
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def mnist_train_images(n):
    """The first `n` MNIST training images as uint8, [n, 784]."""
    return read_mnist("train-images-idx3-ubyte.gz")[:n].reshape(n, 784)


def time_loop(step, a):
    """Runs `step()` (one whole training step, returning its loss as a float read from the tensor,
    which ends the step as genlab's host read does) warmup + steps times; prints the median, least
    and greatest step time and the first and last loss. With GENLAB_TORCH_PROFILE=N in the environment, the
    timed steps run under PyTorch's profiler and its N costliest operations (self CPU time) are printed too."""
    times, losses = [], []
    profiler = None
    for i in range(a.warmup + a.steps):
        if i == a.warmup and os.environ.get("GENLAB_TORCH_PROFILE"):
            # The timed steps under PyTorch's profiler (bench/op_profile.py reads its table).
            profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True)
            profiler.__enter__()
        t0 = time.perf_counter()
        lv = step()
        ms = (time.perf_counter() - t0) * 1e3
        losses.append(lv)
        if i >= a.warmup:
            times.append(ms)
    if profiler is not None:
        profiler.__exit__(None, None, None)
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=int(os.environ["GENLAB_TORCH_PROFILE"])))
    times.sort()
    print(f"RESULT impl=pytorch-{torch.__version__} median_ms={times[len(times) // 2]:.3f} "
          f"min_ms={times[0]:.3f} max_ms={times[-1]:.3f} loss_first={losses[0]:.3f} loss_last={losses[-1]:.3f}")


def time_steps(model, loss_fn, a):
    """Adam (lr 1e-3, eps 1e-8) steps on `loss_fn()`, timed by `time_loop`."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)

    def step():
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    time_loop(step, a)
