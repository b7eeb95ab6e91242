#!/usr/bin/env bash
# lab.sh - the NAT-traversal lab itself (scripts/lab/lab.sh lab_fleet), proved with real
# traffic before anything runs on it: every node reaches coord and both relays over TCP
# (openssl s_server); UDP mappings measured from port 41641 (WireGuard's) with stun-client
# against the project's STUN server (tests/tools/stun_serve) on relay1 and relay2: a keeps
# its own address, b and b2 share home1's address with one port each for every destination
# (b keeps 41641), c and d get a new port per destination, d's 100.64 address is never seen
# publicly, e gets no UDP answer at all but TCP works; b reaches b2 over the LAN; a reaches
# relay1 over IPv6, d and e have no IPv6 route; lab_block_pair / lab_block_udp cut UDP of
# exactly one pair or router and their unblock twins restore it.
# Usage: tests/netns/lab.sh BUILD_DIR      (root; exit 77 = skipped)
set -u
BUILD=$(cd "${1:?usage: lab.sh BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

if [ "$(id -u)" != 0 ]; then
	echo "skip: needs root (network namespaces)"
	exit 77
fi
for tool in ip nft curl openssl ping stun; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "skip: $tool not installed (stun: apt-get install stun-client)"
		exit 77
	fi
done

. "$ROOT/tests/e2e/lib.sh"
. "$ROOT/scripts/lab/lab.sh"

SERVE="$BUILD/tests/tools/stun_serve"
[ -x "$SERVE" ] || { echo "FAIL - $SERVE not built"; exit 1; }
T0=$(date +%s%N)

E2E_CLEANUPS="lab_down"
lab_init "mvl$$" || { echo "FAIL - cannot create the lab"; exit 1; }
check "lab_fleet builds the fleet" lab_fleet
[ -n "${LAB_NODES:-}" ] || { finish; exit 1; }

# ip NAME: NAME's own IPv4, pub NAME: the one the internet sees, ip6 NAME: its IPv6
ip4() { local v="LAB_IP_$1"; echo "${!v}"; }
pub() { local v="LAB_PUB_$1"; echo "${!v}"; }
ip6() { local v="LAB_IP6_$1"; echo "${!v:-}"; }

# serve NAME ADDR: stun_serve in NAME's namespace on ADDR:3478, log in NAME.stun.log
serve() {
	ip netns exec "$(lab_ns "$1")" "$SERVE" "$2:3478" >"$E2E_TMP/$1.stun.out" 2>"$E2E_TMP/$1.stun.log" &
	track $!
	wait_for 10 grep -q "stun listening" "$E2E_TMP/$1.stun.out"
}
# https NAME: openssl s_server on port 443 of NAME (IPv4 and IPv6)
https() {
	ip netns exec "$(lab_ns "$1")" openssl s_server -accept 443 -www -quiet \
		-cert "$E2E_TMP/cert.pem" -key "$E2E_TMP/key.pem" >"$E2E_TMP/$1.tls.log" 2>&1 &
	track $!
	wait_for 10 lab_exec "$1" sh -c "ss -ltn | grep -q ':443 '"
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=lab \
	-keyout "$E2E_TMP/key.pem" -out "$E2E_TMP/cert.pem" 2>/dev/null
for s in $LAB_SERVERS; do
	check "TLS server on $s:443" https "$s"
done
for s in relay1 relay2; do
	check "STUN server on $s (dual-stack)" serve "$s" "[::]"
done
check "STUN server on a (for the pair cut)" serve a "$(ip4 a)"
check "STUN server on b2 (for the LAN)" serve b2 "$(ip4 b2)"

# --- TCP from everywhere ---
tcp() { lab_exec "$1" curl -sk --fail --max-time 5 -o /dev/null "https://$2/"; }
tcp_all() {
	local s bad=0
	for s in $LAB_SERVERS; do
		tcp "$1" "$(ip4 "$s")" || { echo "$1 -> $s ($(ip4 "$s")) over TCP fails"; bad=1; }
	done
	return $bad
}
for n in $LAB_NODES; do
	check "$n reaches coord, relay1 and relay2 over TCP" tcp_all "$n"
done

# --- UDP mappings from port 41641 ---
# mapped NODE IP [SECS]: NODE's address as the STUN server at IP:3478 saw it (ip:port)
mapped() {
	lab_exec "$1" timeout "${3:-5}" stun "$2:3478" 1 -v -p 41641 2>&1 |
		sed -n 's/^[[:space:]]*mappedAddr=\([0-9.]*:[0-9]*\)$/\1/p' | head -1
}
# Measured in this order on purpose: b takes 41641 on home1 before b2 asks.
declare -A MAP
for n in a b b2 c d; do
	for r in relay1 relay2; do
		MAP[$n,$r]=$(mapped "$n" "$(ip4 "$r")")
	done
	echo "    $n: relay1 sees ${MAP[$n,relay1]:-nothing}, relay2 sees ${MAP[$n,relay2]:-nothing}"
done
# same_map NODE IP PORT|any: both relays saw NODE as IP, on one port (PORT if given)
same_map() {
	local one=${MAP[$1,relay1]} two=${MAP[$1,relay2]}
	[ -n "$one" ] && [ "$one" = "$two" ] && [ "${one%:*}" = "$2" ] &&
		{ [ "$3" = any ] || [ "${one##*:}" = "$3" ]; }
}
# varied_map NODE IP: both relays saw NODE as IP, each on another port
varied_map() {
	local one=${MAP[$1,relay1]} two=${MAP[$1,relay2]}
	[ -n "$one" ] && [ -n "$two" ] && [ "${one%:*}" = "$2" ] && [ "${two%:*}" = "$2" ] &&
		[ "${one##*:}" != "${two##*:}" ]
}
not_port() { [ "${MAP[$1,relay1]##*:}" != "$2" ]; }
check "a (public) sees its own address and port 41641 from both relays" same_map a "$(ip4 a)" 41641
check "b (easy NAT) is home1's address, port 41641 kept, for both relays" same_map b "$(pub b)" 41641
check "b2 (same NAT) is home1's address, one port for both relays" same_map b2 "$(pub b2)" any
check "b2's port is not b's" not_port b2 41641
check "c (hard NAT) gets a different port per destination" varied_map c "$(pub c)"
check "d (CGNAT) is the carrier's address, a different port per destination" varied_map d "$(pub d)"
public_only() {   # the relays logged replies to the carrier's address, none to a private one
	local seen; seen=$(grep -h 'stun reply' "$E2E_TMP"/relay*.stun.log)
	grep -qF "to=$(pub d):" <<<"$seen" && ! grep -E 'to=(100\.64\.|10\.)' <<<"$seen"
}
check "the relays saw d as the carrier's address, never a 100.64 or 10/8 source" public_only
check_fails "e (UDP blocked) gets no STUN answer from relay1" test -n "$(mapped e "$(ip4 relay1)" 2)"
check_fails "nor from relay2" test -n "$(mapped e "$(ip4 relay2)" 2)"
check "e's TCP to relay1 works all the same" tcp e "$(ip4 relay1)"

# --- the home LAN ---
check "b pings b2 on the LAN" lab_exec b ping -c 1 -W 2 "$(ip4 b2)"
check "b's UDP reaches b2 on the LAN, not NATed" test "$(mapped b "$(ip4 b2)")" = "$(ip4 b):41641"

# --- IPv6 ---
v6_stun() {   # v6_stun NODE SERVER [SECS]: NODE's own IPv6 is what SERVER saw
	lab_exec "$1" timeout "${3:-5}" turnutils_stunclient -L "$(ip6 "$1")" "$(ip6 "$2")" 2>&1 |
		grep -q "UDP reflexive addr: $(ip6 "$1"):"
}
no_v6() {
	! lab_exec "$1" ip -6 route get "$(ip6 relay1)" &&
	! lab_exec "$1" ip -6 addr show scope global | grep -q inet6
}
check "a pings relay1 over IPv6" lab_exec a ping -6 -c 1 -W 2 "$(ip6 relay1)"
tcp6_relays() { tcp a "[$(ip6 relay1)]" && tcp a "[$(ip6 relay2)]"; }
check "a reaches relay1 and relay2 over TCP on IPv6" tcp6_relays
if command -v turnutils_stunclient >/dev/null; then
	check "a's UDP reaches relay1 over IPv6 (STUN sees a's own IPv6)" v6_stun a relay1
else
	echo "skip: turnutils_stunclient not installed (apt-get install coturn): no IPv6 UDP checks"
fi
for n in d e; do
	check "$n has no IPv6 address or route" no_v6 "$n"
done

# --- the UDP cut helpers, one pair at a time ---
answers() { test -n "$(mapped "$1" "$2" "${3:-5}")"; }
check "b -> a UDP answers before the cut" answers b "$(ip4 a)"
lab_block_pair b "$(ip4 a)"
check_fails "lab_block_pair b a: b -> a UDP gets no answer" answers b "$(ip4 a)" 2
check "b2 -> a UDP still answers (only the pair is cut)" answers b2 "$(ip4 a)"
check "b -> relay1 UDP still answers" answers b "$(ip4 relay1)"
check "b still pings a (only UDP is cut)" lab_exec b ping -c 1 -W 2 "$(ip4 a)"
lab_unblock_pair b "$(ip4 a)"
check "lab_unblock_pair b a: b -> a UDP answers again" answers b "$(ip4 a)"

if command -v turnutils_stunclient >/dev/null; then
	lab_block_pair a "$(ip6 relay1)"
	check_fails "lab_block_pair a relay1's IPv6: no UDP answer over IPv6" v6_stun a relay1 2
	check "a -> relay1 over IPv4 still answers" answers a "$(ip4 relay1)"
	lab_unblock_pair a "$(ip6 relay1)"
	check "lab_unblock_pair: IPv6 UDP answers again" v6_stun a relay1
fi

lab_block_udp home2
check_fails "lab_block_udp home2: c gets no UDP answer" answers c "$(ip4 relay1)" 2
check "c's TCP still works" tcp c "$(ip4 relay1)"
check "b's UDP (another router) still answers" answers b "$(ip4 relay1)"
lab_unblock_udp home2
check "lab_unblock_udp home2: c's UDP answers again" answers c "$(ip4 relay1)"

echo "    (the suite took $(( ($(date +%s%N) - T0) / 1000000 )) ms)"
finish
