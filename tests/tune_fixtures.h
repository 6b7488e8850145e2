/* tests/tune_fixtures.h: hand-built LoopIR matmuls for the tune/ tests
 * (features and cost models), written the way lowering emits them: the
 * reduction's init store sits right outside the outermost reduction loop,
 * indices are flattened row-major (or kept 2-D when flat is false).
 * Static functions: include from one test file each. */
#ifndef KILN_TUNE_FIXTURES_H
#define KILN_TUNE_FIXTURES_H

#include <stdio.h>
#include <string.h>

#include "ir/ir.h"

enum { MM_A, MM_B, MM_C };

typedef enum {
    MM_IJK,   /* for i, j: C = 0; for k: C += A*B           (B strided) */
    MM_IKJ,   /* for i: (for j: C = 0); for k, j: C += A*B  (B unit stride) */
    MM_TILED, /* io, jo, [init ii,jv], k, ii(unroll 4), jv(vector 16) */
    MM_SSRSRS /* MetaSchedule's CPU tiling: i0 j0 i1 j1 [init] k0 i2 j2 k1 i3 j3,
                 i0 parallel, i3 unrolled, j3 vector 16 (10 loops); needs
                 M % 32 == 0, N % 64 == 0, K % 4 == 0 */
} MmVariant;

typedef struct MmCtx {
    Arena *a;
    LFunc *f;
    bool flat;
} MmCtx;

static Expr *mm_v(MmCtx *m, Var *v)
{
    return expr_var(m->a, v);
}

static Expr *mm_c(MmCtx *m, int64_t c)
{
    return expr_iconst(m->a, c);
}

/* r*cols + c, or the 2-D pair */
static int mm_index(MmCtx *m, int buf, Expr *r, Expr *c, Expr **idx)
{
    if (!m->flat) {
        idx[0] = r;
        idx[1] = c;
        return 2;
    }
    idx[0] = expr_iadd(m->a, expr_imul(m->a, r, mm_c(m, m->f->bufs[buf].dims[1])), c);
    return 1;
}

static Expr *mm_load(MmCtx *m, int buf, Expr *r, Expr *c)
{
    Expr *idx[2];
    int n = mm_index(m, buf, r, c, idx);
    return expr_load(m->a, DT_F32, buf, n, idx);
}

static LStmt *mm_store(MmCtx *m, int buf, Expr *r, Expr *c, Expr *val)
{
    Expr *idx[2];
    int n = mm_index(m, buf, r, c, idx);
    return ls_store(m->a, buf, n, idx, val);
}

/* C[r,c] = C[r,c] + A[r,k] * B[k,c] */
static LStmt *mm_update(MmCtx *m, Expr *r, Expr *c, Expr *k)
{
    Expr *prod = expr_bin(m->a, EXPR_MUL, DT_F32, mm_load(m, MM_A, r, k), mm_load(m, MM_B, k, c));
    Expr *sum = expr_bin(m->a, EXPR_ADD, DT_F32, mm_load(m, MM_C, r, c), prod);
    return mm_store(m, MM_C, r, c, sum);
}

static LStmt *mm_init(MmCtx *m, Expr *r, Expr *c)
{
    return mm_store(m, MM_C, r, c, expr_float(m->a, DT_F32, 0.0));
}

static LStmt *mm_block2(MmCtx *m, LStmt *x, LStmt *y)
{
    LStmt *s[2] = {x, y};
    return ls_block(m->a, 2, s);
}

static LFunc *mm_func(Arena *a, int64_t M, int64_t N, int64_t K, bool flat)
{
    LFunc *f = arena_alloc(a, sizeof *f);
    f->name = "matmul";
    f->nbufs = f->nargs = 3;
    f->bufs = arena_alloc(a, sizeof(LBuf) * 3);
    const char *names[] = {"A", "B", "C"};
    int64_t dims[3][2] = {{M, K}, {K, N}, {M, N}};
    for (int b = 0; b < 3; b++) {
        f->bufs[b] = (LBuf){
            .name = names[b], .dt = DT_F32, .kind = b == MM_C ? T_OUTPUT : T_INPUT, .ndim = 2};
        f->bufs[b].dims[0] = dims[b][0];
        f->bufs[b].dims[1] = dims[b][1];
    }
    f->flat = flat;
    return f;
}

/* MetaSchedule's CPU tiling "SSRSRS" with the given tile extents (outer
 * first; products must equal M, N, K): loops i0 j0 i1 j1 k0 i2 j2 k1 i3 j3
 * with the init over i2 j2 i3 j3 right before k0.  kinds: of i0, i3, j3. */
static LFunc *mm_build_tiles(Arena *a, int64_t M, int64_t N, int64_t K, const int64_t ie[4],
                             const int64_t je[4], const int64_t ke[2], LoopKind k_i0, LoopKind k_i3,
                             LoopKind k_j3)
{
    LFunc *f = mm_func(a, M, N, K, true);
    MmCtx m = {a, f, true};
    Var *iv[4], *jv[4], *kv[2], *iv0[2], *jv0[2];
    char nm[8];
    for (int t = 0; t < 4; t++) {
        snprintf(nm, sizeof nm, "i%d", t);
        iv[t] = ir_var_new(a, nm, ie[t]);
        snprintf(nm, sizeof nm, "j%d", t);
        jv[t] = ir_var_new(a, nm, je[t]);
    }
    for (int t = 0; t < 2; t++) {
        snprintf(nm, sizeof nm, "k%d", t);
        kv[t] = ir_var_new(a, nm, ke[t]);
        snprintf(nm, sizeof nm, "ii%d", t);
        iv0[t] = ir_var_new(a, nm, ie[t + 2]);
        snprintf(nm, sizeof nm, "jj%d", t);
        jv0[t] = ir_var_new(a, nm, je[t + 2]);
    }
    /* x = ((x0*e1 + x1)*e2 + x2)*e3 + x3 */
    Expr *r = mm_v(&m, iv[0]), *c = mm_v(&m, jv[0]), *r0 = NULL, *c0 = NULL;
    for (int t = 1; t < 4; t++) {
        if (t == 2) {
            r0 = expr_iadd(a, expr_imul(a, r, mm_c(&m, ie[2])), mm_v(&m, iv0[0]));
            r0 = expr_iadd(a, expr_imul(a, r0, mm_c(&m, ie[3])), mm_v(&m, iv0[1]));
            c0 = expr_iadd(a, expr_imul(a, c, mm_c(&m, je[2])), mm_v(&m, jv0[0]));
            c0 = expr_iadd(a, expr_imul(a, c0, mm_c(&m, je[3])), mm_v(&m, jv0[1]));
        }
        r = expr_iadd(a, expr_imul(a, r, mm_c(&m, ie[t])), mm_v(&m, iv[t]));
        c = expr_iadd(a, expr_imul(a, c, mm_c(&m, je[t])), mm_v(&m, jv[t]));
    }
    Expr *kx = expr_iadd(a, expr_imul(a, mm_v(&m, kv[0]), mm_c(&m, ke[1])), mm_v(&m, kv[1]));
    LStmt *init = ls_for(a, iv0[0], ie[2], LOOP_SERIAL,
                         ls_for(a, jv0[0], je[2], LOOP_SERIAL,
                                ls_for(a, iv0[1], ie[3], k_i3,
                                       ls_for(a, jv0[1], je[3], k_j3, mm_init(&m, r0, c0)))));
    LStmt *upd = ls_for(
        a, kv[0], ke[0], LOOP_SERIAL,
        ls_for(a, iv[2], ie[2], LOOP_SERIAL,
               ls_for(a, jv[2], je[2], LOOP_SERIAL,
                      ls_for(a, kv[1], ke[1], LOOP_SERIAL,
                             ls_for(a, iv[3], ie[3], k_i3,
                                    ls_for(a, jv[3], je[3], k_j3, mm_update(&m, r, c, kx)))))));
    f->body =
        ls_for(a, iv[0], ie[0], k_i0,
               ls_for(a, jv[0], je[0], LOOP_SERIAL,
                      ls_for(a, iv[1], ie[1], LOOP_SERIAL,
                             ls_for(a, jv[1], je[1], LOOP_SERIAL, mm_block2(&m, init, upd)))));
    return f;
}

static LFunc *mm_build(Arena *a, MmVariant var, int64_t M, int64_t N, int64_t K, bool flat)
{
    if (var == MM_SSRSRS) {
        const int64_t ie[4] = {M / 32, 2, 4, 4}, je[4] = {N / 64, 2, 2, 16}, ke[2] = {K / 4, 4};
        return mm_build_tiles(a, M, N, K, ie, je, ke, LOOP_PARALLEL, LOOP_UNROLLED,
                              LOOP_VECTORIZED);
    }
    LFunc *f = mm_func(a, M, N, K, flat);
    MmCtx m = {a, f, flat};
    Var *i = ir_var_new(a, "i", M), *j = ir_var_new(a, "j", N), *k = ir_var_new(a, "k", K);
    switch (var) {
    case MM_IJK: {
        LStmt *kl =
            ls_for(a, k, K, LOOP_SERIAL, mm_update(&m, mm_v(&m, i), mm_v(&m, j), mm_v(&m, k)));
        LStmt *body = mm_block2(&m, mm_init(&m, mm_v(&m, i), mm_v(&m, j)), kl);
        f->body = ls_for(a, i, M, LOOP_SERIAL, ls_for(a, j, N, LOOP_SERIAL, body));
        break;
    }
    case MM_IKJ: {
        Var *j0 = ir_var_new(a, "j0", N);
        LStmt *init = ls_for(a, j0, N, LOOP_SERIAL, mm_init(&m, mm_v(&m, i), mm_v(&m, j0)));
        LStmt *upd = ls_for(
            a, k, K, LOOP_SERIAL,
            ls_for(a, j, N, LOOP_SERIAL, mm_update(&m, mm_v(&m, i), mm_v(&m, j), mm_v(&m, k))));
        f->body = ls_for(a, i, M, LOOP_SERIAL, mm_block2(&m, init, upd));
        break;
    }
    case MM_TILED: {
        Var *io = ir_var_new(a, "io", M / 4), *ii = ir_var_new(a, "ii", 4);
        Var *jo = ir_var_new(a, "jo", N / 16), *jv = ir_var_new(a, "jv", 16);
        Var *ii0 = ir_var_new(a, "ii0", 4), *jv0 = ir_var_new(a, "jv0", 16);
        Expr *r = expr_iadd(a, expr_imul(a, mm_v(&m, io), mm_c(&m, 4)), mm_v(&m, ii));
        Expr *c = expr_iadd(a, expr_imul(a, mm_v(&m, jo), mm_c(&m, 16)), mm_v(&m, jv));
        Expr *r0 = expr_iadd(a, expr_imul(a, mm_v(&m, io), mm_c(&m, 4)), mm_v(&m, ii0));
        Expr *c0 = expr_iadd(a, expr_imul(a, mm_v(&m, jo), mm_c(&m, 16)), mm_v(&m, jv0));
        LStmt *init = ls_for(a, ii0, 4, LOOP_UNROLLED,
                             ls_for(a, jv0, 16, LOOP_VECTORIZED, mm_init(&m, r0, c0)));
        LStmt *upd =
            ls_for(a, k, K, LOOP_SERIAL,
                   ls_for(a, ii, 4, LOOP_UNROLLED,
                          ls_for(a, jv, 16, LOOP_VECTORIZED, mm_update(&m, r, c, mm_v(&m, k)))));
        f->body = ls_for(a, io, M / 4, LOOP_PARALLEL,
                         ls_for(a, jo, N / 16, LOOP_SERIAL, mm_block2(&m, init, upd)));
        break;
    }
    case MM_SSRSRS:
        break;
    }
    return f;
}

#endif
