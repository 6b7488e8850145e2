/* tests/test_cg_basic.c: codegen semantics on hand-built flat LFuncs,
 * checked against plain C loops: vectorized loops (contiguous, masked,
 * gathers, scatters, odd widths, wide chunked loops), lazy select and
 * padding without out-of-bounds access (guard pages), in-order reductions
 * in vector bodies, floor div/mod, saturating casts, math functions,
 * min/max semantics, local buffers, parallel loops, and error paths. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>

#include "test_cg_util.h"

/* The failed-allocation test asks for 16 TiB: under ASan that must give
 * NULL (ENOMEM) like libc does, not a fatal report. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

static bool feq(float a, float b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

static bool deq(double a, double b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* Does f's unoptimised IR contain needle? (checks which path codegen took) */
static bool ir_has(const LFunc *f, const char *needle)
{
    char *txt = NULL;
    kiln_error e = {0};
    if (cg_llvm_text(f, CG_JIT, false, &txt, &e) != KILN_OK) {
        fprintf(stderr, "cg_llvm_text: %s\n", e.msg);
        return false;
    }
    bool r = strstr(txt, needle) != NULL;
    free(txt);
    return r;
}

static bool close_f(float a, float b, float tol)
{
    return fabsf(a - b) <= tol * (1.0f + fabsf(b));
}

/* C = A + B, vectorized by 16 inside a serial loop. */
static void test_add16(void)
{
    enum { N = 1024 };
    Var *io = VAR("io", N / 16), *ii = VAR("ii", 16);
    Expr *ix = ADD(MUL(V(io), I(16)), V(ii));
    LStmt *body =
        FOR(io, LOOP_SERIAL,
            FOR(ii, LOOP_VECTORIZED, ST(2, ix, ADD(LD(DT_F32, 0, ix), LD(DT_F32, 1, ix)))));
    LBuf bufs[] = {BUF("A", DT_F32, T_INPUT, N), BUF("B", DT_F32, T_INPUT, N),
                   BUF("C", DT_F32, T_OUTPUT, N)};
    LFunc *f = FUNC("add16", 3, 3, bufs, body);
    CHECK(ir_has(f, "load <16 x float>, ptr %") && ir_has(f, "store <16 x float>"));
    CHECK(!ir_has(f, "align 64"));
    CgKernel *k = compile(f);
    float *a = galloc(N * 4, true), *b = galloc(N * 4, true), *c = galloc(N * 4, true);
    uint64_t s = 1;
    for (int i = 0; i < N; i++)
        a[i] = rnd_f(&s), b[i] = rnd_f(&s);
    CHECK(run(k, 3, a, b, c) == 0);
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += !feq(c[i], a[i] + b[i]);
    CHECKF(bad == 0, "add16: %d wrong", bad);
    /* the ABI entry point too */
    if (k) {
        int (*fn)(const float *, const float *, float *) =
            (int (*)(const float *, const float *, float *))cg_kernel_fn(k);
        memset(c, 0, N * 4);
        CHECK(fn(a, b, c) == 0);
        CHECK(feq(c[N - 1], a[N - 1] + b[N - 1]));
        CHECK(cg_kernel_compile_ms(k) > 0);
    }
    cg_kernel_free(k);
}

/* N = 100 split by 7 (odd width): the guard becomes a lane mask; buffers
 * end exactly at a guard page.  Serial and parallel outer loop. */
static void test_odd_width_guard(void)
{
    enum { N = 100, W = 7, NO = (N + W - 1) / W };
    for (int par = 0; par < 2; par++) {
        Var *jo = VAR("jo", NO), *ji = VAR("ji", W);
        Expr *ix = ADD(MUL(V(jo), I(W)), V(ji));
        Expr *val = ADD(MUL(LD(DT_F32, 0, ix), CF(DT_F32, 2.0)), LD(DT_F32, 1, ix));
        LStmt *body =
            FOR(jo, par ? LOOP_PARALLEL : LOOP_SERIAL,
                FOR(ji, LOOP_VECTORIZED, IF(BIN(EXPR_LT, ix, I(N)), ST(2, ix, val), NULL)));
        LBuf bufs[] = {BUF("A", DT_F32, T_INPUT, N), BUF("B", DT_F32, T_INPUT, N),
                       BUF("C", DT_F32, T_OUTPUT, N)};
        LFunc *f = FUNC("odd7", 3, 3, bufs, body);
        CHECK(ir_has(f, "@llvm.masked.load.v7f32") && ir_has(f, "@llvm.masked.store.v7f32"));
        CgKernel *k = compile(f);
        float *a = galloc(N * 4, true), *b = galloc(N * 4, true), *c = galloc(N * 4, true);
        uint64_t s = 2;
        for (int i = 0; i < N; i++)
            a[i] = rnd_f(&s), b[i] = rnd_f(&s);
        CHECK(run(k, 3, a, b, c) == 0);
        int bad = 0;
        for (int i = 0; i < N; i++)
            bad += !close_f(c[i], a[i] * 2.0f + b[i], 1e-6f);
        CHECKF(bad == 0, "odd7 (par=%d): %d wrong", par, bad);
        cg_kernel_free(k);
    }
}

/* Number of gathers whose index and destination registers share an id
 * (#UD on x86). */
static int bad_gathers(const char *as)
{
    int bad = 0;
    for (const char *l = as; l && (l = strstr(l, "gather")); l++) {
        const char *eol = strchr(l, '\n'), *open = strchr(l, '('), *close = strchr(l, ')');
        if (!eol || !open || !close || close > eol)
            continue;
        const char *ix = strstr(open, "mm"), *dst = strstr(close, "mm");
        if (ix && dst && ix < close && dst < eol && atoi(ix + 2) == atoi(dst + 2))
            bad++;
    }
    return bad;
}

/* 42 lanes, non-affine indices, loop-invariant gather addresses (softmax's
 * last stage after fuse + vectorize): LLVM widens odd-width gathers with
 * undefined index lanes, which once produced a SIGILL; codegen pads them
 * to a power of two. */
static void test_odd_width_gather(void)
{
    enum { M = 7, N = 33, J1 = 6, W = 42 };
    Var *j1 = VAR("j1", J1), *v = VAR("j0i", W);
    Expr *col = ADD(MUL(BIN(EXPR_DIV, V(v), I(7)), I(J1)), V(j1));
    Expr *ix = ADD(MUL(BIN(EXPR_MOD, V(v), I(7)), I(N)), col);
    Expr *val = BIN(EXPR_DIV, LD(DT_F32, 0, ix), LD(DT_F32, 1, BIN(EXPR_MOD, V(v), I(7))));
    LStmt *body = FOR(j1, LOOP_SERIAL,
                      FOR(v, LOOP_VECTORIZED, IF(BIN(EXPR_LT, col, I(N)), ST(2, ix, val), NULL)));
    LBuf bufs[] = {BUF("E", DT_F32, T_INPUT, M * N), BUF("s", DT_F32, T_INPUT, M),
                   BUF("Y", DT_F32, T_OUTPUT, M * N)};
    LFunc *f = FUNC("oddgather", 3, 3, bufs, body);
    char *as = NULL;
    kiln_error e = {0};
    CHECK(cg_asm_text(f, &as, &e) == KILN_OK);
    CHECKF(bad_gathers(as) == 0, "gather with index == destination register");
    free(as);
    CgKernel *k = compile(f);
    float *E = galloc(M * N * 4, true), *sv = galloc(M * 4, true), *Y = galloc(M * N * 4, true);
    for (int i = 0; i < M * N; i++)
        E[i] = (float)i;
    for (int i = 0; i < M; i++)
        sv[i] = (float)(i + 1);
    CHECK(run(k, 3, E, sv, Y) == 0);
    int bad = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            bad += !feq(Y[i * N + j], E[i * N + j] / sv[i]);
    CHECKF(bad == 0, "odd-width gather: %d wrong", bad);
    cg_kernel_free(k);
}

/* Strided, non-affine (gather) loads; strided and colliding scatters. */
static void test_gather_scatter(void)
{
    enum { W = 16 };
    Var *v = VAR("v", W);
    /* C[v] = A[3v + 1] + A[(7v) % 48]; D[2v] = A[v]; E[v / 2] = A[v] */
    Expr *g1 = LD(DT_F32, 0, ADD(MUL(V(v), I(3)), I(1)));
    Expr *g2 = LD(DT_F32, 0, BIN(EXPR_MOD, MUL(V(v), I(7)), I(48)));
    LStmt *body =
        FOR(v, LOOP_VECTORIZED,
            BLOCK(3, ST(1, V(v), ADD(g1, g2)), ST(2, MUL(V(v), I(2)), LD(DT_F32, 0, V(v))),
                  ST(3, BIN(EXPR_DIV, V(v), I(2)), LD(DT_F32, 0, V(v)))));
    LBuf bufs[] = {BUF("A", DT_F32, T_INPUT, 48), BUF("C", DT_F32, T_OUTPUT, W),
                   BUF("D", DT_F32, T_OUTPUT, 2 * W), BUF("E", DT_F32, T_OUTPUT, W / 2)};
    LFunc *f = FUNC("gather", 4, 4, bufs, body);
    CHECK(ir_has(f, "@llvm.masked.gather.v16f32") && ir_has(f, "@llvm.masked.scatter.v16f32"));
    CgKernel *k = compile(f);
    float *a = galloc(48 * 4, true), *c = galloc(W * 4, true), *d = galloc(2 * W * 4, true),
          *e = galloc(W / 2 * 4, true);
    for (int i = 0; i < 48; i++)
        a[i] = (float)i * 0.5f;
    for (int i = 0; i < 2 * W; i++)
        d[i] = -1;
    CHECK(run(k, 4, a, c, d, e) == 0);
    int bad = 0;
    for (int i = 0; i < W; i++) {
        bad += !feq(c[i], a[3 * i + 1] + a[(7 * i) % 48]);
        bad += !feq(d[2 * i], a[i]) + !feq(d[2 * i + 1], -1.0f);
    }
    for (int i = 0; i < W / 2; i++)
        bad += !feq(e[i], a[2 * i + 1]); /* the later lane wins, as in the serial loop */
    CHECKF(bad == 0, "gather/scatter: %d wrong", bad);
    cg_kernel_free(k);

    /* transpose: T[i*8 + j] = S[j*8 + i], j vectorized (stride-8 gather) */
    Var *i = VAR("i", 8), *j = VAR("j", 8);
    LStmt *tb =
        FOR(i, LOOP_SERIAL,
            FOR(j, LOOP_VECTORIZED,
                ST(1, ADD(MUL(V(i), I(8)), V(j)), LD(DT_F64, 0, ADD(MUL(V(j), I(8)), V(i))))));
    LBuf tbufs[] = {BUF("S", DT_F64, T_INPUT, 64), BUF("T", DT_F64, T_OUTPUT, 64)};
    k = compile(FUNC("transpose", 2, 2, tbufs, tb));
    double *S = galloc(64 * 8, true), *T = galloc(64 * 8, true);
    for (int x = 0; x < 64; x++)
        S[x] = x;
    CHECK(run(k, 2, S, T) == 0);
    bad = 0;
    for (int x = 0; x < 8; x++)
        for (int y = 0; y < 8; y++)
            bad += T[x * 8 + y] != S[y * 8 + x];
    CHECKF(bad == 0, "transpose: %d wrong", bad);
    cg_kernel_free(k);
}

/* 1-D convolution with zero padding: select(in bounds, I[x+r-1], 0).  The
 * input sits right after a guard page, then right before one. */
static void test_padding(void)
{
    enum { N = 37, R = 3 };
    for (int mode = 0; mode < 3; mode++) { /* vectorized+unrolled r, vectorized, scalar */
        Var *x0 = VAR("x0", N), *r = VAR("r", R), *x = VAR("x", N);
        Expr *p = SUB(ADD(V(x), V(r)), I(1));
        Expr *inb = BIN(EXPR_AND, BIN(EXPR_GE, p, I(0)), BIN(EXPR_LT, p, I(N)));
        Expr *val = ADD(LD(DT_F32, 2, V(x)),
                        MUL(SEL(inb, LD(DT_F32, 0, p), CF(DT_F32, 0)), LD(DT_F32, 1, V(r))));
        LoopKind xk = mode < 2 ? LOOP_VECTORIZED : LOOP_SERIAL;
        LStmt *body =
            BLOCK(2, FOR(x0, xk, ST(2, V(x0), CF(DT_F32, 0))),
                  FOR(r, mode == 0 ? LOOP_UNROLLED : LOOP_SERIAL, FOR(x, xk, ST(2, V(x), val))));
        LBuf bufs[] = {BUF("I", DT_F32, T_INPUT, N), BUF("W", DT_F32, T_INPUT, R),
                       BUF("O", DT_F32, T_OUTPUT, N)};
        LFunc *f = FUNC("pad", 3, 3, bufs, body);
        CHECK(mode == 2 || ir_has(f, "@llvm.masked.load.v37f32"));
        CHECK(mode < 2 || ir_has(f, "phi float"));
        CgKernel *k = compile(f);
        for (int at_end = 0; at_end < 2; at_end++) {
            float *in = galloc(N * 4, at_end), *w = galloc(R * 4, true), *o = galloc(N * 4, true);
            uint64_t s = 3;
            for (int q = 0; q < N; q++)
                in[q] = rnd_f(&s);
            for (int q = 0; q < R; q++)
                w[q] = rnd_f(&s);
            CHECK(run(k, 3, in, w, o) == 0);
            int bad = 0;
            for (int q = 0; q < N; q++) {
                float ref = 0;
                for (int t = 0; t < R; t++) {
                    int pp = q + t - 1;
                    ref = ref + (pp >= 0 && pp < N ? in[pp] : 0.0f) * w[t];
                }
                bad += !close_f(o[q], ref, 1e-5f);
            }
            CHECKF(bad == 0, "padding mode %d at_end %d: %d wrong", mode, at_end, bad);
        }
        cg_kernel_free(k);
    }
}

/* A uniform load under a varying mask is made only when a lane is live:
 * B has 3 elements, and for io = 3 no lane passes the guard. */
static void test_uniform_load_under_mask(void)
{
    enum { N = 20, W = 8, NO = 4 };
    Var *io = VAR("io", NO), *v = VAR("v", W);
    Expr *ix = ADD(MUL(V(io), I(W)), V(v));
    LStmt *body = FOR(io, LOOP_SERIAL,
                      FOR(v, LOOP_VECTORIZED,
                          IF(BIN(EXPR_LT, ix, I(N)),
                             ST(2, ix, ADD(LD(DT_F32, 0, ix), LD(DT_F32, 1, V(io)))), NULL)));
    LBuf bufs[] = {BUF("A", DT_F32, T_INPUT, N), BUF("B", DT_F32, T_INPUT, 3),
                   BUF("C", DT_F32, T_OUTPUT, N)};
    LFunc *f = FUNC("umask", 3, 3, bufs, body);
    CHECK(ir_has(f, "@llvm.vector.reduce.or.v8i1"));
    CgKernel *k = compile(f);
    float *a = galloc(N * 4, true), *b = galloc(3 * 4, true), *c = galloc(N * 4, true);
    for (int i = 0; i < N; i++)
        a[i] = (float)i;
    b[0] = 100, b[1] = 200, b[2] = 300;
    CHECK(run(k, 3, a, b, c) == 0);
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += c[i] != (float)i + b[i / W];
    CHECKF(bad == 0, "uniform load under mask: %d wrong", bad);
    cg_kernel_free(k);
}

/* Scalar lazy select: select(i < N, A[i], -1) over N + 4 iterations. */
static void test_scalar_lazy_select(void)
{
    enum { N = 10 };
    Var *i = VAR("i", N + 4);
    LStmt *body =
        FOR(i, LOOP_SERIAL,
            ST(1, V(i), SEL(BIN(EXPR_LT, V(i), I(N)), LD(DT_I64, 0, V(i)), CI(DT_I64, -1))));
    LBuf bufs[] = {BUF("A", DT_I64, T_INPUT, N), BUF("C", DT_I64, T_OUTPUT, N + 4)};
    CgKernel *k = compile(FUNC("lazysel", 2, 2, bufs, body));
    int64_t *a = galloc(N * 8, true), *c = galloc((N + 4) * 8, true);
    for (int q = 0; q < N; q++)
        a[q] = q * q;
    CHECK(run(k, 2, a, c) == 0);
    int bad = 0;
    for (int q = 0; q < N + 4; q++)
        bad += c[q] != (q < N ? q * q : -1);
    CHECKF(bad == 0, "lazy select: %d wrong", bad);
    cg_kernel_free(k);

    /* && guards its right side the same way */
    Var *j = VAR("j", N + 4);
    Expr *cond = BIN(EXPR_AND, BIN(EXPR_LT, V(j), I(N)), BIN(EXPR_GT, LD(DT_I64, 0, V(j)), I(20)));
    body = FOR(j, LOOP_VECTORIZED, ST(1, V(j), SEL(cond, CI(DT_I64, 1), CI(DT_I64, 0))));
    k = compile(FUNC("lazyand", 2, 2, bufs, body));
    CHECK(run(k, 2, a, c) == 0);
    bad = 0;
    for (int q = 0; q < N + 4; q++)
        bad += c[q] != (q < N && a[q] > 20);
    CHECKF(bad == 0, "lazy &&: %d wrong", bad);
    cg_kernel_free(k);
}

/* Reductions inside vectorized bodies, folded in lane order. */
static void test_reductions(void)
{
    enum { N = 1000, W = 16, NO = (N + W - 1) / W };
    uint64_t s = 4;
    float *a = galloc(N * 4, true), *b = galloc(N * 4, true), *out = galloc(4 * 4, true);
    for (int i = 0; i < N; i++)
        a[i] = rnd_f(&s) * 100.0f, b[i] = rnd_f(&s);
    a[17] = NAN; /* max/min reductions keep the serial NaN behaviour */

    Var *ko = VAR("ko", NO), *ki = VAR("ki", W);
    Expr *k_ = ADD(MUL(V(ko), I(W)), V(ki));
    Expr *guard = BIN(EXPR_LT, k_, I(N));
    Expr *s0 = LD(DT_F32, 2, I(0)), *s1 = LD(DT_F32, 2, I(1)), *s2 = LD(DT_F32, 2, I(2)),
         *s3 = LD(DT_F32, 2, I(3));
    Expr *ak = LD(DT_F32, 0, k_), *bk = LD(DT_F32, 1, k_);
    LStmt *red = BLOCK(4, ST(2, I(0), ADD(s0, MUL(bk, bk))), ST(2, I(1), BIN(EXPR_MAX, s1, ak)),
                       ST(2, I(2), BIN(EXPR_MIN, ak, s2)),
                       IF(BIN(EXPR_GT, bk, CF(DT_F32, 0)), ST(2, I(3), ADD(bk, s3)), NULL));
    LStmt *body = BLOCK(5, ST(2, I(0), CF(DT_F32, 0)), ST(2, I(1), CF(DT_F32, -INFINITY)),
                        ST(2, I(2), CF(DT_F32, INFINITY)), ST(2, I(3), CF(DT_F32, 0)),
                        FOR(ko, LOOP_SERIAL, FOR(ki, LOOP_VECTORIZED, IF(guard, red, NULL))));
    LBuf bufs[] = {BUF("A", DT_F32, T_INPUT, N), BUF("B", DT_F32, T_INPUT, N),
                   BUF("S", DT_F32, T_OUTPUT, 4)};
    LFunc *f = FUNC("reduce", 3, 3, bufs, body);
    CHECK(ir_has(f, "@llvm.vector.reduce.fadd.v16f32"));
    CgKernel *k = compile(f);
    CHECK(run(k, 3, a, b, out) == 0);
    float r0 = 0, r1 = -INFINITY, r2 = INFINITY, r3 = 0;
    for (int i = 0; i < N; i++) {
        r0 = r0 + b[i] * b[i];
        r1 = r1 > a[i] ? r1 : a[i];
        r2 = a[i] < r2 ? a[i] : r2;
        if (b[i] > 0)
            r3 = b[i] + r3;
    }
    CHECKF(feq(out[0], r0), "sum %.9g vs %.9g", out[0], r0);
    CHECKF(feq(out[1], r1), "max %.9g vs %.9g", out[1], r1);
    CHECKF(feq(out[2], r2), "min %.9g vs %.9g", out[2], r2);
    CHECKF(feq(out[3], r3), "masked sum %.9g vs %.9g", out[3], r3);
    cg_kernel_free(k);

    /* a wide vectorized loop (chunked by 16, masked tail); integer sums */
    Var *w = VAR("w", N);
    LBuf ibufs[] = {BUF("X", DT_I32, T_INPUT, N), BUF("S", DT_I32, T_OUTPUT, 2)};
    Expr *x = LD(DT_I32, 0, V(w));
    body = BLOCK(3, ST(1, I(0), CI(DT_I32, 0)), ST(1, I(1), CI(DT_I32, INT32_MIN)),
                 FOR(w, LOOP_VECTORIZED,
                     BLOCK(2, ST(1, I(0), ADD(LD(DT_I32, 1, I(0)), x)),
                           ST(1, I(1), BIN(EXPR_MAX, LD(DT_I32, 1, I(1)), x)))));
    f = FUNC("isum", 2, 2, ibufs, body);
    CHECK(ir_has(f, "@llvm.vector.reduce.add.v16i32") &&
          ir_has(f, "@llvm.vector.reduce.smax.v16i32"));
    k = compile(f);
    int32_t *xi = galloc(N * 4, true), *so = galloc(2 * 4, true);
    int32_t ref = 0, mx = INT32_MIN;
    for (int i = 0; i < N; i++) {
        xi[i] = (int32_t)(rng_next(&s) >> 32);
        ref = (int32_t)((uint32_t)ref + (uint32_t)xi[i]);
        mx = xi[i] > mx ? xi[i] : mx;
    }
    CHECK(run(k, 2, xi, so) == 0);
    CHECKF(so[0] == ref && so[1] == mx, "int sum %d vs %d, max %d vs %d", so[0], ref, so[1], mx);
    cg_kernel_free(k);

    /* C[i, j] += A[i, k] * B[k, j] with j vectorized (lane-private) */
    enum { M2 = 5, N2 = 24, K2 = 7 };
    Var *i = VAR("i", M2), *j0 = VAR("j0", N2), *kk = VAR("k", K2), *j = VAR("j", N2);
    Expr *cij = ADD(MUL(V(i), I(N2)), V(j));
    Expr *mac = ADD(LD(DT_F64, 2, cij), MUL(LD(DT_F64, 0, ADD(MUL(V(i), I(K2)), V(kk))),
                                            LD(DT_F64, 1, ADD(MUL(V(kk), I(N2)), V(j)))));
    body =
        FOR(i, LOOP_SERIAL,
            BLOCK(2, FOR(j0, LOOP_VECTORIZED, ST(2, ADD(MUL(V(i), I(N2)), V(j0)), CF(DT_F64, 0))),
                  FOR(kk, LOOP_SERIAL, FOR(j, LOOP_VECTORIZED, ST(2, cij, mac)))));
    LBuf mbufs[] = {BUF("A", DT_F64, T_INPUT, M2 * K2), BUF("B", DT_F64, T_INPUT, K2 * N2),
                    BUF("C", DT_F64, T_OUTPUT, M2 * N2)};
    k = compile(FUNC("mm_small", 3, 3, mbufs, body));
    double *ma = galloc(M2 * K2 * 8, true), *mb = galloc(K2 * N2 * 8, true),
           *mc = galloc(M2 * N2 * 8, true);
    for (int q = 0; q < M2 * K2; q++)
        ma[q] = rnd_f(&s);
    for (int q = 0; q < K2 * N2; q++)
        mb[q] = rnd_f(&s);
    CHECK(run(k, 3, ma, mb, mc) == 0);
    int bad = 0;
    for (int y = 0; y < M2; y++)
        for (int z = 0; z < N2; z++) {
            double acc = 0;
            for (int q = 0; q < K2; q++)
                acc = acc + ma[y * K2 + q] * mb[q * N2 + z];
            bad += fabs(mc[y * N2 + z] - acc) > 1e-12;
        }
    CHECKF(bad == 0, "small f64 matmul: %d wrong", bad);
    cg_kernel_free(k);
}

/* Bodies whose lanes depend on each other run serially, with the serial
 * loop's result. */
static void test_vector_fallbacks(void)
{
    enum { W = 16 };
    Var *v = VAR("v", W), *u = VAR("u", W);
    /* A[v+1] = A[v] + 1;  S[0] = A[u] (the last lane wins) */
    LStmt *body = BLOCK(
        2, FOR(v, LOOP_VECTORIZED, ST(0, ADD(V(v), I(1)), ADD(LD(DT_I64, 0, V(v)), CI(DT_I64, 1)))),
        FOR(u, LOOP_VECTORIZED, ST(1, I(0), LD(DT_I64, 0, V(u)))));
    LBuf bufs[] = {BUF("A", DT_I64, T_OUTPUT, W + 1), BUF("S", DT_I64, T_OUTPUT, 1)};
    LFunc *f = FUNC("chain", 2, 2, bufs, body);
    CHECK(!ir_has(f, "<16 x i64>"));
    CgKernel *k = compile(f);
    int64_t *a = galloc((W + 1) * 8, true), *sv = galloc(8, true);
    a[0] = 5;
    CHECK(run(k, 2, a, sv) == 0);
    int bad = 0;
    for (int i = 0; i <= W; i++)
        bad += a[i] != 5 + i;
    CHECKF(bad == 0 && sv[0] == 5 + W - 1, "serial fallback: %d wrong, S=%lld", bad,
           (long long)sv[0]);
    cg_kernel_free(k);
}

static int64_t ref_div(int64_t x, int64_t d)
{
    if (d == 0)
        return 0;
    if (d == -1)
        return (int64_t)(0 - (uint64_t)x);
    int64_t q = x / d;
    if (x % d != 0 && ((x < 0) != (d < 0)))
        q--;
    return q;
}

static int64_t ref_mod(int64_t x, int64_t d)
{
    if (d == 0 || d == -1)
        return 0;
    int64_t m = x % d;
    if (m != 0 && ((m < 0) != (d < 0)))
        m += d;
    return m;
}

/* Floor division/modulo (by zero: 0; INT_MIN / -1 wraps), vector and
 * scalar, i32 and i64, by variables and by constants. */
static void test_divmod(void)
{
    enum { N = 64 };
    for (int t = 0; t < 2; t++) {
        DType dt = t ? DT_I64 : DT_I32;
        int sz = dtype_size(dt);
        Var *v = VAR("v", N), *q = VAR("q", N);
        Expr *x = LD(dt, 0, V(v)), *d = LD(dt, 1, V(v));
        Expr *xs = LD(dt, 0, V(q));
        LStmt *body =
            BLOCK(2,
                  FOR(v, LOOP_VECTORIZED,
                      BLOCK(2, ST(2, V(v), BIN(EXPR_DIV, x, d)), ST(3, V(v), BIN(EXPR_MOD, x, d)))),
                  FOR(q, LOOP_SERIAL,
                      BLOCK(2, ST(4, V(q), BIN(EXPR_DIV, xs, CI(dt, 7))),
                            ST(5, V(q), BIN(EXPR_MOD, xs, CI(dt, -3))))));
        LBuf bufs[] = {BUF("X", dt, T_INPUT, N),   BUF("D", dt, T_INPUT, N),
                       BUF("Q", dt, T_OUTPUT, N),  BUF("R", dt, T_OUTPUT, N),
                       BUF("Q7", dt, T_OUTPUT, N), BUF("R3", dt, T_OUTPUT, N)};
        CgKernel *k = compile(FUNC("divmod", 6, 6, bufs, body));
        void *p[6];
        for (int i = 0; i < 6; i++)
            p[i] = galloc((size_t)N * (size_t)sz, true);
        int64_t xs_[N], ds_[N];
        int64_t lo = t ? INT64_MIN : INT32_MIN;
        for (int i = 0; i < N; i++) {
            xs_[i] = (i % 9) - 4 + (i % 5 == 0 ? 1000 * i : 0);
            ds_[i] = (i % 7) - 3; /* -3..3, includes 0 and -1 */
        }
        xs_[0] = lo, ds_[0] = -1;
        xs_[1] = lo, ds_[1] = 0;
        xs_[2] = lo, ds_[2] = 3;
        for (int i = 0; i < N; i++) {
            if (t) {
                ((int64_t *)p[0])[i] = xs_[i];
                ((int64_t *)p[1])[i] = ds_[i];
            } else {
                ((int32_t *)p[0])[i] = (int32_t)xs_[i];
                ((int32_t *)p[1])[i] = (int32_t)ds_[i];
            }
        }
        CHECK(run(k, 6, p[0], p[1], p[2], p[3], p[4], p[5]) == 0);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            int64_t got[4];
            for (int o = 0; o < 4; o++)
                got[o] = t ? ((int64_t *)p[2 + o])[i] : ((int32_t *)p[2 + o])[i];
            int64_t want[4] = {ref_div(xs_[i], ds_[i]), ref_mod(xs_[i], ds_[i]), ref_div(xs_[i], 7),
                               ref_mod(xs_[i], -3)};
            if (!t)
                for (int o = 0; o < 4; o++)
                    want[o] = (int32_t)want[o];
            for (int o = 0; o < 4; o++)
                if (got[o] != want[o]) {
                    if (bad++ < 5)
                        fprintf(stderr, "divmod %s op%d: %lld, %lld -> %lld, want %lld\n",
                                dtype_name(dt), o, (long long)xs_[i], (long long)ds_[i],
                                (long long)got[o], (long long)want[o]);
                }
        }
        CHECKF(bad == 0, "divmod %s: %d wrong", dtype_name(dt), bad);
        cg_kernel_free(k);
    }
}

/* float->int casts saturate (NaN -> 0); other conversions. */
static void test_casts(void)
{
    enum { N = 12 };
    static const double vals[N] = {NAN,  INFINITY, -INFINITY, 3e9,   -3e9,         2.5,
                                   -2.5, 0.0,      1e19,      -1e19, 2147483647.0, -2147483648.9};
    for (int vec = 0; vec < 2; vec++) {
        LoopKind lk = vec ? LOOP_VECTORIZED : LOOP_SERIAL;
        Var *v = VAR("v", N);
        Expr *f = LD(DT_F32, 0, V(v)), *d = LD(DT_F64, 1, V(v));
        LStmt *body =
            FOR(v, lk,
                BLOCK(5, ST(2, V(v), CAST(DT_I32, f)), ST(3, V(v), CAST(DT_I64, d)),
                      ST(4, V(v), CAST(DT_I32, d)), ST(5, V(v), CAST(DT_F32, CAST(DT_I64, f))),
                      ST(6, V(v), CAST(DT_F64, f))));
        LBuf bufs[] = {BUF("F", DT_F32, T_INPUT, N),    BUF("D", DT_F64, T_INPUT, N),
                       BUF("I32", DT_I32, T_OUTPUT, N), BUF("I64", DT_I64, T_OUTPUT, N),
                       BUF("D32", DT_I32, T_OUTPUT, N), BUF("RT", DT_F32, T_OUTPUT, N),
                       BUF("FD", DT_F64, T_OUTPUT, N)};
        CgKernel *k = compile(FUNC("casts", 7, 7, bufs, body));
        float *fi = galloc(N * 4, true), *rt = galloc(N * 4, true);
        double *di = galloc(N * 8, true), *fd = galloc(N * 8, true);
        int32_t *o32 = galloc(N * 4, true), *d32 = galloc(N * 4, true);
        int64_t *o64 = galloc(N * 8, true);
        for (int i = 0; i < N; i++)
            fi[i] = (float)vals[i], di[i] = vals[i];
        CHECK(run(k, 7, fi, di, o32, o64, d32, rt, fd) == 0);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            double x = vals[i], xf = fi[i];
            int32_t w32 = isnan(xf)             ? 0
                          : xf >= 2147483648.0  ? INT32_MAX
                          : xf <= -2147483649.0 ? INT32_MIN
                                                : (int32_t)xf;
            int64_t w64 = isnan(x)                     ? 0
                          : x >= 9223372036854775808.0 ? INT64_MAX
                          : x < -9223372036854775808.0 ? INT64_MIN
                                                       : (int64_t)x;
            int32_t wd32 = isnan(x)             ? 0
                           : x >= 2147483648.0  ? INT32_MAX
                           : x <= -2147483649.0 ? INT32_MIN
                                                : (int32_t)x;
            int64_t f64 = isnan(xf)                     ? 0
                          : xf >= 9223372036854775808.0 ? INT64_MAX
                          : xf < -9223372036854775808.0 ? INT64_MIN
                                                        : (int64_t)xf;
            bad += o32[i] != w32;
            bad += o64[i] != w64;
            bad += d32[i] != wd32;
            bad += !feq(rt[i], (float)f64);
            bad += !deq(fd[i], (double)fi[i]);
        }
        CHECKF(bad == 0, "casts (vec=%d): %d wrong", vec, bad);
        cg_kernel_free(k);
    }
}

/* exp log sqrt tanh sigmoid abs neg, min/max with NaNs (a<b?a:b). */
static void test_math(void)
{
    enum { N = 40 };
    for (int vec = 0; vec < 2; vec++) {
        LoopKind lk = vec ? LOOP_VECTORIZED : LOOP_SERIAL;
        Var *v = VAR("v", N);
        Expr *x = LD(DT_F32, 0, V(v)), *y = LD(DT_F32, 1, V(v));
        Expr *ax = UN(EXPR_ABS, x);
        LStmt *body =
            FOR(v, lk,
                BLOCK(8, ST(2, V(v), UN(EXPR_EXP, x)), ST(3, V(v), UN(EXPR_LOG, ax)),
                      ST(4, V(v), UN(EXPR_SQRT, ax)), ST(5, V(v), UN(EXPR_TANH, x)),
                      ST(6, V(v), UN(EXPR_SIGMOID, x)), ST(7, V(v), UN(EXPR_NEG, x)),
                      ST(8, V(v), BIN(EXPR_MIN, x, y)), ST(9, V(v), BIN(EXPR_MAX, x, y))));
        LBuf bufs[10] = {BUF("X", DT_F32, T_INPUT, N), BUF("Y", DT_F32, T_INPUT, N)};
        for (int i = 2; i < 10; i++)
            bufs[i] = BUF("O", DT_F32, T_OUTPUT, N);
        CgKernel *k = compile(FUNC("math", 10, 10, bufs, body));
        float *p[10];
        for (int i = 0; i < 10; i++)
            p[i] = galloc(N * 4, true);
        uint64_t s = 5;
        for (int i = 0; i < N; i++)
            p[0][i] = rnd_f(&s) * 8, p[1][i] = rnd_f(&s) * 8;
        p[0][3] = NAN, p[1][4] = NAN, p[0][5] = NAN, p[1][5] = NAN, p[0][6] = -0.0f, p[1][6] = 0.0f;
        CHECK(run(k, 10, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]) == 0);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            float a = p[0][i], b = p[1][i];
            float want[8] = {
                expf(a), logf(fabsf(a)), sqrtf(fabsf(a)), tanhf(a), 1.0f / (1.0f + expf(-a)),
                -a,      a < b ? a : b,  a > b ? a : b};
            for (int o = 0; o < 8; o++)
                if (!feq(p[2 + o][i], want[o])) {
                    if (bad++ < 5)
                        fprintf(stderr, "math op%d(%g, %g) = %.9g, want %.9g\n", o, a, b,
                                p[2 + o][i], want[o]);
                }
        }
        CHECKF(bad == 0, "math (vec=%d): %d wrong", vec, bad);
        cg_kernel_free(k);
    }
}

/* Locals: a small one (stack) and a large one (heap), also inside a
 * parallel body; i32 and f64 variants. */
static void test_locals(void)
{
    static const int64_t sizes[2] = {64, 8192};
    for (int z = 0; z < 2; z++) {
        int64_t n = sizes[z];
        Var *i = VAR("i", n), *j = VAR("j", n);
        LStmt *body = ls_alloc(
            A, 2,
            BLOCK(2, FOR(i, LOOP_VECTORIZED, ST(2, V(i), MUL(LD(DT_F64, 0, V(i)), CF(DT_F64, 2)))),
                  FOR(j, LOOP_SERIAL,
                      ST(1, V(j), ADD(LD(DT_F64, 2, SUB(I(n - 1), V(j))), CF(DT_F64, 1))))));
        LBuf bufs[] = {BUF("A", DT_F64, T_INPUT, n), BUF("C", DT_F64, T_OUTPUT, n),
                       BUF("T", DT_F64, T_LOCAL, n)};
        CgKernel *k = compile(FUNC("locals", 2, 3, bufs, body));
        double *a = galloc((size_t)n * 8, true), *c = galloc((size_t)n * 8, true);
        for (int q = 0; q < n; q++)
            a[q] = q;
        CHECK(run(k, 2, a, c) == 0);
        int bad = 0;
        for (int q = 0; q < n; q++)
            bad += c[q] != (double)(n - 1 - q) * 2 + 1;
        CHECKF(bad == 0, "locals n=%lld: %d wrong", (long long)n, bad);
        cg_kernel_free(k);
    }
    /* per-iteration locals inside a parallel loop (heap: 16 KB each) */
    enum { P = 8, L = 4096 };
    Var *p = VAR("p", P), *i = VAR("i", L), *j = VAR("j", L);
    Expr *src = ADD(MUL(V(p), I(L)), V(i));
    LStmt *body = FOR(
        p, LOOP_PARALLEL,
        ls_alloc(
            A, 2,
            BLOCK(2, FOR(i, LOOP_VECTORIZED, ST(2, V(i), ADD(LD(DT_I32, 0, src), CI(DT_I32, 1)))),
                  FOR(j, LOOP_SERIAL,
                      ST(1, ADD(MUL(V(p), I(L)), V(j)), LD(DT_I32, 2, SUB(I(L - 1), V(j))))))));
    LBuf bufs[] = {BUF("A", DT_I32, T_INPUT, P * L), BUF("C", DT_I32, T_OUTPUT, P * L),
                   BUF("T", DT_I32, T_LOCAL, L)};
    CgKernel *k = compile(FUNC("par_locals", 2, 3, bufs, body));
    int32_t *a = galloc(P * L * 4, true), *c = galloc(P * L * 4, true);
    for (int q = 0; q < P * L; q++)
        a[q] = q;
    CHECK(run(k, 2, a, c) == 0);
    int bad = 0;
    for (int q = 0; q < P; q++)
        for (int r = 0; r < L; r++)
            bad += c[q * L + r] != a[q * L + (L - 1 - r)] + 1;
    CHECKF(bad == 0, "parallel locals: %d wrong", bad);
    cg_kernel_free(k);
}

/* Parallel loops capture outer loop vars and unrolled constants; a nested
 * parallel loop runs serially inside the outer body. */
static void test_parallel_capture(void)
{
    enum { NA = 3, NU = 2, NP = 50, NQ = 4 };
    Var *a = VAR("a", NA), *u = VAR("u", NU), *p = VAR("p", NP), *q = VAR("q", NQ);
    Expr *ix = ADD(MUL(ADD(MUL(ADD(MUL(V(a), I(NU)), V(u)), I(NP)), V(p)), I(NQ)), V(q));
    Expr *val = ADD(ADD(MUL(V(a), I(1000)), MUL(V(u), I(100))), ADD(MUL(V(p), I(10)), V(q)));
    LStmt *body =
        FOR(a, LOOP_SERIAL,
            FOR(u, LOOP_UNROLLED, FOR(p, LOOP_PARALLEL, FOR(q, LOOP_PARALLEL, ST(0, ix, val)))));
    LBuf bufs[] = {BUF("C", DT_I64, T_OUTPUT, NA * NU * NP * NQ)};
    LFunc *f = FUNC("pcap", 1, 1, bufs, body);
    CHECK(ir_has(f, "call void @kiln_rt_parallel_for(ptr @pcap__par0"));
    CHECK(!ir_has(f, "@pcap__par2")); /* 2 outlined (unrolled u), the inner loop is serial */
    CgKernel *k = compile(f);
    int64_t *c = galloc(NA * NU * NP * NQ * 8, true);
    for (int t = 1; t <= 3; t++) {
        kiln_rt_set_num_threads(t);
        memset(c, 0, NA * NU * NP * NQ * 8);
        CHECK(run(k, 1, c) == 0);
        int bad = 0;
        for (int x = 0; x < NA; x++)
            for (int y = 0; y < NU; y++)
                for (int z = 0; z < NP; z++)
                    for (int w = 0; w < NQ; w++)
                        bad +=
                            c[((x * NU + y) * NP + z) * NQ + w] != x * 1000 + y * 100 + z * 10 + w;
        CHECKF(bad == 0, "parallel capture (%d threads): %d wrong", t, bad);
    }
    kiln_rt_set_num_threads(0);
    cg_kernel_free(k);
}

/* A local that cannot be allocated makes the kernel return 1 (also from
 * inside a parallel body); locals allocated so far are freed (under ASan,
 * LeakSanitizer checks that, since JIT code calls the intercepted
 * aligned_alloc/free). */
static void test_alloc_failure(void)
{
    enum { P = 4, SMALL = 8192 };
    int64_t huge = (int64_t)1 << 42; /* 16 TiB of f32 */
    LBuf bufs[] = {BUF("C", DT_I32, T_OUTPUT, P), BUF("big", DT_F32, T_LOCAL, huge),
                   BUF("T", DT_I32, T_LOCAL, SMALL)};
    Var *p = VAR("p", P), *q = VAR("q", P), *i = VAR("i", SMALL);
    LStmt *use_big = ST(1, I(5), CF(DT_F32, 1));
    LStmt *bodies[4] = {
        /* plain */
        ls_alloc(A, 1, BLOCK(2, use_big, ST(0, I(0), CI(DT_I32, 7)))),
        /* inside a heap local that must be freed */
        ls_alloc(A, 2,
                 BLOCK(3, FOR(i, LOOP_VECTORIZED, ST(2, V(i), CI(DT_I32, 3))),
                       ST(0, I(1), LD(DT_I32, 2, I(9))),
                       ls_alloc(A, 1, BLOCK(2, use_big, ST(0, I(0), CI(DT_I32, 7)))))),
        /* in a parallel body */
        FOR(p, LOOP_PARALLEL, ls_alloc(A, 1, BLOCK(2, use_big, ST(0, V(p), CI(DT_I32, 7))))),
        /* a parallel body failing inside an outer heap local */
        ls_alloc(A, 2,
                 BLOCK(2, ST(2, I(0), CI(DT_I32, 1)),
                       FOR(q, LOOP_PARALLEL,
                           ls_alloc(A, 1, BLOCK(2, use_big, ST(0, V(q), CI(DT_I32, 7))))))),
    };
    for (int t = 0; t < 4; t++) {
        CgKernel *k = compile(FUNC("allocfail", 1, 3, bufs, bodies[t]));
        int32_t c[P] = {0, 0, 0, 0};
        CHECKF(run(k, 1, c) == 1, "variant %d did not report the failed allocation", t);
        CHECK(c[0] == 0 && c[2] == 0); /* nothing after the failed allocation ran */
        CHECK(t != 1 || c[1] == 3);    /* what ran before it did */
        cg_kernel_free(k);
    }
}

/* An unrolled loop too big to copy is emitted as a loop. */
static void test_unroll_budget(void)
{
    enum { N = 100000 };
    Var *i = VAR("i", N);
    LBuf bufs[] = {BUF("C", DT_I64, T_OUTPUT, N)};
    LFunc *f = FUNC("bigunroll", 1, 1, bufs, FOR(i, LOOP_UNROLLED, ST(0, V(i), MUL(V(i), I(3)))));
    double t0 = kiln_rt_now();
    CgKernel *k = compile(f);
    CHECK(kiln_rt_now() - t0 < 10.0);
    int64_t *c = galloc(N * 8, true);
    CHECK(run(k, 1, c) == 0);
    CHECK(c[0] == 0 && c[N - 1] == 3 * (int64_t)(N - 1));
    cg_kernel_free(k);
}

/* Kernels compiled, run and freed from several threads at once. */
typedef struct CompileJob {
    LFunc *f;
    int ok;
} CompileJob;

static void *compile_thread(void *arg)
{
    CompileJob *job = arg;
    for (int r = 0; r < 15; r++) {
        CgKernel *k = NULL;
        kiln_error e = {0};
        if (cg_compile(job->f, &k, &e) != KILN_OK)
            continue;
        int64_t c[64] = {0};
        void *args[1] = {c};
        if (cg_kernel_packed(k)(args) == 0 && c[63] == 63 * 7)
            job->ok++;
        cg_kernel_free(k);
    }
    return NULL;
}

static void test_concurrent_compiles(void)
{
    enum { T = 3 };
    Var *p = VAR("p", 4), *v = VAR("v", 16);
    Expr *ix = ADD(MUL(V(p), I(16)), V(v));
    LBuf bufs[] = {BUF("C", DT_I64, T_OUTPUT, 64)};
    LFunc *f = FUNC("conc", 1, 1, bufs,
                    FOR(p, LOOP_PARALLEL, FOR(v, LOOP_VECTORIZED, ST(0, ix, MUL(ix, I(7))))));
    pthread_t th[T];
    CompileJob jobs[T] = {{f, 0}, {f, 0}, {f, 0}};
    for (int i = 0; i < T; i++)
        pthread_create(&th[i], NULL, compile_thread, &jobs[i]);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < T; i++)
        CHECKF(jobs[i].ok == 15, "thread %d: %d of 15 kernels right", i, jobs[i].ok);
}

/* Malformed input is an error, never a crash. */
static void test_errors(void)
{
    Var *i = VAR("i", 4), *unbound = VAR("x", 4);
    Expr *two[2] = {V(i), I(0)};
    LBuf bufs[] = {BUF("C", DT_F32, T_OUTPUT, 4)};
    LStmt *nonflat = FOR(i, LOOP_SERIAL, ls_store(A, 0, 2, two, CF(DT_F32, 1)));
    CgKernel *k = NULL;
    kiln_error e = {0};
    CHECK(cg_compile(FUNC("nonflat", 1, 1, bufs, nonflat), &k, &e) == KILN_ECODEGEN);
    CHECKF(strstr(e.msg, "flat") != NULL, "message: %s", e.msg);
    CHECK(k == NULL);

    kiln_error_clear(&e);
    LStmt *ub = FOR(i, LOOP_SERIAL, ST(0, V(unbound), CF(DT_F32, 1)));
    CHECK(cg_compile(FUNC("unbound", 1, 1, bufs, ub), &k, &e) == KILN_ECODEGEN);
    CHECKF(strstr(e.msg, "'x'") != NULL, "message: %s", e.msg);

    kiln_error_clear(&e);
    LStmt *badbuf = FOR(i, LOOP_SERIAL, ST(3, V(i), CF(DT_F32, 1)));
    CHECK(cg_compile(FUNC("badbuf", 1, 1, bufs, badbuf), &k, &e) == KILN_ECODEGEN);
    CHECK(e.msg[0] != 0);

    kiln_error_clear(&e);
    char *txt = NULL;
    CHECK(cg_llvm_text(FUNC("unbound", 1, 1, bufs, ub), CG_JIT, false, &txt, &e) == KILN_ECODEGEN);
    CHECK(txt == NULL);
    cg_kernel_free(NULL);
}

/* Two live kernels of the same name do not clash in the JIT. */
static void test_same_name(void)
{
    Var *i = VAR("i", 8), *j = VAR("j", 8);
    LBuf bufs[] = {BUF("C", DT_I32, T_OUTPUT, 8)};
    CgKernel *k1 =
        compile(FUNC("same", 1, 1, bufs, FOR(i, LOOP_VECTORIZED, ST(0, V(i), CI(DT_I32, 1)))));
    CgKernel *k2 =
        compile(FUNC("same", 1, 1, bufs, FOR(j, LOOP_VECTORIZED, ST(0, V(j), CI(DT_I32, 2)))));
    int32_t c[8] = {0};
    CHECK(run(k1, 1, c) == 0 && c[7] == 1);
    CHECK(run(k2, 1, c) == 0 && c[7] == 2);
    cg_kernel_free(k1);
    CHECK(run(k2, 1, c) == 0 && c[0] == 2);
    cg_kernel_free(k2);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    A = arena_new();
    test_add16();
    test_odd_width_guard();
    test_gather_scatter();
    test_odd_width_gather();
    test_padding();
    test_uniform_load_under_mask();
    test_scalar_lazy_select();
    test_reductions();
    test_vector_fallbacks();
    test_divmod();
    test_casts();
    test_math();
    test_locals();
    test_parallel_capture();
    test_alloc_failure();
    test_unroll_budget();
    test_concurrent_compiles();
    test_errors();
    test_same_name();
    gfree_all();
    arena_free(A);
    return t_done("test_cg_basic");
}
