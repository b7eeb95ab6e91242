#!/usr/bin/env bash
# coord.sh - end-to-end: a real coord process on loopback, real clients over TLS:
# register with and without keys, approval pushed on the open stream, reject, delete,
# expire, key reuse and replay refused, several relays and their relay map (STUN
# addresses), relays' admission stream, the DNS policy on the stream, kill -9 + restart.
# Issue 12: names that read as ids, ambiguous names, pending nodes without name or
# address, what a pending node is sent, keys revoked by prefix, home_relay, overflowing
# expiries, the state dir's mode. Issue 10: blocklists from a file and over HTTP (a
# python3 http.server on loopback), their counts, versions, 304s, a failing source, the
# blob per tag combination as nodes fetch it. Issue 13: a stream asking for compression
# gets the same netmap in fewer bytes.
# Usage: tests/e2e/coord.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?usage: coord.sh BUILD_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"

COORD="$BUILD/coord/coord"
SIM="$BUILD/tests/tools/nodesim"
STATE="$E2E_TMP/state"
COORD_PID=""

start_coord() {
	"$COORD" serve --state "$STATE" --listen 127.0.0.1:${PORT:-0} --metrics 127.0.0.1:0 \
		--ephemeral-timeout 2s --keepalive 1s --blocklist-refresh 1s >"$E2E_TMP/coord.out" 2>"$E2E_TMP/coord.log" &
	COORD_PID=$!
	track "$COORD_PID"
	wait_for 10 grep -q "listening on 127.0.0.1:[0-9][0-9]*," "$E2E_TMP/coord.out" || { cat "$E2E_TMP/coord.out" "$E2E_TMP/coord.log"; return 1; }
	PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\),.*/\1/p' "$E2E_TMP/coord.out")
	PIN=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/coord.out" | head -1)
	URL="https://127.0.0.1:$PORT"
}

stop_coord_hard() {
	kill -9 "$COORD_PID"
	wait "$COORD_PID" 2>/dev/null
	untrack "$COORD_PID"
}

adm() { "$COORD" --state "$STATE" "$@"; }
sim() { local cmd=$1 dir=$2; shift 2; "$SIM" "$cmd" --coord "$URL" --pin "$PIN" --state "$E2E_TMP/$dir" "$@"; }

# stream NAME: holds node NAME's netmap stream in the background, lines to NAME.stream
declare -A STREAM_PID
stream() {
	# Not through sim(): $! must be nodesim itself, so that stop_stream really ends it.
	"$SIM" stream --coord "$URL" --pin "$PIN" --state "$E2E_TMP/$1" --timeout 300 \
		>"$E2E_TMP/$1.stream" 2>"$E2E_TMP/$1.stream.err" &
	STREAM_PID[$1]=$!
	track $!
}
stop_stream() { kill "${STREAM_PID[$1]}" 2>/dev/null; wait "${STREAM_PID[$1]}" 2>/dev/null; untrack "${STREAM_PID[$1]}"; }
has() { grep -q -- "$2" "$E2E_TMP/$1.stream"; }
hasnt() { ! grep -q -- "$2" "$E2E_TMP/$1.stream"; }

check "coord starts and prints its certificate pin" start_coord
[ -n "${PIN:-}" ] || { echo "no pin; cannot continue"; cat "$E2E_TMP/coord.log"; finish; exit 1; }
check "admin socket is 0600" test "$(stat -c %a "$STATE/admin.sock")" = 600
check "store file is 0600" test "$(stat -c %a "$STATE/coord.db")" = 600
check "coord pin prints the same pin" test "$(adm pin)" = "$PIN"

# --- auth keys ---
KEY1=$(adm keys create | tail -1)
check "keys create prints the key alone on the last line" grep -q '^mvpn-auth-[0-9a-f]\{48\}$' <<<"$KEY1"
check "keys create --json gives {key: ...}" bash -c "'$COORD' keys create --json --state '$STATE' | grep -q '\"key\": \"mvpn-auth-'"
check "options may stand before the subcommand" adm keys list
check "a relative --state works" bash -c "cd '$E2E_TMP' && '$COORD' keys list --state state"
check "options may stand after the subcommand" "$COORD" keys list --state "$STATE"

check "node a registers with a key and runs" bash -c "'$SIM' register --coord $URL --pin $PIN --state $E2E_TMP/a --hostname Alpha --auth-key $KEY1 | grep -q '\"state\":\"running\"'"
check "a single-use key is refused the second time" bash -c "'$SIM' register --coord $URL --pin $PIN --state $E2E_TMP/x --hostname x --auth-key $KEY1 | grep -q 'already used'"
check "an unknown key is refused" bash -c "'$SIM' register --coord $URL --pin $PIN --state $E2E_TMP/y --hostname y --auth-key mvpn-auth-000000000000000000000000000000000000000000000000 | grep -q '^401'"
check "the key is listed as used" bash -c "'$COORD' keys list --state '$STATE' --json | grep -q '\"uses\": 1'"
RKEY=$(adm keys create --reusable | tail -1)
check "node b registers with a reusable key" sim register b --hostname beta --auth-key "$RKEY"
check "node c registers with the same reusable key" sim register c --hostname gamma --auth-key "$RKEY"
check "hostname is sanitised to a DNS label" bash -c "'$COORD' nodes list --state '$STATE' | grep -q ' alpha '"

# --- streams and approval ---
stream a; stream b
check_within "a gets its full netmap with b as a peer" 10 has a '"name":"beta"'
check "a's self state is running" has a '"state":"running"'

check "node p registers without a key and waits for approval" bash -c "'$SIM' register --coord $URL --pin $PIN --state $E2E_TMP/p --hostname pending-one | grep -q '\"state\":\"needs-approval\"'"
check "the answer names the approve command" bash -c "grep -q 'coord nodes approve pending-one' <<<\"\$('$SIM' register --coord $URL --pin $PIN --state $E2E_TMP/p --hostname pending-one)\""
stream p
check_within "a pending node's stream says needs-approval" 10 has p '"state":"needs-approval"'
check "a pending node's netmap has no peers" has p '"peers":\[\]'
check "others do not see the pending node" hasnt a 'pending-one'
check "relays/list: pending shown in nodes list" bash -c "'$COORD' nodes list --state '$STATE' | grep pending-one | grep -q needs-approval"
check "a pending node's netmap has no relay map and no DNS" bash -c "! grep -q '\"relays\"\\|\"dns\"\\|\"domain\"' '$E2E_TMP/p.stream'"
check "a pending node holds no address" bash -c "'$COORD' nodes list --state '$STATE' | awk '\$2 == \"pending-one\" && \$3 == \"-\" && \$4 == \"-\"' | grep -q ."
if command -v curl >/dev/null; then
	check "a pending node cannot post endpoints (403)" bash -c "curl -sk -o /dev/null -w '%{http_code}' -X POST -H \"Authorization: Bearer \$(cat '$E2E_TMP/p/token')\" -d '{\"endpoints\":[\"192.0.2.9:1\"]}' '$URL/v1/endpoints' | grep -q 403"
fi
# A pending "1" (no key needed) must not capture commands about node 1.
idof() { grep -o '"id":[0-9]*' | head -1 | cut -d: -f2; }
ONE=$(sim register one --hostname 1 | idof)
check "a hostname that reads as an id asks for node-1" bash -c "'$COORD' nodes list --state '$STATE' | grep -q ' node-1 .*needs-approval'"
check "nodes show 1 is node id 1, not the pending '1'" bash -c "'$COORD' nodes show 1 --state '$STATE' | grep -q '\"name\": \"alpha\"'"
# Squatters: a pending "laptop" takes no name; two of them make the name ambiguous.
SQ1=$(sim register sq1 --hostname laptop | idof)
SQ2=$(sim register sq2 --hostname laptop | idof)
check "a name two pending nodes asked for is refused, listing them" bash -c "'$COORD' nodes approve laptop --state '$STATE' 2>&1 | grep -q \"could be any of 2 nodes: id [0-9]* (needs-approval, asked for 'laptop'), id\""
check "the real laptop gets 'laptop' whatever pending nodes asked for" bash -c "'$SIM' register --coord $URL --pin $PIN --state $E2E_TMP/laptop --hostname laptop --auth-key $RKEY | grep -q '\"name\":\"laptop\"'"
check "nodes show laptop is the real one" bash -c "'$COORD' nodes show laptop --state '$STATE' | grep -q '\"state\": \"running\"'"
check "a squatter approved by id gets laptop-2" bash -c "'$COORD' nodes approve $SQ1 --state '$STATE' && '$COORD' nodes show $SQ1 --state '$STATE' | grep -q '\"name\": \"laptop-2\"'"
check "pending squatters are deleted by id" bash -c "'$COORD' nodes delete $ONE --state '$STATE' && '$COORD' nodes delete $SQ1 --state '$STATE' && '$COORD' nodes delete $SQ2 --state '$STATE'"
check "... and gone" bash -c "! '$COORD' nodes list --state '$STATE' | grep -q 'node-1\\|laptop-2'"
check "approve by name" adm nodes approve pending-one
check "approval gives the pending node its address" bash -c "'$COORD' nodes show pending-one --state '$STATE' | grep -q '\"100\\.'"
check_within "approval arrives on the pending node's open stream" 10 has p '"state":"running"'
check_within "the approved node now sees peers" 10 has p '"name":"alpha"'
check_within "others get peer_added for it" 10 has a '"type":"peer_added","peer":{[^}]*"name":"pending-one"'

# --- endpoints ---
check "b posts endpoints" sim endpoints b 192.0.2.10:41641 "[2001:db8::1]:41641"
check_within "a receives b's endpoints" 10 has a '"endpoints":\["192.0.2.10:41641","\[2001:db8::1\]:41641"\]'
check_fails "a bad endpoint is refused" sim endpoints b not-an-endpoint
check_within "online state of b is reported" 10 has a '"online":true'

# --- rename ---
check "rename a node" adm nodes rename beta bravo
check_within "peers see the new name" 10 has a '"type":"peer_changed","peer":{[^}]*"name":"bravo"'
check_fails "rename to a taken name is refused" adm nodes rename bravo alpha
check_fails "rename to a non-label is refused" adm nodes rename bravo "Not A Label"

# --- reject ---
sim register r --hostname rogue >/dev/null
stream r
check_within "rogue is pending" 10 has r needs-approval
check "reject rogue" adm nodes reject rogue
check_within "rogue's stream is told it is gone" 10 has r '"type":"gone","reason":"rejected"'
check "rogue re-registering is refused (403)" bash -c "'$SIM' register --coord $URL --pin $PIN --state $E2E_TMP/r --hostname rogue | grep -q '^403'"
check "nobody ever saw rogue" hasnt a rogue

# --- replay ---
NODESIM_REPLAY="$E2E_TMP/replay.json" sim register q --hostname quebec --auth-key "$RKEY" >/dev/null
check "a replayed registration is refused (401)" bash -c "NODESIM_REPLAY='$E2E_TMP/replay.json' '$SIM' replay --coord $URL --pin $PIN --state $E2E_TMP/q | grep -q '^401'"

# --- delete ---
stream c
check_within "c gets its netmap" 10 has c '"type":"full"'
check "delete c by id" adm nodes delete "$("$COORD" nodes list --state "$STATE" | awk '$2 == "gamma" {print $1}')"
check_within "peers get peer_removed for c" 10 has a '"type":"peer_removed"'
check_within "c's stream is told it is gone" 10 has c '"reason":"deleted"'
check_fails "c's token no longer works" sim endpoints c 192.0.2.1:1

# --- expire ---
check "expire bravo" adm nodes expire bravo
check_within "bravo's stream says expired" 10 has b '"state":"expired"'
check "nodes list shows bravo expired" bash -c "'$COORD' nodes list --state '$STATE' | grep bravo | grep -q expired"
check "an expired node re-registers with a key and runs again" bash -c "'$SIM' register --coord $URL --pin $PIN --state $E2E_TMP/b --hostname beta --auth-key $RKEY | grep -q '\"state\":\"running\"'"
check_within "bravo's stream gets running again" 10 bash -c "tail -1 '$E2E_TMP/b.stream' | grep -q '\"state\":\"running\"'"
check "bravo kept its name" bash -c "'$COORD' nodes list --state '$STATE' | grep -q bravo"

# --- relays ---
RTOK=$(adm relays add fra https://relay.example.test:443 | tail -1)
check "relays add prints the token alone on the last line" grep -q '^mvpn-relay-[0-9a-f]\{48\}$' <<<"$RTOK"
check_fails "a relay with a bad URL is refused" adm relays add bad ftp://x
check_within "nodes get the new relay map" 10 has a '"type":"relays"'
check_within "the relay map's STUN address defaults to the URL's host, port 3478" 10 \
	has a '"name":"fra","url":"https://relay.example.test:443","pin":"","stun":"relay.example.test:3478"'
RTOK2=$(adm relays add ams https://relay2.example.test --stun 198.51.100.7:3479 | tail -1)
check "relays add --stun prints a token too" grep -q '^mvpn-relay-[0-9a-f]\{48\}$' <<<"$RTOK2"
check "relays add --stun with a host name and an IPv6 URL" adm relays add nyc "https://[2001:db8::5]:8443" --stun stun.example.test:3480
check "relays add with an IPv6 URL and no --stun" adm relays add sin "https://[2001:db8::9]"
check_fails "a bad --stun is refused" adm relays add bad https://bad.example.test --stun bad.example.test
check_fails "a --stun with an unbracketed IPv6 address is refused" adm relays add bad https://bad.example.test --stun 2001:db8::1:3478
check_within "the relay map carries an explicit STUN address" 10 has a '"name":"ams",[^}]*"stun":"198.51.100.7:3479"'
check_within "the relay map brackets an IPv6 URL host" 10 has a '"name":"sin",[^}]*"stun":"\[2001:db8::9\]:3478"'
check_within "every relay is in the last relay map, in order" 10 bash -c \
	"grep '\"type\":\"relays\"' '$E2E_TMP/a.stream' | tail -1 | grep -q '\"name\":\"fra\".*\"name\":\"ams\".*\"name\":\"nyc\".*\"name\":\"sin\"'"
check "relays list shows every relay with its STUN address" bash -c "'$COORD' relays list --state '$STATE' >'$E2E_TMP/relays.txt' && grep -q 'fra .*relay.example.test:3478' '$E2E_TMP/relays.txt' && grep -q 'ams .*198.51.100.7:3479' '$E2E_TMP/relays.txt' && grep -q 'nyc .*stun.example.test:3480' '$E2E_TMP/relays.txt' && grep -q 'sin .*\[2001:db8::9\]:3478' '$E2E_TMP/relays.txt' && test \$(grep -c example.test '$E2E_TMP/relays.txt') = 3"
check "relays list --json has stun" bash -c "'$COORD' relays list --json --state '$STATE' | grep -q '\"stun\": \"198.51.100.7:3479\"'"
check "a node's netmap from the admin API lists the relays with stun" bash -c "'$COORD' nodes netmap alpha --state '$STATE' | grep -q '\"stun\": \"stun.example.test:3480\"'"
if command -v curl >/dev/null; then
	curl -sk -N -H "Authorization: Bearer $RTOK" "$URL/v1/relay/stream" >"$E2E_TMP/relay.stream" 2>/dev/null &
	track $!
	AKEY=$(grep -o '"node_key":"[^"]*"' "$E2E_TMP/p.stream" | head -1 | cut -d'"' -f4)
	check_within "the relay stream lists approved node keys" 10 grep -q '"type":"full","nodes":\[' "$E2E_TMP/relay.stream"
	sim register z --hostname zulu >/dev/null
	ZKEY=$(adm nodes show zulu | grep -o '"node_key": "[^"]*"' | cut -d'"' -f4)
	check "a pending node's key is not admitted by relays" bash -c "! grep -qF '$ZKEY' '$E2E_TMP/relay.stream'"
	adm nodes approve zulu >/dev/null
	check_within "approval adds its key to the relay stream" 10 grep -qF "\"type\":\"add\",\"node_key\":\"$ZKEY\"" "$E2E_TMP/relay.stream"
	check "an unknown relay token is refused" bash -c "curl -sk -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer mvpn-relay-00' '$URL/v1/relay/stream' | grep -q 401"
	check "the relay reports its pin" bash -c "curl -sk -X POST -H 'Authorization: Bearer $RTOK' -d '{\"pin\":\"$PIN\"}' '$URL/v1/relay/pin' | grep -q ok"
	check "relays list shows the pin" bash -c "'$COORD' relays list --state '$STATE' | grep fra | grep -q sha256"
	check "the relay reports its STUN port with its pin" bash -c "curl -sk -X POST -H 'Authorization: Bearer $RTOK' -d '{\"pin\":\"$PIN\",\"stun_port\":3490}' '$URL/v1/relay/pin' | grep -q ok"
	check_within "a reported STUN port moves the derived address" 10 has a '"name":"fra",[^}]*"stun":"relay.example.test:3490"'
	check "a relay with --stun reports a port too" bash -c "curl -sk -X POST -H 'Authorization: Bearer $RTOK2' -d '{\"pin\":\"$PIN\",\"stun_port\":3491}' '$URL/v1/relay/pin' | grep -q ok"
	check "... and its explicit --stun stays" bash -c "'$COORD' relays list --state '$STATE' | grep ams | grep -q '198.51.100.7:3479'"
	ATOK=$(cat "$E2E_TMP/a/token")
	check "home_relay must name a relay of the relay map" bash -c "curl -sk -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer $ATOK' -d '{\"endpoints\":[],\"home_relay\":\"\\\"><x\"}' '$URL/v1/endpoints' | grep -q 400"
	check "a home_relay of the relay map is taken" bash -c "curl -sk -X POST -H 'Authorization: Bearer $ATOK' -d '{\"endpoints\":[],\"home_relay\":\"fra\"}' '$URL/v1/endpoints' | grep -q ok"
	check "a bad stun_port gets 400" bash -c "curl -sk -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer $RTOK' -d '{\"pin\":\"$PIN\",\"stun_port\":70000}' '$URL/v1/relay/pin' | grep -q 400"

	# --- hostile input ---
	check "malformed JSON gets 400" bash -c "curl -sk -o /dev/null -w '%{http_code}' -X POST -d '{not json' '$URL/v1/register' | grep -q 400"
	head -c 2000000 /dev/zero | tr '\0' 'a' >"$E2E_TMP/big"
	check "an oversized body gets 413" bash -c "curl -sk -o /dev/null -w '%{http_code}' -X POST --data-binary @'$E2E_TMP/big' '$URL/v1/register' | grep -q 413"
	check "an unknown route gets 404" bash -c "curl -sk -o /dev/null -w '%{http_code}' '$URL/nope' | grep -q 404"
	check "admin API over HTTPS needs an API key" bash -c "curl -sk -o /dev/null -w '%{http_code}' '$URL/v1/admin/nodes' | grep -q 401"
	APIKEY=$(adm apikeys create | tail -1)
	check "admin CLI over HTTPS with an API key" bash -c "'$COORD' nodes list --server '$URL' --pin '$PIN' --api-key '$APIKEY' | grep -q alpha"
	check "dns over --server with an API key" bash -c "'$COORD' dns block add srv.example --server '$URL' --pin '$PIN' --api-key '$APIKEY' && '$COORD' dns show --json --server '$URL' --pin '$PIN' --api-key '$APIKEY' | grep -q srv.example"
	APIKEY2=$(adm apikeys create | tail -1)
	P2=$(sed 's/^mvpn-api-//' <<<"$APIKEY2" | cut -c1-8)
	check "an API key is revoked by its prefix, and only it" bash -c "'$COORD' apikeys revoke $P2 --state '$STATE' | grep -q 'API key 2 revoked'"
	check "... the other key still works" bash -c "'$COORD' nodes list --server '$URL' --pin '$PIN' --api-key '$APIKEY' | grep -q alpha"
	check "... the revoked one does not" bash -c "! '$COORD' nodes list --server '$URL' --pin '$PIN' --api-key '$APIKEY2' 2>/dev/null"
	check "a prefix shorter than 6 is not a key" bash -c "'$COORD' apikeys revoke abc --state '$STATE' 2>&1 | grep -q \"no API key matches 'abc'\""
	MPORT=$(ss -ltnp 2>/dev/null | grep "pid=$COORD_PID," | grep -o '127.0.0.1:[0-9]*' | grep -v ":$PORT\$" | head -1)
	check "metrics are served" bash -c "curl -s 'http://$MPORT/metrics' | grep -q 'coord_nodes{state=\"running\"}'"
fi
# Garbage and a silent connection on the TLS port; coord keeps serving everyone.
exec 3<>/dev/tcp/127.0.0.1/"$PORT"; printf 'GARBAGE\r\n\r\n\x16\x03\x01\x00\xff' >&3
exec 4<>/dev/tcp/127.0.0.1/"$PORT"
check "garbage and idle connections do not stop registrations" sim register g --hostname golf --auth-key "$RKEY"
exec 3>&- 4>&-
check_fails "a wrong pin is refused by the client" "$SIM" register --coord "$URL" --pin sha256:0000000000000000000000000000000000000000000000000000000000000000 --state "$E2E_TMP/w" --hostname w

# --- ephemeral ---
EKEY=$(adm keys create --ephemeral --reusable | tail -1)
sim register e --hostname eph --auth-key "$EKEY" >/dev/null
stream e
check_within "the ephemeral node is online" 10 has e '"type":"full"'
stop_stream e
check_within "an ephemeral node is removed after its stream closes" 15 bash -c "! '$COORD' nodes list --state '$STATE' | grep -q ' eph '"

# --- CLI contract ---
check "an auth key expiry that would overflow is refused" bash -c "'$COORD' keys create --expiry 9223372036854775807s --state '$STATE' 2>&1 | grep -q 'too far'"
check "usage errors exit 2" bash -c "'$COORD' nodes frobnicate --state '$STATE'; test \$? = 2"
check "unknown node exits 1 with a message" bash -c "'$COORD' nodes approve nosuch --state '$STATE' 2>&1; test \$? = 1"
check "no server for a state dir exits 1 and says how to start one" bash -c "'$COORD' nodes list --state /nonexistent 2>&1 | grep -q 'coord serve'"

# --- DNS policy (issue 10): each verb, refusals, a change on the open stream within 1 s ---
check "dns domain" adm dns domain corp.example
check_within "a domain change reaches a streaming node within 1 s" 1 has a '"type":"dns","dns":{"domain":"corp.example"'
check "dns upstream add (default port)" adm dns upstream add 192.0.2.53
check "dns upstream add tls://" adm dns upstream add 'tls://[2001:db8::53]#dns.example'
check "dns route add" adm dns route add service.consul 127.0.0.1:8600
check "dns blocklist add URL --tag" adm dns blocklist add https://127.0.0.1:9/ads.txt --tag tag:kids
check "dns blocklist add FILE" adm dns blocklist add /var/lib/lists/hosts
check "dns allow DOMAIN" adm dns allow ok.example
check "dns block add DOMAIN" adm dns block add ads.example
check "dns record add" adm dns record add nas.home A 192.0.2.9
check "dns blocking-mode" adm dns blocking-mode nxdomain
check "show --json has the canonical upstreams" bash -c "'$COORD' dns show --json --state '$STATE' | grep -q '\"upstream\": \"tls://\[2001:db8::53\]:853#dns.example\"'"
check "show --json has everything" bash -c "'$COORD' dns show --json --state '$STATE' >'$E2E_TMP/dns.json' && grep -q '192.0.2.53:53' '$E2E_TMP/dns.json' && grep -q service.consul '$E2E_TMP/dns.json' && grep -q '\"tag\": \"tag:kids\"' '$E2E_TMP/dns.json' && grep -q '\"unusable\": 0' '$E2E_TMP/dns.json' && grep -q /var/lib/lists/hosts '$E2E_TMP/dns.json' && grep -q ok.example '$E2E_TMP/dns.json' && grep -q ads.example '$E2E_TMP/dns.json' && grep -q nas.home '$E2E_TMP/dns.json' && grep -q '\"blocking_mode\": \"nxdomain\"' '$E2E_TMP/dns.json'"
check "dns show prints tables" bash -c "'$COORD' dns show --state '$STATE' | grep -q 'service.consul  127.0.0.1:8600'"
check_within "the last dns delta carries the whole policy" 1 bash -c "grep '\"type\":\"dns\"' '$E2E_TMP/a.stream' | tail -1 | grep -q '\"blocking_mode\":\"nxdomain\".*\"block\":\[[^]]*\"ads.example\"'"
check "dns record remove" adm dns record remove nas.home A 192.0.2.9
check_within "a removal reaches the stream within 1 s" 1 bash -c "grep '\"type\":\"dns\"' '$E2E_TMP/a.stream' | tail -1 | grep -q '\"records\":\[\]'"
check "dns upstream remove by another spelling" adm dns upstream remove 192.0.2.53:53
check "a bad upstream exits 1 and says why" bash -c "'$COORD' dns upstream add 2001:db8::1 --state '$STATE' 2>&1 | grep -q 'in brackets'; test \${PIPESTATUS[0]} = 1"
check "a bad record value exits 1" bash -c "'$COORD' dns record add x AAAA 192.0.2.1 --state '$STATE' 2>&1 | grep -q 'IPv6'"
check_fails "a relative blocklist path is refused" adm dns blocklist add lists/hosts
check_fails "a bad tag is refused" adm dns block add x.example --tag kids
check_fails "removing what is not there fails" adm dns allow remove nothere.example
check "a wrong verb exits 2" bash -c "'$COORD' dns upstream frob 192.0.2.1 --state '$STATE'; test \$? = 2"
check "--tag on an upstream exits 2" bash -c "'$COORD' dns upstream add 192.0.2.1 --tag tag:x --state '$STATE'; test \$? = 2"
check "a pending node's stream has no dns" bash -c "! grep -q '\"dns\"' '$E2E_TMP/r.stream'"
adm dns show --json >"$E2E_TMP/dns.json"

# --- kill -9 and restart: nothing acknowledged is lost ---
adm nodes list --json >"$E2E_TMP/before.json"
stop_coord_hard
chmod 755 "$STATE"
check "coord restarts on the same state dir" start_coord
check "a loosened state dir is 0700 again" test "$(stat -c %a "$STATE")" = 700
adm nodes list --json >"$E2E_TMP/after.json"
strip() { grep -E '"(name|id|ips|state)"|100\.|fd' "$1" | grep -v online; }
check "every node, name, address and state survives kill -9" diff <(strip "$E2E_TMP/before.json") <(strip "$E2E_TMP/after.json")
adm dns show --json >"$E2E_TMP/dns.after" 2>&1
check "the DNS policy survives kill -9" diff "$E2E_TMP/dns.json" "$E2E_TMP/dns.after"
check "relays and their STUN addresses survive kill -9" bash -c "'$COORD' relays list --state '$STATE' | grep ams | grep -q '198.51.100.7:3479'"
check "auth keys survive (the used one stays used)" bash -c "'$SIM' register --coord $URL --pin $PIN --state $E2E_TMP/x2 --hostname x2 --auth-key $KEY1 | grep -q 'already used'"
stop_stream a
stream a
check_within "nodes resume their streams with the same tokens" 10 has a '"name":"bravo"'
check "a second coord on the same state dir is refused" bash -c "! '$COORD' serve --state '$STATE' --listen 127.0.0.1:0 2>&1 | grep -q listening"

# --- compression (issue 13): z frames give the same netmap as plain lines, in fewer bytes ---
if command -v curl >/dev/null; then
	MPORT=$(ss -ltnp 2>/dev/null | grep "pid=$COORD_PID," | grep -o '127.0.0.1:[0-9]*' | grep -v ":$PORT\$" | head -1)
	metric() { curl -s "http://$MPORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
	sent() { SENT=$(metric coord_netmap_bytes_sent_total); UNPACKED=$(metric coord_netmap_bytes_uncompressed_total); }
	sent; S0=$SENT U0=$UNPACKED
	sim stream b --lines 1 --timeout 10 | head -1 >"$E2E_TMP/b.plain"
	sent; S1=$SENT U1=$UNPACKED
	sim stream b --lines 1 --timeout 10 --compress | head -1 >"$E2E_TMP/b.z"
	sent; S2=$SENT U2=$UNPACKED
	check "the full netmap is big enough to be packed (2 KiB)" test "$(wc -c <"$E2E_TMP/b.plain")" -ge 2049
	# last_seen is the second a stream opened, "v" the version then: the two were opened apart.
	seen() { sed -E 's/"last_seen":[0-9]*,//g; s/"v":[0-9]+,//g' "$1"; }
	check "a stream asking for compression gets the same full netmap" diff <(seen "$E2E_TMP/b.plain") <(seen "$E2E_TMP/b.z")
	check "plain streams cost what they carry" test $((S1 - S0)) = $((U1 - U0))
	check "the compressed stream cost coord fewer bytes than the plain one" test $((S2 - S1)) -lt $((S1 - S0))
	check "... and the unpacked size is counted" test $((U2 - U1)) -gt $((S2 - S1))
	echo "# full netmap: $((S1 - S0)) bytes plain, $((S2 - S1)) compressed"
fi

# --- blocklists: fetched, counted, compiled per tag combination, served ---
BLD="$E2E_TMP/lists"
mkdir -p "$BLD/www"
# 7 lines: a comment, 4 domains on 3 lines, an exception, junk, one too long
{ echo '# ads'; echo '0.0.0.0 ads1.example'; echo '0.0.0.0 ads2.example ads3.example'
  echo '||track.example^'; echo '@@||ok.track.example^'; echo 'bad..name'
  head -c 2000 /dev/zero | tr '\0' a; echo; } >"$BLD/hosts"
blshow() { adm dns show --json | jq -c --arg s "$1" '.blocklists[] | select(.source == $s)'; }
blv() { blshow "$1" | jq -r .version; }
netv() { grep '"type":"dns"' "$E2E_TMP/$1.stream" | tail -1 | jq -r .dns.blocklist.version; }
nodeget() {   # nodeget DIR VERSION OUT: the HTTP status of the node's blob fetch
	curl -sk -o "$3" -w '%{http_code}' -H "Authorization: Bearer $(cat "$E2E_TMP/$1/token")" \
		"$URL/v1/dns/blocklist?v=$2"
}
if command -v jq >/dev/null && command -v curl >/dev/null; then
	export COORD STATE URL E2E_TMP
	export -f adm blshow blv netv nodeget
	check "dns blocklist add FILE (a real one)" adm dns blocklist add "$BLD/hosts"
	check_within "its counts are in dns show --json" 5 bash -c "[ \"\$(blshow '$BLD/hosts' | jq -c '[.lines,.domains,.exceptions,.too_long,.invalid,.version]')\" = '[7,4,1,1,1,1]' ]"
	check "dns show prints the counts" bash -c "adm dns show | grep '$BLD/hosts' | grep -Eq ' 1 +7 +4 +1 +0 +1 +1 '"
	check "a missing file shows its error" bash -c "adm dns show | grep /var/lib/lists/hosts | grep -q 'cannot read the file'"
	check_within "the untagged list gets a version" 5 bash -c "[ \"\$(adm dns show --json | jq -r .blocklist.version)\" -gt 0 ]"
	check_within "a running node is told the version" 5 bash -c "[ \"\$(netv a)\" -gt 0 ]"
	V1=$(netv a)
	check "the node gets the blob" test "$(nodeget a 0 "$BLD/a.blob")" = 200
	check "the blob is a compiled list" bash -c "head -c 8 '$BLD/a.blob' | grep -q MVBLKLST"
	# (the list may have been compiled again meanwhile: the version the node holds now)
	check_within "its current version gets 304" 5 bash -c "test \"\$(nodeget a \"\$(netv a)\" /dev/null)\" = 304"
	check "an unknown token gets 401" test "$(curl -sk -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope' "$URL/v1/dns/blocklist")" = 401
	KKEY=$(adm keys create --tags tag:kids | tail -1)
	check "a tagged node registers" sim register k --hostname kids --auth-key "$KKEY"
	echo '||kidsonly.example^' >"$BLD/kids"
	check "dns blocklist add FILE --tag" adm dns blocklist add "$BLD/kids" --tag tag:kids
	check_within "the tagged node gets its own blob" 10 bash -c "[ \"\$(nodeget k 0 '$BLD/k.blob')\" = 200 ] && [ \$(stat -c %s '$BLD/k.blob') -gt \$(stat -c %s '$BLD/a.blob') ]"
	nodeget a 0 "$BLD/a2.blob" >/dev/null
	check "the untagged node's blob is not the tagged one" bash -c "! cmp -s '$BLD/k.blob' '$BLD/a2.blob' && [ \$(stat -c %s '$BLD/k.blob') -gt \$(stat -c %s '$BLD/a2.blob') ]"
	V1=$(netv a)
	echo '0.0.0.0 new.example' >>"$BLD/hosts"
	check_within "a changed file gets a new source version" 10 bash -c "[ \"\$(blv '$BLD/hosts')\" = 2 ]"
	check_within "... and a new list version on the stream" 10 bash -c "[ \"\$(netv a)\" -gt $V1 ]"
	check "the old version is no longer current" test "$(nodeget a "$V1" /dev/null)" = 200
	MPORT=$(ss -ltnp 2>/dev/null | grep "pid=$COORD_PID," | grep -o '127.0.0.1:[0-9]*' | grep -v ":$PORT\$" | head -1)
	check "/metrics has the compile time" bash -c "curl -s 'http://$MPORT/metrics' | grep -q '^coord_blocklist_last_compile_seconds '"
	if command -v python3 >/dev/null; then
		echo '||web.example^' >"$BLD/www/list.txt"
		python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$BLD/www" >"$BLD/http.out" 2>"$BLD/http.log" &
		HTTP_PID=$!
		track "$HTTP_PID"
		wait_for 10 grep -q 'port [0-9]' "$BLD/http.out"
		HPORT=$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$BLD/http.out" | head -1)
		HURL="http://127.0.0.1:$HPORT/list.txt"
		check "dns blocklist add an HTTP source" adm dns blocklist add "$HURL"
		check_within "it is fetched and counted" 10 bash -c "[ \"\$(blshow '$HURL' | jq -c '[.domains,.version]')\" = '[1,1]' ]"
		check_within "conditional refetches get 304s" 10 grep -q '" 304 ' "$BLD/http.log"
		check "a 304 keeps the source version" test "$(blv "$HURL")" = 1
		check "the 304s are counted in /metrics" bash -c "curl -s 'http://$MPORT/metrics' | grep -Eq '^coord_blocklist_not_modified_total [1-9]'"
		VH=$(netv a)
		kill "$HTTP_PID"; wait "$HTTP_PID" 2>/dev/null; untrack "$HTTP_PID"
		check_within "a failing source records its error" 10 bash -c "blshow '$HURL' | jq -r .error | grep -q 'fetch failed'"
		check "... and keeps its last good version" test "$(blv "$HURL")" = 1
		check "... and the node's list stays as it was" test "$(nodeget a "$VH" /dev/null)" = 304
	else
		echo "# no python3: the HTTP blocklist checks are skipped"
	fi
else
	echo "# no jq or curl: the blocklist checks are skipped"
fi

# --- logout ---
check "logout deregisters" sim logout g
check "golf is gone" bash -c "! '$COORD' nodes list --state '$STATE' | grep -q golf"

finish
