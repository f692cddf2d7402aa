#!/usr/bin/env bash
# TLS plaintext from a real MTA: the Postfix test bed with
# smtp_tls_security_level = encrypt towards both exchangers, rcptwall on the
# relay's interface.
#   dump     Postfix's smtp(8) (OpenSSL, non-blocking BIO with its own
#            timeouts) shows every RCPT TO as TLS plaintext on its flow,
#            never as plain TCP bytes; everything is delivered
#   enforce  army.mil delivered; army.ml, read inside TLS, never reaches
#            its exchanger and stays deferred; flag and block events
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/testbed.bash

RCPTWALL=${RCPTWALL:-$REPO/${BUILD:-build}/rcptwall}
[ -x "$RCPTWALL" ] || fail "no rcptwall binary at $RCPTWALL (make first)"
"$RCPTWALL" run --help | grep -- '--tls-lib' >/dev/null ||
	fail "rcptwall run has no TLS capture (no --tls-lib in run --help): user/tls.h is not wired into cmd_run.c yet"

CHECKS="$PY $REPO/tests/lib/relay_checks.py"
LOOKALIKES=army.ml,navy.ml,gmial.com,army.mil.ml
export TB_SMTP_TLS_LEVEL=encrypt
# Deferred mail stays deferred (tried once); the exchangers answer 10 ms
# after the relay's bytes, as a remote MX a WAN round trip away would.
export TB_MIN_BACKOFF=1h TB_MAX_BACKOFF=1h TB_QUEUE_RUN_DELAY=1h
export TB_MX_RTT_MS=${TB_MX_RTT_MS:-10}
tb_start

# Called by tb_cleanup when the test fails.
tb_on_failure() {
	echo "--- rcptwall stderr:"
	tail -n 20 "$TB_DIR/rw.err" "$TB_DIR/rw-enforce.err" 2>/dev/null || true
	echo "--- rcptwall dump (TLS records and STARTTLS):"
	grep -F -e "C(tls)" -e "STARTTLS" "$TB_DIR/rw.out" 2>/dev/null | tail -n 30 || true
}

RW_PID=
stop_rcptwall() {
	[ -n "$RW_PID" ] || return 0
	kill -TERM "$RW_PID" 2>/dev/null || true
	local rc=0
	wait "$RW_PID" || rc=$?
	RW_PID=
	return "$rc"
}
# Stop rcptwall before the bed goes down, on every path; keep the status.
trap 'rc=$?; stop_rcptwall || true; set +e; (exit $rc); tb_cleanup' EXIT

# Without tlsmgr in master.cf Postfix's TLS client turns itself off ("TLS
# engine is unavailable"): the bed must have it.
[ -n "$(tb_relay postconf -c "$TB_PF_CONFIG" -M tlsmgr/unix 2>/dev/null)" ] ||
	fail "the test bed's master.cf has no tlsmgr service"

# Not through tb_relay: a backgrounded function is a subshell, and the
# signal must reach rcptwall itself (ip netns exec execs it).
ip netns exec "$TB_NS_RELAY" "$RCPTWALL" run --dump --iface "$TB_RELAY_IF" \
	>"$TB_DIR/rw.out" 2>"$TB_DIR/rw.err" &
RW_PID=$!
for _ in $(seq 1 150); do
	grep -q "TLS plaintext from" "$TB_DIR/rw.err" && break
	kill -0 "$RW_PID" 2>/dev/null || break
	sleep 0.1
done
grep -q "watching $TB_RELAY_IF" "$TB_DIR/rw.err" || { cat "$TB_DIR/rw.err"; fail "rcptwall did not attach"; }
grep -q "TLS plaintext from" "$TB_DIR/rw.err" || { cat "$TB_DIR/rw.err"; fail "no TLS probes"; }

# army.mil to exchanger A (IPv4), navy.mil to A (IPv6), the lookalikes and
# example.net to B.
tb_submit --tag tls --message army.mil,army.ml --message navy.mil,navy.ml,example.net >/dev/null
tb_wait_messages 4 90
tb_wait_queue_settled 90
rc=0
stop_rcptwall || rc=$?
[ "$rc" -eq 0 ] || fail "rcptwall exited with status $rc on SIGTERM"

dump=$TB_DIR/rw.out
# Postfix pipelines MAIL, RCPT and DATA into one write: one record.
tls_rcpts_to() { # exchanger-address domain
	grep -F -- "-> $1:25 C(tls): " "$dump" | grep -F -- "RCPT TO:<" | grep -cF -- "@$2>" || true
}
[ "$(tls_rcpts_to "$TB_MXA_IP4" army.mil)" -ge 1 ] || fail "no TLS RCPT for army.mil towards exchanger A"
[ "$(tls_rcpts_to "[$TB_MXA_IP6]" navy.mil)" -ge 1 ] || fail "no TLS RCPT for navy.mil towards A (IPv6)"
[ "$(tls_rcpts_to "$TB_MXB_IP4" army.ml)" -ge 1 ] || fail "no TLS RCPT for army.ml towards exchanger B"
[ "$(tls_rcpts_to "[$TB_MXB_IP6]" navy.ml)" -ge 1 ] ||
	[ "$(tls_rcpts_to "$TB_MXB_IP4" navy.ml)" -ge 1 ] || fail "no TLS RCPT for navy.ml towards exchanger B"
# encrypt: every RCPT is inside TLS, none on the wire in clear.
[ "$(grep -F " C: " "$dump" | grep -cF "RCPT TO:" || true)" -eq 0 ] || fail "a RCPT TO went out in clear despite smtp_tls_security_level=encrypt"
grep -qF "C: STARTTLS\\r\\n" "$dump" || fail "no STARTTLS on the wire"
# Every TLS RCPT belongs to a flow that did STARTTLS on the wire first.
"$PY" - "$dump" <<'EOF' || fail "a TLS record on a flow without STARTTLS"
import sys
starttls, tls = set(), set()
for line in open(sys.argv[1], errors="replace"):
    flow, sep, rest = line.partition(" C")
    if not sep:
        continue
    if rest.startswith(": STARTTLS\\r\\n"):
        starttls.add(flow)
    elif rest.startswith("(tls): "):
        tls.add(flow)
assert tls and tls <= starttls, (tls - starttls)
EOF
grep -q '"starttls"' "$TB_SINK_A/log.jsonl" || fail "exchanger A saw no STARTTLS"
grep -q '"starttls"' "$TB_SINK_B/log.jsonl" || fail "exchanger B saw no STARTTLS"
tb_verify >/dev/null || fail "not every message was delivered (monitor mode blocks nothing)"
ok "dump: Postfix over TLS (encrypt): every RCPT seen as TLS plaintext on its flow, all delivered"

# ---- enforce -----------------------------------------------------------------
MANIFEST=$TB_DIR/manifest-enforce.tsv
LOG=$TB_DIR/rw-enforce.jsonl
ip netns exec "$TB_NS_RELAY" "$RCPTWALL" run --enforce --iface "$TB_RELAY_IF" --log "$LOG" \
	>"$TB_DIR/rw-enforce.out" 2>"$TB_DIR/rw-enforce.err" &
RW_PID=$!
for _ in $(seq 1 150); do
	grep -q "TLS plaintext from" "$TB_DIR/rw-enforce.err" && grep -q "watching" "$TB_DIR/rw-enforce.err" &&
		break
	kill -0 "$RW_PID" 2>/dev/null || break
	sleep 0.1
done
grep -q "TLS plaintext from" "$TB_DIR/rw-enforce.err" || fail "enforce: no TLS probes"
grep -q "watching $TB_RELAY_IF" "$TB_DIR/rw-enforce.err" || fail "enforce: rcptwall did not attach"

tb_submit --tag tlsenf --message army.mil --message army.ml --message army.mil,army.ml >/dev/null
tb_wait_queue_settled 120
tb_verify --defer "$LOOKALIKES" >/dev/null || fail "enforce: delivered/deferred not as expected"
$CHECKS events --manifest "$MANIFEST" --defer "$LOOKALIKES" --mode enforce --log "$LOG" \
	--queue-json "$TB_DIR/queue.json" || fail "enforce: flag/block events missing"
rc=0
stop_rcptwall || rc=$?
[ "$rc" -eq 0 ] || fail "enforce: rcptwall exited with status $rc on SIGTERM"
ok "enforce: over TLS, army.mil delivered, army.ml deferred with no content at its exchanger"
