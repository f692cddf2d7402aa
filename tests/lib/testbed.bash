# Helpers for end-to-end tests on the Postfix test bed (scripts/testbed.sh).
# Source it, then call tb_start; the bed is torn down on every exit path.
#
#   . tests/lib/testbed.bash
#   tb_start            # up, trap on EXIT: down + remove the folder
#   tb_relay CMD...     # run in the relay namespace
#   tb_wait_queue_settled   # until no message is in the incoming/active queue
#   tb_verify ...       # relay_mail.py verify with the bed's paths

REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PY=/usr/bin/python3
TESTBED=$REPO/scripts/testbed.sh
RELAY_MAIL=$REPO/tests/lib/relay_mail.py

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# Called on exit: show what helps to debug a failure, then tear down. The
# test's status is kept.
tb_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ "$rc" -ne 0 ] && [ -n "${TB_DIR:-}" ] && [ -d "$TB_DIR" ]; then
		echo "--- test failed (status $rc); relay log tail:"
		tail -n 25 "$TB_DIR/postfix/maillog" 2>/dev/null || true
		declare -F tb_on_failure >/dev/null && tb_on_failure
	fi
	if [ "$rc" -ne 0 ] && [ "${TB_KEEP_ON_FAILURE:-0}" = 1 ]; then
		echo "--- TB_KEEP_ON_FAILURE=1: left up for inspection; then: $TESTBED down $TB_DIR"
		exit "$rc"
	fi
	if [ -n "${TB_DIR:-}" ] && [ -f "$TB_DIR/testbed.env" ]; then
		"$TESTBED" down "$TB_DIR" || rc=1
	fi
	[ -n "${TB_DIR:-}" ] && rm -rf "$TB_DIR"
	exit "$rc"
}

tb_start() {
	[ "$(id -u)" -eq 0 ] || fail "needs root"
	TB_DIR=$(mktemp -d /tmp/rw-tb.XXXXXX)
	trap tb_cleanup EXIT
	trap 'exit 130' INT TERM
	"$TESTBED" up "$TB_DIR" || fail "testbed up"
	# shellcheck source=/dev/null
	. "$TB_DIR/testbed.env"
}

tb_relay() { ip netns exec "$TB_NS_RELAY" "$@"; }

tb_postqueue_json() { tb_relay postqueue -c "$TB_PF_CONFIG" -j; }

# True when every queued message is in the deferred queue (or none is).
tb_queue_settled() {
	local q
	q=$(tb_postqueue_json) || return 1
	! grep -q '"queue_name": *"\(incoming\|active\|maildrop\|hold\)"' <<<"$q"
}

# Postfix counts a message as queued from the moment postdrop or smtpd hands
# it over; this waits (bounded) until each one has been tried once.
tb_wait_queue_settled() { # [SECONDS]
	local limit=${1:-120} i
	for ((i = 0; i < limit * 5; i++)); do
		if tb_queue_settled && [ -z "$(ls -A "$TB_PF_QUEUE/maildrop" 2>/dev/null)" ]; then
			return 0
		fi
		sleep 0.2
	done
	tb_relay postqueue -c "$TB_PF_CONFIG" -p | tail -n 20
	fail "the relay's queue did not settle within ${limit}s"
}

# Waits (bounded) until the sinks have stored at least N messages in total.
tb_wait_messages() { # N [SECONDS]
	local want=$1 limit=${2:-120} i n
	for ((i = 0; i < limit * 5; i++)); do
		n=$(cat "$TB_SINK_A/log.jsonl" "$TB_SINK_B/log.jsonl" 2>/dev/null | grep -c '"event": "message"' || true)
		[ "$n" -ge "$want" ] && return 0
		sleep 0.2
	done
	fail "sinks hold $n messages, expected at least $want within ${limit}s"
}

# The manifest of submitted recipients: one per test phase if MANIFEST is set.
tb_manifest() { echo "${MANIFEST:-$TB_DIR/manifest.tsv}"; }

tb_submit() { # relay_mail.py submit arguments (server and manifest are added)
	tb_relay "$PY" "$RELAY_MAIL" submit --server "$TB_RELAY_IP4:25" \
		--manifest "$(tb_manifest)" "$@"
}

tb_verify() { # relay_mail.py verify arguments (paths of the bed are added)
	tb_postqueue_json >"$TB_DIR/queue.json" || fail "postqueue -j"
	"$PY" "$RELAY_MAIL" verify --manifest "$(tb_manifest)" \
		--sink "$TB_SINK_A" --sink "$TB_SINK_B" --maillog "$TB_PF_LOG" \
		--queue-json "$TB_DIR/queue.json" "$@"
}

# Nothing of the bed in DIR may be left: namespaces, Postfix processes.
tb_assert_gone() { # DIR
	local dir=$1 id ns
	id=$(sed -n 's/^TB_ID=//p' "$dir/testbed.env")
	[ -n "$id" ] || fail "no test bed id in $dir"
	for ns in relay wan mxa mxb; do
		[ ! -e "/run/netns/rw-tb-$id-$ns" ] || fail "namespace rw-tb-$id-$ns left behind"
	done
	local left
	left=$("$TESTBED" pids "$dir")
	[ -z "${left// /}" ] || fail "processes of the test bed in $dir left behind: $left"
}
