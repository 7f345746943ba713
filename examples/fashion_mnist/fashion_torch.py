"""Fashion-MNIST for the PyTorch side of the examples: the data and the
training loop shared by examples/pytorch_trained/train.py and
examples/vit_fashion/train.py (and compare.py's data).

Data: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist) or
FASHION_MNIST_DIR. Images are pixel / 255, no other normalisation, as
[N][1][28][28] float32; labels int64. The C++ side reads the same files with
idx.cpp.
"""
import gzip
import os

import numpy as np
import torch
from torch import nn


def read_idx(path):
    """A gzip-compressed IDX file of unsigned bytes as a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_split(split):
    """("train" or "t10k") -> (images [N][1][28][28] in [0, 1], labels)."""
    root = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
    images = read_idx(os.path.join(root, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(root, f"{split}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(images.astype(np.float32) / np.float32(255)).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def predict(model, x):
    """The predicted classes of x, 1000 images per forward call."""
    with torch.no_grad():
        return torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])


def train_epoch(model, opt, x, y, batch, sched=None):
    """One epoch of cross-entropy training over a random order of whole
    batches (the last partial batch is dropped); returns the last batch's
    loss. sched, if any, steps after every batch. Leaves the model in eval
    mode."""
    model.train()
    order = torch.randperm(len(x))
    for i in range(len(x) // batch):
        idx = order[i * batch:(i + 1) * batch]
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    model.eval()
    return loss
