#!/usr/bin/env bash
# Runs the YAML/statement parser fuzzer for N seconds from a seed corpus of
# the examples and the must-fail inputs.  Fails on any finding.
# Usage: tools/fuzz.sh FUZZER SECONDS
set -euo pipefail
fuzzer=$1
secs=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
cp "$root"/examples/*.yaml "$root"/tests/fail/*.yaml "$work/corpus/" 2>/dev/null || true
"$fuzzer" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$work/" -print_final_stats=1 "$work/corpus" 2>"$work/log" || {
  tail -n 60 "$work/log"
  for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
    [ -e "$a" ] && { echo "finding: $a"; base64 "$a"; }
  done
  echo "fuzz_parse: FAILED"
  exit 1
}
grep -E "stat::number_executed_units|Done" "$work/log" | tail -n 2
echo "fuzz_parse: no finding in ${secs} s"
