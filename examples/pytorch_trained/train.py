#!/usr/bin/env python3
"""Trains this example's MLP and CNN (models.py) on Fashion-MNIST.

    train.py [--epochs N] [--threads N] [--models mlp,cnn]

writes <model>.safetensors next to this script: the state_dict exactly as
PyTorch has it (conv weights OIHW, num_batches_tracked included; sparq's
Graph loader converts the first and ignores the second). Fixed seed, Adam,
batch 128; images are pixel / 255 (no other normalisation). Data: Debian's
dataset-fashion-mnist (/usr/share/datasets/fashion-mnist) or
FASHION_MNIST_DIR. train_log.txt is this script's output.
"""
import argparse
import time

import torch

from models import MODELS, save_safetensors, weights_path
from fashion_torch import load_split, predict, train_epoch  # on the path by models.py


def accuracy(model, x, y):
    return (predict(model, x) == y).float().mean().item()


def train(name, epochs, train_x, train_y, test_x, test_y):
    torch.manual_seed(0)
    model = MODELS[name]()
    batch = 128
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.time()
    for epoch in range(epochs):
        loss = train_epoch(model, opt, train_x, train_y, batch)
        print(f"{name} epoch {epoch + 1}: loss {loss.item():.3f}, test accuracy "
              f"{accuracy(model, test_x, test_y):.4f}, {time.time() - start:.0f} s", flush=True)
    save_safetensors({k: v.float() for k, v in model.state_dict().items()}, weights_path(name))
    print(f"{name}: PyTorch FP32 test accuracy {accuracy(model, test_x, test_y):.4f}; "
          f"parameters {sum(p.numel() for p in model.parameters())}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    # One thread: on a shared 2-core machine more threads made training slower.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="mlp,cnn")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.epochs} epochs, {args.threads} thread(s)")
    train_x, train_y = load_split("train")
    test_x, test_y = load_split("t10k")
    for name in args.models.split(","):
        train(name, args.epochs, train_x, train_y, test_x, test_y)


if __name__ == "__main__":
    main()
