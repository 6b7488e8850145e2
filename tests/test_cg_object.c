/* tests/test_cg_object.c: ahead-of-time output.  Two different kernels
 * (parallel + vectorized; parallel with a heap local and a reduction) are
 * emitted to two .o files plus headers; a small C program includes both
 * headers, links with `cc main.c a.o b.o -lm -lpthread` only, checks the
 * results against its own loops, and runs with several thread counts.
 * Also: each object exports only its kernel; IR/asm text for `kiln show`. */
#include <stdio.h>
#include <sys/stat.h>

#include "test_cg_util.h"

enum { N = 1000, VW = 16, NO = (N + VW - 1) / VW, R = 37, C = 3000 };

/* Z[i] = 2 * X[i] + Y[i] (f32): parallel over blocks of 16, vectorized. */
static LFunc *saxpy(void)
{
    Var *io = VAR("io", NO), *ii = VAR("ii", VW);
    Expr *ix = ADD(MUL(V(io), I(VW)), V(ii));
    Expr *val = ADD(MUL(CF(DT_F32, 2), LD(DT_F32, 0, ix)), LD(DT_F32, 1, ix));
    LStmt *body = FOR(io, LOOP_PARALLEL,
                      FOR(ii, LOOP_VECTORIZED, IF(BIN(EXPR_LT, ix, I(N)), ST(2, ix, val), NULL)));
    LBuf bufs[] = {BUF("X", DT_F32, T_INPUT, N), BUF("Y", DT_F32, T_INPUT, N),
                   BUF("Z", DT_F32, T_OUTPUT, N)};
    return FUNC("saxpy_par", 3, 3, bufs, body);
}

/* S[i] = sum_j (M[i, j] * 0.5) through a heap local T (24 KB), parallel
 * over rows; also Cnt[i] = i64(S[i]). */
static LFunc *rowsum(void)
{
    Var *i = VAR("i", R), *j = VAR("j", C), *k = VAR("k", C);
    Expr *m = LD(DT_F64, 0, ADD(MUL(V(i), I(C)), V(j)));
    LStmt *row = ls_alloc(
        A, 3,
        BLOCK(4, FOR(j, LOOP_VECTORIZED, ST(3, V(j), MUL(m, CF(DT_F64, 0.5)))),
              ST(1, V(i), CF(DT_F64, 0)),
              FOR(k, LOOP_SERIAL, ST(1, V(i), ADD(LD(DT_F64, 1, V(i)), LD(DT_F64, 3, V(k))))),
              ST(2, V(i), CAST(DT_I64, LD(DT_F64, 1, V(i))))));
    LBuf bufs[] = {BUF("M", DT_F64, T_INPUT, R * C), BUF("S", DT_F64, T_OUTPUT, R),
                   BUF("Cnt", DT_I64, T_OUTPUT, R), BUF("T", DT_F64, T_LOCAL, C)};
    bufs[0].ndim = 2;
    bufs[0].dims[0] = R;
    bufs[0].dims[1] = C;
    return FUNC("rowsum", 3, 4, bufs, FOR(i, LOOP_PARALLEL, row));
}

static const char *main_c =
    "#include \"saxpy_par.h\"\n"
    "#include \"rowsum.h\"\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <math.h>\n"
    "int main(void) {\n"
    "    enum { N = 1000, R = 37, C = 3000 };\n"
    "    float *x = malloc(N * 4), *y = malloc(N * 4), *z = malloc(N * 4);\n"
    "    double *m = malloc(sizeof(double) * R * C), s[R];\n"
    "    int64_t cnt[R];\n"
    "    for (int i = 0; i < N; i++) { x[i] = (float)i * 0.25f; y[i] = (float)(i % 7); z[i] = -1; "
    "}\n"
    "    for (int i = 0; i < R * C; i++) m[i] = (double)(i % 101) - 50.0 + i * 1e-3;\n"
    "    int rc = saxpy_par(x, y, z);\n"
    "    int bad = 0;\n"
    "    for (int i = 0; i < N; i++) bad += z[i] != 2.0f * x[i] + y[i];\n"
    "    printf(\"saxpy rc=%d bad=%d\\n\", rc, bad);\n"
    "    rc = rowsum(m, s, cnt);\n"
    "    int bad2 = 0;\n"
    "    for (int i = 0; i < R; i++) {\n"
    "        double ref = 0;\n"
    "        for (int j = 0; j < C; j++) ref = ref + m[i * C + j] * 0.5;\n"
    "        bad2 += s[i] != ref || cnt[i] != (int64_t)ref;\n"
    "    }\n"
    "    printf(\"rowsum rc=%d bad=%d\\n\", rc, bad2);\n"
    "    free(x); free(y); free(z); free(m);\n"
    "    return bad || bad2;\n"
    "}\n";

static void header_program(Program *p, Tensor *t, Stmt *st, const char *name, int nin, int nout)
{
    memset(p, 0, sizeof *p);
    p->name = name;
    p->file = "<test>";
    p->tensors = t;
    p->ntensors = nin + nout;
    p->ninputs = nin;
    p->noutputs = nout;
    p->stmts = st;
    p->nstmts = 1;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

int main(int argc, char **argv)
{
    A = arena_new();
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/cg_object_tmp", argc > 2 ? argv[2] : "/tmp");
    mkdir(dir, 0755);
    char path[1200];
    kiln_error e = {0};

    LFunc *fa = saxpy(), *fb = rowsum();
    snprintf(path, sizeof path, "%s/a.o", dir);
    CHECKF(cg_emit_object(fa, path, &e) == KILN_OK, "%s", e.msg);
    snprintf(path, sizeof path, "%s/b.o", dir);
    CHECKF(cg_emit_object(fb, path, &e) == KILN_OK, "%s", e.msg);

    /* headers */
    Tensor ta[3] = {{.name = "X", .dt = DT_F32, .kind = T_INPUT, .ndim = 1, .dims = {N}},
                    {.name = "Y", .dt = DT_F32, .kind = T_INPUT, .ndim = 1, .dims = {N}},
                    {.name = "Z", .dt = DT_F32, .kind = T_OUTPUT, .ndim = 1, .dims = {N}}};
    Tensor tb[3] = {{.name = "M", .dt = DT_F64, .kind = T_INPUT, .ndim = 2, .dims = {R, C}},
                    {.name = "S", .dt = DT_F64, .kind = T_OUTPUT, .ndim = 1, .dims = {R}},
                    {.name = "Cnt", .dt = DT_I64, .kind = T_OUTPUT, .ndim = 1, .dims = {R}}};
    Stmt sa = {.text = "Z[i] = 2 * X[i] + Y[i]"}, sb = {.text = "S[i] += M[i, j] * 0.5 /* */"};
    Program pa, pb;
    header_program(&pa, ta, &sa, "saxpy_par", 2, 1);
    header_program(&pb, tb, &sb, "rowsum", 1, 2);
    snprintf(path, sizeof path, "%s/saxpy_par.h", dir);
    CHECKF(cg_emit_header(&pa, path, &e) == KILN_OK, "%s", e.msg);
    char *h = t_read_file(path);
    CHECK(h && strstr(h, "int saxpy_par(const float *X, const float *Y, float *Z);"));
    CHECK(h && strstr(h, "#include <stdint.h>") && strstr(h, "#ifndef KILN_SAXPY_PAR_H"));
    CHECK(h && strstr(h, "extern \"C\"") && strstr(h, "X          f32[1000], input"));
    free(h);
    snprintf(path, sizeof path, "%s/rowsum.h", dir);
    CHECKF(cg_emit_header(&pb, path, &e) == KILN_OK, "%s", e.msg);
    h = t_read_file(path);
    CHECK(h && strstr(h, "int rowsum(const double *M, double *S, int64_t *Cnt);"));
    CHECK(h && strstr(h, "f64[37][3000], input"));
    CHECK(h && strstr(h, "0.5 / * * /")); /* comment delimiters in the statement defused */
    free(h);

    /* only the kernels are exported */
    CHECK(sh("nm -g --defined-only %s/a.o > %s/a.syms && nm -g --defined-only %s/b.o > %s/b.syms",
             dir, dir, dir, dir) == 0);
    snprintf(path, sizeof path, "%s/a.syms", dir);
    char *syms = t_read_file(path);
    CHECKF(syms && strstr(syms, " T saxpy_par\n") && strchr(syms, '\n') == strrchr(syms, '\n'),
           "a.o exports: %s", syms ? syms : "?");
    free(syms);
    snprintf(path, sizeof path, "%s/b.syms", dir);
    syms = t_read_file(path);
    CHECKF(syms && strstr(syms, " T rowsum\n") && strchr(syms, '\n') == strrchr(syms, '\n'),
           "b.o exports: %s", syms ? syms : "?");
    free(syms);

    /* link and run: cc main.c a.o b.o -lm -lpthread */
    snprintf(path, sizeof path, "%s/main.c", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(main_c, f);
        fclose(f);
    }
    CHECK(sh("cd %s && cc -std=c11 -Wall -Wextra -Werror -o prog main.c a.o b.o -lm -lpthread",
             dir) == 0);
    CHECK(sh("cd %s && ./prog > out1.txt && KILN_NUM_THREADS=1 ./prog > out2.txt && "
             "KILN_NUM_THREADS=5 ./prog > out3.txt && KILN_NUM_THREADS=-2 ./prog > out4.txt",
             dir) == 0);
    for (int i = 1; i <= 4; i++) {
        snprintf(path, sizeof path, "%s/out%d.txt", dir, i);
        char *out = t_read_file(path);
        CHECKF(out && strstr(out, "saxpy rc=0 bad=0") && strstr(out, "rowsum rc=0 bad=0"),
               "run %d printed: %s", i, out ? out : "(nothing)");
        free(out);
    }
    /* the header also compiles as C++ when a C++ compiler is around */
    if (system("command -v c++ > /dev/null 2>&1") == 0)
        CHECK(sh("cd %s && printf '#include \"saxpy_par.h\"\\n#include \"rowsum.h\"\\n' | "
                 "c++ -fsyntax-only -Wall -Werror -x c++ -",
                 dir) == 0);

    /* write errors are reported, not fatal */
    kiln_error_clear(&e);
    CHECK(cg_emit_object(fa, "/nonexistent-dir/x.o", &e) == KILN_EIO);
    CHECK(e.msg[0] != 0);
    kiln_error_clear(&e);
    CHECK(cg_emit_header(&pa, "/nonexistent-dir/x.h", &e) == KILN_EIO);

    /* IR and assembly text */
    char *txt = NULL;
    CHECK(cg_llvm_text(fa, CG_OBJECT, false, &txt, &e) == KILN_OK);
    CHECK(txt && strstr(txt, "define i32 @saxpy_par(") && strstr(txt, "@kiln.parallel_for"));
    CHECK(txt && strstr(txt, "\"prefer-vector-width\"=\"512\"") &&
          !strstr(txt, "min-legal-vector-width"));
    free(txt);
    CHECK(cg_llvm_text(fa, CG_JIT, true, &txt, &e) == KILN_OK);
    CHECK(txt && strstr(txt, "@kiln_rt_parallel_for") && strstr(txt, "@saxpy_par__packed"));
    free(txt);
    CHECK(cg_asm_text(fb, &txt, &e) == KILN_OK);
    CHECK(txt && strstr(txt, "rowsum:") && strstr(txt, "aligned_alloc"));
    free(txt);
    char *cpu = cg_host_cpu();
    CHECK(cpu && strlen(cpu) > 2);
    printf("host: %.60s...\n", cpu ? cpu : "?");
    free(cpu);

    arena_free(A);
    return t_done("test_cg_object");
}
