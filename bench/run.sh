#!/usr/bin/env bash
# bench/run.sh: builds the benchmark and runs it on every example.
#
#   bash bench/run.sh [--runs 3] [--only matmul,conv2d] [--nokiln] [bench options...]
#
# KILN_BUILD (default: build, relative to the source root) is the kiln
# build directory whose libkiln.a is linked.  --nokiln builds and runs the
# peers only (naive, OpenBLAS, oneDNN, peak), for a tree where kiln does
# not build.
# Other options go to the bench program (bench --help).  Results: the
# table on stdout, JSON lines in bench/results/last.json.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${KILN_BUILD:-build}"
case "$build" in /*) ;; *) build="$root/$build" ;; esac

nokiln=0
args=()
for a in "$@"; do
  if [ "$a" = "--nokiln" ]; then nokiln=1; else args+=("$a"); fi
done

if [ $nokiln = 1 ]; then
  make -s -C "$root/bench" KILN_BUILD="$build" nokiln
  exe="$build/bench/bench-nokiln"
else
  make -s -C "$root/bench" KILN_BUILD="$build"
  exe="$build/bench/bench"
fi

# OpenBLAS's own CPU detection picks a slow SSE3 kernel on this kind of
# VM; SkylakeX selects its AVX-512 sgemm.  OPENBLAS_NUM_THREADS caps its
# pool at the two threads bench asks for.
export OPENBLAS_CORETYPE=SkylakeX
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}"
# Debian's oneDNN runs on OpenMP; with libgomp's default (spin-wait) policy
# its idle worker competes with the next kernel and with OpenBLAS's threads
# on a 2-core machine (oneDNN conv2d on 2 threads measured 29 GFLOP/s
# instead of 180).  Passive workers sleep when idle.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
exec "$exe" --root "$root" "${args[@]}"
