/* lower/build.c: the first two passes.
 *
 * build: one perfect loop nest per non-inlined statement, in program
 *   order, over the statement's leaf loops (outermost first).  Each original
 *   variable is rebuilt from the leaves (split: outer*span + inner; fuse:
 *   f / rest % extent) and substituted into the statement; the store is
 *   `T[idx] = T[idx] op rhs` for reductions.  Splits whose rounded-up parts
 *   can overshoot get a guard `value < extent` around the store (all guards
 *   innermost for now; the guards pass moves them out).  Loads of inlined
 *   temps are expanded here already (bound inference must see through
 *   them).  compute_at: statements are built consumers first; from the
 *   loads of all its readers (the host statement, or statements computed
 *   inside the target loop of the host), bound inference gives the region
 *   of each computed-at temp (affine forms over the loops inside that
 *   loop); the temp's buffer shrinks to the region, its loops run over it
 *   (guarded where the region leaves the tensor) and the readers read it
 *   at g - lo.  Then, in program order, each computed-at nest goes (inside
 *   an LS_ALLOC of its buffer) to the start of its host's loop, after the
 *   producers already placed there.
 *   Leaf loop vars record their statement's buffer in Var.owner.
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

/* ------------------------------------------------------------ inline */
typedef struct {
    const LowerCtx *cx;
    Expr **full; /* per statement: rhs with inlined temps already expanded */
} Inl;

/* Replaces loads of inlined temps; shares unchanged subtrees. */
static Expr *inl_expr(const Inl *in, Expr *e)
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

/* ------------------------------------------------------------- build */
/* The region of a computed-at temp that one iteration of its compute_at
 * loop needs: element g of dim d lives at g - lo[d] of a buffer of
 * ext[d] elements.  lo[] is in terms of vars bound at or outside that
 * loop. */
typedef struct {
    bool has;
    Expr *lo[IR_MAX_DIMS];
    int64_t ext[IR_MAX_DIMS];
} Region;

typedef struct {
    const LowerCtx *cx;
    LFunc *f;
    Inl in;
    Region *reg;    /* per buffer */
    Var ***leafvar; /* per statement: per loop id, its LoopIR var */
    LStmt **nest;   /* per statement */
    int *last;      /* per computed-at statement: its first reader in program
                     * order (built last: its region is inferred then) */
    Expr **rhs;     /* per built statement: its value in its leaf vars */
    bool *placed;   /* per buffer: its nest was put into a consumer's loop */
} BuildAll;

typedef struct {
    const LowerCtx *cx;
    int stmt;
    const StmtSched *st;
    Var **leafvar; /* per loop id: its LoopIR var (leaves only) */
    Expr **val;    /* per loop id: its value in terms of leaf vars (memo) */
    int *consumer; /* per loop id: the relation that takes it as input, -1 */
    int *producer; /* per loop id: the relation that made it, -1 */
    int64_t *ext;  /* per loop id: its extent here (regions shrink them) */
} Build;

static int nomem(const LowerCtx *cx)
{
    return ir_error(cx->e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
}

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
                span *= b->ext[r->out[k]];
            }
        } else {
            int k = 0;
            while (r->in[k] != l)
                k++;
            int64_t rest = 1;
            for (int j = k + 1; j < r->nin; j++)
                rest *= b->ext[r->in[j]];
            v = expr_idiv(a, loop_value(b, r->out[0]), rest);
            if (k > 0) /* the outermost part needs no modulo: f < product */
                v = expr_imod(a, v, b->ext[l]);
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
        prod *= b->ext[b->st->rels[r].out[k]];
    return prod != b->ext[l];
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

/* ---- bound inference: affine index forms over the loops inside the
 * compute_at loop ("inner" vars); everything else is an opaque atom. */
enum { MAXTERM = 24 };
typedef struct {
    Expr *atom[MAXTERM]; /* outer atoms (vars or subexpressions free of inner vars) */
    int64_t ac[MAXTERM];
    Var *iv[MAXTERM]; /* inner vars */
    int64_t ic[MAXTERM];
    int na, ni;
    int64_t k;
    bool ok;
} Lin;

static bool is_inner(Var *v, Var *const *inner, int ninner)
{
    for (int i = 0; i < ninner; i++)
        if (inner[i] == v)
            return true;
    return false;
}

static bool uses_inner(const Expr *e, Var *const *inner, int ninner)
{
    for (int i = 0; i < ninner; i++)
        if (expr_uses_var(e, inner[i]))
            return true;
    return false;
}

static void lin_atom(Lin *l, Expr *e, int64_t c)
{
    for (int i = 0; i < l->na; i++)
        if (expr_equal(l->atom[i], e)) {
            l->ac[i] += c;
            return;
        }
    if (l->na == MAXTERM) {
        l->ok = false;
        return;
    }
    l->atom[l->na] = e;
    l->ac[l->na++] = c;
}

static void linearize(Lin *l, Expr *e, int64_t c, Var *const *inner, int ninner)
{
    if (!l->ok)
        return;
    switch (e->kind) {
    case EXPR_INT:
        l->k += c * e->u.i;
        return;
    case EXPR_VAR:
        if (is_inner(e->u.var, inner, ninner)) {
            for (int i = 0; i < l->ni; i++)
                if (l->iv[i] == e->u.var) {
                    l->ic[i] += c;
                    return;
                }
            if (l->ni == MAXTERM) {
                l->ok = false;
                return;
            }
            l->iv[l->ni] = e->u.var;
            l->ic[l->ni++] = c;
        } else {
            lin_atom(l, e, c);
        }
        return;
    case EXPR_ADD:
        linearize(l, e->u.op.a, c, inner, ninner);
        linearize(l, e->u.op.b, c, inner, ninner);
        return;
    case EXPR_SUB:
        linearize(l, e->u.op.a, c, inner, ninner);
        linearize(l, e->u.op.b, -c, inner, ninner);
        return;
    case EXPR_NEG:
        linearize(l, e->u.op.a, -c, inner, ninner);
        return;
    case EXPR_MUL:
        if (e->u.op.a->kind == EXPR_INT) {
            linearize(l, e->u.op.b, c * e->u.op.a->u.i, inner, ninner);
            return;
        }
        if (e->u.op.b->kind == EXPR_INT) {
            linearize(l, e->u.op.a, c * e->u.op.b->u.i, inner, ninner);
            return;
        }
        break;
    default:
        break;
    }
    if (e->dt != DT_I64 || uses_inner(e, inner, ninner))
        l->ok = false;
    else
        lin_atom(l, e, c);
}

static void collect_loads(Expr *e, int buf, Expr **out, int *n, int max)
{
    if (!e || e->kind == EXPR_INT || e->kind == EXPR_FLOAT || e->kind == EXPR_VAR)
        return;
    if (e->kind == EXPR_LOAD) {
        if (e->u.load.buf == buf && *n < max)
            out[(*n)++] = e;
        for (int i = 0; i < e->u.load.n; i++)
            collect_loads(e->u.load.idx[i], buf, out, n, max);
        return;
    }
    collect_loads(e->u.op.a, buf, out, n, max);
    collect_loads(e->u.op.b, buf, out, n, max);
    collect_loads(e->u.op.c, buf, out, n, max);
}

static bool same_atoms(const Lin *x, const Lin *y)
{
    int nx = 0, ny = 0;
    for (int i = 0; i < x->na; i++)
        nx += x->ac[i] != 0;
    for (int i = 0; i < y->na; i++)
        ny += y->ac[i] != 0;
    if (nx != ny)
        return false;
    for (int i = 0; i < x->na; i++) {
        if (!x->ac[i])
            continue;
        bool found = false;
        for (int j = 0; j < y->na && !found; j++)
            found = y->ac[j] == x->ac[i] && expr_equal(x->atom[i], y->atom[j]);
        if (!found)
            return false;
    }
    return true;
}

/* The region of tensor `buf` that `value` reads while the inner vars run
 * over their extents.  A dimension whose indices are not affine in the
 * inner vars, or whose loads disagree in their outer part, or whose span
 * is no smaller than the tensor, gets the whole dimension. */
static void infer_region(Arena *a, const LBuf *lb, Expr *const *values, int nvalues, int buf,
                         Var *const *inner, int ninner, Region *r)
{
    enum { MAXLOAD = 64 };
    Expr *loads[MAXLOAD];
    int nl = 0;
    for (int v = 0; v < nvalues; v++)
        collect_loads(values[v], buf, loads, &nl, MAXLOAD);
    r->has = true;
    for (int d = 0; d < lb->ndim; d++) {
        int64_t dim = lb->dims[d], lo = 0, hi = 0;
        bool ok = nl > 0 && nl < MAXLOAD;
        Lin first;
        memset(&first, 0, sizeof first);
        for (int i = 0; i < nl && ok; i++) {
            Lin l;
            memset(&l, 0, sizeof l);
            l.ok = true;
            linearize(&l, loads[i]->u.load.idx[d], 1, inner, ninner);
            if (!l.ok) {
                ok = false;
                break;
            }
            int64_t mn = l.k, mx = l.k;
            for (int k = 0; k < l.ni; k++) {
                int64_t span = l.ic[k] * (l.iv[k]->extent - 1);
                if (span < 0)
                    mn += span;
                else
                    mx += span;
            }
            if (i == 0) {
                first = l;
                lo = mn;
                hi = mx;
            } else {
                ok = same_atoms(&first, &l);
                lo = mn < lo ? mn : lo;
                hi = mx > hi ? mx : hi;
            }
        }
        if (ok && hi - lo + 1 < dim) {
            Expr *x = expr_iconst(a, lo);
            for (int k = 0; k < first.na; k++)
                if (first.ac[k])
                    x = expr_iadd(a, x, expr_imul(a, first.atom[k], expr_iconst(a, first.ac[k])));
            r->lo[d] = x;
            r->ext[d] = hi - lo + 1;
        } else {
            r->lo[d] = expr_iconst(a, 0);
            r->ext[d] = dim;
        }
    }
}

/* Loads of buf read element g at g - lo (the computed-at buffer). */
static Expr *relocate(Arena *a, Expr *e, int buf, const Region *r)
{
    if (!e || e->kind == EXPR_INT || e->kind == EXPR_FLOAT || e->kind == EXPR_VAR)
        return e;
    if (e->kind == EXPR_LOAD) {
        Expr *idx[IR_MAX_DIMS + 1];
        for (int i = 0; i < e->u.load.n; i++) {
            idx[i] = relocate(a, e->u.load.idx[i], buf, r);
            if (e->u.load.buf == buf)
                idx[i] = expr_iadd(a, idx[i], expr_imul(a, r->lo[i], expr_iconst(a, -1)));
        }
        Expr *x = expr_load(a, e->dt, e->u.load.buf, e->u.load.n, idx);
        if (x)
            x->loc = e->loc;
        return x;
    }
    Expr *x = arena_alloc(a, sizeof *x);
    if (x) {
        *x = *e;
        x->u.op.a = relocate(a, e->u.op.a, buf, r);
        x->u.op.b = relocate(a, e->u.op.b, buf, r);
        x->u.op.c = relocate(a, e->u.op.c, buf, r);
    }
    return x;
}

/* relocate() over a built nest (another reader of the same region). */
static LStmt *relocate_nest(Arena *a, LStmt *s, int buf, const Region *r)
{
    if (!s)
        return NULL;
    switch (s->kind) {
    case LS_FOR:
        return ls_for(a, s->u.loop.var, s->u.loop.extent, s->u.loop.kind,
                      relocate_nest(a, s->u.loop.body, buf, r));
    case LS_STORE: {
        Expr *idx[IR_MAX_DIMS + 1];
        for (int i = 0; i < s->u.store.n; i++)
            idx[i] = relocate(a, s->u.store.idx[i], buf, r);
        return ls_store(a, s->u.store.buf, s->u.store.n, idx,
                        relocate(a, s->u.store.value, buf, r));
    }
    case LS_BLOCK: {
        LStmt **v = arena_alloc(a, sizeof(LStmt *) * (size_t)(s->u.block.n + 1));
        if (!v)
            return NULL;
        for (int i = 0; i < s->u.block.n; i++)
            v[i] = relocate_nest(a, s->u.block.s[i], buf, r);
        return ls_block(a, s->u.block.n, v);
    }
    case LS_IF:
        return ls_if(a, relocate(a, s->u.cond.cond, buf, r),
                     relocate_nest(a, s->u.cond.then_s, buf, r),
                     s->u.cond.else_s ? relocate_nest(a, s->u.cond.else_s, buf, r) : NULL);
    case LS_ALLOC:
        return ls_alloc(a, s->u.alloc.buf, relocate_nest(a, s->u.alloc.body, buf, r));
    }
    return s;
}

static int build_stmt(BuildAll *ba, int i, LStmt **out)
{
    const LowerCtx *cx = ba->cx;
    Arena *a = cx->a;
    const Stmt *ps = &cx->p->stmts[i];
    const StmtSched *st = &cx->s->st[i];
    const Tensor *t = &cx->p->tensors[ps->out];
    const Region *reg = &ba->reg[ps->out];
    int n = st->nloops;
    Build b = {cx, i, st, NULL, NULL, NULL, NULL, NULL};
    b.leafvar = arena_alloc(a, sizeof(Var *) * (size_t)(n + 1));
    b.val = arena_alloc(a, sizeof(Expr *) * (size_t)(n + 1));
    b.consumer = arena_alloc(a, sizeof(int) * (size_t)(n + 1));
    b.producer = arena_alloc(a, sizeof(int) * (size_t)(n + 1));
    b.ext = arena_alloc(a, sizeof(int64_t) * (size_t)(n + 1));
    if (!b.leafvar || !b.val || !b.consumer || !b.producer || !b.ext)
        return nomem(cx);
    ba->leafvar[i] = b.leafvar;
    for (int l = 0; l < n; l++) {
        b.consumer[l] = b.producer[l] = -1;
        b.ext[l] = st->loops[l].extent;
    }
    /* A computed-at statement runs over its region: original spatial
     * loops take the region's extents, derived loops follow (relations
     * are recorded parents first). */
    if (reg->has)
        for (int d = 0; d < ps->nspatial; d++)
            b.ext[d] = reg->ext[d];
    for (int r = 0; r < st->nrels; r++) {
        const SRel *rl = &st->rels[r];
        for (int k = 0; k < rl->nin; k++)
            b.consumer[rl->in[k]] = r;
        for (int k = 0; k < rl->nout; k++)
            b.producer[rl->out[k]] = r;
        if (rl->kind == REL_SPLIT) {
            int64_t prod = 1;
            for (int k = 1; k < rl->nout; k++)
                prod *= b.ext[rl->out[k]];
            b.ext[rl->out[0]] = (b.ext[rl->in[0]] + prod - 1) / prod;
        } else {
            int64_t prod = 1;
            for (int k = 0; k < rl->nin; k++)
                prod *= b.ext[rl->in[k]];
            b.ext[rl->out[0]] = prod;
        }
    }
    for (int k = 0; k < st->norder; k++) {
        const SLoop *l = &st->loops[st->order[k]];
        if (l->kind == LOOP_VECTORIZED && k != st->norder - 1)
            return ir_error(cx->e, KILN_ESCHEDULE, NULL, (Loc){0, 0},
                            "vectorized loop %s.%s must be the innermost loop of %s", t->name,
                            l->name, t->name);
        if (b.ext[st->order[k]] < 1)
            return ir_error(cx->e, KILN_ESCHEDULE, NULL, (Loc){0, 0}, "loop %s.%s has extent %lld",
                            t->name, l->name, (long long)b.ext[st->order[k]]);
        if ((l->kind == LOOP_VECTORIZED && b.ext[st->order[k]] > 64) ||
            (l->kind == LOOP_UNROLLED && b.ext[st->order[k]] > 256))
            return ir_error(cx->e, KILN_ESCHEDULE, NULL, (Loc){0, 0},
                            "cannot %s %s.%s: its extent is %lld%s (at most %d)",
                            l->kind == LOOP_VECTORIZED ? "vectorize" : "unroll", t->name, l->name,
                            (long long)b.ext[st->order[k]],
                            reg->has ? " after bound inference" : "",
                            l->kind == LOOP_VECTORIZED ? 64 : 256);
        Var *v = ir_var_new(a, l->name, b.ext[st->order[k]]);
        if (!v)
            return nomem(cx);
        v->reduce = l->reduce;
        v->owner = ps->out + 1;
        b.leafvar[st->order[k]] = v;
    }

    /* the statement, in terms of the leaf vars (inlined temps expanded) */
    Var *from[4 * IR_MAX_DIMS];
    Expr *to[4 * IR_MAX_DIMS];
    Var **fromv =
        ps->nvars <= 4 * IR_MAX_DIMS ? from : arena_alloc(a, sizeof(Var *) * (size_t)ps->nvars);
    Expr **tov =
        ps->nvars <= 4 * IR_MAX_DIMS ? to : arena_alloc(a, sizeof(Expr *) * (size_t)ps->nvars);
    if (!fromv || !tov)
        return nomem(cx);
    Expr *idx[IR_MAX_DIMS];
    for (int v = 0; v < ps->nvars; v++) {
        fromv[v] = ps->vars[v];
        tov[v] = loop_value(&b, v);
        if (v < ps->nspatial) {
            idx[v] = tov[v]; /* a region is stored at its local coordinates */
            if (reg->has)
                tov[v] = expr_iadd(a, reg->lo[v], tov[v]);
        }
    }
    Expr *rhs = inl_expr(&ba->in, ps->rhs);
    rhs = rhs ? expr_subst(a, rhs, ps->nvars, fromv, tov) : NULL;
    if (!rhs)
        return nomem(cx);

    /* Temps computed at one of this statement's loops, or at a loop of a
     * statement this one is computed inside (a packed panel at D.jb for a
     * tile computed at D.jo), whose first reader this is: their regions
     * over all their readers (built already, consumers first), then the
     * readers read them at local coordinates. */
    for (int j = 0; j < cx->p->nstmts; j++) {
        const StmtSched *pj = &cx->s->st[j];
        if (!pj->at || pj->inlined || ba->last[j] != i)
            continue;
        int host = pj->at_stmt;
        const StmtSched *hs = &cx->s->st[host];
        const Tensor *ht = &cx->p->tensors[cx->p->stmts[host].out];
        int pos = -1;
        for (int k = 0; k < hs->norder; k++)
            if (hs->order[k] == pj->at_loop)
                pos = k;
        int pb = cx->p->stmts[j].out;
        if (pos < 0)
            return ir_error(cx->e, KILN_ESCHEDULE, NULL, (Loc){0, 0},
                            "'%s' is computed at %s.%s, which is no longer a loop",
                            cx->p->tensors[pb].name, ht->name, hs->loops[pj->at_loop].name);
        if (hs->loops[pj->at_loop].kind == LOOP_VECTORIZED)
            return ir_error(cx->e, KILN_ESCHEDULE, NULL, (Loc){0, 0},
                            "'%s' cannot be computed at vectorized loop %s.%s",
                            cx->p->tensors[pb].name, ht->name, hs->loops[pj->at_loop].name);
        /* inner: the host's loops inside the target, and every loop of the
         * statements between (this one included), whose nests all run
         * inside it; the host was built before them (consumers first). */
        enum { MAXINNER = 64 };
        Var *inner[MAXINNER];
        int ninner = 0;
        bool full = false;
        for (int k = pos + 1; k < hs->norder; k++)
            if (!(full = ninner == MAXINNER))
                inner[ninner++] = ba->leafvar[host][hs->order[k]];
        Expr *values[MAXINNER];
        int readers[MAXINNER], nval = 0;
        for (int r = i; r < cx->p->nstmts && !full; r++) {
            Expr *v = r == i ? rhs : ba->rhs[r];
            Expr *one[1];
            int n1 = 0;
            collect_loads(v, pb, one, &n1, 1);
            if (cx->s->st[r].inlined || !n1)
                continue;
            if (!(full = nval == MAXINNER)) {
                readers[nval] = r;
                values[nval++] = v;
            }
            /* r's nest runs inside the target, and so do the nests of the
             * statements it is computed inside, up to the host */
            for (int h = r; h != host && !full; h = cx->s->st[h].at_stmt) {
                bool seen = false;
                for (int q = 0; q < nval - 1 && !seen; q++)
                    for (int h2 = readers[q]; h2 != host && !seen; h2 = cx->s->st[h2].at_stmt)
                        seen = h2 == h;
                for (int k = 0; k < cx->s->st[h].norder && !seen; k++)
                    if (!(full = ninner == MAXINNER))
                        inner[ninner++] = ba->leafvar[h][cx->s->st[h].order[k]];
            }
        }
        if (full)
            return ir_error(cx->e, KILN_ESCHEDULE, NULL, (Loc){0, 0},
                            "'%s' is computed at %s.%s, with more than %d loops inside",
                            cx->p->tensors[pb].name, ht->name, hs->loops[pj->at_loop].name,
                            MAXINNER);
        infer_region(a, &ba->f->bufs[pb], values, nval, pb, inner, ninner, &ba->reg[pb]);
        for (int d = 0; d < ba->f->bufs[pb].ndim; d++)
            ba->f->bufs[pb].dims[d] = ba->reg[pb].ext[d];
        rhs = relocate(a, rhs, pb, &ba->reg[pb]);
        if (!rhs)
            return nomem(cx);
        for (int q = 0; q < nval; q++)
            if (readers[q] != i &&
                !(ba->nest[readers[q]] = relocate_nest(a, ba->nest[readers[q]], pb, &ba->reg[pb])))
                return nomem(cx);
    }
    ba->rhs[i] = rhs;
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
        Expr *c = expr_bin(a, EXPR_LT, DT_BOOL, loop_value(&b, l), expr_iconst(a, b.ext[l]));
        body = ls_if(a, c, body, NULL);
    }
    /* a region may stick out of the tensor (tiles at the edge, halos) */
    if (reg->has)
        for (int d = ps->nspatial - 1; d >= 0; d--) {
            if (reg->ext[d] == t->dims[d])
                continue;
            Expr *c = expr_bin(a, EXPR_AND, DT_BOOL,
                               expr_bin(a, EXPR_GE, DT_BOOL, tov[d], expr_iconst(a, 0)),
                               expr_bin(a, EXPR_LT, DT_BOOL, tov[d], expr_iconst(a, t->dims[d])));
            body = ls_if(a, c, body, NULL);
        }
    for (int k = st->norder - 1; k >= 0; k--) {
        const SLoop *l = &st->loops[st->order[k]];
        body = ls_for(a, b.leafvar[st->order[k]], b.ext[st->order[k]], l->kind, body);
    }
    if (!body)
        return nomem(cx);
    *out = body;
    return KILN_OK;
}

/* Puts `prod` (allocating buf) in front of `body`, but after the producers
 * already placed there (program order: a panel packed at D.jb comes before
 * the tile at D.jb that reads it). */
static LStmt *put_first(Arena *a, LStmt *body, LStmt *prod, int buf, const bool *placed)
{
    if (body && body->kind == LS_ALLOC && placed[body->u.alloc.buf] &&
        body->u.alloc.body->kind == LS_BLOCK && body->u.alloc.body->u.block.n == 2) {
        LStmt *two[2] = {body->u.alloc.body->u.block.s[0],
                         put_first(a, body->u.alloc.body->u.block.s[1], prod, buf, placed)};
        return ls_alloc(a, body->u.alloc.buf, ls_block(a, 2, two));
    }
    LStmt *two[2] = {prod, body};
    return ls_alloc(a, buf, ls_block(a, 2, two));
}

/* Puts `prod` (allocating buf) at the start of the body of the loop over
 * var v inside s; *done tells whether the loop was found. */
static LStmt *insert_at(Arena *a, LStmt *s, const Var *v, LStmt *prod, int buf, const bool *placed,
                        bool *done)
{
    if (!s || *done)
        return s;
    switch (s->kind) {
    case LS_FOR: {
        if (s->u.loop.var == v) {
            *done = true;
            return ls_for(a, s->u.loop.var, s->u.loop.extent, s->u.loop.kind,
                          put_first(a, s->u.loop.body, prod, buf, placed));
        }
        LStmt *b = insert_at(a, s->u.loop.body, v, prod, buf, placed, done);
        return b == s->u.loop.body ? s
                                   : ls_for(a, s->u.loop.var, s->u.loop.extent, s->u.loop.kind, b);
    }
    case LS_BLOCK: {
        LStmt **el = arena_alloc(a, sizeof(LStmt *) * (size_t)(s->u.block.n + 1));
        if (!el)
            return NULL;
        for (int i = 0; i < s->u.block.n; i++)
            el[i] = insert_at(a, s->u.block.s[i], v, prod, buf, placed, done);
        return ls_block(a, s->u.block.n, el);
    }
    case LS_IF: {
        LStmt *t = insert_at(a, s->u.cond.then_s, v, prod, buf, placed, done);
        LStmt *f = insert_at(a, s->u.cond.else_s, v, prod, buf, placed, done);
        return ls_if(a, s->u.cond.cond, t, f);
    }
    case LS_ALLOC:
        return ls_alloc(a, s->u.alloc.buf,
                        insert_at(a, s->u.alloc.body, v, prod, buf, placed, done));
    case LS_STORE:
        return s;
    }
    return s;
}

/* A statement reading buffer t (after inlining), other than `but` (only
 * `only` is looked at when it is >= 0); -1 when there is none. */
static int other_reader(const BuildAll *ba, int t, int but, int only)
{
    const LowerCtx *cx = ba->cx;
    for (int k = 0; k < cx->p->nstmts; k++) {
        if (k == but || cx->s->st[k].inlined || (only >= 0 && k != only))
            continue;
        Expr *loads[1];
        int n = 0;
        collect_loads(inl_expr(&ba->in, cx->p->stmts[k].rhs), t, loads, &n, 1);
        if (n)
            return k;
    }
    return -1;
}

int lower_build(const LowerCtx *cx, const LFunc *in, LFunc **out)
{
    (void)in;
    Arena *a = cx->a;
    const Program *p = cx->p;
    LFunc *f = arena_alloc(a, sizeof *f);
    LStmt **nests = arena_alloc(a, sizeof(LStmt *) * (size_t)(p->nstmts + 1));
    LStmt **top = arena_alloc(a, sizeof(LStmt *) * (size_t)(p->nstmts + 1));
    LBuf *bufs = arena_alloc(a, sizeof(LBuf) * (size_t)(p->ntensors + 1));
    BuildAll ba = {cx,
                   f,
                   {cx, arena_alloc(a, sizeof(Expr *) * (size_t)(p->nstmts + 1))},
                   arena_alloc(a, sizeof(Region) * (size_t)(p->ntensors + 1)),
                   arena_alloc(a, sizeof(Var **) * (size_t)(p->nstmts + 1)),
                   nests,
                   arena_alloc(a, sizeof(int) * (size_t)(p->nstmts + 1)),
                   arena_alloc(a, sizeof(Expr *) * (size_t)(p->nstmts + 1)),
                   arena_alloc(a, sizeof(bool) * (size_t)(p->ntensors + 1))};
    if (!f || !nests || !top || !bufs || !ba.in.full || !ba.reg || !ba.leafvar || !ba.last ||
        !ba.rhs || !ba.placed)
        return nomem(cx);
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
    /* Program order: a statement reads only tensors written earlier. */
    for (int i = 0; i < p->nstmts; i++)
        if (cx->s->st[i].inlined)
            ba.in.full[i] = inl_expr(&ba.in, p->stmts[i].rhs);
    for (int i = 0; i < p->nstmts; i++) {
        const StmtSched *st = &cx->s->st[i];
        if (!st->at || st->inlined)
            continue;
        const char *tn = p->tensors[p->stmts[i].out].name;
        int c = st->at_stmt;
        if (c <= i || c >= p->nstmts || cx->s->st[c].inlined)
            return ir_error(cx->e, KILN_ESCHEDULE, NULL, (Loc){0, 0},
                            "'%s' is computed at a loop of a statement that no longer has loops",
                            tn);
        /* Every reader is c itself, or a statement computed (through a
         * chain of compute_at) inside the target loop of c. */
        ba.last[i] = c;
        int first = -1;
        for (int r = i + 1; r < p->nstmts; r++) {
            if (cx->s->st[r].inlined || other_reader(&ba, p->stmts[i].out, -1, r) != r)
                continue;
            first = first < 0 ? r : first;
            int h = r, via = -1;
            for (int n = 0; h != c && cx->s->st[h].at && n < p->nstmts; n++) {
                via = h;
                h = cx->s->st[h].at_stmt;
            }
            int pt = -1, pv = -1;
            for (int k = 0; k < cx->s->st[c].norder; k++) {
                pt = cx->s->st[c].order[k] == st->at_loop ? k : pt;
                pv = via >= 0 && cx->s->st[c].order[k] == cx->s->st[via].at_loop ? k : pv;
            }
            if (h == c && via >= 0 && pt >= 0 && pv >= 0 && pv < pt)
                return ir_error(cx->e, KILN_ESCHEDULE, NULL, (Loc){0, 0},
                                "'%s' is computed at %s.%s, but '%s', which reads it, is "
                                "computed outside that loop (at %s.%s)",
                                tn, p->tensors[p->stmts[c].out].name,
                                cx->s->st[c].loops[st->at_loop].name,
                                p->tensors[p->stmts[r].out].name, p->tensors[p->stmts[c].out].name,
                                cx->s->st[c].loops[cx->s->st[via].at_loop].name);
            if (h != c || (via >= 0 && (pt < 0 || pv < pt)))
                return ir_error(cx->e, KILN_ESCHEDULE, NULL, (Loc){0, 0},
                                "'%s' is computed at a loop of '%s', but '%s' reads it too", tn,
                                p->tensors[p->stmts[c].out].name, p->tensors[p->stmts[r].out].name);
        }
        if (first >= 0)
            ba.last[i] = first;
    }
    /* Consumers before producers: a computed-at statement's region comes
     * from its consumer's loads. */
    for (int i = p->nstmts - 1; i >= 0; i--) {
        if (cx->s->st[i].inlined)
            continue;
        int rc = build_stmt(&ba, i, &nests[i]);
        if (rc)
            return rc;
    }
    /* Producers into their consumers' loops, in program order: all of a
     * consumer's producers come before it, so its nest is complete when it
     * moves into its own consumer or onto the top level. */
    int n = 0;
    for (int i = 0; i < p->nstmts; i++) {
        const StmtSched *st = &cx->s->st[i];
        if (st->inlined)
            continue;
        if (!st->at) {
            top[n++] = nests[i];
            continue;
        }
        bool done = false;
        int c = st->at_stmt;
        nests[c] = insert_at(a, nests[c], ba.leafvar[c][st->at_loop], nests[i], p->stmts[i].out,
                             ba.placed, &done);
        if (!nests[c])
            return nomem(cx);
        IR_ASSERT(done);
        ba.placed[p->stmts[i].out] = true;
    }
    f->body = ls_block(a, n, top);
    if (!f->body)
        return nomem(cx);
    *out = f;
    return KILN_OK;
}

/* ------------------------------------------------------------ inline */
static LStmt *inl_stmt(const Inl *in, LStmt *s)
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
    /* Only loads of an inlined statement's tensor change: with none, the
     * walk below would hand back f->body itself (scoring's common case). */
    bool any = false;
    for (int i = 0; i < p->nstmts && !any; i++)
        any = cx->s->st[i].inlined;
    if (!any) {
        *out = lower_copy_func(cx->a, f, f->body);
        return *out ? KILN_OK : ir_error(cx->e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    }
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
