/* tune/tuner.c: kiln_tune — the tuning loop — and the database views of
 * the public API.
 *
 * One round: build a population (the best measured candidates plus fresh
 * samples of the design spaces), evolve it for a few generations under
 * the cost model, pick `batch` unmeasured, de-duplicated candidates (the
 * best predicted plus an epsilon share of random ones), measure them one
 * by one in the worker process, commit each record, then update the cost
 * model.  The parent never runs LLVM; scoring threads are joined before
 * any measurement (the worker may be re-forked then).
 *
 * Records store the trace with its decisions (so a resumed search can
 * mutate them) under the hash of the applied plain schedule (so two
 * traces that build the same schedule are one record). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "runtime/runtime.h"
#include "tune/cost_model.h"
#include "tune/database.h"
#include "tune/features.h"
#include "tune/measure.h"
#include "tune/search.h"

void kiln_tune_options_init(kiln_tune_options *o)
{
    memset(o, 0, sizeof *o);
    o->trials = 64;
    o->seed = 1;
    o->batch = 16;
    o->population = 256;
    o->min_time_ms = 10;
    o->repeats = 3;
    o->timeout_ms = 20000;
}

void kiln_tune_result_fini(kiln_tune_result *r)
{
    if (!r)
        return;
    free(r->best_trace);
    free(r->best_schedule);
    memset(r, 0, sizeof *r);
}

char *kiln_design_space(const kiln_program *p)
{
    return p ? space_generate(tune_program_of(p)) : NULL;
}

int kiln_schedule_apply_trace(kiln_schedule *ks, const char *text, const char *filename,
                              unsigned long long seed, kiln_error *e)
{
    if (!ks || !text)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0},
                        "kiln_schedule_apply_trace: schedule or text is NULL");
    Schedule *s = (Schedule *)tune_schedule_of(ks);
    TraceProg *t;
    TDec *dec;
    int rc = trace_parse(text, filename, s->prog, &t, &dec, e);
    if (rc)
        return rc;
    uint64_t rng = seed ? seed : 1;
    /* apply to a copy first: on error s is left as it was */
    Schedule *c = sched_clone(s);
    if (!c)
        rc = ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    else if (!(rc = trace_apply(t, c, dec, NULL, &rng, e))) {
        char *plain = sched_to_text(c);
        rc = plain ? sched_apply_text(s, plain, filename, e)
                   : ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
        free(plain);
    }
    sched_free(c);
    trace_prog_free(t);
    free(dec);
    return rc;
}

/* The workload's target: the host CPU and the thread count its kernels
 * run with (the best schedule for 1 thread is seldom the best for 2), or
 * the CPU alone (threads 0: the key of databases older than that).
 * cpu: cg_host_cpu()'s string. */
static char *target_for(const char *cpu, int threads)
{
    size_t n = strlen(cpu) + 32;
    char *t = malloc(n);
    if (t && threads > 0)
        snprintf(t, n, "%s threads=%d", cpu, threads);
    else if (t)
        memcpy(t, cpu, strlen(cpu) + 1);
    return t;
}

/* ------------------------------------------------------------ tuning */
typedef struct Tuner {
    const Program *p;
    kiln_tune_options o;
    TuneDb *db;
    int64_t wl;
    TuneWorker *w;
    kiln_cost_model *model;
    bool own_model;
    /* design spaces: [0, nspaces_gen) generated or given, then traces of
     * database records (elite seeds) */
    TraceProg **spaces;
    int nspaces, nspaces_gen, capspaces;
    SearchCand *measured; /* measured this run and seeds from the database */
    int nmeasured, capmeasured;
    HashSet seen; /* hashes of every measured schedule */
    uint64_t rng;
    int64_t total, failed;
    int new_trials;
    double best_ms, best_gflops;
    char *best_trace, *best_plain;
    double t0, score_s;
    double search_s, measure_s, model_s; /* wall time per phase */
    long long scored;
    FILE *curve;
    char *last_status;
} Tuner;

static int add_space(Tuner *T, TraceProg *t)
{
    if (T->nspaces == T->capspaces) {
        int cap = T->capspaces ? T->capspaces * 2 : 8;
        TraceProg **v = realloc(T->spaces, sizeof(TraceProg *) * (size_t)cap);
        if (!v)
            return KILN_ENOMEM;
        T->spaces = v;
        T->capspaces = cap;
    }
    T->spaces[T->nspaces++] = t;
    return KILN_OK;
}

/* The register-tile class of a candidate's feature rows: log2 of the
 * most vector registers a straight-line body keeps live (0: 1 register,
 * ... 5: 32 or more, which spills).  Tiles of 16 accumulators are what
 * expert kernels use and what a model trained on smaller ones rates
 * worst (trees do not extrapolate), so the class is part of a structure. */
static int reg_class(const float *rows, int nrows)
{
    double most = 0;
    for (int r = 0; rows && r < nrows; r++) {
        double v = tune_unslog(rows[(size_t)r * TUNE_FEAT_LEN + KILN_FEAT_REG_VECS]);
        most = v > most ? v : most;
    }
    int c = 0;
    while (c < 5 && most >= (double)(2 << c))
        c++;
    return c;
}

static int add_measured(Tuner *T, const SearchCand *c, double gflops)
{
    if (T->nmeasured == T->capmeasured) {
        int cap = T->capmeasured ? T->capmeasured * 2 : 64;
        SearchCand *v = realloc(T->measured, sizeof(SearchCand) * (size_t)cap);
        if (!v)
            return KILN_ENOMEM;
        T->measured = v;
        T->capmeasured = cap;
    }
    SearchCand *m = &T->measured[T->nmeasured];
    if (search_cand_copy(m, c))
        return KILN_ENOMEM;
    m->gflops = gflops;
    m->hash = c->hash;
    m->reg_class = c->rows ? reg_class(c->rows, c->nrows) : c->reg_class;
    T->nmeasured++;
    return KILN_OK;
}

static int cmp_gflops_desc(const void *a, const void *b)
{
    double x = ((const SearchCand *)a)->gflops, y = ((const SearchCand *)b)->gflops;
    return (x < y) - (x > y);
}

static int cmp_score_desc(const void *a, const void *b)
{
    double x = ((const SearchCand *)a)->score, y = ((const SearchCand *)b)->score;
    return (x < y) - (x > y);
}

/* The cost model's label: throughput at the fastest repeat.  On a shared
 * machine contention only ever slows a run down, so the fastest repeat is
 * the steadier estimate of what the schedule is worth (the record keeps
 * the median). */
static double label_of(double gflops, double median_ms, const double *times, int n)
{
    double best = median_ms;
    for (int i = 0; i < n; i++)
        if (times[i] > 0 && times[i] < best)
            best = times[i];
    return gflops > 0 && best > 0 ? gflops * median_ms / best : 0;
}

/* Records written with another feature layout (an older kiln) get their
 * rows again from their traces, so the model can learn from them. */
static void refeaturise(Tuner *T, TuneRecord *recs, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += recs[i].ncols != TUNE_FEAT_LEN;
    if (!k)
        return;
    SearchCand *c = calloc((size_t)k, sizeof(SearchCand));
    TraceProg **t = calloc((size_t)k, sizeof(TraceProg *));
    int *of = calloc((size_t)k, sizeof(int));
    int m = 0;
    for (int i = 0; c && t && of && i < n; i++) {
        TDec *dec;
        if (recs[i].ncols == TUNE_FEAT_LEN ||
            trace_parse(recs[i].trace, "<record>", T->p, &t[m], &dec, NULL))
            continue;
        if (search_cand_init(&c[m], t[m], dec) == KILN_OK)
            of[m++] = i;
        else
            trace_prog_free(t[m]);
        free(dec);
    }
    uint64_t rng = 1;
    if (m)
        search_evaluate(T->p, c, m, T->o.search_threads, &rng);
    for (int j = 0; j < m; j++) {
        TuneRecord *r = &recs[of[j]];
        if (c[j].ok) {
            free(r->features);
            r->features = c[j].rows;
            r->nrows = c[j].nrows;
            r->ncols = TUNE_FEAT_LEN;
            c[j].rows = NULL;
        }
        search_cand_fini(&c[j]);
        trace_prog_free(t[j]);
    }
    free(c);
    free(t);
    free(of);
}

/* Loads what the database knows about the workload: counts, the best,
 * the cost model's training data, the seen hashes and the top-k seeds. */
static int resume(Tuner *T, kiln_error *e)
{
    int rc = tune_db_count(T->db, T->wl, &T->total, &T->failed, e);
    if (rc)
        return rc;
    TuneRecord best;
    memset(&best, 0, sizeof best);
    if ((rc = tune_db_best(T->db, T->wl, true, &best, e)))
        return rc;
    if (best.id) {
        T->best_ms = best.median_ms;
        T->best_gflops = best.gflops;
        T->best_trace = strdup(best.trace);
    }
    tune_record_fini(&best);
    TuneRecord *recs = NULL;
    int n = 0;
    if ((rc = tune_db_records(T->db, T->wl, &recs, &n, e)))
        return rc;
    if (T->o.strategy == KILN_STRATEGY_EVOLUTIONARY)
        refeaturise(T, recs, n);
    int64_t nrows = 0;
    for (int i = 0; i < n; i++) {
        char first[17];
        memcpy(first, recs[i].trace_hash, 16);
        first[16] = 0;
        uint64_t h = strtoull(first, NULL, 16);
        hset_add(&T->seen, h ? h : 1);
        if (recs[i].ncols == TUNE_FEAT_LEN)
            nrows += recs[i].nrows;
    }
    if (n > 0 && T->o.strategy == KILN_STRATEGY_EVOLUTIONARY) {
        float *rows = malloc(sizeof(float) * (size_t)(nrows ? nrows : 1) * TUNE_FEAT_LEN);
        int *counts = malloc(sizeof(int) * (size_t)n);
        double *tp = malloc(sizeof(double) * (size_t)n);
        if (!rows || !counts || !tp)
            rc = ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
        int64_t at = 0;
        for (int i = 0; i < n && !rc; i++) {
            counts[i] = recs[i].ncols == TUNE_FEAT_LEN ? recs[i].nrows : 0;
            if (counts[i])
                memcpy(rows + at * TUNE_FEAT_LEN, recs[i].features,
                       sizeof(float) * (size_t)counts[i] * TUNE_FEAT_LEN);
            at += counts[i];
            tp[i] = recs[i].error ? 0
                                  : label_of(recs[i].gflops, recs[i].median_ms, recs[i].times_ms,
                                             recs[i].ntimes);
        }
        if (!rc)
            rc = kiln_cost_model_update(T->model, (unsigned long long)T->wl, rows, counts, n,
                                        TUNE_FEAT_LEN, tp, e);
        free(rows);
        free(counts);
        free(tp);
    }
    tune_records_free(recs, n);
    if (rc)
        return rc;
    /* elite seeds: the top 20% of a population, replayed from their traces */
    int k = T->o.population / 5;
    if ((rc = tune_db_top_k(T->db, T->wl, k, &recs, &n, e)))
        return rc;
    for (int i = 0; i < n && !rc; i++) {
        TraceProg *t;
        TDec *dec;
        kiln_error tmp;
        kiln_error_clear(&tmp);
        if (trace_parse(recs[i].trace, "<record>", T->p, &t, &dec, &tmp))
            continue; /* a record of another kiln: not a seed */
        if ((rc = add_space(T, t))) {
            trace_prog_free(t);
            free(dec);
            break;
        }
        SearchCand c;
        if (search_cand_init(&c, t, dec) == KILN_OK) {
            char first[17];
            memcpy(first, recs[i].trace_hash, 16);
            first[16] = 0;
            c.hash = strtoull(first, NULL, 16);
            if (recs[i].ncols == TUNE_FEAT_LEN)
                c.reg_class = reg_class(recs[i].features, recs[i].nrows);
            add_measured(T, &c, recs[i].gflops);
            search_cand_fini(&c);
        }
        free(dec);
    }
    tune_records_free(recs, n);
    return rc;
}

static void report_progress(Tuner *T, double last_gflops)
{
    if (!T->o.progress)
        return;
    kiln_tune_progress pr;
    memset(&pr, 0, sizeof pr);
    pr.trials = (int)T->total;
    pr.target = T->o.trials;
    pr.failures = (int)T->failed;
    pr.new_trials = T->new_trials;
    pr.best_ms = T->best_ms;
    pr.best_gflops = T->best_gflops;
    pr.last_gflops = last_gflops;
    pr.last_status = T->last_status ? T->last_status : "";
    pr.seconds = tune_now() - T->t0;
    pr.trials_per_s = pr.seconds > 0 ? T->new_trials / pr.seconds : 0;
    int left = T->o.trials - pr.trials;
    pr.eta_s = pr.trials_per_s > 0 && left > 0 ? left / pr.trials_per_s : 0;
    T->o.progress(&pr, T->o.progress_ctx);
}

/* A candidate that beats the best so far is timed a second time before
 * its record is written, and the record keeps both sets of repeats with
 * their median: the best of hundreds of noisy measurements is otherwise
 * often one that met a quiet moment of the machine (the winner's curse),
 * and the best record is what `kiln run/compile --db` ship.  Verified
 * once is enough: the kernel is the same. */
static int confirm_best(Tuner *T, TuneMeasureRequest *req, TuneMeasureReply *rep, kiln_error *e)
{
    TuneMeasureReply again;
    req->opt.verify = 0;
    int rc = tune_measure(T->w, req, &again, e);
    req->opt.verify = 1;
    if (rc || again.status != TUNE_MEASURE_OK || !(again.median_ms > 0))
        return rc; /* a first measurement that passed stands */
    double flops = rep->gflops * rep->median_ms * 1e6;
    for (int i = 0; i < again.ntimes && rep->ntimes < TUNE_MAX_REPEATS; i++)
        rep->times_ms[rep->ntimes++] = again.times_ms[i];
    double sorted[TUNE_MAX_REPEATS];
    int n = 0;
    for (int i = 0; i < rep->ntimes; i++)
        if (rep->times_ms[i] > 0)
            sorted[n++] = rep->times_ms[i];
    if (!n)
        return KILN_OK;
    rep->median_ms = tune_sort_median(sorted, n);
    rep->gflops = flops / (rep->median_ms * 1e6);
    return KILN_OK;
}

/* Measures one candidate, commits its record, updates the best.  *gflops
 * receives the model's label (0: failed). */
static int measure_one(Tuner *T, SearchCand *c, double *gflops, kiln_error *e)
{
    *gflops = 0;
    TuneMeasureRequest req;
    memset(&req, 0, sizeof req);
    req.id = (uint64_t)T->total + 1;
    req.trace = c->plain;
    tune_measure_options_default(&req.opt);
    req.opt.min_time_ms = T->o.min_time_ms;
    req.opt.repeats = T->o.repeats;
    req.opt.verify = 1; /* every record, so every best, is checked */
    req.opt.threads = T->o.threads;
    req.opt.timeout_ms = T->o.timeout_ms;
    TuneMeasureReply rep;
    int rc = tune_measure(T->w, &req, &rep, e);
    if (rc)
        return rc;
    if (rep.status == TUNE_MEASURE_OK && rep.verified && rep.median_ms > 0 && T->best_ms > 0 &&
        rep.median_ms < T->best_ms && (rc = confirm_best(T, &req, &rep, e)))
        return rc;
    TuneRecord r;
    memset(&r, 0, sizeof r);
    r.workload = T->wl;
    r.trace = trace_to_text(c->space, c->dec);
    if (!r.trace)
        return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    tune_trace_hash(c->plain, r.trace_hash);
    r.features = c->rows;
    r.nrows = c->nrows;
    r.ncols = TUNE_FEAT_LEN;
    r.times_ms = rep.times_ms;
    r.ntimes = rep.ntimes;
    r.threads = rep.threads;
    char err[700];
    bool ok = rep.status == TUNE_MEASURE_OK && rep.median_ms > 0 && isfinite(rep.median_ms);
    if (ok) {
        r.median_ms = rep.median_ms;
        r.gflops = rep.gflops;
        r.verified = rep.verified;
    } else {
        snprintf(err, sizeof err, "%s: %s", tune_measure_status_name(rep.status),
                 rep.message[0] ? rep.message : "failed");
        r.error = err;
        r.ntimes = 0;
    }
    bool inserted = false;
    int64_t id;
    rc = tune_db_add(T->db, &r, &id, &inserted, e);
    if (!rc) {
        T->total += inserted;
        T->failed += inserted && !ok;
        T->new_trials += inserted;
        free(T->last_status);
        T->last_status = strdup(tune_measure_status_name(rep.status));
        if (ok && rep.verified && (T->best_ms <= 0 || rep.median_ms < T->best_ms)) {
            T->best_ms = rep.median_ms;
            T->best_gflops = rep.gflops;
            free(T->best_trace);
            free(T->best_plain);
            T->best_trace = strdup(r.trace);
            T->best_plain = strdup(c->plain);
        }
        *gflops = ok ? label_of(rep.gflops, rep.median_ms, rep.times_ms, rep.ntimes) : 0;
        if (T->curve)
            fprintf(T->curve, "%lld,%.3f,%.4f,%.4f,%s\n", (long long)T->total, tune_now() - T->t0,
                    ok ? rep.gflops : 0, T->best_gflops, tune_measure_status_name(rep.status));
    }
    free(r.trace);
    return rc;
}

/* Fresh samples: n random points of the design spaces (not the seeds). */
static int sample_fresh(Tuner *T, SearchCand *out, int n)
{
    for (int i = 0; i < n; i++) {
        int s = (int)(ir_rand(&T->rng) % (uint64_t)T->nspaces_gen);
        if (search_cand_init(&out[i], T->spaces[s], NULL)) {
            for (int k = 0; k < i; k++)
                search_cand_fini(&out[k]);
            return KILN_ENOMEM;
        }
    }
    return KILN_OK;
}

static int score(Tuner *T, SearchCand *c, int n, bool predict, kiln_error *e)
{
    /* the rate counts the candidates evaluated here, not full copies of
     * ones evaluated before (though predicting those costs time too) */
    int fresh = 0;
    for (int i = 0; i < n; i++)
        fresh += !(c[i].ok && c[i].plain && c[i].rows);
    double t0 = tune_now();
    int rc = search_evaluate(T->p, c, n, T->o.search_threads, &T->rng);
    if (!rc && predict)
        rc = search_predict(T->model, c, n, e);
    T->score_s += tune_now() - t0;
    T->scored += fresh;
    return rc;
}

/* A candidate's structure (a "sketch" in Ansor's terms): the values of
 * its categoricals (those that guard lines: inline, compute location,
 * cache write, packing; and the vector width), not tile sizes, unroll or
 * parallel annotations, and its register-tile class.  Keyed by variable
 * name so that traces parsed from records compare with the design space. */
static uint64_t structure_of(const SearchCand *c)
{
    const TraceProg *t = c->space;
    uint64_t h = 1469598103934665603ull;
    for (int k = 0; k < t->nsamp; k++) {
        const TInst *in = &t->v[t->samp_inst[k]];
        if (in->kind != TI_CAT || in->role == ROLE_UNROLL || in->role == ROLE_PARALLEL ||
            in->nchoices < 2)
            continue;
        for (const char *q = in->var; *q; q++)
            h = (h ^ (unsigned char)*q) * 1099511628211ull;
        int64_t v = in->choices[c->dec[k].n ? c->dec[k].v[0] : 0];
        h = (h ^ (uint64_t)v) * 1099511628211ull;
    }
    int rc = c->rows ? reg_class(c->rows, c->nrows) : c->reg_class;
    return (h ^ (uint64_t)(rc + 1)) * 1099511628211ull;
}

/* The best-predicted unmeasured candidate of each structure met during a
 * round's search (at most MAX_GROUPS structures). */
enum { MAX_GROUPS = 128 };
typedef struct {
    uint64_t key;
    SearchCand best;
    int measured; /* records of this structure so far */
} Group;

static void group_offer(Group *g, int *ng, const HashSet *seen, const SearchCand *c)
{
    if (!c->ok || hset_has(seen, c->hash))
        return;
    uint64_t key = structure_of(c);
    int i = 0;
    while (i < *ng && g[i].key != key)
        i++;
    if (i == *ng) {
        if (*ng == MAX_GROUPS)
            return;
        memset(&g[i], 0, sizeof g[i]);
        g[i].key = key;
        g[i].best.score = -1e300;
        (*ng)++;
    }
    if (c->score <= g[i].best.score)
        return;
    search_cand_fini(&g[i].best);
    if (search_cand_copy_full(&g[i].best, c) == KILN_OK && g[i].best.ok) {
        g[i].best.score = c->score;
    } else
        g[i].best.score = -1e300;
}

static int cmp_group(const void *a, const void *b)
{
    const Group *x = a, *y = b;
    if (x->measured != y->measured)
        return x->measured - y->measured;
    return (x->best.score < y->best.score) - (x->best.score > y->best.score);
}

/* Chooses up to `want` candidates to measure into picks (copies). */
static int propose(Tuner *T, SearchCand *picks, int want, int *npicks, kiln_error *e)
{
    *npicks = 0;
    int pop = T->o.population;
    bool evo = T->o.strategy == KILN_STRATEGY_EVOLUTIONARY;
    HashSet chosen = {0};
    int rc = KILN_OK;
    SearchCand *cur = calloc((size_t)pop, sizeof(SearchCand));
    SearchCand *nxt = calloc((size_t)pop, sizeof(SearchCand));
    SearchCand *fresh = calloc((size_t)pop, sizeof(SearchCand));
    /* candidate best list (by predicted score) */
    int bcap = want * 4 + 8, nb = 0;
    SearchCand *best = calloc((size_t)bcap, sizeof(SearchCand));
    int ngroups = 0;
    Group *groups = calloc(MAX_GROUPS, sizeof(Group));
    if (!cur || !nxt || !fresh || !best || !groups) {
        rc = ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
        goto done;
    }
    int nfresh = evo ? pop : want * 4;
    if ((rc = sample_fresh(T, fresh, nfresh)) || (rc = score(T, fresh, nfresh, false, e)))
        goto done;
    if (!evo) {
        for (int i = 0; i < nfresh && *npicks < want; i++) {
            SearchCand *c = &fresh[i];
            if (!c->ok || hset_has(&T->seen, c->hash) || !hset_add(&chosen, c->hash))
                continue;
            if (search_cand_copy_full(&picks[*npicks], c) == KILN_OK)
                (*npicks)++;
        }
        goto done;
    }
    /* initial population: the best measured (20%), then fresh samples */
    if (T->nmeasured > 1)
        qsort(T->measured, (size_t)T->nmeasured, sizeof(SearchCand), cmp_gflops_desc);
    int n = 0;
    for (int i = 0; i < T->nmeasured && n < pop / 5; i++)
        if (T->measured[i].gflops > 0 && search_cand_copy(&cur[n], &T->measured[i]) == KILN_OK)
            n++;
    for (int i = 0; n < pop && i < nfresh; i++)
        if (search_cand_copy_full(&cur[n], &fresh[i]) == KILN_OK)
            n++;
    enum { GENERATIONS = 4 };
    for (int g = 0; g <= GENERATIONS; g++) {
        if ((rc = score(T, cur, n, true, e)))
            goto done;
        /* keep the best unmeasured, unique candidates */
        for (int i = 0; i < n; i++) {
            SearchCand *c = &cur[i];
            if (!c->ok || hset_has(&T->seen, c->hash))
                continue;
            group_offer(groups, &ngroups, &T->seen, c);
            bool dup = false;
            for (int k = 0; k < nb && !dup; k++)
                dup = best[k].hash == c->hash;
            if (dup)
                continue;
            int slot = nb < bcap ? nb++ : -1;
            if (slot < 0) {
                int worst = 0;
                for (int k = 1; k < nb; k++)
                    if (best[k].score < best[worst].score)
                        worst = k;
                if (best[worst].score >= c->score)
                    continue;
                search_cand_fini(&best[worst]);
                slot = worst;
            }
            search_cand_copy_full(&best[slot], c);
        }
        if (g == GENERATIONS)
            break;
        /* next generation: parents drawn in proportion to their (shifted)
         * predicted score; mutated with probability 0.85 */
        double lo = 1e300, *w = malloc(sizeof(double) * (size_t)n);
        if (!w) {
            rc = ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
            goto done;
        }
        for (int i = 0; i < n; i++)
            if (cur[i].ok && cur[i].score < lo)
                lo = cur[i].score;
        double hi = -1e300;
        for (int i = 0; i < n; i++)
            if (cur[i].ok && cur[i].score > hi)
                hi = cur[i].score;
        for (int i = 0; i < n; i++)
            w[i] = cur[i].ok ? (cur[i].score - lo) + 1e-3 * (hi - lo + 1e-12) : 0;
        int m = 0;
        for (int i = 0; i < pop; i++) {
            int par = trace_sample_cat(w, n, &T->rng);
            bool mutate = trace_rand01(&T->rng) < 0.85;
            /* an unmutated child keeps its parent's evaluation */
            if (mutate ? search_cand_copy(&nxt[m], &cur[par])
                       : search_cand_copy_full(&nxt[m], &cur[par]))
                continue;
            if (mutate) {
                bool done = false;
                for (int tries = 0; tries < 10 && !done; tries++)
                    done = search_mutate(nxt[m].space, nxt[m].dec, nxt[m].active, &T->rng);
            }
            m++;
        }
        free(w);
        for (int i = 0; i < n; i++)
            search_cand_fini(&cur[i]);
        SearchCand *tmp = cur;
        cur = nxt;
        nxt = tmp;
        n = m;
    }
    /* pick: the best predicted; then a quarter of the batch for the
     * structures measured least (each with its best-predicted member: a
     * model trained mostly on one structure under-rates the others, and
     * mutations seldom cross structures — Ansor seeds every sketch for
     * the same reason); then an epsilon share of fresh random samples
     * (MetaSchedule: 0.05, at least one per round here) */
    qsort(best, (size_t)nb, sizeof(SearchCand), cmp_score_desc);
    int nrand = (int)(want * 0.05 + 0.5);
    if (nrand < 1)
        nrand = 1;
    int ndiv = ngroups > 1 ? want / 4 : 0;
    int from_model = want - nrand - ndiv;
    for (int i = 0; i < nb && *npicks < from_model; i++)
        if (hset_add(&chosen, best[i].hash)) {
            if (search_cand_copy_full(&picks[*npicks], &best[i]) == KILN_OK)
                (*npicks)++;
        }
    if (ndiv) {
        for (int i = 0; i < T->nmeasured; i++) {
            uint64_t key = structure_of(&T->measured[i]);
            for (int k = 0; k < ngroups; k++)
                if (groups[k].key == key)
                    groups[k].measured++;
        }
        qsort(groups, (size_t)ngroups, sizeof(Group), cmp_group);
        for (int k = 0; k < ngroups && *npicks < from_model + ndiv; k++)
            if (groups[k].best.ok && hset_add(&chosen, groups[k].best.hash)) {
                if (search_cand_copy_full(&picks[*npicks], &groups[k].best) == KILN_OK)
                    (*npicks)++;
            }
    }
    for (int i = 0; i < nfresh && *npicks < want; i++) {
        SearchCand *c = &fresh[i];
        if (!c->ok || hset_has(&T->seen, c->hash) || !hset_add(&chosen, c->hash))
            continue;
        if (search_cand_copy_full(&picks[*npicks], c) == KILN_OK)
            (*npicks)++;
    }
    /* picks are full copies; this evaluates only what lost its rows */
    if (*npicks)
        rc = score(T, picks, *npicks, false, e);
done:
    for (int i = 0; i < pop; i++) {
        if (cur)
            search_cand_fini(&cur[i]);
        if (nxt)
            search_cand_fini(&nxt[i]);
        if (fresh)
            search_cand_fini(&fresh[i]);
    }
    for (int i = 0; i < nb; i++)
        search_cand_fini(&best[i]);
    for (int i = 0; groups && i < ngroups; i++)
        search_cand_fini(&groups[i].best);
    free(groups);
    free(cur);
    free(nxt);
    free(fresh);
    free(best);
    hset_free(&chosen);
    return rc;
}

static int load_spaces(Tuner *T, kiln_error *e)
{
    char *text = NULL;
    const char *file = "<space>";
    if (T->o.space_path) {
        text = tune_read_file(T->o.space_path);
        if (!text)
            return ir_error(e, KILN_EIO, T->o.space_path, (Loc){0, 0},
                            "cannot read the design space file");
        file = T->o.space_path;
    } else if (T->o.space_text) {
        text = strdup(T->o.space_text);
    } else {
        text = space_generate(T->p);
        file = "<kiln space>";
    }
    if (!text)
        return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    TraceProg *t;
    TDec *dec;
    int rc = trace_parse(text, file, T->p, &t, &dec, e);
    free(text);
    if (rc)
        return rc;
    free(dec); /* a design space's recorded decisions are not used: it is sampled */
    if ((rc = add_space(T, t))) {
        trace_prog_free(t);
        return ir_error(e, rc, NULL, (Loc){0, 0}, "out of memory");
    }
    T->nspaces_gen = T->nspaces;
    /* a space that cannot produce a single schedule is the user's error */
    SearchCand c;
    if (search_cand_init(&c, t, NULL))
        return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    Schedule *s = sched_new(T->p);
    uint64_t rng = 7;
    rc = s ? trace_apply(t, s, c.dec, NULL, &rng, e) : KILN_ENOMEM;
    sched_free(s);
    search_cand_fini(&c);
    return rc;
}

int kiln_tune(const kiln_program *kp, const kiln_tune_options *opts, kiln_tune_result *res,
              kiln_error *e)
{
    if (res)
        memset(res, 0, sizeof *res);
    if (!kp)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "kiln_tune: program is NULL");
    Tuner T;
    memset(&T, 0, sizeof T);
    T.p = tune_program_of(kp);
    kiln_tune_options_init(&T.o);
    if (opts) {
        kiln_tune_options d = T.o;
        T.o = *opts;
        if (T.o.trials < 0 || T.o.batch < 0 || T.o.population < 0 || T.o.repeats < 0 ||
            T.o.repeats > TUNE_MAX_REPEATS || T.o.search_threads < 0 ||
            T.o.strategy < KILN_STRATEGY_EVOLUTIONARY || T.o.strategy > KILN_STRATEGY_RANDOM)
            return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0},
                            "kiln_tune: an option is out of range");
        if (!T.o.batch)
            T.o.batch = d.batch;
        if (!T.o.population)
            T.o.population = d.population;
        if (T.o.min_time_ms <= 0)
            T.o.min_time_ms = d.min_time_ms;
        if (!T.o.repeats)
            T.o.repeats = d.repeats;
        if (T.o.timeout_ms <= 0)
            T.o.timeout_ms = d.timeout_ms;
        if (!T.o.seed)
            T.o.seed = d.seed;
    }
    if (T.o.population < 2 * T.o.batch)
        T.o.population = 2 * T.o.batch;
    if (!T.o.search_threads) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        T.o.search_threads = nc < 1 ? 1 : nc > 4 ? 4 : (int)nc;
    }
    T.t0 = tune_now();
    T.rng = 0x9E3779B97F4A7C15ull ^ (T.o.seed * 0xD1B54A32D192ED03ull);
    if (!T.rng)
        T.rng = 1;
    int rc = load_spaces(&T, e);
    if (rc)
        goto done;
    if ((rc = tune_db_open(T.o.db_path, &T.db, e)))
        goto done;
    char *canon = ir_program_canonical(T.p);
    char *cpu = cg_host_cpu();
    char *target =
        cpu ? target_for(cpu, T.o.threads > 0 ? T.o.threads : kiln_rt_get_num_threads()) : NULL;
    free(cpu);
    if (!canon || !target)
        rc = ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    else
        rc = tune_db_workload(T.db, NULL, T.p->name, target, canon, &T.wl, e);
    free(canon);
    free(target);
    if (rc)
        goto done;
    /* the worker first: it must be forked before anything could start a
     * thread pool (XGBoost is pinned to one thread anyway) */
    if ((rc = tune_worker_new(T.p, NULL, NULL, &T.w, e)))
        goto done;
    if (T.o.cost_model)
        T.model = T.o.cost_model;
    else {
        kiln_xgb_options xo;
        memset(&xo, 0, sizeof xo);
        xo.warmup_samples = 16;
        xo.seed = T.o.seed;
        if (!(T.model = kiln_cost_model_xgb_new(&xo, e))) {
            rc = e && e->code ? e->code : KILN_ENOMEM;
            goto done;
        }
        T.own_model = true;
    }
    if ((rc = resume(&T, e)))
        goto done;
    if (T.o.curve_path) {
        T.curve = fopen(T.o.curve_path, "w");
        if (!T.curve) {
            rc = ir_error(e, KILN_EIO, T.o.curve_path, (Loc){0, 0}, "cannot write the curve file");
            goto done;
        }
        fprintf(T.curve, "trial,seconds,gflops,best_gflops,status\n");
    }
    int empty_rounds = 0;
    while (T.total < T.o.trials && empty_rounds < 5) {
        int want = T.o.batch;
        if (want > T.o.trials - T.total)
            want = (int)(T.o.trials - T.total);
        SearchCand *picks = calloc((size_t)want, sizeof(SearchCand));
        if (!picks) {
            rc = ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
            break;
        }
        int np = 0;
        double ts = tune_now();
        rc = propose(&T, picks, want, &np, e);
        T.search_s += tune_now() - ts;
        int64_t before = T.total;
        double *tp = calloc((size_t)(np ? np : 1), sizeof(double));
        /* only what was measured now teaches the model: a pick skipped as
         * already seen has no label (0 would call it a failure) */
        bool *fresh = calloc((size_t)(np ? np : 1), sizeof(bool));
        for (int i = 0; i < np && !rc && tp && fresh; i++) {
            if (!picks[i].ok || hset_has(&T.seen, picks[i].hash))
                continue;
            int64_t had = T.total;
            double tm = tune_now();
            rc = measure_one(&T, &picks[i], &tp[i], e);
            T.measure_s += tune_now() - tm;
            hset_add(&T.seen, picks[i].hash);
            fresh[i] = !rc && T.total > had;
            if (!rc)
                add_measured(&T, &picks[i], tp[i]);
            report_progress(&T, tp[i]);
        }
        if (!rc && np && T.o.strategy == KILN_STRATEGY_EVOLUTIONARY) {
            /* one update per round, as MetaSchedule's UpdateCostModel */
            int64_t nrows = 0;
            for (int i = 0; i < np; i++)
                nrows += fresh && fresh[i] ? picks[i].nrows : 0;
            float *rows = malloc(sizeof(float) * (size_t)(nrows ? nrows : 1) * TUNE_FEAT_LEN);
            int *counts = malloc(sizeof(int) * (size_t)np);
            double *lab = malloc(sizeof(double) * (size_t)np);
            if (rows && counts && tp && fresh && lab) {
                int64_t at = 0;
                int nl = 0;
                for (int i = 0; i < np; i++) {
                    if (!fresh[i])
                        continue;
                    counts[nl] = picks[i].nrows;
                    lab[nl++] = tp[i];
                    if (picks[i].nrows)
                        memcpy(rows + at * TUNE_FEAT_LEN, picks[i].rows,
                               sizeof(float) * (size_t)picks[i].nrows * TUNE_FEAT_LEN);
                    at += picks[i].nrows;
                }
                double tu = tune_now();
                if (nl)
                    rc = kiln_cost_model_update(T.model, (unsigned long long)T.wl, rows, counts, nl,
                                                TUNE_FEAT_LEN, lab, e);
                T.model_s += tune_now() - tu;
            }
            free(rows);
            free(counts);
            free(lab);
        }
        free(tp);
        free(fresh);
        for (int i = 0; i < want; i++)
            search_cand_fini(&picks[i]);
        free(picks);
        if (rc)
            break;
        empty_rounds = T.total == before ? empty_rounds + 1 : 0;
    }
done:
    if (T.curve)
        fclose(T.curve);
    if (res && T.db && !rc) {
        res->trials = (int)T.total;
        res->failures = (int)T.failed;
        res->new_trials = T.new_trials;
        res->best_ms = T.best_ms;
        res->best_gflops = T.best_gflops;
        res->seconds = tune_now() - T.t0;
        res->scored = T.scored;
        res->score_rate = T.score_s > 0 ? (double)T.scored / T.score_s : 0;
        res->search_seconds = T.search_s;
        res->measure_seconds = T.measure_s;
        res->model_seconds = T.model_s;
        if (T.best_trace) {
            res->best_trace = strdup(T.best_trace);
            if (T.best_plain)
                res->best_schedule = strdup(T.best_plain);
            else {
                /* resumed best: replay its trace for the plain form */
                TraceProg *t;
                TDec *dec;
                if (!trace_parse(T.best_trace, "<record>", T.p, &t, &dec, NULL)) {
                    Schedule *s = sched_new(T.p);
                    uint64_t r = 1;
                    if (s && !trace_apply(t, s, dec, NULL, &r, NULL))
                        res->best_schedule = sched_to_text(s);
                    sched_free(s);
                    trace_prog_free(t);
                    free(dec);
                }
            }
        }
    }
    tune_worker_free(T.w);
    if (T.own_model)
        kiln_cost_model_free(T.model);
    for (int i = 0; i < T.nmeasured; i++)
        search_cand_fini(&T.measured[i]);
    free(T.measured);
    for (int i = 0; i < T.nspaces; i++)
        trace_prog_free(T.spaces[i]);
    free(T.spaces);
    hset_free(&T.seen);
    free(T.best_trace);
    free(T.best_plain);
    free(T.last_status);
    tune_db_close(T.db);
    return rc;
}

/* ------------------------------------------------------------ database */
static int open_existing(const char *path, TuneDb **db, kiln_error *e)
{
    const char *p = path ? path : TUNE_DB_DEFAULT_PATH;
    if (access(p, F_OK) != 0)
        return ir_error(e, KILN_EIO, p, (Loc){0, 0}, "no database at %s", p);
    return tune_db_open(p, db, e);
}

/* The workload tuned for `threads` threads; else the one of the nearest
 * other thread count (fewer first), else an old database's (no count). */
static int find_workload(TuneDb *db, const kiln_program *kp, int threads, int64_t *wl,
                         kiln_error *e)
{
    char *canon = ir_program_canonical(tune_program_of(kp));
    char *cpu = cg_host_cpu(); /* once: up to 257 counts are probed */
    if (!canon || !cpu) {
        free(canon);
        free(cpu);
        return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    }
    int rc = KILN_OK;
    *wl = 0;
    int order[2 * 256 + 2], n = 0;
    order[n++] = threads;
    for (int d = 1; d < 256; d++) {
        if (threads - d >= 1)
            order[n++] = threads - d;
        if (threads + d <= 256)
            order[n++] = threads + d;
    }
    order[n++] = 0;
    for (int i = 0; i < n && !*wl && !rc; i++) {
        char *target = target_for(cpu, order[i]);
        if (!target) {
            rc = ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
            break;
        }
        char hex[TUNE_HASH_HEX];
        tune_workload_hash(canon, target, hex);
        rc = tune_db_find_workload(db, hex, wl, e);
        free(target);
    }
    free(canon);
    free(cpu);
    return rc;
}

int kiln_db_best_schedule(const char *db_path, const kiln_program *kp, kiln_schedule **out,
                          double *gflops, kiln_error *e)
{
    if (!out || !kp)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0},
                        "kiln_db_best_schedule: program or out is NULL");
    *out = NULL;
    if (gflops)
        *gflops = 0;
    TuneDb *db;
    int rc = open_existing(db_path, &db, e);
    if (rc)
        return rc;
    int64_t wl = 0;
    TuneRecord r;
    memset(&r, 0, sizeof r);
    if (!(rc = find_workload(db, kp, kiln_rt_get_num_threads(), &wl, e)) && wl &&
        !(rc = tune_db_best(db, wl, true, &r, e)) && r.id) {
        kiln_schedule *s = kiln_schedule_new(kp);
        if (!s)
            rc = ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
        else if ((rc = kiln_schedule_apply_trace(s, r.trace, tune_db_path(db), 1, e)))
            kiln_schedule_free(s);
        else {
            *out = s;
            if (gflops)
                *gflops = r.gflops;
        }
    }
    tune_record_fini(&r);
    tune_db_close(db);
    return rc;
}

int kiln_db_list(const char *db_path, FILE *out, kiln_error *e)
{
    TuneDb *db;
    int rc = open_existing(db_path, &db, e);
    if (rc)
        return rc;
    TuneWorkloadInfo *w = NULL;
    int n = 0;
    if (!(rc = tune_db_workloads(db, &w, &n, e))) {
        fprintf(out, "%-24s %8s %8s %8s %12s %12s  %s\n", "workload", "threads", "records",
                "failed", "best_ms", "GFLOP/s", "hash");
        for (int i = 0; i < n; i++) {
            const char *t = w[i].target ? strstr(w[i].target, " threads=") : NULL;
            fprintf(out, "%-24s %8s %8lld %8lld %12.6f %12.3f  %.12s\n", w[i].name, t ? t + 9 : "-",
                    (long long)w[i].nrecords, (long long)w[i].nfailed, w[i].best_ms,
                    w[i].best_gflops, w[i].hash);
        }
    }
    tune_workloads_free(w, n);
    tune_db_close(db);
    return rc;
}

int kiln_db_print_best(const char *db_path, const kiln_program *kp, FILE *out, kiln_error *e)
{
    TuneDb *db;
    int rc = open_existing(db_path, &db, e);
    if (rc)
        return rc;
    TuneWorkloadInfo *w = NULL;
    int n = 0, shown = 0;
    int64_t only = 0;
    if (kp && (rc = find_workload(db, kp, kiln_rt_get_num_threads(), &only, e)))
        goto done;
    if (kp && !only) {
        rc = ir_error(e, KILN_EIO, tune_db_path(db), (Loc){0, 0}, "no records for '%s' on this CPU",
                      kiln_program_name(kp));
        goto done;
    }
    if ((rc = tune_db_workloads(db, &w, &n, e)))
        goto done;
    for (int i = 0; i < n && !rc; i++) {
        if (only && w[i].id != only)
            continue;
        TuneRecord r;
        memset(&r, 0, sizeof r);
        if ((rc = tune_db_best(db, w[i].id, true, &r, e)))
            break;
        if (r.id) {
            fprintf(out, "# %s: %.6f ms, %.3f GFLOP/s, %d threads (record %lld)\n%s%s", w[i].name,
                    r.median_ms, r.gflops, r.threads, (long long)r.id, r.trace,
                    r.trace[0] && r.trace[strlen(r.trace) - 1] != '\n' ? "\n" : "");
            shown++;
        }
        tune_record_fini(&r);
    }
    if (!rc && !shown)
        rc = ir_error(e, KILN_EIO, tune_db_path(db), (Loc){0, 0}, "no verified record");
done:
    tune_workloads_free(w, n);
    tune_db_close(db);
    return rc;
}

int kiln_db_export(const char *db_path, FILE *out, kiln_error *e)
{
    TuneDb *db;
    int rc = open_existing(db_path, &db, e);
    if (rc)
        return rc;
    rc = tune_db_export(db, 0, out, e);
    tune_db_close(db);
    return rc;
}
