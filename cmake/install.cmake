# Installs libweft (static and shared), weft.h with its sub-headers weft/*.h, a pkg-config
# file (weft.pc) and a CMake package, so that consumers can use either
# `pkg-config --cflags --libs weft` or `find_package(weft)` with the targets weft::weft
# (static) and weft::weft_shared.
include(CMakePackageConfigHelpers)

# Outside this tree the static library must answer to weft::weft, the name the in-tree
# ALIAS gives it, so consumers write the same line whether they vendor weft or install it.
set_target_properties(weft_static PROPERTIES EXPORT_NAME weft)
set_target_properties(weft_shared PROPERTIES EXPORT_NAME weft_shared)

set(WEFT_CMAKE_PACKAGE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/weft)

install(TARGETS weft_static weft_shared
  EXPORT weftTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/weft.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# weft.h includes one header per area from weft/ beside it; users include weft.h only.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/weft DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.h")

install(EXPORT weftTargets
  NAMESPACE weft::
  FILE weftTargets.cmake
  DESTINATION ${WEFT_CMAKE_PACKAGE_DIR})

configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/weftConfig.cmake.in
  ${PROJECT_BINARY_DIR}/weftConfig.cmake
  INSTALL_DESTINATION ${WEFT_CMAKE_PACKAGE_DIR})
# Before 1.0 a minor release may change the API, so only the same minor version matches.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/weftConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/weftConfig.cmake
  ${PROJECT_BINARY_DIR}/weftConfigVersion.cmake
  DESTINATION ${WEFT_CMAKE_PACKAGE_DIR})

# weft.pc is written at install time, not configure time, so that its paths follow the
# prefix actually installed to: `cmake --install build --prefix /tmp/x` must give /tmp/x
# paths whatever CMAKE_INSTALL_PREFIX was when the build was configured.
install(CODE "
  set(WEFT_PC_TEMPLATE \"${CMAKE_CURRENT_LIST_DIR}/weft.pc.in\")
  set(WEFT_PC_OUTPUT \"${PROJECT_BINARY_DIR}/weft.pc\")
  set(WEFT_PC_VERSION \"${PROJECT_VERSION}\")
  set(WEFT_PC_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(WEFT_PC_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  include(\"${CMAKE_CURRENT_LIST_DIR}/weft_pc.cmake\")
")
