#!/bin/bash
# deploys.sh - keys, owners and signed versions: a second user cannot take a
# name, and forged deploys (bad signature, replayed or stale versions, a
# wrong previous version, malformed or garbage bundles) change nothing.
# timeout: 120
. "$(dirname "$0")/lib.sh"
export LC_ALL=C

FORGE=$BABL_BUILD/tests/forge
KEY=$XDG_CONFIG_HOME/babl/key

# The "N  VERSION-ID" lines of babl info NAME.
versions() { babl info "$1" | grep -oE '^ +[0-9]+  [0-9a-f]{64}' | tr -s ' '; }
owner() { babl info "$1" | sed -n 's/^owner: *//p'; }

start_meshd a || finish

# --- the first deploy creates the key
check_eq "no key before the first deploy" no "$([ -e "$KEY" ] && echo yes || echo no)"
_run babl deploy up -- tr a-z A-Z
check_eq "first deploy exits 0" 0 "$RC"
check_stderr_contains "created a new signing key"
check_stderr_contains "$KEY"
check_eq "the key file is mode 600" 600 "$(stat -c %a "$KEY" 2>/dev/null)"
keep
check "deploy prints the version" grep -qE '^deployed up version 1 \([0-9a-f]{64}\)$' "$T/view"
_run babl deploy up -- tr a-z .
check_eq "second deploy exits 0" 0 "$RC"
check_eq "the second deploy creates no key" "" "$(grep -i 'created' "$T/err")"
keep
check "it is version 2" grep -q '^deployed up version 2 ' "$T/view"
check_eq "up runs version 2" "..." "$(echo abc | babl up)"

before=$(versions up)
own=$(owner up)
check_eq "babl info up: two versions" 2 "$(grep -c . <<<"$before")"
check_eq "babl info up: an owner" 64 "${#own}"
check_eq "the owner is our key" "$own" "$(cat "$KEY.pub" 2>/dev/null | tr -d '\n')"

# --- a second user cannot deploy over it
_run env HOME="$T/other" XDG_CONFIG_HOME="$T/other/.config" babl deploy up -- cat
check_eq "another user's deploy of the same name: exit 77" 77 "$RC"
check_stderr_contains "another key"
_run env BABL_KEY="$T/k2/key" babl deploy up -- rev
check_eq "another BABL_KEY's deploy of the same name: exit 77" 77 "$RC"
check_eq "after both, the versions are unchanged" "$before" "$(versions up)"
check_eq "after both, the owner is unchanged" "$own" "$(owner up)"
check_eq "after both, up still runs version 2" "..." "$(echo abc | babl up)"
check "the other user can deploy a name of their own" \
	env HOME="$T/other" XDG_CONFIG_HOME="$T/other/.config" babl deploy theirs -- cat
check_eq "theirs has the other owner" "$(tr -d '\n' <"$T/other/.config/babl/key.pub")" "$(owner theirs)"

# --- forged deploys, sent with libbabl
_run "$FORGE" "$BABL_NODE" "$KEY" up legit
check_eq "forge legit (control): a correct version 3 is accepted" 0 "$RC"
keep
check "forge legit printed the deploy" grep -q 'deployed up version 3' "$T/view"
legit=$(versions up)
check_eq "three versions now" 3 "$(grep -c . <<<"$legit")"
check_eq "up runs version 3 (cat -u)" abc "$(echo abc | babl up)"

forged() { # MODE EXIT CODE-NAME
	_run "$FORGE" "$BABL_NODE" "$KEY" up "$1"
	keep
	check_eq "forge $1: exit $2" "$2" "$RC"
	check "forge $1: an ERROR frame $3" grep -q "^ERROR .*($3)" "$T/view"
	echo "    forge $1 said: $(head -c 300 "$T/view")"
	check_eq "forge $1: the versions are unchanged" "$legit" "$(versions up)"
	check_eq "forge $1: the owner is unchanged" "$own" "$(owner up)"
}
forged badsig 77 BABL_EPERM
forged foreign 77 BABL_EPERM
forged replay 77 BABL_ESTALE
forged stale 77 BABL_ESTALE
forged wrongprev 77 BABL_ESTALE
forged badbundle 65 BABL_EINPUT
forged garbage 65 BABL_EINPUT
check "the node logged the refusals" bash -c "[ \$(grep -c 'deploy refused' '$T/a.log') -ge 7 ]"
check_eq "up still runs version 3" abc "$(echo abc | babl up)"
check_eq "up@1 still runs version 1" ABC "$(echo abc | babl up@1)"
check_eq "babl ls: up at version 3" 3 "$(babl ls | awk '$1 == "up" { print $3 }')"

# --- the same after a restart
check "stop the node" stop_meshd a
start_meshd a || finish
check_eq "after a restart, exactly the legitimate versions" "$legit" "$(versions up)"
check_eq "after a restart, the same owner" "$own" "$(owner up)"
check_eq "after a restart, up runs version 3" abc "$(echo abc | babl up)"
check "babl verify" babl verify
_run babl deploy up -- tr a-z A-Z
check_eq "the owner can still deploy version 4" 0 "$RC"
keep
check "it is version 4" grep -q '^deployed up version 4 ' "$T/view"
check_eq "up runs version 4" ABC "$(echo abc | babl up)"

# New versions while a call of the service still streams: the call keeps
# its version, whatever the deploys do to the service's list of versions.
mkfifo "$T/hold"
babl up <"$T/hold" >"$T/held.out" 2>"$T/held.err" &
hpid=$!
exec 7>"$T/hold"
printf 'first ' >&7
check "the held call is running" wait_until 20 bash -c "babl status | grep -q '^calls: *1 running'"
for v in 5 6 7 8 9; do
	babl deploy up -- tr a-z . >/dev/null 2>&1
done
printf 'second\n' >&7
exec 7>&-
bounded_wait "$hpid" 20
check_eq "a call streaming across five deploys ends normally" 0 "$?"
check_eq "it ran the version it started with" "FIRST SECOND" "$(cat "$T/held.out")"
check_eq "new calls run the newest version" "..." "$(echo abc | babl up)"
check "the node still serves" babl status
finish
