/* tests/test_lower_sched.c: schedule primitives, their errors, the text
 * form (parse errors with line:col, print/replay round trips), the default
 * and random schedules. */
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "lower/lower.h"
#include "testlib.h"

static const char *MATMUL = "name: matmul\n"
                            "params: {M: 10, N: 20, K: 7}\n"
                            "inputs:\n"
                            "  A: [f32, M, K]\n"
                            "  B: [f32, K, N]\n"
                            "outputs:\n"
                            "  C: [f32, M, N]\n"
                            "compute:\n"
                            "  - C[i, j] += A[i, k] * B[k, j]\n";

static const char *CHAIN = "name: chain\n"
                           "inputs:\n"
                           "  A: [f32, 6, 100]\n"
                           "  b: [f32, 100]\n"
                           "outputs:\n"
                           "  D: [f32, 6, 100]\n"
                           "  S: [f32, 6]\n"
                           "temps:\n"
                           "  T: [f32, 6, 100]\n"
                           "  R: [f32, 6]\n"
                           "compute:\n"
                           "  - T[i, j] = A[i, j] + b[j]\n"
                           "  - R[i] += T[i, j]\n"
                           "  - D[i, j] = max(T[i, j] * R[i], 0.0)\n"
                           "  - S[i] max= D[i, j]\n";

static const char *BIG = "name: big\n"
                         "inputs:\n"
                         "  A: [f64, 1000, 300]\n"
                         "  x: [f64, 300]\n"
                         "outputs:\n"
                         "  O: [f64, 1000, 300]\n"
                         "  s: [f64]\n"
                         "compute:\n"
                         "  - O[i, j] = A[i, j] * 2.0\n"
                         "  - s[] += x[k] * x[k]\n";

static Program *parse(const char *yaml)
{
    Program *p = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    int rc = ir_parse_yaml_string(yaml, strlen(yaml), "test.yaml", &p, &e);
    CHECKF(rc == KILN_OK && p, "parse failed: %s", e.msg);
    return p;
}

/* "io:3 ii:4 j:20 k:7" plus annotations (p v u) for statement st. */
static const char *order_str(const Schedule *s, int st)
{
    static char buf[512];
    size_t n = 0;
    buf[0] = 0;
    const StmtSched *ss = &s->st[st];
    for (int i = 0; i < ss->norder; i++) {
        const SLoop *l = &ss->loops[ss->order[i]];
        static const char *const k[] = {"", "p", "v", "u"};
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s:%lld%s", i ? " " : "", l->name,
                              (long long)l->extent, k[l->kind]);
    }
    return buf;
}

static int loop_id(const Schedule *s, const char *q)
{
    int st, l;
    int rc = sched_find_loop(s, q, &st, &l, NULL);
    CHECKF(rc == KILN_OK, "no loop %s", q);
    return rc ? -1 : l;
}

/* Applies text; returns the error (or KILN_OK) with "line:col: msg" in out. */
static int apply(Schedule *s, const char *text, char *out, size_t n)
{
    kiln_error e;
    kiln_error_clear(&e);
    int rc = sched_apply_text(s, text, "s.sched", &e);
    snprintf(out, n, "%d:%d: %s", e.line, e.col, e.msg);
    return rc;
}

static void expect_text_error(const Program *p, const char *text, const char *want)
{
    Schedule *s = sched_new(p);
    char got[700];
    int rc = apply(s, text, got, sizeof got);
    CHECKF(rc != KILN_OK && strstr(got, want), "text %s\n  wanted '%s'\n  got    '%s'", text, want,
           got);
    sched_free(s);
}

/* Lowered text of a schedule (all passes). */
static char *lowered(const Schedule *s)
{
    Arena *a = arena_new();
    LFunc *f = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    int rc = lower_schedule(s, a, NULL, &f, &e);
    CHECKF(rc == KILN_OK, "lowering failed: %s", e.msg);
    char *t = rc ? strdup("") : lfunc_to_text(f);
    arena_free(a);
    return t;
}

static void test_split(const Program *p)
{
    Schedule *s = sched_new(p);
    kiln_error e;
    CHECK(!strcmp(order_str(s, 0), "i:10 j:20 k:7"));
    int out[3];
    const char *names[] = {"io", "ii"};
    int64_t f4 = 4;
    CHECK(sched_split(s, 0, loop_id(s, "C.i"), 1, &f4, names, out, NULL) == KILN_OK);
    CHECK(!strcmp(order_str(s, 0), "io:3 ii:4 j:20 k:7"));
    CHECK(out[0] == loop_id(s, "C.io") && out[1] == loop_id(s, "C.ii"));
    /* auto names; two factors; outer extent rounds up */
    int64_t f23[2] = {2, 3};
    CHECK(sched_split(s, 0, loop_id(s, "C.k"), 2, f23, NULL, out, NULL) == KILN_OK);
    CHECK(!strcmp(order_str(s, 0), "io:3 ii:4 j:20 k0:2 k1:2 k2:3"));
    /* a factor larger than the extent is allowed (guards keep it correct) */
    int64_t f64 = 64;
    CHECK(sched_split(s, 0, loop_id(s, "C.ii"), 1, &f64, NULL, out, NULL) == KILN_OK);
    CHECK(!strcmp(order_str(s, 0), "io:3 ii0:1 ii1:64 j:20 k0:2 k1:2 k2:3"));

    char *before = sched_to_text(s);
    /* errors leave the schedule unchanged */
    int64_t f0 = 0;
    kiln_error_clear(&e);
    CHECK(sched_split(s, 0, loop_id(s, "C.j"), 1, &f0, NULL, out, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "split factor 0 of C.j must be at least 1"), "%s", e.msg);
    CHECK(s->err_arg == 1);
    kiln_error_clear(&e);
    CHECK(sched_split(s, 0, loop_id(s, "C.i"), 1, &f4, NULL, out, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "C.i is no longer a loop"), "%s", e.msg);
    const char *dup[] = {"jo", "io"};
    kiln_error_clear(&e);
    CHECK(sched_split(s, 0, loop_id(s, "C.j"), 1, &f4, dup, out, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "loop name 'C.io' is already used"), "%s", e.msg);
    CHECK(s->err_arg == -3);
    const char *same[] = {"x", "x"};
    kiln_error_clear(&e);
    CHECK(sched_split(s, 0, loop_id(s, "C.j"), 1, &f4, same, out, &e) == KILN_ESCHEDULE);
    const char *bad[] = {"1x", "y"};
    kiln_error_clear(&e);
    CHECK(sched_split(s, 0, loop_id(s, "C.j"), 1, &f4, bad, out, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "not an identifier"), "%s", e.msg);
    kiln_error_clear(&e);
    CHECK(sched_split(s, 0, loop_id(s, "C.j"), 0, &f4, NULL, out, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "split needs at least one factor"), "%s", e.msg);
    char *after = sched_to_text(s);
    CHECK(!strcmp(before, after));
    CHECK(!strcmp(order_str(s, 0), "io:3 ii0:1 ii1:64 j:20 k0:2 k1:2 k2:3"));
    CHECKF(!strcmp(before, "C.io, C.ii = split(C.i, 4)\n"
                           "C.k0, C.k1, C.k2 = split(C.k, 2, 3)\n"
                           "C.ii0, C.ii1 = split(C.ii, 64)\n"),
           "%s", before);
    free(before);
    free(after);
    sched_free(s);
}

static void test_fuse_reorder(const Program *p)
{
    kiln_error e;
    Schedule *s = sched_new(p);
    int l2[2] = {loop_id(s, "C.i"), loop_id(s, "C.j")}, out;
    CHECK(sched_fuse(s, 0, 2, l2, NULL, &out, NULL) == KILN_OK);
    CHECK(!strcmp(order_str(s, 0), "ij:200 k:7"));
    /* a fused loop can be split again */
    int64_t f = 16;
    const char *nm[] = {"a", "b"};
    CHECK(sched_split(s, 0, out, 1, &f, nm, NULL, NULL) == KILN_OK);
    CHECK(!strcmp(order_str(s, 0), "a:13 b:16 k:7"));
    sched_free(s);

    s = sched_new(p);
    int ik[2] = {loop_id(s, "C.i"), loop_id(s, "C.k")};
    kiln_error_clear(&e);
    CHECK(sched_fuse(s, 0, 2, ik, NULL, &out, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "cannot fuse C.i and C.k: fused loops must be adjacent"), "%s", e.msg);
    int ji[2] = {loop_id(s, "C.j"), loop_id(s, "C.i")};
    kiln_error_clear(&e);
    CHECK(sched_fuse(s, 0, 2, ji, NULL, &out, &e) == KILN_ESCHEDULE);
    int jk[2] = {loop_id(s, "C.j"), loop_id(s, "C.k")};
    kiln_error_clear(&e);
    CHECK(sched_fuse(s, 0, 2, jk, NULL, &out, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "one is a reduction loop"), "%s", e.msg);
    kiln_error_clear(&e);
    CHECK(sched_fuse(s, 0, 1, jk, NULL, &out, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "fuse needs at least two loops"), "%s", e.msg);
    /* split child fused with its neighbour */
    const char *nm2[] = {"io", "ii"};
    f = 3;
    CHECK(sched_split(s, 0, loop_id(s, "C.i"), 1, &f, nm2, NULL, NULL) == KILN_OK);
    int iij[2] = {loop_id(s, "C.ii"), loop_id(s, "C.j")};
    CHECK(sched_fuse(s, 0, 2, iij, "f", &out, NULL) == KILN_OK);
    CHECK(!strcmp(order_str(s, 0), "io:4 f:60 k:7"));

    /* reorder: the loops take the positions they occupy, in the given order */
    int r2[2] = {loop_id(s, "C.k"), loop_id(s, "C.io")};
    CHECK(sched_reorder(s, 0, 2, r2, NULL) == KILN_OK);
    CHECK(!strcmp(order_str(s, 0), "k:7 f:60 io:4"));
    int r3[2] = {loop_id(s, "C.f"), loop_id(s, "C.f")};
    kiln_error_clear(&e);
    CHECK(sched_reorder(s, 0, 2, r3, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "C.f appears twice in reorder"), "%s", e.msg);
    CHECK(s->err_arg == 1);
    int r4[1] = {loop_id(s, "C.i")};
    kiln_error_clear(&e);
    CHECK(sched_reorder(s, 0, 1, r4, &e) == KILN_ESCHEDULE);
    CHECK(!strcmp(order_str(s, 0), "k:7 f:60 io:4"));
    sched_free(s);
}

static void test_annotate(const Program *p, const Program *chain)
{
    kiln_error e;
    Schedule *s = sched_new(p);
    int i = loop_id(s, "C.i"), j = loop_id(s, "C.j"), k = loop_id(s, "C.k");
    kiln_error_clear(&e);
    CHECK(sched_annotate(s, 0, k, LOOP_PARALLEL, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "cannot parallelize reduction loop C.k"), "%s", e.msg);
    kiln_error_clear(&e);
    CHECK(sched_annotate(s, 0, k, LOOP_VECTORIZED, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "cannot vectorize reduction loop C.k"), "%s", e.msg);
    kiln_error_clear(&e);
    CHECK(sched_annotate(s, 0, j, LOOP_VECTORIZED, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "only the innermost loop (C.k) can be vectorized"), "%s", e.msg);
    int ikj[3] = {i, k, j};
    CHECK(sched_reorder(s, 0, 3, ikj, NULL) == KILN_OK);
    CHECK(sched_annotate(s, 0, j, LOOP_VECTORIZED, NULL) == KILN_OK);
    /* vectorized loops stay innermost */
    int kj[2] = {j, k};
    kiln_error_clear(&e);
    CHECK(sched_reorder(s, 0, 2, kj, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "would move vectorized loop C.j"), "%s", e.msg);
    kiln_error_clear(&e);
    CHECK(sched_annotate(s, 0, j, LOOP_PARALLEL, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "cannot be both vectorized and parallel"), "%s", e.msg);
    CHECK(sched_annotate(s, 0, i, LOOP_PARALLEL, NULL) == KILN_OK);
    kiln_error_clear(&e);
    CHECK(sched_annotate(s, 0, i, LOOP_VECTORIZED, &e) == KILN_ESCHEDULE);
    /* re-annotating replaces */
    CHECK(sched_annotate(s, 0, k, LOOP_UNROLLED, NULL) == KILN_OK);
    CHECK(sched_annotate(s, 0, k, LOOP_SERIAL, NULL) == KILN_OK);
    CHECK(sched_annotate(s, 0, j, LOOP_UNROLLED, NULL) == KILN_OK);
    CHECK(!strcmp(order_str(s, 0), "i:10p k:7 j:20u"));
    /* splitting drops the annotation of the split loop */
    int64_t f = 5;
    CHECK(sched_split(s, 0, i, 1, &f, NULL, NULL, NULL) == KILN_OK);
    CHECK(!strcmp(order_str(s, 0), "i0:2 i1:5 k:7 j:20u"));
    CHECK(sched_annotate(s, 0, loop_id(s, "C.i0"), LOOP_PARALLEL, NULL) == KILN_OK);
    kiln_error_clear(&e);
    CHECK(sched_annotate(s, 0, loop_id(s, "C.i1"), LOOP_PARALLEL, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "C.i0 is already parallel"), "%s", e.msg);
    sched_free(s);

    /* extents: vectorize <= 64, unroll <= 256 */
    s = sched_new(chain);
    kiln_error_clear(&e);
    CHECK(sched_annotate(s, 0, loop_id(s, "T.j"), LOOP_VECTORIZED, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "cannot vectorize T.j: extent 100 exceeds 64"), "%s", e.msg);
    CHECK(sched_annotate(s, 0, loop_id(s, "T.j"), LOOP_UNROLLED, NULL) == KILN_OK);
    sched_free(s);
    Program *big = parse(BIG);
    if (big) {
        s = sched_new(big);
        kiln_error_clear(&e);
        CHECK(sched_annotate(s, 0, loop_id(s, "O.i"), LOOP_UNROLLED, &e) == KILN_ESCHEDULE);
        CHECKF(strstr(e.msg, "cannot unroll O.i: extent 1000 exceeds 256"), "%s", e.msg);
        sched_free(s);
        ir_program_free(big);
    }
}

static void test_inline(const Program *chain)
{
    kiln_error e;
    Schedule *s = sched_new(chain);
    /* statements: 0 T (temp), 1 R (temp reduction), 2 D (output), 3 S */
    kiln_error_clear(&e);
    CHECK(sched_inline(s, 2, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "cannot inline 'D': only temps can be inlined"), "%s", e.msg);
    kiln_error_clear(&e);
    CHECK(sched_inline(s, 1, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "cannot inline 'R': it is computed by a reduction"), "%s", e.msg);
    CHECK(sched_inline(s, 0, NULL) == KILN_OK);
    kiln_error_clear(&e);
    CHECK(sched_inline(s, 0, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "'T' is already inlined"), "%s", e.msg);
    int64_t f = 2;
    kiln_error_clear(&e);
    CHECK(sched_split(s, 0, loop_id(s, "T.i"), 1, &f, NULL, NULL, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "'T' is inlined"), "%s", e.msg);
    char *t = sched_to_text(s);
    CHECK(!strcmp(t, "inline(T)\n"));
    free(t);
    /* the lowered code has no store to T, and T is never allocated */
    t = lowered(s);
    CHECKF(!strstr(t, "T[") && !strstr(t, "alloc T"), "%s", t);
    CHECKF(strstr(t, "alloc R"), "%s", t);
    free(t);
    sched_free(s);
}

static void test_find(const Program *p)
{
    Schedule *s = sched_new(p);
    int st, l;
    kiln_error e;
    kiln_error_clear(&e);
    CHECK(sched_find_loop(s, "C.x", &st, &l, &e) == KILN_ESCHEDULE);
    CHECKF(!strcmp(e.msg, "unknown loop 'C.x' (loops of C: i, j, k)"), "%s", e.msg);
    kiln_error_clear(&e);
    CHECK(sched_find_loop(s, "X.i", &st, &l, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "unknown tensor 'X'"), "%s", e.msg);
    kiln_error_clear(&e);
    CHECK(sched_find_loop(s, "A.i", &st, &l, &e) == KILN_ESCHEDULE);
    CHECKF(strstr(e.msg, "'A' is an input"), "%s", e.msg);
    kiln_error_clear(&e);
    CHECK(sched_find_loop(s, "Ci", &st, &l, &e) == KILN_ESCHEDULE);
    CHECK(sched_find_loop(s, "C.k", &st, &l, NULL) == KILN_OK && st == 0 && l == 2);
    sched_free(s);
}

static void test_text(const Program *p, const Program *chain)
{
    /* the full syntax: comments, blank lines, ';', several calls per line */
    Schedule *s = sched_new(p);
    char err[700];
    int rc = apply(s,
                   "# a comment line\n"
                   "\n"
                   "C.io, C.ii = split(C.i, 4)   # trailing comment\n"
                   "  C.jo,C.ji=split( C.j ,8 )\n"
                   "reorder(C.io, C.jo, C.k, C.ii, C.ji); parallel(C.io)\n"
                   "vectorize(C.ji) unroll(C.ii)\n"
                   "C.x = fuse(C.io, C.jo)\n"
                   "split(C.k, 2)\n",
                   err, sizeof err);
    CHECKF(rc == KILN_OK, "%s", err);
    char *t = sched_to_text(s);
    const char *want = "C.io, C.ii = split(C.i, 4)\n"
                       "C.jo, C.ji = split(C.j, 8)\n"
                       "reorder(C.io, C.jo, C.k, C.ii, C.ji)\n"
                       "parallel(C.io)\n"
                       "vectorize(C.ji)\n"
                       "unroll(C.ii)\n"
                       "C.x = fuse(C.io, C.jo)\n"
                       "C.k0, C.k1 = split(C.k, 2)\n";
    CHECKF(!strcmp(t, want), "%s", t);
    CHECK(!strcmp(order_str(s, 0), "x:9 k0:4 k1:2 ii:4u ji:8v"));
    free(t);
    sched_free(s);
    /* unqualified result names are accepted too */
    s = sched_new(p);
    rc = apply(s, "a, b = split(C.i, 5)\n", err, sizeof err);
    CHECKF(rc == KILN_OK, "%s", err);
    CHECK(!strcmp(order_str(s, 0), "a:2 b:5 j:20 k:7"));
    sched_free(s);
    s = sched_new(p);
    CHECK(sched_apply_text(s, "", NULL, NULL) == KILN_OK);
    CHECK(sched_apply_text(s, "# only\n\n  # comments\n", NULL, NULL) == KILN_OK);
    t = sched_to_text(s);
    CHECK(!strcmp(t, ""));
    free(t);
    sched_free(s);

    expect_text_error(p, "C.io, C.ii = split(C.i, 32)\nsplit(C.x, 4)",
                      "2:7: unknown loop 'C.x' (loops of C: io, ii, j, k)");
    expect_text_error(p, "tile(C.i, 4)", "1:1: unknown primitive 'tile'");
    expect_text_error(p, "split(C.i, 4", "1:13: expected ')'");
    expect_text_error(p, "split(C.i, 4\nparallel(C.i)", "1:13: expected ')'");
    expect_text_error(p, "split(C.i)", "1:10: split needs at least one factor");
    expect_text_error(p, "\n  parallel(C.k)", "2:12: cannot parallelize reduction loop C.k");
    expect_text_error(p, "C.a, C.b, C.c = split(C.i, 4, 0)", "1:31: split factor 0 of C.i must be");
    expect_text_error(p, "C.a, C.b = split(C.i, -3)", "1:23: split factor -3 of C.i must be");
    expect_text_error(p, "split(C.i, C.j)", "1:12: expected an integer factor, got 'C.j'");
    expect_text_error(p, "C.a = split(C.i, 2)", "1:1: split of C.i by 1 factor gives 2 loops");
    expect_text_error(p, "C.a, C.j = split(C.i, 2)", "1:6: loop name 'C.j' is already used");
    expect_text_error(p, "D.a, C.b = split(C.i, 2)", "1:1: new loop 'D.a' must be named C.NAME");
    expect_text_error(p, "fuse(C.i, C.k)", "1:11: cannot fuse C.i and C.k");
    expect_text_error(p, "fuse(C.i)", "1:9: fuse needs at least two loops");
    expect_text_error(p, "reorder(C.i, A.j)", "1:14: 'A' is an input");
    expect_text_error(p, "reorder(C.j, C.j)", "1:14: C.j appears twice");
    expect_text_error(p, "split(C.i, 2) @", "1:15: unexpected character '@'");
    expect_text_error(p, "split C.i", "1:7: expected '(' after 'split'");
    expect_text_error(p, "parallel(C.i, C.j)", "1:15: parallel takes exactly one loop");
    expect_text_error(p, "C.a = parallel(C.i)", "1:1: 'parallel' does not return loops");
    expect_text_error(p, "parallel(4)", "1:10: expected a loop name like C.i, got '4'");
    expect_text_error(p, "split(C., 2)", "1:9: expected a loop name after '.'");
    expect_text_error(p, "vectorize(C.i)", "1:11: cannot vectorize C.i: only the innermost");
    expect_text_error(p, "split(C.i, 2\n",
                      "1:13: expected ')' or ',' in split(...), got end of line");
    expect_text_error(p, "inline(C)", "1:8: cannot inline 'C': only temps");
    expect_text_error(p, "inline(Q)", "1:8: unknown tensor 'Q'");
    expect_text_error(p, "inline(A)", "1:8: cannot inline 'A': it is an input");
    expect_text_error(p, "split(C.i, 99999999999999999999)", "1:12: integer");
    expect_text_error(p, ") ", "1:1: expected a primitive");
    expect_text_error(chain, "inline(T)\nT.a, T.b = split(T.i, 2)", "2:18: cannot schedule T.i");
    expect_text_error(chain, "reorder(T.i, R.i)", "1:14: R.i is not a loop of the same statement");

    /* an error leaves earlier lines applied and nothing of its own */
    s = sched_new(p);
    rc = apply(s, "C.io, C.ii = split(C.i, 4)\nC.a, C.b = split(C.j, 0)\n", err, sizeof err);
    CHECK(rc == KILN_ESCHEDULE);
    t = sched_to_text(s);
    CHECK(!strcmp(t, "C.io, C.ii = split(C.i, 4)\n"));
    free(t);
    sched_free(s);
    kiln_error e;
    kiln_error_clear(&e);
    s = sched_new(p);
    CHECK(sched_apply_text(s, "oops(C.i)", NULL, &e) == KILN_ESYNTAX);
    CHECK(!strcmp(e.file, "<schedule>") && e.line == 1 && e.col == 1);
    sched_free(s);
}

/* print -> replay on a fresh schedule -> print: identical text and code */
static void round_trip(const Schedule *s, const char *what)
{
    char *t1 = sched_to_text(s);
    Schedule *r = sched_new(s->prog);
    kiln_error e;
    kiln_error_clear(&e);
    int rc = sched_apply_text(r, t1, "trip", &e);
    CHECKF(rc == KILN_OK, "%s: replay failed: %s:%d:%d: %s\n%s", what, e.file, e.line, e.col, e.msg,
           t1);
    char *t2 = sched_to_text(r);
    CHECKF(!strcmp(t1, t2), "%s: text differs:\n%s---\n%s", what, t1, t2);
    for (int i = 0; i < s->prog->nstmts; i++) {
        char a[512];
        snprintf(a, sizeof a, "%s", order_str(s, i));
        CHECKF(!strcmp(a, order_str(r, i)) && s->st[i].inlined == r->st[i].inlined,
               "%s: statement %d differs", what, i);
    }
    char *c1 = lowered(s), *c2 = lowered(r);
    CHECKF(!strcmp(c1, c2), "%s: lowered code differs", what);
    /* clone: same text, independent */
    Schedule *c = sched_clone(s);
    char *t3 = sched_to_text(c);
    CHECK(!strcmp(t1, t3));
    free(t3);
    sched_free(c);
    free(c1);
    free(c2);
    free(t1);
    free(t2);
    sched_free(r);
}

static void test_random(Program **progs, int n)
{
    uint64_t rng = 12345;
    int nonempty = 0, inl = 0, fused = 0, split2 = 0, par = 0, vec = 0, unr = 0;
    for (int seed = 0; seed < 200; seed++) {
        const Program *p = progs[seed % n];
        Schedule *s = sched_random(p, &rng);
        CHECK(s != NULL);
        if (!s)
            continue;
        char *t = sched_to_text(s);
        nonempty += t[0] != 0;
        inl += strstr(t, "inline(") != NULL;
        fused += strstr(t, "fuse(") != NULL;
        par += strstr(t, "parallel(") != NULL;
        vec += strstr(t, "vectorize(") != NULL;
        unr += strstr(t, "unroll(") != NULL;
        for (const char *q = t; (q = strstr(q, "split(")); q++) {
            const char *close = strchr(q, ')');
            int commas = 0;
            for (const char *c = q; c < close; c++)
                commas += *c == ',';
            split2 += commas == 2;
        }
        free(t);
        char what[64];
        snprintf(what, sizeof what, "random schedule %d", seed);
        round_trip(s, what);
        sched_free(s);
    }
    /* every kind of primitive shows up */
    CHECKF(nonempty > 180 && inl > 5 && fused > 10 && split2 > 10 && par > 20 && vec > 20 &&
               unr > 10,
           "nonempty %d inline %d fuse %d split2 %d parallel %d vectorize %d unroll %d", nonempty,
           inl, fused, split2, par, vec, unr);
    /* the same seed gives the same schedule */
    uint64_t r1 = 99, r2 = 99;
    Schedule *a = sched_random(progs[0], &r1), *b = sched_random(progs[0], &r2);
    char *ta = sched_to_text(a), *tb = sched_to_text(b);
    CHECK(!strcmp(ta, tb) && r1 == r2);
    free(ta);
    free(tb);
    sched_free(a);
    sched_free(b);
    uint64_t z = 0;
    CHECK(ir_rand(&z) != 0 && z != 0);
}

static void test_default(const Program *p, const Program *chain)
{
    static const char *MM64 = "name: mm\n"
                              "inputs:\n"
                              "  A: [f32, 64, 64]\n"
                              "  B: [f32, 64, 64]\n"
                              "outputs:\n"
                              "  C: [f32, 64, 64]\n"
                              "compute:\n"
                              "  - C[i, j] += A[i, k] * B[k, j]\n";
    Program *mm = parse(MM64);
    if (mm) {
        Schedule *s = sched_default(mm);
        char *t = sched_to_text(s);
        CHECKF(!strcmp(t, "reorder(C.i, C.k, C.j)\n"
                          "C.jo, C.ji = split(C.j, 16)\n"
                          "vectorize(C.ji)\n"
                          "parallel(C.i)\n"),
               "%s", t);
        free(t);
        round_trip(s, "default mm64");
        sched_free(s);
        ir_program_free(mm);
    }
    /* small matmul: no parallel (too little work) */
    Schedule *s = sched_default(p);
    char *t = sched_to_text(s);
    CHECKF(!strcmp(t, "reorder(C.i, C.k, C.j)\n"
                      "C.jo, C.ji = split(C.j, 16)\n"
                      "vectorize(C.ji)\n"),
           "%s", t);
    free(t);
    sched_free(s);
    s = sched_default(chain);
    round_trip(s, "default chain");
    CHECK(!s->st[0].inlined);
    sched_free(s);
    Program *big = parse(BIG);
    if (big) {
        s = sched_default(big);
        t = sched_to_text(s);
        CHECKF(!strcmp(t, "O.jo, O.ji = split(O.j, 8)\n"
                          "vectorize(O.ji)\n"
                          "parallel(O.i)\n"),
               "%s", t);
        free(t);
        round_trip(s, "default big");
        sched_free(s);
        ir_program_free(big);
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    Program *mm = parse(MATMUL), *chain = parse(CHAIN);
    if (!mm || !chain)
        return t_done("test_lower_sched");
    test_split(mm);
    test_fuse_reorder(mm);
    test_annotate(mm, chain);
    test_inline(chain);
    test_find(mm);
    test_text(mm, chain);
    test_default(mm, chain);
    Program *progs[2] = {mm, chain};
    test_random(progs, 2);
    ir_program_free(mm);
    ir_program_free(chain);
    return t_done("test_lower_sched");
}
