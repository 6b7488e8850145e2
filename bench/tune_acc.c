/* bench/tune_acc.c: the cost model's pairwise ranking accuracy on held-out
 * measured candidates of a database.
 *
 * Default: trains XGBoost on the first 80 % of a workload's records (in
 * the order they were measured) and ranks the last 20 %; with `-k K` it
 * reports the mean over K folds (every record held out once), a steadier
 * number for a few hundred records.  The model is built with
 * warmup_samples = 1: with the default warm-up (64) a model trained on
 * fewer records would never train and rank randomly (that is what the
 * first version of this tool measured on 64-trial databases).
 * Usage: tune_acc [-k K] [-min] [-log|-sqrt] [-rank] [-depth D] [-rounds R] [-eta E] DB...
 * Prints "name n_train n_test accuracy" per workload. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/tune.h"
#include "tune/database.h"

static bool use_min; /* label: throughput of the fastest repeat, not the median */
static int label_tf; /* 0 throughput, 1 log2(1 + throughput), 2 square root */

/* A record's throughput: failed = 0; with use_min from its fastest
 * repeat (contention on a shared machine only ever slows a run down). */
static double thr(const TuneRecord *r)
{
    if (r->error || !(r->median_ms > 0))
        return 0;
    double best = r->median_ms;
    for (int i = 0; use_min && i < r->ntimes; i++)
        if (r->times_ms[i] > 0 && r->times_ms[i] < best)
            best = r->times_ms[i];
    double t = r->gflops * r->median_ms / best;
    return label_tf == 1 ? log2(1 + t) : label_tf == 2 ? sqrt(t) : t;
}

static double fold_acc(const kiln_xgb_options *xo, TuneRecord *r, int n, int lo, int hi)
{
    kiln_error e;
    kiln_error_clear(&e);
    kiln_cost_model *m = kiln_cost_model_xgb_new(xo, &e);
    int nte = hi - lo, ntr = n - nte;
    size_t cap = 0;
    for (int k = 0; k < n; k++)
        cap += r[k].ncols == KILN_FEATURE_LEN ? (size_t)r[k].nrows : 0;
    float *tr = malloc(sizeof(float) * (cap + 1) * KILN_FEATURE_LEN);
    float *te = malloc(sizeof(float) * (cap + 1) * KILN_FEATURE_LEN);
    int *ctr = malloc(sizeof(int) * (size_t)n), *cte = malloc(sizeof(int) * (size_t)n);
    double *ttr = malloc(sizeof(double) * (size_t)n), *tte = malloc(sizeof(double) * (size_t)n);
    double *sc = malloc(sizeof(double) * (size_t)n);
    double acc = -1;
    if (!m || !tr || !te || !ctr || !cte || !ttr || !tte || !sc)
        goto out;
    size_t atr = 0, ate = 0;
    int itr = 0, ite = 0;
    for (int k = 0; k < n; k++) {
        int c = r[k].ncols == KILN_FEATURE_LEN ? r[k].nrows : 0;
        bool test = k >= lo && k < hi;
        float *dst = test ? te + ate : tr + atr;
        memcpy(dst, r[k].features, sizeof(float) * (size_t)c * KILN_FEATURE_LEN);
        double tp = thr(&r[k]);
        if (test) {
            cte[ite] = c;
            tte[ite++] = tp;
            ate += (size_t)c * KILN_FEATURE_LEN;
        } else {
            ctr[itr] = c;
            ttr[itr++] = tp;
            atr += (size_t)c * KILN_FEATURE_LEN;
        }
    }
    if (kiln_cost_model_update(m, 1, tr, ctr, ntr, KILN_FEATURE_LEN, ttr, &e) ||
        kiln_cost_model_predict(m, te, cte, nte, KILN_FEATURE_LEN, sc, &e))
        fprintf(stderr, "tune_acc: %s\n", e.msg);
    else
        acc = kiln_pairwise_accuracy(sc, tte, nte);
out:
    kiln_cost_model_free(m);
    free(tr);
    free(te);
    free(ctr);
    free(cte);
    free(ttr);
    free(tte);
    free(sc);
    return acc;
}

int main(int argc, char **argv)
{
    kiln_xgb_options xo;
    memset(&xo, 0, sizeof xo);
    xo.warmup_samples = 1;
    int folds = 0, a = 1;
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (!strcmp(argv[a], "-log"))
            label_tf = 1;
        else if (!strcmp(argv[a], "-sqrt"))
            label_tf = 2;
        else if (!strcmp(argv[a], "-min"))
            use_min = true;
        else if (!strcmp(argv[a], "-rank"))
            xo.objective = KILN_XGB_RANK;
        else if (a + 1 < argc && !strcmp(argv[a], "-k"))
            folds = atoi(argv[++a]);
        else if (a + 1 < argc && !strcmp(argv[a], "-depth"))
            xo.max_depth = atoi(argv[++a]);
        else if (a + 1 < argc && !strcmp(argv[a], "-rounds"))
            xo.rounds = atoi(argv[++a]);
        else if (a + 1 < argc && !strcmp(argv[a], "-eta"))
            xo.eta = atof(argv[++a]);
        else
            return fprintf(stderr, "tune_acc: unknown option %s\n", argv[a]), 2;
    }
    if (a >= argc)
        return fprintf(stderr, "usage: tune_acc [-k K] [-rank] [-depth D] [-rounds R] DB...\n"), 2;
    for (; a < argc; a++) {
        TuneDb *db;
        kiln_error e;
        kiln_error_clear(&e);
        if (tune_db_open(argv[a], &db, &e))
            return fprintf(stderr, "%s\n", e.msg), 1;
        TuneWorkloadInfo *w;
        int nw;
        if (tune_db_workloads(db, &w, &nw, &e))
            return fprintf(stderr, "%s\n", e.msg), 1;
        for (int i = 0; i < nw; i++) {
            TuneRecord *r;
            int n;
            if (tune_db_records(db, w[i].id, &r, &n, &e) || n < 20)
                continue;
            double acc = 0;
            int nte = n - n * 4 / 5;
            if (folds > 1) {
                for (int f = 0; f < folds; f++)
                    acc += fold_acc(&xo, r, n, n * f / folds, n * (f + 1) / folds) / folds;
                nte = n / folds;
            } else
                acc = fold_acc(&xo, r, n, n * 4 / 5, n);
            printf("%s %d %d %.3f\n", w[i].name, n - nte, nte, acc);
            tune_records_free(r, n);
        }
        tune_workloads_free(w, nw);
        tune_db_close(db);
    }
    return 0;
}
