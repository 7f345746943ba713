#!/usr/bin/env bash
# Cross-builds sparq for aarch64 (CMake preset "aarch64": Debian's
# aarch64-linux-gnu-g++, static executables) and runs the whole test suite
# under qemu-aarch64 three times, once per ARM ISA level:
#
#   QEMU_CPU=cortex-a72  ARMv8.0 + NEON             -> sparq must pick neon
#   QEMU_CPU=cortex-a76  ARMv8.2 + dot product      -> neondot
#   QEMU_CPU=max         everything qemu emulates   -> neoni8mm (i8mm)
#
# Each run sets SPARQ_EXPECT_ISA, which tests/unit/isa_test.cpp compares with
# the ISA sparq detected (getauxval), so a detection bug cannot silently fall
# back to a lower ISA. Every kernel test also runs on every ISA the emulated
# CPU supports. Under qemu, timings mean nothing.
#
# Usage: bash scripts/test-arm.sh [build-dir]   (default: build-aarch64)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD=${1:-build-aarch64}
JOBS=$(nproc)

cmake --preset aarch64 -B "$BUILD"
cmake --build "$BUILD" --parallel "$JOBS"

SPARQ="$BUILD/tools/sparq"
for run in "cortex-a72 neon" "cortex-a76 neondot" "max neoni8mm"; do
  read -r cpu isa <<<"$run"
  echo
  echo "=== QEMU_CPU=$cpu: expecting ISA $isa"
  info=$(QEMU_CPU=$cpu qemu-aarch64 "$SPARQ" info)
  echo "$info"
  grep -Eq "^best ISA: +$isa\$" <<<"$info" || { echo "test-arm: sparq info did not pick $isa"; exit 1; }
  grep -q "emulated" <<<"$info" || { echo "test-arm: sparq info did not detect qemu"; exit 1; }
  # sparq bench must build and run (its numbers mean nothing under qemu).
  QEMU_CPU=$cpu qemu-aarch64 "$SPARQ" bench gemm --m 4 --n 64 --k 64 --repeat 1
  QEMU_CPU=$cpu SPARQ_EXPECT_ISA=$isa \
    ctest --test-dir "$BUILD" --output-on-failure --parallel "$JOBS" --timeout 600
done
