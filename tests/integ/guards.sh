#!/bin/bash
# guards.sh - a replicated mesh of three nodes and a guard (meshd --join
# --guard), seen from the client:
#   1. deterministic services (native cat, Lua counter) give no report over
#      many calls (BABL_GUARD_CALLS, default 10000; 2000 under ASan);
#   2. a service that reads /dev/urandom is reported at the right log
#      indexes, naming the service, and babl verify exits 1; babl --verify K
#      releases output only when K nodes signed the same digest.  A report
#      says what differs: for rnd, stdout and from which byte (or in which
#      range of bytes); for a service whose exit status is random, the exit;
#   3. as root: a node that runs a patched program under the same name (its
#      own mount namespace) is caught, and babl status marks it;
#   4. the exported log, checked offline by meshd replay --check, gives the
#      same reports; a node rebuilt from it has the same kv state as every
#      live node (babl info's digest) and counts on from the same value;
#   5. a node that joins then (meshd --join) catches up from the whole log
#      (at least 100,000 entries, but under the sanitizers),
#      votes and serves; babl node remove takes it and the guard out.
# timeout: 420
. "$(dirname "$0")/lib.sh"
export LC_ALL=C
root=$(cd "$(dirname "$0")/../.." && pwd)
mesh_env 10
GPORT=$((BABL_CLUSTER_PORT + 8))
W=$((20 * _slow))
calls=${BABL_GUARD_CALLS:-$([ "$_slow" = 1 ] && echo 10000 || echo 2000)}

trap '"$CLUSTER" stop >/dev/null 2>&1; _cleanup' EXIT

applied_of() {
	babl -n "$1" -t 3 status 2>/dev/null | sed -n 's/^raft: *commit [0-9]*, applied \([0-9]*\).*/\1/p'
}
commit_of() {
	babl -n "$1" -t 3 status 2>/dev/null | sed -n 's/^raft: *commit \([0-9]*\),.*/\1/p'
}
# caught_up URL: the guard has applied what the leader has committed (and a
# little time for the runs of the last calls to end).
caught_up() {
	local c g
	c=$(commit_of "$LEADER_URL")
	g=$(applied_of "$GURL")
	[ -n "$c" ] && [ -n "$g" ] && [ "$g" -ge "$c" ] && [ "$(babl -n "$GURL" status |
		sed -n 's/^calls: *\([0-9]*\) running.*/\1/p')" = 0 ]
}

# relead: LEADER_URL is the leader's again (a loaded machine may have
# elected another since it was read).
relead() {
	local l
	l=$("$CLUSTER" leader 2>/dev/null) && [ -n "$l" ] && L=$l && LEADER_URL=${N[$((L - 1))]}
	return 0
}
# rnd_calls: the calls to rnd the leader's log lists; rnd_logged N: at
# least N of them; rnd_indexes: their log indexes, in order, on one line.
rnd_calls() { babl -n "$LEADER_URL" -t 3 log rnd | grep -E '^[0-9]+ '; }
rnd_logged() { [ "$(rnd_calls | wc -l)" -ge "$1" ]; }
rnd_indexes() { rnd_calls | awk '{ print $1 }' | sort -n | tr '\n' ' '; }

# diverged_is URL N: the node at URL counts N calls whose reports name it.
diverged_is() {
	[ "$(babl -n "$1" -t 3 status | sed -n 's/^diverged: *\([0-9]*\).*/\1/p')" = "$2" ]
}

# load SERVICE CONCURRENCY ROUNDS: babl-load through the leader; its
# summary on stdout.  A loaded machine may stall a disk or a node past the
# election timeout, and the mesh elect another leader mid-run: the calls
# then under way are told to call again, and the run is made again through
# the new leader (up to 3 runs, each noted in $T/load.retried; see
# say_retried).  Any other error fails it.
load() {
	local try
	for ((try = 0; try < 3; try++)); do
		relead
		"$BABL_BUILD/tests/babl-load" -n "$LEADER_URL" -c "$2" --rounds "$3" -d 600 "$1" \
			>"$T/load.out" 2>"$T/load.err" && { cat "$T/load.out"; return 0; }
		cat "$T/load.out" "$T/load.err"
		grep '^babl-load: ' "$T/load.err" | grep -qv 'lost the leadership' && return 1
		echo "run $((try + 1)): $(sed -n 's/.* errors=\([0-9]*\) .*/\1/p' "$T/load.out") calls failed" \
			>>"$T/load.retried"
	done
	return 1
}
say_retried() {
	[ -s "$T/load.retried" ] && echo "    the mesh elected another leader mid-run: $(cat "$T/load.retried")"
	rm -f "$T/load.retried"
}

# grow_log N: calls to lecho until the leader's log passes N entries
# (about 4 entries a call).
grow_log() {
	local c r
	relead
	c=$(commit_of "$LEADER_URL")
	r=$((($1 - ${c:-0}) / 4 / 32 + 1))
	load lecho 32 $((r > 0 ? r : 1))
}

# ---- the mesh and its guard
_run "$CLUSTER" start 3
[ "$RC" -eq 0 ] || { _bad "scripts/cluster start 3" "$(_said)"; finish; }
ALL=$(cat "$T/out")
IFS=, read -r -a N <<<"$ALL"
export BABL_NODE=$ALL
L=$("$CLUSTER" leader)
LEADER_URL=${N[$((L - 1))]}
GURL=tcp://127.0.0.1:$((GPORT + 1))
"$BABL_BUILD/meshd" --data "$T/g" --node-id 9 --peer "9,tcp://127.0.0.1:$GPORT,$GURL" \
	--join "${N[0]}" --guard </dev/null >>"$T/g.log" 2>&1 &
MESHD_PID[g]=$!
check "the guard joins and answers" wait_until "$W" babl -n "$GURL" -t 2 status
check_eq "the guard's status says it is a guard" 1 \
	"$(babl -n "$GURL" status | grep -c '^role: .*(guard)')"
check_eq "the mesh lists the guard as a member" 1 \
	"$(babl -n "$LEADER_URL" status | grep -cE "^member: +9 $GURL\$")"

check "deploy cat" babl deploy cat -- /bin/cat
check "deploy counter" babl deploy counter "$root/contrib/services/counter.lua"
check "deploy rnd (reads /dev/urandom)" babl deploy rnd -- /usr/bin/od -An -N8 -tx1 /dev/urandom

# ---- 1. deterministic services: no report
half=$((calls / 2))
check "$((half / 16 * 16)) calls to cat, no error" load cat 16 $((half / 16))
grep calls= "$T/out" | sed 's/^/    /'
say_retried
check "$((half / 16 * 16)) calls to the Lua counter, no error" load counter 16 $((half / 16))
grep calls= "$T/out" | sed 's/^/    /'
say_retried
check "the guard catches up" wait_until $((120 * _slow)) caught_up
_run babl -n "$GURL" verify
check_eq "babl verify after $((half / 16 * 32)) deterministic calls: exit 0" 0 "$RC"
check_eq "... and no report" 1 "$(grep -c '^no divergence reported' "$T/out")"

# ---- 2. a nondeterministic service is reported at its entries
for i in 1 2 3; do
	babl rnd </dev/null >/dev/null 2>&1
done
relead
check "the leader's log lists the 3 rnd calls" wait_until "$W" rnd_logged 3
rnd_idx=$(rnd_indexes)
check "the guard catches up again" wait_until $((30 * _slow)) caught_up
check "the reports reach the log (3 calls x 3 executing nodes)" wait_until $((10 * _slow)) sh -c \
	"[ \$(babl -n '${N[1]}' verify rnd | grep -c '^  node [0-9]* signed ') -ge 9 ]"
_run babl -n "${N[1]}" verify rnd
check_eq "babl verify rnd exits 1" 1 "$RC"
got=$(grep -oE '^divergence at log index [0-9]+' "$T/out" | awk '{ print $5 }' | sort -nu | tr '\n' ' ')
check_eq "the reports name the rnd calls' log indexes" "$rnd_idx" "$got"
check_eq "each call's reports come under one line naming the service and its version" 3 \
	"$(grep -c ': rnd v1, request ' "$T/out")"
check_eq "... and name every executing node's digest" 9 "$(grep -c '^  node [0-9]* signed ' "$T/out")"
# rnd prints 8 random bytes in hex: 25 bytes, the first random ones from byte 1.
out_diff='^    guard vs node: stdout differs first (at byte [0-9]+|in bytes \[[0-9]+,[0-9]+\)), lengths 25 vs 25$'
check_eq "... each saying that stdout differs, from which byte or in which range" 9 \
	"$(grep -cE "$out_diff" "$T/out")"
check_eq "... and nothing else" 0 "$(grep -cE 'stderr differs|exit differs|kv writes differ' "$T/out")"
check_eq "babl verify cat: no report" 0 "$(babl verify cat >/dev/null 2>&1; echo $?)"
# Node 1 applies the reports in its own time (the wait above read node 2).
check "babl status counts 3 diverged calls for node 1" wait_until "$W" diverged_is "${N[0]}" 3

# ---- --verify K: output only when K executing nodes signed the same digest
check_eq "--verify 3 cat: the output, once all three agree" hello "$(echo hello | babl --verify 3 cat)"
check_exit 70 babl --verify 2 rnd
check_eq "--verify 2 rnd: nothing on stdout" "" "$(cat "$T/out")"
check_stderr_contains "output is withheld"
check_exit 64 babl --verify 4 cat
check_stderr_contains "the mesh has 3 executing nodes"
# A refusal reaches the client through a follower even when the leader
# refuses with the client's input still unread: it waits for the client
# to close, rather than closing (and resetting the connection) first.
refusals_seen() {
	local i k ok=0
	for i in 0 1 2; do
		[ "$i" = $((L - 1)) ] && continue
		for ((k = 0; k < 40; k++)); do
			head -c 300000 /dev/zero | babl -n "${N[$i]}" nosuch >/dev/null 2>"$T/err"
			[ $? = 69 ] && grep -q 'no such service: nosuch' "$T/err" && ok=$((ok + 1))
		done
	done
	echo "$ok"
}
relead
check_eq "80 calls to an unknown service through the followers: each refused as such" 80 \
	"$(refusals_seen)"
# The rnd calls now: the three above and the one --verify refused, whose
# runs and reports are awaited before a node is restarted below.
relead
check "the leader's log lists the 4 rnd calls" wait_until "$W" rnd_logged 4
rnd_idx=$(rnd_indexes)
check "the guard reports on the fourth rnd call too (4 calls x 3 executing nodes)" \
	wait_until $((30 * _slow)) sh -c \
	"[ \$(babl -n '$LEADER_URL' verify rnd | grep -c '^  node [0-9]* signed ') -ge 12 ]"

# ---- 3. a patched program on one node
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
	chmod 711 "$T" # the sandboxed runs reach the program under it
	mkdir -m 755 -p "$T/prog"
	printf '#!/bin/sh\necho the real one\n' >"$T/prog/tool"
	printf '#!/bin/sh\necho a patched one\n' >"$T/prog/tool.patched"
	chmod 755 "$T/prog/tool" "$T/prog/tool.patched"
	check "deploy tool" babl deploy tool -- "$T/prog/tool"
	# Node 3 again, in its own mount namespace where tool is the patched one.
	victim=3
	[ "$victim" = "$L" ] && victim=2
	"$CLUSTER" kill "$victim" >/dev/null
	peers=()
	for i in 1 2 3; do
		peers+=(--peer "$i,tcp://127.0.0.1:$((BABL_CLUSTER_PORT + 2 * (i - 1))),${N[$((i - 1))]}")
	done
	unshare -m sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' sh \
		"$T/prog/tool.patched" "$T/prog/tool" \
		"$BABL_BUILD/meshd" --data "$T/n$victim" --node-id "$victim" "${peers[@]}" \
		</dev/null >>"$T/n$victim.log" 2>&1 &
	MESHD_PID[patched]=$!
	check "node $victim runs again, with the patched tool" wait_until "$W" \
		babl -n "${N[$((victim - 1))]}" -t 2 status
	for i in 1 2; do
		check "a call to tool" babl -n "$LEADER_URL" tool </dev/null
	done
	check "the patched node is reported" wait_until $((30 * _slow)) sh -c \
		"babl -n '$LEADER_URL' verify tool | grep -q '^  node $victim signed'"
	_run babl -n "$LEADER_URL" verify tool
	keep
	check_eq "only node $victim differs" 0 "$(grep '^  node ' "$T/view" | grep -vc "^  node $victim ")"
	check "the others agree with the guard" grep -qE '^  agree with the guard: [0-9,]+; differ: '"$victim"'$' "$T/view"
	check "babl status marks node $victim (4 rnd calls, 2 tool calls)" \
		wait_until "$W" diverged_is "${N[$((victim - 1))]}" 6
else
	echo "    skipped: a patched program on one node needs root and mount namespaces"
fi

# ---- a service whose exit status is random: the reports name the exit
check "deploy rexit (exits with a random status)" babl deploy rexit -- /bin/sh -c \
	'exit $(od -An -N1 -tu1 /dev/urandom)'
for i in 1 2; do
	babl rexit </dev/null >/dev/null 2>&1
done
check "the guard catches up with the rexit calls" wait_until $((30 * _slow)) caught_up
check "rexit is reported" wait_until $((10 * _slow)) sh -c \
	"babl -n '$LEADER_URL' verify rexit | grep -q '^    guard vs node: '"
_run babl -n "$LEADER_URL" verify rexit
keep
check_eq "babl verify rexit exits 1" 1 "$RC"
check_eq "every rexit report says the exit differs, and how" 0 "$(grep '^    guard vs node: ' "$T/view" |
	grep -cvE '^    guard vs node: exit differs: [0-9]+ vs [0-9]+$')"
check_eq "... and not stdout" 0 "$(grep -c 'stdout differs' "$T/view")"

# ---- 4. offline
relead
check "babl log export" sh -c "babl -n '$LEADER_URL' log export > '$T/mesh.log'"
# The kv state of every live node (the guard's too) as babl info shows it.
kv_of() { babl -n "$1" -t 5 info counter | grep '^kv state: '; }
live_kv=$(kv_of "$LEADER_URL")
echo "    the leader's counter: $live_kv"
check "babl info counter shows the kv state: one key and a BLAKE2b-256" \
	grep -qE '^kv state: +1 key, BLAKE2b-256 [0-9a-f]{64}$' <<<"$live_kv"
for u in "${N[@]}" "$GURL"; do
	check_eq "node $u holds the same kv state" "$live_kv" "$(kv_of "$u")"
done
_run meshd replay --log "$T/mesh.log" --check
keep
check_eq "meshd replay --check exits 1" 1 "$RC"
check "it replayed the whole log" grep -qE '^replayed [0-9]+ entries, [0-9]+ calls: [0-9]+ divergence reports' "$T/view"
off=$(grep -oE '^divergence at log index [0-9]+: rnd' "$T/view" | awk '{ print $5 }' | tr -d : |
	sort -nu | tr '\n' ' ')
check_eq "offline, the same rnd calls are reported" "$rnd_idx" "$off"
check_eq "offline, no cat or counter call is reported" 0 \
	"$(grep -cE '^divergence at log index [0-9]+: (cat|counter) ' "$T/view")"
check "offline, a report on rnd says stdout differs and from where" \
	grep -qE "${out_diff/guard/replay}" "$T/view"
check "offline, a report on rexit says the exit differs" \
	grep -qE '^    replay vs node: exit differs: [0-9]+ vs [0-9]+$' "$T/view"
check "meshd replay --data rebuilds a node from the export" \
	meshd replay --log "$T/mesh.log" --data "$T/rebuilt"
live=$(babl -n "$LEADER_URL" counter </dev/null)

# ---- a replica added now catches up from the whole log, then serves
# (a log of at least 100,000 entries first; under the sanitizers, which are
# several times slower, what the calls above left)
if [ "$_slow" = 1 ]; then
	printf 'function handle(req)\n  babl.write(babl.readall())\nend\n' >"$T/lecho.lua"
	check "deploy lecho (a Lua echo)" babl -n "$LEADER_URL" deploy lecho "$T/lecho.lua"
	check "calls to lecho (32 at a time) until the log passes 100,000 entries" grow_log 100000
	say_retried
	relead
	c=$(commit_of "$LEADER_URL")
	check "the log holds at least 100,000 entries ($c)" test "${c:-0}" -ge 100000
fi
NEW=tcp://127.0.0.1:$((BABL_CLUSTER_PORT + 7))
"$BABL_BUILD/meshd" --data "$T/r7" --node-id 7 \
	--peer "7,tcp://127.0.0.1:$((BABL_CLUSTER_PORT + 6)),$NEW" --join "$LEADER_URL" \
	</dev/null >>"$T/r7.log" 2>&1 &
MESHD_PID[r7]=$!
target=$(commit_of "$LEADER_URL")
echo "    node 7 joins a mesh whose log has $target entries"
check "node 7 catches up (applied >= $target)" wait_until $((60 * _slow)) sh -c \
	"a=\$(babl -n '$NEW' -t 2 status 2>/dev/null | sed -n 's/^raft: *commit [0-9]*, applied \\([0-9]*\\).*/\\1/p'); [ -n \"\$a\" ] && [ \"\$a\" -ge $target ]"
check "node 7 becomes a voter" wait_until "$W" sh -c "babl -n '$NEW' status | grep -q '^mesh node: *7 (voter)'"
check_eq "node 7 serves: a call through it" hello "$(echo hello | babl -n "$NEW" cat)"
check_eq "node 7 holds the same state: the counter goes on" "$((live + 1))" "$(babl -n "$NEW" counter </dev/null)"
check "babl node remove 7" babl -n "$LEADER_URL" node remove 7
stop_meshd r7

# ---- membership: the guard leaves the mesh
check "babl node remove 9 (the guard)" babl -n "${N[1]}" node remove 9
relead
check "... it is no longer listed as a member" wait_until "$W" sh -c \
	"s=\$(babl -n '$LEADER_URL' status) && ! printf '%s\\n' \"\$s\" | grep -qE '^member: +9 '"
check "... and the configuration drops it" wait_until "$W" sh -c \
	"babl -n '$LEADER_URL' status | grep -q 'voters, 0 learners'"
check_exit 65 babl -n "$LEADER_URL" node remove 9
check_stderr_contains "is not a member"

start_meshd rebuilt || finish
check_eq "the rebuilt node holds the live nodes' kv state" "$live_kv" "$(kv_of "$BABL_NODE")"
check_eq "the rebuilt node counts on from the same value" "$live" "$(babl counter </dev/null)"
finish
