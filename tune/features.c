/* tune/features.c: per-store feature rows of a LoopIR function.
 *
 * One walk over the statement tree keeps the stack of enclosing loops,
 * guards and allocations; at each LS_STORE it counts the arithmetic of the
 * stored value, runs an affine analysis of every access's (flattened)
 * index in the enclosing loop variables, and derives footprints, strides,
 * reuse and arithmetic intensity from the coefficients alone (no
 * simulation, no allocation, no LLVM).  Invariant: a row depends only on
 * the LFunc, and every slot means what include/kiln/tune.h says. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tune/features.h"

_Static_assert(KILN_FEAT_INNER_EXTENT + 1 == KILN_FEAT_VEC, "feature layout: group 1");
_Static_assert(KILN_FEAT_PAR + 7 == KILN_FEAT_BUF0, "feature layout: group 2");
_Static_assert(KILN_FEAT_BUF0 + KILN_FEATURE_BUFS * KILN_FEATURE_BUF_LEN == KILN_FEAT_AI,
               "feature layout: group 3");
_Static_assert(KILN_FEAT_B_LOCAL + 1 == KILN_FEATURE_BUF_LEN, "feature layout: buffer group");
_Static_assert(KILN_FEAT_AI + KILN_FEATURE_AI_POINTS == KILN_FEAT_ALLOC_BYTES,
               "feature layout: group 4");
_Static_assert(KILN_FEAT_NUM_STORES + 1 == KILN_FEAT_LOOP0, "feature layout: group 6");
_Static_assert(KILN_FEAT_LOOP0 + 3 * KILN_FEATURE_LOOPS == KILN_FEAT_REG_TILE,
               "feature layout: group 7 loops");
_Static_assert(KILN_FEAT_L2_AI + 1 == KILN_FEAT_INNER_STRIDE, "feature layout: group 7 model");
_Static_assert(KILN_FEAT_INNER_STRIDE + KILN_FEATURE_BUFS == KILN_FEATURE_LEN,
               "feature layout: length");

enum {
    MAXD = TUNE_FEAT_MAX_DEPTH,
    MAX_ACC = 64,   /* accesses analysed per store; more are only counted */
    MAX_BUF = 16,   /* distinct buffers per store */
    MAX_ALLOC = 16, /* enclosing allocations tracked */
    LINE = 64,      /* cache line bytes */
    VEC_BYTES = 64  /* a vector register (AVX-512) */
};

/* Cache sizes of the register/cache model (group 7). */
static const double L1_BYTES = 48 * 1024.0, L2_BYTES = 2 * 1024 * 1024.0;

/* ------------------------------------------------------ affine analysis */
typedef struct AffCtx {
    Var *const *vars;
    const int64_t *ext;
    int n;
} AffCtx;

static void aff_const(const AffCtx *cx, TuneAffine *o, double v)
{
    memset(o->coef, 0, sizeof(double) * (size_t)cx->n);
    o->offset = o->lo = o->hi = v;
    o->inexact = 0;
}

static int find_var(const AffCtx *cx, const Var *v)
{
    for (int p = cx->n - 1; p >= 0; p--) /* inner loops are the common case */
        if (cx->vars[p] == v)
            return p;
    return -1;
}

/* Every loop variable used under e gets a coefficient of at least 1
 * (conservative: e's value is unknown, e.g. an index read from memory). */
static void mark_vars(const AffCtx *cx, const Expr *e, TuneAffine *o)
{
    if (!e)
        return;
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
        return;
    case EXPR_VAR: {
        int p = find_var(cx, e->u.var);
        if (p >= 0) {
            if (o->coef[p] < 1)
                o->coef[p] = 1;
            o->inexact |= 1ull << p;
        }
        return;
    }
    case EXPR_LOAD:
        for (int i = 0; i < e->u.load.n; i++)
            mark_vars(cx, e->u.load.idx[i], o);
        return;
    default:
        mark_vars(cx, e->u.op.a, o);
        mark_vars(cx, e->u.op.b, o);
        mark_vars(cx, e->u.op.c, o);
    }
}

static uint64_t nonzero_bits(const AffCtx *cx, const TuneAffine *a)
{
    uint64_t m = 0;
    for (int p = 0; p < cx->n; p++)
        if (a->coef[p] != 0)
            m |= 1ull << p;
    return m;
}

static void aff_scale(const AffCtx *cx, TuneAffine *a, double k)
{
    for (int p = 0; p < cx->n; p++)
        a->coef[p] *= k;
    a->offset *= k;
    double x = a->lo * k, y = a->hi * k;
    a->lo = x < y ? x : y;
    a->hi = x < y ? y : x;
}

static double dmax(double a, double b)
{
    return a > b ? a : b;
}

static double dmin(double a, double b)
{
    return a < b ? a : b;
}

/* min/max/select: either side may be chosen, so take the larger slope. */
static void aff_merge(const AffCtx *cx, TuneAffine *o, const TuneAffine *b, bool is_min,
                      bool is_max)
{
    for (int p = 0; p < cx->n; p++)
        if (o->coef[p] != b->coef[p]) {
            if (fabs(b->coef[p]) > fabs(o->coef[p]))
                o->coef[p] = b->coef[p];
            o->inexact |= 1ull << p;
        }
    o->inexact |= b->inexact;
    o->offset = is_min   ? dmin(o->offset, b->offset)
                : is_max ? dmax(o->offset, b->offset)
                         : o->offset;
    if (is_min) {
        o->lo = dmin(o->lo, b->lo);
        o->hi = dmin(o->hi, b->hi);
    } else if (is_max) {
        o->lo = dmax(o->lo, b->lo);
        o->hi = dmax(o->hi, b->hi);
    } else {
        o->lo = dmin(o->lo, b->lo);
        o->hi = dmax(o->hi, b->hi);
    }
}

static void aff_rec(const AffCtx *cx, const Expr *e, TuneAffine *o)
{
    TuneAffine b;
    switch (e->kind) {
    case EXPR_INT:
        aff_const(cx, o, (double)e->u.i);
        return;
    case EXPR_FLOAT:
        aff_const(cx, o, e->u.f);
        return;
    case EXPR_VAR: {
        int p = find_var(cx, e->u.var);
        aff_const(cx, o, 0);
        int64_t ext = p >= 0 ? cx->ext[p] : e->u.var->extent;
        o->hi = ext > 0 ? (double)(ext - 1) : 0;
        if (p >= 0)
            o->coef[p] = 1;
        return;
    }
    case EXPR_LOAD:
        aff_const(cx, o, 0);
        o->hi = 2147483647.0;
        mark_vars(cx, e, o);
        return;
    case EXPR_ADD:
    case EXPR_SUB: {
        double s = e->kind == EXPR_ADD ? 1 : -1;
        aff_rec(cx, e->u.op.a, o);
        aff_rec(cx, e->u.op.b, &b);
        for (int p = 0; p < cx->n; p++)
            o->coef[p] += s * b.coef[p];
        o->offset += s * b.offset;
        if (s > 0) {
            o->lo += b.lo;
            o->hi += b.hi;
        } else {
            o->lo -= b.hi;
            o->hi -= b.lo;
        }
        o->inexact |= b.inexact;
        return;
    }
    case EXPR_MUL: {
        aff_rec(cx, e->u.op.a, o);
        aff_rec(cx, e->u.op.b, &b);
        if (b.lo == b.hi) {
            aff_scale(cx, o, b.lo);
            return;
        }
        if (o->lo == o->hi) {
            double k = o->lo;
            *o = b; /* b holds the same n coefficients */
            aff_scale(cx, o, k);
            return;
        }
        /* x*y with both varying: slope bounded by the other factor's size */
        double ma = dmax(fabs(o->lo), fabs(o->hi)), mb = dmax(fabs(b.lo), fabs(b.hi));
        for (int p = 0; p < cx->n; p++)
            o->coef[p] = fabs(o->coef[p]) * mb + fabs(b.coef[p]) * ma;
        double c[4] = {o->lo * b.lo, o->lo * b.hi, o->hi * b.lo, o->hi * b.hi};
        o->lo = dmin(dmin(c[0], c[1]), dmin(c[2], c[3]));
        o->hi = dmax(dmax(c[0], c[1]), dmax(c[2], c[3]));
        o->offset *= b.offset;
        o->inexact |= b.inexact | nonzero_bits(cx, o);
        return;
    }
    case EXPR_DIV:
    case EXPR_MOD: {
        aff_rec(cx, e->u.op.a, o);
        aff_rec(cx, e->u.op.b, &b);
        double d = b.lo;
        if (b.lo != b.hi || d == 0 || d != floor(d)) {
            mark_vars(cx, e->u.op.b, o);
            o->inexact |= nonzero_bits(cx, o);
            double m = dmax(fabs(o->lo), fabs(o->hi));
            o->lo = -m;
            o->hi = m;
            return;
        }
        if (e->kind == EXPR_DIV) {
            uint64_t bits = 0;
            for (int p = 0; p < cx->n; p++) {
                double q = o->coef[p] / d;
                if (q != floor(q))
                    bits |= 1ull << p;
                o->coef[p] = q;
            }
            /* (16i + j) / 16 with 0 <= j < 16 is exactly i: only slopes
             * that do not divide are estimates */
            o->inexact |= bits;
            double x = floor(o->lo / d), y = floor(o->hi / d);
            o->lo = dmin(x, y);
            o->hi = dmax(x, y);
            o->offset = floor(o->offset / d);
        } else {
            double ad = fabs(d);
            if (o->lo >= 0 && o->hi < ad)
                return; /* x % d == x */
            o->inexact |= nonzero_bits(cx, o);
            o->offset = o->offset - floor(o->offset / d) * d;
            o->lo = d > 0 ? 0 : d + 1;
            o->hi = d > 0 ? d - 1 : 0;
        }
        return;
    }
    case EXPR_MIN:
    case EXPR_MAX:
        aff_rec(cx, e->u.op.a, o);
        aff_rec(cx, e->u.op.b, &b);
        aff_merge(cx, o, &b, e->kind == EXPR_MIN, e->kind == EXPR_MAX);
        return;
    case EXPR_SELECT:
        aff_rec(cx, e->u.op.b, o);
        aff_rec(cx, e->u.op.c, &b);
        aff_merge(cx, o, &b, false, false);
        return;
    case EXPR_NEG:
        aff_rec(cx, e->u.op.a, o);
        aff_scale(cx, o, -1);
        return;
    case EXPR_ABS:
        aff_rec(cx, e->u.op.a, o);
        if (o->lo < 0) {
            for (int p = 0; p < cx->n; p++)
                o->coef[p] = fabs(o->coef[p]);
            o->inexact |= nonzero_bits(cx, o);
            double m = dmax(-o->lo, o->hi);
            o->lo = o->hi < 0 ? -o->hi : 0;
            o->hi = m;
            o->offset = fabs(o->offset);
        }
        return;
    case EXPR_CAST:
        aff_rec(cx, e->u.op.a, o);
        return;
    default: /* comparisons and logic: 0 or 1 */
        aff_const(cx, o, 0);
        o->hi = 1;
        return;
    }
}

bool tune_affine(const Expr *e, Var *const *vars, int n, TuneAffine *out)
{
    if (n < 0 || n > MAXD)
        return false;
    int64_t ext[MAXD];
    for (int i = 0; i < n; i++)
        ext[i] = vars[i]->extent;
    AffCtx cx = {vars, ext, n};
    aff_rec(&cx, e, out);
    return true;
}

/* --------------------------------------------------------- walk state */
typedef struct Loop {
    Var *var;
    int64_t ext;
    LoopKind kind;
} Loop;

typedef struct Alloc {
    int buf;
    double outer; /* trips of the loops around the allocation */
} Alloc;

typedef struct Walk {
    const LFunc *f;
    float *rows;
    int max_rows, nstores;
    Var *vars[MAXD];
    int64_t ext[MAXD];
    LoopKind kind[MAXD];
    int depth;
    int guards;
    Alloc allocs[MAX_ALLOC];
    int nalloc, alloc_depth; /* alloc_depth counts beyond MAX_ALLOC too */
    bool too_deep;
} Walk;

/* ------------------------------------------------------- arithmetic */
enum {
    OP_FADD,
    OP_FMUL,
    OP_FMA,
    OP_FDIV,
    OP_MATH,
    OP_FMINMAX,
    OP_FCMP,
    OP_SELECT,
    OP_IARITH,
    OP_IDIVMOD,
    OP_XARITH,
    OP_XDIVMOD,
    OP_CAST,
    OP_LOAD,
    NOPS
};

/* dtype_is_float, inlined: count_ops asks it for every node of every
 * stored value (hundreds per conv2d store). */
static inline bool flt(DType t)
{
    return t == DT_F32 || t == DT_F64;
}

static void count_ops(const Expr *e, bool idx, double *c)
{
    if (!e)
        return;
    bool fl = flt(e->dt) && !idx;
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
    case EXPR_VAR:
        return;
    case EXPR_LOAD:
        c[OP_LOAD]++;
        for (int i = 0; i < e->u.load.n; i++)
            count_ops(e->u.load.idx[i], true, c);
        return;
    case EXPR_ADD:
    case EXPR_SUB: {
        const Expr *x = e->u.op.a, *y = e->u.op.b;
        if (fl) {
            const Expr *m = x->kind == EXPR_MUL ? x : y->kind == EXPR_MUL ? y : NULL;
            if (m && flt(m->dt)) {
                /* a*b+c contracts into one fma (2 flops) */
                c[OP_FMA]++;
                count_ops(m->u.op.a, idx, c);
                count_ops(m->u.op.b, idx, c);
                count_ops(m == x ? y : x, idx, c);
                return;
            }
            c[OP_FADD]++;
        } else {
            c[idx ? OP_XARITH : OP_IARITH]++;
        }
        break;
    }
    case EXPR_MUL:
        c[fl ? OP_FMUL : idx ? OP_XARITH : OP_IARITH]++;
        break;
    case EXPR_DIV:
    case EXPR_MOD:
        c[fl ? OP_FDIV : idx ? OP_XDIVMOD : OP_IDIVMOD]++;
        break;
    case EXPR_MIN:
    case EXPR_MAX:
    case EXPR_NEG:
    case EXPR_ABS:
        c[fl ? OP_FMINMAX : idx ? OP_XARITH : OP_IARITH]++;
        break;
    case EXPR_LT:
    case EXPR_LE:
    case EXPR_GT:
    case EXPR_GE:
    case EXPR_EQ:
    case EXPR_NE:
        c[flt(e->u.op.a->dt) && !idx ? OP_FCMP : idx ? OP_XARITH : OP_IARITH]++;
        break;
    case EXPR_AND:
    case EXPR_OR:
    case EXPR_NOT:
    case EXPR_SELECT:
        c[OP_SELECT]++;
        break;
    case EXPR_EXP:
    case EXPR_LOG:
    case EXPR_SQRT:
    case EXPR_TANH:
    case EXPR_SIGMOID:
        c[OP_MATH]++;
        break;
    case EXPR_CAST:
        c[OP_CAST]++;
        break;
    }
    count_ops(e->u.op.a, idx, c);
    count_ops(e->u.op.b, idx, c);
    count_ops(e->u.op.c, idx, c);
}

static double flops_of(const double *c)
{
    return c[OP_FADD] + c[OP_FMUL] + 2 * c[OP_FMA] + c[OP_FDIV] + c[OP_MATH] + c[OP_FMINMAX] +
           c[OP_FCMP];
}

/* Does e load buffer `buf` at exactly the index the store writes? */
static bool reads_target(const Expr *e, const LStmt *st)
{
    if (!e)
        return false;
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
    case EXPR_VAR:
        return false;
    case EXPR_LOAD:
        if (e->u.load.buf == st->u.store.buf && e->u.load.n == st->u.store.n) {
            bool same = true;
            for (int i = 0; i < e->u.load.n && same; i++)
                same = expr_equal(e->u.load.idx[i], st->u.store.idx[i]);
            if (same)
                return true;
        }
        return false;
    default:
        return reads_target(e->u.op.a, st) || reads_target(e->u.op.b, st) ||
               reads_target(e->u.op.c, st);
    }
}

/* ------------------------------------------------------------ accesses */
typedef struct Access {
    int buf;
    TuneAffine aff;
} Access;

/* Accesses of one buffer with the same slopes: they differ by constant
 * offsets (stencil taps), which widen the footprint like a short loop. */
typedef struct Group {
    const TuneAffine *a;
    double omin, omax;
    int k;
} Group;

typedef struct BufStat {
    int buf;
    bool read, write;
    int naccess;
    int esize;
    double numel;
    int g0, ng;   /* groups [g0, g0+ng) of the group table (contiguous by buf) */
    double bytes; /* per trip of the whole nest */
} BufStat;

typedef struct StoreCtx {
    Walk *w;
    AffCtx cx;
    Access acc[MAX_ACC];
    int nacc;
    BufStat bs[MAX_BUF];
    int nbuf;
} StoreCtx;

static BufStat *buf_stat(StoreCtx *sc, int buf)
{
    for (int i = 0; i < sc->nbuf; i++)
        if (sc->bs[i].buf == buf)
            return &sc->bs[i];
    if (sc->nbuf == MAX_BUF)
        return NULL;
    const LBuf *b = &sc->w->f->bufs[buf];
    BufStat *s = &sc->bs[sc->nbuf++];
    memset(s, 0, sizeof *s);
    s->buf = buf;
    s->esize = dtype_size(b->dt);
    s->numel = 1;
    for (int d = 0; d < b->ndim; d++)
        s->numel *= (double)b->dims[d];
    return s;
}

/* The address of buf[idx...] in elements: flat indices as they are,
 * multi-dimensional ones with row-major strides of the buffer's dims. */
static void access_affine(const StoreCtx *sc, int buf, int n, Expr *const *idx, TuneAffine *o)
{
    const LBuf *b = &sc->w->f->bufs[buf];
    aff_const(&sc->cx, o, 0);
    if (n == 0)
        return;
    if (n == 1) {
        aff_rec(&sc->cx, idx[0], o);
        return;
    }
    double stride = 1;
    TuneAffine t;
    for (int d = n - 1; d >= 0; d--) {
        aff_rec(&sc->cx, idx[d], &t);
        aff_scale(&sc->cx, &t, stride);
        for (int p = 0; p < sc->cx.n; p++)
            o->coef[p] += t.coef[p];
        o->offset += t.offset;
        o->lo += t.lo;
        o->hi += t.hi;
        o->inexact |= t.inexact;
        int bd = b->ndim - n + d; /* trailing dims when n < ndim */
        stride *= bd >= 0 && bd < b->ndim ? (double)b->dims[bd] : 1;
    }
}

static void add_access(StoreCtx *sc, int buf, bool write, int n, Expr *const *idx)
{
    if (buf < 0 || buf >= sc->w->f->nbufs)
        return;
    BufStat *s = buf_stat(sc, buf);
    if (!s)
        return;
    s->naccess++;
    if (write)
        s->write = true;
    else
        s->read = true;
    if (sc->nacc == MAX_ACC)
        return;
    Access *a = &sc->acc[sc->nacc++];
    a->buf = buf;
    access_affine(sc, buf, n, idx, &a->aff);
}

static void collect_loads(StoreCtx *sc, const Expr *e)
{
    if (!e)
        return;
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
    case EXPR_VAR:
        return;
    case EXPR_LOAD:
        add_access(sc, e->u.load.buf, false, e->u.load.n, e->u.load.idx);
        for (int i = 0; i < e->u.load.n; i++)
            collect_loads(sc, e->u.load.idx[i]);
        return;
    default:
        collect_loads(sc, e->u.op.a);
        collect_loads(sc, e->u.op.b);
        collect_loads(sc, e->u.op.c);
    }
}

/* ----------------------------------------------------------- footprints */
static double gcd_d(double a, double b)
{
    /* integral slopes only; callers pass values < 2^53 */
    int64_t x = (int64_t)a, y = (int64_t)b;
    while (y) {
        int64_t t = x % y;
        x = y;
        y = t;
    }
    return (double)x;
}

/* A group's moving loops (slope != 0, extent > 1) sorted by slope, ties
 * in loop order: the order group_footprint adds them in, whatever the
 * depth (sorting once per group, not once per depth). */
typedef struct Slopes {
    double sl[MAXD], ex[MAXD];
    int p[MAXD];
    int m;
    bool nan; /* a NaN slope orders no set consistently: sort per depth */
} Slopes;

static void group_slopes(const StoreCtx *sc, const Group *g, Slopes *o)
{
    o->m = 0;
    o->nan = false;
    for (int p = 0; p < sc->cx.n; p++) {
        double c = fabs(g->a->coef[p]);
        o->nan |= c != c;
        if (c == 0 || sc->cx.ext[p] <= 1)
            continue;
        int j = o->m++;
        while (j > 0 && o->sl[j - 1] > c) {
            o->sl[j] = o->sl[j - 1];
            o->ex[j] = o->ex[j - 1];
            o->p[j] = o->p[j - 1];
            j--;
        }
        o->sl[j] = c;
        o->ex[j] = (double)sc->cx.ext[p];
        o->p[j] = p;
    }
}

/* Distinct elements and cache lines touched by one access group over the
 * innermost `lev` loops.  Loops are added in order of increasing slope:
 * copies of the region so far either overlap (the range grows by the
 * slope each step) or sit apart (the count multiplies); the gcd of the
 * slopes bounds how densely the range can be filled.  so: the group's
 * slopes (group_slopes). */
static void group_footprint(const StoreCtx *sc, const Group *g, const Slopes *so, int esize,
                            int lev, double *count, double *lines)
{
    double sl[MAXD + 1], ex[MAXD + 1];
    int m = 0;
    int D = sc->cx.n;
    /* the stencil taps of the group count as one more loop, after the
     * loops of equal slope */
    bool taps = g->k > 1 && g->omax > g->omin;
    double tc = taps ? (g->omax - g->omin) / (g->k - 1) : 0;
    if (so->nan || tc != tc) {
        /* as the slopes were once sorted: per depth, by insertion */
        for (int p = D - lev; p < D; p++) {
            double c = fabs(g->a->coef[p]);
            if (c == 0 || sc->cx.ext[p] <= 1)
                continue;
            int j = m++;
            while (j > 0 && sl[j - 1] > c) {
                sl[j] = sl[j - 1];
                ex[j] = ex[j - 1];
                j--;
            }
            sl[j] = c;
            ex[j] = (double)sc->cx.ext[p];
        }
        if (taps) {
            int j = m++;
            while (j > 0 && sl[j - 1] > tc) {
                sl[j] = sl[j - 1];
                ex[j] = ex[j - 1];
                j--;
            }
            sl[j] = tc;
            ex[j] = g->k;
        }
    } else {
        for (int i = 0; i < so->m; i++) {
            if (so->p[i] < D - lev)
                continue;
            if (taps && so->sl[i] > tc) {
                sl[m] = tc;
                ex[m++] = g->k;
                taps = false;
            }
            sl[m] = so->sl[i];
            ex[m++] = so->ex[i];
        }
        if (taps) {
            sl[m] = tc;
            ex[m++] = g->k;
        }
    }
    double cnt = 1, span = 1, gg = 0, ln = 1;
    for (int i = 0; i < m; i++) {
        double c = sl[i], n = ex[i];
        span += c * (n - 1);
        gg = (c >= 1 && c == floor(c) && c < 9e15) ? gcd_d(gg, c) : 1;
        if (gg < 1)
            gg = 1;
        double dense = floor((span - 1) / gg) + 1;
        cnt = dmin(cnt * n, dense);
        if (gg * esize >= LINE)
            ln = cnt;
        else
            ln = dmin(ln * n, ceil(span * esize / LINE));
        if (ln < 1)
            ln = 1;
    }
    *count = cnt;
    *lines = ln;
}

/* ------------------------------------------------------------- the row */
/* Rows start zeroed and slog(0) = 0: most slots are 0, skip their log2. */
static void put(float *row, int slot, double v)
{
    if (v != 0)
        row[slot] = tune_slog(v);
}

static void annotations(const StoreCtx *sc, const TuneAffine *st, float *row)
{
    static const struct {
        LoopKind k;
        int base;
    } kinds[] = {{LOOP_VECTORIZED, KILN_FEAT_VEC},
                 {LOOP_UNROLLED, KILN_FEAT_UNROLL},
                 {LOOP_PARALLEL, KILN_FEAT_PAR}};
    const Walk *w = sc->w;
    int D = w->depth;
    for (int k = 0; k < 3; k++) {
        int num = 0;
        double prod = 1, inner = 0;
        float *r = row + kinds[k].base;
        for (int p = 0; p < D; p++) {
            if (w->kind[p] != kinds[k].k)
                continue;
            num++;
            prod *= (double)w->ext[p];
            inner = (double)w->ext[p];
            if (p == D - 1)
                r[KILN_FEAT_ANN_POS_INNER] = 1;
            else if (p == 0)
                r[KILN_FEAT_ANN_POS_OUTER] = 1;
            else
                r[KILN_FEAT_ANN_POS_MIDDLE] = 1;
            if (st->coef[p] == 0)
                r[KILN_FEAT_ANN_REDUCE] = 1;
        }
        if (num) {
            r[KILN_FEAT_ANN_NUM] = tune_slog(num);
            r[KILN_FEAT_ANN_PROD] = tune_slog(prod);
            r[KILN_FEAT_ANN_INNER] = tune_slog(inner);
        }
    }
}

static void store_row(Walk *w, const LStmt *st, float *row)
{
    const LFunc *f = w->f;
    int D = w->depth;
    StoreCtx ctx; /* not zeroed as a whole: the access table is large */
    StoreCtx *sc = &ctx;
    sc->w = w;
    sc->cx = (AffCtx){w->vars, w->ext, D};
    sc->nacc = sc->nbuf = 0;

    memset(row, 0, sizeof(float) * TUNE_FEAT_LEN);
    double trips[MAXD + 1]; /* trips[l]: product of the innermost l extents */
    trips[0] = 1;
    for (int l = 1; l <= D; l++)
        trips[l] = trips[l - 1] * (double)w->ext[D - l];
    double outer = trips[D];

    /* 1. arithmetic */
    double ops[NOPS] = {0};
    count_ops(st->u.store.value, false, ops);
    for (int i = 0; i < st->u.store.n; i++)
        count_ops(st->u.store.idx[i], true, ops);
    double fpi = flops_of(ops); /* flops per iteration */
    for (int i = 0; i < NOPS; i++)
        put(row, KILN_FEAT_FLOAT_ADD + i, ops[i] * outer);
    put(row, KILN_FEAT_FLOPS, fpi * outer);
    int sbuf = st->u.store.buf;
    put(row, KILN_FEAT_STORE_ELEM, sbuf >= 0 && sbuf < f->nbufs ? dtype_size(f->bufs[sbuf].dt) : 0);
    row[KILN_FEAT_IS_UPDATE] = reads_target(st->u.store.value, st) ? 1.0f : 0.0f;
    if (D > 0)
        put(row, KILN_FEAT_INNER_EXTENT, (double)w->ext[D - 1]);

    /* accesses: the store first, then every load */
    add_access(sc, sbuf, true, st->u.store.n, st->u.store.idx);
    const TuneAffine *st_aff = sc->nacc ? &sc->acc[0].aff : NULL;
    collect_loads(sc, st->u.store.value);
    for (int i = 0; i < st->u.store.n; i++)
        collect_loads(sc, st->u.store.idx[i]);

    /* 2. annotations (the store's own slopes tell reduction loops apart) */
    if (st_aff)
        annotations(sc, st_aff, row);

    /* group accesses per buffer by identical slopes */
    Group groups[MAX_ACC];
    int ngroups = 0;
    for (int b = 0; b < sc->nbuf; b++) {
        BufStat *bs = &sc->bs[b];
        bs->g0 = ngroups;
        for (int i = 0; i < sc->nacc; i++) {
            const Access *a = &sc->acc[i];
            if (a->buf != bs->buf)
                continue;
            int g = bs->g0;
            for (; g < ngroups; g++)
                if (!memcmp(groups[g].a->coef, a->aff.coef, sizeof(double) * (size_t)D))
                    break;
            if (g == ngroups)
                groups[ngroups++] = (Group){&a->aff, a->aff.offset, a->aff.offset, 0};
            Group *gr = &groups[g];
            gr->k++;
            gr->omin = dmin(gr->omin, a->aff.offset);
            gr->omax = dmax(gr->omax, a->aff.offset);
        }
        bs->ng = ngroups - bs->g0;
        bs->bytes = (double)bs->naccess * bs->esize;
    }

    /* footprints of every buffer for every nest depth */
    double fpc[MAXD + 1][MAX_BUF], fpl[MAXD + 1][MAX_BUF];
    for (int b = 0; b < sc->nbuf; b++) {
        const BufStat *bs = &sc->bs[b];
        double c[MAXD + 1], ln[MAXD + 1];
        for (int l = 0; l <= D; l++)
            c[l] = ln[l] = 0;
        for (int g = bs->g0; g < bs->g0 + bs->ng; g++) {
            Slopes so;
            group_slopes(sc, &groups[g], &so);
            for (int l = 0; l <= D; l++) {
                double gc, gl;
                group_footprint(sc, &groups[g], &so, bs->esize, l, &gc, &gl);
                c[l] += gc;
                ln[l] += gl;
            }
        }
        for (int l = 0; l <= D; l++) {
            fpc[l][b] = dmin(c[l], bs->numel);
            fpl[l][b] = dmin(ln[l], ceil(bs->numel * bs->esize / LINE));
        }
    }

    /* 3. buffers, most bytes first (ties: more distinct bytes, then index) */
    int order[MAX_BUF];
    for (int b = 0; b < sc->nbuf; b++) {
        int j = b;
        const BufStat *x = &sc->bs[b];
        while (j > 0) {
            const BufStat *y = &sc->bs[order[j - 1]];
            double ux = fpc[D][b] * x->esize, uy = fpc[D][order[j - 1]] * y->esize;
            bool before = x->bytes > y->bytes ||
                          (x->bytes == y->bytes && (ux > uy || (ux == uy && x->buf < y->buf)));
            if (!before)
                break;
            order[j] = order[j - 1];
            j--;
        }
        order[j] = b;
    }
    int pv = -1; /* innermost vectorized loop */
    for (int p = 0; p < D; p++)
        if (w->kind[p] == LOOP_VECTORIZED)
            pv = p;
    for (int r = 0; r < sc->nbuf && r < KILN_FEATURE_BUFS; r++) {
        int b = order[r];
        const BufStat *bs = &sc->bs[b];
        float *o = row + KILN_FEAT_BUF0 + r * KILN_FEATURE_BUF_LEN;
        o[bs->read && bs->write ? KILN_FEAT_B_RW
          : bs->write           ? KILN_FEAT_B_WRITE
                                : KILN_FEAT_B_READ] = 1;
        put(o, KILN_FEAT_B_BYTES, bs->bytes * outer);
        put(o, KILN_FEAT_B_UNIQUE_BYTES, fpc[D][b] * bs->esize);
        put(o, KILN_FEAT_B_UNIQUE_LINES, fpl[D][b]);
        put(o, KILN_FEAT_B_ACCESSES, bs->naccess);
        o[KILN_FEAT_B_LOCAL] = f->bufs[bs->buf].kind == T_LOCAL ? 1.0f : 0.0f;

        /* innermost loop that moves the address, innermost that does not */
        int pmove = -1, preuse = -1;
        double stride = 0;
        for (int p = D - 1; p >= 0 && (pmove < 0 || preuse < 0); p--) {
            double c = 0;
            for (int g = bs->g0; g < bs->g0 + bs->ng; g++)
                c = dmax(c, fabs(groups[g].a->coef[p]));
            if (c != 0 && w->ext[p] > 1) {
                if (pmove < 0) {
                    pmove = p;
                    stride = c;
                }
            } else if (preuse < 0 && w->ext[p] > 1) {
                preuse = p;
            }
        }
        put(o, KILN_FEAT_B_STRIDE, stride);
        double lines = pmove >= 0 ? trips[D] / trips[D - pmove] * fpl[D - pmove][b] : fpl[D][b];
        put(o, KILN_FEAT_B_LINES, lines);
        if (preuse >= 0) {
            o[KILN_FEAT_B_REUSE_LOOP] = 1;
            int inner = D - preuse - 1; /* loops inside the reuse loop */
            double rb = 0;
            for (int b2 = 0; b2 < sc->nbuf; b2++)
                rb += fpc[inner][b2] * sc->bs[b2].esize;
            put(o, KILN_FEAT_B_REUSE_ITERS, trips[inner]);
            put(o, KILN_FEAT_B_REUSE_BYTES, rb);
            put(o, KILN_FEAT_B_REUSE_COUNT, (double)w->ext[preuse]);
        } else if (bs->read && bs->write) {
            o[KILN_FEAT_B_REUSE_RW] = 1;
            put(o, KILN_FEAT_B_REUSE_ITERS, 1);
            put(o, KILN_FEAT_B_REUSE_BYTES, bs->esize);
            put(o, KILN_FEAT_B_REUSE_COUNT, 1);
        } else {
            o[KILN_FEAT_B_REUSE_NONE] = 1;
        }
        if (pv >= 0) {
            bool all0 = true, all1 = true;
            for (int g = bs->g0; g < bs->g0 + bs->ng; g++) {
                double c = groups[g].a->coef[pv];
                all0 &= c == 0;
                all1 &= fabs(c) == 1 && !(groups[g].a->inexact >> pv & 1);
            }
            o[all0   ? KILN_FEAT_B_VEC_BCAST
              : all1 ? KILN_FEAT_B_VEC_CONTIG
                     : KILN_FEAT_B_VEC_GATHER] = 1;
        }
    }

    /* 4. arithmetic intensity as the nest grows outwards */
    double ai[MAXD + 1], fpb[MAXD + 1], fplb[MAXD + 1];
    for (int l = 0; l <= D; l++) {
        double bytes = 0, lb = 0;
        for (int b = 0; b < sc->nbuf; b++) {
            bytes += fpc[l][b] * sc->bs[b].esize;
            lb += fpl[l][b] * LINE;
        }
        fpb[l] = bytes;
        fplb[l] = lb;
        ai[l] = bytes > 0 ? fpi * trips[l] / bytes : 0;
    }
    for (int i = 0; i < KILN_FEATURE_AI_POINTS; i++) {
        double x = (double)(i + 1) * D / KILN_FEATURE_AI_POINTS;
        int lo = (int)floor(x);
        if (lo > D)
            lo = D;
        double t = x - lo;
        double v = lo < D ? ai[lo] * (1 - t) + ai[lo + 1] * t : ai[D];
        put(row, KILN_FEAT_AI + i, v);
    }

    /* 5. allocation */
    double live = 0;
    int na = w->nalloc;
    for (int i = 0; i < na; i++) {
        const LBuf *b = &f->bufs[w->allocs[i].buf];
        double bytes = dtype_size(b->dt);
        for (int d = 0; d < b->ndim; d++)
            bytes *= (double)b->dims[d];
        live += bytes;
        if (w->allocs[i].buf == sbuf) {
            put(row, KILN_FEAT_ALLOC_BYTES, bytes);
            put(row, KILN_FEAT_ALLOC_OUTER_PROD, w->allocs[i].outer);
        }
    }
    put(row, KILN_FEAT_ALLOC_LIVE_BYTES, live);
    put(row, KILN_FEAT_ALLOC_NUM, w->alloc_depth);

    /* 6. outer scope (NUM_STORES is filled in when the walk is done) */
    put(row, KILN_FEAT_OUTER_PROD, outer);
    put(row, KILN_FEAT_NUM_LOOPS, D);
    put(row, KILN_FEAT_NUM_GUARDS, w->guards);

    /* 7. loops one by one, innermost first */
    for (int k = 0; k < KILN_FEATURE_LOOPS && k < D; k++) {
        int p = D - 1 - k;
        float *o = row + KILN_FEAT_LOOP0 + 3 * k;
        put(o, KILN_FEAT_L_EXTENT, (double)w->ext[p]);
        LoopKind lk = w->kind[p];
        o[KILN_FEAT_L_KIND] = lk == LOOP_VECTORIZED ? 1.0f
                              : lk == LOOP_UNROLLED ? 2.0f
                              : lk == LOOP_PARALLEL ? 3.0f
                                                    : 0.0f;
        o[KILN_FEAT_L_REDUCE] = st_aff && st_aff->coef[p] == 0 ? 1.0f : 0.0f;
    }
    /* the straight-line body: the innermost unrolled/vectorized loops */
    double tile = 1, body = 1, vec_ext = 0;
    for (int p = D - 1; p >= 0; p--) {
        if (w->kind[p] != LOOP_VECTORIZED && w->kind[p] != LOOP_UNROLLED)
            break;
        body *= (double)w->ext[p];
        bool moves = st_aff && st_aff->coef[p] != 0;
        if (moves && w->kind[p] == LOOP_VECTORIZED)
            vec_ext = (double)w->ext[p];
        else if (moves)
            tile *= (double)w->ext[p];
    }
    int sesize = sbuf >= 0 && sbuf < f->nbufs ? dtype_size(f->bufs[sbuf].dt) : 4;
    double lanes = (double)VEC_BYTES / (sesize > 0 ? sesize : 4);
    put(row, KILN_FEAT_REG_TILE, tile * (vec_ext > 0 ? vec_ext : 1));
    put(row, KILN_FEAT_REG_VECS, tile * (vec_ext > 0 ? ceil(vec_ext / lanes) : 1));
    put(row, KILN_FEAT_UNROLL_BODY, body);
    /* caches: the largest innermost nest that fits, and what it moves in */
    static const struct {
        int trips, bytes, ai;
    } cs[2] = {{KILN_FEAT_L1_TRIPS, KILN_FEAT_L1_BYTES, KILN_FEAT_L1_AI},
               {KILN_FEAT_L2_TRIPS, KILN_FEAT_L2_BYTES, KILN_FEAT_L2_AI}};
    for (int k = 0; k < 2; k++) {
        double cap = k ? L2_BYTES : L1_BYTES;
        int l = 0;
        while (l < D && fpb[l + 1] <= cap)
            l++;
        double moved = trips[D] / trips[l] * fplb[l];
        put(row, cs[k].trips, trips[l]);
        put(row, cs[k].bytes, moved);
        put(row, cs[k].ai, moved > 0 ? fpi * outer / moved : 0);
    }
    for (int r = 0; r < sc->nbuf && r < KILN_FEATURE_BUFS && D > 0; r++) {
        const BufStat *bs = &sc->bs[order[r]];
        double c = 0;
        for (int g = bs->g0; g < bs->g0 + bs->ng; g++)
            c = dmax(c, fabs(groups[g].a->coef[D - 1]));
        put(row, KILN_FEAT_INNER_STRIDE + r, c);
    }
}

/* --------------------------------------------------------------- walk */
static void walk(Walk *w, const LStmt *s)
{
    if (!s)
        return;
    switch (s->kind) {
    case LS_FOR:
        if (w->depth == MAXD) {
            w->too_deep = true;
            return;
        }
        w->vars[w->depth] = s->u.loop.var;
        w->ext[w->depth] = s->u.loop.extent;
        w->kind[w->depth] = s->u.loop.kind;
        w->depth++;
        walk(w, s->u.loop.body);
        w->depth--;
        return;
    case LS_STORE:
        if (w->nstores < w->max_rows && !w->too_deep)
            store_row(w, s, w->rows + (size_t)w->nstores * TUNE_FEAT_LEN);
        w->nstores++;
        return;
    case LS_BLOCK:
        for (int i = 0; i < s->u.block.n; i++)
            walk(w, s->u.block.s[i]);
        return;
    case LS_IF:
        w->guards++;
        walk(w, s->u.cond.then_s);
        walk(w, s->u.cond.else_s);
        w->guards--;
        return;
    case LS_ALLOC: {
        bool tracked = w->nalloc < MAX_ALLOC && s->u.alloc.buf >= 0 && s->u.alloc.buf < w->f->nbufs;
        if (tracked) {
            double outer = 1;
            for (int p = 0; p < w->depth; p++)
                outer *= (double)w->ext[p];
            w->allocs[w->nalloc++] = (Alloc){s->u.alloc.buf, outer};
        }
        w->alloc_depth++;
        walk(w, s->u.alloc.body);
        w->alloc_depth--;
        if (tracked)
            w->nalloc--;
        return;
    }
    }
}

static int count_stores(const LStmt *s)
{
    if (!s)
        return 0;
    switch (s->kind) {
    case LS_FOR:
        return count_stores(s->u.loop.body);
    case LS_STORE:
        return 1;
    case LS_BLOCK: {
        int n = 0;
        for (int i = 0; i < s->u.block.n; i++)
            n += count_stores(s->u.block.s[i]);
        return n;
    }
    case LS_IF:
        return count_stores(s->u.cond.then_s) + count_stores(s->u.cond.else_s);
    case LS_ALLOC:
        return count_stores(s->u.alloc.body);
    }
    return 0;
}

int tune_count_stores(const LFunc *f)
{
    return f ? count_stores(f->body) : 0;
}

int tune_features(const LFunc *f, float *rows, int max_rows, int *nrows, kiln_error *e)
{
    if (nrows)
        *nrows = 0;
    if (!f || (!rows && max_rows > 0) || max_rows < 0)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "tune_features: bad arguments");
    Walk w = {.f = f, .rows = rows, .max_rows = max_rows};
    walk(&w, f->body);
    if (nrows)
        *nrows = w.nstores;
    if (w.too_deep)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "loop nest of '%s' deeper than %d loops",
                        f->name ? f->name : "?", MAXD);
    int n = w.nstores < max_rows ? w.nstores : max_rows;
    float ns = tune_slog(w.nstores);
    for (int r = 0; r < n; r++)
        rows[(size_t)r * TUNE_FEAT_LEN + KILN_FEAT_NUM_STORES] = ns;
    if (w.nstores > max_rows)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0},
                        "'%s' has %d stores, room for %d feature rows", f->name ? f->name : "?",
                        w.nstores, max_rows);
    return KILN_OK;
}

/* ---------------------------------------------------------- slot names */
static char names[KILN_FEATURE_LEN][24];
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

static void init_names(void)
{
    static const char *const g1[] = {
        "float_add", "float_mul", "float_fma", "float_div",  "float_math", "float_minmax",
        "float_cmp", "select",    "int_arith", "int_divmod", "idx_arith",  "idx_divmod",
        "cast",      "loads",     "flops",     "store_elem", "is_update",  "inner_extent"};
    static const char *const ann[] = {"num",        "prod",      "inner", "pos_inner",
                                      "pos_middle", "pos_outer", "reduce"};
    static const char *const annk[] = {"vec", "unroll", "par"};
    static const char *const buf[] = {"read",         "write",       "rw",           "bytes",
                                      "unique_bytes", "lines",       "unique_lines", "stride",
                                      "reuse_loop",   "reuse_rw",    "reuse_none",   "reuse_iters",
                                      "reuse_bytes",  "reuse_count", "accesses",     "vec_contig",
                                      "vec_bcast",    "vec_gather",  "local"};
    static const char *const tail[] = {"alloc_bytes", "alloc_outer_prod", "alloc_live_bytes",
                                       "alloc_num",   "outer_prod",       "num_loops",
                                       "num_guards",  "num_stores"};
    static const char *const loop[] = {"extent", "kind", "reduce"};
    static const char *const model[] = {"reg_tile", "reg_vecs", "unroll_body",
                                        "l1_trips", "l1_bytes", "l1_ai",
                                        "l2_trips", "l2_bytes", "l2_ai"};
    _Static_assert(sizeof g1 / sizeof *g1 == KILN_FEAT_VEC, "g1 names");
    _Static_assert(sizeof buf / sizeof *buf == KILN_FEATURE_BUF_LEN, "buffer names");
    int s = 0;
    for (int i = 0; i < KILN_FEAT_VEC; i++)
        snprintf(names[s++], sizeof names[0], "%s", g1[i]);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 7; i++)
            snprintf(names[s++], sizeof names[0], "%s.%s", annk[k], ann[i]);
    for (int b = 0; b < KILN_FEATURE_BUFS; b++)
        for (int i = 0; i < KILN_FEATURE_BUF_LEN; i++)
            snprintf(names[s++], sizeof names[0], "buf%d.%s", b, buf[i]);
    for (int i = 0; i < KILN_FEATURE_AI_POINTS; i++)
        snprintf(names[s++], sizeof names[0], "ai.%d", i);
    for (int i = 0; i < 8; i++)
        snprintf(names[s++], sizeof names[0], "%s", tail[i]);
    for (int k = 0; k < KILN_FEATURE_LOOPS; k++)
        for (int i = 0; i < 3; i++)
            snprintf(names[s++], sizeof names[0], "loop%d.%s", k, loop[i]);
    for (int i = 0; i < 9; i++)
        snprintf(names[s++], sizeof names[0], "%s", model[i]);
    for (int b = 0; b < KILN_FEATURE_BUFS; b++)
        snprintf(names[s++], sizeof names[0], "buf%d.inner_stride", b);
    IR_ASSERT(s == KILN_FEATURE_LEN);
}

const char *kiln_feature_name(int slot)
{
    if (slot < 0 || slot >= KILN_FEATURE_LEN)
        return NULL;
    pthread_once(&names_once, init_names);
    return names[slot];
}
