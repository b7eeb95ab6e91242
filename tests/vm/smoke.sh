#!/bin/bash
# tests/vm/smoke.sh - runs inside the test VM (scripts/vm/run tests/vm/smoke.sh): two namespaces
# joined by a veth, a kernel WireGuard interface in each, ping through the tunnel, a handshake in `wg show`.
# vm-timeout: 60
set -eu
fail() { echo "FAIL: $*"; exit 1; }
step() { echo "--- $*"; }

A=vmA B=vmB
cleanup() { ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true; }
trap cleanup EXIT

step "kernel WireGuard available"
command -v wg >/dev/null || fail "no wg in the VM: install wireguard-tools on the host"
ip link add wgprobe type wireguard || fail "ip link add type wireguard: no kernel WireGuard"
ip link del wgprobe

step "namespaces + veth (198.51.100.0/24 underlay)"
ip netns add $A
ip netns add $B
ip link add vA netns $A type veth peer name vB netns $B
ip -n $A addr add 198.51.100.1/24 dev vA
ip -n $B addr add 198.51.100.2/24 dev vB
ip -n $A link set vA up; ip -n $A link set lo up
ip -n $B link set vB up; ip -n $B link set lo up
ip netns exec $A ping -c 1 -W 2 198.51.100.2 >/dev/null || fail "underlay ping"

step "keys"
umask 077
wg genkey >/tmp/a.key; wg pubkey </tmp/a.key >/tmp/a.pub
wg genkey >/tmp/b.key; wg pubkey </tmp/b.key >/tmp/b.pub
[ "$(wc -c </tmp/a.pub)" -eq 45 ] || fail "bad public key: $(cat /tmp/a.pub)"

step "WireGuard interfaces (100.64.0.0/10 overlay)"
ip -n $A link add wg0 type wireguard
ip -n $B link add wg0 type wireguard
ip netns exec $A wg set wg0 private-key /tmp/a.key listen-port 51820 \
	peer "$(cat /tmp/b.pub)" endpoint 198.51.100.2:51820 allowed-ips 100.64.0.2/32,fd7a:115c:a1e0::2/128
ip netns exec $B wg set wg0 private-key /tmp/b.key listen-port 51820 \
	peer "$(cat /tmp/a.pub)" endpoint 198.51.100.1:51820 allowed-ips 100.64.0.1/32,fd7a:115c:a1e0::1/128
ip -n $A addr add 100.64.0.1/10 dev wg0
ip -n $B addr add 100.64.0.2/10 dev wg0
ip -n $A addr add fd7a:115c:a1e0::1/48 dev wg0
ip -n $B addr add fd7a:115c:a1e0::2/48 dev wg0
ip -n $A link set wg0 up
ip -n $B link set wg0 up

step "ping through the tunnel"
ip netns exec $A ping -c 3 -i 0.2 -W 5 100.64.0.2 || fail "ping A -> B over wg0"
ip netns exec $B ping -c 1 -W 5 100.64.0.1 >/dev/null || fail "ping B -> A over wg0"
ip netns exec $A ping -6 -c 1 -W 5 fd7a:115c:a1e0::2 >/dev/null || fail "ping6 A -> B over wg0"

step "wg show"
ip netns exec $A wg show wg0
hs=$(ip netns exec $A wg show wg0 latest-handshakes | awk '{print $2}')
[ -n "$hs" ] && [ "$hs" -gt 0 ] || fail "no handshake recorded (latest-handshakes: '$hs')"
rx=$(ip netns exec $A wg show wg0 transfer | awk '{print $2}')
[ "${rx:-0}" -gt 0 ] || fail "no bytes received over wg0"
ip netns exec $A wg show wg0 | grep -q 'latest handshake' || fail "'wg show' prints no handshake"
echo "smoke: OK (handshake at $hs, rx $rx bytes)"
