# Warnings and sanitizers apply to sparq's own targets only, never to users'.
function(sparq_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(SPARQ_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${SPARQ_SANITIZE} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${SPARQ_SANITIZE})
  endif()
endfunction()
