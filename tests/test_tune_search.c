/* tests/test_tune_search.c: kiln_tune through the public API — a short
 * evolutionary run on a 128^3 matmul finds a verified kernel at least as
 * fast as the default schedule; progress is reported; the best trace
 * replays; a user cost model plugs in; the design space is public. */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>
#include <unistd.h>

#include "kiln/kiln.h"
#include "kiln/tune.h"
#include "testlib.h"

static const char *yaml = "name: mm128\n"
                          "params: {M: 128, N: 128, K: 128}\n"
                          "inputs: {A: [f32, M, K], B: [f32, K, N]}\n"
                          "outputs: {C: [f32, M, N]}\n"
                          "compute:\n"
                          "  - C[i, j] += A[i, k] * B[k, j]\n";

static int calls, last_trials;
static void progress(const kiln_tune_progress *p, void *ctx)
{
    (void)ctx;
    calls++;
    CHECK(p->trials >= last_trials && p->target == 40 && p->last_status);
    last_trials = p->trials;
}

/* A user model: prefers wide vectors (only to show the plug-in works). */
/* An update callback that counts the candidates given without rows in
 * its first call (the records a resumed tuner learns from). */
typedef struct {
    int calls, cands, empty;
} UpdSeen;

static int seen_predict(void *ctx, const float *rows, const int *counts, int ncand, int row_len,
                        double *scores)
{
    (void)ctx, (void)rows, (void)counts, (void)row_len;
    for (int c = 0; c < ncand; c++)
        scores[c] = 0;
    return KILN_OK;
}

static int seen_update(void *ctx, unsigned long long wl, const float *rows, const int *counts,
                       int ncand, int row_len, const double *tp, kiln_error *e)
{
    (void)wl, (void)rows, (void)row_len, (void)e;
    UpdSeen *u = ctx;
    if (u->calls++ == 0)
        for (int c = 0; c < ncand; c++) {
            u->cands++;
            u->empty += tp[c] > 0 && counts[c] == 0;
        }
    return KILN_OK;
}

static int vec_predict(void *ctx, const float *rows, const int *counts, int ncand, int row_len,
                       double *scores)
{
    int *n = ctx;
    const float *r = rows;
    for (int c = 0; c < ncand; c++) {
        scores[c] = counts[c] ? r[KILN_FEAT_VEC + KILN_FEAT_ANN_INNER] : 0;
        r += (size_t)counts[c] * (size_t)row_len;
    }
    (*n)++;
    return KILN_OK;
}

static double best_of_3(const kiln_schedule *s)
{
    double best = 1e300;
    for (int i = 0; i < 3; i++) {
        kiln_run_options ro = {10, 3, 1, 0};
        kiln_run_result r;
        kiln_error e;
        kiln_error_clear(&e);
        if (kiln_run(s, &ro, &r, &e) == KILN_OK && r.verified && r.median_ms < best)
            best = r.median_ms;
    }
    return best;
}

int main(int argc, char **argv)
{
    (void)argc;
    char db[512];
    snprintf(db, sizeof db, "%s/test_tune_search.db", argc > 2 ? argv[2] : ".");
    unlink(db);
    kiln_error e;
    kiln_error_clear(&e);
    kiln_program *p = NULL;
    CHECK(kiln_program_parse_string(yaml, "mm.yaml", &p, &e) == KILN_OK);
    if (!p)
        return t_done("tune_search");
    kiln_set_num_threads(1);

    char *space = kiln_design_space(p);
    CHECK(space && strstr(space, "sample_perfect_tile(C.i, 4, 64)") &&
          strstr(space, "auto_unroll(C, C_unroll)"));
    /* the accumulator may go to a register / cache tile */
    CHECK(space && strstr(space, "C_local = cache_write(C) if C_cw >= 2") &&
          strstr(space, "compute_at(C_local, C.j1) if C_cw == 2") &&
          strstr(space, "auto_unroll(C_local, C_unroll) if C_cw >= 2"));
    /* B (streamed along the vector loop, re-read across i) may be packed
     * at the outer reduction tile; A (broadcast) is not a candidate */
    CHECK(space && strstr(space, "B_C = cache_read(B, C) if C_cw == 1") &&
          strstr(space, "compute_at(B_C, C.k0) if C_cw == 1") &&
          strstr(space, "vectorize(B_C.j_v) if C_cw == 1") && !strstr(space, "cache_read(A"));
    kiln_free(space);

    kiln_tune_options o;
    kiln_tune_options_init(&o);
    o.trials = 40;
    o.batch = 8;
    o.population = 64;
    o.threads = 1;
    o.db_path = db;
    o.min_time_ms = 2;
    o.repeats = 2;
    o.progress = progress;
    kiln_tune_result r;
    CHECKF(kiln_tune(p, &o, &r, &e) == KILN_OK, "%s", e.msg);
    CHECK(r.trials == 40 && r.new_trials == 40 && calls == 40);
    CHECK(r.best_trace && r.best_schedule && r.best_ms > 0 && r.best_gflops > 0);
    CHECKF(r.score_rate > 100, "score rate %.0f", r.score_rate); /* bench measures the real rate */

    /* the best replays (trace form and plain form) to the same schedule */
    kiln_schedule *a = kiln_schedule_new(p), *b = kiln_schedule_new(p);
    CHECK(kiln_schedule_apply_trace(a, r.best_trace, "best", 1, &e) == KILN_OK);
    CHECK(kiln_schedule_apply(b, r.best_schedule, "best", &e) == KILN_OK);
    char *ta = kiln_schedule_to_string(a), *tb = kiln_schedule_to_string(b);
    CHECK(ta && tb && !strcmp(ta, tb));
    kiln_free(ta);
    kiln_free(tb);
    /* ... and the database hands it out */
    kiln_schedule *c = NULL;
    double gf = 0;
    CHECK(kiln_db_best_schedule(db, p, &c, &gf, &e) == KILN_OK && c && gf == r.best_gflops);

    /* faster than the default schedule (best of 3 runs each, 1 thread) */
    kiln_schedule *d = kiln_schedule_default(p);
    double t_def = best_of_3(d), t_tuned = best_of_3(a);
    printf("default %.4f ms, tuned %.4f ms (%.2fx)\n", t_def, t_tuned, t_def / t_tuned);
    CHECKF(t_tuned < t_def, "tuned %.4f ms vs default %.4f ms", t_tuned, t_def);
    kiln_schedule_free(a);
    kiln_schedule_free(b);
    kiln_schedule_free(c);
    kiln_schedule_free(d);
    kiln_tune_result_fini(&r);

    /* a user cost model, the random strategy, a resumed count */
    int npred = 0;
    kiln_cost_model_ops ops = {vec_predict, NULL, NULL, NULL, NULL};
    kiln_cost_model *m = kiln_cost_model_new("vec", &ops, &npred, &e);
    o.cost_model = m;
    o.trials = 48;
    o.progress = NULL;
    CHECK(kiln_tune(p, &o, &r, &e) == KILN_OK && r.trials == 48 && r.new_trials == 8);
    CHECK(npred > 0);
    kiln_tune_result_fini(&r);
    o.strategy = KILN_STRATEGY_RANDOM;
    o.trials = 52;
    CHECK(kiln_tune(p, &o, &r, &e) == KILN_OK && r.trials == 52 && r.new_trials == 4);
    kiln_tune_result_fini(&r);
    kiln_cost_model_free(m);

    /* records whose rows have another layout (an older kiln's) get rows
     * again from their traces when tuning resumes */
    sqlite3 *sq = NULL;
    CHECK(sqlite3_open(db, &sq) == SQLITE_OK &&
          sqlite3_exec(sq, "UPDATE record SET features = substr(features, 1, nrows * 4 * 100)",
                       NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(sq);
    UpdSeen us = {0, 0, 0};
    kiln_cost_model_ops sops = {seen_predict, seen_update, NULL, NULL, NULL};
    m = kiln_cost_model_new("seen", &sops, &us, &e);
    o.cost_model = m;
    o.strategy = KILN_STRATEGY_EVOLUTIONARY;
    o.trials = 54;
    CHECK(kiln_tune(p, &o, &r, &e) == KILN_OK && r.trials == 54);
    CHECKF(us.cands >= 52 && us.empty == 0, "resumed update: %d candidates, %d without rows",
           us.cands, us.empty);
    kiln_tune_result_fini(&r);
    kiln_cost_model_free(m);
    /* bad options */
    o.repeats = 1000;
    kiln_error_clear(&e);
    CHECK(kiln_tune(p, &o, &r, &e) == KILN_EINVAL);
    o.repeats = 3;
    o.space_text = "t = sample_perfect_tile(C.q, 2)\nC.a, C.b = split(C.q, t)\n";
    kiln_error_clear(&e);
    CHECK(kiln_tune(p, &o, &r, &e) != KILN_OK && strstr(e.msg, "C.q"));
    kiln_program_free(p);
    unlink(db);
    return t_done("tune_search");
}
