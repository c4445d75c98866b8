#!/bin/bash
# crash.sh - kill -9 of meshd at three moments (early in a stream, in the
# middle of a stream, during a burst of concurrent calls), then restart on
# the same data: the log verifies, deploys and acknowledged calls are all
# there, the interrupted calls are recorded as cut short, and new calls
# work.  Then a damaged log entry: the node refuses to start, --check fails.
# timeout: 240
. "$(dirname "$0")/lib.sh"
export LC_ALL=C

MIB=200
[ "${BABL_ASAN-}" = 1 ] && MIB=40

versions() { babl info "$1" | grep -oE '^ +[0-9]+  [0-9a-f]{64}' | tr -s ' '; }
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }
at_least() { [ "$(size_of "$1")" -ge "$2" ]; }

# The sizes of the calls to cat that were acknowledged (exit 0, right output).
: >"$T/acked.cat"
small_calls() { # FIRST-SIZE COUNT
	local s
	for ((s = $1; s < $1 + $2; s++)); do
		# pipefail (lib.sh): the status is babl's if it failed.
		n=$(head -c "$s" /dev/zero | babl cat | wc -c) && [ "$n" = "$s" ] &&
			echo "$s" >>"$T/acked.cat"
	done
}

# all_logged SERVICE FILE: every size in FILE is a call of SERVICE in its
# log with that many input bytes and exit 0.
all_logged() {
	local svc=$1 file=$2 s missing=""
	babl log "$svc" >"$T/log.$svc" || return 1
	while read -r s; do
		grep -qE "^[0-9]+ +[^ ]+ +[0-9a-f]{32} +[0-9]+ +$s +$s +exit 0\$" "$T/log.$svc" ||
			missing="$missing $s"
	done <"$file"
	[ -z "$missing" ] && return 0
	echo "acknowledged calls missing from babl log $svc: input sizes$missing"
	return 1
}

after_restart() { # ROUND
	local r=$1 s
	check "round $r: meshd --check verifies the log (while the node runs)" \
		meshd --check --data "$T/a"
	keep
	check "round $r: meshd --check says verified" grep -q verified "$T/view"
	check "round $r: babl verify" babl verify
	for s in cat up burst; do
		check_eq "round $r: $s has all its versions" "$(cat "$T/versions.$s")" "$(versions "$s")"
	done
	check "round $r: babl ls lists cat, up and burst" \
		bash -c "[ \$(babl ls | awk '\$1 == \"cat\" || \$1 == \"up\" || \$1 == \"burst\"' | wc -l) = 3 ]"
	check "round $r: every acknowledged call to cat is in babl log cat" all_logged cat "$T/acked.cat"
	check "round $r: the node said calls were cut short" \
		grep -q 'cut short' "$T/a.log"
	check "round $r: no service process survived the kill" wait_until 10 no_svc_procs
	check_eq "round $r: new calls work" hello "$(echo hello | babl cat)"
	check_eq "round $r: up runs version 2" "..." "$(echo abc | babl up)"
}

start_meshd a || finish
check "deploy cat" babl deploy cat -- cat
check "deploy up v1" babl deploy up -- tr a-z A-Z
check "deploy up v2" babl deploy up -- tr a-z .
# burst calls take a little while, so that the kill finds some in flight.
check "deploy burst" babl deploy burst -- sh -c 'cat; sleep 0.3'
for s in cat up burst; do versions "$s" >"$T/versions.$s"; done
check_eq "versions recorded" "1 1 2 1" \
	"$(wc -l <"$T/versions.cat") $(wc -l <"$T/versions.burst") $(wc -l <"$T/versions.up") 1"

head -c "${MIB}M" /dev/urandom >"$T/big"
mkfifo "$T/s.in"

# stream_kill ROUND THRESHOLD: a $MIB MiB stream through babl cat whose
# input stays open; kill -9 the node once THRESHOLD bytes came back.
stream_kill() {
	local r=$1 thr=$2 spid wpid fw rc
	rm -f "$T/s.out"
	babl cat <"$T/s.in" >"$T/s.out" 2>"$T/s.err" &
	spid=$!
	exec {fw}>"$T/s.in"
	head -c "${MIB}M" "$T/big" >&"$fw" 2>/dev/null &
	wpid=$!
	check "round $r: output arrives (>= $thr bytes)" wait_until 60 at_least "$T/s.out" "$thr"
	echo "    round $r: killing meshd with $(size_of "$T/s.out") bytes out"
	kill9_meshd a
	bounded_wait "$spid" 20
	rc=$?
	exec {fw}>&-
	bounded_wait "$wpid" 10
	check "round $r: babl ends (no hang) with a non-zero status (got $rc)" \
		test "$rc" -ne 0 -a "$rc" -ne 124
	check "round $r: babl says why on stderr" test -s "$T/s.err"
	echo "    round $r: babl said: $(head -c 200 "$T/s.err")"
	rm -f "$T/s.out"
	start_meshd a || finish
	after_restart "$r"
	keep_log=$(babl log cat)
	check_eq "round $r: the interrupted stream is recorded as cut short" "$r" \
		"$(grep -cE 'node restarted|cancelled' <<<"$keep_log")"
}

# --- round 1: early in the stream
small_calls 100 5
stream_kill 1 1

# --- round 2: mid-stream
small_calls 200 5
stream_kill 2 $((MIB * 1024 * 1024 / 2))

# --- round 3: a burst of 50 small concurrent calls
small_calls 300 5
mkdir -p "$T/b"
pids=()
for ((i = 0; i < 50; i++)); do
	(
		head -c $((1000 + i)) /dev/zero | babl burst >"$T/b/$i.out" 2>"$T/b/$i.err"
		echo "${PIPESTATUS[1]}" >"$T/b/$i.rc"
	) &
	pids+=($!)
done
done_count() {
	local f
	f=$(shopt -s nullglob; set -- "$T"/b/*.rc; echo $#)
	echo "$f"
}
some_done() { [ "$(done_count)" -ge 10 ]; }
wait_until 30 some_done
echo "    round 3: killing meshd with $(done_count) of 50 calls ended"
kill9_meshd a
hung=0
for p in "${pids[@]}"; do
	bounded_wait "$p" 20
	[ $? = 124 ] && hung=$((hung + 1))
done
check_eq "round 3: no babl of the burst hangs" 0 "$hung"
: >"$T/acked.burst"
failed=0
for ((i = 0; i < 50; i++)); do
	rc=$(cat "$T/b/$i.rc" 2>/dev/null)
	if [ "$rc" = 0 ] && [ "$(size_of "$T/b/$i.out")" = $((1000 + i)) ]; then
		echo $((1000 + i)) >>"$T/acked.burst"
	elif [ "$rc" = 0 ]; then
		echo "    burst call $i: exit 0 but $(size_of "$T/b/$i.out") bytes out"
		failed=$((failed + 1))
	elif [ ! -s "$T/b/$i.err" ]; then
		echo "    burst call $i: exit $rc and nothing on stderr"
		failed=$((failed + 1))
	fi
done
echo "    round 3: $(wc -l <"$T/acked.burst") burst calls acknowledged"
check_eq "round 3: every burst call either succeeded or failed with a message" 0 "$failed"
start_meshd a || finish
after_restart 3
check "round 3: every acknowledged burst call is in babl log burst" all_logged burst "$T/acked.burst"
babl log burst >"$T/log.burst"
check_eq "round 3: every burst call in the log ended with exit 0 or was cut short" "" \
	"$(grep -E '^[0-9]+ ' "$T/log.burst" | grep -vE 'exit 0$|node restarted|cancelled')"
check_eq "round 3: the log holds no more burst calls than were made" 1 \
	"$([ "$(grep -cE '^[0-9]+ ' "$T/log.burst")" -le 50 ] && echo 1)"
check_eq "after all rounds: a call to cat" hi "$(echo hi | babl cat)"

# --- a damaged log entry
check "stop the node cleanly" stop_meshd a
check "meshd --check verifies the stopped log" meshd --check --data "$T/a"
mdb_dump -s log "$T/a" >"$T/log.dump" 2>"$T/dump.err"
check "mdb_dump the log" test -s "$T/log.dump"
# The dump: a header up to HEADER=END, then a key line and a value line per
# entry (hex, each starting with a space), then DATA=END.
lastkey=$(grep '^ ' "$T/log.dump" | tail -n 2 | head -n 1 | tr -d ' ')
lastval=$(grep '^ ' "$T/log.dump" | tail -n 1 | tr -d ' ')
lastidx=$((16#$lastkey))
echo "    the last entry is $lastidx, $((${#lastval} / 2)) bytes"
check "the last entry has a payload" test "${#lastval}" -gt $((2 * 90))
pos=$((2 * 90)) # a hex digit inside the payload (the header is 88 bytes)
d=${lastval:pos:1}
nd=$(printf '%x' $(((16#$d) ^ 1)))
badval="${lastval:0:pos}$nd${lastval:pos+1}"
{
	sed '/^HEADER=END$/q' "$T/log.dump"
	echo " $lastkey"
	echo " $badval"
	echo "DATA=END"
} >"$T/log.bad"
check "mdb_load the damaged entry back" mdb_load -s log -f "$T/log.bad" "$T/a"
timeout 20 meshd --data "$T/a" --listen "ipc://$T/a.sock" >"$T/bad.out" 2>"$T/bad.err"
rc=$?
check "meshd refuses to start on a damaged log (exit non-zero, not killed by timeout)" \
	test "$rc" -ne 0 -a "$rc" -ne 124
cp "$T/bad.err" "$T/err"
check "meshd names the damaged entry $lastidx" grep -qE "entr.*\\b$lastidx\\b" "$T/bad.err"
echo "    meshd said: $(tail -n 1 "$T/bad.err")"
_run meshd --check --data "$T/a"
check_eq "meshd --check exits 1" 1 "$RC"
cat "$T/out" "$T/err" >"$T/view"
check "meshd --check names the entry $lastidx" grep -q "entry $lastidx" "$T/view"
echo "    meshd --check said: $(head -c 300 "$T/view")"
finish
