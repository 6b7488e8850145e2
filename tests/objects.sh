#!/usr/bin/env bash
# Two emitted objects (each with parallel loops, so each carrying its own
# internal parallel-for) link into one C program with only -lm -lpthread.
set -u
kiln=$1 root=$2 tmp=$3
rm -rf "$tmp" && mkdir -p "$tmp"
P=$root/tests/programs
set -e
"$kiln" compile "$P/small_matmul.yaml" --schedule "$P/small_matmul.sched" -o "$tmp/small_matmul.o"
"$kiln" compile "$P/rowsum.yaml" --schedule "$P/rowsum.sched" -o "$tmp/rowsum.o"
cc -std=c11 -Wall -Werror -I"$tmp" "$P/link_main.c" "$tmp/small_matmul.o" "$tmp/rowsum.o" \
  -lm -lpthread -o "$tmp/link_main"
# Exported symbols: exactly the two kernels (everything else is internal).
syms=$(nm -g --defined-only "$tmp/small_matmul.o" "$tmp/rowsum.o" | awk 'NF==3 {print $3}' | sort | tr '\n' ' ')
[ "$syms" = "rowsum small_matmul " ] || { echo "unexpected exported symbols: $syms"; exit 1; }
for t in 1 2; do KILN_NUM_THREADS=$t "$tmp/link_main"; done
echo "1 passed, 0 failed"
