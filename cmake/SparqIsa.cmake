# Every ISA has one folder, src/kernels/<isa>/, and every .cpp file in it is
# compiled with that ISA's flags and nothing else is (docs/design.md rule 1: inline
# code from headers built with different flags would break the ODR).
# The registry (src/dispatch) only calls a folder's kernels after the CPU
# check said the host can run them.

if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(SPARQ_ARCH x86)
  set(SPARQ_ISA_LIST avx2 avxvnni avx512vnni)
  set(SPARQ_ISA_FLAGS_avx2 -mavx2 -mfma -mf16c -mbmi2)
  set(SPARQ_ISA_FLAGS_avxvnni -mavx2 -mfma -mf16c -mbmi2 -mavxvnni)
  set(SPARQ_ISA_FLAGS_avx512vnni -mavx2 -mfma -mf16c -mbmi2 -mavx512f -mavx512bw -mavx512vl
                                 -mavx512dq -mavx512vnni)
  # AMX kernels (src/kernels/amx/) run only where avx512vnni runs too (the
  # amx table keeps its output stages and small-M kernel), so they get the
  # same flags plus the tile instructions. GCC >= 11 and clang >= 12 know
  # them; an older compiler builds without the amx level (its kernel source
  # is still compiled and tested through the emulation in reference/).
  include(CheckCXXCompilerFlag)
  check_cxx_compiler_flag("-mamx-tile -mamx-int8" SPARQ_COMPILER_HAS_AMX)
  if(SPARQ_COMPILER_HAS_AMX)
    list(APPEND SPARQ_ISA_LIST amx)
    set(SPARQ_ISA_FLAGS_amx ${SPARQ_ISA_FLAGS_avx512vnni} -mamx-tile -mamx-int8)
  endif()
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  set(SPARQ_ARCH arm)
  set(SPARQ_ISA_LIST neon neondot neoni8mm)
  set(SPARQ_ISA_FLAGS_neon -march=armv8-a)
  set(SPARQ_ISA_FLAGS_neondot -march=armv8.2-a+dotprod)
  set(SPARQ_ISA_FLAGS_neoni8mm -march=armv8.6-a+dotprod+i8mm)
else()
  set(SPARQ_ARCH generic)
  set(SPARQ_ISA_LIST)
endif()

function(sparq_add_isa_kernels target)
  foreach(isa ${SPARQ_ISA_LIST})
    file(GLOB sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/kernels/${isa}/*.cpp)
    if(sources)
      set(options ${SPARQ_ISA_FLAGS_${isa}})
      # GCC bug 105593 (fixed in GCC 13): GCC 12's avx512fintrin.h builds the
      # pass-through operand of many AVX-512 intrinsics from
      # _mm512_undefined_*(), a self-initialised `__Y`, and once they are
      # inlined -Wall reports "'__Y' may be used uninitialized" (and, for some,
      # "is used uninitialized") hundreds of times, all pointing into the
      # compiler's header. Silenced here, for the AVX-512 folders and GCC < 13
      # only, instead of with a pragma in every file; clang and newer GCC
      # still check these files.
      if(isa MATCHES "^(avx512vnni|amx)$" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU"
         AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
        list(APPEND options -Wno-maybe-uninitialized -Wno-uninitialized)
      endif()
      set_source_files_properties(${sources} PROPERTIES COMPILE_OPTIONS "${options}")
      # Files named *__avx512vbmi.cpp in the AVX-512 folder also use VBMI
      # (vpermb, vpmultishiftqb): the kernel tables call them only when the
      # CPU reports it (Ice Lake, Zen 4 and later; not Cascade Lake).
      if(isa STREQUAL "avx512vnni")
        foreach(source ${sources})
          if(source MATCHES "__avx512vbmi\\.cpp$")
            set_source_files_properties(${source} PROPERTIES COMPILE_OPTIONS
                                                             "${options};-mavx512vbmi")
          endif()
        endforeach()
      endif()
      target_sources(${target} PRIVATE ${sources})
    endif()
    string(TOUPPER ${isa} ISA)
    target_compile_definitions(${target} PRIVATE SPARQ_HAVE_${ISA}=1)
  endforeach()
  string(TOUPPER ${SPARQ_ARCH} ARCH)
  target_compile_definitions(${target} PRIVATE SPARQ_ARCH_${ARCH}=1)
endfunction()
