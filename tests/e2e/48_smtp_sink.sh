#!/usr/bin/env bash
# tests/lib/smtp_sink.py, the exchanger of the test bed and of other e2e
# tests, on its own: what it stores and answers must be exact, or tests
# built on it prove nothing. Runs on the loopback of a private namespace.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
NS=rw-sink-$$-$RANDOM
TMP=$(mktemp -d /tmp/rw-sink.XXXXXX)
SINK_PID=

cleanup() {
	local rc=$?
	[ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null
	ip netns del "$NS" 2>/dev/null || true
	[ "$rc" -ne 0 ] && [ -f "$TMP/sink.err" ] && tail -n 20 "$TMP/sink.err"
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS"
ip -n "$NS" link set lo up
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 1 -subj /CN=sink.test >/dev/null 2>&1
ip netns exec "$NS" "$PY" tests/lib/smtp_sink.py --listen 127.0.0.1:25 --listen '[::1]:25' \
	--store "$TMP/store" --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem" \
	--implicit-tls-port 465 --ready-file "$TMP/ready" 2>"$TMP/sink.err" &
SINK_PID=$!
for _ in $(seq 100); do [ -f "$TMP/ready" ] && break; sleep 0.1; done
[ -f "$TMP/ready" ] || { echo "FAIL: sink not ready"; exit 1; }

ip netns exec "$NS" "$PY" - "$TMP/store" <<'EOF'
import json, smtplib, socket, ssl, struct, sys, time
store = sys.argv[1]
ctx = ssl._create_unverified_context()

def raw_session(data, linger_reset=False, host="127.0.0.1"):
    """Sends data in one write, returns every reply until the server is quiet."""
    s = socket.create_connection((host, 25))
    s.settimeout(1)
    s.recv(1000)
    s.sendall(data)
    out = b""
    try:
        while True:
            time.sleep(0.2)
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if out.endswith(b"221 2.0.0 bye\r\n"):
                break
    except socket.timeout:
        pass
    if linger_reset:  # close with RST, as a blocked flow ends
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    return out

def events():
    time.sleep(0.3)
    return [json.loads(l) for l in open(store + "/log.jsonl")]

def last_conn(kind):
    ev = events()
    cid = max(e["conn"] for e in ev if e["event"] == "connect")
    return [e for e in ev if e["conn"] == cid and e["event"] == kind], cid

# 1. Pipelined envelope with a quoted local part, DATA with dot-stuffing.
r = raw_session(b'EHLO c\r\nMAIL FROM:<"a>b"@x.test> BODY=8BITMIME\r\n'
                b"RCPT TO:<@relay:u@army.mil> NOTIFY=NEVER\r\nDATA\r\n"
                b"Subject: s1\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n")
assert b"250-PIPELINING" in r and b"250-CHUNKING" in r and b"250 STARTTLS\r\n" in r, r
assert r.count(b"\r\n250 2.1.") == 2 and b"354 " in r and b"stored as conn" in r, r
msgs, cid = last_conn("message")
assert msgs[0]["mail_from"] == '"a>b"@x.test' and msgs[0]["rcpts"] == ["u@army.mil"], msgs
assert open(msgs[0]["file"], "rb").read() == b"Subject: s1\r\n\r\n.leading dot\r\n", "dot-unstuffing"
close, _ = last_conn("close")
assert close[0]["how"] == "quit" and close[0]["pipelined"] >= 3 and close[0]["open_txn"] is None, close

# 2. BDAT chunks; a body that says RCPT TO and contains CRLF.CRLF is content.
body1, body2 = b"RCPT TO:<x@army.ml>\r\n.\r\n", b"tail\r\n"
r = raw_session(b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@army.mil>\r\n"
                b"BDAT %d\r\n%sBDAT %d LAST\r\n%sQUIT\r\n" % (len(body1), body1, len(body2), body2))
msgs, cid = last_conn("message")
assert msgs[0]["via"] == "BDAT" and msgs[0]["rcpts"] == ["b@army.mil"], msgs
assert open(msgs[0]["file"], "rb").read() == body1 + body2
assert not [e for e in events() if e["conn"] == cid and e.get("rcpt") == "x@army.ml"]

# 3. A connection reset after DATA: the open transaction and 0 content bytes.
raw_session(b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<v@army.ml>\r\nDATA\r\n", linger_reset=True)
close, cid = last_conn("close")
assert close[0]["how"] == "reset", close
assert close[0]["open_txn"]["rcpts"] == ["v@army.ml"] and close[0]["open_txn"]["content_bytes"] == 0, close
assert open("%s/conn-%06d/raw.bin" % (store, cid), "rb").read().endswith(b"DATA\r\n")

# 4. Over-long command line refused, session goes on; bad sequence answered.
r = raw_session(b"X" * 5000 + b"\r\nRCPT TO:<a@b>\r\nNOOP\r\nQUIT\r\n")
assert b"500 5.5.2 line too long" in r and b"503 5.5.1 need MAIL" in r and b"250 2.0.0 ok" in r, r

# 5. STARTTLS over IPv6 (bytes pipelined after STARTTLS are dropped), SMTPUTF8.
s = smtplib.SMTP("::1", 25)
s.ehlo()
s.starttls(context=ctx)
s.ehlo()
assert "starttls" not in s.esmtp_features and "smtputf8" in s.esmtp_features
s.sendmail("a@x.test", ["d@\u00e9x.mil"], "Subject: tls\r\n\r\n\u00e9\r\n".encode(), mail_options=["SMTPUTF8"])
s.quit()
msgs, cid = last_conn("message")
assert msgs[0]["rcpts"] == ["d@\u00e9x.mil"], msgs
close, _ = last_conn("close")
assert close[0]["tls"] is True
r = raw_session(b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<injected@x>\r\n", host="::1")
assert not [e for e in events() if e.get("mail_from") == "injected@x"], "STARTTLS injection accepted"
assert [e for e in events() if e["event"] == "starttls" and e["discarded_bytes"] > 0]

# 6. Implicit TLS.
s = smtplib.SMTP_SSL("127.0.0.1", 465, context=ctx)
s.sendmail("a@x.test", ["e@army.mil"], b"Subject: implicit\r\n\r\nx\r\n")
s.quit()
connect, _ = last_conn("connect")
assert connect[0]["tls"] == "implicit" and connect[0]["local_port"] == 465
print("ok: sink stores envelopes, DATA and BDAT content exactly, raw bytes, resets with the open "
      "transaction, long lines, STARTTLS (injection dropped), SMTPUTF8, implicit TLS")
EOF
kill -TERM "$SINK_PID"
wait "$SINK_PID"
SINK_PID=
echo "ok: sink exits 0 on SIGTERM"
