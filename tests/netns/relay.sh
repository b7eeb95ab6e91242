#!/usr/bin/env bash
# relay.sh - the relay in the namespace lab: coord (198.51.100.1) and relay r1
# (198.51.100.2) on public addresses; node a public (.11); node d behind a home NAT
# (router .20, LAN 10.1.0.0/24); node e behind a router that drops all UDP (.30, 10.2.0.0/24:
# only TCP to the relay works). Real nodes (registered with coord, keys in their state dirs)
# exchange packets through the relay with tests/tools/relaycli (lib/relay_client.c). An
# unknown key, a pending and a rejected node are refused; deleting a node cuts its relay
# connection within a second and its packets stop; a relay restart is survived; the relay
# behind a TLS-terminating nginx still relays; stock STUN clients behind the NAT get the
# NAT's public address from the relay.
# Usage: tests/netns/relay.sh BUILD_DIR      (root; exit 77 = skipped)
set -u
BUILD=$(cd "${1:?usage: relay.sh BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

if [ "$(id -u)" != 0 ]; then
	echo "skip: needs root (network namespaces)"
	exit 77
fi
for tool in ip nft curl openssl; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "skip: $tool not installed"
		exit 77
	fi
done

. "$ROOT/tests/e2e/lib.sh"
. "$ROOT/scripts/lab/lab.sh"

COORD="$BUILD/coord/coord"
RELAY="$BUILD/relay/relay"
RCLI="$BUILD/tests/tools/relaycli"
NODESIM="$BUILD/tests/tools/nodesim"
for b in "$COORD" "$RELAY" "$RCLI" "$NODESIM"; do
	[ -x "$b" ] || { echo "FAIL - $b not built"; exit 1; }
done

TAG=$$
CSTATE="$E2E_TMP/coord"
COORD_IP=198.51.100.1
RELAY_IP=198.51.100.2
URL="https://$COORD_IP:8443"
RURL="https://$RELAY_IP:443"
COORD_PID="" RELAY_PID="" NGINX_PID=""

E2E_CLEANUPS="lab_down"
lab_init "mvr$TAG" || { echo "FAIL - cannot create the lab"; exit 1; }
lab_host coord 1 && lab_host relay 2 && lab_host a 11 || { echo "FAIL - lab hosts"; exit 1; }
lab_router home 20 10.1.0 && lab_behind d home 2 || { echo "FAIL - lab NAT"; exit 1; }
lab_router noudp 30 10.2.0 && lab_behind e noudp 2 || { echo "FAIL - lab NAT"; exit 1; }
ip netns exec "$(lab_ns noudp)" nft -f - <<'NFT' || { echo "FAIL - cannot block UDP"; exit 1; }
table ip block {
	chain udp_out { type filter hook forward priority 0; meta l4proto udp drop; }
}
NFT

start_coord() {
	ip netns exec "$(lab_ns coord)" "$COORD" serve --state "$CSTATE" --listen "$COORD_IP:8443" --keepalive 2s \
		>"$E2E_TMP/coord.out" 2>>"$E2E_TMP/coord.log" &
	COORD_PID=$!
	track "$COORD_PID"
	wait_for 10 grep -q "listening on" "$E2E_TMP/coord.out" || { tail "$E2E_TMP/coord.log"; return 1; }
	PIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/coord.out" | head -1)
}
adm() { "$COORD" --state "$CSTATE" "$@"; }

start_relay() {
	: >"$E2E_TMP/relay.out"
	ip netns exec "$(lab_ns relay)" "$RELAY" --coord "$URL" --token "$RTOK" --pin "$PIN" \
		--listen "$RELAY_IP:443" --stun "$RELAY_IP:3478" --plain-http 127.0.0.1:8080 \
		--metrics 127.0.0.1:9102 --state "$E2E_TMP/relay" --log-level debug \
		>>"$E2E_TMP/relay.out" 2>>"$E2E_TMP/relay.log" &
	RELAY_PID=$!
	track "$RELAY_PID"
	wait_for 10 grep -q 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/relay.out" || { tail "$E2E_TMP/relay.log"; return 1; }
	RPIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/relay.out" | head -1)
	# serving once coord's admission list has arrived
	wait_for 10 relay_metric relay_coord_connected 1
}
stop_relay() {
	kill -TERM "$RELAY_PID" 2>/dev/null
	wait "$RELAY_PID" 2>/dev/null
	local rc=$?
	untrack "$RELAY_PID"
	return $rc
}
relay_metrics() { lab_exec relay curl -s http://127.0.0.1:9102/metrics; }
# relay_metric NAME[{labels}] VALUE: the metric has exactly this value
relay_metric() { relay_metrics | grep -F "$1 " | awk '{print $2}' | grep -qx "$2"; }
relay_metric_pos() { relay_metrics | grep -F "$1 " | awk '{print $2}' | grep -qv '^0$'; }

# register NODE HOST [auth]: a node registered with coord (nodesim), keys in its state dir
register() {
	local n=$1 host=$2 args=()
	[ "${3:-}" = auth ] && args=(--auth-key "$KEY")
	lab_exec "${NS_OF[$n]}" "$NODESIM" register --coord "$URL" --pin "$PIN" --state "$E2E_TMP/$n" \
		--hostname "$host" "${args[@]}" >>"$E2E_TMP/nodesim.out" 2>&1
}
# Listeners (a, d, e, p, x) and senders (sa, sd, se) are separate nodes: one key holds one
# relay connection, a second connection with it replaces the first.
declare -A NS_OF=([a]=a [d]=d [e]=e [p]=a [r]=a [x]=a [sa]=a [sd]=d [se]=e) LPID NKEY

# listen NODE [URL PIN]: relaycli listen --echo in the node's namespace, in the background
listen() {
	local n=$1 url=${2:-$RURL} pin=${3:-$RPIN}
	: >"$E2E_TMP/$n.listen"
	lab_exec "${NS_OF[$n]}" "$RCLI" listen --echo --url "$url" --pin "$pin" --state "$E2E_TMP/$n" \
		>>"$E2E_TMP/$n.listen" 2>>"$E2E_TMP/$n.rcli.log" &
	LPID[$n]=$!
	track "${LPID[$n]}"
	wait_for 10 grep -q '^connected ' "$E2E_TMP/$n.listen" || return 1
	NKEY[$n]=$(sed -n 's/^key \(.*\)$/\1/p' "$E2E_TMP/$n.listen" | head -1)
}
connections_of() { grep -c '^connected ' "$E2E_TMP/$1.listen"; }
reconnected() { test "$(connections_of "$1")" -ge 2; }
# sends FROM TO COUNT [URL PIN]: every one of COUNT packets comes back from TO's echo
sends() {
	local from=$1 to=$2 count=$3 url=${4:-$RURL} pin=${5:-$RPIN} out
	out=$(lab_exec "${NS_OF[$from]}" "$RCLI" send --to "${NKEY[$to]}" --count "$count" --size 1280 \
		--url "$url" --pin "$pin" --state "$E2E_TMP/$from" --timeout 10 2>&1)
	echo "$out"
	grep -q "acked=$count " <<<"$out"
}
# gone FROM TO: packets to TO come back as peer-gone, none is echoed
gone() {
	local out
	out=$(lab_exec "${NS_OF[$1]}" "$RCLI" send --to "${NKEY[$2]}" --count 5 --size 100 \
		--url "$RURL" --pin "$RPIN" --state "$E2E_TMP/$1" --timeout 10 2>&1)
	echo "$out"
	grep -q "acked=0 gone=[1-9]" <<<"$out"
}
# refused NS ARGS...: relaycli exits 3 (the relay refused its key)
refused() {
	local ns=$1; shift
	lab_exec "$ns" "$RCLI" listen --url "$RURL" --pin "$RPIN" --exit-on-refused --timeout 10 "$@" \
		>"$E2E_TMP/refused.out" 2>&1
	local rc=$?
	cat "$E2E_TMP/refused.out"
	test $rc = 3
}
stun_via_nat() {   # turnutils_stunclient in d sees the home router's public address
	local out
	out=$(lab_exec d timeout 20 turnutils_stunclient -p 3478 "$RELAY_IP" 2>&1)
	echo "$out"
	grep -q "UDP reflexive addr: 198.51.100.20:" <<<"$out"
}
classic_stun_via_nat() {
	local out
	out=$(lab_exec d timeout 20 stun "$RELAY_IP:3478" 1 -v -p 41641 2>&1)
	echo "$out"
	grep -q "mappedAddr=198.51.100.20:" <<<"$out"
}
no_secrets_logged() { ! grep -h -e "$KEY" -e "$RTOK" -e 'mvpn-node-' "$E2E_TMP"/*.log; }

# --- coord, a relay on coord's list, nodes ---
check "coord starts" start_coord
[ -n "${PIN:-}" ] || { echo "no pin"; finish; exit 1; }
KEY=$(adm keys create --reusable | tail -1)
RTOK=$(adm relays add r1 "$RURL" | tail -1)
check "relays add prints the relay's token" grep -q '^mvpn-relay-' <<<"$RTOK"
check "the relay starts, reports its pin and follows coord" start_relay
check_within "coord lists the relay's pin" 10 bash -c "'$COORD' --state '$CSTATE' relays list | grep r1 | grep -qF '$RPIN'"
check "the relay answers /healthz" lab_exec a curl -sk --fail "$RURL/healthz"

check "node a (public) registers with an auth key" register a alpha auth
check "node d (behind NAT) registers" register d delta auth
check "node e (no UDP) registers" register e echo auth
check "node p registers without a key (pending)" register p pending
check "node r registers, then is rejected" register r rejected
for n in sa sd se x; do
	check "sender/listener node $n registers" register "$n" "node-$n" auth
done
adm nodes reject rejected >/dev/null

# --- packets through the relay ---
check "d connects to the relay and is admitted" listen d
check "e (UDP blocked) connects over TCP and is admitted" listen e
check "a connects to the relay and is admitted" listen a
check "a -> d: 50 packets of 1280 bytes relayed and echoed" sends sa d 50
check "a -> e: relayed to the node without UDP" sends sa e 50
check "d -> e: two NATed nodes reach each other" sends sd e 20
check "e -> a: and back from the node without UDP" sends se a 20

# --- refusals ---
check "an unknown key is refused" refused a --gen-key
check "a pending node is refused" refused a --state "$E2E_TMP/p"
check "a rejected node is refused" refused a --state "$E2E_TMP/r"
check "refusals are counted" relay_metric_pos 'relay_connections_refused_total{reason="not_admitted"}'
check "the relay forwarded packets (metrics)" relay_metric_pos relay_packets_forwarded_total

# --- approval and deletion reach the relay ---
adm nodes approve pending >/dev/null
check_within "an approved node is admitted" 5 listen p
T0=$(date +%s%N)
adm nodes delete delta >/dev/null
check_within "deleting d cuts its relay connection within a second" 1 grep -q 'connection lost' "$E2E_TMP/d.rcli.log"
echo "    (cut after $(( ($(date +%s%N) - T0) / 1000000 )) ms)"
check "packets to d stop (peer gone)" gone sa d

# --- a relay restart is survived ---
check "the relay stops cleanly on SIGTERM" stop_relay
check "the relay starts again" start_relay
check_within "a reconnects by itself" 15 reconnected a
check_within "e reconnects by itself" 15 reconnected e
check "a -> e works after the restart" sends sa e 20

# --- behind a TLS-terminating nginx (the relay's --plain-http) ---
if command -v nginx >/dev/null; then
	mkdir -p "$E2E_TMP/nginx"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=relay \
		-keyout "$E2E_TMP/nginx/key.pem" -out "$E2E_TMP/nginx/cert.pem" 2>/dev/null
	NPIN="sha256:$(openssl x509 -in "$E2E_TMP/nginx/cert.pem" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)"
	cat >"$E2E_TMP/nginx/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $E2E_TMP/nginx/nginx.pid;
error_log $E2E_TMP/nginx.log info;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path $E2E_TMP/nginx;
	proxy_temp_path $E2E_TMP/nginx;
	fastcgi_temp_path $E2E_TMP/nginx;
	uwsgi_temp_path $E2E_TMP/nginx;
	scgi_temp_path $E2E_TMP/nginx;
	server {
		listen $RELAY_IP:8443 ssl;
		ssl_certificate $E2E_TMP/nginx/cert.pem;
		ssl_certificate_key $E2E_TMP/nginx/key.pem;
		location / {
			proxy_pass http://127.0.0.1:8080;
			proxy_http_version 1.1;
			proxy_set_header Upgrade \$http_upgrade;
			proxy_set_header Connection "upgrade";
			proxy_read_timeout 300s;
			proxy_buffering off;
		}
	}
}
NGINX
	ip netns exec "$(lab_ns relay)" nginx -c "$E2E_TMP/nginx/nginx.conf" -p "$E2E_TMP/nginx" &
	NGINX_PID=$!
	track "$NGINX_PID"
	check_within "nginx terminates TLS in front of the relay" 10 lab_exec a curl -sk --fail "https://$RELAY_IP:8443/healthz"
	check "x connects through nginx and is admitted" listen x "https://$RELAY_IP:8443" "$NPIN"
	check "e -> x (x behind nginx) relayed and echoed" sends se x 30
	check "a sender through nginx reaches e" sends sa e 10 "https://$RELAY_IP:8443" "$NPIN"
else
	echo "skip: nginx not installed"
fi

# --- STUN on the relay, from behind the home NAT ---
if command -v turnutils_stunclient >/dev/null; then
	check "turnutils_stunclient behind the NAT gets the NAT's public address" stun_via_nat
fi
if command -v stun >/dev/null; then
	check "stun-client (RFC 3489) behind the NAT gets it too" classic_stun_via_nat
fi
check "the relay counts STUN requests" relay_metric_pos relay_stun_requests_total
check "no auth key, relay token or node token in any log" no_secrets_logged
check "the relay stops cleanly on SIGTERM" stop_relay
finish
