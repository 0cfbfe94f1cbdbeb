"""Data sets for the demo and the benchmark runner (see ../shared/DATASETS.md).

Nothing is downloaded at run time: fashion-mnist comes from the Debian package
`dataset-fashion-mnist` (installed by scripts/bootstrap.sh); synthetic sets are generated
with a fixed seed.
"""
import gzip
import os
import struct

import numpy as np

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def _read_idx_images(path):
    with gzip.open(path, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 2051:
            raise ValueError(f"{path}: not an IDX image file (magic {magic})")
        data = np.frombuffer(f.read(n * rows * cols), dtype=np.uint8)
    return data.reshape(n, rows * cols).astype(np.float32)


def fashion_mnist():
    """(base 60000×784, queries 10000×784) as float32, L2 metric."""
    base = _read_idx_images(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz"))
    queries = _read_idx_images(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz"))
    return base, queries


def gaussian_mixture(n, d, n_queries, centres=1000, noise=1.0, seed=7, normalize=True):
    """The baseline's synthetic set: x = centre[uniform] + noise·N(0, I), unit-normalised.
    Base vectors first, then queries from the same mixture, all from one seeded stream."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)).astype(np.float32)
    total = n + n_queries
    out = np.empty((total, d), dtype=np.float32)
    step = 100_000
    for s in range(0, total, step):
        e = min(total, s + step)
        idx = rng.integers(0, centres, e - s)
        out[s:e] = c[idx] + noise * rng.standard_normal((e - s, d)).astype(np.float32)
    if normalize:
        out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out[:n], out[n:]
