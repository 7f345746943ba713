# Cross build for 64-bit ARM Linux with Debian's cross compiler
# (apt-get install g++-aarch64-linux-gnu qemu-user), tests run under qemu:
#
#   cmake --preset aarch64            # or: cmake -S . -B build-aarch64 \
#   cmake --build build-aarch64       #   -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake
#   QEMU_CPU=max ctest --test-dir build-aarch64
#
# Executables are linked statically, so qemu-aarch64 runs them without an
# aarch64 sysroot (no QEMU_LD_PREFIX, no binfmt setup), and CMake runs the
# tests through CMAKE_CROSSCOMPILING_EMULATOR. QEMU_CPU picks the emulated
# core: cortex-a72 (NEON only), cortex-a76 (+ dot product), max (+ i8mm).
#
# The sysroot has only glibc and the compiler's own libraries; sparq's
# header-only dependencies (Eigen, fmt, nlohmann-json) and GoogleTest are
# taken from the host in cross mode by cmake/SparqDependencies.cmake and
# tests/CMakeLists.txt (see docs/arm.md).

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(SPARQ_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${SPARQ_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${SPARQ_CROSS_TRIPLE}-g++)

# Libraries, headers and CMake packages come from the target's sysroot only:
# the host's /usr/lib and /usr/include hold x86 binaries and x86 glibc headers.
set(CMAKE_FIND_ROOT_PATH /usr/${SPARQ_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# GCC contracts a * b + c into one fused multiply-add by default in C++ on
# AArch64 (-ffp-contract=fast), which x86 builds without -mfma never do: the
# float results of portable code (observers, qparams) would then differ from
# the x86 build by an ulp, enough to move a histogram bin. Kernels that want
# FMA (std::fma, vfmaq_f32) ask for it explicitly.
set(CMAKE_CXX_FLAGS_INIT "-ffp-contract=off")

# Static executables: qemu-user then needs no target dynamic loader or libc.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
# FindOpenMP would otherwise hand the link the full path of libgomp.so, which a
# static link rejects; the cross compiler ships libgomp.a next to it.
execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libgomp.a
                OUTPUT_VARIABLE SPARQ_CROSS_LIBGOMP OUTPUT_STRIP_TRAILING_WHITESPACE)
if(IS_ABSOLUTE "${SPARQ_CROSS_LIBGOMP}" AND EXISTS "${SPARQ_CROSS_LIBGOMP}")
  set(OpenMP_gomp_LIBRARY ${SPARQ_CROSS_LIBGOMP} CACHE FILEPATH "Static libgomp for the cross build")
endif()

find_program(SPARQ_QEMU_AARCH64 qemu-aarch64)
if(SPARQ_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${SPARQ_QEMU_AARCH64})
endif()
