include(GNUInstallDirs)

find_package(Eigen3 3.3 REQUIRED NO_MODULE)

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

if(SPARQ_OPENMP)
  find_package(OpenMP COMPONENTS CXX)
endif()
