#!/usr/bin/env bash
# Uses an installed amibake package as its user would (called by package_test.sh, on the
# host and inside a fresh Debian 12 chroot): the installed /usr/bin/awsemu serves the
# fixture catalog on loopback, `amibake doctor` must pass, and the installed example
# recipe is baked with the lazy fetch (FUSE through libfuse alone: the caller hides or
# lacks fusermount3), then the AMI is described.
#   package_use.sh FIXTURES_DIR WORK_DIR
set -euo pipefail
fixtures=$1 work=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }
[ "$(command -v amibake)" = /usr/bin/amibake ] || fail "amibake on PATH is '$(command -v amibake)'"
[ "$(command -v awsemu)" = /usr/bin/awsemu ] || fail "awsemu on PATH is '$(command -v awsemu)'"
rm -rf "$work" && mkdir -p "$work/tmp"

# awsemu's fixed test identity (emulator/README.md); nothing of this machine's AWS setup.
export AWS_ACCESS_KEY_ID=AKIAAWSEMU0EXAMPLE00
export AWS_SECRET_ACCESS_KEY=awsemu+Test+Secret+Key/NOT+A+REAL+SECRET0
export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AMIBAKE_POLL_MS=100
export AWS_CONFIG_FILE=$work/no-config AWS_SHARED_CREDENTIALS_FILE=$work/no-credentials
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_REGION AWS_ENDPOINT_URL || true
export XDG_STATE_HOME=$work/state AMIBAKE_WORK_DIR=$work/work TMPDIR=$work/tmp

step "the installed awsemu"
awsemu --port 0 --data "$work/emu" --catalog "$fixtures" --speed 0 >"$work/awsemu.out" 2>"$work/awsemu.log" &
emu_pid=$!
trap 'kill $emu_pid 2>/dev/null; wait $emu_pid 2>/dev/null || true' EXIT
url=
for _ in $(seq 300); do
  url=$(sed -n 's/^awsemu listening on \(http:[^ ]*\).*/\1/p' "$work/awsemu.out" | sed -n 1p)
  [ -n "$url" ] && break
  kill -0 "$emu_pid" 2>/dev/null || { cat "$work/awsemu.log" >&2; fail "awsemu exited"; }
  sleep 0.1
done
[ -n "$url" ] || fail "awsemu did not say where it listens; see $work/awsemu.log"
case $url in http://127.0.0.1:*) ;; *) fail "awsemu listens on $url, not loopback" ;; esac
export AWS_ENDPOINT_URL=$url
echo "   $url"

step "amibake doctor"
amibake doctor || fail "amibake doctor failed against the installed awsemu"

step "amibake build /usr/share/doc/amibake/examples/batch-worker.toml --fetch lazy"
t0=$SECONDS
ami=$(amibake build /usr/share/doc/amibake/examples/batch-worker.toml --fetch lazy 2>"$work/build.log") ||
  { tail -20 "$work/build.log" >&2; fail "the bake failed"; }
[[ $ami =~ ^ami-[0-9a-f]{17}$ ]] || fail "amibake build printed '$ami', not an AMI id"
echo "   baked $ami in $((SECONDS - t0)) s"
tail -2 "$work/build.log"
described=$(amibake base --ami "$ami" --json)
grep -q "\"$ami\"" <<<"$described" || fail "amibake base --ami $ami does not describe it"
