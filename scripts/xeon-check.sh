#!/usr/bin/env bash
# The server-CPU check (docs/gemm.md, "Server CPUs"): runs sparq's kernel
# tests and `sparq bench gemm` on a machine that has no build tools, e.g. a
# lent many-core Xeon with AMX. Build here first, then copy the bundle:
#
#   bash scripts/xeon-check.sh bundle build .xeon    # binaries + the shared libraries they load
#   (copy .xeon to the server)
#   bash scripts/xeon-check.sh run .xeon OUT_DIR     # on the server: tests, then benchmarks
#
# `run` writes OUT_DIR/info.txt, tests.txt and bench-*.json (one JSON line per
# shape, the fields of `sparq bench gemm --json`).
set -uo pipefail
mode=${1:?usage: xeon-check.sh bundle BUILD DIR | run DIR OUT}

case "$mode" in
bundle)
  build=${2:?build dir}
  dir=${3:?bundle dir}
  rm -rf "$dir" && mkdir -p "$dir/bin" "$dir/lib"
  cp "$build/tools/sparq" "$dir/bin/"
  for t in "$build"/tests/*_test; do
    case "$(basename "$t")" in
      gemm_* | sparse_gemm_test | sgemm_test | isa_test | one_quantize_test) cp "$t" "$dir/bin/" ;;
    esac
  done
  # The shared libraries the binaries load, except the C library itself
  # (the server's own glibc is used: it must be at least as new as ours).
  for b in "$dir"/bin/*; do
    ldd "$b" | awk '/=> \// {print $3}'
  done | sort -u | grep -vE '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
    while read -r lib; do cp -L "$lib" "$dir/lib/"; done
  du -sh "$dir"
  ;;
run)
  dir=${2:?bundle dir}
  out=${3:?output dir}
  mkdir -p "$out"
  export LD_LIBRARY_PATH="$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  bin="$dir/bin"
  cores=$(nproc)
  { "$bin/sparq" info; lscpu | grep -E 'Model name|^CPU\(s\)|L2|Flags' | cut -c1-300; } >"$out/info.txt" 2>&1
  cat "$out/info.txt"
  # Kernel tests: every ISA the host supports (amx included where it runs).
  for t in "$bin"/*_test; do
    echo "== $(basename "$t")"
    timeout 300 "$t" --gtest_brief=1 2>&1 | tail -n 5
  done >"$out/tests.txt" 2>&1
  grep -E '^==|PASSED|FAILED|tests ran' "$out/tests.txt"
  shapes=${SHAPES:-1,16,64,256}
  repeat=${REPEAT:-7}
  # The best ISA on 1 and on all cores, then the best non-AMX ISA on one core
  # (the same shapes, for the AMX-vs-VNNI ratio).
  runs=("1 best" "$cores best")
  "$bin/sparq" info | grep -q 'amx' && runs+=("1 avx512vnni")
  for run in "${runs[@]}"; do
    read -r threads isa <<<"$run"
    isa_flag=()
    [ "$isa" = best ] || isa_flag=(--isa "$isa")
    name="bench-${threads}t-${isa}"
    timeout 240 "$bin/sparq" bench gemm --threads "$threads" --m "$shapes" --repeat "$repeat" \
      "${isa_flag[@]}" --json >"$out/$name.json" 2>"$out/$name.err"
    echo "== bench gemm, $threads thread(s), isa $isa"
    cat "$out/$name.json" "$out/$name.err"
  done
  ;;
*)
  echo "usage: xeon-check.sh bundle BUILD DIR | run DIR OUT" >&2
  exit 2
  ;;
esac
