#!/usr/bin/env bash
# Overhead of the tc egress program on bulk TCP over a veth pair: iperf3
# throughput with `rcptwall run` attached divided by without, on a port the
# program ignores (5201: fast path) and on port 25 (every byte goes through
# the ring, since nothing switches the flow to body phase here).
# Runs alternate with/without, ROUNDS times each; medians are compared.
#
#   bash bench/capture_overhead.sh        ROUNDS=5 SECONDS_PER_RUN=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."

RCPTWALL=${RCPTWALL:-$PWD/${BUILD:-build}/rcptwall}
ROUNDS=${ROUNDS:-5}
SECS=${SECONDS_PER_RUN:-3}
CLI=rw-capbench-cli-$$
SRV=rw-capbench-srv-$$
TMP=$(mktemp -d /tmp/rw-capbench-XXXXXX)
pids=()
RW_PID=

cleanup() {
	[ -n "$RW_PID" ] && kill -TERM "$RW_PID" 2>/dev/null && wait "$RW_PID" 2>/dev/null
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	ip netns del "$CLI" 2>/dev/null || true
	ip netns del "$SRV" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$RCPTWALL" ] || { echo "no rcptwall at $RCPTWALL (make first)" >&2; exit 1; }

ip netns add "$CLI"
ip netns add "$SRV"
ip -n "$CLI" link add veth0 type veth peer name veth1 netns "$SRV"
ip -n "$CLI" addr add 198.51.100.1/24 dev veth0
ip -n "$SRV" addr add 198.51.100.2/24 dev veth1
ip -n "$CLI" link set veth0 up
ip -n "$SRV" link set veth1 up
ip -n "$CLI" link set lo up
ip -n "$SRV" link set lo up

for port in 5201 25; do
	ip netns exec "$SRV" iperf3 -s -p "$port" >/dev/null 2>&1 &
	pids+=($!)
done
for _ in $(seq 1 50); do
	[ "$(ip netns exec "$SRV" ss -ltnH | grep -cE ':(5201|25) ')" -ge 2 ] && break
	sleep 0.1
done

throughput() { # port -> bits/s received
	ip netns exec "$CLI" iperf3 -c 198.51.100.2 -p "$1" -t "$SECS" -J 2>/dev/null |
		/usr/bin/python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))'
}

attach() {
	ip netns exec "$CLI" "$RCPTWALL" run --iface veth0 >/dev/null 2>"$TMP/rw.err" &
	RW_PID=$!
	for _ in $(seq 1 100); do
		grep -q "watching veth0" "$TMP/rw.err" && return 0
		sleep 0.1
	done
	echo "rcptwall did not attach:" >&2
	cat "$TMP/rw.err" >&2
	exit 1
}

detach() {
	kill -TERM "$RW_PID"
	wait "$RW_PID" || { echo "rcptwall exited with $?" >&2; exit 1; }
	RW_PID=
	grep -o "reserve_fail=[0-9]*" "$TMP/rw.err" >>"$TMP/losses"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

for port in 5201 25; do
	: >"$TMP/off.$port"
	: >"$TMP/on.$port"
done
: >"$TMP/losses"
for round in $(seq 1 "$ROUNDS"); do
	for port in 5201 25; do
		throughput "$port" >>"$TMP/off.$port"
		attach
		throughput "$port" >>"$TMP/on.$port"
		detach
	done
done

echo "capture overhead: iperf3 over veth, $ROUNDS rounds of ${SECS}s, medians (Gbit/s)"
status=0
for port in 5201 25; do
	off=$(median <"$TMP/off.$port")
	on=$(median <"$TMP/on.$port")
	ratio=$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.3f", a / b}')
	label=$([ "$port" = 25 ] && echo "port 25 (SMTP, command phase)" || echo "port 5201 (not SMTP)")
	printf '  %-32s without %6.2f  with %6.2f  ratio %s\n' "$label" \
		"$(awk -v x="$off" 'BEGIN {print x / 1e9}')" "$(awk -v x="$on" 'BEGIN {print x / 1e9}')" "$ratio"
	if [ "$port" = 5201 ] && awk -v r="$ratio" 'BEGIN {exit !(r < 0.98)}'; then
		echo "  below the 0.98 target on the non-SMTP port"
		status=1
	fi
done
for port in 5201 25; do
	echo "  samples port $port without: $(awk '{printf "%.2f ", $1 / 1e9}' "$TMP/off.$port")"
	echo "  samples port $port with:    $(awk '{printf "%.2f ", $1 / 1e9}' "$TMP/on.$port")"
done
echo "  ring reserve failures per attached run: $(cut -d= -f2 "$TMP/losses" | tr '\n' ' ')"
exit $status
