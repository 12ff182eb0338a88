# The aarch64 datavol that amibake embeds for arm64 (Graviton) bases (docs/arm64.md).
#
# AMIBAKE_DATAVOL_ARM64=AUTO (default) builds it when the cross compiler
# (crossbuild-essential-arm64), the private arm64 sysroot (scripts/arm64-sysroot) and, for
# its tests, qemu-aarch64-static are present; ON fails the configure if any is missing;
# OFF never builds it. Without it amibake still builds and refuses arm64 bases, saying so.
#
# The cross build is a second, datavol-only configure of this source tree
# (AMIBAKE_DATAVOL_ONLY, cmake/datavol_only.cmake) with cmake/aarch64-linux-gnu.cmake, run
# as an ExternalProject in <build>/datavol-arm64. Sets AMIBAKE_HAVE_DATAVOL_ARM64 and
# AMIBAKE_DATAVOL_ARM64_BIN for src/bake (the embedded blob).
set(AMIBAKE_DATAVOL_ARM64 AUTO CACHE STRING "build the aarch64 datavol: AUTO, ON or OFF")
set_property(CACHE AMIBAKE_DATAVOL_ARM64 PROPERTY STRINGS AUTO ON OFF)
set(AMIBAKE_ARM64_SYSROOT /var/tmp/amibake-arm64-sysroot/root CACHE PATH
    "private arm64 sysroot made by scripts/arm64-sysroot")
set(AMIBAKE_HAVE_DATAVOL_ARM64 OFF)
string(TOUPPER "${AMIBAKE_DATAVOL_ARM64}" _arm64_mode)
if(NOT _arm64_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "AMIBAKE_DATAVOL_ARM64 is '${AMIBAKE_DATAVOL_ARM64}': use AUTO, ON or OFF")
endif()

if(CMAKE_SYSTEM_PROCESSOR STREQUAL "aarch64" AND NOT _arm64_mode STREQUAL "OFF")
  message(STATUS "aarch64 datavol: this build is native aarch64; no cross build needed")
elseif(NOT _arm64_mode STREQUAL "OFF")
  find_program(AMIBAKE_AARCH64_CXX aarch64-linux-gnu-g++)
  find_program(AMIBAKE_AARCH64_CC aarch64-linux-gnu-gcc)
  set(_missing)
  if(NOT AMIBAKE_AARCH64_CXX OR NOT AMIBAKE_AARCH64_CC)
    list(APPEND _missing "the cross compiler aarch64-linux-gnu-g++ (crossbuild-essential-arm64)")
  endif()
  if(NOT EXISTS ${AMIBAKE_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/libblkid.a)
    list(APPEND _missing "the arm64 sysroot ${AMIBAKE_ARM64_SYSROOT} (scripts/arm64-sysroot)")
  endif()
  if(BUILD_TESTING)
    find_program(AMIBAKE_QEMU_AARCH64 qemu-aarch64-static)
    if(NOT AMIBAKE_QEMU_AARCH64)
      list(APPEND _missing "qemu-aarch64-static (qemu-user-static), which runs its tests")
    endif()
  endif()
  if(_missing)
    list(JOIN _missing "; " _missing)
    if(_arm64_mode STREQUAL "ON")
      message(FATAL_ERROR "AMIBAKE_DATAVOL_ARM64=ON but missing: ${_missing}. "
                          "Run scripts/deps (as root), then configure again.")
    endif()
    message(STATUS "aarch64 datavol: not built (missing: ${_missing}); arm64 bases will be "
                   "refused. scripts/deps installs what it needs.")
  else()
    set(AMIBAKE_HAVE_DATAVOL_ARM64 ON)
  endif()
endif()

if(AMIBAKE_HAVE_DATAVOL_ARM64)
  include(ExternalProject)
  set(_dir ${CMAKE_BINARY_DIR}/datavol-arm64)
  set(AMIBAKE_DATAVOL_ARM64_BIN ${_dir}/src/datavol/datavol)
  message(STATUS "aarch64 datavol: built in ${_dir} (${AMIBAKE_AARCH64_CXX})")
  ExternalProject_Add(datavol_arm64
    SOURCE_DIR ${CMAKE_SOURCE_DIR}
    BINARY_DIR ${_dir}
    CMAKE_ARGS
      -DAMIBAKE_DATAVOL_ONLY=ON
      -DCMAKE_TOOLCHAIN_FILE=${CMAKE_SOURCE_DIR}/cmake/aarch64-linux-gnu.cmake
      -DAMIBAKE_ARM64_SYSROOT=${AMIBAKE_ARM64_SYSROOT}
      -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE}
      -DBUILD_TESTING=${BUILD_TESTING}
      -DCMAKE_CXX_COMPILER_LAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER}
      -DCMAKE_C_COMPILER_LAUNCHER=${CMAKE_C_COMPILER_LAUNCHER}
    # The sources are this tree: always step into the nested build, which is a no-op
    # when nothing changed (and then the binary's timestamp, hence the blob, stays).
    BUILD_ALWAYS ON
    INSTALL_COMMAND ""
    BUILD_BYPRODUCTS ${AMIBAKE_DATAVOL_ARM64_BIN} ${_dir}/src/datavol/datavol_test)
  # The cross build's tests (arm64.*, label arm64) join this build's ctest run.
  if(BUILD_TESTING)
    set(_include ${CMAKE_BINARY_DIR}/datavol_arm64_tests.cmake)
    file(WRITE ${_include}
      "set(_f \"${_dir}/src/datavol/datavol_test[1]_include.cmake\")\n"
      "if(EXISTS \"\${_f}\")\n  include(\"\${_f}\")\nelse()\n"
      "  add_test(arm64.datavol_test_NOT_BUILT arm64.datavol_test_NOT_BUILT)\nendif()\n")
    set_property(DIRECTORY ${CMAKE_SOURCE_DIR} APPEND PROPERTY TEST_INCLUDE_FILES ${_include})
  endif()
endif()
