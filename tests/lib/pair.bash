# A client and a server host in two network namespaces joined by a veth
# pair, for end-to-end tests of `rcptwall run`. Source it, then:
#
#   pair_up NAME            namespaces rw-NAME-cli-$$ / rw-NAME-srv-$$,
#                           client 198.51.100.1 / 2001:db8:25::1 on veth0,
#                           server 198.51.100.2 / 2001:db8:25::2 on veth1;
#                           everything is removed on exit (trap)
#   pair_sink [ARGS...]     tests/lib/smtp_sink.py in the server namespace on
#                           ports 25, 587 (IPv4 and IPv6), storing in $PAIR_TMP/sink
#   pair_cli CMD...         run CMD in the client namespace
#   pair_bg NAME CMD...     run CMD in the background (stdout/err in $PAIR_TMP/NAME.out/.err),
#                           killed on exit; its pid in $PAIR_BG_PID
#   pair_send NAME SERVER PORT RCPT [SWAKS OPTIONS]
#                           swaks from the client namespace; the body carries a
#                           unique $MARKER; output in $PAIR_TMP/swaks-NAME.out
#   pair_tls_cert CN        a self-signed P-256 certificate for CN:
#                           $PAIR_TMP/cert.pem and $PAIR_TMP/key.pem
#   wait_for WHAT CMD...    poll CMD for up to 10 s
#   fail MESSAGE            print the logs and exit 1
REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
RCPTWALL=${RCPTWALL:-$REPO/${BUILD:-build}/rcptwall}
PY=/usr/bin/python3
PAIR_PIDS=()

pair_cleanup() {
	local rc=$? p
	trap - EXIT INT TERM
	for p in "${PAIR_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PAIR_PIDS[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	# Deleting the namespaces removes the veth pair, its tc filters and
	# every nft table made inside them.
	[ -n "${PAIR_CLI:-}" ] && ip netns del "$PAIR_CLI" 2>/dev/null
	[ -n "${PAIR_SRV:-}" ] && ip netns del "$PAIR_SRV" 2>/dev/null
	[ -n "${PAIR_TMP:-}" ] && rm -rf "$PAIR_TMP"
	exit "$rc"
}

fail() {
	echo "FAIL: $*" >&2
	local f
	for f in "$PAIR_TMP"/*.out "$PAIR_TMP"/*.err "$PAIR_TMP"/*.log; do
		[ -s "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
	done >&2
	exit 1
}

wait_for() {
	local what=$1; shift
	for _ in $(seq 1 100); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "timed out waiting for $what"
}

pair_up() {
	[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root" >&2; exit 1; }
	[ -x "$RCPTWALL" ] || { echo "FAIL: no rcptwall at $RCPTWALL (make first)" >&2; exit 1; }
	PAIR_CLI=rw-$1-cli-$$
	PAIR_SRV=rw-$1-srv-$$
	PAIR_TMP=$(mktemp -d "/tmp/rw-$1-XXXXXX")
	trap pair_cleanup EXIT
	trap 'exit 130' INT TERM
	ip netns add "$PAIR_CLI"
	ip netns add "$PAIR_SRV"
	ip -n "$PAIR_CLI" link add veth0 type veth peer name veth1 netns "$PAIR_SRV"
	ip -n "$PAIR_CLI" addr add 198.51.100.1/24 dev veth0
	ip -n "$PAIR_SRV" addr add 198.51.100.2/24 dev veth1
	ip -n "$PAIR_CLI" addr add 2001:db8:25::1/64 dev veth0 nodad
	ip -n "$PAIR_SRV" addr add 2001:db8:25::2/64 dev veth1 nodad
	ip -n "$PAIR_CLI" link set lo up
	ip -n "$PAIR_SRV" link set lo up
	ip -n "$PAIR_CLI" link set veth0 up
	ip -n "$PAIR_SRV" link set veth1 up
}

pair_cli() { ip netns exec "$PAIR_CLI" "$@"; }

pair_tls_cert() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-subj "/CN=$1" -keyout "$PAIR_TMP/key.pem" -out "$PAIR_TMP/cert.pem" \
		>"$PAIR_TMP/openssl.err" 2>&1 || fail "openssl req (see openssl.err)"
}

pair_bg() {
	local name=$1; shift
	"$@" >"$PAIR_TMP/$name.out" 2>"$PAIR_TMP/$name.err" &
	PAIR_BG_PID=$!
	PAIR_PIDS+=("$PAIR_BG_PID")
}

pair_sink() {
	local l=() port
	for port in 25 587; do
		l+=(--listen "198.51.100.2:$port" --listen "[2001:db8:25::2]:$port")
	done
	pair_bg sink ip netns exec "$PAIR_SRV" "$PY" "$REPO/tests/lib/smtp_sink.py" \
		"${l[@]}" --store "$PAIR_TMP/sink" --ready-file "$PAIR_TMP/sink.ready" "$@"
	wait_for "the SMTP sink" test -e "$PAIR_TMP/sink.ready"
}

pair_send() {
	local name=$1 server=$2 port=$3 rcpt=$4; shift 4
	MARKER="BODY-MARKER-$name-$RANDOM$RANDOM"
	local rc=0
	pair_cli timeout 30 swaks --server "$server" --port "$port" --ehlo client.example \
		--from sender@example.com --to "$rcpt" --body "$MARKER" "$@" \
		>"$PAIR_TMP/swaks-$name.out" 2>&1 || rc=$?
	return "$rc"
}
