#!/usr/bin/env python3
"""PyTorch's side of `sparq bench model` (tools/commands/bench_model.cpp).

    bench_model_peer.py --model NAME --batch B --threads N --repeat R
                        [--size 224] [--seq 128] [--variants fp32,int8]

Prints one JSON line per variant: {"model", "variant", "batch", "threads",
"bytes", "ms"}, ms the median of R forward calls after one warm-up, under
torch.no_grad() with torch.set_num_threads(N) and random weights:
  pytorch-fp32  torchvision's model (CNNs) in eval mode, or for BERT a
                torch.nn.TransformerEncoder of BERT's shape (post-norm, GELU)
                with embeddings, pooler and classifier (Hugging Face's
                transformers is not installed here; the encoder's matrix
                products are BERT's, and in eval mode it takes PyTorch's
                fused inference path)
  pytorch-int8  CNNs: FX graph-mode static quantization, calibrated on two
                random batches; BERT: dynamic quantization of the nn.Linear
                modules (torch.ao.quantization.quantize_dynamic: the
                feed-forward, pooler and classifier; MultiheadAttention's
                projections stay FP32, as PyTorch leaves them), run with the
                fused eval path off (it reads float weights and fails on
                quantized ones; dropout is 0, so the result is the same). Backend
                'x86' or 'fbgemm' where torch has them, else 'onednn' (Debian's
                torch 1.13 has onednn and qnnpack only).
bytes: FP32 state_dict bytes (BatchNorm running statistics included, as
sparq counts them); for INT8, the quantized weights (1 byte) plus FP32 biases.
Other lines it prints (notes) are not JSON. Exits 77 without torch, or
without torchvision for a CNN.
"""
import argparse
import json
import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qparams_reference import import_torch  # noqa: E402  (re-runs under Debian's python3)

BERT_SHAPES = {  # hidden, layers, heads, intermediate, vocab (models.hpp's configs)
    "bert-tiny": (128, 2, 2, 512, 30522),
    "bert-base": (768, 12, 12, 3072, 30522),
}


def median_ms(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def fp32_bytes(model):
    import torch
    return sum(t.numel() * t.element_size() for k, t in model.state_dict().items()
               if torch.is_tensor(t) and not k.endswith("num_batches_tracked"))


def quantized_bytes(model):
    import torch
    total = 0
    for module in model.modules():
        for attr in ("weight", "bias"):
            t = getattr(module, attr, None)
            if callable(t) and not isinstance(t, torch.nn.Module):
                t = t()  # quantized modules return their packed weight / bias
            if torch.is_tensor(t):
                total += t.numel() * t.element_size()
    return total


def make_bert(name, seq):
    import torch
    hidden, layers, heads, intermediate, vocab = BERT_SHAPES[name]

    class Bert(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.word = torch.nn.Embedding(vocab, hidden)
            self.position = torch.nn.Embedding(512, hidden)
            self.token_type = torch.nn.Embedding(2, hidden)
            self.norm = torch.nn.LayerNorm(hidden, eps=1e-12)
            layer = torch.nn.TransformerEncoderLayer(hidden, heads, intermediate, dropout=0.0,
                                                     activation="gelu", layer_norm_eps=1e-12,
                                                     batch_first=True)
            self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.pooler = torch.nn.Linear(hidden, hidden)
            self.classifier = torch.nn.Linear(hidden, 2)

        def forward(self, ids, mask):
            positions = torch.arange(ids.shape[1]).unsqueeze(0)
            x = self.norm(self.word(ids) + self.position(positions)
                          + self.token_type(torch.zeros_like(ids)))
            x = self.encoder(x, src_key_padding_mask=mask == 0)
            return self.classifier(torch.tanh(self.pooler(x[:, 0])))

    return Bert().eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True,
                        choices=["resnet18", "resnet50", "mobilenet_v2", *BERT_SHAPES])
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--repeat", type=int, required=True)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--variants", default="fp32,int8")
    args = parser.parse_args()
    if not import_torch():
        return 77
    import torch
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    variants = args.variants.split(",")
    bert = args.model in BERT_SHAPES

    def record(variant, nbytes, ms):
        print(json.dumps({"model": args.model, "variant": variant, "batch": args.batch,
                          "threads": args.threads, "bytes": nbytes, "ms": ms}), flush=True)

    if bert:
        model = make_bert(args.model, args.seq)
        ids = torch.randint(0, BERT_SHAPES[args.model][4], (args.batch, args.seq))
        mask = torch.ones(args.batch, args.seq, dtype=torch.long)
        inputs = (ids, mask)
    else:
        try:
            import torchvision
        except ImportError:
            return 77
        model = getattr(torchvision.models, args.model)().eval()
        inputs = (torch.randn(args.batch, 3, args.size, args.size),)

    with torch.no_grad():
        if "fp32" in variants:
            record("pytorch-fp32", fp32_bytes(model), median_ms(lambda: model(*inputs),
                                                                args.repeat))
        if "int8" in variants:
            engines = torch.backends.quantized.supported_engines
            backend = next((e for e in ("x86", "fbgemm", "onednn") if e in engines), None)
            if backend is None:
                print(f"no pytorch-int8: no x86/fbgemm/onednn engine in {engines}", flush=True)
                return 0
            torch.backends.quantized.engine = backend
            if bert:
                quantized = torch.ao.quantization.quantize_dynamic(
                    model, {torch.nn.Linear}, dtype=torch.qint8)
                quantized.train()  # the fused eval path cannot run quantized Linears
                how = "dynamic quantization of nn.Linear"
            else:
                from torch.ao.quantization import get_default_qconfig_mapping
                from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
                prepared = prepare_fx(model, get_default_qconfig_mapping(backend), inputs)
                for _ in range(2):
                    prepared(torch.randn_like(inputs[0]))
                quantized = convert_fx(prepared)
                how = "FX static quantization"
            print(f"pytorch-int8: {how}, backend {backend}", flush=True)
            record("pytorch-int8", quantized_bytes(quantized),
                   median_ms(lambda: quantized(*inputs), args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
