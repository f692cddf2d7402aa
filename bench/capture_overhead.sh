#!/usr/bin/env bash
# Overhead of the tc egress program on bulk TCP over a veth pair: iperf3
# throughput with `rcptwall run` attached divided by without, on a port the
# program ignores (5201: fast path) and on port 25 (every byte goes through
# the ring, since nothing switches the flow to body phase here).
# Runs alternate with/without, ROUNDS times each; medians are compared.
#
#   bash bench/capture_overhead.sh        ROUNDS=5 SECONDS_PER_RUN=3 by default
set -euo pipefail
. "$(dirname "$0")/../tests/lib/pair.bash"

ROUNDS=${ROUNDS:-5}
SECS=${SECONDS_PER_RUN:-3}

# Client and server namespaces (tests/lib/pair.bash), removed on every exit
# with the iperf3 servers and rcptwall.
pair_up capbench
CLI=$PAIR_CLI
SRV=$PAIR_SRV
TMP=$PAIR_TMP

for port in 5201 25; do
	pair_bg "iperf3-$port" ip netns exec "$SRV" iperf3 -s -p "$port"
done
servers_up() { [ "$(ip netns exec "$SRV" ss -ltnH | grep -cE ':(5201|25) ')" -ge 2 ]; }
wait_for "the iperf3 servers" servers_up

throughput() { # port -> bits/s received
	ip netns exec "$CLI" iperf3 -c 198.51.100.2 -p "$1" -t "$SECS" -J 2>/dev/null |
		/usr/bin/python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))'
}

attach() {
	pair_bg rw ip netns exec "$CLI" "$RCPTWALL" run --iface veth0 --log /dev/null
	RW_PID=$PAIR_BG_PID
	wait_for "rcptwall to attach" grep -q "watching veth0" "$TMP/rw.err"
}

detach() {
	kill -TERM "$RW_PID"
	wait "$RW_PID" || fail "rcptwall exited with $?"
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
