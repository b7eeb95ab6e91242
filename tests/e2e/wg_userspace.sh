#!/bin/sh
# wg_userspace.sh - two wireguard-go nodes in two network namespaces joined by a veth,
# each configured by tests/e2e/wg_node.c through vpnd's wg.h and netif.h; IPv4 and IPv6
# pings must cross the tunnel and show up in the peers' counters.
#
#   wg_userspace.sh PATH/TO/wg_node [BACKEND]      (root; exit 77 = skipped)
#
# Everything lives in namespaces this script creates and deletes on every exit path.
set -u

NODE=${1:?usage: wg_userspace.sh PATH/TO/wg_node [backend]}
BACKEND=${2:-userspace}
DEADLINE=15          # seconds for each wait below

if [ "$(id -u)" != 0 ]; then
	echo "skip: needs root (network namespaces)"
	exit 77
fi
if [ "$BACKEND" = userspace ] && ! command -v wireguard-go >/dev/null 2>&1 &&
   [ -z "${MESHVPN_WIREGUARD_GO:-}" ]; then
	echo "skip: wireguard-go not installed"
	exit 77
fi

# Names unique per run: /var/run/wireguard is shared by every namespace.
tag=$$
NSA=mvwg-a-$tag
NSB=mvwg-b-$tag
IFA=mvA$tag
IFB=mvB$tag
TMP=$(mktemp -d /tmp/wg_userspace.XXXXXX)
PIDA=
PIDB=

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
	for pid in $PIDA $PIDB; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in $PIDA $PIDB; do
		wait "$pid" 2>/dev/null
	done
	ip netns del "$NSA" 2>/dev/null
	ip netns del "$NSB" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
	echo "FAIL: $*"
	for f in "$TMP"/a.log "$TMP"/b.log; do
		[ -f "$f" ] && { echo "--- $f"; cat "$f"; }
	done
	exit 1
}

# Waits until file $1 holds a line matching $2.
wait_for() {
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le $((DEADLINE * 10)) ] || return 1
		sleep 0.1
	done
}

ip netns add "$NSA" || fail "ip netns add"
ip netns add "$NSB" || fail "ip netns add"
ip link add veth0 netns "$NSA" type veth peer name veth0 netns "$NSB" || fail "veth"
ip -n "$NSA" link set lo up
ip -n "$NSB" link set lo up
ip -n "$NSA" addr add 192.0.2.1/24 dev veth0
ip -n "$NSB" addr add 192.0.2.2/24 dev veth0
ip -n "$NSA" link set veth0 up
ip -n "$NSB" link set veth0 up

keys=$("$NODE" genkey) || fail "genkey"
PRIVA=${keys% *} PUBA=${keys#* }
keys=$("$NODE" genkey) || fail "genkey"
PRIVB=${keys% *} PUBB=${keys#* }

# Many peers and allowed IPs set and read back (several netlink messages each way).
ip netns exec "$NSA" "$NODE" stress --backend "$BACKEND" --ifname "mvS$tag" >"$TMP/stress.log" 2>&1 ||
	{ cat "$TMP/stress.log"; fail "stress: 1000 peers"; }

ip netns exec "$NSA" "$NODE" run --backend "$BACKEND" --ifname "$IFA" --key "$PRIVA" \
	--port 51820 --ip4 100.64.0.1 --ip6 fd7a:115c:a1e0::1 \
	--peer "$PUBB" --endpoint 192.0.2.2:51821 --peer-ip4 100.64.0.2 \
	--peer-ip6 fd7a:115c:a1e0::2 >"$TMP/a.log" 2>&1 &
PIDA=$!
ip netns exec "$NSB" "$NODE" run --backend "$BACKEND" --ifname "$IFB" --key "$PRIVB" \
	--port 51821 --ip4 100.64.0.2 --ip6 fd7a:115c:a1e0::2 \
	--peer "$PUBA" --endpoint 192.0.2.1:51820 --peer-ip4 100.64.0.1 \
	--peer-ip6 fd7a:115c:a1e0::1 >"$TMP/b.log" 2>&1 &
PIDB=$!

wait_for "$TMP/a.log" '^ready' || fail "node A not ready"
wait_for "$TMP/b.log" '^ready' || fail "node B not ready"
[ "$BACKEND" = auto ] || grep -q "^backend=$BACKEND" "$TMP/a.log" || fail "node A backend"

# The interface as netif set it up.
ip -n "$NSA" link show "$IFA" | grep -q 'mtu 1280' || fail "MTU is not 1280"
ip -n "$NSA" -4 addr show dev "$IFA" | grep -q '100.64.0.1/32' || fail "no IPv4 /32"
ip -n "$NSA" -6 addr show dev "$IFA" | grep -q 'fd7a:115c:a1e0::1/128' || fail "no IPv6 /128"
ip -n "$NSA" -4 route show dev "$IFA" | grep -q '^100.64.0.0/10' || fail "no route 100.64.0.0/10"
ip -n "$NSA" -6 route show dev "$IFA" | grep -q '^fd7a:115c:a1e0::/48' || fail "no route ::/48"

# The first handshake initiation may reach B before B listens; WireGuard retries it after
# 5 s (REKEY_TIMEOUT), so the first reply is awaited with a deadline, then 3 in a row.
first_reply() {   # first_reply NS PING-ARGS...
	local ns=$1 end=$(($(date +%s) + 15)); shift
	until ip netns exec "$ns" ping -c 1 -W 1 "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt $end ] || return 1
	done
}
first_reply "$NSA" 100.64.0.2 || fail "IPv4 ping through the tunnel: no reply within 15 s"
first_reply "$NSB" -6 fd7a:115c:a1e0::1 || fail "IPv6 ping through the tunnel: no reply within 15 s"
ip netns exec "$NSA" ping -c 3 -i 0.2 -W 3 100.64.0.2 >"$TMP/ping4" 2>&1 ||
	{ cat "$TMP/ping4"; fail "IPv4 ping through the tunnel"; }
ip netns exec "$NSB" ping -6 -c 3 -i 0.2 -W 3 fd7a:115c:a1e0::1 >"$TMP/ping6" 2>&1 ||
	{ cat "$TMP/ping6"; fail "IPv6 ping through the tunnel"; }

# The counters wg_get_device reads back saw it too.
kill -USR1 "$PIDA"
wait_for "$TMP/a.log" '^stats' || fail "no stats from node A"
line=$(grep '^stats' "$TMP/a.log" | head -n 1)
rx=$(echo "$line" | sed -n 's/.* rx=\([0-9]*\).*/\1/p')
hs=$(echo "$line" | sed -n 's/.* handshake=\([0-9]*\).*/\1/p')
[ "${rx:-0}" -gt 0 ] || fail "rx_bytes is 0: $line"
[ "${hs:-0}" -gt 0 ] || fail "no handshake: $line"

# Clean stop: each node exits 0 and its interface and UAPI socket are gone.
kill -TERM "$PIDA" "$PIDB"
wait "$PIDA"; ra=$?
wait "$PIDB"; rb=$?
PIDA=''
PIDB=''
if [ $ra != 0 ] || [ $rb != 0 ]; then
	fail "nodes exited $ra/$rb"
fi
ip -n "$NSA" link show "$IFA" >/dev/null 2>&1 && fail "$IFA still exists"
[ -e "/var/run/wireguard/$IFA.sock" ] && fail "UAPI socket of $IFA left behind"
echo "ok: $(grep "^stress ok" "$TMP/stress.log")"
echo "ok: ping over $BACKEND WireGuard, IPv4 and IPv6 ($line)"
exit 0
