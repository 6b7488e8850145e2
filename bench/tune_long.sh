#!/usr/bin/env bash
# bench/tune_long.sh: does `kiln tune` reach the hand-written schedules?
#
# For each workload (matmul 1024^3, conv2d, blur 2048^2 by default, the
# examples' own sizes): tunes TRIALS (1000) trials from an empty database
# with kernels on THREADS (1) thread and prints the time it took; then times
# the tuned best and the hand schedule (examples/NAME.sched) alternately,
# REPS (5) times each with `kiln run --min-time 300`, and prints the
# medians and their ratio; for matmul it also runs bench (one run, the
# tuned schedule) for OpenBLAS sgemm and oneDNN on the same thread count in
# the same minute.  Not part of make test.
#
# Usage: bench/tune_long.sh BUILD_DIR [OUTDIR]
# Environment: TRIALS, THREADS, REPS, SEED (1), WORKLOADS ("matmul conv2d blur").
set -eu
build=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
out=${2:-$root/bench/results/tune_long}
trials=${TRIALS:-1000} threads=${THREADS:-1} reps=${REPS:-5} seed=${SEED:-1}
workloads=${WORKLOADS:-matmul conv2d blur}
kiln=$build/kiln
mkdir -p "$out"
summary=$out/summary.txt
echo "# kiln tune --trials $trials vs hand schedules: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores," \
  "load $(cut -d' ' -f1-3 /proc/loadavg), kernels on $threads thread(s), seed $seed" | tee "$summary"

gflops() { # schedule-or-db args...: one timed run's GFLOP/s
  "$kiln" run "$@" --threads "$threads" --min-time 300 --json | sed -n 's/.*"gflops": \([0-9.]*\).*/\1/p'
}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

for wl in $workloads; do
  yaml=$root/examples/$wl.yaml
  db=$out/$wl.db
  rm -f "$db" "$db-wal" "$db-shm"
  "$kiln" tune "$yaml" --trials "$trials" --seed "$seed" --threads "$threads" --db "$db" \
    --curve "$out/$wl.csv" --json | tail -n 1 >"$out/$wl.json"
  secs=$(sed -n 's/.*"seconds": \([0-9.]*\).*/\1/p' "$out/$wl.json")
  "$kiln" show "$yaml" --db "$db" >"$out/$wl-tuned.sched"
  : >"$out/$wl-hand.txt"
  : >"$out/$wl-tuned.txt"
  for _ in $(seq "$reps"); do
    gflops "$yaml" --schedule "$root/examples/$wl.sched" >>"$out/$wl-hand.txt"
    gflops "$yaml" --db "$db" >>"$out/$wl-tuned.txt"
  done
  hand=$(median <"$out/$wl-hand.txt") tuned=$(median <"$out/$wl-tuned.txt")
  printf '%s: tuned %.1f GFLOP/s vs hand %.1f (%.2f) after %d trials in %.0f s (%.1f min)\n' \
    "$wl" "$tuned" "$hand" "$(echo "$tuned / $hand" | bc -l)" "$trials" "$secs" \
    "$(echo "$secs / 60" | bc -l)" | tee -a "$summary"
  if [ "$wl" = matmul ]; then
    # the peers in the same minute, the tuned schedule as kiln's
    KILN_BUILD=$build bash "$root/bench/run.sh" --only matmul --runs 3 \
      --schedule "$out/$wl-tuned.sched" --json "$out/bench-matmul.json" | tee "$out/bench-matmul.txt"
  fi
done
