#!/usr/bin/env bash
# relay.sh - coord and the relay as real processes on loopback: the relay follows coord's
# admission stream with its token and coord's pin, reports its own pin, serves the
# upgrade over TLS and plain HTTP, admits approved nodes only, cuts a deleted node at
# once, forwards between two nodes, serves metrics, keeps serving on its saved list while
# coord is down, and stops gracefully (exit 0).
# Usage: tests/e2e/relay.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?usage: relay.sh BUILD_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"

COORD="$BUILD/coord/coord"
RELAY="$BUILD/relay/relay"
SIM="$BUILD/tests/tools/nodesim"
PROBE="$BUILD/tests/tools/relayprobe"
STATE="$E2E_TMP/coord"
RSTATE="$E2E_TMP/relay"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + RANDOM % 30000))
}

start_coord() {
	"$COORD" serve --state "$STATE" --listen 127.0.0.1:${CPORT:-0} --keepalive 1s \
		>"$E2E_TMP/coord.out" 2>"$E2E_TMP/coord.log" &
	COORD_PID=$!
	track "$COORD_PID"
	wait_for 10 grep -q "listening on 127.0.0.1:[0-9][0-9]*," "$E2E_TMP/coord.out" || { cat "$E2E_TMP/coord.out" "$E2E_TMP/coord.log"; return 1; }
	CPORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\),.*/\1/p' "$E2E_TMP/coord.out")
	PIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/coord.out" | head -1)
	URL="https://127.0.0.1:$CPORT"
}

start_relay() {
	"$RELAY" --coord "$URL" --token "$RTOK" --pin "$PIN" --listen "127.0.0.1:$RPORT" \
		--plain-http "127.0.0.1:$HPORT" --stun off --metrics "127.0.0.1:$MPORT" \
		--state "$RSTATE" >"$E2E_TMP/relay.out" 2>"$E2E_TMP/relay.log" &
	RELAY_PID=$!
	track "$RELAY_PID"
	wait_for 10 grep -q "listening on" "$E2E_TMP/relay.out" || { cat "$E2E_TMP/relay.log"; return 1; }
	RPIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/relay.out" | head -1)
}

adm() { "$COORD" --state "$STATE" "$@"; }
sim() { local dir=$1; shift; "$SIM" register --coord "$URL" --pin "$PIN" --state "$E2E_TMP/$dir" "$@"; }
probe() { local mode=$1; shift; "$PROBE" "$mode" --url "https://127.0.0.1:$RPORT" --pin "$RPIN" "$@"; }
node_key() { adm nodes show "$1" | grep -o '"node_key": "[^"]*"' | cut -d'"' -f4; }
metric() { curl -s "http://127.0.0.1:$MPORT/metrics" | grep -q "^$1 $2\$"; }
http_code() { curl -sk --http1.1 -o /dev/null -w '%{http_code}' --max-time 2 "$@"; }

RPORT=$(free_port)
HPORT=$(free_port)
MPORT=$(free_port)

check "coord starts" start_coord
RTOK=$(adm relays add r1 "https://127.0.0.1:$RPORT" | tail -1)
check "relays add prints a token" grep -q '^mvpn-relay-' <<<"$RTOK"
AKEY=$(adm keys create --reusable | tail -1)
sim a --hostname alpha --auth-key "$AKEY" >/dev/null
sim b --hostname bravo --auth-key "$AKEY" >/dev/null
sim p --hostname pending >/dev/null

check "relay starts and prints its certificate pin" start_relay
check "the relay key and certificate are 0600 files in its state dir" \
	test "$(stat -c %a "$RSTATE/relay.key") $(stat -c %a "$RSTATE/tls.key")" = "600 600"
check_within "coord lists the relay connected, with its pin" 10 \
	bash -c "'$COORD' --state '$STATE' relays list | grep r1 | grep yes | grep -qF '$RPIN'"
check "the log never holds the token" bash -c "! grep -qF '$RTOK' '$E2E_TMP/relay.log'"
check_within "metrics: the coord stream is up and 2 keys are admitted" 10 \
	bash -c "$(declare -f metric); MPORT=$MPORT; metric relay_coord_connected 1 && metric relay_admitted_keys 2"

# --- HTTP ---
if command -v curl >/dev/null; then
	check "GET /healthz over TLS answers ok" bash -c "curl -sk 'https://127.0.0.1:$RPORT/healthz' | grep -qx ok"
	check "GET /healthz over plain HTTP answers ok" bash -c "curl -s 'http://127.0.0.1:$HPORT/healthz' | grep -qx ok"
	check "GET /relay with the upgrade answers 101 (TLS)" bash -c "curl -sk --http1.1 -i --max-time 2 \
		-H 'Connection: Upgrade' -H 'Upgrade: meshvpn-relay' 'https://127.0.0.1:$RPORT/relay' | head -1 | grep -q ' 101 '"
	check "GET /relay with the upgrade answers 101 (plain)" bash -c "curl -s -i --max-time 2 \
		-H 'Connection: Upgrade' -H 'Upgrade: meshvpn-relay' 'http://127.0.0.1:$HPORT/relay' | head -1 | grep -q ' 101 '"
	check "GET /relay without the upgrade is 426" test "$(http_code "https://127.0.0.1:$RPORT/relay")" = 426
	check "another path is 404" test "$(http_code "https://127.0.0.1:$RPORT/nope")" = 404
fi
if command -v openssl >/dev/null; then
	check "openssl s_client verifies the pinned certificate's key" bash -c "echo | openssl s_client \
		-connect 127.0.0.1:$RPORT 2>/dev/null | openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER \
		| sha256sum | grep -q '${RPIN#sha256:}'"
fi

# --- admission ---
check "an approved node is admitted" probe hello --state "$E2E_TMP/a"
check "... over plain HTTP too" "$PROBE" hello --url "http://127.0.0.1:$HPORT" --state "$E2E_TMP/a"
check_fails "an unknown key is refused" probe hello
check "... and told so" bash -c "'$PROBE' hello --url https://127.0.0.1:$RPORT --pin $RPIN | grep -qx 'refused not_admitted'"
check_fails "a pending node is refused" probe hello --state "$E2E_TMP/p"
check "metrics count the refusals" bash -c "curl -s http://127.0.0.1:$MPORT/metrics | grep -q 'relay_connections_refused_total{reason=\"not_admitted\"} 3'"

# --- forwarding ---
probe hold --state "$E2E_TMP/b" --timeout 60 >"$E2E_TMP/b.hold" &
HOLD=$!
track $HOLD
check_within "b holds a connection" 10 grep -q admitted "$E2E_TMP/b.hold"
BKEY=$(node_key bravo)
AKEYN=$(node_key alpha)
check "a sends to b" probe send --state "$E2E_TMP/a" --to "$BKEY" --data "hello-bravo"
check_within "b receives it from a" 5 grep -qF "recv $AKEYN hello-bravo" "$E2E_TMP/b.hold"
NOBODY=$(head -c 32 /dev/urandom | base64)
check "to an absent node: peer-gone" bash -c "'$PROBE' send --url https://127.0.0.1:$RPORT --pin $RPIN \
	--state '$E2E_TMP/a' --to '$NOBODY' --data x | grep -qx 'gone not_here'"
check_within "metrics count the forwarded packet" 5 bash -c "curl -s http://127.0.0.1:$MPORT/metrics | grep -q '^relay_packets_forwarded_total [1-9]'"
# TLS garbage and a client that connects and says nothing: only those go, counted.
tls_garbage() { exec 3<>/dev/tcp/127.0.0.1/"$RPORT" && printf 'GARBAGE\r\n\r\n\x16\x03\x01\x00\xff%0300d' 0 >&3; exec 3<&-; }
check "TLS garbage on the relay's port is answered by a close" tls_garbage
check_within "metrics count the failed handshake" 5 bash -c "curl -s http://127.0.0.1:$MPORT/metrics | grep -q '^relay_tls_handshake_failures_total [1-9]'"
check "the relay still admits after the garbage" probe hello --state "$E2E_TMP/a"

# --- removal ---
T0=$(date +%s%N)
adm nodes delete bravo >/dev/null
check_within "deleting b cuts its relay connection within a second" 1 grep -qx "gone not_admitted" "$E2E_TMP/b.hold"
wait $HOLD 2>/dev/null
untrack $HOLD
echo "    (cut after $(( ($(date +%s%N) - T0) / 1000000 )) ms)"
check_fails "b is refused afterwards" probe hello --state "$E2E_TMP/b"

# --- coord down: the saved list keeps serving ---
check "the admission list is saved, 0600" test "$(stat -c %a "$RSTATE/admitted")" = 600
kill "$RELAY_PID"; wait "$RELAY_PID"; RC=$?
untrack "$RELAY_PID"
check "SIGTERM stops the relay with exit 0" test "$RC" = 0
kill -9 "$COORD_PID"; wait "$COORD_PID" 2>/dev/null
untrack "$COORD_PID"
check "the relay restarts while coord is down" start_relay
check "... and admits from its saved list" probe hello --state "$E2E_TMP/a"
check_fails "... and still refuses the deleted node" probe hello --state "$E2E_TMP/b"
check "metrics: coord stream down" metric relay_coord_connected 0
check "coord comes back" start_coord
check_within "the relay reconnects to coord" 40 \
	bash -c "'$COORD' --state '$STATE' relays list | grep r1 | grep -q yes"

# --- bad usage ---
"$RELAY" --token x >/dev/null 2>&1; RC=$?
check "missing --coord is a usage error (2)" test "$RC" = 2
"$RELAY" --coord "$URL" --token "$RTOK" --state "$RSTATE" --listen "127.0.0.1:$RPORT" >/dev/null 2>&1; RC=$?
check "a second relay on the same state dir exits 1" test "$RC" = 1

finish
