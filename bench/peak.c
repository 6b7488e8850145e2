/* bench/peak.c: measures this core's floating-point peak with a loop of
 * independent fused multiply-adds, so kernel results can be read as a
 * fraction of what the hardware can do at all.
 *
 * Each loop iteration issues NACC independent FMAs; NACC covers FMA latency
 * times the number of FMA pipes on current x86 cores (4 cycles x 2 pipes = 8
 * in flight), with margin.  Compiled with clang-19 -O2 -march=native; the
 * 512-bit variant is only built when the compiler targets AVX-512F. */
#include "peak.h"

#include <immintrin.h>
#include <time.h>

#define NACC 16

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#ifdef __AVX512F__
static float fma512(long iters)
{
    __m512 acc[NACC];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < NACC; i++)
        acc[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < iters; n++) {
        for (int i = 0; i < NACC; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], a, b);
        /* keeps clang from interleaving or collapsing iterations */
        __asm__ volatile(""
                         : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]), "+v"(acc[4]),
                           "+v"(acc[5]), "+v"(acc[6]), "+v"(acc[7]));
    }
    __m512 s = acc[0];
    for (int i = 1; i < NACC; i++)
        s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}
#endif

static float fma256(long iters)
{
    __m256 acc[NACC];
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < NACC; i++)
        acc[i] = _mm256_set1_ps((float)i);
    for (long n = 0; n < iters; n++) {
        for (int i = 0; i < NACC; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], a, b);
        __asm__ volatile(""
                         : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]), "+x"(acc[4]),
                           "+x"(acc[5]), "+x"(acc[6]), "+x"(acc[7]));
    }
    __m256 s = acc[0];
    for (int i = 1; i < NACC; i++)
        s = _mm256_add_ps(s, acc[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

volatile float peak_sink;

/* Best of several short runs: the first ones also bring the core out of
 * a low-power state. */
static double measure(int width)
{
    const long iters = 2000000;
    double best = 0;
    for (int rep = 0; rep < 7; rep++) {
        double t0 = now_s();
        float r;
#ifdef __AVX512F__
        r = width == 16 ? fma512(iters) : fma256(iters);
#else
        r = fma256(iters);
#endif
        double dt = now_s() - t0;
        peak_sink = r;
        double gf = (double)iters * NACC * width * 2 / dt * 1e-9;
        if (gf > best)
            best = gf;
    }
    return best;
}

double peak_gflops_f32(int *width)
{
#ifdef __AVX512F__
    *width = 16;
    return measure(16);
#else
    *width = 8;
    return measure(8);
#endif
}

double peak_gflops_f32_avx2(void)
{
    return measure(8);
}
