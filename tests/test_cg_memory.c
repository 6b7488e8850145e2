/* tests/test_cg_memory.c: compiling, calling and freeing a kernel 2000
 * times must keep memory flat (fresh context + resource tracker per
 * kernel); each kernel differs in a constant, which a shared context
 * would keep forever.  Prints RSS and compile latency. */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "test_cg_util.h"

/* Under ASan, freed memory sits in a 256 MB quarantine, which would hide
 * any real growth behind its own; this test measures RSS, so turn it off. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=0";
}

static long rss_kb(void)
{
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

static double cpu_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int cmp_d(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

enum { N = 256 };

/* C[i] = A[i] * c + B[i] (vectorized by 16), c differing per kernel, with
 * a parallel outer loop and a small local so every code path is used. */
static LFunc *small_kernel(double c)
{
    Var *io = VAR("io", N / 16), *ii = VAR("ii", 16), *t = VAR("t", 16);
    Expr *ix = ADD(MUL(V(io), I(16)), V(ii));
    LStmt *body = FOR(
        io, LOOP_PARALLEL,
        ls_alloc(
            A, 3,
            BLOCK(2,
                  FOR(ii, LOOP_VECTORIZED,
                      ST(3, V(ii), ADD(MUL(LD(DT_F32, 0, ix), CF(DT_F32, c)), LD(DT_F32, 1, ix)))),
                  FOR(t, LOOP_VECTORIZED,
                      ST(2, ADD(MUL(V(io), I(16)), V(t)), LD(DT_F32, 3, V(t)))))));
    LBuf bufs[] = {BUF("A", DT_F32, T_INPUT, N), BUF("B", DT_F32, T_INPUT, N),
                   BUF("C", DT_F32, T_OUTPUT, N), BUF("T", DT_F32, T_LOCAL, 16)};
    return FUNC("small", 3, 4, bufs, body);
}

/* A matmul-like kernel: 256^3 with a 4 x 32 register tile. */
static LFunc *mm_kernel(void)
{
    enum { M = 256, K = 256, MR = 4, NR = 32 };
    Var *io = VAR("io", M / MR), *jo = VAR("jo", N / NR), *k = VAR("k", K), *ii = VAR("ii", MR),
        *jj = VAR("jj", 2), *jv = VAR("jv", 16), *ii0 = VAR("ii0", MR), *jj0 = VAR("jj0", 2),
        *jv0 = VAR("jv0", 16);
    Expr *row = ADD(MUL(V(io), I(MR)), V(ii)),
         *col = ADD(ADD(MUL(V(jo), I(NR)), MUL(V(jj), I(16))), V(jv));
    Expr *row0 = ADD(MUL(V(io), I(MR)), V(ii0)),
         *col0 = ADD(ADD(MUL(V(jo), I(NR)), MUL(V(jj0), I(16))), V(jv0));
    Expr *cix = ADD(MUL(row, I(N)), col);
    LStmt *init =
        FOR(ii0, LOOP_UNROLLED,
            FOR(jj0, LOOP_UNROLLED,
                FOR(jv0, LOOP_VECTORIZED, ST(2, ADD(MUL(row0, I(N)), col0), CF(DT_F32, 0)))));
    LStmt *upd =
        FOR(ii, LOOP_UNROLLED,
            FOR(jj, LOOP_UNROLLED,
                FOR(jv, LOOP_VECTORIZED,
                    ST(2, cix,
                       ADD(LD(DT_F32, 2, cix), MUL(LD(DT_F32, 0, ADD(MUL(row, I(K)), V(k))),
                                                   LD(DT_F32, 1, ADD(MUL(V(k), I(N)), col))))))));
    LStmt *body =
        FOR(io, LOOP_PARALLEL, FOR(jo, LOOP_SERIAL, BLOCK(2, init, FOR(k, LOOP_SERIAL, upd))));
    LBuf bufs[] = {BUF("A", DT_F32, T_INPUT, M * K), BUF("B", DT_F32, T_INPUT, K * N),
                   BUF("C", DT_F32, T_OUTPUT, M * N)};
    return FUNC("mm", 3, 3, bufs, body);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    A = arena_new();
    enum { ITERS = 2000 };
    float *a = galloc(N * 4, true), *b = galloc(N * 4, true), *c = galloc(N * 4, true);
    for (int i = 0; i < N; i++)
        a[i] = (float)i, b[i] = 1.0f;

    long rss0 = 0, rss_mid = 0;
    int bad = 0, failed = 0;
    static double ms[ITERS];
    for (int it = 0; it < ITERS; it++) {
        Arena *saved = A;
        A = arena_new(); /* the IR of one candidate, freed with it */
        double cst = 1.0 + it * 0.001;
        CgKernel *k = compile(small_kernel(cst));
        arena_free(A);
        A = saved;
        if (!k) {
            failed++;
            continue;
        }
        ms[it] = cg_kernel_compile_ms(k);
        c[0] = c[N - 1] = -1;
        /* a*c + b may be contracted to one fma: allow the rounding */
        float want = (float)(N - 1) * (float)cst + 1.0f;
        if (run(k, 3, a, b, c) != 0 || fabsf(c[N - 1] - want) > 1e-6f * want || c[0] != 1.0f)
            bad++;
        cg_kernel_free(k);
        if (it == 0)
            rss0 = rss_kb();
        if (it == ITERS / 2)
            rss_mid = rss_kb();
        if (it > 0 && it % 500 == 0)
            printf("after %4d compiles: RSS %ld KB\n", it, rss_kb());
    }
    long rss1 = rss_kb();
    CHECK(failed == 0);
    CHECKF(bad == 0, "%d kernels computed wrong results", bad);
    qsort(ms, ITERS, sizeof ms[0], cmp_d);
    printf("small kernel: %d compiles, median %.2f ms, p90 %.2f ms\n", ITERS, ms[ITERS / 2],
           ms[ITERS * 9 / 10]);
    printf("RSS after first compile %ld KB, after %d: %ld KB, after %d: %ld KB (growth %ld KB)\n",
           rss0, ITERS / 2, rss_mid, ITERS, rss1, rss1 - rss0);
    CHECKF(rss1 - rss0 < 10 * 1024, "RSS grew by %ld KB over %d compiles", rss1 - rss0, ITERS);

    /* compile latency of a matmul-like kernel */
    LFunc *mm = mm_kernel();
    enum { NC = 31 };
    double mms[NC], cms[NC];
    for (int i = 0; i < NC; i++) {
        double c0 = cpu_ms();
        CgKernel *k = compile(mm);
        cms[i] = cpu_ms() - c0;
        mms[i] = k ? cg_kernel_compile_ms(k) : 0;
        cg_kernel_free(k);
    }
    qsort(mms, NC, sizeof mms[0], cmp_d);
    qsort(cms, NC, sizeof cms[0], cmp_d);
    printf("matmul-like kernel (256^3, 4x32 tile): median compile %.2f ms (cpu %.2f ms)\n",
           mms[NC / 2], cms[NC / 2]);

    gfree_all();
    arena_free(A);
    return t_done("test_cg_memory");
}
