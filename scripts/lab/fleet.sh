# fleet.sh - meshvpn running in lab_fleet's namespaces (scripts/lab/lab.sh): coord on its
# public address, the two relays (STUN on IPv4 and IPv6), vpnd on the nodes, and the
# queries scripts ask of them (status, path, ping). Shared by scripts/demo and
# scripts/bench/traversal; every process it starts is remembered by PID (FLEET_PIDS) and
# fleet_down stops those, then the lab — nothing is ever killed by name.
#
# Source lab.sh and this, set FLEET_BIN (an absolute build dir) and FLEET_TMP (a temp
# dir), then: lab_init P; lab_fleet; fleet_coord; fleet_relay relay1; fleet_vpnd a IFNAME;
# fleet_up a HOSTNAME [--auth-key K]; ...; fleet_down on exit. FLEET_HA=1 (with
# scripts/lib/pg.sh sourced) runs coord as two instances on PostgreSQL.

FLEET_PIDS=""
FLEET_IFNAMES=""
FLEET_BACKEND=${FLEET_BACKEND:-userspace}
FLEET_PORT=41641
FLEET_LOG_LEVEL=${FLEET_LOG_LEVEL:-info}
declare -gA FLEET_VPND_PID=() FLEET_RELAY_PID=() FLEET_HOST=() FLEET_SOCK=() FLEET_LOG=()

# Background processes are started with `ip netns exec NS CMD &`, never through a shell
# function such as lab_exec: then $! is CMD itself (ip execs it), not a subshell, and
# killing it stops CMD.
fleet_track() { FLEET_PIDS="$FLEET_PIDS $1"; }
fleet_untrack() {
	local keep="" p
	for p in $FLEET_PIDS; do [ "$p" = "$1" ] || keep="$keep $p"; done
	FLEET_PIDS=$keep
}

# fleet_stop_pid PID: SIGTERM, a bounded wait, then SIGKILL; forgotten afterwards.
fleet_stop_pid() {
	local pid=$1
	if kill "$pid" 2>/dev/null; then
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	fleet_untrack "$pid"
}

fleet_down() {
	local p i
	for p in $FLEET_PIDS; do kill "$p" 2>/dev/null; done
	for p in $FLEET_PIDS; do fleet_stop_pid "$p"; done
	lab_down   # whatever is left in our namespaces (wireguard-go children), then the namespaces
	for i in $FLEET_IFNAMES; do rm -f "/var/run/wireguard/$i.sock"; done
	[ -n "${FLEET_HA:-}" ] && pg_stop
	return 0
}

fleet_us() { echo "${EPOCHREALTIME/./}"; }
fleet_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }

# fleet_wait SECONDS CMD...: polls CMD (every 20 ms) until it succeeds or the deadline passes.
fleet_wait() {
	local end=$(( $(fleet_ms) + $1 * 1000 )); shift
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "$(fleet_ms)" -ge "$end" ] && return 1
		sleep 0.02
	done
}

# fleet_coord: coord serve on LAB_IP_coord:8443; sets FLEET_URL, FLEET_PIN and FLEET_KEY
# (a reusable auth key). With FLEET_HA=1: a PostgreSQL of the fleet's own
# (scripts/lib/pg.sh, under FLEET_TMP) and two instances on it, coord-a on :8443 and
# coord-b on :8444 (state dirs FLEET_TMP/coord and FLEET_TMP/coord-b); FLEET_URL lists both.
declare -gA FLEET_COORD_PID=()
fleet_coord_start() {  # fleet_coord_start NAME PORT STATE [serve options...]
	local name=$1 port=$2 st=$3; shift 3
	: >"$st.out"
	ip netns exec "$(lab_ns coord)" "$FLEET_BIN/coord/coord" serve --state "$st" \
		--listen "$LAB_IP_coord:$port" --keepalive 2s "$@" >"$st.out" 2>>"$st.log" &
	FLEET_COORD_PID[$name]=$!
	fleet_track $!
	fleet_wait 15 grep -q "listening on" "$st.out" || { tail -5 "$st.log" >&2; return 1; }
}
fleet_coord() {
	if [ -n "${FLEET_HA:-}" ]; then
		pg_start "$FLEET_TMP/pg" >/dev/null || return 1
		fleet_coord_start coord-a 8443 "$FLEET_TMP/coord" --store "$PG_URI" --instance coord-a || return 1
		fleet_coord_start coord-b 8444 "$FLEET_TMP/coord-b" --store "$PG_URI" --instance coord-b || return 1
		FLEET_URL="https://$LAB_IP_coord:8443,https://$LAB_IP_coord:8444"
	else
		fleet_coord_start coord 8443 "$FLEET_TMP/coord" || return 1
		FLEET_URL="https://$LAB_IP_coord:8443"
	fi
	FLEET_PIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$FLEET_TMP/coord.out" | head -1)
	FLEET_KEY=$(fleet_adm keys create --reusable | tail -1)
	[ -n "$FLEET_PIN" ] && [ -n "$FLEET_KEY" ]
}
# fleet_coord_kill NAME: kill -9 of one instance (FLEET_HA), as a crash would.
fleet_coord_kill() {
	kill -9 "${FLEET_COORD_PID[$1]}" 2>/dev/null
	wait "${FLEET_COORD_PID[$1]}" 2>/dev/null
	fleet_untrack "${FLEET_COORD_PID[$1]}"
}
FLEET_ADM_STATE=""
fleet_adm() { "$FLEET_BIN/coord/coord" --state "${FLEET_ADM_STATE:-$FLEET_TMP/coord}" "$@"; }

fleet_relay_connected() {
	lab_exec "$1" curl -s http://127.0.0.1:9102/metrics | awk '$1 == "relay_coord_connected" { print $2 }' | grep -qx 1
}
# fleet_relay NAME: registers the relay with coord (once: its token is kept) and starts it
# on its public address, STUN on [::]:3478 (IPv4 and IPv6); returns once coord admits it.
fleet_relay() {
	local r=$1 ip ip6 tok
	eval "ip=\$LAB_IP_$r ip6=\$LAB_IP6_$r"
	[ -s "$FLEET_TMP/$r.token" ] ||
		fleet_adm relays add "$r" "https://$ip:443" --stun "$ip:3478,[$ip6]:3478" | tail -1 >"$FLEET_TMP/$r.token"
	tok=$(cat "$FLEET_TMP/$r.token")
	: >"$FLEET_TMP/$r.out"
	ip netns exec "$(lab_ns "$r")" "$FLEET_BIN/relay/relay" --coord "$FLEET_URL" --token "$tok" --pin "$FLEET_PIN" \
		--listen "$ip:443" --stun "[::]:3478" --metrics 127.0.0.1:9102 --state "$FLEET_TMP/$r" \
		>>"$FLEET_TMP/$r.out" 2>>"$FLEET_TMP/$r.log" &
	FLEET_RELAY_PID[$r]=$!
	fleet_track $!
	fleet_wait 10 fleet_relay_connected "$r" || { tail -5 "$FLEET_TMP/$r.log" >&2; return 1; }
}

# fleet_vpnd NODE IFNAME [STATE]: vpnd in NODE's namespace on port 41641, metrics on
# 127.0.0.1:9101 there (state dir FLEET_TMP/NODE and log FLEET_TMP/NODE.log, or STATE
# and STATE.log); returns once its control socket is there.
fleet_vpnd() {
	local n=$1 ifn=$2 st=${3:-$FLEET_TMP/$1}
	FLEET_LOG[$n]=${3:+$3.log}
	FLEET_LOG[$n]=${FLEET_LOG[$n]:-$FLEET_TMP/$n.log}
	mkdir -p "$st"
	rm -f "$st/vpnd.sock"
	ip netns exec "$(lab_ns "$n")" "$FLEET_BIN/vpnd/vpnd" --state "$st/state" --socket "$st/vpnd.sock" \
		--wg-backend "$FLEET_BACKEND" --ifname "$ifn" --port "$FLEET_PORT" --metrics 127.0.0.1:9101 \
		--log-level "$FLEET_LOG_LEVEL" >>"${FLEET_LOG[$n]}" 2>&1 &
	FLEET_VPND_PID[$n]=$!
	FLEET_SOCK[$n]="$st/vpnd.sock"
	fleet_track $!
	FLEET_IFNAMES="$FLEET_IFNAMES $ifn"
	fleet_wait 10 test -S "$st/vpnd.sock"
}

fleet_ctl() { local n=$1; shift; lab_exec "$n" "$FLEET_BIN/vpnd/vpnctl" --socket "${FLEET_SOCK[$n]}" "$@"; }
# fleet_up NODE HOSTNAME [ARGS...]: vpnctl up against the fleet's coord (ARGS: --auth-key K).
fleet_up() {
	local n=$1 h=$2; shift 2
	FLEET_HOST[$n]=$h
	fleet_ctl "$n" up --coord "$FLEET_URL" --pin "$FLEET_PIN" --hostname "$h" "$@"
}
fleet_running() { fleet_ctl "$1" status --json 2>/dev/null | jq -e '.self.state == "running"' >/dev/null; }

# fleet_path NODE PEER: the path NODE's status gives for PEER (a node of the lab): direct,
# relay or none.
fleet_path() {
	fleet_ctl "$1" status --json 2>/dev/null |
		jq -r --arg p "${FLEET_HOST[$2]}" '.peers[] | select(.name == $p) | .path'
}
fleet_path_is() { [ "$(fleet_path "$1" "$2")" = "$3" ]; }
# fleet_pair_path A B PATH: both see PATH.
fleet_pair_path() { fleet_path_is "$1" "$2" "$3" && fleet_path_is "$2" "$1" "$3"; }
# fleet_metric NODE NAME: the value of vpnd's metric NAME (no labels).
fleet_metric() { lab_exec "$1" curl -s http://127.0.0.1:9101/metrics | awk -v m="$2" '$1 == m { print $2 }'; }
# fleet_ip NODE: its tailnet IPv4.
fleet_ip() { fleet_ctl "$1" ip -4; }
