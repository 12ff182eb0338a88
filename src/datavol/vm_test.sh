#!/bin/sh
# Runs a command inside a throw-away QEMU guest whose root is this machine's own root
# filesystem (9p, read-only; /dev, /proc, /sys, /tmp and /run are the guest's own), booted
# from a Debian kernel. For datavol tests that need kernel features the development kernel
# lacks (md RAID: it has no /proc/mdstat), e.g.:
#
#   src/datavol/vm_test.sh --kernel-dir K --busybox B -- \
#       build-datavol/src/datavol/datavol_test --gtest_filter='DatavolLoop.Raid0*'
#
# K is an extracted linux-image-*-amd64 .deb (boot/vmlinuz-*, lib/modules/*; modules.dep
# is made on first use), B a static busybox (busybox-static .deb): scripts/vm-kernel.
#
# Another architecture's guest (--arch arm64: qemu-system-aarch64 -M virt -cpu neoverse-n1,
# K and B from `scripts/vm-kernel arm64`) cannot use this machine's root as its userland, so
# --root DIR names a tree of that architecture (a debootstrap, tests/fixtures/make-boot-image
# --rootfs-dir) that becomes the guest's root; the current directory and each --share DIR
# of this machine appear in it at the same paths, read-only. The foreign busybox is run on this
# machine through qemu-aarch64-static explicitly: no binfmt_misc registration is needed.
# Exit status: the command's, or 125 when the guest did not report.
set -eu

kernel_dir= busybox= memory=1536 arch=x86_64 guest_root= shares=
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel-dir) kernel_dir=$2; shift 2 ;;
    --busybox) busybox=$2; shift 2 ;;
    --memory) memory=$2; shift 2 ;;
    --arch) arch=$2; shift 2 ;;
    --root) guest_root=$2; shift 2 ;;
    --share) shares="$shares $2"; shift 2 ;;
    --) shift; break ;;
    *) echo "vm_test.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$kernel_dir" ] && [ -n "$busybox" ] && [ $# -gt 0 ] || {
  echo "usage: vm_test.sh --kernel-dir DIR --busybox PATH [--arch x86_64|arm64 --root DIR [--share DIR]...] -- COMMAND..." >&2; exit 2; }

# What differs per guest architecture: QEMU, its machine, the console, how to run the
# guest's busybox here.
case "$arch" in
  x86_64|amd64)
    qemu="qemu-system-x86_64" console=ttyS0 ;;
  arm64|aarch64)
    qemu="qemu-system-aarch64 -M virt -cpu neoverse-n1" console=ttyAMA0 ;;
  *) echo "vm_test.sh: unknown architecture $arch (x86_64 or arm64)" >&2; exit 2 ;;
esac
case "$arch:$(uname -m)" in
  x86_64:x86_64|amd64:x86_64|arm64:aarch64|aarch64:aarch64) here= ;;
  arm64:*|aarch64:*) here=qemu-aarch64-static ;;
esac
if [ -n "$here" ] && ! command -v "$here" >/dev/null; then
  echo "vm_test.sh: $here not found (Debian: qemu-user-static); it runs the guest's busybox here" >&2; exit 2
fi
bb() { $here "$busybox" "$@"; }
if [ -z "$guest_root" ] && [ -n "$here" ]; then
  echo "vm_test.sh: an $arch guest needs --root DIR, a tree of its architecture" >&2; exit 2
fi

vmlinuz=$(ls "$kernel_dir"/boot/vmlinuz-* | head -n 1)
version=${vmlinuz##*/vmlinuz-}
moddir=$kernel_dir/lib/modules/$version
[ -f "$moddir/modules.dep" ] || bb depmod -b "$kernel_dir" "$version"

work=$(mktemp -d "${TMPDIR:-/tmp}/datavol-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
root=$work/initramfs
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/host" "$root/lib/modules/$version"
cp "$busybox" "$root/bin/busybox"

# Only the modules we load, with their dependencies (from modules.dep).
wanted="virtio_pci virtio_blk 9pnet_virtio 9p loop md-mod raid0 raid1 crc32c_generic xfs ext4"
: > "$work/files"
for m in $wanted; do
  grep -E "/$m\.ko:" "$moddir/modules.dep" | tr -d ':' | tr ' ' '\n' >> "$work/files"
done
sort -u "$work/files" | while read -r f; do
  [ -n "$f" ] || continue
  mkdir -p "$root/lib/modules/$version/$(dirname "$f")"
  cp "$moddir/$f" "$root/lib/modules/$version/$f"
done
cp "$moddir"/modules.dep "$moddir"/modules.alias "$moddir"/modules.builtin "$root/lib/modules/$version/" 2>/dev/null || true

# The command, quoted for sh -c inside the guest, run from the current directory.
cmd="cd '$(pwd)' &&"
for a in "$@"; do cmd="$cmd '$(printf %s "$a" | sed "s/'/'\\\\''/g")'"; done
printf '%s\n' "$cmd" > "$root/cmd"
# The guest's /tmp is its own tmpfs; when the build tree itself lives under /tmp (CI may
# clone there), that top folder is carried over from the host, read-only like the rest.
case "$(pwd)" in
  /tmp/?*) printf '/tmp/%s\n' "$(pwd | cut -d/ -f3)" > "$root/keep" ;;
  *) : > "$root/keep" ;;
esac
# With --root: the folders of this machine shown in the guest's tree, one 9p share each
# ("TAG PATH" lines), mounted over empty folders made in the tree (unless under /tmp).
root_args="-virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap"
root_mount="-t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 host"
: > "$root/shares"
if [ -n "$guest_root" ]; then
  [ -d "$guest_root" ] || { echo "vm_test.sh: --root $guest_root: no such folder" >&2; exit 2; }
  root_args="-virtfs local,path=$guest_root,mount_tag=host,security_model=none,readonly=on,multidevs=remap"
  n=0
  for d in $shares $(pwd); do
    d=$(cd "$d" && pwd)
    [ "$d" != / ] || continue  # this machine's whole root would hide the guest's
    case "$d" in /tmp/*) ;; *) mkdir -p "$guest_root$d" ;; esac
    root_args="$root_args -virtfs local,path=$d,mount_tag=s$n,security_model=none,readonly=on,multidevs=remap"
    printf 's%d %s\n' "$n" "$d" >> "$root/shares"
    n=$((n + 1))
  done
  : > "$root/keep"
fi
printf '%s\n' "$root_mount" > "$root/root_mount"

cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_pci virtio_blk 9pnet_virtio 9p loop md-mod raid0 raid1 crc32c_generic xfs ext4; do modprobe "$m" || echo "modprobe $m failed"; done
mount $(cat /root_mount) /host
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
keep=$(cat /keep)
if [ -n "$keep" ]; then mkdir -p /keep.d && mount -o bind "/host$keep" /keep.d; fi
mount -t tmpfs tmp /host/tmp
if [ -n "$keep" ]; then mkdir -p "/host$keep" && mount -o bind /keep.d "/host$keep"; fi
mount -t tmpfs run /host/run
while read -r tag path; do
  mkdir -p "/host$path" && mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 "$tag" "/host$path"
done < /shares
chroot /host /bin/sh -c "$(cat /cmd)"
echo "DATAVOL-VM-EXIT=$?"
sync
poweroff -f
INIT
chmod 755 "$root/init"
(cd "$root" && find . | bb cpio -o -H newc 2>/dev/null) | gzip -1 > "$work/initramfs.gz"

# No network device (-nic none): tests send nothing beyond this machine.
# Software emulation by default: nested KVM on the development machines hangs the guest
# kernel right after decompression. DATAVOL_VM_ACCEL=kvm opts in where KVM works.
accel="-accel ${DATAVOL_VM_ACCEL:-tcg}"
# shellcheck disable=SC2086
$qemu $accel -m "$memory" -smp 2 -nographic -no-reboot -nic none \
  -kernel "$vmlinuz" -initrd "$work/initramfs.gz" \
  -append "console=$console quiet panic=-1 rdinit=/init" $root_args \
  < /dev/null > "$work/console" 2>&1 &
qemu_pid=$!
trap 'kill "$qemu_pid" 2>/dev/null; exit 130' INT TERM
wait "$qemu_pid" || true
tr -d '\r' < "$work/console" | grep -v '^$' >&2
status=$(sed -n 's/^DATAVOL-VM-EXIT=\([0-9]*\).*/\1/p' "$work/console" | tr -d '\r' | tail -n 1)
[ -n "$status" ] || { echo "vm_test.sh: the guest did not report an exit status" >&2; exit 125; }
exit "$status"
