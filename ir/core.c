/* ir/core.c: the arena, error reporting, dtypes, and Expr/LStmt building
 * blocks shared by every module.  Nodes are immutable after construction;
 * the index helpers fold constants so lowered index arithmetic stays small. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

/* ------------------------------------------------------------ asserts */
void ir_internal_error(const char *file, int line, const char *cond)
{
    fprintf(stderr, "kiln: internal error at %s:%d: %s (please report)\n", file, line, cond);
    abort();
}

/* -------------------------------------------------------------- arena */
typedef struct Chunk {
    struct Chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
} Chunk;

struct Arena {
    Chunk *head;
    size_t total;
};

Arena *arena_new(void)
{
    return calloc(1, sizeof(Arena));
}

void arena_free(Arena *a)
{
    if (!a)
        return;
    for (Chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(a);
}

void *arena_alloc(Arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    Chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = n > 65536 - sizeof(Chunk) ? n : 65536 - sizeof(Chunk);
        c = malloc(sizeof(Chunk) + size);
        if (!c)
            return NULL;
        c->size = size;
        c->used = 0;
        c->next = a->head;
        a->head = c;
        a->total += size;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

char *arena_strdup(Arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

char *arena_printf(Arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *d = arena_alloc(a, (size_t)n + 1);
    if (!d)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

size_t arena_bytes(const Arena *a)
{
    return a->total;
}

void ptrvec_push(Arena *a, PtrVec *pv, void *p)
{
    if (pv->n == pv->cap) {
        int cap = pv->cap ? pv->cap * 2 : 8;
        void **v = arena_alloc(a, sizeof(void *) * (size_t)cap);
        if (!v)
            return;
        if (pv->n)
            memcpy(v, pv->v, sizeof(void *) * (size_t)pv->n);
        pv->v = v;
        pv->cap = cap;
    }
    pv->v[pv->n++] = p;
}

/* ------------------------------------------------------------- errors */
void kiln_error_clear(kiln_error *e)
{
    if (e)
        memset(e, 0, sizeof *e);
}

const char *kiln_error_format(const kiln_error *e, char *buf, unsigned long size)
{
    if (!e || !size)
        return buf;
    if (e->file[0] && e->line)
        snprintf(buf, size, "%s:%d:%d: %s", e->file, e->line, e->col, e->msg);
    else if (e->file[0])
        snprintf(buf, size, "%s: %s", e->file, e->msg);
    else
        snprintf(buf, size, "%s", e->msg);
    return buf;
}

int ir_error(kiln_error *e, int code, const char *file, Loc loc, const char *fmt, ...)
{
    if (!e || e->code != KILN_OK)
        return code;
    e->code = code;
    snprintf(e->file, sizeof e->file, "%s", file ? file : "");
    e->line = loc.line;
    e->col = loc.col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

/* -------------------------------------------------------------- types */
static const char *const dtype_names[] = {"f32", "f64", "i32", "i64", "bool"};

const char *dtype_name(DType t)
{
    return dtype_names[t];
}

int dtype_size(DType t)
{
    static const int sz[] = {4, 8, 4, 8, 1};
    return sz[t];
}

bool dtype_is_float(DType t)
{
    return t == DT_F32 || t == DT_F64;
}

bool dtype_from_name(const char *s, DType *out)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, dtype_names[i])) {
            *out = (DType)i;
            return true;
        }
    return false;
}

int64_t tensor_numel(const Tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->dims[i];
    return n;
}

/* --------------------------------------------------------------- Expr */
bool expr_is_binary(ExprKind k)
{
    return k >= EXPR_ADD && k <= EXPR_OR;
}

bool expr_is_unary(ExprKind k)
{
    return k >= EXPR_NOT && k <= EXPR_CAST;
}

bool expr_is_compare(ExprKind k)
{
    return k >= EXPR_LT && k <= EXPR_NE;
}

static Expr *mk(Arena *a, ExprKind k, DType dt)
{
    Expr *e = arena_alloc(a, sizeof *e);
    if (e) {
        e->kind = k;
        e->dt = dt;
    }
    return e;
}

Expr *expr_int(Arena *a, DType dt, int64_t v)
{
    Expr *e = mk(a, EXPR_INT, dt);
    if (e)
        e->u.i = v;
    return e;
}

Expr *expr_float(Arena *a, DType dt, double v)
{
    Expr *e = mk(a, EXPR_FLOAT, dt);
    if (e)
        e->u.f = v;
    return e;
}

Expr *expr_var(Arena *a, Var *v)
{
    Expr *e = mk(a, EXPR_VAR, DT_I64);
    if (e)
        e->u.var = v;
    return e;
}

Expr *expr_load(Arena *a, DType dt, int buf, int n, Expr **idx)
{
    Expr *e = mk(a, EXPR_LOAD, dt);
    if (!e)
        return NULL;
    e->u.load.buf = buf;
    e->u.load.n = n;
    e->u.load.idx = arena_alloc(a, sizeof(Expr *) * (size_t)(n ? n : 1));
    if (n)
        memcpy(e->u.load.idx, idx, sizeof(Expr *) * (size_t)n);
    return e;
}

Expr *expr_bin(Arena *a, ExprKind k, DType dt, Expr *x, Expr *y)
{
    Expr *e = mk(a, k, dt);
    if (e) {
        e->u.op.a = x;
        e->u.op.b = y;
    }
    return e;
}

Expr *expr_un(Arena *a, ExprKind k, DType dt, Expr *x)
{
    Expr *e = mk(a, k, dt);
    if (e)
        e->u.op.a = x;
    return e;
}

Expr *expr_select(Arena *a, DType dt, Expr *c, Expr *t, Expr *f)
{
    Expr *e = mk(a, EXPR_SELECT, dt);
    if (e) {
        e->u.op.a = c;
        e->u.op.b = t;
        e->u.op.c = f;
    }
    return e;
}

Expr *expr_red_identity(Arena *a, RedOp op, DType dt)
{
    bool fl = dtype_is_float(dt);
    switch (op) {
    case RED_SUM:
        return fl ? expr_float(a, dt, 0.0) : expr_int(a, dt, 0);
    case RED_PROD:
        return fl ? expr_float(a, dt, 1.0) : expr_int(a, dt, 1);
    case RED_MAX:
        return fl ? expr_float(a, dt, -INFINITY)
                  : expr_int(a, dt, dt == DT_I32 ? INT32_MIN : INT64_MIN);
    case RED_MIN:
        return fl ? expr_float(a, dt, INFINITY)
                  : expr_int(a, dt, dt == DT_I32 ? INT32_MAX : INT64_MAX);
    default:
        return NULL;
    }
}

Expr *expr_iconst(Arena *a, int64_t v)
{
    return expr_int(a, DT_I64, v);
}

static bool is_iconst(const Expr *e, int64_t *v)
{
    if (e->kind != EXPR_INT)
        return false;
    *v = e->u.i;
    return true;
}

Expr *expr_iadd(Arena *a, Expr *x, Expr *y)
{
    int64_t cx, cy;
    bool kx = is_iconst(x, &cx), ky = is_iconst(y, &cy);
    if (kx && ky)
        return expr_iconst(a, cx + cy);
    if (kx && cx == 0)
        return y;
    if (ky && cy == 0)
        return x;
    return expr_bin(a, EXPR_ADD, DT_I64, x, y);
}

Expr *expr_imul(Arena *a, Expr *x, Expr *y)
{
    int64_t cx, cy;
    bool kx = is_iconst(x, &cx), ky = is_iconst(y, &cy);
    if (kx && ky)
        return expr_iconst(a, cx * cy);
    if ((kx && cx == 0) || (ky && cy == 0))
        return expr_iconst(a, 0);
    if (kx && cx == 1)
        return y;
    if (ky && cy == 1)
        return x;
    return expr_bin(a, EXPR_MUL, DT_I64, x, y);
}

static int64_t floordiv(int64_t x, int64_t d)
{
    int64_t q = x / d;
    if ((x % d != 0) && ((x < 0) != (d < 0)))
        q--;
    return q;
}

Expr *expr_idiv(Arena *a, Expr *x, int64_t d)
{
    int64_t cx;
    if (d == 1)
        return x;
    if (is_iconst(x, &cx))
        return expr_iconst(a, floordiv(cx, d));
    return expr_bin(a, EXPR_DIV, DT_I64, x, expr_iconst(a, d));
}

Expr *expr_imod(Arena *a, Expr *x, int64_t d)
{
    int64_t cx;
    if (d == 1)
        return expr_iconst(a, 0);
    if (is_iconst(x, &cx))
        return expr_iconst(a, cx - floordiv(cx, d) * d);
    return expr_bin(a, EXPR_MOD, DT_I64, x, expr_iconst(a, d));
}

Expr *expr_subst(Arena *a, Expr *e, int n, Var *const *from, Expr *const *to)
{
    if (!e)
        return NULL;
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
        return e;
    case EXPR_VAR:
        for (int i = 0; i < n; i++)
            if (from[i] == e->u.var)
                return to[i];
        return e;
    case EXPR_LOAD: {
        Expr *idx[IR_MAX_DIMS + 1];
        bool changed = false;
        IR_ASSERT(e->u.load.n <= IR_MAX_DIMS);
        for (int i = 0; i < e->u.load.n; i++) {
            idx[i] = expr_subst(a, e->u.load.idx[i], n, from, to);
            changed |= idx[i] != e->u.load.idx[i];
        }
        if (!changed)
            return e;
        Expr *r = expr_load(a, e->dt, e->u.load.buf, e->u.load.n, idx);
        if (r)
            r->loc = e->loc;
        return r;
    }
    default: {
        Expr *x = expr_subst(a, e->u.op.a, n, from, to);
        Expr *y = expr_subst(a, e->u.op.b, n, from, to);
        Expr *z = expr_subst(a, e->u.op.c, n, from, to);
        if (x == e->u.op.a && y == e->u.op.b && z == e->u.op.c)
            return e;
        Expr *r = mk(a, e->kind, e->dt);
        if (r) {
            r->loc = e->loc;
            r->u.op.a = x;
            r->u.op.b = y;
            r->u.op.c = z;
        }
        return r;
    }
    }
}

bool expr_equal(const Expr *x, const Expr *y)
{
    if (x == y)
        return true;
    if (!x || !y || x->kind != y->kind || x->dt != y->dt)
        return false;
    switch (x->kind) {
    case EXPR_INT:
        return x->u.i == y->u.i;
    case EXPR_FLOAT:
        return x->u.f == y->u.f || (isnan(x->u.f) && isnan(y->u.f));
    case EXPR_VAR:
        return x->u.var == y->u.var;
    case EXPR_LOAD:
        if (x->u.load.buf != y->u.load.buf || x->u.load.n != y->u.load.n)
            return false;
        for (int i = 0; i < x->u.load.n; i++)
            if (!expr_equal(x->u.load.idx[i], y->u.load.idx[i]))
                return false;
        return true;
    default:
        return expr_equal(x->u.op.a, y->u.op.a) && expr_equal(x->u.op.b, y->u.op.b) &&
               expr_equal(x->u.op.c, y->u.op.c);
    }
}

const Expr *expr_first_load(const Expr *e, int buf)
{
    if (!e || e->kind == EXPR_INT || e->kind == EXPR_FLOAT || e->kind == EXPR_VAR)
        return NULL;
    if (e->kind == EXPR_LOAD) {
        if (e->u.load.buf == buf)
            return e;
        for (int i = 0; i < e->u.load.n; i++) {
            const Expr *l = expr_first_load(e->u.load.idx[i], buf);
            if (l)
                return l;
        }
        return NULL;
    }
    const Expr *l = expr_first_load(e->u.op.a, buf);
    if (!l)
        l = expr_first_load(e->u.op.b, buf);
    return l ? l : expr_first_load(e->u.op.c, buf);
}

bool expr_reads(const Expr *e, int buf)
{
    return expr_first_load(e, buf) != NULL;
}

bool expr_uses_var(const Expr *e, const Var *v)
{
    if (!e)
        return false;
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
        return false;
    case EXPR_VAR:
        return e->u.var == v;
    case EXPR_LOAD:
        for (int i = 0; i < e->u.load.n; i++)
            if (expr_uses_var(e->u.load.idx[i], v))
                return true;
        return false;
    default:
        return expr_uses_var(e->u.op.a, v) || expr_uses_var(e->u.op.b, v) ||
               expr_uses_var(e->u.op.c, v);
    }
}

/* ------------------------------------------------------------ printing */
static bool sb_reserve(StrBuf *sb, size_t n)
{
    if (sb->len + n + 1 <= sb->cap)
        return true;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < sb->len + n + 1)
        cap *= 2;
    char *s = realloc(sb->s, cap);
    if (!s)
        return false;
    sb->s = s;
    sb->cap = cap;
    return true;
}

static void sb_append(StrBuf *sb, const char *p, size_t n)
{
    if (sb_reserve(sb, n)) {
        memcpy(sb->s + sb->len, p, n);
        sb->len += n;
        sb->s[sb->len] = 0;
    }
}

const char *ir_fmt_ll(char buf[24], long long v)
{
    /* digits right to left; the magnitude as unsigned (LLONG_MIN) */
    unsigned long long m = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    int k = 23;
    buf[k] = 0;
    do {
        buf[--k] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (v < 0)
        buf[--k] = '-';
    return buf + k;
}

/* Formats made of literal text, %s, %d, %lld and %% only (every name,
 * loop and schedule line is printed that way, thousands of times per
 * tuner scoring pass) skip vsnprintf; the output is the same.  Returns
 * false, having written nothing, for any other format. */
static bool sb_fast(StrBuf *sb, const char *fmt, va_list ap)
{
    for (const char *f = fmt; *f; f++)
        if (*f == '%') {
            if (f[1] == 's' || f[1] == 'd' || f[1] == '%')
                f++;
            else if (f[1] == 'l' && f[2] == 'l' && f[3] == 'd')
                f += 3;
            else
                return false;
        }
    for (const char *f = fmt; *f;) {
        const char *lit = f;
        while (*f && *f != '%')
            f++;
        if (f > lit)
            sb_append(sb, lit, (size_t)(f - lit));
        if (!*f)
            break;
        char num[24];
        if (f[1] == 's') {
            const char *a = va_arg(ap, const char *);
            if (!a)
                a = "(null)"; /* as glibc prints it */
            sb_append(sb, a, strlen(a));
            f += 2;
        } else if (f[1] == '%') {
            sb_append(sb, "%", 1);
            f += 2;
        } else {
            long long v;
            if (f[1] == 'd') {
                v = va_arg(ap, int);
                f += 2;
            } else {
                v = va_arg(ap, long long);
                f += 4;
            }
            const char *d = ir_fmt_ll(num, v);
            sb_append(sb, d, (size_t)(num + sizeof num - 1 - d));
        }
    }
    if (!sb->s) /* an empty result still leaves a string, as vsnprintf would */
        sb_append(sb, "", 0);
    return true;
}

void sb_printf(StrBuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool done = sb_fast(sb, fmt, ap);
    va_end(ap);
    if (done)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !sb_reserve(sb, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(sb->s + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void sb_free(StrBuf *sb)
{
    free(sb->s);
    memset(sb, 0, sizeof *sb);
}

static const char *op_text(ExprKind k)
{
    switch (k) {
    case EXPR_ADD: return "+";
    case EXPR_SUB: return "-";
    case EXPR_MUL: return "*";
    case EXPR_DIV: return "/";
    case EXPR_MOD: return "%";
    case EXPR_LT: return "<";
    case EXPR_LE: return "<=";
    case EXPR_GT: return ">";
    case EXPR_GE: return ">=";
    case EXPR_EQ: return "==";
    case EXPR_NE: return "!=";
    case EXPR_AND: return "&&";
    case EXPR_OR: return "||";
    case EXPR_MIN: return "min";
    case EXPR_MAX: return "max";
    case EXPR_NOT: return "!";
    case EXPR_NEG: return "-";
    case EXPR_ABS: return "abs";
    case EXPR_EXP: return "exp";
    case EXPR_LOG: return "log";
    case EXPR_SQRT: return "sqrt";
    case EXPR_TANH: return "tanh";
    case EXPR_SIGMOID: return "sigmoid";
    default: return "?";
    }
}

void expr_to_sb(StrBuf *sb, const Expr *e, BufName bn, void *ctx)
{
    switch (e->kind) {
    case EXPR_INT:
        if (e->dt == DT_BOOL)
            sb_printf(sb, "%s", e->u.i ? "true" : "false");
        else
            sb_printf(sb, "%lld", (long long)e->u.i);
        break;
    case EXPR_FLOAT: {
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%.9g", e->u.f);
        if (!strpbrk(tmp, ".einn"))
            strcat(tmp, ".0");
        sb_printf(sb, "%s", tmp);
        break;
    }
    case EXPR_VAR:
        sb_printf(sb, "%s", e->u.var->name);
        break;
    case EXPR_LOAD:
        if (bn)
            sb_printf(sb, "%s[", bn(ctx, e->u.load.buf));
        else
            sb_printf(sb, "b%d[", e->u.load.buf);
        for (int i = 0; i < e->u.load.n; i++) {
            if (i)
                sb_printf(sb, ", ");
            expr_to_sb(sb, e->u.load.idx[i], bn, ctx);
        }
        sb_printf(sb, "]");
        break;
    case EXPR_MIN:
    case EXPR_MAX:
        sb_printf(sb, "%s(", op_text(e->kind));
        expr_to_sb(sb, e->u.op.a, bn, ctx);
        sb_printf(sb, ", ");
        expr_to_sb(sb, e->u.op.b, bn, ctx);
        sb_printf(sb, ")");
        break;
    case EXPR_NOT:
    case EXPR_NEG:
        sb_printf(sb, "%s", op_text(e->kind));
        expr_to_sb(sb, e->u.op.a, bn, ctx);
        break;
    case EXPR_CAST:
        sb_printf(sb, "%s(", dtype_name(e->dt));
        expr_to_sb(sb, e->u.op.a, bn, ctx);
        sb_printf(sb, ")");
        break;
    case EXPR_SELECT:
        sb_printf(sb, "select(");
        expr_to_sb(sb, e->u.op.a, bn, ctx);
        sb_printf(sb, ", ");
        expr_to_sb(sb, e->u.op.b, bn, ctx);
        sb_printf(sb, ", ");
        expr_to_sb(sb, e->u.op.c, bn, ctx);
        sb_printf(sb, ")");
        break;
    default:
        if (expr_is_unary(e->kind)) {
            sb_printf(sb, "%s(", op_text(e->kind));
            expr_to_sb(sb, e->u.op.a, bn, ctx);
            sb_printf(sb, ")");
        } else {
            sb_printf(sb, "(");
            expr_to_sb(sb, e->u.op.a, bn, ctx);
            sb_printf(sb, " %s ", op_text(e->kind));
            expr_to_sb(sb, e->u.op.b, bn, ctx);
            sb_printf(sb, ")");
        }
        break;
    }
}

/* ------------------------------------------------------------- LoopIR */
static LStmt *mks(Arena *a, LStmtKind k)
{
    LStmt *s = arena_alloc(a, sizeof *s);
    if (s)
        s->kind = k;
    return s;
}

LStmt *ls_for(Arena *a, Var *v, int64_t extent, LoopKind k, LStmt *body)
{
    LStmt *s = mks(a, LS_FOR);
    if (s) {
        s->u.loop.var = v;
        s->u.loop.extent = extent;
        s->u.loop.kind = k;
        s->u.loop.body = body;
    }
    return s;
}

LStmt *ls_store(Arena *a, int buf, int n, Expr **idx, Expr *value)
{
    LStmt *s = mks(a, LS_STORE);
    if (!s)
        return NULL;
    s->u.store.buf = buf;
    s->u.store.n = n;
    s->u.store.idx = arena_alloc(a, sizeof(Expr *) * (size_t)(n ? n : 1));
    if (n)
        memcpy(s->u.store.idx, idx, sizeof(Expr *) * (size_t)n);
    s->u.store.value = value;
    return s;
}

LStmt *ls_block(Arena *a, int n, LStmt **st)
{
    LStmt *s = mks(a, LS_BLOCK);
    if (!s)
        return NULL;
    s->u.block.n = n;
    s->u.block.s = arena_alloc(a, sizeof(LStmt *) * (size_t)(n ? n : 1));
    if (n)
        memcpy(s->u.block.s, st, sizeof(LStmt *) * (size_t)n);
    return s;
}

LStmt *ls_if(Arena *a, Expr *cond, LStmt *then_s, LStmt *else_s)
{
    LStmt *s = mks(a, LS_IF);
    if (s) {
        s->u.cond.cond = cond;
        s->u.cond.then_s = then_s;
        s->u.cond.else_s = else_s;
    }
    return s;
}

LStmt *ls_alloc(Arena *a, int buf, LStmt *body)
{
    LStmt *s = mks(a, LS_ALLOC);
    if (s) {
        s->u.alloc.buf = buf;
        s->u.alloc.body = body;
    }
    return s;
}

Var *ir_var_new(Arena *a, const char *name, int64_t extent)
{
    static int next_id; /* only for printing; uniqueness is by pointer */
    Var *v = arena_alloc(a, sizeof *v);
    if (v) {
        v->name = arena_strdup(a, name);
        v->extent = extent;
        v->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
    }
    return v;
}
