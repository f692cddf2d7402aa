#!/usr/bin/env bash
# Runs every libFuzzer target $BUILD/fuzz/fuzz_* for N seconds each (one
# process, one core), starting from a copy of its seed corpus
# tests/fuzz/corpus/<name without fuzz_>/ so the checked-in seeds are never
# rewritten. Fails if any target crashes, leaks or trips a sanitizer; the
# input that did it is kept in $BUILD/fuzz-crashes/ (add it to the unit
# table as a regression case).
#
#   scripts/run-fuzz.sh [SECONDS]     (make fuzz FUZZ_SECONDS=N)
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
BUILD=${BUILD:-build}
crashes=$BUILD/fuzz-crashes
work=$(mktemp -d /tmp/rw-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$crashes"

status=0 ran=0
for bin in "$BUILD"/fuzz/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	seeds=tests/fuzz/corpus/${name#fuzz_}
	corpus=$work/$name
	mkdir -p "$corpus"
	[ -d "$seeds" ] && cp -r "$seeds"/. "$corpus"/
	log=$work/$name.log
	printf '%-24s %ss ... ' "$name" "$seconds"
	"$bin" -max_total_time="$seconds" -print_final_stats=1 \
		-artifact_prefix="$work/$name-" "$corpus" >"$log" 2>&1
	rc=$?
	ran=$((ran + 1))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	if [ $rc -ne 0 ]; then
		status=1
		echo "FAIL (exit $rc, ${execs:-?} executions)"
		grep -E 'ERROR|SUMMARY|runtime error' "$log" | head -n 10 | sed 's/^/    | /'
		for a in "$work/$name"-*; do
			[ -f "$a" ] && cp "$a" "$crashes/" && echo "    kept $crashes/$(basename "$a")"
		done
	else
		echo "ok (${execs:-?} executions)"
	fi
done
[ $ran -eq 0 ] && { echo "no fuzz targets in $BUILD/fuzz"; exit 1; }
exit $status
