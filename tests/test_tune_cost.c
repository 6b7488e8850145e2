/* tests/test_tune_cost.c: cost models (tune/cost_*.c, include/kiln/tune.h).
 *
 * - the ranking metric and the generic wrapper's argument checks;
 * - random: seeded, deterministic, resumable through save/load;
 * - roofline: prefers the tiled + vectorized matmul over naive orders;
 * - XGBoost: warm-up, retraining cadence, learning a synthetic ranking
 *   (held-out pairwise accuracy >= 0.85, both objectives reported),
 *   learning the roofline's order of random matmul tilings from real
 *   feature rows, save/load with identical predictions, resumed learning,
 *   corrupt files;
 * - the featurise + predict rate for batches of 512 candidates (printed). */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"
#include "tune/cost_model.h"
#include "tune/features.h"
#include "tune_fixtures.h"

enum { L = KILN_FEATURE_LEN };

/* CPU time of this thread (XGBoost runs in it too, with nthread 1): other
 * processes on a shared machine do not inflate it */
static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x1234567887654321ull;
static double urand(void)
{
    return (double)(ir_rand(&rng_state) >> 11) * 0x1p-53;
}

/* --------------------------------------------------------------- metric */
static void test_metric(void)
{
    double m[4] = {1, 2, 3, 4};
    double s_good[4] = {0.1, 0.2, 0.3, 0.4}, s_bad[4] = {4, 3, 2, 1}, s_tie[4] = {1, 1, 1, 1};
    CHECK(kiln_pairwise_accuracy(s_good, m, 4) == 1.0);
    CHECK(kiln_pairwise_accuracy(s_bad, m, 4) == 0.0);
    CHECK(kiln_pairwise_accuracy(s_tie, m, 4) == 0.5);
    double s_one[4] = {0.1, 0.3, 0.2, 0.4}; /* one of 6 pairs swapped */
    CHECK(fabs(kiln_pairwise_accuracy(s_one, m, 4) - 5.0 / 6) < 1e-12);
    double same[3] = {2, 2, 2}; /* no pair with different measurements */
    CHECK(kiln_pairwise_accuracy(s_bad, same, 3) == 1.0);
    CHECK(kiln_pairwise_accuracy(NULL, NULL, 0) == 1.0);
}

/* ---------------------------------------------------- wrapper + random */
typedef struct Counter {
    int predicts, updates;
    int *freed;
} Counter;

static int cnt_predict(void *ctx, const float *rows, const int *rc, int n, int len, double *s)
{
    Counter *c = ctx;
    c->predicts++;
    for (int i = 0; i < n; i++) {
        s[i] = rc[i] ? rows[0] : -1;
        rows += (size_t)rc[i] * len;
    }
    return KILN_OK;
}

static int cnt_update(void *ctx, unsigned long long w, const float *rows, const int *rc, int n,
                      int len, const double *thr, kiln_error *e)
{
    Counter *c = ctx;
    c->updates++;
    return thr[0] == 42 ? KILN_EIO : KILN_OK; /* a failure with no message */
}

static void cnt_free(void *ctx)
{
    Counter *c = ctx;
    (*c->freed)++;
    free(c);
}

static void test_wrapper(void)
{
    int freed = 0;
    Counter *c = calloc(1, sizeof *c);
    c->freed = &freed;
    kiln_cost_model_ops ops = {.predict = cnt_predict, .update = cnt_update, .free = cnt_free};
    kiln_error e = {0};
    kiln_cost_model *m = kiln_cost_model_new("counter", &ops, c, &e);
    CHECK(m && !strcmp(kiln_cost_model_name(m), "counter"));
    float rows[3] = {7, 8, 9};
    int counts[3] = {1, 0, 2};
    double s[3];
    CHECK(kiln_cost_model_predict(m, rows, counts, 3, 1, s, &e) == KILN_OK);
    CHECK(s[0] == 7 && s[1] == -1 && s[2] == 8);
    /* bad batches never reach the callback */
    int neg[1] = {-1};
    CHECK(kiln_cost_model_predict(m, rows, neg, 1, 1, s, &e) == KILN_EINVAL);
    CHECK(strstr(e.msg, "negative row count") != NULL);
    kiln_error_clear(&e);
    CHECK(kiln_cost_model_predict(m, rows, counts, 3, 0, s, &e) == KILN_EINVAL);
    kiln_error_clear(&e);
    CHECK(kiln_cost_model_predict(m, NULL, counts, 3, 1, s, &e) == KILN_EINVAL);
    kiln_error_clear(&e);
    double bad[3] = {1, NAN, 2};
    CHECK(kiln_cost_model_update(m, 1, rows, counts, 3, 1, bad, &e) == KILN_EINVAL);
    CHECK(strstr(e.msg, "throughput of candidate 1") != NULL);
    kiln_error_clear(&e);
    double fail[3] = {42, 1, 1};
    CHECK(kiln_cost_model_update(m, 1, rows, counts, 3, 1, fail, &e) == KILN_EIO);
    CHECK(strstr(e.msg, "cost model 'counter': update failed") != NULL);
    kiln_error_clear(&e);
    CHECK(kiln_cost_model_save(m, "/nonexistent/x", &e) == KILN_EINVAL);
    CHECK(strstr(e.msg, "cannot save") != NULL);
    CHECK(c->predicts == 1 && c->updates == 1);
    kiln_cost_model_free(m);
    CHECK(freed == 1);
    kiln_cost_model_free(NULL);
    /* a model without predict is refused, and its context still freed */
    Counter *c2 = calloc(1, sizeof *c2);
    c2->freed = &freed;
    kiln_cost_model_ops none = {.free = cnt_free};
    kiln_error_clear(&e);
    CHECK(kiln_cost_model_new(NULL, &none, c2, &e) == NULL && e.code == KILN_EINVAL);
    CHECK(freed == 2);
}

static void test_random(const char *dir)
{
    kiln_cost_model *a = kiln_cost_model_random_new(7, NULL);
    kiln_cost_model *b = kiln_cost_model_random_new(7, NULL);
    kiln_cost_model *c = kiln_cost_model_random_new(8, NULL);
    int counts[64] = {0};
    double sa[64], sb[64], sc[64];
    CHECK(kiln_cost_model_predict(a, NULL, counts, 64, L, sa, NULL) == 0);
    CHECK(kiln_cost_model_predict(b, NULL, counts, 64, L, sb, NULL) == 0);
    CHECK(kiln_cost_model_predict(c, NULL, counts, 64, L, sc, NULL) == 0);
    CHECK(!memcmp(sa, sb, sizeof sa) && memcmp(sa, sc, sizeof sa));
    bool in_range = true;
    for (int i = 0; i < 64; i++)
        in_range &= sa[i] >= 0 && sa[i] < 1;
    CHECK(in_range);
    /* save, then a fresh model loaded from it continues the same sequence */
    char path[512];
    snprintf(path, sizeof path, "%s/test_tune_cost_random.txt", dir);
    kiln_error e = {0};
    CHECK(kiln_cost_model_save(a, path, &e) == 0);
    kiln_cost_model *d = kiln_cost_model_random_new(999, NULL);
    CHECK(kiln_cost_model_load(d, path, &e) == 0);
    CHECK(kiln_cost_model_predict(a, NULL, counts, 64, L, sa, NULL) == 0);
    CHECK(kiln_cost_model_predict(d, NULL, counts, 64, L, sb, NULL) == 0);
    CHECK(!memcmp(sa, sb, sizeof sa));
    CHECK(kiln_cost_model_load(d, "/nonexistent/r.txt", &e) == KILN_EIO);
    remove(path);
    kiln_cost_model_free(a);
    kiln_cost_model_free(b);
    kiln_cost_model_free(c);
    kiln_cost_model_free(d);
}

/* ------------------------------------------------------------- roofline */
static int featurize(const LFunc *f, float *rows, int max)
{
    int n = 0;
    kiln_error e = {0};
    CHECKF(tune_features(f, rows, max, &n, &e) == 0, "%s", e.msg);
    return n;
}

static void test_roofline(void)
{
    Arena *a = arena_new();
    float rows[3 * 4 * L];
    int counts[3];
    int64_t S = 512;
    counts[0] = featurize(mm_build(a, MM_IJK, S, S, S, true), rows, 4);
    counts[1] = featurize(mm_build(a, MM_IKJ, S, S, S, true), rows + counts[0] * L, 4);
    counts[2] =
        featurize(mm_build(a, MM_TILED, S, S, S, true), rows + (counts[0] + counts[1]) * L, 4);
    kiln_cost_model *m = kiln_cost_model_roofline_new(NULL, NULL);
    double s[3];
    CHECK(kiln_cost_model_predict(m, rows, counts, 3, L, s, NULL) == 0);
    printf("roofline 512^3 GFLOP/s estimates: ijk %.2f  ikj %.2f  tiled+vec %.2f\n",
           2.0 * S * S * S * s[0] * 1e-9, 2.0 * S * S * S * s[1] * 1e-9,
           2.0 * S * S * S * s[2] * 1e-9);
    CHECK(s[2] > s[1] && s[1] > s[0] && s[0] > 0);
    /* more cores make the parallel variant faster */
    kiln_roofline_options o = {.cores = 8};
    kiln_cost_model *m8 = kiln_cost_model_roofline_new(&o, NULL);
    double s8[3];
    CHECK(kiln_cost_model_predict(m8, rows, counts, 3, L, s8, NULL) == 0);
    CHECK(s8[2] > s[2] && s8[0] == s[0]);
    /* rows of another layout are refused */
    CHECK(kiln_cost_model_predict(m, rows, counts, 3, 10, s, NULL) != 0);
    kiln_cost_model_free(m);
    kiln_cost_model_free(m8);
    arena_free(a);
}

/* ------------------------------------------------------------- XGBoost */

/* A synthetic candidate: 1-3 rows; the true throughput depends non-linearly
 * on the dominant (most flops) row and on the total line traffic. */
typedef struct Synth {
    float *rows;
    int *counts;
    double *thr;
    int n;
} Synth;

static double synth_truth(const float *rows, int nrows)
{
    const float *d = rows;
    for (int r = 1; r < nrows; r++)
        if (rows[r * L + KILN_FEAT_FLOPS] > d[KILN_FEAT_FLOPS])
            d = rows + r * L;
    double vec = d[KILN_FEAT_VEC + KILN_FEAT_ANN_INNER];                               /* 0..6 */
    double par = d[KILN_FEAT_PAR + KILN_FEAT_ANN_PROD];                                /* 0..6 */
    double stride = d[KILN_FEAT_BUF0 + KILN_FEAT_B_STRIDE];                            /* 0..10 */
    double unroll = d[KILN_FEAT_UNROLL + KILN_FEAT_ANN_INNER];                         /* 0..6 */
    double reuse = d[KILN_FEAT_BUF0 + KILN_FEATURE_BUF_LEN + KILN_FEAT_B_REUSE_BYTES]; /* 0..24 */
    double lines = 0;
    for (int r = 0; r < nrows; r++)
        lines += tune_unslog(rows[r * L + KILN_FEAT_BUF0 + KILN_FEAT_B_LINES]);
    double logt = 0.35 * fmin(vec, 4) + 0.25 * par - 0.2 * stride +
                  (unroll >= 2 && unroll <= 4 ? 0.6 : 0) - 0.08 * fmax(reuse - 15, 0) -
                  0.15 * log2(1 + lines);
    return exp2(logt);
}

static Synth synth_make(int n, double noise)
{
    Synth s = {malloc(sizeof(float) * (size_t)n * 3 * L), malloc(sizeof(int) * (size_t)n),
               malloc(sizeof(double) * (size_t)n), n};
    float *r = s.rows;
    for (int c = 0; c < n; c++) {
        int nr = 1 + (int)(urand() * 3);
        s.counts[c] = nr;
        for (int k = 0; k < nr; k++, r += L) {
            for (int i = 0; i < L; i++)
                r[i] = urand() < 0.5 ? 0.0f : (float)(urand() * 20);
            r[KILN_FEAT_VEC + KILN_FEAT_ANN_INNER] = (float)(urand() * 6);
            r[KILN_FEAT_PAR + KILN_FEAT_ANN_PROD] = (float)(urand() * 6);
            r[KILN_FEAT_BUF0 + KILN_FEAT_B_STRIDE] = (float)(urand() * 10);
            r[KILN_FEAT_UNROLL + KILN_FEAT_ANN_INNER] = (float)(urand() * 6);
            r[KILN_FEAT_BUF0 + KILN_FEATURE_BUF_LEN + KILN_FEAT_B_REUSE_BYTES] =
                (float)(urand() * 24);
        }
        s.thr[c] = synth_truth(r - nr * L, nr) * (1 + noise * (urand() - 0.5));
    }
    return s;
}

static void synth_free(Synth *s)
{
    free(s->rows);
    free(s->counts);
    free(s->thr);
}

/* Feeds the training set in batches of 64 (as a tuner would). */
static int feed_batches(kiln_cost_model *m, unsigned long long wl, const Synth *s, int from, int to,
                        double scale, int batch, kiln_error *e)
{
    const float *r = s->rows;
    for (int c = 0; c < from; c++)
        r += s->counts[c] * L;
    double *thr = malloc(sizeof(double) * (size_t)batch);
    for (int c = from; c < to; c += batch) {
        int n = to - c < batch ? to - c : batch;
        for (int i = 0; i < n; i++)
            thr[i] = s->thr[c + i] * scale;
        int rc = kiln_cost_model_update(m, wl, r, s->counts + c, n, L, thr, e);
        if (rc) {
            free(thr);
            return rc;
        }
        r += tune_batch_rows(s->counts + c, n) * L;
    }
    free(thr);
    return 0;
}

static int feed(kiln_cost_model *m, unsigned long long wl, const Synth *s, int from, int to,
                double scale, kiln_error *e)
{
    return feed_batches(m, wl, s, from, to, scale, 64, e);
}

static double accuracy(kiln_cost_model *m, const Synth *test)
{
    double *sc = malloc(sizeof(double) * (size_t)test->n);
    kiln_error e = {0};
    CHECKF(kiln_cost_model_predict(m, test->rows, test->counts, test->n, L, sc, &e) == 0, "%s",
           e.msg);
    double acc = kiln_pairwise_accuracy(sc, test->thr, test->n);
    free(sc);
    return acc;
}

static void test_xgb_synthetic(void)
{
    Synth train = synth_make(1200, 0.05), test = synth_make(400, 0.0);
    double acc[2];
    for (int obj = 0; obj < 2; obj++) {
        /* one training on all 1200 (rank:pairwise trains slowly) */
        kiln_xgb_options o = {.objective = (kiln_xgb_objective)obj, .warmup_samples = 1200};
        kiln_error e = {0};
        kiln_cost_model *m = kiln_cost_model_xgb_new(&o, &e);
        CHECK(m != NULL);
        /* three workloads of different speed: labels are per-workload */
        double t0 = now_s();
        CHECKF(feed_batches(m, 1, &train, 0, 400, 1.0, 200, &e) == 0, "%s", e.msg);
        CHECKF(feed_batches(m, 2, &train, 400, 800, 100.0, 200, &e) == 0, "%s", e.msg);
        CHECKF(feed_batches(m, 3, &train, 800, 1200, 0.01, 200, &e) == 0, "%s", e.msg);
        double secs = now_s() - t0;
        TuneXgbStats st;
        CHECK(tune_xgb_stats(m, &st) && st.samples == 1200 && st.trained_on > 0);
        acc[obj] = accuracy(m, &test);
        printf("xgb %s: held-out pairwise accuracy %.3f (1200 samples, %d trainings, "
               "last %.0f ms wall, all updates %.2f s CPU)\n",
               obj == KILN_XGB_RANK ? "rank:pairwise" : "reg:squarederror", acc[obj], st.trainings,
               st.train_ms, secs);
        kiln_cost_model_free(m);
    }
    /* the default objective meets the target; rank:pairwise must at least learn */
    CHECKF(acc[KILN_XGB_REG] >= 0.85, "reg accuracy %.3f", acc[KILN_XGB_REG]);
    CHECKF(acc[KILN_XGB_RANK] >= 0.78, "rank accuracy %.3f", acc[KILN_XGB_RANK]);
    synth_free(&train);
    synth_free(&test);
}

static void test_xgb_lifecycle(const char *dir)
{
    Synth s = synth_make(300, 0.05);
    kiln_error e = {0};
    kiln_cost_model *m = kiln_cost_model_xgb_new(NULL, &e);
    kiln_cost_model *m2 = kiln_cost_model_xgb_new(NULL, &e);
    CHECK(!strcmp(kiln_cost_model_name(m), "xgboost"));
    TuneXgbStats st;
    CHECK(!tune_xgb_stats(NULL, &st));
    /* warm-up: random but seeded scores, no training below 64 samples */
    double p1[50], p2[50];
    CHECK(kiln_cost_model_predict(m, s.rows, s.counts, 50, L, p1, NULL) == 0);
    CHECK(kiln_cost_model_predict(m2, s.rows, s.counts, 50, L, p2, NULL) == 0);
    CHECK(!memcmp(p1, p2, sizeof p1));
    CHECK(feed(m, 5, &s, 0, 63, 1, &e) == 0);
    CHECK(tune_xgb_stats(m, &st) && st.samples == 63 && st.trained_on == 0);
    /* 64 -> first training; then only after 20 % more data */
    CHECK(feed(m, 5, &s, 63, 64, 1, &e) == 0);
    CHECK(tune_xgb_stats(m, &st) && st.trained_on == 64 && st.trainings == 1);
    CHECK(feed(m, 5, &s, 64, 76, 1, &e) == 0);
    CHECK(tune_xgb_stats(m, &st) && st.trained_on == 64);
    CHECK(feed(m, 5, &s, 76, 77, 1, &e) == 0);
    CHECK(tune_xgb_stats(m, &st) && st.trained_on == 77 && st.trainings == 2);
    CHECK(feed(m, 5, &s, 77, 200, 1, &e) == 0);

    /* save/load: a fresh model predicts exactly the same */
    char path[512];
    snprintf(path, sizeof path, "%s/test_tune_cost_xgb.model", dir);
    CHECKF(kiln_cost_model_save(m, path, &e) == 0, "%s", e.msg);
    CHECKF(kiln_cost_model_load(m2, path, &e) == 0, "%s", e.msg);
    double a[100], b[100];
    CHECK(kiln_cost_model_predict(m, s.rows, s.counts, 100, L, a, NULL) == 0);
    CHECK(kiln_cost_model_predict(m2, s.rows, s.counts, 100, L, b, NULL) == 0);
    CHECK(!memcmp(a, b, sizeof a));
    TuneXgbStats s1, s2;
    CHECK(tune_xgb_stats(m, &s1) && tune_xgb_stats(m2, &s2));
    CHECK(s1.samples == s2.samples && s1.trained_on == s2.trained_on);
    /* both keep learning the same way from the same new data */
    CHECK(feed(m, 5, &s, 200, 300, 1, &e) == 0 && feed(m2, 5, &s, 200, 300, 1, &e) == 0);
    /* batches 200..264 (+32 % -> retrain) and 264..300 (+14 %: no retrain) */
    CHECK(tune_xgb_stats(m2, &s2) && s2.samples == 300 && s2.trained_on == 264);
    CHECK(tune_xgb_stats(m, &s1) && s1.trained_on == 264 && s1.trainings == s2.trainings);
    CHECK(kiln_cost_model_predict(m, s.rows, s.counts, 100, L, a, NULL) == 0);
    CHECK(kiln_cost_model_predict(m2, s.rows, s.counts, 100, L, b, NULL) == 0);
    CHECK(!memcmp(a, b, sizeof a));

    /* broken files: an error, and the model is unchanged */
    kiln_error_clear(&e);
    CHECK(kiln_cost_model_load(m2, "/nonexistent/m.model", &e) == KILN_EIO);
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (f) {
        CHECK(fseek(f, 100, SEEK_SET) == 0);
        CHECK(ftruncate(fileno(f), 200) == 0);
        fclose(f);
    }
    kiln_error_clear(&e);
    CHECK(kiln_cost_model_load(m2, path, &e) == KILN_EIO);
    CHECK(strstr(e.msg, "corrupt") != NULL);
    f = fopen(path, "wb");
    if (f) {
        fputs("not a model", f);
        fclose(f);
    }
    kiln_error_clear(&e);
    CHECK(kiln_cost_model_load(m2, path, &e) == KILN_EIO);
    CHECK(kiln_cost_model_predict(m2, s.rows, s.counts, 100, L, b, NULL) == 0);
    CHECK(!memcmp(a, b, sizeof a));
    remove(path);

    /* rows of another length are refused once the model knows its length */
    kiln_error_clear(&e);
    double thr1 = 1;
    int one = 1;
    CHECK(kiln_cost_model_update(m, 5, s.rows, &one, 1, L - 1, &thr1, &e) == KILN_EINVAL);
    CHECK(strstr(e.msg, "rows of length") != NULL);
    /* options are checked */
    kiln_xgb_options bad = {.eta = 2};
    kiln_error_clear(&e);
    CHECK(kiln_cost_model_xgb_new(&bad, &e) == NULL && e.code == KILN_EINVAL);
    kiln_cost_model_free(m);
    kiln_cost_model_free(m2);
    synth_free(&s);
}

static int threads_now(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

/* Measurement workers are forked from the tuner: after training and
 * loading, no OpenMP pool may exist (a forked child would deadlock on it),
 * and a child must be able to predict and train. */
static void test_xgb_fork(const char *dir, int threads_at_start)
{
    Synth s = synth_make(200, 0.05);
    kiln_error e = {0};
    kiln_cost_model *m = kiln_cost_model_xgb_new(NULL, &e);
    CHECK(feed(m, 1, &s, 0, 100, 1, &e) == 0);
    char path[512];
    snprintf(path, sizeof path, "%s/test_tune_cost_fork.model", dir);
    kiln_cost_model *m2 = kiln_cost_model_xgb_new(NULL, &e);
    CHECK(kiln_cost_model_save(m, path, &e) == 0 && kiln_cost_model_load(m2, path, &e) == 0);
    remove(path);
    CHECKF(threads_now() == threads_at_start, "%d threads, %d at start", threads_now(),
           threads_at_start);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        double sc[100];
        int ok = kiln_cost_model_predict(m2, s.rows, s.counts, 100, L, sc, NULL) == 0 &&
                 feed(m2, 1, &s, 100, 200, 1, NULL) == 0;
        _exit(ok ? 0 : 1);
    }
    CHECK(pid > 0);
    int status = -1;
    for (int i = 0; pid > 0 && i < 1200; i++) { /* up to 60 s */
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    if (pid > 0 && status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        CHECKF(0, "forked child hung in xgboost");
    }
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    kiln_cost_model_free(m);
    kiln_cost_model_free(m2);
    synth_free(&s);
}

/* Random SSRSRS tilings of a 256^3 matmul, labelled by the roofline model:
 * XGBoost must learn that order from real feature rows. */
static int64_t pick_divisor(int64_t n)
{
    int64_t d[16];
    int nd = 0;
    for (int64_t x = 1; x <= n && nd < 16; x *= 2)
        if (n % x == 0)
            d[nd++] = x;
    return d[(int)(urand() * nd)];
}

static void random_tiles(int64_t n, int parts, int64_t *e)
{
    int64_t rest = n;
    for (int p = parts - 1; p > 0; p--) {
        e[p] = pick_divisor(rest);
        rest /= e[p];
    }
    e[0] = rest;
}

static LFunc *random_matmul(Arena *a, int64_t S)
{
    int64_t ie[4], je[4], ke[2];
    random_tiles(S, 4, ie);
    random_tiles(S, 4, je);
    random_tiles(S, 2, ke);
    LoopKind k0 = urand() < 0.5 ? LOOP_PARALLEL : LOOP_SERIAL;
    LoopKind k3 = urand() < 0.5 ? LOOP_UNROLLED : LOOP_SERIAL;
    LoopKind j3 = urand() < 0.6 ? LOOP_VECTORIZED : LOOP_SERIAL;
    return mm_build_tiles(a, S, S, S, ie, je, ke, k0, k3, j3);
}

static void test_xgb_on_features(void)
{
    enum { NTRAIN = 640, NTEST = 300 };
    int n = NTRAIN + NTEST;
    Arena *a = arena_new();
    float *rows = malloc(sizeof(float) * (size_t)n * 2 * L);
    int *counts = malloc(sizeof(int) * (size_t)n);
    double *truth = malloc(sizeof(double) * (size_t)n);
    kiln_roofline_options ro = tune_roofline_defaults(&(kiln_roofline_options){.cores = 4});
    float *r = rows;
    for (int c = 0; c < n; c++) {
        counts[c] = featurize(random_matmul(a, 256), r, 2);
        double t = 0;
        for (int k = 0; k < counts[c]; k++)
            t += tune_roofline_row_seconds(r + k * L, &ro);
        truth[c] = 1 / t;
        r += counts[c] * L;
    }
    kiln_error e = {0};
    kiln_cost_model *m = kiln_cost_model_xgb_new(NULL, &e);
    CHECKF(kiln_cost_model_update(m, 9, rows, counts, NTRAIN, L, truth, &e) == 0, "%s", e.msg);
    const float *test_rows = rows + tune_batch_rows(counts, NTRAIN) * L;
    double *sc = malloc(sizeof(double) * NTEST);
    CHECK(kiln_cost_model_predict(m, test_rows, counts + NTRAIN, NTEST, L, sc, NULL) == 0);
    double acc = kiln_pairwise_accuracy(sc, truth + NTRAIN, NTEST);
    printf("xgb on matmul tilings (roofline labels): held-out pairwise accuracy %.3f\n", acc);
    CHECKF(acc >= 0.85, "accuracy %.3f", acc);

    /* featurise + predict rate, batches of 512 */
    enum { B = 512 };
    LFunc *fs[8];
    for (int i = 0; i < 8; i++)
        fs[i] = random_matmul(a, 1024);
    float *brows = malloc(sizeof(float) * B * 4 * L);
    int bcounts[B];
    double bsc[B];
    int batches = 0;
    double t0 = now_s(), tf = 0;
    while (now_s() - t0 < 0.5 || batches < 3) {
        double t1 = now_s();
        float *p = brows;
        for (int c = 0; c < B; c++) {
            tune_features(fs[c % 8], p, 4, &bcounts[c], NULL);
            p += bcounts[c] * L;
        }
        tf += now_s() - t1;
        CHECK(kiln_cost_model_predict(m, brows, bcounts, B, L, bsc, NULL) == 0);
        batches++;
    }
    double secs = now_s() - t0;
    double rate = batches * B / secs;
    printf("featurise+predict: %.0f candidates/s of CPU (features %.1f us, predict %.1f us per "
           "candidate; batch %d)\n",
           rate, tf / (batches * B) * 1e6, (secs - tf) / (batches * B) * 1e6, B);
    /* Printed, not asserted: speed belongs to bench/ (tune_bench reports it). */
    free(brows);
    free(sc);
    kiln_cost_model_free(m);
    free(rows);
    free(counts);
    free(truth);
    arena_free(a);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 2 ? argv[2] : ".";
    int threads = threads_now();
    test_metric();
    test_wrapper();
    test_random(dir);
    test_roofline();
    test_xgb_lifecycle(dir);
    test_xgb_fork(dir, threads);
    test_xgb_synthetic();
    test_xgb_on_features();
    return t_done("test_tune_cost");
}
