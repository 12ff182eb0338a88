#!/bin/sh
# ctest's datavol_vm_arm64_raid_and_grow (tests/CMakeLists.txt): the aarch64 cross build's
# datavol_test, filtered to the tests that need a real kernel (md RAID, online grow), run in
# an arm64 QEMU guest (vm_test.sh --arch arm64) whose userland is the arm64 debootstrap of
# the boot fixture (make-boot-image --rootfs-dir, built once per machine and cached).
#
#   vm_test_arm64.sh KERNEL_DIR BUSYBOX DATAVOL_TEST [GTEST_ARGS...]
#
# DATAVOL_TEST empty or missing: the aarch64 datavol was not built; exit 77 (skipped) with
# the reason.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
kernel_dir=$1 busybox=$2 test_binary=$3
shift 3
if [ -z "$test_binary" ] || [ ! -x "$test_binary" ]; then
  echo "SKIPPED: the aarch64 datavol and its tests are not built (AMIBAKE_DATAVOL_ARM64: needs" \
       "crossbuild-essential-arm64, scripts/arm64-sysroot, qemu-user-static; scripts/deps installs them)" >&2
  exit 77
fi
if [ "$(id -u)" -ne 0 ]; then echo "SKIPPED: needs root (debootstrap, loop devices in the guest)" >&2; exit 77; fi
root=$("$here/../../tests/fixtures/make-boot-image" --arch arm64 --rootfs-dir /var/tmp/amibake-vm-rootfs)
# The cross build runs the datavol it tests through qemu-aarch64-static, named by full path
# (cross builds have no binfmt_misc here). Inside the arm64 guest the binary is native, so
# that path is a pass-through there; the tree is this test's own unpacked copy.
emulator=$(command -v qemu-aarch64-static || echo /usr/bin/qemu-aarch64-static)
if [ ! -x "$root$emulator" ]; then
  mkdir -p "$root$(dirname "$emulator")"
  printf '#!/bin/sh\n# native in the arm64 guest: run the command itself\nexec "$@"\n' > "$root$emulator"
  chmod 755 "$root$emulator"
fi
build=$(cd "$(dirname "$test_binary")/../.." && pwd)
exec "$here/vm_test.sh" --arch arm64 --kernel-dir "$kernel_dir" --busybox "$busybox" --memory 1536 \
  --root "$root" --share "$build" -- "$test_binary" "$@"
