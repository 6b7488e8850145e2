#!/usr/bin/env bash
# bench/tune_bench.sh: XGBoost-guided vs random search with the same trial
# budgets on matmul 512^3, conv2d and blur 2048^2 (3 seeds, medians): best GFLOP/s
# against trials (CSV per workload, one PNG of all three via gnuplot), the
# best at 64/128/256 trials, the trials each strategy needs to reach 90 % of
# the best speed found, the model's pairwise accuracy on held-out measured
# candidates (5-fold over each random-search database, and over all the
# workload's records pooled), the search's
# scoring rate (candidates featurised and predicted per second), the
# trials per second and where the tuner's time went, and the same for a
# guided run on a small kernel (matmul 256^3, TP_TRIALS trials, 128).
#
# Usage: bench/tune_bench.sh BUILD_DIR [MAX_TRIALS] [OUTDIR]  (not part of make test)
# Environment: THREADS (kernel threads while measuring, default 1: on a
# small shared machine one thread is far less noisy), SEEDS ("1 2 3"),
# WORKLOADS ("matmul conv2d blur"), PLOT (the PNG; default
# bench/results/tune_curve.png).
set -eu
build=$1 trials=${2:-256}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${3:-$root/bench/results/tune}
threads=${THREADS:-1}
seeds=${SEEDS:-1 2 3}
workloads=${WORKLOADS:-matmul conv2d blur}
plot=${PLOT:-$root/bench/results/tune_curve.png}
kiln=$build/kiln
mkdir -p "$out"
cc -O2 -D_GNU_SOURCE -I"$root" -I"$root/include" "$root/bench/tune_acc.c" "$build/libkiln.a" \
  -lLLVM-19 -lyaml -lxgboost -lsqlite3 -lm -lpthread -o "$out/tune_acc"
declare -A args=(
  [matmul]="$root/examples/matmul.yaml --param M=512 --param N=512 --param K=512"
  [conv2d]="$root/examples/conv2d.yaml"
  [blur]="$root/examples/blur.yaml"
)
summary=$out/summary.txt
{
  echo "# kiln tune benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# budget $trials trials, seeds $seeds, --threads $threads, --min-time 5 --repeats 3"
} >"$summary"
for wl in $workloads; do
  # seed-major, the strategies alternating: a machine whose load drifts
  # during the run biases neither
  for seed in $seeds; do
    for strat in evolutionary random; do
      db=$out/$wl-$strat-$seed.db
      rm -f "$db" "$db-wal" "$db-shm"
      # shellcheck disable=SC2086
      "$kiln" tune ${args[$wl]} --trials "$trials" --seed "$seed" --strategy "$strat" \
        --threads "$threads" --db "$db" --curve "$out/$wl-$strat-$seed.csv" --json \
        --min-time 5 --repeats 3 | tail -n 1 >"$out/$wl-$strat-$seed.json"
      echo "$wl $strat $seed $(cat "$out/$wl-$strat-$seed.json")"
    done
  done
  # median over seeds of the best-so-far at each trial; trials to 90 % of
  # the best any run of this workload found
  OUT="$out" awk -F, -v wl="$wl" -v T="$trials" '
    FNR == 1 { f++; s = (FILENAME ~ /-random-/) ? "random" : "evolutionary"; next }
    { b[s, f, $1] = $4; if ($4 > top) top = $4 }
    END {
      csv = ENVIRON["OUT"] "/" wl "-curve.csv"
      print "trial,evolutionary,random" > csv
      for (t = 1; t <= T; t++) {
        line = t
        for (k = 0; k < 2; k++) {
          st = k ? "random" : "evolutionary"; n = 0
          for (i = 1; i <= f; i++) if ((st, i, t) in b) v[n++] = b[st, i, t]
          for (a = 1; a < n; a++) for (c = a; c > 0 && v[c - 1] > v[c]; c--) { x = v[c]; v[c] = v[c - 1]; v[c - 1] = x }
          m = n ? v[int((n - 1) / 2)] : ""; delete v
          line = line "," m; med[st, t] = m
        }
        print line > csv
      }
      for (k = 0; k < 2; k++) {
        st = k ? "random" : "evolutionary"; r90 = "never"
        for (t = 1; t <= T; t++) if (med[st, t] != "" && med[st, t] >= 0.9 * top) { r90 = t; break }
        at = ""
        for (q = 64; q <= T; q *= 2) at = at sprintf(" %d: %.1f", q, med[st, q])
        printf "%s %-12s median best GFLOP/s at%s; 90%% of %.1f reached at trial %s\n", wl, st, at, top, r90
      }
    }' $(ls "$out/$wl"-evolutionary-*.csv "$out/$wl"-random-*.csv | grep -v curve) | tee -a "$summary"
  accs=""
  for seed in $seeds; do
    accs="$accs $("$out/tune_acc" -k 5 "$out/$wl-random-$seed.db" | awk '{ print $4 }')"
  done
  echo "$wl pairwise accuracy (5-fold, random-search records, per seed):$accs" | tee -a "$summary"
  # every record this benchmark measured for the workload (both strategies,
  # all seeds: what a database holds after a few tuning runs), 5-fold
  echo "$wl pairwise accuracy (5-fold, all $(ls "$out/$wl"-*-*.db | wc -l) runs' records pooled):" \
    "$("$out/tune_acc" -pool -k 5 "$out/$wl"-*-*.db | awk '{ printf "%s (%d train, %d held out per fold)", $4, $2, $3 }')" |
    tee -a "$summary"
  echo "$wl scoring rate (candidates/s, guided runs): $(grep -ho '"score_rate": [0-9]*' "$out/$wl"-evolutionary-*.json | awk '{ printf "%s ", $2 }')" |
    tee -a "$summary"
  for strat in evolutionary random; do
    # trials per second, and where the time went (summed over the seeds)
    cat "$out/$wl-$strat"-*.json |
      sed -n 's/.*"new_trials": \([0-9]*\).*"seconds": \([0-9.]*\), "search_seconds": \([0-9.]*\), "measure_seconds": \([0-9.]*\), "model_seconds": \([0-9.]*\).*/\1 \2 \3 \4 \5/p' |
      awk -v wl="$wl" -v st="$strat" '{ n += $1; s += $2; a += $3; m += $4; c += $5 }
        END { if (s > 0) printf "%s %s trials/s: %.2f; time: compile+measure %.0f%%, search %.0f%%, cost model %.0f%%, set-up and database %.0f%%\n",
          wl, st, n / s, 100 * m / s, 100 * a / s, 100 * c / s, 100 * (s - m - a - c) / s }' |
      tee -a "$summary"
  done
done
# throughput on a small kernel: a guided run on matmul 256^3
tp=$out/throughput-matmul256
rm -f "$tp.db" "$tp.db-wal" "$tp.db-shm"
"$kiln" tune "$root/examples/matmul.yaml" --param M=256 --param N=256 --param K=256 --trials "${TP_TRIALS:-128}" \
  --seed 1 --threads "$threads" --db "$tp.db" --json --min-time 5 --repeats 3 | tail -n 1 >"$tp.json"
sed -n 's/.*"new_trials": \([0-9]*\).*"seconds": \([0-9.]*\), "search_seconds": \([0-9.]*\), "measure_seconds": \([0-9.]*\), "model_seconds": \([0-9.]*\), "score_rate": \([0-9]*\).*/\1 \2 \3 \4 \5 \6/p' "$tp.json" |
  awk '{ printf "throughput matmul 256^3 (guided, %d trials): %.2f trials/s; time: compile+measure %.0f%%, search %.0f%%, cost model %.0f%%, set-up and database %.0f%%; scoring %d candidates/s\n",
    $1, $1 / $2, 100 * $4 / $2, 100 * $3 / $2, 100 * $5 / $2, 100 * ($2 - $3 - $4 - $5) / $2, $6 }' | tee -a "$summary"
if command -v gnuplot >/dev/null; then
  n=$(echo $workloads | wc -w)
  {
    echo "set terminal pngcairo size $((420 * n)),400 noenhanced" 2>/dev/null
    echo "set output '$plot'"
    echo "set datafile separator ','"
    echo "set multiplot layout 1,$n title 'kiln tune: XGBoost-guided vs random (median of seeds $seeds, --threads $threads)'"
    echo "set key bottom right; set xlabel 'trials'; set ylabel 'best GFLOP/s'; set grid"
    for wl in $workloads; do
      echo "set title '$wl'"
      echo "plot '$out/$wl-curve.csv' using 1:2 with lines lw 2 title 'XGBoost-guided', '' using 1:3 with lines lw 2 title 'random'"
    done
    echo "unset multiplot"
  } >"$out/plot.gp"
  gnuplot "$out/plot.gp" 2>/dev/null || { sed -i 's/pngcairo/png/' "$out/plot.gp" && gnuplot "$out/plot.gp"; }
  echo "plot in $plot"
fi
echo "summary in $summary"
