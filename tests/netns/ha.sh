#!/usr/bin/env bash
# ha.sh - issue 11 with real nodes: PostgreSQL started by the test (data dir and Unix
# socket under the test's temp dir; the socket is reached from every namespace), three
# coord instances on it at once in the coord namespace (198.51.100.1, .2, .3, port 8443),
# a relay (.5) and vpnd nodes with userspace WireGuard: a (.11) and b (.12) public, c
# behind a router that forwards no UDP (its traffic goes through the relay), p and q
# pending until approved. Each node's --coord list starts with another instance (a: 1,2,3;
# b: 2,3,1; c: 3,1,2; the relay: 1,3,2). Shown: (1) an approval made on one instance is a
# WireGuard peer on nodes streaming from each of the others within a second (the request's
# send time vs each vpnd's "peer added" log line); (2) kill -9 of instance 1 moves a and the
# relay to their next instance within seconds while pings a->b and a->c (relayed) run:
# the lost pings are counted, no peer leaves `wg show`, and the nodes, keys, relays and
# DNS policy the survivors list are what they listed before, and so does c1 restarted;
# (3) PostgreSQL restarted under the three instances: pings continue, every stream stays
# up on its instance, writes are refused with 503 meanwhile, every instance reconnects,
# and an approval on one instance again reaches the others' nodes within a second.
# Usage: tests/netns/ha.sh BUILD_DIR      (root; exit 77 = skipped; under the netns flock)
set -u
BUILD=$(cd "${1:?usage: ha.sh BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

. "$ROOT/tests/e2e/lib.sh"
. "$ROOT/tests/e2e/traffic.sh"
. "$ROOT/scripts/lab/lab.sh"
. "$ROOT/scripts/lib/pg.sh"
need_root_tools wireguard-go wg ping ip nft curl jq runuser
pg_bin >/dev/null 2>&1 || { echo "skip: PostgreSQL not installed"; exit 77; }

COORD="$BUILD/coord/coord"
VPND="$BUILD/vpnd/vpnd"
VPNCTL="$BUILD/vpnd/vpnctl"
RELAY="$BUILD/relay/relay"
need_built "$COORD" "$VPND" "$VPNCTL" "$RELAY"

TAG=$$
RELAY_IP=198.51.100.5
declare -A URL=([1]=https://198.51.100.1:8443 [2]=https://198.51.100.2:8443 [3]=https://198.51.100.3:8443)
declare -A LIST=([a]="${URL[1]},${URL[2]},${URL[3]}" [b]="${URL[2]},${URL[3]},${URL[1]}"
	[c]="${URL[3]},${URL[1]},${URL[2]}" [p]="${URL[2]},${URL[1]},${URL[3]}" [q]="${URL[3]},${URL[2]},${URL[1]}")
declare -A HOST=([a]=alpha [b]=bravo [c]=charlie [p]=papa [q]=quebec)
declare -A MPORT=([a]=9111 [b]=9112 [c]=9113 [p]=9114 [q]=9115)
declare -A CPID VPND_PID IP4 WATCH

ifname() { echo "mvha${TAG}$1"; }
wg_socks_rm() { local n; for n in a b c p q; do rm -f "/var/run/wireguard/$(ifname "$n").sock"; done; }
# e2e_cleanup stops every tracked PID first, then these: the namespaces, PostgreSQL
# (stopped and its directory removed), wireguard-go's sockets.
E2E_CLEANUPS="lab_down pg_stop wg_socks_rm"

lab_init "mvha$TAG" || { echo "FAIL - cannot create the lab"; exit 1; }
lab_host coord 1 && lab_host relay 5 && lab_host a 11 && lab_host b 12 && lab_host p 14 &&
	lab_host q 15 || { echo "FAIL - lab hosts"; exit 1; }
ip -n "$(lab_ns coord)" addr add 198.51.100.2/24 dev eth0 &&
	ip -n "$(lab_ns coord)" addr add 198.51.100.3/24 dev eth0 || { echo "FAIL - coord addresses"; exit 1; }
lab_router home 20 10.1.0 && lab_behind c home 2 && lab_block_udp home || { echo "FAIL - c's NAT"; exit 1; }

pg_start "$E2E_TMP/pg" >"$E2E_TMP/pg-start.log" 2>&1 || { cat "$E2E_TMP/pg-start.log"; echo "FAIL - cannot start PostgreSQL"; exit 1; }

ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }

# start_coord I: instance cI on the shared database, on 198.51.100.I:8443.
start_coord() {
	local i=$1
	: >"$E2E_TMP/c$i.out"
	ip netns exec "$(lab_ns coord)" "$COORD" serve --store "$PG_URI" --instance "c$i" \
		--state "$E2E_TMP/c$i" --listen "198.51.100.$i:8443" --keepalive 2s \
		>"$E2E_TMP/c$i.out" 2>>"$E2E_TMP/c$i.log" &
	CPID[$i]=$!
	track "${CPID[$i]}"
	wait_for 15 grep -q "listening on" "$E2E_TMP/c$i.out" || { tail "$E2E_TMP/c$i.log"; return 1; }
}
kill9_coord() { kill -9 "${CPID[$1]}"; wait "${CPID[$1]}" 2>/dev/null; untrack "${CPID[$1]}"; }
pin_of() { grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/c$1.out" | head -1; }
adm() { local i=$1; shift; "$COORD" --state "$E2E_TMP/c$i" "$@"; }
db_ok() { adm "$1" status --json | jq -e ".database_ok == $2"; }
all_db_is() { local want=$1 i; shift; for i in "$@"; do db_ok "$i" "$want" >/dev/null || return 1; done; }

start_relay() {
	ip netns exec "$(lab_ns relay)" "$RELAY" --coord "${URL[1]},${URL[3]},${URL[2]}" --token "$RTOK" \
		--pin "$PIN" --listen "$RELAY_IP:443" --stun off --metrics 127.0.0.1:9120 \
		--state "$E2E_TMP/relay" >>"$E2E_TMP/relay.out" 2>>"$E2E_TMP/relay.log" &
	track $!
	wait_for 10 relay_metric relay_coord_connected 1
}
relay_metric() { lab_exec relay curl -s http://127.0.0.1:9120/metrics | grep -qF "$1 $2"; }
relay_instance() { relay_metric "relay_coord_instance{url=\"$1\"}" 1; }

start_vpnd() {
	local n=$1
	mkdir -p "$E2E_TMP/$n"
	ip netns exec "$(lab_ns "$n")" "$VPND" --state "$E2E_TMP/$n/state" --socket "$E2E_TMP/$n/vpnd.sock" \
		--wg-backend userspace --ifname "$(ifname "$n")" --port 41641 --log-level debug \
		--metrics "127.0.0.1:${MPORT[$n]}" >>"$E2E_TMP/$n.log" 2>&1 &
	VPND_PID[$n]=$!
	track "${VPND_PID[$n]}"
	wait_for 10 test -S "$E2E_TMP/$n/vpnd.sock"
}
ctl() { local n=$1; shift; lab_exec "$n" "$VPNCTL" --socket "$E2E_TMP/$n/vpnd.sock" "$@"; }
status() { ctl "$1" status --json; }
joins() { ctl "$1" up --coord "${LIST[$1]}" --pin "$PIN" --hostname "${HOST[$1]}" --auth-key "$KEY" | grep -q "^Running as ${HOST[$1]} "; }
asks() { ctl "$1" up --coord "${LIST[$1]}" --pin "$PIN" --hostname "${HOST[$1]}" | grep -q "Waiting for approval"; }
state_is() { status "$1" | jq -e ".self.state == \"$2\""; }
current_is() { status "$1" | jq -e ".self.coord_current == \"$2\" and .self.coord_connected"; }
all_current_is() { local url=$1 n; shift; for n in "$@"; do current_is "$n" "$url" >/dev/null || return 1; done; }
connected() { status "$1" | jq -e '.self.coord_connected'; }
# all_moved_off URL NODE...: every NODE streams (connected) from an instance other than URL.
all_moved_off() {
	local url=$1 n; shift
	for n in "$@"; do status "$n" | jq -e --arg u "$url" '.self.coord_current != $u and .self.coord_connected' >/dev/null || return 1; done
}
all_connected() { local n; for n in "$@"; do connected "$n" >/dev/null || return 1; done; }
wg_peers() { lab_exec "$1" wg show "$(ifname "$1")" peers; }
npeers() { test "$(wg_peers "$1" 2>/dev/null | grep -c .)" = "$2"; }
all_npeers() { local want=$1 n; shift; for n in "$@"; do npeers "$n" "$want" || return 1; done; }
pings() { lab_exec "$1" ping -c 1 -W 1 "${IP4[$2]}" >/dev/null 2>&1; }
path_is() { status "$1" | jq -e --arg p "${HOST[$2]}" ".peers[] | select(.name == \$p) | .path == \"$3\""; }
online_on() { adm "$1" nodes list --json | jq -e --arg n "$2" '.nodes[] | select(.name == $n) | .online'; }
all_online_on() { local inst=$1 n; shift; for n in "$@"; do online_on_all "$n" $inst || return 1; done; }
online_on_all() { local name=$1 i; shift; for i in "$@"; do online_on "$i" "$name" >/dev/null || return 1; done; }

# registered_on I NODE [I NODE...]: instance I's log has NODE's registration.
registered_on() {
	while [ $# -ge 2 ]; do
		grep -q "msg=\"node registered\" .* name=${HOST[$2]} " "$E2E_TMP/c$1.log" || { echo "not on c$1: $2"; return 1; }
		shift 2
	done
}
# pending_on I...: each instance I's log has exactly one registration left pending (a
# pending node has no name yet).
pending_on() {
	local i
	for i in "$@"; do
		[ "$(grep -c 'msg="node registered" .* state=needs-approval' "$E2E_TMP/c$i.log")" = 1 ] || return 1
	done
}
# added_ms NODE PEER: when NODE's vpnd logged "peer added" for PEER (ms since the epoch).
added_ms() {
	local ts
	ts=$(grep -F 'msg="peer added"' "$E2E_TMP/$1.log" | grep -F "peer=${HOST[$2]} " | head -1 |
		sed -n 's/^ts=\([^ ]*\) .*/\1/p')
	[ -n "$ts" ] && date -u -d "$ts" +%s%3N
}
# reached_within MS T0 PEER NODE...: each NODE logged PEER as added at most MS after T0;
# prints each delay.
reached_within() {
	local max=$1 t0=$2 peer=$3 n t rc=0
	shift 3
	for n in "$@"; do
		t=$(added_ms "$n" "$peer") || { echo "    $n: no peer added for ${HOST[$peer]}"; rc=1; continue; }
		echo "    $n: +$((t - t0)) ms"
		[ $((t - t0)) -le "$max" ] || rc=1
	done
	return $rc
}
# approve I PEER: approves PEER on instance I; T_CHANGE is when the request was sent (the
# delays measured from it include the request itself).
approve() { T_CHANGE=$(ms); adm "$1" nodes approve "${HOST[$2]}" >/dev/null; }

# traffic_start TAG: pings a->b and a->c (0.2 s apart) and peer-count samplers on a, b,
# c; traffic_stop TAG stops them (ping prints its summary on SIGINT). `ip netns exec`
# execs ping: $! is ping's PID.
traffic_start() {
	local t=$1 n
	for n in b c; do
		ip netns exec "$(lab_ns a)" ping -i 0.2 -W 1 "${IP4[$n]}" >"$E2E_TMP/ping-$t-$n.out" 2>&1 &
		WATCH[ping$n]=$!
		track $!
	done
	for n in a b c; do
		: >"$E2E_TMP/peers-$t-$n"
		watch_peers "$n" "$E2E_TMP/peers-$t-$n" &
		WATCH[$n]=$!
		track $!
	done
	wait_for 5 grep -q 'bytes from' "$E2E_TMP/ping-$t-b.out" && wait_for 5 grep -q 'bytes from' "$E2E_TMP/ping-$t-c.out"
}
traffic_stop() {
	local k
	for k in pingb pingc a b c; do
		case $k in
		ping*) kill -INT "${WATCH[$k]}" ;;
		*) kill "${WATCH[$k]}" ;;
		esac
		wait "${WATCH[$k]}" 2>/dev/null
		untrack "${WATCH[$k]}"
	done
}
# traffic_checks TAG WHAT MAXLOST PEERS: the pings' losses and the peer samples.
traffic_checks() {
	local t=$1 what=$2 max=$3 want=$4 n
	for n in b c; do
		sed -n "s/^\([0-9]* packets transmitted.*\)/    ping a->$n across $what: \1/p" "$E2E_TMP/ping-$t-$n.out"
		check "the ping a->$n across $what lost at most $max" lost_at_most "$E2E_TMP/ping-$t-$n.out" "$max" 10
	done
	for n in a b c; do
		check "$n kept its $want WireGuard peers throughout $what" never_below "$E2E_TMP/peers-$t-$n" "$want"
	done
	check "no peer was removed by any vpnd" nothing_removed a b c p
}
# wait_s SECONDS: lets traffic run (a deadline on the clock, not a synchronisation).
wait_s() { local end=$(( $(ms) + $1 * 1000 )); wait_for $(( $1 + 2 )) test "$(ms)" -ge "$end"; }

# db_online_matches NODE...: the nodes row's "online" (the instance holding its stream)
# is the instance NODE's status says it streams from.
db_online_matches() {
	local n url want got
	for n in "$@"; do
		url=$(status "$n" | jq -r .self.coord_current)
		want=c${url:19:1}   # https://198.51.100.I:8443
		got=$(psql -X -A -t -q "$PG_URI" -c "SELECT online FROM nodes WHERE name = '${HOST[$n]}'")
		[ "$got" = "$want" ] || { echo "$n: streams from $want, the database says '$got'"; return 1; }
	done
}

# posts_failed NODE: how many endpoint posts NODE's vpnd has seen refused so far;
# all_posts_failed K NODE...: K more for each NODE than when POSTS0 was taken.
posts_failed() { grep -c 'msg="cannot post endpoints"' "$E2E_TMP/$1.log"; }
all_posts_failed() {
	local k=$1 n; shift
	for n in "$@"; do [ "$(posts_failed "$n")" -ge $(( ${POSTS0[$n]} + k )) ] || return 1; done
}
declare -A POSTS0

# What no failure may lose: the nodes (name, addresses, key, state), keys, relays, DNS.
snapshot() {
	local i=$1
	adm "$i" nodes list --json | jq -S '[.nodes[] | del(.online, .last_seen, .endpoints, .home_relay)] | sort_by(.name)'
	adm "$i" keys list --json | jq -S '[.keys[] | del(.last_used)] | sort_by(.id)'
	adm "$i" relays list --json | jq -S '[.relays[] | del(.online, .connected, .last_seen)]'
	adm "$i" dns show --json | jq -S .
}
same_as_before() { snapshot "$1" >"$E2E_TMP/after-$1.json" && diff "$E2E_TMP/before.json" "$E2E_TMP/after-$1.json"; }

# --- three instances on one database ---
check "PostgreSQL runs (its own data dir and socket under the test's temp dir)" psql -X -q "$PG_URI" -c 'SELECT 1'
for i in 1 2 3; do
	check "instance c$i starts on 198.51.100.$i (PostgreSQL)" start_coord "$i"
done
PIN=$(pin_of 1)
[ -n "$PIN" ] || { echo "no pin; cannot continue"; dump_logs; finish; exit 1; }
check "the three share one TLS identity" test "$(pin_of 2)" = "$PIN" -a "$(pin_of 3)" = "$PIN"
check "coord status on c3 lists all three instances" bash -c "'$COORD' status --json --state '$E2E_TMP/c3' | jq -e '[.instances[].name] | sort == [\"c1\",\"c2\",\"c3\"]'"
KEY=$(adm 1 keys create --reusable | tail -1)
RTOK=$(adm 2 relays add r1 "https://$RELAY_IP:443" | tail -1)
check "the relay (its token made on c2) streams from c1, its first URL" start_relay
check "... and says so" relay_instance "${URL[1]}"

# --- nodes through different instances ---
for n in a b c p q; do
	check "vpnd $n starts" start_vpnd "$n"
done
for n in a b c; do
	check "$n joins (list ${LIST[$n]})" joins "$n"
	IP4[$n]=$(ctl "$n" ip -4)
done
check "a registered through c1, b through c2, c through c3 (their logs)" registered_on 1 a 2 b 3 c
check "a streams from c1" current_is a "${URL[1]}"
check "b streams from c2" current_is b "${URL[2]}"
check "c streams from c3" current_is c "${URL[3]}"
for n in a b c; do
	check_within "$n has the two others as WireGuard peers" 10 npeers "$n" 2
done
check "a, b, c ping each other" all_pairs 20 pings a b c
check_within "a reaches c (behind a NAT without UDP) through the relay" 20 path_is a c relay

# --- (1) a change on one instance reaches the others' nodes within a second ---
check "p asks to join through c2 (pending)" asks p
check "q asks to join through c3 (pending)" asks q
check "p is pending" state_is p needs-approval
check "p registered through c2, q through c3 (one pending registration on each)" pending_on 2 3
check "p is approved on c1" approve 1 p
T_P=$T_CHANGE
check_within "p runs" 5 state_is p running
check_within "b (on c2) and c (on c3) have p as a WireGuard peer" 2 all_npeers 3 b c
check "p's approval sent to c1 reached a (c1), b (c2) and c (c3) within 1 s" \
	reached_within 1000 "$T_P" p a b c
sed 's/^/ /' "$E2E_TMP/check.out"
IP4[p]=$(ctl p ip -4)
check_within "a pings p" 10 pings a p
check "p streams from c2" current_is p "${URL[2]}"
check "relay r1 (added on c2) is listed on c3" bash -c "'$COORD' relays list --json --state '$E2E_TMP/c3' | jq -e '.relays[0].name == \"r1\"'"
check "DNS policy set on c3" adm 3 dns record add printer.home A 192.0.2.80
check_within "... shows on c1" 2 bash -c "'$COORD' dns show --state '$E2E_TMP/c1' | grep -q printer.home"
snapshot 2 >"$E2E_TMP/before.json"
check "the snapshot (nodes, keys, relays, DNS) has a, b, c, p approved and q pending" \
	jq -se '.[0] | length == 5' "$E2E_TMP/before.json"

# --- (2) kill -9 of the instance a and the relay stream from ---
check "pings a->b and a->c (relayed) are under way" traffic_start kill
T0=$(ms)
check "c1 is killed with -9" kill9_coord 1
check_within "a moves its stream to c2 (its next URL) within seconds" 5 current_is a "${URL[2]}"
echo "    a moved within $(( $(ms) - T0 )) ms"
check_within "the relay moves to c3 (its next URL) within seconds" 5 relay_instance "${URL[3]}"
check_within "... and is connected" 15 relay_metric relay_coord_connected 1
echo "    the relay moved within $(( $(ms) - T0 )) ms"
check "b stayed on c2" current_is b "${URL[2]}"
check "c stayed on c3" current_is c "${URL[3]}"
check_within "a is online on c2 and c3" 15 online_on_all alpha 2 3
wait_s 2
traffic_stop kill
traffic_checks kill "the kill" 1 3
check "a still runs" state_is a running
check "c2 lists the same nodes, keys, relays and DNS as before" same_as_before 2
check "c3 lists the same" same_as_before 3

check "c1 restarts on its address" start_coord 1
check_within "... and lists the same nodes, keys, relays and DNS as before" 10 same_as_before 1

# --- (3) PostgreSQL restarted under three instances and every node ---
check "pings a->b and a->c are under way" traffic_start pg
check "PostgreSQL is stopped (immediate, as a crash)" pg_down
check_within "c1, c2 and c3 say the database is unreachable" 10 all_db_is false 1 2 3
check "a write meanwhile is refused with 503" bash -c "'$COORD' nodes approve quebec --state '$E2E_TMP/c3' 2>&1 | grep -q 'HTTP 503'"
wait_s 3
check "every node's stream stays up while the database is away" all_connected a b c p q
check "... and the relay's" relay_metric relay_coord_connected 1
check "PostgreSQL is started again" pg_up
check_within "c1, c2 and c3 reach it again" 15 all_db_is true 1 2 3
check "all three instances survived (their processes run)" kill -0 "${CPID[1]}" "${CPID[2]}" "${CPID[3]}"
wait_s 2
traffic_stop pg
traffic_checks pg "the PostgreSQL restart" 0 3
check "a and b are still on c2" all_current_is "${URL[2]}" a b
check "c is still on c3" all_current_is "${URL[3]}" c
check "the relay is still on c3" relay_instance "${URL[3]}"
check "q is approved on c1 (restarted, after the database came back)" approve 1 q
T_Q=$T_CHANGE
check_within "q runs" 5 state_is q running
check_within "a, b, c, p have q as a WireGuard peer" 3 all_npeers 4 a b c p
check "q's approval on c1 reached a, b, p (c2) and c (c3) within 1 s" reached_within 1000 "$T_Q" q a b p c
sed 's/^/ /' "$E2E_TMP/check.out"
IP4[q]=$(ctl q ip -4)
check_within "c (behind the NAT) pings q through the relay" 20 pings c q
snapshot 3 >"$E2E_TMP/before.json"

# --- (4) an instance killed while the database is away ---
check "pings a->b and a->c are under way" traffic_start both
check "PostgreSQL is stopped again" pg_down
for n in a b p; do POSTS0[$n]=$(posts_failed "$n"); done
check_within "c1 and c3 say the database is unreachable" 10 all_db_is false 1 3
check "c2 (a, b, p stream from it) is killed with -9 meanwhile" kill9_coord 2
check_within "a, b and p move to another instance without the database" 5 all_moved_off "${URL[2]}" a b p
for n in a b p; do echo "    $n now on $(status "$n" | jq -r .self.coord_current)"; done
# Each moved vpnd posts its endpoints on the new stream (refused: no database) and then
# every 30 s; once each has failed a periodic retry too, its next post is half a minute
# away: recording the move in the database is the instances' own work. The outage then
# outlasts c2's 20 s of liveness.
check_within "a, b, p post their endpoints on their new stream (refused)" 5 all_posts_failed 1 a b p
check_within "... and fail a periodic retry" 35 all_posts_failed 2 a b p
check "PostgreSQL is started again" pg_up
check_within "c1 and c3 reach it again" 15 all_db_is true 1 3
check_within "within 2 s the database names the instance each node streams from" 2 db_online_matches a b c p q
check_within "c2 stops counting as alive (no beat for 20 s)" 40 grep -q 'instance stopped beating.*instance=c2' "$E2E_TMP/c1.log"
check "a, b, c, p, q are online on c1 and on c3" all_online_on "1 3" alpha bravo charlie papa quebec
wait_s 1
traffic_stop both
traffic_checks both "the kill without a database" 1 4
check "c3 lists the same nodes, keys, relays and DNS as before (q now approved)" same_as_before 3

[ "$FAILED" -eq 0 ] || dump_logs
finish
