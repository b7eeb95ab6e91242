# lib.sh - helpers for end-to-end tests: checks that count, waits on a condition with a
# deadline (never a bare sleep), and clean-up of every process a test started, by PID.
# Usage: . tests/e2e/lib.sh; then check/wait_for/...; end with `finish`.

PASSED=0
FAILED=0
E2E_PIDS=""
E2E_TMP=$(mktemp -d /tmp/meshvpn-e2e.XXXXXX)
E2E_CLEANUPS=""

e2e_cleanup() {
	for pid in $E2E_PIDS; do
		kill "$pid" 2>/dev/null
	done
	for pid in $E2E_PIDS; do
		# bounded wait, then force
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null
	done
	for c in $E2E_CLEANUPS; do "$c" 2>/dev/null; done
	[ -n "${E2E_KEEP:-}" ] || rm -rf "$E2E_TMP"
}
trap e2e_cleanup EXIT
trap 'exit 130' INT TERM
trap '' PIPE   # a test writing to a socket the server closed must not die

# Remember a background process for clean-up.
track() { E2E_PIDS="$E2E_PIDS $1"; }
untrack() { E2E_PIDS=$(echo "$E2E_PIDS" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' '); }

ok() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
not_ok() { FAILED=$((FAILED + 1)); echo "FAIL - $1"; [ -n "${2:-}" ] && sed 's/^/    /' "$2" | tail -20; return 0; }

# check DESC CMD...: passes when CMD exits 0.
check() {
	local desc=$1; shift
	if "$@" >"$E2E_TMP/check.out" 2>&1; then ok "$desc"; else not_ok "$desc" "$E2E_TMP/check.out"; fi
}

# check_fails DESC CMD...: passes when CMD exits non-zero.
check_fails() {
	local desc=$1; shift
	if "$@" >"$E2E_TMP/check.out" 2>&1; then not_ok "$desc (it succeeded)" "$E2E_TMP/check.out"; else ok "$desc"; fi
}

# wait_for SECONDS CMD...: polls CMD until it succeeds or the deadline passes.
wait_for() {
	local secs=$1; shift
	local end=$(( $(date +%s%N) / 1000000 + secs * 1000 ))
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ $(( $(date +%s%N) / 1000000 )) -ge $end ] && return 1
		sleep 0.05
	done
}

# check_within DESC SECONDS CMD...: the condition becomes true before the deadline.
check_within() {
	local desc=$1 secs=$2; shift 2
	if wait_for "$secs" "$@"; then ok "$desc"; else not_ok "$desc (not within ${secs}s)"; fi
}

# The closing line counted by CI: "N passed, N failed".
finish() {
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}

# all_pairs SECS CMD NODE...: `CMD X Y` succeeds within SECS for every ordered pair of
# distinct NODEs; names the pairs that fail.
all_pairs() {
	local secs=$1 cmd=$2 x y bad=0
	shift 2
	for x in "$@"; do
		for y in "$@"; do
			[ "$x" = "$y" ] && continue
			wait_for "$secs" "$cmd" "$x" "$y" || { echo "    $x -> $y: $cmd fails"; bad=1; }
		done
	done
	return $bad
}

# need_root_tools TOOL...: exits 77 (skipped) unless run as root with every TOOL installed
# (the network-namespace suites).
need_root_tools() {
	local tool
	[ "$(id -u)" = 0 ] || { echo "skip: needs root (network namespaces)"; exit 77; }
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 || { echo "skip: $tool not installed"; exit 77; }
	done
}

# need_built FILE...: exits 1 unless every FILE is an executable of the build.
need_built() {
	local b
	for b in "$@"; do
		[ -x "$b" ] || { echo "FAIL - $b not built"; exit 1; }
	done
}

# dump_logs: the last 25 lines of every $E2E_TMP/*.log without debug lines (after a failure).
dump_logs() {
	local f
	for f in "$E2E_TMP"/*.log; do
		echo "--- $f"
		grep -v 'level=debug' "$f" | tail -25
	done
}
