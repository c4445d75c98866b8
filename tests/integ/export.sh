#!/bin/bash
# export.sh - the log as a file: `babl log export` writes a self-verifying
# file; `meshd replay --log FILE --data DIR` rebuilds a node from it with the
# same state as the live node; a tampered file is rejected at its first bad
# entry, naming it, and nothing of it is written.
. "$(dirname "$0")/lib.sh"
export LC_ALL=C
root=$(cd "$(dirname "$0")/../.." && pwd)

start_meshd a || finish
check "deploy counter" babl deploy counter "$root/contrib/services/counter.lua"
check "deploy kv" babl deploy kv "$root/contrib/services/kv.lua"
check "deploy cat" babl deploy cat -- cat
for i in 1 2 3 4 5; do babl counter </dev/null >/dev/null; done
babl kv set alpha 1 </dev/null
babl kv set beta 2 </dev/null
babl kv del alpha </dev/null
head -c 3000000 /dev/urandom | babl cat >/dev/null

check "babl log export" bash -c "babl log export >'$T/mesh.log'"
check_eq "the file starts with its magic" "BABLLOG1" "$(head -c 8 "$T/mesh.log")"
check "babl log export --from 3" bash -c "babl log export --from 3 >'$T/tail.log'"
check_exit 64 babl log export --from

# A rebuilt node has the live node's state.
check "meshd replay rebuilds a node" meshd replay --log "$T/mesh.log" --data "$T/b"
check_eq "replay reports what it imported" 1 "$(grep -c 'imported' "$T/out")"
live_keys=$(babl kv keys </dev/null)
live_info=$(babl info counter)
stop_meshd a
check "the live node's log verifies" meshd --check --data "$T/a"
check "the rebuilt log verifies" meshd --check --data "$T/b"
start_meshd b || finish
check_eq "kv contents are the same" "$live_keys" "$(babl kv keys </dev/null)"
check_eq "beta survived" "2" "$(babl kv get beta </dev/null)"
check_eq "services and versions are the same" "$live_info" "$(babl info counter)"
check_eq "the counter goes on from the live value" "6" "$(babl counter </dev/null)"
check_eq "native services run on the rebuilt node" "hi" "$(echo hi | babl cat)"

# A file that starts past an empty log cannot rebuild a node.
check_exit 1 meshd replay --log "$T/tail.log" --data "$T/c"
check_stderr_contains "entry 3"

# Tampering: one flipped bit in the middle, a truncated file, a garbage file.
size=$(stat -c %s "$T/mesh.log")
cp "$T/mesh.log" "$T/bad.log"
off=$((size / 2))
byte=$(od -An -tu1 -j "$off" -N1 "$T/bad.log" | tr -d ' ')
printf "$(printf '\\%03o' $(((byte ^ 1) & 255)))" | dd of="$T/bad.log" bs=1 seek="$off" conv=notrunc 2>/dev/null
check_exit 1 meshd replay --log "$T/bad.log" --data "$T/d"
check_stderr_contains "the file is rejected"
cp "$T/err" "$T/rejected"
check "the rejection names an entry" grep -qE 'entry [0-9]+ (fails its checksum|is cut short|is out of order|does not chain)' "$T/rejected"
check_eq "nothing of a rejected file is written" "0" "$(meshd --check --data "$T/d" | grep -oE '[0-9]+ entries' | grep -oE '[0-9]+')"
head -c $((size - 7)) "$T/mesh.log" >"$T/short.log"
check_exit 1 meshd replay --log "$T/short.log" --data "$T/e"
check_stderr_contains "cut short"
head -c 100000 /dev/urandom >"$T/garbage.log"
check_exit 1 meshd replay --log "$T/garbage.log" --data "$T/f"
check_stderr_contains "not an exported babl log"
check_exit 64 meshd replay --data "$T/g"

# A second OUTCOME for a call (a mesh whose leader changed can log one)
# changes nothing: the first decides, when a rebuild meets both and when it
# meets the second alone, the first applied before.  The last OUTCOME in
# mesh.log is babl cat's; the second says a restart cut it short.
call=$("$BABL_BUILD/tests/logedit" dup-outcome "$T/mesh.log" "$T/dup.log" "$T/dup-tail.log")
check "logedit adds a second OUTCOME for a call" test -n "$call"
check "meshd replay of the edited log" meshd replay --log "$T/dup.log" --data "$T/h"
check "meshd replay of the log" meshd replay --log "$T/mesh.log" --data "$T/i"
check "then of the second OUTCOME alone" meshd replay --log "$T/dup-tail.log" --data "$T/i"
for d in h i; do
	start_meshd "$d" || finish
	babl log cat >"$T/calls.$d" 2>&1
	check "rebuilt $d: babl cat's call ended as it first did (exit 0)" \
		grep -q "exit 0" "$T/calls.$d"
	check "rebuilt $d: no call of cat is recorded as cut short" \
		bash -c "! grep -q 'restarted\\|signal' '$T/calls.$d'"
	echo "    $d: $(tail -n 1 "$T/calls.$d")"
	stop_meshd "$d"
done
finish
