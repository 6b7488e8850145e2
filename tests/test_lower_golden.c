/* tests/test_lower_golden.c: golden tests of the lowered IR.
 *
 * Each case lowers a program with a fixed schedule and compares the IR
 * after every pass with tests/golden/NAME.txt (sections "== PASS").  Run
 * with KILN_UPDATE_GOLDEN=1 to rewrite the files after an intended change
 * (then read the diff!).  Also: the pass list, stop_after errors,
 * KILN_PRINT_AFTER, and that every example schedule lowers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ir/ir.h"
#include "lower/lower.h"
#include "testlib.h"

static const char *root = ".", *build = ".";

static Program *parse(const char *yaml)
{
    Program *p = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    int rc = ir_parse_yaml_string(yaml, strlen(yaml), "golden.yaml", &p, &e);
    CHECKF(rc == KILN_OK, "parse: %d:%d: %s", e.line, e.col, e.msg);
    return p;
}

/* Lowered text after every pass, as one string. */
static char *all_passes(const Schedule *s)
{
    StrBuf sb = {0};
    for (int i = 0; lower_pass_names[i]; i++) {
        Arena *a = arena_new();
        LFunc *f = NULL;
        kiln_error e;
        kiln_error_clear(&e);
        int rc = lower_schedule(s, a, lower_pass_names[i], &f, &e);
        CHECKF(rc == KILN_OK, "lowering to %s: %s", lower_pass_names[i], e.msg);
        char *t = rc ? NULL : lfunc_to_text(f);
        sb_printf(&sb, "== %s\n%s", lower_pass_names[i], t ? t : "(failed)\n");
        free(t);
        arena_free(a);
    }
    return sb.s;
}

static void golden(const char *name, const char *yaml, const char *sched)
{
    Program *p = parse(yaml);
    if (!p)
        return;
    Schedule *s = sched_new(p);
    kiln_error e;
    kiln_error_clear(&e);
    int rc = sched_apply_text(s, sched, name, &e);
    CHECKF(rc == KILN_OK, "%s: %d:%d: %s", name, e.line, e.col, e.msg);
    char *got = all_passes(s);
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/golden/%s.txt", root, name);
    const char *upd = getenv("KILN_UPDATE_GOLDEN");
    if (upd && !strcmp(upd, "1")) {
        FILE *f = fopen(path, "w");
        CHECKF(f != NULL, "cannot write %s", path);
        if (f) {
            fputs(got, f);
            fclose(f);
        }
    }
    char *want = t_read_file(path);
    CHECKF(want != NULL, "missing golden file %s (run with KILN_UPDATE_GOLDEN=1)", path);
    if (want && strcmp(want, got)) {
        /* point at the first differing line */
        int line = 1;
        size_t i = 0;
        while (want[i] && want[i] == got[i]) {
            line += want[i] == '\n';
            i++;
        }
        CHECKF(0, "%s differs from %s at line %d; got:\n%s", name, path, line, got);
    }
    free(want);
    free(got);
    sched_free(s);
    ir_program_free(p);
}

static const char *MATMUL = "name: matmul\n"
                            "params: {M: 10, N: 20, K: 7}\n"
                            "inputs:\n"
                            "  A: [f32, M, K]\n"
                            "  B: [f32, K, N]\n"
                            "outputs:\n"
                            "  C: [f32, M, N]\n"
                            "compute:\n"
                            "  - C[i, j] += A[i, k] * B[k, j]\n";

static const char *TEMPS = "name: temps\n"
                           "inputs:\n"
                           "  A: [f32, 6, 12]\n"
                           "  b: [f32, 12]\n"
                           "outputs:\n"
                           "  D: [f32, 6, 12]\n"
                           "  S: [f32, 6]\n"
                           "temps:\n"
                           "  T: [f32, 6, 12]\n"
                           "  U: [f32, 6, 12]\n"
                           "compute:\n"
                           "  - T[i, j] = A[i, j] + b[j]\n"
                           "  - U[i, j] = max(T[i, j], 0.0)\n"
                           "  - D[i, j] = U[i, j] * 2.0\n"
                           "  - S[i] += U[i, j]\n";

static const char *MISC = "name: misc\n"
                          "inputs:\n"
                          "  x: [f64, 37]\n"
                          "  A: [i32, 5]\n"
                          "outputs:\n"
                          "  dot: [f64]\n"
                          "  Z: [i32, 5]\n"
                          "  M: [i32, 5]\n"
                          "compute:\n"
                          "  - dot[] += x[k] * x[k]\n"
                          "  - Z[i] += A[i] * 3\n"
                          "  - {stmt: \"M[i] max= A[i] - A[r % 5]\", ranges: {r: 7}}\n";

static void test_goldens(void)
{
    golden("lower_matmul", MATMUL,
           "C.io, C.ii = split(C.i, 4)\n"
           "C.jo, C.ji = split(C.j, 8)\n"
           "reorder(C.io, C.jo, C.k, C.ii, C.ji)\n"
           "parallel(C.io)\n"
           "vectorize(C.ji)\n");
    golden("lower_matmul_fused", MATMUL,
           "C.ij = fuse(C.i, C.j)\n"
           "C.o, C.m, C.v = split(C.ij, 4, 16)\n"
           "C.ko, C.ki = split(C.k, 64)\n"
           "reorder(C.o, C.ko, C.m, C.ki, C.v)\n"
           "unroll(C.m)\n"
           "parallel(C.o)\n");
    golden("lower_temps", TEMPS,
           "inline(T)\n"
           "U.jo, U.ji = split(U.j, 4)\n"
           "vectorize(U.ji)\n"
           "reorder(S.j, S.i)\n");
    golden("lower_misc", MISC,
           "dot.ko, dot.ki = split(dot.k, 8)\n"
           "unroll(dot.ki)\n"
           "Z.a, Z.b, Z.c = split(Z.i, 2, 2)\n");
}

static void test_passes(void)
{
    int n = 0;
    while (lower_pass_names[n])
        n++;
    CHECK(n == 6 && !strcmp(lower_pass_names[0], "build") &&
          !strcmp(lower_pass_names[5], "flatten"));
    Program *p = parse(MATMUL);
    if (!p)
        return;
    Schedule *s = sched_new(p);
    Arena *a = arena_new();
    LFunc *f = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    CHECK(lower_schedule(s, a, "tile", &f, &e) == KILN_EINVAL && !f);
    CHECKF(!strcmp(e.msg, "unknown pass 'tile' (passes: build, inline, init, guards, simplify, "
                          "flatten)"),
           "%s", e.msg);
    /* full lowering is flat; stopping early is not */
    CHECK(lower_schedule(s, a, NULL, &f, NULL) == KILN_OK && f->flat && f->nargs == 3);
    CHECK(lower_schedule(s, a, "simplify", &f, NULL) == KILN_OK && !f->flat);
    CHECK(lower_verify(f, NULL) == KILN_OK);

    /* KILN_PRINT_AFTER prints the IR after that pass to stderr */
    char path[1024];
    snprintf(path, sizeof path, "%s/test_lower_golden.stderr", build);
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = fopen(path, "w");
    if (tmp && saved >= 0) {
        dup2(fileno(tmp), 2);
        setenv("KILN_PRINT_AFTER", "init", 1);
        CHECK(lower_schedule(s, a, NULL, &f, NULL) == KILN_OK);
        unsetenv("KILN_PRINT_AFTER");
        fflush(stderr);
        dup2(saved, 2);
        fclose(tmp);
        char *out = t_read_file(path);
        CHECKF(out && strstr(out, "-- after init --\nfunc matmul(") && !strstr(out, "after build"),
               "%s", out ? out : "(nothing)");
        free(out);
        remove(path);
    }
    if (saved >= 0)
        close(saved);

    /* the verifier rejects broken IR */
    Var *v = ir_var_new(a, "v", 4);
    Expr *ix = expr_var(a, v);
    LStmt *st = ls_store(a, 2, 1, &ix, expr_float(a, DT_F32, 0.0));
    LFunc bad = *f;
    bad.body = st; /* v unbound, and C needs 2 indices */
    kiln_error_clear(&e);
    CHECK(lower_verify(&bad, &e) == KILN_ECODEGEN);
    bad.body = ls_for(a, v, 4, LOOP_VECTORIZED,
                      ls_for(a, ir_var_new(a, "w", 2), 2, LOOP_SERIAL, ls_block(a, 0, NULL)));
    kiln_error_clear(&e);
    CHECK(lower_verify(&bad, &e) == KILN_ECODEGEN && strstr(e.msg, "inside a vectorized loop"));
    Expr *two[2] = {ix, ix};
    bad.body = ls_for(a, v, 4, LOOP_SERIAL, ls_store(a, 2, 2, two, expr_float(a, DT_F64, 0.0)));
    bad.flat = false;
    kiln_error_clear(&e);
    CHECK(lower_verify(&bad, &e) == KILN_ECODEGEN && strstr(e.msg, "store of f64 into C"));
    bad.body = ls_for(a, v, 4, LOOP_SERIAL, ls_store(a, 0, 2, two, expr_float(a, DT_F32, 0.0)));
    kiln_error_clear(&e);
    CHECK(lower_verify(&bad, &e) == KILN_ECODEGEN && strstr(e.msg, "store to input A"));
    arena_free(a);
    sched_free(s);
    ir_program_free(p);
}

/* Every example with its hand schedule and the default one lowers, passes
 * the verifier, and the hot loops carry no guard where factors divide. */
static void test_examples(void)
{
    static const char *const names[] = {"matmul",  "matmul_bias_relu", "batch_matmul",
                                        "conv2d",  "depthwise_conv",   "blur",
                                        "softmax", "layernorm",        "transpose"};
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/examples/%s.yaml", root, names[i]);
        Program *p = NULL;
        kiln_error e;
        kiln_error_clear(&e);
        if (ir_parse_yaml_file(path, &p, &e) != KILN_OK) {
            CHECKF(0, "%s: %s", path, e.msg);
            continue;
        }
        snprintf(path, sizeof path, "%s/examples/%s.sched", root, names[i]);
        char *text = t_read_file(path);
        for (int k = 0; k < 2; k++) {
            Schedule *s = k ? sched_default(p) : sched_new(p);
            if (!k && text) {
                kiln_error_clear(&e);
                CHECKF(sched_apply_text(s, text, path, &e) == KILN_OK, "%s:%d:%d: %s", path, e.line,
                       e.col, e.msg);
            }
            Arena *a = arena_new();
            LFunc *f = NULL;
            kiln_error_clear(&e);
            CHECKF(lower_schedule(s, a, NULL, &f, &e) == KILN_OK, "%s: %s", names[i], e.msg);
            if (f && !k && !strcmp(names[i], "matmul")) {
                char *t = lfunc_to_text(f);
                CHECKF(!strstr(t, "if "), "matmul 1024^3 needs no guards:\n%s", t);
                free(t);
            }
            arena_free(a);
            sched_free(s);
        }
        free(text);
        ir_program_free(p);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1)
        root = argv[1];
    if (argc > 2)
        build = argv[2];
    test_goldens();
    test_passes();
    test_examples();
    return t_done("test_lower_golden");
}
