#!/bin/bash
# hostile.sh - a misbehaving service (tests/helpers/hostile.c) under small
# limits: each misbehaviour is refused or stopped, the environment and
# filesystem are confined, nothing is left running, and the node serves on.
# Then a Lua worker that misbehaves (tests/helpers/badworker): each way
# fails the call with the cause on stderr and none of its changes.
# timeout: 240
. "$(dirname "$0")/lib.sh"
export LC_ALL=C

# still_serving WHAT: the node answers a plain call after WHAT.
still_serving() {
	check_eq "after $1: echo ok | babl cat" ok "$(echo ok | timeout 20 babl cat)"
}

# hostile MODE...: call it, bounded, keeping output and status.
hostile() {
	timeout 60 babl hostile "$@" </dev/null >"$T/out" 2>"$T/err"
	RC=$?
	HRC=$RC
	keep
	cp "$T/err" "$T/verr"
}

start_meshd a || finish
check "deploy cat" babl deploy cat -- cat
check "deploy hostile with small limits" babl deploy --mem 256 --cpu 2 --timeout 5 --fsize 1 \
	--nproc 32 hostile -- "$HOSTILE"
check "babl info shows the limits" babl info hostile
keep
check "info: timeout 5s, cpu 2s, mem 256 MiB, file 1 MiB, nproc 32" \
	grep -q 'timeout 5s, cpu 2s, mem 256 MiB, .*file 1 MiB, nproc 32' "$T/view"

hostile socket
check_eq "socket: refused (exit 3)" 3 "$RC"
check "socket: says refused" grep -q 'socket: refused' "$T/view"
still_serving socket

hostile ptrace
check_eq "ptrace: refused (exit 3)" 3 "$RC"
still_serving ptrace

hostile forkbomb
check_eq "forkbomb: stopped (fork failed, exit 5)" 5 "$RC"
echo "    forkbomb said: $(head -c 200 "$T/view")"
check "forkbomb: no process of it is left" wait_until 10 no_svc_procs
[ -z "$(svc_procs)" ] || echo "    left: $(svc_procs | head -5 | tr '\n' ' ')"
still_serving forkbomb

hostile fsize
check_eq "fsize: killed by SIGXFSZ (153)" 153 "$RC"
still_serving fsize

hostile mem
check "mem: stopped (non-zero)" test "$HRC" -ne 0
check_eq "mem: malloc failed (exit 4)" 4 "$HRC"
still_serving mem

hostile spin
check "spin: stopped by its CPU limit (152 SIGXCPU or 137 SIGKILL)" \
	bash -c "[ $HRC = 152 ] || [ $HRC = 137 ]"
still_serving spin

hostile sleep
check_eq "sleep: killed after its 5 s wall-clock limit (137)" 137 "$RC"
check "sleep: babl says why" grep -q 'limit' "$T/verr"
still_serving sleep

hostile x32
check_eq "x32: killed by SIGSYS (159)" 159 "$RC"
still_serving x32

hostile kill 11
check_eq "kill 11: 139" 139 "$RC"

hostile fds
check_eq "fds: only 0 1 2 are open" "fds: 0 1 2" "$(cat "$T/view")"

export SECRET=x
hostile env
unset SECRET
check_eq "env: exit 0" 0 "$RC"
check "env: BABL_REQUEST_ID is set" grep -qE '^BABL_REQUEST_ID=[0-9a-f]{32}$' "$T/view"
check "env: BABL_TIME is set" grep -qE '^BABL_TIME=[0-9]+$' "$T/view"
check "env: BABL_SEED is set" grep -qE '^BABL_SEED=[0-9]+$' "$T/view"
check "env: BABL_SERVICE=hostile" grep -qx 'BABL_SERVICE=hostile' "$T/view"
check_eq "env: nothing of the caller's SECRET" "" "$(grep SECRET "$T/view")"
check_eq "env: no BABL_NODE nor XDG_ from the caller" "" "$(grep -E '^(BABL_NODE|XDG_)' "$T/view")"
check_eq "env: not the caller's HOME" "" "$(grep -xF "HOME=$HOME" "$T/view")"
reqid=$(sed -n 's/^BABL_REQUEST_ID=//p' "$T/view")
check "the request id is the one in babl log" bash -c "babl log hostile | grep -q '$reqid'"

hostile id
check_eq "id: exit 0" 0 "$RC"
check "id: not uid 0" grep -qE '^uid=[1-9][0-9]* gid=[1-9][0-9]* euid=[1-9][0-9]* egid=[1-9]' "$T/view"
echo "    id said: $(cat "$T/view")"

hostile writefs /etc/babl-hostile-x
check_eq "writefs /etc/...: refused (exit 9)" 9 "$RC"
check_eq "and no file appeared in /etc" no "$([ -e /etc/babl-hostile-x ] && echo yes || echo no)"
rm -f /etc/babl-hostile-x
hostile writefs /tmp/babl-hostile-x
check_eq "writefs /tmp/...: refused (exit 9)" 9 "$RC"
check_eq "and no file appeared in /tmp" no "$([ -e /tmp/babl-hostile-x ] && echo yes || echo no)"
rm -f /tmp/babl-hostile-x
hostile writefs "$T/babl-hostile-x"
check_eq "writefs into the test's directory: refused (exit 9)" 9 "$RC"
hostile writefs x
check_eq "writefs x in its own work dir: written (exit 0)" 0 "$RC"
hostile writefs "$T/a/run/x"
check_eq "writefs into the node's run dir, outside its own: refused (exit 9)" 9 "$RC"

# A slot's work dir is kept from call to call: what one call leaves there,
# and the mode it set, are gone when the next call (same slot) starts.
check "deploy sh" babl deploy sh -- /bin/sh -c
check "a call leaves a file, a dir with a file, and its dir mode 755" \
	babl sh 'echo x > f && mkdir d && echo y > d/g && chmod 755 .'
check_eq "the next call's work dir: mode 700, empty" "700 0" \
	"$(babl sh 'echo $(stat -c %a .) $(ls -A | wc -l)' 2>&1)"
# One that meshd cannot empty (an immutable file, put there by root between
# calls: meshd empties the dir as a call ends, and does not look again at
# the next start when nothing of the call was left running) is set aside
# when the call that found it ends.
stuck=$T/a/run/call-0/stuck
if [ -d "$T/a/run/call-0" ] && touch "$stuck" && chattr +i "$stuck" 2>/dev/null; then
	check "a call runs in a work dir that cannot be emptied" babl sh true
	check_eq "the next call runs in a fresh one: mode 700, empty" "700 0" \
		"$(babl sh 'echo $(stat -c %a .) $(ls -A | wc -l)' 2>&1)"
	check "meshd says it set that dir aside" grep -q 'could not be emptied; set aside' "$T/a.log"
	chattr -i "$T"/a/run/aside-*/stuck "$stuck" 2>/dev/null
else
	rm -f "$stuck"
	echo "    skip: no immutable file here (chattr), for a work dir that cannot be emptied"
fi

hostile net
check_eq "net: exit 0" 0 "$RC"
check_eq "net: only lo" lo "$(cat "$T/view")"

hostile pid
echo "    pid said: $(cat "$T/view")"
if [ "$(id -u)" = 0 ]; then
	# Its own pid space (not the host's), whose /proc shows none but its
	# own processes: not pid 1, not another call's, not meshd.
	babl sh 'readlink /proc/self/ns/pid; ls /proc | grep -c "^[0-9]"; cat /proc/1/cmdline >/dev/null 2>&1 && echo shown || echo hidden' >"$T/out" 2>&1
	keep
	check "pid: a pid namespace that is not the host's" \
		bash -c '[[ $1 == pid:\[* && $1 != "$2" ]]' _ "$(sed -n 1p "$T/view")" \
		"$(readlink /proc/self/ns/pid)"
	check "pid: /proc shows only its own few processes" test "$(sed -n 2p "$T/view")" -le 4
	check_eq "pid: pid 1 is hidden" hidden "$(sed -n 3p "$T/view")"
else
	echo "    skip: the pid namespace checks need root"
fi

check "no process of the hostile service is left" wait_until 10 no_svc_procs
check "babl log hostile" babl log hostile
keep
check "babl log hostile records the wall-clock kill as timeout" grep -q 'signal 9 (timeout)' "$T/view"
check "babl status" babl status
check "babl verify" babl verify
stop_meshd a

# ---- a Lua worker that misbehaves: tests/helpers/badworker stands in for
# meshd-lua, and each script names what it does (badworker.c).  However the
# worker talks back, the call ends with 137 and the cause on stderr, keeps
# none of its kv writes, and the node serves on.
export MESHD_LUA=$BABL_BUILD/tests/badworker
start_meshd w || finish
unset MESHD_LUA
check "deploy cat on node w" babl deploy cat -- cat
MODES="garbage huge cut exit badwrites othercall"
for m in $MODES; do
	printf -- '-- badworker: %s\nfunction handle(req)\n  babl.kv.set("k", "set")\nend\n' "$m" >"$T/$m.lua"
	babl deploy "$m" "$T/$m.lua" >/dev/null 2>&1 || check "deploy $m" false
done
for m in $MODES; do
	check_exit 137 bash -c "echo x | timeout -k 5 30 babl $m"
	check_stderr_contains "the Lua worker running it died or was stopped (the node's log says why); none of its changes were kept"
	[ "$m" = othercall ] && check_eq "othercall: no output of another call reaches the caller" "" "$(cat "$T/out")"
	still_serving "a worker that does '$m'"
done
check "the node's log says a worker sent a malformed message" \
	grep -q "Lua worker [0-9]* sent a malformed message; killing it" "$T/w.log"
check "... and a malformed frame" grep -q "Lua worker [0-9]* sent a malformed frame; killing it" "$T/w.log"
check "babl log badwrites" babl log badwrites
keep
check "babl log records the worker's death" grep -q 'signal 9 (Lua worker died)' "$T/view"
# With the real worker again: none of those calls' writes were kept.
stop_meshd w
start_meshd w || finish
printf 'function handle(req)\n  babl.write(tostring(babl.kv.get("k")), "\\n")\nend\n' >"$T/getk.lua"
for m in $MODES; do
	babl deploy "$m" "$T/getk.lua" >/dev/null 2>&1 || check "deploy $m again" false
done
check_eq "no call of a misbehaving worker set its kv" "nil nil nil nil nil nil" \
	"$(for m in $MODES; do babl "$m" </dev/null 2>&1; done | tr '\n' ' ' | sed 's/ $//')"
check "babl verify" babl verify
finish
