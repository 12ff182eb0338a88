#!/usr/bin/env bash
# The Debian package end to end (issue 14), as a user on a fresh Debian 12 would meet it:
#  1. scripts/package builds it (Release, its own build folder);
#  2. its control fields and contents: Depends names the tools amibake runs and a package
#     for every shared library the binaries need; only amibake and awsemu in /usr/bin;
#  3. apt-get install ./amibake_<version>_amd64.deb resolves the Depends;
#  4. the installed /usr/bin/amibake: --version, the installed completion against its
#     --help, then package_use.sh: `amibake doctor` and a bake of the installed example
#     recipe against the installed /usr/bin/awsemu serving the fixture catalog, with
#     fusermount3 hidden (the lazy fetch must not need the fuse3 package);
#  5. apt-get purge removes it: not installed, dpkg -L empty, every file gone;
#  6. the same install, use and purge in a fresh Debian 12 minbase chroot (debootstrap,
#     cached), where only Depends brings what amibake needs.
# It changes the machine's packages, so it runs only as root and only when asked
# (AMIBAKE_TEST_PACKAGE=1; .ci/run sets it); elsewhere it skips with code 77.
#   package_test.sh SOURCE_DIR FIXTURES_DIR WORK_DIR
set -euo pipefail
src=$1 fixtures=$2 work=$3
skip() { echo "SKIP: $*"; exit 77; }
[ "${AMIBAKE_TEST_PACKAGE:-0}" = 1 ] ||
  skip "installs and removes the amibake Debian package on this machine; run with AMIBAKE_TEST_PACKAGE=1 (CI does)"
[ "$(id -u)" = 0 ] || skip "needs root (apt-get install, loop devices, mounts)"

started=$SECONDS
step() { echo "== [$((SECONDS - started)) s] $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -y -q "$@"; }
installed() { dpkg-query -W -f='${Status}' amibake 2>/dev/null | grep -q "ok installed"; }

cleanup() {
  # Never leave the package behind on a failed run.
  if installed; then apt_get purge amibake >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
if installed; then
  echo "note: amibake $(dpkg-query -W -f='${Version}' amibake) was installed; purging it first"
  apt_get purge amibake >/dev/null
fi
rm -rf "$work/run"
mkdir -p "$work/run"

step "building the package (scripts/package)"
t0=$SECONDS
# Its own build folder, unless AMIBAKE_PACKAGE_BUILD_DIR names one (e.g. scripts/package's).
deb=$(AMIBAKE_PACKAGE_BUILD_DIR="${AMIBAKE_PACKAGE_BUILD_DIR:-$work/build}" "$src/scripts/package")
echo "   $deb: $(stat -c %s "$deb") bytes, built in $((SECONDS - t0)) s"
version=$(dpkg-deb -f "$deb" Version)
[ "$(basename "$deb")" = "amibake_${version}_amd64.deb" ] || fail "unexpected file name $(basename "$deb")"
[ "$(dpkg-deb -f "$deb" Architecture)" = amd64 ] || fail "Architecture is not amd64"

step "control fields and contents"
depends=$(dpkg-deb -f "$deb" Depends)
echo "   Depends: $depends"
# The package names in Depends, one a line, without versions or alternatives' bars.
dep_names=$(tr ',|' '\n\n' <<<"$depends" | sed 's/(.*)//; s/^ *//; s/ *$//' | sed '/^$/d' | sort -u)
for p in xfsprogs e2fsprogs mount ca-certificates libcurl4 libssl3 libfuse3-3 libblkid1 \
         libpugixml1v5 libstdc++6 libc6; do
  grep -qx "$p" <<<"$dep_names" || fail "Depends lacks $p"
done
dpkg-deb -x "$deb" "$work/run/root"
bins=$(ls "$work/run/root/usr/bin" | tr '\n' ' ')
[ "$bins" = "amibake awsemu " ] || fail "/usr/bin holds [$bins], not exactly amibake and awsemu"
for f in usr/share/bash-completion/completions/amibake usr/share/man/man1/amibake.1.gz \
         usr/share/doc/amibake/README.md \
         usr/share/doc/amibake/docs/recipe.md usr/share/doc/amibake/examples/batch-worker.toml \
         usr/share/doc/amibake/emulator/README.md; do
  [ -s "$work/run/root/$f" ] || fail "the package has no /$f"
done
# The package owning a library file, whichever of /lib and /usr/lib (merged /usr) dpkg
# recorded it under, as named or with its symlinks resolved.
owner_of() {
  local p c
  for p in "$1" "$(realpath "$1")"; do
    for c in "$p" "${p/#\/usr\/lib\//\/lib\/}" "${p/#\/lib\//\/usr\/lib\/}"; do
      # awk reads to the end: with pipefail, a reader that stops early (head) can fail
      # the pipeline by SIGPIPE-ing the writer, now and then.
      local o
      o=$(dpkg -S "$c" 2>/dev/null | awk -F: 'NR == 1 {print $1}') || true
      if [ -n "$o" ]; then echo "$o"; return 0; fi
    done
  done
  return 1
}
# Every shared library the binaries load comes from a package in Depends (dpkg-shlibdeps'
# job; checked here from the other side: readelf's NEEDED, ldconfig's path, dpkg -S).
for bin in amibake awsemu; do
  for lib in $(readelf -d "$work/run/root/usr/bin/$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    # No early exit in awk: under pipefail, ldconfig killed by SIGPIPE would end the script
    # silently (set -e), as it once did in CI.
    path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ && !seen {print $NF; seen = 1}')
    [ -n "$path" ] || fail "$bin needs $lib, which ldconfig does not know"
    owner=$(owner_of "$path") || fail "$bin needs $path, which no installed package owns"
    grep -qx "$owner" <<<"$dep_names" || fail "$bin needs $lib from $owner, which Depends does not name"
  done
done
file_list=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print substr($6, 2)}')

step "apt-get install $deb"
t0=$SECONDS
if ! apt_get install "$deb" >"$work/run/apt.log" 2>&1; then
  # A fresh machine may have stale package lists: refresh once and retry.
  apt_get update >/dev/null
  apt_get install "$deb" >"$work/run/apt.log" 2>&1 || { cat "$work/run/apt.log" >&2; fail "apt-get install"; }
fi
echo "   installed in $((SECONDS - t0)) s"
installed || fail "dpkg does not list amibake as installed"
hash -r
[ "$(command -v amibake)" = /usr/bin/amibake ] || fail "amibake on PATH is $(command -v amibake)"
[ "$(command -v awsemu)" = /usr/bin/awsemu ] || fail "awsemu on PATH is $(command -v awsemu)"
got=$(amibake --version)
# "amibake 0.1.0 (datavol: x86_64, arm64)": the version, then the datavol architectures carried.
[ "${got%% (*}" = "amibake $version" ] || fail "amibake --version says '$got', the package is $version"

step "the installed completion against the installed amibake's --help"
"$src/src/cli/completion_test.sh" /usr/bin/amibake /usr/share/bash-completion/completions/amibake

step "the catalog of base images (tests/fixtures/make-base-images, cached)"
"$src/tests/fixtures/make-base-images" "$fixtures" >/dev/null

step "use it: tests/package_use.sh, fusermount3 hidden"
# A private mount namespace: the bind mount over fusermount3 is seen by this use only.
hide_fusermount=
for f in /usr/bin/fusermount3 /bin/fusermount3; do
  [ -e "$f" ] && { hide_fusermount="mount --bind /dev/null $f && "; break; }
done
unshare --mount --propagation private sh -c "${hide_fusermount}exec \"\$0\" \"\$1\" \"\$2\"" \
  "$src/tests/package_use.sh" "$fixtures" "$work/run/use" || fail "using the installed package"

step "apt-get purge amibake"
apt_get purge amibake >"$work/run/apt-purge.log" 2>&1 || { cat "$work/run/apt-purge.log" >&2; fail "purge"; }
! installed || fail "amibake is still installed"
left=$(dpkg -L amibake 2>/dev/null || true)
[ -z "$left" ] || fail "dpkg -L amibake still lists: $left"
hash -r
! command -v amibake >/dev/null || fail "amibake is still on PATH at $(command -v amibake)"
for f in $file_list; do [ ! -e "$f" ] || fail "$f is left after purge"; done
[ ! -e /usr/share/doc/amibake ] || fail "/usr/share/doc/amibake is left after purge"

step "a fresh Debian 12 (debootstrap minbase, cached): apt-get install the .deb, use it, purge"
# What the host stages cannot show: that Depends is enough on a machine without the build
# dependencies. Downloads from the Debian mirror (debootstrap once, apt-get each run).
cache=${AMIBAKE_FIXTURE_CACHE:-/var/tmp/amibake-fixture-cache}
minbase=$cache/package-minbase-bookworm.tar
if [ ! -s "$minbase" ]; then
  t0=$SECONDS
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/package-minbase.XXXXXX")
  debootstrap --variant=minbase bookworm "$tmp/root" "${AMIBAKE_DEBIAN_MIRROR:-http://deb.debian.org/debian}" \
    >"$work/run/debootstrap.log" 2>&1 || { tail -5 "$work/run/debootstrap.log" >&2; fail "debootstrap"; }
  tar -C "$tmp/root" -cf "$minbase.tmp" . && mv "$minbase.tmp" "$minbase"
  rm -rf "$tmp"
  echo "   debootstrapped and cached in $((SECONDS - t0)) s: $minbase"
fi
fresh=$work/run/fresh
mkdir -p "$fresh" && tar -C "$fresh" -xf "$minbase"
cp "$deb" "$src/tests/package_use.sh" "$fresh/tmp/"
cp /etc/resolv.conf "$fresh/etc/resolv.conf"
mkdir -p "$fresh/fixtures"
cat >"$fresh/tmp/fresh.sh" <<INSIDE
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -q /tmp/$(basename "$deb") >/tmp/apt.log 2>&1 || { cat /tmp/apt.log >&2; exit 1; }
echo "   apt-get install set up \$(grep -c '^Setting up' /tmp/apt.log) packages; fusermount3: \$(command -v fusermount3 || echo absent)"
[ "\$(amibake --version | sed 's/ (.*//')" = "amibake $version" ] || { echo "FAIL: amibake --version" >&2; exit 1; }
bash /tmp/package_use.sh /fixtures /tmp/use
apt-get purge -y -q amibake >/dev/null
[ -z "\$(dpkg -L amibake 2>/dev/null || true)" ] || { echo "FAIL: dpkg -L lists files after purge" >&2; exit 1; }
for f in $(echo $file_list); do [ ! -e "\$f" ] || { echo "FAIL: \$f is left after purge" >&2; exit 1; }; done
INSIDE
t0=$SECONDS
unshare --mount --propagation private sh -c 'mount -t proc proc "$0/proc" && mount -t sysfs sys "$0/sys" &&
  mount --rbind /dev "$0/dev" && mount --bind "$1" "$0/fixtures" && exec chroot "$0" bash /tmp/fresh.sh' \
  "$fresh" "$fixtures" || fail "the package on a fresh Debian 12"
echo "   fresh Debian 12: installed, used and purged in $((SECONDS - t0)) s"
rm -rf "$fresh"
step "package test passed: $(wc -w <<<"$file_list") files installed and removed, here and on a fresh Debian 12"
