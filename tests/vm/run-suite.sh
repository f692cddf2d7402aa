#!/bin/busybox sh
# The kernel test set of `make vmtest`, the same inside the VM and on the
# host: every BPF program test binary (BPF_PROG_TEST_RUN) named in the
# manifest, then the network-namespace end-to-end check. Prints the kernel
# it runs on, each test's output and a "VMTEST-TEST name: ok|FAIL" line per
# test; exits non-zero when any test failed, a listed binary is missing, or
# nothing ran at all.
#
#   run-suite.sh DIR    DIR holds rcptwall, tests/, vm/, bpf-tests.list
set -u
dir=$1
per_test_timeout=${VMTEST_TEST_TIMEOUT:-300}
passed=0 failed=0

echo "=== kernel $(uname -r) ($(uname -m)), btf: $(ls -l /sys/kernel/btf/vmlinux 2>&1 | awk '{print $5}') bytes"

report() { # NAME RC SECONDS
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1)); echo "VMTEST-TEST $1: ok ($3s)"
	else
		failed=$((failed + 1)); echo "VMTEST-TEST $1: FAIL (exit $2, $3s)"
	fi
}

run_test() { # NAME COMMAND...
	name=$1; shift
	echo "--- $name"
	start=$(date +%s)
	timeout "$per_test_timeout" "$@" 2>&1
	rc=$?
	report "$name" "$rc" $(($(date +%s) - start))
}

while read -r t; do
	case $t in ''|'#'*) continue ;; esac
	if [ -x "$dir/tests/$t" ]; then
		run_test "bpf/$t" "$dir/tests/$t"
	else
		echo "--- bpf/$t"
		echo "missing test binary $dir/tests/$t"
		report "bpf/$t" 127 0
	fi
done <"$dir/bpf-tests.list"

run_test e2e/dump-rcpt busybox sh "$dir/vm/e2e_dump.sh" "$dir/rcptwall"

total=$((passed + failed))
echo "=== $total tests on $(uname -r): $passed passed, $failed failed"
[ "$total" -gt 0 ] && [ "$failed" -eq 0 ]
