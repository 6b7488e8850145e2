/* tests/test_tune_features.c: feature rows of hand-built LoopIR (tune/features.c).
 *
 * Matmul variants (i,j,k; i,k,j; tiled + unrolled + vectorized + parallel)
 * must show what a cost model needs to tell them apart: trip-scaled flop
 * counts, vector/unroll/parallel slots, B's innermost stride, reuse,
 * footprints, cache lines and the arithmetic intensity curve.  Also the
 * affine index helper, guards, allocations, 2-D vs flat indices, the
 * row-capacity protocol, and the time per candidate (printed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testlib.h"
#include "tune/features.h"
#include "tune_fixtures.h"

enum { M = 64, N = 128, K = 32 };
/* Buffer slots of the update store: by bytes per iteration C (read and
 * written) comes first; A and B tie and are ordered by distinct bytes:
 * B (K*N) before A (M*K). */
enum { SC = 0, SB = 1, SA = 2 };

static bool near(float got, double want)
{
    return fabs(got - tune_slog(want)) < 1e-4;
}

#define CHECK_SLOT(row, slot, want)                                                                \
    CHECKF(near((row)[slot], want), "slot %d = %g (x=%g), want slog(%g) = %g", (int)(slot),        \
           (row)[slot], tune_unslog((row)[slot]), (double)(want), tune_slog(want))

static float *buf_slot(float *row, int b)
{
    return row + KILN_FEAT_BUF0 + b * KILN_FEATURE_BUF_LEN;
}

static int features(const LFunc *f, float *rows, int max)
{
    int n = -1;
    kiln_error e = {0};
    int rc = tune_features(f, rows, max, &n, &e);
    CHECKF(rc == KILN_OK, "tune_features: %s", e.msg);
    return n;
}

static void test_affine(void)
{
    Arena *a = arena_new();
    Var *i = ir_var_new(a, "i", 8), *j = ir_var_new(a, "j", 16);
    Var *vars[2] = {i, j};
    Expr *ei = expr_var(a, i), *ej = expr_var(a, j);
    TuneAffine t;
    /* i*16 + j + 3 */
    Expr *lin =
        expr_iadd(a, expr_iadd(a, expr_imul(a, ei, expr_iconst(a, 16)), ej), expr_iconst(a, 3));
    CHECK(tune_affine(lin, vars, 2, &t));
    CHECK(t.coef[0] == 16 && t.coef[1] == 1 && t.offset == 3 && t.inexact == 0);
    CHECK(t.lo == 3 && t.hi == 7 * 16 + 15 + 3);
    /* (i*16 + j) / 16 == i exactly; j's slope 1/16 is an estimate */
    Expr *ij = expr_iadd(a, expr_imul(a, ei, expr_iconst(a, 16)), ej);
    CHECK(tune_affine(expr_idiv(a, ij, 16), vars, 2, &t));
    CHECK(t.coef[0] == 1 && fabs(t.coef[1] - 1.0 / 16) < 1e-12);
    CHECK(!(t.inexact & 1) && (t.inexact & 2));
    /* (i*16 + j) % 16: j's slope kept, marked inexact; range [0,16) */
    CHECK(tune_affine(expr_imod(a, ij, 16), vars, 2, &t));
    CHECK(t.coef[1] == 1 && (t.inexact & 2) && t.lo == 0 && t.hi == 15);
    /* j % 16 is j (range fits) */
    CHECK(tune_affine(expr_imod(a, ej, 16), vars, 2, &t));
    CHECK(t.coef[1] == 1 && t.inexact == 0);
    /* 2 - j */
    CHECK(tune_affine(expr_bin(a, EXPR_SUB, DT_I64, expr_iconst(a, 2), ej), vars, 2, &t));
    CHECK(t.coef[1] == -1 && t.offset == 2 && t.lo == -13 && t.hi == 2);
    /* i*j: non-linear, slopes bounded by the other factor */
    CHECK(tune_affine(expr_bin(a, EXPR_MUL, DT_I64, ei, ej), vars, 2, &t));
    CHECK(t.coef[0] == 15 && t.coef[1] == 7 && t.inexact == 3);
    /* min(i, 3) */
    CHECK(tune_affine(expr_bin(a, EXPR_MIN, DT_I64, ei, expr_iconst(a, 3)), vars, 2, &t));
    CHECK(t.coef[0] == 1 && (t.inexact & 1) && t.hi == 3);
    arena_free(a);
}

static void test_matmul(void)
{
    Arena *a = arena_new();
    float ijk[4 * KILN_FEATURE_LEN], ikj[4 * KILN_FEATURE_LEN], til[4 * KILN_FEATURE_LEN];
    LFunc *f_ijk = mm_build(a, MM_IJK, M, N, K, true);
    LFunc *f_ikj = mm_build(a, MM_IKJ, M, N, K, true);
    LFunc *f_til = mm_build(a, MM_TILED, M, N, K, true);
    CHECK(tune_count_stores(f_ijk) == 2);
    CHECK(features(f_ijk, ijk, 4) == 2);
    CHECK(features(f_ikj, ikj, 4) == 2);
    CHECK(features(f_til, til, 4) == 2);
    const double mnk = (double)M * N * K;
    float *u_ijk = ijk + KILN_FEATURE_LEN, *u_ikj = ikj + KILN_FEATURE_LEN;
    float *u_til = til + KILN_FEATURE_LEN;

    /* init rows: no flops, not an update; the update rows: M*N*K fmas */
    CHECK(ijk[KILN_FEAT_FLOPS] == 0 && ijk[KILN_FEAT_IS_UPDATE] == 0);
    CHECK_SLOT(ijk, KILN_FEAT_OUTER_PROD, (double)M * N);
    for (float *u = u_ijk; u; u = u == u_ijk ? u_ikj : u == u_ikj ? u_til : NULL) {
        CHECK_SLOT(u, KILN_FEAT_FLOAT_FMA, mnk);
        CHECK_SLOT(u, KILN_FEAT_FLOPS, 2 * mnk);
        CHECK(u[KILN_FEAT_FLOAT_ADD] == 0 && u[KILN_FEAT_FLOAT_MUL] == 0);
        CHECK_SLOT(u, KILN_FEAT_LOADS, 3 * mnk);
        CHECK(u[KILN_FEAT_IS_UPDATE] == 1);
        CHECK_SLOT(u, KILN_FEAT_OUTER_PROD, mnk);
        CHECK_SLOT(u, KILN_FEAT_NUM_STORES, 2);
        CHECK_SLOT(u, KILN_FEAT_STORE_ELEM, 4);
        /* buffers by bytes: C (read+write) first, then A, B */
        CHECK(buf_slot(u, SC)[KILN_FEAT_B_RW] == 1);
        CHECK(buf_slot(u, SA)[KILN_FEAT_B_READ] == 1 && buf_slot(u, SB)[KILN_FEAT_B_READ] == 1);
        CHECK_SLOT(buf_slot(u, SC), KILN_FEAT_B_BYTES, 8 * mnk);
        CHECK_SLOT(buf_slot(u, SC), KILN_FEAT_B_ACCESSES, 2);
        CHECK_SLOT(buf_slot(u, SB), KILN_FEAT_B_BYTES, 4 * mnk);
        CHECK_SLOT(buf_slot(u, SC), KILN_FEAT_B_UNIQUE_BYTES, 4.0 * M * N);
        CHECK_SLOT(buf_slot(u, SA), KILN_FEAT_B_UNIQUE_BYTES, 4.0 * M * K);
        CHECK_SLOT(buf_slot(u, SB), KILN_FEAT_B_UNIQUE_BYTES, 4.0 * K * N);
        CHECK_SLOT(buf_slot(u, SB), KILN_FEAT_B_UNIQUE_LINES, 4.0 * K * N / 64);
        CHECK(buf_slot(u, 3)[KILN_FEAT_B_READ] == 0 && buf_slot(u, 3)[KILN_FEAT_B_BYTES] == 0);
        /* whole-nest arithmetic intensity: 2MNK flops over all distinct bytes */
        CHECK_SLOT(u, KILN_FEAT_AI + KILN_FEATURE_AI_POINTS - 1,
                   2 * mnk / (4.0 * (M * N + M * K + K * N)));
    }

    /* innermost stride of B: N in i,j,k (k innermost), 1 in i,k,j */
    CHECK_SLOT(buf_slot(u_ijk, SB), KILN_FEAT_B_STRIDE, N);
    CHECK_SLOT(buf_slot(u_ikj, SB), KILN_FEAT_B_STRIDE, 1);
    CHECK_SLOT(buf_slot(u_til, SB), KILN_FEAT_B_STRIDE, 1);
    CHECK_SLOT(buf_slot(u_ijk, SA), KILN_FEAT_B_STRIDE, 1);
    /* cache lines: B strided touches a line per access; unit stride 1 per 16 */
    CHECK_SLOT(buf_slot(u_ijk, SB), KILN_FEAT_B_LINES, mnk);
    CHECK_SLOT(buf_slot(u_ikj, SB), KILN_FEAT_B_LINES, mnk / 16);
    CHECK(u_ijk[KILN_FEAT_B_LINES] >= 0);

    /* reuse: C is invariant in k (innermost in ijk: distance 1 iteration,
     * reused K times); B is invariant in i (outermost: distance N*K) */
    float *c_ijk = buf_slot(u_ijk, SC), *b_ijk = buf_slot(u_ijk, SB);
    CHECK(c_ijk[KILN_FEAT_B_REUSE_LOOP] == 1 && c_ijk[KILN_FEAT_B_REUSE_NONE] == 0);
    CHECK_SLOT(c_ijk, KILN_FEAT_B_REUSE_ITERS, 1);
    CHECK_SLOT(c_ijk, KILN_FEAT_B_REUSE_COUNT, K);
    CHECK(b_ijk[KILN_FEAT_B_REUSE_LOOP] == 1);
    CHECK_SLOT(b_ijk, KILN_FEAT_B_REUSE_ITERS, (double)N * K);
    CHECK_SLOT(b_ijk, KILN_FEAT_B_REUSE_COUNT, M);
    /* inside the i loop the update touches one row of A and C, all of B */
    CHECK_SLOT(b_ijk, KILN_FEAT_B_REUSE_BYTES, 4.0 * (K + N + K * N));

    /* annotations: none in the naive nests */
    CHECK(u_ijk[KILN_FEAT_VEC + KILN_FEAT_ANN_NUM] == 0 && u_ijk[KILN_FEAT_PAR] == 0);
    CHECK_SLOT(u_ijk, KILN_FEAT_NUM_LOOPS, 3);
    CHECK_SLOT(u_ijk, KILN_FEAT_INNER_EXTENT, K);
    /* tiled: vector width 16 innermost, unroll 4 in the middle, parallel outer */
    CHECK_SLOT(u_til, KILN_FEAT_VEC + KILN_FEAT_ANN_NUM, 1);
    CHECK_SLOT(u_til, KILN_FEAT_VEC + KILN_FEAT_ANN_INNER, 16);
    CHECK_SLOT(u_til, KILN_FEAT_VEC + KILN_FEAT_ANN_PROD, 16);
    CHECK(u_til[KILN_FEAT_VEC + KILN_FEAT_ANN_POS_INNER] == 1);
    CHECK(u_til[KILN_FEAT_VEC + KILN_FEAT_ANN_POS_OUTER] == 0);
    CHECK(u_til[KILN_FEAT_VEC + KILN_FEAT_ANN_REDUCE] == 0);
    CHECK_SLOT(u_til, KILN_FEAT_UNROLL + KILN_FEAT_ANN_INNER, 4);
    CHECK(u_til[KILN_FEAT_UNROLL + KILN_FEAT_ANN_POS_MIDDLE] == 1);
    CHECK_SLOT(u_til, KILN_FEAT_PAR + KILN_FEAT_ANN_PROD, M / 4);
    CHECK(u_til[KILN_FEAT_PAR + KILN_FEAT_ANN_POS_OUTER] == 1);
    CHECK_SLOT(u_til, KILN_FEAT_NUM_LOOPS, 5);
    /* vector access kinds: C and B contiguous along jv, A broadcast */
    CHECK(buf_slot(u_til, SC)[KILN_FEAT_B_VEC_CONTIG] == 1);
    CHECK(buf_slot(u_til, SA)[KILN_FEAT_B_VEC_BCAST] == 1);
    CHECK(buf_slot(u_til, SB)[KILN_FEAT_B_VEC_CONTIG] == 1);
    CHECK(buf_slot(u_ijk, SB)[KILN_FEAT_B_VEC_CONTIG] == 0);
    /* the tiled init row also carries the vector slot */
    CHECK_SLOT(til, KILN_FEAT_VEC + KILN_FEAT_ANN_INNER, 16);
    /* the tile of C stays put across k: reuse distance is the 4x16 tile */
    CHECK_SLOT(buf_slot(u_til, SC), KILN_FEAT_B_REUSE_ITERS, 64);
    CHECK_SLOT(buf_slot(u_til, SC), KILN_FEAT_B_REUSE_COUNT, K);
    /* intensity grows as the nest grows: the innermost point is lowest */
    CHECK(u_til[KILN_FEAT_AI + KILN_FEATURE_AI_POINTS - 1] > u_til[KILN_FEAT_AI]);
    /* group 7: loops innermost first; the tiled update runs io(par 16) jo k
     * ii(unroll 4) jv(vec 16) */
    CHECK_SLOT(u_ijk, KILN_FEAT_LOOP0 + KILN_FEAT_L_EXTENT, K);
    CHECK(u_ijk[KILN_FEAT_LOOP0 + KILN_FEAT_L_REDUCE] == 1);
    CHECK(u_ijk[KILN_FEAT_LOOP0 + 3 + KILN_FEAT_L_REDUCE] == 0);
    CHECK(u_ijk[KILN_FEAT_LOOP0 + 3 * 3] == 0); /* only 3 loops: zero-padded */
    CHECK_SLOT(u_til, KILN_FEAT_LOOP0 + KILN_FEAT_L_EXTENT, 16);
    CHECK(u_til[KILN_FEAT_LOOP0 + KILN_FEAT_L_KIND] == 1);
    CHECK_SLOT(u_til, KILN_FEAT_LOOP0 + 3 + KILN_FEAT_L_EXTENT, 4);
    CHECK(u_til[KILN_FEAT_LOOP0 + 3 + KILN_FEAT_L_KIND] == 2);
    CHECK(u_til[KILN_FEAT_LOOP0 + 6 + KILN_FEAT_L_REDUCE] == 1);
    CHECK(u_til[KILN_FEAT_LOOP0 + 12 + KILN_FEAT_L_KIND] == 3);
    /* register tile: 4 unrolled rows x 16 lanes of C, 4 zmm registers */
    CHECK_SLOT(u_til, KILN_FEAT_REG_TILE, 64);
    CHECK_SLOT(u_til, KILN_FEAT_REG_VECS, 4);
    CHECK_SLOT(u_til, KILN_FEAT_UNROLL_BODY, 64);
    CHECK_SLOT(u_ijk, KILN_FEAT_REG_TILE, 1);
    CHECK_SLOT(u_ijk, KILN_FEAT_UNROLL_BODY, 1);
    /* ijk: the j,k nest (A row, all of B 16K, C row) fits L1, adding i
     * (56K) does not; everything fits L2 and is moved in once */
    CHECK_SLOT(u_ijk, KILN_FEAT_L1_TRIPS, (double)N * K);
    CHECK_SLOT(u_ijk, KILN_FEAT_L2_TRIPS, mnk);
    CHECK_SLOT(u_ijk, KILN_FEAT_L2_BYTES, 4.0 * (M * K + K * N + M * N));
    CHECK(u_ijk[KILN_FEAT_L1_BYTES] > u_ijk[KILN_FEAT_L2_BYTES]);
    CHECK(u_ijk[KILN_FEAT_L1_AI] < u_ijk[KILN_FEAT_L2_AI]);
    /* strides along the innermost loop: ijk moves B by N per k, A by 1 */
    CHECK_SLOT(u_ijk, KILN_FEAT_INNER_STRIDE + SB, N);
    CHECK_SLOT(u_ijk, KILN_FEAT_INNER_STRIDE + SA, 1);
    CHECK(u_ijk[KILN_FEAT_INNER_STRIDE + SC] == 0);
    CHECK_SLOT(u_til, KILN_FEAT_INNER_STRIDE + SB, 1);
    CHECK(u_til[KILN_FEAT_INNER_STRIDE + SA] == 0);
    /* rows differ between variants (the model can tell them apart) */
    CHECK(memcmp(u_ijk, u_ikj, sizeof(float) * KILN_FEATURE_LEN) != 0);

    /* 2-D indices give the same rows as flat ones */
    float two[4 * KILN_FEATURE_LEN];
    for (int v = MM_IJK; v <= MM_TILED; v++) {
        float *want = v == MM_IJK ? ijk : v == MM_IKJ ? ikj : til;
        CHECK(features(mm_build(a, (MmVariant)v, M, N, K, false), two, 4) == 2);
        bool same = true;
        for (int s = 0; s < 2 * KILN_FEATURE_LEN; s++)
            if (two[s] != want[s]) {
                /* index arithmetic is counted differently without flattening */
                int slot = s % KILN_FEATURE_LEN;
                if (slot != KILN_FEAT_IDX_ARITH) {
                    fprintf(stderr, "variant %d: slot %s differs: %g vs %g\n", v,
                            kiln_feature_name(slot), two[s], want[s]);
                    same = false;
                }
            }
        CHECK(same);
    }

    /* capacity protocol: too small -> EINVAL with the needed count */
    int n = -1;
    kiln_error e = {0};
    CHECK(tune_features(f_ijk, ijk, 1, &n, &e) == KILN_EINVAL && n == 2);
    CHECK(strstr(e.msg, "2 stores") != NULL);
    CHECK(tune_features(f_ijk, NULL, 0, &n, NULL) == KILN_EINVAL && n == 2);
    arena_free(a);
}

/* out[i] = exp(in[i]) over a split loop with a guarded tail, through a
 * local staging buffer, to check guards, allocations and math counts. */
static void test_guards_allocs(void)
{
    Arena *a = arena_new();
    LFunc *f = arena_alloc(a, sizeof *f);
    f->name = "expg";
    f->nbufs = 3;
    f->nargs = 2;
    f->flat = true;
    f->bufs = arena_alloc(a, sizeof(LBuf) * 3);
    f->bufs[0] = (LBuf){.name = "in", .dt = DT_F64, .kind = T_INPUT, .ndim = 1, .dims = {100}};
    f->bufs[1] = (LBuf){.name = "out", .dt = DT_F64, .kind = T_OUTPUT, .ndim = 1, .dims = {100}};
    f->bufs[2] = (LBuf){.name = "t", .dt = DT_F64, .kind = T_LOCAL, .ndim = 1, .dims = {8}};
    Var *io = ir_var_new(a, "io", 13), *ii = ir_var_new(a, "ii", 8), *i2 = ir_var_new(a, "i2", 8);
    Expr *i = expr_iadd(a, expr_imul(a, expr_var(a, io), expr_iconst(a, 8)), expr_var(a, ii));
    Expr *i_2 = expr_iadd(a, expr_imul(a, expr_var(a, io), expr_iconst(a, 8)), expr_var(a, i2));
    Expr *ld = expr_load(a, DT_F64, 0, 1, &i);
    Expr *tix = expr_var(a, ii);
    LStmt *st1 = ls_store(a, 2, 1, &tix, expr_un(a, EXPR_EXP, DT_F64, ld));
    Expr *guard = expr_bin(a, EXPR_LT, DT_BOOL, i, expr_iconst(a, 100));
    LStmt *l1 = ls_for(a, ii, 8, LOOP_SERIAL, ls_if(a, guard, st1, NULL));
    Expr *tix2 = expr_var(a, i2);
    Expr *guard2 = expr_bin(a, EXPR_LT, DT_BOOL, i_2, expr_iconst(a, 100));
    LStmt *st2 = ls_store(a, 1, 1, &i_2, expr_load(a, DT_F64, 2, 1, &tix2));
    LStmt *l2 = ls_for(a, i2, 8, LOOP_SERIAL, ls_if(a, guard2, st2, NULL));
    LStmt *both[2] = {l1, l2};
    f->body = ls_for(a, io, 13, LOOP_SERIAL, ls_alloc(a, 2, ls_block(a, 2, both)));
    float rows[2 * KILN_FEATURE_LEN];
    CHECK(features(f, rows, 2) == 2);
    float *r1 = rows, *r2 = rows + KILN_FEATURE_LEN;
    CHECK_SLOT(r1, KILN_FEAT_FLOAT_MATH, 13 * 8);
    CHECK_SLOT(r1, KILN_FEAT_NUM_GUARDS, 1);
    CHECK_SLOT(r1, KILN_FEAT_STORE_ELEM, 8);
    CHECK_SLOT(r1, KILN_FEAT_ALLOC_BYTES, 64);
    CHECK_SLOT(r1, KILN_FEAT_ALLOC_OUTER_PROD, 13);
    CHECK_SLOT(r1, KILN_FEAT_ALLOC_LIVE_BYTES, 64);
    CHECK_SLOT(r1, KILN_FEAT_ALLOC_NUM, 1);
    CHECK(buf_slot(r1, 0)[KILN_FEAT_B_LOCAL] + buf_slot(r1, 1)[KILN_FEAT_B_LOCAL] == 1);
    /* the store to out is not to a local: no alloc bytes, but still inside one */
    CHECK(r2[KILN_FEAT_ALLOC_BYTES] == 0);
    CHECK_SLOT(r2, KILN_FEAT_ALLOC_NUM, 1);
    CHECK(r2[KILN_FEAT_FLOPS] == 0);
    /* f64 in, 104 elements visited but only 100 exist: capped footprint */
    int in_slot = buf_slot(r1, 0)[KILN_FEAT_B_READ] == 1 ? 0 : 1;
    CHECK_SLOT(buf_slot(r1, in_slot), KILN_FEAT_B_UNIQUE_BYTES, 800);
    CHECK_SLOT(buf_slot(r1, in_slot), KILN_FEAT_B_UNIQUE_LINES, 13);
    /* every slot has a name */
    for (int s = 0; s < KILN_FEATURE_LEN; s++)
        CHECK(kiln_feature_name(s) && kiln_feature_name(s)[0]);
    CHECK(!kiln_feature_name(KILN_FEATURE_LEN) && !kiln_feature_name(-1));
    CHECK(!strcmp(kiln_feature_name(KILN_FEAT_VEC + KILN_FEAT_ANN_INNER), "vec.inner"));
    CHECK(!strcmp(kiln_feature_name(KILN_FEAT_BUF0 + KILN_FEATURE_BUF_LEN + KILN_FEAT_B_STRIDE),
                  "buf1.stride"));
    CHECK(!strcmp(kiln_feature_name(KILN_FEAT_LOOP0 + 3 + KILN_FEAT_L_KIND), "loop1.kind"));
    CHECK(!strcmp(kiln_feature_name(KILN_FEAT_REG_VECS), "reg_vecs"));
    CHECK(!strcmp(kiln_feature_name(KILN_FEAT_INNER_STRIDE + 4), "buf4.inner_stride"));
    arena_free(a);
}

/* A 3-tap stencil: out[i] = in[i] + in[i+1] + in[i+2] touches n+2 inputs. */
static void test_stencil(void)
{
    Arena *a = arena_new();
    LFunc *f = arena_alloc(a, sizeof *f);
    f->name = "blur";
    f->nbufs = f->nargs = 2;
    f->flat = true;
    f->bufs = arena_alloc(a, sizeof(LBuf) * 2);
    f->bufs[0] = (LBuf){.name = "in", .dt = DT_F32, .kind = T_INPUT, .ndim = 1, .dims = {1026}};
    f->bufs[1] = (LBuf){.name = "out", .dt = DT_F32, .kind = T_OUTPUT, .ndim = 1, .dims = {1024}};
    Var *i = ir_var_new(a, "i", 1024);
    Expr *x[3];
    for (int t = 0; t < 3; t++) {
        Expr *ix = expr_iadd(a, expr_var(a, i), expr_iconst(a, t));
        x[t] = expr_load(a, DT_F32, 0, 1, &ix);
    }
    Expr *sum = expr_bin(a, EXPR_ADD, DT_F32, expr_bin(a, EXPR_ADD, DT_F32, x[0], x[1]), x[2]);
    Expr *oi = expr_var(a, i);
    f->body = ls_for(a, i, 1024, LOOP_SERIAL, ls_store(a, 1, 1, &oi, sum));
    float row[KILN_FEATURE_LEN];
    CHECK(features(f, row, 1) == 1);
    CHECK_SLOT(row, KILN_FEAT_FLOAT_ADD, 2 * 1024);
    CHECK_SLOT(buf_slot(row, 0), KILN_FEAT_B_ACCESSES, 3);
    CHECK_SLOT(buf_slot(row, 0), KILN_FEAT_B_UNIQUE_BYTES, 4.0 * 1026);
    CHECK_SLOT(buf_slot(row, 0), KILN_FEAT_B_STRIDE, 1);
    CHECK(buf_slot(row, 0)[KILN_FEAT_B_REUSE_NONE] == 1);
    arena_free(a);
}

/* CPU time of this thread: other processes on a shared machine do not
 * inflate it */
static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void test_speed(void)
{
    Arena *a = arena_new();
    /* a 1024^3 matmul tiled as the CPU design-space rules do: 10 loops */
    LFunc *f = mm_build(a, MM_SSRSRS, 1024, 1024, 1024, true);
    float rows[4 * KILN_FEATURE_LEN];
    int iters = 20000;
    double t0 = now_s();
    int n = 0, bad = 0;
    for (int it = 0; it < iters; it++)
        bad |= tune_features(f, rows, 4, &n, NULL);
    CHECK(!bad && n == 2);
    float *u = rows + KILN_FEATURE_LEN;
    CHECK_SLOT(u, KILN_FEAT_FLOPS, 2.0 * 1024 * 1024 * 1024);
    CHECK_SLOT(u, KILN_FEAT_NUM_LOOPS, 10);
    CHECK_SLOT(u, KILN_FEAT_VEC + KILN_FEAT_ANN_INNER, 16);
    CHECK_SLOT(u, KILN_FEAT_UNROLL + KILN_FEAT_ANN_INNER, 4);
    CHECK_SLOT(u, KILN_FEAT_PAR + KILN_FEAT_ANN_PROD, 32);
    for (int b = 0; b < 3; b++)
        CHECK_SLOT(buf_slot(u, b), KILN_FEAT_B_UNIQUE_BYTES, 4.0 * 1024 * 1024);
    if (getenv("KILN_FEATURES_DUMP"))
        for (int r = 0; r < n; r++)
            for (int s = 0; s < KILN_FEATURE_LEN; s++)
                if (rows[r * KILN_FEATURE_LEN + s] != 0)
                    printf("row %d %-22s %10.4f  (%g)\n", r, kiln_feature_name(s),
                           rows[r * KILN_FEATURE_LEN + s],
                           tune_unslog(rows[r * KILN_FEATURE_LEN + s]));
    double us = (now_s() - t0) / iters * 1e6;
    printf("features: %.2f us CPU per candidate (SSRSRS matmul: 2 stores, 10 loops)\n", us);
    CHECKF(us < 500, "%.1f us per candidate", us); /* generous: sanitizer builds */
    arena_free(a);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_affine();
    test_matmul();
    test_guards_allocs();
    test_stencil();
    test_speed();
    return t_done("test_tune_features");
}
