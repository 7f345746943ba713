#!/usr/bin/env python3
"""torchvision's ResNet-18, ResNet-50 and MobileNetV2 against sparq's
builders (the cnn_models_pytorch ctest).

    torchvision_reference.py TEST_EXECUTABLE [--workdir DIR] [--size 64]

For each model: random weights (torch.manual_seed), BatchNorm statistics
taken from one training-mode pass over a separate random batch (so every
BatchNorm has its own non-trivial mean and variance while activations stay
at a sane scale through 50 layers) and then random BatchNorm weights and
biases, so a BatchNorm sparq ignored or applied to the wrong channels would
show. In eval mode, a random 2x3xSIZExSIZE input goes through torchvision.
Written to DIR (a temporary folder unless --workdir):
  NAME.safetensors         torchvision's state_dict as it is (OIHW conv
                           weights, num_batches_tracked left out: an int64
                           counter sparq ignores)
  NAME_input.safetensors   "input", the NCHW input converted to NHWC
  NAME_output.safetensors  "output", torchvision's logits
Then TEST_EXECUTABLE (nn_cnn_models_test) runs its MatchesPyTorch tests with
SPARQ_CNN_REFERENCE_DIR=DIR: they build the sparq graph, load the weights
with nn::load_weights (strict, OIHW) and compare. Exits with the test's
status, or 77 (ctest's skip) without torch or torchvision.
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from qparams_reference import import_torch  # noqa: E402  (re-runs under Debian's python3)

MODELS = ["resnet18", "resnet50", "mobilenet_v2"]
BATCH = 2


def randomise_batchnorm(model, generator):
    import torch
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    # momentum 1: the running statistics become those of this one batch.
    for bn in bns:
        bn.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 64, generator=generator))
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5, generator=generator)
            bn.bias.uniform_(-0.5, 0.5, generator=generator)
    model.eval()


def write_reference(name, size, workdir):
    import torch
    import torchvision
    sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "fashion_mnist"))
    from export_from_pytorch import save_safetensors

    torch.manual_seed(1234)
    generator = torch.Generator().manual_seed(5678)
    model = getattr(torchvision.models, name)()
    randomise_batchnorm(model, generator)
    x = torch.randn(BATCH, 3, size, size, generator=generator)
    with torch.no_grad():
        y = model(x)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_safetensors(state, os.path.join(workdir, name + ".safetensors"))
    save_safetensors({"input": x.permute(0, 2, 3, 1).contiguous()},
                     os.path.join(workdir, name + "_input.safetensors"))
    save_safetensors({"output": y}, os.path.join(workdir, name + "_output.safetensors"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("test_executable")
    parser.add_argument("--workdir", help="keep the files here (default: a temporary folder)")
    parser.add_argument("--size", type=int, default=64, help="input height and width")
    args = parser.parse_args()
    if not import_torch():
        print("torch not installed: skipping")
        return 77
    try:
        import torchvision  # noqa: F401
    except ImportError:
        print("torchvision not installed: skipping")
        return 77

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        for name in MODELS:
            write_reference(name, args.size, workdir)
        env = dict(os.environ, SPARQ_CNN_REFERENCE_DIR=workdir)
        return subprocess.call([args.test_executable, "--gtest_filter=*CnnModels.MatchesPyTorch/*"],
                               env=env)


if __name__ == "__main__":
    sys.exit(main())
