#!/usr/bin/env bash
# The Postfix test bed on its own, without rcptwall: the relay delivers to
# both exchangers over IPv4 and IPv6 with PIPELINING, through both ways of
# submitting (sendmail into the queue, SMTP to port 25), the sinks store
# every message once, and `down` leaves nothing behind, also when a test
# fails half way.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/testbed.bash

tb_start

# ---- deliveries to every route ----------------------------------------------
tb_submit --tag smoke --message army.mil,navy.mil,army.ml,navy.ml,example.net \
	--message gmial.com --message army.mil.ml >/dev/null
tb_submit --tag burst --count 40 --domains army.mil,navy.mil,example.net,army.ml \
	--burst 20 --parallel 4 >/dev/null
token=$("$TESTBED" send "$TB_DIR" viasendmail@army.mil viasendmail@navy.ml)
tb_wait_messages 2 60
tb_wait_queue_settled 60
# 3 + 40 + 1 messages; a message to both exchangers is stored once by each.
expected_rcpts=$(wc -l <"$TB_DIR/manifest.tsv")
[ "$expected_rcpts" -eq 47 ] || fail "manifest has $expected_rcpts recipients, expected 47"
tb_verify --summary "$TB_DIR/summary.json" || fail "not every message was delivered"
ok "47 recipients in 43 messages delivered over SMTP submission, none queued"

[ "$(tb_postqueue_json | wc -l)" -eq 0 ] || fail "the relay's queue is not empty"
grep -q "viasendmail@army.mil" "$TB_SINK_A/log.jsonl" || fail "sendmail submission not at mxa"
grep -q "viasendmail@navy.ml" "$TB_SINK_B/log.jsonl" || fail "sendmail submission not at mxb"
cat "$TB_SINK_A"/conn-*/raw.bin | grep -q "Body of $token" || fail "sendmail body not at mxa"
ok "sendmail submission delivered to both exchangers"

# Routing, families and pipelining as the sinks saw them.
"$PY" - "$TB_SINK_A" "$TB_SINK_B" "$TB_RELAY_IP4" "$TB_RELAY_IP6" <<'EOF'
import json, sys
a, b, ip4, ip6 = sys.argv[1:]
def events(store):
    return [json.loads(l) for l in open(store + "/log.jsonl")]
want = {a: ("army.mil", "navy.mil"), b: ("army.ml", "navy.ml", "example.net", "gmial.com", "army.mil.ml")}
for store, domains in want.items():
    ev = events(store)
    rcpt_doms = {e["rcpt"].rsplit("@", 1)[1] for e in ev if e["event"] == "rcpt"}
    assert rcpt_doms == set(domains), (store, rcpt_doms)
    peers = {e["peer"] for e in ev if e["event"] == "connect"}
    assert peers == {ip4, ip6}, ("relay must connect over both families", store, peers)
    # Postfix drops idle cached sessions without QUIT: "eof" between
    # transactions is a clean end too; a reset or a half-sent message is not.
    closes = [e for e in ev if e["event"] == "close"]
    unclean = [c for c in closes if c["how"] not in ("quit", "eof") or c["open_txn"]]
    assert closes and not unclean, ("unclean close", store, unclean)
    assert sum(c["pipelined"] for c in closes) > 0, ("Postfix never pipelined", store)
print("ok: routes by transport_maps, IPv4 and IPv6, PIPELINING used, no session reset or cut mid-message")
EOF

# ---- teardown on a failing path -----------------------------------------------
# A test that fails after `up` must still leave nothing: run one in a child.
failed_dir=$(mktemp -d /tmp/rw-tb.XXXXXX)
tb_on_failure() { # this test's own second bed goes too, whatever happened
	[ -f "$failed_dir/testbed.env" ] && "$TESTBED" down "$failed_dir" >/dev/null 2>&1
	rm -rf "$failed_dir"
	return 0
}
set +e
bash -c '
	set -euo pipefail
	trap "'"$TESTBED"' down '"$failed_dir"' >/dev/null" EXIT
	'"$TESTBED"' up '"$failed_dir"' >/dev/null
	'"$TESTBED"' send '"$failed_dir"' x@army.mil >/dev/null
	false   # the failure
	echo unreachable
' >"$TB_DIR/failing-child.log" 2>&1
child=$?
set -e
[ "$child" -ne 0 ] || { rm -rf "$failed_dir"; fail "the failing child did not fail"; }
grep -q unreachable "$TB_DIR/failing-child.log" && fail "the child ran past its failure"
tb_assert_gone "$failed_dir"
rm -rf "$failed_dir"
ok "a failing test's bed is torn down: no namespace, no Postfix or sink process"

# ---- teardown on success --------------------------------------------------------
"$TESTBED" down "$TB_DIR" >/dev/null
tb_assert_gone "$TB_DIR"
ok "down leaves no namespace and no process behind"
