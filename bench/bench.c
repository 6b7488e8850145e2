/* bench/bench.c: kiln against its peers on every example, in one run.
 *
 * For each example NAME (examples/NAME.yaml with its hand schedule
 * examples/NAME.sched) it times: the naive C version (bench/naive/NAME.c,
 * clang-19 -O3 -march=native), kiln's JIT kernel on 1 and on 2 threads,
 * and, where a library does the same job, the peers on 1 and 2 threads:
 *   matmul            OpenBLAS cblas_sgemm; oneDNN dnnl_sgemm
 *   matmul_bias_relu  OpenBLAS sgemm, then a separate bias+relu pass
 *   conv2d            OpenBLAS im2col + sgemm; oneDNN's convolution
 *                     primitive (layouts of its choice, reorders untimed)
 * Every output (kiln's and the peers') is checked against the naive
 * version before any timing; a kernel that disagrees is reported as WRONG,
 * is not timed, and makes bench exit non-zero.
 *
 * Timing: one warm-up call, then repeats of a batch of calls (a batch lasts
 * >= 10 ms) until >= --min-ms (200) have passed and >= 5 repeats were
 * done; the median per-call time of the repeats is kept.  With --runs R
 * the whole suite runs R times and the median of the R medians is shown.
 *
 * Output: a table on stdout (GFLOP/s, or GB/s for pure data movement),
 * and JSON lines in --json PATH (default bench/results/last.json).
 *
 * Built without kiln (-DBENCH_NO_KILN) it still times the naive versions,
 * the peers and the peak, so those can be checked before the compiler
 * exists; without oneDNN's header (-DBENCH_NO_DNNL) its columns stay
 * empty. */
#include <cblas.h>
/* OpenBLAS's cblas.h pulls in <complex.h>, whose macro I would clash with
 * the tensor names of the naive prototypes. */
#undef I
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#ifndef BENCH_NO_KILN
#include "kiln/kiln.h"
#endif

#include "naive/naive.h"
#include "peak.h"

#ifndef BENCH_NO_DNNL
#include <dnnl.h>
/* oneDNN (Debian's build) runs on OpenMP: its thread count is libgomp's. */
void omp_set_num_threads(int n);
#endif

#define MAX_ARGS 4
#define MAX_RUNS 32

/* ------------------------------------------------------------ examples */

/* Adapters from a packed argument list to each naive function's ABI. */
static int call_matmul(void *const *a)
{
    return naive_matmul(a[0], a[1], a[2]);
}
static int call_matmul_bias_relu(void *const *a)
{
    return naive_matmul_bias_relu(a[0], a[1], a[2], a[3]);
}
static int call_batch_matmul(void *const *a)
{
    return naive_batch_matmul(a[0], a[1], a[2]);
}
static int call_conv2d(void *const *a)
{
    return naive_conv2d(a[0], a[1], a[2]);
}
static int call_depthwise_conv(void *const *a)
{
    return naive_depthwise_conv(a[0], a[1], a[2]);
}
static int call_blur(void *const *a)
{
    return naive_blur(a[0], a[1]);
}
static int call_softmax(void *const *a)
{
    return naive_softmax(a[0], a[1]);
}
static int call_layernorm(void *const *a)
{
    return naive_layernorm(a[0], a[1], a[2], a[3]);
}
static int call_transpose(void *const *a)
{
    return naive_transpose(a[0], a[1]);
}

typedef struct Example {
    const char *name;
    int nargs, nin; /* arguments, of which the first nin are inputs */
    long long numel[MAX_ARGS];
    double work;      /* flops per call; bytes when bytes_metric */
    int bytes_metric; /* 1: reported in GB/s (no arithmetic) */
    int peer;         /* PEER_*: which library versions are timed */
    int (*naive)(void *const *args);
} Example;

enum { PEER_NONE, PEER_MATMUL, PEER_MBR, PEER_CONV };

/* Work per call counts every arithmetic operation once (a multiply-add
 * counts 2, exp and sqrt count 1), padding taps of the convolutions
 * included, the way kiln counts them. */
/* clang-format off */
static const Example examples[] = {
    {"matmul", 3, 2, {MM_M * MM_K, MM_K * MM_N, MM_M * MM_N},
     2.0 * MM_M * MM_N * MM_K, 0, PEER_MATMUL, call_matmul},
    {"matmul_bias_relu", 4, 3, {MBR_M * MBR_K, MBR_K * MBR_N, MBR_N, MBR_M * MBR_N},
     2.0 * MBR_M * MBR_N * MBR_K + 2.0 * MBR_M * MBR_N, 0, PEER_MBR, call_matmul_bias_relu},
    {"batch_matmul", 3, 2,
     {BMM_H * BMM_M * BMM_K, BMM_H * BMM_K * BMM_N, BMM_H * BMM_M * BMM_N},
     2.0 * BMM_H * BMM_M * BMM_N * BMM_K, 0, 0, call_batch_matmul},
    {"conv2d", 3, 2, {CV_N * CV_C * CV_H * CV_W, CV_K * CV_C * 9, CV_N * CV_K * CV_H * CV_W},
     2.0 * CV_N * CV_K * CV_C * CV_H * CV_W * 9, 0, PEER_CONV, call_conv2d},
    {"depthwise_conv", 3, 2, {DW_N * DW_C * DW_H * DW_W, DW_C * 9, DW_N * DW_C * DW_H * DW_W},
     2.0 * DW_N * DW_C * DW_H * DW_W * 9, 0, 0, call_depthwise_conv},
    {"blur", 2, 1, {BL_H * BL_W, (BL_H - 2) * (BL_W - 2)},
     3.0 * BL_H * (BL_W - 2) + 3.0 * (BL_H - 2) * (BL_W - 2), 0, 0, call_blur},
    /* per element: max, subtract, exp, add, divide */
    {"softmax", 2, 1, {SM_M * SM_N, SM_M * SM_N}, 5.0 * SM_M * SM_N, 0, 0, call_softmax},
    /* per element: 1 (sum) + 4 (centre twice, square-add) + 4 (centre, 2 mul, add) */
    {"layernorm", 4, 3, {LN_M * LN_N, LN_N, LN_N, LN_M * LN_N}, 9.0 * LN_M * LN_N, 0, 0,
     call_layernorm},
    {"transpose", 2, 1, {(long long)TR_M * TR_N, (long long)TR_M * TR_N},
     2.0 * 4 * TR_M * TR_N, 1, 0, call_transpose},
};
/* clang-format on */
enum { NEX = sizeof examples / sizeof examples[0] };

/* Variants, in table order. */
enum { V_NAIVE, V_KILN1, V_KILN2, V_BLAS1, V_BLAS2, V_DNNL1, V_DNNL2, NVAR };
static const char *const var_names[NVAR] = {"naive",       "kiln_1t",   "kiln_2t",  "openblas_1t",
                                            "openblas_2t", "onednn_1t", "onednn_2t"};

/* What the peer columns are, per example (printed under the table). */
static const char *peer_what(int peer, int dnnl)
{
    switch (peer) {
    case PEER_MATMUL:
        return dnnl ? "dnnl_sgemm" : "cblas_sgemm";
    case PEER_MBR:
        return dnnl ? NULL : "cblas_sgemm, then a separate bias+relu pass";
    case PEER_CONV:
        return dnnl ? "convolution primitive, layouts of its choice (reorders untimed)"
                    : "im2col, then cblas_sgemm (both timed)";
    }
    return NULL;
}

/* -------------------------------------------------------------- timing */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef int (*Callable)(void *ctx);

static double g_min_ms = 200;

/* Median seconds per call of fn(ctx); < 0 when fn returned non-zero. */
static double time_fn(Callable fn, void *ctx)
{
    if (fn(ctx))
        return -1;
    double t0 = now_s();
    if (fn(ctx))
        return -1;
    double one = now_s() - t0;
    long batch = one > 0.010 ? 1 : (long)(0.010 / (one > 1e-7 ? one : 1e-7)) + 1;
    double samples[4096];
    int n = 0;
    double start = now_s();
    while (n < 4096 && (n < 5 || now_s() - start < g_min_ms * 1e-3)) {
        t0 = now_s();
        for (long b = 0; b < batch; b++)
            fn(ctx);
        samples[n++] = (now_s() - t0) / (double)batch;
    }
    return median(samples, n);
}

/* ------------------------------------------------------------- runners */

typedef struct NaiveCtx {
    const Example *ex;
    void *const *args;
} NaiveCtx;

static int run_naive(void *ctx)
{
    NaiveCtx *c = ctx;
    return c->ex->naive(c->args);
}

/* Runs fn(ctx, part, nparts) for part 0..n-1 on n threads (the calling
 * one included): the elementwise passes of the peers (im2col, bias+relu)
 * get the same threads as their sgemm. */
typedef void (*PartFn)(void *ctx, int part, int nparts);
typedef struct PartArg {
    PartFn fn;
    void *ctx;
    int part, nparts;
} PartArg;

static void *part_main(void *arg)
{
    PartArg *a = arg;
    a->fn(a->ctx, a->part, a->nparts);
    return NULL;
}

static void run_parts(PartFn fn, void *ctx, int n)
{
    pthread_t th[8];
    PartArg pa[8];
    if (n > 8)
        n = 8;
    int started = 0;
    for (int p = 1; p < n; p++) {
        pa[p] = (PartArg){fn, ctx, p, n};
        if (pthread_create(&th[p], NULL, part_main, &pa[p]))
            break;
        started = p;
    }
    fn(ctx, 0, n);
    for (int p = started + 1; p < n; p++) /* creation failed: do it here */
        fn(ctx, p, n);
    for (int p = 1; p <= started; p++)
        pthread_join(th[p], NULL);
}

/* OpenBLAS peers.  args: the example's argument list; col: im2col buffer. */
typedef struct BlasCtx {
    int peer, threads;
    void *const *args;
    float *col;
} BlasCtx;

static void bias_relu_part(void *ctx, int part, int nparts)
{
    BlasCtx *c = ctx;
    const float *bias = c->args[2];
    float *D = c->args[3];
    long r0 = (long)MBR_M * part / nparts, r1 = (long)MBR_M * (part + 1) / nparts;
    for (long i = r0; i < r1; i++)
        for (long j = 0; j < MBR_N; j++) {
            float v = D[i * MBR_N + j] + bias[j];
            D[i * MBR_N + j] = v > 0.0f ? v : 0.0f;
        }
}

/* col[(c*9 + r*3 + s)][y*W + x] = I[c][y+r-1][x+s-1], 0 outside. */
static void im2col_part(void *ctx, int part, int nparts)
{
    BlasCtx *c = ctx;
    const float *I = c->args[0];
    long rows = (long)CV_C * 9;
    long q0 = rows * part / nparts, q1 = rows * (part + 1) / nparts;
    for (long q = q0; q < q1; q++) {
        int ch = (int)(q / 9), r = (int)(q / 3 % 3), s = (int)(q % 3);
        const float *in = I + (long)ch * CV_H * CV_W;
        float *out = c->col + q * CV_H * CV_W;
        for (int y = 0; y < CV_H; y++) {
            int iy = y + r - 1;
            for (int x = 0; x < CV_W; x++) {
                int ix = x + s - 1;
                out[y * CV_W + x] =
                    iy >= 0 && iy < CV_H && ix >= 0 && ix < CV_W ? in[iy * CV_W + ix] : 0.0f;
            }
        }
    }
}

static int run_blas(void *ctx)
{
    BlasCtx *c = ctx;
    void *const *a = c->args;
    switch (c->peer) {
    case PEER_MATMUL:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, MM_M, MM_N, MM_K, 1.0f, a[0], MM_K,
                    a[1], MM_N, 0.0f, a[2], MM_N);
        return 0;
    case PEER_MBR:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, MBR_M, MBR_N, MBR_K, 1.0f, a[0],
                    MBR_K, a[1], MBR_N, 0.0f, a[3], MBR_N);
        run_parts(bias_relu_part, c, c->threads);
        return 0;
    case PEER_CONV:
        /* O[k][y*W + x] = sum_q Wt[k][q] col[q][y*W + x], q = c*9 + r*3 + s (N = 1) */
        run_parts(im2col_part, c, c->threads);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, CV_K, CV_H * CV_W, CV_C * 9, 1.0f,
                    a[1], CV_C * 9, c->col, CV_H * CV_W, 0.0f, a[2], CV_H * CV_W);
        return 0;
    }
    return 1;
}

#ifndef BENCH_NO_DNNL
/* oneDNN peers.  For conv2d the primitive picks its layouts (format_tag
 * any); the user's NCHW input and OIHW weights are reordered into them
 * once, before timing, and the output is reordered back only to verify. */
typedef struct DnnlCtx {
    int peer;
    void *const *args;
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    dnnl_primitive_t conv;
    dnnl_memory_t src, wei, dst;    /* the primitive's layouts */
    dnnl_memory_t usrc, uwei, udst; /* the user's buffers */
} DnnlCtx;

static int bench_reorder(DnnlCtx *c, dnnl_memory_t from, dnnl_memory_t to)
{
    const dnnl_memory_desc_t *fmd, *tmd;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t p = NULL;
    if (dnnl_memory_get_memory_desc(from, &fmd) || dnnl_memory_get_memory_desc(to, &tmd) ||
        dnnl_reorder_primitive_desc_create(&pd, fmd, c->eng, tmd, c->eng, NULL))
        return 1;
    int bad = dnnl_primitive_create(&p, pd) != dnnl_success;
    dnnl_primitive_desc_destroy(pd);
    if (bad)
        return 1;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    bad = dnnl_primitive_execute(p, c->stream, 2, args) || dnnl_stream_wait(c->stream);
    dnnl_primitive_destroy(p);
    return bad;
}

static void dnnl_close(DnnlCtx *c)
{
    dnnl_memory_t *m[] = {&c->src, &c->wei, &c->dst, &c->usrc, &c->uwei, &c->udst};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (*m[i])
            dnnl_memory_destroy(*m[i]);
    if (c->conv)
        dnnl_primitive_destroy(c->conv);
    if (c->stream)
        dnnl_stream_destroy(c->stream);
    if (c->eng)
        dnnl_engine_destroy(c->eng);
}

/* Sets up c for its peer (thread count already set: oneDNN sizes its
 * kernels' work split when the primitive is created). */
static int dnnl_open(DnnlCtx *c)
{
    if (c->peer != PEER_CONV)
        return 0;
    if (dnnl_engine_create(&c->eng, dnnl_cpu, 0) ||
        dnnl_stream_create(&c->stream, c->eng, dnnl_stream_default_flags))
        return 1;
    dnnl_dims_t sd = {CV_N, CV_C, CV_H, CV_W}, wd = {CV_K, CV_C, 3, 3},
                dd = {CV_N, CV_K, CV_H, CV_W}, strides = {1, 1}, pad = {1, 1};
    dnnl_memory_desc_t sany, wany, dany, su, wu, du;
    if (dnnl_memory_desc_init_by_tag(&sany, 4, sd, dnnl_f32, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&wany, 4, wd, dnnl_f32, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&dany, 4, dd, dnnl_f32, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&su, 4, sd, dnnl_f32, dnnl_nchw) ||
        dnnl_memory_desc_init_by_tag(&wu, 4, wd, dnnl_f32, dnnl_oihw) ||
        dnnl_memory_desc_init_by_tag(&du, 4, dd, dnnl_f32, dnnl_nchw))
        return 1;
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct,
                                           &sany, &wany, NULL, &dany, strides, pad, pad) ||
        dnnl_primitive_desc_create(&pd, &cd, NULL, c->eng, NULL))
        return 1;
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *dmd = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    int bad = !smd || !wmd || !dmd ||
              dnnl_memory_create(&c->src, smd, c->eng, DNNL_MEMORY_ALLOCATE) ||
              dnnl_memory_create(&c->wei, wmd, c->eng, DNNL_MEMORY_ALLOCATE) ||
              dnnl_memory_create(&c->dst, dmd, c->eng, DNNL_MEMORY_ALLOCATE) ||
              dnnl_memory_create(&c->usrc, &su, c->eng, c->args[0]) ||
              dnnl_memory_create(&c->uwei, &wu, c->eng, c->args[1]) ||
              dnnl_memory_create(&c->udst, &du, c->eng, c->args[2]) ||
              dnnl_primitive_create(&c->conv, pd);
    dnnl_primitive_desc_destroy(pd);
    return bad || bench_reorder(c, c->usrc, c->src) || bench_reorder(c, c->uwei, c->wei);
}

static int run_dnnl(void *ctx)
{
    DnnlCtx *c = ctx;
    void *const *a = c->args;
    if (c->peer == PEER_MATMUL)
        return dnnl_sgemm('N', 'N', MM_M, MM_N, MM_K, 1.0f, a[0], MM_K, a[1], MM_N, 0.0f, a[2],
                          MM_N) != dnnl_success;
    dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_SRC, c->src}, {DNNL_ARG_WEIGHTS, c->wei}, {DNNL_ARG_DST, c->dst}};
    return dnnl_primitive_execute(c->conv, c->stream, 3, args) || dnnl_stream_wait(c->stream);
}

/* The result in the user's layout, for verification. */
static int dnnl_result(DnnlCtx *c)
{
    return c->peer == PEER_CONV ? bench_reorder(c, c->dst, c->udst) : 0;
}
#endif

#ifndef BENCH_NO_KILN
typedef struct KilnCtx {
    kiln_kernel *k;
    void *const *args;
} KilnCtx;

static int run_kiln(void *ctx)
{
    KilnCtx *c = ctx;
    return kiln_kernel_call(c->k, c->args);
}
#endif

/* --------------------------------------------------------------- state */

typedef struct Result {
    double sec[MAX_RUNS]; /* per run; < 0: not measured */
    int nsec;
    int wrong;  /* failed to compile or to verify in some run */
    double err; /* worst error seen */
    double compile_ms;
    char note[160]; /* why there is no number */
} Result;

static Result results[NEX][NVAR];

static void *xalloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64)) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    return p;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static float frand(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 0x2545f4914f6cdd1dULL;
    return (float)((double)(r >> 40) / (double)(1ULL << 24) * 2.0 - 1.0);
}

/* Normwise error of the outputs: max |got - ref| / max |ref|. */
static double compare(const Example *ex, void *const *got, void *const *ref)
{
    double worst = 0, scale = 0;
    for (int a = ex->nin; a < ex->nargs; a++) {
        const float *g = got[a], *r = ref[a];
        for (long long i = 0; i < ex->numel[a]; i++) {
            double d = fabs((double)g[i] - (double)r[i]);
            if (!(d <= worst)) /* NaN counts as worst */
                worst = isnan(d) ? INFINITY : d;
            if (fabs(r[i]) > scale)
                scale = fabs(r[i]);
        }
    }
    return worst / (scale > 0 ? scale : 1);
}

#define TOLERANCE 1e-4

static void record(Result *r, int run, double sec)
{
    r->sec[run] = sec;
    if (run + 1 > r->nsec)
        r->nsec = run + 1;
}

/* Fresh output buffers (poisoned with NaN so a kernel that skips elements
 * is caught) sharing the inputs of `ref`. */
static void fresh_outputs(const Example *ex, void **args, void *const *ref)
{
    for (int a = 0; a < ex->nargs; a++) {
        if (a < ex->nin) {
            args[a] = ref[a];
            continue;
        }
        float *o = xalloc(sizeof(float) * (size_t)ex->numel[a]);
        for (long long i = 0; i < ex->numel[a]; i++)
            o[i] = NAN;
        args[a] = o;
    }
}

static void free_outputs(const Example *ex, void **args)
{
    for (int a = ex->nin; a < ex->nargs; a++)
        free(args[a]);
}

/* ---------------------------------------------------------------- kiln */

static const char *g_root = ".";
static const char *g_sched_override = NULL;

#ifndef BENCH_NO_KILN
/* Compiles examples/NAME.yaml with its schedule; checks that the YAML's
 * argument shapes are the sizes naive.h was written for. */
static int kiln_prepare(const Example *ex, kiln_program **pp, kiln_schedule **sp, kiln_kernel **kp,
                        char *why, size_t whylen)
{
    char path[1024], spath[1024], buf[1024];
    kiln_error e;
    kiln_error_clear(&e);
    *pp = NULL;
    *sp = NULL;
    *kp = NULL;
    snprintf(path, sizeof path, "%s/examples/%s.yaml", g_root, ex->name);
    if (g_sched_override)
        snprintf(spath, sizeof spath, "%s", g_sched_override);
    else
        snprintf(spath, sizeof spath, "%s/examples/%s.sched", g_root, ex->name);
    if (kiln_program_parse_file(path, pp, &e))
        goto fail;
    if (kiln_program_num_args(*pp) != ex->nargs) {
        snprintf(why, whylen, "%s has %d arguments, bench expects %d", path,
                 kiln_program_num_args(*pp), ex->nargs);
        return 1;
    }
    for (int a = 0; a < ex->nargs; a++) {
        kiln_tensor_info ti;
        if (kiln_program_arg(*pp, a, &ti))
            goto fail;
        if (ti.dtype != KILN_F32 || ti.numel != ex->numel[a]) {
            snprintf(why, whylen,
                     "%s: argument %s has %lld elements, bench/naive/naive.h expects %lld "
                     "(change both together)",
                     path, ti.name, ti.numel, ex->numel[a]);
            return 1;
        }
    }
    *sp = kiln_schedule_new(*pp);
    if (!*sp) {
        snprintf(why, whylen, "kiln_schedule_new failed");
        return 1;
    }
    if (kiln_schedule_apply_file(*sp, spath, &e))
        goto fail;
    if (kiln_kernel_compile(*sp, kp, &e))
        goto fail;
    return 0;
fail:
    snprintf(why, whylen, "%s", kiln_error_format(&e, buf, sizeof buf));
    return 1;
}
#endif

/* ------------------------------------------------------------- one run */

static int g_verbose = 1;

/* Times the peer variant v (V_BLAS1..V_DNNL2) of ex, after checking its
 * output against the naive one in ref. */
static void bench_peer(const Example *ex, int v, int run, void *const *ref)
{
    Result *r = &results[ex - examples][v];
    int dnnl = v >= V_DNNL1, threads = v == V_BLAS1 || v == V_DNNL1 ? 1 : 2;
    if (!peer_what(ex->peer, dnnl))
        return;
    void *got[MAX_ARGS];
    fresh_outputs(ex, got, ref);
    int st = 0;
    double sec = -1;
    if (!dnnl) {
        BlasCtx bc = {ex->peer, threads, got, NULL};
        if (ex->peer == PEER_CONV)
            bc.col = xalloc(sizeof(float) * CV_C * 9 * CV_H * CV_W);
        openblas_set_num_threads(threads);
        st = run_blas(&bc);
        double err = st ? INFINITY : compare(ex, got, ref);
        if (err > r->err || isnan(err))
            r->err = err;
        if (st || !(err <= TOLERANCE))
            snprintf(r->note, sizeof r->note, "WRONG: error %.3g vs naive", err);
        else
            sec = time_fn(run_blas, &bc);
        free(bc.col);
    } else {
#ifndef BENCH_NO_DNNL
        DnnlCtx dc = {.peer = ex->peer, .args = got};
        omp_set_num_threads(threads);
        st = dnnl_open(&dc) || run_dnnl(&dc) || dnnl_result(&dc);
        double err = st ? INFINITY : compare(ex, got, ref);
        if (err > r->err || isnan(err))
            r->err = err;
        if (st)
            snprintf(r->note, sizeof r->note, "oneDNN call failed");
        else if (!(err <= TOLERANCE))
            snprintf(r->note, sizeof r->note, "WRONG: error %.3g vs naive", err);
        else
            sec = time_fn(run_dnnl, &dc);
        dnnl_close(&dc);
#else
        free_outputs(ex, got);
        return;    /* built without oneDNN: no column */
#endif
    }
    if (sec < 0)
        r->wrong = 1;
    record(r, run, sec);
    free_outputs(ex, got);
}

static void bench_example(int xi, int run, int want_blas)
{
    const Example *ex = &examples[xi];
    void *ref[MAX_ARGS], *got[MAX_ARGS];
    for (int a = 0; a < ex->nargs; a++) {
        ref[a] = xalloc(sizeof(float) * (size_t)ex->numel[a]);
        float *f = ref[a];
        for (long long i = 0; i < ex->numel[a]; i++)
            f[i] = a < ex->nin ? frand() : NAN;
    }
    if (g_verbose)
        fprintf(stderr, "  %s ...", ex->name);

    /* naive: the reference for everything else (timed in the first phase
     * only; the OpenBLAS phase just needs its result) */
    NaiveCtx nc = {ex, ref};
    Result *rn = &results[xi][V_NAIVE];
    if (!want_blas) {
        record(rn, run, time_fn(run_naive, &nc));
        if (rn->sec[run] < 0)
            snprintf(rn->note, sizeof rn->note, "naive version failed");
    } else if (run_naive(&nc)) {
        for (int v = V_BLAS1; v <= V_DNNL2; v++)
            record(&results[xi][v], run, -1);
        want_blas = 2; /* nothing to verify against */
    }

    if (!want_blas) {
#ifndef BENCH_NO_KILN
        kiln_program *p;
        kiln_schedule *s;
        kiln_kernel *k;
        char why[1200] = "";
        Result *r1 = &results[xi][V_KILN1], *r2 = &results[xi][V_KILN2];
        double t0 = now_s();
        if (kiln_prepare(ex, &p, &s, &k, why, sizeof why)) {
            snprintf(r1->note, sizeof r1->note, "%s", why);
            snprintf(r2->note, sizeof r2->note, "%s", why);
            r1->wrong = r2->wrong = 1; /* no kernel is a failure too */
            record(r1, run, -1);
            record(r2, run, -1);
            if (g_verbose)
                fprintf(stderr, " kiln: %s", why);
        } else {
            r1->compile_ms = r2->compile_ms = (now_s() - t0) * 1e3;
            fresh_outputs(ex, got, ref);
            KilnCtx kc = {k, got};
            for (int v = V_KILN1; v <= V_KILN2; v++) {
                Result *r = &results[xi][v];
                kiln_set_num_threads(v == V_KILN1 ? 1 : 2);
                for (int a = ex->nin; a < ex->nargs; a++)
                    for (long long i = 0; i < ex->numel[a]; i++)
                        ((float *)got[a])[i] = NAN;
                int st = kiln_kernel_call(k, got);
                double err = st ? INFINITY : compare(ex, got, ref);
                if (err > r->err || isnan(err))
                    r->err = err;
                if (st || !(err <= TOLERANCE)) {
                    r->wrong = 1;
                    if (st)
                        snprintf(r->note, sizeof r->note, "kernel returned %d", st);
                    else
                        snprintf(r->note, sizeof r->note, "WRONG: error %.3g vs naive", err);
                    record(r, run, -1);
                    continue;
                }
                record(r, run, time_fn(run_kiln, &kc));
            }
            free_outputs(ex, got);
        }
        kiln_kernel_free(k);
        kiln_schedule_free(s);
        kiln_program_free(p);
        kiln_set_num_threads(0);
#else
        (void)got; /* built without kiln: nothing to record */
#endif
    } else if (want_blas == 1) {
        /* the peers, timed after every kiln kernel so their worker
         * threads (which spin for a while after each call) cannot disturb
         * kiln's numbers */
        for (int v = V_BLAS1; v <= V_DNNL2; v++)
            bench_peer(ex, v, run, ref);
        openblas_set_num_threads(1);
    }
    for (int a = 0; a < ex->nargs; a++)
        free(ref[a]);
    if (g_verbose)
        fprintf(stderr, " done\n");
}

/* -------------------------------------------------------------- report */

/* Median over runs of the per-run medians; < 0 when any run had none. */
static double result_sec(const Result *r)
{
    double v[MAX_RUNS];
    if (r->nsec == 0)
        return -1;
    for (int i = 0; i < r->nsec; i++) {
        if (r->sec[i] < 0)
            return -1;
        v[i] = r->sec[i];
    }
    return median(v, r->nsec);
}

static double rate(const Example *ex, double sec)
{
    return sec > 0 ? ex->work / sec * 1e-9 : -1;
}

static void cell(char *buf, size_t n, double v, const char *fmt)
{
    if (v < 0)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, fmt, v);
}

static void cpu_name(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c += 1 + (c[1] == ' ');
                c[strcspn(c, "\n")] = 0;
                snprintf(buf, n, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, const char *key, double v)
{
    fprintf(f, ", \"%s\": ", key);
    if (v < 0 || isnan(v) || isinf(v))
        fprintf(f, "null");
    else
        fprintf(f, "%.6g", v);
}

/* 1-minute load average, or -1 when unknown. */
static double load_average(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

static void report(const int *selected, int runs, double peak, double peak_end, int peak_width,
                   double load, const char *json_path)
{
    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    printf("\nkiln benchmark: %s, %d run%s (median of medians), min %.0f ms per "
           "measurement\n",
           cpu, runs, runs == 1 ? "" : "s", g_min_ms);
    printf("single-core f32 FMA peak (measured, %d-lane FMAs): %.1f GFLOP/s (%.1f at the end); "
           "OpenBLAS core: %s\n",
           peak_width, peak, peak_end, openblas_get_corename());
    /* Other work on the machine shows first in the 2-thread columns (a
     * fork-join loop waits for its slowest thread) and in the peak. */
    if (load > 0.5 || fabs(peak_end - peak) > 0.1 * peak)
        printf("WARNING: the machine was busy (load average %.2f at the start; peak %.0f -> %.0f): "
               "numbers are unreliable, 2-thread ones most\n",
               load, peak, peak_end);
    printf("rates are GFLOP/s (GB/s where the unit says so); ratios > 1 favour kiln\n");
#ifdef BENCH_NO_KILN
    printf("(built without kiln: peers only)\n");
#endif
    printf("\n");
    /* kiln/blas, kiln/dnnl: 1 thread; best1t, best2t: kiln against the
     * fastest peer at the same thread count */
    printf("%-17s %-7s %7s %7s %7s %7s %7s %7s %7s  %7s %9s %9s %7s %7s %6s %6s\n", "example",
           "unit", "naive", "kiln1t", "kiln2t", "blas1t", "blas2t", "dnnl1t", "dnnl2t", "kiln/nv",
           "kiln/blas", "kiln/dnnl", "best1t", "best2t", "2t/1t", "%peak");

    FILE *jf = NULL;
    if (json_path) {
        jf = fopen(json_path, "w");
        if (!jf)
            fprintf(stderr, "bench: cannot write %s: %s\n", json_path, strerror(errno));
    }
    if (jf) {
        fprintf(jf, "{\"kind\": \"machine\", \"cpu\": ");
        json_str(jf, cpu);
        fprintf(jf, ", \"openblas_core\": ");
        json_str(jf, openblas_get_corename());
        json_num(jf, "peak_gflops_1core", peak);
        json_num(jf, "peak_gflops_1core_end", peak_end);
        json_num(jf, "load_average", load);
        fprintf(jf, ", \"peak_lanes\": %d, \"runs\": %d", peak_width, runs);
        json_num(jf, "min_ms", g_min_ms);
        fprintf(jf, "}\n");
    }

    for (int xi = 0; xi < NEX; xi++) {
        if (!selected[xi])
            continue;
        const Example *ex = &examples[xi];
        double r[NVAR];
        for (int v = 0; v < NVAR; v++)
            r[v] = rate(ex, result_sec(&results[xi][v]));
        char c[NVAR][32], q[7][32];
        for (int v = 0; v < NVAR; v++)
            cell(c[v], sizeof c[v], r[v], "%.1f");
        double best1 = fmax(r[V_BLAS1], r[V_DNNL1]), best2 = fmax(r[V_BLAS2], r[V_DNNL2]);
        double ratio[7] = {
            r[V_KILN1] > 0 && r[V_NAIVE] > 0 ? r[V_KILN1] / r[V_NAIVE] : -1,
            r[V_KILN1] > 0 && r[V_BLAS1] > 0 ? r[V_KILN1] / r[V_BLAS1] : -1,
            r[V_KILN1] > 0 && r[V_DNNL1] > 0 ? r[V_KILN1] / r[V_DNNL1] : -1,
            r[V_KILN1] > 0 && best1 > 0 ? r[V_KILN1] / best1 : -1,
            r[V_KILN2] > 0 && best2 > 0 ? r[V_KILN2] / best2 : -1,
            r[V_KILN2] > 0 && r[V_KILN1] > 0 ? r[V_KILN2] / r[V_KILN1] : -1,
            !ex->bytes_metric && r[V_KILN1] > 0 ? 100 * r[V_KILN1] / peak : -1,
        };
        for (int i = 0; i < 7; i++)
            cell(q[i], sizeof q[i], ratio[i],
                 i == 0 || i == 5 ? "%.2fx"
                 : i == 6         ? "%.0f%%"
                                  : "%.2f");
        printf("%-17s %-7s %7s %7s %7s %7s %7s %7s %7s  %7s %9s %9s %7s %7s %6s %6s\n", ex->name,
               ex->bytes_metric ? "GB/s" : "GFLOP/s", c[V_NAIVE], c[V_KILN1], c[V_KILN2],
               c[V_BLAS1], c[V_BLAS2], c[V_DNNL1], c[V_DNNL2], q[0], q[1], q[2], q[3], q[4], q[5],
               q[6]);
        for (int d = 0; d <= 1; d++)
            if (peer_what(ex->peer, d))
                printf("    %s: %s\n", d ? "dnnl" : "blas", peer_what(ex->peer, d));
        for (int v = 0; v < NVAR; v++)
            if (results[xi][v].note[0] && results[xi][v].nsec &&
                (v == V_KILN1 || strcmp(results[xi][v].note, results[xi][V_KILN1].note)))
                printf("    %s: %s\n", var_names[v], results[xi][v].note);

        if (!jf)
            continue;
        for (int v = 0; v < NVAR; v++) {
            const Result *res = &results[xi][v];
            if (res->nsec == 0)
                continue;
            double sec = result_sec(res);
            fprintf(jf, "{\"kind\": \"result\", \"example\": ");
            json_str(jf, ex->name);
            fprintf(jf, ", \"variant\": \"%s\", \"unit\": \"%s\"", var_names[v],
                    ex->bytes_metric ? "GB/s" : "GFLOP/s");
            json_num(jf, "median_ms", sec * 1e3);
            json_num(jf, "rate", rate(ex, sec));
            json_num(jf, "peak_fraction",
                     ex->bytes_metric ? -1 : (sec > 0 ? rate(ex, sec) / peak : -1));
            json_num(jf, "work", ex->work);
            fprintf(jf, ", \"verified\": %s", res->wrong ? "false" : "true");
            json_num(jf, "max_rel_err", v == V_NAIVE ? 0 : res->err);
            if (v == V_KILN1 || v == V_KILN2) {
                json_num(jf, "compile_ms", res->compile_ms);
                json_num(jf, "ratio_best_peer", v == V_KILN1 ? ratio[3] : ratio[4]);
            }
            if (v >= V_BLAS1) {
                fprintf(jf, ", \"peer\": ");
                json_str(jf, peer_what(ex->peer, v >= V_DNNL1) ? peer_what(ex->peer, v >= V_DNNL1)
                                                               : "");
            }
            fprintf(jf, ", \"per_run_ms\": [");
            for (int i = 0; i < res->nsec; i++)
                fprintf(jf, "%s%.6g", i ? ", " : "", res->sec[i] < 0 ? -1 : res->sec[i] * 1e3);
            fprintf(jf, "]");
            if (res->note[0]) {
                fprintf(jf, ", \"note\": ");
                json_str(jf, res->note);
            }
            fprintf(jf, "}\n");
        }
    }
    if (jf) {
        fclose(jf);
        printf("\nJSON lines: %s\n", json_path);
    }
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr, "usage: bench [--root DIR] [--runs N] [--only NAME[,NAME...]] [--min-ms MS]\n"
                    "             [--schedule FILE] [--json PATH] [--quiet]\n"
                    "  --root DIR       kiln source tree (examples/ is read from it; default .)\n"
                    "  --runs N         run the whole suite N times, report medians (default 1)\n"
                    "  --only LIST      comma-separated example names\n"
                    "  --min-ms MS      minimum measuring time per variant (default 200)\n"
                    "  --schedule FILE  use FILE instead of examples/NAME.sched (with one --only)\n"
                    "  --json PATH      JSON lines output (default ROOT/bench/results/last.json)\n"
                    "examples:");
    for (int i = 0; i < NEX; i++)
        fprintf(stderr, " %s", examples[i].name);
    fprintf(stderr, "\n");
}

int main(int argc, char **argv)
{
    int runs = 1, selected[NEX], nsel = 0;
    const char *only = NULL, *json = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quiet")) {
            g_verbose = 0;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        }
        if (!v) {
            usage();
            return 2;
        }
        if (!strcmp(a, "--root"))
            g_root = v;
        else if (!strcmp(a, "--runs"))
            runs = atoi(v);
        else if (!strcmp(a, "--only"))
            only = v;
        else if (!strcmp(a, "--min-ms"))
            g_min_ms = atof(v);
        else if (!strcmp(a, "--schedule"))
            g_sched_override = v;
        else if (!strcmp(a, "--json"))
            json = v;
        else {
            usage();
            return 2;
        }
        i++;
    }
    if (runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "bench: --runs must be 1..%d\n", MAX_RUNS);
        return 2;
    }
    for (int i = 0; i < NEX; i++) {
        selected[i] = 1;
        if (only) {
            size_t n = strlen(examples[i].name);
            const char *p = only;
            selected[i] = 0;
            while ((p = strstr(p, examples[i].name))) {
                if ((p == only || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
                    selected[i] = 1;
                p += n;
            }
        }
        nsel += selected[i];
    }
    if (!nsel) {
        fprintf(stderr, "bench: no example matches --only %s\n", only);
        usage();
        return 2;
    }
    if (g_sched_override && nsel != 1) {
        fprintf(stderr, "bench: --schedule needs exactly one example (--only NAME)\n");
        return 2;
    }
    char jbuf[1100];
    if (!json) {
        snprintf(jbuf, sizeof jbuf, "%s/bench/results", g_root);
        mkdir(jbuf, 0777);
        snprintf(jbuf, sizeof jbuf, "%s/bench/results/last.json", g_root);
        json = jbuf;
    }
    openblas_set_num_threads(1);

    double load = load_average();
    int width;
    double peak = peak_gflops_f32(&width);
    if (g_verbose)
        fprintf(stderr, "peak: %.1f GFLOP/s (%d lanes)\n", peak, width);

    for (int run = 0; run < runs; run++) {
        if (g_verbose)
            fprintf(stderr, "run %d/%d\n", run + 1, runs);
        rng_state = 0x9e3779b97f4a7c15ULL;
        for (int xi = 0; xi < NEX; xi++)
            if (selected[xi])
                bench_example(xi, run, 0);
        for (int xi = 0; xi < NEX; xi++)
            if (selected[xi] && examples[xi].peer != PEER_NONE)
                bench_example(xi, run, 1);
    }
    double peak_end = peak_gflops_f32(&width);
    report(selected, runs, peak, peak_end, width, load, json);

    int bad = 0;
    for (int xi = 0; xi < NEX; xi++)
        for (int v = 0; v < NVAR; v++)
            bad |= results[xi][v].wrong;
    return bad ? 1 : 0;
}
