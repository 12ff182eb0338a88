#!/usr/bin/env bash
# `cmake --install BUILD --prefix P` (issue 14): exactly amibake and awsemu in P/bin, the
# docs, the examples, the generated bash completion and manual page under P/share; the
# installed amibake runs from there and its completion and manual page match its --help.
#   install_tree_test.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
build=$1 src=$2 prefix=$3/prefix
fail() { echo "FAIL: $*" >&2; exit 1; }
rm -rf "$prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
bins=$(ls "$prefix/bin" | tr '\n' ' ')
[ "$bins" = "amibake awsemu " ] || fail "$prefix/bin holds [$bins], not exactly amibake and awsemu"
doc=$prefix/share/doc/amibake
[ -s "$doc/README.md" ] || fail "no README.md in $doc"
[ -s "$doc/emulator/README.md" ] || fail "no emulator/README.md in $doc"
for f in "$src"/docs/*.md; do
  cmp -s "$f" "$doc/docs/$(basename "$f")" || fail "docs/$(basename "$f") is not installed as is"
done
for f in "$src"/examples/*; do
  cmp -s "$f" "$doc/examples/$(basename "$f")" || fail "examples/$(basename "$f") is not installed as is"
done
# The README's relative links to docs/ and emulator/ resolve in the installed copy.
for link in $(grep -o '](\(docs\|emulator\)/[^)#]*' "$doc/README.md" | cut -c3- | sort -u); do
  [ -e "$doc/$link" ] || fail "the installed README links $link, which is not installed"
done
completion=$prefix/share/bash-completion/completions/amibake
[ -s "$completion" ] || fail "no bash completion at $completion"
# Nothing else: no test binaries, benchmarks or libraries.
extra=$(cd "$prefix" && find . -type f | grep -v -e '^./bin/' -e '^./share/doc/amibake/' \
  -e '^./share/bash-completion/completions/amibake$' -e '^./share/man/man1/amibake.1.gz$' || true)
[ -z "$extra" ] || fail "installed beyond the tool: $extra"
"$prefix/bin/amibake" --version | grep -qxE "amibake [0-9.]+( \(datavol: [a-z0-9_, ]+\))?" ||
  fail "the installed amibake --version"
"$prefix/bin/awsemu" --help | grep -q -- "--catalog" || fail "the installed awsemu --help"
"$src/src/cli/completion_test.sh" "$prefix/bin/amibake" "$completion"
# The manual page: clean roff, and every command of --help in it.
man_page=$prefix/share/man/man1/amibake.1.gz
[ -s "$man_page" ] || fail "no manual page at $man_page"
warnings=$(zcat "$man_page" | groff -man -ww -z 2>&1) || fail "groff cannot read amibake.1"
[ -z "$warnings" ] || fail "groff warns about amibake.1: $warnings"
for c in $("$prefix/bin/amibake" --help | awk '/^Subcommands:/{on=1; next} on && /^  [a-z]/{print $1}'); do
  zcat "$man_page" | grep -qFx ".SS ${c//-/\\-}" || fail "amibake.1 has no section for the command $c"
done
echo "install tree: $(cd "$prefix" && find . -type f | wc -l) files under $prefix"
