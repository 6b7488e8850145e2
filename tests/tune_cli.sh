#!/usr/bin/env bash
# Tuner tests through the CLI: kiln tune / kiln db flags and exit codes,
# --json, the database used by run/compile, a user design space, injected
# crashing and hanging candidates, and SIGKILL + resume.
# Usage: tune_cli.sh KILN SRCROOT SCRATCH
set -u
kiln=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") root=$2 tmp=$3
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
json_int() { # key -> value from the last line of $tmp/out
  tail -n 1 "$tmp/out" | sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"
}
FAST=(--min-time 2 --repeats 1 --threads 1)
MM=$P/small_matmul.yaml

# ---- usage errors
expect_exit 2 "bad --trials" "$kiln" tune "$MM" --trials zero
expect_exit 2 "bad --strategy" "$kiln" tune "$MM" --strategy greedy
expect_exit 2 "db without subcommand" "$kiln" db
expect_exit 2 "db bad subcommand" "$kiln" db frob
expect_exit 2 "--schedule and --db" "$kiln" run "$MM" --schedule x --db y
expect_exit 1 "db list of a missing file" "$kiln" db list --db "$tmp/none.db"
expect_in "$tmp/err" "no database" "missing db named"
expect_exit 1 "tune a missing file" "$kiln" tune "$tmp/none.yaml" --db "$tmp/a.db"

# ---- a short tuning run, --json and the curve
expect_exit 0 "tune" "$kiln" tune "$MM" --trials 24 --db "$tmp/a.db" --json --seed 3 \
  --curve "$tmp/curve.csv" "${FAST[@]}"
last=$(tail -n 1 "$tmp/out")
for key in name trials failures best_ms best_gflops seconds search_seconds measure_seconds \
  model_seconds score_rate; do
  echo "$last" | grep -q "\"$key\"" && ok || bad "tune json lacks $key: $last"
done
[ "$(json_int trials)" = 24 ] && ok || bad "trials != 24: $last"
[ "$(json_int new_trials)" = 24 ] && ok || bad "new_trials != 24: $last"
# the phases add up to no more than the whole
awk -v a="$(json_int search_seconds)" -v b="$(json_int measure_seconds)" \
  -v c="$(json_int model_seconds)" -v t="$(json_int seconds)" \
  'BEGIN { exit !(b > 0 && a + b + c <= t + 0.05) }' && ok || bad "time breakdown: $last"
[ "$(wc -l <"$tmp/curve.csv")" = 25 ] && ok || bad "curve has $(wc -l <"$tmp/curve.csv") lines"
expect_in "$tmp/curve.csv" "^trial,seconds,gflops,best_gflops,status" "curve header"
# resuming with the same budget does nothing more; a larger one continues
expect_exit 0 "tune again" "$kiln" tune "$MM" --trials 24 --db "$tmp/a.db" --json "${FAST[@]}"
[ "$(json_int new_trials)" = 0 ] && ok || bad "re-run measured again: $(tail -n1 "$tmp/out")"
expect_exit 0 "tune more" "$kiln" tune "$MM" --trials 30 --db "$tmp/a.db" --json "${FAST[@]}"
[ "$(json_int trials)" = 30 ] && [ "$(json_int new_trials)" = 6 ] && ok ||
  bad "continue: $(tail -n1 "$tmp/out")"
expect_exit 0 "random strategy" "$kiln" tune "$MM" --trials 8 --db "$tmp/r.db" --json \
  --strategy random "${FAST[@]}"
[ "$(json_int trials)" = 8 ] && ok || bad "random: $(tail -n1 "$tmp/out")"

# ---- kiln db
expect_exit 0 "db list" "$kiln" db list --db "$tmp/a.db"
expect_in "$tmp/out" "small_matmul +1 +30 " "db list shows the workload and its thread count"
expect_exit 0 "db best" "$kiln" db best --db "$tmp/a.db"
expect_in "$tmp/out" "# small_matmul: .* GFLOP/s" "db best header"
expect_in "$tmp/out" "decision:" "db best shows decisions"
expect_exit 0 "db best of a program" "$kiln" db best --db "$tmp/a.db" "$MM"
expect_exit 1 "db best of an untuned program" "$kiln" db best --db "$tmp/a.db" "$P/rowsum.yaml"
expect_exit 0 "db export" "$kiln" db export --db "$tmp/a.db"
[ "$(wc -l <"$tmp/out")" = 30 ] && ok || bad "export has $(wc -l <"$tmp/out") lines"
expect_in "$tmp/out" '"verified":true' "exported records verified"

# ---- run / compile / show use the best record; the trace replays as --schedule
expect_exit 0 "run --db" "$kiln" run "$MM" --db "$tmp/a.db" --json --min-time 2 --repeats 1
expect_in "$tmp/err" "best record" "run says it used the database"
expect_exit 0 "show --db" "$kiln" show "$MM" --db "$tmp/a.db"
cp "$tmp/out" "$tmp/best.sched"
"$kiln" db best --db "$tmp/a.db" "$MM" >"$tmp/best.trace"
expect_exit 0 "show a trace as --schedule" "$kiln" show "$MM" --schedule "$tmp/best.trace"
cmp -s "$tmp/out" "$tmp/best.sched" && ok || bad "trace replay differs from the db's schedule"
(cd "$tmp" && cp a.db kiln.db && "$kiln" show "$MM" >"$tmp/out2" 2>"$tmp/err2")
cmp -s "$tmp/out2" "$tmp/best.sched" && ok || bad "./kiln.db not used by default"
expect_exit 0 "compile --db" "$kiln" compile "$MM" --db "$tmp/a.db" -o "$tmp/mm.o"
[ -s "$tmp/mm.o" ] && ok || bad "no object written"

# ---- records are kept per thread count; run --db takes its own count's
expect_exit 0 "tune for 2 threads" "$kiln" tune "$MM" --trials 4 --db "$tmp/a.db" --threads 2 \
  --min-time 2 --repeats 1
expect_exit 0 "db list, two counts" "$kiln" db list --db "$tmp/a.db"
[ "$(grep -c '^small_matmul ' "$tmp/out")" = 2 ] && ok || bad "one workload per thread count: $(cat "$tmp/out")"
for t in 1 2; do
  g=$(sqlite3 "$tmp/a.db" "SELECT printf('%.2f', max(r.gflops)) FROM record r JOIN workload w
    ON w.id = r.workload WHERE w.target LIKE '% threads=$t' AND r.error IS NULL AND r.verified")
  expect_exit 0 "run --db --threads $t" "$kiln" run "$MM" --db "$tmp/a.db" --threads "$t" \
    --min-time 2 --repeats 1
  expect_in "$tmp/err" "\($g GFLOP/s when tuned\)" "run --threads $t uses the $t-thread records"
done
expect_exit 0 "run --db --threads 3 (never tuned: nearest count)" "$kiln" run "$MM" \
  --db "$tmp/a.db" --threads 3 --min-time 2 --repeats 1
expect_in "$tmp/err" "\($g GFLOP/s when tuned\)" "3 threads falls back to the 2-thread records"

# ---- a user design space; injected crashes and hangs
cat >"$tmp/space.trace" <<'EOF'
# a hand-written design space: crashes at width 5, hangs at width 9
w = sample_categorical([3, 5, 9, 15], [0.25, 0.25, 0.25, 0.25])
C.jo, C.ji = split(C.j, w)
t = sample_perfect_tile(C.i, 2, 37)
C.io, C.ii = split(C.i, t)
u = sample_categorical([0, 1])
unroll(C.ji) if u
EOF
KILN_TEST_FAULT='crash:split(C.j, 5);hang:split(C.j, 9)' \
  expect_exit 0 "tune with faults" "$kiln" tune "$MM" --space "$tmp/space.trace" --trials 12 \
  --db "$tmp/f.db" --json --timeout 1500 "${FAST[@]}"
fl=$(json_int failures)
[ -n "$fl" ] && [ "$fl" -ge 2 ] && ok || bad "expected failures: $(tail -n1 "$tmp/out")"
[ "$(json_int trials)" -ge 8 ] && ok || bad "faulty run stopped early: $(tail -n1 "$tmp/out")"
n_crash=$(sqlite3 "$tmp/f.db" "SELECT count(*) FROM record WHERE error LIKE 'crash:%SIGSEGV%'")
n_hang=$(sqlite3 "$tmp/f.db" "SELECT count(*) FROM record WHERE error LIKE 'timeout:%'")
n_ok=$(sqlite3 "$tmp/f.db" "SELECT count(*) FROM record WHERE error IS NULL AND verified = 1")
[ "$n_crash" -ge 1 ] && [ "$n_hang" -ge 1 ] && [ "$n_ok" -ge 4 ] && ok ||
  bad "crash $n_crash, timeout $n_hang, ok $n_ok"
expect_exit 1 "space with a bad line" "$kiln" tune "$MM" --space "$P/bad_line3.sched" \
  --db "$tmp/b.db" "${FAST[@]}"
expect_in "$tmp/err" "bad_line3.sched:3:.*C.zz" "space error place"

# ---- SIGKILL part-way, then resume: nothing committed is lost
"$kiln" tune "$MM" --trials 60 --db "$tmp/k.db" "${FAST[@]}" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 200); do
  n=$(sqlite3 "$tmp/k.db" "SELECT count(*) FROM record" 2>/dev/null || echo 0)
  [ "${n:-0}" -ge 8 ] && break
  sleep 0.1
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
before=$(sqlite3 "$tmp/k.db" "SELECT count(*) FROM record")
[ "$before" -ge 8 ] && [ "$before" -lt 60 ] && ok || bad "killed run left $before records"
[ "$(sqlite3 "$tmp/k.db" "PRAGMA integrity_check")" = ok ] && ok || bad "db damaged by kill"
expect_exit 0 "resume" "$kiln" tune "$MM" --trials 60 --db "$tmp/k.db" --json "${FAST[@]}"
[ "$(json_int trials)" = 60 ] && [ "$(json_int new_trials)" = $((60 - before)) ] && ok ||
  bad "resume after $before: $(tail -n1 "$tmp/out")"
[ "$(sqlite3 "$tmp/k.db" "SELECT count(*) FROM record")" = 60 ] && ok || bad "records lost"

echo "tune_cli: $checks checks, $fails failed"
[ "$fails" = 0 ]
