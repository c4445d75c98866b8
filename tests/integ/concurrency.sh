#!/bin/bash
# concurrency.sh - 256 concurrent calls, a stalled client that must not
# stall the others, the node's memory, and --id: one run per key, the
# recorded output and status replayed, concurrent duplicates run once.
# timeout: 300
. "$(dirname "$0")/lib.sh"
export LC_ALL=C

N=256
OTHERS=100
STALL_MIB=50
WAIT=120
[ "${BABL_ASAN-}" = 1 ] && WAIT=300

count_rc() { # DIR: how many .rc files
	(shopt -s nullglob; set -- "$1"/*.rc; echo $#)
}
all_rc() { [ "$(count_rc "$1")" -ge "$2" ]; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$(meshd_pid a)/status"; }

start_meshd a || finish
check "deploy sha" babl deploy sha -- sha256sum
check "deploy wc" babl deploy wc -- wc -l
check "deploy cat" babl deploy cat -- cat
check "deploy stall" babl deploy stall -- cat
check "deploy rid" babl deploy rid -- sh -c 'echo $BABL_REQUEST_ID'
check "deploy three" babl deploy three -- sh -c 'echo three; echo err3 >&2; exit 3'

# --- 256 concurrent calls, each with its own input
mkdir -p "$T/c"
for ((i = 0; i < N; i++)); do
	(
		if ((i % 2)); then svc=sha; else svc=wc; fi
		seq "$i" 1 $((i + 1000)) | babl "$svc" >"$T/c/$i.out" 2>"$T/c/$i.err"
		echo "${PIPESTATUS[1]}" >"$T/c/$i.rc"
	) &
done
check "all $N concurrent calls end (within ${WAIT}s)" wait_until "$WAIT" all_rc "$T/c" "$N"
bad=0
for ((i = 0; i < N; i++)); do
	if ((i % 2)); then want=$(seq "$i" 1 $((i + 1000)) | sha256sum); else want=1001; fi
	rc=$(cat "$T/c/$i.rc" 2>/dev/null)
	got=$(cat "$T/c/$i.out" 2>/dev/null)
	if [ "$rc" != 0 ] || [ "$got" != "$want" ]; then
		bad=$((bad + 1))
		[ "$bad" -le 5 ] && echo "    call $i: exit ${rc:-none}, output '$got', stderr: $(head -c 200 "$T/c/$i.err")"
	fi
done
check_eq "all $N concurrent calls exit 0 with the right output" 0 "$bad"
# (the subshells have ended: their .rc files are written last)
check "no service process is left after the $N calls" wait_until 20 no_svc_procs
echo "    meshd VmHWM after $N calls: $(hwm_kib) KiB"

# --- a stalled client does not stall the others
head -c "${STALL_MIB}M" /dev/urandom >"$T/stall.in"
mkfifo "$T/stall.fifo"
exec {stallfd}<>"$T/stall.fifo" # a reader that never reads
babl stall <"$T/stall.in" >"$T/stall.fifo" 2>"$T/stall.err" &
stallpid=$!
check "the stalled call is running" wait_until 20 bash -c "babl status | grep -qE '^calls: +[1-9]'"
sleep 1
mkdir -p "$T/o"
for ((i = 0; i < OTHERS; i++)); do
	(
		echo "other $i" | babl cat >"$T/o/$i.out" 2>"$T/o/$i.err"
		echo $? >"$T/o/$i.rc"
	) &
done
check "$OTHERS other calls end while one client is stalled" wait_until "$WAIT" all_rc "$T/o" "$OTHERS"
bad=0
for ((i = 0; i < OTHERS; i++)); do
	[ "$(cat "$T/o/$i.rc" 2>/dev/null)" = 0 ] && [ "$(cat "$T/o/$i.out")" = "other $i" ] ||
		bad=$((bad + 1))
done
check_eq "the $OTHERS other calls all exit 0 with their output" 0 "$bad"
check "the stalled client is still there (stalled, not dropped)" kill -0 "$stallpid"
check_eq "a call while it is stalled" hi "$(echo hi | timeout 20 babl cat)"
hwm=$(hwm_kib)
echo "    meshd VmHWM with a stalled client: $hwm KiB"
check "meshd peak RSS stays below 512 MiB ($hwm KiB)" test "$hwm" -lt $((512 * 1024))
kill -KILL "$stallpid" 2>/dev/null
wait "$stallpid" 2>/dev/null
exec {stallfd}<&-
check "the stalled call is cancelled once its client is gone" \
	wait_until 20 bash -c "babl log stall | grep -q cancelled"
check "no service process is left after it" wait_until 20 no_svc_procs

# --- --id: run once, replay the outcome
r1=$(babl --id k1 rid </dev/null)
r2=$(babl --id k1 rid </dev/null)
r3=$(babl --id k2 rid </dev/null)
check_eq "--id k1 prints a request id" 32 "${#r1}"
check_eq "--id k1 again prints the same request id (replayed)" "$r1" "$r2"
check "--id k2 prints another request id" test "${#r3}" = 32 -a "$r3" != "$r1"
r4=$(babl rid </dev/null)
r5=$(babl rid </dev/null)
check "without --id every call runs anew" test "$r4" != "$r5" -a "$r4" != "$r1"
wait_until 5 bash -c "[ \$(babl log rid | grep -cE '^[0-9]+ ') -ge 4 ]"
babl log rid >"$T/log.rid"
check_eq "babl log rid shows one run for k1" 1 "$(grep -c "$r1" "$T/log.rid")"
check_eq "babl log rid shows one run for k2" 1 "$(grep -c "$r3" "$T/log.rid")"
check_eq "babl log rid shows 4 runs in all" 4 "$(grep -cE '^[0-9]+ ' "$T/log.rid")"

# Concurrent duplicates: 10 at once with one new key.
mkdir -p "$T/d"
for ((i = 0; i < 10; i++)); do
	(
		babl --id k3 rid </dev/null >"$T/d/$i.out" 2>"$T/d/$i.err"
		echo $? >"$T/d/$i.rc"
	) &
done
check "10 concurrent calls with --id k3 end" wait_until 60 all_rc "$T/d" 10
check_eq "they all exit 0" "0 0 0 0 0 0 0 0 0 0" "$(cat "$T"/d/*.rc | tr '\n' ' ' | sed 's/ $//')" ||
	for f in "$T"/d/*.err; do [ -s "$f" ] && echo "    $f: $(head -c 300 "$f")"; done
check_eq "they all print the same request id" 1 "$(cat "$T"/d/*.out | sort -u | wc -l)"
k3=$(head -n 1 "$T/d/0.out")
check_eq "that id is a request id" 32 "${#k3}"
wait_until 5 bash -c "[ \$(babl log rid | grep -cE '^[0-9]+ ') -ge 5 ]"
check_eq "babl log rid shows one run for k3" 1 "$(babl log rid | grep -c "${k3:-none}")"
check_eq "babl log rid shows 5 runs in all" 5 "$(babl log rid | grep -cE '^[0-9]+ ')"

# The recorded status and stderr are replayed too.
_run babl --id e1 three </dev/null
check_eq "--id e1 three: exit 3" 3 "$RC"
check_eq "--id e1 three: stdout" three "$(cat "$T/out")"
check_eq "--id e1 three: stderr" err3 "$(grep -v '^babl:' "$T/err")"
_run babl --id e1 three </dev/null
check_eq "--id e1 three again: exit 3 (replayed)" 3 "$RC"
check_eq "--id e1 three again: the same stdout" three "$(cat "$T/out")"
check_eq "--id e1 three again: the same stderr" err3 "$(grep -v '^babl:' "$T/err")"
wait_until 5 bash -c "[ \$(babl log three | grep -cE '^[0-9]+ ') -ge 1 ]"
check_eq "babl log three shows one run" 1 "$(babl log three | grep -cE '^[0-9]+ ')"

# --- many calls on kept connections (WIRE_CALL_AGAIN, as libbabl's load
# generator makes them): each connection's calls all get their own output.
load="$BABL_BUILD/tests/babl-load"
_run "$load" -n "$(node_url a)" -c 8 --rounds 50 -s 1000 --expect 1000 cat
check_eq "400 calls on 8 kept connections: all good" 0 "$RC" || sed 's/^/    /' "$T/err" | head -5
check_eq "... and counted as 400 good calls" 400 "$(sed -n 's/^calls=\([0-9]*\) errors=0 .*/\1/p' "$T/out")"
_run "$load" -n "$(node_url a)" -c 4 --rounds 5 --id-prefix kept rid
check_eq "20 --id calls on kept connections: all good" 0 "$RC"
_run "$load" -n "$(node_url a)" -c 4 --rounds 5 --id-prefix kept rid
check_eq "the same 20 again: replayed, all good" 0 "$RC"
wait_until 5 bash -c "[ \$(babl log rid | grep -cE '^[0-9]+ ') -ge 25 ]"
check_eq "babl log rid: 20 more runs, not 40" 25 "$(babl log rid | grep -cE '^[0-9]+ ')"
_run "$load" -n "$(node_url a)" -c 2 --rounds 3 three
check_eq "a call that exits 3 counts as an error for babl-load (exit 1)" 1 "$RC"
check_eq "... and babl-load says so (for the first 5)" 5 "$(grep -c 'exit status 3' "$T/err")"
check_eq "the node still serves" hi "$(echo hi | babl cat)"

# --- many calls as channels of one or two connections (wire.h).
_run "$load" -n "$(node_url a)" -c 16 --links 2 --rounds 25 -s 1000 --expect 1000 cat
check_eq "400 calls as 16 channels of 2 links: all good" 0 "$RC" || sed 's/^/    /' "$T/err" | head -5
check_eq "... and counted as 400 good calls" 400 "$(sed -n 's/^calls=\([0-9]*\) errors=0 .*/\1/p' "$T/out")"
_run "$load" -n "$(node_url a)" -c 8 --links 1 --rounds 5 --id-prefix chan rid
check_eq "40 --id calls as channels: all good" 0 "$RC" || sed 's/^/    /' "$T/err" | head -5
_run "$load" -n "$(node_url a)" -c 8 --links 1 --rounds 5 --id-prefix chan rid
check_eq "the same 40 again: replayed, all good" 0 "$RC"
wait_until 5 bash -c "[ \$(babl log rid | grep -cE '^[0-9]+ ') -ge 65 ]"
check_eq "babl log rid: 40 more runs, not 80" 65 "$(babl log rid | grep -cE '^[0-9]+ ')"
_run "$load" -n "$(node_url a)" -c 2 --links 1 --rounds 3 three
check_eq "channels: a call that exits 3 is an error, and the channel goes on" \
	"1 6" "$RC $(sed -n 's/^calls=0 errors=\([0-9]*\) .*/\1/p' "$T/out")"
_run "$load" -n "$(node_url a)" -c 2 --links 1 --rounds 3 nosuch
check_eq "channels: calls to an unknown service fail, each on a channel opened again" \
	"1 6" "$RC $(sed -n 's/^calls=0 errors=\([0-9]*\) .*/\1/p' "$T/out")"
cp "$T/err" "$T/nosuch.err"
check "... with the node's message" grep -q "node: no such service: nosuch" "$T/nosuch.err"

# And after a restart.
check "stop the node" stop_meshd a
start_meshd a || finish
check_eq "--id k1 after a restart: still the recorded run" "$r1" "$(babl --id k1 rid </dev/null)"
_run babl --id e1 three </dev/null
check_eq "--id e1 after a restart: exit 3 replayed" 3 "$RC" || sed 's/^/    stderr: /' "$T/err"
check_eq "babl log rid after a restart: still 65 runs" 65 "$(babl log rid | grep -cE '^[0-9]+ ')"
finish
