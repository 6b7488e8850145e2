/* runtime/runtime.h: what JIT-compiled kernels and the measuring process
 * call.  Stands alone: depends on libc and pthreads only.
 *
 * Emitted object files do not link this library: codegen puts an internal
 * fork-join parallel-for into each object instead. */
#ifndef KILN_RUNTIME_H
#define KILN_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

/* Body of a parallel loop: runs iterations [begin, end) with ctx. */
typedef void (*kiln_rt_body)(void *ctx, int64_t begin, int64_t end);

/* Runs body over [0, n) split in contiguous chunks over the thread pool
 * (the caller's thread takes part).  Nested calls run serially.
 * Thread-safe: concurrent callers are serialised. */
void kiln_rt_parallel_for(kiln_rt_body body, void *ctx, int64_t n);

/* Threads used by parallel loops; 0 or less means all online cores (the
 * default).  Takes effect at the next parallel loop. */
void kiln_rt_set_num_threads(int n);
int kiln_rt_get_num_threads(void);

/* 64-byte aligned allocation; free with kiln_rt_free (NULL ok). */
void *kiln_rt_alloc(size_t bytes);
void kiln_rt_free(void *p);

/* Monotonic clock in seconds. */
double kiln_rt_now(void);

#endif
