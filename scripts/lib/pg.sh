# pg.sh - a PostgreSQL server of a test's own: its data directory and Unix socket under
# a temp dir, no TCP listener, run as user postgres (initdb refuses root), stopped by
# pg_ctl at the end. Sourced by the suites and benches that need one.
#   pg_start DIR   -> PG_URI (libpq URI of database "meshvpn"), PG_DIR
#   pg_restart / pg_kill / pg_stop

pg_bin() {
	local d
	for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }; done
	echo "error: PostgreSQL not installed (apt-get install postgresql)" >&2
	return 1
}

pg_start() {  # pg_start DIR
	PG_DIR=$1
	PG_BIN=$(pg_bin) || return 1
	mkdir -p "$PG_DIR"
	chmod 755 "$PG_DIR"
	chmod o+x "$(dirname "$PG_DIR")"   # postgres must reach it (mktemp -d makes 0700)
	mkdir -p "$PG_DIR/data" "$PG_DIR/sock"
	chown postgres:postgres "$PG_DIR/data" "$PG_DIR/sock"
	runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >"$PG_DIR/initdb.log" 2>&1 ||
		{ cat "$PG_DIR/initdb.log" >&2; return 1; }
	pg_up || return 1
	runuser -u postgres -- "$PG_BIN/createdb" -h "$PG_DIR/sock" -p 5432 -U postgres meshvpn || return 1
	PG_URI="postgresql:///meshvpn?host=$PG_DIR/sock&port=5432&user=postgres"
	export PG_URI PG_DIR PG_BIN
}

pg_up() {
	touch "$PG_DIR/pg.log"; chown postgres "$PG_DIR/pg.log"
	runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/pg.log" -w -t 60 \
		-o "-k $PG_DIR/sock -p 5432 -c listen_addresses='' -c fsync=off -c max_connections=200" \
		start >/dev/null || { tail -20 "$PG_DIR/pg.log" >&2; return 1; }
}

pg_down() {  # immediate: as a crash would
	[ -n "${PG_DIR:-}" ] && [ -f "$PG_DIR/data/postmaster.pid" ] &&
		runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1
	return 0
}

pg_restart() { pg_down && pg_up; }

pg_stop() {
	pg_down
	[ -n "${PG_DIR:-}" ] && rm -rf "$PG_DIR"
	return 0
}
