#!/usr/bin/env bash
# Runs every test group of `make test` and prints one summary line.
# Groups: unit tests (plain and with ASan/UBSan), BPF program tests
# (BPF_PROG_TEST_RUN, plain and sanitized), end-to-end scripts in network
# namespaces, and the VM test. A group's failure does not stop the others,
# so one run shows everything that is wrong.
#
#   scripts/run-tests.sh [FILTER]   run only tests whose name contains FILTER
set -uo pipefail
cd "$(dirname "$0")/.."

filter=${1:-}
passed=0 failed=0 failures=()
BUILD=${BUILD:-build}
logdir=$BUILD/test-logs
mkdir -p "$logdir"

run_one() { # name command...
	local name=$1; shift
	[ -n "$filter" ] && [[ "$name" != *"$filter"* ]] && return 0
	local log="$logdir/${name//\//_}.log"
	local start=$SECONDS
	printf '%-50s ' "$name"
	if "$@" >"$log" 2>&1; then
		passed=$((passed + 1))
		printf 'ok   (%ds)\n' $((SECONDS - start))
	else
		failed=$((failed + 1))
		failures+=("$name")
		printf 'FAIL (%ds)\n' $((SECONDS - start))
		sed 's/^/    | /' "$log" | tail -n 60
	fi
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

for t in $BUILD/tests/test_*; do
	[ -x "$t" ] && run_one "unit/$(basename "$t")" "$t"
done
for t in $BUILD/asan/tests/test_*; do
	[ -x "$t" ] && run_one "asan/$(basename "$t")" "$t"
done
for t in tests/e2e/*.sh; do
	[ -f "$t" ] && run_one "e2e/$(basename "$t" .sh)" bash "$t"
done
if [ -x scripts/vmtest.sh ]; then
	run_one "vmtest" ./scripts/vmtest.sh
fi

echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
