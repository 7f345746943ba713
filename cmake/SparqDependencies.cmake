include(GNUInstallDirs)

if(CMAKE_CROSSCOMPILING)
  # The cross sysroot (e.g. /usr/aarch64-linux-gnu) has no Eigen, fmt or
  # nlohmann-json, but sparq uses all three header-only and their headers do
  # not depend on the architecture. Adding the host's /usr/include to the
  # include path would also bring in the host's glibc and libstdc++ headers,
  # so each library gets a folder in the build tree holding one symlink to its
  # headers, and an imported target of the name the native packages define.
  set(SPARQ_HOST_INCLUDE_DIR /usr/include CACHE PATH
      "Host folder holding fmt/, eigen3/Eigen/ and nlohmann/ (cross builds only)")
  function(sparq_host_headers target link source probe)
    set(source ${SPARQ_HOST_INCLUDE_DIR}/${source})
    if(NOT EXISTS ${source}/${probe})
      message(FATAL_ERROR "cross build: ${source}/${probe} not found (install the Debian "
                          "package providing ${target}, or set SPARQ_HOST_INCLUDE_DIR)")
    endif()
    string(REPLACE "::" "_" folder ${target})
    set(dir ${CMAKE_BINARY_DIR}/cross-include/${folder})
    file(MAKE_DIRECTORY ${dir})
    file(CREATE_LINK ${source} ${dir}/${link} SYMBOLIC)
    add_library(${target} INTERFACE IMPORTED)
    set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${dir})
  endfunction()
  if(SPARQ_BUILD_TOOLS OR SPARQ_BUILD_BENCHMARKS OR SPARQ_BUILD_EXAMPLES)
    sparq_host_headers(Eigen3::Eigen Eigen eigen3/Eigen Dense)
  endif()
  sparq_host_headers(fmt::fmt-header-only fmt fmt format.h)
  set_target_properties(fmt::fmt-header-only PROPERTIES INTERFACE_COMPILE_DEFINITIONS FMT_HEADER_ONLY=1)
  sparq_host_headers(nlohmann_json::nlohmann_json nlohmann nlohmann json.hpp)
  set(SPARQ_FMT_TARGET fmt::fmt-header-only)
else()
  # Eigen: not used by the library (its FP32 GEMM is its own); the FP32 peer
  # of the tools and benchmarks and the example's trainer use it.
  if(SPARQ_BUILD_TOOLS OR SPARQ_BUILD_BENCHMARKS OR SPARQ_BUILD_EXAMPLES)
    find_package(Eigen3 3.3 REQUIRED NO_MODULE)
  endif()

  # fmt: sparq uses the header-only target so that the same headers serve the
  # native build and the aarch64 cross build (whose sysroot has no libfmt).
  find_package(fmt QUIET)
  if(TARGET fmt::fmt-header-only)
    set(SPARQ_FMT_TARGET fmt::fmt-header-only)
  else()
    message(FATAL_ERROR "sparq needs fmt (Debian: apt-get install libfmt-dev)")
  endif()

  # nlohmann-json: the model and observer file headers are JSON.
  find_package(nlohmann_json 3 REQUIRED)
endif()

if(SPARQ_OPENMP)
  find_package(OpenMP COMPONENTS CXX)
endif()
