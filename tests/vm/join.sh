#!/bin/bash
# tests/vm/join.sh - runs inside the test VM (scripts/vm/run tests/vm/join.sh --build build):
# the join-and-ping scenario of tests/netns/join.sh with the kernel backend. coord and three
# vpnd (--wg-backend auto, which must pick the kernel here), each node in its own namespace
# with the same interface name. Checks: pending node invisible until approved, every pair
# pings (IPv4 and IPv6), `wg show` in every namespace matches coord's netmap (keys, allowed
# IPs, endpoints, port), adding a peer leaves live sessions alone, delete removes a peer
# everywhere, vpnd restart, and a vpnd killed with -9 reclaims the link it left behind.
# vm-bin: jq date ping curl
# vm-file: tests/e2e/lib.sh scripts/lab/lab.sh
# vm-timeout: 420
set -u
cd "$(dirname "$0")"
. ./lib.sh
. ./lab.sh

. ./vm.bash
vm_require coord vpnd vpnctl wg jq

IF=meshvpn0
CSTATE="$E2E_TMP/coord"
COORD_IP=198.51.100.1
URL="https://$COORD_IP:8443"
COORD_PID=""
NODES="a b c"
declare -A VPND_PID IP4 IP6 OCTET=([a]=11 [b]=12 [c]=13) HOST=([a]=alpha [b]=bravo [c]=charlie)

E2E_CLEANUPS="lab_down"
lab_init vmj || { echo "FAIL - cannot create the lab"; exit 1; }
lab_host coord 1 || { echo "FAIL - lab host"; exit 1; }
for n in $NODES; do
	lab_host "$n" "${OCTET[$n]}" || { echo "FAIL - lab host $n"; exit 1; }
done

start_coord() {
	ip netns exec "$(lab_ns coord)" coord serve --state "$CSTATE" --listen "$COORD_IP:8443" --keepalive 2s \
		>"$E2E_TMP/coord.out" 2>>"$E2E_TMP/coord.log" &
	COORD_PID=$!
	track "$COORD_PID"
	wait_for 30 grep -q "listening on" "$E2E_TMP/coord.out" || return 1
	PIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/coord.out" | head -1)
}
adm() { coord --state "$CSTATE" "$@"; }

start_vpnd() {
	local n=$1
	mkdir -p "$E2E_TMP/$n"
	ip netns exec "$(lab_ns "$n")" vpnd --state "$E2E_TMP/$n/state" --socket "$E2E_TMP/$n/vpnd.sock" \
		--wg-backend auto --ifname "$IF" --port 41641 --log-level debug --metrics 127.0.0.1:9101 \
		>>"$E2E_TMP/$n.log" 2>&1 &
	VPND_PID[$n]=$!
	track "${VPND_PID[$n]}"
	wait_for 20 test -S "$E2E_TMP/$n/vpnd.sock"
}
stop_vpnd() {   # stop_vpnd NODE [SIGNAL]
	local pid=${VPND_PID[$1]}
	kill "-${2:-TERM}" "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	local rc=$?
	untrack "$pid"
	return $rc
}
ctl() { local n=$1; shift; lab_exec "$n" vpnctl --socket "$E2E_TMP/$n/vpnd.sock" "$@"; }
state_is() { ctl "$1" status --json | jq -e --arg s "$2" '.self.state == $s' >/dev/null; }
up() { local n=$1; shift; ctl "$n" up --coord "$URL" --pin "$PIN" --hostname "${HOST[$n]}" "$@"; }
joins_running() { up "$1" --auth-key "$KEY" | grep -q "^Running as ${HOST[$1]} "; }
wgs() { lab_exec "$1" wg show "$IF" "${@:2}"; }
npeers() { test "$(wgs "$1" peers 2>/dev/null | grep -c .)" = "$2"; }
no_peers() { ! wgs "$1" peers 2>/dev/null | grep -q .; }
lacks_key() { ! wgs "$1" peers | grep -qF "$2"; }
node_key() { ctl "$1" status --json | jq -r '.self.node_key'; }
no_iface() { ! ip -n "$(lab_ns "$1")" link show "$IF" >/dev/null 2>&1; }
is_kernel_link() { ip -n "$(lab_ns "$1")" -d link show "$IF" | grep -q wireguard; }
pings() { lab_exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1; }

# every ordered pair among the nodes given pings, over IPv4 and IPv6
all_ping() {
	local secs=$1 x y bad=0; shift
	for x in "$@"; do
		for y in "$@"; do
			[ "$x" = "$y" ] && continue
			wait_for "$secs" pings "$x" "${IP4[$y]}" || { echo "    $x -> $y ${IP4[$y]} does not ping"; bad=1; }
			wait_for "$secs" pings "$x" "${IP6[$y]}" || { echo "    $x -> $y ${IP6[$y]} does not ping"; bad=1; }
		done
	done
	return $bad
}

# What coord's netmap says node NAME's WireGuard must hold: one line per visible peer,
# "node_key allowed-ips" with the allowed IPs sorted.
netmap_peers() {
	adm nodes list --json | jq -r --arg me "$1" '.nodes[] | select(.name != $me and .state == "running")
		| "\(.node_key) \([.ips[0] + "/32", .ips[1] + "/128"] | sort | join(","))"' | sort
}
# The same, read back from the kernel with `wg show dump` in node N's namespace.
wg_peers_dump() {
	wgs "$1" dump | tail -n +2 | while read -r key _psk _ep aips _rest; do
		echo "$key $(tr , '\n' <<<"$aips" | sort | paste -sd, -)"
	done | sort
}
# The whole interface of node N against the netmap: its own key and port, the peer set
# with allowed IPs, and every peer's endpoint one that coord lists for that peer.
matches_netmap() {
	local n=$1 name=${HOST[$1]} nodes self key ep
	nodes=$(adm nodes list --json) || return 1
	self=$(wgs "$n" dump | head -1)
	key=$(jq -r --arg me "$name" '.nodes[] | select(.name == $me) | .node_key' <<<"$nodes")
	[ "$(cut -f2 <<<"$self")" = "$key" ] || { echo "public key $(cut -f2 <<<"$self") != coord's $key"; return 1; }
	[ "$(cut -f3 <<<"$self")" = 41641 ] || { echo "listen port $(cut -f3 <<<"$self")"; return 1; }
	diff <(netmap_peers "$name") <(wg_peers_dump "$n") || return 1
	while read -r key _psk ep _rest; do
		jq -e --arg k "$key" --arg ep "$ep" '.nodes[] | select(.node_key == $k) | .endpoints | index($ep)' \
			<<<"$nodes" >/dev/null || { echo "peer $key: endpoint $ep is not one coord lists"; return 1; }
	done < <(wgs "$n" dump | tail -n +2)
}
handshake_of() { wgs "$1" latest-handshakes | awk -v k="$2" '$1 == k { print $2 }'; }
exited() {   # exited PID: gone, or a zombie waiting for us
	local st
	st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 0
	[ -z "$st" ] || [ "$st" = Z ]
}
no_loss() { tail -4 "$1"; grep -q ' 0% packet loss' "$1"; }
metrics() { lab_exec "$1" curl -sf "http://127.0.0.1:9101${2:-/metrics}"; }
metric_is() { metrics "$1" | grep -qx "$2"; }
two_peers_online() { metric_is "$1" 'vpnd_peers 2' && metric_is "$1" 'vpnd_peers_online 2'; }
peer_rx_positive() { metrics "$1" | awk -v p="vpnd_peer_receive_bytes_total{peer=\"$2\"}" '$1 == p && $2 > 0 { ok = 1 } END { exit !ok }'; }
log_says() { grep -q "$2" "$E2E_TMP/$1.log"; }

dump_logs() {
	for f in "$E2E_TMP"/*.log; do
		echo "--- $f"
		grep -v 'level=debug' "$f" | tail -20
	done
	for n in $NODES; do
		echo "--- wg show in $n"
		wgs "$n" 2>&1 | head -30
	done
}

check "coord starts in its namespace" start_coord
[ -n "${PIN:-}" ] || { echo "FAIL - no pin"; dump_logs; exit 1; }
KEY=$(adm keys create --reusable | tail -1)
for n in $NODES; do
	check "vpnd $n starts" start_vpnd "$n"
done

# --- join with an auth key, on the kernel backend ---
for n in a b; do
	check "$n joins with an auth key" joins_running "$n"
	IP4[$n]=$(ctl "$n" ip -4)
	IP6[$n]=$(ctl "$n" ip -6)
done
check "auto picked the kernel backend" log_says a 'interface up.*backend=kernel'
check "status --json says backend kernel" test "$(ctl a status --json | jq -r .self.backend)" = kernel
check "the interface is a kernel wireguard link" is_kernel_link a
check_within "a and b have each other as peers" 20 npeers a 1
check "a and b ping each other (IPv4, IPv6)" all_ping 20 a b

# --- pending, then approved; live sessions do not blip ---
up c >"$E2E_TMP/c.up" 2>&1
check "c without a key is told the approve command" grep -q 'coord nodes approve charlie' "$E2E_TMP/c.up"
# A pending node holds no address (issue 12): c gets one when approved, the next one
# coord hands out (the one after b's), which nobody reaches meanwhile.
no_ip() { ! ctl "$1" ip -4; }
check "c holds no address while pending (vpnctl ip has none to print)" no_ip c
IP4[c]=${IP4[b]%.*}.$(( ${IP4[b]##*.} + 1 ))
check "c has no WireGuard peers while pending" no_peers c
check "a's WireGuard does not hold c" npeers a 1
check "nobody reaches c yet" bash -c "! ip netns exec $(lab_ns a) ping -c 1 -W 1 ${IP4[c]}"
BKEY=$(node_key b)
HS_AB=$(handshake_of a "$BKEY")
ip netns exec "$(lab_ns a)" ping -i 0.2 -w 600 "${IP4[b]}" >"$E2E_TMP/ping-ab" 2>&1 &   # $! must be ping itself
PING_PID=$!
track "$PING_PID"
wait_for 10 grep -q 'bytes from' "$E2E_TMP/ping-ab"
check "approve charlie" adm nodes approve charlie
check_within "c runs without another command" 20 state_is c running
check "approval gave c that address" test "$(ctl c ip -4)" = "${IP4[c]}"
IP6[c]=$(ctl c ip -6)
check "every pair pings within seconds of the approval" all_ping 20 a b c
# SIGINT makes ping print its summary; SIGKILL if it is deaf to it
# (no watchdog subshell: a subshell of this script could run its clean-up trap)
kill -INT "$PING_PID"
wait_for 10 exited "$PING_PID" || kill -KILL "$PING_PID"
wait "$PING_PID" 2>/dev/null
untrack "$PING_PID"
check "a -> b kept pinging across c's arrival (no loss)" no_loss "$E2E_TMP/ping-ab"
check "a's session with b was not restarted (same handshake)" test "$(handshake_of a "$BKEY")" = "$HS_AB"
for n in $NODES; do
	check "$n: wg show matches coord's netmap" matches_netmap "$n"
done
check "metrics: a is running" metric_is a 'vpnd_state{state="running"} 1'
check "metrics: a's stream to coord is up" metric_is a 'vpnd_coord_connected 1'
check "metrics: a has two peers, both online" two_peers_online a
check "metrics: bytes received from bravo" peer_rx_positive a bravo
check_fails "metrics: any other path is 404" metrics a /other

# --- delete ---
CKEY=$(node_key c)
check "delete charlie" adm nodes delete charlie
for n in a b; do
	check_within "charlie's key leaves $n's kernel WireGuard" 20 lacks_key "$n" "$CKEY"
done
check_within "charlie's interface is removed" 20 no_iface c
for n in a b; do
	check "$n: wg show matches the netmap without charlie" matches_netmap "$n"
done

# --- restart: SIGTERM, then kill -9 (the link stays and must be reclaimed) ---
check "vpnd a stops on SIGTERM" stop_vpnd a
check "and removes its link" no_iface a
check "vpnd a starts again" start_vpnd a
check_within "a rejoins on its own" 30 state_is a running
check "with the same addresses" test "$(ctl a ip -4) $(ctl a ip -6)" = "${IP4[a]} ${IP6[a]}"
check "a and b ping again" all_ping 20 a b
stop_vpnd b KILL
check "vpnd b killed with -9 leaves its kernel link" is_kernel_link b
check "vpnd b starts again" start_vpnd b
check_within "b rejoins on its own" 30 state_is b running
check "b reclaimed its leftover link" log_says b 'removed a leftover wireguard interface'
check "a and b ping again after the -9" all_ping 20 a b
for n in a b; do
	check "$n: wg show matches the netmap after the restarts" matches_netmap "$n"
done

for n in a b c; do
	check "vpnd $n exits 0 on SIGTERM" stop_vpnd "$n"
	check "$n's link is gone" no_iface "$n"
done

[ "$FAILED" -eq 0 ] || dump_logs
finish
