#!/usr/bin/env bash
# False positives of the embedded default policy on real legitimate domains.
#
# The corpus is built at test time from this machine's Debian data (mail
# domains and URL hosts in /usr/share/doc/*/copyright, package maintainers,
# the Maintainer and Homepage fields of the APT lists): thousands of real
# domains people send mail to. `rcptwall check` must flag fewer than 0.1 %
# of them; the flagged ones are listed so a regression is easy to judge.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
RW=$BUILD/rcptwall
[ -x "$RW" ] || { echo "FAIL: $RW not built"; exit 1; }

tmp=$(mktemp -d /tmp/rw-check-fp-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

/usr/bin/python3 tests/lib/lookalike_corpus.py legit > "$tmp/corpus"
total=$(wc -l < "$tmp/corpus")
echo "corpus: $total distinct domains from Debian package data"
if [ "$total" -lt 1000 ]; then
	echo "FAIL: corpus too small to measure a 0.1 % rate (need >= 1000 domains)"
	exit 1
fi

"$RW" check < "$tmp/corpus" > "$tmp/verdicts"
lines=$(wc -l < "$tmp/verdicts")
if [ "$lines" -ne "$total" ]; then
	echo "FAIL: $total inputs but $lines output lines (one line per input expected)"
	exit 1
fi

flagged=$(awk -F'\t' '$2 == "flag"' "$tmp/verdicts" | wc -l)
errors=$(awk -F'\t' '$2 == "error"' "$tmp/verdicts" | wc -l)
judged=$((total - errors))
echo "judged: $judged, flagged: $flagged, not judged (error): $errors"
echo "flagged domains (input, verdict, protected entry, detector):"
awk -F'\t' '$2 == "flag" { print "  " $0 }' "$tmp/verdicts"
if [ "$errors" -gt 0 ]; then
	echo "errors (not domains by rcptwall's normalisation):"
	awk -F'\t' '$2 == "error" { print "  " $1 }' "$tmp/verdicts" | head -20
fi
# 0.1 %: flagged / judged < 1 / 1000
awk -v f="$flagged" -v j="$judged" 'BEGIN { printf "false-positive rate: %.3f %%\n", 100 * f / j }'
if [ $((flagged * 1000)) -ge "$judged" ]; then
	echo "FAIL: false-positive rate not under 0.1 %"
	exit 1
fi
echo "ok: false-positive rate under 0.1 %"
