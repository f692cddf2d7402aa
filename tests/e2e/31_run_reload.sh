#!/usr/bin/env bash
# SIGHUP re-reads the configuration and the lists without detaching: a
# changed protected list changes verdicts for new flows; a broken one is
# refused, logged, and the old policy stays in force.
set -euo pipefail
. "$(dirname "$0")/../lib/pair.bash"
EVENTS="$PY $REPO/tests/lib/events.py"

pair_up reload
pair_sink
CONF=$PAIR_TMP/rcptwall.conf
PROTECT=$PAIR_TMP/protect.txt
LOG=$PAIR_TMP/run.log
printf '[general]\nmode = monitor\n[policy]\nprotect = %s\n[log]\nfile = %s\nsyslog = false\n' \
	"$PROTECT" "$LOG" >"$CONF"
echo "example.org" >"$PROTECT"

pair_bg run ip netns exec "$PAIR_CLI" "$RCPTWALL" run --config "$CONF" --iface veth0
RW_PID=$PAIR_BG_PID
wait_for "rcptwall to attach" grep -q "watching veth0" "$PAIR_TMP/run.err"

send() { # rcpt
	pair_cli timeout 30 swaks --server 198.51.100.2 --port 25 --from s@example.com \
		--to "$1" --body reload-test >>"$PAIR_TMP/swaks.out" 2>&1 || fail "swaks to $1 failed"
}
flags() { $EVENTS "$LOG" count event=flag rcpt="$1"; }
# has N FIELD=VALUE...: the log holds exactly N such events (evaluated at
# each poll of wait_for, so it sees lines rcptwall writes later).
has() { local n=$1; shift; [ "$($EVENTS "$LOG" count "$@")" -eq "$n" ]; }

send a@examp1e.org
send a@0ther.org
wait_for "the first verdicts" has 1 event=flag rcpt=a@examp1e.org
[ "$(flags a@0ther.org)" -eq 0 ] || fail "0ther.org flagged before other.org was protected"

# A changed list: other.org protected instead of example.org.
echo "other.org" >"$PROTECT"
kill -HUP "$RW_PID"
wait_for "the reload" has 1 event=reload ok=true
send b@examp1e.org
send b@0ther.org
wait_for "verdicts after reload" has 1 event=flag rcpt=b@0ther.org
[ "$(flags b@examp1e.org)" -eq 0 ] || fail "examp1e.org still flagged after reload"

# A broken list: refused, the previous policy stays.
printf 'other.org\nthis is not a domain!\n' >"$PROTECT"
kill -HUP "$RW_PID"
wait_for "the refused reload" has 1 event=reload ok=false
send c@0ther.org
send c@examp1e.org
wait_for "verdicts after refused reload" has 1 event=flag rcpt=c@0ther.org
[ "$(flags c@examp1e.org)" -eq 0 ] || fail "refused reload changed the policy"
grep -q "protect.txt" <($EVENTS "$LOG" values detail event=reload ok=false) ||
	fail "the refused reload does not name the file"

# Still attached, exactly once, after two reloads.
[ "$(pair_cli tc filter show dev veth0 egress | grep -c rw_egress)" -eq 1 ] ||
	fail "reload changed the tc filters"
kill -TERM "$RW_PID"
wait "$RW_PID" || fail "rcptwall failed on SIGTERM after reloads"
echo "ok: SIGHUP applies a changed list to new flows and refuses a broken one"
