# Installs the headers and a package config so that find_package(esamp CONFIG) works from other projects.
include(CMakePackageConfigHelpers)

install(TARGETS esamp EXPORT esampTargets)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/esamp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT esampTargets NAMESPACE esamp:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/esamp)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/esampConfig.cmake.in
  ${PROJECT_BINARY_DIR}/esampConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/esamp)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/esampConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/esampConfig.cmake ${PROJECT_BINARY_DIR}/esampConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/esamp)
