#!/usr/bin/env python3
"""Quantization-aware fine-tuning (QAT) of the trained tiny ViT.

Starts from train.py's weights (vit_fashion.safetensors) and fine-tunes
them with the rounding of sparq's dynamic per-token INT8 simulated in every
forward pass (fake quantization, straight-through gradients), so the
weights learn to live with it:

  * every Linear and the patch Conv2d: weights int8, symmetric, one scale
    per output channel (sparq's and PyTorch's default weight spec: scale =
    max|w| / 127.5, values in [-128, 127]);
  * their inputs: u8, asymmetric, one scale per row (per token), from the
    row's own range with 0 included: what nn::quantize_dynamic with
    per_row_activations computes at run time.

Attention's two matrix products, LayerNorm, GELU and softmax stay FP32, as
in sparq's INT8 graph by default.

    qat.py [--epochs N] [--lr LR] [--threads N] [--out DIR]

writes DIR/vit_fashion_qat.safetensors (the same state_dict names and
layouts as vit_fashion.safetensors); vit_fashion.cpp quantizes it and
reports the QAT rows of docs/transformers.md.
"""
import os
import sys

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from train import BATCH, VitFashion, fit, parser_with_common_flags, start  # noqa: E402
from export_from_pytorch import load_safetensors, save_safetensors  # noqa: E402
from fashion_torch import predict  # noqa: E402


def straight_through(x, rounded):
    """rounded in the forward pass, the identity's gradient in the backward."""
    return x + (rounded - x).detach()


def fake_quantize_weight(w):
    """int8 symmetric per output channel (dim 0), scale = max|w| / 127.5."""
    amax = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1)
    scale = torch.clamp(amax / 127.5, min=torch.finfo(torch.float32).eps)
    shape = (-1,) + (1,) * (w.dim() - 1)
    s = scale.reshape(shape)
    return straight_through(w, torch.clamp(torch.round(w / s), -128, 127) * s)


def fake_quantize_rows(x):
    """u8 asymmetric per row of the last axis (per token), range with 0 in it."""
    flat = x.detach()
    lo = torch.clamp(flat.amin(dim=-1, keepdim=True), max=0)
    hi = torch.clamp(flat.amax(dim=-1, keepdim=True), min=0)
    scale = torch.clamp((hi - lo) / 255, min=torch.finfo(torch.float32).eps)
    zero_point = torch.clamp(torch.round(-lo / scale), 0, 255)
    q = torch.clamp(torch.round(x / scale) + zero_point, 0, 255)
    return straight_through(x, (q - zero_point) * scale)


class QatLinear(nn.Linear):
    def forward(self, x):
        return nn.functional.linear(fake_quantize_rows(x), fake_quantize_weight(self.weight),
                                    self.bias)


class QatConv2d(nn.Conv2d):
    def forward(self, x):
        # One row of the conv's GEMM is one output pixel's patch: for the 7x7
        # stride-7 patch embedding, the 49 pixels of one input patch. Those
        # are [0, 1] pixels, so a per-patch range and the image's range
        # quantize alike to within a step; the image's range is used here.
        lo = torch.clamp(x.detach().amin(), max=0)
        hi = torch.clamp(x.detach().amax(), min=0)
        scale = torch.clamp((hi - lo) / 255, min=torch.finfo(torch.float32).eps)
        zero_point = torch.clamp(torch.round(-lo / scale), 0, 255)
        q = torch.clamp(torch.round(x / scale) + zero_point, 0, 255)
        xq = straight_through(x, (q - zero_point) * scale)
        return self._conv_forward(xq, fake_quantize_weight(self.weight), self.bias)


def with_fake_quantization(model):
    """Swaps every Linear / Conv2d's class for its fake-quantizing twin (same
    parameters, same state_dict names)."""
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = QatLinear
        elif type(module) is nn.Conv2d:
            module.__class__ = QatConv2d
    return model


def main():
    parser = parser_with_common_flags(__doc__.splitlines()[0], epochs=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    args = parser.parse_args()
    train_x, train_y, test_x, test_y = start(args)
    model = VitFashion()
    model.load_state_dict(load_safetensors(os.path.join(HERE, "vit_fashion.safetensors")))
    model.eval()
    before = (predict(model, test_x) == test_y).float().mean().item()
    with_fake_quantization(model)
    simulated = (predict(model, test_x) == test_y).float().mean().item()
    print(f"FP32 test accuracy {before:.4f}; with fake quantization, before QAT {simulated:.4f}",
          flush=True)
    steps = args.epochs * (len(train_x) // BATCH)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    fit(model, opt, sched, (train_x, train_y, test_x, test_y), args.epochs, "QAT ")
    save_safetensors({k: v.detach().float() for k, v in model.state_dict().items()},
                     os.path.join(args.out, "vit_fashion_qat.safetensors"))


if __name__ == "__main__":
    main()
