#!/bin/bash
# diskfull.sh - a node whose disk fills up: its data directory is a small
# tmpfs (in a private mount namespace, so root only).  A stream that runs
# into the full disk ends at once with the cause on stderr (it used to hang
# until the call's time limit); the node stays up, says why in status, and
# refuses new calls and deploys.  After space is freed and the node is
# restarted, every acknowledged call is there and a call that was told it
# failed has not taken effect (counter.lua: its count is the acknowledged
# calls' plus one; the journal record of the failed commit used to replay
# and count once more).
#
# Then a mesh of three whose leader's disk fills up: the leader exits,
# saying why; another node leads and the calls go on (a stream the failure
# cuts off exits 69, saying so); the acknowledged counter values are 1..K,
# each once; restarted with room, the node catches up with the same log.
# Then a follower's disk fills up: it exits, saying why, and the calls
# through the others go on without an error.
# timeout: 420
if [ -z "${BABL_DISKFULL_NS-}" ]; then
	if [ "$(id -u)" = 0 ] && unshare -m --propagation private true 2>/dev/null; then
		BABL_DISKFULL_NS=1 exec unshare -m --propagation private "$0" "$@"
	fi
	echo "diskfull: skipped: it needs root and a private mount namespace for a small tmpfs"
	echo "diskfull: 0 passed, 0 failed"
	exit 0
fi
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)

D=$T/full           # the node's data directory, on the tmpfs
mkdir -p "$D"
mount -t tmpfs -o size=40m babl-diskfull "$D" || {
	echo "diskfull: cannot mount a tmpfs on $D"
	exit 1
}

# The end, wherever it comes: the nodes stop before their tmpfs go.
MOUNTS=("$D")
end() {
	stop_meshd full
	[ -n "${CLUSTER-}" ] && "$CLUSTER" stop >/dev/null 2>&1
	umount "${MOUNTS[@]}"
	finish
}

# fill [DIR] KIB: a file that leaves KIB KiB free on DIR's file system (the
# node's tmpfs by default).
fill() {
	local dir=$D avail
	[ $# -gt 1 ] && { dir=$1; shift; }
	avail=$(df --output=avail -B1 "$dir" | tail -1)
	head -c $((avail - $1 * 1024)) /dev/zero >"$dir/filler"
}

start_meshd full || end
check "deploy cat" babl deploy cat -- cat
check "deploy counter" babl deploy counter "$root/contrib/services/counter.lua"

# --- a stream into a full disk
fill 8192
head -c $((24 << 20)) /dev/urandom >"$T/in"
# (timeout: a call that hangs fails here rather than at the suite's limit)
check_exit 70 timeout -k 5 60 babl cat <"$T/in"
check_stderr_contains "the node cannot write its log: its disk is full"
check "the node is still up" babl -t 5 status
keep
check "status says the log cannot be written, the disk being full" \
	grep -q "state: *FAILED: the log cannot be written (its disk is full)" "$T/view"
check_exit 75 bash -c 'echo | babl counter'
check_stderr_contains "its disk is full (it takes no calls until it is restarted)"
check_exit 75 babl deploy cat2 -- cat
check "the node log names the full file system" grep -q "its file system is full" "$T/full.log"

rm -f "$D/filler"
check_exit 1 stop_meshd full
check "a stop after the log failed is not clean: it says so and exits 1" \
	grep -q "stopped; the log could not be written" "$T/full.log"
start_meshd full || end
check_eq "after a restart with room again, calls work" hello "$(echo hello | babl cat)"
check "babl verify" babl verify
check_eq "counter starts at 1" 1 "$(echo | babl counter)"

# --- small calls (their commits go through the journal) into a full disk
fill 300
acked=1 failed=0
for ((i = 0; i < 3000; i++)); do
	if out=$(echo | timeout -k 5 60 babl counter 2>"$T/counter.err"); then
		[ "$out" = $((acked + 1)) ] || break
		acked=$out
	else
		failed=1
		break
	fi
done
check_eq "counter calls ran until the disk was full, each counting one more" 1 "$failed"
check "the failing one said the disk is full" grep -q "its disk is full" "$T/counter.err"
rm -f "$D/filler"
stop_meshd full
start_meshd full || end
check_eq "after a restart, the count is the acknowledged calls' plus one" \
	$((acked + 1)) "$(echo | babl counter)"
check "meshd --check verifies the log" meshd --check --data "$D"
stop_meshd full

# --- a mesh whose leader's disk fills up
W=$((10 * _slow))
mesh_env 6
for i in 1 2 3; do
	mkdir -p "$T/n$i"
	mount -t tmpfs -o size=96m "babl-diskfull-n$i" "$T/n$i" || end
	MOUNTS+=("$T/n$i")
done
_run "$CLUSTER" start 3
ALL=$(cat "$T/out")
IFS=, read -r -a N <<<"$ALL"
N=("" "${N[@]}") # N[1] .. N[3]
leader() { "$CLUSTER" leader 2>/dev/null; }
has_leader() { [ -n "$(leader)" ]; }
check "a leader is elected" within "$W" has_leader
L=$(leader)
another_leads() { local l; l=$(leader); [ -n "$l" ] && [ "$l" != "$L" ]; }
check "deploy cat on the mesh" babl -n "$ALL" deploy cat -- cat
check "deploy counter on the mesh" babl -n "$ALL" deploy mcount "$root/contrib/services/counter.lua"
exited() { ! node_alive "$1"; }
# count I: mcount with --id c$I through any node, the same id again until
# it is acknowledged (at most 30 tries); its output goes to counts.
count() {
	local try out
	for ((try = 0; try < 30; try++)); do
		if out=$(timeout -k 2 $((15 * _slow)) babl -n "$ALL" -t $((10 * _slow)) --id "c$1" mcount \
			</dev/null 2>>"$T/count.err"); then
			echo "$out" >>"$T/counts"
			return 0
		fi
		sleep 0.3
	done
	return 1
}
fill "$T/n$L" 8192
head -c $((6 << 20)) /dev/urandom >"$T/in6"
: >"$T/counts"
: >"$T/streams.err"
cut_off=0 streams=0 wrong=0 i=0
# Streams (6 MiB each, through the first node that answers) fill the
# leader's 8 MiB of room; counter calls go between them, and on for a few
# rounds once the leader is gone.
for ((round = 0; round < 8; round++)); do
	count $((++i)) || break
	if node_alive "$L"; then
		streams=$((streams + 1))
		if timeout -k 5 $((60 * _slow)) babl -n "$ALL" cat <"$T/in6" >"$T/out6" 2>"$T/stream.err"; then
			cmp -s "$T/in6" "$T/out6" || wrong=$((wrong + 1))
		else
			echo "exit $?: $(cat "$T/stream.err")" >>"$T/streams.err"
			cut_off=$((cut_off + 1))
		fi
	fi
	count $((++i)) || break
done
echo "    leader: node $L; $streams streams, $cut_off cut off; $(wc -l <"$T/counts") counter calls acknowledged"
check "the leader, its disk full, has exited" within "$W" exited "$L"
check "its log says why" grep -q "cannot persist the replicated log.*its file system is full" "$T/n$L.log"
check "another node leads" within "$W" another_leads
check_eq "every counter call was acknowledged" "$i" "$(wc -l <"$T/counts")"
check_eq "the acknowledged values are 1..$i, each once" "$(seq "$i")" "$(cat "$T/counts")"
check_eq "no stream came back different" 0 "$wrong"
# (exit 69, the node unreachable: the leader the client talked to closed
# the connection, or the node it went through lost its link to the leader)
check_eq "a stream cut off by the failure exited 69, saying the node or the leader went" "" \
	"$(grep -Ev '^exit 69: babl: (cat: the node closed the connection before the call ended|the connection to the leader .* was lost mid-call; retry)' \
		"$T/streams.err")"
check_eq "the counter goes on" $((i + 1)) "$(echo | babl -n "$ALL" mcount)"
rm -f "$T/n$L/filler"
check "node $L starts again, with room" "$CLUSTER" restart "$L"
check "node $L catches up with the same log" within "$W" converged "${N[1]}" "${N[2]}" "${N[3]}"
check_eq "through node $L, the counter goes on" $((i + 2)) "$(echo | babl -n "${N[$L]}" mcount)"

# --- then a follower's disk fills up: it exits, saying why, and streams
# through the other two nodes go on without an error.
check "a leader is elected" within "$W" has_leader
L2=$(leader)
F=$((L2 % 3 + 1))
O=$((F % 3 + 1)) # (O may be L2: both URLs then name the leader)
[ "$O" = "$F" ] && O=$((O % 3 + 1))
fill "$T/n$F" 8192
bad=0
for ((k = 0; k < 4; k++)); do
	timeout -k 5 $((60 * _slow)) babl -n "${N[$L2]},${N[$O]}" cat <"$T/in6" >"$T/out6" 2>>"$T/fstreams.err" &&
		cmp -s "$T/in6" "$T/out6" || bad=$((bad + 1))
done
check "follower $F, its disk full, has exited" within "$W" exited "$F"
check "its log says why" grep -q "cannot persist the replicated log.*its file system is full" "$T/n$F.log"
check_eq "every stream through the other two came back whole" "0 streams failed: " \
	"$bad streams failed: $(cat "$T/fstreams.err")"
check_eq "the counter goes on" $((i + 3)) "$(echo | babl -n "${N[$L2]}" mcount)"
rm -f "$T/n$F/filler"
check "node $F starts again, with room" "$CLUSTER" restart "$F"
check "node $F catches up with the same log" within "$W" converged "${N[1]}" "${N[2]}" "${N[3]}"
"$CLUSTER" stop >/dev/null 2>&1
check "meshd --check verifies node $L's log" meshd --check --data "$T/n$L"
check "meshd --check verifies node $F's log" meshd --check --data "$T/n$F"
end
