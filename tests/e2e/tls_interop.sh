#!/usr/bin/env bash
# tls_interop.sh - end-to-end: lib/tls.c with its records offloaded to libsodium
# (AES-256-GCM, ChaCha20-Poly1305) against stock OpenSSL peers on loopback. Our server
# (tests/tools/tlstool serve) against `openssl s_client` (echo of 3 MB) and curl (a 20 MB
# HTTP response); our client (tlstool get) against `openssl s_server`, data both ways, and
# `openssl s_server -WWW` (a file until the server closes). Every transfer is checked by
# SHA-256, and every connection must have been offloaded (tlstool reports it).
# The same against mbedtls' own records (MESHVPN_TLS_OFFLOAD=0) once, as the control.
# Usage: tests/e2e/tls_interop.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?usage: tls_interop.sh BUILD_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"

TOOL="$BUILD/tests/tools/tlstool"
T=$E2E_TMP
SUITES="ECDHE-ECDSA-AES256-GCM-SHA384 ECDHE-ECDSA-CHACHA20-POLY1305"
PID=""
PORT=""

command -v openssl >/dev/null || { echo "openssl missing"; exit 1; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/key.pem" \
	-out "$T/cert.pem" -days 2 -subj /CN=localhost 2>/dev/null
PIN=sha256:$(openssl x509 -in "$T/cert.pem" -pubkey -noout | openssl pkey -pubin -outform DER |
	sha256sum | cut -d' ' -f1)
head -c 3000000 /dev/urandom >"$T/in.bin"
head -c 2000000 /dev/urandom >"$T/srv_in.bin"

sum() { sha256sum "$1" | cut -d' ' -f1; }

# port_of PID: the TCP port that PID's child (openssl under timeout) listens on;
# s_server -accept 0 does not print it.
port_of() {
	local kid
	kid=$(pgrep -P "$1" | head -1)
	[ -n "$kid" ] || return 1
	ss -ltnpH | grep "pid=$kid," | awk '{print $4}' | sed 's/.*://' | head -1 | grep .
}

# serve NAME ARGS...: tlstool serve on a free port (in $PORT), logging at debug level
serve() {
	local name=$1; shift
	TLSTOOL_DEBUG=1 "$TOOL" serve --cert "$T/cert.pem" --key "$T/key.pem" --port 0 "$@" \
		>"$T/$name.out" 2>"$T/$name.log" &
	PID=$!
	track "$PID"
	wait_for 10 grep -q "^listening port=" "$T/$name.out" || { cat "$T/$name.log"; return 1; }
	PORT=$(sed -n 's/^listening port=\([0-9]*\)$/\1/p' "$T/$name.out")
}

stop() {
	kill "$PID" 2>/dev/null
	wait "$PID" 2>/dev/null
	untrack "$PID"
}

# offloaded LOG N: the server's log shows N established connections, all offloaded
offloaded() {
	[ "$(grep -c 'msg="tls established".*offload=1' "$1")" -eq "$2" ] &&
		! grep -q 'msg="tls established".*offload=0' "$1"
}

# -- our server, stock clients --

serve echo --echo 3000000
for c in $SUITES; do
	timeout 30 openssl s_client -connect "127.0.0.1:$PORT" -cipher "$c" -quiet \
		<"$T/in.bin" >"$T/sc.bin" 2>"$T/sc.err"
	check "s_client $c: 3 MB echoed intact" [ "$(sum "$T/in.bin")" = "$(sum "$T/sc.bin")" ]
done
check "s_client: both connections offloaded" offloaded "$T/echo.log" 2
stop

serve http --http 20000000
for c in $SUITES; do
	timeout 30 curl -sk --tls-max 1.2 --ciphers "$c" "https://127.0.0.1:$PORT/big" -o "$T/curl.bin"
	check "curl $c: exit 0" [ $? -eq 0 ]
	check "curl $c: 20 MB body matches what was served" \
		grep -q "^served bytes=20000000 sha256=$(sum "$T/curl.bin")\$" "$T/http.out"
done
check "curl: both connections offloaded" offloaded "$T/http.log" 2
stop

# -- our client, stock servers --

# s_server sends its stdin (a fifo held open, so it does not close at the file's end)
# and prints what it receives; our client closes (close_notify) after 2 MB arrived.
mkfifo "$T/fifo"
for c in $SUITES; do
	timeout 30 openssl s_server -quiet -naccept 1 -accept 0 -cert "$T/cert.pem" \
		-key "$T/key.pem" -cipher "$c" <"$T/fifo" >"$T/ss.bin" 2>"$T/ss.err" &
	SPID=$!
	track "$SPID"
	exec 3>"$T/fifo"
	cat "$T/srv_in.bin" >&3 &
	CPID=$!
	track "$CPID"
	wait_for 10 port_of "$SPID"
	SPORT=$(port_of "$SPID")
	TLSTOOL_DEBUG=1 timeout 30 "$TOOL" get --host 127.0.0.1 --port "$SPORT" --pin "$PIN" \
		--send 3000000 --expect 2000000 >"$T/get.out" 2>"$T/get.log"
	check "s_server $c: our client exits 0" [ $? -eq 0 ]
	wait "$SPID"
	check "s_server $c: s_server ends cleanly (our close_notify)" [ $? -eq 0 ]
	untrack "$SPID"
	exec 3>&-
	wait "$CPID" 2>/dev/null
	untrack "$CPID"
	check "s_server $c: offloaded" grep -q "offload=1" "$T/get.out"
	check "s_server $c: 2 MB from s_server intact" \
		grep -q "^received bytes=2000000 sha256=$(sum "$T/srv_in.bin")\$" "$T/get.out"
	check "s_server $c: 3 MB to s_server intact" \
		grep -q "^sent bytes=3000000 sha256=$(sum "$T/ss.bin")\$" "$T/get.out"
done

# s_server -WWW: a file, then the server's close_notify ends our read (EOF, exit 0).
mkdir -p "$T/www"
head -c 5000000 /dev/urandom >"$T/www/file.bin"
for c in $SUITES; do
	(cd "$T/www" && exec timeout 30 openssl s_server -WWW -naccept 1 -accept 0 \
		-cert "$T/cert.pem" -key "$T/key.pem" -cipher "$c" >/dev/null 2>"$T/www.err") &
	SPID=$!
	track "$SPID"
	wait_for 10 port_of "$SPID"
	SPORT=$(port_of "$SPID")
	timeout 30 "$TOOL" get --host 127.0.0.1 --port "$SPORT" --pin "$PIN" --http /file.bin \
		>"$T/www.out" 2>"$T/www.log"
	check "s_server -WWW $c: our client reads to the end, exit 0" [ $? -eq 0 ]
	check "s_server -WWW $c: offloaded" grep -q "offload=1" "$T/www.out"
	check "s_server -WWW $c: 5 MB file intact" \
		grep -q "^received bytes=5000000 sha256=$(sum "$T/www/file.bin")\$" "$T/www.out"
	wait "$SPID" 2>/dev/null
	untrack "$SPID"
done

# -- the control: the same echo with mbedtls' records --

MESHVPN_TLS_OFFLOAD=0 serve plain --echo 3000000
timeout 30 openssl s_client -connect "127.0.0.1:$PORT" -quiet <"$T/in.bin" >"$T/sc.bin" 2>/dev/null
check "MESHVPN_TLS_OFFLOAD=0: s_client echo intact" [ "$(sum "$T/in.bin")" = "$(sum "$T/sc.bin")" ]
check "MESHVPN_TLS_OFFLOAD=0: not offloaded" grep -q 'msg="tls established".*offload=0' "$T/plain.log"
stop

finish
