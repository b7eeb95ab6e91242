#!/usr/bin/env bash
# dnsconf.sh - `vpnctl up --accept-dns` end to end in network namespaces (userspace
# WireGuard): coord, one vpnd node and a dnsmasq upstream on the lab's segment. The node's
# resolv.conf is a file in the test's temp dir (vpnd --resolv-conf; never the host's),
# shown to the node's namespace as /etc/resolv.conf by `ip netns exec` through
# /etc/netns/NS/resolv.conf. Up with --accept-dns it names 100.100.100.100 and the
# tailnet domain, and a plain `dig NAME` (no @server) resolves a node name; `down` puts the
# file back byte for byte; the preference persists; after kill -9 a restarted vpnd (with
# the file a bind mount: written in place) puts it back; --accept-dns=false restores it
# too. And the query log: nothing while off, then a blocked and a forwarded name with
# their outcomes in `vpnctl dns log`.
# Usage: tests/netns/dnsconf.sh BUILD_DIR      (root; exit 77 = skipped)
set -u
BUILD=$(cd "${1:?usage: dnsconf.sh BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

. "$ROOT/tests/e2e/lib.sh"
need_root_tools wireguard-go wg ip dig dnsmasq unshare
. "$ROOT/scripts/lab/lab.sh"

COORD="$BUILD/coord/coord"
VPND="$BUILD/vpnd/vpnd"
VPNCTL="$BUILD/vpnd/vpnctl"
need_built "$COORD" "$VPND" "$VPNCTL"

TAG=$$
CSTATE="$E2E_TMP/coord"
COORD_IP=198.51.100.1
URL="https://$COORD_IP:8443"
UP1=198.51.100.21
DOM=mesh.test
CONF="$E2E_TMP/resolv.conf"     # what vpnd changes
ORIG="$E2E_TMP/resolv.conf.orig"
VPND_PID=

netns_etc_down() { rm -rf "/etc/netns/$(lab_ns a)"; }
E2E_CLEANUPS="lab_down netns_etc_down"
lab_init "mvc$TAG" || { echo "FAIL - cannot create the lab"; exit 1; }
for h in coord:1 a:11 up1:21; do
	lab_host "${h%%:*}" "${h##*:}" || { echo "FAIL - lab host $h"; exit 1; }
done

# The node's namespace sees $CONF as its /etc/resolv.conf (ip netns exec bind-mounts
# /etc/netns/NS/resolv.conf, following the link, at each exec).
printf '# the test'"'"'s original\nnameserver 192.0.2.1\nsearch example.invalid\noptions ndots:1 timeout:1\n' >"$CONF"
cp "$CONF" "$ORIG"
mkdir -p "/etc/netns/$(lab_ns a)"
ln -s "$CONF" "/etc/netns/$(lab_ns a)/resolv.conf"

start_coord() {
	ip netns exec "$(lab_ns coord)" "$COORD" serve --state "$CSTATE" --listen "$COORD_IP:8443" --keepalive 2s \
		>"$E2E_TMP/coord.out" 2>>"$E2E_TMP/coord.log" &
	track $!
	wait_for 10 grep -q "listening on" "$E2E_TMP/coord.out" || { tail "$E2E_TMP/coord.log"; return 1; }
	PIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/coord.out" | head -1)
}
adm() { "$COORD" --state "$CSTATE" "$@" >>"$E2E_TMP/adm.log" 2>&1; }

# start_vpnd [--bind] ARGS...: with --bind, $CONF is a bind mount in vpnd's own mount
# namespace (as /etc/resolv.conf is under ip netns exec or in a container): rename over it
# fails with EBUSY and vpnd writes it in place.
start_vpnd() {
	local pre="" sock="$E2E_TMP/a/vpnd.sock"
	if [ "${1:-}" = --bind ]; then pre="mount --bind '$CONF' '$CONF' &&"; shift; fi
	mkdir -p "$E2E_TMP/a"
	rm -f "$sock"
	ip netns exec "$(lab_ns a)" unshare -m sh -c "$pre exec \"\$0\" \"\$@\"" "$VPND" \
		--state "$E2E_TMP/a/state" --socket "$sock" --resolv-conf "$CONF" \
		--wg-backend userspace --ifname "mvc${TAG}a" --port 41641 --log-level debug "$@" \
		>>"$E2E_TMP/a.log" 2>&1 &
	VPND_PID=$!
	track "$VPND_PID"
	wait_for 10 test -S "$sock"
}
ctl() { lab_exec a "$VPNCTL" --socket "$E2E_TMP/a/vpnd.sock" "$@"; }
ours() { grep -q '^nameserver 100.100.100.100$' "$CONF" && grep -q "^search $DOM example.invalid$" "$CONF"; }
restored() { cmp -s "$CONF" "$ORIG"; }
plain_dig() { test "$(lab_exec a dig +time=2 +tries=1 +short "$@" | tail -1)" = "$IP4"; }
log_has() { ctl dns log --json | tr -d ' \n' | grep -q "$1"; }
log_empty() { ctl dns log --json | tr -d ' \n' | grep -q '"enabled":false.*"entries":\[\]'; }
kill_vpnd() {
	kill "-$1" "$VPND_PID" 2>/dev/null
	wait "$VPND_PID" 2>/dev/null
	untrack "$VPND_PID"
}

dump_logs() {
	for f in "$E2E_TMP"/*.log; do
		echo "--- $f"
		grep -v 'level=debug' "$f" | tail -25
	done
}

check "coord starts in its namespace" start_coord
[ -n "${PIN:-}" ] || { echo "no pin; cannot continue"; dump_logs; finish; exit 1; }
KEY=$("$COORD" --state "$CSTATE" keys create --reusable | tail -1)
check "the tailnet domain is $DOM" adm dns domain "$DOM"
ip netns exec "$(lab_ns up1)" dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll \
	--bind-interfaces --listen-address="$UP1" --port=53 --pid-file= --log-facility=- \
	--local=/example.test/ --host-record=www.example.test,192.0.2.20 >"$E2E_TMP/dnsmasq.log" 2>&1 &
track $!
check_within "the upstream (dnsmasq) answers" 5 lab_exec up1 dig +time=1 +tries=1 +short @"$UP1" www.example.test
check "upstream add $UP1" adm dns upstream add "$UP1"
check "block ads.example" adm dns block ads.example

check "vpnd starts (--resolv-conf in the temp dir)" start_vpnd
check "up --accept-dns: running" bash -c "'$VPNCTL' --socket '$E2E_TMP/a/vpnd.sock' up --coord '$URL' --pin '$PIN' --hostname alpha --auth-key '$KEY' --accept-dns | grep -q '^Running as '"
IP4=$(ctl ip -4)
check_within "resolv.conf names 100.100.100.100 and the tailnet domain first" 5 ours
check "... the old options are kept" grep -q '^options ndots:1 timeout:1$' "$CONF"
check "... the old nameserver is gone (the policy has upstreams)" bash -c "! grep -q 192.0.2.1 '$CONF'"
check "status --json: accept_dns true" bash -c "'$VPNCTL' --socket '$E2E_TMP/a/vpnd.sock' status --json | tr -d ' \n' | grep -q '\"accept_dns\":true'"
check_within "a plain dig (no @server) resolves the node's name" 5 plain_dig "alpha.$DOM"
check "dig +search alpha: the tailnet domain as search domain" plain_dig +search alpha
search_is() { grep -q "^search $1 example.invalid$" "$CONF"; }
check "the tailnet domain changes on coord" adm dns domain other.test
check_within "resolv.conf follows it (search other.test)" 5 search_is other.test
check "and back" adm dns domain "$DOM"
check_within "resolv.conf follows again" 5 search_is "$DOM"

# --- the query log ---
check "a plain dig of a forwarded name" lab_exec a dig +time=2 +tries=1 +short www.example.test
check "query log off: nothing logged" log_empty
check "dns log --enable 100" ctl dns log --enable 100
check "a blocked name" lab_exec a dig +time=2 +tries=1 +short @100.100.100.100 x.ads.example
check "a forwarded name" lab_exec a dig +time=2 +tries=1 +short @100.100.100.100 nothere.example.test
check "the log: the blocked name, outcome blocked" log_has '"name":"x.ads.example","type":"A","outcome":"blocked"'
check "the log: the forwarded name, with its upstream" log_has "\"name\":\"nothere.example.test\",\"type\":\"A\",\"outcome\":\"forwarded\",\"upstream\":\"$UP1:53\""
check "vpnctl dns log (human): one line per query" bash -c "'$VPNCTL' --socket '$E2E_TMP/a/vpnd.sock' dns log -n 1 | grep -q 'nothere.example.test .*forwarded $UP1:53'"
check "dns log --disable" ctl dns log --disable
check "off again: the entries are gone" log_empty

# --- down restores; the preference persists ---
check "vpnctl down" ctl down
check "down: resolv.conf byte-identical to the original" restored
check "vpnctl up (accept-dns remembered)" ctl up
check_within "resolv.conf ours again" 5 ours

# --- a crash, the file a bind mount this time ---
check "kill -9 vpnd while up" kill_vpnd 9
check "... resolv.conf is still ours" ours
check "vpnd starts again (resolv.conf a bind mount; --dns-log 50)" start_vpnd --bind --dns-log 50
check_within "it rejoins and points resolv.conf at the resolver again (written in place)" 10 ours
check "... in place indeed (rename over a mount point: EBUSY)" grep -q "written in place" "$E2E_TMP/a.log"
check "--dns-log 50: the log is on" log_has '"enabled":true,"capacity":50'
check "up --accept-dns=false: restored" ctl up --accept-dns=false
check "... byte-identical" restored
check "status --json: accept_dns false" bash -c "'$VPNCTL' --socket '$E2E_TMP/a/vpnd.sock' status --json | tr -d ' \n' | grep -q '\"accept_dns\":false'"
check "up --accept-dns" ctl up --accept-dns
check_within "ours" 5 ours
check "kill -9 vpnd while up" kill_vpnd 9
check "vpnd starts again" start_vpnd
check "vpnctl down" ctl down
check "the original is back after the crash" restored
check "SIGTERM: vpnd exits" kill_vpnd TERM
check "still the original" restored
[ "$FAILED" -eq 0 ] || dump_logs
finish
