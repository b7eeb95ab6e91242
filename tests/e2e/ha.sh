#!/usr/bin/env bash
# ha.sh - end-to-end, issue 11: Debian's PostgreSQL started by the test (its own data dir
# and socket under the test's temp dir, removed at the end) and three coord instances on
# it, on loopback. The store on a real server (test_store_pg); one TLS identity; nodes
# registered through different instances; a change made on one instance reaching streams
# held on each of the others within a second; two registrations racing for one name on
# two instances; unique addresses; kill -9 of an instance (its nodes go offline on the
# others, nothing is lost); PostgreSQL restarted under running instances (writes refused
# with 503 meanwhile, streams kept, caught up after); `coord status`; and `coord migrate`
# of an SQLite state, verified and then served with the same nodes and addresses. A
# blocklist source fetched by the jobs holder alone, its copy taken by the others from
# the store, one compiled version on every instance, fetched on by a new holder.
# Usage: tests/e2e/ha.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?usage: ha.sh BUILD_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../../scripts/lib/pg.sh"

COORD="$BUILD/coord/coord"
SIM="$BUILD/tests/tools/nodesim"
E2E_CLEANUPS="pg_stop"

pg_start "$E2E_TMP/pg" || { echo "cannot start PostgreSQL"; exit 1; }
check "PostgreSQL runs (its own data dir and socket)" psql -X -q "$PG_URI" -c 'SELECT 1'
check "the store passes its tests on this server" env MESHVPN_TEST_PG="$PG_URI" "$BUILD/tests/test_store_pg"
psql -X -q "$PG_URI" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' >/dev/null 2>&1

declare -A CPID CPORT CURL
# start_coord I: instance cI on the shared database, its own state dir and port.
start_coord() {
	local i=$1 dir="$E2E_TMP/c$1"
	"$COORD" serve --store "$PG_URI" --instance "c$i" --state "$dir" \
		--listen 127.0.0.1:${CPORT[$i]:-0} --metrics 127.0.0.1:0 --keepalive 1s \
		--ephemeral-timeout 3s --feed-keep 20 --blocklist-refresh 2s >"$E2E_TMP/c$i.out" 2>>"$E2E_TMP/c$i.log" &
	CPID[$i]=$!
	track "${CPID[$i]}"
	wait_for 15 grep -q "listening on 127.0.0.1:[0-9][0-9]*," "$E2E_TMP/c$i.out" || { cat "$E2E_TMP/c$i.log"; return 1; }
	CPORT[$i]=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\),.*/\1/p' "$E2E_TMP/c$i.out")
	CURL[$i]="https://127.0.0.1:${CPORT[$i]}"
	METRICS[$i]=$(ss -ltnp 2>/dev/null | grep "pid=${CPID[$i]}," | grep -o '127.0.0.1:[0-9]*' | grep -v ":${CPORT[$i]}\$" | head -1)
}
declare -A METRICS
kill9_coord() { kill -9 "${CPID[$1]}"; wait "${CPID[$1]}" 2>/dev/null; untrack "${CPID[$1]}"; }
adm() { local i=$1; shift; "$COORD" --state "$E2E_TMP/c$i" "$@"; }
pin_of() { grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/c$1.out" | head -1; }
sim() { local cmd=$1 i=$2 dir=$3; shift 3; "$SIM" "$cmd" --coord "${CURL[$i]}" --pin "$PIN" --state "$E2E_TMP/n-$dir" "$@"; }
declare -A SPID
stream() {  # stream NODE INSTANCE
	"$SIM" stream --coord "${CURL[$2]}" --pin "$PIN" --state "$E2E_TMP/n-$1" --timeout 300 \
		>"$E2E_TMP/$1.stream" 2>"$E2E_TMP/$1.stream.err" &
	SPID[$1]=$!
	track $!
}
has() { grep -q -- "$2" "$E2E_TMP/$1.stream"; }
names() { adm 1 nodes list --json | jq -r '.nodes[].name' | sort; }

check "instance c1 starts on PostgreSQL" start_coord 1
check "instance c2 starts on the same database" start_coord 2
check "instance c3 starts on the same database" start_coord 3
PIN=$(pin_of 1)
check "all three serve one TLS identity (one pin)" test "$(pin_of 2)" = "$PIN" -a "$(pin_of 3)" = "$PIN"
check "coord status lists the three instances" bash -c "'$COORD' status --state '$E2E_TMP/c1' | grep -c '^c[123] ' | grep -qx 3"
check "coord status --json: the store and the feed" bash -c "'$COORD' status --json --state '$E2E_TMP/c2' | jq -e '.store == \"postgresql\" and .database_ok and .instance == \"c2\"'"
check "exactly one instance runs the once-only jobs" bash -c "'$COORD' status --json --state '$E2E_TMP/c1' | jq -e '[.instances[] | select(.jobs != \"\")] | length == 1'"

# --- nodes through different instances ---
KEY=$(adm 1 keys create --reusable | tail -1)
check "a key made on c1 registers node a on c2" sim register 2 a --hostname alpha --auth-key "$KEY"
check "node b registers on c3 with the same key" sim register 3 b --hostname beta --auth-key "$KEY"
check "node c registers on c1" sim register 1 c --hostname gamma --auth-key "$KEY"
check_within "the key's uses are counted across instances (3)" 2 bash -c "'$COORD' keys list --json --state '$E2E_TMP/c2' | jq -e '.keys[0].uses == 3'"
stream a 1; stream b 2; stream c 3
check_within "a (on c1) sees b and c as peers" 10 bash -c "grep -q '\"name\":\"beta\"' '$E2E_TMP/a.stream' && grep -q '\"name\":\"gamma\"' '$E2E_TMP/a.stream'"
check_within "every instance sees a, b, c online" 10 bash -c "for i in 1 2 3; do '$COORD' nodes list --json --state '$E2E_TMP/c'\$i | jq -e '[.nodes[] | select(.online)] | length == 3' >/dev/null || exit 1; done"

# A change on one instance reaches streams on the others within a second.
t0=$(date +%s%N)
sim endpoints 2 b 192.0.2.22:41641 >/dev/null
check_within "b's endpoint posted on c2 reaches a on c1 within 1 s" 1 has a '"endpoints":\["192.0.2.22:41641"\]'
check_within "... and c on c3" 1 has c '"endpoints":\["192.0.2.22:41641"\]'
check "an admin rename on c3 reaches a on c1 within 1 s" bash -c "'$COORD' nodes rename gamma gamma2 --state '$E2E_TMP/c3' >/dev/null"
check_within "... (a hears gamma2)" 1 has a '"name":"gamma2"'
check "a pending node registered on c1 ..." sim register 1 p --hostname pending-one
stream p 1
check_within "... is approved on c2 and its stream on c1 says running" 2 bash -c "'$COORD' nodes approve pending-one --state '$E2E_TMP/c2' >/dev/null 2>&1; grep -q '\"state\":\"running\"' '$E2E_TMP/p.stream'"
check_within "b on c2 gets peer_added for it" 2 has b '"type":"peer_added","peer":{[^}]*"name":"pending-one"'
check "DNS policy set on c1 ..." adm 1 dns record add printer.home A 192.0.2.80
check_within "... reaches b on c2" 2 has b 'printer.home'
check "a relay added on c3 ..." bash -c "'$COORD' relays add fra https://127.0.0.1:9 --state '$E2E_TMP/c3' >/dev/null"
check_within "... is in a's relay map on c1" 2 has a '"name":"fra"'

# Two registrations racing for one name on two instances: two distinct names.
for i in $(seq 1 5); do
	sim register 1 r1-$i --hostname racer --auth-key "$KEY" >"$E2E_TMP/r1-$i.out" 2>&1 &
	p1=$!
	sim register 2 r2-$i --hostname racer --auth-key "$KEY" >"$E2E_TMP/r2-$i.out" 2>&1 &
	wait $p1 $!
done
racers_distinct() { [ "$(names | grep -c '^racer')" -eq 10 ] && [ "$(names | grep '^racer' | sort -u | wc -l)" -eq 10 ]; }
check "ten racing registrations all succeed" bash -c "! grep -L '\"state\":\"running\"' '$E2E_TMP'/r[12]-*.out | grep -q ."
check_within "... with ten distinct names (as c1 sees them)" 2 racers_distinct
check "every node holds a distinct address" bash -c "'$COORD' nodes list --json --state '$E2E_TMP/c3' | jq -r '.nodes[].ips[0]' | grep -v null | sort | uniq -d | grep -q . && exit 1 || exit 0"

# Two instances under one name would each take the other's changes for their own.
dup_refused() {
	timeout 40 "$COORD" serve --store "$PG_URI" --instance c1 --state "$E2E_TMP/dup" \
		--listen 127.0.0.1:0 >"$E2E_TMP/dup.out" 2>"$E2E_TMP/dup.log"
	local rc=$?
	[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "another coord instance runs under this name" "$E2E_TMP/dup.log"
}
check "a second instance under a running one's name refuses to start" dup_refused

# --- kill -9 of an instance ---
check "c2 is killed with -9" kill9_coord 2
check_within "b (its stream was on c2) goes offline on c1 (its beats stop)" 40 bash -c "'$COORD' nodes list --json --state '$E2E_TMP/c1' | jq -e '.nodes[] | select(.name == \"beta\") | .online == false'"
node_count() { [ "$(names | wc -l)" -eq "$1" ]; }
check "nothing is lost: every node is still there" node_count 14
stream b 3
check_within "b streams from c3 and is online again on c1" 10 bash -c "'$COORD' nodes list --json --state '$E2E_TMP/c1' | jq -e '.nodes[] | select(.name == \"beta\") | .online'"
check "c2 restarts on the same port and catches up" start_coord 2
check_within "c2 knows the nodes made while it was down" 10 bash -c "[ \$('$COORD' nodes list --json --state '$E2E_TMP/c2' | jq '.nodes | length') -eq 14 ]"

# --- PostgreSQL restarted under running instances ---
check "PostgreSQL is stopped (immediate)" pg_down
check_within "instances say the database is unreachable" 10 bash -c "'$COORD' status --json --state '$E2E_TMP/c1' | jq -e '.database_ok == false'"
check "a change meanwhile is refused with 503" bash -c "'$COORD' nodes rename beta beta2 --state '$E2E_TMP/c3' 2>&1 | grep -q 'HTTP 503'"
check "... streams stay open (a's stream process is alive)" kill -0 "${SPID[a]}"
check "PostgreSQL is started again" pg_up
check_within "every instance reaches it again" 15 bash -c "for i in 1 2 3; do '$COORD' status --json --state '$E2E_TMP/c'\$i | jq -e .database_ok >/dev/null || exit 1; done"
check_within "a change now works again and reaches a" 10 bash -c "'$COORD' nodes rename beta beta2 --state '$E2E_TMP/c3' >/dev/null 2>&1; grep -q '\"name\":\"beta2\"' '$E2E_TMP/a.stream'"
# --- an instance further behind than the kept feed (--feed-keep 20) reloads ---
holder() { "$COORD" status --json --state "$E2E_TMP/c1" | jq -r '.instances[] | select(.jobs != "") | .name'; }
X=3; [ "$(holder)" = c3 ] && X=2
sql() { psql -X -tA "$PG_URI" -c "$1"; }
HEAD0=$(sql 'SELECT seq FROM feed_head')
kill -STOP "${CPID[$X]}"
for i in $(seq 1 30); do sim endpoints 1 a "192.0.2.$i:41641" >/dev/null; done
adm 1 nodes delete racer-3 >/dev/null
sim register 1 late --hostname late --auth-key "$KEY" >/dev/null
check_within "the feed is pruned past where c$X stopped" 30 bash -c "[ \$(psql -X -tA '$PG_URI' -c 'SELECT MIN(seq) FROM changes') -gt $((HEAD0 + 1)) ]"
kill -CONT "${CPID[$X]}"
behind_caught_up() {
	local j; j=$("$COORD" nodes list --json --state "$E2E_TMP/c$X") || return 1
	jq -e '[.nodes[].name] | index("late") != null and index("racer-3") == null' <<<"$j" >/dev/null &&
		jq -e '.nodes[] | select(.name == "alpha") | .endpoints == ["192.0.2.30:41641"]' <<<"$j" >/dev/null
}
check_within "c$X reloads the whole tailnet and is current (a node added, one deleted, endpoints)" 15 behind_caught_up
check "... it says so in its log" grep -q "behind the kept change feed: reloading" "$E2E_TMP/c$X.log"

check "metrics: feed lag, store latency, retries, the job holder" bash -c "curl -s http://${METRICS[1]}/metrics | grep -q '^coord_feed_lag_changes ' && curl -s http://${METRICS[1]}/metrics | grep -q '^coord_store_seconds_total ' && curl -s http://${METRICS[1]}/metrics | grep -q '^coord_store_retries_total ' && curl -s http://${METRICS[1]}/metrics | grep -q '^coord_jobs_holder{instance=\"c1\"}'"

# --- blocklists: fetched once (the jobs holder), the others take the stored copy ---
BLF="$E2E_TMP/ha-hosts"
{ echo '0.0.0.0 ads1.example'; echo '0.0.0.0 ads2.example'; echo '||track.example^'; } >"$BLF"
holder_among() {  # holder_among I...: which of them holds the jobs (its own row says so)
	local i
	for i in "$@"; do
		"$COORD" status --json --state "$E2E_TMP/c$i" | jq -e --arg me "c$i" \
			'.instances[] | select(.name == $me and .jobs != "")' >/dev/null && { echo "$i"; return 0; }
	done
	return 1
}
metric() { curl -s "http://${METRICS[$1]}/metrics" | sed -n "s/^$2 //p"; }
blsrc() { adm "$1" dns show --json | jq -c --arg s "$BLF" '.blocklists[] | select(.source == $s) | [.version, .lines]'; }
blver() { adm "$1" dns show --json | jq -r .blocklist.version; }
blob_etag() {  # node a's blob at instance I: its ETag
	curl -sk -D - -o /dev/null -H "Authorization: Bearer $(cat "$E2E_TMP/n-a/token")" \
		"${CURL[$1]}/v1/dns/blocklist" | tr -d '\r' | sed -n 's/^etag: //ip'
}
same_on() {  # same_on FN I...: FN I prints one non-empty, non-zero answer for every I
	local fn=$1 first="" v i; shift
	for i in "$@"; do
		v=$("$fn" "$i")
		[ -n "$v" ] && [ "$v" != 0 ] && [ "$v" != null ] || return 1
		[ -z "$first" ] && first=$v
		[ "$v" = "$first" ] || return 1
	done
}
src_on() {  # src_on WANT I...: the source is at [version, lines] WANT on every I
	local want=$1 i; shift
	for i in "$@"; do [ "$(blsrc "$i")" = "$want" ] || return 1; done
}
fetched_by_only() {  # fetched_by_only H I...: H fetched, no other I did
	local h=$1 i; shift
	[ "$(metric "$h" coord_blocklist_fetches_total)" -ge 1 ] || return 1
	for i in "$@"; do [ "$i" = "$h" ] || [ "$(metric "$i" coord_blocklist_fetches_total)" = 0 ] || return 1; done
}
taken_by_others() {  # taken_by_others H N I...: every I but H took N copies
	local h=$1 n=$2 i; shift 2
	for i in "$@"; do [ "$i" = "$h" ] || [ "$(metric "$i" coord_blocklist_copies_taken_total)" = "$n" ] || return 1; done
}
H=$(holder_among 1 2 3)
check "one instance holds the jobs (c$H)" test -n "$H"
OTHER=$(( H % 3 + 1 ))
check "a blocklist file added on a non-holder (c$OTHER)" adm "$OTHER" dns blocklist add "$BLF"
check_within "every instance has its copy (version 1, 3 lines)" 10 src_on '[1,3]' 1 2 3
check "only the jobs holder fetched it" fetched_by_only "$H" 1 2 3
check "the holder stored one copy" test "$(metric "$H" coord_blocklist_copies_stored_total)" = 1
check "the two others took it from the store" taken_by_others "$H" 1 1 2 3
check_within "every instance serves one compiled version" 10 same_on blver 1 2 3
check_within "node a gets the same list (ETag) from each instance" 5 same_on blob_etag 1 2 3
echo '0.0.0.0 ads3.example' >>"$BLF"
check_within "the file changes: version 2 on every instance" 15 src_on '[2,4]' 1 2 3
fetched_then_taken() { fetched_by_only "$H" 1 2 3 && taken_by_others "$H" 2 1 2 3; }
check "... fetched by the holder alone, taken by the others" fetched_then_taken
check_within "... compiled to one version again" 10 same_on blver 1 2 3
V2=$(blver "$H")
check "the jobs holder c$H is killed with -9" kill9_coord "$H"
ALIVE=$(for i in 1 2 3; do [ "$i" = "$H" ] || echo "$i"; done)
check_within "another instance takes the jobs" 40 holder_among $ALIVE
H2=$(holder_among $ALIVE)
echo '0.0.0.0 ads4.example' >>"$BLF"
check_within "the new holder (c$H2) fetches on: version 3 on both live instances" 15 src_on '[3,5]' $ALIVE
check "... fetched by c$H2 alone" fetched_by_only "$H2" $ALIVE
new_version() { same_on blver $ALIVE && [ "$(blver "$H2")" != "$V2" ]; }
check_within "... one new compiled version on both" 10 new_version

for i in 1 2 3; do kill "${CPID[$i]}" 2>/dev/null; wait "${CPID[$i]}" 2>/dev/null; untrack "${CPID[$i]}"; done

# --- migrate an SQLite state ---
SQ="$E2E_TMP/sqlite"
"$COORD" serve --state "$SQ" --listen 127.0.0.1:0 >"$E2E_TMP/sq.out" 2>"$E2E_TMP/sq.log" &
SQPID=$!; track $SQPID
wait_for 10 grep -q "listening on" "$E2E_TMP/sq.out"
SQURL="https://127.0.0.1:$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\),.*/\1/p' "$E2E_TMP/sq.out")"
SQPIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/sq.out" | head -1)
K2=$("$COORD" keys create --reusable --state "$SQ" | tail -1)
for h in m1 m2 m3; do "$SIM" register --coord "$SQURL" --pin "$SQPIN" --state "$E2E_TMP/s-$h" --hostname $h --auth-key "$K2" >/dev/null; done
"$COORD" dns upstream add 192.0.2.53 --state "$SQ" >/dev/null
"$COORD" nodes list --json --state "$SQ" | jq -c '[.nodes[] | {name, ips}]' >"$E2E_TMP/before.json"
kill "$SQPID"; wait "$SQPID" 2>/dev/null; untrack "$SQPID"
createdb_new() { runuser -u postgres -- "$PG_BIN/createdb" -h "$PG_DIR/sock" -p 5432 -U postgres meshvpn2; }
check "a second, empty database" createdb_new
URI2="postgresql:///meshvpn2?host=$PG_DIR/sock&port=5432&user=postgres"
check "coord migrate copies and verifies every table" bash -c "'$COORD' migrate --from '$SQ' --to '$URI2' >'$E2E_TMP/migrate.out' 2>&1 && ! grep -q MISMATCH '$E2E_TMP/migrate.out' && grep -q 'verify nodes .* ok' '$E2E_TMP/migrate.out'"
check "migrating into a database that is not empty is refused" bash -c "! '$COORD' migrate --from '$SQ' --to '$URI2' 2>&1 | grep -q '^migrated'"
"$COORD" serve --store "$URI2" --instance m --state "$SQ" --listen 127.0.0.1:0 >"$E2E_TMP/m.out" 2>"$E2E_TMP/m.log" &
MPID=$!; track $MPID
wait_for 10 grep -q "listening on" "$E2E_TMP/m.out"
check "the migrated state serves the same nodes with the same addresses" bash -c "'$COORD' nodes list --json --state '$SQ' | jq -c '[.nodes[] | {name, ips}]' | cmp - '$E2E_TMP/before.json'"
check "... the same DNS policy" bash -c "'$COORD' dns show --json --state '$SQ' | grep -q 192.0.2.53"
check "... and the same pin (the state dir's certificate went into the store)" test "$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/m.out" | head -1)" = "$SQPIN"
kill "$MPID"; wait "$MPID" 2>/dev/null; untrack "$MPID"

finish
