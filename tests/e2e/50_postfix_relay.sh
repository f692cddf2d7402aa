#!/usr/bin/env bash
# rcptwall next to a real Postfix relay (scripts/testbed.sh): Postfix relays
# to two exchangers, rcptwall runs in the relay's namespace on its outbound
# interface. Shows, in order:
#   monitor  everything delivered, the log says what would have been blocked
#   enforce  army.mil delivered; army.ml never reaches its exchanger (not a
#            byte of content), stays deferred in Postfix's queue with a
#            reason; flag and block events with detector and latency
#   mixed    one message to a@army.mil and b@army.ml: the first copy
#            delivered, the second deferred
#   load     520 messages in bursts: every legitimate one delivered, every
#            lookalike deferred, zero loss events, no legitimate connection
#            reset, nft set elements and counters against the blocks
#   fault    rcptwall SIGKILLed mid-load (keep_rules_on_exit = yes): its tc
#            filter and nft table stay; restarted, enforcement resumes;
#            lookalikes that got through were sent while it was down
#   teardown rcptwall's exit removes its filter and table; the bed leaves
#            no process or namespace (on failure too: tests/lib/testbed.bash)
# Nothing is lost at any point: every message is delivered or deferred.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/testbed.bash
RCPTWALL=$REPO/${BUILD:-build}/rcptwall
CHECKS="$PY $REPO/tests/lib/relay_checks.py"
EVENTS="$PY $REPO/tests/lib/events.py"
[ -x "$RCPTWALL" ] || fail "$RCPTWALL is not built (make)"

LEGIT=army.mil,navy.mil,example.net
LOOKALIKES=army.ml,navy.ml,gmial.com,army.mil.ml

# Deferred mail stays deferred for the whole test: each message is tried
# once (or when flushed), so every count below is exact.
export TB_MIN_BACKOFF=1h TB_MAX_BACKOFF=1h TB_QUEUE_RUN_DELAY=1h
# The exchangers answer at once (TB_MX_RTT_MS=0): over veth the 354 to DATA
# comes back in tens of microseconds, faster than any remote server, so the
# body would race the block; the judgement gate must keep it back whenever
# rcptwall is late (README, "The judgement gate"). TB_MX_RTT_MS=10 models a
# WAN round trip instead.
export TB_MX_RTT_MS=${TB_MX_RTT_MS:-0}
tb_start
LOOKALIKE_MX=$TB_MXB_IP4,$TB_MXB_IP6

tb_on_failure() {
	local f
	for f in "$TB_DIR"/rw-*.out; do
		[ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
	done
	return 0
}

# ---- rcptwall in the relay namespace ---------------------------------------------

rw_filters() { tb_relay tc filter show dev "$TB_RELAY_IF" egress 2>/dev/null | grep -c bpf || true; }
rw_table() { tb_relay nft -j list table inet rcptwall 2>/dev/null; }

rw_started() { # LOG PID: start event logged and the filter attached
	[ -s "$1" ] && [ "$($EVENTS "$1" count event=start)" -ge 1 ] && [ "$(rw_filters)" -ge 1 ]
}

rw_start() { # NAME MODE [OPTIONS...]
	local name=$1 mode=$2 i; shift 2
	RW_LOG=$TB_DIR/rw-$name.jsonl
	RW_OUT=$TB_DIR/rw-$name.out
	# ip netns exec execs rcptwall: $! is rcptwall itself (a shell
	# function here would put a subshell in between).
	ip netns exec "$TB_NS_RELAY" "$RCPTWALL" run "--$mode" --iface "$TB_RELAY_IF" --log "$RW_LOG" "$@" \
		>"$RW_OUT" 2>&1 &
	RW_PID=$!
	for ((i = 0; i < 150; i++)); do
		kill -0 "$RW_PID" 2>/dev/null || fail "rcptwall ($name) exited at start"
		rw_started "$RW_LOG" && return 0
		sleep 0.2
	done
	fail "rcptwall ($name) not attached within 30 s"
}

rw_stop() { # SIGTERM; the exit status must be 0
	local rc=0
	kill -TERM "$RW_PID"
	wait "$RW_PID" || rc=$?
	[ "$rc" -eq 0 ] || fail "rcptwall exited with $rc on SIGTERM"
	# Its counters, for the record (gate_held: segments the judgement gate
	# held back until their flow's recipients were judged).
	grep -h "summary:" "$RW_OUT" | sed 's/^/  /' || true
}

assert_rw_gone() { # no filter and no table of ours in the relay namespace
	[ "$(rw_filters)" -eq 0 ] || fail "a tc filter remains on $TB_RELAY_IF after rcptwall exited"
	! rw_table >/dev/null || fail "table inet rcptwall remains after rcptwall exited"
}

phase() { # NAME: its own manifest
	MANIFEST=$TB_DIR/manifest-$1.tsv
	echo "== $1"
}

settle_and_verify() { # relay_mail.py verify options
	tb_wait_queue_settled 240
	tb_verify --defer "$@" && return 0
	# Name the known cause when it is the one: a new connection that reused
	# the ports of a blocked flow still in the nft set is refused at its SYN.
	if grep -q "Connection refused" "$TB_DIR/queue.json"; then
		echo "NOTE: 'Connection refused' deferrals: connections refused by table inet rcptwall" \
			"because they reused the address and port pair of a blocked flow (README:" \
			"Deploying next to Postfix, 4-tuple reuse)"
	fi
	return 1
}

# ---- monitor ---------------------------------------------------------------------
phase monitor
rw_start monitor monitor
tb_submit --tag mon --message army.mil --message army.ml --message army.mil,army.ml \
	--message navy.ml,gmial.com >/dev/null
settle_and_verify "" || fail "monitor mode: not every message was delivered"
$CHECKS events --manifest "$MANIFEST" --defer "$LOOKALIKES" --mode monitor --log "$RW_LOG" ||
	fail "monitor mode: the log does not say which would have been blocked"
rw_stop
assert_rw_gone
ok "monitor: all delivered, each lookalike logged as flag + would_block; filter and table removed at exit"

# ---- enforce: one message each, and one to both ------------------------------------
phase enforce
rw_start enforce enforce
ENFORCE_LOG=$RW_LOG
tb_submit --tag enf --message army.mil --message army.ml --message army.mil,army.ml >/dev/null
settle_and_verify "$LOOKALIKES" || fail "enforce: delivered/deferred not as expected"
$CHECKS events --manifest "$MANIFEST" --defer "$LOOKALIKES" --mode enforce --log "$RW_LOG" \
	--queue-json "$TB_DIR/queue.json" ||
	fail "enforce: flag/block events missing"
# What the sysadmin sees in the queue: the lookalike copies, with a reason.
tb_relay postqueue -c "$TB_PF_CONFIG" -p >"$TB_DIR/queue-enforce.txt"
for rcpt in $(awk -F'\t' '$3 == "army.ml" { print $2 }' "$MANIFEST"); do
	grep -B1 -F "$rcpt" "$TB_DIR/queue-enforce.txt" | grep -q '^ *(' ||
		fail "postqueue -p shows no reason for $rcpt"
done
sed 's/^/    | /' "$TB_DIR/queue-enforce.txt" | head -n 12
grep -F "status=deferred" "$TB_PF_LOG" | grep -F "@army.ml>" | head -n 1 | sed 's/^/    | /'
head -n 1 <(grep '"event":"block"' "$RW_LOG") | sed 's/^/    | /'
[ "$(rw_table | $PY -c 'import json,sys; print(len(json.load(sys.stdin)["nftables"]))')" -gt 0 ] ||
	fail "no table inet rcptwall while enforcing"
ok "enforce: army.mil delivered; army.ml deferred with a reason, no content byte at its exchanger; mixed message split"

# ---- load --------------------------------------------------------------------------
phase load
# 6 legitimate to 4 lookalike, over IPv4 and IPv6, example.net sharing the
# lookalikes' exchanger.
tb_submit --tag load --count 520 \
	--domains army.mil,army.ml,navy.mil,navy.ml,example.net,gmial.com,army.mil,army.mil.ml,navy.mil,example.net \
	--burst 40 --parallel 4 --pause 0.2 >/dev/null
settle_and_verify "$LOOKALIKES" --summary "$TB_DIR/load.json" ||
	fail "load: delivered/deferred not as expected"
$CHECKS events --manifest "$MANIFEST" --defer "$LOOKALIKES" --mode enforce --log "$RW_LOG" \
	--queue-json "$TB_DIR/queue.json" ||
	fail "load: flag/block events missing"
losses=$($EVENTS "$RW_LOG" count event=loss)
[ "$losses" -eq 0 ] || fail "load: $losses loss events: $(grep '"event":"loss"' "$RW_LOG" | head -n 3)"
rw_table >"$TB_DIR/nft-load.json" || fail "load: no table inet rcptwall"
$CHECKS nft --table "$TB_DIR/nft-load.json" --log "$RW_LOG" --lookalike-mx "$LOOKALIKE_MX" \
	--expect-all || fail "load: nft set does not match the blocks"
# No legitimate connection reset: the exchangers saw every session that
# carried a legitimate recipient end cleanly. A session that ended any
# other way must have been inside a transaction whose recipients (read from
# the raw bytes: the sink may not have answered them yet) are all lookalikes.
"$PY" - "$TB_SINK_A" "$TB_SINK_B" "$LOOKALIKES" <<'EOF' || fail "load: a legitimate connection was cut"
import json, re, sys
lookalike = set(sys.argv[3].split(","))
bad = cut = 0
for store in sys.argv[1:3]:
    for line in open(store + "/log.jsonl"):
        ev = json.loads(line)
        if ev["event"] != "close" or ev["how"] in ("quit", "eof") and not ev["open_txn"]:
            continue
        cut += 1
        raw = open("%s/conn-%06d/raw.bin" % (store, ev["conn"]), "rb").read()
        last_txn = raw[raw.upper().rfind(b"MAIL FROM:"):]
        rcpts = [m.decode(errors="replace") for m in
                 re.findall(rb"(?im)^RCPT TO:<([^>]*)>", last_txn)]
        legit = [r for r in rcpts if r.rsplit("@", 1)[-1] not in lookalike]
        if legit or not rcpts:
            bad += 1
            print("FAIL session cut with recipients %s: %s" % (rcpts, ev))
if not bad:
    print("  exchangers: %d sessions cut, each inside a transaction to lookalikes only" % cut)
sys.exit(1 if bad else 0)
EOF
ok "load: 520 messages, every legitimate delivered, every lookalike deferred, 0 loss events, no legitimate reset"
rw_stop
assert_rw_gone

# ---- fault: SIGKILL mid-load, restart ------------------------------------------------
phase fault
printf '[enforce]\nkeep_rules_on_exit = yes\n' >"$TB_DIR/keep.conf"
rw_start fault1 enforce --config "$TB_DIR/keep.conf"
FAULT1_LOG=$RW_LOG
tb_submit --tag fault --count 300 \
	--domains army.mil,army.ml,navy.mil,navy.ml,example.net,army.mil \
	--burst 20 --parallel 2 --pause 0.3 >"$TB_DIR/fault-submit.out" 2>&1 &
SUBMIT_PID=$!
# Kill once a fair share of the phase's lookalikes were blocked.
for ((i = 0; i < 600; i++)); do
	[ "$($EVENTS "$FAULT1_LOG" count event=block)" -ge 20 ] && break
	kill -0 "$SUBMIT_PID" 2>/dev/null || break
	sleep 0.1
done
[ "$($EVENTS "$FAULT1_LOG" count event=block)" -ge 1 ] || fail "fault: no block before the kill"
kill_time=$(date +%s.%N)
kill -KILL "$RW_PID"
wait "$RW_PID" 2>/dev/null || true
[ "$(rw_filters)" -ge 1 ] || fail "fault: the tc filter went away with the killed process"
rw_table >"$TB_DIR/nft-killed.json" || fail "fault: keep_rules_on_exit: no table after SIGKILL"
out=$($CHECKS nft --table "$TB_DIR/nft-killed.json" --log "$FAULT1_LOG" \
	--lookalike-mx "$LOOKALIKE_MX") || fail "fault: the kept table is wrong: $out"
echo "$out"
kept=$(sed -n 's/.*nft: \([0-9]*\) elements.*/\1/p' <<<"$out")
[ "${kept:-0}" -ge 1 ] || fail "fault: the blocks in force did not stay after SIGKILL"
ok "fault: after SIGKILL the filter and the table stay, $kept blocked flows still listed"
rw_start fault2 enforce
ready_time=$(date +%s.%N)
wait "$SUBMIT_PID" || fail "fault: submission failed: $(tail -n 3 "$TB_DIR/fault-submit.out")"
# Whatever the load left for after the restart, these are surely sent with
# the new instance in charge.
tb_submit --tag resume --count 40 --domains army.mil,army.ml,navy.ml,example.net,gmial.com \
	--burst 20 --parallel 2 >/dev/null
resume_lookalikes=$(awk -F'\t' '$1 ~ /^resume-/ && $3 != "army.mil" && $3 != "example.net"' "$MANIFEST" | wc -l)
window=$($PY -c "print('%f,%f' % ($kill_time - 2, $ready_time))")
settle_and_verify "$LOOKALIKES" --leak-window "$window" --leaked-out "$TB_DIR/leaked.txt" \
	--summary "$TB_DIR/fault.json" || fail "fault: delivered/deferred not as expected"
$CHECKS events --manifest "$MANIFEST" --defer "$LOOKALIKES" --mode enforce \
	--log "$FAULT1_LOG" --log "$RW_LOG" --leaked "$TB_DIR/leaked.txt" \
	--queue-json "$TB_DIR/queue.json" ||
	fail "fault: flag/block events missing"
after=$($EVENTS "$RW_LOG" count event=block)
[ "$after" -ge "$resume_lookalikes" ] ||
	fail "fault: $after blocks after the restart, fewer than the $resume_lookalikes lookalikes sent after it"
echo "  fault: rcptwall down for $($PY -c "print('%.1f' % ($ready_time - $kill_time))") s (SIGKILL to restarted and attached)"
echo "  fault: $(wc -l <"$TB_DIR/leaked.txt") lookalike recipients reached the exchanger while rcptwall was down; $after blocked after the restart"
ok "fault: enforcement resumed after the restart; nothing lost (every message delivered or deferred)"

# ---- teardown --------------------------------------------------------------------------
rw_stop
assert_rw_gone
ok "rcptwall's exit removed its filter and table"
"$TESTBED" down "$TB_DIR" >/dev/null
tb_assert_gone "$TB_DIR"
ok "test bed down: no Postfix process, namespace, table or filter left"
