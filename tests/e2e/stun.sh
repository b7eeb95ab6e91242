#!/usr/bin/env bash
# stun.sh - end-to-end: the relay's STUN server (tests/tools/stun_serve) against stock
# clients: coturn's turnutils_stunclient (RFC 5389) on 127.0.0.1 and ::1, and stun-client
# (RFC 3489 classic, IPv4 only) on 127.0.0.1. Each must report its own address and port as
# the mapped one. A client that is not installed is skipped (scripts/lib/deps.sh installs
# coturn and stun-client for scripts/test).
# Usage: tests/e2e/stun.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?usage: stun.sh BUILD_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"

SERVE="$BUILD/tests/tools/stun_serve"
SERVE_PID=""
PORT=""

# start_serve NAME ADDR: stun_serve on ADDR (port 0), its port in $PORT
start_serve() {
	"$SERVE" "$2" >"$E2E_TMP/$1.out" 2>"$E2E_TMP/$1.log" &
	SERVE_PID=$!
	track "$SERVE_PID"
	wait_for 10 grep -q "stun listening" "$E2E_TMP/$1.out" || { cat "$E2E_TMP/$1.log"; return 1; }
	PORT=$(sed -n 's/^stun listening port=\([0-9]*\)$/\1/p' "$E2E_TMP/$1.out")
	[ -n "$PORT" ]
}

stop_serve() {
	kill "$SERVE_PID"
	wait "$SERVE_PID" 2>/dev/null
	untrack "$SERVE_PID"
}

# replied NAME ADDR: the server logged a reply to ADDR (what it saw as the source)
replied() { grep -qF "msg=\"stun reply\" to=$2 " "$E2E_TMP/$1.log"; }

# turn_check NAME IP: turnutils_stunclient's reflexive address is IP:port (it prints IPv6
# unbracketed), and that is the source the server answered.
turn_check() {
	local out addr ip port
	out=$(timeout 20 turnutils_stunclient -p "$PORT" -L "$2" "$2" 2>&1) || { echo "$out"; return 1; }
	echo "$out"
	addr=$(sed -n 's/.*UDP reflexive addr: \(.*\)$/\1/p' <<<"$out" | head -1)
	ip=${addr%:*}
	port=${addr##*:}
	[ "$ip" = "$2" ] && [ -n "$port" ] && [ "$port" -gt 0 ] 2>/dev/null ||
		{ echo "reflexive addr '$addr' is not $2:port"; return 1; }
	case "$ip" in *:*) addr="[$ip]:$port" ;; esac
	replied "$1" "$addr" || { echo "server answered no $addr"; cat "$E2E_TMP/$1.log"; return 1; }
}

# classic_check NAME: stun-client from a known source port reads that port back (three
# tries, in case a random port is taken).
classic_check() {
	local out src try
	for try in 1 2 3; do
		src=$(( 40000 + RANDOM % 20000 ))
		out=$(timeout 20 stun "127.0.0.1:$PORT" 1 -v -p "$src" 2>&1) && break
	done
	echo "$out"
	grep -q "mappedAddr=127.0.0.1:$src\$" <<<"$out" || { echo "no mappedAddr=127.0.0.1:$src"; return 1; }
	replied "$1" "127.0.0.1:$src"
}

# The full run (tests I-III, change requests answered 420) must end with an answer.
classic_full() {
	local out
	out=$(timeout 30 stun "127.0.0.1:$PORT" 2>&1)
	echo "$out"
	grep -q "^Primary: Open" <<<"$out"
}

counted() { grep -q "stun stopped requests=[1-9][0-9]* responses=[1-9]" "$E2E_TMP/$1.out"; }

have_turn=1; command -v turnutils_stunclient >/dev/null || have_turn=0
have_classic=1; command -v stun >/dev/null || have_classic=0
[ $have_turn = 1 ] || echo "skip: turnutils_stunclient not installed (apt-get install coturn)"
[ $have_classic = 1 ] || echo "skip: stun not installed (apt-get install stun-client)"

check "stun_serve starts on 127.0.0.1" start_serve v4 127.0.0.1:0
if [ $have_turn = 1 ]; then
	check "turnutils_stunclient gets 127.0.0.1 and its port" turn_check v4 127.0.0.1
fi
if [ $have_classic = 1 ]; then
	check "stun-client (RFC 3489) gets its mapped address" classic_check v4
	check "stun-client's full NAT test reads an open host" classic_full
fi
stop_serve
check "stun_serve prints its counters at SIGTERM" counted v4

if ip -6 addr show dev lo 2>/dev/null | grep -q "inet6 ::1"; then
	check "stun_serve starts on ::1" start_serve v6 "[::1]:0"
	if [ $have_turn = 1 ]; then
		check "turnutils_stunclient gets ::1 and its port" turn_check v6 ::1
	fi
	stop_serve
else
	echo "skip: no IPv6 loopback"
fi

check "stun_serve starts dual-stack on [::]" start_serve dual "[::]:0"
if [ $have_turn = 1 ]; then
	check "an IPv4 client of the dual-stack socket hears an IPv4 address" turn_check dual 127.0.0.1
fi
stop_serve

finish
