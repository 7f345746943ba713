#!/usr/bin/env python3
"""sparq's default static INT8 against PyTorch's default static INT8 on the
models train.py trained (docs/pytorch-workflow.md).

    compare.py PYTORCH_TRAINED_BINARY [--latency] [--threads N] [--models mlp,cnn]

For each model: PyTorch FP32 logits on the 10,000 test images, then
PyTorch's eager-mode post-training static quantization with
get_default_qconfig(backend) for 'x86' (activations reduce_range, the
default on x86 servers) and 'onednn' (full 8-bit activations, the default
of the engine Debian's torch runs), calibrated on the first 1000 training
images, never the test set. The C++ program (pytorch_trained.cpp) does the
same with sparq's documented default (RangeMethod::automatic). Each INT8
model gets its test accuracy, the SQNR of its logits against the FP32
logits, and the fraction of test images on which it predicts FP32's class.

Exit 1 when sparq's FP32 accuracy differs from PyTorch's, when sparq's INT8
SQNR is below a PyTorch default's, or when sparq's INT8 accuracy is below a
PyTorch default's by more than chance explains (McNemar's test on the
images the two classify differently, 95%: see `significantly_worse`); 77
when python3 has no torch or the data set is not installed (ctest's skip).
The table also says where sparq is below PyTorch by fewer images than that.

--latency also times one forward call (median, batch 1 and 64) of PyTorch
FP32 and INT8 and of sparq FP32 and INT8 on the same thread count.
"""
import argparse
import copy
import json
import math
import os
import subprocess
import sys
import tempfile
import time

try:
    import torch
    from torch.ao import quantization as tq
except ImportError:
    print("SKIP: python3-torch is not installed for", sys.executable)
    sys.exit(77)

from models import load_model, load_split  # noqa: E402

CALIBRATION_IMAGES = 1000
# The qconfigs PyTorch 1.13 ships for x86 CPUs, and the quantized engine
# that runs each here (Debian's torch is built without fbgemm; 'onednn'
# executes the x86 qconfig's reduced-range activations exactly).
PEERS = {"x86": "onednn", "onednn": "onednn"}


def sqnr_db(reference, test):
    noise = (reference - test).double().pow(2).sum().item()
    signal = reference.double().pow(2).sum().item()
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)


def significantly_worse(sparq_correct, peer_correct):
    """McNemar's test: of the images exactly one of the two classifies
    correctly (n of them, the peer alone right on `peer_only`), each is a
    coin flip if both are equally accurate, so peer_only - sparq_only has
    mean 0 and standard deviation sqrt(n). 1.96 of them is the two-sided 95%
    bound: a larger gap is not the chance of which near-tie images flipped."""
    sparq_only = int((sparq_correct & ~peer_correct).sum())
    peer_only = int((peer_correct & ~sparq_correct).sum())
    return peer_only - sparq_only > 1.96 * math.sqrt(sparq_only + peer_only)


def logits_of(model, x):
    with torch.no_grad():
        return torch.cat([model(x[i:i + 500]) for i in range(0, len(x), 500)])


def pytorch_static_int8(model, backend, calibration):
    """PyTorch's eager-mode recipe: fuse, prepare, calibrate, convert."""
    torch.backends.quantized.engine = PEERS[backend]
    fused = tq.fuse_modules(copy.deepcopy(model), model.fusions)
    wrapped = tq.QuantWrapper(fused).eval()
    wrapped.qconfig = tq.get_default_qconfig(backend)
    tq.prepare(wrapped, inplace=True)
    with torch.no_grad():
        for i in range(0, len(calibration), 100):
            wrapped(calibration[i:i + 100])
    return tq.convert(wrapped)


def median_ms(model, x, calls):
    times = []
    with torch.no_grad():
        for i in range(calls + 5):
            t0 = time.perf_counter()
            model(x)
            if i >= 5:  # the first calls warm caches and allocators
                times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary", help="the pytorch_trained program")
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="mlp,cnn")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        train_x, _ = load_split("train")
        test_x, test_y = load_split("t10k")
    except FileNotFoundError as e:
        print("SKIP: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist):", e)
        sys.exit(77)
    calibration = train_x[:CALIBRATION_IMAGES]
    ok = True
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            predictions = os.path.join(tmp, "predictions.txt")
            command = [args.binary, "--model", name, "--calibration", str(CALIBRATION_IMAGES),
                       "--threads", str(args.threads), "--predictions", predictions]
            run = subprocess.run(command + (["--latency"] if args.latency else []),
                                 capture_output=True, text=True)
            if run.returncode != 0:
                print(run.stdout, run.stderr)
                sys.exit(run.returncode)
            with open(predictions) as f:
                sparq_predictions = torch.tensor([int(line) for line in f])
        sparq = json.loads(run.stdout)
        model = load_model(name)
        fp32 = logits_of(model, test_x)
        fp32_predictions = fp32.argmax(1)
        fp32_accuracy = (fp32_predictions == test_y).float().mean().item()
        sparq_correct = sparq_predictions == test_y

        def agreement(p):
            return (p == fp32_predictions).float().mean().item()

        rows = [("PyTorch FP32", fp32_accuracy, math.inf, 1.0),
                ("sparq FP32", sparq["fp32_accuracy"], math.inf, None)]
        peers = {}
        for backend in PEERS:
            q = pytorch_static_int8(model, backend, calibration)
            int8 = logits_of(q, test_x)
            peers[backend] = (int8.argmax(1) == test_y, sqnr_db(fp32, int8), q)
            rows.append((f"PyTorch INT8 get_default_qconfig('{backend}')",
                         peers[backend][0].float().mean().item(), peers[backend][1],
                         agreement(int8.argmax(1))))
        rows.append(("sparq INT8 default (automatic)", sparq_correct.float().mean().item(),
                     sparq["sqnr_db"], agreement(sparq_predictions)))
        print(f"{name}: test accuracy, logits SQNR vs FP32, agreement with FP32's class "
              f"(calibration: the first {CALIBRATION_IMAGES} training images)")
        for label, acc, sqnr, agree in rows:
            agree = "-" if agree is None else f"{agree:.4f}"  # sparq writes INT8 predictions only
            print(f"  {label:<44} {acc:.4f}  {sqnr:7.2f} dB  {agree}")
        if round(fp32_accuracy * len(test_y)) != round(sparq["fp32_accuracy"] * len(test_y)):
            print(f"FAIL {name}: sparq FP32 accuracy differs from PyTorch's")
            ok = False
        for backend, (peer_correct, sqnr, _) in peers.items():
            behind = int(peer_correct.sum() - sparq_correct.sum())
            if sparq["sqnr_db"] < sqnr:
                print(f"FAIL {name}: sparq's SQNR is below PyTorch's '{backend}' default")
                ok = False
            if significantly_worse(sparq_correct, peer_correct):
                print(f"FAIL {name}: sparq's accuracy is below PyTorch's '{backend}' default "
                      f"by {behind} images, more than chance explains")
                ok = False
            elif behind > 0:
                print(f"  note: sparq is {behind} images below PyTorch's '{backend}' default, "
                      f"within chance (McNemar, 95%)")
        print(f"  sparq's calibrated ranges: {sparq['ranges']}")
        if args.latency:
            print(f"  latency, median ms per forward call, {args.threads} thread(s):")
            for batch in (1, 64):
                x = test_x[:batch]
                calls = 400 if batch == 1 else 60
                torch.backends.quantized.engine = PEERS["x86"]
                print(f"    batch {batch:>2}: PyTorch FP32 {median_ms(model, x, calls):.4f}, "
                      f"PyTorch INT8 ('x86' qconfig, onednn engine) "
                      f"{median_ms(peers['x86'][2], x, calls):.4f}, "
                      f"sparq FP32 {sparq[f'fp32_ms_batch{batch}']:.4f}, "
                      f"sparq INT8 {sparq[f'int8_ms_batch{batch}']:.4f}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
