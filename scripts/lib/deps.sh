# deps.sh - installs the Debian packages the project needs, only those missing.
# Sourced by scripts/test and scripts/demo.

MESHVPN_PACKAGES="gcc pkg-config meson ninja-build libsodium-dev libuv1-dev libmbedtls-dev
libjansson-dev libzstd-dev libhttp-parser-dev libsqlite3-dev libcmocka-dev libmnl-dev libnl-3-dev
libnl-route-3-dev clang libclang-rt-14-dev iproute2 nftables wireguard-tools wireguard-go
curl ca-certificates iputils-ping procps jq coturn stun-client nginx openssl
dnsmasq-base bind9-dnsutils libpq-dev postgresql"

ensure_deps() {
	local missing="" p
	for p in $MESHVPN_PACKAGES "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "installing:$missing"
	if [ "$(id -u)" != 0 ]; then
		echo "error: packages missing and not root: run as root, or apt-get install$missing" >&2
		return 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null || { echo "error: apt-get update failed" >&2; return 1; }
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
		{ echo "error: apt-get install$missing failed" >&2; return 1; }
}
