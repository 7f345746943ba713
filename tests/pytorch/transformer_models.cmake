# FP32 BERT against a hand-written PyTorch BERT with Hugging Face's module
# names (docs/transformers.md): bert_reference.py writes random weights,
# inputs and torch's outputs; bert_pytorch_check loads them into nn::bert and
# compares. Skipped (exit 77) where python3 has no torch.
add_executable(bert_pytorch_check ${CMAKE_CURRENT_LIST_DIR}/bert_pytorch_check.cpp)
target_link_libraries(bert_pytorch_check PRIVATE sparq::sparq)
sparq_set_warnings(bert_pytorch_check)
set(SPARQ_BERT_CHECK_DIR ${CMAKE_CURRENT_BINARY_DIR}/bert_pytorch)
add_test(NAME bert_pytorch
         COMMAND sh -c "mkdir -p '${SPARQ_BERT_CHECK_DIR}' && \
'${Python3_EXECUTABLE}' '${CMAKE_CURRENT_LIST_DIR}/bert_reference.py' \
'${SPARQ_BERT_CHECK_DIR}/weights.safetensors' '${SPARQ_BERT_CHECK_DIR}/io.safetensors' && \
'$<TARGET_FILE:bert_pytorch_check>' \
'${SPARQ_BERT_CHECK_DIR}/weights.safetensors' '${SPARQ_BERT_CHECK_DIR}/io.safetensors'")
set_tests_properties(bert_pytorch PROPERTIES SKIP_RETURN_CODE 77)
