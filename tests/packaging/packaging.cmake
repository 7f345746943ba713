# Driver of one packaging scenario (see CMakeLists.txt next to this file).
# Inputs: SCENARIO, SPARQ_SOURCE_DIR, PKG_DIR, WORK, GENERATOR, CXX_COMPILER,
# SPARQ_OPENMP.
cmake_minimum_required(VERSION 3.22)

set(prefix ${WORK}/prefix)
set(common -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release)

function(step)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "packaging ${SCENARIO}: ${shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "packaging ${SCENARIO}: step failed (exit ${rc}): ${shown}")
  endif()
endfunction()

# configure + build a project in ${WORK}/<name>, then run its program.
function(build_and_run name source program)
  set(build ${WORK}/${name})
  file(REMOVE_RECURSE ${build})
  step(${CMAKE_COMMAND} -S ${source} -B ${build} ${common} -DCMAKE_PREFIX_PATH=${prefix} ${ARGN})
  step(${CMAKE_COMMAND} --build ${build} --parallel 2)
  step(${build}/${program})
endfunction()

if(SCENARIO STREQUAL "install")
  file(REMOVE_RECURSE ${WORK}/sparq-build ${prefix})
  step(${CMAKE_COMMAND} -S ${SPARQ_SOURCE_DIR} -B ${WORK}/sparq-build ${common}
       -DCMAKE_INSTALL_PREFIX=${prefix} -DSPARQ_INSTALL=ON -DSPARQ_BUILD_TESTS=OFF
       -DSPARQ_BUILD_BENCHMARKS=OFF -DSPARQ_BUILD_TOOLS=OFF -DSPARQ_BUILD_EXAMPLES=OFF
       -DSPARQ_OPENMP=${SPARQ_OPENMP})
  step(${CMAKE_COMMAND} --build ${WORK}/sparq-build --parallel 2)
  step(${CMAKE_COMMAND} --install ${WORK}/sparq-build)
elseif(SCENARIO STREQUAL "find_package")
  build_and_run(find_package_consumer ${PKG_DIR}/find_package_consumer consumer)
elseif(SCENARIO STREQUAL "add_subdirectory")
  build_and_run(add_subdirectory_consumer ${PKG_DIR}/add_subdirectory_consumer consumer
                -DSPARQ_SOURCE_DIR=${SPARQ_SOURCE_DIR})
elseif(SCENARIO STREQUAL "example_quantize")
  # Copied out alone, as a user would: nothing of sparq's tree is visible.
  set(copy ${WORK}/example_quantize_src)
  file(REMOVE_RECURSE ${copy})
  file(COPY ${SPARQ_SOURCE_DIR}/examples/quantize DESTINATION ${WORK})
  file(RENAME ${WORK}/quantize ${copy})
  build_and_run(example_quantize ${copy} quantize_demo)
else()
  message(FATAL_ERROR "unknown SCENARIO '${SCENARIO}'")
endif()
