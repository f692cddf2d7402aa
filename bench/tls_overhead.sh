#!/usr/bin/env bash
# Overhead of the TLS uprobes (bpf/tls_uprobe.bpf.c) on a TLS bulk sender.
#
# A Python sender (Debian's python3: its ssl module is the system
# libssl.so.3, so SSL_write_ex is probed) sends one SMTP transaction with
# an MB-megabyte body through one TLS connection, in WRITE-byte writes, to
# a receiver in another network namespace, and measures its throughput
# until the receiver acknowledges the last byte. Each round runs rcptwall twice on the client's veth,
# `run --no-tls` (tc capture only) and `run` (tc + TLS uprobes), in
# alternating order, so both see the same machine noise; the ratio of the
# median throughputs is printed (target >= 0.95).
#
# Two flows are measured:
#   unwatched  port 8443: TLS that is not mail (HTTPS and the like) - the
#              probes run, find no flow, count it and return;
#   watched    port 465: implicit-TLS SMTP. With the full pipeline the
#              parser switches the flow to DATA phase after DATA and the
#              probes copy only each write's tail (body_skipped_bytes > 0 in
#              the counters line); with capture alone the flow stays in
#              command phase and every body byte goes through the ring (the
#              worst case).
#
# Then the floor: bench_uprobe (bench/bench_uprobe.c) measures, in this
# process-free setting, what an empty entry + return uprobe and the
# sys_enter hook cost per call on this machine, and what rcptwall's probes
# cost on a 16 KiB SSL_write_ex, and prints the ratio each allows at the
# time per write measured here without probes: no uprobe design with an
# entry and a return probe can do better than that floor.
#
#   bench/tls_overhead.sh [ROUNDS] [MB] [WRITE]    defaults: 5 64 16384
set -euo pipefail
. "$(dirname "$0")/../tests/lib/pair.bash"

ROUNDS=${1:-5}
MB=${2:-64}
WRITE=${3:-16384}
die() { fail "tls_overhead: $*"; }

"$RCPTWALL" run --help | grep -- '--no-tls' >/dev/null ||
	{ echo "tls_overhead: rcptwall run has no TLS capture (--no-tls missing)" >&2; exit 1; }

# Client and server namespaces (tests/lib/pair.bash), removed on every exit.
pair_up tls7-bench
CLI=$PAIR_CLI
SRV=$PAIR_SRV
TMP=$PAIR_TMP
cd "$REPO"

pair_tls_cert bench.rcptwall.test

# Receiver: per connection, read until the end of the transaction, then
# ack. It does not answer SMTP: rcptwall reads only the client's bytes.
cat >"$TMP/recv.py" <<'EOF'
import socket, ssl, sys, threading
END = b"\r\n.\r\nQUIT\r\n"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv = socket.create_server(("198.51.100.2", int(sys.argv[1])))
def serve(conn):
    with ctx.wrap_socket(conn, server_side=True) as s:
        tail, buf = b"", bytearray(1 << 16)
        while not tail.endswith(END):
            n = s.recv_into(buf)  # no fresh buffer per record
            if not n:
                return
            tail = (tail + bytes(buf[max(0, n - len(END)):n]))[-len(END):]
        s.sendall(b"k")
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
cat >"$TMP/send.py" <<'EOF'
import socket, ssl, sys, time
port, total, write = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
line = b"x" * 76 + b"\r\n"
buf = (line * (write // len(line) + 1))[:write]
with ctx.wrap_socket(socket.create_connection(("198.51.100.2", port))) as s:
    t0 = time.perf_counter()
    for cmd in (b"EHLO bench.example\r\n", b"MAIL FROM:<bench@army.mil>\r\n",
                b"RCPT TO:<bulk@army.mil>\r\n", b"DATA\r\n"):
        s.sendall(cmd)
    sent = 0
    while sent < total:
        sent += s.send(buf)  # one SSL_write_ex per call
    s.sendall(b"\r\n.\r\nQUIT\r\n")
    assert s.recv(1) == b"k"
    dt = time.perf_counter() - t0
print("%.1f" % (total / dt / 1e6))
EOF

for port in 8443 465; do
	ip netns exec "$SRV" /usr/bin/python3 "$TMP/recv.py" "$port" "$TMP/cert.pem" \
		"$TMP/key.pem" 2>"$TMP/recv-$port.err" &
	PAIR_PIDS+=($!)
done
wait_for "receivers" sh -c "ip netns exec $SRV ss -ltnH | grep -c ':8443\|:465' | grep -qx 2"

# Runs the sender once under rcptwall with the given extra option; prints MB/s.
measure() { # port rcptwall-option...
	local port=$1; shift
	ip netns exec "$CLI" "$RCPTWALL" run --iface veth0 "$@" >/dev/null 2>"$TMP/rw.err" &
	local rw=$!
	PAIR_PIDS+=("$rw")
	wait_for "rcptwall to attach" grep -q "watching veth0" "$TMP/rw.err"
	if [ $# -eq 0 ]; then
		wait_for "TLS probes" grep -q "TLS plaintext from" "$TMP/rw.err"
	fi
	ip netns exec "$CLI" /usr/bin/python3 "$TMP/send.py" "$port" $((MB << 20)) "$WRITE" \
		2>"$TMP/send.err" || die "sender failed"
	# rcptwall's own CPU time (user + system ticks) during the run: on a
	# small machine it competes with the sender.
	awk '{ print $14 + $15 }' "/proc/$rw/stat" >>"$TMP/cpu-$port-${1:-tls}"
	kill -TERM "$rw"
	wait "$rw" || die "rcptwall failed"
	cat "$TMP/rw.err" >>"$TMP/rcptwall-all.err"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "TLS bulk sender, ${MB} MiB per run in ${WRITE}-byte writes, $ROUNDS rounds (median MB/s)"
for port in 8443 465; do
	off=() on=()
	for r in $(seq 1 "$ROUNDS"); do
		# Alternate the order so drift over time hits both sides alike.
		if [ $((r % 2)) -eq 1 ]; then
			off+=("$(measure "$port" --no-tls)")
			on+=("$(measure "$port")")
		else
			on+=("$(measure "$port")")
			off+=("$(measure "$port" --no-tls)")
		fi
	done
	m_off=$(printf '%s\n' "${off[@]}" | median)
	m_on=$(printf '%s\n' "${on[@]}" | median)
	name=$([ "$port" = 465 ] && echo "watched 465 (SMTP body)" ||
		echo "unwatched 8443 (not mail)")
	hz=$(getconf CLK_TCK)
	cpu_off=$(median <"$TMP/cpu-$port---no-tls")
	cpu_on=$(median <"$TMP/cpu-$port-tls")
	# The probes cost per call, not per byte: show it per write too.
	awk -v a="$m_on" -v b="$m_off" -v n="$name" -v w="$WRITE" 'BEGIN {
		r = a / b
		printf "  %-28s without %7.1f  with %7.1f  ratio %.3f %s  (+%.1f us per write)\n",
			n, b, a, r, (r >= 0.95 ? "(target >= 0.95: met)" : "(target >= 0.95: MISSED)"),
			w / a - w / b }'
	awk -v a="$cpu_on" -v b="$cpu_off" -v hz="$hz" 'BEGIN {
		printf "  %-28s rcptwall CPU per run: without %.0f ms, with %.0f ms\n", "", b * 1000 / hz, a * 1000 / hz }'
	# Time per write without probes, for the floor below (unwatched flow).
	[ "$port" = 8443 ] && base_us=$(awk -v b="$m_off" -v w="$WRITE" 'BEGIN { printf "%.2f", w / b }')
done
# `run --dump` prints the kernel counters, the full pipeline a summary:
# take what is there.
grep -o '\(tls_records\|tls_unattributed\|tls_trunc_bytes\|reserve_fail\|body_skipped_bytes\|records\|losses\)=[0-9]*' \
	"$TMP/rcptwall-all.err" | awk -F= '{ s[$1] += $2 } END { printf "  probe counters over all runs:"; for (k in s) printf " %s=%d", k, s[k]; printf "\n" }'
BENCH_UPROBE=$REPO/${BUILD:-build}/bench/bench_uprobe
if [ -x "$BENCH_UPROBE" ]; then
	echo "  floor on this machine at the measured $base_us us per write (bench_uprobe -b $base_us):"
	"$BENCH_UPROBE" -b "$base_us" >"$TMP/floor.out" 2>&1 || die "bench_uprobe failed: $(tail -n 3 "$TMP/floor.out")"
	sed -n '/^summary/,$p' "$TMP/floor.out" | tail -n +2 | sed 's/^/  /'
else
	echo "  (no $BENCH_UPROBE: make BUILD=${BUILD:-build} bench for the floor figures)"
fi
