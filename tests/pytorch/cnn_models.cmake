# FP32 CNN outputs against torchvision (docs/cnn.md): torchvision_reference.py
# writes random-weight ResNet-18/50 and MobileNetV2 state_dicts, an input and
# torchvision's logits, then runs nn_cnn_models_test's MatchesPyTorch tests on
# them. Skipped (exit 77) where python3 has no torch or torchvision.
add_test(NAME cnn_models_pytorch
         COMMAND Python3::Interpreter ${CMAKE_CURRENT_LIST_DIR}/torchvision_reference.py
                 $<TARGET_FILE:nn_cnn_models_test>)
set_tests_properties(cnn_models_pytorch PROPERTIES SKIP_RETURN_CODE 77)

# `sparq bench model` end to end on a small input (no PyTorch needed: --no-peer):
# both sparq variants print a JSON record; a bad flag names itself.
add_test(NAME bench_model_cli
         COMMAND sparq_tool bench model resnet18 --size 32 --repeat 1 --json --no-peer)
set_tests_properties(bench_model_cli PROPERTIES PASS_REGULAR_EXPRESSION
                     "\"model\":\"resnet18\".*\"variant\":\"fp32\".*\n.*\"variant\":\"int8\"")
add_test(NAME bench_model_cli_errors COMMAND sparq_tool bench model resnet18 --threads 0)
set_tests_properties(bench_model_cli_errors PROPERTIES PASS_REGULAR_EXPRESSION
                     "bench model: --threads '0': expected a positive integer")
add_test(NAME bench_model_cli_memory COMMAND sparq_tool bench model resnet18 --batch 1024 --size 4096)
set_tests_properties(bench_model_cli_memory PROPERTIES PASS_REGULAR_EXPRESSION
                     "needs about [0-9]+ MiB of activations but [0-9]+ MiB of memory are available")
