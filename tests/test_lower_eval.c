/* tests/test_lower_eval.c: lowering is checked by running its output.
 *
 * A small LoopIR interpreter (static functions below, test-only) executes
 * the lowered function after each of the passes init, guards, simplify and
 * flatten, on random inputs, and compares every output with the reference
 * interpreter (ir_interpret).  Programs: the examples/ workloads with their
 * sizes shrunk (their hand schedules, the default schedule, random ones)
 * plus programs that cover every reduction kind, scalars, select padding,
 * integer division, casts and inline chains.  330+ random schedules with a
 * fixed seed.  The LoopIR interpreter also catches out-of-bounds accesses,
 * reads of unallocated temps and outputs left unwritten. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "lower/lower.h"
#include "testlib.h"

/* ------------------------------------------------- LoopIR interpreter */
typedef union {
    float f32;
    double f64;
    int32_t i32; /* also bool */
    int64_t i64;
} Val;

typedef struct {
    const LFunc *f;
    void **data;
    const Var *vars[512];
    int64_t vals[512];
    int nv;
    char err[512];
} Ev;

static void ev_fail(Ev *ev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ev_fail(Ev *ev, const char *fmt, ...)
{
    if (ev->err[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev->err, sizeof ev->err, fmt, ap);
    va_end(ap);
}

static int64_t fdiv64(int64_t x, int64_t d)
{
    if (d == 0)
        return 0;
    if (d == -1)
        return (int64_t)(0 - (uint64_t)x);
    int64_t q = x / d;
    if ((x % d != 0) && ((x < 0) != (d < 0)))
        q--;
    return q;
}

static int64_t fmod64(int64_t x, int64_t d)
{
    if (d == 0 || d == -1)
        return 0;
    int64_t m = x % d;
    if (m != 0 && ((m < 0) != (d < 0)))
        m += d;
    return m;
}

static int64_t as_i64(Val v, DType dt)
{
    return dt == DT_I64 ? v.i64 : v.i32;
}

static Val ev_expr(Ev *ev, const Expr *e);

static int64_t ev_offset(Ev *ev, int buf, int n, Expr **idx)
{
    const LBuf *b = &ev->f->bufs[buf];
    int64_t numel = 1, off = 0;
    for (int i = 0; i < b->ndim; i++)
        numel *= b->dims[i];
    if (ev->f->flat) {
        off = as_i64(ev_expr(ev, idx[0]), idx[0]->dt);
    } else {
        for (int i = 0; i < n; i++) {
            int64_t x = as_i64(ev_expr(ev, idx[i]), idx[i]->dt);
            if (x < 0 || x >= b->dims[i]) {
                ev_fail(ev, "index %d of %s is %lld, outside 0..%lld", i, b->name, (long long)x,
                        (long long)b->dims[i] - 1);
                return -1;
            }
            off = off * b->dims[i] + x;
        }
    }
    if (off < 0 || off >= numel) {
        ev_fail(ev, "access to %s[%lld] is out of bounds (%lld elements)", b->name, (long long)off,
                (long long)numel);
        return -1;
    }
    if (!ev->data[buf]) {
        ev_fail(ev, "access to %s, which is not allocated", b->name);
        return -1;
    }
    return off;
}

static Val arith(ExprKind k, DType dt, Val x, Val y)
{
    Val r;
    r.i64 = 0;
    switch (dt) {
    case DT_F32:
        switch (k) {
        case EXPR_ADD:
            r.f32 = x.f32 + y.f32;
            break;
        case EXPR_SUB:
            r.f32 = x.f32 - y.f32;
            break;
        case EXPR_MUL:
            r.f32 = x.f32 * y.f32;
            break;
        case EXPR_DIV:
            r.f32 = x.f32 / y.f32;
            break;
        case EXPR_MIN:
            r.f32 = fminf(x.f32, y.f32);
            break;
        case EXPR_MAX:
            r.f32 = fmaxf(x.f32, y.f32);
            break;
        default:
            r.f32 = fmodf(x.f32, y.f32);
            break;
        }
        return r;
    case DT_F64:
        switch (k) {
        case EXPR_ADD:
            r.f64 = x.f64 + y.f64;
            break;
        case EXPR_SUB:
            r.f64 = x.f64 - y.f64;
            break;
        case EXPR_MUL:
            r.f64 = x.f64 * y.f64;
            break;
        case EXPR_DIV:
            r.f64 = x.f64 / y.f64;
            break;
        case EXPR_MIN:
            r.f64 = fmin(x.f64, y.f64);
            break;
        case EXPR_MAX:
            r.f64 = fmax(x.f64, y.f64);
            break;
        default:
            r.f64 = fmod(x.f64, y.f64);
            break;
        }
        return r;
    default: {
        bool w = dt == DT_I64;
        int64_t a = w ? x.i64 : x.i32, b = w ? y.i64 : y.i32, v;
        switch (k) {
        case EXPR_ADD:
            v = (int64_t)((uint64_t)a + (uint64_t)b);
            break;
        case EXPR_SUB:
            v = (int64_t)((uint64_t)a - (uint64_t)b);
            break;
        case EXPR_MUL:
            v = (int64_t)((uint64_t)a * (uint64_t)b);
            break;
        case EXPR_DIV:
            v = fdiv64(a, b);
            break;
        case EXPR_MOD:
            v = fmod64(a, b);
            break;
        case EXPR_MIN:
            v = a < b ? a : b;
            break;
        default:
            v = a > b ? a : b;
            break;
        }
        if (w)
            r.i64 = v;
        else
            r.i32 = (int32_t)(uint32_t)(uint64_t)v;
        return r;
    }
    }
}

static double as_double(Val v, DType dt)
{
    switch (dt) {
    case DT_F32:
        return v.f32;
    case DT_F64:
        return v.f64;
    case DT_I64:
        return (double)v.i64;
    default:
        return v.i32;
    }
}

static Val cast_val(Val x, DType from, DType to)
{
    Val r;
    r.i64 = 0;
    if (!dtype_is_float(from)) {
        int64_t v = as_i64(x, from == DT_BOOL ? DT_I32 : from);
        switch (to) {
        case DT_F32:
            r.f32 = (float)v;
            break;
        case DT_F64:
            r.f64 = (double)v;
            break;
        case DT_I64:
            r.i64 = v;
            break;
        default:
            r.i32 = (int32_t)(uint32_t)(uint64_t)v;
            break;
        }
        return r;
    }
    double d = as_double(x, from);
    switch (to) {
    case DT_F32:
        r.f32 = (float)d;
        break;
    case DT_F64:
        r.f64 = d;
        break;
    case DT_I32:
        r.i32 = isnan(d)             ? 0
                : d >= 2147483648.0  ? INT32_MAX
                : d <= -2147483649.0 ? INT32_MIN
                                     : (int32_t)d;
        break;
    default:
        r.i64 = isnan(d)                     ? 0
                : d >= 9223372036854775808.0 ? INT64_MAX
                : d < -9223372036854775808.0 ? INT64_MIN
                                             : (int64_t)d;
        break;
    }
    return r;
}

static int compare(ExprKind k, DType dt, Val x, Val y)
{
    if (dtype_is_float(dt)) {
        double a = as_double(x, dt), b = as_double(y, dt);
        switch (k) {
        case EXPR_LT:
            return a < b;
        case EXPR_LE:
            return a <= b;
        case EXPR_GT:
            return a > b;
        case EXPR_GE:
            return a >= b;
        case EXPR_EQ:
            return a == b;
        default:
            return a != b;
        }
    }
    int64_t a = as_i64(x, dt == DT_BOOL ? DT_I32 : dt), b = as_i64(y, dt == DT_BOOL ? DT_I32 : dt);
    switch (k) {
    case EXPR_LT:
        return a < b;
    case EXPR_LE:
        return a <= b;
    case EXPR_GT:
        return a > b;
    case EXPR_GE:
        return a >= b;
    case EXPR_EQ:
        return a == b;
    default:
        return a != b;
    }
}

static Val ev_expr(Ev *ev, const Expr *e)
{
    Val r;
    r.i64 = 0;
    switch (e->kind) {
    case EXPR_INT:
        if (e->dt == DT_I64)
            r.i64 = e->u.i;
        else
            r.i32 = (int32_t)e->u.i;
        return r;
    case EXPR_FLOAT:
        if (e->dt == DT_F32)
            r.f32 = (float)e->u.f;
        else
            r.f64 = e->u.f;
        return r;
    case EXPR_VAR:
        for (int i = ev->nv - 1; i >= 0; i--)
            if (ev->vars[i] == e->u.var) {
                r.i64 = ev->vals[i];
                return r;
            }
        ev_fail(ev, "variable %s is not bound", e->u.var->name);
        return r;
    case EXPR_LOAD: {
        int64_t off = ev_offset(ev, e->u.load.buf, e->u.load.n, e->u.load.idx);
        if (off < 0)
            return r;
        const void *d = ev->data[e->u.load.buf];
        switch (e->dt) {
        case DT_F32:
            r.f32 = ((const float *)d)[off];
            break;
        case DT_F64:
            r.f64 = ((const double *)d)[off];
            break;
        case DT_I32:
            r.i32 = ((const int32_t *)d)[off];
            break;
        default:
            r.i64 = ((const int64_t *)d)[off];
            break;
        }
        return r;
    }
    case EXPR_SELECT:
        return ev_expr(ev, ev_expr(ev, e->u.op.a).i32 ? e->u.op.b : e->u.op.c);
    case EXPR_AND:
        r.i32 = ev_expr(ev, e->u.op.a).i32 && ev_expr(ev, e->u.op.b).i32;
        return r;
    case EXPR_OR:
        r.i32 = ev_expr(ev, e->u.op.a).i32 || ev_expr(ev, e->u.op.b).i32;
        return r;
    case EXPR_NOT:
        r.i32 = !ev_expr(ev, e->u.op.a).i32;
        return r;
    case EXPR_CAST:
        return cast_val(ev_expr(ev, e->u.op.a), e->u.op.a->dt, e->dt);
    default:
        break;
    }
    if (expr_is_compare(e->kind)) {
        r.i32 = compare(e->kind, e->u.op.a->dt, ev_expr(ev, e->u.op.a), ev_expr(ev, e->u.op.b));
        return r;
    }
    if (expr_is_binary(e->kind))
        return arith(e->kind, e->dt, ev_expr(ev, e->u.op.a), ev_expr(ev, e->u.op.b));
    Val x = ev_expr(ev, e->u.op.a);
    if (e->dt == DT_F32) {
        float v = x.f32;
        switch (e->kind) {
        case EXPR_NEG:
            r.f32 = -v;
            break;
        case EXPR_ABS:
            r.f32 = fabsf(v);
            break;
        case EXPR_EXP:
            r.f32 = expf(v);
            break;
        case EXPR_LOG:
            r.f32 = logf(v);
            break;
        case EXPR_SQRT:
            r.f32 = sqrtf(v);
            break;
        case EXPR_TANH:
            r.f32 = tanhf(v);
            break;
        default:
            r.f32 = 1.0f / (1.0f + expf(-v));
            break;
        }
    } else if (e->dt == DT_F64) {
        double v = x.f64;
        switch (e->kind) {
        case EXPR_NEG:
            r.f64 = -v;
            break;
        case EXPR_ABS:
            r.f64 = fabs(v);
            break;
        case EXPR_EXP:
            r.f64 = exp(v);
            break;
        case EXPR_LOG:
            r.f64 = log(v);
            break;
        case EXPR_SQRT:
            r.f64 = sqrt(v);
            break;
        case EXPR_TANH:
            r.f64 = tanh(v);
            break;
        default:
            r.f64 = 1.0 / (1.0 + exp(-v));
            break;
        }
    } else {
        int64_t v = as_i64(x, e->dt);
        if (e->kind == EXPR_NEG || v < 0)
            v = (int64_t)(0 - (uint64_t)v);
        if (e->dt == DT_I64)
            r.i64 = v;
        else
            r.i32 = (int32_t)(uint32_t)(uint64_t)v;
    }
    return r;
}

static size_t buf_bytes(const LBuf *b)
{
    size_t n = (size_t)dtype_size(b->dt);
    for (int i = 0; i < b->ndim; i++)
        n *= (size_t)b->dims[i];
    return n;
}

static void ev_stmt(Ev *ev, const LStmt *s)
{
    if (ev->err[0])
        return;
    switch (s->kind) {
    case LS_FOR:
        if (ev->nv == 512) {
            ev_fail(ev, "loops nested too deeply");
            return;
        }
        ev->vars[ev->nv] = s->u.loop.var;
        for (int64_t i = 0; i < s->u.loop.extent && !ev->err[0]; i++) {
            ev->vals[ev->nv++] = i;
            ev_stmt(ev, s->u.loop.body);
            ev->nv--;
        }
        return;
    case LS_STORE: {
        int64_t off = ev_offset(ev, s->u.store.buf, s->u.store.n, s->u.store.idx);
        Val v = ev_expr(ev, s->u.store.value);
        if (off < 0 || ev->err[0])
            return;
        void *d = ev->data[s->u.store.buf];
        switch (ev->f->bufs[s->u.store.buf].dt) {
        case DT_F32:
            ((float *)d)[off] = v.f32;
            break;
        case DT_F64:
            ((double *)d)[off] = v.f64;
            break;
        case DT_I32:
            ((int32_t *)d)[off] = v.i32;
            break;
        default:
            ((int64_t *)d)[off] = v.i64;
            break;
        }
        return;
    }
    case LS_BLOCK:
        for (int i = 0; i < s->u.block.n; i++)
            ev_stmt(ev, s->u.block.s[i]);
        return;
    case LS_IF:
        if (ev_expr(ev, s->u.cond.cond).i32)
            ev_stmt(ev, s->u.cond.then_s);
        else if (s->u.cond.else_s)
            ev_stmt(ev, s->u.cond.else_s);
        return;
    case LS_ALLOC: {
        int b = s->u.alloc.buf;
        if (ev->data[b]) {
            ev_fail(ev, "%s allocated twice", ev->f->bufs[b].name);
            return;
        }
        size_t n = buf_bytes(&ev->f->bufs[b]);
        ev->data[b] = malloc(n);
        memset(ev->data[b], 0xff, n); /* garbage: NaN / -1 */
        ev_stmt(ev, s->u.alloc.body);
        free(ev->data[b]);
        ev->data[b] = NULL;
        return;
    }
    }
}

/* Does s hold an LS_ALLOC of buf (compute_at allocates in the body)? */
static bool allocates(const LStmt *s, int buf)
{
    if (!s)
        return false;
    switch (s->kind) {
    case LS_FOR:
        return allocates(s->u.loop.body, buf);
    case LS_BLOCK:
        for (int i = 0; i < s->u.block.n; i++)
            if (allocates(s->u.block.s[i], buf))
                return true;
        return false;
    case LS_IF:
        return allocates(s->u.cond.then_s, buf) || allocates(s->u.cond.else_s, buf);
    case LS_ALLOC:
        return s->u.alloc.buf == buf || allocates(s->u.alloc.body, buf);
    default:
        return false;
    }
}

/* Runs f on args (bufs[0..nargs)); temps are allocated here when the IR is
 * not flat yet (before flatten, only computed-at temps have an LS_ALLOC).
 * Returns the error or NULL. */
static const char *run_lfunc(const LFunc *f, void **args, Ev *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->f = f;
    ev->data = calloc((size_t)f->nbufs + 1, sizeof(void *));
    for (int i = 0; i < f->nargs; i++)
        ev->data[i] = args[i];
    if (!f->flat)
        for (int i = f->nargs; i < f->nbufs; i++) {
            if (allocates(f->body, i))
                continue;
            size_t n = buf_bytes(&f->bufs[i]);
            ev->data[i] = malloc(n);
            memset(ev->data[i], 0xff, n);
        }
    ev_stmt(ev, f->body);
    if (!f->flat)
        for (int i = f->nargs; i < f->nbufs; i++)
            free(ev->data[i]);
    free(ev->data);
    return ev->err[0] ? ev->err : NULL;
}

/* ------------------------------------------------------------ driver */
typedef struct {
    Program *p;
    const char *name;
    void **ref;  /* per tensor: inputs and reference outputs */
    void **work; /* per tensor: inputs shared, outputs scratch */
} Case;

static uint64_t data_rng = 7;

static void fill_random(const Tensor *t, void *d)
{
    int64_t n = tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = ir_rand(&data_rng) >> 11;
        double u = (double)(r % 1000000) / 1000000.0; /* [0, 1) */
        switch (t->dt) {
        case DT_F32:
            ((float *)d)[i] = (float)(u * 2.0 - 0.9);
            break;
        case DT_F64:
            ((double *)d)[i] = u * 2.0 - 0.9;
            break;
        case DT_I32:
            ((int32_t *)d)[i] = (int32_t)(r % 11) - 5;
            break;
        default:
            ((int64_t *)d)[i] = (int64_t)(r % 21) - 10;
            break;
        }
    }
}

static bool setup(Case *c, Program *p, const char *name)
{
    c->p = p;
    c->name = name;
    c->ref = calloc((size_t)p->ntensors, sizeof(void *));
    c->work = calloc((size_t)p->ntensors, sizeof(void *));
    for (int i = 0; i < p->ninputs + p->noutputs; i++) {
        const Tensor *t = &p->tensors[i];
        size_t n = (size_t)tensor_numel(t) * (size_t)dtype_size(t->dt);
        c->ref[i] = calloc(1, n);
        if (t->kind == T_INPUT) {
            fill_random(t, c->ref[i]);
            c->work[i] = c->ref[i];
        } else {
            c->work[i] = malloc(n);
        }
    }
    kiln_error e;
    kiln_error_clear(&e);
    int rc = ir_interpret(p, c->ref, &e);
    CHECKF(rc == KILN_OK, "%s: interpreter failed: %s", name, e.msg);
    return rc == KILN_OK;
}

static void teardown(Case *c)
{
    for (int i = 0; i < c->p->ninputs + c->p->noutputs; i++) {
        if (c->work[i] != c->ref[i])
            free(c->work[i]);
        free(c->ref[i]);
    }
    free(c->ref);
    free(c->work);
    ir_program_free(c->p);
}

/* Compares the outputs in c->work with the reference; "" when equal. */
static bool outputs_match(const Case *c, char *why, size_t n)
{
    const Program *p = c->p;
    for (int t = p->ninputs; t < p->ninputs + p->noutputs; t++) {
        const Tensor *T = &p->tensors[t];
        int64_t numel = tensor_numel(T);
        for (int64_t i = 0; i < numel; i++) {
            double a, b;
            bool ok;
            switch (T->dt) {
            case DT_F32:
                a = ((float *)c->work[t])[i];
                b = ((float *)c->ref[t])[i];
                ok = fabs(a - b) <= 1e-4 * (1 + fabs(b)) || (isnan(a) && isnan(b));
                break;
            case DT_F64:
                a = ((double *)c->work[t])[i];
                b = ((double *)c->ref[t])[i];
                ok = fabs(a - b) <= 1e-10 * (1 + fabs(b)) || (isnan(a) && isnan(b));
                break;
            case DT_I32:
                a = ((int32_t *)c->work[t])[i];
                b = ((int32_t *)c->ref[t])[i];
                ok = a == b;
                break;
            default:
                a = (double)((int64_t *)c->work[t])[i];
                b = (double)((int64_t *)c->ref[t])[i];
                ok = ((int64_t *)c->work[t])[i] == ((int64_t *)c->ref[t])[i];
                break;
            }
            if (!ok) {
                snprintf(why, n, "%s[%lld] = %.9g, expected %.9g", T->name, (long long)i, a, b);
                return false;
            }
        }
    }
    return true;
}

static int nscheds, nruns, nskipped;

/* Statements executed (an upper bound: every guard taken). */
static double cost(const LStmt *s)
{
    switch (s->kind) {
    case LS_FOR:
        return (double)s->u.loop.extent * cost(s->u.loop.body);
    case LS_IF:
        return 1 + cost(s->u.cond.then_s) + (s->u.cond.else_s ? cost(s->u.cond.else_s) : 0);
    case LS_BLOCK: {
        double c = 0;
        for (int i = 0; i < s->u.block.n; i++)
            c += cost(s->u.block.s[i]);
        return c;
    }
    case LS_ALLOC:
        return cost(s->u.alloc.body);
    default:
        return 1;
    }
}

/* Lowers s to each checked pass, runs it and compares. */
static void check_schedule(Case *c, const Schedule *s, const char *what)
{
    static const char *const stops[] = {"init", "guards", "simplify", "flatten"};
    nscheds++;
    for (int k = 0; k < 4; k++) {
        Arena *a = arena_new();
        LFunc *f = NULL;
        kiln_error e;
        kiln_error_clear(&e);
        int rc = lower_schedule(s, a, stops[k], &f, &e);
        char *st = NULL;
        if (rc) {
            st = sched_to_text(s);
            CHECKF(0, "%s %s: lowering to %s failed: %s\n%s", c->name, what, stops[k], e.msg, st);
            free(st);
            arena_free(a);
            return;
        }
        const Program *p = c->p;
        for (int t = p->ninputs; t < p->ninputs + p->noutputs; t++)
            memset(c->work[t], 0xff,
                   (size_t)tensor_numel(&p->tensors[t]) * (size_t)dtype_size(p->tensors[t].dt));
        /* Before simplify, loops split by factors far above their extent
         * (hand schedules for big sizes on shrunk ones) are still long. */
        if (k < 2 && cost(f->body) > 2e6) {
            nskipped++;
            arena_free(a);
            continue;
        }
        Ev ev;
        const char *err = run_lfunc(f, c->work, &ev);
        char why[256] = "";
        bool ok = !err && outputs_match(c, why, sizeof why);
        nruns++;
        if (!ok) {
            st = sched_to_text(s);
            char *code = lfunc_to_text(f);
            CHECKF(0, "%s %s after %s: %s\nschedule:\n%s%s", c->name, what, stops[k],
                   err ? err : why, st, code);
            free(code);
            free(st);
            arena_free(a);
            return;
        }
        arena_free(a);
    }
}

/* Examples with small sizes (their hand schedules still apply: large
 * factors on small loops are legal). */
static const struct {
    const char *name, *params;
} EXAMPLES[] = {
    {"matmul", "params: {M: 10, N: 33, K: 7}"},
    {"matmul_bias_relu", "params: {M: 9, N: 20, K: 6}"},
    {"batch_matmul", "params: {H: 2, M: 9, N: 20, K: 5}"},
    {"conv2d", "params: {N: 1, C: 3, K: 5, H: 6, W: 9}"},
    {"depthwise_conv", "params: {N: 2, C: 3, H: 7, W: 18}"},
    {"blur", "params: {H: 10, W: 19, OH: 8, OW: 17}"},
    {"softmax", "params: {M: 6, N: 21}"},
    {"layernorm", "params: {M: 5, N: 19}"},
    {"transpose", "params: {M: 13, N: 18}"},
};

static const char *EXTRA[] = {
    "name: reds\n"
    "inputs:\n"
    "  A: [i32, 7, 5]\n"
    "  B: [i64, 6, 4, 3]\n"
    "outputs:\n"
    "  MX: [i32, 7]\n"
    "  MN: [i64, 6]\n"
    "  P: [i32, 5]\n"
    "  Z: [i32, 7, 5]\n"
    "compute:\n"
    "  - MX[i] max= A[i, k]\n"
    "  - MN[b] min= B[b, h, w] * 2 - 1\n"
    "  - P[k] *= A[i, k] % 3 + 1\n"
    "  - Z[i, j] += A[i, j] / 2\n",

    "name: misc\n"
    "params: {N: 23}\n"
    "inputs:\n"
    "  x: [f64, N]\n"
    "  y: [f64, N]\n"
    "  I: [f32, 20]\n"
    "  W: [f32, 3]\n"
    "outputs:\n"
    "  dot: [f64]\n"
    "  O: [f32, 18]\n"
    "  pad: [f32, 20]\n"
    "  c: [i64, N]\n"
    "compute:\n"
    "  - dot[] += x[i] * y[i]\n"
    "  - {stmt: \"O[t] += I[t + r] * W[r]\", ranges: {r: 3}}\n"
    "  - pad[i] = select(i > 0 && i < 19, I[i - 1] + I[i + 1], I[i]) * 0.5\n"
    "  - c[i] = i64(x[i] * 10.0) / 3 + i % 4\n",

    "name: chain\n"
    "inputs:\n"
    "  A: [f64, 9, 14]\n"
    "  v: [f64, 14]\n"
    "outputs:\n"
    "  O: [f64, 9, 14]\n"
    "  S: [f64, 9]\n"
    "temps:\n"
    "  T1: [f64, 9, 14]\n"
    "  T2: [f64, 14, 9]\n"
    "  T3: [f64, 9]\n"
    "compute:\n"
    "  - T1[i, j] = A[i, j] * 2.0 + v[j]\n"
    "  - T2[j, i] = exp(T1[i, j] * 0.1) - T1[i, j]\n"
    "  - T3[i] += T2[j, i] * T1[i, j]\n"
    "  - O[i, j] = sqrt(abs(T2[j, i])) + T3[i]\n"
    "  - S[i] max= tanh(O[i, j]) + sigmoid(T1[i, j])\n",

    "name: big3\n"
    "inputs:\n"
    "  A: [f32, 3, 17, 40]\n"
    "outputs:\n"
    "  B: [f32, 40, 3, 17]\n"
    "  R: [f32, 17]\n"
    "compute:\n"
    "  - B[k, i, j] = A[i, j, k] * 3.0 - 1.0\n"
    "  - R[j] += A[i, j, k] * A[i, j, k]\n",
};

static Program *parse_text(const char *yaml, const char *file)
{
    Program *p = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    int rc = ir_parse_yaml_string(yaml, strlen(yaml), file, &p, &e);
    CHECKF(rc == KILN_OK, "%s:%d:%d: %s", file, e.line, e.col, e.msg);
    return rc ? NULL : p;
}

/* Reads examples/NAME.yaml with its params line replaced. */
static Program *load_example(const char *root, const char *name, const char *params)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/examples/%s.yaml", root, name);
    char *text = t_read_file(path);
    CHECKF(text != NULL, "cannot read %s", path);
    if (!text)
        return NULL;
    char *line = strstr(text, "\nparams:");
    CHECKF(line != NULL, "%s has no params line", path);
    Program *p = NULL;
    if (line) {
        line++;
        char *end = strchr(line, '\n');
        size_t n = strlen(text) + strlen(params) + 2;
        char *out = malloc(n);
        snprintf(out, n, "%.*s%s%s", (int)(line - text), text, params, end ? end : "");
        p = parse_text(out, path);
        free(out);
    }
    free(text);
    return p;
}

static void run_case(Case *c, const char *sched_text, int nrandom, uint64_t *rng)
{
    if (sched_text) {
        Schedule *s = sched_new(c->p);
        kiln_error e;
        kiln_error_clear(&e);
        int rc = sched_apply_text(s, sched_text, c->name, &e);
        CHECKF(rc == KILN_OK, "%s: hand schedule: %d:%d: %s", c->name, e.line, e.col, e.msg);
        if (!rc)
            check_schedule(c, s, "hand schedule");
        sched_free(s);
    }
    Schedule *s = sched_new(c->p);
    check_schedule(c, s, "identity schedule");
    sched_free(s);
    s = sched_default(c->p);
    check_schedule(c, s, "default schedule");
    sched_free(s);
    for (int i = 0; i < nrandom; i++) {
        s = sched_random(c->p, rng);
        char what[64];
        snprintf(what, sizeof what, "random schedule %d", i);
        check_schedule(c, s, what);
        sched_free(s);
    }
}

/* ------------------------------------------------- simplifier fuzz */
/* Random integer expressions and guards over three loop vars, run before
 * and after the simplify pass: every folding, division rule, decided
 * comparison and shortened loop must keep the results. */
static int64_t rnd(uint64_t *r, int64_t n)
{
    return (int64_t)((ir_rand(r) >> 11) % (uint64_t)n);
}

static Expr *gen_int(Arena *a, uint64_t *r, Var **v, int nv, int depth);

static Expr *gen_cond(Arena *a, uint64_t *r, Var **v, int nv, int depth)
{
    int64_t k = depth <= 0 ? 0 : rnd(r, 8);
    if (k == 6)
        return expr_bin(a, rnd(r, 2) ? EXPR_AND : EXPR_OR, DT_BOOL,
                        gen_cond(a, r, v, nv, depth - 1), gen_cond(a, r, v, nv, depth - 1));
    if (k == 7)
        return expr_un(a, EXPR_NOT, DT_BOOL, gen_cond(a, r, v, nv, depth - 1));
    if (k == 5 || depth <= 0) {
        /* a guard as lowering makes them: sum of c*v + c0 < n */
        Expr *sum = expr_iconst(a, rnd(r, 7) - 3);
        for (int i = 0; i < nv; i++)
            sum = expr_bin(
                a, EXPR_ADD, DT_I64, sum,
                expr_bin(a, EXPR_MUL, DT_I64, expr_var(a, v[i]), expr_iconst(a, rnd(r, 6))));
        return expr_bin(a, EXPR_LT, DT_BOOL, sum, expr_iconst(a, rnd(r, 30)));
    }
    static const ExprKind cmps[] = {EXPR_LT, EXPR_LE, EXPR_GT, EXPR_GE, EXPR_EQ, EXPR_NE};
    return expr_bin(a, cmps[rnd(r, 6)], DT_BOOL, gen_int(a, r, v, nv, depth - 1),
                    gen_int(a, r, v, nv, depth - 1));
}

static Expr *gen_int(Arena *a, uint64_t *r, Var **v, int nv, int depth)
{
    int64_t k = depth <= 0 ? rnd(r, 3) : rnd(r, 15);
    Expr *x = k >= 3 ? gen_int(a, r, v, nv, depth - 1) : NULL;
    static const int64_t divisors[] = {1, 2, 3, 4, 5, 8, 16, -1, -3, 0};
    switch (k) {
    case 0:
    case 1:
        return expr_var(a, v[rnd(r, nv)]);
    case 2:
        return expr_iconst(a, rnd(r, 21) - 10);
    case 3:
        return expr_bin(a, EXPR_ADD, DT_I64, x, gen_int(a, r, v, nv, depth - 1));
    case 4:
        return expr_bin(a, EXPR_SUB, DT_I64, x, gen_int(a, r, v, nv, depth - 1));
    case 5:
        return expr_bin(a, EXPR_MUL, DT_I64, x, expr_iconst(a, rnd(r, 9) - 2));
    case 6:
        return expr_bin(a, EXPR_MUL, DT_I64, x, gen_int(a, r, v, nv, depth - 1));
    case 7:
    case 8:
        return expr_bin(a, EXPR_DIV, DT_I64, x, expr_iconst(a, divisors[rnd(r, 10)]));
    case 9:
    case 10:
        return expr_bin(a, EXPR_MOD, DT_I64, x, expr_iconst(a, divisors[rnd(r, 10)]));
    case 11:
        return expr_bin(a, rnd(r, 2) ? EXPR_MIN : EXPR_MAX, DT_I64, x,
                        gen_int(a, r, v, nv, depth - 1));
    case 12:
        return expr_select(a, DT_I64, gen_cond(a, r, v, nv, depth - 1), x,
                           gen_int(a, r, v, nv, depth - 1));
    case 13:
        return expr_un(a, EXPR_NEG, DT_I64, x);
    default:
        return expr_bin(a, EXPR_DIV, DT_I64, x, gen_int(a, r, v, nv, depth - 1));
    }
}

static void fuzz_simplify(void)
{
    uint64_t r = 4242;
    int bad = 0, shortened = 0, dropped = 0;
    for (int iter = 0; iter < 3000 && bad < 5; iter++) {
        Arena *a = arena_new();
        int nv = 1 + (int)rnd(&r, 3);
        Var *v[3];
        int64_t ext[3], n = 1;
        for (int i = 0; i < nv; i++) {
            ext[i] = 1 + rnd(&r, 6);
            v[i] = ir_var_new(a, (const char *[]){"x", "y", "z"}[i], ext[i]);
            n *= ext[i];
        }
        /* O[flat(vars)] = e, under random guards at random depths */
        Expr *flat = expr_iconst(a, 0);
        for (int i = 0; i < nv; i++)
            flat = expr_bin(a, EXPR_ADD, DT_I64,
                            expr_bin(a, EXPR_MUL, DT_I64, flat, expr_iconst(a, ext[i])),
                            expr_var(a, v[i]));
        LStmt *body = ls_store(a, 0, 1, &flat, gen_int(a, &r, v, nv, 4));
        if (rnd(&r, 3) == 0)
            body = ls_if(a, gen_cond(a, &r, v, nv, 2), body,
                         ls_store(a, 0, 1, &flat, gen_int(a, &r, v, nv, 3)));
        for (int i = nv - 1; i >= 0; i--) {
            if (rnd(&r, 2))
                body = ls_if(a, gen_cond(a, &r, v, i + 1, rnd(&r, 2) ? 0 : 2), body, NULL);
            body = ls_for(a, v[i], ext[i], rnd(&r, 4) == 0 ? LOOP_UNROLLED : LOOP_SERIAL, body);
        }
        LBuf O = {"O", DT_I64, T_OUTPUT, 1, {n}};
        LFunc f = {"fuzz", &O, 1, 1, body, false}, *g = NULL;
        LowerCtx cx = {NULL, NULL, a, NULL};
        kiln_error e;
        kiln_error_clear(&e);
        cx.e = &e;
        CHECKF(lower_verify(&f, &e) == KILN_OK, "fuzz input invalid: %s", e.msg);
        CHECKF(lower_simplify(&cx, &f, &g) == KILN_OK && lower_verify(g, &e) == KILN_OK,
               "simplify: %s", e.msg);
        int64_t before[216], after[216];
        for (int i = 0; i < n; i++)
            before[i] = after[i] = -777;
        Ev ev;
        void *arg[1] = {before};
        const char *err1 = run_lfunc(&f, arg, &ev);
        arg[0] = after;
        const char *err2 = g ? run_lfunc(g, arg, &ev) : "no output";
        bool same = !err1 && !err2 && !memcmp(before, after, sizeof(int64_t) * (size_t)n);
        if (!same) {
            bad++;
            char *t1 = lfunc_to_text(&f), *t2 = g ? lfunc_to_text(g) : NULL;
            CHECKF(0, "simplify changed the result (%s):\n%s---\n%s",
                   err1   ? err1
                   : err2 ? err2
                          : "",
                   t1, t2 ? t2 : "");
            free(t1);
            free(t2);
        } else {
            char *t1 = lfunc_to_text(&f), *t2 = lfunc_to_text(g);
            shortened += strstr(t1, "in 0..") && strcmp(t1, t2) && strlen(t2) < strlen(t1);
            dropped += !strstr(t2, "if ") && strstr(t1, "if ");
            free(t1);
            free(t2);
        }
        arena_free(a);
    }
    CHECKF(shortened > 100 && dropped > 50, "shortened %d dropped %d", shortened, dropped);

    /* directed: a remainder whose range lies in one window other than
     * [0, d): (-max(x, 3)) % 8 is 8 - max(x, 3), and / 8 is -1 */
    for (int kind = 0; kind < 2; kind++) {
        Arena *a = arena_new();
        Var *x = ir_var_new(a, "x", 6);
        Expr *m = expr_un(a, EXPR_NEG, DT_I64,
                          expr_bin(a, EXPR_MAX, DT_I64, expr_var(a, x), expr_iconst(a, 3)));
        Expr *val = expr_bin(a, kind ? EXPR_DIV : EXPR_MOD, DT_I64, m, expr_iconst(a, 8));
        Expr *ix = expr_var(a, x);
        LBuf O = {"O", DT_I64, T_OUTPUT, 1, {6}};
        LFunc f = {"directed", &O, 1, 1, ls_for(a, x, 6, LOOP_SERIAL, ls_store(a, 0, 1, &ix, val)),
                   false},
              *g = NULL;
        LowerCtx cx = {NULL, NULL, a, NULL};
        CHECK(lower_simplify(&cx, &f, &g) == KILN_OK);
        int64_t before[6], after[6];
        void *arg[1] = {before};
        Ev ev;
        CHECK(run_lfunc(&f, arg, &ev) == NULL);
        arg[0] = after;
        CHECK(run_lfunc(g, arg, &ev) == NULL);
        CHECK(!memcmp(before, after, sizeof before));
        char *t = lfunc_to_text(g);
        CHECKF(!strchr(t, '%') && !strchr(t, '/'), "%s", t);
        free(t);
        arena_free(a);
    }
}

int main(int argc, char **argv)
{
    fuzz_simplify();
    const char *root = argc > 1 ? argv[1] : ".";
    uint64_t rng = 20240611;
    int nex = (int)(sizeof EXAMPLES / sizeof *EXAMPLES);
    for (int i = 0; i < nex; i++) {
        Program *p = load_example(root, EXAMPLES[i].name, EXAMPLES[i].params);
        if (!p)
            continue;
        Case c;
        if (setup(&c, p, EXAMPLES[i].name)) {
            char path[1024];
            snprintf(path, sizeof path, "%s/examples/%s.sched", root, EXAMPLES[i].name);
            char *st = t_read_file(path);
            run_case(&c, st, 24, &rng);
            free(st);
        }
        teardown(&c);
    }
    for (int i = 0; i < (int)(sizeof EXTRA / sizeof *EXTRA); i++) {
        Program *p = parse_text(EXTRA[i], "extra.yaml");
        if (!p)
            continue;
        Case c;
        if (setup(&c, p, p->name))
            run_case(&c, NULL, 30, &rng);
        teardown(&c);
    }
    printf("test_lower_eval: %d schedules, %d lowered functions run, %d skipped (too long)\n",
           nscheds, nruns, nskipped);
    CHECK(nscheds >= 330);
    return t_done("test_lower_eval");
}
