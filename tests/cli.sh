#!/usr/bin/env bash
# CLI tests: flags, exit codes, --json, show views, compile.
# Usage: cli.sh KILN SRCROOT SCRATCH
set -u
kiln=$1 root=$2 tmp=$3
rm -rf "$tmp" && mkdir -p "$tmp"
P=$root/tests/programs
fails=0 checks=0
ok() { checks=$((checks + 1)); }
bad() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL: $*"; }
expect_exit() { # expected-status description command...
  local want=$1 what=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"; local got=$?
  if [ "$got" = "$want" ]; then ok; else bad "$what: exit $got, wanted $want"; cat "$tmp/err"; fi
}
expect_in() { # file pattern description
  if grep -qE -- "$2" "$1"; then ok; else bad "$3: '$2' not in output"; head -c 2000 "$1"; fi
}

expect_exit 2 "no command" "$kiln"
expect_in "$tmp/err" "usage:" "usage shown"
expect_exit 2 "unknown command" "$kiln" frob x.yaml
expect_in "$tmp/err" "unknown command 'frob'" "unknown command named"
expect_exit 2 "unknown option" "$kiln" run "$P/small_matmul.yaml" --bogus
expect_exit 2 "bad --threads" "$kiln" run "$P/small_matmul.yaml" --threads many
expect_exit 2 "missing value" "$kiln" run "$P/small_matmul.yaml" --schedule
expect_exit 2 "compile without -o" "$kiln" compile "$P/small_matmul.yaml"
expect_exit 1 "missing file" "$kiln" run "$tmp/nope.yaml"
expect_in "$tmp/err" "nope.yaml" "missing file named"
expect_exit 0 "help" "$kiln" --help

# run: default schedule, hand schedule, threads, json fields
expect_exit 0 "run default" "$kiln" run "$P/small_matmul.yaml" --min-time 5 --repeats 3
expect_in "$tmp/out" "verified" "run says verified"
expect_exit 0 "run json" "$kiln" run "$P/small_matmul.yaml" --schedule "$P/small_matmul.sched" \
  --json --threads 1 --min-time 5 --repeats 3
last=$(tail -n 1 "$tmp/out")
for key in name verified max_abs_err compile_ms median_ms gflops threads; do
  echo "$last" | grep -q "\"$key\"" && ok || bad "json lacks $key: $last"
done
echo "$last" | grep -q '"verified": true' && ok || bad "json not verified: $last"
echo "$last" | grep -q '"threads": 1' && ok || bad "json threads != 1: $last"
echo "$last" | grep -q '"name": "small_matmul"' && ok || bad "json name: $last"
expect_exit 0 "run f64 with inline" "$kiln" run "$P/rowsum.yaml" --schedule "$P/rowsum.sched" \
  --min-time 5 --repeats 3 --threads 2

# a bad schedule: file:line:col and exit 1
expect_exit 1 "bad schedule" "$kiln" run "$P/small_matmul.yaml" --schedule "$P/bad_line3.sched"
expect_in "$tmp/err" "bad_line3.sched:3:11: .*C.zz" "schedule error place"
expect_exit 1 "missing schedule file" "$kiln" run "$P/small_matmul.yaml" --schedule "$tmp/none"

# show: schedule text round trip, passes, llvm, asm
expect_exit 0 "show schedule" "$kiln" show "$P/small_matmul.yaml" --schedule "$P/small_matmul.sched"
cp "$tmp/out" "$tmp/shown.sched"
expect_in "$tmp/shown.sched" "split\(C.i, 4\)" "shown schedule has the split"
expect_exit 0 "replay shown schedule" "$kiln" show "$P/small_matmul.yaml" --schedule "$tmp/shown.sched"
cmp -s "$tmp/out" "$tmp/shown.sched" && ok || bad "schedule text does not round-trip"
expect_exit 0 "show after build" "$kiln" show "$P/small_matmul.yaml" --after build
expect_in "$tmp/out" "for " "loop nest printed"
expect_exit 0 "show after flatten" "$kiln" show "$P/small_matmul.yaml" --after flatten \
  --schedule "$P/small_matmul.sched"
expect_in "$tmp/out" "parallel" "parallel loop printed"
expect_exit 1 "show after bogus pass" "$kiln" show "$P/small_matmul.yaml" --after bogus
expect_in "$tmp/err" "flatten" "valid pass names listed"
expect_exit 0 "show llvm" "$kiln" show "$P/small_matmul.yaml" --llvm
expect_in "$tmp/out" "define .*@small_matmul" "llvm function defined"
expect_exit 0 "show asm" "$kiln" show "$P/small_matmul.yaml" --asm --schedule "$P/small_matmul.sched"
if grep -q avx512f /proc/cpuinfo; then expect_in "$tmp/out" "zmm" "AVX-512 registers used"; fi

# compile: object + header
expect_exit 0 "compile" "$kiln" compile "$P/small_matmul.yaml" --schedule "$P/small_matmul.sched" \
  -o "$tmp/k.o"
[ -s "$tmp/k.o" ] && ok || bad "no object written"
expect_in "$tmp/k.h" "int small_matmul\(const float \*A, const float \*B, float \*C\)" "header prototype"
expect_exit 1 "compile to unwritable path" "$kiln" compile "$P/small_matmul.yaml" -o /nonexistent/dir/k.o

echo "cli: $checks checks, $fails failed"
echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]
