#!/bin/bash
# pipeline.sh - babl in shell pipelines: big binary streams through three
# services compared byte for byte with the local pipeline, text pipelines,
# every kind of stdin, early exit of the reader, and real streaming.
# timeout: 240
. "$(dirname "$0")/lib.sh"
export LC_ALL=C

MIB=120
[ "${BABL_ASAN-}" = 1 ] && MIB=20

start_meshd a || finish

check "deploy cat" babl deploy cat -- cat
check "deploy gz" babl deploy gz -- gzip -n -c
check "deploy gunz" babl deploy gunz -- gzip -d -c
check "deploy sha" babl deploy sha -- sha256sum
check "deploy grep" babl deploy grep -- grep
check "deploy sort" babl deploy sort -- sort
check "deploy wc" babl deploy wc -- wc -l

# --- a big binary stream through three services
head -c "${MIB}M" /dev/urandom >"$T/in.bin"
babl gz <"$T/in.bin" 2>"$T/gz.err" | tee "$T/gz.remote" | babl gunz 2>"$T/gunz.err" |
	babl cat >"$T/out.bin" 2>"$T/cat.err"
st=("${PIPESTATUS[@]}")
check_eq "gz | gunz | cat: every stage exits 0" "0 0 0 0" "${st[*]}"
check "gz | gunz | cat over $MIB MiB equals the input (cmp)" cmp "$T/in.bin" "$T/out.bin"
gzip -n -c <"$T/in.bin" >"$T/gz.local"
check "babl gz output equals local gzip -n -c byte for byte" cmp "$T/gz.local" "$T/gz.remote"
check_eq "babl sha equals local sha256sum" "$(sha256sum <"$T/in.bin")" "$(babl sha <"$T/in.bin")"
rm -f "$T/gz.local" "$T/gz.remote" "$T/out.bin"

# --- a text pipeline against the local one
awk 'BEGIN { for (i = 0; i < 200000; i++)
	printf "%07d %s line %d %s\n", (i * 7919) % 1000003, (i % 3 ? "y" : "X"), i, (i % 5 ? "abc" : "foo") }' \
	>"$T/text"
want=$(grep X <"$T/text" | sort | wc -l)
got=$(babl grep X <"$T/text" | babl sort | babl wc)
check_eq "grep X | sort | wc -l equals the local pipeline ($want)" "$want" "$got"
want=$(grep X <"$T/text" | sort | sha256sum)
got=$(babl grep X <"$T/text" | babl sort | babl sha)
check_eq "grep X | sort gives the same bytes as locally" "$want" "$got"
check_eq "service arguments are appended: babl grep -c foo" \
	"$(grep -c foo <"$T/text")" "$(babl grep -c foo <"$T/text")"
check_eq "babl grep -v -c y (two arguments)" \
	"$(grep -v -c y <"$T/text")" "$(babl grep -v -c y <"$T/text")"

# --- every kind of stdin
printf 'one\ntwo\n' >"$T/small"
check_eq "stdin from a file" "$(printf 'one\ntwo')" "$(babl cat <"$T/small")"
check_eq "stdin from a pipe" "$(printf 'one\ntwo')" "$(cat "$T/small" | babl cat)"
check_exit 0 babl cat </dev/null
check_eq "stdin /dev/null: empty output" "" "$(cat "$T/out")"
_run babl cat <&-
check_eq "closed stdin: exit 0" 0 "$RC"
check_eq "closed stdin: empty output" "" "$(cat "$T/out")"
printf 'a\0b\0\377\376\n' >"$T/nul"
check "NUL and high bytes pass through unchanged" cmp "$T/nul" <(babl cat <"$T/nul")
check_eq "no trailing newline is added" 3 "$(printf abc | babl cat | wc -c)"

# --- the reader goes away: yes | babl cat | head -1 ends
timeout 20 bash -c 'yes | babl cat | head -n 1' >"$T/yes.out" 2>"$T/yes.err"
rc=$?
check_eq "yes | babl cat | head -1 ends (no timeout)" 0 "$rc"
check_eq "yes | babl cat | head -1 prints y" y "$(cat "$T/yes.out")"
check "the node serves after that" wait_until 10 babl status
check_eq "echo ok | babl cat after head left" ok "$(echo ok | babl cat)"

# --- streaming: the first line comes back before stdin ends
coproc STREAM { babl cat 2>"$T/stream.err"; }
spid=$STREAM_PID
exec {sin}>&"${STREAM[1]}" {sout}<&"${STREAM[0]}"
echo first >&"$sin"
line=""
read -r -t 10 line <&"$sout"
check_eq "first line arrives while stdin is still open" first "$line"
echo second >&"$sin"
line=""
read -r -t 10 line <&"$sout"
check_eq "second line arrives while stdin is still open" second "$line"
exec {sin}>&-
eval "exec ${STREAM[1]}>&-" 2>/dev/null
rest=$(timeout 10 cat <&"$sout")
check_eq "after stdin closes, babl ends with nothing more" "" "$rest"
exec {sout}<&-
for ((i = 0; i < 100; i++)); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
wait "$spid" 2>/dev/null
check_eq "the streaming babl exits 0" 0 "$?"

# tail -f style: output flows from a service that keeps its stdin open.
mkfifo "$T/fifo"
babl grep --line-buffered ERR <"$T/fifo" >"$T/grep.out" 2>&1 &
gpid=$!
exec {fw}>"$T/fifo"
printf 'x\nERR one\ny\n' >&"$fw"
check "a line-buffered grep answers before its input ends" \
	wait_until 10 grep -q "ERR one" "$T/grep.out"
exec {fw}>&-
for ((i = 0; i < 100; i++)); do kill -0 "$gpid" 2>/dev/null || break; sleep 0.1; done
wait "$gpid"
check_eq "that grep exits 0 once input ends" 0 "$?"

# --progress: bytes and rate on stderr, the output untouched.
head -c 5000000 /dev/zero >"$T/zeros"
check_eq "--progress leaves stdout alone" 5000000 "$(babl --progress cat <"$T/zeros" 2>"$T/progress" | wc -c)"
check "--progress ends with the totals" grep -qE 'babl: sent 4\.8 MiB, received 4\.8 MiB, [0-9.]+ MB/s in [0-9.]+ s$' "$T/progress"

check "babl verify after all that" babl verify
finish
