#!/usr/bin/env bash
# End-to-end test of the judgement gate: however late rcptwall reads the
# ring, a message body does not leave before the recipients in front of it
# are judged.
#
# rcptwall (enforce mode) is frozen with SIGSTOP for one second while swaks
# sends one mail to army.ml and one to army.mil. Without the gate both
# conversations would finish in milliseconds, unjudged, and the army.ml body
# would reach the sink. With it, each conversation waits at its second
# command (the kernel drops the segment, TCP sends it again); after SIGCONT
# rcptwall catches up: army.ml is blocked with its body never sent, army.mil
# is delivered, late but whole. The same for a second message sent on one
# connection right behind the first one's end, with rcptwall frozen at that
# end. Then: a frozen-and-gone rcptwall (heartbeat over) holds nothing.
set -euo pipefail
. "$(dirname "$0")/../lib/pair.bash"
EVENTS="$PY $REPO/tests/lib/events.py"

pair_up gate
pair_sink

# A hold longer than the freeze, so that the test does not race the expiry.
printf '[capture]\nhold_ms = 5000\n' >"$PAIR_TMP/rcptwall.conf"
pair_bg rcptwall ip netns exec "$PAIR_CLI" "$RCPTWALL" run --enforce --iface veth0 \
	--config "$PAIR_TMP/rcptwall.conf" --log "$PAIR_TMP/events.log"
RW_PID=$PAIR_BG_PID
wait_for "rcptwall to attach" grep -q "watching veth0" "$PAIR_TMP/rcptwall.err"
LOG=$PAIR_TMP/events.log
sleep 0.5 # a heartbeat has been written: the gate is closed for unjudged bytes

delivered() { grep -rqF --include="msg-*.eml" -- "$1" "$PAIR_TMP/sink"; }
body_seen() { grep -rqaF --include=raw.bin -- "$1" "$PAIR_TMP/sink"; }

kill -STOP "$RW_PID"
# The process must be resumed on every path, or cleanup would hang on it.
trap 'kill -CONT "$RW_PID" 2>/dev/null || true; pair_cleanup' EXIT
pair_send ml 198.51.100.2 25 user@army.ml &
ml_pid=$!
pair_send mil 198.51.100.2 25 user@army.mil &
mil_pid=$!
sleep 1
# While rcptwall is frozen no conversation got past its first command.
grep -rqaF --include=raw.bin "MAIL FROM" "$PAIR_TMP/sink" 2>/dev/null &&
	fail "a conversation got past EHLO while rcptwall was frozen"
kill -CONT "$RW_PID"

ml_rc=0
wait "$ml_pid" || ml_rc=$?
mil_rc=0
wait "$mil_pid" || mil_rc=$?
[ "$ml_rc" -ne 0 ] || fail "swaks to army.ml succeeded: the body got out"
[ "$mil_rc" -eq 0 ] || fail "swaks to army.mil failed (see swaks-mil.out)"
# pair_send ran in subshells: their markers are known by prefix only.
wait_for "army.mil message at the sink" delivered "BODY-MARKER-mil-"
! body_seen "BODY-MARKER-ml-" || fail "the army.ml body reached the sink"
[ "$($EVENTS "$LOG" count event=block rcpt=user@army.ml mode=enforce)" -ge 1 ] ||
	fail "no block event for user@army.ml"

# The next message on a connection: a client sends a message to army.mil,
# and rcptwall is frozen just before the body's end goes out; the client then
# sends the end and at once a second message, to army.ml, on the same
# connection. The kernel still has the flow in DATA phase (rcptwall has not
# read the end): the gate holds the segment after the end until it has.
cat >"$PAIR_TMP/two_messages.py" <<'PYEOF'
import socket, sys
s = socket.create_connection(("198.51.100.2", 25), timeout=20)
f = s.makefile("rb")
def reply():
    line = f.readline()
    while line[3:4] == b"-":
        line = f.readline()
    if not line:
        raise ConnectionError("connection closed")
    return line
def send(b):
    s.sendall(b)
reply()
send(b"EHLO client.example\r\n"); reply()
send(b"MAIL FROM:<a@example.com>\r\n"); reply()
send(b"RCPT TO:<user@army.mil>\r\n"); reply()
send(b"DATA\r\n"); reply()
send(b"Subject: first\r\n\r\nFIRST-BODY-MARKER\r\n")
print("ready", flush=True)
sys.stdin.readline()  # the test has frozen rcptwall
try:
    send(b".\r\n"); reply()
    send(b"MAIL FROM:<a@example.com>\r\n"); reply()
    send(b"RCPT TO:<second@army.ml>\r\n"); reply()
    send(b"DATA\r\n"); reply()
    send(b"Subject: second\r\n\r\nSECOND-BODY-MARKER\r\n.\r\n"); reply()
    send(b"QUIT\r\n")
except OSError as e:
    print("cut:", e, flush=True)
    sys.exit(3)
print("second message sent", flush=True)
PYEOF
mkfifo "$PAIR_TMP/go"
pair_cli "$PY" "$PAIR_TMP/two_messages.py" <"$PAIR_TMP/go" >"$PAIR_TMP/two.out" 2>&1 &
two_pid=$!
exec 7>"$PAIR_TMP/go"
wait_for "the first body at the sink" grep -rqaF --include=raw.bin FIRST-BODY-MARKER "$PAIR_TMP/sink"
sleep 0.2 # rcptwall has read the first body too: DATA phase in the kernel
kill -STOP "$RW_PID"
echo go >&7
sleep 1
! grep -rqaF --include=raw.bin "second@army.ml" "$PAIR_TMP/sink" ||
	fail "the second message got past the body's end while rcptwall was frozen"
kill -CONT "$RW_PID"
two_rc=0
wait "$two_pid" || two_rc=$?
exec 7>&-
[ "$two_rc" -eq 3 ] || fail "the second message was not cut (exit $two_rc): $(cat "$PAIR_TMP/two.out")"
! body_seen SECOND-BODY-MARKER || fail "the second (army.ml) body reached the sink"
wait_for "the first message at the sink" delivered FIRST-BODY-MARKER
[ "$($EVENTS "$LOG" count event=block rcpt=second@army.ml mode=enforce)" -ge 1 ] ||
	fail "no block event for second@army.ml"

# A gone consumer: frozen past the heartbeat (2 s), the gate opens.
kill -STOP "$RW_PID"
sleep 2.5
pair_send late 198.51.100.2 25 user@army.mil || {
	kill -CONT "$RW_PID"
	fail "with rcptwall frozen past its heartbeat, mail was still held"
}
kill -CONT "$RW_PID"

kill -TERM "$RW_PID"
wait "$RW_PID" || fail "rcptwall exited with an error"
held=$(sed -n 's/.*gate_held=\([0-9]*\).*/\1/p' "$PAIR_TMP/rcptwall.err")
[ "${held:-0}" -ge 2 ] || fail "the summary shows no held segments (gate_held=${held:-none})"
echo "ok: frozen rcptwall: army.ml blocked before its body, army.mil delivered after the hold," \
	"also for a message right behind another's end (gate_held=$held); no heartbeat, no hold"
