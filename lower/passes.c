/* lower/passes.c: the structural passes after build/inline.
 *
 * init: every reduction gets its identity stored just before its outermost
 *   reduction loop, over the spatial loops nested inside that loop (same
 *   order and kinds, fresh vars, the spatial guards), so the init stays in
 *   cache next to its update; with no reduction loop at all the init sits
 *   right before the update.
 * guards: each guard moves out of every loop whose var it does not use and
 *   out of blocks whose elements all carry it, so inner loops (and vector
 *   bodies) are guard-free where possible; a guard on a vectorized var stays
 *   directly inside that loop (codegen masks it).
 * flatten: temps get LS_ALLOC around the whole body; every load and store
 *   gets one row-major i64 index (scalars: 0); LFunc.flat = true.  The
 *   index arithmetic is then tidied by the simplifier. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lower/lower.h"

static int nomem(const LowerCtx *cx)
{
    return ir_error(cx->e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
}

static bool uses_reduce_var(const Expr *e)
{
    if (!e)
        return false;
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
        return false;
    case EXPR_VAR:
        return e->u.var->reduce;
    case EXPR_LOAD:
        for (int i = 0; i < e->u.load.n; i++)
            if (uses_reduce_var(e->u.load.idx[i]))
                return true;
        return false;
    default:
        return uses_reduce_var(e->u.op.a) || uses_reduce_var(e->u.op.b) ||
               uses_reduce_var(e->u.op.c);
    }
}

/* ------------------------------------------------------------- init */
static RedOp red_of(const LowerCtx *cx, int buf)
{
    const Program *p = cx->p;
    if (buf < 0 || buf >= p->ntensors || p->tensors[buf].writer < 0)
        return RED_NONE;
    return p->stmts[p->tensors[buf].writer].red;
}

static LStmt *init_store(const LowerCtx *cx, const LStmt *upd, int n, Var **from, Expr **to)
{
    Expr *idx[IR_MAX_DIMS + 1];
    for (int i = 0; i < upd->u.store.n; i++)
        idx[i] = expr_subst(cx->a, upd->u.store.idx[i], n, from, to);
    DType dt = cx->p->tensors[upd->u.store.buf].dt;
    return ls_store(cx->a, upd->u.store.buf, upd->u.store.n, idx,
                    expr_red_identity(cx->a, red_of(cx, upd->u.store.buf), dt));
}

/* Does s contain a store to buf? */
static bool has_store(const LStmt *s, int buf)
{
    if (!s)
        return false;
    switch (s->kind) {
    case LS_FOR:
        return has_store(s->u.loop.body, buf);
    case LS_STORE:
        return s->u.store.buf == buf;
    case LS_BLOCK:
        for (int i = 0; i < s->u.block.n; i++)
            if (has_store(s->u.block.s[i], buf))
                return true;
        return false;
    case LS_IF:
        return has_store(s->u.cond.then_s, buf) || has_store(s->u.cond.else_s, buf);
    case LS_ALLOC:
        return has_store(s->u.alloc.body, buf);
    }
    return false;
}

/* The init nest for the reduction of buffer `buf` whose outermost
 * reduction loop is `top`: buf's spatial loops below it, fresh vars, and
 * the guards on the way.  The path to buf's update goes through buf's own
 * loops; blocks on it (producers computed at these loops) are passed by
 * following the element that holds the update. */
static LStmt *make_init(const LowerCtx *cx, const LStmt *top, int buf)
{
    enum { MAXL = 256 };
    Var *from[MAXL];
    Expr *to[MAXL];
    const LStmt *loops[MAXL];
    const Expr *conds[MAXL];
    int nl = 0, nc = 0;
    const LStmt *cur = top;
    while (cur && cur->kind != LS_STORE) {
        if (cur->kind == LS_FOR) {
            if (!cur->u.loop.var->reduce && cur->u.loop.var->owner == buf + 1) {
                IR_ASSERT(nl < MAXL);
                Var *v = ir_var_new(cx->a, cur->u.loop.var->name, cur->u.loop.extent);
                if (!v)
                    return NULL;
                v->owner = buf + 1;
                from[nl] = cur->u.loop.var;
                to[nl] = expr_var(cx->a, v);
                loops[nl++] = cur;
            }
            cur = cur->u.loop.body;
        } else if (cur->kind == LS_IF) {
            IR_ASSERT(!cur->u.cond.else_s && nc < MAXL);
            if (!uses_reduce_var(cur->u.cond.cond))
                conds[nc++] = cur->u.cond.cond;
            cur = cur->u.cond.then_s;
        } else if (cur->kind == LS_ALLOC) {
            cur = cur->u.alloc.body;
        } else {
            IR_ASSERT(cur->kind == LS_BLOCK);
            const LStmt *next = NULL;
            for (int i = 0; i < cur->u.block.n && !next; i++)
                if (has_store(cur->u.block.s[i], buf))
                    next = cur->u.block.s[i];
            cur = next;
        }
    }
    IR_ASSERT(cur && cur->u.store.buf == buf);
    LStmt *s = init_store(cx, cur, nl, from, to);
    for (int i = nc - 1; i >= 0; i--)
        s = ls_if(cx->a, expr_subst(cx->a, (Expr *)conds[i], nl, from, to), s, NULL);
    for (int i = nl - 1; i >= 0; i--)
        s = ls_for(cx->a, to[i]->u.var, loops[i]->u.loop.extent, loops[i]->u.loop.kind, s);
    return s;
}

/* Reductions whose outermost reduction loop encloses the current point. */
typedef struct Active {
    int buf;
    const struct Active *up;
} Active;

static bool is_active(const Active *act, int buf)
{
    for (; act; act = act->up)
        if (act->buf == buf)
            return true;
    return false;
}

static LStmt *init_walk(const LowerCtx *cx, LStmt *s, const Active *act)
{
    Arena *a = cx->a;
    switch (s->kind) {
    case LS_FOR: {
        Var *v = s->u.loop.var;
        int buf = v->owner - 1;
        if (v->reduce && buf >= 0 && !is_active(act, buf) && red_of(cx, buf) != RED_NONE) {
            Active me = {buf, act};
            LStmt *b = init_walk(cx, s->u.loop.body, &me);
            LStmt *two[2] = {make_init(cx, s, buf),
                             b ? ls_for(a, v, s->u.loop.extent, s->u.loop.kind, b) : NULL};
            return two[0] && two[1] ? ls_block(a, 2, two) : NULL;
        }
        LStmt *b = init_walk(cx, s->u.loop.body, act);
        return b == s->u.loop.body ? s : ls_for(a, v, s->u.loop.extent, s->u.loop.kind, b);
    }
    case LS_STORE:
        if (!is_active(act, s->u.store.buf) && red_of(cx, s->u.store.buf) != RED_NONE) {
            LStmt *two[2] = {init_store(cx, s, 0, NULL, NULL), s};
            return ls_block(a, 2, two);
        }
        return s;
    case LS_BLOCK: {
        LStmt **v = arena_alloc(a, sizeof(LStmt *) * (size_t)(s->u.block.n + 1));
        if (!v)
            return NULL;
        for (int i = 0; i < s->u.block.n; i++)
            if (!(v[i] = init_walk(cx, s->u.block.s[i], act)))
                return NULL;
        return ls_block(a, s->u.block.n, v);
    }
    case LS_IF: {
        LStmt *t = init_walk(cx, s->u.cond.then_s, act);
        LStmt *f = s->u.cond.else_s ? init_walk(cx, s->u.cond.else_s, act) : NULL;
        return t == s->u.cond.then_s && f == s->u.cond.else_s ? s : ls_if(a, s->u.cond.cond, t, f);
    }
    case LS_ALLOC: {
        LStmt *b = init_walk(cx, s->u.alloc.body, act);
        return b == s->u.alloc.body ? s : ls_alloc(a, s->u.alloc.buf, b);
    }
    }
    return s;
}

int lower_init(const LowerCtx *cx, const LFunc *f, LFunc **out)
{
    LStmt *body = init_walk(cx, f->body, NULL);
    if (!body || !(*out = lower_copy_func(cx->a, f, body)))
        return nomem(cx);
    return KILN_OK;
}

/* ----------------------------------------------------------- guards */
/* Peels the chain of else-less ifs at the top of s into conds[]. */
static LStmt *peel_ifs(LStmt *s, Expr **conds, int *n, int max)
{
    while (s && s->kind == LS_IF && !s->u.cond.else_s && *n < max) {
        conds[(*n)++] = s->u.cond.cond;
        s = s->u.cond.then_s;
    }
    return s;
}

static LStmt *wrap_ifs(Arena *a, Expr **conds, int n, LStmt *s)
{
    for (int i = n - 1; i >= 0; i--)
        s = ls_if(a, conds[i], s, NULL);
    return s;
}

enum { MAXC = 64 };

static LStmt *hoist(const LowerCtx *cx, LStmt *s)
{
    Arena *a = cx->a;
    switch (s->kind) {
    case LS_FOR: {
        LStmt *b = hoist(cx, s->u.loop.body);
        Expr *conds[MAXC], *stay[MAXC], *go[MAXC];
        int nc = 0, ns = 0, ng = 0;
        b = peel_ifs(b, conds, &nc, MAXC);
        for (int i = 0; i < nc; i++) {
            if (expr_uses_var(conds[i], s->u.loop.var))
                stay[ns++] = conds[i];
            else
                go[ng++] = conds[i];
        }
        LStmt *loop =
            ls_for(a, s->u.loop.var, s->u.loop.extent, s->u.loop.kind, wrap_ifs(a, stay, ns, b));
        return wrap_ifs(a, go, ng, loop);
    }
    case LS_BLOCK: {
        int n = s->u.block.n;
        LStmt **v = arena_alloc(a, sizeof(LStmt *) * (size_t)(n + 1));
        if (!v)
            return NULL;
        for (int i = 0; i < n; i++)
            v[i] = hoist(cx, s->u.block.s[i]);
        if (n == 0)
            return ls_block(a, 0, v);
        /* conditions every element starts with move out of the block */
        Expr *first[MAXC], *common[MAXC];
        int nf = 0, ncom = 0;
        peel_ifs(v[0], first, &nf, MAXC);
        for (int c = 0; c < nf; c++) {
            bool all = true;
            for (int i = 1; i < n && all; i++) {
                Expr *ci[MAXC];
                int nci = 0;
                peel_ifs(v[i], ci, &nci, MAXC);
                bool found = false;
                for (int k = 0; k < nci && !found; k++)
                    found = expr_equal(ci[k], first[c]);
                all = found;
            }
            if (all)
                common[ncom++] = first[c];
        }
        if (!ncom)
            return ls_block(a, n, v);
        for (int i = 0; i < n; i++) {
            Expr *ci[MAXC], *keep[MAXC];
            int nci = 0, nk = 0;
            LStmt *inner = peel_ifs(v[i], ci, &nci, MAXC);
            for (int k = 0; k < nci; k++) {
                bool com = false;
                for (int c = 0; c < ncom && !com; c++)
                    com = expr_equal(ci[k], common[c]);
                if (!com)
                    keep[nk++] = ci[k];
            }
            v[i] = wrap_ifs(a, keep, nk, inner);
        }
        return wrap_ifs(a, common, ncom, n == 1 ? v[0] : ls_block(a, n, v));
    }
    case LS_IF:
        return ls_if(a, s->u.cond.cond, hoist(cx, s->u.cond.then_s),
                     s->u.cond.else_s ? hoist(cx, s->u.cond.else_s) : NULL);
    case LS_ALLOC:
        return ls_alloc(a, s->u.alloc.buf, hoist(cx, s->u.alloc.body));
    case LS_STORE:
        return s;
    }
    return s;
}

int lower_guards(const LowerCtx *cx, const LFunc *f, LFunc **out)
{
    LStmt *body = hoist(cx, f->body);
    if (!body || !(*out = lower_copy_func(cx->a, f, body)))
        return nomem(cx);
    return KILN_OK;
}

/* ---------------------------------------------------------- flatten */
static Expr *flat_index(Arena *a, const LBuf *b, int n, Expr **idx)
{
    Expr *acc = expr_iconst(a, 0);
    for (int i = 0; i < n; i++) {
        Expr *x = idx[i];
        if (x->dt != DT_I64)
            x = expr_un(a, EXPR_CAST, DT_I64, x);
        acc = expr_iadd(a, expr_imul(a, acc, expr_iconst(a, b->dims[i])), x);
    }
    return acc;
}

static Expr *flat_expr(const LFunc *f, Arena *a, Expr *e)
{
    if (!e)
        return NULL;
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
    case EXPR_VAR:
        return e;
    case EXPR_LOAD: {
        Expr *idx[IR_MAX_DIMS + 1];
        for (int i = 0; i < e->u.load.n; i++)
            idx[i] = flat_expr(f, a, e->u.load.idx[i]);
        Expr *fi = flat_index(a, &f->bufs[e->u.load.buf], e->u.load.n, idx);
        Expr *r = expr_load(a, e->dt, e->u.load.buf, 1, &fi);
        if (r)
            r->loc = e->loc;
        return r;
    }
    default: {
        Expr *r = arena_alloc(a, sizeof *r);
        if (r) {
            *r = *e;
            r->u.op.a = flat_expr(f, a, e->u.op.a);
            r->u.op.b = flat_expr(f, a, e->u.op.b);
            r->u.op.c = flat_expr(f, a, e->u.op.c);
        }
        return r;
    }
    }
}

static void mark_used(const LFunc *f, const Expr *e, bool *used)
{
    if (!e)
        return;
    if (e->kind == EXPR_LOAD) {
        used[e->u.load.buf] = true;
        for (int i = 0; i < e->u.load.n; i++)
            mark_used(f, e->u.load.idx[i], used);
    } else if (e->kind != EXPR_INT && e->kind != EXPR_FLOAT && e->kind != EXPR_VAR) {
        mark_used(f, e->u.op.a, used);
        mark_used(f, e->u.op.b, used);
        mark_used(f, e->u.op.c, used);
    }
}

static LStmt *flat_stmt(const LFunc *f, Arena *a, LStmt *s, bool *used)
{
    switch (s->kind) {
    case LS_FOR:
        return ls_for(a, s->u.loop.var, s->u.loop.extent, s->u.loop.kind,
                      flat_stmt(f, a, s->u.loop.body, used));
    case LS_STORE: {
        Expr *idx[IR_MAX_DIMS + 1];
        for (int i = 0; i < s->u.store.n; i++)
            idx[i] = flat_expr(f, a, s->u.store.idx[i]);
        Expr *fi = flat_index(a, &f->bufs[s->u.store.buf], s->u.store.n, idx);
        used[s->u.store.buf] = true;
        mark_used(f, s->u.store.value, used);
        return ls_store(a, s->u.store.buf, 1, &fi, flat_expr(f, a, s->u.store.value));
    }
    case LS_BLOCK: {
        LStmt **v = arena_alloc(a, sizeof(LStmt *) * (size_t)(s->u.block.n + 1));
        if (!v)
            return NULL;
        for (int i = 0; i < s->u.block.n; i++)
            v[i] = flat_stmt(f, a, s->u.block.s[i], used);
        return ls_block(a, s->u.block.n, v);
    }
    case LS_IF:
        mark_used(f, s->u.cond.cond, used);
        return ls_if(a, flat_expr(f, a, s->u.cond.cond), flat_stmt(f, a, s->u.cond.then_s, used),
                     s->u.cond.else_s ? flat_stmt(f, a, s->u.cond.else_s, used) : NULL);
    case LS_ALLOC:
        /* allocated here (compute_at): no allocation around the body */
        used[f->nbufs + s->u.alloc.buf] = true;
        return ls_alloc(a, s->u.alloc.buf, flat_stmt(f, a, s->u.alloc.body, used));
    }
    return s;
}

int lower_flatten(const LowerCtx *cx, const LFunc *f, LFunc **out)
{
    Arena *a = cx->a;
    if (f->flat) {
        *out = lower_copy_func(a, f, f->body);
        return *out ? KILN_OK : nomem(cx);
    }
    /* used[b]: b is accessed; used[nbufs + b]: b is already allocated */
    bool *used = arena_alloc(a, sizeof(bool) * (size_t)(2 * f->nbufs + 1));
    if (!used)
        return nomem(cx);
    LStmt *body = flat_stmt(f, a, f->body, used);
    for (int b = f->nbufs - 1; b >= f->nargs; b--)
        if (used[b] && !used[f->nbufs + b] &&
            (f->bufs[b].kind == T_TEMP || f->bufs[b].kind == T_LOCAL))
            body = ls_alloc(a, b, body);
    LFunc *g = body ? lower_copy_func(a, f, body) : NULL;
    if (!g)
        return nomem(cx);
    g->flat = true;
    /* Horner-form indices ((i*64 + j)...) become plain sums of strides. */
    return lower_simplify(cx, g, out);
}
