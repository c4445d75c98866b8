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
# timeout: 240
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

# The end, wherever it comes: the nodes stop before the tmpfs goes.
end() {
	stop_meshd full
	umount "$D"
	finish
}

# fill KIB: a file that leaves KIB KiB free on the tmpfs.
fill() {
	local avail
	avail=$(df --output=avail -B1 "$D" | tail -1)
	head -c $((avail - $1 * 1024)) /dev/zero >"$D/filler"
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
stop_meshd full
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
end
