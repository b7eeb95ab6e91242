#!/usr/bin/env bash
# join.sh - end to end in network namespaces with userspace WireGuard (wireguard-go):
# coord and four vpnd nodes on one segment (198.51.100.0/24, scripts/lab/lab.sh). Join
# with an auth key; a pending node stays invisible until approved, then every pair pings
# through the tunnel; an address added or removed reaches coord within seconds; a deleted
# node leaves every WireGuard config and stops; coord killed with -9 and restarted: pings
# keep crossing and streams resume; a vpnd restarted while coord is down runs on its cached
# netmap at once; an expired node comes back with an auth key; vpnd
# restart, down/up and logout keep (or drop) what they should.
# Usage: tests/netns/join.sh BUILD_DIR      (root; exit 77 = skipped)
set -u
BUILD=$(cd "${1:?usage: join.sh BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

if [ "$(id -u)" != 0 ]; then
	echo "skip: needs root (network namespaces)"
	exit 77
fi
for tool in wireguard-go wg ping ip; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "skip: $tool not installed (apt-get install wireguard-go wireguard-tools iputils-ping)"
		exit 77
	fi
done

. "$ROOT/tests/e2e/lib.sh"
. "$ROOT/scripts/lab/lab.sh"

COORD="$BUILD/coord/coord"
VPND="$BUILD/vpnd/vpnd"
VPNCTL="$BUILD/vpnd/vpnctl"
for b in "$COORD" "$VPND" "$VPNCTL"; do
	[ -x "$b" ] || { echo "FAIL - $b not built"; exit 1; }
done

TAG=$$
CSTATE="$E2E_TMP/coord"
COORD_IP=198.51.100.1
URL="https://$COORD_IP:8443"
COORD_PID=""
declare -A VPND_PID IP4 OCTET=([a]=11 [b]=12 [c]=13 [d]=14) HOST=([a]=alpha [b]=bravo [c]=charlie [d]=delta)

# The lab goes on every exit path, after lib.sh has stopped our processes by PID.
E2E_CLEANUPS="lab_down"
lab_init "mvj$TAG" || { echo "FAIL - cannot create the lab"; exit 1; }
lab_host coord 1 || { echo "FAIL - lab host"; exit 1; }
for n in a b c d; do
	lab_host "$n" "${OCTET[$n]}" || { echo "FAIL - lab host $n"; exit 1; }
done

# wireguard-go's socket dir is shared by every namespace: names unique per run.
ifname() { echo "mvj${TAG}$1"; }

start_coord() {
	# ip netns exec itself, not lab_exec: $! must be coord's own PID (kill -9 below).
	ip netns exec "$(lab_ns coord)" "$COORD" serve --state "$CSTATE" --listen "$COORD_IP:8443" --keepalive 2s \
		>"$E2E_TMP/coord.out" 2>>"$E2E_TMP/coord.log" &
	COORD_PID=$!
	track "$COORD_PID"
	wait_for 10 grep -q "listening on" "$E2E_TMP/coord.out" || { tail "$E2E_TMP/coord.log"; return 1; }
	PIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/coord.out" | head -1)
}
adm() { "$COORD" --state "$CSTATE" "$@"; }

start_vpnd() {
	local n=$1
	mkdir -p "$E2E_TMP/$n"
	ip netns exec "$(lab_ns "$n")" "$VPND" --state "$E2E_TMP/$n/state" --socket "$E2E_TMP/$n/vpnd.sock" \
		--wg-backend userspace --ifname "$(ifname "$n")" --port 41641 --log-level debug \
		>>"$E2E_TMP/$n.log" 2>&1 &
	VPND_PID[$n]=$!
	track "${VPND_PID[$n]}"
	wait_for 10 test -S "$E2E_TMP/$n/vpnd.sock"
}
stop_vpnd() {
	local n=$1 pid=${VPND_PID[$1]}
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	local rc=$?
	untrack "$pid"
	return $rc
}
ctl() { local n=$1; shift; lab_exec "$n" "$VPNCTL" --socket "$E2E_TMP/$n/vpnd.sock" "$@"; }
status() { ctl "$1" status --json; }
state_is() { status "$1" | grep -q "\"state\": \"$2\""; }
wg_peers() { lab_exec "$1" wg show "$(ifname "$1")" peers; }
npeers() { test "$(wg_peers "$1" 2>/dev/null | grep -c .)" = "$2"; }
node_key() { status "$1" | grep -o '"node_key": "[^"]*"' | cut -d'"' -f4; }
pings() { lab_exec "$1" ping -c 1 -W 1 "${IP4[$2]}" >/dev/null 2>&1; }
has_peer() { status "$1" | grep -q "\"name\": \"$2\""; }
up() { local n=$1; shift; ctl "$n" up --coord "$URL" --pin "$PIN" --hostname "${HOST[$n]}" "$@"; }

# Every ordered pair among the nodes given pings within the deadline.
all_ping() {
	local secs=$1 x y bad=0; shift
	for x in "$@"; do
		for y in "$@"; do
			[ "$x" = "$y" ] && continue
			wait_for "$secs" pings "$x" "$y" || { echo "    $x -> $y (${IP4[$y]}) does not ping"; bad=1; }
		done
	done
	return $bad
}

dump_logs() {
	for f in "$E2E_TMP"/*.log; do
		echo "--- $f"
		grep -v 'level=debug' "$f" | tail -25
	done
}

# Conditions for check / check_within (they run in this shell, so functions do).
joins_running() { up "$1" --auth-key "$KEY" | grep -q "^Running as ${HOST[$1]} "; }
ip6_is_ula() { ctl "$1" ip -6 | grep -q '^fd'; }
self_has_ip() { status "$1" | grep -A3 '"ips"' | grep -q "\"${IP4[$1]}\""; }
iface_v4() {
	local ns; ns=$(lab_ns "$1")
	ip -n "$ns" addr show dev "$(ifname "$1")" | grep -q "${IP4[$1]}/32" &&
	ip -n "$ns" link show "$(ifname "$1")" | grep -q 'mtu 1280' &&
	ip -n "$ns" route show dev "$(ifname "$1")" | grep -q '^100.64.0.0/10'
}
iface_v6() {
	local ns; ns=$(lab_ns "$1")
	ip -n "$ns" -6 addr show dev "$(ifname "$1")" | grep -q '/128' &&
	ip -n "$ns" -6 route show dev "$(ifname "$1")" | grep -q '::/48'
}
no_iface() { ! ip -n "$(lab_ns "$1")" link show "$(ifname "$1")" >/dev/null 2>&1; }
peer_direct() {   # peer_direct NODE PEERNAME: path direct, a handshake, bytes received
	local s; s=$(status "$1" | tr -d '\n ')
	grep -q "\"name\":\"$2\"[^}]*\"path\":\"direct\"" <<<"$s" &&
	! grep -q "\"name\":\"$2\"[^}]*\"last_handshake\":0," <<<"$s" &&
	! grep -q "\"name\":\"$2\"[^}]*\"rx_bytes\":0," <<<"$s"
}
human_lists() { ctl "$1" status | grep -q "^$2 .*direct"; }
coord_has_endpoint() { adm nodes show "$1" | grep -q "$2"; }
coord_lacks_endpoint() { local s; s=$(adm nodes show "$1") || return 1; ! grep -qF "$2" <<<"$s"; }
no_peers() { ! wg_peers "$1" 2>/dev/null | grep -q .; }
lacks_key() { ! wg_peers "$1" | grep -qF "$2"; }
sees_not() { ! has_peer "$1" "$2"; }
no_ping() { ! pings "$1" "$2"; }
stopped_because() { state_is "$1" stopped && ctl "$1" status | grep -q "$2"; }
coord_connected() { status "$1" | grep -q "\"coord_connected\": $2"; }
listed_online() { adm nodes list | grep "$1" | grep -q ' yes '; }
not_listed() { ! adm nodes list | grep -q "$1"; }
rejoins_plain() { ctl "$1" up | grep -q "^Running as ${HOST[$1]} "; }
exit_code_is() { local want=$1; shift; "$@" >/dev/null 2>&1; test $? = "$want"; }
says_not_running() { "$VPNCTL" --socket "$E2E_TMP/none.sock" status 2>&1 | grep -q 'vpnd is not running'; }
no_leftovers() {
	local n
	for n in a b c d; do
		no_iface "$n" || return 1
		test ! -e "/var/run/wireguard/$(ifname "$n").sock" || return 1
	done
}
peer_fields() {
	local s k; s=$(status "$1")
	for k in name ips online path endpoint relay last_handshake rx_bytes tx_bytes; do
		grep -q "\"$k\": " <<<"$s" || { echo "no $k"; return 1; }
	done
}
keepalive_is() {   # keepalive_is NODE PEERKEY VALUE ("25" or "off")
	test "$(wg_show_ka "$1" | awk -v k="$2" '$1 == k { print $2 }')" = "$3"
}
wg_show_ka() { lab_exec "$1" wg show "$(ifname "$1")" persistent-keepalive; }
mode_600() { test "$(stat -c %a "$1")" = 600; }
from_cache() { status "$1" | grep -q "\"netmap_from_cache\": $2"; }
has_cache() { test -s "$E2E_TMP/$1/state/netmap"; }
no_cache() { test ! -e "$E2E_TMP/$1/state/netmap"; }
no_secrets_logged() { ! grep -h -e "$KEY" -e 'mvpn-node-' "$E2E_TMP"/*.log; }

check "coord starts in its namespace" start_coord
[ -n "${PIN:-}" ] || { echo "no pin; cannot continue"; dump_logs; finish; exit 1; }
KEY=$(adm keys create --reusable | tail -1)
check "an auth key is created" grep -q '^mvpn-auth-' <<<"$KEY"

for n in a b c d; do
	check "vpnd $n starts" start_vpnd "$n"
done
check "a fresh node says it is stopped" state_is a stopped
check "vpnctl: unknown subcommand is bad usage (exit 2)" exit_code_is 2 ctl a frobnicate
check "vpnctl: an option of another subcommand is bad usage (exit 2)" exit_code_is 2 ctl a status --coord "$URL"
check "vpnctl up refuses a non-https coord (exit 2)" exit_code_is 2 ctl a up --coord http://x
check "vpnctl without a daemon exits 1" exit_code_is 1 "$VPNCTL" --socket "$E2E_TMP/none.sock" status
check "... and says how to start it" says_not_running
check "up without --coord before any join is bad usage (exit 2)" exit_code_is 2 ctl a up

# --- join with an auth key ---
for n in a b c; do
	check "$n joins with an auth key and runs" joins_running "$n"
	IP4[$n]=$(ctl "$n" ip -4)
done
check "vpnctl ip -4 prints an address in 100.64.0.0/10" grep -qE '^100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.[0-9]+\.[0-9]+$' <<<"${IP4[a]}"
check "vpnctl ip -6 prints the ULA address" ip6_is_ula a
check "status --json: self running with its addresses" self_has_ip a
check "interface: the /32, MTU 1280, route 100.64.0.0/10" iface_v4 a
check "interface: the /128 and the tailnet's /48 route" iface_v6 a
for n in a b c; do
	check_within "$n has the other two as WireGuard peers" 10 npeers "$n" 2
done
check "a, b and c ping each other through the tunnel" all_ping 10 a b c
check "status: bravo direct, with a handshake and traffic" peer_direct a bravo
check "status (human) lists the peers aligned" human_lists a bravo
check "a's endpoints reached coord" coord_has_endpoint alpha "198.51.100.11:41641"

# --- an address change reaches coord at once (rtnetlink watch; the periodic check is 60 s) ---
check "a second address on a's eth0" ip -n "$(lab_ns a)" addr add 198.51.100.111/24 dev eth0
check_within "coord lists a's new endpoint within 3 s" 3 coord_has_endpoint alpha "198.51.100.111:41641"
check "a's first endpoint is still there" coord_has_endpoint alpha "198.51.100.11:41641"
check "the second address goes" ip -n "$(lab_ns a)" addr del 198.51.100.111/24 dev eth0
check_within "coord drops it within 3 s" 3 coord_lacks_endpoint alpha "198.51.100.111:41641"
# A link without carrier (cable out, Wi-Fi gone) offers no endpoint, and gets it back with
# the carrier.
# (a veth pair inside a's namespace: cv0 has carrier only while its peer cv1 is up)
check "a link without carrier on a" bash -c "ip -n $(lab_ns a) link add cv0 type veth peer name cv1 &&
	ip -n $(lab_ns a) addr add 203.0.113.5/24 dev cv0 && ip -n $(lab_ns a) link set cv0 up"
check "and a marker address on eth0" ip -n "$(lab_ns a)" addr add 198.51.100.112/24 dev eth0
check_within "the marker reaches coord (vpnd has looked)" 3 coord_has_endpoint alpha "198.51.100.112:41641"
check "the address without carrier was not posted" coord_lacks_endpoint alpha "203.0.113.5:41641"
check "the marker goes" ip -n "$(lab_ns a)" addr del 198.51.100.112/24 dev eth0
check "the carrier comes" ip -n "$(lab_ns a)" link set cv1 up
check_within "coord lists the address within 3 s" 3 coord_has_endpoint alpha "203.0.113.5:41641"
check "the carrier goes" ip -n "$(lab_ns a)" link set cv1 down
check_within "coord drops it within 3 s again" 3 coord_lacks_endpoint alpha "203.0.113.5:41641"
check "the veth pair goes" ip -n "$(lab_ns a)" link del cv0
check "a and b still ping each other" all_ping 5 a b
check "status --json: every peer field of the contract" peer_fields a
check "the control socket is 0600" mode_600 "$E2E_TMP/a/vpnd.sock"
check "keys and prefs are 0600" bash -c "test \$(stat -c %a '$E2E_TMP/a/state/keys') = 600 && test \$(stat -c %a '$E2E_TMP/a/state/prefs') = 600"

# --- pending, then approved ---
up d >"$E2E_TMP/d.up" 2>&1
RC=$?
check "d joins without a key: exit 0 while waiting" test "$RC" = 0
check "d is told the exact approve command" grep -q '^    coord nodes approve delta$' "$E2E_TMP/d.up"
check "d's status says needs-approval" state_is d needs-approval
# A pending node holds no address (issue 12): d gets one when approved, the next one coord
# hands out (next-fit: the one after c's), which nobody reaches meanwhile.
check "d holds no address while pending (vpnctl ip has none to print: exit 1)" exit_code_is 1 ctl d ip -4
IP4[d]=${IP4[c]%.*}.$(( ${IP4[c]##*.} + 1 ))
check "d has no WireGuard peers while pending" no_peers d
check "a pending node writes no netmap cache" no_cache d
check "the others do not see d" sees_not a delta
check "nobody reaches d yet" no_ping a d
check "approve delta" adm nodes approve delta
check_within "d runs without another command" 10 state_is d running
check "approval gave d that address" test "$(ctl d ip -4)" = "${IP4[d]}"
check "every pair pings within seconds of the approval" all_ping 10 a b c d
check_within "once running, d caches its netmap (0600)" 5 mode_600 "$E2E_TMP/d/state/netmap"

# --- delete ---
CKEY=$(node_key c)
check "delete charlie" adm nodes delete charlie
for n in a b d; do
	check_within "charlie's key leaves $n's WireGuard config" 10 lacks_key "$n" "$CKEY"
done
check_within "charlie stops and says why" 10 stopped_because c deleted
check "charlie's interface is gone" no_iface c
check "charlie's netmap cache is gone" no_cache c
check "the rest still ping" all_ping 5 a b d

# --- coord kill -9 and restart ---
kill -9 "$COORD_PID"
wait "$COORD_PID" 2>/dev/null
untrack "$COORD_PID"
check_within "the nodes notice coord is gone" 10 coord_connected a false
check "pings keep crossing while coord is down" all_ping 5 a b d
check "a stays running without coord" state_is a running
check "coord restarts on the same state" start_coord
for n in a b d; do
	check_within "$n's netmap stream resumes" 40 coord_connected "$n" true
	check_within "... from its version, not with a full map" 10 grep -q 'msg="netmap resumed"' "$E2E_TMP/$n.log"
done
check_within "coord sees the nodes online again" 10 listed_online alpha
check_within "endpoints are posted again after the restart" 10 coord_has_endpoint bravo "198.51.100.12:41641"
check "pings still cross after the restart" all_ping 5 a b d

# --- vpnd restart while coord is down: the cached netmap brings the peers up at once ---
check "a has a netmap cache" has_cache a
kill -9 "$COORD_PID"
wait "$COORD_PID" 2>/dev/null
untrack "$COORD_PID"
check_within "a notices coord is gone" 10 coord_connected a false
check "vpnd a stops on SIGTERM while coord is down" stop_vpnd a
check "vpnd a starts again while coord is still down" start_vpnd a
check_within "a runs on its cached netmap within 5 s" 5 state_is a running
check "a's interface has its address and route" iface_v4 a
check "a has b and d as WireGuard peers" npeers a 2
check "a pings b and d through the tunnel without coord" all_ping 5 a b d
check "status: coord_connected false" coord_connected a false
check "status: the netmap is from the cache" from_cache a true
check "a logs the netmap from the cache" grep -q 'msg="netmap from cache" peers=2 ' "$E2E_TMP/a.log"
check "d goes down while coord is down" ctl d down
check "d's interface is removed" no_iface d
check "up while coord is down comes back on the cache" rejoins_plain d
check "d pings a and b again without coord" all_ping 5 d a b
RESUMED=$(grep -c 'msg="netmap resumed"' "$E2E_TMP/a.log")
check "coord restarts again" start_coord
check_within "a's netmap stream resumes" 40 coord_connected a true
check_within "a continues its cached map from the cached version" 10 \
	bash -c "[ \$(grep -c 'msg=\"netmap resumed\"' '$E2E_TMP/a.log') -gt $RESUMED ]"
check_within "coord's full map replaces the cached one" 10 from_cache a false
check "pings still cross with coord's map" all_ping 5 a b d

# --- expiry, then back with an auth key ---
BKEY_OLD=$(node_key b)
check "expire bravo" adm nodes expire bravo
check_within "bravo's state says expired" 10 state_is b expired
check_within "bravo has no peers while expired" 10 no_peers b
check "an expired node keeps no netmap cache" no_cache b
check_within "the others drop bravo" 10 sees_not a bravo
check "bravo comes back with an auth key" joins_running b
check "with a new node key" test "$(node_key b)" != "$BKEY_OLD"
check "and the same address" test "$(ctl b ip -4)" = "${IP4[b]}"
check "everyone pings bravo again" all_ping 10 a b d

# --- vpnd restart keeps the addresses ---
AKEY=$(node_key a)
check "b keeps its session with a alive (keepalive 25 s)" keepalive_is b "$AKEY" 25
check "vpnd a stops cleanly on SIGTERM" stop_vpnd a
check_within "b stops keeping a's session alive while a is offline" 10 keepalive_is b "$AKEY" off
check "its interface is removed" no_iface a
check "and wireguard-go's socket too" test ! -e "/var/run/wireguard/$(ifname a).sock"
check "vpnd a starts again" start_vpnd a
check_within "a rejoins on its own (prefs say up)" 15 state_is a running
check "with the same address" test "$(ctl a ip -4)" = "${IP4[a]}"
check "and pings again" all_ping 10 a b d
check_within "b keeps a's session alive again once a is back" 10 keepalive_is b "$AKEY" 25

# --- down / up ---
check "down" ctl b down
check "down removes the interface" no_iface b
check "down keeps keys and registration" test -s "$E2E_TMP/b/state/keys"
check "down keeps the netmap cache" has_cache b
check "up without --coord rejoins" rejoins_plain b
check "same address after down/up" test "$(ctl b ip -4)" = "${IP4[b]}"
check "b pings again" all_ping 10 a b

# --- logout ---
DKEY=$(node_key d)
check "d has a netmap cache before logout" has_cache d
check "logout" ctl d logout
check "logout deletes the keys" test ! -e "$E2E_TMP/d/state/keys"
check "logout deletes the netmap cache" no_cache d
check "coord forgets delta" not_listed delta
check_within "the others drop delta's key" 10 lacks_key a "$DKEY"

for n in a b c d; do
	check "vpnd $n exits 0 on SIGTERM" stop_vpnd "$n"
done
check "no interface or wireguard-go socket is left" no_leftovers
check "no auth key or token in any log" no_secrets_logged

[ "$FAILED" -eq 0 ] || dump_logs
finish
