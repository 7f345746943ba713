#!/usr/bin/env bash
# Installs everything sparq's build, tests, benchmarks and demo need from
# Debian's packages. Safe to run again; uses sudo when not root.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# ocl-icd-opencl-dev: Debian's dnnl-config.cmake finds OpenCL (its GPU runtime) and
# fails the configure without it; --no-install-recommends leaves it out.
PACKAGES=(
  cmake ninja-build g++ clang libclang-rt-14-dev
  libeigen3-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev zlib1g-dev googletest
  libdnnl-dev ocl-icd-opencl-dev libopenblas-dev
  qemu-user g++-aarch64-linux-gnu
  dataset-fashion-mnist
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
