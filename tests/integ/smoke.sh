#!/bin/bash
# smoke.sh - one node, one native service: the basic contract of babl(1).
# timeout: 120
. "$(dirname "$0")/lib.sh"

# Without a node.
check_exit 0 babl --help
check_exit 0 babl --version
check_exit 64 babl
check_exit 69 babl -n ipc:///nonexistent/x.sock cat </dev/null
check_stderr_contains ipc:///nonexistent/x.sock

start_meshd a --tcp || finish

check "deploy cat" babl deploy cat -- cat
check_eq "echo hello | babl cat" hello "$(echo hello | babl cat)"
check_eq "empty input" "" "$(babl cat </dev/null)"
check_eq "the same call over tcp" hello "$(echo hello | babl -n "${TCP[a]}" cat)"
check_exit 69 babl no-such-service </dev/null
check_stderr_contains no-such-service

check "babl ls" babl ls
check_eq "babl ls lists cat" cat "$(awk '$1 == "cat" { print $1 }' "$T/out")"
check "babl info cat" babl info cat
check "babl status" babl status
check "babl verify" babl verify

# A clean stop, and the deploy is still there after a restart.
check "meshd stops cleanly on SIGTERM" stop_meshd a
start_meshd a || finish
check_eq "cat is still deployed after a restart" hello "$(echo hello | babl cat)"

# A second meshd on the same data directory is refused (the journal is
# locked), and the first serves on.
check_exit 1 timeout 20 "$BABL_BUILD/meshd" --data "$T/a" --listen "ipc://$T/second.sock"
check_stderr_contains "in use by another process"
check_eq "the first node still serves" hello "$(echo hello | babl cat)"

finish
