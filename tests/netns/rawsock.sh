#!/usr/bin/env bash
# rawsock.sh - vpnd/rawsock.c sharing a UDP port with a stand-in WireGuard socket, in the
# namespace lab: a STUN server s (198.51.100.1, 2001:db8::1; tests/tools/stun_serve),
# public hosts a (.11, ::11) and b (.12, ::12), and host n behind an easy home NAT
# (router .20, nft masquerade, LAN 10.1.0.0/24). tests/tools/rawprobe binds port 41641 with
# a normal UDP socket and opens rawsock on it. Over IPv4 and IPv6: b's STUN request sent
# through the raw socket comes back through it with b's address and port 41641; a disco
# datagram b sends a through its raw socket arrives through a's raw socket and a's echo
# back through b's; the stand-in sockets get copies of all of it; a plain datagram to
# 41641 and a disco-magic one to another port reach a's raw socket's filter and are
# dropped there (a's parser never sees them: raw_bad=0); a disco datagram whose IPv4
# header carries options (IHL 6) passes a's filter and parser. Behind the NAT: the mapped
# address is the router's with the same port, and the echo comes back through the NAT.
# Usage: tests/netns/rawsock.sh BUILD_DIR      (root; exit 77 = skipped)
set -u
BUILD=$(cd "${1:?usage: rawsock.sh BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

if [ "$(id -u)" != 0 ]; then
	echo "skip: needs root (network namespaces, raw sockets)"
	exit 77
fi
for tool in ip nft; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "skip: $tool not installed"
		exit 77
	fi
done

. "$ROOT/tests/e2e/lib.sh"
. "$ROOT/scripts/lab/lab.sh"

PROBE="$BUILD/tests/tools/rawprobe"
SERVE="$BUILD/tests/tools/stun_serve"
for b in "$PROBE" "$SERVE"; do
	[ -x "$b" ] || { echo "FAIL - $b not built"; exit 1; }
done

PORT=41641
S4=198.51.100.1 A4=198.51.100.11 B4=198.51.100.12 R4=198.51.100.20
S6=2001:db8::1 A6=2001:db8::11 B6=2001:db8::12
A_PID=""

E2E_CLEANUPS="lab_down"
lab_init "mvraw$$" || { echo "FAIL - cannot create the lab"; exit 1; }
lab_host s 1 && lab_host a 11 && lab_host b 12 || { echo "FAIL - lab hosts"; exit 1; }
lab_router home 20 10.1.0 && lab_behind n home 2 || { echo "FAIL - lab NAT"; exit 1; }
for h in s:1 a:11 b:12; do
	# nodad: usable at once, no wait for duplicate address detection
	ip -n "$(lab_ns "${h%:*}")" -6 addr add "2001:db8::${h#*:}/64" dev eth0 nodad ||
		{ echo "FAIL - IPv6 address on ${h%:*}"; exit 1; }
done

# serve NAME ADDR: stun_serve on ADDR in s
serve() {
	ip netns exec "$(lab_ns s)" "$SERVE" "$2" >"$E2E_TMP/$1.out" 2>"$E2E_TMP/$1.log" &
	track $!
	wait_for 10 grep -q '^stun listening' "$E2E_TMP/$1.out"
}
# start_a TAG: rawprobe on a, echoing disco probes, until stopped
start_a() {
	# not lab_exec: $! must be rawprobe's own PID, not a subshell's
	ip netns exec "$(lab_ns a)" "$PROBE" --port "$PORT" --echo >"$E2E_TMP/a.$1" 2>&1 &
	A_PID=$!
	track "$A_PID"
	wait_for 10 grep -q '^ready' "$E2E_TMP/a.$1"
}
stop_a() {
	kill -TERM "$A_PID" 2>/dev/null
	wait "$A_PID" 2>/dev/null
	local rc=$?
	untrack "$A_PID"
	return $rc
}
# probe HOST TAG ARGS...: rawprobe on HOST, its output in $E2E_TMP/HOST.TAG
probe() {
	local host=$1 tag=$2; shift 2
	lab_exec "$host" "$PROBE" --port "$PORT" --want-echo --timeout 10000 "$@" \
		>"$E2E_TMP/$host.$tag" 2>&1
	local rc=$?
	cat "$E2E_TMP/$host.$tag"
	return $rc
}
has() { grep -qF -- "$2" "$E2E_TMP/$1"; }
# only_discos FILE: the raw socket passed up nothing but the disco datagrams (and the
# parser refused nothing: the filter dropped the plain and wrong-port datagrams)
only_discos() {
	local f="$E2E_TMP/$1" n
	n=$(grep -c '^raw disco' "$f")
	cat "$f"
	grep -q "^stats raw_received=$n raw_bad=0 " "$f" && [ "$n" -ge 1 ]
}

check "stun_serve starts on $S4" serve stun4 "$S4:3478"
check "stun_serve starts on [$S6]" serve stun6 "[$S6]:3478"

# --- IPv4, public ---
check "a: rawprobe beside a UDP socket on $PORT" start_a v4
check "b: STUN through the raw socket answered, disco to a echoed" \
	probe b v4 --stun "$S4:3478" --plain "$A4:$PORT" --decoy "$A4:$((PORT + 1))" --opts "$A4:$PORT" \
	--disco "$A4:$PORT"
check "b: mapped address is b's own, port $PORT" has b.v4 "raw stun from $S4:3478 mapped $B4:$PORT"
check "b: a's echo came through the raw socket" has b.v4 "raw disco echo from $A4:$PORT to $B4:$PORT"
check "b: its UDP socket got the STUN reply too" has b.v4 "udp from $S4:3478 "
check "a: b's disco probe came through the raw socket (IHL read, ports)" \
	has a.v4 "raw disco probe from $B4:$PORT to $A4:$PORT"
# the one with IP options came from another socket: another source port
opts_probe() { grep -E "^raw disco probe from $B4:[0-9]+ " "$E2E_TMP/a.v4" | grep -vqF "$B4:$PORT "; }
check "a: a disco datagram with IP options (IHL 6) came through the raw socket" opts_probe
check "a: the plain datagram reached the UDP socket" has a.v4 "udp from $B4:$PORT len=16"
check "a: the disco probe reached the UDP socket too" has a.v4 "udp from $B4:$PORT len=86"
check "a stops on SIGTERM" stop_a
check "a: plain and wrong-port datagrams never reached the raw callback" only_discos a.v4

# --- IPv6, public ---
check "a: rawprobe again (IPv6 run)" start_a v6
check "b: STUN over IPv6 through the raw socket answered, disco echoed" \
	probe b v6 --stun "[$S6]:3478" --plain "[$A6]:$PORT" --decoy "[$A6]:$((PORT + 1))" --disco "[$A6]:$PORT"
check "b: IPv6 mapped address is b's own, port $PORT" has b.v6 "raw stun from [$S6]:3478 mapped [$B6]:$PORT"
check "b: a's IPv6 echo came through the raw socket (with IPV6_PKTINFO)" \
	has b.v6 "raw disco echo from [$A6]:$PORT to [$B6]:$PORT"
check "b: its UDP socket got the IPv6 STUN reply too" has b.v6 "udp from [$S6]:3478 "
check "a: b's IPv6 disco probe came through the raw socket" has a.v6 "raw disco probe from [$B6]:$PORT to [$A6]:$PORT"
check "a: the plain IPv6 datagram reached the UDP socket" has a.v6 "udp from [$B6]:$PORT len=16"
check "a stops on SIGTERM" stop_a
check "a: IPv6 plain and wrong-port datagrams never reached the raw callback" only_discos a.v6

# --- IPv4 behind an easy NAT (masquerade keeps the port) ---
check "a: rawprobe again (NAT run)" start_a nat
check "n (behind the NAT): STUN answered, disco to a echoed back through the NAT" \
	probe n nat --stun "$S4:3478" --disco "$A4:$PORT"
check "n: mapped address is the router's, same port $PORT" has n.nat "raw stun from $S4:3478 mapped $R4:$PORT"
check "n: a's echo came back through the NAT into the raw socket" has n.nat "raw disco echo from $A4:$PORT to 10.1.0.2:$PORT"
check "a: n's probe came from the router's address and port $PORT" has a.nat "raw disco probe from $R4:$PORT to $A4:$PORT"
check "a stops on SIGTERM" stop_a
check "a: nothing but disco through the raw socket" only_discos a.nat
finish
