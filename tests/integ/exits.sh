#!/bin/bash
# exits.sh - what babl exits with and says: the service's status, 128+N for
# signals, stderr passed through, sysexits codes for babl's own failures,
# the ls/info/log/status views, version pinning, limits, Ctrl-C and a
# program whose hash changed.
# timeout: 180
. "$(dirname "$0")/lib.sh"
export LC_ALL=C

# --- usage errors and no node, before any node runs
check_exit 64 babl
check_exit 64 babl --no-such-option cat
check_exit 64 babl -t notanumber cat
check_exit 64 babl info
check_exit 64 babl log a b
check_exit 64 babl ls extra
check_exit 64 babl call
check_exit 64 babl deploy onlyname
check_exit 69 babl -n "ipc://$T/nobody.sock" cat </dev/null
check_stderr_contains "ipc://$T/nobody.sock"
check_exit 69 babl -n "ipc://$T/nobody1.sock,ipc://$T/nobody2.sock" cat </dev/null
check_stderr_contains "ipc://$T/nobody1.sock"
check_stderr_contains "ipc://$T/nobody2.sock"

start_meshd a || finish

check "deploy cat" babl deploy cat -- cat
check "deploy grep" babl deploy grep -- grep
check "deploy sh" babl deploy sh -- sh -c 'exit 7'
check "deploy hostile" babl deploy hostile -- "$HOSTILE"
check "deploy err" babl deploy err -- sh -c 'echo to-stdout; echo to-stderr >&2; exit 3'

# --- the service's own status
_run babl grep zzz <<<"abc"
check_eq "grep with no match exits 1" 1 "$RC"
check_exit 7 babl sh </dev/null
check_exit 139 babl hostile kill 11 </dev/null
check_exit 143 babl hostile kill 15 </dev/null
check_exit 137 babl hostile kill 9 </dev/null
_run babl err </dev/null
check_eq "err exits 3" 3 "$RC"
check_eq "the service's stdout goes to stdout only" to-stdout "$(cat "$T/out")"
check_eq "the service's stderr goes to stderr" to-stderr "$(grep -v '^babl:' "$T/err")"

# --- babl's own failures
check_exit 69 babl no-such-service </dev/null
check_stderr_contains no-such-service
check_exit 69 babl cat@7 </dev/null
check_stderr_contains "cat"

# --- ls, info, log, status
check "babl ls" babl ls
keep
for s in cat grep sh hostile err; do
	check_eq "babl ls lists $s" "$s" "$(awk -v s="$s" '$1 == s { print $1 }' "$T/view")"
done
printf 'abc\n' | babl cat >/dev/null
# (Each check on babl log's contents waits a little for the record: that it
# is there at once is checked on its own below.)
check "babl log cat shows the call with 4 input bytes and exit 0" \
	wait_until 5 bash -c "babl log cat | grep -qE '^[0-9]+ .* 4 +4 +exit 0\$'"
check "babl log cat" babl log cat
check "babl log grep: the record appears" wait_until 5 bash -c "babl log grep | grep -q 'exit 1$'"
check "babl log grep" babl log grep
keep
check "babl log grep shows the exit 1" grep -q 'exit 1$' "$T/view"
check "babl log hostile: the record appears" wait_until 5 bash -c "babl log hostile | grep -q 'signal 11'"
check "babl log hostile" babl log hostile
keep
check "babl log hostile shows signal 11" grep -q 'signal 11' "$T/view"
# A call that has ended is in babl log at once (read your writes).
check "deploy seen" babl deploy seen -- cat
missed=0
for ((i = 1; i <= 10; i++)); do
	echo "$i" | babl seen >/dev/null
	n=$(babl log seen | grep -cE '^[0-9]+ ')
	[ "$n" = "$i" ] || missed=$((missed + 1))
done
check_eq "each of 10 ended calls is in babl log at once" 0 "$missed"
check "babl status" babl status
keep
for w in node: data: log: services: confinement: uptime:; do
	check "babl status has '$w'" grep -q "^$w" "$T/view"
done
check "babl status names the data dir" grep -qF "$T/a" "$T/view"

# --- versions: NAME@1, NAME@<id prefix>, NAME
_run babl deploy ver -- tr a-z A-Z
v1=$(grep -oE '[0-9a-f]{64}' "$T/out")
check_eq "deploy ver version 1 printed an id" 64 "${#v1}"
_run babl deploy ver -- tr a-z .
v2=$(grep -oE '[0-9a-f]{64}' "$T/out")
check_eq "deploy ver version 2 printed another id" 1 "$([ ${#v2} = 64 ] && [ "$v1" != "$v2" ] && echo 1)"
check "babl info ver" babl info ver
keep
check_eq "babl info ver shows two versions" 2 "$(grep -cE '^ +[0-9]+  [0-9a-f]{64}  ' "$T/view")"
check "babl info shows version 1's id" grep -qE "^ +1  $v1  " "$T/view"
check "babl info shows version 2's id" grep -qE "^ +2  $v2  " "$T/view"
check "babl info shows the owner" grep -qE '^owner: +[0-9a-f]{64}$' "$T/view"
check "babl info shows the service id" grep -qE '^service id: +[0-9a-f]{64}$' "$T/view"
check_eq "babl ver runs version 2" "...." "$(echo abcd | babl ver)"
check_eq "babl ver@1 runs version 1" "ABCD" "$(echo abcd | babl ver@1)"
check_eq "babl ver@2 runs version 2" "...." "$(echo abcd | babl ver@2)"
check_eq "babl ver@<12 hex of v1> runs version 1" "ABCD" "$(echo abcd | babl "ver@${v1:0:12}")"
check_eq "babl <v1 id> runs version 1" "ABCD" "$(echo abcd | babl "$v1")"
check_exit 69 babl ver@3 </dev/null
check "babl log ver: the records appear" wait_until 5 bash -c "[ \$(babl log ver | grep -cE '^[0-9]+ ') -ge 4 ]"
check "babl log ver" babl log ver
keep
check "babl log ver records version 1 and 2 calls" \
	bash -c "grep -qE ' 1 +5 +5 +exit 0' '$T/view' && grep -qE ' 2 +5 +5 +exit 0' '$T/view'"

# --- a service named like a verb
check "deploy ls" babl deploy ls -- echo i-am-ls
check_eq "babl call ls calls the service" i-am-ls "$(babl call ls </dev/null)"
check "babl ls still lists" babl ls
keep
check "babl ls lists the service ls" grep -q '^ls ' "$T/view"

# --- the wall-clock limit
check "deploy nap --timeout 2" babl deploy --timeout 2 nap -- sleep 30
timeout 30 babl nap </dev/null >"$T/out" 2>"$T/err"
RC=$?
check_eq "nap is killed at its 2 s limit: exit 137" 137 "$RC"
check_stderr_contains "limit"
check "babl log nap says timeout" wait_until 5 bash -c "babl log nap | grep -q timeout"
check_eq "the node still serves after a timeout" ok "$(echo ok | babl cat)"

# --- -t SECS on the client
check "deploy slow" babl deploy slow -- sleep 30
timeout 30 babl -t 1 slow </dev/null >"$T/out" 2>"$T/err"
RC=$?
check_eq "babl -t 1 slow exits 75" 75 "$RC"
check_stderr_contains "timed out"
# The node holds the call to the client's deadline too: whichever ends it
# first, the client going away or the node's own limit, is what the log says.
check "the timed-out call is recorded as cancelled or timed out" \
	wait_until 10 bash -c "babl log slow | grep -Eq 'cancelled|timeout'"
check "no service process is left after -t" wait_until 10 no_svc_procs

# --- the input limit
check "deploy small --max-input 1" babl deploy --max-input 1 small -- cat
head -c 2M /dev/zero >"$T/2m"
timeout 30 babl small <"$T/2m" >/dev/null 2>"$T/err"
RC=$?
check_eq "2 MiB into a 1 MiB service: exit 65" 65 "$RC"
check_stderr_contains "limit"
check_eq "1 KiB into it is fine" 1024 "$(head -c 1024 /dev/zero | babl small | wc -c)"

# --- Ctrl-C cancels the call on the node
mkfifo "$T/slow.in"
babl slow <"$T/slow.in" >"$T/int.out" 2>"$T/int.err" &
bpid=$!
exec {fw}>"$T/slow.in"
check "the slow call is running" wait_until 10 bash -c "babl status | grep -q '^calls: *1 running'"
check "its service process is there" wait_until 10 has_svc_procs
kill -INT "$bpid"
bounded_wait "$bpid" 15
check_eq "babl exits 130 after SIGINT" 130 "$?"
exec {fw}>&-
check "babl log slow shows the call cancelled" \
	wait_until 10 bash -c "babl log slow | tail -1 | grep -q cancelled"
check "no service process is left after Ctrl-C" wait_until 10 no_svc_procs
[ -z "$(svc_procs)" ] || echo "    left: $(svc_procs | tr '\n' ' ')"

# --- a program whose content changed after deploy
cp /bin/cat "$T/mycat"
chmod 755 "$T/mycat" "$T"
check "deploy mycat" babl deploy mycat -- "$T/mycat"
check_eq "mycat runs before the change" hi "$(echo hi | babl mycat)"
printf x >>"$T/mycat"
_run babl mycat <<<"hi"
check_eq "a changed program is refused: exit 69" 69 "$RC"
check_eq "nothing on stdout from a refused program" "" "$(cat "$T/out")"
check_stderr_contains "hash"
check "babl log mycat records the refusal" wait_until 5 bash -c "babl log mycat | grep -q 'program mismatch'"
check_eq "the node still serves after that" ok "$(echo ok | babl cat)"

check "babl verify" babl verify
finish
