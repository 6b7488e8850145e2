/* lower/verify.c: structural checks of LoopIR, run after every pass in
 * debug and test builds.  A failure is a bug in lowering, never the
 * user's fault, so it is reported as an internal error (KILN_ECODEGEN). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lower/lower.h"

typedef struct {
    const LFunc *f;
    kiln_error *e;
    const Var **bound; /* vars of the enclosing loops (local[] or malloc'd) */
    int n, cap;
    const Var *local[64];
} Ver;

static int bad(Ver *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(Ver *v, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ir_error(v->e, KILN_ECODEGEN, NULL, (Loc){0, 0}, "internal: malformed LoopIR: %s", msg);
}

static bool is_bound(const Ver *v, const Var *x)
{
    for (int i = 0; i < v->n; i++)
        if (v->bound[i] == x)
            return true;
    return false;
}

static bool int_type(DType t)
{
    return t == DT_I32 || t == DT_I64;
}

static int check_access(Ver *v, int buf, int n, Expr **idx, const char *what);

static int check_expr(Ver *v, const Expr *e)
{
    if (!e)
        return bad(v, "missing expression");
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
        return KILN_OK;
    case EXPR_VAR:
        if (!e->u.var)
            return bad(v, "variable without Var");
        if (!is_bound(v, e->u.var))
            return bad(v, "variable '%s' is used outside its loop", e->u.var->name);
        return KILN_OK;
    case EXPR_LOAD: {
        int rc = check_access(v, e->u.load.buf, e->u.load.n, e->u.load.idx, "load");
        if (rc)
            return rc;
        if (e->dt != v->f->bufs[e->u.load.buf].dt)
            return bad(v, "load of %s has type %s, buffer is %s", v->f->bufs[e->u.load.buf].name,
                       dtype_name(e->dt), dtype_name(v->f->bufs[e->u.load.buf].dt));
        return KILN_OK;
    }
    default:
        if (expr_is_binary(e->kind) || e->kind == EXPR_SELECT) {
            int rc = check_expr(v, e->u.op.a);
            if (!rc)
                rc = check_expr(v, e->u.op.b);
            if (!rc && e->kind == EXPR_SELECT)
                rc = check_expr(v, e->u.op.c);
            return rc;
        }
        if (expr_is_unary(e->kind))
            return check_expr(v, e->u.op.a);
        return bad(v, "unknown expression kind %d", (int)e->kind);
    }
}

static int check_access(Ver *v, int buf, int n, Expr **idx, const char *what)
{
    const LFunc *f = v->f;
    if (buf < 0 || buf >= f->nbufs)
        return bad(v, "%s of buffer %d (function has %d)", what, buf, f->nbufs);
    const LBuf *b = &f->bufs[buf];
    int want = f->flat ? 1 : b->ndim;
    if (n != want)
        return bad(v, "%s of %s has %d indices, expected %d", what, b->name, n, want);
    for (int i = 0; i < n; i++) {
        int rc = check_expr(v, idx[i]);
        if (rc)
            return rc;
        if (f->flat ? idx[i]->dt != DT_I64 : !int_type(idx[i]->dt))
            return bad(v, "%s of %s: index %d has type %s", what, b->name, i,
                       dtype_name(idx[i]->dt));
    }
    return KILN_OK;
}

static int check_stmt(Ver *v, const LStmt *s, bool in_vector)
{
    if (!s)
        return bad(v, "missing statement");
    int rc;
    switch (s->kind) {
    case LS_FOR: {
        const Var *x = s->u.loop.var;
        if (!x)
            return bad(v, "loop without a variable");
        if (in_vector)
            return bad(v, "loop '%s' inside a vectorized loop", x->name);
        if (s->u.loop.extent < 1)
            return bad(v, "loop '%s' has extent %lld", x->name, (long long)s->u.loop.extent);
        if ((unsigned)s->u.loop.kind > LOOP_UNROLLED)
            return bad(v, "loop '%s' has kind %d", x->name, (int)s->u.loop.kind);
        if (x->extent != s->u.loop.extent)
            return bad(v, "loop '%s' runs %lld times but its var says %lld", x->name,
                       (long long)s->u.loop.extent, (long long)x->extent);
        if (is_bound(v, x))
            return bad(v, "loop variable '%s' is bound twice", x->name);
        if (v->n == v->cap) {
            int cap = v->cap * 2;
            const Var **nb = malloc(sizeof(Var *) * (size_t)cap);
            if (!nb)
                return ir_error(v->e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
            memcpy(nb, v->bound, sizeof(Var *) * (size_t)v->n);
            if (v->bound != v->local)
                free(v->bound);
            v->bound = nb;
            v->cap = cap;
        }
        v->bound[v->n++] = x;
        rc = check_stmt(v, s->u.loop.body, in_vector || s->u.loop.kind == LOOP_VECTORIZED);
        v->n--;
        return rc;
    }
    case LS_STORE: {
        if ((rc = check_access(v, s->u.store.buf, s->u.store.n, s->u.store.idx, "store")))
            return rc;
        const LBuf *b = &v->f->bufs[s->u.store.buf];
        if (b->kind == T_INPUT)
            return bad(v, "store to input %s", b->name);
        if ((rc = check_expr(v, s->u.store.value)))
            return rc;
        if (s->u.store.value->dt != b->dt)
            return bad(v, "store of %s into %s (%s)", dtype_name(s->u.store.value->dt), b->name,
                       dtype_name(b->dt));
        return KILN_OK;
    }
    case LS_BLOCK:
        if (s->u.block.n < 0 || (s->u.block.n > 0 && !s->u.block.s))
            return bad(v, "broken block");
        for (int i = 0; i < s->u.block.n; i++)
            if ((rc = check_stmt(v, s->u.block.s[i], in_vector)))
                return rc;
        return KILN_OK;
    case LS_IF:
        if ((rc = check_expr(v, s->u.cond.cond)))
            return rc;
        if (s->u.cond.cond->dt != DT_BOOL)
            return bad(v, "condition of type %s", dtype_name(s->u.cond.cond->dt));
        if ((rc = check_stmt(v, s->u.cond.then_s, in_vector)))
            return rc;
        return s->u.cond.else_s ? check_stmt(v, s->u.cond.else_s, in_vector) : KILN_OK;
    case LS_ALLOC: {
        int b = s->u.alloc.buf;
        if (b < v->f->nargs || b >= v->f->nbufs)
            return bad(v, "alloc of buffer %d, which is not a temporary", b);
        if (v->f->bufs[b].kind != T_TEMP && v->f->bufs[b].kind != T_LOCAL)
            return bad(v, "alloc of %s, which is not a temporary", v->f->bufs[b].name);
        return check_stmt(v, s->u.alloc.body, in_vector);
    }
    }
    return bad(v, "unknown statement kind %d", (int)s->kind);
}

int lower_verify(const LFunc *f, kiln_error *e)
{
    if (!f)
        return ir_error(e, KILN_ECODEGEN, NULL, (Loc){0, 0}, "internal: no function");
    Ver v = {.f = f, .e = e, .cap = 64};
    v.bound = v.local;
    int rc = KILN_OK;
    if (f->nargs < 0 || f->nargs > f->nbufs)
        rc = bad(&v, "%d arguments but %d buffers", f->nargs, f->nbufs);
    for (int i = 0; !rc && i < f->nbufs; i++)
        for (int d = 0; d < f->bufs[i].ndim; d++)
            if (f->bufs[i].dims[d] < 1)
                rc = bad(&v, "buffer %s has dimension %lld", f->bufs[i].name,
                         (long long)f->bufs[i].dims[d]);
    if (!rc)
        rc = check_stmt(&v, f->body, false);
    if (v.bound != v.local)
        free(v.bound);
    return rc;
}
