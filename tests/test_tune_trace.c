/* tests/test_tune_trace.c: traces with sampling instructions — replay with
 * the same decisions rebuilds the schedule exactly, the text form round
 * trips, sampling is deterministic per seed, new decisions give other
 * points, every example's design space yields valid schedules (and samples
 * its cache_write / compute_at / inline / rfactor / packing rules), guards with
 * not/==/!=/</<=/>/>=, mutators
 * keep tiles perfect, and bad traces fail with file:line:col. */
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "tune/search.h"
#include "tune/tune.h"
#include "tune/tuner.h"

static Program *load(const char *root, const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    Program *p = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    if (ir_parse_yaml_file(path, &p, &e))
        fprintf(stderr, "%s: %s\n", path, e.msg);
    return p;
}

/* Applies t with dec to a fresh schedule; returns its plain text. */
static char *apply(const Program *p, const TraceProg *t, TDec *dec, uint64_t seed)
{
    Schedule *s = sched_new(p);
    uint64_t rng = seed;
    kiln_error e;
    kiln_error_clear(&e);
    char *out = NULL;
    if (trace_apply(t, s, dec, NULL, &rng, &e) == KILN_OK)
        out = sched_to_text(s);
    else
        fprintf(stderr, "apply: %d:%d: %s\n", e.line, e.col, e.msg);
    sched_free(s);
    return out;
}

/* want: which rules must show up in the samples (a few of 100 at least) */
enum { W_CW = 1, W_AT = 2, W_INL = 4, W_RF = 8, W_PK = 16 };

static void test_example(const char *root, const char *rel, int want)
{
    Program *p = load(root, rel);
    CHECKF(p, "%s", rel);
    if (!p)
        return;
    char *space = space_generate(p);
    TraceProg *t;
    TDec *dec;
    kiln_error e;
    kiln_error_clear(&e);
    CHECKF(trace_parse(space, "space", p, &t, &dec, &e) == KILN_OK, "%s: %s", rel, e.msg);
    int bad = 0, distinct = 0, ncw = 0, nat = 0, ninl = 0, nrf = 0, npk = 0;
    char *prev = NULL;
    for (int i = 0; i < 100; i++) {
        memset(dec, 0, sizeof(TDec) * (size_t)t->nsamp);
        char *plain = apply(p, t, dec, 1000 + (uint64_t)i);
        if (!plain) {
            bad++;
            continue;
        }
        ncw += strstr(plain, "cache_write(") != NULL;
        nat += strstr(plain, "compute_at(") != NULL && !strstr(plain, "cache_write(");
        ninl += strstr(plain, "inline(") != NULL;
        nrf += strstr(plain, "rfactor(") != NULL;
        npk += strstr(plain, "cache_read(") != NULL;
        /* valid: lowers */
        Schedule *s = sched_new(p);
        kiln_error_clear(&e);
        Arena *a;
        LFunc *f;
        if (sched_apply_text(s, plain, "plain", &e) || tune_lower(s, &a, &f, NULL, &e))
            bad++;
        else
            arena_free(a);
        sched_free(s);
        /* replay of the recorded decisions (through the text form) */
        char *text = trace_to_text(t, dec);
        TraceProg *t2;
        TDec *d2;
        CHECK(trace_parse(text, "rt", p, &t2, &d2, &e) == KILN_OK);
        char *text2 = trace_to_text(t2, d2);
        CHECKF(!strcmp(text, text2), "%s: text round trip", rel);
        char *plain2 = apply(p, t2, d2, 999999); /* seed unused: all decided */
        CHECKF(plain2 && !strcmp(plain, plain2), "%s: replay differs", rel);
        distinct += prev && strcmp(prev, plain) != 0;
        free(prev);
        prev = plain;
        free(plain2);
        free(text);
        free(text2);
        trace_prog_free(t2);
        free(d2);
    }
    CHECKF(bad == 0, "%s: %d invalid samples", rel, bad);
    CHECKF(distinct > 10, "%s: only %d distinct consecutive samples", rel, distinct);
    /* the memory-hierarchy rules are sampled (and stay valid, above) */
    CHECKF(!(want & W_CW) || ncw >= 20, "%s: %d samples with cache_write", rel, ncw);
    CHECKF(!(want & W_AT) || nat >= 15, "%s: %d samples with a producer compute_at", rel, nat);
    CHECKF(!(want & W_INL) || ninl >= 15, "%s: %d samples with inline", rel, ninl);
    CHECKF(!(want & W_RF) || nrf >= 20, "%s: %d samples with rfactor", rel, nrf);
    CHECKF((want & W_RF) || nrf == 0, "%s: rfactor where the spatial loops are long", rel);
    CHECKF(!(want & W_PK) || npk >= 15, "%s: %d samples with a packed operand", rel, npk);
    CHECKF((want & W_PK) || npk == 0, "%s: packing without a streamed operand", rel);
    if (want & W_CW) {
        /* both locations of the accumulator occur */
        bool at[2] = {false, false};
        for (int i = 0; i < 40; i++) {
            memset(dec, 0, sizeof(TDec) * (size_t)t->nsamp);
            char *plain = apply(p, t, dec, 5000 + (uint64_t)i);
            char *c = plain ? strstr(plain, "compute_at(") : NULL;
            if (c && strstr(plain, "cache_write(")) {
                /* level 1 loops end in 1, level 0 loops in 0 */
                const char *close = strchr(c, ')');
                at[close && close[-1] == '1'] = true;
            }
            free(plain);
        }
        CHECKF(at[0] && at[1], "%s: cache_write at both tile levels", rel);
    }
    free(prev);
    free(space);
    trace_prog_free(t);
    free(dec);
    ir_program_free(p);
}

static void test_determinism_and_syntax(const char *root)
{
    Program *p = load(root, "tests/programs/small_matmul.yaml");
    if (!p)
        return;
    const char *text = "t0 = sample_perfect_tile(C.i, 3, 4)\n"
                       "C.i0, C.i1, C.i2 = split(C.i, t0)\n"
                       "v = sample_categorical([4, 8], [0.5, 0.5])  # decision: 1\n"
                       "C.jo, C.jv = split(C.j, v)\n"
                       "reorder(C.i0, C.jo, C.k, C.i1, C.i2, C.jv)\n"
                       "vectorize(C.jv)\n"
                       "u = sample_categorical([0, 1])\n"
                       "unroll(C.i2) if u\n";
    TraceProg *t;
    TDec *dec;
    kiln_error e;
    kiln_error_clear(&e);
    CHECKF(trace_parse(text, "x.trace", p, &t, &dec, &e) == KILN_OK, "%s", e.msg);
    if (e.code)
        return;
    CHECK(t->nsamp == 3 && dec[0].n == 0 && dec[1].n == 1 && dec[1].v[0] == 1);
    /* same seed, same samples; the recorded decision is kept */
    TDec *d1 = calloc(3, sizeof(TDec)), *d2 = calloc(3, sizeof(TDec));
    memcpy(d1, dec, 3 * sizeof(TDec));
    memcpy(d2, dec, 3 * sizeof(TDec));
    char *a = apply(p, t, d1, 42), *b = apply(p, t, d2, 42);
    CHECK(a && b && !strcmp(a, b));
    CHECK(!memcmp(d1, d2, 3 * sizeof(TDec)));
    CHECK(d1[1].v[0] == 1 && strstr(a, "split(C.j, 8)"));
    int64_t prod = 1;
    for (int k = 0; k < d1[0].n; k++)
        prod *= d1[0].v[k];
    CHECK(d1[0].n == 3 && prod == p->tensors[2].dims[0] && d1[0].v[2] <= 4);
    /* the guard */
    d1[2].n = 1;
    d1[2].v[0] = 0;
    char *c = apply(p, t, d1, 1);
    d1[2].v[0] = 1;
    char *d = apply(p, t, d1, 1);
    CHECK(c && !strstr(c, "unroll(C.i2)") && d && strstr(d, "unroll(C.i2)"));
    /* other seeds reach other points */
    int differ = 0;
    for (uint64_t s = 1; s < 20; s++) {
        memset(d2, 0, 3 * sizeof(TDec));
        char *x = apply(p, t, d2, s * 7919);
        differ += x && strcmp(x, a) != 0;
        free(x);
    }
    CHECK(differ > 5);
    /* an invalid decision (wrong product) is re-sampled, not an error */
    d1[0].v[0] = 1000;
    char *f = apply(p, t, d1, 5);
    CHECK(f != NULL);
    prod = 1;
    for (int k = 0; k < d1[0].n; k++)
        prod *= d1[0].v[k];
    CHECK(prod == p->tensors[2].dims[0]);
    /* mutation keeps tiles perfect and respects max_innermost */
    uint64_t rng = 3;
    bool active[3] = {true, true, true};
    int changed = 0;
    for (int i = 0; i < 200; i++) {
        TDec before = d1[0];
        search_mutate(t, d1, active, &rng);
        changed += memcmp(&before, &d1[0], sizeof before) != 0;
        prod = 1;
        for (int k = 0; k < d1[0].n; k++)
            prod *= d1[0].v[k];
        CHECK(prod == p->tensors[2].dims[0] && d1[0].v[2] <= 4);
        CHECK(d1[1].v[0] >= 0 && d1[1].v[0] < 2);
    }
    CHECK(changed > 50);
    free(a);
    free(b);
    free(c);
    free(d);
    free(f);
    free(d1);
    free(d2);
    trace_prog_free(t);
    free(dec);

    /* errors name the place */
    static const struct {
        const char *text, *want;
        int line;
    } bad[] = {
        {"t = sample_perfect_tile(C.i, 4, 64)\nt = sample_categorical([1])\n", "defined twice", 2},
        {"x = sample_categorical([1, 2], [0.5])\n", "probabilities", 1},
        {"t = sample_perfect_tile(Q.i, 2)\n", "not a loop", 1},
        {"t = sample_categorical([1, 2])  # decision: 5\n", "choice index", 1},
        {"auto_unroll(C, nope)\n", "categorical", 1},
        {"split = sample_categorical([1])\n", "cannot name", 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kiln_error_clear(&e);
        CHECKF(trace_parse(bad[i].text, "bad.trace", p, &t, &dec, &e) != KILN_OK, "%zu", i);
        CHECKF(strstr(e.msg, bad[i].want) && e.line == bad[i].line && !strcmp(e.file, "bad.trace"),
               "%zu: %s:%d: %s", i, e.file, e.line, e.msg);
    }
    /* an apply-time error (unknown loop) points at its line */
    kiln_error_clear(&e);
    CHECK(trace_parse("v = sample_categorical([4])\nC.a, C.b = split(C.zz, v)\n", "u.trace", p, &t,
                      &dec, &e) == KILN_OK);
    Schedule *s = sched_new(p);
    uint64_t r = 1;
    CHECK(trace_apply(t, s, dec, NULL, &r, &e) != KILN_OK);
    CHECKF(e.line == 2 && strstr(e.msg, "C.zz") && !strcmp(e.file, "u.trace"), "%d %s", e.line,
           e.msg);
    sched_free(s);
    trace_prog_free(t);
    free(dec);
    ir_program_free(p);
}

/* `if not V`, `if V == c`, `if V != c`, `if V < c`; auto_* on a temp that an earlier
 * line creates; an unknown name there fails when applied, at its line. */
static void test_guards_and_new_temps(const char *root)
{
    Program *p = load(root, "tests/programs/small_matmul.yaml");
    if (!p)
        return;
    const char *text = "w = sample_categorical([0, 1, 2])\n"
                       "L = cache_write(C) if w\n"
                       "C.io, C.ii = split(C.i, 8)\n"
                       "reorder(C.io, C.j, C.ii) if w\n"
                       "compute_at(L, C.io) if w == 1\n"
                       "compute_at(L, C.j) if w == 2\n"
                       "unroll(C.ii) if not w\n"
                       "auto_unroll(L, 64) if w != 0\n"
                       "parallel(C.io) if w < 1\n";
    TraceProg *t;
    TDec *dec;
    kiln_error e;
    kiln_error_clear(&e);
    CHECKF(trace_parse(text, "g.trace", p, &t, &dec, &e) == KILN_OK, "%s", e.msg);
    if (e.code) {
        ir_program_free(p);
        return;
    }
    char *plain[3];
    for (int w = 0; w < 3; w++) {
        dec[0].n = 1;
        dec[0].v[0] = w;
        plain[w] = apply(p, t, dec, 1);
        CHECKF(plain[w] != NULL, "w = %d", w);
        if (!plain[w])
            continue;
        CHECKF((strstr(plain[w], "cache_write(") != NULL) == (w != 0), "w = %d: %s", w, plain[w]);
        CHECKF((strstr(plain[w], "unroll(C.ii)") != NULL) == (w == 0), "w = %d: %s", w, plain[w]);
        CHECKF((strstr(plain[w], "parallel(C.io)") != NULL) == (w < 1), "w = %d: %s", w, plain[w]);
        CHECK(w != 1 || strstr(plain[w], "compute_at(L, C.io)"));
        CHECK(w != 2 || strstr(plain[w], "compute_at(L, C.j)"));
        CHECKF(w == 0 || strstr(plain[w], "unroll(L."), "w = %d: %s", w, plain[w]);
        /* every branch lowers */
        Schedule *s = sched_new(p);
        Arena *a;
        LFunc *f;
        kiln_error_clear(&e);
        CHECKF(sched_apply_text(s, plain[w], "plain", &e) == KILN_OK &&
                   tune_lower(s, &a, &f, NULL, &e) == KILN_OK,
               "w = %d: %s", w, e.msg);
        if (!e.code)
            arena_free(a);
        sched_free(s);
    }
    /* the guards survive the text form */
    char *t1 = trace_to_text(t, dec);
    CHECK(t1 && strstr(t1, "if not w\n") && strstr(t1, "if w == 1\n") && strstr(t1, "if w != 0\n") &&
          strstr(t1, "if w < 1\n"));
    TraceProg *t2;
    TDec *d2;
    CHECK(trace_parse(t1, "rt", p, &t2, &d2, &e) == KILN_OK);
    char *t3 = trace_to_text(t2, d2);
    CHECK(t3 && !strcmp(t1, t3));
    free(t1);
    free(t3);
    trace_prog_free(t2);
    free(d2);
    for (int w = 0; w < 3; w++)
        free(plain[w]);
    trace_prog_free(t);
    free(dec);
    /* a name that no line creates: parsed, refused when applied */
    kiln_error_clear(&e);
    CHECK(trace_parse("C.io, C.ii = split(C.i, 8)\nauto_unroll(Nope, 4)\n", "n.trace", p, &t, &dec,
                      &e) == KILN_OK);
    Schedule *s = sched_new(p);
    uint64_t r = 1;
    CHECK(trace_apply(t, s, dec, NULL, &r, &e) != KILN_OK);
    CHECKF(e.line == 2 && !strcmp(e.file, "n.trace"), "%d %s", e.line, e.msg);
    sched_free(s);
    trace_prog_free(t);
    free(dec);
    /* an input is still no statement's tensor */
    kiln_error_clear(&e);
    CHECK(trace_parse("auto_unroll(A, 4)\n", "i.trace", p, &t, &dec, &e) != KILN_OK);
    CHECK(strstr(e.msg, "not a tensor written by a statement") != NULL);
    ir_program_free(p);
}

int main(int argc, char **argv)
{
    const char *root = argc > 1 ? argv[1] : ".";
    static const struct {
        const char *file;
        int want;
    } ex[] = {{"examples/matmul.yaml", W_CW | W_PK},
              {"examples/conv2d.yaml", W_CW | W_PK},
              {"examples/blur.yaml", W_AT | W_INL},
              {"examples/batch_matmul.yaml", W_CW | W_PK},
              {"examples/depthwise_conv.yaml", W_CW | W_PK},
              {"examples/layernorm.yaml", W_CW | W_INL},
              {"examples/matmul_bias_relu.yaml", W_CW | W_PK},
              {"examples/softmax.yaml", W_CW | W_INL},
              {"examples/transpose.yaml", 0},
              {"tests/programs/rowsum.yaml", W_RF | W_INL},
              {"tests/programs/small_matmul.yaml", W_CW | W_PK}};
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++)
        test_example(root, ex[i].file, ex[i].want);
    test_determinism_and_syntax(root);
    test_guards_and_new_temps(root);
    return t_done("tune_trace");
}
