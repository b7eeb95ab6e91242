# traffic.sh - checks on traffic kept running across a failure (a coord instance killed,
# the database restarted): WireGuard's peer count sampled, a ping's losses counted, vpnd's
# logs searched for removed peers. Sourced after lib.sh by tests/e2e/failover.sh and
# tests/netns/ha.sh; the caller defines wg_peers NODE (its peers, one a line), and each
# node's vpnd logs to $E2E_TMP/NODE.log.

# wgsync logs every removal ("peer removed", "all peers removed", "netmap applied ...
# removed=N"): none in these logs.
nothing_removed() {
	local n
	for n in "$@"; do
		! grep -hE 'msg="(peer removed|all peers removed)"|removed=[1-9]' "$E2E_TMP/$n.log" || return 1
	done
}

# watch_peers NODE FILE: samples how many WireGuard peers NODE has, every 0.1 s, into FILE
# (one count a line), until killed.
watch_peers() {
	while :; do
		wg_peers "$1" 2>/dev/null | grep -c . >>"$2"
		sleep 0.1
	done
}

# never_below FILE WANT: the fewest peers any sample saw is still WANT (of more than ten).
never_below() { test "$(sort -n "$1" | head -1)" -ge "$2" && test "$(wc -l <"$1")" -gt 10; }

# lost_at_most FILE MAX MIN: a ping's summary: at most MAX packets lost of at least MIN sent.
lost_at_most() {
	local sent got
	sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$1")
	got=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$1")
	echo "sent=$sent received=$got"
	test -n "$sent" && test "$sent" -ge "$3" && test $((sent - got)) -le "$2"
}
