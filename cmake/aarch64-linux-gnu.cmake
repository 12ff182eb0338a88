# Toolchain for the aarch64 datavol (cmake/datavol_arm64.cmake): Debian's cross compiler
# (crossbuild-essential-arm64, glibc and libstdc++ under /usr/aarch64-linux-gnu) plus the
# private sysroot of scripts/arm64-sysroot for libblkid, GoogleTest and the header-only
# libraries. The private sysroot holds no libc, so it is added as search paths, not as
# --sysroot (which would hide the cross glibc).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

if(NOT AMIBAKE_ARM64_SYSROOT)
  set(AMIBAKE_ARM64_SYSROOT /var/tmp/amibake-arm64-sysroot/root)
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES AMIBAKE_ARM64_SYSROOT)
set(_lib ${AMIBAKE_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu)

set(CMAKE_FIND_ROOT_PATH ${AMIBAKE_ARM64_SYSROOT} /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_C_FLAGS_INIT "-isystem ${AMIBAKE_ARM64_SYSROOT}/usr/include")
set(CMAKE_CXX_FLAGS_INIT "-isystem ${AMIBAKE_ARM64_SYSROOT}/usr/include")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-L${_lib}")
set(ENV{PKG_CONFIG_LIBDIR} "${_lib}/pkgconfig:${AMIBAKE_ARM64_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${AMIBAKE_ARM64_SYSROOT}")

# Tests run under user-mode QEMU, named explicitly: no binfmt_misc registration needed.
# -L lets dynamically linked test binaries find the cross glibc's loader.
find_program(AMIBAKE_QEMU_AARCH64 qemu-aarch64-static)
if(AMIBAKE_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${AMIBAKE_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
endif()
