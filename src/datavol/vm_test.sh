#!/bin/sh
# Runs a command inside a throw-away QEMU/KVM guest whose root is this machine's own root
# filesystem (9p, read-only; /dev, /proc, /sys, /tmp and /run are the guest's own), booted
# from a Debian kernel. For datavol tests that need kernel features the development kernel
# lacks (md RAID: it has no /proc/mdstat), e.g.:
#
#   src/datavol/vm_test.sh --kernel-dir K --busybox B -- \
#       build-datavol/src/datavol/datavol_test --gtest_filter='DatavolLoop.Raid0*'
#
# K is an extracted linux-image-*-amd64 .deb (boot/vmlinuz-*, lib/modules/*, with
# modules.dep: run `busybox depmod -b K VERSION` once), B a static busybox
# (busybox-static .deb). Exit status: the command's, or 125 when the guest did not report.
set -eu

kernel_dir= busybox= memory=1536
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel-dir) kernel_dir=$2; shift 2 ;;
    --busybox) busybox=$2; shift 2 ;;
    --memory) memory=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "vm_test.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$kernel_dir" ] && [ -n "$busybox" ] && [ $# -gt 0 ] || {
  echo "usage: vm_test.sh --kernel-dir DIR --busybox PATH -- COMMAND..." >&2; exit 2; }

vmlinuz=$(ls "$kernel_dir"/boot/vmlinuz-* | head -n 1)
version=${vmlinuz##*/vmlinuz-}
moddir=$kernel_dir/lib/modules/$version
[ -f "$moddir/modules.dep" ] || "$busybox" depmod -b "$kernel_dir" "$version"

work=$(mktemp -d "${TMPDIR:-/tmp}/datavol-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
root=$work/initramfs
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/host" "$root/lib/modules/$version"
cp "$busybox" "$root/bin/busybox"

# Only the modules we load, with their dependencies (from modules.dep).
wanted="virtio_pci 9pnet_virtio 9p loop md-mod raid0 raid1 crc32c_generic xfs ext4"
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

cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_pci 9pnet_virtio 9p loop md-mod raid0 raid1 crc32c_generic xfs ext4; do modprobe "$m" || echo "modprobe $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 host /host
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
keep=$(cat /keep)
if [ -n "$keep" ]; then mkdir -p /keep.d && mount -o bind "/host$keep" /keep.d; fi
mount -t tmpfs tmp /host/tmp
if [ -n "$keep" ]; then mkdir -p "/host$keep" && mount -o bind /keep.d "/host$keep"; fi
mount -t tmpfs run /host/run
chroot /host /bin/sh -c "$(cat /cmd)"
echo "DATAVOL-VM-EXIT=$?"
poweroff -f
INIT
chmod 755 "$root/init"
(cd "$root" && find . | "$busybox" cpio -o -H newc 2>/dev/null) | gzip -1 > "$work/initramfs.gz"

# No network device (-nic none): tests send nothing beyond this machine.
# Software emulation by default: nested KVM on the development machines hangs the guest
# kernel right after decompression. DATAVOL_VM_ACCEL=kvm opts in where KVM works.
accel="-accel ${DATAVOL_VM_ACCEL:-tcg}"
# shellcheck disable=SC2086
qemu-system-x86_64 $accel -m "$memory" -smp 2 -nographic -no-reboot -nic none \
  -kernel "$vmlinuz" -initrd "$work/initramfs.gz" \
  -append "console=ttyS0 quiet panic=-1 rdinit=/init" \
  -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
  < /dev/null > "$work/console" 2>&1 &
qemu_pid=$!
trap 'kill "$qemu_pid" 2>/dev/null; exit 130' INT TERM
wait "$qemu_pid" || true
tr -d '\r' < "$work/console" | grep -v '^$' >&2
status=$(sed -n 's/^DATAVOL-VM-EXIT=\([0-9]*\).*/\1/p' "$work/console" | tr -d '\r' | tail -n 1)
[ -n "$status" ] || { echo "vm_test.sh: the guest did not report an exit status" >&2; exit 125; }
exit "$status"
