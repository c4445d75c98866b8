# tests/integ/lib.sh - the harness that integration scripts source.
#
#	. "$(dirname "$0")/lib.sh"
#	start_meshd a || finish
#	check_eq "echo through cat" hello "$(echo hello | babl cat)"
#	finish
#
# It gives each script a private directory $T (removed on exit), a HOME and
# XDG_* directories inside it (so keys and defaults are per test), `babl` and
# `meshd` from $BABL_BUILD first on PATH, and a trap that stops every meshd
# and background job the script started, whatever way it exits.
#
#   start_meshd NAME [--tcp] [FLAG...]
#	start $BABL_BUILD/meshd --data $T/NAME --listen ipc://$T/NAME.sock
#	(and with --tcp also --listen tcp://127.0.0.1:PORT, a free port, kept in
#	TCP[NAME]), logging to $T/NAME.log; wait until `babl status` answers;
#	export BABL_NODE.  Returns 1 (and counts a failed check) if it does not.
#   stop_meshd NAME    SIGTERM, then SIGKILL if it is still there after
#		       $BABL_STOP_WAIT s; returns meshd's exit status
#   kill9_meshd NAME   SIGKILL at once
#   node_url NAME, meshd_pid NAME
#   wait_until SECS CMD...        poll CMD until it succeeds (1 if it never does)
#   port_block N                  N free consecutive loopback ports (the first)
#   mesh_env N                    scripts/cluster ($CLUSTER) with its mesh in $T
#   raft_of URL, role_of URL      a node's "commit applied last", its role
#   converged URL...              the nodes have applied the same whole log
#   node_alive ID                 node ID of that mesh runs (not a zombie)
#   within SECS CMD...            as wait_until, in seconds of the clock
#
# Checks (each prints "ok   NAME" or "FAIL NAME" with the details, and the
# tail of the meshd logs on failure).  The command checks keep the last
# command's output in $T/out and $T/err, and its exit status in $RC.
#   check NAME CMD...                 CMD exits 0
#   check_eq NAME EXPECTED ACTUAL     the two strings are equal
#   check_exit EXPECTED CMD...        CMD exits with status EXPECTED
#   check_stderr_contains TEXT [CMD...]  CMD's stderr (or the last one's)
#				      contains TEXT
#   finish                            stop the nodes, look for sanitizer
#				      reports in their logs, print
#				      "SUITE: N passed, N failed", exit 0 or 1
#
# Environment: BABL_BUILD (default: build/ of this checkout), BABL_KEEP=1
# keeps $T for inspection, BABL_ASAN=1 (set by tests/run) allows more time.

set -uo pipefail

SUITE=$(basename "$0" .sh)
_lib_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BABL_BUILD=${BABL_BUILD:-$_lib_root/build}
BABL_BUILD=$(cd "$BABL_BUILD" && pwd) || {
	echo "$SUITE: BABL_BUILD: no such directory" >&2
	exit 1
}
export BABL_BUILD
export PATH="$BABL_BUILD:$PATH"

T=$(mktemp -d "${TMPDIR:-/tmp}/babl-$SUITE.XXXXXX") || exit 1
export HOME="$T/home"
export XDG_CONFIG_HOME="$HOME/.config" XDG_DATA_HOME="$HOME/.local/share"
export XDG_CACHE_HOME="$HOME/.cache" XDG_STATE_HOME="$HOME/.local/state"
export XDG_RUNTIME_DIR="$T/run"
mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_STATE_HOME"
mkdir -m 700 -p "$XDG_RUNTIME_DIR"
unset BABL_NODE BABL_KEY

# Time bounds, in seconds; sanitizer builds are slower.
_slow=1
[ "${BABL_ASAN-}" = 1 ] && _slow=3
BABL_START_WAIT=${BABL_START_WAIT:-$((10 * _slow))}
BABL_STOP_WAIT=${BABL_STOP_WAIT:-$((10 * _slow))}

declare -A MESHD_PID=() TCP=()
_pass=0
_fail=0
RC=0

_cleanup() {
	local name pid
	trap - EXIT INT TERM HUP
	for name in "${!MESHD_PID[@]}"; do
		_stop "$name" >/dev/null 2>&1
	done
	for pid in $(jobs -p); do
		kill -KILL "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	if [ "${BABL_KEEP-}" = 1 ]; then
		echo "$SUITE: kept $T" >&2
	else
		rm -rf "$T"
	fi
}
trap _cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

node_url() { echo "ipc://$T/$1.sock"; }
meshd_pid() { echo "${MESHD_PID[$1]-}"; }

wait_until() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

_free_port() {
	local used p i
	used=$(ss -Htan 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }')
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 40000))
		grep -qx "$p" <<<"$used" || { echo "$p"; return 0; }
	done
	return 1
}

# port_block N: the first of N consecutive loopback ports, none in use, from a
# base derived from our pid (a multiple of 16).  They stay below the
# ephemeral range: a node killed and restarted must get its ports back, and
# the client connections a suite makes could otherwise take one meanwhile.
port_block() {
	local n=$1 used base p i k busy lo slots
	used=$(ss -Htan 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }')
	lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
	[[ ${lo-} =~ ^[0-9]+$ ]] && [ "$lo" -gt 12000 ] || lo=32768
	slots=$(((lo - 10000) / 16))
	base=$((10000 + ($$ % slots) * 16))
	for ((i = 0; i < slots; i++)); do
		busy=0
		for ((k = 0; k < n; k++)); do
			p=$((base + k))
			grep -qx "$p" <<<"$used" && { busy=1; break; }
		done
		[ $busy = 0 ] && { echo "$base"; return 0; }
		base=$((base + 16))
		[ $((base + 16)) -le "$lo" ] || base=10000
	done
	return 1
}

# mesh_env PORTS: scripts/cluster (as $CLUSTER) set up to keep its mesh in
# $T itself (so that the node logs are shown on a failure and searched for
# sanitizer reports by finish), with PORTS free loopback ports from
# $BABL_CLUSTER_PORT on.
mesh_env() {
	CLUSTER=$_lib_root/scripts/cluster
	export BABL_BIN=$BABL_BUILD BABL_CLUSTER_DIR=$T
	unset MESHD_FLAGS
	BABL_CLUSTER_PORT=$(port_block "$1") || { echo "$SUITE: no free ports" >&2; exit 1; }
	export BABL_CLUSTER_PORT
}

# The mesh helpers ask their questions with ${CLI[@]} (a script may run
# babl in a network namespace instead).
CLI=(babl)

# raft_of URL: "commit applied last" as the node reports it.
raft_of() {
	"${CLI[@]}" -n "$1" -t 3 status 2>/dev/null |
		sed -n 's/^raft: *commit \([0-9]*\), applied \([0-9]*\), last \([0-9]*\).*/\1 \2 \3/p'
}
role_of() {
	"${CLI[@]}" -n "$1" -t 2 status 2>/dev/null | sed -n 's/^role: *\([a-z]*\).*/\1/p'
}

# converged URL...: every node has applied all it has, and all report the
# same commit, applied and last index.
converged() {
	local u r first="" c a l
	for u in "$@"; do
		r=$(raft_of "$u")
		[ -n "$r" ] || return 1
		read -r c a l <<<"$r"
		[ "$c" = "$a" ] && [ "$a" = "$l" ] || return 1
		[ -z "$first" ] && first=$r
		[ "$r" = "$first" ] || return 1
	done
}

# node_alive ID: node ID of the mesh in $T (scripts/cluster's) runs.  One
# that has exited is not, though no one has reaped it yet (a zombie).
node_alive() {
	local p st
	p=$(cat "$T/n$1.pid" 2>/dev/null) || return 1
	read -r _ _ st _ <"/proc/$p/stat" 2>/dev/null || return 1
	[ "$st" != Z ]
}

# within SECS CMD...: poll CMD until it succeeds, for at most SECS seconds
# (wait_until counts tries, and a status query can take seconds).
within() {
	local end=$((SECONDS + $1))
	shift
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.1
	done
}

_alive() { [ -n "${MESHD_PID[$1]-}" ] && kill -0 "${MESHD_PID[$1]}" 2>/dev/null; }

_log_tail() {
	local log
	for log in "$T"/*.log; do
		[ -f "$log" ] || continue
		echo "    --- last lines of $(basename "$log"):"
		tail -n 15 "$log" | sed 's/^/    | /'
	done
}

_ok() {
	_pass=$((_pass + 1))
	echo "ok   $1"
}

# _bad NAME DETAIL...: count a failure and say why.
_bad() {
	local name=$1
	shift
	_fail=$((_fail + 1))
	echo "FAIL $name"
	local d
	for d in "$@"; do
		printf '%s\n' "$d" | sed 's/^/    /'
	done
	_log_tail
	return 1
}

# _run CMD...: run CMD, keeping stdout, stderr and the exit status.
_run() {
	"$@" >"$T/out" 2>"$T/err"
	RC=$?
}

_said() {
	echo "exit status $RC"
	[ -s "$T/out" ] && echo "stdout: $(head -c 400 "$T/out")"
	[ -s "$T/err" ] && echo "stderr: $(head -c 400 "$T/err")"
	return 0
}

check() {
	local name=$1
	shift
	_run "$@"
	if [ "$RC" -eq 0 ]; then
		_ok "$name"
	else
		_bad "$name" "command: $*" "$(_said)"
	fi
}

check_eq() {
	if [ "$2" = "$3" ]; then
		_ok "$1"
	else
		_bad "$1" "expected: $(head -c 400 <<<"$2")" "actual:   $(head -c 400 <<<"$3")"
	fi
}

check_exit() {
	local want=$1
	shift
	_run "$@"
	if [ "$RC" -eq "$want" ]; then
		_ok "exit $want: $*"
	else
		_bad "exit $want: $*" "$(_said)"
	fi
}

check_stderr_contains() {
	local text=$1
	shift
	[ $# -eq 0 ] || _run "$@"
	if grep -qF -- "$text" "$T/err"; then
		_ok "stderr has '$text'${1:+: $*}"
	else
		_bad "stderr has '$text'${1:+: $*}" "$(_said)"
	fi
}

start_meshd() {
	local name=$1 url tcp=""
	shift
	url=$(node_url "$name")
	if [ "${1-}" = "--tcp" ]; then
		shift
		tcp="tcp://127.0.0.1:$(_free_port)"
		TCP[$name]=$tcp
	fi
	if _alive "$name"; then
		_bad "start meshd $name" "it is already running (pid ${MESHD_PID[$name]})"
		return 1
	fi
	echo "--- $(date +%T) start meshd $name $*" >>"$T/$name.log"
	"$BABL_BUILD/meshd" --data "$T/$name" --listen "$url" ${tcp:+--listen "$tcp"} "$@" \
		</dev/null >>"$T/$name.log" 2>&1 &
	MESHD_PID[$name]=$!
	local i
	for ((i = 0; i < BABL_START_WAIT * 10; i++)); do
		if babl -n "$url" -t 2 status >/dev/null 2>&1; then
			export BABL_NODE=$url
			return 0
		fi
		_alive "$name" || break
		sleep 0.1
	done
	if _alive "$name"; then
		_bad "start meshd $name" "no answer to 'babl status' within ${BABL_START_WAIT}s"
	else
		wait "${MESHD_PID[$name]}"
		_bad "start meshd $name" "meshd exited with status $? before answering"
		unset "MESHD_PID[$name]"
	fi
	return 1
}

# _stop NAME: SIGTERM, bounded wait, then SIGKILL; meshd's exit status.
_stop() {
	local name=$1 pid i
	pid=${MESHD_PID[$name]-}
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < BABL_STOP_WAIT * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "$SUITE: meshd $name did not stop within ${BABL_STOP_WAIT}s of SIGTERM; SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	local rc=$?
	unset "MESHD_PID[$name]"
	return "$rc"
}

stop_meshd() {
	_stop "$1"
	local rc=$?
	echo "--- $(date +%T) meshd $1 stopped, status $rc" >>"$T/$1.log"
	return "$rc"
}

kill9_meshd() {
	local pid=${MESHD_PID[$1]-}
	[ -n "$pid" ] || return 1
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	unset "MESHD_PID[$1]"
	echo "--- $(date +%T) meshd $1 killed with SIGKILL" >>"$T/$1.log"
	return 0
}

finish() {
	local name log
	for name in "${!MESHD_PID[@]}"; do
		stop_meshd "$name"
	done
	for log in "$T"/*.log; do
		[ -f "$log" ] || continue
		if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
			_bad "no sanitizer reports in $(basename "$log")" \
				"$(grep -E -A 12 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log" | head -n 40)"
		fi
	done
	echo "$SUITE: $_pass passed, $_fail failed"
	[ "$_fail" -eq 0 ] && exit 0
	exit 1
}

# ---- helpers shared by the suites ----

# Processes running in a work directory of one of this suite's nodes.
svc_procs() {
	local p c
	for p in /proc/[0-9]*; do
		c=$(readlink "$p/cwd" 2>/dev/null) || continue
		case $c in "$T"/*/run/*) echo "${p#/proc/} $(cat "$p/comm" 2>/dev/null)" ;; esac
	done
}
no_svc_procs() { [ -z "$(svc_procs)" ]; }
has_svc_procs() { [ -n "$(svc_procs)" ]; }

# keep: the last command's stdout, for checks that read it (check overwrites
# $T/out).
keep() { cp "$T/out" "$T/view"; }

# bounded_wait PID SECS: wait for a background job; its status, or 124
# (after killing it) if it is still running after SECS.
bounded_wait() {
	local pid=$1 secs=$2 i
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return 124
	fi
	wait "$pid"
}

# The hostile helper, uninstrumented: an ASan build cannot even start under
# the address-space limits services get.
HOSTILE=$BABL_BUILD/tests/hostile
if [ "${BABL_ASAN-}" = 1 ]; then
	HOSTILE=$T/hostile
	cc -O2 -D_GNU_SOURCE -Wall -Werror -o "$HOSTILE" "$_lib_root/tests/helpers/hostile.c" ||
		HOSTILE=$BABL_BUILD/tests/hostile
	chmod 755 "$T"
fi
