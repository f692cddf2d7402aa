#!/usr/bin/env bash
# Whole-pipeline benchmark of `rcptwall run` in network namespaces:
#  1. block latency: 1,000 SMTP conversations with a lookalike recipient,
#     rcptwall enforcing; p50, p99 and max of the logged latency_us (RCPT
#     segment's kernel timestamp -> blocked-map insert), and how many
#     bodies got out (must be 0);
#  2. sustained rate: recipients per second through capture, parser,
#     matcher and log with zero loss, with the machine's two cores shared
#     by the load generator, the sink and rcptwall.
set -euo pipefail
. "$(dirname "$0")/../tests/lib/pair.bash"
EVENTS="$PY $REPO/tests/lib/events.py"
N=${BENCH_CONVERSATIONS:-1000}

pair_up bench
pair_sink

start() { # name mode
	pair_bg "$1" ip netns exec "$PAIR_CLI" "$RCPTWALL" run "--$2" --iface veth0 \
		--log "$PAIR_TMP/$1.log" --no-tls
	RW_PID=$PAIR_BG_PID
	wait_for "rcptwall" grep -q "watching veth0" "$PAIR_TMP/$1.err"
}
stop() { kill -TERM "$RW_PID"; wait "$RW_PID" || true; }

echo "== block latency: $N lookalike conversations, 20 at a time, enforce mode"
start latency enforce
pair_cli "$PY" "$REPO/bench/smtp_load.py" block 198.51.100.2 25 "$N" 20 | tee "$PAIR_TMP/block.txt"
sleep 1
stop
percentiles() { # label: p50/p99/max of the numbers on stdin
	"$PY" -c '
import sys
v = sorted(int(x) for x in sys.stdin if x.strip().isdigit())
if not v:
    sys.exit("no block events")
pick = lambda q: v[min(len(v) - 1, int(q * len(v)))]
print("%s: blocks=%d p50=%dus p99=%dus max=%dus" % (sys.argv[1], len(v), pick(0.5), pick(0.99), v[-1]))' "$1"
}
$EVENTS "$PAIR_TMP/latency.log" values latency_us event=block mode=enforce |
	percentiles "block latency (target p99 < 100us)"
# The part of it spent before rcptwall read the record: wakeup and
# scheduling, not rcptwall's own work.
$EVENTS "$PAIR_TMP/latency.log" values queue_us event=block mode=enforce |
	percentiles "  of which waiting in the ring"
bodies=$(grep -c '"event": "message"' "$PAIR_TMP/sink/log.jsonl" || true)
echo "bodies delivered to the sink: $bodies (must be 0)"
echo "loss events: $($EVENTS "$PAIR_TMP/latency.log" count event=loss)"
grep -o 'gate_held=[0-9]* gate_expired=[0-9]*' "$PAIR_TMP/latency.err" |
	sed 's/^/judgement gate (segments held until judged, let through unjudged): /' || true

# The rate twice: monitor mode (capture, parser, matcher, log), and enforce
# mode, where the judgement gate makes every command segment wait for the
# verdict on the bytes before it; the ratio is what the gate costs.
rate_run() { # mode
	echo "== sustained rate: legitimate recipients, $1 mode, 8 connections x 50 recipients per transaction, 10 s"
	start "rate-$1" "$1"
	pair_cli "$PY" "$REPO/bench/smtp_load.py" rate 198.51.100.2 25 10 8 50 | tee "$PAIR_TMP/rate-$1.txt"
	sleep 1
	stop
	local sent seen loss
	sent=$(sed -n 's/.*recipients=\([0-9]*\).*/\1/p' "$PAIR_TMP/rate-$1.txt")
	seen=$($EVENTS "$PAIR_TMP/rate-$1.log" count event=rcpt)
	loss=$($EVENTS "$PAIR_TMP/rate-$1.log" count event=loss)
	RATE=$(sed -n 's/.*rate=\([0-9]*\).*/\1/p' "$PAIR_TMP/rate-$1.txt")
	echo "recipients sent=$sent judged=$seen loss_events=$loss rate=${RATE}/s"
	grep summary "$PAIR_TMP/rate-$1.err" || true
}
rate_run monitor
monitor_rate=$RATE
rate_run enforce
echo "enforce/monitor rate ratio (cost of the judgement gate): $("$PY" -c "print('%.3f' % ($RATE / max(1, $monitor_rate)))")"
