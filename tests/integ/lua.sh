#!/bin/bash
# lua.sh - Lua services as a user sees them: the contrib examples (upper,
# wc, counter, kv, json), deploy-time syntax errors, runtime errors and exit
# statuses, the request fields, streaming of lines, kv state that survives
# restarts and kill -9 but not failed, cancelled or cut-short calls,
# serialised kv under concurrency, and every sandbox escape and exhaustion
# vector of the issue, each followed by a check that the node still serves.
# Fixtures are in tests/lua/.
# timeout: 240
. "$(dirname "$0")/lib.sh"
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SVC=$ROOT/contrib/services
FIX=$ROOT/tests/lua

# Sizes and counts, smaller under the sanitizers.
MB=4
PAR=20
if [ "${BABL_ASAN-}" = 1 ]; then
	MB=1
	PAR=10
fi

# bcall SECS ARGS...: babl ARGS with stdin from /dev/null, bounded; output
# in $T/out and $T/err, status in $RC.
bcall() {
	local secs=$1
	shift
	timeout -k 5 "$secs" babl "$@" </dev/null >"$T/out" 2>"$T/err"
	RC=$?
}

# Lua workers of this suite's nodes, one "pid cwd" line each.
lua_workers() {
	local p c
	for p in /proc/[0-9]*; do
		[ "$(cat "$p/comm" 2>/dev/null)" = meshd-lua ] || continue
		c=$(readlink "$p/cwd" 2>/dev/null) || continue
		case $c in "$T"/*) echo "${p#/proc/} $c" ;; esac
	done
}

still_serving() {
	check_eq "after $1: echo ok | babl upper" OK "$(echo ok | timeout 20 babl upper 2>&1)"
}

start_meshd a || finish

# ---------------------------------------------------------------- examples
for s in upper wc counter kv json; do
	check "deploy $s" babl deploy "$s" "$SVC/$s.lua"
done

check_eq "upper: hello" HELLO "$(echo hello | babl upper)"
head -c $((MB * 3 / 4))M /dev/urandom | base64 -w 76 >"$T/text"
head -c 1M /dev/urandom >"$T/bin"
tr a-z A-Z <"$T/text" >"$T/text.up"
tr a-z A-Z <"$T/bin" >"$T/bin.up"
timeout 60 babl upper <"$T/text" >"$T/got" 2>"$T/err"
check_eq "upper over $(stat -c %s "$T/text") bytes of text: exit 0" 0 "$?"
check "upper over text equals tr a-z A-Z" cmp "$T/got" "$T/text.up"
timeout 60 babl upper <"$T/bin" >"$T/got" 2>"$T/err"
check_eq "upper over 1 MiB of random bytes: exit 0" 0 "$?"
check "upper over random bytes equals tr a-z A-Z (binary safe)" cmp "$T/got" "$T/bin.up"
check_eq "upper of empty input is empty" 0 "$(babl upper </dev/null | wc -c)"

# wc: text with spaces, tabs and empty lines, words across chunk boundaries
tr '+/' ' \t' <"$T/text" | sed 's/^Q.*//' >"$T/words"
printf 'last line without newline   ' >>"$T/words"
# The service reads a pipe, so the local side does too: wc pads its columns
# to the size of a regular file, but to 7 for a pipe.
check_eq "wc equals wc(1)" "$(cat "$T/words" | wc)" "$(timeout 60 babl wc <"$T/words")"
check_eq "wc -l equals wc -l" "$(wc -l <"$T/words")" "$(timeout 60 babl wc -l <"$T/words")"
check_eq "wc -w equals wc -w" "$(wc -w <"$T/words")" "$(timeout 60 babl wc -w <"$T/words")"
check_eq "wc -c equals wc -c" "$(wc -c <"$T/words")" "$(timeout 60 babl wc -c <"$T/words")"
check_eq "wc -lw equals wc -lw" "$(cat "$T/words" | wc -lw)" "$(timeout 60 babl wc -lw <"$T/words")"
check_eq "wc of a short text" "$(printf ' a  b\tc\n\nd\n' | wc)" "$(printf ' a  b\tc\n\nd\n' | babl wc)"
check_eq "wc of nothing" "$(wc </dev/null)" "$(babl wc </dev/null)"
check_exit 2 babl wc -x </dev/null

# counter: one per call, across calls, a clean restart and kill -9
check_eq "counter: first call prints 1" 1 "$(babl counter </dev/null)"
check_eq "counter: second call prints 2" 2 "$(babl counter </dev/null)"
check_eq "counter: third call prints 3" 3 "$(babl counter </dev/null)"
stop_meshd a
start_meshd a || finish
check_eq "counter after a restart prints 4" 4 "$(babl counter </dev/null)"
kill9_meshd a
start_meshd a || finish
check_eq "counter after kill -9 between calls prints 5" 5 "$(babl counter </dev/null)"
check_eq "counter goes on: 6" 6 "$(babl counter </dev/null)"

# Many small calls at once share Lua workers (a worker takes several calls
# whose input came whole): each still counts exactly once, in log order.
_run "$BABL_BUILD/tests/babl-load" -n "$(node_url a)" -c 16 --rounds 40 -s 0 counter
check_eq "640 concurrent counter calls: all exit 0" 0 "$RC" || sed 's/^/    /' "$T/err" | head -5
check_eq "counter after them: 647" 647 "$(babl counter </dev/null)"
babl log counter | awk '$1 ~ /^[0-9]+$/' >"$T/counter.log"
check_eq "babl log counter (its last 100 runs): all exit 0" "100 100" \
	"$(wc -l <"$T/counter.log") $(grep -c 'exit 0$' "$T/counter.log")"

# kv
check "kv set a 1" babl kv set a 1 </dev/null
check "kv set b 'two words'" babl kv set b "two words" </dev/null
check "kv set ab 3" babl kv set ab 3 </dev/null
check_eq "kv get a" 1 "$(babl kv get a </dev/null)"
check_eq "kv get b" "two words" "$(babl kv get b </dev/null)"
check_eq "kv keys, sorted" "a ab b" "$(babl kv keys </dev/null | tr '\n' ' ' | sed 's/ $//')"
check_eq "kv keys a" "a ab" "$(babl kv keys a </dev/null | tr '\n' ' ' | sed 's/ $//')"
check "kv del a" babl kv del a </dev/null
check_exit 1 babl kv get a </dev/null
check_stderr_contains "no such key"
check_eq "kv keys after del" "ab b" "$(babl kv keys </dev/null | tr '\n' ' ' | sed 's/ $//')"
check "kv set ab again" babl kv set ab 30 </dev/null
check_eq "kv get ab: the later value" 30 "$(babl kv get ab </dev/null)"
check_exit 2 babl kv frob </dev/null
check_eq "the counter's store is its own" "" "$(babl kv keys n </dev/null)"

# json
printf '{"b":1,"a":[1,2.50,{"c":null,"d":[]}],"s":"x\\"y\\u00e9","t":true}\n[ ]\n' >"$T/doc.json"
cat >"$T/doc.pretty" <<'EOF'
{
  "b": 1,
  "a": [
    1,
    2.50,
    {
      "c": null,
      "d": []
    }
  ],
  "s": "x\"y\u00e9",
  "t": true
}
[]
EOF
timeout 20 babl json <"$T/doc.json" >"$T/got" 2>"$T/err"
check_eq "json: exit 0" 0 "$?"
check "json pretty-prints: two-space indents, one member per line" cmp "$T/got" "$T/doc.pretty"
check_eq "json -c: compact" '{"b":1,"a":[1,2.50,{"c":null,"d":[]}],"s":"x\"y\u00e9","t":true}' \
	"$(head -n 1 "$T/doc.json" | babl json -c)"
_run babl json <<<$'{\n  "a": [1,\n  2,,\n]}'
check_eq "json: malformed input exits 1" 1 "$RC"
check_stderr_contains "json: line 3:"

# ------------------------------------------------- deploys, errors, statuses
check "deploy rt (rterr.lua)" babl deploy rt "$FIX/rterr.lua"
check_exit 65 babl deploy rt "$FIX/broken.lua"
check_stderr_contains "broken.lua:4:"
check_exit 65 babl deploy newsvc "$FIX/broken.lua"
check_stderr_contains "broken.lua:4:"
check "babl info rt" babl info rt
keep
check_eq "the refused deploy added no version" 1 "$(grep -cE '^ +[0-9]+  [0-9a-f]{64}  ' "$T/view")"
check_exit 69 babl newsvc </dev/null
_run babl rt </dev/null
check_eq "rt: an uncaught error exits 1 (the previous version still runs)" 1 "$RC"
check_eq "rt: stdout before the error is kept" before "$(cat "$T/out")"
check_stderr_contains "rterr.lua:4:"
check_stderr_contains "stack traceback:"
check_stderr_contains "rterr.lua:8:"
check_stderr_contains "rterr.lua:13:"

check "deploy exit7" babl deploy exit7 "$FIX/exit7.lua"
check_exit 7 babl exit7 </dev/null
check_eq "exit7 wrote its line" seven "$(cat "$T/out")"
check "babl log exit7 shows exit 7" wait_until 10 bash -c "babl log exit7 | grep -q 'exit 7$'"

# req fields
check "deploy req" babl deploy req "$FIX/req.lua"
t0=$(date +%s%3N)
_run babl req one "two words" "" </dev/null
t1=$(date +%s%3N)
keep
field() { sed -n "s/^$1=//p" "$T/view"; }
check_eq "req: exit 0" 0 "$RC"
check_eq "req.args" "one|two words|" "$(field args)"
check_eq "#req.args" 3 "$(field nargs)"
check_eq "req.service" req "$(field service)"
rid=$(field id)
check "req.id is 32 hex digits ($rid)" grep -qxE '[0-9a-f]{32}' <<<"$rid"
check "req.id is the request babl log shows" wait_until 10 bash -c "babl log req | grep -qF '$rid'"
rt=$(field time)
check "req.time ($rt) is milliseconds close to now ($t0..$t1)" \
	test "${rt:-0}" -ge $((t0 - 60000)) -a "${rt:-0}" -le $((t1 + 60000))
check_eq "os.time() is req.time in whole seconds" "$((${rt:-0} / 1000))" "$(field ostime)"
check_eq "babl.now() is req.time in seconds" \
	"$(printf '%d.%03d' $((${rt:-0} / 1000)) $((${rt:-0} % 1000)))" "$(field now)"
_run babl req </dev/null
keep
check_eq "req.args with no arguments is empty" 0 "$(field nargs)"
check "another call has another id" test "$(field id)" != "$rid"

# ---------------------------------------------------------------- streaming
check "deploy lines" babl deploy lines "$FIX/lines.lua"
coproc LN { exec babl lines 2>&1; }
lnpid=$LN_PID
# copies: bash closes the coprocess's own descriptors when it exits
exec {lin}>&"${LN[1]}" {lout}<&"${LN[0]}"
lnw=${LN[1]}
exec {lnw}>&-
echo first >&"$lin"
got=""
read -r -t 10 -u "$lout" got
check_eq "streaming: the first line comes back before input ends" "1:first" "$got"
echo second >&"$lin"
got=""
read -r -t 10 -u "$lout" got
check_eq "streaming: then the second" "2:second" "$got"
printf 'third, no newline' >&"$lin"
exec {lin}>&-
got=""
read -r -t 10 -u "$lout" got
check_eq "streaming: a last line without newline" "3:third, no newline" "$got"
got=""
read -r -t 10 -u "$lout" got
check_eq "streaming: end after EOF" "end:3" "$got"
bounded_wait "$lnpid" 10
check_eq "streaming call exits 0" 0 "$?"
exec {lout}<&-

# ------------------------------------------------------------ kv atomicity
check "deploy st --cpu 1" babl deploy --cpu 1 st "$FIX/st.lua"
check "st set k v1" babl st set k v1 </dev/null
check_eq "st get k" v1 "$(babl st get k </dev/null)"
check_exit 1 babl st setfail k v2 </dev/null
check_stderr_contains "failing after the set"
check_eq "a call that set k then errored left k unchanged" v1 "$(babl st get k </dev/null)"
check_exit 3 babl st setexit k v3 </dev/null
check_eq "a call that set k then exited 3 left k unchanged" v1 "$(babl st get k </dev/null)"
bcall 60 st setspin k v4
check_eq "a call that set k then hit the instruction limit: exit 124" 124 "$RC"
check_eq "... left k unchanged" v1 "$(babl st get k </dev/null)"

# cancelled by Ctrl-C after the set
mkfifo "$T/hold"
babl st setwait k v5 <"$T/hold" >"$T/sw.out" 2>"$T/sw.err" &
swpid=$!
exec {fh}>"$T/hold"
check "setwait (cancel) has set k and waits" wait_until 10 grep -q '^set$' "$T/sw.out"
kill -INT "$swpid"
bounded_wait "$swpid" 15
check_eq "Ctrl-C: babl exits 130" 130 "$?"
exec {fh}>&-
check_eq "a cancelled call left k unchanged" v1 "$(babl st get k </dev/null)"

# its Lua worker killed with SIGKILL after the set
babl st setwait k v6 <"$T/hold" >"$T/sw.out" 2>"$T/sw.err" &
swpid=$!
exec {fh}>"$T/hold"
check "setwait (worker kill) has set k and waits" wait_until 10 grep -q '^set$' "$T/sw.out"
stvid=$(babl info st | grep -oE '^ +1  [0-9a-f]{64}' | awk '{ print $2 }')
wpid=$(lua_workers | awk -v d="/lua-${stvid:0:16}" 'index($2, d) { print $1 }' | head -n 1)
check "found st's Lua worker (${wpid:-none})" test -n "$wpid"
[ -n "$wpid" ] && kill -KILL "$wpid"
bounded_wait "$swpid" 15
RC=$?
exec {fh}>&-
check "a call whose worker was killed fails (exit $RC)" test "$RC" -ne 0 -a "$RC" -ne 124
check_eq "a call whose worker died left k unchanged" v1 "$(babl st get k </dev/null)"
check_eq "the worker is restarted: st set works" 0 "$(babl st set k v7 </dev/null; echo $?)"
check_eq "st get k after a new worker" v7 "$(babl st get k </dev/null)"

# kill -9 of meshd in the middle of a call that has set the key
babl st setwait k v8 <"$T/hold" >"$T/sw.out" 2>"$T/sw.err" &
swpid=$!
exec {fh}>"$T/hold"
check "setwait (meshd kill) has set k and waits" wait_until 10 grep -q '^set$' "$T/sw.out"
cut0=$(babl log st | grep -cE 'node restarted|cancelled')
kill9_meshd a
exec {fh}>&-
bounded_wait "$swpid" 15
check "babl ends when its node is killed" test "$?" -ne 124
start_meshd a || finish
check_eq "after kill -9 mid-call the key is unchanged" v7 "$(babl st get k </dev/null)"
check "the cut-short call is recorded as such (one more 'node restarted' or 'cancelled')" \
	wait_until 10 bash -c "[ \$(babl log st | grep -cE 'node restarted|cancelled') -eq $((cut0 + 1)) ]"
babl log st | tail -n 4 | sed 's/^/    | /'
check "st set after the restart" babl st set k v9 </dev/null
check_eq "st get k: v9" v9 "$(babl st get k </dev/null)"

# kill -9 of meshd while Lua calls that have all their input run: the one
# that touches no kv state runs again from the log after the restart (a
# caller may have had its EXIT before the OUTCOME was durable); the one
# that set a key stays cut short and its write does not take effect
check "deploy rerun" babl deploy rerun "$FIX/rerun.lua"
running() { babl status | grep -qE "^calls: +$1 running"; }
echo hello >"$T/rr.in"
timeout -k 5 60 babl rerun work 200000000 <"$T/rr.in" >/dev/null 2>&1 &
rrpid=$!
timeout -k 5 60 babl rerun set k 200000000 <"$T/rr.in" >/dev/null 2>&1 &
rspid=$!
check "both calls run" wait_until 20 running 2
sleep 1 # (their input is durable within milliseconds; each counts for seconds)
kill9_meshd a
bounded_wait "$rrpid" 15
bounded_wait "$rspid" 15
start_meshd a || finish
check "the node runs the kv-free call again from the log" \
	wait_until 10 grep -q "(rerun) was cut short by the last stop; it runs again from the log" "$T/a.log"
check "its outcome is recorded: exit 0, 6 bytes in, 17 out" \
	wait_until 60 bash -c "babl log rerun | grep -qE ' 6 +17  exit 0\$'"
check "the call that set a key is recorded as cut short" \
	wait_until 60 bash -c "babl log rerun | grep -q 'node restarted'"
check_eq "its write did not take effect" "(none)" "$(babl rerun get k </dev/null)"
babl log rerun | sed 's/^/    | /'

# A kv-free call's OUTCOME is not waited for: it shares the transaction of
# the next call (one durable commit per call, not two, for back-to-back
# calls).  kill -9 just after such calls: each is in the log with exit 0,
# recorded before the kill or run again from the log after it.
commits() { babl status | awk '/^commits:/ { print $2 }'; }
k0=$(commits)
"$BABL_BUILD/tests/babl-load" -n "$(node_url a)" -c 1 --rounds 200 -d 120 -s 6 --expect 6 upper \
	>"$T/bl.out" 2>&1
check "200 back-to-back calls to upper succeed" grep -q '200 calls, 0 errors' "$T/bl.out"
k1=$(commits)
echo "    (200 calls: $((k1 - k0 - 1)) durable transactions)"
# A call's OUTCOME waits 10 ms for the next CALL to share its commit; under
# the sanitizers a client's next call often comes later than that.
if [ "$_slow" = 1 ]; then
	check "200 back-to-back calls took fewer than 300 durable transactions (not two each)" \
		test $((k1 - k0)) -lt 300
fi
for i in 1 22 333; do printf 'late%d\n' "$i" | babl upper >>"$T/late.out"; done
kill9_meshd a
check_eq "the three calls answered before the kill" "LATE1 LATE22 LATE333" "$(tr '\n' ' ' <"$T/late.out" | sed 's/ $//')"
start_meshd a || finish
lastthree() { babl log upper | tail -n 3 | awk '{ print $(NF-3), $(NF-2), $(NF-1), $NF }' | tr '\n' ' '; }
export -f lastthree
check "after kill -9, the last three calls in the log are those, each with exit 0" \
	wait_until 30 bash -c "[ \"\$(lastthree)\" = '6 6 exit 0 7 7 exit 0 8 8 exit 0 ' ]"
babl log upper | tail -n 3 | sed 's/^/    | /'
echo "    (the node ran $(grep -c "(upper) was cut short by the last stop; it runs again" "$T/a.log") of them again from the log)"

# twenty concurrent counter calls, twice: kv is serialised
for round in 1 2; do
	c0=$(babl counter </dev/null)
	pids=()
	for ((i = 0; i < PAR; i++)); do
		timeout -k 5 60 babl counter </dev/null >"$T/c.$i" 2>"$T/c.$i.err" &
		pids+=($!)
	done
	bad=0
	for p in "${pids[@]}"; do
		wait "$p" || bad=$((bad + 1))
	done
	check_eq "round $round: $PAR concurrent counter calls all exit 0" 0 "$bad"
	check_eq "round $round: the $PAR totals are exactly $((c0 + 1))..$((c0 + PAR))" \
		"$(seq $((c0 + 1)) $((c0 + PAR)) | tr '\n' ' ')" \
		"$(cat "$T"/c.? "$T"/c.?? 2>/dev/null | sort -n | tr '\n' ' ')"
	check_eq "round $round: the counter went up by exactly $PAR" $((c0 + PAR + 1)) \
		"$(babl counter </dev/null)"
done

# ------------------------------------------------- escapes and exhaustion
check "babl ls answers" babl ls
# (the wall-clock limit leaves room for the instruction budget to run out
# first, under the sanitizers too)
check "deploy esc --cpu 1 --mem 32 --timeout $((20 * _slow))" \
	babl deploy --cpu 1 --mem 32 --timeout $((20 * _slow)) esc "$FIX/esc.lua"
check "deploy deep --cpu 2 --mem 256 --timeout $((20 * _slow))" \
	babl deploy --cpu 2 --mem 256 --timeout $((20 * _slow)) deep "$FIX/esc.lua"
check_eq "esc ping" pong "$(babl esc ping </dev/null)"

# probe MODE TEXT: refused in the sandbox, exit 0, "blocked: ...TEXT..."
probe() {
	bcall 30 esc "$1"
	keep
	if [ "$RC" = 0 ] && grep -q '^blocked: ' "$T/view" && grep -qF -- "$2" "$T/view"; then
		_ok "esc $1: blocked ($(head -c 100 "$T/view"))"
	else
		_bad "esc $1: blocked with '$2'" "$(_said)"
	fi
	still_serving "esc $1"
}
probe io "global 'io'"
probe os "execute"
probe require "require"
probe dofile "dofile"
probe loadfile "loadfile"
probe loadbin "binary chunk"
probe debug "global 'debug'"
probe gc 'only "count"'
probe dump "dump"
probe strmeta "read-only"
probe globals "read-only"

# limit SVC MODE STATUS TEXT: ends with STATUS and TEXT on stderr; the next
# call of the service runs normally and the node serves.
limit() {
	bcall 60 "$1" "$2"
	if [ "$RC" = "$3" ] && grep -qF -- "$4" "$T/err"; then
		_ok "$1 $2: exit $3, '$4'"
	else
		_bad "$1 $2: exit $3 with '$4' on stderr" "$(_said)"
	fi
	check_eq "after $1 $2: the next call runs" pong "$(timeout 20 babl "$1" ping </dev/null 2>&1)"
	still_serving "$1 $2"
}
limit esc loop 124 "instruction limit"
limit esc pcallloop 124 "instruction limit"
limit esc xpcallloop 124 "instruction limit"
limit esc xpcallhandler 124 "instruction limit"
limit esc coloop 124 "instruction limit"
limit esc memtable 125 "memory limit of 32 MiB"
limit esc memrep 125 "memory limit of 32 MiB"
limit esc memconcat 125 "memory limit of 32 MiB"
limit esc pcallmem 125 "memory limit of 32 MiB"
limit esc bigrep 1 "string.rep: result exceeds the limit"
limit deep recurse 1 "stack overflow"
limit deep crecurse 1 "stack overflow"
limit deep gsubrecurse 1 "stack overflow"

# the wall clock: waiting for input that never comes, and a busy loop
check "deploy slow --timeout 2" babl deploy --timeout 2 slow "$FIX/slow.lua"
mkfifo "$T/never"
exec {nv}<>"$T/never"
timeout -k 5 30 babl slow wait <"$T/never" >"$T/out" 2>"$T/err"
RC=$?
exec {nv}>&-
check_eq "slow wait: killed at its 2 s wall-clock limit: exit 137" 137 "$RC"
check_stderr_contains "limit"
check_eq "slow: the next call works" quick "$(timeout 20 babl slow </dev/null)"
bcall 30 slow spin
check_eq "slow spin: a busy loop is killed at its 2 s limit: exit 137" 137 "$RC"
check_stderr_contains "limit"
check_eq "slow: the next call after the busy loop works" quick "$(timeout 20 babl slow </dev/null)"
check "babl log slow says timeout" bash -c "babl log slow | grep -q timeout"
still_serving "the wall-clock limits"

# ---------------------------------------------------------------- isolation
# A caller that does not read its output holds up no other caller of the
# same Lua service.
head -c 40000000 /dev/urandom | base64 >"$T/slowin"
mkfifo "$T/slow.out"
exec 9<>"$T/slow.out" # held open, never read
babl upper <"$T/slowin" >"$T/slow.out" 9>&- &
slowpid=$!
sleep 1
check_eq "a slow reader of upper does not stall another caller" "HI" "$(echo hi | timeout 15 babl upper 9>&-)"
kill -KILL "$slowpid" 2>/dev/null
wait "$slowpid" 2>/dev/null
exec 9>&-

# The same for small calls, which share workers: a call whose whole input
# came at once and whose caller stops reading its 50 MiB of output pauses
# in its worker, and the calls that share that worker go on.
cat >"$T/gen.lua" <<'LUA'
function handle(req)
  local s = babl.readall()
  if s ~= "" then babl.write(s) return end
  local x = string.rep("x", 65536)
  for i = 1, 800 do babl.write(x) end
end
LUA
check "deploy gen (echo, or 50 MiB when the input is empty)" babl deploy gen "$T/gen.lua"
mkfifo "$T/gen.out"
exec 9<>"$T/gen.out" # held open, never read
# Small calls run before, while and after the stalling call starts, so that
# some share its worker when its caller stops reading.
"$BABL_BUILD/tests/babl-load" -n "$(node_url a)" -c 8 -d 4 -s 100 --expect 100 -t 10 gen \
	>"$T/gen.load" 2>&1 9>&- &
loadpid=$!
sleep 1
babl gen </dev/null >"$T/gen.out" 9>&- &
genpid=$!
wait "$loadpid"
check_eq "small calls to gen while one caller of gen stalls: all good (babl-load exit 0)" 0 "$?" ||
	sed 's/^/    /' "$T/gen.load" | head -5
grep '^calls=' "$T/gen.load" | sed 's/^/    /'
check "the stalled call is still running (paused, not dropped)" kill -0 "$genpid"
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$(meshd_pid a)/status")
lim=128 # MiB (ASan's quarantine of freed memory alone is 256)
[ "${BABL_ASAN-}" = 1 ] && lim=1024
check "meshd peak RSS stays below $lim MiB meanwhile ($hwm KiB)" test "$hwm" -lt $((lim * 1024))
kill -KILL "$genpid" 2>/dev/null
wait "$genpid" 2>/dev/null
exec 9>&-
check_eq "a caller that reads gets all 50 MiB (acknowledged output lets a paused call go on)" \
	52428800 "$(timeout 60 babl gen </dev/null | wc -c)"

# A kv read sees the writes of earlier calls only, never of a later call
# that happens to end first: the log alone decides what it reads.
cat >"$T/kvr.lua" <<'LUA'
function handle(req)
  if req.args[1] == "set" then
    babl.kv.set("k", req.args[2])
    return 0
  end
  babl.readall()
  print(babl.kv.get("k") or "none")
end
LUA
check "deploy kvr" babl deploy kvr "$T/kvr.lua"
babl kvr set old </dev/null
mkfifo "$T/kvr.in"
babl kvr <"$T/kvr.in" >"$T/kvr.a" 2>&1 &
apid=$!
exec 8>"$T/kvr.in"
check "the reading call runs" wait_until $((10 * _slow)) bash -c "babl status | grep -q '^calls: *1 running'"
babl kvr set NEW </dev/null >"$T/kvr.b" 2>&1 8>&- &
bpid=$!
sleep 1
exec 8>&-
bounded_wait "$apid" 20
check_eq "the earlier call reads the value before the later call's write" "old" "$(cat "$T/kvr.a")"
bounded_wait "$bpid" 20
check_eq "the later call ends once the earlier one has" 0 "$?"
check_eq "afterwards the later write is there" "NEW" "$(babl kvr </dev/null)"

# ---------------------------------------------------------------- the end
check "babl status answers" babl status
keep
check "status: no calls left running" wait_until 20 bash -c "babl status | grep -q '^calls: *0 running'"
nw=$(lua_workers | wc -l)
nsvc=$(babl ls | awk 'NR > 1' | wc -l)
# A worker runs one call at a time and idles out after a minute: at most
# one per service plus one per call that ran in parallel.
check "the Lua worker count is bounded ($nw workers, $nsvc services, $PAR in parallel)" test "$nw" -le $((nsvc + PAR))
check_eq "no two workers share a work directory" "" "$(lua_workers | awk '{ print $2 }' | sort | uniq -d)"
check "no zombie Lua workers" bash -c "! ps -eo stat,comm | grep -E '^Z.*meshd-lua'"
check "babl verify" babl verify
finish
