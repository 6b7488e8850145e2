/* tests/test_tune_score.c: the scoring path of the search is a fast path,
 * not a different one.
 *
 * - search_evaluate (no verifier in release builds) gives, for sampled
 *   candidates of the shipped examples, exactly the plain schedule and the
 *   feature rows that applying that plain text to a fresh schedule,
 *   lowering it with the verifier and featurising give;
 * - sb_printf's fast path (%s %d %lld %% only) prints what vsnprintf
 *   prints, and falls back for everything else;
 * - the XGBoost model's defaults (bagged rounds) rank a synthetic set. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "kiln/tune.h"
#include "lower/lower.h"
#include "testlib.h"
#include "tune/features.h"
#include "tune/search.h"
#include "tune/tuner.h"

static Program *load(const char *root, const char *file, int n, const char *const *names,
                     const int64_t *vals)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/examples/%s", root, file);
    Program *p = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    int rc = ir_parse_yaml_file_params(path, n, names, vals, &p, &e);
    CHECKF(rc == KILN_OK, "%s: %s", file, e.msg);
    return rc ? NULL : p;
}

/* Rows of the plain text, lowered the slow way (verifier on). */
static int slow_rows(const Program *p, const char *plain, float **rows, int *nrows)
{
    kiln_error e;
    kiln_error_clear(&e);
    Schedule *s = sched_new(p);
    int rc = s ? sched_apply_text(s, plain, "<plain>", &e) : KILN_ENOMEM;
    Arena *a = arena_new();
    LFunc *f = NULL;
    if (!rc)
        rc = lower_schedule_ex(s, a, NULL, true, &f, &e);
    if (!rc) {
        int n = tune_count_stores(f);
        *rows = malloc(sizeof(float) * (size_t)(n ? n : 1) * TUNE_FEAT_LEN);
        rc = *rows ? tune_features(f, *rows, n, nrows, &e) : KILN_ENOMEM;
    }
    CHECKF(rc == KILN_OK, "slow path: %s", e.msg);
    arena_free(a);
    sched_free(s);
    return rc;
}

static void test_same_rows(const char *root, const char *file, int n, const char *const *names,
                           const int64_t *vals)
{
    Program *p = load(root, file, n, names, vals);
    if (!p)
        return;
    char *text = space_generate(p);
    TraceProg *t = NULL;
    TDec *dec = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    CHECK(text && trace_parse(text, file, p, &t, &dec, &e) == KILN_OK);
    free(text);
    free(dec);
    enum { N = 40 };
    SearchCand c[N];
    int ok = 0, same = 0;
    for (int i = 0; t && i < N; i++)
        CHECK(search_cand_init(&c[i], t, NULL) == KILN_OK);
    uint64_t rng = 12345;
    if (t)
        CHECK(search_evaluate(p, c, N, 2, &rng) == KILN_OK);
    for (int i = 0; t && i < N; i++) {
        if (!c[i].ok)
            continue;
        ok++;
        float *rows = NULL;
        int nrows = 0;
        if (slow_rows(p, c[i].plain, &rows, &nrows) == KILN_OK && nrows == c[i].nrows &&
            !memcmp(rows, c[i].rows, sizeof(float) * (size_t)nrows * TUNE_FEAT_LEN))
            same++;
        free(rows);
    }
    CHECKF(ok == N, "%s: %d of %d candidates scored", file, ok, N);
    CHECKF(same == ok, "%s: %d of %d candidates have the slow path's rows", file, same, ok);
    for (int i = 0; t && i < N; i++)
        search_cand_fini(&c[i]);
    trace_prog_free(t);
    ir_program_free(p);
}

#define SB_SAME(...)                                                                          \
    do {                                                                                      \
        StrBuf sb = {0};                                                                      \
        sb_printf(&sb, __VA_ARGS__);                                                          \
        char ref[256];                                                                        \
        snprintf(ref, sizeof ref, __VA_ARGS__);                                               \
        CHECKF(sb.s && !strcmp(sb.s, ref) && sb.len == strlen(ref), "[%s] vs [%s]",           \
               sb.s ? sb.s : "(null)", ref);                                                  \
        sb_free(&sb);                                                                         \
    } while (0)

static void test_sb_printf(void)
{
    SB_SAME("%s", "");
    SB_SAME("plain");
    SB_SAME("%d %d %d", 0, INT_MIN, INT_MAX);
    SB_SAME("%lld|%lld|%lld", LLONG_MIN, LLONG_MAX, -42LL);
    SB_SAME("100%% of %s%%", "x");
    SB_SAME("%s.%s = split(%s, %lld)", "C", "i0", "C.i", 64LL);
    /* not handled by the fast path: vsnprintf prints them */
    SB_SAME("[%5d|%-3s|%.3f|%c|%zu|%x]", 3, "a", 1.5, 'q', (size_t)7, 255u);
    SB_SAME("%.*s", 2, "abc");
    /* appending across growth */
    StrBuf sb = {0};
    char ref[8192];
    size_t len = 0;
    for (int i = 0; i < 500; i++) {
        sb_printf(&sb, "%s%d,", i % 2 ? "ab" : "", -i);
        len += (size_t)snprintf(ref + len, sizeof ref - len, "%s%d,", i % 2 ? "ab" : "", -i);
    }
    CHECK(sb.s && sb.len == len && !strcmp(sb.s, ref));
    sb_free(&sb);
}

/* y = a*x0 - b*|x1 - 3|, a noisy function of 4 of 8 features: the
 * defaults must rank held-out points well. */
static void test_xgb_defaults(void)
{
    enum { NTR = 300, NTE = 200, L = 8 };
    static float rows[(NTR + NTE) * L];
    double y[NTR + NTE], s[NTE];
    int counts[NTR + NTE];
    uint64_t rng = 99;
    for (int i = 0; i < NTR + NTE; i++) {
        for (int k = 0; k < L; k++)
            rows[i * L + k] = (float)((ir_rand(&rng) >> 11) * 0x1p-53 * 8);
        double noise = (double)(ir_rand(&rng) >> 11) * 0x1p-53 * 0.2;
        y[i] = exp2(1 + rows[i * L] * 0.5 - fabs(rows[i * L + 1] - 3) * 0.3 +
                    0.1 * rows[i * L + 2] * rows[i * L + 3] + noise);
        counts[i] = 1;
    }
    kiln_error e;
    kiln_error_clear(&e);
    kiln_xgb_options o = {0};
    o.warmup_samples = 1;
    kiln_cost_model *m = kiln_cost_model_xgb_new(&o, &e);
    CHECK(m != NULL);
    CHECK(kiln_cost_model_update(m, 1, rows, counts, NTR, L, y, &e) == KILN_OK);
    CHECK(kiln_cost_model_predict(m, rows + NTR * L, counts + NTR, NTE, L, s, &e) == KILN_OK);
    double acc = kiln_pairwise_accuracy(s, y + NTR, NTE);
    printf("xgb defaults on a synthetic set: held-out pairwise accuracy %.3f\n", acc);
    CHECKF(acc >= 0.85, "accuracy %.3f", acc);
    kiln_cost_model_free(m);
}

int main(int argc, char **argv)
{
    const char *root = argc > 1 ? argv[1] : ".";
    const char *mm[] = {"M", "N", "K"};
    const int64_t mmv[] = {128, 128, 128};
    const char *bl[] = {"H", "W", "OH", "OW"};
    const int64_t blv[] = {130, 130, 128, 128};
    test_same_rows(root, "matmul.yaml", 3, mm, mmv);
    test_same_rows(root, "conv2d.yaml", 0, NULL, NULL);
    test_same_rows(root, "blur.yaml", 4, bl, blv);
    test_same_rows(root, "softmax.yaml", 0, NULL, NULL);
    test_sb_printf();
    test_xgb_defaults();
    return t_done("test_tune_score");
}
