#!/usr/bin/env bash
# End-to-end test of the capture path: a real SMTP client (swaks) in one
# network namespace sends mail over IPv4 and IPv6, to ports 25 and 587, to
# an SMTP sink (aiosmtpd) in another; `rcptwall run --dump` attached to the
# client's veth must show every client command, RCPT TO lines included.
# Then: SIGTERM leaves no filter of ours; after kill -9 the filter stays,
# and the next start replaces it (exactly one while running, none after).
set -euo pipefail
. "$(dirname "$0")/../lib/pair.bash"

# ---- client and server namespaces, removed on every exit -------------------
pair_up cap
CLI=$PAIR_CLI
SRV=$PAIR_SRV
TMP=$PAIR_TMP

# aiosmtpd listens on one address per process (asyncio sets IPV6_V6ONLY).
for port in 25 587; do
	for addr in 198.51.100.2 2001:db8:25::2; do
		ip netns exec "$SRV" /usr/bin/python3 -m aiosmtpd -n -c aiosmtpd.handlers.Sink \
			-l "$addr:$port" >"$TMP/sink-$addr-$port.out" 2>&1 &
		PAIR_PIDS+=($!)
	done
done

sink_up() { [ "$(ip netns exec "$SRV" ss -ltnH "sport = :$1" | grep -c LISTEN)" -eq 2 ]; }
wait_for "sinks on 25" sink_up 25
wait_for "sinks on 587" sink_up 587

# Our filters on the client's veth, one line each.
our_filters() {
	ip netns exec "$CLI" tc filter show dev veth0 egress 2>/dev/null | grep -c 'rw_egress' || true
}

start_rcptwall() { # name [extra option]
	ip netns exec "$CLI" "$RCPTWALL" run --dump ${2:-} --iface veth0 \
		>"$TMP/$1.out" 2>"$TMP/$1.err" &
	RW_PID=$!
	PAIR_PIDS+=("$RW_PID")
	wait_for "rcptwall ($1) to attach" grep -q "watching veth0" "$TMP/$1.err"
}

has_clsact() { ip netns exec "$CLI" tc qdisc show dev veth0 | grep clsact >/dev/null; }  # not -q: an early exit would SIGPIPE tc under pipefail

stop_rcptwall() { # signal
	kill "-$1" "$RW_PID"
	local rc=0
	wait "$RW_PID" || rc=$?
	return "$rc"
}

send_mail() { # server port rcpt...
	local server=$1 port=$2; shift 2
	local to
	to=$(IFS=,; echo "$*")
	ip netns exec "$CLI" swaks --silent 2 --server "$server" --port "$port" \
		--ehlo client.example --from sender@example.com --to "$to" \
		--body "${BODY:-capture test}" >>"$TMP/swaks.out" 2>&1 ||
		fail "swaks to $server port $port failed"
}

# --- 0. clear errors: unknown interface, not root --------------------------
rc=0
ip netns exec "$CLI" "$RCPTWALL" run --iface nosuch0 >/dev/null 2>"$TMP/err0.err" || rc=$?
[ "$rc" -eq 1 ] || fail "unknown interface: exit $rc, expected 1"
grep -q "interface nosuch0 does not exist" "$TMP/err0.err" || fail "no clear message for an unknown interface"
rc=0
setpriv --reuid=65534 --regid=65534 --clear-groups "$RCPTWALL" run >/dev/null 2>"$TMP/err1.err" || rc=$?
[ "$rc" -eq 1 ] || fail "not root: exit $rc, expected 1"
grep -q "must run as root" "$TMP/err1.err" || fail "no clear message when not root"
rc=0
"$RCPTWALL" run --bogus >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "bad option: exit $rc, expected 2"

# --- 1. dump shows every client command, IPv4 and IPv6, ports 25 and 587 ---
start_rcptwall run1
[ "$(our_filters)" -eq 1 ] || fail "expected one filter of ours while running"

send_mail 198.51.100.2 25 alice@army.example bob@army.example
send_mail 198.51.100.2 587 carol@navy.example
send_mail 2001:db8:25::2 25 dave@army.example erin@army.example
send_mail 2001:db8:25::2 587 frank@navy.example

rc=0
stop_rcptwall TERM || rc=$?
[ "$rc" -eq 0 ] || fail "rcptwall exited with $rc on SIGTERM"
[ "$(our_filters)" -eq 0 ] || fail "a filter of ours remains after SIGTERM"
! has_clsact || fail "the clsact qdisc rcptwall created remains after SIGTERM"
grep -q "counters:" "$TMP/run1.err" || fail "no counter summary on exit"

expect_line() { # flow-pattern text
	grep -F -- "$1" "$TMP/run1.out" | grep -F -- "$2" >/dev/null ||
		fail "dump has no '$2' for $1"
}
for flow in "-> 198.51.100.2:25 " "-> 198.51.100.2:587 " \
	"-> [2001:db8:25::2]:25 " "-> [2001:db8:25::2]:587 "; do
	expect_line "$flow" "C: EHLO client.example\\r\\n"
	expect_line "$flow" "C: MAIL FROM:<sender@example.com>"
	expect_line "$flow" "C: DATA\\r\\n"
	expect_line "$flow" "C: QUIT\\r\\n"
	expect_line "$flow" "flow start"
	expect_line "$flow" "flow end"
done
expect_line "-> 198.51.100.2:25 " "C: RCPT TO:<alice@army.example>"
expect_line "-> 198.51.100.2:25 " "C: RCPT TO:<bob@army.example>"
expect_line "-> 198.51.100.2:587 " "C: RCPT TO:<carol@navy.example>"
expect_line "-> [2001:db8:25::2]:25 " "C: RCPT TO:<dave@army.example>"
expect_line "-> [2001:db8:25::2]:25 " "C: RCPT TO:<erin@army.example>"
expect_line "-> [2001:db8:25::2]:587 " "C: RCPT TO:<frank@navy.example>"
grep -q "reserve_fail=0 " "$TMP/run1.err" || fail "ring reserve failures reported"

# --- 2. kill -9 leaves the filter; the next start replaces it -------------
start_rcptwall run2
stop_rcptwall KILL || true
[ "$(our_filters)" -eq 1 ] || fail "expected the killed run's filter to remain"

start_rcptwall run3 --verbose
grep -q "removed 1 stale filter" "$TMP/run3.err" || fail "stale filter not reported removed"
[ "$(our_filters)" -eq 1 ] || fail "expected exactly one filter of ours after restart"
# A 400 KB body: written in large chunks, it leaves as GSO super-packets
# (up to 64 KiB each) that the program must split, not cut. Nothing
# switches the flow to body phase here, so every byte must be in the ring.
/usr/bin/python3 -c 'import sys
for i in range(8000): sys.stdout.write("body line %05d abcdefghijklmnopqrstuvwxyz\r\n" % i)' >"$TMP/body.txt"
BODY="$TMP/body.txt" send_mail 198.51.100.2 25 grace@army.example
rc=0
stop_rcptwall INT || rc=$?
[ "$rc" -eq 0 ] || fail "rcptwall exited with $rc on SIGINT"
[ "$(our_filters)" -eq 0 ] || fail "a filter of ours remains after restart and SIGINT"
grep -qF "C: RCPT TO:<grace@army.example>" "$TMP/run3.out" || fail "restarted run saw no RCPT"
grep -q "trunc_bytes=0 " "$TMP/run3.err" || fail "bytes truncated"
# Data records of that flow: no gap in sequence numbers, every byte there.
/usr/bin/python3 - "$TMP/run3.out" "$(stat -c %s "$TMP/body.txt")" <<'PY' || fail "capture of the large mail has gaps"
import re, sys
rx = re.compile(r"^\[ts=\d+ seq=(\d+) len=(\d+) .*\] (\S+) -> (\S+) C: ")
flows = {}
for line in open(sys.argv[1]):
    m = rx.match(line)
    if m:
        flows.setdefault((m.group(3), m.group(4)), []).append((int(m.group(1)), int(m.group(2))))
recs = max(flows.values(), key=lambda r: sum(n for _, n in r))
expect, total = recs[0][0], 0
for seq, n in recs:
    if (seq - expect) % 2**32 >= 2**31:  # behind: retransmitted overlap
        d = (expect - seq) % 2**32
        if d >= n:
            continue
        seq, n = expect, n - d
    if seq != expect:
        sys.exit("gap at seq %d (expected %d)" % (seq, expect))
    expect, total = (seq + n) % 2**32, total + n
if total < int(sys.argv[2]):
    sys.exit("only %d bytes captured, body has %s" % (total, sys.argv[2]))
# MTU 1500: a full 2048-byte record can only come from a GSO super-packet.
if not any(n == 2048 for _, n in recs):
    sys.exit("no segment larger than the MTU was seen: GSO path not exercised")
print("contiguous: %d bytes in %d records" % (total, len(recs)))
PY
! has_clsact || fail "the clsact qdisc of the killed run remains"

# --- 3. someone else's clsact qdisc and filter are left alone --------------
ip netns exec "$CLI" tc qdisc add dev veth0 clsact
# cls_u32 with no action: present on minimal kernels without act_* modules.
ip netns exec "$CLI" tc filter add dev veth0 egress prio 1 protocol all u32 match u32 0 0
start_rcptwall run4
[ "$(our_filters)" -eq 1 ] || fail "expected our filter next to the foreign one"
stop_rcptwall TERM || fail "rcptwall failed to stop next to a foreign filter"
[ "$(our_filters)" -eq 0 ] || fail "a filter of ours remains next to the foreign one"
ip netns exec "$CLI" tc filter show dev veth0 egress | grep "u32 chain" >/dev/null ||
	fail "the foreign filter was removed"
has_clsact || fail "the foreign clsact qdisc was removed"

echo "ok: capture dump over IPv4/IPv6, ports 25/587; clean detach; stale filter replaced; foreign qdisc kept"
