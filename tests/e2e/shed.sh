#!/usr/bin/env bash
# shed.sh - coord's load shedding (issue 13): with --shed-unsent-mib 0 every stream
# request counts as overload and is answered 503 with Retry-After and a JSON error,
# before any token is looked at, and counted in coord_shed_total; a relay honours it
# (waits Retry-After plus jitter, not its backoff) and connects once the load is gone
# (coord restarted without the option, on the same port).
# Usage: tests/e2e/shed.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?usage: shed.sh BUILD_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"

COORD="$BUILD/coord/coord"
RELAY="$BUILD/relay/relay"
STATE="$E2E_TMP/coord"
RSTATE="$E2E_TMP/relay"
RETRY=2
need_built "$COORD" "$RELAY"
command -v curl >/dev/null || { echo "skip: curl not installed"; exit 77; }

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + RANDOM % 30000))
}

# start_coord [OPTION...]: on CPORT once it is known.
start_coord() {
	"$COORD" serve --state "$STATE" --listen 127.0.0.1:${CPORT:-0} --keepalive 1s \
		--metrics "127.0.0.1:$CMPORT" "$@" >"$E2E_TMP/coord.out" 2>"$E2E_TMP/coord.log" &
	COORD_PID=$!
	track "$COORD_PID"
	wait_for 10 grep -q "listening on 127.0.0.1:[0-9][0-9]*," "$E2E_TMP/coord.out" || { cat "$E2E_TMP/coord.out" "$E2E_TMP/coord.log"; return 1; }
	CPORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\),.*/\1/p' "$E2E_TMP/coord.out")
	PIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/coord.out" | head -1)
	URL="https://127.0.0.1:$CPORT"
}

stop_coord() {
	kill "$COORD_PID"; wait "$COORD_PID" 2>/dev/null
	untrack "$COORD_PID"
}

start_relay() {
	"$RELAY" --coord "$URL" --token "$RTOK" --pin "$PIN" --listen "127.0.0.1:$RPORT" \
		--stun off --metrics "127.0.0.1:$MPORT" --state "$RSTATE" \
		>"$E2E_TMP/relay.out" 2>"$E2E_TMP/relay.log" &
	RELAY_PID=$!
	track "$RELAY_PID"
	wait_for 10 grep -q "listening on" "$E2E_TMP/relay.out" || { cat "$E2E_TMP/relay.log"; return 1; }
}

adm() { "$COORD" --state "$STATE" "$@"; }
cmetric() { curl -s "http://127.0.0.1:$CMPORT/metrics" | grep -q "^$1 $2\$"; }
rmetric() { curl -s "http://127.0.0.1:$MPORT/metrics" | grep -q "^$1 $2\$"; }
# get PATH [TOKEN]: the whole answer (status line, headers, body) to $E2E_TMP/answer
get() {
	curl -sk --http1.1 -i --max-time 5 ${2:+-H "Authorization: Bearer $2"} "$URL$1" \
		| tr -d '\r' >"$E2E_TMP/answer"
}
answer() { grep -q -- "$1" "$E2E_TMP/answer"; }

RPORT=$(free_port)
MPORT=$(free_port)
CMPORT=$(free_port)

check "coord starts shedding every stream request" start_coord --shed-unsent-mib 0 --shed-retry-after $RETRY
RTOK=$(adm relays add r1 "https://127.0.0.1:$RPORT" | tail -1)

get /v1/map
check "GET /v1/map is answered 503" answer '^HTTP/1.1 503 '
check "... with Retry-After" answer "^Retry-After: $RETRY\$"
check "... and a JSON error saying why, before the token is looked at" \
	answer "^{\"error\":\"coord is overloaded: retry after $RETRY seconds\",\"retry_after\":$RETRY}"
get /v1/relay/stream "$RTOK"
check "GET /v1/relay/stream is answered 503 with Retry-After" \
	bash -c "grep -q '^HTTP/1.1 503 ' '$E2E_TMP/answer' && grep -q '^Retry-After: $RETRY\$' '$E2E_TMP/answer'"
get /healthz
check "other requests are served" answer '^HTTP/1.1 200 '
check "metrics count the shed requests per endpoint" \
	bash -c "$(declare -f cmetric); CMPORT=$CMPORT; cmetric 'coord_shed_total{endpoint=\"map\"}' 1 && cmetric 'coord_shed_total{endpoint=\"relay_stream\"}' 1"
check "metrics show the unsent bytes they are judged by" \
	bash -c "curl -s http://127.0.0.1:$CMPORT/metrics | grep -q '^coord_unsent_bytes [0-9]'"

check "a relay starts against the overloaded coord" start_relay
check_within "the relay is told to come back later" 10 \
	grep -q "coord overloaded, retrying later.*retry_after=$RETRY" "$E2E_TMP/relay.log"
# Each retry waits Retry-After plus 0..S/2: two sheds in 7 s at most, not one per backoff.
check_within "... and retries after Retry-After plus jitter" 10 \
	bash -c "$(declare -f cmetric); CMPORT=$CMPORT; cmetric 'coord_shed_total{endpoint=\"relay_stream\"}' 3"
check "... not sooner: at most one retry per $RETRY s" \
	bash -c "grep 'coord overloaded, retrying later' '$E2E_TMP/relay.log' | grep -o 'in_ms=[0-9]*' \
		| cut -d= -f2 | awk '\$1 < $RETRY * 1000 || \$1 > $RETRY * 1500 { bad = 1 } END { exit bad }'"
check "metrics: the relay's coord stream is down" rmetric relay_coord_connected 0

stop_coord
check "coord restarts without the load (same port and state)" start_coord
check_within "the relay connects once the load is gone" 10 rmetric relay_coord_connected 1
check "coord lists the relay connected" bash -c "'$COORD' --state '$STATE' relays list | grep r1 | grep -q yes"
get /v1/map
check "GET /v1/map without a token is 401 again" answer '^HTTP/1.1 401 '
check "nothing was shed since" \
	bash -c "$(declare -f cmetric); CMPORT=$CMPORT; cmetric 'coord_shed_total{endpoint=\"map\"}' 0 && cmetric 'coord_shed_total{endpoint=\"relay_stream\"}' 0"

finish
