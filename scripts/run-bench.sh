#!/usr/bin/env bash
# Runs every benchmark: bench/bench_* binaries and bench/*.sh scripts.
# Benchmarks print ratios measured side by side in one run; they are never
# part of `make test`.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for b in ${BUILD:-build}/bench/bench_*; do
	[ -x "$b" ] || continue
	echo "== $(basename "$b")"
	"$b" || status=1
done
for s in bench/*.sh; do
	[ -f "$s" ] || continue
	echo "== $(basename "$s" .sh)"
	bash "$s" || status=1
done
exit $status
