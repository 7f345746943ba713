# fashion_mnist_example(<name> <dir macro>): the executable <name> from
# <name>.cpp in the calling directory plus this directory's IDX reader
# (idx.cpp, gzip via zlib), linked to sparq, with <dir macro> defined as the
# calling directory (where the example's committed weights live). Shared by
# examples/pytorch_trained and examples/vit_fashion, which build inside
# sparq's tree or on their own against an installed sparq. Without zlib
# (Debian: zlib1g-dev) it says so and defines no target.
set(_fashion_mnist_dir ${CMAKE_CURRENT_LIST_DIR})

# Inside sparq's tree sparq::sparq already exists; on their own the
# examples build against an installed sparq.
if(NOT TARGET sparq::sparq)
  find_package(sparq REQUIRED)
endif()

# The example targets' warnings: sparq's own (and its sanitizers) inside its
# tree, plain -Wall -Wextra outside.
function(fashion_mnist_warnings target)
  if(COMMAND sparq_set_warnings)
    sparq_set_warnings(${target})
  else()
    target_compile_options(${target} PRIVATE -Wall -Wextra)
  endif()
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 at -O3 reports a false -Wrestrict inside std::string's
    # operator+ (GCC bug 105329) where sparq's atomic_file.hpp builds the
    # temporary file name.
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
endfunction()

function(fashion_mnist_example name dir_macro)
  find_package(ZLIB)
  if(NOT ZLIB_FOUND)
    message(STATUS "${name}: zlib not found (Debian: zlib1g-dev): example not built")
    return()
  endif()
  add_executable(${name} ${name}.cpp ${_fashion_mnist_dir}/idx.cpp)
  set_target_properties(${name} PROPERTIES CXX_STANDARD 20 CXX_STANDARD_REQUIRED ON)
  target_include_directories(${name} PRIVATE ${_fashion_mnist_dir})
  target_link_libraries(${name} PRIVATE sparq::sparq ZLIB::ZLIB)
  target_compile_definitions(${name} PRIVATE ${dir_macro}="${CMAKE_CURRENT_SOURCE_DIR}")
  fashion_mnist_warnings(${name})
endfunction()
