# sparq_add_test(name source...): a GoogleTest executable registered with
# ctest. Cross builds run it through CMAKE_CROSSCOMPILING_EMULATOR (qemu).
function(sparq_add_test name)
  add_executable(${name} ${ARGN})
  # nlohmann-json: tests include src/ headers that use it (sparq links it PRIVATE).
  target_link_libraries(${name} PRIVATE sparq::sparq nlohmann_json::nlohmann_json GTest::gtest
                                        GTest::gmock GTest::gtest_main)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests ${PROJECT_SOURCE_DIR}/src)
  target_compile_definitions(${name} PRIVATE SPARQ_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  sparq_set_warnings(${name})
  add_test(NAME ${name} COMMAND ${name} --gtest_brief=1)
endfunction()
