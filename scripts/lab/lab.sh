# lab.sh - the network-namespace lab: a public "internet" segment (a bridge in its own
# namespace) and hosts attached to it, each in its own namespace with a documentation-
# range address (198.51.100.0/24). Nothing is routed to the machine's real uplink.
# Source it, then: lab_init PREFIX; lab_host NAME IP; lab_router / lab_behind for hosts
# behind a NAT; lab_exec NAME CMD...; lab_down.
# lab_down runs on EXIT once lab_init has been called.

LAB_PREFIX=""
LAB_HOSTS=""
LAB_NET=198.51.100

lab_ns() { echo "${LAB_PREFIX}-$1"; }

lab_init() {
	LAB_PREFIX=${1:-mv$$}
	ip netns add "$(lab_ns inet)" || return 1
	LAB_HOSTS="inet"
	ip -n "$(lab_ns inet)" link set lo up
	ip -n "$(lab_ns inet)" link add br0 type bridge
	ip -n "$(lab_ns inet)" link set br0 up
}

# lab_host NAME LAST-OCTET: a host on the internet segment at 198.51.100.LAST-OCTET/24
lab_host() {
	local name=$1 ip="$LAB_NET.$2" ns
	ns=$(lab_ns "$name")
	ip netns add "$ns" || return 1
	LAB_HOSTS="$LAB_HOSTS $name"
	ip -n "$ns" link set lo up
	# Both ends are made inside the lab's namespaces: no name can clash with the host's.
	ip -n "$(lab_ns inet)" link add "h$2" type veth peer name eth0 netns "$ns" || return 1
	ip -n "$(lab_ns inet)" link set "h$2" master br0 up
	ip -n "$ns" addr add "$ip/24" dev eth0
	ip -n "$ns" link set eth0 up
}

lab_exec() {
	local name=$1; shift
	ip netns exec "$(lab_ns "$name")" "$@"
}

lab_down() {
	local h
	for h in $LAB_HOSTS; do
		ip netns pids "$(lab_ns "$h")" 2>/dev/null | xargs -r kill 2>/dev/null
	done
	for h in $LAB_HOSTS; do
		ip netns del "$(lab_ns "$h")" 2>/dev/null
	done
	LAB_HOSTS=""
}

# lab_router NAME LAST-OCTET LAN [MASQ]: a NAT router on the internet segment at
# 198.51.100.LAST-OCTET with a LAN bridge at LAN.1/24 (LAN like 10.1.0), forwarding and
# nft masquerade on its uplink (MASQ: extra masquerade flags, e.g. "random,fully-random"
# for a NAT that maps each destination to another port).
lab_router() {
	local name=$1 octet=$2 lan=$3 masq=${4:-} ns
	lab_host "$name" "$octet" || return 1
	ns=$(lab_ns "$name")
	ip -n "$ns" link add lan0 type bridge || return 1
	ip -n "$ns" addr add "$lan.1/24" dev lan0
	ip -n "$ns" link set lan0 up
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
	ip netns exec "$ns" nft -f - <<NFT || return 1
table ip lab {
	chain post { type nat hook postrouting priority srcnat; oifname "eth0" masquerade ${masq}; }
}
NFT
}

# lab_behind NAME ROUTER LAST-OCTET: a host on ROUTER's LAN at LAN.LAST-OCTET, its default
# route through the router.
lab_behind() {
	local name=$1 router=$2 octet=$3 ns rns lan
	rns=$(lab_ns "$router")
	lan=$(ip -n "$rns" -4 -o addr show dev lan0 | awk '{print $4}' | cut -d/ -f1 | sed 's/\.1$//')
	ns=$(lab_ns "$name")
	ip netns add "$ns" || return 1
	LAB_HOSTS="$LAB_HOSTS $name"
	ip -n "$ns" link set lo up
	ip -n "$rns" link add "l$octet" type veth peer name eth0 netns "$ns" || return 1
	ip -n "$rns" link set "l$octet" master lan0 up
	ip -n "$ns" addr add "$lan.$octet/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" route add default via "$lan.1"
}
