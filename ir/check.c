/* ir/check.c: the checks on a parsed statement that need the whole tree:
 * extents of reduction variables (explicit ranges, else inferred from the
 * dims they index directly), static bounds of every load by interval
 * analysis, and a type-consistency verifier for the parser's output.
 *
 * Bounds invariant (what codegen and the interpreter rely on): every load
 * that can execute indexes inside its tensor.  Intervals are sound over-
 * approximations: integer overflow widens to the dtype's whole range, and
 * `select` conditions narrow intervals only in the branch they guard.
 * `&&`/`||` are NOT assumed to short-circuit: both sides must be in bounds. */
#include <stdio.h>
#include <string.h>

#include "ir/ir.h"

/* ------------------------------------------------------------ extents */
typedef struct {
    const Program *p;
    const Var *v;
    int64_t ext; /* 0: none found yet */
    int tensor, dim;
    Loc first_use;
    kiln_error *e;
    int rc;
} Infer;

static void infer_walk(Infer *in, const Expr *e)
{
    if (!e || in->rc)
        return;
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
        return;
    case EXPR_VAR:
        if (e->u.var == in->v && !in->first_use.line)
            in->first_use = e->loc;
        return;
    case EXPR_LOAD: {
        const Tensor *t = &in->p->tensors[e->u.load.buf];
        for (int d = 0; d < e->u.load.n; d++) {
            const Expr *ix = e->u.load.idx[d];
            if (ix->kind == EXPR_VAR && ix->u.var == in->v) {
                if (!in->first_use.line)
                    in->first_use = ix->loc;
                if (!in->ext) {
                    in->ext = t->dims[d];
                    in->tensor = e->u.load.buf;
                    in->dim = d;
                } else if (in->ext != t->dims[d]) {
                    const Tensor *t0 = &in->p->tensors[in->tensor];
                    in->rc = ir_error(in->e, KILN_ESEMANTIC, in->p->file, ix->loc,
                                      "extent of '%s' disagrees: dim %d of '%s' is %lld but dim %d "
                                      "of '%s' is %lld",
                                      in->v->name, in->dim, t0->name, (long long)in->ext, d,
                                      t->name, (long long)t->dims[d]);
                    return;
                }
            }
            infer_walk(in, ix);
        }
        return;
    }
    default:
        infer_walk(in, e->u.op.a);
        infer_walk(in, e->u.op.b);
        infer_walk(in, e->u.op.c);
        return;
    }
}

static int set_extents(const Program *p, Stmt *s, int nranges, const char *const *names,
                       const int64_t *ext, const Loc *locs, kiln_error *e)
{
    bool given[64] = {0};
    for (int r = 0; r < nranges; r++) {
        Loc loc = locs ? locs[r] : s->loc;
        const char *nm = names[r] ? names[r] : "";
        for (int q = 0; q < r; q++)
            if (names[q] && !strcmp(names[q], nm))
                return ir_error(e, KILN_ESEMANTIC, p->file, loc, "range '%s' is given twice", nm);
        int v = -1;
        for (int i = 0; i < s->nvars; i++)
            if (!strcmp(s->vars[i]->name, nm))
                v = i;
        if (v < 0)
            return ir_error(e, KILN_ESEMANTIC, p->file, loc,
                            "range '%s' names no variable of this statement", nm);
        if (v < s->nspatial)
            return ir_error(e, KILN_ESEMANTIC, p->file, loc,
                            "range '%s' is for a left-hand variable: its extent is dim %d of '%s'",
                            nm, v, p->tensors[s->out].name);
        if (ext[r] <= 0)
            return ir_error(e, KILN_ESEMANTIC, p->file, loc,
                            "range of '%s' must be positive, got %lld", nm, (long long)ext[r]);
        if (ext[r] > ((int64_t)1 << 40))
            return ir_error(e, KILN_ESEMANTIC, p->file, loc, "range of '%s' is too large", nm);
        s->vars[v]->extent = ext[r];
        if (v < 64)
            given[v] = true;
    }
    for (int v = s->nspatial; v < s->nvars; v++) {
        if (given[v])
            continue;
        Infer in = {.p = p, .v = s->vars[v], .e = e};
        infer_walk(&in, s->rhs);
        if (in.rc)
            return in.rc;
        if (!in.ext)
            return ir_error(e, KILN_ESEMANTIC, p->file, in.first_use,
                            "cannot infer the extent of '%s': give it in ranges", s->vars[v]->name);
        s->vars[v]->extent = in.ext;
    }
    return KILN_OK;
}

/* ----------------------------------------------------------- intervals */
typedef struct {
    int64_t lo, hi; /* empty when lo > hi (unreachable code) */
} Iv;

typedef struct {
    const Expr *e;
    Iv iv;
} Fact;

#define MAX_FACTS 64

typedef struct {
    const Program *p;
    Fact f[MAX_FACTS];
    int nf;
    bool dead;   /* a fact pushed since the last mark is unsatisfiable */
    long budget; /* interval work left; then every interval is the full range */
    kiln_error *e;
} Ctx;

/* Selects nested inside conditions re-evaluate their operands per fact, which
 * can grow exponentially on adversarial input; past the budget the analysis
 * answers "anything", which only makes it reject more. */
#define IV_BUDGET 2000000

static const Iv empty_iv = {1, 0};

static bool is_empty(Iv a)
{
    return a.lo > a.hi;
}

static Iv full(DType dt)
{
    switch (dt) {
    case DT_I32:
        return (Iv){INT32_MIN, INT32_MAX};
    case DT_BOOL:
        return (Iv){0, 1};
    default:
        return (Iv){INT64_MIN, INT64_MAX};
    }
}

/* The interval as computed, or the dtype's whole range when it leaves the
 * dtype (the value wrapped). */
static Iv fit(Iv a, DType dt)
{
    Iv f = full(dt);
    if (is_empty(a))
        return a;
    if (a.lo < f.lo || a.hi > f.hi)
        return f;
    return a;
}

static Iv meet(Iv a, Iv b)
{
    return (Iv){a.lo > b.lo ? a.lo : b.lo, a.hi < b.hi ? a.hi : b.hi};
}

static Iv join(Iv a, Iv b)
{
    if (is_empty(a))
        return b;
    if (is_empty(b))
        return a;
    return (Iv){a.lo < b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi};
}

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int64_t floordiv(int64_t x, int64_t d)
{
    int64_t q = x / d;
    if ((x % d != 0) && ((x < 0) != (d < 0)))
        q--;
    return q;
}

static int64_t absmax(Iv a, bool *ovf)
{
    if (a.lo == INT64_MIN) {
        *ovf = true;
        return INT64_MAX;
    }
    int64_t x = a.lo < 0 ? -a.lo : a.lo, y = a.hi < 0 ? -a.hi : a.hi;
    return x > y ? x : y;
}

static Iv iv_of(Ctx *c, const Expr *e);

static Iv iv_binary(Ctx *c, const Expr *e)
{
    Iv a = iv_of(c, e->u.op.a), b = iv_of(c, e->u.op.b), r;
    DType dt = e->dt;
    if (is_empty(a) || is_empty(b))
        return empty_iv;
    switch (e->kind) {
    case EXPR_ADD:
        if (__builtin_add_overflow(a.lo, b.lo, &r.lo) || __builtin_add_overflow(a.hi, b.hi, &r.hi))
            return full(dt);
        return fit(r, dt);
    case EXPR_SUB:
        if (__builtin_sub_overflow(a.lo, b.hi, &r.lo) || __builtin_sub_overflow(a.hi, b.lo, &r.hi))
            return full(dt);
        return fit(r, dt);
    case EXPR_MUL: {
        int64_t p[4];
        if (__builtin_mul_overflow(a.lo, b.lo, &p[0]) ||
            __builtin_mul_overflow(a.lo, b.hi, &p[1]) ||
            __builtin_mul_overflow(a.hi, b.lo, &p[2]) || __builtin_mul_overflow(a.hi, b.hi, &p[3]))
            return full(dt);
        r.lo = r.hi = p[0];
        for (int i = 1; i < 4; i++) {
            r.lo = p[i] < r.lo ? p[i] : r.lo;
            r.hi = p[i] > r.hi ? p[i] : r.hi;
        }
        return fit(r, dt);
    }
    case EXPR_DIV: {
        if (b.lo == 0 && b.hi == 0)
            return (Iv){0, 0};
        if (b.lo > 0 || b.hi < 0) {
            /* Floor division is monotone in x for fixed d and in d for fixed
             * x on each sign side: the corners bound it. */
            int64_t xs[2] = {a.lo, a.hi}, ds[2] = {b.lo, b.hi};
            bool first = true;
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    if (xs[i] == INT64_MIN && ds[j] == -1)
                        return full(dt);
                    int64_t q = floordiv(xs[i], ds[j]);
                    if (first || q < r.lo)
                        r.lo = q;
                    if (first || q > r.hi)
                        r.hi = q;
                    first = false;
                }
            return fit(r, dt);
        }
        bool ovf = false;
        int64_t m = absmax(a, &ovf);
        if (ovf)
            return full(dt);
        return fit((Iv){-m, m}, dt);
    }
    case EXPR_MOD: {
        if (b.lo == 0 && b.hi == 0)
            return (Iv){0, 0};
        if (b.lo == b.hi && b.lo > 0) {
            int64_t d = b.lo, k = floordiv(a.lo, d);
            if (k == floordiv(a.hi, d) && !__builtin_mul_overflow(k, d, &r.lo)) {
                int64_t base = r.lo;
                return (Iv){a.lo - base, a.hi - base};
            }
            return (Iv){0, d - 1};
        }
        if (b.lo > 0) {
            r = (Iv){0, b.hi - 1};
            if (a.lo >= 0 && a.hi < r.hi)
                r.hi = a.hi;
            return r;
        }
        if (b.hi < 0)
            return (Iv){b.lo + 1, 0};
        bool ovf = false;
        int64_t m = absmax(b, &ovf);
        return (Iv){-(m - 1), m - 1};
    }
    case EXPR_MIN:
        return (Iv){a.lo < b.lo ? a.lo : b.lo, a.hi < b.hi ? a.hi : b.hi};
    case EXPR_MAX:
        return (Iv){a.lo > b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi};
    default:
        return full(dt);
    }
}

static void push_facts(Ctx *c, const Expr *cond, bool positive);

/* Interval of e under cond being `positive` (narrowed through facts). */
static Iv iv_under(Ctx *c, const Expr *cond, bool positive, const Expr *e)
{
    int mark = c->nf;
    bool dead = c->dead;
    c->dead = false;
    push_facts(c, cond, positive);
    Iv r = c->dead ? empty_iv : iv_of(c, e);
    c->nf = mark;
    c->dead = dead;
    return r;
}

static Iv iv_struct(Ctx *c, const Expr *e)
{
    switch (e->kind) {
    case EXPR_INT:
        return (Iv){e->u.i, e->u.i};
    case EXPR_VAR:
        return (Iv){0, e->u.var->extent - 1};
    case EXPR_LOAD:
        return full(e->dt);
    case EXPR_CAST: {
        const Expr *x = e->u.op.a;
        if (x->dt == DT_I32 || x->dt == DT_I64 || x->dt == DT_BOOL)
            return fit(iv_of(c, x), e->dt);
        return full(e->dt); /* from float: saturates somewhere in the range */
    }
    case EXPR_NEG: {
        Iv a = iv_of(c, e->u.op.a);
        if (is_empty(a))
            return a;
        if (a.lo == INT64_MIN)
            return full(e->dt);
        return fit((Iv){-a.hi, -a.lo}, e->dt);
    }
    case EXPR_ABS: {
        Iv a = iv_of(c, e->u.op.a);
        if (is_empty(a))
            return a;
        if (a.lo == INT64_MIN)
            return full(e->dt);
        if (a.lo >= 0)
            return a;
        if (a.hi <= 0)
            return fit((Iv){-a.hi, -a.lo}, e->dt);
        return fit((Iv){0, -a.lo > a.hi ? -a.lo : a.hi}, e->dt);
    }
    case EXPR_SELECT:
        return join(iv_under(c, e->u.op.a, true, e->u.op.b),
                    iv_under(c, e->u.op.a, false, e->u.op.c));
    default:
        if (dtype_is_float(e->dt))
            return full(DT_I64); /* never asked: index trees reach floats only through casts */
        if (expr_is_binary(e->kind) && !expr_is_compare(e->kind) && e->kind != EXPR_AND &&
            e->kind != EXPR_OR && e->dt != DT_BOOL)
            return iv_binary(c, e);
        return full(e->dt);
    }
}

static Iv iv_of(Ctx *c, const Expr *e)
{
    c->budget -= 1 + c->nf;
    if (c->budget < 0)
        return full(e->dt == DT_I32 ? DT_I32 : DT_I64);
    Iv r = iv_struct(c, e);
    if (e->kind == EXPR_INT)
        return r;
    for (int i = 0; i < c->nf; i++)
        if (expr_equal(c->f[i].e, e))
            r = meet(r, c->f[i].iv);
    return r;
}

static void add_fact(Ctx *c, const Expr *x, Iv con, int depth)
{
    if (x->kind == EXPR_INT || (x->dt != DT_I32 && x->dt != DT_I64))
        return;
    Iv cur = meet(iv_of(c, x), con);
    if (is_empty(cur))
        c->dead = true;
    if (c->nf < MAX_FACTS)
        c->f[c->nf++] = (Fact){x, cur};
    /* x = y + k or y - k with constant k: the fact also bounds y, so an
     * index written as a sub-term of the guarded expression benefits. */
    if (depth < 4 && (x->kind == EXPR_ADD || x->kind == EXPR_SUB)) {
        const Expr *y = x->u.op.a, *k = x->u.op.b;
        bool sub = x->kind == EXPR_SUB;
        if (k->kind != EXPR_INT && !sub) {
            y = x->u.op.b;
            k = x->u.op.a;
        }
        /* Only valid when y + k cannot wrap, i.e. x really is y + k. */
        Iv iy = iv_of(c, y), fx = full(x->dt), sum;
        if (k->kind == EXPR_INT && k->u.i != INT64_MIN && !is_empty(iy) &&
            !__builtin_add_overflow(iy.lo, sub ? -k->u.i : k->u.i, &sum.lo) &&
            !__builtin_add_overflow(iy.hi, sub ? -k->u.i : k->u.i, &sum.hi) && sum.lo >= fx.lo &&
            sum.hi <= fx.hi) {
            int64_t d = sub ? k->u.i : -k->u.i; /* y = x + d */
            Iv shifted = {con.lo == INT64_MIN ? INT64_MIN : sat_add(con.lo, d),
                          con.hi == INT64_MAX ? INT64_MAX : sat_add(con.hi, d)};
            add_fact(c, y, shifted, depth + 1);
        }
    }
}

static ExprKind negate_cmp(ExprKind k)
{
    switch (k) {
    case EXPR_LT:
        return EXPR_GE;
    case EXPR_LE:
        return EXPR_GT;
    case EXPR_GT:
        return EXPR_LE;
    case EXPR_GE:
        return EXPR_LT;
    case EXPR_EQ:
        return EXPR_NE;
    default:
        return EXPR_EQ;
    }
}

static ExprKind mirror_cmp(ExprKind k)
{
    switch (k) {
    case EXPR_LT:
        return EXPR_GT;
    case EXPR_LE:
        return EXPR_GE;
    case EXPR_GT:
        return EXPR_LT;
    case EXPR_GE:
        return EXPR_LE;
    default:
        return k;
    }
}

/* Constrains x given `x k y` holds. */
static void constrain(Ctx *c, const Expr *x, ExprKind k, const Expr *y)
{
    Iv b = iv_of(c, y), ix;
    if (is_empty(b)) {
        c->dead = true;
        return;
    }
    switch (k) {
    case EXPR_LT:
        add_fact(c, x, (Iv){INT64_MIN, b.hi == INT64_MIN ? INT64_MIN : b.hi - 1}, 0);
        if (b.hi == INT64_MIN)
            c->dead = true;
        return;
    case EXPR_LE:
        add_fact(c, x, (Iv){INT64_MIN, b.hi}, 0);
        return;
    case EXPR_GT:
        add_fact(c, x, (Iv){b.lo == INT64_MAX ? INT64_MAX : b.lo + 1, INT64_MAX}, 0);
        if (b.lo == INT64_MAX)
            c->dead = true;
        return;
    case EXPR_GE:
        add_fact(c, x, (Iv){b.lo, INT64_MAX}, 0);
        return;
    case EXPR_EQ:
        add_fact(c, x, b, 0);
        return;
    case EXPR_NE:
        /* Only a constant at an end of x's range removes anything. */
        ix = iv_of(c, x);
        if (b.lo != b.hi || is_empty(ix))
            return;
        if (ix.lo == b.lo && ix.lo < INT64_MAX)
            add_fact(c, x, (Iv){ix.lo + 1, INT64_MAX}, 0);
        else if (ix.hi == b.lo && ix.hi > INT64_MIN)
            add_fact(c, x, (Iv){INT64_MIN, ix.hi - 1}, 0);
        return;
    default:
        return;
    }
}

/* Can cond be `positive` at all under the current facts? */
static bool impossible(Ctx *c, const Expr *cond, bool positive)
{
    int mark = c->nf;
    bool dead = c->dead;
    c->dead = false;
    push_facts(c, cond, positive);
    bool r = c->dead;
    c->nf = mark;
    c->dead = dead;
    return r;
}

static void push_facts(Ctx *c, const Expr *cond, bool positive)
{
    switch (cond->kind) {
    case EXPR_AND:
    case EXPR_OR: {
        /* a && b true, or a || b false: both sides' facts hold.  Otherwise
         * one side holds, which is known only when the other cannot. */
        const Expr *a = cond->u.op.a, *b = cond->u.op.b;
        if (positive == (cond->kind == EXPR_AND)) {
            push_facts(c, a, positive);
            push_facts(c, b, positive);
        } else if (impossible(c, b, positive)) {
            push_facts(c, a, positive);
        } else if (impossible(c, a, positive)) {
            push_facts(c, b, positive);
        }
        return;
    }
    case EXPR_NOT:
        push_facts(c, cond->u.op.a, !positive);
        return;
    default:
        break;
    }
    if (!expr_is_compare(cond->kind))
        return;
    const Expr *x = cond->u.op.a, *y = cond->u.op.b;
    if (x->dt != DT_I32 && x->dt != DT_I64)
        return;
    ExprKind k = positive ? cond->kind : negate_cmp(cond->kind);
    constrain(c, x, k, y);
    constrain(c, y, mirror_cmp(k), x);
}

static void bound_str(char *buf, size_t n, int64_t v)
{
    if (v == INT64_MIN)
        snprintf(buf, n, "-inf");
    else if (v == INT64_MAX)
        snprintf(buf, n, "+inf");
    else
        snprintf(buf, n, "%lld", (long long)v);
}

static int check_expr(Ctx *c, const Expr *e)
{
    int rc;
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
    case EXPR_VAR:
        return KILN_OK;
    case EXPR_LOAD: {
        const Tensor *t = &c->p->tensors[e->u.load.buf];
        for (int d = 0; d < e->u.load.n; d++) {
            const Expr *ix = e->u.load.idx[d];
            if ((rc = check_expr(c, ix)))
                return rc;
            Iv r = iv_of(c, ix);
            if (is_empty(r))
                continue;
            if (r.lo < 0 || r.hi >= t->dims[d]) {
                char lo[32], hi[32];
                bound_str(lo, sizeof lo, r.lo);
                bound_str(hi, sizeof hi, r.hi);
                return ir_error(c->e, KILN_ESEMANTIC, c->p->file, ix->loc,
                                "index %d of '%s' ranges over [%s, %s] but the dim is %lld", d,
                                t->name, lo, hi, (long long)t->dims[d]);
            }
        }
        return KILN_OK;
    }
    case EXPR_SELECT: {
        if ((rc = check_expr(c, e->u.op.a)))
            return rc;
        for (int branch = 0; branch < 2; branch++) {
            int mark = c->nf;
            bool dead = c->dead;
            c->dead = false;
            push_facts(c, e->u.op.a, branch == 0);
            if (!c->dead)
                rc = check_expr(c, branch == 0 ? e->u.op.b : e->u.op.c);
            c->nf = mark;
            c->dead = dead;
            if (rc)
                return rc;
        }
        return KILN_OK;
    }
    default:
        if ((rc = check_expr(c, e->u.op.a)))
            return rc;
        if (e->u.op.b && (rc = check_expr(c, e->u.op.b)))
            return rc;
        return KILN_OK;
    }
}

/* ------------------------------------------------------------- verify */
/* The parser's typing invariant; a failure is a bug in kiln, not input. */
static void verify_types(const Program *p, const Expr *e)
{
    IR_ASSERT(e);
    switch (e->kind) {
    case EXPR_INT:
        IR_ASSERT(e->dt == DT_I32 || e->dt == DT_I64);
        return;
    case EXPR_FLOAT:
        IR_ASSERT(dtype_is_float(e->dt));
        return;
    case EXPR_VAR:
        IR_ASSERT(e->dt == DT_I64 && e->u.var->extent > 0);
        return;
    case EXPR_LOAD:
        IR_ASSERT(e->u.load.buf >= 0 && e->u.load.buf < p->ntensors);
        IR_ASSERT(e->dt == p->tensors[e->u.load.buf].dt);
        IR_ASSERT(e->u.load.n == p->tensors[e->u.load.buf].ndim);
        for (int i = 0; i < e->u.load.n; i++) {
            IR_ASSERT(e->u.load.idx[i]->dt == DT_I64);
            verify_types(p, e->u.load.idx[i]);
        }
        return;
    case EXPR_SELECT:
        IR_ASSERT(e->u.op.a->dt == DT_BOOL);
        IR_ASSERT(e->u.op.b->dt == e->dt && e->u.op.c->dt == e->dt);
        verify_types(p, e->u.op.a);
        verify_types(p, e->u.op.b);
        verify_types(p, e->u.op.c);
        return;
    case EXPR_CAST:
        IR_ASSERT(e->dt != DT_BOOL && e->u.op.a->dt != DT_BOOL && e->u.op.a->dt != e->dt);
        verify_types(p, e->u.op.a);
        return;
    case EXPR_AND:
    case EXPR_OR:
        IR_ASSERT(e->dt == DT_BOOL && e->u.op.a->dt == DT_BOOL && e->u.op.b->dt == DT_BOOL);
        verify_types(p, e->u.op.a);
        verify_types(p, e->u.op.b);
        return;
    case EXPR_NOT:
        IR_ASSERT(e->dt == DT_BOOL && e->u.op.a->dt == DT_BOOL);
        verify_types(p, e->u.op.a);
        return;
    default:
        if (expr_is_compare(e->kind)) {
            IR_ASSERT(e->dt == DT_BOOL && e->u.op.a->dt == e->u.op.b->dt);
            verify_types(p, e->u.op.a);
            verify_types(p, e->u.op.b);
            return;
        }
        IR_ASSERT(e->dt != DT_BOOL && e->u.op.a->dt == e->dt);
        if (e->kind >= EXPR_EXP && e->kind <= EXPR_SIGMOID)
            IR_ASSERT(dtype_is_float(e->dt));
        if (e->kind == EXPR_MOD)
            IR_ASSERT(!dtype_is_float(e->dt));
        verify_types(p, e->u.op.a);
        if (expr_is_binary(e->kind)) {
            IR_ASSERT(e->u.op.b->dt == e->dt);
            verify_types(p, e->u.op.b);
        }
        return;
    }
}

int ir_check_stmt(const Program *p, Stmt *s, int nranges, const char *const *range_names,
                  const int64_t *range_ext, const Loc *range_locs, kiln_error *e)
{
    int rc = set_extents(p, s, nranges, range_names, range_ext, range_locs, e);
    if (rc)
        return rc;
    verify_types(p, s->rhs);
    IR_ASSERT(s->rhs->dt == p->tensors[s->out].dt);
    Ctx c = {.p = p, .e = e, .budget = IV_BUDGET};
    return check_expr(&c, s->rhs);
}
