/* examples/custom_cost_model.c: plugging your own cost model into kiln.
 *
 * A cost model is a table of callbacks (kiln_cost_model_ops) over your own
 * context; kiln_cost_model_new() wraps them into a kiln_cost_model that
 * the tuner drives exactly like the shipped XGBoost model.  This one is a
 * small online ridge regression: it reads a few slots of kiln's feature
 * rows (layout: KILN_FEAT_* in kiln/tune.h), predicts log2 throughput as a
 * weighted sum of them, and re-solves its weights in closed form after
 * every measured batch.  Uses only the public headers.
 *
 * Run without arguments it tests itself on synthetic candidates (learns,
 * ranks held-out candidates, survives save/load) and prints OK. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kiln.h"
#include "kiln/tune.h"

enum { NF = 7 }; /* bias + 6 features */

typedef struct Ridge {
    double xtx[NF][NF], xty[NF]; /* accumulated normal equations */
    double w[NF];
    long samples;
} Ridge;

/* Slot values are slog(x) = log2(1 + x); these are the ones the model
 * believes in, taken from a candidate's row with the most flops. */
static void phi(const float *rows, int nrows, int row_len, double *x)
{
    const float *d = rows;
    for (int r = 1; r < nrows; r++)
        if (rows[r * row_len + KILN_FEAT_FLOPS] > d[KILN_FEAT_FLOPS])
            d = rows + r * row_len;
    const float *buf0 = d + KILN_FEAT_BUF0;
    x[0] = 1;
    x[1] = d[KILN_FEAT_VEC + KILN_FEAT_ANN_INNER];
    x[2] = d[KILN_FEAT_PAR + KILN_FEAT_ANN_PROD];
    x[3] = d[KILN_FEAT_UNROLL + KILN_FEAT_ANN_INNER];
    x[4] = buf0[KILN_FEAT_B_STRIDE];
    x[5] = buf0[KILN_FEAT_B_LINES];
    x[6] = d[KILN_FEAT_AI + KILN_FEATURE_AI_POINTS - 1];
}

static int ridge_predict(void *ctx, const float *rows, const int *row_counts, int ncand,
                         int row_len, double *scores)
{
    const Ridge *m = ctx;
    if (row_len < KILN_FEATURE_LEN)
        return KILN_EINVAL;
    for (int c = 0; c < ncand; c++) {
        double x[NF], s = 0;
        if (row_counts[c] > 0) {
            phi(rows, row_counts[c], row_len, x);
            for (int i = 0; i < NF; i++)
                s += m->w[i] * x[i];
        }
        scores[c] = s;
        rows += (size_t)row_counts[c] * row_len;
    }
    return KILN_OK;
}

/* Solves (XtX + lambda I) w = Xty by Gaussian elimination with pivoting. */
static void ridge_solve(Ridge *m)
{
    double a[NF][NF + 1];
    for (int i = 0; i < NF; i++) {
        for (int j = 0; j < NF; j++)
            a[i][j] = m->xtx[i][j] + (i == j ? 1e-3 : 0);
        a[i][NF] = m->xty[i];
    }
    for (int c = 0; c < NF; c++) {
        int p = c;
        for (int r = c + 1; r < NF; r++)
            if (fabs(a[r][c]) > fabs(a[p][c]))
                p = r;
        for (int j = 0; j <= NF; j++) {
            double t = a[c][j];
            a[c][j] = a[p][j];
            a[p][j] = t;
        }
        for (int r = 0; r < NF; r++)
            if (r != c && a[c][c] != 0) {
                double f = a[r][c] / a[c][c];
                for (int j = c; j <= NF; j++)
                    a[r][j] -= f * a[c][j];
            }
    }
    for (int i = 0; i < NF; i++)
        m->w[i] = a[i][i] != 0 ? a[i][NF] / a[i][i] : 0;
}

/* Targets are log2(throughput / best of the batch): a batch comes from one
 * workload, so this removes the workload's scale.  Failed candidates
 * (throughput 0) have no log; this simple model skips them. */
static int ridge_update(void *ctx, unsigned long long workload, const float *rows,
                        const int *row_counts, int ncand, int row_len, const double *throughput,
                        kiln_error *e)
{
    Ridge *m = ctx;
    if (row_len < KILN_FEATURE_LEN)
        return KILN_EINVAL;
    double best = 0;
    for (int c = 0; c < ncand; c++)
        best = throughput[c] > best ? throughput[c] : best;
    for (int c = 0; c < ncand; c++) {
        if (throughput[c] > 0 && row_counts[c] > 0) {
            double x[NF], y = log2(throughput[c] / best);
            phi(rows, row_counts[c], row_len, x);
            for (int i = 0; i < NF; i++) {
                for (int j = 0; j < NF; j++)
                    m->xtx[i][j] += x[i] * x[j];
                m->xty[i] += x[i] * y;
            }
            m->samples++;
        }
        rows += (size_t)row_counts[c] * row_len;
    }
    ridge_solve(m);
    return KILN_OK;
}

/* The state is the normal equations, so a loaded model keeps learning. */
static int ridge_save(void *ctx, const char *path, kiln_error *e)
{
    const Ridge *m = ctx;
    FILE *f = fopen(path, "w");
    if (!f)
        return KILN_EIO;
    fprintf(f, "ridge %d %ld\n", NF, m->samples);
    for (int i = 0; i < NF; i++) {
        for (int j = 0; j < NF; j++)
            fprintf(f, "%a ", m->xtx[i][j]);
        fprintf(f, "%a\n", m->xty[i]);
    }
    return fclose(f) == 0 ? KILN_OK : KILN_EIO;
}

static int ridge_load(void *ctx, const char *path, kiln_error *e)
{
    Ridge *m = ctx, n = {0};
    FILE *f = fopen(path, "r");
    if (!f)
        return KILN_EIO;
    int nf = 0;
    int ok = fscanf(f, "ridge %d %ld", &nf, &n.samples) == 2 && nf == NF;
    for (int i = 0; ok && i < NF; i++) {
        for (int j = 0; ok && j < NF; j++)
            ok = fscanf(f, "%la", &n.xtx[i][j]) == 1;
        ok = ok && fscanf(f, "%la", &n.xty[i]) == 1;
    }
    fclose(f);
    if (!ok)
        return KILN_EIO;
    *m = n;
    ridge_solve(m);
    return KILN_OK;
}

static const kiln_cost_model_ops ridge_ops = {
    .predict = ridge_predict,
    .update = ridge_update,
    .save = ridge_save,
    .load = ridge_load,
    .free = free,
};

/* What a program does to plug it in: the tuner takes the returned model. */
static kiln_cost_model *ridge_model_new(kiln_error *e)
{
    Ridge *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    return kiln_cost_model_new("ridge", &ridge_ops, m, e); /* owns m from here */
}

/* ------------------------------------------------------------ self-test */
static unsigned long long rng = 88172645463325252ull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * 0x1p-53;
}

/* One-row candidates whose true log2 throughput is a (slightly
 * non-linear) function of the slots the model reads. */
static double make_candidate(float *row)
{
    for (int i = 0; i < KILN_FEATURE_LEN; i++)
        row[i] = (float)(urand() * 4);
    float *buf0 = row + KILN_FEAT_BUF0;
    row[KILN_FEAT_VEC + KILN_FEAT_ANN_INNER] = (float)(urand() * 5);
    row[KILN_FEAT_PAR + KILN_FEAT_ANN_PROD] = (float)(urand() * 4);
    buf0[KILN_FEAT_B_STRIDE] = (float)(urand() * 10);
    buf0[KILN_FEAT_B_LINES] = (float)(10 + urand() * 14);
    double logt = 0.5 * row[KILN_FEAT_VEC + KILN_FEAT_ANN_INNER] +
                  0.8 * row[KILN_FEAT_PAR + KILN_FEAT_ANN_PROD] - 0.3 * buf0[KILN_FEAT_B_STRIDE] -
                  0.1 * buf0[KILN_FEAT_B_LINES] + 0.2 * sin(row[KILN_FEAT_AI + 9]);
    return exp2(logt);
}

enum { NTRAIN = 256, NTEST = 200, BATCH = 64 };

static int fail(const char *what, const kiln_error *e)
{
    char buf[1024];
    fprintf(stderr, "custom_cost_model: %s: %s\n", what, kiln_error_format(e, buf, sizeof buf));
    return 1;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "custom_cost_model.txt";
    static float rows[(NTRAIN + NTEST) * KILN_FEATURE_LEN];
    static double thr[NTRAIN + NTEST], pred[NTEST], pred2[NTEST];
    static int counts[NTRAIN + NTEST];
    for (int c = 0; c < NTRAIN + NTEST; c++) {
        thr[c] = make_candidate(rows + c * KILN_FEATURE_LEN);
        counts[c] = 1;
    }
    kiln_error e = {0};
    kiln_cost_model *m = ridge_model_new(&e);
    if (!m)
        return fail("creating the model", &e);
    int status = 1;
    kiln_cost_model *m2 = NULL;
    /* measured batches arrive as a tuner would send them */
    for (int c = 0; c < NTRAIN; c += BATCH)
        if (kiln_cost_model_update(m, 1, rows + c * KILN_FEATURE_LEN, counts + c, BATCH,
                                   KILN_FEATURE_LEN, thr + c, &e)) {
            fail("update", &e);
            goto out;
        }
    const float *test = rows + NTRAIN * KILN_FEATURE_LEN;
    if (kiln_cost_model_predict(m, test, counts, NTEST, KILN_FEATURE_LEN, pred, &e)) {
        fail("predict", &e);
        goto out;
    }
    double acc = kiln_pairwise_accuracy(pred, thr + NTRAIN, NTEST);
    printf("%s: held-out pairwise ranking accuracy %.3f\n", kiln_cost_model_name(m), acc);
    if (acc < 0.85) {
        fprintf(stderr, "custom_cost_model: accuracy %.3f below 0.85\n", acc);
        goto out;
    }
    /* save, load into a fresh model: same predictions */
    m2 = ridge_model_new(&e);
    if (!m2 || kiln_cost_model_save(m, path, &e) || kiln_cost_model_load(m2, path, &e) ||
        kiln_cost_model_predict(m2, test, counts, NTEST, KILN_FEATURE_LEN, pred2, &e)) {
        fail("save/load", &e);
        goto out;
    }
    remove(path);
    if (memcmp(pred, pred2, sizeof pred) != 0) {
        fprintf(stderr, "custom_cost_model: predictions differ after save/load\n");
        goto out;
    }
    /* the wrapper checks batches before the callbacks see them */
    int bad = -1;
    kiln_error_clear(&e);
    if (kiln_cost_model_predict(m, test, &bad, 1, KILN_FEATURE_LEN, pred, &e) != KILN_EINVAL) {
        fprintf(stderr, "custom_cost_model: a negative row count was accepted\n");
        goto out;
    }
    printf("OK\n");
    status = 0;
out:
    kiln_cost_model_free(m);
    kiln_cost_model_free(m2);
    return status;
}
