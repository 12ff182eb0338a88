# The datavol-only configure (AMIBAKE_DATAVOL_ONLY=ON), run by cmake/datavol_arm64.cmake
# with the aarch64 toolchain: datavol, its libraries and its tests, and nothing that needs
# curl, OpenSSL or pugixml. Tests are named "arm64.<suite>.<test>" and labelled arm64; the
# main build's ctest includes them.
find_package(PkgConfig REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(GTest REQUIRED)
find_package(Threads REQUIRED)
pkg_check_modules(BLKID REQUIRED blkid)
include(CTest)
include(GoogleTest)

set(AMIBAKE_TEST_PREFIX "${CMAKE_SYSTEM_PROCESSOR}.")
if(CMAKE_SYSTEM_PROCESSOR STREQUAL "aarch64")
  set(AMIBAKE_TEST_PREFIX "arm64.")
endif()
set(AMIBAKE_TEST_PROPERTIES LABELS arm64)

add_compile_definitions(AMIBAKE_VERSION="${PROJECT_VERSION}")
include_directories(${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR})
add_subdirectory(src/base)
set_target_properties(base_test PROPERTIES EXCLUDE_FROM_ALL ON)
add_subdirectory(src/datavol)
