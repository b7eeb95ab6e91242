#!/usr/bin/env bash
# traversal.sh - NAT traversal in the full lab (scripts/lab/lab.sh lab_fleet): coord and
# two relays on public addresses; a public; b and b2 behind one easy NAT; c behind a hard
# NAT; d behind carrier-grade NAT; e like d without UDP. Six vpnd (userspace WireGuard)
# join; every pair pings and takes the path physics allows (direct: a<->b,b2,c,d and
# b<->b2 over their LAN; relay: c<->d and e<->anyone; the easy<->hard pairs either). A
# direct pair whose UDP is cut moves to the relay with pings continuing and comes back
# when it is restored; a node whose home relay dies moves to the other; garbage on every
# port changes nothing; a deleted node's relayed traffic stops.
# Usage: tests/netns/traversal.sh BUILD_DIR      (root; exit 77 = skipped)
set -u
BUILD=$(cd "${1:?usage: traversal.sh BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

if [ "$(id -u)" != 0 ]; then
	echo "skip: needs root (network namespaces)"
	exit 77
fi
for tool in wireguard-go wg ping ip nft curl; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "skip: $tool not installed"
		exit 77
	fi
done

. "$ROOT/tests/e2e/lib.sh"
. "$ROOT/scripts/lab/lab.sh"

COORD="$BUILD/coord/coord"
RELAY="$BUILD/relay/relay"
VPND="$BUILD/vpnd/vpnd"
VPNCTL="$BUILD/vpnd/vpnctl"
PROBE="$BUILD/tests/tools/discoprobe"
for b in "$COORD" "$RELAY" "$VPND" "$VPNCTL"; do
	[ -x "$b" ] || { echo "FAIL - $b not built"; exit 1; }
done

TAG=$$
CSTATE="$E2E_TMP/coord"
E2E_CLEANUPS="lab_down"
lab_init "mvt$TAG" || { echo "FAIL - cannot create the lab"; exit 1; }
lab_fleet || { echo "FAIL - cannot build the fleet"; exit 1; }
URL="https://$LAB_IP_coord:8443"
NODES="a b b2 c d e"
declare -A VPND_PID RELAY_PID IP4 HOST=([a]=alpha [b]=bravo [b2]=bravo2 [c]=charlie [d]=delta [e]=echo)

ifname() { echo "mvt${TAG}$1"; }

start_coord() {
	ip netns exec "$(lab_ns coord)" "$COORD" serve --state "$CSTATE" --listen "$LAB_IP_coord:8443" \
		--keepalive 2s >"$E2E_TMP/coord.out" 2>>"$E2E_TMP/coord.log" &
	track $!
	wait_for 10 grep -q "listening on" "$E2E_TMP/coord.out" || { tail "$E2E_TMP/coord.log"; return 1; }
	PIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/coord.out" | head -1)
}
adm() { "$COORD" --state "$CSTATE" "$@"; }

# start_relay NAME: the relay on its public address, STUN on IPv4 and IPv6
start_relay() {
	local r=$1 ip ip6 tok
	eval "ip=\$LAB_IP_$r ip6=\$LAB_IP6_$r"
	[ -s "$E2E_TMP/$r.token" ] ||
		adm relays add "$r" "https://$ip:443" --stun "$ip:3478,[$ip6]:3478" | tail -1 >"$E2E_TMP/$r.token"
	tok=$(cat "$E2E_TMP/$r.token")
	: >"$E2E_TMP/$r.out"
	ip netns exec "$(lab_ns "$r")" "$RELAY" --coord "$URL" --token "$tok" --pin "$PIN" \
		--listen "$ip:443" --stun "[::]:3478" --metrics 127.0.0.1:9102 --state "$E2E_TMP/$r" \
		>>"$E2E_TMP/$r.out" 2>>"$E2E_TMP/$r.log" &
	RELAY_PID[$r]=$!
	track "${RELAY_PID[$r]}"
	wait_for 10 grep -q 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/$r.out" || { tail "$E2E_TMP/$r.log"; return 1; }
	wait_for 10 relay_metric "$r" relay_coord_connected 1
}
kill_relay() {
	local pid=${RELAY_PID[$1]}
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	untrack "$pid"
}
relay_metric() { lab_exec "$1" curl -s http://127.0.0.1:9102/metrics | grep -F "$2 " | awk '{print $2}' | grep -qx "$3"; }

start_vpnd() {
	local n=$1
	mkdir -p "$E2E_TMP/$n"
	ip netns exec "$(lab_ns "$n")" "$VPND" --state "$E2E_TMP/$n/state" --socket "$E2E_TMP/$n/vpnd.sock" \
		--wg-backend userspace --ifname "$(ifname "$n")" --port 41641 --metrics 127.0.0.1:9101 \
		--log-level debug >>"$E2E_TMP/$n.log" 2>&1 &
	VPND_PID[$n]=$!
	track "${VPND_PID[$n]}"
	wait_for 10 test -S "$E2E_TMP/$n/vpnd.sock"
}
ctl() { local n=$1; shift; lab_exec "$n" "$VPNCTL" --socket "$E2E_TMP/$n/vpnd.sock" "$@"; }
status() { ctl "$1" status --json | tr -d '\n '; }
joins() { ctl "$1" up --coord "$URL" --pin "$PIN" --hostname "${HOST[$1]}" --auth-key "$KEY" | grep -q '^Running as '; }
pings() { lab_exec "$1" ping -c 1 -W 1 "${IP4[$2]}" >/dev/null 2>&1; }
no_ping() { ! lab_exec "$1" ping -c 2 -W 1 "${IP4[$2]}" >/dev/null 2>&1; }
vmetric() { local v; v=$(lab_exec "$1" curl -s http://127.0.0.1:9101/metrics | grep "^$2 " | awk '{print $2}'); echo "${v:-0}"; }
serves_metrics() { lab_exec "$1" curl -sf http://127.0.0.1:9101/metrics | grep -q '^vpnd_disco_received_total '; }
vmetric_pos() { test "$(vmetric "$1" "$2")" -gt 0 2>/dev/null; }
# path_of NODE PEER: the path NODE's status gives for PEER (direct, relay, none)
path_of() { status "$1" | grep -o "\"name\":\"${HOST[$2]}\"[^}]*" | grep -o '"path":"[a-z]*"' | cut -d'"' -f4; }
path_is() { test "$(path_of "$1" "$2")" = "$3"; }
# both ways
pair_path() { path_is "$1" "$2" "$3" && path_is "$2" "$1" "$3"; }
home_of() { status "$1" | grep -o '"home_relay":"[^"]*"' | cut -d'"' -f4; }
home_is_not() { local h; h=$(home_of "$1"); [ -n "$h" ] && [ "$h" != "$2" ]; }

# every ordered pair among the nodes given pings within the deadline
all_ping() { local secs=$1; shift; all_pairs "$secs" pings "$@"; }
matrix() {
	local x y row
	printf '%-6s' ""
	for y in $NODES; do printf '%-8s' "$y"; done
	echo
	for x in $NODES; do
		row=$(printf '%-6s' "$x")
		for y in $NODES; do
			if [ "$x" = "$y" ]; then row="$row$(printf '%-8s' -)"; else row="$row$(printf '%-8s' "$(path_of "$x" "$y")")"; fi
		done
		echo "$row"
	done
}
dump_logs() {
	for f in "$E2E_TMP"/*.log; do
		echo "--- $f"
		grep -v 'level=debug' "$f" | tail -15
	done
}

check "coord starts" start_coord
[ -n "${PIN:-}" ] || { echo "no pin"; dump_logs; finish; exit 1; }
KEY=$(adm keys create --reusable | tail -1)
check "relay1 starts" start_relay relay1
check "relay2 starts" start_relay relay2
for n in $NODES; do
	check "vpnd $n starts" start_vpnd "$n"
done
for n in $NODES; do
	check "$n joins" joins "$n"
	IP4[$n]=$(ctl "$n" ip -4)
done

check "every pair pings (30 ordered pairs)" all_ping 15 $NODES

# --- paths: what physics allows ---
for p in "a b" "a b2" "a c" "a d" "b b2"; do
	set -- $p
	check_within "$1 <-> $2 direct" 15 pair_path "$1" "$2" direct
done
for p in "c d" "e a" "e b" "e b2" "e c" "e d"; do
	set -- $p
	check_within "$1 <-> $2 through a relay" 15 pair_path "$1" "$2" relay
done
b_lan() { status b | grep -o "\"name\":\"bravo2\"[^}]*" | grep -q '"endpoint":"10.1.0.3:41641"'; }
check "b reaches b2 over their LAN (10.1.0.3)" b_lan
a_sees_c_mapping() { status a | grep -o "\"name\":\"charlie\"[^}]*" | grep -q "\"endpoint\":\"$LAB_PUB_c:"; }
check "a reaches c at its hard NAT's address (a mapping learned from c's ping)" a_sees_c_mapping
echo "path matrix:"
matrix | sed 's/^/    /'

# --- netcheck ---
nc_json() { ctl "$1" netcheck --json | tr -d '\n '; }
nc_a() { local s; s=$(nc_json a); grep -q '"udp":true' <<<"$s" && grep -q "\"ipv4\":\"$LAB_IP_a:41641\"" <<<"$s" &&
	grep -q "\"ipv6\":\"\\[$LAB_IP6_a\\]:41641\"" <<<"$s" && grep -q '"mapping_varies_by_dest":false' <<<"$s"; }
check "netcheck a: UDP, its own IPv4 and IPv6, mapping stable" nc_a
nc_b() { local s; s=$(nc_json b); grep -q "\"ipv4\":\"$LAB_PUB_b:41641\"" <<<"$s" && grep -q '"mapping_varies_by_dest":false' <<<"$s"; }
check "netcheck b: the easy NAT's address, port kept" nc_b
nc_c() { nc_json c | grep -q '"mapping_varies_by_dest":true'; }
check "netcheck c: hard NAT (mapping varies by destination)" nc_c
nc_d() { local s; s=$(nc_json d); grep -q '"mapping_varies_by_dest":true' <<<"$s" && grep -q '"ipv6":""' <<<"$s"; }
check "netcheck d: CGNAT varies by destination, no IPv6" nc_d
nc_e() { local s; s=$(nc_json e); grep -q '"udp":false' <<<"$s" && grep -q '"preferred_relay":""' <<<"$s"; }
check "netcheck e: no UDP" nc_e
nc_human() { ctl a netcheck | grep -q '^preferred relay: relay'; }
check "netcheck (human) names the preferred relay" nc_human

# --- vpnctl ping ---
ping_direct() { ctl a ping bravo -c 1 | grep -q "^pong from bravo via $LAB_PUB_b:41641 in "; }
check "vpnctl ping a -> bravo: direct, at b's NAT address" ping_direct
ping_relay() { ctl c ping delta -c 1 | grep -q '^pong from delta via relay relay[12] in '; }
check "vpnctl ping c -> delta: through a relay" ping_relay
exit_code_is() { local want=$1; shift; "$@" >/dev/null 2>&1; test $? = "$want"; }
check "vpnctl ping of an unknown peer fails (exit 1)" exit_code_is 1 ctl a ping nosuch -c 1

# --- a direct pair loses UDP, then gets it back ---
check "cut UDP between a and b (in b's namespace)" lab_block_pair b "$LAB_IP_a"
check_within "a <-> b moves to the relay within 5 s" 5 pair_path a b relay
check "a and b still ping each other" all_ping 5 a b
check "a <-> b2 stays direct" pair_path a b2 direct
check "UDP between a and b restored" lab_unblock_pair b "$LAB_IP_a"
check_within "a <-> b direct again within 12 s" 12 pair_path a b direct
check "a and b ping" all_ping 5 a b

# --- the network changes under a node (a new address: another Wi-Fi, a new lease) ---
move_b() {
	local ns; ns=$(lab_ns b)
	ip -n "$ns" addr del 10.1.0.2/24 dev eth0 && ip -n "$ns" addr add 10.1.0.12/24 dev eth0 &&
		ip -n "$ns" route replace default via 10.1.0.1
}
b_at_new_lan() { status b2 | grep -o '"name":"bravo"[^}]*' | grep -q '"endpoint":"10.1.0.12:41641"'; }
check "b moves to another address (10.1.0.2 -> 10.1.0.12)" move_b
a_sees_b_moved() { status a | grep -o '"name":"bravo"[^}]*' | grep '"path":"direct"' | grep -q "\"endpoint\":\"$LAB_PUB_b:" &&
	! status a | grep -o '"name":"bravo"[^}]*' | grep -q "\"endpoint\":\"$LAB_PUB_b:41641\""; }
check_within "a reaches b directly at the new mapping its NAT gave it within 5 s" 5 a_sees_b_moved
check "a <-> b direct" pair_path a b direct
check "a and b ping" all_ping 5 a b
check_within "b2 reaches b at its new LAN address within 5 s" 5 b_at_new_lan
check "b and b2 ping" all_ping 5 b b2

# --- bad input on every port: nothing changes ---
garbage() {
	local n t
	for n in $NODES; do
		for t in $LAB_IP_a $LAB_PUB_b $LAB_IP_relay1 $LAB_IP_relay2 $LAB_IP_coord; do
			lab_exec "$n" bash -c "for i in 1 2 3 4 5; do head -c \$((RANDOM % 1400 + 1)) /dev/urandom > /dev/udp/$t/41641; head -c 200 /dev/urandom > /dev/udp/$t/3478; done" 2>/dev/null
			lab_exec "$n" bash -c "printf 'MVDISC%0200d' 0 > /dev/udp/$t/41641" 2>/dev/null
		done
	done
	lab_exec a bash -c "head -c 5000 /dev/urandom > /dev/tcp/$LAB_IP_relay1/443; head -c 5000 /dev/urandom > /dev/tcp/$LAB_IP_coord/8443" 2>/dev/null
	return 0
}
check "a serves its disco counters on /metrics" serves_metrics a
check "garbage to every node's WireGuard port, the relays' STUN and TLS ports, coord" garbage
dropped_disco() { test $(( $(vmetric a vpnd_disco_malformed_total) + $(vmetric a vpnd_disco_unknown_key_total) )) -gt 0; }
check "a dropped and counted the disco-looking garbage" dropped_disco
if [ -x "$PROBE" ]; then
	check "disco from an unknown key to a" lab_exec b "$PROBE" --mode unknown --to-state "$E2E_TMP/a/state" --addr "$LAB_IP_a:41641"
	check_within "... dropped and counted (unknown key)" 3 vmetric_pos a vpnd_disco_unknown_key_total
	check "disco with a bad box (b's disco key) to a" lab_exec b "$PROBE" --mode badbox --from-state "$E2E_TMP/b/state" --to-state "$E2E_TMP/a/state" --addr "$LAB_IP_a:41641"
	check_within "... dropped and counted (bad box)" 3 vmetric_pos a vpnd_disco_bad_box_total
	check "a replayed disco ping to a" lab_exec b "$PROBE" --mode replay --from-state "$E2E_TMP/b/state" --to-state "$E2E_TMP/a/state" --addr "$LAB_IP_a:41641"
	check_within "... the second copy dropped and counted (replay)" 3 vmetric_pos a vpnd_disco_replayed_total
	check "a disco ping from b's disco key naming another node key" lab_exec b "$PROBE" --mode wrongnode --from-state "$E2E_TMP/b/state" --to-state "$E2E_TMP/a/state" --addr "$LAB_IP_a:41641"
	check_within "... dropped and counted (wrong node)" 3 vmetric_pos a vpnd_disco_wrong_node_total
	check "STUN garbage and an unasked STUN answer to a's WireGuard port" lab_exec b "$PROBE" --mode stun --to-state "$E2E_TMP/a/state" --addr "$LAB_IP_a:41641" --count 3
	check_within "... ignored and counted" 3 vmetric_pos a vpnd_stun_bad_total
fi
check "every pair still pings" all_ping 10 $NODES
for p in "a b" "a d" "b b2"; do
	set -- $p
	check "$1 <-> $2 still direct" pair_path "$1" "$2" direct
done

# --- the home relay dies ---
DHOME=$(home_of d)
check "d has a home relay" test -n "$DHOME"
check "d's home relay ($DHOME) killed" kill_relay "$DHOME"
check_within "d moves to the other relay within 8 s" 8 home_is_not d "$DHOME"
check "d's relayed pairs ping again (d <-> c, d <-> e)" all_ping 15 c d e
check "direct pairs never noticed (a <-> b)" all_ping 3 a b
check "the dead relay comes back" start_relay "$DHOME"

# --- a deleted node's relayed traffic stops ---
check "e pings d before" all_ping 10 d e
check "delete echo" adm nodes delete echo
check_within "d no longer reaches e within 10 s" 10 no_ping d e

[ "$FAILED" -eq 0 ] || dump_logs
finish
