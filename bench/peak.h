/* bench/peak.h: single-core f32 FMA peak, measured (bench/peak.c). */
#ifndef KILN_BENCH_PEAK_H
#define KILN_BENCH_PEAK_H

/* Peak GFLOP/s of one core with the widest vectors the build targets;
 * *width receives the f32 lanes used (16 for AVX-512, else 8). */
double peak_gflops_f32(int *width);
/* The same with 256-bit vectors. */
double peak_gflops_f32_avx2(void);

#endif
