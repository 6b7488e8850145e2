/* tune/cost_xgb.c: the XGBoost cost model (C API of libxgboost 1.7).
 *
 * Data: every measured candidate is kept (raw feature rows, workload,
 * throughput), so training always starts from scratch on all of it: the
 * labels change as each workload's best throughput improves (target:
 * log2(1 + 255 r) / 8 of r = throughput / best of its workload, in
 * [0,1]: on real matmul records the log scale ranked held-out candidates
 * better than r itself (bench/tune_acc.c, 5-fold, 300 records: about
 * +0.02), since the squared error no longer spends itself on the few
 * fastest points; failures stay 0).  Training happens once
 * warmup_samples candidates are known and again whenever the data grew by
 * 20 %; before the first training predict returns seeded random scores.
 *
 * Aggregation: XGBoost's stock objectives score rows, not sets of rows, so
 * a candidate's per-store rows become one row (tune_xgb_aggregate): the
 * dominant store's row, which carries the loop structure of the hot nest,
 * next to the linear-space sum of all rows, which carries totals (flops,
 * bytes, lines) over every store.  Stock objectives then work: the default
 * reg:squarederror on the normalised throughput ranked held-out candidates
 * better than rank:pairwise (groups = workloads) in tests/test_tune_cost.c
 * and trains about 3x faster; MetaSchedule's pack-sum would need a custom
 * objective.
 *
 * Determinism and fork safety: every booster gets nthread (default 1),
 * seed and the same parameters, so a run is reproducible, and with one
 * thread no OpenMP pool exists that a later fork() could deadlock on. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xgboost/c_api.h>

#include "tune/cost_model.h"

typedef struct Sample {
    uint64_t workload;
    int nrows;
    double thr;
} Sample;

typedef struct Xgb {
    kiln_xgb_options o;
    int row_len; /* 0 until the first update or load */
    float *rows; /* raw rows of every sample, back to back */
    size_t nrows, rows_cap;
    Sample *s;
    int ns, scap;
    int trained_on, trainings;
    double train_ms;
    BoosterHandle bst; /* NULL until trained */
    uint64_t rng;
    float *agg; /* predict workspace */
    size_t agg_cap;
} Xgb;

static int xgb_fail(kiln_error *e, const char *what)
{
    return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "xgboost: %s: %s", what, XGBGetLastError());
}

static int oom(kiln_error *e)
{
    return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
}

/* --------------------------------------------------------- aggregation */
int tune_xgb_agg_len(int row_len)
{
    return 2 * row_len + 1;
}

void tune_xgb_aggregate(const float *rows, int nrows, int row_len, float *out)
{
    int L = row_len;
    memset(out, 0, sizeof(float) * (size_t)tune_xgb_agg_len(L));
    if (nrows <= 0)
        return;
    int dom = 0;
    if (L >= KILN_FEATURE_LEN) {
        const int bytes = KILN_FEAT_BUF0 + KILN_FEAT_B_BYTES;
        for (int r = 1; r < nrows; r++) {
            const float *x = rows + (size_t)r * L, *d = rows + (size_t)dom * L;
            if (x[KILN_FEAT_FLOPS] > d[KILN_FEAT_FLOPS] ||
                (x[KILN_FEAT_FLOPS] == d[KILN_FEAT_FLOPS] && x[bytes] > d[bytes]))
                dom = r;
        }
    }
    memcpy(out, rows + (size_t)dom * L, sizeof(float) * (size_t)L);
    float *sum = out + L;
    for (int i = 0; i < L; i++) {
        double s = 0;
        for (int r = 0; r < nrows; r++) {
            float v = rows[(size_t)r * L + i];
            if (v > 0) /* most slots are 0: skip the exp2 (it runs per scored candidate) */
                s += tune_unslog(v);
        }
        /* tune_slog(0) is log2(1) = +0, which the memset already wrote */
        if (s != 0)
            sum[i] = tune_slog(s);
    }
    out[2 * L] = tune_slog(nrows);
}

/* ---------------------------------------------------------------- data */
static int add_samples(Xgb *x, uint64_t workload, const float *rows, const int *row_counts,
                       int ncand, const double *thr, kiln_error *e)
{
    int64_t add = tune_batch_rows(row_counts, ncand);
    if (x->nrows + (size_t)add > x->rows_cap) {
        size_t cap = x->rows_cap ? x->rows_cap : 1024;
        while (cap < x->nrows + (size_t)add)
            cap *= 2;
        float *r = realloc(x->rows, cap * (size_t)x->row_len * sizeof(float));
        if (!r)
            return oom(e);
        x->rows = r;
        x->rows_cap = cap;
    }
    if (x->ns + ncand > x->scap) {
        int cap = x->scap ? x->scap : 256;
        while (cap < x->ns + ncand)
            cap *= 2;
        Sample *s = realloc(x->s, sizeof(Sample) * (size_t)cap);
        if (!s)
            return oom(e);
        x->s = s;
        x->scap = cap;
    }
    memcpy(x->rows + x->nrows * (size_t)x->row_len, rows,
           sizeof(float) * (size_t)add * (size_t)x->row_len);
    x->nrows += (size_t)add;
    for (int c = 0; c < ncand; c++)
        x->s[x->ns++] = (Sample){workload, row_counts[c], thr[c]};
    return KILN_OK;
}

static int cmp_by_workload(const void *a, const void *b, void *ctx)
{
    const Sample *s = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    if (s[i].workload != s[j].workload)
        return s[i].workload < s[j].workload ? -1 : 1;
    return (i > j) - (i < j); /* stable */
}

static int set_params(BoosterHandle b, const kiln_xgb_options *o, bool train, kiln_error *e)
{
    char depth[32], eta[32], nthread[32], seed[32];
    snprintf(depth, sizeof depth, "%d", o->max_depth);
    snprintf(eta, sizeof eta, "%.17g", o->eta);
    snprintf(nthread, sizeof nthread, "%d", o->nthread);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)(o->seed % 2147483647ull));
    const char *p[][2] = {
        {"nthread", nthread},
        {"verbosity", "0"},
        {"validate_parameters", "1"},
        {"seed", seed},
        {"objective", o->objective == KILN_XGB_REG ? "reg:squarederror" : "rank:pairwise"},
        {"tree_method", "hist"},
        {"max_bin", "64"},
        {"max_depth", depth},
        {"eta", eta},
        {"min_child_weight", "1"},
        {"gamma", "0.001"},
        /* bagged boosting: each round grows 4 trees, each on 60 % of the
         * samples and half the features per split, averaged; on a few
         * hundred noisy measurements that ranks held-out candidates
         * better (+0.01 pairwise, bench/tune_acc.c over 13 databases)
         * than 120 single trees, at the same prediction cost */
        {"num_parallel_tree", "4"},
        {"subsample", "0.6"},
        {"colsample_bynode", "0.5"},
    };
    int n = train ? (int)(sizeof p / sizeof *p) : 2; /* a loaded model needs threads only */
    for (int i = 0; i < n; i++)
        if (XGBoosterSetParam(b, p[i][0], p[i][1]))
            return xgb_fail(e, "setting parameters");
    return KILN_OK;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

/* Retrains from scratch on all samples. */
static int train(Xgb *x, kiln_error *e)
{
    double t0 = now_ms();
    int ns = x->ns, A = tune_xgb_agg_len(x->row_len);
    int *ord = malloc(sizeof(int) * (size_t)ns);
    size_t *off = malloc(sizeof(size_t) * (size_t)ns);
    float *X = malloc(sizeof(float) * (size_t)ns * (size_t)A);
    float *y = malloc(sizeof(float) * (size_t)ns);
    unsigned *groups = malloc(sizeof(unsigned) * (size_t)ns);
    DMatrixHandle dm = NULL;
    BoosterHandle b = NULL;
    int rc = KILN_OK;
    if (!ord || !off || !X || !y || !groups) {
        rc = oom(e);
        goto out;
    }
    size_t o = 0;
    for (int i = 0; i < ns; i++) {
        ord[i] = i;
        off[i] = o;
        o += (size_t)x->s[i].nrows;
    }
    /* rank:pairwise needs each group's rows together */
    qsort_r(ord, (size_t)ns, sizeof(int), cmp_by_workload, x->s);
    int ng = 0;
    for (int i = 0; i < ns;) {
        int j = i;
        double best = 0;
        while (j < ns && x->s[ord[j]].workload == x->s[ord[i]].workload)
            best = fmax(best, x->s[ord[j++]].thr);
        for (int k = i; k < j; k++) {
            const Sample *s = &x->s[ord[k]];
            y[k] = best > 0 && s->thr > 0 ? (float)(log2(1 + 255 * s->thr / best) / 8) : 0.0f;
            tune_xgb_aggregate(x->rows + off[ord[k]] * (size_t)x->row_len, s->nrows, x->row_len,
                               X + (size_t)k * (size_t)A);
        }
        groups[ng++] = (unsigned)(j - i);
        i = j;
    }
    if (XGDMatrixCreateFromMat_omp(X, (bst_ulong)ns, (bst_ulong)A, NAN, &dm, x->o.nthread) ||
        XGDMatrixSetFloatInfo(dm, "label", y, (bst_ulong)ns) ||
        (x->o.objective == KILN_XGB_RANK &&
         XGDMatrixSetUIntInfo(dm, "group", groups, (bst_ulong)ng))) {
        rc = xgb_fail(e, "building the training matrix");
        goto out;
    }
    if (XGBoosterCreate(&dm, 1, &b)) {
        rc = xgb_fail(e, "creating a booster");
        goto out;
    }
    if ((rc = set_params(b, &x->o, true, e)))
        goto out;
    for (int it = 0; it < x->o.rounds; it++)
        if (XGBoosterUpdateOneIter(b, it, dm)) {
            rc = xgb_fail(e, "training");
            goto out;
        }
    if (x->bst)
        XGBoosterFree(x->bst);
    x->bst = b;
    b = NULL;
    x->trained_on = ns;
    x->trainings++;
    x->train_ms = now_ms() - t0;
out:
    if (b)
        XGBoosterFree(b);
    if (dm)
        XGDMatrixFree(dm);
    free(ord);
    free(off);
    free(X);
    free(y);
    free(groups);
    return rc;
}

/* ----------------------------------------------------------- callbacks */
static int xgb_predict(void *ctx, const float *rows, const int *row_counts, int ncand, int row_len,
                       double *scores)
{
    Xgb *x = ctx;
    if (!x->bst) {
        for (int c = 0; c < ncand; c++)
            scores[c] = (double)(ir_rand(&x->rng) >> 11) * 0x1p-53;
        return KILN_OK;
    }
    if (row_len != x->row_len)
        return KILN_EINVAL;
    int A = tune_xgb_agg_len(row_len);
    size_t need = (size_t)ncand * (size_t)A;
    if (need > x->agg_cap) {
        float *a = realloc(x->agg, need * sizeof(float));
        if (!a)
            return KILN_ENOMEM;
        x->agg = a;
        x->agg_cap = need;
    }
    for (int c = 0; c < ncand; c++) {
        tune_xgb_aggregate(rows, row_counts[c], row_len, x->agg + (size_t)c * (size_t)A);
        rows += (size_t)row_counts[c] * (size_t)row_len;
    }
    /* in-place prediction from the dense array: no DMatrix to build */
    char arr[256];
    snprintf(arr, sizeof arr,
             "{\"data\": [%llu, true], \"shape\": [%d, %d], \"typestr\": \"<f4\", "
             "\"version\": 3}",
             (unsigned long long)(uintptr_t)x->agg, ncand, A);
    static const char cfg[] = "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, "
                              "\"iteration_end\": 0, \"strict_shape\": false, "
                              "\"cache_id\": 0, \"missing\": NaN}";
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *out = NULL;
    if (XGBoosterPredictFromDense(x->bst, arr, cfg, NULL, &shape, &dim, &out))
        return KILN_EINVAL;
    for (int c = 0; c < ncand; c++)
        scores[c] = out[c];
    return KILN_OK;
}

static int xgb_update(void *ctx, unsigned long long workload, const float *rows,
                      const int *row_counts, int ncand, int row_len, const double *thr,
                      kiln_error *e)
{
    Xgb *x = ctx;
    if (x->row_len == 0)
        x->row_len = row_len;
    if (row_len != x->row_len)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0},
                        "xgboost cost model: rows of length %d, the model holds rows of %d",
                        row_len, x->row_len);
    int rc = add_samples(x, workload, rows, row_counts, ncand, thr, e);
    if (rc)
        return rc;
    if (x->ns < x->o.warmup_samples)
        return KILN_OK;
    if (x->bst && (double)(x->ns - x->trained_on) < 0.2 * x->trained_on)
        return KILN_OK;
    return train(x, e);
}

/* ------------------------------------------------------------ save/load
 * One binary file (native byte order, checked on load):
 *   "KILNXGB1" u32 endian-mark u32 feature-version u32 row-len
 *   u64 rng  i32 trained_on  i32 trainings  i64 samples  i64 rows
 *   samples: u64 workload, i32 nrows, f64 throughput
 *   rows: f32 x rows x row-len
 *   u64 n, then n bytes of the booster (XGBoost UBJSON; n = 0: untrained)
 * It is written to PATH.tmp and renamed, so a crash never leaves half a
 * model where a good one was. */
static const char MAGIC[8] = {'K', 'I', 'L', 'N', 'X', 'G', 'B', '1'};
enum { ENDIAN_MARK = 0x01020304 };

static bool wr(FILE *f, const void *p, size_t n)
{
    return n == 0 || fwrite(p, n, 1, f) == 1;
}

static bool rd(FILE *f, void *p, size_t n)
{
    return n == 0 || fread(p, n, 1, f) == 1;
}

static int xgb_save(void *ctx, const char *path, kiln_error *e)
{
    Xgb *x = ctx;
    bst_ulong mlen = 0;
    const char *mbuf = NULL;
    if (x->bst && XGBoosterSaveModelToBuffer(x->bst, "{\"format\": \"ubj\"}", &mlen, &mbuf))
        return xgb_fail(e, "serialising the model");
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp)
        return oom(e);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int rc = ir_error(e, KILN_EIO, tmp, (Loc){0, 0}, "cannot write: %s", strerror(errno));
        free(tmp);
        return rc;
    }
    uint32_t hdr[3] = {ENDIAN_MARK, KILN_FEATURE_VERSION, (uint32_t)x->row_len};
    int32_t tr[2] = {x->trained_on, x->trainings};
    int64_t cnt[2] = {x->ns, (int64_t)x->nrows};
    uint64_t ml = mlen;
    bool ok = wr(f, MAGIC, 8) && wr(f, hdr, sizeof hdr) && wr(f, &x->rng, 8) &&
              wr(f, tr, sizeof tr) && wr(f, cnt, sizeof cnt);
    for (int i = 0; ok && i < x->ns; i++) {
        int32_t n = x->s[i].nrows;
        ok = wr(f, &x->s[i].workload, 8) && wr(f, &n, 4) && wr(f, &x->s[i].thr, 8);
    }
    ok = ok && wr(f, x->rows, sizeof(float) * x->nrows * (size_t)x->row_len) && wr(f, &ml, 8) &&
         wr(f, mbuf, (size_t)mlen);
    ok &= fclose(f) == 0;
    if (ok && rename(tmp, path) != 0)
        ok = false;
    int rc = KILN_OK;
    if (!ok) {
        remove(tmp);
        rc =
            ir_error(e, KILN_EIO, path, (Loc){0, 0}, "cannot write the model: %s", strerror(errno));
    }
    free(tmp);
    return rc;
}

static void xgb_clear(Xgb *x)
{
    if (x->bst)
        XGBoosterFree(x->bst);
    free(x->rows);
    free(x->s);
    x->bst = NULL;
    x->rows = NULL;
    x->s = NULL;
    x->nrows = x->rows_cap = 0;
    x->ns = x->scap = 0;
}

static int xgb_load(void *ctx, const char *path, kiln_error *e)
{
    Xgb *x = ctx;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ir_error(e, KILN_EIO, path, (Loc){0, 0}, "cannot read: %s", strerror(errno));
    Xgb n = {.o = x->o}; /* loaded into a fresh state; x changes only on success */
    char magic[8];
    uint32_t hdr[3];
    int32_t tr[2];
    int64_t cnt[2];
    uint64_t ml = 0;
    char *mbuf = NULL;
    int rc = KILN_OK;
    if (!rd(f, magic, 8) || memcmp(magic, MAGIC, 8) || !rd(f, hdr, sizeof hdr) ||
        hdr[0] != ENDIAN_MARK) {
        rc = ir_error(e, KILN_EIO, path, (Loc){0, 0}, "not a saved xgboost cost model");
        goto out;
    }
    if (hdr[1] != KILN_FEATURE_VERSION) {
        rc = ir_error(e, KILN_EIO, path, (Loc){0, 0},
                      "saved model has features of version %u, this kiln computes version %d",
                      hdr[1], KILN_FEATURE_VERSION);
        goto out;
    }
    n.row_len = (int)hdr[2];
    if (!rd(f, &n.rng, 8) || !rd(f, tr, sizeof tr) || !rd(f, cnt, sizeof cnt) || n.row_len < 0 ||
        n.row_len > 1 << 16 || cnt[0] < 0 || cnt[0] > 1 << 28 || cnt[1] < 0 ||
        cnt[1] > (int64_t)1 << 32 || tr[0] < 0 || tr[0] > cnt[0] || n.rng == 0)
        goto bad;
    n.trained_on = tr[0];
    n.trainings = tr[1];
    n.ns = n.scap = (int)cnt[0];
    n.nrows = n.rows_cap = (size_t)cnt[1];
    n.s = malloc(sizeof(Sample) * (size_t)(n.ns ? n.ns : 1));
    n.rows = malloc(sizeof(float) * (n.nrows ? n.nrows : 1) * (size_t)(n.row_len ? n.row_len : 1));
    if (!n.s || !n.rows) {
        rc = oom(e);
        goto out;
    }
    int64_t total = 0;
    for (int i = 0; i < n.ns; i++) {
        int32_t nr;
        if (!rd(f, &n.s[i].workload, 8) || !rd(f, &nr, 4) || !rd(f, &n.s[i].thr, 8) || nr < 0)
            goto bad;
        n.s[i].nrows = nr;
        total += nr;
    }
    if (total != cnt[1] || !rd(f, n.rows, sizeof(float) * n.nrows * (size_t)n.row_len) ||
        !rd(f, &ml, 8) || ml > ((uint64_t)1 << 34))
        goto bad;
    if (ml) {
        mbuf = malloc((size_t)ml);
        if (!mbuf) {
            rc = oom(e);
            goto out;
        }
        if (!rd(f, mbuf, (size_t)ml))
            goto bad;
        /* Loading into a fresh booster starts an OpenMP pool of all cores
         * (a later fork() could deadlock on it) unless nthread is already
         * configured: SetParam alone only records it, reading the JSON
         * config applies it, which needs the feature count (measured with
         * XGBoost 1.7.4). */
        bst_ulong clen;
        const char *cfg;
        char nf[32];
        snprintf(nf, sizeof nf, "%d", tune_xgb_agg_len(n.row_len));
        if (XGBoosterCreate(NULL, 0, &n.bst)) {
            rc = xgb_fail(e, "creating a booster");
            goto out;
        }
        if ((rc = set_params(n.bst, &n.o, false, e)))
            goto out;
        if (XGBoosterSetParam(n.bst, "num_feature", nf) ||
            XGBoosterSaveJsonConfig(n.bst, &clen, &cfg) ||
            XGBoosterLoadModelFromBuffer(n.bst, mbuf, (bst_ulong)ml)) {
            rc = xgb_fail(e, "loading the model");
            goto out;
        }
        if ((rc = set_params(n.bst, &n.o, false, e)))
            goto out;
    }
    xgb_clear(x);
    free(x->agg);
    *x = n;
    memset(&n, 0, sizeof n);
    goto out;
bad:
    rc = ir_error(e, KILN_EIO, path, (Loc){0, 0}, "truncated or corrupt xgboost cost model");
out:
    xgb_clear(&n);
    free(mbuf);
    fclose(f);
    return rc;
}

static void xgb_free(void *ctx)
{
    Xgb *x = ctx;
    if (!x)
        return;
    xgb_clear(x);
    free(x->agg);
    free(x);
}

kiln_cost_model *kiln_cost_model_xgb_new(const kiln_xgb_options *opts, kiln_error *e)
{
    kiln_xgb_options o = opts ? *opts : (kiln_xgb_options){0};
    if (o.max_depth == 0)
        o.max_depth = 5;
    if (o.eta == 0)
        o.eta = 0.25;
    if (o.rounds == 0)
        o.rounds = 25;
    if (o.warmup_samples == 0)
        o.warmup_samples = 64;
    if (o.nthread == 0)
        o.nthread = 1;
    if (o.seed == 0)
        o.seed = 43;
    if ((o.objective != KILN_XGB_RANK && o.objective != KILN_XGB_REG) || o.max_depth < 1 ||
        o.max_depth > 32 || !(o.eta > 0 && o.eta <= 1) || o.rounds < 1 || o.rounds > 100000 ||
        o.warmup_samples < 1 || o.nthread < 1) {
        ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0},
                 "xgboost cost model: options out of range (objective 0/1, max_depth 1..32, "
                 "eta in (0,1], rounds 1..100000, warmup_samples >= 1, nthread >= 1)");
        return NULL;
    }
    Xgb *x = calloc(1, sizeof *x);
    if (!x) {
        oom(e);
        return NULL;
    }
    x->o = o;
    /* the warm-up scores come from their own seeded stream */
    uint64_t z = (uint64_t)o.seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    x->rng = z ? z : 1;
    static const kiln_cost_model_ops ops = {.predict = xgb_predict,
                                            .update = xgb_update,
                                            .save = xgb_save,
                                            .load = xgb_load,
                                            .free = xgb_free};
    return kiln_cost_model_new("xgboost", &ops, x, e);
}

bool tune_xgb_stats(const kiln_cost_model *m, TuneXgbStats *st)
{
    if (!m || tune_cost_model_ops(m)->predict != xgb_predict)
        return false;
    const Xgb *x = tune_cost_model_ctx(m);
    *st = (TuneXgbStats){x->ns, x->trained_on, x->trainings, x->train_ms};
    return true;
}
