#!/bin/busybox sh
# End-to-end check of the capture path on the running kernel: two network
# namespaces joined by a veth pair, `rcptwall run --dump` attached to the
# client's veth, one SMTP exchange over IPv4 and one over IPv6; the dump
# must show both RCPT TO lines, and after SIGINT no tc filter of rcptwall's
# may be left on the interface.
#
# Runs under busybox sh both inside the VM and on the host, so it needs
# only busybox and iproute2 (ip, tc).
#
#   e2e_dump.sh RCPTWALL_BINARY
set -u
rcptwall=$1

# busybox sh runs its own applets before searching PATH, and busybox's ip
# has no netns: use iproute2's ip (and tc), at the paths the guest has too.
ip() { /usr/sbin/ip "$@"; }
here=$(cd "$(dirname "$0")" && pwd)
tag=$$
nsc=rw-vmtest-$tag-c
nss=rw-vmtest-$tag-s
work=$(mktemp -d /tmp/rw-vmtest-e2e.XXXXXX)
rw_pid= srv_pid=

cleanup() {
	[ -n "$rw_pid" ] && kill -INT "$rw_pid" 2>/dev/null && wait "$rw_pid" 2>/dev/null
	[ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null
	ip netns pids "$nss" 2>/dev/null | xargs -r kill 2>/dev/null
	ip netns pids "$nsc" 2>/dev/null | xargs -r kill 2>/dev/null
	ip netns del "$nsc" 2>/dev/null
	ip netns del "$nss" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
	echo "e2e_dump: FAIL: $*"
	if [ -s "$work/dump.out" ]; then
		echo "--- rcptwall output"
		cat "$work/dump.out"
	fi
	exit 1
}

# Polls CMD every 0.2 s for at most SECONDS; a bounded wait for a state,
# not a speed assertion.
wait_for() { # SECONDS CMD...
	n=$(($1 * 5)); shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		sleep 0.2
		n=$((n - 1))
	done
	return 1
}

ip netns add "$nsc" || fail "ip netns add $nsc"
ip netns add "$nss" || fail "ip netns add $nss"
ip -n "$nsc" link add vc type veth peer name vs netns "$nss" || fail "create veth pair"
for ns in "$nsc" "$nss"; do ip -n "$ns" link set lo up; done
ip -n "$nsc" addr add 198.51.100.1/24 dev vc
ip -n "$nsc" addr add 2001:db8:25::1/64 dev vc nodad
ip -n "$nss" addr add 198.51.100.2/24 dev vs
ip -n "$nss" addr add 2001:db8:25::2/64 dev vs nodad
ip -n "$nsc" link set vc up || fail "link vc up"
ip -n "$nss" link set vs up || fail "link vs up"

# Background commands by path, not through the ip() function: a function
# would run in a forked shell and $! would be that shell, not rcptwall,
# so SIGINT would never reach rcptwall. `ip netns exec` execs its command.
/usr/sbin/ip netns exec "$nss" busybox nc -ll -p 25 -e busybox sh "$here/smtp_server.sh" &
srv_pid=$!

/usr/sbin/ip netns exec "$nsc" "$rcptwall" run --dump --iface vc >"$work/dump.out" 2>&1 &
rw_pid=$!

attached() {
	kill -0 "$rw_pid" 2>/dev/null || fail "rcptwall run exited before attaching"
	ip netns exec "$nsc" /usr/sbin/tc filter show dev vc egress 2>/dev/null | grep -q bpf
}
wait_for 60 attached || fail "no BPF filter on vc egress after 60 s"
echo "e2e_dump: rcptwall attached on vc egress:"
ip netns exec "$nsc" /usr/sbin/tc filter show dev vc egress

listening() { ip netns exec "$nss" busybox netstat -ltn 2>/dev/null | grep -q ':25 '; }
wait_for 20 listening || fail "SMTP sink not listening"

mkdir "$work/v4" "$work/v6"
ip netns exec "$nsc" busybox sh "$here/smtp_client.sh" 198.51.100.2 rcpt-v4@vmtest.example "$work/v4" ||
	fail "SMTP exchange over IPv4"
ip netns exec "$nsc" busybox sh "$here/smtp_client.sh" 2001:db8:25::2 rcpt-v6@vmtest.example "$work/v6" ||
	fail "SMTP exchange over IPv6"

dumped() { grep -q "RCPT TO:<$1>" "$work/dump.out"; }
wait_for 20 dumped rcpt-v4@vmtest.example || fail "RCPT TO of the IPv4 exchange not in the dump"
wait_for 20 dumped rcpt-v6@vmtest.example || fail "RCPT TO of the IPv6 exchange not in the dump"

kill -INT "$rw_pid"
wait "$rw_pid"
rc=$?
rw_pid=
[ "$rc" -eq 0 ] || fail "rcptwall run exited with $rc after SIGINT"
if ip netns exec "$nsc" /usr/sbin/tc filter show dev vc egress 2>/dev/null | grep -q bpf; then
	fail "a BPF filter is left on vc egress after rcptwall exited"
fi

echo "--- rcptwall --dump output"
cat "$work/dump.out"
echo "e2e_dump: both RCPT TO lines captured (IPv4 and IPv6), filter removed on exit"
