#!/usr/bin/env bash
# The bash completion against amibake's own help: every subcommand `amibake --help` lists
# completes after `amibake`, every flag `amibake SUB --help` lists (awsemu's for emulator)
# completes after `amibake SUB -`, and every option whose help names its values
# ("TEXT:{a,b}") completes exactly those. Runs the completion function in bash as TAB does.
#   completion_test.sh AMIBAKE COMPLETION_FILE
set -euo pipefail
amibake=$1 completion=$2
[ -s "$completion" ] || { echo "FAIL: $completion is missing or empty" >&2; exit 1; }
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# Prints what TAB offers for the words "$@" (the last one is the word being completed).
complete_words() {
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _amibake
           printf "%s\n" "${COMPREPLY[@]}"' _ "$completion" "$@" | sort
}
# Prints the option names of a help text ("-h,--help", "--method TEXT:{a,b}" -> -h --help --method).
help_options() {
  awk '/^Options:/{on=1; next} /^[A-Z][a-z]*:/{on=0} on && /^  -/{print $1}' | tr ',' '\n' | sort -u
}

commands=$("$amibake" --help | awk '/^Subcommands:/{on=1; next} on && /^  [a-z]/{print $1}')
[ -n "$commands" ] || fail "amibake --help lists no subcommands"
offered=$(complete_words amibake "")
[ "$offered" = "$(sort <<<"$commands")" ] ||
  fail "after 'amibake': offered [$(echo $offered)], help lists [$(echo $commands)]"

top=$("$amibake" --help | help_options)
offered=$(complete_words amibake -)
for o in $top; do grep -qx -- "$o" <<<"$offered" || fail "'amibake -' does not offer $o"; done

checked=0
for c in $commands; do
  help=$("$amibake" "$c" --help)
  offered=$(complete_words amibake "$c" -)
  for o in $(help_options <<<"$help"); do
    grep -qx -- "$o" <<<"$offered" || fail "'amibake $c -' does not offer $o (in amibake $c --help)"
    checked=$((checked + 1))
  done
  # The global flags work after the command too (amibake falls through to them).
  for o in --region --profile --endpoint-url --verbose; do
    grep -qx -- "$o" <<<"$offered" || fail "'amibake $c -' does not offer the global $o"
  done
  # Options that name their values: "  --method TEXT:{direct,chroot}".
  while read -r name set; do
    want=$(tr ',' '\n' <<<"$set" | sort)
    got=$(complete_words amibake "$c" "$name" "")
    [ "$got" = "$want" ] || fail "'amibake $c $name' offers [$(echo $got)], help names [$(echo $want)]"
    got=$(complete_words amibake "$c" "$name" = "")
    [ "$got" = "$want" ] || fail "'amibake $c $name=' offers [$(echo $got)], help names [$(echo $want)]"
  done < <(sed -n 's/^  \(-[-a-z]*\) [A-Z]*:{\([^}]*\)}.*/\1 \2/p' <<<"$help")
done
[ "$checked" -gt 50 ] || fail "only $checked flags found in the help texts; did the help format change?"

# The command is found past global options and their values; values are not commands.
[ "$(complete_words amibake --region eu-west-1 bu)" = build ] || fail "'amibake --region X bu' is not build"
[ "$(complete_words amibake --profile build b)" = "$(printf 'base\nbuild')" ] ||
  fail "'amibake --profile build b': the profile's value was taken for the command"
[ "$(complete_words amibake build --fetch = l)" = lazy ] || fail "'amibake build --fetch=l' is not lazy"
[ "$(complete_words amibake completion "")" = bash ] || fail "'amibake completion' does not offer bash"

[ "$failures" -eq 0 ] || { echo "$failures failures" >&2; exit 1; }
echo "completion: $(wc -w <<<"$commands") commands, $checked flags, all offered"
