include(CMakePackageConfigHelpers)

install(TARGETS sparq EXPORT sparqTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(SPARQ_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/sparq)
install(EXPORT sparqTargets NAMESPACE sparq:: DESTINATION ${SPARQ_CMAKE_DIR})
configure_package_config_file(cmake/sparqConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/sparqConfig.cmake INSTALL_DESTINATION ${SPARQ_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/sparqConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/sparqConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/sparqConfigVersion.cmake
        DESTINATION ${SPARQ_CMAKE_DIR})
