#!/usr/bin/env bash
# coord_hostile.sh - end-to-end: a real coord on loopback against hostile clients
# (issue 12): pipelined requests never read (RSS bound), a challenge flood (a real
# registration still gets through), a registration flood (rate limit, pending cap),
# a connection flood from one source (capped; the admin CLI and a node's stream carry
# on), a log flood (bounded lines), --server http:// refused, a hostname that cannot
# name a certificate. Attackers come from other loopback addresses (127.0.0.2..) so
# that per-source limits tell them from the legitimate clients on 127.0.0.1.
# Usage: tests/e2e/coord_hostile.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?usage: coord_hostile.sh BUILD_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"

COORD="$BUILD/coord/coord"
SIM="$BUILD/tests/tools/nodesim"
FLOOD="$BUILD/tests/tools/httpflood"
STATE="$E2E_TMP/state"
RSS_BOUND_KB=16384      # coord's peak RSS through 500k pipelined requests never read

start_coord() {
	"$COORD" serve --state "$STATE" --listen 127.0.0.1:0 --metrics 127.0.0.1:0 \
		--max-pending 20 "$@" >"$E2E_TMP/coord.out" 2>"$E2E_TMP/coord.log" &
	COORD_PID=$!
	track "$COORD_PID"
	wait_for 10 grep -q "listening on 127.0.0.1:[0-9][0-9]*," "$E2E_TMP/coord.out" || { cat "$E2E_TMP/coord.out" "$E2E_TMP/coord.log"; return 1; }
	PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\),.*/\1/p' "$E2E_TMP/coord.out")
	PIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/coord.out" | head -1)
	URL="https://127.0.0.1:$PORT"
	wait_for 5 bash -c "ss -ltnp | grep -q 'pid=$COORD_PID,'"
	MPORT=$(ss -ltnp 2>/dev/null | grep "pid=$COORD_PID," | grep -o '127.0.0.1:[0-9]*' | grep -v ":$PORT\$" | head -1)
}
adm() { "$COORD" --state "$STATE" "$@"; }
sim() { local cmd=$1 dir=$2; shift 2; "$SIM" "$cmd" --coord "$URL" --pin "$PIN" --state "$E2E_TMP/$dir" "$@"; }
metric() { curl -s "http://$MPORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$COORD_PID/status"; }
req() { printf '%s' "$1"; }

check "coord starts" start_coord
[ -n "${PIN:-}" ] || { echo "no pin; cannot continue"; cat "$E2E_TMP/coord.log"; finish; exit 1; }
RKEY=$(adm keys create --reusable | tail -1)
check "node a registers with a key" sim register a --hostname alpha --auth-key "$RKEY"
"$SIM" stream --coord "$URL" --pin "$PIN" --state "$E2E_TMP/a" --timeout 300 >"$E2E_TMP/a.stream" 2>&1 &
track $!
check_within "a holds its netmap stream" 10 grep -q '"type":"full"' "$E2E_TMP/a.stream"

# --- 3: 500k pipelined requests on one TLS connection, never read ---
BASE_KB=$(hwm_kb)
"$FLOOD" --connect "127.0.0.1:$PORT" --source 127.0.0.2 --count 500000 \
	--request 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' --hold 3 >"$E2E_TMP/pipe.out" 2>&1
PEAK_KB=$(hwm_kb)
echo "# RSS peak ${PEAK_KB} kB (before ${BASE_KB} kB), bound ${RSS_BOUND_KB} kB; $(cat "$E2E_TMP/pipe.out")"
check "coord's RSS stays under ${RSS_BOUND_KB} kB through 500k pipelined requests never read" test "$PEAK_KB" -lt "$RSS_BOUND_KB"
check "coord stopped reading the client that did not read (it could not send them all)" \
	bash -c "! grep -q '^sent=500000 ' '$E2E_TMP/pipe.out'"
check "the stall is counted" test "$(metric coord_http_stalls_total)" -ge 1
check "a node still registers after it" sim register b --hostname bravo --auth-key "$RKEY"

# --- 4 + 5: 66,000 pipelined challenges from one connection ---
"$FLOOD" --connect "127.0.0.1:$PORT" --source 127.0.0.3 --count 66000 --read \
	--request 'POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n' >"$E2E_TMP/ch.out" 2>&1
echo "# challenge flood: $(cat "$E2E_TMP/ch.out")"
check "the challenge flood is rate-limited (429) for its source" bash -c "grep -q 's429=[1-9]' '$E2E_TMP/ch.out'"
check "a legitimate registration succeeds within the flood's minute" \
	bash -c "'$SIM' register --coord $URL --pin $PIN --state $E2E_TMP/c --hostname charlie --auth-key $RKEY | grep -q '\"state\":\"running\"'"
check "rate-limited challenges are counted" test "$(metric 'coord_rate_limited_total{endpoint="challenge"}')" -ge 60000

# --- 9: the API key never goes out in clear text by accident ---
APIKEY=$(adm apikeys create | tail -1)
check "--server http:// with an API key is refused (exit 2)" bash -c \
	"'$COORD' nodes list --server 'http://127.0.0.1:$PORT' --api-key '$APIKEY' 2>&1 | grep -q unencrypted; test \${PIPESTATUS[0]} = 2"
check "--server http:// to loopback is refused too" bash -c \
	"! '$COORD' nodes list --server 'http://localhost:1' --api-key '$APIKEY' 2>&1 >/dev/null | grep -qv unencrypted"
check "--insecure lets it try (and fail to speak to a TLS port, exit 1)" bash -c \
	"'$COORD' nodes list --insecure --server 'http://127.0.0.1:$PORT' --api-key '$APIKEY' >/dev/null 2>&1; test \$? = 1"
check "https with the pin still works" bash -c "'$COORD' nodes list --server '$URL' --pin '$PIN' --api-key '$APIKEY' | grep -q alpha"

# --- 6: 2,000 idle connections from one source ---
"$FLOOD" --connect "127.0.0.1:$PORT" --source 127.0.0.4 --idle 2000 --hold 6 >"$E2E_TMP/idle.out" 2>&1 &
IDLE_PID=$!
track $IDLE_PID
check_within "connections over the per-source cap are refused" 15 bash -c "test \"\$(curl -s http://$MPORT/metrics | awk '\$1 == \"coord_http_connections_refused_total\" {print \$2}')\" -ge 1700"
check "coord holds at most 256 of them (plus a's stream)" test "$(metric coord_http_connections)" -le 260
check "the admin CLI works during the connection flood" adm nodes list
check "a node registers during the connection flood" sim register d --hostname delta --auth-key "$RKEY"
check_within "the existing node's stream gets the news during the flood" 10 grep -q '"name":"delta"' "$E2E_TMP/a.stream"
wait $IDLE_PID; untrack $IDLE_PID
echo "# idle flood: $(cat "$E2E_TMP/idle.out") (the server closed what it refused)"
check "at most 256 stayed open" bash -c "o=\$(sed -n 's/^open=\([0-9]*\).*/\1/p' '$E2E_TMP/idle.out'); test \"\$o\" -le 256 -a \"\$o\" -ge 200"

# --- 12: a flood of bad requests and handshakes writes a bounded number of lines ---
L0=$(wc -l <"$E2E_TMP/coord.log")
"$FLOOD" --connect "127.0.0.1:$PORT" --source 127.0.0.5 --count 3000 --read \
	--request 'POST /v1/register HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}' >"$E2E_TMP/bad.out" 2>&1
for i in $(seq 1 300); do
	{ exec 3<>/dev/tcp/127.0.0.1/"$PORT" && printf 'GARBAGE\r\n\r\n\x16\x03\x01\x00\xff' >&3; exec 3>&-; } 2>/dev/null
done
sleep 2.5   # the limiter's summary line comes from the next second's tick
L1=$(wc -l <"$E2E_TMP/coord.log")
echo "# log flood: 3000 bad registrations and 300 garbage handshakes wrote $((L1 - L0)) lines"
check "3,300 bad requests write fewer than 150 log lines" test $((L1 - L0)) -lt 150
check "the suppressed lines are summed up" grep -q 'msg="log lines suppressed".*suppressed=[0-9]' "$E2E_TMP/coord.log"
check "and counted in /metrics" test "$(metric coord_log_lines_suppressed_total)" -ge 1000

# --- 5: 100 keyless registrations from one client ---
for i in $(seq 1 100); do
	sim register "k$i" --hostname "squat$i" >>"$E2E_TMP/keyless.out" 2>&1
done
PENDING=$(adm nodes list | grep -c needs-approval)
LIMITED=$(grep -c -e '^429' -e 'HTTP 429' "$E2E_TMP/keyless.out")
echo "# 100 keyless registrations: $PENDING pending, $LIMITED refused 429, $(grep -c '^503' "$E2E_TMP/keyless.out") refused 503 (pending cap)"
check "100 keyless registrations from one client hit the rate limit" test "$LIMITED" -ge 60
check "pending nodes stop at --max-pending" test "$PENDING" -le 20
check "the pending cap answers 503 and is counted" test "$(metric coord_pending_cap_hits_total)" -ge 1
# (the bucket refills one registration every 2 s, and the checks above take time on a
# busy machine: a few tries in a row, one of them meets the empty bucket)
told_to_wait() {
	local i
	for i in 1 2 3 4; do
		"$SIM" register --coord "$URL" --pin "$PIN" --state "$E2E_TMP/e$i" --hostname "echo$i" \
			--auth-key "$RKEY" 2>&1 | grep -q 429 && return 0
	done
	return 1
}
check "the flooding source is told when to come back" told_to_wait

# --- 11: a hostname that cannot name a certificate ---
if command -v unshare >/dev/null && unshare --uts true 2>/dev/null; then
	check "coord serve starts under the hostname (none)" bash -c "unshare --uts bash -c \"printf '(none)' >/proc/sys/kernel/hostname && exec timeout 5 '$COORD' serve --state '$E2E_TMP/none' --listen 127.0.0.1:0\" | grep -q 'listening on'"
	check "... with a certificate for a fixed name" bash -c "openssl x509 -in '$E2E_TMP/none/tls.crt' -noout -subject | grep -q 'meshvpn-coord'"
else
	echo "# skipped: unshare --uts not available"
fi

finish
