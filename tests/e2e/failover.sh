#!/usr/bin/env bash
# failover.sh - nodes and a relay given several coord instances (--coord URL,URL...) in
# network namespaces with userspace WireGuard. Without PostgreSQL two coords cannot run
# on one --state at once, so the "instances" here take turns on one state dir: instance A
# (198.51.100.1:8443) serves first, B (198.51.100.2:8443, same state, same TLS identity)
# only after A is killed with -9. Shown: (1) a first URL where nothing listens: the node
# joins through the next one; (2) A killed: both nodes and the relay move their streams
# to B within seconds, a ping running across the move keeps going, the peers never leave
# `wg show`, and status and metrics name the instance in use.
# The multi-instance coord (issue 11) extends this with A and B running together on
# PostgreSQL: start_instance is the one place that starts an instance.
# Usage: tests/e2e/failover.sh BUILD_DIR      (root; exit 77 = skipped; under the netns flock)
set -u
BUILD=$(cd "${1:?usage: failover.sh BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

. "$ROOT/tests/e2e/lib.sh"
need_root_tools wireguard-go wg ping ip curl
. "$ROOT/scripts/lab/lab.sh"
. "$ROOT/tests/e2e/traffic.sh"

COORD="$BUILD/coord/coord"
VPND="$BUILD/vpnd/vpnd"
VPNCTL="$BUILD/vpnd/vpnctl"
RELAY="$BUILD/relay/relay"
need_built "$COORD" "$VPND" "$VPNCTL" "$RELAY"

TAG=$$
CSTATE="$E2E_TMP/coord"
A_IP=198.51.100.1
B_IP=198.51.100.2
DEAD="https://$A_IP:8442"         # nothing ever listens there
URL_A="https://$A_IP:8443"
URL_B="https://$B_IP:8443"
RELAY_URL="https://$A_IP:8445"
NAME=coord.failover.test          # both addresses, in the hosts file c's vpnd sees
URL_NAME="https://$NAME:8443"
declare -A VPND_PID IP4 OCTET=([a]=11 [b]=12 [c]=13) HOST=([a]=alpha [b]=bravo [c]=charlie)
declare -A MPORT=([a]=9111 [b]=9112 [c]=9113)
declare -A INST_PID

E2E_CLEANUPS="lab_down"
lab_init "mvfo$TAG" || { echo "FAIL - cannot create the lab"; exit 1; }
lab_host coord 1 || { echo "FAIL - lab host"; exit 1; }
ip -n "$(lab_ns coord)" addr add "$B_IP/24" dev eth0 || { echo "FAIL - second address"; exit 1; }
for n in a b c; do
	lab_host "$n" "${OCTET[$n]}" || { echo "FAIL - lab host $n"; exit 1; }
done
printf '%s %s\n' "$A_IP" "$NAME" "$B_IP" "$NAME" >"$E2E_TMP/hosts"
ifname() { echo "mvfo${TAG}$1"; }

# start_instance NAME IP: one coord instance on the shared state, its output in NAME.out.
start_instance() {
	local name=$1 ip=$2
	: >"$E2E_TMP/$name.out"
	ip netns exec "$(lab_ns coord)" "$COORD" serve --state "$CSTATE" --listen "$ip:8443" \
		--keepalive 2s >"$E2E_TMP/$name.out" 2>>"$E2E_TMP/coord-$name.log" &
	INST_PID[$name]=$!
	track "${INST_PID[$name]}"
	wait_for 10 grep -q "listening on" "$E2E_TMP/$name.out" || { tail "$E2E_TMP/coord-$name.log"; return 1; }
	PIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/$name.out" | head -1)
}
kill_instance() {
	local pid=${INST_PID[$1]}
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	untrack "$pid"
}
adm() { "$COORD" --state "$CSTATE" "$@"; }

# vpnd NODE ARGS...: vpnd in NODE's namespace; c's sees $E2E_TMP/hosts as /etc/hosts (a
# mount namespace of its own: nothing on the machine changes). Each step execs the next:
# $! is vpnd's PID.
start_vpnd() {
	local n=$1 pre=()
	mkdir -p "$E2E_TMP/$n"
	[ "$n" = c ] && pre=(unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$E2E_TMP/hosts")
	ip netns exec "$(lab_ns "$n")" "${pre[@]}" "$VPND" --state "$E2E_TMP/$n/state" --socket "$E2E_TMP/$n/vpnd.sock" \
		--wg-backend userspace --ifname "$(ifname "$n")" --port 41641 --log-level debug \
		--metrics "127.0.0.1:${MPORT[$n]}" >>"$E2E_TMP/$n.log" 2>&1 &
	VPND_PID[$n]=$!
	track "${VPND_PID[$n]}"
	wait_for 10 test -S "$E2E_TMP/$n/vpnd.sock"
}
start_relay() {
	ip netns exec "$(lab_ns coord)" "$RELAY" --coord "$URL_A,$URL_B" --token "$RTOK" --pin "$PIN" \
		--listen "$A_IP:8445" --stun off --metrics 127.0.0.1:9120 --state "$E2E_TMP/relay" \
		>>"$E2E_TMP/relay.out" 2>>"$E2E_TMP/relay.log" &
	RELAY_PID=$!
	track "$RELAY_PID"
	wait_for 10 relay_metric relay_coord_connected 1
}
ctl() { local n=$1; shift; lab_exec "$n" "$VPNCTL" --socket "$E2E_TMP/$n/vpnd.sock" "$@"; }
status() { ctl "$1" status --json; }
state_is() { status "$1" | grep -q "\"state\": \"$2\""; }
coord_connected() { status "$1" | grep -q "\"coord_connected\": $2"; }
current_is() { status "$1" | grep -q "\"coord_current\": \"$2\""; }
wg_peers() { lab_exec "$1" wg show "$(ifname "$1")" peers; }
npeers() { test "$(wg_peers "$1" 2>/dev/null | grep -c .)" = "$2"; }
pings() { lab_exec "$1" ping -c 1 -W 1 "${IP4[$2]}" >/dev/null 2>&1; }
vpnd_metric() { lab_exec "$1" curl -s "http://127.0.0.1:${MPORT[$1]}/metrics" | grep -qF "$2"; }
relay_metric() { lab_exec coord curl -s http://127.0.0.1:9120/metrics | grep -qF "$1 $2"; }
relay_instance() { lab_exec coord curl -s http://127.0.0.1:9120/metrics | grep -qF "relay_coord_instance{url=\"$1\"} 1"; }
joins() { ctl "$1" up --coord "$2" --pin "$PIN" --hostname "${HOST[$1]}" --auth-key "$KEY" | grep -q "^Running as ${HOST[$1]} "; }
address_is() { status "$1" | grep -q "\"coord_address\": \"$2\""; }
human_names() { ctl "$1" status | grep "^coord " | grep -qF "$2"; }
listed_online() { adm nodes list | grep "$1" | grep -q ' yes '; }
both_online() { listed_online alpha && listed_online bravo; }
lists_urls() { status "$1" | tr -d ' \n' | grep -qF "\"coord_urls\":[$2]"; }
exit_code_is() { local want=$1; shift; "$@" >/dev/null 2>&1; test $? = "$want"; }
check "instance A starts" start_instance A "$A_IP"
[ -n "${PIN:-}" ] || { echo "no pin; cannot continue"; dump_logs; finish; exit 1; }
KEY=$(adm keys create --reusable | tail -1)
RTOK=$(adm relays add r1 "$RELAY_URL" | tail -1)
for n in a b; do
	check "vpnd $n starts" start_vpnd "$n"
done

# --- (1) the first URL is dead: the node joins through the next ---
check "vpnctl up refuses a list with an empty entry (exit 2)" exit_code_is 2 ctl a up --coord "$URL_A,,$URL_B"
check "a joins with a dead first URL" joins a "$DEAD,$URL_A,$URL_B"
check "a's stream is on instance A" current_is a "$URL_A"
check "status --json lists the three URLs" lists_urls a "\"$DEAD\",\"$URL_A\",\"$URL_B\""
check "status (human) names the instance in use and the list" human_names a "coord $URL_A (instances: $DEAD, $URL_A, $URL_B"
check "b joins with A first" joins b "$URL_A,$URL_B"
IP4[a]=$(ctl a ip -4)
IP4[b]=$(ctl b ip -4)
for n in a b; do
	check_within "$n has the other as a WireGuard peer" 10 npeers "$n" 1
done
check_within "a and b ping each other" 10 pings a b
check_within "... both ways" 10 pings b a
check "the relay starts with A then B" start_relay
check "the relay streams from A" relay_instance "$URL_A"
check "vpnd metrics name instance A" vpnd_metric a "vpnd_coord_instance{url=\"$URL_A\"} 1"

# --- (2) A is killed, B comes up on the same state: everyone moves to B ---
# ip netns exec execs ping: $! is ping's PID, which prints its summary on SIGINT.
ip netns exec "$(lab_ns a)" ping -i 0.2 -W 1 "${IP4[b]}" >"$E2E_TMP/ping.out" 2>&1 &
PING_PID=$!
track "$PING_PID"
for n in a b; do
	: >"$E2E_TMP/peers-$n"
	watch_peers "$n" "$E2E_TMP/peers-$n" &
	eval "WATCH_$n=\$!"
	track "$!"
done
check_within "the ping is under way" 5 grep -q 'bytes from' "$E2E_TMP/ping.out"
T0=$(date +%s)
kill_instance A
check "instance B starts on the same state (same TLS identity)" start_instance B "$B_IP"
for n in a b; do
	check_within "$n's netmap stream moves to B" 15 current_is "$n" "$URL_B"
	check_within "... and is connected" 15 coord_connected "$n" true
done
echo "    moved within $(( $(date +%s) - T0 )) s"
check_within "the relay moves its admission stream to B" 15 relay_instance "$URL_B"
check_within "... and is connected" 15 relay_metric relay_coord_connected 1
check_within "coord (B) sees both nodes online" 10 both_online
check "vpnd metrics count a failover" vpnd_metric a "vpnd_coord_failovers_total 1"
check "... and name instance B" vpnd_metric a "vpnd_coord_instance{url=\"$URL_B\"} 1"
check_within "the relay counts its failover" 10 relay_metric relay_coord_failovers_total 1
check "a still runs" state_is a running
# Two more seconds of pings on B's netmap, then the ping's count.
T1=$(( $(date +%s) + 2 ))
wait_for 5 test "$(date +%s)" -ge "$T1"
kill -INT "$PING_PID"
wait "$PING_PID" 2>/dev/null
untrack "$PING_PID"
for n in a b; do
	eval "kill \$WATCH_$n; wait \$WATCH_$n 2>/dev/null; untrack \$WATCH_$n"
done
sed -n 's/^\([0-9]* packets transmitted.*\)/    ping across the move: \1/p' "$E2E_TMP/ping.out"
check "the ping across the move lost at most 2 packets" lost_at_most "$E2E_TMP/ping.out" 2 10
check "a's peer never left wg show during the move" never_below "$E2E_TMP/peers-a" 1
check "b's peer never left wg show during the move" never_below "$E2E_TMP/peers-b" 1
check "no peer was removed by vpnd during the move" nothing_removed a b
check "a and b still ping each other" pings a b

# --- (3) one name with two addresses: two instances ---
check "vpnd c starts (its hosts file gives $NAME both addresses)" start_vpnd c
check "c joins through the name while only B (the second address) is up" joins c "$URL_NAME"
check "c's stream uses the name's second address" address_is c "$B_IP"
check "... under the name's URL" current_is c "$URL_NAME"
IP4[c]=$(ctl c ip -4)
check_within "c and a ping each other" 10 pings c a
check_within "... both ways" 10 pings a c
check "B is killed" kill_instance B
check "A comes back on the first address" start_instance A "$A_IP"
check_within "c moves to the name's first address" 15 address_is c "$A_IP"
check_within "... and is connected" 15 coord_connected c true
check_within "a moves back to A (its list: dead, A, B)" 15 current_is a "$URL_A"
check_within "b moves back to A (its list: A, B)" 15 current_is b "$URL_A"
check_within "the relay moves back to A" 15 relay_instance "$URL_A"
check "c and a still ping each other" pings c a
check "no peer was removed by vpnd on any node" nothing_removed a b c

[ "$FAILED" -eq 0 ] || dump_logs
finish
