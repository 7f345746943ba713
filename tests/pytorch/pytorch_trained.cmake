# sparq's default static INT8 against PyTorch's default static INT8 on the
# MLP and CNN of examples/pytorch_trained (trained in PyTorch, weights
# committed): compare.py fails when sparq is below PyTorch in test accuracy
# or in logits SQNR on either model, and skips (exit 77) where python3 has
# no torch or Fashion-MNIST is not installed. The program is the example's,
# built only with the examples and zlib (the example's own conditions).
if(SPARQ_BUILD_EXAMPLES)
  find_package(ZLIB QUIET)
  if(ZLIB_FOUND)
    add_test(NAME pytorch_trained_int8
             COMMAND Python3::Interpreter ${PROJECT_SOURCE_DIR}/examples/pytorch_trained/compare.py
                     $<TARGET_FILE:pytorch_trained>)
    set_tests_properties(pytorch_trained_int8 PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
  endif()
endif()
