#!/usr/bin/env python3
"""PyTorch 1.13's default qconfig observers on deterministic data, for
tests/unit/nn_presets_pytorch_test.cpp (which builds the same data in C++).

  presets_reference.py            prints the C++ table
  presets_reference.py --check F  compares with the table in F (exit 77 without torch)

Data: x_i = 3 sin(0.37 i) + 0.5 sin(0.011 i^1.5)... computed in double and
rounded to float32, plus outliers every 997th value (a heavy tail), n = 20000.
Weights: w[o][k] = sin(0.1 o k + o) * (o + 1) / 8, 16 x 24.
"""
import math
import sys
import warnings

# import_torch re-runs this script under Debian's python3 when torch is missing.
from qparams_reference import SKIP_NO_TORCH, committed_table, import_torch


def activations():
    out = []
    for i in range(20000):
        v = 3.0 * math.sin(0.37 * i) + 0.5 * math.sin(0.011 * i * math.sqrt(i))
        if i % 997 == 0:
            v += 12.0 + (i % 7)
        out.append(v)
    return out


def weights():
    return [[math.sin(0.1 * o * k + o) * (o + 1) / 8.0 for k in range(24)] for o in range(16)]


def lines():
    import torch
    from torch.ao.quantization.observer import HistogramObserver, PerChannelMinMaxObserver, MinMaxObserver
    warnings.filterwarnings("ignore")
    x = torch.tensor(activations(), dtype=torch.float32)
    out = ["// HistogramObserver(reduce_range=True), (reduce_range=False)"]
    acts = []
    for reduce in (True, False):
        o = HistogramObserver(reduce_range=reduce)
        o(x)
        s, z = o.calculate_qparams()
        acts.append("{%s, %sf, %d, %sf, %sf}" % (str(reduce).lower(), float.hex(float(s)), int(z),
                                                float.hex(float(o.min_val)), float.hex(float(o.max_val))))
    out.append("{" + ", ".join(acts) + "},")
    w = torch.tensor(weights(), dtype=torch.float32)
    pc = PerChannelMinMaxObserver(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    pc(w)
    s, _ = pc.calculate_qparams()
    out.append("// per-channel weight scales")
    out.append("{" + ", ".join(float.hex(float(v)) + "f" for v in s) + "},")
    pt = MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
    pt(w)
    s, _ = pt.calculate_qparams()
    out.append("// per-tensor weight scale")
    out.append("{" + float.hex(float(s)) + "f},")
    return out


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        if not import_torch():
            print(SKIP_NO_TORCH)
            return 77
        committed = committed_table(sys.argv[2], "PYTORCH PRESETS")
        fresh = lines()
        if committed != fresh:
            print("FAIL: table differs from torch\n" + "\n".join(fresh))
            return 1
        print("OK: presets table matches torch")
        return 0
    import_torch()
    print("\n".join(lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
