/* tune/cost_simple.c: the cost-model interface and the simple models.
 *
 * kiln_cost_model wraps a callback table (kiln_cost_model_ops) and its
 * context: it validates every batch before a callback sees it and turns
 * callback failures into messages, so models (shipped or user-written)
 * only implement the happy path.  Also here: the seeded random model, the
 * analytical roofline model and the pairwise ranking accuracy. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tune/cost_model.h"

struct kiln_cost_model {
    kiln_cost_model_ops ops;
    void *ctx;
    char name[64];
};

kiln_cost_model *kiln_cost_model_new(const char *name, const kiln_cost_model_ops *ops, void *ctx,
                                     kiln_error *e)
{
    if (!ops || !ops->predict) {
        if (ops && ops->free)
            ops->free(ctx);
        ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "cost model '%s': predict callback is required",
                 name ? name : "custom");
        return NULL;
    }
    kiln_cost_model *m = calloc(1, sizeof *m);
    if (!m) {
        if (ops->free)
            ops->free(ctx);
        ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
        return NULL;
    }
    m->ops = *ops;
    m->ctx = ctx;
    snprintf(m->name, sizeof m->name, "%s", name ? name : "custom");
    return m;
}

void kiln_cost_model_free(kiln_cost_model *m)
{
    if (!m)
        return;
    if (m->ops.free)
        m->ops.free(m->ctx);
    free(m);
}

const char *kiln_cost_model_name(const kiln_cost_model *m)
{
    return m ? m->name : "";
}

void *tune_cost_model_ctx(const kiln_cost_model *m)
{
    return m ? m->ctx : NULL;
}

const kiln_cost_model_ops *tune_cost_model_ops(const kiln_cost_model *m)
{
    return m ? &m->ops : NULL;
}

int64_t tune_batch_rows(const int *row_counts, int ncand)
{
    int64_t n = 0;
    for (int c = 0; c < ncand; c++)
        n += row_counts[c];
    return n;
}

static int check_batch(const kiln_cost_model *m, const float *rows, const int *row_counts,
                       int ncand, int row_len, const void *per_cand, const char *what,
                       kiln_error *e)
{
    if (!m)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "%s: cost model is NULL", what);
    if (ncand < 0 || (ncand > 0 && (!row_counts || !per_cand)))
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0},
                        "cost model '%s': %s needs row counts and a result per candidate", m->name,
                        what);
    if (row_len <= 0)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0},
                        "cost model '%s': row length must be positive, got %d", m->name, row_len);
    int64_t total = 0;
    for (int c = 0; c < ncand; c++) {
        if (row_counts[c] < 0)
            return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0},
                            "cost model '%s': candidate %d has a negative row count", m->name, c);
        total += row_counts[c];
    }
    if (total > 0 && !rows)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "cost model '%s': rows are NULL",
                        m->name);
    return KILN_OK;
}

static int callback_failed(const kiln_cost_model *m, int rc, const char *what, kiln_error *e)
{
    if (e && e->code == KILN_OK)
        ir_error(e, rc, NULL, (Loc){0, 0}, "cost model '%s': %s failed", m->name, what);
    return rc;
}

int kiln_cost_model_predict(kiln_cost_model *m, const float *rows, const int *row_counts, int ncand,
                            int row_len, double *scores, kiln_error *e)
{
    int rc = check_batch(m, rows, row_counts, ncand, row_len, scores, "predict", e);
    if (rc)
        return rc;
    if (ncand == 0)
        return KILN_OK;
    rc = m->ops.predict(m->ctx, rows, row_counts, ncand, row_len, scores);
    return rc ? callback_failed(m, rc, "predict", e) : KILN_OK;
}

int kiln_cost_model_update(kiln_cost_model *m, unsigned long long workload, const float *rows,
                           const int *row_counts, int ncand, int row_len, const double *throughput,
                           kiln_error *e)
{
    int rc = check_batch(m, rows, row_counts, ncand, row_len, throughput, "update", e);
    if (rc)
        return rc;
    for (int c = 0; c < ncand; c++)
        if (!(throughput[c] >= 0) || isinf(throughput[c]))
            return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0},
                            "cost model '%s': throughput of candidate %d must be finite and "
                            ">= 0 (0 marks a failure), got %g",
                            m->name, c, throughput[c]);
    if (!m->ops.update || ncand == 0)
        return KILN_OK;
    rc = m->ops.update(m->ctx, workload, rows, row_counts, ncand, row_len, throughput, e);
    return rc ? callback_failed(m, rc, "update", e) : KILN_OK;
}

static int save_load(kiln_cost_model *m, const char *path, bool save, kiln_error *e)
{
    const char *what = save ? "save" : "load";
    if (!m || !path)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0},
                        "cost model %s: model and path are required", what);
    int (*fn)(void *, const char *, kiln_error *) = save ? m->ops.save : m->ops.load;
    if (!fn)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "cost model '%s' cannot %s", m->name,
                        what);
    int rc = fn(m->ctx, path, e);
    if (rc && e && e->code == KILN_OK)
        ir_error(e, rc, path, (Loc){0, 0}, "cost model '%s': %s failed", m->name, what);
    return rc;
}

int kiln_cost_model_save(kiln_cost_model *m, const char *path, kiln_error *e)
{
    return save_load(m, path, true, e);
}

int kiln_cost_model_load(kiln_cost_model *m, const char *path, kiln_error *e)
{
    return save_load(m, path, false, e);
}

/* ----------------------------------------------------------- random */
typedef struct RandomModel {
    uint64_t rng;
} RandomModel;

static int random_predict(void *ctx, const float *rows, const int *row_counts, int ncand,
                          int row_len, double *scores)
{
    RandomModel *r = ctx;
    for (int c = 0; c < ncand; c++)
        scores[c] = (double)(ir_rand(&r->rng) >> 11) * 0x1p-53;
    return KILN_OK;
}

/* The state is one line of text, so a resumed run continues the sequence. */
static int random_save(void *ctx, const char *path, kiln_error *e)
{
    RandomModel *r = ctx;
    FILE *f = fopen(path, "w");
    if (!f)
        return ir_error(e, KILN_EIO, path, (Loc){0, 0}, "cannot write: %s", strerror(errno));
    int bad = fprintf(f, "kiln-random-model 1 %llu\n", (unsigned long long)r->rng) < 0;
    bad |= fclose(f) != 0;
    return bad ? ir_error(e, KILN_EIO, path, (Loc){0, 0}, "cannot write") : KILN_OK;
}

static int random_load(void *ctx, const char *path, kiln_error *e)
{
    RandomModel *r = ctx;
    FILE *f = fopen(path, "r");
    if (!f)
        return ir_error(e, KILN_EIO, path, (Loc){0, 0}, "cannot read: %s", strerror(errno));
    unsigned long long s = 0;
    int ok = fscanf(f, "kiln-random-model 1 %llu", &s) == 1 && s != 0;
    fclose(f);
    if (!ok)
        return ir_error(e, KILN_EIO, path, (Loc){0, 0}, "not a saved random cost model");
    r->rng = s;
    return KILN_OK;
}

static uint64_t seed_state(unsigned long long seed)
{
    /* splitmix64: any seed (0 too) gives a well-mixed, nonzero xorshift state */
    uint64_t z = (uint64_t)seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return z ? z : 1;
}

kiln_cost_model *kiln_cost_model_random_new(unsigned long long seed, kiln_error *e)
{
    RandomModel *r = malloc(sizeof *r);
    if (!r) {
        ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
        return NULL;
    }
    r->rng = seed_state(seed);
    static const kiln_cost_model_ops ops = {
        .predict = random_predict, .save = random_save, .load = random_load, .free = free};
    return kiln_cost_model_new("random", &ops, r, e);
}

/* --------------------------------------------------------- roofline */
kiln_roofline_options tune_roofline_defaults(const kiln_roofline_options *o)
{
    kiln_roofline_options d = o ? *o : (kiln_roofline_options){0};
    if (!(d.scalar_gflops > 0))
        d.scalar_gflops = 4;
    if (d.max_lanes <= 0)
        d.max_lanes = 16;
    if (d.cores <= 0)
        d.cores = 1;
    if (!(d.bandwidth_gbs > 0))
        d.bandwidth_gbs = 20;
    if (!(d.cache_bytes > 0))
        d.cache_bytes = 1 << 20;
    if (!(d.cache_gbs > 0))
        d.cache_gbs = 200;
    return d;
}

static double un(const float *row, int slot)
{
    return tune_unslog(row[slot]);
}

double tune_roofline_row_seconds(const float *row, const kiln_roofline_options *o)
{
    /* compute: divisions and transcendental functions cost several slots */
    double ops = un(row, KILN_FEAT_FLOPS) + 7 * un(row, KILN_FEAT_FLOAT_DIV) +
                 15 * un(row, KILN_FEAT_FLOAT_MATH) + un(row, KILN_FEAT_INT_ARITH) +
                 8 * un(row, KILN_FEAT_INT_DIVMOD) + 4 * un(row, KILN_FEAT_IDX_DIVMOD);
    double elem = un(row, KILN_FEAT_STORE_ELEM);
    double max_lanes = o->max_lanes * (elem >= 8 ? 0.5 : 1.0);
    double lanes = 1;
    if (row[KILN_FEAT_VEC + KILN_FEAT_ANN_NUM] > 0) {
        lanes = fmin(fmax(un(row, KILN_FEAT_VEC + KILN_FEAT_ANN_INNER), 1), max_lanes);
        for (int b = 0; b < KILN_FEATURE_BUFS; b++)
            if (row[KILN_FEAT_BUF0 + b * KILN_FEATURE_BUF_LEN + KILN_FEAT_B_VEC_GATHER] > 0)
                lanes = 1 + (lanes - 1) / 4; /* gathers/scatters: mostly scalar */
    }
    double par = 1;
    if (row[KILN_FEAT_PAR + KILN_FEAT_ANN_NUM] > 0)
        par = fmin(fmax(un(row, KILN_FEAT_PAR + KILN_FEAT_ANN_PROD), 1), o->cores);
    double compute = ops / (o->scalar_gflops * 1e9 * lanes * par);

    /* memory: distinct lines always come from DRAM; repeated line
     * transfers come from cache when the reuse distance fits, else DRAM */
    double dram = 0, cache = 0;
    for (int b = 0; b < KILN_FEATURE_BUFS; b++) {
        const float *r = row + KILN_FEAT_BUF0 + b * KILN_FEATURE_BUF_LEN;
        if (r[KILN_FEAT_B_READ] + r[KILN_FEAT_B_WRITE] + r[KILN_FEAT_B_RW] == 0)
            continue;
        double lines = un(r, KILN_FEAT_B_LINES), ulines = un(r, KILN_FEAT_B_UNIQUE_LINES);
        double extra = fmax(lines - ulines, 0);
        bool fits =
            r[KILN_FEAT_B_REUSE_LOOP] > 0 && un(r, KILN_FEAT_B_REUSE_BYTES) <= o->cache_bytes;
        if (r[KILN_FEAT_B_LOCAL] > 0)
            fits = true; /* local tiles are sized to stay in cache */
        dram += 64 * (ulines + (fits ? 0 : extra));
        cache += 64 * lines;
    }
    double mem = fmax(dram / (o->bandwidth_gbs * 1e9), cache / (o->cache_gbs * 1e9 * par));
    return fmax(compute, mem);
}

typedef struct RooflineModel {
    kiln_roofline_options o;
} RooflineModel;

static int roofline_predict(void *ctx, const float *rows, const int *row_counts, int ncand,
                            int row_len, double *scores)
{
    const RooflineModel *r = ctx;
    if (row_len < KILN_FEATURE_LEN)
        return KILN_EINVAL; /* not kiln's layout */
    for (int c = 0; c < ncand; c++) {
        double t = 0;
        for (int i = 0; i < row_counts[c]; i++)
            t += tune_roofline_row_seconds(rows + (size_t)i * row_len, &r->o);
        rows += (size_t)row_counts[c] * row_len;
        scores[c] = t > 0 ? 1 / t : 0;
    }
    return KILN_OK;
}

kiln_cost_model *kiln_cost_model_roofline_new(const kiln_roofline_options *opts, kiln_error *e)
{
    RooflineModel *r = malloc(sizeof *r);
    if (!r) {
        ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
        return NULL;
    }
    r->o = tune_roofline_defaults(opts);
    static const kiln_cost_model_ops ops = {.predict = roofline_predict, .free = free};
    return kiln_cost_model_new("roofline", &ops, r, e);
}

/* ---------------------------------------------------------- metrics */
double kiln_pairwise_accuracy(const double *scores, const double *measured, int n)
{
    double good = 0, pairs = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            if (measured[i] == measured[j])
                continue;
            pairs++;
            double ds = scores[i] - scores[j], dm = measured[i] - measured[j];
            if (ds == 0)
                good += 0.5;
            else if ((ds > 0) == (dm > 0))
                good++;
        }
    return pairs > 0 ? good / pairs : 1.0;
}
