/* ir/program.c: building a Program piece by piece (params, tensors,
 * statements, finish), plus queries over a finished one (flops, the
 * canonical text used for hashing).
 *
 * Invariant: a Program is always consistent between calls: a failed add_*
 * leaves it exactly as before (apart from unreachable arena garbage), so the
 * caller may report the error and free it, or carry on.  Tensor indices are
 * fixed once the first statement exists (statements refer to them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

/* The builder's bookkeeping travels with the Program: ir_program_new is the
 * only way to make one, so a Program* always points at a Builder. */
typedef struct Builder {
    Program p; /* first member */
    int tcap, scap, pcap;
    bool finished;
} Builder;

static Builder *builder(Program *p)
{
    return (Builder *)p;
}

/* ------------------------------------------------------------- names */
bool ir_is_ident(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

static const char *const c_keywords[] = {
    "auto",       "break",     "case",           "char",
    "const",      "continue",  "default",        "do",
    "double",     "else",      "enum",           "extern",
    "float",      "for",       "goto",           "if",
    "inline",     "int",       "long",           "register",
    "restrict",   "return",    "short",          "signed",
    "sizeof",     "static",    "struct",         "switch",
    "typedef",    "union",     "unsigned",       "void",
    "volatile",   "while",     "_Alignas",       "_Alignof",
    "_Atomic",    "_Bool",     "_Complex",       "_Generic",
    "_Imaginary", "_Noreturn", "_Static_assert", "_Thread_local",
    "bool",       "true",      "false",          NULL};

static const char *const kiln_words[] = {"min",     "max",    "abs", "exp", "log", "sqrt", "tanh",
                                         "sigmoid", "select", "f32", "f64", "i32", "i64",  NULL};

int ir_check_name(const char *what, const char *name, const char *file, Loc loc, kiln_error *e)
{
    if (!ir_is_ident(name))
        return ir_error(e, KILN_ESEMANTIC, file, loc, "%s '%s' is not an identifier", what,
                        name ? name : "");
    for (int i = 0; kiln_words[i]; i++)
        if (!strcmp(name, kiln_words[i]))
            return ir_error(e, KILN_ESEMANTIC, file, loc,
                            "%s '%s' is reserved (a kiln function or dtype)", what, name);
    for (int i = 0; c_keywords[i]; i++)
        if (!strcmp(name, c_keywords[i]))
            return ir_error(e, KILN_ESEMANTIC, file, loc, "%s '%s' is a C keyword", what, name);
    return KILN_OK;
}

/* ------------------------------------------------------------ builder */
Program *ir_program_new(const char *name, const char *file)
{
    Arena *a = arena_new();
    if (!a)
        return NULL;
    Builder *b = arena_alloc(a, sizeof *b);
    if (!b) {
        arena_free(a);
        return NULL;
    }
    b->p.arena = a;
    b->p.name = arena_strdup(a, name ? name : "");
    b->p.file = arena_strdup(a, file ? file : "<string>");
    if (!b->p.name || !b->p.file) {
        arena_free(a);
        return NULL;
    }
    return &b->p;
}

void ir_program_free(Program *p)
{
    if (p)
        arena_free(p->arena); /* the Program itself lives in its arena */
}

int ir_find_tensor(const Program *p, const char *name)
{
    for (int i = 0; i < p->ntensors; i++)
        if (!strcmp(p->tensors[i].name, name))
            return i;
    return -1;
}

static int find_param(const Program *p, const char *name)
{
    for (int i = 0; i < p->nparams; i++)
        if (!strcmp(p->params[i].name, name))
            return i;
    return -1;
}

static int oom(Program *p, kiln_error *e)
{
    return ir_error(e, KILN_ENOMEM, p->file, (Loc){0, 0}, "out of memory");
}

/* Grows an arena array of `size`-byte elements to hold n+1. */
static bool grow(Arena *a, void **v, int n, int *cap, size_t size)
{
    if (n < *cap)
        return true;
    int nc = *cap ? *cap * 2 : 8;
    void *nv = arena_alloc(a, size * (size_t)nc);
    if (!nv)
        return false;
    if (n)
        memcpy(nv, *v, size * (size_t)n);
    *v = nv;
    *cap = nc;
    return true;
}

static int check_new_name(Program *p, const char *what, const char *name, Loc loc, kiln_error *e)
{
    int rc = ir_check_name(what, name, p->file, loc, e);
    if (rc)
        return rc;
    int t = ir_find_tensor(p, name);
    if (t >= 0) {
        const Tensor *o = &p->tensors[t];
        if (o->loc.line)
            return ir_error(e, KILN_ESEMANTIC, p->file, loc,
                            "duplicate name '%s' (tensor declared at %d:%d)", name, o->loc.line,
                            o->loc.col);
        return ir_error(e, KILN_ESEMANTIC, p->file, loc, "duplicate name '%s' (a tensor)", name);
    }
    if (find_param(p, name) >= 0)
        return ir_error(e, KILN_ESEMANTIC, p->file, loc, "duplicate name '%s' (a param)", name);
    return KILN_OK;
}

int ir_program_add_param(Program *p, const char *name, int64_t v, Loc loc, kiln_error *e)
{
    Builder *b = builder(p);
    if (b->finished)
        return ir_error(e, KILN_EINVAL, p->file, loc, "program is already finished");
    if (p->nstmts)
        return ir_error(e, KILN_EINVAL, p->file, loc,
                        "params must be declared before the first statement");
    int rc = check_new_name(p, "param", name, loc, e);
    if (rc)
        return rc;
    void *v0 = p->params;
    if (!grow(p->arena, &v0, p->nparams, &b->pcap, sizeof(Param)))
        return oom(p, e);
    p->params = v0;
    Param *pr = &p->params[p->nparams];
    pr->name = arena_strdup(p->arena, name);
    if (!pr->name)
        return oom(p, e);
    pr->value = v;
    p->nparams++;
    return KILN_OK;
}

/* Parses a dim: a positive decimal integer or a param name. */
static int parse_dim(Program *p, const char *tname, const char *s, Loc loc, int64_t *out,
                     kiln_error *e)
{
    if (!s || !*s)
        return ir_error(e, KILN_ESEMANTIC, p->file, loc,
                        "empty dim in tensor '%s': expected a positive integer or a param name",
                        tname);
    if ((*s >= '0' && *s <= '9') || *s == '-' || *s == '+') {
        const char *c = s + (*s == '-' || *s == '+');
        bool neg = *s == '-';
        if (!*c)
            goto bad;
        int64_t v = 0;
        for (; *c; c++) {
            if (*c < '0' || *c > '9')
                goto bad;
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *c - '0', &v))
                return ir_error(e, KILN_ESEMANTIC, p->file, loc,
                                "dim %s of tensor '%s' is too large", s, tname);
        }
        if (neg || v <= 0)
            return ir_error(e, KILN_ESEMANTIC, p->file, loc,
                            "dim %s of tensor '%s' must be positive", s, tname);
        *out = v;
        return KILN_OK;
    }
    if (!ir_is_ident(s))
        goto bad;
    int i = find_param(p, s);
    if (i < 0)
        return ir_error(e, KILN_ESEMANTIC, p->file, loc, "unknown param '%s'", s);
    if (p->params[i].value <= 0)
        return ir_error(e, KILN_ESEMANTIC, p->file, loc,
                        "dim '%s' of tensor '%s' must be positive, but %s is %lld", s, tname, s,
                        (long long)p->params[i].value);
    *out = p->params[i].value;
    return KILN_OK;
bad:
    return ir_error(e, KILN_ESEMANTIC, p->file, loc,
                    "bad dim '%s' in tensor '%s': expected a positive integer or a param name", s,
                    tname);
}

/* Keeps element counts far from int64 overflow, so byte sizes and flat
 * offsets computed anywhere later cannot overflow either. */
#define MAX_NUMEL ((int64_t)1 << 48)

int ir_program_add_tensor(Program *p, TensorKind kind, const char *name, DType dt, int ndim,
                          const char *const *dims, const Loc *dim_locs, Loc loc, kiln_error *e)
{
    Builder *b = builder(p);
    if (b->finished)
        return ir_error(e, KILN_EINVAL, p->file, loc, "program is already finished");
    if (p->nstmts)
        return ir_error(e, KILN_EINVAL, p->file, loc,
                        "tensors must be declared before the first statement");
    if (kind != T_INPUT && kind != T_OUTPUT && kind != T_TEMP)
        return ir_error(e, KILN_EINVAL, p->file, loc, "bad tensor kind for '%s'", name ? name : "");
    if (dt != DT_F32 && dt != DT_F64 && dt != DT_I32 && dt != DT_I64)
        return ir_error(e, KILN_ESEMANTIC, p->file, loc,
                        "tensor '%s' has a bad dtype: expected f32, f64, i32 or i64",
                        name ? name : "");
    int rc = check_new_name(p, "tensor", name, loc, e);
    if (rc)
        return rc;
    if (ndim < 0 || ndim > IR_MAX_DIMS)
        return ir_error(e, KILN_ESEMANTIC, p->file, loc, "tensor '%s' has %d dims; at most %d",
                        name, ndim, IR_MAX_DIMS);
    Tensor t = {0};
    t.dt = dt;
    t.kind = kind;
    t.ndim = ndim;
    t.loc = loc;
    t.writer = -1;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        rc = parse_dim(p, name, dims[d], dim_locs ? dim_locs[d] : loc, &t.dims[d], e);
        if (rc)
            return rc;
        if (__builtin_mul_overflow(numel, t.dims[d], &numel) || numel > MAX_NUMEL)
            return ir_error(e, KILN_ESEMANTIC, p->file, dim_locs ? dim_locs[d] : loc,
                            "tensor '%s' is too large", name);
    }
    t.name = arena_strdup(p->arena, name);
    void *v = p->tensors;
    if (!t.name || !grow(p->arena, &v, p->ntensors, &b->tcap, sizeof(Tensor)))
        return oom(p, e);
    p->tensors = v;
    /* Keep inputs, outputs, temps grouped in declaration order. */
    int at = p->ntensors;
    while (at > 0 && p->tensors[at - 1].kind > kind)
        at--;
    memmove(&p->tensors[at + 1], &p->tensors[at], sizeof(Tensor) * (size_t)(p->ntensors - at));
    p->tensors[at] = t;
    p->ntensors++;
    if (kind == T_INPUT)
        p->ninputs++;
    else if (kind == T_OUTPUT)
        p->noutputs++;
    return KILN_OK;
}

int ir_program_add_stmt(Program *p, const char *text, Loc text_loc, int nranges,
                        const char *const *range_names, const int64_t *range_ext,
                        const Loc *range_locs, kiln_error *e)
{
    Builder *b = builder(p);
    if (b->finished)
        return ir_error(e, KILN_EINVAL, p->file, text_loc, "program is already finished");
    if (!text)
        return ir_error(e, KILN_EINVAL, p->file, text_loc, "no statement text");
    Stmt st;
    int rc = ir_parse_stmt(p, text, text_loc, &st, e);
    if (!rc)
        rc = ir_check_stmt(p, &st, nranges, range_names, range_ext, range_locs, e);
    if (rc)
        return rc;
    void *v = p->stmts;
    if (!grow(p->arena, &v, p->nstmts, &b->scap, sizeof(Stmt)))
        return oom(p, e);
    p->stmts = v;
    p->stmts[p->nstmts] = st;
    p->tensors[st.out].writer = p->nstmts;
    p->nstmts++;
    return KILN_OK;
}

int ir_program_finish(Program *p, kiln_error *e)
{
    Builder *b = builder(p);
    if (b->finished)
        return ir_error(e, KILN_EINVAL, p->file, (Loc){0, 0}, "program is already finished");
    if (!p->noutputs)
        return ir_error(e, KILN_ESEMANTIC, p->file, (Loc){0, 0}, "program has no outputs");
    for (int i = 0; i < p->ntensors; i++) {
        const Tensor *t = &p->tensors[i];
        if (t->kind != T_INPUT && t->writer < 0)
            return ir_error(e, KILN_ESEMANTIC, p->file, t->loc,
                            "%s '%s' is never written by a statement",
                            t->kind == T_OUTPUT ? "output" : "temp", t->name);
    }
    b->finished = true;
    return KILN_OK;
}

/* --------------------------------------------------------------- flops */
/* Arithmetic per evaluation.  Index arithmetic (inside loads) and select
 * conditions (usually padding guards) are address work, not counted; of a
 * select's branches the costlier one counts. */
static double expr_ops(const Expr *e)
{
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
    case EXPR_VAR:
    case EXPR_LOAD:
        return 0;
    case EXPR_CAST:
    case EXPR_NOT:
        return expr_ops(e->u.op.a);
    case EXPR_SELECT: {
        double x = expr_ops(e->u.op.b), y = expr_ops(e->u.op.c);
        return x > y ? x : y;
    }
    default:
        if (expr_is_compare(e->kind) || e->kind == EXPR_AND || e->kind == EXPR_OR)
            return expr_ops(e->u.op.a) + expr_ops(e->u.op.b);
        if (expr_is_unary(e->kind))
            return 1 + expr_ops(e->u.op.a);
        return 1 + expr_ops(e->u.op.a) + expr_ops(e->u.op.b);
    }
}

double ir_program_flops(const Program *p)
{
    double total = 0;
    for (int i = 0; i < p->nstmts; i++) {
        const Stmt *s = &p->stmts[i];
        double iters = 1;
        for (int v = 0; v < s->nvars; v++)
            iters *= (double)s->vars[v]->extent;
        total += iters * (expr_ops(s->rhs) + (s->red != RED_NONE ? 1 : 0));
    }
    return total;
}

/* ----------------------------------------------------------- canonical */
static const char *const kind_names[] = {
    [EXPR_INT] = "int",   [EXPR_FLOAT] = "float",  [EXPR_VAR] = "var",
    [EXPR_LOAD] = "load", [EXPR_ADD] = "add",      [EXPR_SUB] = "sub",
    [EXPR_MUL] = "mul",   [EXPR_DIV] = "div",      [EXPR_MOD] = "mod",
    [EXPR_MIN] = "min",   [EXPR_MAX] = "max",      [EXPR_LT] = "lt",
    [EXPR_LE] = "le",     [EXPR_GT] = "gt",        [EXPR_GE] = "ge",
    [EXPR_EQ] = "eq",     [EXPR_NE] = "ne",        [EXPR_AND] = "and",
    [EXPR_OR] = "or",     [EXPR_NOT] = "not",      [EXPR_NEG] = "neg",
    [EXPR_ABS] = "abs",   [EXPR_EXP] = "exp",      [EXPR_LOG] = "log",
    [EXPR_SQRT] = "sqrt", [EXPR_TANH] = "tanh",    [EXPR_SIGMOID] = "sigmoid",
    [EXPR_CAST] = "cast", [EXPR_SELECT] = "select"};

/* Prefix form with every node's dtype: unambiguous, independent of how the
 * source was spelled (spacing, parentheses, params). */
static void canon_expr(StrBuf *sb, const Program *p, const Expr *e)
{
    switch (e->kind) {
    case EXPR_INT:
        sb_printf(sb, "%lld:%s", (long long)e->u.i, dtype_name(e->dt));
        return;
    case EXPR_FLOAT:
        sb_printf(sb, "%.17g:%s", e->u.f, dtype_name(e->dt));
        return;
    case EXPR_VAR:
        sb_printf(sb, "%s", e->u.var->name);
        return;
    case EXPR_LOAD:
        sb_printf(sb, "(%s", p->tensors[e->u.load.buf].name);
        for (int i = 0; i < e->u.load.n; i++) {
            sb_printf(sb, " ");
            canon_expr(sb, p, e->u.load.idx[i]);
        }
        sb_printf(sb, ")");
        return;
    default:
        sb_printf(sb, "(%s:%s", kind_names[e->kind], dtype_name(e->dt));
        const Expr *ops[3] = {e->u.op.a, e->u.op.b, e->u.op.c};
        for (int i = 0; i < 3; i++)
            if (ops[i]) {
                sb_printf(sb, " ");
                canon_expr(sb, p, ops[i]);
            }
        sb_printf(sb, ")");
        return;
    }
}

char *ir_program_canonical(const Program *p)
{
    static const char *const kinds[] = {"input", "output", "temp", "local"};
    static const char *const reds[] = {"=", "+=", "*=", "max=", "min="};
    StrBuf sb = {0};
    sb_printf(&sb, "kiln-program 1\nname %s\n", p->name);
    for (int i = 0; i < p->ntensors; i++) {
        const Tensor *t = &p->tensors[i];
        sb_printf(&sb, "%s %s %s [", kinds[t->kind], t->name, dtype_name(t->dt));
        for (int d = 0; d < t->ndim; d++)
            sb_printf(&sb, d ? " %lld" : "%lld", (long long)t->dims[d]);
        sb_printf(&sb, "]\n");
    }
    for (int i = 0; i < p->nstmts; i++) {
        const Stmt *s = &p->stmts[i];
        sb_printf(&sb, "stmt %s [", p->tensors[s->out].name);
        for (int v = 0; v < s->nvars; v++)
            sb_printf(&sb, "%s%s%s:%lld", v ? " " : "", v == s->nspatial ? "| " : "",
                      s->vars[v]->name, (long long)s->vars[v]->extent);
        sb_printf(&sb, "] %s ", reds[s->red]);
        canon_expr(&sb, p, s->rhs);
        sb_printf(&sb, "\n");
    }
    if (!sb.s) /* out of memory somewhere above */
        return NULL;
    return sb.s;
}
