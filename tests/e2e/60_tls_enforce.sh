#!/usr/bin/env bash
# Enforcement inside TLS: `rcptwall run --enforce` with the TLS uprobes,
# a client namespace and the SMTP sink (self-signed certificate) in a
# server namespace. Mail to army.mil is delivered; mail to army.ml is cut
# before its body leaves, whether the RCPT travels after STARTTLS on 25
# (IPv4) or 587 (IPv6), pipelined, from the first byte on 465, or from
# GnuTLS (gnutls-cli). The sink stores the decrypted stream, so "the body
# never arrived" is checked on plaintext.
set -euo pipefail
. "$(dirname "$0")/../lib/pair.bash"
EVENTS="$PY $REPO/tests/lib/events.py"

"$RCPTWALL" run --help | grep -- '--tls-lib' >/dev/null || {
	echo "FAIL: rcptwall run has no TLS capture (no --tls-lib in run --help)" >&2
	exit 1
}
swaks --support 2>&1 | grep '=== TLS supported' >/dev/null || {
	echo "FAIL: swaks without TLS (install libnet-ssleay-perl)" >&2
	exit 1
}

pair_up tls7-enf
pair_tls_cert sink.rcptwall.test
pair_sink --tls-cert "$PAIR_TMP/cert.pem" --tls-key "$PAIR_TMP/key.pem"
# Implicit TLS: the sink opens it at every --listen address, so a second
# sink with its own (otherwise unused) plain port carries 465.
pair_bg sink465 ip netns exec "$PAIR_SRV" "$PY" "$REPO/tests/lib/smtp_sink.py" \
	--listen 198.51.100.2:2465 --listen "[2001:db8:25::2]:2465" --implicit-tls-port 465 \
	--tls-cert "$PAIR_TMP/cert.pem" --tls-key "$PAIR_TMP/key.pem" \
	--store "$PAIR_TMP/sink465" --ready-file "$PAIR_TMP/sink465.ready"
wait_for "the implicit-TLS sink" test -e "$PAIR_TMP/sink465.ready"

LOG=$PAIR_TMP/enforce.log
pair_bg rcptwall ip netns exec "$PAIR_CLI" "$RCPTWALL" run --enforce --iface veth0 --log "$LOG"
RW_PID=$PAIR_BG_PID
wait_for "rcptwall to attach" grep -q "watching veth0" "$PAIR_TMP/rcptwall.err"
wait_for "the TLS uprobes" grep -q "TLS plaintext from" "$PAIR_TMP/rcptwall.err"


delivered() { grep -rqF --include="msg-*.eml" -- "$1" "$PAIR_TMP/sink" "$PAIR_TMP/sink465"; }
body_seen() { grep -rqaF --include=raw.bin -- "$1" "$PAIR_TMP/sink" "$PAIR_TMP/sink465"; }

expect_delivered() { # name server port rcpt [opts]
	pair_send "$@" || fail "swaks $1 failed (see swaks-$1.out)"
	wait_for "message $1 at the sink" delivered "$MARKER"
}

# Blocked: flagged and blocked in the log, the body never at the sink.
assert_cut() { # name rcpt
	! body_seen "$MARKER" || fail "the body of $1 reached the sink"
	[ "$($EVENTS "$LOG" count event=flag rcpt="$2")" -ge 1 ] || fail "no flag event for $2"
	[ "$($EVENTS "$LOG" count event=block rcpt="$2" mode=enforce)" -ge 1 ] ||
		fail "no block event for $2"
	echo "ok: $1 blocked"
}

expect_blocked() { # name server port rcpt [opts]
	local name=$1 rcpt=$4
	if pair_send "$@"; then fail "swaks $name succeeded but should have been cut off"; fi
	assert_cut "$name" "$rcpt"
}

expect_delivered tls25-mil 198.51.100.2 25 user@army.mil --tls
expect_blocked tls25-ml 198.51.100.2 25 user@army.ml --tls
expect_delivered tls587-mil6 2001:db8:25::2 587 user6@army.mil --tls
expect_blocked tls587-ml6 2001:db8:25::2 587 user6@army.ml --tls --pipeline
expect_delivered tls465-mil 198.51.100.2 465 smtps@army.mil --tls-on-connect
expect_blocked tls465-ml 198.51.100.2 465 smtps@army.ml --tls-on-connect

# GnuTLS, STARTTLS done by gnutls-cli; the lines carry their own CRLF (its
# --crlf mangles reads of several lines); the pauses pace the script,
# nothing is timed.
MARKER="BODY-MARKER-gnutls-$RANDOM$RANDOM"
{
	sleep 1
	for line in 'EHLO gnutls.example' 'MAIL FROM:<sender@example.com>' \
		'RCPT TO:<gnu@army.ml>' 'DATA' "Subject: $MARKER" '' "$MARKER" '.' 'QUIT'; do
		printf '%s\r\n' "$line"
		sleep 0.3
	done
} | pair_cli timeout 30 gnutls-cli --starttls-proto=smtp --insecure -p 25 \
	198.51.100.2 >"$PAIR_TMP/gnutls.out" 2>&1 || true
assert_cut gnutls-ml gnu@army.ml

$EVENTS "$LOG" check || fail "malformed event log"
[ "$($EVENTS "$LOG" count event=block rcpt=user@army.mil)" -eq 0 ] || fail "army.mil was blocked"

kill -TERM "$RW_PID"
rc=0
wait "$RW_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "rcptwall exited with $rc on SIGTERM"
grep -q " losses=0 " "$PAIR_TMP/rcptwall.err" || fail "rcptwall reports losses"
echo "ok: enforce inside TLS: army.ml cut before the body on 25, 587/IPv6 (pipelined), 465 and GnuTLS; army.mil delivered"
