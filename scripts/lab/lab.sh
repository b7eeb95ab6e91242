# lab.sh - the network-namespace lab: a public "internet" segment (a bridge in its own
# namespace, 198.51.100.0/24 and 2001:db8::/64) and hosts attached to it, each in its own
# namespace; NAT routers with LANs behind them, routers behind routers (carrier-grade NAT).
# Nothing is routed to the machine's real uplink. Only ip, nft and sysctl are used, so the
# file also runs inside the kernel-WireGuard VM (tests/vm/).
#
# Source it, then: lab_init PREFIX; lab_host NAME OCTET [v6]; lab_router / lab_behind /
# lab_router_behind for NATs; lab_block_udp / lab_block_pair to cut UDP; lab_exec NAME
# CMD...; lab_down (the caller runs it on exit: tests put it in E2E_CLEANUPS).
#
# lab_fleet builds the whole fleet of DESIGN.md "The lab" (after lab_init) and sets
# LAB_IP_<name> (its own IPv4), LAB_PUB_<name> (the IPv4 the internet sees it as),
# LAB_IP6_<name> (its IPv6, public hosts only), LAB_NODES and LAB_SERVERS:
#
#   host     namespace role                                  IPv4            IPv6
#   coord    public                                          198.51.100.1    2001:db8::1
#   relay1   public                                          198.51.100.2    2001:db8::2
#   relay2   public                                          198.51.100.3    2001:db8::3
#   a        public node (data-centre server)                198.51.100.11   2001:db8::11
#   home1    easy NAT (masquerade), LAN 10.1.0.0/24          198.51.100.20   -
#     b      behind home1                                    10.1.0.2        -
#     b2     behind home1 (B')                               10.1.0.3        -
#   home2    hard NAT (masquerade random,fully-random)       198.51.100.21   -
#     c      behind home2, LAN 10.2.0.0/24                   10.2.0.2        -
#   carrier  carrier NAT (random,fully-random), LAN          198.51.100.30   -
#            100.64.0.0/24 (RFC 6598)
#     home3  easy NAT, WAN on the carrier's LAN              100.64.0.2      -
#       d    behind home3, LAN 10.3.0.0/24 (the CGNAT home)  10.3.0.2        -
#     home4  easy NAT that forwards no UDP to its WAN        100.64.0.3      -
#       e    behind home4, LAN 10.4.0.0/24 (TCP only)        10.4.0.2        -
#
# The internet sees b and b2 as 198.51.100.20, c as .21, d and e as .30 (LAB_PUB_*).

LAB_PREFIX=""
LAB_HOSTS=""
LAB_NET=198.51.100
LAB_NET6=2001:db8:

lab_ns() { echo "${LAB_PREFIX}-$1"; }

lab_init() {
	LAB_PREFIX=${1:-mv$$}
	ip netns add "$(lab_ns inet)" || return 1
	LAB_HOSTS="inet"
	ip -n "$(lab_ns inet)" link set lo up
	ip -n "$(lab_ns inet)" link add br0 type bridge
	ip -n "$(lab_ns inet)" link set br0 up
}

# lab_netns NAME: a new namespace for NAME with its loopback up, remembered for lab_down.
lab_netns() {
	ip netns add "$(lab_ns "$1")" || return 1
	LAB_HOSTS="$LAB_HOSTS $1"
	ip -n "$(lab_ns "$1")" link set lo up
}

# lab_host NAME LAST-OCTET [v6]: a host on the internet segment at 198.51.100.LAST-OCTET/24,
# with "v6" also at 2001:db8::LAST-OCTET/64 (nodad: usable at once, no DAD wait).
lab_host() {
	local name=$1 ip="$LAB_NET.$2" v6=${3:-} ns
	ns=$(lab_ns "$name")
	lab_netns "$name" || return 1
	# Both ends are made inside the lab's namespaces: no name can clash with the host's.
	ip -n "$(lab_ns inet)" link add "h$2" type veth peer name eth0 netns "$ns" || return 1
	ip -n "$(lab_ns inet)" link set "h$2" master br0 up
	ip -n "$ns" addr add "$ip/24" dev eth0
	if [ "$v6" = v6 ]; then
		ip -n "$ns" addr add "$LAB_NET6:$2/64" dev eth0 nodad || return 1
	fi
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

# lab_nat_lan NAME LAN [MASQ]: turns host NAME (its uplink is eth0) into a NAT router with a
# LAN bridge at LAN.1/24 (LAN like 10.1.0) and nft masquerade on eth0; MASQ: extra
# masquerade flags ("random,fully-random": a new port for every destination).
lab_nat_lan() {
	local name=$1 lan=$2 masq=${3:-} ns
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

# lab_router NAME LAST-OCTET LAN [MASQ]: a NAT router on the internet segment at
# 198.51.100.LAST-OCTET with a LAN at LAN.0/24 (see lab_nat_lan).
lab_router() {
	lab_host "$1" "$2" && lab_nat_lan "$1" "$3" "${4:-}"
}

# lab_behind NAME ROUTER LAST-OCTET: a host on ROUTER's LAN at LAN.LAST-OCTET, its default
# route through the router. ROUTER may itself be behind another (lab_router_behind).
lab_behind() {
	local name=$1 router=$2 octet=$3 ns rns lan
	rns=$(lab_ns "$router")
	lan=$(ip -n "$rns" -4 -o addr show dev lan0 | awk '{print $4}' | cut -d/ -f1 | sed 's/\.1$//')
	ns=$(lab_ns "$name")
	lab_netns "$name" || return 1
	ip -n "$rns" link add "l$octet" type veth peer name eth0 netns "$ns" || return 1
	ip -n "$rns" link set "l$octet" master lan0 up
	ip -n "$ns" addr add "$lan.$octet/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" route add default via "$lan.1"
}

# lab_router_behind NAME UPSTREAM LAST-OCTET LAN [MASQ]: a NAT router whose WAN is on router
# UPSTREAM's LAN (a home router inside a carrier NAT), with its own LAN at LAN.0/24.
lab_router_behind() {
	lab_behind "$1" "$2" "$3" && lab_nat_lan "$1" "$4" "${5:-}"
}

# lab_block_udp ROUTER / lab_unblock_udp ROUTER: the router forwards no UDP out of its WAN
# (TCP still works); its own table, so removing it touches nothing else.
lab_block_udp() {
	ip netns exec "$(lab_ns "$1")" nft -f - <<'NFT'
table inet lab_noudp {
	chain udp_out { type filter hook forward priority 0; oifname "eth0" meta l4proto udp drop; }
}
NFT
}
lab_unblock_udp() { ip netns exec "$(lab_ns "$1")" nft delete table inet lab_noudp; }

# lab_block_pair NAME ADDR / lab_unblock_pair NAME ADDR: host NAME sends no UDP to ADDR and
# receives none from it (IPv4 or IPv6), in NAME's own namespace: that cuts only this pair,
# and a raw socket there sees neither (it sends through the output hook and receives after
# the input hook). For a peer behind a shared NAT (b, b2) block on the NATed side: in b,
# ADDR = a's address cuts a<->b and leaves a<->b2.
lab_pair_table() { echo "lab_pair_$1" | tr '.:' '__'; }
lab_block_pair() {
	local fam=ip
	case "$2" in *:*) fam=ip6 ;; esac
	ip netns exec "$(lab_ns "$1")" nft -f - <<NFT
table inet $(lab_pair_table "$2") {
	chain pair_in { type filter hook input priority 0; $fam saddr $2 meta l4proto udp drop; }
	chain pair_out { type filter hook output priority 0; $fam daddr $2 meta l4proto udp drop; }
}
NFT
}
lab_unblock_pair() { ip netns exec "$(lab_ns "$1")" nft delete table inet "$(lab_pair_table "$2")"; }

# lab_fleet: the fleet of the header's address plan (call lab_init first); sets the
# LAB_IP_*, LAB_PUB_*, LAB_IP6_* variables, LAB_NODES (a b b2 c d e) and LAB_SERVERS.
lab_fleet() {
	local h o
	for h in coord:1 relay1:2 relay2:3 a:11; do
		o=${h#*:} h=${h%:*}
		lab_host "$h" "$o" v6 || return 1
		eval "LAB_IP_$h=$LAB_NET.$o LAB_PUB_$h=$LAB_NET.$o LAB_IP6_$h=$LAB_NET6:$o"
	done
	lab_router home1 20 10.1.0 && lab_behind b home1 2 && lab_behind b2 home1 3 || return 1
	lab_router home2 21 10.2.0 random,fully-random && lab_behind c home2 2 || return 1
	lab_router carrier 30 100.64.0 random,fully-random || return 1
	lab_router_behind home3 carrier 2 10.3.0 && lab_behind d home3 2 || return 1
	lab_router_behind home4 carrier 3 10.4.0 && lab_behind e home4 2 && lab_block_udp home4 || return 1
	LAB_IP_home1=$LAB_NET.20 LAB_IP_home2=$LAB_NET.21 LAB_IP_carrier=$LAB_NET.30
	LAB_IP_home3=100.64.0.2 LAB_IP_home4=100.64.0.3
	LAB_IP_b=10.1.0.2 LAB_IP_b2=10.1.0.3 LAB_IP_c=10.2.0.2 LAB_IP_d=10.3.0.2 LAB_IP_e=10.4.0.2
	LAB_PUB_b=$LAB_IP_home1 LAB_PUB_b2=$LAB_IP_home1 LAB_PUB_c=$LAB_IP_home2
	LAB_PUB_d=$LAB_IP_carrier LAB_PUB_e=$LAB_IP_carrier
	LAB_NODES="a b b2 c d e"
	LAB_SERVERS="coord relay1 relay2"
	export LAB_NODES LAB_SERVERS "${!LAB_IP_@}" "${!LAB_PUB_@}" "${!LAB_IP6_@}"
}
