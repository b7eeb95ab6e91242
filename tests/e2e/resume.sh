#!/usr/bin/env bash
# resume.sh - end-to-end, issue 13: a node that was away while its peers changed
# reconnects with the version it last applied (GET /v1/map?since=V&epoch=E) and coord
# answers with one "resume" of what changed; applied through vpnd's own parser
# (tests/tools/nmstate) on top of what it had, the map equals, field by field, the one a
# fresh full netmap gives. Rounds of random changes while it is away: endpoints, a node
# going offline, renames, deletes, key expiries, new nodes, relays, the DNS policy; one
# round across a kill -9 and restart of coord. Also: a relay's admission stream resumes
# to the same key set; another epoch, a version from the future and garbage get a full;
# after a restart the nodes that come back are not reported offline meanwhile.
# Usage: tests/e2e/resume.sh BUILD_DIR [SEED]
set -u
BUILD=$(cd "${1:?usage: resume.sh BUILD_DIR [SEED]}" && pwd)
. "$(dirname "$0")/lib.sh"
SEED=${2:-$(( $(date +%s) % 100000 ))}
RANDOM=$SEED
echo "# seed $SEED (run again with: tests/e2e/resume.sh BUILD $SEED)"

COORD="$BUILD/coord/coord"
SIM="$BUILD/tests/tools/nodesim"
NMSTATE="$BUILD/tests/tools/nmstate"
STATE="$E2E_TMP/state"
COORD_PID=""
PORT=0
command -v curl >/dev/null || { echo "curl is needed (scripts/lib/deps.sh installs it)"; exit 1; }

start_coord() {
	: >"$E2E_TMP/coord.out"
	"$COORD" serve --state "$STATE" --listen "127.0.0.1:$PORT" --keepalive 1s --metrics 127.0.0.1:0 \
		--reconnect-grace "${GRACE:-45s}" \
		>"$E2E_TMP/coord.out" 2>>"$E2E_TMP/coord.log" &
	COORD_PID=$!
	track "$COORD_PID"
	wait_for 10 grep -q "listening on 127.0.0.1:[0-9][0-9]*," "$E2E_TMP/coord.out" || { cat "$E2E_TMP/coord.log"; return 1; }
	PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\),.*/\1/p' "$E2E_TMP/coord.out")
	PIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/coord.out" | head -1)
	URL="https://127.0.0.1:$PORT"
	MPORT=$(ss -ltnp 2>/dev/null | grep "pid=$COORD_PID," | grep -o '127.0.0.1:[0-9]*' | grep -v ":$PORT\$" | head -1)
}
metric() { curl -s "http://$MPORT/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
stop_coord_hard() { kill -9 "$COORD_PID"; wait "$COORD_PID" 2>/dev/null; untrack "$COORD_PID"; }
adm() { "$COORD" --state "$STATE" "$@"; }
sim() { local cmd=$1 dir=$2; shift 2; "$SIM" "$cmd" --coord "$URL" --pin "$PIN" --state "$E2E_TMP/$dir" "$@"; }

# curl_stream OUT PATH TOKEN: holds a stream in the background, lines to OUT.
CURL_PID=""
curl_stream() {
	curl -sk -N -H "Authorization: Bearer $3" "$URL$2" >"$1" 2>/dev/null &
	CURL_PID=$!
	track "$CURL_PID"
}
curl_stop() { kill "$CURL_PID" 2>/dev/null; wait "$CURL_PID" 2>/dev/null; untrack "$CURL_PID"; }
# The last "v" a file's lines carried, and the epoch of its full.
last_v() { grep -ho '"v":[0-9]*' "$@" | tail -1 | cut -d: -f2; }
epoch_of() { grep -o '"epoch":"[0-9a-f]*"' "$1" | head -1 | cut -d'"' -f4; }
# A keepalive after the head line: the stream is current up to its "v".
has_keepalive() { grep -q '"type":"keepalive","v":[0-9]' "$1"; }

check "coord starts" start_coord
[ -n "${PIN:-}" ] || { echo "no pin; cannot continue"; cat "$E2E_TMP/coord.log"; finish; exit 1; }
RKEY=$(adm keys create --reusable | tail -1)
NEXT=0
newnode() { NEXT=$((NEXT + 1)); sim register "p$NEXT" --hostname "p$NEXT" --auth-key "$RKEY" >/dev/null && echo "p$NEXT" >>"$E2E_TMP/nodes"; }
check "the watcher node registers" sim register w --hostname watcher --auth-key "$RKEY"
WTOK=$(cat "$E2E_TMP/w/token")
: >"$E2E_TMP/nodes"
for _ in 1 2 3 4 5 6 7 8; do newnode; done
check "eight peers registered" test "$(wc -l <"$E2E_TMP/nodes")" = 8
# Some peers hold streams (online), the others are offline.
declare -A SPID
hold() { "$SIM" stream --coord "$URL" --pin "$PIN" --state "$E2E_TMP/$1" --timeout 600 >"$E2E_TMP/$1.hold" 2>&1 & SPID[$1]=$!; track $!; }
unhold() {
	[ -n "${SPID[$1]:-}" ] || return 0
	kill "${SPID[$1]}" 2>/dev/null; wait "${SPID[$1]}" 2>/dev/null; untrack "${SPID[$1]}"; SPID[$1]=""
}
hold p1; hold p2; hold p3
RTOK=$(adm relays add fra https://relay.example.test:443 | tail -1)

alive() { grep -v '^#' "$E2E_TMP/nodes"; }
pick() {
	local a
	while [ "$(alive | wc -l)" -lt 3 ]; do newnode; done
	mapfile -t a < <(alive)
	echo "${a[RANDOM % ${#a[@]}]}"
}

# One random change while the watcher is away.
change() {
	local n
	n=$(pick)
	case $((RANDOM % 8)) in
	0) sim endpoints "$n" "192.0.2.$((RANDOM % 250 + 1)):$((RANDOM % 60000 + 1024))" >/dev/null ;;
	1) adm nodes rename "$n" "r$RANDOM" >/dev/null && sed -i "s/^$n\$/#$n/" "$E2E_TMP/nodes" ;;
	2) adm nodes delete "$n" >/dev/null && unhold "$n" && sed -i "s/^$n\$/#$n/" "$E2E_TMP/nodes" ;;
	3) adm nodes expire "$n" >/dev/null && unhold "$n" && sed -i "s/^$n\$/#$n/" "$E2E_TMP/nodes" ;;
	4) newnode ;;
	5) if [ -n "${SPID[$n]:-}" ]; then unhold "$n"; else hold "$n"; fi ;;
	6) adm relays add "x$RANDOM" "https://relay$RANDOM.example.test:443" >/dev/null ;;
	7) adm dns record add "h$RANDOM.lan" A "192.0.2.$((RANDOM % 250 + 1))" >/dev/null ;;
	esac
}

# round N [restart]: the watcher holds its stream until current, goes away, changes
# happen (and coord restarts), it resumes; then the same map from a fresh full.
round() {
	local r=$1 restart=${2:-} v e
	curl_stream "$E2E_TMP/w.$r.0" "/v1/map$( [ -f "$E2E_TMP/w.since" ] && cat "$E2E_TMP/w.since")" "$WTOK"
	wait_for 10 has_keepalive "$E2E_TMP/w.$r.0"
	curl_stop
	v=$(last_v "$E2E_TMP/w.$r.0")
	e=$(epoch_of "$E2E_TMP/w.1.0")
	for _ in $(seq 1 $((RANDOM % 6 + 4))); do change; done
	if [ -n "$restart" ]; then
		stop_coord_hard
		check "round $r: coord restarts on its port" start_coord
	fi
	curl_stream "$E2E_TMP/w.$r.1" "/v1/map?since=$v&epoch=$e" "$WTOK"
	check_within "round $r: the watcher's reconnect from v=$v is answered" 10 has_keepalive "$E2E_TMP/w.$r.1"
	curl_stop
	check "round $r: ... with a resume, not a full" grep -q '^{"type":"resume"' "$E2E_TMP/w.$r.1"
	echo "?since=$(last_v "$E2E_TMP/w.$r.1")&epoch=$e" >"$E2E_TMP/w.since"
	curl_stream "$E2E_TMP/full.$r" "/v1/map" "$WTOK"
	wait_for 10 has_keepalive "$E2E_TMP/full.$r"
	curl_stop
	"$NMSTATE" $(ls "$E2E_TMP"/w.*.[01] | sort -t. -k2,2n -k3,3n) | grep -v '^version' >"$E2E_TMP/resumed.$r"
	"$NMSTATE" "$E2E_TMP/full.$r" | grep -v '^version' >"$E2E_TMP/fresh.$r"
	if diff "$E2E_TMP/fresh.$r" "$E2E_TMP/resumed.$r" >"$E2E_TMP/diff.$r"; then
		ok "round $r: the resumed map equals a fresh full, field by field ($(grep -c '^peer' "$E2E_TMP/fresh.$r") peers)"
	else
		not_ok "round $r: the resumed map differs from a fresh full" "$E2E_TMP/diff.$r"
	fi
}

# The relay's admission stream: full, away, changes, resume; the key set equals a fresh full's.
relay_keys() {
	python3 - "$@" <<'EOF'
import json, sys
keys = set()
for path in sys.argv[1:]:
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        o = json.loads(line)
        t = o.get("type")
        if t == "full":
            keys = set(o["nodes"])
        elif t == "resume":
            keys -= set(o["remove"]); keys |= set(o["add"])
        elif t == "add":
            keys.add(o["node_key"])
        elif t == "remove":
            keys.discard(o["node_key"])
for k in sorted(keys):
    print(k)
EOF
}

round 1
round 2
round 3 restart
round 4

curl_stream "$E2E_TMP/relay.0" "/v1/relay/stream" "$RTOK"
wait_for 10 has_keepalive "$E2E_TMP/relay.0"
curl_stop
RV=$(last_v "$E2E_TMP/relay.0"); RE=$(epoch_of "$E2E_TMP/relay.0")
for _ in 1 2 3 4 5 6; do change; done
newnode
curl_stream "$E2E_TMP/relay.1" "/v1/relay/stream?since=$RV&epoch=$RE" "$RTOK"
check_within "the relay's reconnect is answered" 10 has_keepalive "$E2E_TMP/relay.1"
curl_stop
check "... with a resume" grep -q '^{"type":"resume"' "$E2E_TMP/relay.1"
curl_stream "$E2E_TMP/relay.full" "/v1/relay/stream" "$RTOK"
wait_for 10 has_keepalive "$E2E_TMP/relay.full"
curl_stop
relay_keys "$E2E_TMP/relay.0" "$E2E_TMP/relay.1" >"$E2E_TMP/relay.resumed"
relay_keys "$E2E_TMP/relay.full" >"$E2E_TMP/relay.fresh"
check "the relay's resumed key set equals a fresh full's ($(wc -l <"$E2E_TMP/relay.fresh") keys)" diff "$E2E_TMP/relay.fresh" "$E2E_TMP/relay.resumed"

# What cannot be resumed gets a full.
V=$(last_v "$E2E_TMP/full.4"); E=$(epoch_of "$E2E_TMP/full.4")
for q in "since=$V&epoch=ffffffffffffffff" "since=$((V + 1000))&epoch=$E" "since=x&epoch=$E" "since=1&since=2&epoch=$E"; do
	curl_stream "$E2E_TMP/bad" "/v1/map?$q" "$WTOK"
	wait_for 10 has_keepalive "$E2E_TMP/bad"
	curl_stop
	check "a reconnect with $q gets a full" grep -q '^{"type":"full"' "$E2E_TMP/bad"
done
check "coord counts the refusals" test "$(metric 'coord_netmap_resume_refused_total{why="epoch"}')" -ge 3 -a \
	"$(metric 'coord_netmap_resume_refused_total{why="future"}')" -ge 1
check "... and the resumes" test "$(metric 'coord_netmap_sent_total{kind="resume"}')" -ge 1

# After a restart, nodes that come back within the grace are not reported offline to
# peers that stayed (one online line each way would be O(N^2) at 10,000 nodes).
HELD=""
for n in "${!SPID[@]}"; do [ -n "${SPID[$n]}" ] && HELD="$HELD $n"; done
if [ -z "$HELD" ]; then
	newnode; n=$(tail -1 "$E2E_TMP/nodes"); hold "$n"; HELD=" $n"
	wait_for 10 has_keepalive "$E2E_TMP/$n.hold"
fi
curl_stream "$E2E_TMP/grace.0" "/v1/map" "$WTOK"
wait_for 10 has_keepalive "$E2E_TMP/grace.0"
curl_stop
GV=$(last_v "$E2E_TMP/grace.0")
ONLINE=$(grep -c '"online":true' "$E2E_TMP/grace.0")
stop_coord_hard
# Their simulators go while coord is down (as if the nodes had rebooted with it): no
# stream of theirs reaches the new coord before the new ones below.
for n in $HELD; do unhold "$n"; done
check "coord restarts once more" start_coord
curl_stream "$E2E_TMP/grace.1" "/v1/map?since=$GV&epoch=$E" "$WTOK"
for n in $HELD; do hold "$n"; done
held_back() { for n in $HELD; do has_keepalive "$E2E_TMP/$n.hold" || return 1; done; }
check_within "the peers that held streams reconnect ($HELD )" 15 held_back
# Current past their reconnects: a keepalive written after them.
KA=$(grep -c keepalive "$E2E_TMP/grace.1")
wait_for 10 bash -c "[ \$(grep -c keepalive '$E2E_TMP/grace.1') -gt $KA ]"
curl_stop
check "the peers online before the restart ($ONLINE) are not told offline meanwhile" bash -c "! grep -q '\"online\":false' '$E2E_TMP/grace.1'"
check "... and the resume after the restart holds no peer" bash -c "grep '^{\"type\":\"resume\"' '$E2E_TMP/grace.1' | grep -q '\"peers\":\[\]'"

# One that does not come back within the grace is told offline once it is over, to a
# node that holds its stream and to one that resumes later alike.
LEFT=$(echo $HELD | awk '{print $1}')
LID=$(grep -o '"self":{"id":[0-9]*' "$E2E_TMP/$LEFT.hold" | head -1 | grep -o '[0-9]*$')
GV=$(last_v "$E2E_TMP/grace.1")
stop_coord_hard
for n in $HELD; do unhold "$n"; done
GRACE=3s
check "coord restarts with a 3 s grace" start_coord
for n in $HELD; do [ "$n" = "$LEFT" ] || hold "$n"; done
curl_stream "$E2E_TMP/grace.2" "/v1/map?since=$GV&epoch=$E" "$WTOK"
check_within "the one that stayed away ($LEFT, id $LID) is told offline after the grace" 15 \
	grep -q "\"type\":\"online\",\"id\":$LID,\"online\":false" "$E2E_TMP/grace.2"
curl_stop
back_offline() {
	local n id
	for n in $HELD; do
		[ "$n" = "$LEFT" ] && continue
		id=$(grep -o '"self":{"id":[0-9]*' "$E2E_TMP/$n.hold" | head -1 | grep -o '[0-9]*$')
		grep -q "\"type\":\"online\",\"id\":$id,\"online\":false" "$E2E_TMP/grace.2" && return 0
	done
	return 1
}
check_fails "... and none of those that came back" back_offline
curl_stream "$E2E_TMP/grace.full" "/v1/map" "$WTOK"
wait_for 10 has_keepalive "$E2E_TMP/grace.full"
curl_stop
"$NMSTATE" "$E2E_TMP/grace.0" "$E2E_TMP/grace.1" "$E2E_TMP/grace.2" | grep -v '^version' >"$E2E_TMP/resumed.g"
"$NMSTATE" "$E2E_TMP/grace.full" | grep -v '^version' >"$E2E_TMP/fresh.g"
check "the map resumed across both restarts equals a fresh full" diff "$E2E_TMP/fresh.g" "$E2E_TMP/resumed.g"

finish
