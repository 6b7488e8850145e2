/* tests/test_tune_fastpath.c: trace_apply's fast path for plain lines
 * (pre-tokenised calls, tune/trace.c) against the text path it replaces:
 * the same trace applied both ways gives the same schedule text, the same
 * decisions, random state and active flags, and the same error (code,
 * file, line, column, message) — for many random points of every
 * example's design space (also from junk decisions, which applying must
 * resample), for the schedule failure cases of tests/fail and for lines
 * the fast path must leave to the text path.  Every plain line of a generated design
 * space must take the fast path. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "tune/tuner.h"

/* The text path only: what trace_apply did before the fast path. */
static void drop_calls(TraceProg *t)
{
    for (int i = 0; i < t->n; i++) {
        free(t->v[i].call);
        t->v[i].call = NULL;
    }
}

static int nfast(const TraceProg *t)
{
    int n = 0;
    for (int i = 0; i < t->n; i++)
        n += t->v[i].call != NULL;
    return n;
}

static int nerrors;

/* Applies fast and slow (the same trace text) with the same decisions and
 * seed to fresh schedules of p; checks that everything observable agrees. */
static void same(const Program *p, const TraceProg *fast, const TraceProg *slow, const TDec *dec0,
                 uint64_t seed, const char *what)
{
    int ns = fast->nsamp;
    CHECK(ns == slow->nsamp);
    size_t nd = sizeof(TDec) * (size_t)(ns ? ns : 1);
    TDec *d1 = malloc(nd), *d2 = malloc(nd);
    bool *a1 = calloc((size_t)(ns ? ns : 1), 1), *a2 = calloc((size_t)(ns ? ns : 1), 1);
    memcpy(d1, dec0, nd);
    memcpy(d2, dec0, nd);
    Schedule *s1 = sched_new(p), *s2 = sched_new(p);
    kiln_error e1, e2;
    kiln_error_clear(&e1);
    kiln_error_clear(&e2);
    uint64_t r1 = seed, r2 = seed;
    int rc1 = trace_apply(fast, s1, d1, a1, &r1, &e1);
    int rc2 = trace_apply(slow, s2, d2, a2, &r2, &e2);
    nerrors += rc2 != KILN_OK;
    CHECKF(rc1 == rc2, "%s: rc %d vs %d (%s)", what, rc1, rc2, e2.msg);
    CHECKF(e1.code == e2.code && e1.line == e2.line && e1.col == e2.col &&
               !strcmp(e1.file, e2.file) && !strcmp(e1.msg, e2.msg),
           "%s: error %s:%d:%d: %s vs %s:%d:%d: %s", what, e1.file, e1.line, e1.col, e1.msg,
           e2.file, e2.line, e2.col, e2.msg);
    char *t1 = sched_to_text(s1), *t2 = sched_to_text(s2);
    CHECKF(t1 && t2 && !strcmp(t1, t2), "%s: schedules differ:\n%s---\n%s", what, t1, t2);
    CHECKF(r1 == r2, "%s: random state differs", what);
    bool dsame = true;
    for (int k = 0; k < ns; k++) {
        dsame &= d1[k].n == d2[k].n && a1[k] == a2[k];
        for (int j = 0; j < d1[k].n && j < TRACE_MAX_TILE; j++)
            dsame &= d1[k].v[j] == d2[k].v[j];
    }
    CHECKF(dsame, "%s: decisions or active flags differ", what);
    free(t1);
    free(t2);
    sched_free(s1);
    sched_free(s2);
    free(d1);
    free(d2);
    free(a1);
    free(a2);
}

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

/* Both copies of a trace; false (and a failed check) when it does not parse. */
static bool parse2(const char *text, const char *file, const Program *p, TraceProg **fast,
                   TraceProg **slow, TDec **dec)
{
    kiln_error e;
    kiln_error_clear(&e);
    TDec *d2 = NULL;
    *fast = *slow = NULL;
    *dec = NULL;
    int rc = trace_parse(text, file, p, fast, dec, &e);
    CHECKF(rc == KILN_OK, "%s: %d:%d: %s", file, e.line, e.col, e.msg);
    if (rc)
        return false;
    rc = trace_parse(text, file, p, slow, &d2, &e);
    CHECK(rc == KILN_OK);
    free(d2);
    if (rc) {
        trace_prog_free(*fast);
        free(*dec);
        return false;
    }
    drop_calls(*slow);
    return true;
}

/* Junk where a decision may never have been checked (a skipped sampling
 * line): factors that are zero, negative, huge or do not divide. */
static void junk(const TraceProg *t, TDec *d, uint64_t *rng)
{
    static const int64_t vals[] = {1, 1, 2, 3, 4, 8, 16, 0, -1, 7, 1000000007, INT64_MIN};
    for (int k = 0; k < t->nsamp; k++) {
        const TInst *in = &t->v[t->samp_inst[k]];
        uint64_t r = ir_rand(rng);
        if (r % 4 == 0) {
            d[k].n = 0;
            continue;
        }
        if (in->kind == TI_TILE) {
            d[k].n = in->n;
            for (int j = 0; j < in->n; j++)
                d[k].v[j] = vals[ir_rand(rng) % (sizeof vals / sizeof *vals)];
        } else {
            d[k].n = 1;
            d[k].v[0] = (int64_t)(ir_rand(rng) % (uint64_t)in->nchoices);
        }
    }
}

static void test_space(const char *root, const char *rel)
{
    Program *p = load(root, rel);
    CHECKF(p, "%s", rel);
    if (!p)
        return;
    char *space = space_generate(p);
    TraceProg *fast, *slow;
    TDec *dec;
    if (space && parse2(space, rel, p, &fast, &slow, &dec)) {
        for (int i = 0; i < fast->n; i++)
            CHECKF(fast->v[i].kind != TI_PRIM || fast->v[i].call,
                   "%s: line %d of the design space takes the text path", rel, fast->v[i].line);
        size_t nd = sizeof(TDec) * (size_t)(fast->nsamp ? fast->nsamp : 1);
        TDec *d = malloc(nd);
        uint64_t rng = 0x9e3779b97f4a7c15ull;
        for (int it = 0; it < 300; it++) {
            char what[256];
            memcpy(d, dec, nd);
            snprintf(what, sizeof what, "%s sample %d", rel, it);
            same(p, fast, slow, d, ir_rand(&rng) | 1, what);
            junk(fast, d, &rng);
            snprintf(what, sizeof what, "%s junk %d", rel, it);
            same(p, fast, slow, d, ir_rand(&rng) | 1, what);
        }
        free(d);
        trace_prog_free(fast);
        trace_prog_free(slow);
        free(dec);
    }
    free(space);
    ir_program_free(p);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* tests/fail/sched_*.txt as traces: `# yaml: P.yaml` then the schedule. */
static int test_fail_cases(const char *root)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fail", root);
    DIR *d = opendir(dir);
    CHECKF(d, "%s", dir);
    if (!d)
        return 0;
    char *names[256];
    int n = 0;
    for (struct dirent *de; (de = readdir(d)) && n < 256;) {
        size_t len = strlen(de->d_name);
        if (!strncmp(de->d_name, "sched_", 6) && len > 4 && !strcmp(de->d_name + len - 4, ".txt"))
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    int taken = 0;
    for (int k = 0; k < n; k++) {
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        char *text = t_read_file(path);
        CHECKF(text, "%s", path);
        const char *y = text ? strstr(text, "# yaml: ") : NULL;
        char rel[256] = "";
        if (y)
            sscanf(y + 8, "%200s", rel);
        char prog[512];
        snprintf(prog, sizeof prog, "tests/fail/programs/%s", rel);
        Program *p = text ? load(root, prog) : NULL;
        CHECKF(p || !text, "%s", prog);
        TraceProg *fast, *slow;
        TDec *dec;
        if (p && parse2(text, path, p, &fast, &slow, &dec)) {
            taken += nfast(fast) > 0;
            int before = nerrors;
            same(p, fast, slow, dec, 1, path);
            /* `expect: -:` cases fail later, when the nest is built */
            if (!strstr(text, "# expect: -:"))
                CHECKF(nerrors == before + 1, "%s does not fail as a trace", path);
            trace_prog_free(fast);
            trace_prog_free(slow);
            free(dec);
        }
        ir_program_free(p);
        free(text);
        free(names[k]);
    }
    return taken;
}

/* Lines the fast path must hand to the text path, and errors of lines it
 * takes (the text path reports them). */
static void test_edges(const char *root)
{
    Program *p = load(root, "examples/matmul.yaml");
    CHECK(p);
    if (!p)
        return;
    static const struct {
        const char *text;
        bool fast; /* the plain line (the last) takes the fast path */
    } cases[] = {
        {"t = sample_perfect_tile(C.i, 1, 0)\nsplit(C.i, t)\n", false}, /* no factors */
        {"t = sample_perfect_tile(C.i, 2, 0)\nC.a, C.b = split(C.i, t)\n", true},
        {"t = sample_perfect_tile(C.i, 3, 0)\nC.a, C.b, C.c = split(C.i, t)\n", true},
        {"t = sample_perfect_tile(C.i, 3, 0)\nC.a, C.b = split(C.i, t)\n", true},
        {"t = sample_perfect_tile(C.i, 3, 0)\nC.a, C.b, C.c = split(C.i, t[1], t[2])\n", true},
        {"t = sample_perfect_tile(C.i, 3, 0)\nC.a, C.b, C.c = split(C.i, t[2], -t[1])\n", false},
        {"v = sample_categorical([-4, 0, 4])  # decision: 0\nsplit(C.i, v)\n", true},
        {"v = sample_categorical([-9223372036854775807, 1])  # decision: 0\nsplit(C.i, v)\n", true},
        {"v = sample_categorical([-9223372036854775807, 1])  # decision: 0\n"
         "w = sample_categorical([-9223372036854775808, 1])  # decision: 0\nsplit(C.i, w)\n",
         true},
        {"split(C.i, 4); split(C.j, 4)\n", false},
        {"split(C.i, 4) split(C.j, 4)\n", false},
        {"split(C.i, 99999999999999999999)\n", false},
        {"split(C.i, 4x)\n", false},
        {"split(C.i, -4)\n", true},
        {"split(C.i., 4)\n", false},
        {"split(C.i 4)\n", false},
        {"split C.i, 4)\n", false},
        {"splat(C.i, 4)\n", false},
        {"C.a = split(C.i, 4)\n", true},
        {"C.a, C.b, C.c = split(C.i, 4)\n", true},
        {"D.a, C.b = split(C.i, 4)\n", true},
        {"C.a, 3 = split(C.i, 4)\n", false},
        {"C.a, C.b = reorder(C.i, C.j)\n", true},
        {"reorder(C.j, C.k, C.i)\n", true},
        {"reorder()\n", true},
        {"reorder(C.j, A.k)\n", true},
        {"fuse(C.i)\n", true},
        {"C.x = fuse(C.i, C.j)\n", true},
        {"C.x, C.y = fuse(C.i, C.j)\n", true},
        {"fuse(C.j, C.i)\n", true},
        {"parallel(C.i, C.j)\n", true},
        {"vectorize(C.i)\n", true},
        {"unroll(3)\n", true},
        {"serial(C.q)\n", true},
        {"inline(C)\n", true},
        {"inline(C.i)\n", true},
        {"inline(A)\n", true},
        {"compute_at(A, C.i)\n", true},
        {"compute_at(C)\n", true},
        {"L = cache_write(C)\nL.i0, L.i1 = split(L.i, 4)\ncompute_at(L, C.i)\n", true},
        {"L.x = cache_write(C)\n", true},
        {"L, M = cache_write(C)\n", true},
        {"cache_write(A)\n", true},
        {"cache_write(Z)\n", true},
        {"R = cache_read(B, C, 1, 0)\n", true},
        {"R = cache_read(B, C, 1, 1)\n", true},
        {"R = cache_read(B, C, x)\n", true},
        {"R = cache_read(B, A)\n", true},
        {"cache_read(B)\n", true},
        {"X = rfactor(C.k, 16)\n", true},
        {"X = rfactor(C.k, C.i)\n", true},
        {"X = rfactor(C.i, 16)\n", true},
        {"rfactor(C.k)\n", true},
        {"t = sample_perfect_tile(C.i, 2, 0)  # decision: [0, 7]\n"
         "keep = sample_categorical([0, 1])  # decision: 0\n"
         "t2 = sample_perfect_tile(C.j, 2, 0) if keep\n",
         false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        TraceProg *fast, *slow;
        TDec *dec;
        kiln_error e;
        kiln_error_clear(&e);
        TraceProg *chk;
        TDec *cd;
        if (trace_parse(cases[i].text, "edge.trace", p, &chk, &cd, &e) != KILN_OK)
            continue; /* a trace-level syntax error: nothing to apply */
        trace_prog_free(chk);
        free(cd);
        if (!parse2(cases[i].text, "edge.trace", p, &fast, &slow, &dec))
            continue;
        const TInst *last = &fast->v[fast->n - 1];
        CHECKF(last->kind != TI_PRIM || (last->call != NULL) == cases[i].fast,
               "case %zu (%s): fast path %s", i, cases[i].text, last->call ? "taken" : "not taken");
        char what[64];
        snprintf(what, sizeof what, "edge case %zu", i);
        for (uint64_t seed = 1; seed < 6; seed++)
            same(p, fast, slow, dec, seed, what);
        trace_prog_free(fast);
        trace_prog_free(slow);
        free(dec);
    }
    ir_program_free(p);
}

int main(int argc, char **argv)
{
    const char *root = argc > 1 ? argv[1] : ".";
    static const char *const ex[] = {"examples/matmul.yaml",
                                     "examples/conv2d.yaml",
                                     "examples/blur.yaml",
                                     "examples/batch_matmul.yaml",
                                     "examples/depthwise_conv.yaml",
                                     "examples/layernorm.yaml",
                                     "examples/matmul_bias_relu.yaml",
                                     "examples/softmax.yaml",
                                     "examples/transpose.yaml",
                                     "tests/programs/rowsum.yaml",
                                     "tests/programs/small_matmul.yaml"};
    for (size_t i = 0; i < sizeof ex / sizeof *ex; i++)
        test_space(root, ex[i]);
    int before = nerrors;
    int taken = test_fail_cases(root);
    CHECKF(taken >= 25, "only %d failure cases took the fast path", taken);
    CHECKF(nerrors - before >= 30, "only %d failure cases ran", nerrors - before);
    test_edges(root);
    return t_done("tune_fastpath");
}
