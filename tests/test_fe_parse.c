/* tests/test_fe_parse.c: valid (some tricky) compute definitions must parse,
 * with the right tensors, variables, extents and types; the builder API;
 * flops; canonical text. */
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "testlib.h"

static Program *parse(const char *text)
{
    Program *p = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    if (ir_parse_yaml_string(text, strlen(text), "t.yaml", &p, &e)) {
        char buf[1024];
        fprintf(stderr, "unexpected error: %s\n", kiln_error_format(&e, buf, sizeof buf));
        return NULL;
    }
    return p;
}

/* Parses text that must fail; returns the error. */
static kiln_error fail(const char *text)
{
    Program *p = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    int rc = ir_parse_yaml_string(text, strlen(text), "t.yaml", &p, &e);
    CHECKF(rc != KILN_OK && p == NULL, "should fail: %s", text);
    ir_program_free(p);
    return e;
}

static bool has_kind(const Expr *e, ExprKind k, DType dt)
{
    if (!e)
        return false;
    if (e->kind == k && e->dt == dt)
        return true;
    if (e->kind == EXPR_LOAD) {
        for (int i = 0; i < e->u.load.n; i++)
            if (has_kind(e->u.load.idx[i], k, dt))
                return true;
        return false;
    }
    if (e->kind == EXPR_INT || e->kind == EXPR_FLOAT || e->kind == EXPR_VAR)
        return false;
    return has_kind(e->u.op.a, k, dt) || has_kind(e->u.op.b, k, dt) || has_kind(e->u.op.c, k, dt);
}

static void test_matmul(void)
{
    Program *p = parse("name: matmul_bias_relu        # identifier\n"
                       "params: {M: 64, N: 32, K: 16}   # constants\n"
                       "inputs:\n"
                       "  A: [f32, M, K]\n"
                       "  B: [f32, K, N]\n"
                       "  bias: [f32, N]\n"
                       "outputs:\n"
                       "  D: [f32, M, N]\n"
                       "temps:\n"
                       "  C: [f32, M, N]\n"
                       "compute:\n"
                       "  - C[i, j] += A[i, k] * B[k, j]\n"
                       "  - D[i, j] = max(C[i, j] + bias[j], 0.0)\n");
    CHECK(p);
    if (!p)
        return;
    CHECK(!strcmp(p->name, "matmul_bias_relu"));
    CHECK(!strcmp(p->file, "t.yaml"));
    CHECK(p->ntensors == 5 && p->ninputs == 3 && p->noutputs == 1);
    CHECK(ir_find_tensor(p, "A") == 0 && ir_find_tensor(p, "bias") == 2);
    CHECK(ir_find_tensor(p, "D") == 3 && ir_find_tensor(p, "C") == 4);
    CHECK(ir_find_tensor(p, "nope") == -1);
    CHECK(p->tensors[0].dims[0] == 64 && p->tensors[0].dims[1] == 16);
    CHECK(p->tensors[0].loc.line == 4 && p->tensors[0].loc.col == 3);
    CHECK(p->tensors[0].writer == -1 && p->tensors[4].writer == 0 && p->tensors[3].writer == 1);
    CHECK(p->nparams == 3 && p->params[1].value == 32);
    CHECK(p->nstmts == 2);
    const Stmt *s = &p->stmts[0];
    CHECK(s->out == 4 && s->red == RED_SUM && s->nvars == 3 && s->nspatial == 2);
    CHECK(!strcmp(s->vars[2]->name, "k") && s->vars[2]->reduce && s->vars[2]->extent == 16);
    CHECK(s->vars[0]->extent == 64 && s->vars[1]->extent == 32 && !s->vars[0]->reduce);
    CHECK(s->loc.line == 12 && s->loc.col == 5);
    CHECK(!strcmp(s->text, "C[i, j] += A[i, k] * B[k, j]"));
    CHECK(s->rhs->kind == EXPR_MUL && s->rhs->dt == DT_F32);
    CHECK(s->rhs->loc.line == 12 && s->rhs->loc.col == 16);
    const Stmt *s2 = &p->stmts[1];
    CHECK(s2->red == RED_NONE && s2->nvars == 2);
    CHECK(s2->rhs->kind == EXPR_MAX && s2->rhs->u.op.b->kind == EXPR_FLOAT &&
          s2->rhs->u.op.b->dt == DT_F32);
    /* 2 per multiply-accumulate, + and max per output element */
    CHECK(ir_program_flops(p) == 64.0 * 32 * 16 * 2 + 64.0 * 32 * 2);
    ir_program_free(p);
}

static void test_conv_padding(void)
{
    Program *p =
        parse("name: conv2d\n"
              "params: {C: 3, F: 4, H: 12, R: 3}\n"
              "inputs:\n"
              "  I: [f32, C, H, H]\n"
              "  W: [f32, F, C, R, R]\n"
              "outputs:\n"
              "  O: [f32, F, H, H]\n"
              "compute:\n"
              "  - O[f, y, x] += select(y + r - 1 >= 0 && y + r - 1 < H && x + s - 1 >= 0 && "
              "x + s - 1 < H, I[c, y + r - 1, x + s - 1], 0.0) * W[f, c, r, s]\n");
    CHECK(p);
    if (p) {
        const Stmt *s = &p->stmts[0];
        CHECK(s->nvars == 6 && s->nspatial == 3);
        /* reduction variables in order of first appearance */
        CHECK(!strcmp(s->vars[3]->name, "r") && !strcmp(s->vars[4]->name, "s") &&
              !strcmp(s->vars[5]->name, "c"));
        CHECK(s->vars[3]->extent == 3 && s->vars[5]->extent == 3);
        /* index arithmetic and the guard are not counted */
        CHECK(ir_program_flops(p) == 4.0 * 12 * 12 * 3 * 3 * 3 * 2);
        ir_program_free(p);
    }
    /* guards in other spellings: shifted constants, negated branches, != */
    p = parse("name: pads\n"
              "inputs: {A: [f64, 16]}\n"
              "outputs: {B: [f64, 18], C: [f64, 16], D: [f64, 16], E: [f64, 16]}\n"
              "compute:\n"
              "  - B[i] = select(i >= 1 && i <= 16, A[i - 1], 0.0)\n"
              "  - C[i] = select(i < 1, 0.0, A[i - 1])\n"
              "  - D[i] = select(i != 0, A[i - 1], A[i]) + select(!(i >= 15), A[i + 1], 0.0)\n"
              "  - E[i] = select(0 < i || i > 100, A[i - 1], 1.0) + "
              "select(i - 1 < 0 || i - 1 >= 16, 0.0, A[i - 1])\n");
    CHECK(p);
    ir_program_free(p);
}

static void test_scalar_ranges_casts(void)
{
    Program *p = parse("# a comment first\n"
                       "name: dot\n"
                       "inputs:\n"
                       "  A: [f64, 100]\n"
                       "  B: [f64, 100]\n"
                       "outputs:\n"
                       "  s: [f64]     # a scalar\n"
                       "compute:\n"
                       "  - 's[] += A[i] * B[i]'\n");
    CHECK(p);
    if (p) {
        CHECK(p->tensors[2].ndim == 0 && tensor_numel(&p->tensors[2]) == 1);
        CHECK(p->stmts[0].nspatial == 0 && p->stmts[0].nvars == 1);
        CHECK(p->stmts[0].vars[0]->extent == 100);
        CHECK(p->stmts[0].loc.line == 9 && p->stmts[0].loc.col == 6);
        ir_program_free(p);
    }
    p = parse("name: conv1d\n"
              "inputs: {I: [f32, 66], W: [f32, 3]}\n"
              "outputs: {O: [f32, 64], P: [f32, 64]}\n"
              "compute:\n"
              "  - {stmt: \"O[y] += I[y + r] * W[r]\", ranges: {r: 3}}\n"
              "  - stmt: P[y] max= I[y + 2 * q]\n"
              "    ranges:\n"
              "      q: 2\n");
    CHECK(p);
    if (p) {
        CHECK(p->stmts[0].vars[1]->extent == 3 && p->stmts[0].red == RED_SUM);
        CHECK(p->stmts[1].vars[1]->extent == 2 && p->stmts[1].red == RED_MAX);
        ir_program_free(p);
    }
    /* every function and cast, literals taking the other operand's type */
    p = parse(
        "name: funcs\n"
        "params: {N: 8}\n"
        "inputs: {A: [f32, 8], B: [f64, 8], L: [i64, 8], Q: [i32, 8]}\n"
        "outputs: {X: [f32, 8], Y: [f64, 8], Z: [i32, 8], V: [i64, 8], S: [f64]}\n"
        "compute:\n"
        "  - X[i] = f32(sqrt(abs(B[i]))) + exp(A[i]) * log(A[i] + 2) - tanh(A[i]) / "
        "sigmoid(-A[i]) + min(A[i], 0.5) + f32(i) / N + f32(Q[i]) + 1e-5\n"
        "  - Y[i] = select(A[i] > 0.0 || !(L[i] == 3), f64(A[i]), -B[i] * 2.) + f64(L[i] % 3)\n"
        "  - Z[i] = Q[i] * 2 + i - i32(L[i] / 4) + max(Q[i], -7) + i32(2.7)\n"
        "  - V[i] *= L[i] + i * N + i64(Q[i])\n"
        "  - S[] min= B[i] - f64(i)\n");
    CHECK(p);
    if (p) {
        const Stmt *z = &p->stmts[2];
        CHECK(z->rhs->dt == DT_I32);
        /* `i` next to an i32 value becomes i32 through a cast */
        CHECK(has_kind(z->rhs, EXPR_CAST, DT_I32));
        CHECK(!has_kind(p->stmts[0].rhs, EXPR_INT, DT_I64)); /* all literals became f32 */
        CHECK(has_kind(p->stmts[0].rhs, EXPR_FLOAT, DT_F32));
        CHECK(p->stmts[3].red == RED_PROD && p->stmts[4].red == RED_MIN);
        ir_program_free(p);
    }
}

static void test_misc_valid(void)
{
    /* flow style, quoting styles, a folded multi-line plain scalar, a
     * gather clamped into range, strided and modular indices, an output
     * read by a later statement, `max =` with a space. */
    Program *p = parse("{name: flow, inputs: {A: [f32, 64]}, outputs: {B: [f32, 32]},\n"
                       " compute: [\"B[i] = A[2 * i + 1] + A[i / 2] + A[63 - i % 4]\"]}\n");
    CHECK(p);
    ir_program_free(p);
    p = parse("name: misc\n"
              "inputs: {A: [f32, 64], idx: [i32, 16]}\n"
              "outputs: {B: [f32, 32], G: [f32, 16], H: [f32, 16], M: [f32, 4]}\n"
              "compute:\n"
              "  - B[i] = A[2 * i + 1] + A[i / 2]\n"
              "      + A[63 - i % 4]\n"
              "  - 'G[i] = A[min(max(idx[i], 0), 63)]'\n"
              "  - H[i] = B[i] * 2\n"
              "  - {stmt: \"M[m] max = B[m * 8 + e]\", ranges: {e: 8}}\n");
    CHECK(p);
    if (p) {
        CHECK(!strcmp(p->stmts[0].text, "B[i] = A[2 * i + 1] + A[i / 2] + A[63 - i % 4]"));
        CHECK(p->stmts[3].red == RED_MAX);
        ir_program_free(p);
    }
    /* nesting just under the limit is fine */
    char big[2048];
    int n = snprintf(big, sizeof big,
                     "name: deep\ninputs: {A: [f32, 4]}\noutputs: {B: [f32, 4]}\n"
                     "compute:\n  - B[i] = ");
    for (int i = 0; i < 150; i++)
        big[n++] = '(';
    n += snprintf(big + n, sizeof big - (size_t)n, "A[i]");
    for (int i = 0; i < 150; i++)
        big[n++] = ')';
    big[n++] = '\n';
    big[n] = 0;
    p = parse(big);
    CHECK(p);
    ir_program_free(p);
}

static void test_errors_inside_quotes(void)
{
    /* double-quoted scalar: +1 for the quote */
    kiln_error e = fail("name: q\ninputs: {A: [f32, 4]}\noutputs: {B: [f32, 4]}\n"
                        "compute:\n  - \"B[i] = A[i] + Z[i]\"\n");
    CHECK(e.line == 5 && e.col == 20 && strstr(e.msg, "unknown tensor 'Z'"));
    /* flow sequence item */
    e = fail("name: q\ninputs: {A: [f32, 4]}\noutputs: {B: [f32, 4]}\n"
             "compute: ['B[i] = A[i] + q']\n");
    CHECK(e.line == 4 && e.col == 26 && strstr(e.msg, "unknown variable 'q'"));
    /* a compound index of a reduction variable in a ranges-less statement */
    e = fail("name: q\ninputs: {A: [f32, 4]}\noutputs: {B: [f32]}\ncompute: ['B[] += A[2*r]']\n");
    CHECK(e.line == 4 && e.col == 23 && strstr(e.msg, "cannot infer the extent of 'r'"));
    /* explicit ranges override inference, but the bounds still hold */
    e = fail("name: q\ninputs: {A: [f32, 4]}\noutputs: {B: [f32]}\n"
             "compute: [{stmt: 'B[] += A[r]', ranges: {r: 5}}]\n");
    CHECK(e.line == 4 && e.col == 28 && strstr(e.msg, "ranges over [0, 4] but the dim is 4"));
    e = fail("name: q\ninputs: {A: [f32, 4]}\noutputs: {B: [f32, 4]}\n"
             "compute: ['B[i] = A[i] + A[i + i * i]']\n");
    CHECK(e.line == 4 && e.col == 28 && strstr(e.msg, "index 0 of 'A' ranges over [0, 12]"));
    /* a file that does not exist */
    Program *p;
    kiln_error_clear(&e);
    CHECK(ir_parse_yaml_file("/nonexistent/x.yaml", &p, &e) == KILN_EIO && p == NULL);
    CHECK(strstr(e.msg, "cannot open") && !strcmp(e.file, "/nonexistent/x.yaml"));
    /* a NUL byte inside the text is not silently cut off */
    static const char nul[] = "name: q\ninputs: {A: [f32, 4]}\noutputs: {B: [f32, 4]}\n"
                              "compute: [\"B[i] = A[i]\\0 + nonsense\"]\n";
    kiln_error_clear(&e);
    CHECK(ir_parse_yaml_string(nul, sizeof nul - 1, NULL, &p, &e) != KILN_OK);
    CHECK(!strcmp(e.file, "<string>") && strstr(e.msg, "NUL"));
}

static void test_builder(void)
{
    kiln_error e;
    kiln_error_clear(&e);
    Program *p = ir_program_new("api", NULL);
    CHECK(p && !strcmp(p->file, "<string>"));
    Loc nl = {0, 0};
    CHECK(ir_program_add_param(p, "N", 16, nl, &e) == KILN_OK);
    const char *d2[] = {"N", "8"};
    const char *d1[] = {"8"};
    /* out of kind order: the builder keeps inputs, outputs, temps grouped */
    CHECK(ir_program_add_tensor(p, T_OUTPUT, "Out", DT_F32, 1, d1, NULL, nl, &e) == KILN_OK);
    CHECK(ir_program_add_tensor(p, T_TEMP, "T", DT_F32, 1, d1, NULL, nl, &e) == KILN_OK);
    CHECK(ir_program_add_tensor(p, T_INPUT, "X", DT_F32, 2, d2, NULL, nl, &e) == KILN_OK);
    CHECK(p->ntensors == 3 && ir_find_tensor(p, "X") == 0 && ir_find_tensor(p, "Out") == 1 &&
          ir_find_tensor(p, "T") == 2);
    CHECK(p->tensors[0].dims[0] == 16);
    /* errors from the builder name "<string>" */
    CHECK(ir_program_add_tensor(p, T_INPUT, "X", DT_F32, 1, d1, NULL, nl, &e) == KILN_ESEMANTIC);
    CHECK(!strcmp(e.file, "<string>") && strstr(e.msg, "duplicate name 'X'"));
    kiln_error_clear(&e);
    const char *bad[] = {"M"};
    CHECK(ir_program_add_tensor(p, T_INPUT, "Y", DT_F32, 1, bad, NULL, nl, &e) == KILN_ESEMANTIC);
    CHECK(strstr(e.msg, "unknown param 'M'"));
    kiln_error_clear(&e);
    CHECK(ir_program_add_tensor(p, T_INPUT, "exp", DT_F32, 1, d1, NULL, nl, &e) != KILN_OK);
    kiln_error_clear(&e);
    CHECK(ir_program_add_stmt(p, "Out[i] = T[i]", nl, 0, NULL, NULL, NULL, &e) == KILN_ESEMANTIC);
    CHECK(strstr(e.msg, "read before") && e.col == 10); /* columns from 1 when no place is given */
    kiln_error_clear(&e);
    const char *rn[] = {"n"};
    const int64_t re[] = {16};
    CHECK(ir_program_add_stmt(p, "T[j] += X[n, j]", nl, 1, rn, re, NULL, &e) == KILN_OK);
    CHECK(ir_program_add_stmt(p, "Out[i] = T[i] / N", nl, 0, NULL, NULL, NULL, &e) == KILN_OK);
    CHECK(ir_program_add_tensor(p, T_INPUT, "Z", DT_F32, 1, d1, NULL, nl, &e) != KILN_OK);
    kiln_error_clear(&e);
    CHECK(ir_program_finish(p, &e) == KILN_OK);
    CHECK(ir_program_finish(p, &e) != KILN_OK);
    CHECK(ir_program_flops(p) == 16.0 * 8 + 8.0);
    ir_program_free(p);
    ir_program_free(NULL);

    kiln_error_clear(&e);
    p = ir_program_new("api2", "mine.yaml");
    CHECK(ir_program_add_tensor(p, T_OUTPUT, "O", DT_F32, 0, NULL, NULL, (Loc){3, 4}, &e) == 0);
    CHECK(ir_program_finish(p, &e) == KILN_ESEMANTIC && e.line == 3 && e.col == 4 &&
          !strcmp(e.file, "mine.yaml") && strstr(e.msg, "never written"));
    ir_program_free(p);

    kiln_error_clear(&e);
    CHECK(ir_check_name("name", "ok_1", "f", nl, &e) == KILN_OK);
    CHECK(ir_check_name("name", "1abc", "f", nl, &e) != KILN_OK);
    CHECK(!ir_is_ident("") && !ir_is_ident("a-b") && ir_is_ident("_a9"));
}

static void test_canonical(void)
{
    const char *a = "name: k\nparams: {N: 8}\ninputs: {A: [f32, N]}\noutputs: {B: [f32, N]}\n"
                    "compute: ['B[i] = A[i] * 2 + 0.1']\n";
    const char *b = "name: k\n# spelled differently\ninputs:\n  A: [f32, 8]\noutputs:\n"
                    "  B: [f32, 8]\ncompute:\n  - B[i]=(A[i]*2.0)+(0.1)\n";
    const char *c = "name: k\ninputs: {A: [f32, 8]}\noutputs: {B: [f32, 8]}\n"
                    "compute: ['B[i] = A[i] * 2 + 0.2']\n";
    Program *pa = parse(a), *pb = parse(b), *pc = parse(c);
    CHECK(pa && pb && pc);
    if (pa && pb && pc) {
        char *ca = ir_program_canonical(pa), *cb = ir_program_canonical(pb),
             *cc = ir_program_canonical(pc), *ca2 = ir_program_canonical(pa);
        CHECK(ca && cb && cc);
        CHECK(!strcmp(ca, cb));
        CHECK(strcmp(ca, cc) != 0);
        CHECK(!strcmp(ca, ca2));
        CHECK(strstr(ca, "name k") && strstr(ca, "input A f32 [8]"));
        free(ca);
        free(cb);
        free(cc);
        free(ca2);
    }
    ir_program_free(pa);
    ir_program_free(pb);
    ir_program_free(pc);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_matmul();
    test_conv_padding();
    test_scalar_ranges_casts();
    test_misc_valid();
    test_errors_inside_quotes();
    test_builder();
    test_canonical();
    return t_done("test_fe_parse");
}
