/* lower/simplify.c: constant folding and index-arithmetic simplification.
 *
 * i64 sums are normalised to linear forms (sum of coef*atom + const, atoms
 * in first-appearance order), so x*1, x+0 and (a*c + b) vanish naturally;
 * floor division and modulo by a positive constant pull out the multiples
 * of the divisor and use interval knowledge of the loop variables (var in
 * [0, extent-1]) to drop the rest when it provably stays inside [0, c);
 * c*(x / c) + x % c folds back to x (fused loops, row-major flattening).
 * Comparisons that intervals decide become constants, so guards that always
 * hold disappear; loops whose body is entirely guarded are shortened to
 * the iterations the guard admits; loops of extent 1 disappear (their var
 * reads as 0).
 *
 * Only integer and boolean arithmetic is folded: float results must be
 * what the interpreter computes, so float operations are left alone.
 * Integer ops wrap at run time: linear rewriting is exact modulo 2^64
 * anyway, but division rules and decided comparisons are only applied to
 * operands with bounded ranges (loop indices), never to loaded data; i32
 * ranges are never trusted. */
#include <stdint.h>
#include <string.h>

#include "lower/lower.h"

typedef struct {
    int64_t lo, hi; /* inclusive; INT64_MIN / INT64_MAX mean unbounded */
} Range;

static const Range UNBOUNDED = {INT64_MIN, INT64_MAX};

typedef struct {
    Arena *a;
    Var **vars; /* loop vars in scope, innermost last */
    Range *r;
    Expr **repl; /* the var's replacement (a shortened loop's new var) or NULL */
    int n, cap;
} Simp;

/* ------------------------------------------------------ interval math */
static int64_t fdiv(int64_t x, int64_t d)
{
    int64_t q = x / d;
    if ((x % d != 0) && ((x < 0) != (d < 0)))
        q--;
    return q;
}

static int64_t fmodi(int64_t x, int64_t d)
{
    return x - fdiv(x, d) * d;
}

static int64_t add_lo(int64_t a, int64_t b)
{
    int64_t r;
    if (a == INT64_MIN || b == INT64_MIN || __builtin_add_overflow(a, b, &r))
        return INT64_MIN;
    return r;
}

static int64_t add_hi(int64_t a, int64_t b)
{
    int64_t r;
    if (a == INT64_MAX || b == INT64_MAX || __builtin_add_overflow(a, b, &r))
        return INT64_MAX;
    return r;
}

static Range radd(Range x, Range y)
{
    return (Range){add_lo(x.lo, y.lo), add_hi(x.hi, y.hi)};
}

static bool bounded(Range r)
{
    return r.lo != INT64_MIN && r.hi != INT64_MAX;
}

/* x * k for a constant k. */
static Range rscale(Range x, int64_t k)
{
    if (k == 0)
        return (Range){0, 0};
    if (!bounded(x))
        return UNBOUNDED;
    int64_t a, b;
    if (__builtin_mul_overflow(x.lo, k, &a) || __builtin_mul_overflow(x.hi, k, &b) ||
        a == INT64_MIN || b == INT64_MIN || a == INT64_MAX || b == INT64_MAX)
        return UNBOUNDED;
    return k > 0 ? (Range){a, b} : (Range){b, a};
}

static Range rmul(Range x, Range y)
{
    if (x.lo == x.hi && bounded(x))
        return rscale(y, x.lo);
    if (y.lo == y.hi && bounded(y))
        return rscale(x, y.lo);
    if (!bounded(x) || !bounded(y))
        return UNBOUNDED;
    int64_t c[4];
    if (__builtin_mul_overflow(x.lo, y.lo, &c[0]) || __builtin_mul_overflow(x.lo, y.hi, &c[1]) ||
        __builtin_mul_overflow(x.hi, y.lo, &c[2]) || __builtin_mul_overflow(x.hi, y.hi, &c[3]))
        return UNBOUNDED;
    Range r = {c[0], c[0]};
    for (int i = 1; i < 4; i++) {
        r.lo = c[i] < r.lo ? c[i] : r.lo;
        r.hi = c[i] > r.hi ? c[i] : r.hi;
    }
    return bounded(r) ? r : UNBOUNDED;
}

static bool is_int(const Expr *e, int64_t *v)
{
    if (e->kind != EXPR_INT)
        return false;
    if (v)
        *v = e->u.i;
    return true;
}

static Range var_range(const Simp *c, const Var *v)
{
    for (int i = c->n - 1; i >= 0; i--)
        if (c->vars[i] == v)
            return c->r[i];
    return UNBOUNDED;
}

/* The range of an integer or bool expression (already simplified). */
static Range range_of(const Simp *c, const Expr *e)
{
    if (e->dt == DT_BOOL)
        return (Range){0, 1};
    if (e->kind == EXPR_INT)
        return (Range){e->u.i, e->u.i};
    if (e->dt == DT_I32)
        return (Range){INT32_MIN, INT32_MAX}; /* i32 may wrap: nothing finer */
    if (e->dt != DT_I64)
        return UNBOUNDED;
    int64_t d;
    switch (e->kind) {
    case EXPR_VAR:
        return var_range(c, e->u.var);
    case EXPR_ADD:
        return radd(range_of(c, e->u.op.a), range_of(c, e->u.op.b));
    case EXPR_SUB:
        return radd(range_of(c, e->u.op.a), rscale(range_of(c, e->u.op.b), -1));
    case EXPR_NEG:
        return rscale(range_of(c, e->u.op.a), -1);
    case EXPR_MUL:
        return rmul(range_of(c, e->u.op.a), range_of(c, e->u.op.b));
    case EXPR_DIV:
        if (is_int(e->u.op.b, &d) && d > 0) {
            Range x = range_of(c, e->u.op.a);
            return (Range){x.lo == INT64_MIN ? INT64_MIN : fdiv(x.lo, d),
                           x.hi == INT64_MAX ? INT64_MAX : fdiv(x.hi, d)};
        }
        return UNBOUNDED;
    case EXPR_MOD:
        if (is_int(e->u.op.b, &d) && d > 0) {
            Range x = range_of(c, e->u.op.a);
            if (x.lo >= 0 && x.hi < d)
                return x;
            return (Range){0, d - 1};
        }
        return UNBOUNDED;
    case EXPR_MIN:
    case EXPR_MAX: {
        Range x = range_of(c, e->u.op.a), y = range_of(c, e->u.op.b);
        if (e->kind == EXPR_MIN)
            return (Range){x.lo < y.lo ? x.lo : y.lo, x.hi < y.hi ? x.hi : y.hi};
        return (Range){x.lo > y.lo ? x.lo : y.lo, x.hi > y.hi ? x.hi : y.hi};
    }
    case EXPR_SELECT: {
        Range x = range_of(c, e->u.op.b), y = range_of(c, e->u.op.c);
        return (Range){x.lo < y.lo ? x.lo : y.lo, x.hi > y.hi ? x.hi : y.hi};
    }
    case EXPR_CAST:
        if (e->u.op.a->dt == DT_I32 || e->u.op.a->dt == DT_BOOL)
            return range_of(c, e->u.op.a);
        return UNBOUNDED;
    default:
        return UNBOUNDED;
    }
}

/* ------------------------------------------------------ linear forms */
#define MAXT 32

typedef struct {
    Expr *atom;
    int64_t coef;
} Term;

typedef struct {
    Term t[MAXT];
    int n;
    int64_t c;
    bool ok;
} Lin;

/* An empty form.  Only t[0..n) is ever read, so the 32 terms are left
 * uninitialised: zeroing them (half a KiB) for every integer node cost
 * more than the simplification itself. */
static inline void lin_init(Lin *L, int64_t c)
{
    L->n = 0;
    L->c = c;
    L->ok = true;
}

static void lin_term(Lin *L, Expr *atom, int64_t coef)
{
    for (int i = 0; i < L->n; i++)
        if (expr_equal(L->t[i].atom, atom)) {
            if (__builtin_add_overflow(L->t[i].coef, coef, &L->t[i].coef))
                L->ok = false;
            return;
        }
    if (L->n == MAXT) {
        L->ok = false;
        return;
    }
    L->t[L->n++] = (Term){atom, coef};
}

/* Adds scale * e (an i64 expression) to L. */
static void lin_of(Lin *L, Expr *e, int64_t scale)
{
    int64_t k, s2;
    if (!L->ok)
        return;
    switch (e->kind) {
    case EXPR_INT:
        if (__builtin_mul_overflow(e->u.i, scale, &k) || __builtin_add_overflow(L->c, k, &L->c))
            L->ok = false;
        return;
    case EXPR_ADD:
        lin_of(L, e->u.op.a, scale);
        lin_of(L, e->u.op.b, scale);
        return;
    case EXPR_SUB:
    case EXPR_NEG:
        if (scale == INT64_MIN) {
            L->ok = false;
            return;
        }
        if (e->kind == EXPR_SUB) {
            lin_of(L, e->u.op.a, scale);
            lin_of(L, e->u.op.b, -scale);
        } else {
            lin_of(L, e->u.op.a, -scale);
        }
        return;
    case EXPR_MUL:
        if (is_int(e->u.op.b, &k) || is_int(e->u.op.a, &k)) {
            Expr *x = is_int(e->u.op.b, NULL) ? e->u.op.a : e->u.op.b;
            if (__builtin_mul_overflow(scale, k, &s2))
                L->ok = false;
            else
                lin_of(L, x, s2);
            return;
        }
        lin_term(L, e, scale);
        return;
    default:
        lin_term(L, e, scale);
        return;
    }
}

/* k*d*(x / d) + k*(x % d) is k*x for floor division (and exact under
 * wrap-around too): fusing loops and flattening row-major produce this. */
static void lin_recombine(Lin *L)
{
    for (bool changed = true; changed && L->ok;) {
        changed = false;
        for (int i = 0; i < L->n && !changed; i++) {
            Expr *q = L->t[i].atom;
            int64_t d, d2;
            if (q->kind != EXPR_DIV || !is_int(q->u.op.b, &d) || d <= 0 || L->t[i].coef % d)
                continue;
            int64_t k = L->t[i].coef / d;
            for (int j = 0; j < L->n; j++) {
                Expr *m = L->t[j].atom;
                if (m->kind != EXPR_MOD || !is_int(m->u.op.b, &d2) || d2 != d ||
                    L->t[j].coef != k || !expr_equal(m->u.op.a, q->u.op.a))
                    continue;
                int hi = i > j ? i : j, lo = i > j ? j : i;
                L->t[hi] = L->t[--L->n];
                L->t[lo] = L->t[--L->n];
                lin_of(L, q->u.op.a, k);
                changed = true;
                break;
            }
        }
    }
}

static Range lin_range(const Simp *c, const Lin *L)
{
    Range r = {L->c, L->c};
    for (int i = 0; i < L->n; i++)
        r = radd(r, rscale(range_of(c, L->t[i].atom), L->t[i].coef));
    return r;
}

static Expr *mul_c(Arena *a, Expr *x, int64_t k)
{
    return k == 1 ? x : expr_bin(a, EXPR_MUL, DT_I64, x, expr_iconst(a, k));
}

static Expr *lin_build(Arena *a, const Lin *L)
{
    Expr *acc = NULL;
    for (int i = 0; i < L->n; i++) {
        int64_t k = L->t[i].coef;
        Expr *x = L->t[i].atom;
        if (k == 0)
            continue;
        if (!acc)
            acc = mul_c(a, x, k);
        else if (k > 0 || k == INT64_MIN)
            acc = expr_bin(a, EXPR_ADD, DT_I64, acc, mul_c(a, x, k));
        else
            acc = expr_bin(a, EXPR_SUB, DT_I64, acc, mul_c(a, x, -k));
    }
    if (!acc)
        return expr_iconst(a, L->c);
    if (L->c > 0 || L->c == INT64_MIN)
        return expr_bin(a, EXPR_ADD, DT_I64, acc, expr_iconst(a, L->c));
    if (L->c < 0)
        return expr_bin(a, EXPR_SUB, DT_I64, acc, expr_iconst(a, -L->c));
    return acc;
}

/* ----------------------------------------------------- expressions */
static Expr *simp(Simp *c, Expr *e);

static Expr *rebuild(Simp *c, Expr *e, Expr *x, Expr *y, Expr *z)
{
    if (x == e->u.op.a && y == e->u.op.b && z == e->u.op.c)
        return e;
    Expr *r = arena_alloc(c->a, sizeof *r);
    if (r) {
        *r = *e;
        r->u.op.a = x;
        r->u.op.b = y;
        r->u.op.c = z;
    }
    return r;
}

static Expr *bconst(Simp *c, bool v)
{
    return expr_int(c->a, DT_BOOL, v);
}

static bool fits(DType dt, int64_t v)
{
    return dt == DT_I64 || (dt == DT_I32 && v >= INT32_MIN && v <= INT32_MAX) ||
           (dt == DT_BOOL && (v == 0 || v == 1));
}

/* Folds a binary integer op on constants; false when it must not fold. */
static bool fold_int(ExprKind k, DType dt, int64_t x, int64_t y, int64_t *r)
{
    switch (k) {
    case EXPR_ADD:
        if (__builtin_add_overflow(x, y, r))
            return false;
        break;
    case EXPR_SUB:
        if (__builtin_sub_overflow(x, y, r))
            return false;
        break;
    case EXPR_MUL:
        if (__builtin_mul_overflow(x, y, r))
            return false;
        break;
    case EXPR_DIV:
    case EXPR_MOD:
        if (y == 0) {
            *r = 0; /* kiln semantics: division by zero yields 0 */
            break;
        }
        if (y == -1 && x == INT64_MIN)
            return false;
        *r = k == EXPR_DIV ? fdiv(x, y) : fmodi(x, y);
        break;
    case EXPR_MIN:
        *r = x < y ? x : y;
        break;
    case EXPR_MAX:
        *r = x > y ? x : y;
        break;
    default:
        return false;
    }
    return fits(dt, *r);
}

/* Decides a comparison from the range of (x - y); -1 when undecided. */
static int decide(ExprKind k, Range d)
{
    switch (k) {
    case EXPR_LT:
        return d.hi < 0 ? 1 : d.lo >= 0 ? 0 : -1;
    case EXPR_LE:
        return d.hi <= 0 ? 1 : d.lo > 0 ? 0 : -1;
    case EXPR_GT:
        return d.lo > 0 ? 1 : d.hi <= 0 ? 0 : -1;
    case EXPR_GE:
        return d.lo >= 0 ? 1 : d.hi < 0 ? 0 : -1;
    case EXPR_EQ:
        return (d.lo == 0 && d.hi == 0) ? 1 : (d.lo > 0 || d.hi < 0) ? 0 : -1;
    case EXPR_NE:
        return (d.lo == 0 && d.hi == 0) ? 0 : (d.lo > 0 || d.hi < 0) ? 1 : -1;
    default:
        return -1;
    }
}

static Expr *simp_compare(Simp *c, Expr *e)
{
    Expr *x = simp(c, e->u.op.a), *y = simp(c, e->u.op.b);
    if (x->dt == DT_I64 && y->dt == DT_I64 && bounded(range_of(c, x)) && bounded(range_of(c, y))) {
        /* bounded operands: no wrap-around, so x - y is exact */
        Lin L;
        lin_init(&L, 0);
        lin_of(&L, x, 1);
        lin_of(&L, y, -1);
        Range d = L.ok ? lin_range(c, &L) : UNBOUNDED;
        int v = decide(e->kind, d);
        if (v >= 0)
            return bconst(c, v);
    } else if (!dtype_is_float(x->dt) && !dtype_is_float(y->dt)) {
        int64_t a, b;
        if (is_int(x, &a) && is_int(y, &b)) {
            /* i32/bool constants: only the sign of x - y matters */
            int64_t sign = a < b ? -1 : a > b ? 1 : 0;
            return bconst(c, decide(e->kind, (Range){sign, sign}) == 1);
        }
    }
    return rebuild(c, e, x, y, NULL);
}

/* x / d or x % d for an i64 x and a constant d > 0. */
static Expr *simp_divmod(Simp *c, Expr *e, Expr *x, int64_t d)
{
    Arena *a = c->a;
    Lin L;
    lin_init(&L, 0);
    lin_of(&L, x, 1);
    /* Pulling out multiples of d is exact only if x does not wrap around
     * (integer ops wrap): require a bounded range, as loop indices have. */
    if (L.ok && !bounded(lin_range(c, &L)))
        return rebuild(c, e, x, e->u.op.b, NULL);
    if (!L.ok) {
        Range r = range_of(c, x);
        if (bounded(r) && fdiv(r.lo, d) == fdiv(r.hi, d))
            return e->kind == EXPR_DIV
                       ? expr_iconst(a, fdiv(r.lo, d))
                       : expr_bin(a, EXPR_SUB, DT_I64, x, expr_iconst(a, fdiv(r.lo, d) * d));
        return rebuild(c, e, x, e->u.op.b, NULL);
    }
    /* x = d*Q + R with R's constant in [0, d) */
    Lin Q, R;
    lin_init(&Q, 0);
    lin_init(&R, 0);
    for (int i = 0; i < L.n; i++) {
        if (L.t[i].coef % d == 0)
            Q.t[Q.n++] = (Term){L.t[i].atom, L.t[i].coef / d};
        else
            R.t[R.n++] = L.t[i];
    }
    Q.c = fdiv(L.c, d);
    R.c = fmodi(L.c, d);
    Range rr = lin_range(c, &R);
    if (bounded(rr) && fdiv(rr.lo, d) == fdiv(rr.hi, d)) {
        int64_t k = fdiv(rr.lo, d); /* R / d is the constant k */
        if (e->kind == EXPR_DIV) {
            Q.c += k;
            return lin_build(a, &Q);
        }
        R.c -= k * d;
        return lin_build(a, &R);
    }
    Expr *rest = expr_bin(a, e->kind, DT_I64, lin_build(a, &R), expr_iconst(a, d));
    if (e->kind == EXPR_MOD)
        return rest;
    lin_term(&Q, rest, 1);
    return Q.ok ? lin_build(a, &Q) : rebuild(c, e, x, e->u.op.b, NULL);
}

/* ------------------------------------------ linear forms, composed
 * simp() of an i64 ADD, SUB or MUL ends in lin_build of a linear form,
 * and its parent, when that is ADD/SUB/MUL too, walked the built
 * expression again with lin_of: in long index sums, most of the work.
 * simp_arith hands the form itself up instead (an Opnd), and the parent
 * adds its terms (lin_add_opnd) exactly as lin_of would add those of the
 * built expression; the expression is only built where it is needed. */
static bool is_arith(const Expr *e)
{
    return e->dt == DT_I64 && (e->kind == EXPR_ADD || e->kind == EXPR_SUB || e->kind == EXPR_MUL);
}

/* A simplified operand: the expression x, or (lin) the form that
 * lin_build turns into it (x then built on demand). */
typedef struct {
    Expr *x;
    bool lin;
    Lin L;
} Opnd;

static bool simp_arith(Simp *c, Expr *e, Lin *L, Expr **n);

static void simp_opnd(Simp *c, Expr *e, Opnd *o)
{
    o->x = NULL;
    if (is_arith(e))
        o->lin = simp_arith(c, e, &o->L, &o->x);
    else {
        o->lin = false;
        o->x = simp(c, e);
    }
}

static Expr *opnd_expr(Simp *c, Opnd *o)
{
    if (!o->x)
        o->x = lin_build(c->a, &o->L);
    return o->x;
}

/* is_int() of the operand's expression (lin_build gives a constant
 * exactly when no term has a coefficient). */
static bool opnd_int(const Opnd *o, int64_t *v)
{
    if (!o->lin)
        return is_int(o->x, v);
    for (int i = 0; i < o->L.n; i++)
        if (o->L.t[i].coef)
            return false;
    *v = o->L.c;
    return true;
}

/* lin_of(L, opnd_expr(o), scale).  Adding the terms directly gives the
 * same terms in the same order when no product can overflow (lin_build
 * writes negative coefficients as subtractions, which lin_of negates
 * twice): otherwise the built expression is walked as before. */
static void lin_add_opnd(Simp *c, Lin *L, Opnd *o, int64_t scale)
{
    if (!L->ok)
        return;
    bool direct = o->lin && scale != INT64_MIN && o->L.c != INT64_MIN;
    int64_t k;
    for (int i = 0; i < o->L.n && direct; i++)
        direct = !o->L.t[i].coef || (o->L.t[i].coef != INT64_MIN &&
                                     !__builtin_mul_overflow(o->L.t[i].coef, scale, &k));
    if (!direct || __builtin_mul_overflow(o->L.c, scale, &k)) {
        lin_of(L, opnd_expr(c, o), scale);
        return;
    }
    /* a form's atoms are distinct: into an empty form they just append */
    bool fresh = L->n == 0;
    for (int i = 0; i < o->L.n && L->ok; i++)
        if (!o->L.t[i].coef)
            continue;
        else if (fresh)
            L->t[L->n++] = (Term){o->L.t[i].atom, o->L.t[i].coef * scale};
        else
            lin_term(L, o->L.t[i].atom, o->L.t[i].coef * scale);
    if (L->ok && __builtin_add_overflow(L->c, o->L.c * scale, &L->c))
        L->ok = false;
}

/* simp(e) for an i64 ADD/SUB/MUL e: true with *L when that is
 * lin_build(L), false with *n the expression itself. */
static bool simp_arith(Simp *c, Expr *e, Lin *L, Expr **n)
{
    Opnd x, y;
    simp_opnd(c, e->u.op.a, &x);
    simp_opnd(c, e->u.op.b, &y);
    int64_t u, v, r;
    bool xi = opnd_int(&x, &u), yi = opnd_int(&y, &v);
    if (xi && yi) {
        *n = fold_int(e->kind, e->dt, u, v, &r)
                 ? expr_int(c->a, e->dt, r)
                 : rebuild(c, e, opnd_expr(c, &x), opnd_expr(c, &y), NULL);
        return false;
    }
    /* as lin_of(L, rebuild(e, x, y), 1) */
    lin_init(L, 0);
    switch (e->kind) {
    case EXPR_ADD:
        lin_add_opnd(c, L, &x, 1);
        lin_add_opnd(c, L, &y, 1);
        break;
    case EXPR_SUB:
        lin_add_opnd(c, L, &x, 1);
        lin_add_opnd(c, L, &y, -1);
        break;
    default: /* MUL */
        if (yi)
            lin_add_opnd(c, L, &x, v);
        else if (xi)
            lin_add_opnd(c, L, &y, u);
        else
            lin_term(L, rebuild(c, e, opnd_expr(c, &x), opnd_expr(c, &y), NULL), 1);
        break;
    }
    lin_recombine(L);
    if (L->ok)
        return true;
    *n = rebuild(c, e, opnd_expr(c, &x), opnd_expr(c, &y), NULL);
    return false;
}

static Expr *simp(Simp *c, Expr *e)
{
    Arena *a = c->a;
    int64_t u, v;
    if (is_arith(e)) {
        Lin L;
        Expr *n;
        return simp_arith(c, e, &L, &n) ? lin_build(a, &L) : n;
    }
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
        return e;
    case EXPR_VAR: {
        for (int i = c->n - 1; i >= 0; i--)
            if (c->vars[i] == e->u.var) {
                if (c->r[i].lo == c->r[i].hi)
                    return expr_iconst(a, c->r[i].lo);
                return c->repl[i] ? c->repl[i] : e;
            }
        return e;
    }
    case EXPR_LOAD: {
        Expr *idx[IR_MAX_DIMS + 1];
        bool changed = false;
        for (int i = 0; i < e->u.load.n; i++) {
            idx[i] = simp(c, e->u.load.idx[i]);
            changed |= idx[i] != e->u.load.idx[i];
        }
        if (!changed)
            return e;
        Expr *r = expr_load(a, e->dt, e->u.load.buf, e->u.load.n, idx);
        if (r)
            r->loc = e->loc;
        return r;
    }
    case EXPR_SELECT: {
        Expr *cond = simp(c, e->u.op.a);
        if (is_int(cond, &u))
            return simp(c, u ? e->u.op.b : e->u.op.c);
        return rebuild(c, e, cond, simp(c, e->u.op.b), simp(c, e->u.op.c));
    }
    case EXPR_AND:
    case EXPR_OR: {
        bool is_and = e->kind == EXPR_AND;
        Expr *x = simp(c, e->u.op.a);
        if (is_int(x, &u))
            return u == is_and ? simp(c, e->u.op.b) : bconst(c, !is_and);
        Expr *y = simp(c, e->u.op.b);
        if (is_int(y, &v))
            return v == is_and ? x : bconst(c, !is_and);
        return rebuild(c, e, x, y, NULL);
    }
    case EXPR_NOT: {
        Expr *x = simp(c, e->u.op.a);
        if (is_int(x, &u))
            return bconst(c, !u);
        return rebuild(c, e, x, NULL, NULL);
    }
    case EXPR_LT:
    case EXPR_LE:
    case EXPR_GT:
    case EXPR_GE:
    case EXPR_EQ:
    case EXPR_NE:
        return simp_compare(c, e);
    case EXPR_CAST: {
        Expr *x = simp(c, e->u.op.a);
        if (is_int(x, &u) && !dtype_is_float(e->dt) && fits(e->dt, u))
            return expr_int(a, e->dt, u);
        return rebuild(c, e, x, NULL, NULL);
    }
    default:
        break;
    }
    if (dtype_is_float(e->dt) || e->dt == DT_BOOL || !expr_is_binary(e->kind)) {
        /* float arithmetic, unary ops: simplify inside, fold integer NEG/ABS */
        Expr *x = simp(c, e->u.op.a);
        Expr *y = e->u.op.b ? simp(c, e->u.op.b) : NULL;
        Expr *z = e->u.op.c ? simp(c, e->u.op.c) : NULL;
        if (!dtype_is_float(e->dt) && is_int(x, &u)) {
            if (e->kind == EXPR_NEG && u != INT64_MIN && fits(e->dt, -u))
                return expr_int(a, e->dt, -u);
            if (e->kind == EXPR_ABS && u != INT64_MIN && fits(e->dt, u < 0 ? -u : u))
                return expr_int(a, e->dt, u < 0 ? -u : u);
        }
        if (e->dt == DT_I64 && e->kind == EXPR_NEG) {
            Lin L;
            lin_init(&L, 0);
            lin_of(&L, rebuild(c, e, x, y, z), 1);
            if (L.ok)
                return lin_build(a, &L);
        }
        return rebuild(c, e, x, y, z);
    }
    /* integer binary arithmetic */
    Expr *x = simp(c, e->u.op.a), *y = simp(c, e->u.op.b);
    if (is_int(x, &u) && is_int(y, &v)) {
        int64_t r;
        if (fold_int(e->kind, e->dt, u, v, &r))
            return expr_int(a, e->dt, r);
        return rebuild(c, e, x, y, NULL);
    }
    if (e->dt != DT_I64)
        return rebuild(c, e, x, y, NULL);
    switch (e->kind) {
    case EXPR_ADD:
    case EXPR_SUB:
    case EXPR_MUL: {
        Expr *n = rebuild(c, e, x, y, NULL);
        Lin L;
        lin_init(&L, 0);
        lin_of(&L, n, 1);
        lin_recombine(&L);
        return L.ok ? lin_build(a, &L) : n;
    }
    case EXPR_DIV:
    case EXPR_MOD:
        if (is_int(y, &v)) {
            if (v == 0)
                return expr_iconst(a, 0);
            if (v == 1)
                return e->kind == EXPR_DIV ? x : expr_iconst(a, 0);
            if (v > 0)
                return simp_divmod(c, e, x, v);
        }
        return rebuild(c, e, x, y, NULL);
    case EXPR_MIN:
    case EXPR_MAX: {
        Range rx = range_of(c, x), ry = range_of(c, y);
        bool x_le_y = rx.hi <= ry.lo, y_le_x = ry.hi <= rx.lo;
        if (x_le_y || y_le_x)
            return (e->kind == EXPR_MIN) == x_le_y ? x : y;
        return rebuild(c, e, x, y, NULL);
    }
    default:
        return rebuild(c, e, x, y, NULL);
    }
}

/* ------------------------------------------------------- statements */
static bool push_repl(Simp *c, Var *v, Range r, Expr *repl)
{
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 32;
        Var **vs = arena_alloc(c->a, sizeof(Var *) * (size_t)cap);
        Range *rs = arena_alloc(c->a, sizeof(Range) * (size_t)cap);
        Expr **es = arena_alloc(c->a, sizeof(Expr *) * (size_t)cap);
        if (!vs || !rs || !es)
            return false;
        if (c->n) {
            memcpy(vs, c->vars, sizeof(Var *) * (size_t)c->n);
            memcpy(rs, c->r, sizeof(Range) * (size_t)c->n);
            memcpy(es, c->repl, sizeof(Expr *) * (size_t)c->n);
        }
        c->vars = vs;
        c->r = rs;
        c->repl = es;
        c->cap = cap;
    }
    c->vars[c->n] = v;
    c->r[c->n] = r;
    c->repl[c->n++] = repl;
    return true;
}

static bool push(Simp *c, Var *v, Range r)
{
    return push_repl(c, v, r, NULL);
}

/* How many leading iterations of loop s can do anything.  When the loop's
 * whole body sits under guards (a perfect chain of loops and else-less
 * ifs), an iteration whose guard `k*v + rest < 0` (k > 0) fails for every
 * value of the other vars is a no-op: v < (-min(rest)) / k.  This keeps
 * split factors larger than the extent (a schedule tuned for bigger sizes)
 * from multiplying the work.  Returns 0 when no iteration can run. */
static int64_t useful_extent(Simp *c, const LStmt *s)
{
    enum { MAXG = 32 };
    int64_t ext = s->u.loop.extent;
    Var *v = s->u.loop.var;
    int base = c->n;
    const Expr *conds[MAXG];
    int nc = 0;
    const LStmt *cur = s->u.loop.body;
    while (cur) {
        if (cur->kind == LS_FOR) {
            if (!push(c, cur->u.loop.var, (Range){0, cur->u.loop.extent - 1}))
                break;
            cur = cur->u.loop.body;
        } else if (cur->kind == LS_IF && !cur->u.cond.else_s && nc < MAXG) {
            conds[nc++] = cur->u.cond.cond;
            cur = cur->u.cond.then_s;
        } else if (cur->kind == LS_BLOCK && cur->u.block.n == 1) {
            cur = cur->u.block.s[0];
        } else {
            break;
        }
    }
    for (int i = 0; i < nc; i++) {
        const Expr *g = conds[i];
        ExprKind k = g->kind;
        if ((k != EXPR_LT && k != EXPR_LE && k != EXPR_GT && k != EXPR_GE) ||
            g->u.op.a->dt != DT_I64 || g->u.op.b->dt != DT_I64)
            continue;
        /* as D < 0 */
        bool less = k == EXPR_LT || k == EXPR_LE;
        Lin D;
        lin_init(&D, 0);
        lin_of(&D, g->u.op.a, less ? 1 : -1);
        lin_of(&D, g->u.op.b, less ? -1 : 1);
        if (k == EXPR_LE || k == EXPR_GE)
            D.c -= 1; /* integers: x <= 0  <=>  x - 1 < 0 */
        int64_t coef = 0;
        Lin rest;
        lin_init(&rest, D.c);
        for (int t = 0; t < D.n; t++) {
            if (D.t[t].atom->kind == EXPR_VAR && D.t[t].atom->u.var == v)
                coef += D.t[t].coef;
            else
                rest.t[rest.n++] = D.t[t];
        }
        if (!D.ok || coef <= 0)
            continue;
        Range r = lin_range(c, &rest);
        if (r.lo == INT64_MIN || r.lo <= INT64_MIN / 2)
            continue;
        int64_t m = fdiv(-r.lo - 1, coef) + 1;
        if (m < ext)
            ext = m > 0 ? m : 0;
    }
    c->n = base;
    return ext;
}

/* Returns the simplified statement, or NULL when nothing is left. */
static LStmt *simp_stmt(Simp *c, LStmt *s)
{
    Arena *a = c->a;
    switch (s->kind) {
    case LS_FOR: {
        /* vector loops keep the width the schedule asked for (codegen masks) */
        int64_t ext = s->u.loop.kind == LOOP_VECTORIZED ? s->u.loop.extent : useful_extent(c, s);
        if (ext == 0)
            return NULL;
        /* A shortened loop gets a new var, so Var.extent keeps matching. */
        Var *v = s->u.loop.var;
        int base = c->n;
        if (ext != s->u.loop.extent && ext > 1) {
            Var *nv = ir_var_new(a, v->name, ext);
            if (!nv || !push_repl(c, v, (Range){0, ext - 1}, expr_var(a, nv)))
                return NULL;
            nv->reduce = v->reduce;
            v = nv;
        }
        if (!push(c, v, (Range){0, ext - 1}))
            return NULL;
        LStmt *b = simp_stmt(c, s->u.loop.body);
        c->n = base;
        if (!b)
            return NULL;
        if (ext == 1) /* the var read as 0 inside */
            return b;
        return ls_for(a, v, ext, s->u.loop.kind, b);
    }
    case LS_STORE: {
        Expr *idx[IR_MAX_DIMS + 1];
        for (int i = 0; i < s->u.store.n; i++)
            idx[i] = simp(c, s->u.store.idx[i]);
        return ls_store(a, s->u.store.buf, s->u.store.n, idx, simp(c, s->u.store.value));
    }
    case LS_IF: {
        Expr *cond = simp(c, s->u.cond.cond);
        int64_t v;
        if (is_int(cond, &v))
            return v                  ? simp_stmt(c, s->u.cond.then_s)
                   : s->u.cond.else_s ? simp_stmt(c, s->u.cond.else_s)
                                      : NULL;
        LStmt *t = simp_stmt(c, s->u.cond.then_s);
        LStmt *f = s->u.cond.else_s ? simp_stmt(c, s->u.cond.else_s) : NULL;
        if (!t && !f)
            return NULL;
        if (!t)
            return ls_if(a, expr_un(a, EXPR_NOT, DT_BOOL, cond), f, NULL);
        return ls_if(a, cond, t, f);
    }
    case LS_BLOCK: {
        PtrVec v = {0};
        for (int i = 0; i < s->u.block.n; i++) {
            LStmt *x = simp_stmt(c, s->u.block.s[i]);
            if (!x)
                continue;
            if (x->kind == LS_BLOCK)
                for (int k = 0; k < x->u.block.n; k++)
                    ptrvec_push(a, &v, x->u.block.s[k]);
            else
                ptrvec_push(a, &v, x);
        }
        if (v.n == 0)
            return NULL;
        if (v.n == 1)
            return v.v[0];
        return ls_block(a, v.n, (LStmt **)v.v);
    }
    case LS_ALLOC: {
        LStmt *b = simp_stmt(c, s->u.alloc.body);
        return b ? ls_alloc(a, s->u.alloc.buf, b) : NULL;
    }
    }
    return s;
}

int lower_simplify(const LowerCtx *cx, const LFunc *f, LFunc **out)
{
    Simp c = {.a = cx->a};
    LStmt *body = simp_stmt(&c, f->body);
    if (!body)
        body = ls_block(cx->a, 0, NULL);
    if (!body || !(*out = lower_copy_func(cx->a, f, body)))
        return ir_error(cx->e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    return KILN_OK;
}
