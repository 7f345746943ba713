#!/usr/bin/env bash
# sparq's main job, end to end on real data (docs/fashion-mnist.md):
# installs the Debian packages (scripts/install-deps.sh; the data set is
# dataset-fashion-mnist), builds the Fashion-MNIST demo in Release and runs
# it full size: FP32 training of an MLP, a CNN, a residual CNN and a
# depthwise-separable CNN, then dynamic / static / QAT INT8 (and 2:4 + INT8
# for the MLP and CNN) on the 10,000 test images. About 15-30 minutes on 2
# cores including the build (1,552 s for the run alone on a loaded Zen 3).
#
#   scripts/demo.sh                 # full run, results in ./fashion_mnist_out
#   scripts/demo.sh --quick         # the CI-sized run (about 2 minutes after the build)
#   SPARQ_DEMO_OUT=/tmp/out scripts/demo.sh
# Extra arguments go to the demo program (see its --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${SPARQ_DEMO_BUILD_DIR:-$ROOT/build-demo}"
OUT="${SPARQ_DEMO_OUT:-$PWD/fashion_mnist_out}"

bash "$ROOT/scripts/install-deps.sh"
# Only the library and the demo: tests, benchmarks and the tool are not needed.
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DSPARQ_BUILD_TESTS=OFF -DSPARQ_BUILD_BENCHMARKS=OFF -DSPARQ_BUILD_TOOLS=OFF \
  -DSPARQ_BUILD_EXAMPLES=ON -DSPARQ_INSTALL=OFF
cmake --build "$BUILD" --target fashion_mnist -j "$(nproc)"
exec "$BUILD/examples/fashion_mnist/fashion_mnist" --out "$OUT" "$@"
