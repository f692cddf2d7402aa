#!/usr/bin/env bash
# End-to-end test of the TLS plaintext path (bpf/tls_uprobe.bpf.c): real
# TLS clients in one network namespace send mail to the test sink
# (tests/lib/smtp_sink.py, self-signed certificate) in another, and
# `rcptwall run --dump` must show their RCPT TO lines as TLS plaintext
# ("C(tls):") on the right flow, never as plain TCP bytes:
#   - swaks --tls (OpenSSL, STARTTLS) to port 25 over IPv4 and 587 over IPv6
#   - swaks --tls-on-connect (OpenSSL) to port 465 (implicit TLS)
#   - gnutls-cli --starttls-proto=smtp (GnuTLS) to port 25, scripted
#   - one Python process (OpenSSL) with three STARTTLS sessions open at once
#     and interleaved RCPTs: each must land on its own flow.
# The uprobes see every process on the host; only flows the tc program
# tracks (our veth) reach the ring, so tests running beside us do not
# disturb this one.
set -euo pipefail
. "$(dirname "$0")/../lib/pair.bash"

"$RCPTWALL" run --help | grep -- '--tls-lib' >/dev/null ||
	{ echo "FAIL: rcptwall run has no TLS capture (no --tls-lib in run --help)" >&2; exit 1; }
swaks --support 2>&1 | grep '=== TLS supported' >/dev/null ||
	{ echo "FAIL: swaks without TLS (install libnet-ssleay-perl)" >&2; exit 1; }

# ---- test bed: client and server namespaces, removed on every exit --------
pair_up tls7
CLI=$PAIR_CLI
SRV=$PAIR_SRV
TMP=$PAIR_TMP
cd "$REPO"

pair_tls_cert sink.rcptwall.test

# Two sinks: the implicit-TLS port is opened at every --listen address, so
# 465 goes with the port-25 listeners only.
start_sink() { # name listen...
	local name=$1; shift
	local args=() l
	for l in "$@"; do
		args+=(--listen "$l")
	done
	[ "$name" = mx25 ] && args+=(--implicit-tls-port 465)
	ip netns exec "$SRV" /usr/bin/python3 tests/lib/smtp_sink.py "${args[@]}" \
		--store "$TMP/$name" --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem" \
		--ready-file "$TMP/$name.ready" >"$TMP/sink-$name.out" 2>&1 &
	PAIR_PIDS+=($!)
}
start_sink mx25 198.51.100.2:25 "[2001:db8:25::2]:25"
start_sink mx587 198.51.100.2:587 "[2001:db8:25::2]:587"
wait_for "sink on 25/465" test -f "$TMP/mx25.ready"
wait_for "sink on 587" test -f "$TMP/mx587.ready"

ip netns exec "$CLI" "$RCPTWALL" run --dump --iface veth0 >"$TMP/rcptwall.out" \
	2>"$TMP/rcptwall.err" &
RW_PID=$!
PAIR_PIDS+=("$RW_PID")
wait_for "rcptwall to attach" grep -q "watching veth0" "$TMP/rcptwall.err"
wait_for "rcptwall TLS probes" grep -q "TLS plaintext from" "$TMP/rcptwall.err"

# ---- clients ----------------------------------------------------------------
swaks_tls() { # mode server port rcpt...
	local mode=$1 server=$2 port=$3; shift 3
	local to
	to=$(IFS=,; echo "$*")
	ip netns exec "$CLI" swaks --silent 2 "$mode" --server "$server" --port "$port" \
		--ehlo client.example --from sender@army.mil --to "$to" \
		--body "tls capture test" >>"$TMP/swaks.out" 2>&1 ||
		fail "swaks $mode to $server port $port failed"
}
swaks_tls --tls 198.51.100.2 25 alice@army.ml bob@army.mil
swaks_tls --tls 2001:db8:25::2 587 carol@army.ml
swaks_tls --tls-on-connect 198.51.100.2 465 dave@army.ml

# GnuTLS: gnutls-cli does EHLO/STARTTLS itself, then sends what it reads
# from stdin through gnutls_record_send, as is: the lines carry their own
# CRLF (its --crlf mangles reads of several lines). The pauses only pace
# the script; lines read together still form a valid pipelined stream.
{
	sleep 1
	for line in 'EHLO gnutls.example' 'MAIL FROM:<sender@army.mil>' 'RCPT TO:<erin@army.ml>' \
		'DATA' 'Subject: gnutls' '' 'body' '.' 'QUIT'; do
		printf '%s\r\n' "$line"
		sleep 0.2
	done
	sleep 0.5
} | ip netns exec "$CLI" gnutls-cli --starttls-proto=smtp --insecure -p 25 \
	198.51.100.2 >"$TMP/gnutls.out" 2>&1 || fail "gnutls-cli failed"

# One process, three TLS sessions open at once, commands interleaved.
ip netns exec "$CLI" /usr/bin/python3 - >"$TMP/python.out" 2>&1 <<'EOF' || fail "python sessions failed"
import smtplib, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
sessions = []
for i in range(3):
    s = smtplib.SMTP("198.51.100.2", 25, local_hostname="py.example", timeout=30)
    s.starttls(context=ctx)
    s.ehlo("py.example")
    sessions.append(s)
for i, s in enumerate(sessions):
    s.mail("sender@army.mil")
for rnd in range(2):
    for i, s in enumerate(sessions):
        code, _ = s.rcpt("py%d-r%d@army.ml" % (i, rnd))
        assert code == 250, code
for i, s in enumerate(sessions):
    s.data("Subject: py %d\r\n\r\nbody\r\n" % i)
for i, s in enumerate(sessions):
    print("session %d sport %d" % (i, s.sock.getsockname()[1]))
    s.quit()
EOF

kill -TERM "$RW_PID"
rc=0
wait "$RW_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "rcptwall exited with $rc on SIGTERM"

# ---- assertions -------------------------------------------------------------
dump=$TMP/rcptwall.out
# No grep -q at the end of a pipe: its early exit would fail the pipe (pipefail).
# A record may carry several pipelined commands: look inside the line.
expect_tls() { # flow-pattern rcpt
	grep -F -- "$1" "$dump" | grep -F -- " C(tls): " | grep -F -- "RCPT TO:<$2>" >/dev/null ||
		fail "dump has no TLS 'RCPT TO:<$2>' on $1"
	# Read from the TLS library, never from the wire: on the wire it is ciphertext.
	[ "$(grep -F -- " C: " "$dump" | grep -cF -- "RCPT TO:<$2>" || true)" -eq 0 ] ||
		fail "RCPT TO:<$2> seen as plain TCP"
}
expect_tls "198.51.100.1:" alice@army.ml
expect_tls "-> 198.51.100.2:25 " bob@army.mil
expect_tls "-> [2001:db8:25::2]:587 " carol@army.ml
expect_tls "-> 198.51.100.2:465 " dave@army.ml
expect_tls "-> 198.51.100.2:25 " erin@army.ml
grep -F -- "-> 198.51.100.2:25 " "$dump" | grep -F "C: STARTTLS\\r\\n" >/dev/null ||
	fail "no plain STARTTLS before the TLS records"
grep -F " C(tls): " "$dump" | grep -F "EHLO gnutls.example\\r\\n" >/dev/null ||
	fail "no GnuTLS EHLO after STARTTLS"

# Each Python session's RCPTs on that session's own flow.
for i in 0 1 2; do
	sport=$(sed -n "s/^session $i sport \([0-9]*\)$/\1/p" "$TMP/python.out")
	[ -n "$sport" ] || fail "python session $i printed no port"
	for rnd in 0 1; do
		# smtplib sends its verbs in lower case.
		grep -qF "198.51.100.1:$sport -> 198.51.100.2:25 C(tls): rcpt TO:<py$i-r$rnd@army.ml>" \
			"$dump" || fail "py$i-r$rnd not on session $i's flow (port $sport)"
	done
	n=$(grep -F "C(tls): rcpt TO:<py$i-" "$dump" | grep -cvF "198.51.100.1:$sport -> " || true)
	[ "$n" -eq 0 ] || fail "py$i RCPTs also on another flow"
done

# The sinks really spoke TLS (STARTTLS on 25 and 587) and took every message.
grep -q '"starttls"' "$TMP/mx25/log.jsonl" || fail "sink on 25 saw no STARTTLS"
grep -q '"starttls"' "$TMP/mx587/log.jsonl" || fail "sink on 587 saw no STARTTLS"
[ "$(grep -c '"event": *"message"' "$TMP/mx25/log.jsonl")" -ge 6 ] ||
	fail "sink on 25/465 stored fewer than 6 messages"
grep -q " tls_trunc_bytes=0 " "$TMP/rcptwall.err" || fail "TLS bytes truncated"

echo "ok: TLS plaintext on 25/587 (STARTTLS) and 465 (implicit), OpenSSL and GnuTLS, concurrent sessions per flow"
