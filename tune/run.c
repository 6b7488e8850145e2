/* tune/run.c: kiln_run — compile a schedule, run it on random inputs,
 * compare every output with the reference interpreter, then time it
 * (warm-up, repeats of at least min_time_ms each, median kept). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "tune/measure.h"
#include "tune/tune.h"

char *tune_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *s = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            char *t = realloc(s, cap);
            if (!t) {
                free(s);
                fclose(f);
                return NULL;
            }
            s = t;
        }
        size_t n = fread(s + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(s);
        return NULL;
    }
    s[len] = 0;
    return s;
}

/* Fills n elements of type dt with values a kernel cannot get right by
 * accident: floats uniform in [-1, 1), integers in [-8, 8]. */
static void fill_random(void *p, DType dt, int64_t n, uint64_t *rng)
{
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = ir_rand(rng);
        double u = (double)(r >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
        int64_t k = (int64_t)(r % 17) - 8;
        switch (dt) {
        case DT_F32:
            ((float *)p)[i] = (float)u;
            break;
        case DT_F64:
            ((double *)p)[i] = u;
            break;
        case DT_I32:
            ((int32_t *)p)[i] = (int32_t)k;
            break;
        case DT_I64:
            ((int64_t *)p)[i] = k;
            break;
        default:
            break;
        }
    }
}

int tune_args_alloc(const Program *p, unsigned seed, TuneArgs *a, kiln_error *e)
{
    memset(a, 0, sizeof *a);
    a->n = p->ninputs + p->noutputs;
    a->bufs = calloc((size_t)a->n, sizeof(void *));
    a->bytes = calloc((size_t)a->n, sizeof(size_t));
    if (!a->bufs || !a->bytes)
        goto oom;
    uint64_t rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed * 0x2545F4914F6CDD1Dull);
    if (!rng)
        rng = 1;
    for (int i = 0; i < a->n; i++) {
        const Tensor *t = &p->tensors[i];
        a->bytes[i] = (size_t)tensor_numel(t) * (size_t)dtype_size(t->dt);
        a->bufs[i] = kiln_rt_alloc(a->bytes[i] ? a->bytes[i] : 1);
        if (!a->bufs[i])
            goto oom;
        /* Outputs get garbage too: a kernel must overwrite every element. */
        fill_random(a->bufs[i], t->dt, tensor_numel(t), &rng);
    }
    return KILN_OK;
oom:
    tune_args_free(a);
    return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory allocating arguments");
}

void tune_args_free(TuneArgs *a)
{
    if (a->bufs)
        for (int i = 0; i < a->n; i++)
            kiln_rt_free(a->bufs[i]);
    free(a->bufs);
    free(a->bytes);
    memset(a, 0, sizeof *a);
}

static double elem(const void *p, DType dt, int64_t i)
{
    switch (dt) {
    case DT_F32:
        return ((const float *)p)[i];
    case DT_F64:
        return ((const double *)p)[i];
    case DT_I32:
        return ((const int32_t *)p)[i];
    case DT_I64:
        return (double)((const int64_t *)p)[i];
    default:
        return 0;
    }
}

bool tune_compare(const Program *p, const TuneArgs *got, const TuneArgs *want, double *max_abs,
                  double *max_rel, char *msg, size_t msgsize)
{
    bool ok = true;
    *max_abs = *max_rel = 0;
    for (int t = p->ninputs; t < p->ninputs + p->noutputs; t++) {
        const Tensor *T = &p->tensors[t];
        int64_t n = tensor_numel(T);
        /* Tolerance: relative, with a floor tied to the output's scale so
         * results near zero (cancellation in long sums) are judged fairly. */
        double rtol = T->dt == DT_F32 ? 1e-3 : T->dt == DT_F64 ? 1e-9 : 0;
        double scale = 0;
        for (int64_t i = 0; i < n; i++) {
            double w = fabs(elem(want->bufs[t], T->dt, i));
            if (isfinite(w) && w > scale)
                scale = w;
        }
        for (int64_t i = 0; i < n; i++) {
            double g = elem(got->bufs[t], T->dt, i), w = elem(want->bufs[t], T->dt, i);
            bool same;
            double d = 0;
            if (isnan(w) || isnan(g))
                same = isnan(w) && isnan(g);
            else if (isinf(w) || isinf(g))
                same = g == w;
            else {
                d = fabs(g - w);
                same = d <= rtol * (fabs(w) + 1e-2 * scale);
                if (d > *max_abs)
                    *max_abs = d;
                double r = d / (fabs(w) > 1e-30 ? fabs(w) : 1e-30);
                if (r > *max_rel && fabs(w) > 1e-2 * scale)
                    *max_rel = r;
            }
            if (!same && ok) {
                ok = false;
                if (msg)
                    snprintf(msg, msgsize, "%s[%lld] is %.9g, the interpreter says %.9g", T->name,
                             (long long)i, g, w);
            }
        }
    }
    return ok;
}

int kiln_run(const kiln_schedule *s, const kiln_run_options *opts, kiln_run_result *res,
             kiln_error *e)
{
    kiln_run_options o = {100.0, 5, 1, 0};
    if (opts) {
        o = *opts;
        if (o.min_time_ms <= 0)
            o.min_time_ms = 100.0;
        if (o.repeats <= 0)
            o.repeats = 5;
    }
    kiln_run_result r;
    memset(&r, 0, sizeof r);
    if (res)
        *res = r;
    if (!s)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "kiln_run: schedule is NULL");
    const Program *p = tune_schedule_of(s)->prog;
    kiln_kernel *k = NULL;
    int rc = kiln_kernel_compile(s, &k, e);
    if (rc)
        return rc;
    r.compile_ms = kiln_kernel_compile_ms(k);
    r.compile_cpu_ms = kiln_kernel_compile_cpu_ms(k);
    r.threads = kiln_get_num_threads();

    TuneArgs got, want;
    memset(&want, 0, sizeof want);
    rc = tune_args_alloc(p, o.seed, &got, e);
    if (rc)
        goto done;
    if (!o.skip_verify) {
        rc = tune_args_alloc(p, o.seed, &want, e);
        if (rc)
            goto done;
        if (kiln_kernel_call(k, got.bufs) != 0) {
            rc = ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0},
                          "kernel could not allocate a temporary");
            goto done;
        }
        void **bufs = calloc((size_t)p->ntensors, sizeof(void *));
        if (!bufs) {
            rc = ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
            goto done;
        }
        memcpy(bufs, want.bufs, sizeof(void *) * (size_t)want.n);
        rc = ir_interpret(p, bufs, e);
        free(bufs);
        if (rc)
            goto done;
        char msg[256];
        r.verified = tune_compare(p, &got, &want, &r.max_abs_err, &r.max_rel_err, msg, sizeof msg);
        if (!r.verified) {
            rc = ir_error(e, KILN_EVERIFY, NULL, (Loc){0, 0}, "wrong result: %s", msg);
            goto done;
        }
    }

    /* Timing: one warm-up call, then `repeats` batches of calls, each batch
     * grown until it lasts min_time_ms; the median per-call time is kept. */
    kiln_kernel_call(k, got.bufs);
    double *times = calloc((size_t)o.repeats, sizeof(double));
    if (!times) {
        rc = ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
        goto done;
    }
    long number = 1;
    for (int rep = 0; rep < o.repeats; rep++) {
        for (;;) {
            double t0 = kiln_rt_now();
            for (long i = 0; i < number; i++)
                kiln_kernel_call(k, got.bufs);
            double dt = kiln_rt_now() - t0;
            if (dt * 1e3 >= o.min_time_ms || number > (1L << 30)) {
                times[rep] = dt / (double)number;
                break;
            }
            long want_n = (long)(o.min_time_ms / 1e3 / (dt / (double)number + 1e-9)) + 1;
            number = want_n > (long)(number * 1.618) ? want_n : (long)(number * 1.618) + 1;
        }
    }
    r.median_ms = tune_sort_median(times, o.repeats) * 1e3;
    free(times);
    r.gflops = r.median_ms > 0 ? ir_program_flops(p) / (r.median_ms * 1e-3) / 1e9 : 0;
done:
    tune_args_free(&got);
    tune_args_free(&want);
    kiln_kernel_free(k);
    if (res)
        *res = r;
    return rc;
}
