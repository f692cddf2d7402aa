#!/usr/bin/env bash
# Whole-pipeline benchmark of `rcptwall run` in network namespaces:
#  1. block latency: 1,000 SMTP conversations with a lookalike recipient,
#     rcptwall enforcing; p50, p99 and max of the logged latency_us (RCPT
#     segment's kernel timestamp -> blocked-map insert), and how many
#     bodies got out (must be 0);
#  2. sustained rate: recipients per second through capture, parser,
#     matcher and log with zero loss, with the machine's two cores shared
#     by the load generator, the sink and rcptwall; monitor and enforce
#     mode alternating (enforce mode runs the judgement gate).
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
# Block latency, and its two parts: waiting in the ring before rcptwall
# read the record (wakeup and scheduling: queue_us) and rcptwall's own work
# (parser, matcher, blocked-map insert: latency_us - queue_us).
"$PY" - "$PAIR_TMP/latency.log" <<'PYEOF'
import json, sys
lat, queue, own = [], [], []
for line in open(sys.argv[1], encoding="utf-8"):
    ev = json.loads(line)
    if ev.get("event") == "block" and ev.get("mode") == "enforce" and "latency_us" in ev:
        lat.append(ev["latency_us"])
        queue.append(ev["queue_us"])
        own.append(ev["latency_us"] - ev["queue_us"])
if not lat:
    sys.exit("no block events")
def show(label, v):
    v = sorted(v)
    pick = lambda q: v[min(len(v) - 1, int(q * len(v)))]
    print("%s: blocks=%d p50=%dus p99=%dus max=%dus" % (label, len(v), pick(0.5), pick(0.99), v[-1]))
show("block latency (target p99 < 100us)", lat)
show("  waiting in the ring (queue_us)", queue)
show("  rcptwall's own work", own)
PYEOF
bodies=$(grep -c '"event": "message"' "$PAIR_TMP/sink/log.jsonl" || true)
echo "bodies delivered to the sink: $bodies (must be 0)"
echo "loss events: $($EVENTS "$PAIR_TMP/latency.log" count event=loss)"
grep -o 'gate_held=[0-9]* gate_expired=[0-9]*' "$PAIR_TMP/latency.err" |
	sed 's/^/judgement gate (segments held until judged, let through unjudged): /' || true

# The rate in monitor mode (capture, parser, matcher, log) and in enforce
# mode, where the judgement gate makes every command segment wait for the
# verdict on the bytes before it: ROUNDS alternating 10-second runs of
# each, medians, so that both see the same machine noise; the ratio is what
# enforce mode and its gate cost.
ROUNDS=${BENCH_RATE_ROUNDS:-3}
rate_run() { # mode round
	local name="rate-$1-$2" sent seen loss
	start "$name" "$1"
	pair_cli "$PY" "$REPO/bench/smtp_load.py" rate 198.51.100.2 25 10 8 50 >"$PAIR_TMP/$name.txt"
	sleep 1
	stop
	sent=$(sed -n 's/.*recipients=\([0-9]*\).*/\1/p' "$PAIR_TMP/$name.txt")
	seen=$($EVENTS "$PAIR_TMP/$name.log" count event=rcpt)
	loss=$($EVENTS "$PAIR_TMP/$name.log" count event=loss)
	RATE=$(sed -n 's/.*rate=\([0-9]*\).*/\1/p' "$PAIR_TMP/$name.txt")
	echo "$1 round $2: recipients sent=$sent judged=$seen loss_events=$loss rate=${RATE}/s" \
		"$(grep -o 'gate_held=[0-9]*' "$PAIR_TMP/$name.err" || true)"
}
echo "== sustained rate: legitimate recipients, 8 connections x 50 recipients per transaction, $ROUNDS x 10 s per mode, alternating"
monitor_rates=() enforce_rates=()
for r in $(seq 1 "$ROUNDS"); do
	rate_run monitor "$r"
	monitor_rates+=("$RATE")
	rate_run enforce "$r"
	enforce_rates+=("$RATE")
done
"$PY" - "${monitor_rates[*]}" "${enforce_rates[*]}" <<'PYEOF'
import statistics, sys
mon = [int(x) for x in sys.argv[1].split()]
enf = [int(x) for x in sys.argv[2].split()]
m, e = statistics.median(mon), statistics.median(enf)
print("median rate: monitor %d/s, enforce %d/s, enforce/monitor %.3f" % (m, e, e / max(1, m)))
PYEOF
