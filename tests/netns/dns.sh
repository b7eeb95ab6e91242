#!/usr/bin/env bash
# dns.sh - vpnd's resolver end to end in network namespaces with userspace WireGuard:
# coord and two vpnd nodes on the lab's segment (198.51.100.0/24, scripts/lab/lab.sh),
# two dnsmasq upstreams with local zones (no internet) and a third as a split-DNS route's
# server (Consul's port 8600). From a node's namespace dig @100.100.100.100 gets the node
# names (A, AAAA, PTR), NODATA and NXDOMAIN under the tailnet domain; a blocked name and
# its subdomain are 0.0.0.0 (NXDOMAIN in nxdomain mode) while an allowed name under it
# resolves upstream; a record added on coord resolves within seconds; the route's domain
# goes to its own server; TCP works; a dead upstream fails over to the next; with every
# upstream dead a cached name is served stale (TTL 30) and an uncached one gets SERVFAIL
# at once; with --dns-listen a peer asks a node's resolver on its tailnet address.
# Usage: tests/netns/dns.sh BUILD_DIR      (root; exit 77 = skipped)
set -u
BUILD=$(cd "${1:?usage: dns.sh BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

if [ "$(id -u)" != 0 ]; then
	echo "skip: needs root (network namespaces)"
	exit 77
fi
for tool in wireguard-go wg ip dig dnsmasq; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "skip: $tool not installed (apt-get install wireguard-go wireguard-tools bind9-dnsutils dnsmasq-base)"
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
UP1=198.51.100.21
UP2=198.51.100.22
DOM=mesh.test
declare -A VPND_PID DNSMASQ_PID IP4 IP6 OCTET=([a]=11 [b]=12) HOST=([a]=alpha [b]=bravo)

E2E_CLEANUPS="lab_down"
lab_init "mvd$TAG" || { echo "FAIL - cannot create the lab"; exit 1; }
for h in coord:1 a:11 b:12 up1:21 up2:22; do
	lab_host "${h%%:*}" "${h##*:}" || { echo "FAIL - lab host $h"; exit 1; }
done

ifname() { echo "mvd${TAG}$1"; }

start_coord() {
	ip netns exec "$(lab_ns coord)" "$COORD" serve --state "$CSTATE" --listen "$COORD_IP:8443" --keepalive 2s \
		>"$E2E_TMP/coord.out" 2>>"$E2E_TMP/coord.log" &
	track $!
	wait_for 10 grep -q "listening on" "$E2E_TMP/coord.out" || { tail "$E2E_TMP/coord.log"; return 1; }
	PIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/coord.out" | head -1)
}
adm() { "$COORD" --state "$CSTATE" "$@" >>"$E2E_TMP/adm.log" 2>&1; }

start_vpnd() {
	local n=$1; shift
	mkdir -p "$E2E_TMP/$n"
	ip netns exec "$(lab_ns "$n")" "$VPND" --state "$E2E_TMP/$n/state" --socket "$E2E_TMP/$n/vpnd.sock" \
		--wg-backend userspace --ifname "$(ifname "$n")" --port 41641 --log-level debug "$@" \
		>>"$E2E_TMP/$n.log" 2>&1 &
	VPND_PID[$n]=$!
	track "${VPND_PID[$n]}"
	wait_for 10 test -S "$E2E_TMP/$n/vpnd.sock"
}
ctl() { local n=$1; shift; lab_exec "$n" "$VPNCTL" --socket "$E2E_TMP/$n/vpnd.sock" "$@"; }
joins() { ctl "$1" up --coord "$URL" --pin "$PIN" --hostname "${HOST[$1]}" --auth-key "$KEY" | grep -q "^Running as "; }

# dnsmasq NAME ID ADDR PORT ARGS...: an upstream with only its local records (TTL 2 s, so a
# cached answer expires within the test), in NAME's namespace.
start_dnsmasq() {
	local ns=$1 id=$2 addr=$3 port=$4; shift 4
	ip netns exec "$(lab_ns "$ns")" dnsmasq --keep-in-foreground --no-resolv --no-hosts \
		--no-poll --bind-interfaces --listen-address="$addr" --port="$port" --local-ttl=2 \
		--pid-file= --log-facility=- --log-queries "$@" >"$E2E_TMP/dnsmasq.$id.log" 2>&1 &
	DNSMASQ_PID[$id]=$!
	track "${DNSMASQ_PID[$id]}"
	wait_for 5 lab_exec "$ns" dig +time=1 +tries=1 @"$addr" -p "$port" probe.example.test >/dev/null
}
stop_dnsmasq() {
	kill -TERM "${DNSMASQ_PID[$1]}" 2>/dev/null
	wait "${DNSMASQ_PID[$1]}" 2>/dev/null
	untrack "${DNSMASQ_PID[$1]}"
}
ZONE="--local=/example.test/ --host-record=www.example.test,192.0.2.20
	--host-record=good.adnet.test,192.0.2.12 --host-record=x.adnet.test,192.0.2.13 --local=/adnet.test/
	--host-record=tracker.example.test,192.0.2.14
	--host-record=cached.example.test,192.0.2.21 --host-record=ok.ads.example,192.0.2.10
	--host-record=x.ads.example,192.0.2.11 --local=/ads.example/"

# q NODE ARGS...: dig at the resolver from NODE's namespace, answers only.
q() { local n=$1; shift; lab_exec "$n" dig +time=2 +tries=1 @100.100.100.100 +short "$@"; }
answers() { local n=$1 want=$2; shift 2; test "$(q "$n" "$@" | tr '\n' ' ' | sed 's/ $//')" = "$want"; }
status_is() {   # status_is NODE RCODE ARGS...
	local n=$1 rc=$2; shift 2
	lab_exec "$n" dig +time=2 +tries=1 @100.100.100.100 "$@" | grep -q "status: $rc,"
}
noanswer() { lab_exec "$1" dig +time=2 +tries=1 @100.100.100.100 "${@:2}" | grep -q "ANSWER: 0,"; }
servfail_fast() {   # SERVFAIL well within dig's 2 s, not a timeout
	local t0 t1 out
	t0=$(date +%s%N)
	out=$(lab_exec "$1" dig +time=2 +tries=1 @100.100.100.100 "$2")
	t1=$(date +%s%N)
	grep -q "status: SERVFAIL," <<<"$out" && [ $(( (t1 - t0) / 1000000 )) -lt 1500 ]
}
stale_ttl() {   # the answer's TTL is RFC 8767's 30 s
	lab_exec "$1" dig +time=2 +tries=1 @100.100.100.100 +noall +answer "$2" |
		awk '{ print $2, $5 }' | grep -qx "30 $3"
}
stats_has() { ctl "$1" dns stats --json | tr -d ' \n' | grep -q "$2"; }

dump_logs() {
	for f in "$E2E_TMP"/*.log; do
		echo "--- $f"
		grep -v 'level=debug' "$f" | tail -25
	done
}

check "coord starts in its namespace" start_coord
[ -n "${PIN:-}" ] || { echo "no pin; cannot continue"; dump_logs; finish; exit 1; }
KEY=$("$COORD" --state "$CSTATE" keys create --reusable | tail -1)
check "an auth key is created" grep -q '^mvpn-auth-' <<<"$KEY"
check "the tailnet domain is $DOM" adm dns domain "$DOM"
check "upstream 1 (dnsmasq, local zone)" start_dnsmasq up1 up1 "$UP1" 53 $ZONE
check "upstream 2 (the same zone)" start_dnsmasq up2 up2 "$UP2" 53 $ZONE
check "a route's server (Consul's port)" start_dnsmasq up2 consul "$UP2" 8600 \
	--local=/consul/ --host-record=web.service.consul,192.0.2.30

for n in a b; do
	# b also answers its peers on its tailnet address (--dns-listen)
	check "vpnd $n starts" start_vpnd "$n" $([ "$n" = b ] && echo --dns-listen)
	check "$n joins and runs" joins "$n"
	IP4[$n]=$(ctl "$n" ip -4)
	IP6[$n]=$(ctl "$n" ip -6)
done

# --- node names ---
check_within "a resolves its own name" 10 answers a "${IP4[a]}" "alpha.$DOM" A
check_within "a resolves bravo's name (A)" 10 answers a "${IP4[b]}" "bravo.$DOM" A
check "... and AAAA" answers a "${IP6[b]}" "bravo.$DOM" AAAA
check "... in any case" answers a "${IP4[b]}" "BrAvO.$DOM" A
check "PTR of bravo's IPv4" answers a "bravo.$DOM." -x "${IP4[b]}"
check "PTR of bravo's IPv6" answers a "bravo.$DOM." -x "${IP6[b]}"
check "b resolves alpha" answers b "${IP4[a]}" "alpha.$DOM" A
peer_asks() { test "$(lab_exec a dig +time=2 +tries=1 @"${IP4[b]}" +short "$@")" = "${IP4[a]}"; }
check_within "--dns-listen: a asks b's resolver on b's tailnet address" 10 peer_asks "alpha.$DOM" A
check "... over TCP too" peer_asks +tcp "alpha.$DOM" A
check "TXT of a node: NODATA" status_is a NOERROR "bravo.$DOM" TXT
check "... with no answer" noanswer a "bravo.$DOM" TXT
check "an unknown name under the domain: NXDOMAIN" status_is a NXDOMAIN "nobody.$DOM" A
check "an unknown tailnet address: NXDOMAIN" status_is a NXDOMAIN -x 100.64.99.99
check "no upstream yet: REFUSED, not a hang" status_is a REFUSED www.example.test A

# --- forwarding ---
check "upstream add $UP1" adm dns upstream add "$UP1"
check "upstream add $UP2" adm dns upstream add "$UP2"
check_within "a name resolves through the upstream" 5 answers a 192.0.2.20 www.example.test A
check "an upstream's NXDOMAIN comes back" status_is a NXDOMAIN nothere.example.test A
check "TCP to the resolver: forwarded" answers a 192.0.2.20 +tcp www.example.test A
check "TCP to the resolver: node names" answers a "${IP4[b]}" +tcp "bravo.$DOM" A

# --- blocking ---
check "block ads.example" adm dns block ads.example
check_within "a blocked name is 0.0.0.0" 5 answers a 0.0.0.0 ads.example A
check "its subdomain too" answers a 0.0.0.0 x.ads.example A
check "AAAA of it is ::" answers a :: x.ads.example AAAA
check "allow ok.ads.example" adm dns allow ok.ads.example
check_within "the allowed name resolves through the upstream" 5 answers a 192.0.2.10 ok.ads.example A
check "blocking-mode nxdomain" adm dns blocking-mode nxdomain
check_within "a blocked name is NXDOMAIN now" 5 status_is a NXDOMAIN x.ads.example A
check "the allowed one still resolves" answers a 192.0.2.10 ok.ads.example A

# --- a compiled blocklist: coord reads a list file (hosts and Adblock lines), compiles it,
# --- the node fetches the blob when the netmap's version moves ---
printf '# a list\n0.0.0.0 tracker.example.test\n||adnet.test^\n@@||good.adnet.test^\n||bad.test^$third-party\n' \
	>"$E2E_TMP/list.txt"
check "blocklist add FILE" adm dns blocklist add "$E2E_TMP/list.txt"
check_within "a hosts-list name is blocked within 10 s (compiled on coord, fetched by the node)" 10 \
	status_is a NXDOMAIN tracker.example.test A
upstream_has() { test "$(lab_exec a dig +time=2 +tries=1 +short @"$UP1" "$1" A)" = "$2"; }
check "... the upstream has it: the list blocked it" upstream_has tracker.example.test 192.0.2.14
check "an ||d^ rule blocks its subdomains" status_is a NXDOMAIN x.adnet.test A
check "its @@ exception resolves through the upstream" answers a 192.0.2.12 good.adnet.test A
check "names the list does not have still resolve" answers a 192.0.2.20 www.example.test A

# --- records and routes ---
check "record add web A 192.0.2.80" adm dns record add web A 192.0.2.80
check_within "the record resolves within seconds" 5 answers a 192.0.2.80 "web.$DOM" A
check "record add alias CNAME web.$DOM" adm dns record add alias CNAME "web.$DOM"
check_within "an alias within the zone answers the address" 5 answers a 192.0.2.80 "alias.$DOM" A
check "route add service.consul $UP2:8600" adm dns route add service.consul "$UP2:8600"
check_within "the route's domain goes to its server" 5 answers a 192.0.2.30 web.service.consul A

# --- failover, stale, SERVFAIL ---
check "cached.example.test resolves (and is cached)" answers a 192.0.2.21 cached.example.test A
check "upstream 1 dies" stop_dnsmasq up1
check "names still resolve (failover to upstream 2)" answers a 192.0.2.20 www.example.test A
check "and again at once (upstream 1 marked down)" answers a 192.0.2.20 www.example.test A
check "upstream 2 dies too" stop_dnsmasq up2
sleep 3   # cached.example.test's TTL (2 s) runs out
check "an uncached name gets SERVFAIL at once" servfail_fast a uncached.example.test
check "the cached one is served stale (TTL 30)" stale_ttl a cached.example.test 192.0.2.21
check "node names still resolve" answers a "${IP4[b]}" "bravo.$DOM" A
check "dns stats: stale answers counted" stats_has a '"stale":[1-9]'
check "dns stats: upstreams' timeouts counted" stats_has a '"timeouts":[1-9]'
check "vpnctl dns stats (human)" bash -c "'$VPNCTL' --socket '$E2E_TMP/a/vpnd.sock' dns stats | grep -q '^blocked: [1-9]'"

# --- DNS over TLS: unbound serves a zone only it has on UP1:853 with a certificate for
# --- dot.test from the test's own CA; vpnd a restarts with --dns-tls-ca that CA. A DoT
# --- upstream whose name the certificate does not carry (#wrong.test) is never used: its
# --- handshake fails verification (counted), the query fails over to the next ---
if command -v unbound >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1; then
	DOT="$E2E_TMP/dot"
	mkdir -p "$DOT"
	make_dot_certs() {
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-subj /CN=meshvpn-test-ca -keyout "$DOT/ca.key" -out "$DOT/ca.crt" &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=dot.test \
			-keyout "$DOT/server.key" -out "$DOT/server.csr" &&
		printf 'subjectAltName=DNS:dot.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
			>"$DOT/ext" &&
		openssl x509 -req -in "$DOT/server.csr" -CA "$DOT/ca.crt" -CAkey "$DOT/ca.key" \
			-CAcreateserial -days 2 -extfile "$DOT/ext" -out "$DOT/server.crt"
	} >>"$DOT/openssl.log" 2>&1
	check "a test CA and a certificate for dot.test" make_dot_certs
	cat >"$DOT/unbound.conf" <<-EOF
	server:
	  interface: $UP1@853
	  tls-port: 853
	  tls-service-key: "$DOT/server.key"
	  tls-service-pem: "$DOT/server.crt"
	  do-daemonize: no
	  username: ""
	  chroot: ""
	  directory: "$DOT"
	  pidfile: ""
	  use-syslog: no
	  logfile: "$DOT/unbound.log"
	  verbosity: 1
	  do-ip6: no
	  num-threads: 1
	  module-config: "iterator"
	  access-control: 0.0.0.0/0 allow
	  local-zone: "dotonly.test." static
	  local-data: "name.dotonly.test. 60 IN A 192.0.2.77"
	  local-data: "tcp.dotonly.test. 60 IN A 192.0.2.78"
	  log-queries: yes
	remote-control:
	  control-enable: no
	EOF
	start_unbound_dot() {
		ip netns exec "$(lab_ns up1)" unbound -d -c "$DOT/unbound.conf" >"$DOT/unbound.out" 2>&1 &
		UNBOUND_PID=$!
		track "$UNBOUND_PID"
		wait_for 10 lab_exec up1 bash -c "exec 3<>/dev/tcp/$UP1/853"
	}
	check "unbound serves DNS over TLS on $UP1:853" start_unbound_dot
	check "dig +tls at unbound (the zone is there)" bash -c \
		"ip netns exec '$(lab_ns up1)' dig +time=2 +tries=1 +tls +short @$UP1 -p 853 name.dotonly.test A | grep -qx 192.0.2.77"
	kill -TERM "${VPND_PID[a]}" 2>/dev/null
	wait "${VPND_PID[a]}" 2>/dev/null
	untrack "${VPND_PID[a]}"
	check "vpnd a restarts with --dns-tls-ca" start_vpnd a --dns-tls-ca "$DOT/ca.crt" --metrics 127.0.0.1:9153
	check "a joins again" joins a
	check "upstream remove $UP1" adm dns upstream remove "$UP1"
	check "upstream remove $UP2" adm dns upstream remove "$UP2"
	check "upstream add tls://$UP1:853#wrong.test (first)" adm dns upstream add "tls://$UP1:853#wrong.test"
	check "upstream add tls://$UP1:853#dot.test" adm dns upstream add "tls://$UP1:853#dot.test"
	check_within "a name only the DoT server has resolves (over TLS, verified as dot.test)" 10 \
		answers a 192.0.2.77 name.dotonly.test A
	check "a client's TCP query goes over TLS too" answers a 192.0.2.78 +tcp tcp.dotonly.test A
	dstats() { ctl a dns stats | grep -q "$1"; }
	check "vpnctl dns stats: the tls:// upstream answered" \
		dstats "^upstream tls://$UP1:853#dot.test: up, queries [1-9][0-9]*, answers [1-9]"
	check "vpnctl dns stats: #wrong.test's certificate did not verify (counted)" \
		dstats "^upstream tls://$UP1:853#wrong.test: down, .*answers 0, .*tls errors [1-9][0-9]* (certificate [1-9]"
	metric_has() { lab_exec a curl -s --max-time 3 http://127.0.0.1:9153/metrics | grep -q "$1"; }
	check "/metrics: the verify failure under its tls:// label" metric_has \
		"^vpnd_dns_upstream_tls_verify_failures_total{upstream=\"tls://$UP1:853#wrong.test\"} [1-9]"
	check "/metrics: answers by the tls:// upstream" metric_has \
		"^vpnd_dns_upstream_answers_total{upstream=\"tls://$UP1:853#dot.test\"} [1-9]"
	check "upstream remove tls://$UP1:853#dot.test" adm dns upstream remove "tls://$UP1:853#dot.test"
	check_within "the policy reaches a: #wrong.test is the only upstream" 10 \
		bash -c "! '$VPNCTL' --socket '$E2E_TMP/a/vpnd.sock' dns stats | grep -q '#dot.test:'"
	wrong_only() {
		lab_exec a dig +time=3 +tries=1 @100.100.100.100 other.dotonly.test A | grep -q "status: SERVFAIL,"
	}
	check_within "with only #wrong.test left: SERVFAIL, never its answer" 15 wrong_only
	check "... unbound was never asked through #wrong.test" \
		bash -c "grep -q name.dotonly.test '$DOT/unbound.log' && ! grep -q other.dotonly.test '$DOT/unbound.log'"
	kill -TERM "$UNBOUND_PID" 2>/dev/null
	wait "$UNBOUND_PID" 2>/dev/null
	untrack "$UNBOUND_PID"
else
	echo "skip: DNS over TLS checks (unbound or openssl not installed)"
fi

for n in a b; do
	kill -TERM "${VPND_PID[$n]}" 2>/dev/null
	wait "${VPND_PID[$n]}" 2>/dev/null
	check "vpnd $n exits 0 on SIGTERM" test $? = 0
	untrack "${VPND_PID[$n]}"
done
[ "$FAILED" -eq 0 ] || dump_logs
finish
