/* bench/tune_acc.c: the cost model's pairwise ranking accuracy on held-out
 * measured candidates of a database.
 *
 * Default: trains XGBoost on the first 80 % of a workload's records (in
 * the order they were measured) and ranks the last 20 %; with `-k K` it
 * reports the mean over K folds (every record held out once), a steadier
 * number for a few hundred records.  Held-out records never reach the
 * model: each fold builds a fresh one from the other records only.
 *
 * The truth a ranking is scored against is each record's own result: its
 * median GFLOP/s (0 for a failure).  The model is trained the way the
 * tuner trains it: labelled with the fastest repeat (`-label median`:
 * the median), warm-up of 1 sample (with the default warm-up of 64 a model
 * trained on fewer records would never train and rank randomly).
 *
 * Two numbers per workload: the plain pairwise accuracy over every pair
 * with different results, and the same over pairs whose results differ by
 * more than the timing noise (`-tol T`, default 0.05: 5 %).  `-noise`
 * adds how often two single repeats of the same records agree on the
 * order (a ceiling set by the timing noise).
 *
 * `-pool` scores the records of all the databases given as one set: the
 * same workload tuned by several runs (seeds, strategies), interleaved
 * run by run, a schedule measured twice counted once; k-fold as above.
 *
 * `-program FILE.yaml [-param NAME=V]...` recomputes every record's
 * feature rows from its trace with this build's feature extractor, so a
 * changed extractor can be judged on old measurements.  Diagnostics:
 * `-roofline` ranks with the roofline model instead, `-decisions` trains
 * on the trace's sampled decisions instead of feature rows (how much the
 * schedule's own parameters tell), `-dump` prints every held-out record.
 *
 * Usage: tune_acc [-k K] [-pool] [-tol T] [-label min|median] [-noise] [-rank]
 *                 [-depth D] [-rounds R] [-eta E] [-roofline] [-decisions] [-dump]
 *                 [-program FILE [-param N=V]...] DB...
 * Prints "name n_train n_test accuracy accuracy_beyond_tol" per workload. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kiln.h"
#include "kiln/tune.h"
#include "tune/database.h"
#include "tune/features.h"
#include "tune/tune.h"

static bool label_median; /* train on the median, not the fastest repeat */
static bool roofline;     /* rank with the roofline model (no training) */
static bool dump;         /* print every held-out record: truth, score, trace */
static int dec_rows;      /* >0: rows are the trace's decisions (an oracle experiment) */

/* One row of the decision values of r's trace (log2(1 + v)), padded. */
static void decision_row(TuneRecord *r)
{
    float *row = calloc((size_t)dec_rows, sizeof(float));
    int n = 0;
    for (const char *t = r->trace; t && (t = strstr(t, "decision: "));) {
        t += 10;
        while (*t && *t != '\n' && n < dec_rows) {
            if (*t >= '0' && *t <= '9') {
                char *end;
                long v = strtol(t, &end, 10);
                row[n++] = (float)log2(1.0 + (double)v);
                t = end;
            } else
                t++;
        }
    }
    free(r->features);
    r->features = row;
    r->nrows = 1;
    r->ncols = dec_rows;
}
static double tol = 0.05;

/* The measured result a ranking is judged by: median GFLOP/s, 0 = failed. */
static double truth(const TuneRecord *r)
{
    return r->error || !(r->median_ms > 0) ? 0 : r->gflops;
}

/* The training label: throughput of the fastest repeat (contention on a
 * shared machine only ever slows a run down), as the tuner labels. */
static double label(const TuneRecord *r)
{
    double t = truth(r);
    if (t <= 0 || label_median)
        return t;
    double best = r->median_ms;
    for (int i = 0; i < r->ntimes; i++)
        if (r->times_ms[i] > 0 && r->times_ms[i] < best)
            best = r->times_ms[i];
    return t * r->median_ms / best;
}

/* Pairwise accuracy over pairs whose truths differ by more than a
 * relative tolerance tl (0: every pair with different truths). */
static double acc_tol(const double *s, const double *m, int n, double tl)
{
    double good = 0;
    long pairs = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double hi = fmax(m[i], m[j]), lo = fmin(m[i], m[j]);
            if (m[i] == m[j] || hi - lo <= tl * hi)
                continue;
            pairs++;
            double ds = s[i] - s[j], dm = m[i] - m[j];
            good += ds == 0 ? 0.5 : (ds > 0) == (dm > 0) ? 1 : 0;
        }
    return pairs ? good / (double)pairs : 1;
}

static void fold_acc(const kiln_xgb_options *xo, TuneRecord *r, int n, int lo, int hi,
                     double acc[2])
{
    kiln_error e;
    kiln_error_clear(&e);
    kiln_cost_model *m =
        roofline ? kiln_cost_model_roofline_new(NULL, &e) : kiln_cost_model_xgb_new(xo, &e);
    int nte = hi - lo, ntr = n - nte;
    size_t cap = 0;
    for (int k = 0; k < n; k++)
        cap += r[k].ncols == KILN_FEATURE_LEN ? (size_t)r[k].nrows : 0;
    int L = KILN_FEATURE_LEN;
    if (dec_rows > 0) {
        L = dec_rows;
        cap = (size_t)n;
    }
    float *tr = malloc(sizeof(float) * (cap + 1) * (size_t)L);
    float *te = malloc(sizeof(float) * (cap + 1) * (size_t)L);
    int *ctr = malloc(sizeof(int) * (size_t)n), *cte = malloc(sizeof(int) * (size_t)n);
    double *ttr = malloc(sizeof(double) * (size_t)n), *tte = malloc(sizeof(double) * (size_t)n);
    double *sc = malloc(sizeof(double) * (size_t)n);
    acc[0] = acc[1] = -1;
    if (!m || !tr || !te || !ctr || !cte || !ttr || !tte || !sc)
        goto out;
    size_t atr = 0, ate = 0;
    int itr = 0, ite = 0;
    for (int k = 0; k < n; k++) {
        int c = r[k].ncols == L ? r[k].nrows : 0;
        bool test = k >= lo && k < hi;
        float *dst = test ? te + ate : tr + atr;
        memcpy(dst, r[k].features, sizeof(float) * (size_t)c * (size_t)L);
        if (test) {
            cte[ite] = c;
            tte[ite++] = truth(&r[k]);
            ate += (size_t)c * (size_t)L;
        } else {
            ctr[itr] = c;
            ttr[itr++] = label(&r[k]);
            atr += (size_t)c * (size_t)L;
        }
    }
    if (kiln_cost_model_update(m, 1, tr, ctr, ntr, L, ttr, &e) ||
        kiln_cost_model_predict(m, te, cte, nte, L, sc, &e))
        fprintf(stderr, "tune_acc: %s\n", e.msg);
    else {
        for (int k = 0; dump && k < nte; k++) {
            printf("DUMP %.2f %.4f |", tte[k], sc[k]);
            for (const char *t = r[lo + k].trace; t && *t;) {
                const char *nl = strchr(t, '\n'), *d = strstr(t, "decision: ");
                if (!nl)
                    nl = t + strlen(t);
                if (d && d < nl)
                    printf(" %.*s=%.*s", (int)strcspn(t, " ="), t, (int)(nl - d - 10), d + 10);
                t = *nl ? nl + 1 : nl;
            }
            printf("\n");
        }
        acc[0] = kiln_pairwise_accuracy(sc, tte, nte);
        acc[1] = acc_tol(sc, tte, nte, tol);
    }
out:
    kiln_cost_model_free(m);
    free(tr);
    free(te);
    free(ctr);
    free(cte);
    free(ttr);
    free(tte);
    free(sc);
}

/* Replaces r's feature rows by this build's rows of its trace. */
static int refeaturise(const kiln_program *p, TuneRecord *r, kiln_error *e)
{
    kiln_schedule *s = kiln_schedule_new(p);
    if (!s)
        return KILN_ENOMEM;
    int rc = kiln_schedule_apply_trace(s, r->trace, "<record>", 1, e);
    Arena *a = NULL;
    LFunc *f = NULL;
    if (!rc)
        rc = tune_lower(tune_schedule_of(s), &a, &f, NULL, e);
    if (!rc) {
        int ns = tune_count_stores(f);
        float *rows = malloc(sizeof(float) * (size_t)(ns ? ns : 1) * KILN_FEATURE_LEN);
        int nr = 0;
        if (!rows)
            rc = KILN_ENOMEM;
        else if (!(rc = tune_features(f, rows, ns, &nr, e))) {
            free(r->features);
            r->features = rows;
            r->nrows = nr;
            r->ncols = KILN_FEATURE_LEN;
            rows = NULL;
        }
        free(rows);
    }
    arena_free(a);
    kiln_schedule_free(s);
    return rc;
}

/* How often single repeats a and b of the records order them alike. */
static double repeat_agreement(const TuneRecord *r, int n, int a, int b)
{
    double *x = malloc(sizeof(double) * (size_t)n), *y = malloc(sizeof(double) * (size_t)n);
    int m = 0;
    for (int i = 0; x && y && i < n; i++)
        if (truth(&r[i]) > 0 && r[i].ntimes > a && r[i].ntimes > b && r[i].times_ms[a] > 0 &&
            r[i].times_ms[b] > 0) {
            x[m] = 1 / r[i].times_ms[a];
            y[m++] = 1 / r[i].times_ms[b];
        }
    double acc = x && y ? kiln_pairwise_accuracy(x, y, m) : -1;
    free(x);
    free(y);
    return acc;
}

/* Whether one of r[0..n) has this schedule: a schedule measured by two
 * runs is one candidate (held out or trained on, never both). */
static bool seen(const TuneRecord *r, int n, const char *trace)
{
    for (int i = 0; i < n; i++)
        if (r[i].trace && trace && !strcmp(r[i].trace, trace))
            return true;
    return false;
}

/* Prints one line for the workloads of the databases pooled: every record
 * of the first workload of each database (the same workload measured by
 * several runs, e.g. seeds), interleaved run by run so each fold holds a
 * share of every run, then k-fold as for one database. */
static int pooled(const kiln_xgb_options *xo, int folds, bool noise, const kiln_program *prog,
                  int ndb, char **paths)
{
    kiln_error e;
    kiln_error_clear(&e);
    TuneRecord *all = NULL, **per = calloc((size_t)ndb, sizeof *per);
    int *cnt = calloc((size_t)ndb, sizeof *cnt), total = 0, most = 0, rc = 0;
    char name[128] = "?";
    for (int d = 0; per && cnt && d < ndb && !rc; d++) {
        TuneDb *db;
        TuneWorkloadInfo *w = NULL;
        int nw = 0;
        if (tune_db_open(paths[d], &db, &e))
            return fprintf(stderr, "%s\n", e.msg), 1;
        if (!tune_db_workloads(db, &w, &nw, &e) && nw > 0) {
            snprintf(name, sizeof name, "%s", w[0].name);
            rc = tune_db_records(db, w[0].id, &per[d], &cnt[d], &e);
        }
        tune_workloads_free(w, nw);
        tune_db_close(db);
        total += cnt[d];
        most = cnt[d] > most ? cnt[d] : most;
    }
    if (rc || !(all = calloc((size_t)total + 1, sizeof *all)))
        return fprintf(stderr, "tune_acc: %s\n", rc ? e.msg : "out of memory"), 1;
    int n = 0;
    for (int k = 0; k < most; k++)
        for (int d = 0; d < ndb; d++)
            if (k < cnt[d] && !seen(all, n, per[d][k].trace)) {
                all[n++] = per[d][k]; /* moves the record: its memory now belongs to all */
                memset(&per[d][k], 0, sizeof per[d][k]);
            }
    for (int k = 0; prog && k < n; k++)
        if (refeaturise(prog, &all[k], &e)) {
            fprintf(stderr, "tune_acc: record %d: %s\n", k, e.msg);
            kiln_error_clear(&e);
        }
    if (folds < 2)
        folds = 5;
    double acc[2] = {0, 0}, f[2];
    for (int k = 0; k < folds; k++) {
        fold_acc(xo, all, n, n * k / folds, n * (k + 1) / folds, f);
        acc[0] += f[0] / folds;
        acc[1] += f[1] / folds;
    }
    printf("%s %d %d %.3f %.3f", name, n - n / folds, n / folds, acc[0], acc[1]);
    if (noise)
        printf(" repeats agree %.3f", repeat_agreement(all, n, 0, 1));
    printf("\n");
    for (int d = 0; d < ndb; d++)
        tune_records_free(per[d], cnt[d]);
    tune_records_free(all, n);
    free(per);
    free(cnt);
    return 0;
}

int main(int argc, char **argv)
{
    kiln_xgb_options xo;
    memset(&xo, 0, sizeof xo);
    xo.warmup_samples = 1;
    int folds = 0, a = 1, np = 0;
    bool noise = false, pool = false;
    const char *program = NULL;
    const char *pnames[16];
    long long pvals[16];
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (!strcmp(argv[a], "-rank"))
            xo.objective = KILN_XGB_RANK;
        else if (!strcmp(argv[a], "-roofline"))
            roofline = true;
        else if (!strcmp(argv[a], "-dump"))
            dump = true;
        else if (!strcmp(argv[a], "-decisions"))
            dec_rows = 48;
        else if (!strcmp(argv[a], "-noise"))
            noise = true;
        else if (!strcmp(argv[a], "-pool"))
            pool = true;
        else if (a + 1 < argc && !strcmp(argv[a], "-label"))
            label_median = !strcmp(argv[++a], "median");
        else if (a + 1 < argc && !strcmp(argv[a], "-k"))
            folds = atoi(argv[++a]);
        else if (a + 1 < argc && !strcmp(argv[a], "-tol"))
            tol = atof(argv[++a]);
        else if (a + 1 < argc && !strcmp(argv[a], "-depth"))
            xo.max_depth = atoi(argv[++a]);
        else if (a + 1 < argc && !strcmp(argv[a], "-rounds"))
            xo.rounds = atoi(argv[++a]);
        else if (a + 1 < argc && !strcmp(argv[a], "-eta"))
            xo.eta = atof(argv[++a]);
        else if (a + 1 < argc && !strcmp(argv[a], "-program"))
            program = argv[++a];
        else if (a + 1 < argc && !strcmp(argv[a], "-param") && np < 16) {
            char *eq = strchr(argv[++a], '=');
            if (!eq)
                return fprintf(stderr, "tune_acc: -param wants NAME=VALUE\n"), 2;
            *eq = 0;
            pnames[np] = argv[a];
            pvals[np++] = atoll(eq + 1);
        } else
            return fprintf(stderr, "tune_acc: unknown option %s\n", argv[a]), 2;
    }
    if (a >= argc)
        return fprintf(stderr, "usage: tune_acc [-k K] [-pool] [-tol T] [-label min|median] [-noise] "
                               "[-rank] [-depth D] [-rounds R] [-eta E] [-roofline] "
                               "[-decisions] [-dump] [-program FILE [-param N=V]...] DB...\n"),
               2;
    kiln_program *prog = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    if (program && kiln_program_parse_file_params(program, np, pnames, pvals, &prog, &e))
        return fprintf(stderr, "%s: %s\n", program, e.msg), 1;
    if (pool)
        return pooled(&xo, folds, noise, prog, argc - a, argv + a);
    for (; a < argc; a++) {
        TuneDb *db;
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
            int stale = 0;
            for (int k = 0; k < n; k++)
                stale += r[k].nrows > 0 && r[k].ncols != KILN_FEATURE_LEN;
            if (stale && !prog && !dec_rows)
                fprintf(stderr,
                        "tune_acc: %s: %d records hold feature rows of %d slots, this build "
                        "computes %d: they count as empty (recompute them with -program)\n",
                        w[i].name, stale, r[0].ncols, KILN_FEATURE_LEN);
            for (int k = 0; dec_rows && k < n; k++)
                decision_row(&r[k]);
            for (int k = 0; prog && !dec_rows && k < n; k++)
                if (refeaturise(prog, &r[k], &e)) {
                    fprintf(stderr, "tune_acc: record %d: %s\n", k, e.msg);
                    kiln_error_clear(&e);
                }
            double acc[2] = {0, 0}, f[2];
            int nte = n - n * 4 / 5;
            if (folds > 1) {
                for (int k = 0; k < folds; k++) {
                    fold_acc(&xo, r, n, n * k / folds, n * (k + 1) / folds, f);
                    acc[0] += f[0] / folds;
                    acc[1] += f[1] / folds;
                }
                nte = n / folds;
            } else
                fold_acc(&xo, r, n, n * 4 / 5, n, acc);
            printf("%s %d %d %.3f %.3f", w[i].name, n - nte, nte, acc[0], acc[1]);
            if (noise)
                printf(" repeats agree %.3f %.3f %.3f", repeat_agreement(r, n, 0, 1),
                       repeat_agreement(r, n, 0, 2), repeat_agreement(r, n, 1, 2));
            printf("\n");
            tune_records_free(r, n);
        }
        tune_workloads_free(w, nw);
        tune_db_close(db);
    }
    kiln_program_free(prog);
    return 0;
}
