#!/usr/bin/env bash
# End-to-end test of `rcptwall run`: capture, parser, matcher, enforcement
# and the event log together, with a real SMTP client (swaks) in a client
# namespace and the SMTP sink in a server namespace.
#
# Enforce mode: mail to army.mil is delivered; mail to army.ml is cut before
# its body leaves (the sink never sees the body), swaks gets a connection
# error, the log has flag and block events with detector and latency, and
# `nft list table inet rcptwall` shows the flow with a non-zero counter.
# The same over IPv6, on port 587 and with PIPELINING. Monitor mode
# delivers everything and logs what it would have blocked. After rcptwall
# exits no tc filter and no inet rcptwall table remain.
set -euo pipefail
. "$(dirname "$0")/../lib/pair.bash"
EVENTS="$PY $REPO/tests/lib/events.py"

pair_up run
pair_sink

start_rcptwall() { # name mode
	pair_bg "$1" ip netns exec "$PAIR_CLI" "$RCPTWALL" run "--$2" --iface veth0 \
		--log "$PAIR_TMP/$1.log"
	RW_PID=$PAIR_BG_PID
	wait_for "rcptwall ($1) to attach" grep -q "watching veth0" "$PAIR_TMP/$1.err"
}

stop_rcptwall() {
	kill -TERM "$RW_PID"
	local rc=0
	wait "$RW_PID" || rc=$?
	[ "$rc" -eq 0 ] || fail "rcptwall exited with $rc on SIGTERM"
	[ "$(pair_cli tc filter show dev veth0 egress | grep -c rw_egress || true)" -eq 0 ] ||
		fail "a tc filter of ours remains after exit"
	! pair_cli nft list table inet rcptwall >/dev/null 2>&1 ||
		fail "table inet rcptwall remains after exit"
}


delivered() { grep -rqF --include="msg-*.eml" -- "$1" "$PAIR_TMP/sink"; }
body_seen() { grep -rqaF --include=raw.bin -- "$1" "$PAIR_TMP/sink"; }

expect_delivered() { # name server port rcpt [opts]
	pair_send "$@" || fail "swaks $1 failed (see swaks-$1.out)"
	wait_for "message $1 at the sink" delivered "$MARKER"
}

expect_blocked() { # name server port rcpt [opts]
	local name=$1 rcpt=$4
	if pair_send "$@"; then fail "swaks $name succeeded but should have been cut off"; fi
	grep -qiE "connection|lost|reset|abort|broken|timed out" "$PAIR_TMP/swaks-$name.out" ||
		fail "swaks $name failed without a connection error"
	! body_seen "$MARKER" || fail "the body of $name reached the sink"
	[ "$($EVENTS "$LOG" count event=flag rcpt="$rcpt")" -ge 1 ] || fail "no flag event for $rcpt"
	[ "$($EVENTS "$LOG" count event=block rcpt="$rcpt" mode=enforce)" -ge 1 ] ||
		fail "no block event for $rcpt"
	local det lat
	det=$($EVENTS "$LOG" values detector event=block rcpt="$rcpt" | sed -n 1p)
	lat=$($EVENTS "$LOG" values latency_us event=block rcpt="$rcpt" | sed -n 1p)
	[ -n "$det" ] && [ "$det" != None ] || fail "block event for $rcpt has no detector"
	[[ "$lat" =~ ^[0-9]+$ ]] || fail "block event for $rcpt has no latency_us ($lat)"
	echo "ok: $name blocked (detector $det, latency ${lat} us)"
}

# --- enforce mode ------------------------------------------------------------
start_rcptwall enforce enforce
LOG=$PAIR_TMP/enforce.log
grep -qi "enforce" "$PAIR_TMP/enforce.err" || fail "no word of enforce mode at start"

expect_delivered v4-mil 198.51.100.2 25 user@army.mil
expect_blocked v4-ml 198.51.100.2 25 user@army.ml
expect_delivered v6-mil 2001:db8:25::2 25 user@army.mil
expect_blocked v6-ml 2001:db8:25::2 25 user@army.ml
expect_delivered v4-587-mil 198.51.100.2 587 user@army.mil
expect_blocked v4-587-ml 198.51.100.2 587 other@army.ml
expect_delivered pipe-mil 198.51.100.2 25 user@army.mil --pipeline
expect_blocked pipe-ml 2001:db8:25::2 587 piped@army.ml --pipeline

# The nft table holds the blocked flows, with counters.
table=$(pair_cli nft list table inet rcptwall) || fail "no table inet rcptwall while enforcing"
sport=$($EVENTS "$LOG" values flow.sport event=block rcpt=user@army.ml | sed -n 1p)
echo "$table" | grep -qE "198\.51\.100\.1 \. $sport \. 198\.51\.100\.2 \. 25 " ||
	fail "blocked IPv4 flow (sport $sport) not in the nft set: $table"
echo "$table" | grep -q "2001:db8:25::1 \. " || fail "no IPv6 element in the nft set"
echo "$table" | grep -E "counter packets [1-9]" >/dev/null ||
	fail "no non-zero counter in table inet rcptwall: $table"
$EVENTS "$LOG" check || fail "malformed event log"
[ "$($EVENTS "$LOG" count event=loss)" -eq 0 ] || fail "loss events in enforce run"
stop_rcptwall
grep -qE "flagged=[1-9]" "$PAIR_TMP/enforce.err" || fail "no summary with flagged count on exit"

# --- monitor mode ------------------------------------------------------------
start_rcptwall monitor monitor
LOG=$PAIR_TMP/monitor.log
grep -qi "monitor" "$PAIR_TMP/monitor.err" || fail "no word of monitor mode at start"
expect_delivered mon-ml 198.51.100.2 25 user@army.ml
expect_delivered mon-ml6 2001:db8:25::2 587 user@army.ml --pipeline
[ "$($EVENTS "$LOG" count event=block rcpt=user@army.ml would_block=true)" -ge 2 ] ||
	fail "monitor mode did not log the would-be blocks"
! pair_cli nft list table inet rcptwall >/dev/null 2>&1 || fail "monitor mode made an nft table"
stop_rcptwall

echo "ok: enforce blocks army.ml over IPv4/IPv6, 25/587, pipelined; army.mil delivered; monitor logs would-block; clean exit"
