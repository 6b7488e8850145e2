/* bench/tune_acc.c: the cost model's pairwise ranking accuracy on held-out
 * measured candidates: trains XGBoost on the first 80 % of a workload's
 * records (in the order they were measured) and ranks the last 20 %.
 * Usage: tune_acc DB.  Prints "name n_train n_test accuracy" per workload. */
#include <stdio.h>
#include <stdlib.h>

#include "kiln/tune.h"
#include "tune/database.h"

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    TuneDb *db;
    kiln_error e;
    kiln_error_clear(&e);
    if (tune_db_open(argv[1], &db, &e))
        return fprintf(stderr, "%s\n", e.msg), 1;
    TuneWorkloadInfo *w;
    int nw;
    tune_db_workloads(db, &w, &nw, &e);
    for (int i = 0; i < nw; i++) {
        TuneRecord *r;
        int n;
        if (tune_db_records(db, w[i].id, &r, &n, &e) || n < 20)
            continue;
        int ntr = n * 4 / 5, nte = n - ntr;
        kiln_cost_model *m = kiln_cost_model_xgb_new(NULL, &e);
        float *rows = malloc(sizeof(float) * (size_t)n * 64 * KILN_FEATURE_LEN);
        int *cnt = malloc(sizeof(int) * (size_t)n);
        double *tp = malloc(sizeof(double) * (size_t)n), *sc = malloc(sizeof(double) * (size_t)n);
        long at = 0;
        for (int k = 0; k < n; k++) {
            cnt[k] = r[k].ncols == KILN_FEATURE_LEN && r[k].nrows <= 64 ? r[k].nrows : 0;
            for (int j = 0; j < cnt[k] * KILN_FEATURE_LEN; j++)
                rows[at + j] = r[k].features[j];
            at += cnt[k] * KILN_FEATURE_LEN;
            tp[k] = r[k].error ? 0 : r[k].gflops;
        }
        long split = 0;
        for (int k = 0; k < ntr; k++)
            split += cnt[k] * KILN_FEATURE_LEN;
        kiln_cost_model_update(m, 1, rows, cnt, ntr, KILN_FEATURE_LEN, tp, &e);
        kiln_cost_model_predict(m, rows + split, cnt + ntr, nte, KILN_FEATURE_LEN, sc, &e);
        printf("%s %d %d %.3f\n", w[i].name, ntr, nte, kiln_pairwise_accuracy(sc, tp + ntr, nte));
        kiln_cost_model_free(m);
        free(rows);
        free(cnt);
        free(tp);
        free(sc);
        tune_records_free(r, n);
    }
    tune_workloads_free(w, nw);
    tune_db_close(db);
    return 0;
}
