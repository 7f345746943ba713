#!/usr/bin/env python3
"""Test of export_from_pytorch.py: PyTorch -> safetensors -> sparq gives
PyTorch's outputs.

Builds the demo's MLP and CNN in PyTorch with random weights (and non-trivial
BatchNorm statistics), exports them with export_from_pytorch.py, and runs
fashion_import_check (a small C++ program built with the demo) on the file,
which loads it into sparq::nn and compares sparq's FP32 outputs with
PyTorch's on random images.

    test_export_from_pytorch.py PATH/TO/fashion_import_check [WORKDIR]

Exits 77 (ctest's SKIP_RETURN_CODE) with a message when python3-torch is
not installed.
"""
import os
import subprocess
import sys
import tempfile

try:
    import torch
    from torch import nn
except ImportError:
    # Debian's python3-torch installs for /usr/bin/python3; another python3
    # first on PATH (pyenv, a venv) does not see it: retry with Debian's.
    debian = "/usr/bin/python3"
    if (os.path.exists(debian) and not os.environ.get("SPARQ_TORCH_RETRY")
            and os.path.realpath(sys.executable) != os.path.realpath(debian)):
        os.environ["SPARQ_TORCH_RETRY"] = "1"
        os.execv(debian, [debian] + sys.argv)
    print("SKIP: python3-torch is not installed (Debian: apt-get install python3-torch); "
          "the PyTorch export snippet was not tested")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_from_pytorch import export_state_dict, save_safetensors  # noqa: E402


def mlp():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 10))


def main():
    checker = sys.argv[1]
    workdir = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="sparq-export-")
    os.makedirs(workdir, exist_ok=True)
    torch.manual_seed(0)
    failures = 0
    for name, model, flatten in (("mlp", mlp(), None), ("cnn", cnn(), {"9.weight": (16, 7, 7)})):
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):  # make eval-mode BatchNorm do something
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
        model.eval()
        x = torch.rand(16, 1, 28, 28)
        with torch.no_grad():
            y = model(x.reshape(16, 784) if name == "mlp" else x)
        weights = os.path.join(workdir, f"{name}_torch.safetensors")
        io = os.path.join(workdir, f"{name}_io.safetensors")
        export_state_dict(model.state_dict(), weights, flatten_chw=flatten,
                          metadata={"producer": "test_export_from_pytorch.py"})
        # NCHW with one channel has the same memory order as NHWC.
        sparq_input = x.reshape(16, 784) if name == "mlp" else x.reshape(16, 28, 28, 1)
        save_safetensors({"input": sparq_input, "expected": y}, io)
        r = subprocess.run([checker, name, weights, io], capture_output=True, text=True)
        print(r.stdout.strip())
        if r.returncode != 0:
            print(r.stderr.strip())
            failures += 1
    print("FAILED" if failures else "OK: sparq reproduces PyTorch's outputs")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
