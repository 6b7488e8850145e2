/* ir/interp.c: the reference interpreter, kiln's oracle.
 *
 * Statements run in program order over their full iteration space (left-
 * hand variables outer, reduction variables inner, each in order); a
 * reduction starts from its identity and combines in loop order, in the
 * tensor's dtype (f32 arithmetic in float).  Semantics shared with codegen:
 * integer ops wrap, `/` and `%` floor (by zero: 0), float->int casts
 * saturate (NaN: 0), select is lazy, float min(a, b) is a < b ? a : b
 * and max(a, b) is a > b ? a : b (what one vminps/vmaxps computes; codegen
 * emits the same compare+select).
 *
 * Each statement's Expr tree is first flattened into a node array (var
 * slots and strides resolved), so the inner loop allocates nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

typedef union {
    float f32;
    double f64;
    int32_t i32; /* also bool: 0 or 1 */
    int64_t i64;
} Val;

typedef struct {
    int slot; /* >= 0: the index is this variable */
    int node; /* else: evaluate this node */
    int64_t stride;
} IdxRef;

typedef struct {
    ExprKind op;
    DType dt;  /* result */
    DType sdt; /* operand type (casts, comparisons) */
    int a, b, c;
    Val k;            /* constants */
    int slot;         /* variables */
    const void *data; /* loads */
    int nidx, ix;
} Node;

typedef struct {
    Node *nodes;
    IdxRef *refs;
    int nnodes, nrefs;
    int64_t vals[64]; /* current value of each statement variable */
} Interp;

/* ------------------------------------------------------------ compile */
static void count(const Expr *e, int *nodes, int *refs)
{
    (*nodes)++;
    if (e->kind == EXPR_LOAD) {
        *refs += e->u.load.n;
        for (int i = 0; i < e->u.load.n; i++)
            if (e->u.load.idx[i]->kind != EXPR_VAR)
                count(e->u.load.idx[i], nodes, refs);
        return;
    }
    if (e->kind == EXPR_INT || e->kind == EXPR_FLOAT || e->kind == EXPR_VAR)
        return;
    if (e->u.op.a)
        count(e->u.op.a, nodes, refs);
    if (e->u.op.b)
        count(e->u.op.b, nodes, refs);
    if (e->u.op.c)
        count(e->u.op.c, nodes, refs);
}

static int slot_of(const Stmt *s, const Var *v)
{
    for (int i = 0; i < s->nvars; i++)
        if (s->vars[i] == v)
            return i;
    IR_ASSERT(!"variable not of this statement");
    return 0;
}

static int compile(Interp *in, const Program *p, const Stmt *s, void *const *data, const Expr *e)
{
    int id = in->nnodes++;
    Node *n = &in->nodes[id];
    n->op = e->kind;
    n->dt = e->dt;
    n->a = n->b = n->c = -1;
    switch (e->kind) {
    case EXPR_INT:
        if (e->dt == DT_I32)
            n->k.i32 = (int32_t)e->u.i;
        else
            n->k.i64 = e->u.i;
        break;
    case EXPR_FLOAT:
        if (e->dt == DT_F32)
            n->k.f32 = (float)e->u.f;
        else
            n->k.f64 = e->u.f;
        break;
    case EXPR_VAR:
        n->slot = slot_of(s, e->u.var);
        break;
    case EXPR_LOAD: {
        const Tensor *t = &p->tensors[e->u.load.buf];
        n->data = data[e->u.load.buf];
        n->nidx = e->u.load.n;
        n->ix = in->nrefs;
        in->nrefs += e->u.load.n;
        int64_t stride = 1;
        for (int d = e->u.load.n - 1; d >= 0; d--) {
            IdxRef *r = &in->refs[n->ix + d];
            const Expr *ix = e->u.load.idx[d];
            r->stride = stride;
            stride *= t->dims[d];
            if (ix->kind == EXPR_VAR) {
                r->slot = slot_of(s, ix->u.var);
            } else {
                r->slot = -1;
                r->node = compile(in, p, s, data, ix);
                n = &in->nodes[id];
            }
        }
        break;
    }
    default:
        n->sdt = e->u.op.a->dt;
        /* children are compiled after n, so re-fetch n (no realloc here,
         * but keep the pattern obvious) */
        {
            int a = compile(in, p, s, data, e->u.op.a);
            int b = e->u.op.b ? compile(in, p, s, data, e->u.op.b) : -1;
            int c = e->u.op.c ? compile(in, p, s, data, e->u.op.c) : -1;
            n = &in->nodes[id];
            n->a = a;
            n->b = b;
            n->c = c;
        }
        break;
    }
    return id;
}

/* ------------------------------------------------------- integer ops */
static int64_t fdiv64(int64_t x, int64_t d)
{
    if (d == 0)
        return 0;
    if (d == -1)
        return (int64_t)(0 - (uint64_t)x); /* INT64_MIN / -1 wraps */
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

static int64_t sat_i64(double x)
{
    if (isnan(x))
        return 0;
    if (x >= 9223372036854775808.0)
        return INT64_MAX;
    if (x < -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)x;
}

static int32_t sat_i32(double x)
{
    if (isnan(x))
        return 0;
    if (x >= 2147483648.0)
        return INT32_MAX;
    if (x <= -2147483649.0)
        return INT32_MIN;
    return (int32_t)x;
}

#define WRAP32(expr) ((int32_t)(uint32_t)(expr))
#define WRAP64(expr) ((int64_t)(uint64_t)(expr))

/* ---------------------------------------------------------------- eval */
static Val ev(Interp *in, int id);

static Val cast(Val x, DType from, DType to)
{
    Val r;
    double d;
    switch (from) {
    case DT_F32:
        d = x.f32;
        break;
    case DT_F64:
        d = x.f64;
        break;
    case DT_I32:
        switch (to) {
        case DT_F32:
            r.f32 = (float)x.i32;
            return r;
        case DT_F64:
            r.f64 = (double)x.i32;
            return r;
        case DT_I64:
            r.i64 = x.i32;
            return r;
        default:
            return x;
        }
    default: /* i64 */
        switch (to) {
        case DT_F32:
            r.f32 = (float)x.i64;
            return r;
        case DT_F64:
            r.f64 = (double)x.i64;
            return r;
        case DT_I32:
            r.i32 = (int32_t)x.i64;
            return r;
        default:
            return x;
        }
    }
    switch (to) {
    case DT_F32:
        r.f32 = (float)d;
        break;
    case DT_F64:
        r.f64 = d;
        break;
    case DT_I32:
        r.i32 = sat_i32(d);
        break;
    default:
        r.i64 = sat_i64(d);
        break;
    }
    return r;
}

static Val load(Interp *in, const Node *n)
{
    int64_t off = 0;
    const IdxRef *r = &in->refs[n->ix];
    for (int i = 0; i < n->nidx; i++) {
        int64_t v = r[i].slot >= 0 ? in->vals[r[i].slot] : ev(in, r[i].node).i64;
        off += v * r[i].stride;
    }
    Val x;
    switch (n->dt) {
    case DT_F32:
        x.f32 = ((const float *)n->data)[off];
        break;
    case DT_F64:
        x.f64 = ((const double *)n->data)[off];
        break;
    case DT_I32:
        x.i32 = ((const int32_t *)n->data)[off];
        break;
    default:
        x.i64 = ((const int64_t *)n->data)[off];
        break;
    }
    return x;
}

static Val arith(ExprKind op, DType dt, Val x, Val y)
{
    Val r;
    switch (dt) {
    case DT_F32:
        switch (op) {
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
            r.f32 = x.f32 < y.f32 ? x.f32 : y.f32;
            break;
        default:
            r.f32 = x.f32 > y.f32 ? x.f32 : y.f32;
            break;
        }
        return r;
    case DT_F64:
        switch (op) {
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
            r.f64 = x.f64 < y.f64 ? x.f64 : y.f64;
            break;
        default:
            r.f64 = x.f64 > y.f64 ? x.f64 : y.f64;
            break;
        }
        return r;
    case DT_I32:
        switch (op) {
        case EXPR_ADD:
            r.i32 = WRAP32((uint32_t)x.i32 + (uint32_t)y.i32);
            break;
        case EXPR_SUB:
            r.i32 = WRAP32((uint32_t)x.i32 - (uint32_t)y.i32);
            break;
        case EXPR_MUL:
            r.i32 = WRAP32((uint32_t)x.i32 * (uint32_t)y.i32);
            break;
        case EXPR_DIV:
            r.i32 = (int32_t)fdiv64(x.i32, y.i32);
            break;
        case EXPR_MOD:
            r.i32 = (int32_t)fmod64(x.i32, y.i32);
            break;
        case EXPR_MIN:
            r.i32 = x.i32 < y.i32 ? x.i32 : y.i32;
            break;
        default:
            r.i32 = x.i32 > y.i32 ? x.i32 : y.i32;
            break;
        }
        return r;
    default:
        switch (op) {
        case EXPR_ADD:
            r.i64 = WRAP64((uint64_t)x.i64 + (uint64_t)y.i64);
            break;
        case EXPR_SUB:
            r.i64 = WRAP64((uint64_t)x.i64 - (uint64_t)y.i64);
            break;
        case EXPR_MUL:
            r.i64 = WRAP64((uint64_t)x.i64 * (uint64_t)y.i64);
            break;
        case EXPR_DIV:
            r.i64 = fdiv64(x.i64, y.i64);
            break;
        case EXPR_MOD:
            r.i64 = fmod64(x.i64, y.i64);
            break;
        case EXPR_MIN:
            r.i64 = x.i64 < y.i64 ? x.i64 : y.i64;
            break;
        default:
            r.i64 = x.i64 > y.i64 ? x.i64 : y.i64;
            break;
        }
        return r;
    }
}

static int cmp(ExprKind op, DType dt, Val x, Val y)
{
    double a, b;
    switch (dt) {
    case DT_F32:
        a = x.f32;
        b = y.f32;
        break;
    case DT_F64:
        a = x.f64;
        b = y.f64;
        break;
    case DT_I64:
        switch (op) {
        case EXPR_LT:
            return x.i64 < y.i64;
        case EXPR_LE:
            return x.i64 <= y.i64;
        case EXPR_GT:
            return x.i64 > y.i64;
        case EXPR_GE:
            return x.i64 >= y.i64;
        case EXPR_EQ:
            return x.i64 == y.i64;
        default:
            return x.i64 != y.i64;
        }
    default: /* i32, bool */
        switch (op) {
        case EXPR_LT:
            return x.i32 < y.i32;
        case EXPR_LE:
            return x.i32 <= y.i32;
        case EXPR_GT:
            return x.i32 > y.i32;
        case EXPR_GE:
            return x.i32 >= y.i32;
        case EXPR_EQ:
            return x.i32 == y.i32;
        default:
            return x.i32 != y.i32;
        }
    }
    /* floats: ordered comparisons, except != which is true for NaN (as in C) */
    switch (op) {
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

static Val unary(ExprKind op, DType dt, Val x)
{
    Val r;
    if (dt == DT_F32) {
        float v = x.f32;
        switch (op) {
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
    } else if (dt == DT_F64) {
        double v = x.f64;
        switch (op) {
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
    } else if (dt == DT_I32) {
        uint32_t n = 0 - (uint32_t)x.i32;
        r.i32 = op == EXPR_NEG || x.i32 < 0 ? WRAP32(n) : x.i32;
    } else {
        uint64_t n = 0 - (uint64_t)x.i64;
        r.i64 = op == EXPR_NEG || x.i64 < 0 ? WRAP64(n) : x.i64;
    }
    return r;
}

static Val ev(Interp *in, int id)
{
    const Node *n = &in->nodes[id];
    Val r;
    switch (n->op) {
    case EXPR_INT:
    case EXPR_FLOAT:
        return n->k;
    case EXPR_VAR:
        r.i64 = in->vals[n->slot];
        return r;
    case EXPR_LOAD:
        return load(in, n);
    case EXPR_ADD:
    case EXPR_SUB:
    case EXPR_MUL:
    case EXPR_DIV:
    case EXPR_MOD:
    case EXPR_MIN:
    case EXPR_MAX: {
        Val x = ev(in, n->a), y = ev(in, n->b);
        return arith(n->op, n->dt, x, y);
    }
    case EXPR_LT:
    case EXPR_LE:
    case EXPR_GT:
    case EXPR_GE:
    case EXPR_EQ:
    case EXPR_NE: {
        Val x = ev(in, n->a), y = ev(in, n->b);
        r.i32 = cmp(n->op, n->sdt, x, y);
        return r;
    }
    case EXPR_AND:
        r.i32 = ev(in, n->a).i32 && ev(in, n->b).i32;
        return r;
    case EXPR_OR:
        r.i32 = ev(in, n->a).i32 || ev(in, n->b).i32;
        return r;
    case EXPR_NOT:
        r.i32 = !ev(in, n->a).i32;
        return r;
    case EXPR_CAST:
        return cast(ev(in, n->a), n->sdt, n->dt);
    case EXPR_SELECT:
        return ev(in, ev(in, n->a).i32 ? n->b : n->c);
    default:
        return unary(n->op, n->dt, ev(in, n->a));
    }
}

/* ---------------------------------------------------------- reductions */
static Val identity(RedOp red, DType dt)
{
    Val r;
    r.i64 = 0;
    switch (dt) {
    case DT_F32:
        r.f32 = red == RED_PROD  ? 1.0f
                : red == RED_MAX ? -INFINITY
                : red == RED_MIN ? INFINITY
                                 : 0.0f;
        break;
    case DT_F64:
        r.f64 = red == RED_PROD  ? 1.0
                : red == RED_MAX ? -INFINITY
                : red == RED_MIN ? INFINITY
                                 : 0.0;
        break;
    case DT_I32:
        r.i32 = red == RED_PROD ? 1 : red == RED_MAX ? INT32_MIN : red == RED_MIN ? INT32_MAX : 0;
        break;
    default:
        r.i64 = red == RED_PROD ? 1 : red == RED_MAX ? INT64_MIN : red == RED_MIN ? INT64_MAX : 0;
        break;
    }
    return r;
}

static Val combine(RedOp red, DType dt, Val acc, Val x)
{
    static const ExprKind ops[] = {EXPR_ADD, EXPR_ADD, EXPR_MUL, EXPR_MAX, EXPR_MIN};
    return arith(ops[red], dt, acc, x);
}

static void store(void *data, DType dt, int64_t off, Val v)
{
    switch (dt) {
    case DT_F32:
        ((float *)data)[off] = v.f32;
        break;
    case DT_F64:
        ((double *)data)[off] = v.f64;
        break;
    case DT_I32:
        ((int32_t *)data)[off] = v.i32;
        break;
    default:
        ((int64_t *)data)[off] = v.i64;
        break;
    }
}

static int run_stmt(const Program *p, const Stmt *s, void *const *data, kiln_error *e)
{
    Interp in = {0};
    int nn = 0, nr = 0;
    count(s->rhs, &nn, &nr);
    in.nodes = calloc((size_t)nn, sizeof(Node));
    in.refs = calloc((size_t)(nr ? nr : 1), sizeof(IdxRef));
    if (!in.nodes || !in.refs) {
        free(in.nodes);
        free(in.refs);
        return ir_error(e, KILN_ENOMEM, p->file, s->loc, "out of memory in the interpreter");
    }
    int root = compile(&in, p, s, data, s->rhs);
    IR_ASSERT(in.nnodes == nn && in.nrefs == nr && s->nvars <= 64);

    const Tensor *t = &p->tensors[s->out];
    void *out = data[s->out];
    int64_t numel = tensor_numel(t);
    int ns = s->nspatial, nv = s->nvars;
    Val id = identity(s->red, t->dt);
    memset(in.vals, 0, sizeof in.vals);
    for (int64_t o = 0; o < numel; o++) {
        Val acc;
        if (s->red == RED_NONE) {
            acc = ev(&in, root);
        } else {
            acc = id;
            for (int v = ns; v < nv; v++)
                in.vals[v] = 0;
            for (;;) {
                acc = combine(s->red, t->dt, acc, ev(&in, root));
                int v = nv - 1;
                while (v >= ns && ++in.vals[v] == s->vars[v]->extent)
                    in.vals[v--] = 0;
                if (v < ns)
                    break;
            }
        }
        store(out, t->dt, o, acc);
        /* the left-hand variables walk the output in row-major order */
        for (int v = ns - 1; v >= 0 && ++in.vals[v] == s->vars[v]->extent; v--)
            in.vals[v] = 0;
    }
    free(in.nodes);
    free(in.refs);
    return KILN_OK;
}

int ir_interpret(const Program *p, void *const *bufs, kiln_error *e)
{
    void **data = calloc((size_t)(p->ntensors ? p->ntensors : 1), sizeof(void *));
    bool *owned = calloc((size_t)(p->ntensors ? p->ntensors : 1), sizeof(bool));
    int rc = KILN_OK;
    if (!data || !owned) {
        rc = ir_error(e, KILN_ENOMEM, p->file, (Loc){0, 0}, "out of memory in the interpreter");
        goto done;
    }
    for (int i = 0; i < p->ntensors; i++) {
        const Tensor *t = &p->tensors[i];
        data[i] = bufs ? bufs[i] : NULL;
        if (data[i])
            continue;
        if (t->kind != T_TEMP) {
            rc = ir_error(e, KILN_EINVAL, p->file, (Loc){0, 0}, "no buffer given for %s '%s'",
                          t->kind == T_INPUT ? "input" : "output", t->name);
            goto done;
        }
        data[i] = calloc((size_t)tensor_numel(t), (size_t)dtype_size(t->dt));
        if (!data[i]) {
            rc = ir_error(e, KILN_ENOMEM, p->file, t->loc,
                          "out of memory allocating temp '%s' in the interpreter", t->name);
            goto done;
        }
        owned[i] = true;
    }
    for (int i = 0; i < p->nstmts && !rc; i++)
        rc = run_stmt(p, &p->stmts[i], data, e);
done:
    if (data && owned)
        for (int i = 0; i < p->ntensors; i++)
            if (owned[i])
                free(data[i]);
    free(data);
    free(owned);
    return rc;
}
