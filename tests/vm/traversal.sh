#!/bin/bash
# tests/vm/traversal.sh - runs inside the test VM (scripts/vm/run tests/vm/traversal.sh --build build):
# NAT traversal on the KERNEL WireGuard backend, a small cut of tests/netns/traversal.sh's
# fleet. coord and one relay on public addresses; a public; b behind an easy NAT
# (masquerade: a direct pair with a); e behind a router that forwards no UDP (relayed with a
# and b). Checks: every pair pings through the tunnel; a<->b is direct and a<->e, b<->e go
# through relay1 (vpnctl status, both ways); the kernel's `wg show endpoints` on a holds e
# at 127.0.0.1:PORT, a UDP port vpnd owns (the relayed data path), and b at its NAT's public
# address; /metrics counts disco pongs and STUN answers (the raw socket and its filter see
# the replies to the kernel's own port).
# vm-bin: jq date ping curl
# vm-file: tests/e2e/lib.sh scripts/lab/lab.sh
# vm-timeout: 150
set -u
cd "$(dirname "$0")"
. ./lib.sh
. ./lab.sh

. ./vm.bash
vm_require coord relay vpnd vpnctl wg jq curl ss

IF=meshvpn0
CSTATE="$E2E_TMP/coord"
NODES="a b e"
RELAY=relay1
declare -A VPND_PID IP4 HOST=([a]=alpha [b]=bravo [e]=echo)

# the lab: the addresses of scripts/lab/lab.sh's fleet, only the hosts this test needs
E2E_CLEANUPS="lab_down"
build_lab() {
	lab_init vmt || return 1
	lab_host coord 1 v6 && lab_host relay1 2 v6 && lab_host a 11 v6 || return 1
	lab_router home1 20 10.1.0 && lab_behind b home1 2 || return 1
	lab_router home4 24 10.4.0 && lab_behind e home4 2 && lab_block_udp home4 || return 1
}
build_lab || { echo "FAIL - cannot build the lab"; exit 1; }
COORD_IP=198.51.100.1 RELAY_IP=198.51.100.2 A_IP=198.51.100.11 B_PUB=198.51.100.20
URL="https://$COORD_IP:8443"

start_coord() {
	lab_exec coord coord serve --state "$CSTATE" --listen "$COORD_IP:8443" --keepalive 2s \
		>"$E2E_TMP/coord.out" 2>>"$E2E_TMP/coord.log" &
	track $!
	wait_for 30 grep -q "listening on" "$E2E_TMP/coord.out" || return 1
	PIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/coord.out" | head -1)
}
adm() { coord --state "$CSTATE" "$@"; }

relay_metric() { lab_exec relay1 curl -s http://127.0.0.1:9102/metrics | awk -v m="$1" '$1 == m { print $2 }' | grep -qx "$2"; }
start_relay() {
	local tok
	tok=$(adm relays add "$RELAY" "https://$RELAY_IP:443" --stun "$RELAY_IP:3478" | tail -1)
	[ -n "$tok" ] || return 1
	lab_exec relay1 relay --coord "$URL" --token "$tok" --pin "$PIN" --listen "$RELAY_IP:443" \
		--stun "$RELAY_IP:3478" --metrics 127.0.0.1:9102 --state "$E2E_TMP/relay1" \
		>>"$E2E_TMP/relay1.out" 2>>"$E2E_TMP/relay1.log" &
	track $!
	wait_for 30 grep -q 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/relay1.out" || return 1
	wait_for 30 relay_metric relay_coord_connected 1
}

start_vpnd() {
	local n=$1
	mkdir -p "$E2E_TMP/$n"
	lab_exec "$n" vpnd --state "$E2E_TMP/$n/state" --socket "$E2E_TMP/$n/vpnd.sock" \
		--wg-backend kernel --ifname "$IF" --port 41641 --log-level debug --metrics 127.0.0.1:9101 \
		>>"$E2E_TMP/$n.log" 2>&1 &
	VPND_PID[$n]=$!
	track "${VPND_PID[$n]}"
	wait_for 20 test -S "$E2E_TMP/$n/vpnd.sock"
}
ctl() { local n=$1; shift; lab_exec "$n" vpnctl --socket "$E2E_TMP/$n/vpnd.sock" "$@"; }
joins() { ctl "$1" up --coord "$URL" --pin "$PIN" --hostname "${HOST[$1]}" --auth-key "$KEY" | grep -q '^Running as '; }
backend_is_kernel() { test "$(ctl "$1" status --json | jq -r .self.backend)" = kernel; }
pings() { lab_exec "$1" ping -c 1 -W 1 "${IP4[$2]}" >/dev/null 2>&1; }
# peer_field NODE PEER FIELD: NODE's status for PEER (path, endpoint, relay, ...)
peer_field() { ctl "$1" status --json | jq -r --arg p "${HOST[$2]}" --arg f "$3" '.peers[] | select(.name == $p) | .[$f]'; }
path_is() { test "$(peer_field "$1" "$2" path)" = "$3"; }
pair_direct() { path_is "$1" "$2" direct && path_is "$2" "$1" direct; }
relayed_via() { path_is "$1" "$2" relay && test "$(peer_field "$1" "$2" relay)" = "$3"; }
pair_relayed() { relayed_via "$1" "$2" "$RELAY" && relayed_via "$2" "$1" "$RELAY"; }
node_key() { ctl "$1" status --json | jq -r '.self.node_key'; }
wg_ep() { lab_exec "$1" wg show "$IF" endpoints | awk -v k="$2" '$1 == k { print $2 }'; }
# at_loopback NODE KEY: NODE's kernel holds peer KEY at 127.0.0.1:PORT, PORT a UDP socket of
# NODE's vpnd (its relayed data path; not WireGuard's own port)
at_loopback() {
	local ep port
	ep=$(wg_ep "$1" "$2")
	echo "$1: wg endpoint of $2: '$ep'"
	case $ep in 127.0.0.1:[0-9]*) ;; *) return 1 ;; esac
	port=${ep#127.0.0.1:}
	[ "$port" != 41641 ] || return 1
	lab_exec "$1" ss -Hulpn src "127.0.0.1:$port" | tee /dev/stderr | grep -q '"vpnd"'
}
# at_addr NODE KEY ADDR: NODE's kernel holds peer KEY at ADDR:some port
at_addr() {
	local ep
	ep=$(wg_ep "$1" "$2")
	echo "$1: wg endpoint of $2: '$ep'"
	case $ep in "$3":[0-9]*) ;; *) return 1 ;; esac
}
status_ep_is_wg_ep() { test "$(peer_field a "$2" endpoint)" = "$(wg_ep a "$1")"; }
vmetric() { lab_exec "$1" curl -s http://127.0.0.1:9101/metrics | awk -v m="$2" '$1 == m { print $2 }'; }
vmetric_pos() { local v; v=$(vmetric "$1" "$2"); echo "$1: $2 = '$v'"; test "${v:-0}" -gt 0 2>/dev/null; }

dump_logs() {
	for f in "$E2E_TMP"/*.log; do
		echo "--- $f"
		grep -v 'level=debug' "$f" | tail -15
		grep 'level=debug' "$f" | grep -E 'path|disco|stun|relay' | tail -15
	done
	for n in $NODES; do
		echo "--- $n: wg show, status, metrics"
		lab_exec "$n" wg show "$IF" 2>&1 | head -30
		ctl "$n" status 2>&1 | head -10
		lab_exec "$n" curl -s http://127.0.0.1:9101/metrics | grep -E '^vpnd_(disco|stun|peer_path|rawsock)' | head -30
	done
}

check "coord starts" start_coord
[ -n "${PIN:-}" ] || { echo "FAIL - no pin"; dump_logs; exit 1; }
KEY=$(adm keys create --reusable | tail -1)
check "relay1 starts and connects to coord" start_relay
for n in $NODES; do
	check "vpnd $n starts (--wg-backend kernel)" start_vpnd "$n"
done
for n in $NODES; do
	check "$n joins" joins "$n"
	IP4[$n]=$(ctl "$n" ip -4)
done
check "a runs on the kernel backend" backend_is_kernel a
check "e runs on the kernel backend" backend_is_kernel e

check "every pair pings through the tunnel (6 ordered pairs)" all_pairs 25 pings $NODES
check_within "a <-> b direct" 20 pair_direct a b
check_within "a <-> e through $RELAY" 20 pair_relayed a e
check_within "b <-> e through $RELAY" 20 pair_relayed b e

BKEY=$(node_key b)
EKEY=$(node_key e)
AKEY=$(node_key a)
check "a's kernel WireGuard holds e at a loopback port of vpnd" at_loopback a "$EKEY"
check "a's kernel WireGuard holds b at its NAT's public address ($B_PUB)" at_addr a "$BKEY" "$B_PUB"
check "b's kernel WireGuard holds a at its address ($A_IP)" at_addr b "$AKEY" "$A_IP"
check "e's kernel WireGuard holds a at a loopback port of vpnd" at_loopback e "$AKEY"
check "e's kernel WireGuard holds b at a loopback port of vpnd" at_loopback e "$BKEY"
check "a's status shows the kernel's endpoints (b)" status_ep_is_wg_ep "$BKEY" b
check "a's status shows the kernel's endpoints (e)" status_ep_is_wg_ep "$EKEY" e
for n in a b; do
	check "$n: disco pongs received (raw socket on the kernel's port)" vmetric_pos "$n" vpnd_disco_pongs_received_total
	check "$n: STUN answers received" vmetric_pos "$n" vpnd_stun_responses_total
done
check "every pair still pings" all_pairs 10 pings $NODES

[ "$FAILED" -eq 0 ] || dump_logs
finish
