#!/bin/bash
# garbage.sh - bad bytes on the TCP port: random data, oversized and
# truncated frames, garbage after a good HELLO, a wrong protocol version,
# unknown frames, idle connections.  Each gets an ERROR where possible, is
# closed, leaves a line in the node's log, and the node serves on.
# timeout: 120
. "$(dirname "$0")/lib.sh"
export LC_ALL=C

RAW=$BABL_BUILD/tests/rawsend

start_meshd a --tcp || finish
URL=${TCP[a]}
PORT=${URL##*:}
check "deploy cat" babl deploy cat -- cat
check_eq "a call over tcp" hi "$(echo hi | babl -n "$URL" cat)"

loglines() { wc -l <"$T/a.log"; }

# bad NAME EXPECT-REGEX [-w SECS] < BYTES (a file: in a pipeline, bad would
# run in a subshell and its checks would not count): send the bytes, check the answer
# matches, that the connection was closed, that the node logged a line
# about it, and that it still serves.
bad() {
	local name=$1 want=$2 before
	shift 2
	before=$(loglines)
	timeout 60 "$RAW" "$PORT" "$@" >"$T/raw.out" 2>"$T/raw.err"
	echo "    $name: $(tr '\n' ';' <"$T/raw.out" | head -c 300)"
	if [ -n "$want" ]; then
		check "$name: the node answers '$want'" grep -qE "$want" "$T/raw.out"
	fi
	check "$name: the node logs a line about it" \
		wait_until 5 bash -c "tail -n +$((before + 1)) '$T/a.log' | grep -q 'session'"
	check_eq "$name: the node still serves" hi "$(echo hi | timeout 20 babl -n "$URL" cat)"
}

hello() { printf '\x00\x00\x00\x0f\x01BABL\x00\x01\x00\x00\x00\x04test'; }

# A good HELLO gets a WELCOME (the helper itself works).
hello | timeout 20 "$RAW" "$PORT" -w 1 >"$T/raw.out"
check "a good HELLO gets WELCOME" grep -q 'frame WELCOME' "$T/raw.out"

head -c 1M /dev/urandom >"$T/rand"
bad "1 MiB of random bytes" 'closed by peer' -w 10 <"$T/rand"
check "random bytes: an ERROR frame first" grep -q 'frame ERROR' "$T/raw.out"

printf '\x80\x00\x00\x00\x01BABL' >"$T/bytes"
bad "a frame announcing 2 GiB" 'frame ERROR.*closed by peer|closed by peer' -w 10 <"$T/bytes"
check "2 GiB frame: an ERROR frame" grep -q 'frame ERROR' "$T/raw.out"

printf '\x00\x00\x01\x00\x01BABL\x00' >"$T/bytes"
bad "a truncated frame, then close" '' -w 0 <"$T/bytes"

{ hello; printf '\x00\x00\x01\x00\x01BABL\x00'; } >"$T/bytes"
bad "HELLO, then a truncated frame and close" '' -w 0 <"$T/bytes"

{ hello; head -c 4096 /dev/urandom; } >"$T/bytes"
bad "a valid HELLO, then garbage" 'closed by peer' -w 10 <"$T/bytes"
check "HELLO then garbage: WELCOME then ERROR" \
	bash -c "grep -q 'frame WELCOME' '$T/raw.out' && grep -q 'frame ERROR' '$T/raw.out'"

printf '\x00\x00\x00\x0f\x01BABL\x00\x63\x00\x00\x00\x04test' >"$T/bytes"
bad "a HELLO with protocol version 99" 'frame ERROR' -w 10 <"$T/bytes"
check "wrong version: the ERROR names the version" grep -q 'version' "$T/raw.out"
check "wrong version: closed" grep -q 'closed by peer' "$T/raw.out"

printf '\x00\x00\x00\x04\x01BAB' >"$T/bytes"
bad "a HELLO too short for its fields" 'frame ERROR' -w 10 <"$T/bytes"

printf '\x00\x00\x00\x00' >"$T/bytes"
bad "an empty frame" 'frame ERROR' -w 10 <"$T/bytes"

{ hello; printf '\x00\x00\x00\x01\x7f'; } >"$T/bytes"
bad "HELLO, then an unknown frame type" 'frame ERROR' -w 10 <"$T/bytes"

{ hello; printf '\x00\x00\x00\x01\x12'; } >"$T/bytes"
bad "HELLO, then EOF with no call" 'frame ERROR' -w 5 <"$T/bytes"

printf '\x00\x00\x00\x01\x11' >"$T/bytes"
bad "DATA before HELLO" 'frame ERROR' -w 10 <"$T/bytes"

# --- idle connections are closed after about 10 s
before=$(loglines)
hello | timeout 60 "$RAW" "$PORT" -w 30 >"$T/idle-hello.out" 2>&1 &
hpid=$!
timeout 60 "$RAW" "$PORT" -i 50 -w 30 >"$T/idle.out" 2>&1
check_eq "50 idle connections are all closed by the node (within 30 s)" "closed 50 of 50" "$(cat "$T/idle.out")"
wait "$hpid"
check "a connection idle after HELLO is closed too" grep -q 'closed by peer' "$T/idle-hello.out"
check "the node logged the idle connections" \
	bash -c "[ \$(tail -n +$((before + 1)) '$T/a.log' | grep -c 'no request') -ge 50 ]"
check_eq "after the idle connections, the node still serves" hi "$(echo hi | babl -n "$URL" cat)"

# --- a call interrupted by garbage
{
	printf '\x00\x00\x00\x0f\x01BABL\x00\x01\x00\x00\x00\x04test'
	# CALL: target "cat", no id, no timeout, no flags, no args.
	printf '\x00\x00\x00\x18\x10\x00\x00\x00\x03cat\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
	head -c 1000 /dev/urandom
} >"$T/bytes"
bad "a CALL, then garbage" '' -w 10 <"$T/bytes"

# --- channels (wire.h): garbage in a channel ends that channel, not its link
# or the other channels; a bad CHAN frame ends the link.
be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }
# chan ID FORMAT: a CHAN frame of channel ID holding printf FORMAT's bytes
chan() {
	printf "$2" >"$T/cbody"
	be32 $(($(stat -c %s "$T/cbody") + 5))
	printf '\x40'
	be32 "$1"
	cat "$T/cbody"
}
call_cat='\x00\x00\x00\x18\x10\x00\x00\x00\x03cat\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
{ hello; chan 1 "$call_cat"'\x00\x00\x00\x04\x11hi\n\x00\x00\x00\x01\x12'
  chan 2 '\x00\x00\x00\x01\x7f'; } >"$T/bytes"
bad "a link: a call on channel 1, garbage on channel 2" 'still open' -w 3 <"$T/bytes"
check "... channel 2 gets an ERROR" grep -q 'frame CHAN 2 ERROR.*malformed' "$T/raw.out"
check "... and is ended" grep -q 'frame CHAN 2 end' "$T/raw.out"
check "... channel 1's call gives its output" grep -q 'frame CHAN 1 OUT' "$T/raw.out"
check "... and its EXIT" grep -q 'frame CHAN 1 EXIT' "$T/raw.out"
check "... and then channel 1 ends (no WIRE_CALL_AGAIN)" grep -q 'frame CHAN 1 end' "$T/raw.out"
{ hello; chan 5000 ''; } >"$T/bytes"
bad "a CHAN frame for channel 5000" 'frame ERROR.*bad CHAN' -w 10 <"$T/bytes"
check "... ends the link" grep -q 'closed by peer' "$T/raw.out"
{ hello; chan 3 '\x00\x00\x00\x01\x7f'; hello; } >"$T/bytes"
bad "a link, then a frame other than CHAN" 'frame ERROR.*only CHAN frames' -w 10 <"$T/bytes"
{ hello; chan 9 ''; } >"$T/bytes"
bad "the end of a channel never opened" 'frame ERROR.*bad CHAN' -w 10 <"$T/bytes"
{ hello; for i in $(seq 0 256); do chan "$i" '\x00'; done; } >"$T/bytes"
bad "257 channels open at once (each with a frame begun)" 'frame ERROR.*bad CHAN' -w 10 <"$T/bytes"
check "... the node logs the limit" grep -q 'more than 256 channels at once' "$T/a.log"
check "the node is still listed healthy" babl -n "$URL" status
check "babl verify" babl -n "$URL" verify
finish
