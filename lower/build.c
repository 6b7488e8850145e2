/* lower/build.c: the first two passes.
 *
 * build: one perfect loop nest per non-inlined statement, in program
 *   order, over the statement's leaf loops (outermost first).  Each original
 *   variable is rebuilt from the leaves (split: outer*span + inner; fuse:
 *   f / rest % extent) and substituted into the statement; the store is
 *   `T[idx] = T[idx] op rhs` for reductions.  Splits whose rounded-up parts
 *   can overshoot get a guard `value < extent` around the store (all guards
 *   innermost for now; the guards pass moves them out).  Loads of inlined
 *   temps are left as loads.
 * inline: every load of an inlined temp becomes the temp's right-hand
 *   side, with the producer's variables replaced by the load's indices
 *   (chains of inlined temps resolve in program order).
 *
 * Loop vars carry Var.reduce so later passes can tell the reduction loops
 * apart without the schedule. */
#include <string.h>

#include "lower/lower.h"

LFunc *lower_copy_func(Arena *a, const LFunc *f, LStmt *body)
{
    LFunc *g = arena_alloc(a, sizeof *g);
    if (g) {
        *g = *f;
        g->body = body;
    }
    return g;
}

/* ------------------------------------------------------------- build */
typedef struct {
    const LowerCtx *cx;
    int stmt;
    const StmtSched *st;
    Var **leafvar; /* per loop id: its LoopIR var (leaves only) */
    Expr **val;    /* per loop id: its value in terms of leaf vars (memo) */
    int *consumer; /* per loop id: the relation that takes it as input, -1 */
    int *producer; /* per loop id: the relation that made it, -1 */
} Build;

static Expr *loop_value(Build *b, int l)
{
    if (b->val[l])
        return b->val[l];
    Arena *a = b->cx->a;
    const StmtSched *st = b->st;
    Expr *v;
    if (st->loops[l].leaf) {
        v = expr_var(a, b->leafvar[l]);
    } else {
        const SRel *r = &st->rels[b->consumer[l]];
        IR_ASSERT(b->consumer[l] >= 0);
        if (r->kind == REL_SPLIT) {
            /* parent = sum_k out[k] * (product of the extents inside out[k]) */
            v = NULL;
            int64_t span = 1;
            for (int k = r->nout - 1; k >= 0; k--) {
                Expr *t = expr_imul(a, loop_value(b, r->out[k]), expr_iconst(a, span));
                v = v ? expr_iadd(a, t, v) : t;
                span *= st->loops[r->out[k]].extent;
            }
        } else {
            int k = 0;
            while (r->in[k] != l)
                k++;
            int64_t rest = 1;
            for (int j = k + 1; j < r->nin; j++)
                rest *= st->loops[r->in[j]].extent;
            v = expr_idiv(a, loop_value(b, r->out[0]), rest);
            if (k > 0) /* the outermost part needs no modulo: f < product */
                v = expr_imod(a, v, st->loops[l].extent);
        }
    }
    return b->val[l] = v;
}

/* Can loop l's split overshoot its extent (ceil rounding)? */
static bool overshoots(const Build *b, int l)
{
    int r = b->consumer[l];
    if (r < 0 || b->st->rels[r].kind != REL_SPLIT)
        return false;
    int64_t prod = 1;
    for (int k = 0; k < b->st->rels[r].nout; k++)
        prod *= b->st->loops[b->st->rels[r].out[k]].extent;
    return prod != b->st->loops[l].extent;
}

/* Is `value(l) < extent(l)` already enforced by a guard on an ancestor?  A
 * loop that is the outermost part of a split of q can only overshoot when q
 * does (q = l*span + rest >= extent(l)*span >= extent(q)). */
static bool guard_implied(const Build *b, int l)
{
    int r = b->producer[l];
    if (r < 0 || b->st->rels[r].kind != REL_SPLIT || b->st->rels[r].out[0] != l)
        return false;
    int q = b->st->rels[r].in[0];
    return overshoots(b, q) || guard_implied(b, q);
}

static Expr *combine(Arena *a, RedOp op, DType dt, Expr *acc, Expr *x)
{
    switch (op) {
    case RED_SUM:
        return expr_bin(a, EXPR_ADD, dt, acc, x);
    case RED_PROD:
        return expr_bin(a, EXPR_MUL, dt, acc, x);
    case RED_MAX:
        return expr_bin(a, EXPR_MAX, dt, acc, x);
    case RED_MIN:
        return expr_bin(a, EXPR_MIN, dt, acc, x);
    default:
        return x;
    }
}

static int build_stmt(const LowerCtx *cx, int i, LStmt **out)
{
    Arena *a = cx->a;
    const Stmt *ps = &cx->p->stmts[i];
    const StmtSched *st = &cx->s->st[i];
    const Tensor *t = &cx->p->tensors[ps->out];
    int n = st->nloops;
    Build b = {cx, i, st, NULL, NULL, NULL, NULL};
    b.leafvar = arena_alloc(a, sizeof(Var *) * (size_t)(n + 1));
    b.val = arena_alloc(a, sizeof(Expr *) * (size_t)(n + 1));
    b.consumer = arena_alloc(a, sizeof(int) * (size_t)(n + 1));
    b.producer = arena_alloc(a, sizeof(int) * (size_t)(n + 1));
    if (!b.leafvar || !b.val || !b.consumer || !b.producer)
        return ir_error(cx->e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    for (int l = 0; l < n; l++)
        b.consumer[l] = b.producer[l] = -1;
    for (int r = 0; r < st->nrels; r++) {
        for (int k = 0; k < st->rels[r].nin; k++)
            b.consumer[st->rels[r].in[k]] = r;
        for (int k = 0; k < st->rels[r].nout; k++)
            b.producer[st->rels[r].out[k]] = r;
    }
    for (int k = 0; k < st->norder; k++) {
        const SLoop *l = &st->loops[st->order[k]];
        if (l->kind == LOOP_VECTORIZED && k != st->norder - 1)
            return ir_error(cx->e, KILN_ESCHEDULE, NULL, (Loc){0, 0},
                            "vectorized loop %s.%s must be the innermost loop of %s", t->name,
                            l->name, t->name);
        if (l->extent < 1)
            return ir_error(cx->e, KILN_ESCHEDULE, NULL, (Loc){0, 0}, "loop %s.%s has extent %lld",
                            t->name, l->name, (long long)l->extent);
        Var *v = ir_var_new(a, l->name, l->extent);
        if (!v)
            return ir_error(cx->e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
        v->reduce = l->reduce;
        b.leafvar[st->order[k]] = v;
    }

    /* the statement, in terms of the leaf vars */
    Var *from[4 * IR_MAX_DIMS];
    Expr *to[4 * IR_MAX_DIMS];
    Var **fromv =
        ps->nvars <= 4 * IR_MAX_DIMS ? from : arena_alloc(a, sizeof(Var *) * (size_t)ps->nvars);
    Expr **tov =
        ps->nvars <= 4 * IR_MAX_DIMS ? to : arena_alloc(a, sizeof(Expr *) * (size_t)ps->nvars);
    if (!fromv || !tov)
        return ir_error(cx->e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    for (int v = 0; v < ps->nvars; v++) {
        fromv[v] = ps->vars[v];
        tov[v] = loop_value(&b, v);
    }
    Expr *idx[IR_MAX_DIMS];
    for (int k = 0; k < ps->nspatial; k++)
        idx[k] = tov[k];
    Expr *rhs = expr_subst(a, ps->rhs, ps->nvars, fromv, tov);
    if (ps->red != RED_NONE)
        rhs = combine(a, ps->red, t->dt, expr_load(a, t->dt, ps->out, ps->nspatial, idx), rhs);
    LStmt *body = ls_store(a, ps->out, ps->nspatial, idx, rhs);

    /* guards, innermost; the relation order makes the output stable */
    for (int r = st->nrels - 1; r >= 0; r--) {
        if (st->rels[r].kind != REL_SPLIT)
            continue;
        int l = st->rels[r].in[0];
        if (!overshoots(&b, l) || guard_implied(&b, l))
            continue;
        Expr *c =
            expr_bin(a, EXPR_LT, DT_BOOL, loop_value(&b, l), expr_iconst(a, st->loops[l].extent));
        body = ls_if(a, c, body, NULL);
    }
    for (int k = st->norder - 1; k >= 0; k--) {
        const SLoop *l = &st->loops[st->order[k]];
        body = ls_for(a, b.leafvar[st->order[k]], l->extent, l->kind, body);
    }
    if (!body)
        return ir_error(cx->e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    *out = body;
    return KILN_OK;
}

int lower_build(const LowerCtx *cx, const LFunc *in, LFunc **out)
{
    (void)in;
    Arena *a = cx->a;
    const Program *p = cx->p;
    LFunc *f = arena_alloc(a, sizeof *f);
    LStmt **nests = arena_alloc(a, sizeof(LStmt *) * (size_t)(p->nstmts + 1));
    LBuf *bufs = arena_alloc(a, sizeof(LBuf) * (size_t)(p->ntensors + 1));
    if (!f || !nests || !bufs)
        return ir_error(cx->e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    f->bufs = bufs;
    f->name = p->name;
    f->nbufs = p->ntensors;
    f->nargs = p->ninputs + p->noutputs;
    for (int i = 0; i < p->ntensors; i++) {
        const Tensor *t = &p->tensors[i];
        LBuf *bf = &f->bufs[i];
        bf->name = t->name;
        bf->dt = t->dt;
        bf->kind = t->kind;
        bf->ndim = t->ndim;
        memcpy(bf->dims, t->dims, sizeof t->dims);
    }
    int n = 0;
    for (int i = 0; i < p->nstmts; i++) {
        if (cx->s->st[i].inlined)
            continue;
        int rc = build_stmt(cx, i, &nests[n]);
        if (rc)
            return rc;
        n++;
    }
    f->body = ls_block(a, n, nests);
    if (!f->body)
        return ir_error(cx->e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    *out = f;
    return KILN_OK;
}

/* ------------------------------------------------------------ inline */
typedef struct {
    const LowerCtx *cx;
    Expr **full; /* per statement: rhs with inlined temps already expanded */
} Inl;

static Expr *inl_expr(Inl *in, Expr *e);

/* Replaces loads of inlined temps; shares unchanged subtrees. */
static Expr *inl_expr(Inl *in, Expr *e)
{
    if (!e)
        return NULL;
    Arena *a = in->cx->a;
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
    case EXPR_VAR:
        return e;
    case EXPR_LOAD: {
        Expr *idx[IR_MAX_DIMS + 1];
        bool changed = false;
        for (int i = 0; i < e->u.load.n; i++) {
            idx[i] = inl_expr(in, e->u.load.idx[i]);
            changed |= idx[i] != e->u.load.idx[i];
        }
        const Program *p = in->cx->p;
        int b = e->u.load.buf;
        int w = b >= 0 && b < p->ntensors ? p->tensors[b].writer : -1;
        if (w >= 0 && in->cx->s->st[w].inlined) {
            const Stmt *ps = &p->stmts[w];
            return expr_subst(a, in->full[w], ps->nspatial, ps->vars, idx);
        }
        if (!changed)
            return e;
        Expr *r = expr_load(a, e->dt, b, e->u.load.n, idx);
        if (r)
            r->loc = e->loc;
        return r;
    }
    default: {
        Expr *x = inl_expr(in, e->u.op.a), *y = inl_expr(in, e->u.op.b),
             *z = inl_expr(in, e->u.op.c);
        if (x == e->u.op.a && y == e->u.op.b && z == e->u.op.c)
            return e;
        Expr *r = arena_alloc(a, sizeof *r);
        if (r) {
            *r = *e;
            r->u.op.a = x;
            r->u.op.b = y;
            r->u.op.c = z;
        }
        return r;
    }
    }
}

static LStmt *inl_stmt(Inl *in, LStmt *s)
{
    Arena *a = in->cx->a;
    switch (s->kind) {
    case LS_FOR: {
        LStmt *b = inl_stmt(in, s->u.loop.body);
        return b == s->u.loop.body ? s
                                   : ls_for(a, s->u.loop.var, s->u.loop.extent, s->u.loop.kind, b);
    }
    case LS_STORE: {
        Expr *idx[IR_MAX_DIMS + 1];
        bool changed = false;
        for (int i = 0; i < s->u.store.n; i++) {
            idx[i] = inl_expr(in, s->u.store.idx[i]);
            changed |= idx[i] != s->u.store.idx[i];
        }
        Expr *v = inl_expr(in, s->u.store.value);
        if (!changed && v == s->u.store.value)
            return s;
        return ls_store(a, s->u.store.buf, s->u.store.n, idx, v);
    }
    case LS_BLOCK: {
        LStmt **v = arena_alloc(a, sizeof(LStmt *) * (size_t)(s->u.block.n + 1));
        if (!v)
            return NULL;
        bool changed = false;
        for (int i = 0; i < s->u.block.n; i++) {
            v[i] = inl_stmt(in, s->u.block.s[i]);
            changed |= v[i] != s->u.block.s[i];
        }
        return changed ? ls_block(a, s->u.block.n, v) : s;
    }
    case LS_IF: {
        Expr *c = inl_expr(in, s->u.cond.cond);
        LStmt *t = inl_stmt(in, s->u.cond.then_s);
        LStmt *f = s->u.cond.else_s ? inl_stmt(in, s->u.cond.else_s) : NULL;
        if (c == s->u.cond.cond && t == s->u.cond.then_s && f == s->u.cond.else_s)
            return s;
        return ls_if(a, c, t, f);
    }
    case LS_ALLOC: {
        LStmt *b = inl_stmt(in, s->u.alloc.body);
        return b == s->u.alloc.body ? s : ls_alloc(a, s->u.alloc.buf, b);
    }
    }
    return s;
}

int lower_inline(const LowerCtx *cx, const LFunc *f, LFunc **out)
{
    const Program *p = cx->p;
    Inl in = {cx, arena_alloc(cx->a, sizeof(Expr *) * (size_t)(p->nstmts + 1))};
    if (!in.full)
        return ir_error(cx->e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    /* Program order: a statement reads only tensors written earlier, so
     * full[] of every producer is ready when a consumer needs it. */
    for (int i = 0; i < p->nstmts; i++)
        if (cx->s->st[i].inlined)
            in.full[i] = inl_expr(&in, p->stmts[i].rhs);
    LStmt *body = inl_stmt(&in, f->body);
    *out = body ? lower_copy_func(cx->a, f, body) : NULL;
    if (!*out)
        return ir_error(cx->e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    return KILN_OK;
}
