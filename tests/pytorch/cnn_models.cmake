# FP32 CNN outputs against torchvision (docs/cnn.md): torchvision_reference.py
# writes random-weight ResNet-18/50 and MobileNetV2 state_dicts, an input and
# torchvision's logits, then runs nn_cnn_models_test's MatchesPyTorch tests on
# them. Skipped (exit 77) where python3 has no torch or torchvision.
add_test(NAME cnn_models_pytorch
         COMMAND Python3::Interpreter ${CMAKE_CURRENT_LIST_DIR}/torchvision_reference.py
                 $<TARGET_FILE:nn_cnn_models_test>)
set_tests_properties(cnn_models_pytorch PROPERTIES SKIP_RETURN_CODE 77)
