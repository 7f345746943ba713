#!/usr/bin/env python3
"""Trains a tiny Vision Transformer on Fashion-MNIST and exports it for sparq.

The model (docs/transformers.md): 16 patches of 7x7 pixels embedded by a
7x7 stride-7 convolution to 64 channels, a learned position embedding, a
LayerNorm, 4 BERT encoder layers (4 heads, intermediate 128; the module
classes of tests/pytorch/bert_reference.py, Hugging Face's names), the mean
over the 16 tokens and a 10-way classifier. vit_fashion.cpp builds the same
graph in sparq with the same node names.

    train.py [--epochs N] [--threads N] [--out DIR]

writes DIR/vit_fashion.safetensors (the state_dict, conv weight OIHW as
PyTorch stores it) and DIR/vit_fashion_reference.safetensors (PyTorch's
predictions on the 10,000 test images and its test accuracy, which
vit_fashion checks sparq against). Images are pixel / 255, no other
normalisation. Data: Debian's dataset-fashion-mnist
(/usr/share/datasets/fashion-mnist) or FASHION_MNIST_DIR.
"""
import argparse
import os
import sys
import time

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "pytorch"))
sys.path.insert(0, os.path.join(HERE, "..", "fashion_mnist"))
from bert_reference import BertEncoder, LayerShape  # noqa: E402
from export_from_pytorch import save_safetensors  # noqa: E402
from fashion_torch import load_split, predict, train_epoch  # noqa: E402

PATCH, TOKENS, HIDDEN, HEADS, INTERMEDIATE, LAYERS, CLASSES = 7, 16, 64, 4, 128, 4, 10
EPS = 1e-5
BATCH = 128


class VitFashion(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch_embeddings = nn.Conv2d(1, HIDDEN, PATCH, stride=PATCH)
        self.position_embeddings = nn.Embedding(TOKENS, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=EPS)
        self.encoder = BertEncoder(LayerShape(HIDDEN, HEADS, INTERMEDIATE, EPS), LAYERS)
        self.classifier = nn.Linear(HIDDEN, CLASSES)

    def forward(self, images):  # [B][1][28][28]
        # [B][64][4][4] -> [B][16][64], token t = patch (t / 4, t % 4): the
        # row-major order of sparq's NHWC [B][4][4][64].
        x = self.patch_embeddings(images).flatten(2).transpose(1, 2)
        x = self.LayerNorm(x + self.position_embeddings.weight)
        return self.classifier(self.encoder(x).mean(dim=1))


def parser_with_common_flags(description, epochs):
    """--epochs, --threads and --out, shared by train.py and qat.py."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=epochs)
    # One thread by default: on a 2-core machine with other work running, 2
    # threads made each step 15x slower (OpenMP threads spinning for a core).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=HERE)
    return parser


def start(args):
    """Seeds, sets the thread count and loads the data: (train_x, train_y,
    test_x, test_y)."""
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    return load_split("train") + load_split("t10k")


def fit(model, opt, sched, data, epochs, label):
    """`epochs` epochs of train_epoch in batches of BATCH, printing the loss
    and the test accuracy after each (label: "" or "QAT ")."""
    train_x, train_y, test_x, test_y = data
    start = time.time()
    for epoch in range(epochs):
        loss = train_epoch(model, opt, train_x, train_y, BATCH, sched)
        accuracy = (predict(model, test_x) == test_y).float().mean().item()
        print(f"{label}epoch {epoch + 1}: loss {loss.item():.3f}, test accuracy {accuracy:.4f}, "
              f"{time.time() - start:.0f} s", flush=True)


def main():
    args = parser_with_common_flags(__doc__.splitlines()[0], epochs=5).parse_args()
    train_x, train_y, test_x, test_y = start(args)
    model = VitFashion()
    steps = args.epochs * (len(train_x) // BATCH)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    fit(model, opt, sched, (train_x, train_y, test_x, test_y), args.epochs, "")
    predictions = predict(model, test_x)
    accuracy = (predictions == test_y).float().mean().item()
    save_safetensors({k: v.float() for k, v in model.state_dict().items()},
                     os.path.join(args.out, "vit_fashion.safetensors"))
    save_safetensors({"test_predictions": predictions.float(),
                      "test_accuracy": torch.tensor([accuracy])},
                     os.path.join(args.out, "vit_fashion_reference.safetensors"))
    print(f"PyTorch FP32 test accuracy {accuracy:.4f}; parameters "
          f"{sum(p.numel() for p in model.parameters())}")


if __name__ == "__main__":
    main()
