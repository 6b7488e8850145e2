#!/usr/bin/env bash
# bench/tune_bench.sh: XGBoost-guided vs random search with the same trial
# budgets on matmul, conv2d and blur (seeds 1..3, medians): best GFLOP/s
# against trials (CSV + PNG via gnuplot when installed), trials needed to
# reach 90 % of the best speed found, the model's pairwise accuracy on
# held-out measured candidates, the search's scoring rate, and trials/s.
# Usage: bench/tune_bench.sh BUILD_DIR [TRIALS] [OUTDIR]   (not part of make test)
set -eu
build=$1 trials=${2:-256} out=${3:-bench/results/tune}
root=$(cd "$(dirname "$0")/.." && pwd)
kiln=$build/kiln
mkdir -p "$out"
cc -O2 -D_GNU_SOURCE -I"$root" -I"$root/include" "$root/bench/tune_acc.c" "$build/libkiln.a" \
  -lLLVM-19 -lyaml -lxgboost -lsqlite3 -lm -lpthread -o "$out/tune_acc"
declare -A args=(
  [matmul]="$root/examples/matmul.yaml --param M=256 --param N=256 --param K=256"
  [conv2d]="$root/examples/conv2d.yaml"
  [blur]="$root/examples/blur.yaml --param H=512 --param W=512 --param OH=510 --param OW=510"
)
summary=$out/summary.txt
: >"$summary"
for wl in matmul conv2d blur; do
  for strat in evolutionary random; do
    for seed in 1 2 3; do
      db=$out/$wl-$strat-$seed.db
      rm -f "$db"*
      # shellcheck disable=SC2086
      "$kiln" tune ${args[$wl]} --trials "$trials" --seed "$seed" --strategy "$strat" \
        --db "$db" --curve "$out/$wl-$strat-$seed.csv" --json --min-time 5 --repeats 3 \
        | tail -n 1 >"$out/$wl-$strat-$seed.json"
      echo "$wl $strat $seed $(cat "$out/$wl-$strat-$seed.json")"
    done
  done
  # median over seeds of best-so-far at each trial; trials to 90 % of the best found
  awk -F, -v wl="$wl" -v T="$trials" '
    FNR == 1 { f++; split(FILENAME, p, "-"); s = (FILENAME ~ /random/) ? "random" : "evolutionary"; next }
    { b[s, f, $1] = $4; if ($4 > top) top = $4 }
    END {
      print "trial,evolutionary,random" > (ENVIRON["OUT"] "/" wl "-curve.csv")
      for (t = 1; t <= T; t++) {
        line = t
        for (k = 0; k < 2; k++) {
          st = k ? "random" : "evolutionary"; n = 0
          for (i = 1; i <= f; i++) if ((st, i, t) in b) v[n++] = b[st, i, t]
          for (a = 1; a < n; a++) for (c = a; c > 0 && v[c - 1] > v[c]; c--) { x = v[c]; v[c] = v[c - 1]; v[c - 1] = x }
          m = n ? v[int((n - 1) / 2)] : ""; delete v
          line = line "," m; med[st, t] = m
        }
        print line > (ENVIRON["OUT"] "/" wl "-curve.csv")
      }
      for (k = 0; k < 2; k++) {
        st = k ? "random" : "evolutionary"; r90 = "never"
        for (t = 1; t <= T; t++) if (med[st, t] >= 0.9 * top) { r90 = t; break }
        printf "%s %s: median best %.1f GFLOP/s at 64/128/256 trials: %s %s %s; 90%% of %.1f reached at trial %s\n",
          wl, st, med[st, T], med[st, 64], med[st, 128], med[st, 256], top, r90
      }
    }' OUT="$out" $(ls "$out/$wl"-evolutionary-*.csv "$out/$wl"-random-*.csv) | tee -a "$summary"
  for seed in 1 2 3; do
    echo "$wl pairwise accuracy (seed $seed, random-search records): $("$out/tune_acc" "$out/$wl-random-$seed.db")" |
      tee -a "$summary"
  done
  grep -ho '"score_rate": [0-9]*' "$out/$wl"-evolutionary-*.json | tr '\n' ' ' | sed "s/^/$wl scoring rate (candidates\/s): /" | tee -a "$summary"; echo | tee -a "$summary"
  grep -h . "$out/$wl"-*-1.json | sed -n 's/.*"new_trials": \([0-9]*\).*"seconds": \([0-9.]*\).*/\1 \2/p' |
    awk -v wl="$wl" '{ printf "%s trials/s: %.2f\n", wl, $1 / $2 }' | tee -a "$summary"
  if command -v gnuplot >/dev/null; then
    gnuplot -e "set terminal png size 800,500; set output '$out/$wl-curve.png'; set datafile separator ','; \
      set key bottom right; set xlabel 'trials'; set ylabel 'best GFLOP/s (median of 3 seeds)'; set title '$wl'; \
      plot '$out/$wl-curve.csv' using 1:2 with lines title 'XGBoost-guided', '' using 1:3 with lines title 'random'"
  fi
done
echo "summary in $summary"
