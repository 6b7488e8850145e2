#!/usr/bin/env bash
# Every must-fail input through the CLI: non-zero exit (1), no crash, and
# stderr naming file:line:col and the expected message.
#  - tests/fail/*.yaml: first line `# expect: LINE:COL: message substring`
#  - tests/fail/sched_*.txt: `# yaml: PROGRAM.yaml` (in tests/fail/programs)
#    then `# expect: LINE:COL: message substring` (`-` for LINE:COL: an
#    error found while lowering, where no line is known)
set -u
kiln=$1 root=$2 tmp=$3
rm -rf "$tmp" && mkdir -p "$tmp"
F=$root/tests/fail
n=0 fails=0
check() { # file expect-line command...
  local f=$1 exp=$2; shift 2
  n=$((n + 1))
  local lc=${exp%%: *} msg=${exp#*: }
  "$@" >"$tmp/out" 2>"$tmp/err"
  local st=$?
  if [ $st -ne 1 ]; then
    fails=$((fails + 1)); echo "FAIL $f: exit $st (wanted 1)"; cat "$tmp/err"; return
  fi
  # `-`: an error found where no line is known (lowering) has no place
  if { [ "$lc" != "-" ] && ! grep -qF -- "$f:$lc: " "$tmp/err"; } || ! grep -qF -- "$msg" "$tmp/err"; then
    fails=$((fails + 1)); echo "FAIL $f: wanted '$f:$lc: ...$msg...', got:"; cat "$tmp/err"
  fi
}
for f in "$F"/*.yaml; do
  exp=$(sed -n '1s/^# expect: //p' "$f")
  [ -n "$exp" ] || { echo "FAIL $f: no '# expect:' line"; fails=$((fails + 1)); continue; }
  check "$f" "$exp" "$kiln" run "$f" --min-time 1 --repeats 1
done
for f in "$F"/sched_*.txt; do
  [ -e "$f" ] || continue
  prog=$(sed -n '1s/^# yaml: //p' "$f")
  exp=$(sed -n '2s/^# expect: //p' "$f")
  check "$f" "$exp" "$kiln" run "$F/programs/$prog" --schedule "$f" --min-time 1 --repeats 1
done
echo "must_fail: $n inputs, $fails failed"
echo "$((n - fails)) passed, $fails failed"
[ $fails -eq 0 ] && [ $n -ge 40 ]
