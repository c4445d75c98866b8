#!/bin/bash
# determinism.sh - the same calls give the same bytes in every process.
# build/tests/lua-replay starts the Lua worker (meshd-lua) directly and runs
# a fixed sequence of calls (fixed time, seed, request ids and input) on
# scripts that iterate over string-keyed and mixed tables, sort records
# with ties, print tables, use math.random, os.time/os.date and
# collectgarbage("count"); two separately started workers (other ASLR
# layout, other start time, other TZ) must print byte-identical records,
# and another seed or time must change what depends on them.  Then the same
# through meshd: two separate meshd processes, the same deployed scripts
# and calls, identical outputs (and identical to the standalone worker's).
# Fixtures: tests/lua/det-*.lua.
# timeout: 120
. "$(dirname "$0")/lib.sh"
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FIX=$ROOT/tests/lua
REPLAY=$BABL_BUILD/tests/lua-replay
WORKER=$BABL_BUILD/meshd-lua
SCRIPTS="det-pairs det-sort det-tostring det-random det-gc"
# Scripts whose output does not depend on the request's time, seed or id.
PURE="det-pairs det-sort det-tostring det-gc"

check "lua-replay is built" test -x "$REPLAY"
check "meshd-lua is built" test -x "$WORKER"
[ -x "$REPLAY" ] && [ -x "$WORKER" ] || finish
echo "    ASLR: randomize_va_space=$(cat /proc/sys/kernel/randomize_va_space 2>/dev/null)"

# Input for the calls: lines of words with many ties in their counts.
for ((i = 1; i <= 400; i++)); do
	echo "w$((i % 13)) w$((i % 7)) the a b w$((i % 3)) x$((i * 7919 % 97))"
done >"$T/words"

# replay OUT SCRIPT [OPTION...]: run lua-replay, records in OUT.
replay() {
	local out=$1 s=$2
	shift 2
	timeout -k 5 60 "$REPLAY" -n 3 "$@" "$WORKER" "$FIX/$s.lua" "$T/words" >"$out" 2>"$out.err"
}

# records_ok FILE: the worker ended cleanly and every call exited 0.
records_ok() {
	grep -qx 'EXIT 0' "$1" && [ "$(grep -c '^DONE .* status=0 ' "$1")" = 3 ]
}

# same NAME A B: the two record files are byte-identical.
same() {
	cat "$2" >"$T/same.a"
	cat "$3" >"$T/same.b"
	if cmp -s "$T/same.a" "$T/same.b"; then
		_ok "$1"
	else
		_bad "$1" "$(diff "$T/same.a" "$T/same.b" | head -n 12 | cut -c 1-200)"
	fi
}

mkdir -p "$T/r1" "$T/r2" "$T/r3"
for s in $SCRIPTS; do
	replay "$T/r1/$s" "$s" -s 1 -t 1700000000000 -e TZ=UTC
	check_eq "$s: first worker ran (status)" 0 "$?"
	check "$s: first worker: every call exited 0" records_ok "$T/r1/$s"
done
sleep 1 # another start time
for s in $SCRIPTS; do
	# another process, started later, with another environment and cwd
	(cd "$T/r2" && replay "$T/r2/$s" "$s" -s 1 -t 1700000000000 -e TZ=Asia/Kolkata \
		-e LANG=de_DE.UTF-8 -e "PAD=$(head -c $((RANDOM % 4096)) /dev/zero | tr '\0' x)")
	check_eq "$s: second worker ran (status)" 0 "$?"
	same "$s: two workers print byte-identical records (output, writes, instructions, memory)" \
		"$T/r1/$s" "$T/r2/$s"
	same "$s: ... and the same output bytes, usage aside" \
		<(grep -v '^USAGE' "$T/r1/$s") <(grep -v '^USAGE' "$T/r2/$s")
done

# The records are what they claim: the order rules of lsb.h.
check "det-pairs: mixed keys in the documented order (numbers, strings, booleans)" \
	grep -qF 'integer:-1=neg float:-0.5=h integer:1=10 float:2.5=f integer:3=30 integer:4=40 integer:7=seven integer:100000=1 float:1e+300=big float:inf=inf string:10=s10 string:x=x boolean:false=F boolean:true=T' "$T/r1/det-pairs"
check "det-tostring: tables print numbered, not as addresses" \
	grep -qF 'OUT 101 1 table: 1\x09table: 2\x09table: 3\x09table: 1\x0a' "$T/r1/det-tostring"
check "det-tostring: %p refused" grep -qF '%p is not allowed' "$T/r1/det-tostring"
check "det-sort: ties keep their order (stable sort)" \
	grep -qF 'OUT 101 1 0:fay5 0:ann10 0:fay15 0:ann20 0:fay25 ' "$T/r1/det-sort"
check "det-random: the clock is the entry's time" \
	grep -qF 'OUT 101 1 time 1700000000 1700000000.000 1700000000000\x0a' "$T/r1/det-random"
check "det-random: dates are in UTC whatever TZ says" \
	grep -qF 'OUT 101 1 date 2023-11-14 22:13:20 ' "$T/r2/det-random"

# Another seed changes the random numbers, not the rest; another time
# changes the clock.
replay "$T/r3/seed" det-random -s 2 -t 1700000000000
r1=$(grep '^OUT 101 1 random ' "$T/r1/det-random")
r3=$(grep '^OUT 101 1 random ' "$T/r3/seed")
check "another seed: ran" test -n "$r3"
check "another seed gives other random numbers" test "$r1" != "$r3"
check_eq "... and the same clock" "$(grep '^OUT 101 1 time ' "$T/r1/det-random")" \
	"$(grep '^OUT 101 1 time ' "$T/r3/seed")"
check_eq "seed 2's first call is seed 1's second call" \
	"$(grep '^OUT 102 1 random ' "$T/r1/det-random" | cut -d' ' -f4-)" \
	"$(grep '^OUT 101 1 random ' "$T/r3/seed" | cut -d' ' -f4-)"
check "the calls of one run (seeds 1, 2, 3) differ" \
	test "$(grep '^OUT 10[123] 1 random ' "$T/r1/det-random" | cut -d' ' -f4- | sort -u | wc -l)" = 3
check "math.randomseed(42) gives the same numbers in every call" \
	test "$(grep '^OUT 10[123] 1 seeded42 ' "$T/r1/det-random" | cut -d' ' -f4- | sort -u | wc -l)" = 1
replay "$T/r3/time" det-random -s 1 -t 1800000000123
check "another time changes os.time" grep -qF 'OUT 101 1 time 1800000000 1800000000.123 1800000000123\x0a' "$T/r3/time"
check_eq "... and not the random numbers" "$r1" "$(grep '^OUT 101 1 random ' "$T/r3/time")"

# How the input is cut into frames does not change what lines() gives.
replay "$T/r3/chunks" det-sort -s 1 -t 1700000000000 -c 7
same "det-sort: input in 7-byte frames gives the same records (instruction counts aside)" \
	<(grep -v '^USAGE' "$T/r1/det-sort") <(grep -v '^USAGE' "$T/r3/chunks")

# ---------------------------------------------------------------- meshd
# Two separate meshd processes, the same key (same HOME), the same deploys
# and calls.
start_meshd a || finish
start_meshd b || finish
A=$(node_url a)
B=$(node_url b)
for n in "$A" "$B"; do
	for s in $PURE; do
		check "deploy $s on ${n##*/}" babl -n "$n" deploy "$s" "$FIX/$s.lua"
	done
	check "deploy counter on ${n##*/}" babl -n "$n" deploy counter "$ROOT/contrib/services/counter.lua"
done

# mcall NODE_URL OUT SERVICE ARGS...: stdout, stderr and status in OUT.*
mcall() {
	local n=$1 out=$2
	shift 2
	timeout -k 5 60 babl -n "$n" "$@" <"$T/words" >"$out.out" 2>"$out.err"
	echo "$?" >"$out.rc"
}

mkdir -p "$T/ma" "$T/mb"
for s in $PURE; do
	for i in 1 2; do
		mcall "$A" "$T/ma/$s.$i" "$s" one two
		mcall "$B" "$T/mb/$s.$i" "$s" one two
	done
	check_eq "$s on a: exit 0" 0 "$(cat "$T/ma/$s.1.rc")"
	for i in 1 2; do
		same "$s, call $i: stdout identical on two meshd processes" "$T/ma/$s.$i.out" "$T/mb/$s.$i.out"
		same "$s, call $i: stderr identical" "$T/ma/$s.$i.err" "$T/mb/$s.$i.err"
		same "$s, call $i: status identical" "$T/ma/$s.$i.rc" "$T/mb/$s.$i.rc"
	done
	same "$s: a second call on the same node prints the same" "$T/ma/$s.1.out" "$T/ma/$s.2.out"
done

# decode FILE CALL STREAM: the bytes of the OUT records of one call's stream.
decode() {
	local line
	grep "^OUT $2 $3 " "$1" | while IFS= read -r line; do
		printf '%b' "${line#OUT $2 $3 }"
	done
}
# (the same service name and arguments: the request is part of the state)
for s in $PURE; do
	replay "$T/r3/$s" "$s" -S "$s" -a one -a two
	decode "$T/r3/$s" 101 1 >"$T/r3/$s.bytes"
	same "$s: meshd prints the bytes the standalone worker printed" "$T/r3/$s.bytes" "$T/ma/$s.1.out"
done

# kv state evolves the same on both.
for i in 1 2 3; do
	mcall "$A" "$T/ma/counter.$i" counter
	mcall "$B" "$T/mb/counter.$i" counter
done
check_eq "counter on a: 1 2 3" "1 2 3" "$(cat "$T"/ma/counter.?.out | tr '\n' ' ' | sed 's/ $//')"
check_eq "counter on b: 1 2 3" "1 2 3" "$(cat "$T"/mb/counter.?.out | tr '\n' ' ' | sed 's/ $//')"

# The random script runs on both (the seeds are the leaders' own).
check "deploy det-random on a" babl -n "$A" deploy det-random "$FIX/det-random.lua"
mcall "$A" "$T/ma/rand.1" det-random
mcall "$A" "$T/ma/rand.2" det-random
check_eq "det-random through meshd: exit 0" 0 "$(cat "$T/ma/rand.1.rc")"
check "two calls get other seeds from their entries" \
	test "$(grep '^random ' "$T/ma/rand.1.out")" != "$(grep '^random ' "$T/ma/rand.2.out")"
now=$(date +%s)
t=$(sed -n 's/^time \([0-9]*\) .*/\1/p' "$T/ma/rand.1.out")
check "det-random through meshd: os.time ($t) is the entry's time, close to now ($now)" \
	test "${t:-0}" -ge $((now - 300)) -a "${t:-0}" -le $((now + 300))
finish
