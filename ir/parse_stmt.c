/* ir/parse_stmt.c: lexer and recursive-descent parser for one statement,
 * `T[v, ...] op= expr`, producing a typed Expr tree.
 *
 * Typing happens while parsing.  Besides concrete dtypes an expression can
 * be "untyped" until its context decides (Go-style constants):
 *   C_LITINT    integer literals and params: become any numeric type
 *   C_LITFLOAT  float literals: become f32 or f64
 *   C_IDX       integer arithmetic on loop variables: i64, or i32 next to an
 *               i32 value (wrapped in a cast); never silently a float
 * Invariant: every tree handed out is fully concrete and type-consistent
 * (binary operands share the node's dtype, indices are i64); untyped trees
 * are retyped in place, which is safe because the parser never shares
 * nodes.  Each node's loc is where its source text starts. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

#define MAX_NEST 200    /* parentheses/calls/unary operators: bounds recursion */
#define MAX_HEIGHT 1000 /* tree height: bounds every later recursive walk */
#define MAX_VARS 64

/* ---------------------------------------------------------------- lexer */
typedef enum { TK_EOF, TK_IDENT, TK_INT, TK_FLOAT, TK_PUNCT } TokKind;

typedef enum {
    P_LBRACK,
    P_RBRACK,
    P_LPAREN,
    P_RPAREN,
    P_COMMA,
    P_PLUS,
    P_MINUS,
    P_STAR,
    P_SLASH,
    P_PERCENT,
    P_LT,
    P_LE,
    P_GT,
    P_GE,
    P_EQEQ,
    P_NE,
    P_ANDAND,
    P_OROR,
    P_NOT,
    P_ASSIGN,
    P_PLUSEQ,
    P_STAREQ
} Punct;

static const char *const punct_text[] = {
    "[",  "]", "(",  ")",  ",",  "+",  "-",  "*", "/", "%",  "<",
    "<=", ">", ">=", "==", "!=", "&&", "||", "!", "=", "+=", "*="};

typedef struct {
    TokKind kind;
    Punct op;
    int pos, len; /* bytes in the statement text */
    Loc loc;
    int64_t ival;
    double fval;
} Tok;

typedef enum { C_DT, C_LITINT, C_LITFLOAT, C_IDX } Cls;

typedef struct {
    Expr *e; /* NULL after an error */
    Cls cls;
    int h; /* tree height */
} PE;

typedef struct {
    Program *p;
    Arena *a;
    const char *text;
    kiln_error *e;
    Tok *toks;
    int ntok, cur;
    int out; /* written tensor */
    RedOp red;
    Var *vars[MAX_VARS];
    int nvars, nspatial;
    int nest;
    int rc; /* first error's code */
} Parser;

static int __attribute__((format(printf, 4, 0)))
vfail(Parser *ps, int code, Loc loc, const char *fmt, va_list ap)
{
    char msg[512];
    if (!ps->rc)
        ps->rc = code;
    vsnprintf(msg, sizeof msg, fmt, ap);
    return ir_error(ps->e, code, ps->p->file, loc, "%s", msg);
}

static int __attribute__((format(printf, 3, 4))) syn(Parser *ps, Loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(ps, KILN_ESYNTAX, loc, fmt, ap);
    va_end(ap);
    return rc;
}

static int __attribute__((format(printf, 3, 4))) sem(Parser *ps, Loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(ps, KILN_ESEMANTIC, loc, fmt, ap);
    va_end(ap);
    return rc;
}

static int oom(Parser *ps)
{
    if (!ps->rc)
        ps->rc = KILN_ENOMEM;
    return ir_error(ps->e, KILN_ENOMEM, ps->p->file, (Loc){0, 0}, "out of memory");
}

static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Tokenizes the whole statement into ps->toks (malloc'd; caller frees). */
static int lex(Parser *ps, Loc start)
{
    const char *s = ps->text;
    int n = (int)strlen(s), cap = 16;
    ps->toks = malloc(sizeof(Tok) * (size_t)cap);
    if (!ps->toks)
        return oom(ps);
    int line = start.line, col0 = start.col, linestart = 0;
    for (int i = 0;;) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
            if (s[i] == '\n') {
                line++;
                col0 = 1;
                linestart = i + 1;
            }
            i++;
        }
        if (ps->ntok == cap) {
            cap *= 2;
            Tok *nt = realloc(ps->toks, sizeof(Tok) * (size_t)cap);
            if (!nt)
                return oom(ps);
            ps->toks = nt;
        }
        Tok *t = &ps->toks[ps->ntok++];
        memset(t, 0, sizeof *t);
        t->pos = i;
        t->loc = (Loc){line, col0 + (i - linestart)};
        if (i >= n) {
            t->kind = TK_EOF;
            return KILN_OK;
        }
        int c = (unsigned char)s[i];
        if (is_alpha(c)) {
            int j = i;
            while (j < n && (is_alpha(s[j]) || is_digit(s[j])))
                j++;
            t->kind = TK_IDENT;
            t->len = j - i;
            i = j;
            continue;
        }
        if (is_digit(c) || (c == '.' && i + 1 < n && is_digit(s[i + 1]))) {
            int j = i;
            bool isf = false;
            while (j < n && is_digit(s[j]))
                j++;
            if (j < n && s[j] == '.') {
                isf = true;
                j++;
                while (j < n && is_digit(s[j]))
                    j++;
            }
            if (j < n && (s[j] == 'e' || s[j] == 'E')) {
                int k = j + 1;
                if (k < n && (s[k] == '+' || s[k] == '-'))
                    k++;
                if (k < n && is_digit(s[k])) {
                    isf = true;
                    j = k;
                    while (j < n && is_digit(s[j]))
                        j++;
                }
            }
            int end = j;
            while (end < n && (is_alpha(s[end]) || is_digit(s[end]) || s[end] == '.'))
                end++;
            if (end != j)
                return syn(ps, t->loc, "bad number '%.*s'", end - i > 40 ? 40 : end - i, s + i);
            t->len = j - i;
            char buf[128];
            if (t->len >= (int)sizeof buf)
                return syn(ps, t->loc, "number too long");
            memcpy(buf, s + i, (size_t)t->len);
            buf[t->len] = 0;
            if (isf) {
                t->kind = TK_FLOAT;
                errno = 0;
                t->fval = strtod(buf, NULL);
                if (errno == ERANGE && isinf(t->fval))
                    return syn(ps, t->loc, "float literal %s is out of range", buf);
            } else {
                t->kind = TK_INT;
                int64_t v = 0;
                for (int k = 0; k < t->len; k++)
                    if (__builtin_mul_overflow(v, 10, &v) ||
                        __builtin_add_overflow(v, buf[k] - '0', &v))
                        return syn(ps, t->loc, "integer literal %s is too large", buf);
                t->ival = v;
            }
            i = j;
            continue;
        }
        t->kind = TK_PUNCT;
        int c1 = i + 1 < n ? s[i + 1] : 0;
        t->len = 1;
        switch (c) {
        case '[':
            t->op = P_LBRACK;
            break;
        case ']':
            t->op = P_RBRACK;
            break;
        case '(':
            t->op = P_LPAREN;
            break;
        case ')':
            t->op = P_RPAREN;
            break;
        case ',':
            t->op = P_COMMA;
            break;
        case '-':
            t->op = P_MINUS;
            break;
        case '/':
            t->op = P_SLASH;
            break;
        case '%':
            t->op = P_PERCENT;
            break;
        case '+':
            t->op = c1 == '=' ? P_PLUSEQ : P_PLUS;
            break;
        case '*':
            t->op = c1 == '=' ? P_STAREQ : P_STAR;
            break;
        case '<':
            t->op = c1 == '=' ? P_LE : P_LT;
            break;
        case '>':
            t->op = c1 == '=' ? P_GE : P_GT;
            break;
        case '=':
            t->op = c1 == '=' ? P_EQEQ : P_ASSIGN;
            break;
        case '!':
            t->op = c1 == '=' ? P_NE : P_NOT;
            break;
        case '&':
            if (c1 != '&')
                return syn(ps, t->loc, "unexpected '&': did you mean '&&'?");
            t->op = P_ANDAND;
            break;
        case '|':
            if (c1 != '|')
                return syn(ps, t->loc, "unexpected '|': did you mean '||'?");
            t->op = P_OROR;
            break;
        default:
            if (c > ' ' && c < 127)
                return syn(ps, t->loc, "unexpected character '%c'", c);
            return syn(ps, t->loc, "unexpected byte 0x%02x", c);
        }
        t->len = (int)strlen(punct_text[t->op]);
        i += t->len;
    }
}

/* ------------------------------------------------------------- helpers */
static Tok *peek(Parser *ps)
{
    return &ps->toks[ps->cur];
}

static Tok *peek2(Parser *ps)
{
    return &ps->toks[ps->cur + (ps->toks[ps->cur].kind != TK_EOF)];
}

static Tok *next(Parser *ps)
{
    Tok *t = &ps->toks[ps->cur];
    if (t->kind != TK_EOF)
        ps->cur++;
    return t;
}

static bool is_punct(const Tok *t, Punct op)
{
    return t->kind == TK_PUNCT && t->op == op;
}

static bool tok_is(Parser *ps, const Tok *t, const char *word)
{
    return t->kind == TK_IDENT && (int)strlen(word) == t->len &&
           !memcmp(ps->text + t->pos, word, (size_t)t->len);
}

/* Token text for messages (static buffer per call site is enough: one
 * error is formatted at a time). */
static const char *tok_desc(Parser *ps, const Tok *t, char *buf, size_t size)
{
    if (t->kind == TK_EOF)
        snprintf(buf, size, "the end of the statement");
    else
        snprintf(buf, size, "'%.*s'", t->len > 40 ? 40 : t->len, ps->text + t->pos);
    return buf;
}

static char *tok_name(Parser *ps, const Tok *t)
{
    return arena_strndup(ps->a, ps->text + t->pos, (size_t)t->len);
}

static int find_param(const Program *p, const char *name)
{
    for (int i = 0; i < p->nparams; i++)
        if (!strcmp(p->params[i].name, name))
            return i;
    return -1;
}

typedef enum {
    F_NONE,
    F_MIN,
    F_MAX,
    F_ABS,
    F_EXP,
    F_LOG,
    F_SQRT,
    F_TANH,
    F_SIGMOID,
    F_SELECT,
    F_F32,
    F_F64,
    F_I32,
    F_I64
} Func;

static const struct {
    const char *name;
    Func f;
    int nargs;
    ExprKind kind;
} funcs[] = {{"min", F_MIN, 2, EXPR_MIN},          {"max", F_MAX, 2, EXPR_MAX},
             {"abs", F_ABS, 1, EXPR_ABS},          {"exp", F_EXP, 1, EXPR_EXP},
             {"log", F_LOG, 1, EXPR_LOG},          {"sqrt", F_SQRT, 1, EXPR_SQRT},
             {"tanh", F_TANH, 1, EXPR_TANH},       {"sigmoid", F_SIGMOID, 1, EXPR_SIGMOID},
             {"select", F_SELECT, 3, EXPR_SELECT}, {"f32", F_F32, 1, EXPR_CAST},
             {"f64", F_F64, 1, EXPR_CAST},         {"i32", F_I32, 1, EXPR_CAST},
             {"i64", F_I64, 1, EXPR_CAST}};
#define NFUNCS ((int)(sizeof funcs / sizeof funcs[0]))

static int find_func(const char *name)
{
    for (int i = 0; i < NFUNCS; i++)
        if (!strcmp(funcs[i].name, name))
            return i;
    return -1;
}

/* ------------------------------------------------------------- typing */
static const PE bad = {NULL, C_DT, 0};

static const char *cls_desc(const PE *x)
{
    switch (x->cls) {
    case C_LITINT:
        return "an integer literal";
    case C_LITFLOAT:
        return "a float literal";
    case C_IDX:
        return "an integer index expression";
    default:
        return dtype_name(x->e->dt);
    }
}

/* Gives an untyped literal tree (C_LITINT/C_LITFLOAT) the numeric type t,
 * in place. */
static int retype(Parser *ps, Expr *e, DType t)
{
    switch (e->kind) {
    case EXPR_INT:
        if (dtype_is_float(t)) {
            double v = (double)e->u.i;
            e->kind = EXPR_FLOAT;
            e->u.f = t == DT_F32 ? (double)(float)v : v;
        } else if (t == DT_I32 && (e->u.i < INT32_MIN || e->u.i > INT32_MAX)) {
            return sem(ps, e->loc, "integer %lld does not fit in i32", (long long)e->u.i);
        }
        break;
    case EXPR_FLOAT:
        IR_ASSERT(dtype_is_float(t));
        if (t == DT_F32)
            e->u.f = (double)(float)e->u.f;
        break;
    case EXPR_SELECT: {
        int rc = retype(ps, e->u.op.b, t);
        if (!rc)
            rc = retype(ps, e->u.op.c, t);
        if (rc)
            return rc;
        break;
    }
    default:
        IR_ASSERT(expr_is_binary(e->kind) || expr_is_unary(e->kind));
        IR_ASSERT(!expr_is_compare(e->kind) && e->kind != EXPR_MOD && e->kind != EXPR_CAST);
        if (e->u.op.a) {
            int rc = retype(ps, e->u.op.a, t);
            if (rc)
                return rc;
        }
        if (e->u.op.b) {
            int rc = retype(ps, e->u.op.b, t);
            if (rc)
                return rc;
        }
        break;
    }
    e->dt = t;
    return KILN_OK;
}

/* Why x cannot become t, or NULL when it can. */
static const char *cannot_become(const PE *x, DType t)
{
    switch (x->cls) {
    case C_DT:
        return x->e->dt == t ? NULL : "";
    case C_LITINT:
        return t == DT_BOOL ? "" : NULL;
    case C_LITFLOAT:
        return dtype_is_float(t) ? NULL : "";
    case C_IDX:
        return t == DT_I32 || t == DT_I64 ? NULL : "";
    }
    return "";
}

/* Makes x concrete of type t; the caller has checked cannot_become. */
static int become(Parser *ps, PE *x, DType t)
{
    switch (x->cls) {
    case C_DT:
        break;
    case C_LITINT:
    case C_LITFLOAT: {
        int rc = retype(ps, x->e, t);
        if (rc)
            return rc;
        break;
    }
    case C_IDX:
        if (t == DT_I32) {
            Expr *c = expr_un(ps->a, EXPR_CAST, DT_I32, x->e);
            if (!c)
                return oom(ps);
            c->loc = x->e->loc;
            x->e = c;
            x->h++;
        }
        break;
    }
    x->cls = C_DT;
    return KILN_OK;
}

static DType default_type(const PE *x)
{
    switch (x->cls) {
    case C_LITFLOAT:
        return DT_F64;
    case C_LITINT:
    case C_IDX:
        return DT_I64;
    default:
        return x->e->dt;
    }
}

/* Brings x and y to a common type for operator `op` (at tok).  On success
 * *cls and *dt describe the result: concrete, or still untyped (dt is then the
 * provisional i64/f64). */
static int unify(Parser *ps, PE *x, PE *y, const Tok *tok, const char *op, Cls *cls, DType *dt)
{
    if (x->cls == C_DT || y->cls == C_DT) {
        PE *c = x->cls == C_DT ? x : y, *o = c == x ? y : x;
        DType t = c->e->dt;
        if (cannot_become(o, t)) {
            const char *hint = "";
            if (dtype_is_float(t) &&
                (o->cls == C_IDX ||
                 (o->cls == C_DT && !dtype_is_float(o->e->dt) && o->e->dt != DT_BOOL)))
                hint = t == DT_F32 ? ": use f32(...)" : ": use f64(...)";
            else if (o->cls == C_DT && o->e->dt != DT_BOOL && t != DT_BOOL)
                hint = x->e->dt == DT_F32   ? ": cast one side, e.g. f32(...)"
                       : x->e->dt == DT_F64 ? ": cast one side, e.g. f64(...)"
                       : x->e->dt == DT_I32 ? ": cast one side, e.g. i32(...)"
                                            : ": cast one side, e.g. i64(...)";
            return sem(ps, tok->loc, "'%s' mixes %s and %s%s", op, cls_desc(x), cls_desc(y), hint);
        }
        int rc = become(ps, o, t);
        if (rc)
            return rc;
        *cls = C_DT;
        *dt = t;
        return KILN_OK;
    }
    if ((x->cls == C_IDX && y->cls == C_LITFLOAT) || (x->cls == C_LITFLOAT && y->cls == C_IDX))
        return sem(ps, tok->loc, "'%s' mixes %s and %s: use f32(...) or f64(...) on the integer",
                   op, cls_desc(x), cls_desc(y));
    if (x->cls == C_IDX || y->cls == C_IDX) {
        *cls = C_IDX;
        *dt = DT_I64;
    } else if (x->cls == C_LITFLOAT || y->cls == C_LITFLOAT) {
        *cls = C_LITFLOAT;
        *dt = DT_F64;
    } else {
        *cls = C_LITINT;
        *dt = DT_I64;
    }
    return KILN_OK;
}

static PE mknode(Parser *ps, Expr *e, Cls cls, int h, Loc loc)
{
    if (!e) {
        oom(ps);
        return bad;
    }
    e->loc = loc;
    if (h > MAX_HEIGHT) {
        sem(ps, loc, "expression is too deep (more than %d levels)", MAX_HEIGHT);
        return bad;
    }
    return (PE){e, cls, h};
}

static int hmax(int a, int b)
{
    return a > b ? a : b;
}

static bool is_numeric(const PE *x)
{
    return x->cls != C_DT || x->e->dt != DT_BOOL;
}

static bool is_floatish(const PE *x)
{
    return x->cls == C_LITFLOAT || (x->cls == C_DT && dtype_is_float(x->e->dt));
}

static int64_t floordiv64(int64_t x, int64_t d)
{
    if (d == 0)
        return 0;
    if (d == -1)
        return (int64_t)(0 - (uint64_t)x); /* wraps for INT64_MIN */
    int64_t q = x / d;
    if ((x % d != 0) && ((x < 0) != (d < 0)))
        q--;
    return q;
}

/* Arithmetic binary operators: + - * / % min max. */
static PE binary(Parser *ps, ExprKind k, PE x, PE y, const Tok *tok, const char *op)
{
    if (!is_numeric(&x) || !is_numeric(&y)) {
        sem(ps, tok->loc, "'%s' needs numbers, not bool", op);
        return bad;
    }
    if (k == EXPR_MOD && (is_floatish(&x) || is_floatish(&y))) {
        sem(ps, tok->loc, "'%%' needs integer operands, not %s",
            is_floatish(&x) ? cls_desc(&x) : cls_desc(&y));
        return bad;
    }
    Cls cls;
    DType dt;
    if (unify(ps, &x, &y, tok, op, &cls, &dt))
        return bad;
    if (k == EXPR_MOD && cls == C_LITINT) {
        /* % cannot be retyped to float later: fold constants, else the
         * result is plain integer arithmetic. */
        if (x.e->kind == EXPR_INT && y.e->kind == EXPR_INT) {
            int64_t a = x.e->u.i, d = y.e->u.i;
            x.e->u.i =
                d == 0 ? 0 : (int64_t)((uint64_t)a - (uint64_t)floordiv64(a, d) * (uint64_t)d);
            return x;
        }
        cls = C_IDX;
    }
    return mknode(ps, expr_bin(ps->a, k, dt, x.e, y.e), cls, hmax(x.h, y.h) + 1, x.e->loc);
}

static PE compare(Parser *ps, ExprKind k, PE x, PE y, const Tok *tok)
{
    const char *op = punct_text[tok->op];
    bool eq = k == EXPR_EQ || k == EXPR_NE;
    if (!eq && (!is_numeric(&x) || !is_numeric(&y))) {
        sem(ps, tok->loc, "'%s' needs numbers, not bool", op);
        return bad;
    }
    Cls cls;
    DType dt;
    if (unify(ps, &x, &y, tok, op, &cls, &dt))
        return bad;
    if (cls != C_DT) {
        dt = cls == C_LITFLOAT ? DT_F64 : DT_I64;
        if (become(ps, &x, dt) || become(ps, &y, dt))
            return bad;
    }
    return mknode(ps, expr_bin(ps->a, k, DT_BOOL, x.e, y.e), C_DT, hmax(x.h, y.h) + 1, x.e->loc);
}

static PE logic(Parser *ps, ExprKind k, PE x, PE y, const Tok *tok)
{
    const PE *nb = x.cls != C_DT || x.e->dt != DT_BOOL ? &x : &y;
    if (nb->cls != C_DT || nb->e->dt != DT_BOOL) {
        sem(ps, tok->loc, "'%s' needs comparisons (bool) on both sides, not %s",
            punct_text[tok->op], cls_desc(nb));
        return bad;
    }
    return mknode(ps, expr_bin(ps->a, k, DT_BOOL, x.e, y.e), C_DT, hmax(x.h, y.h) + 1, x.e->loc);
}

/* Makes an index expression i64. */
static int as_index(Parser *ps, PE *x)
{
    if (x->cls == C_LITINT || x->cls == C_IDX)
        return become(ps, x, DT_I64);
    if (x->cls == C_DT && x->e->dt == DT_I64)
        return KILN_OK;
    if (x->cls == C_DT && x->e->dt == DT_I32) {
        Expr *c = expr_un(ps->a, EXPR_CAST, DT_I64, x->e);
        if (!c)
            return oom(ps);
        c->loc = x->e->loc;
        x->e = c;
        x->h++;
        return KILN_OK;
    }
    return sem(ps, x->e->loc, "an index must be an integer, not %s", cls_desc(x));
}

/* -------------------------------------------------------------- parser */
static PE parse_expr(Parser *ps);

static int expect_close(Parser *ps, Punct close, const char *what)
{
    Tok *t = peek(ps);
    if (is_punct(t, close)) {
        next(ps);
        return KILN_OK;
    }
    char d[64];
    return syn(ps, t->loc, "expected '%s' %s, found %s", punct_text[close], what,
               tok_desc(ps, t, d, sizeof d));
}

/* Parses `[e, ...]` after a tensor name into idx (at most IR_MAX_DIMS+1 are
 * kept: more is an arity error anyway). */
static int parse_list(Parser *ps, Punct close, PE *items, int max, int *n, const char *what)
{
    *n = 0;
    if (is_punct(peek(ps), close)) {
        next(ps);
        return KILN_OK;
    }
    for (;;) {
        PE x = parse_expr(ps);
        if (!x.e)
            return KILN_ESYNTAX;
        if (*n < max)
            items[*n] = x;
        (*n)++;
        Tok *t = peek(ps);
        if (is_punct(t, P_COMMA)) {
            next(ps);
            continue;
        }
        if (is_punct(t, close)) {
            next(ps);
            return KILN_OK;
        }
        char d[64];
        return syn(ps, t->loc, "expected ',' or '%s' %s, found %s", punct_text[close], what,
                   tok_desc(ps, t, d, sizeof d));
    }
}

static PE parse_load(Parser *ps, Tok *name)
{
    char *nm = tok_name(ps, name);
    if (!nm) {
        oom(ps);
        return bad;
    }
    int t = ir_find_tensor(ps->p, nm);
    if (t < 0) {
        if (find_param(ps->p, nm) >= 0)
            sem(ps, name->loc, "'%s' is a param, not a tensor", nm);
        else
            sem(ps, name->loc, "unknown tensor '%s'", nm);
        return bad;
    }
    const Tensor *T = &ps->p->tensors[t];
    if (t == ps->out) {
        sem(ps, name->loc, "statement reads its own output '%s'", nm);
        return bad;
    }
    if (T->kind != T_INPUT && T->writer < 0) {
        sem(ps, name->loc, "%s '%s' is read before any statement writes it",
            T->kind == T_OUTPUT ? "output" : "temp", nm);
        return bad;
    }
    next(ps); /* [ */
    PE idx[IR_MAX_DIMS + 1];
    int n;
    char what[96];
    snprintf(what, sizeof what, "in the index list of '%s'", nm);
    if (parse_list(ps, P_RBRACK, idx, IR_MAX_DIMS + 1, &n, what))
        return bad;
    if (n != T->ndim) {
        sem(ps, name->loc, "'%s' has %d dim%s but %d ind%s given", nm, T->ndim,
            T->ndim == 1 ? "" : "s", n, n == 1 ? "ex is" : "ices are");
        return bad;
    }
    Expr *ie[IR_MAX_DIMS];
    int h = 0;
    for (int i = 0; i < n; i++) {
        if (as_index(ps, &idx[i]))
            return bad;
        ie[i] = idx[i].e;
        h = hmax(h, idx[i].h);
    }
    return mknode(ps, expr_load(ps->a, T->dt, t, n, ie), C_DT, h + 1, name->loc);
}

static PE parse_call(Parser *ps, Tok *name)
{
    char *nm = tok_name(ps, name);
    if (!nm) {
        oom(ps);
        return bad;
    }
    int fi = find_func(nm);
    if (fi < 0) {
        if (ir_find_tensor(ps->p, nm) >= 0)
            sem(ps, name->loc, "'%s' is a tensor: index it with [...], not (...)", nm);
        else
            sem(ps, name->loc, "unknown function '%s'", nm);
        return bad;
    }
    next(ps); /* ( */
    PE a[4];
    int n;
    char what[96];
    snprintf(what, sizeof what, "in the arguments of '%s'", nm);
    if (parse_list(ps, P_RPAREN, a, 4, &n, what))
        return bad;
    if (n != funcs[fi].nargs) {
        sem(ps, name->loc, "'%s' takes %d argument%s, got %d", nm, funcs[fi].nargs,
            funcs[fi].nargs == 1 ? "" : "s", n);
        return bad;
    }
    Func f = funcs[fi].f;
    ExprKind k = funcs[fi].kind;
    Loc loc = name->loc;
    switch (f) {
    case F_MIN:
    case F_MAX: {
        PE r = binary(ps, k, a[0], a[1], name, nm);
        if (r.e)
            r.e->loc = loc;
        return r;
    }
    case F_ABS:
        if (!is_numeric(&a[0])) {
            sem(ps, a[0].e->loc, "'abs' needs a number, not bool");
            return bad;
        }
        return mknode(ps, expr_un(ps->a, k, a[0].e->dt, a[0].e), a[0].cls, a[0].h + 1, loc);
    case F_EXP:
    case F_LOG:
    case F_SQRT:
    case F_TANH:
    case F_SIGMOID: {
        Cls c;
        if (a[0].cls == C_LITINT || a[0].cls == C_LITFLOAT)
            c = C_LITFLOAT;
        else if (a[0].cls == C_DT && dtype_is_float(a[0].e->dt))
            c = C_DT;
        else {
            sem(ps, a[0].e->loc, "'%s' needs a float operand, not %s%s", nm, cls_desc(&a[0]),
                a[0].cls == C_DT && a[0].e->dt == DT_BOOL ? "" : ": use f32(...) or f64(...)");
            return bad;
        }
        return mknode(ps, expr_un(ps->a, k, c == C_DT ? a[0].e->dt : DT_F64, a[0].e), c, a[0].h + 1,
                      loc);
    }
    case F_SELECT: {
        if (a[0].cls != C_DT || a[0].e->dt != DT_BOOL) {
            sem(ps, a[0].e->loc, "select's condition must be a comparison (bool), not %s",
                cls_desc(&a[0]));
            return bad;
        }
        Cls c;
        DType dt;
        if (unify(ps, &a[1], &a[2], name, "select", &c, &dt))
            return bad;
        return mknode(ps, expr_select(ps->a, dt, a[0].e, a[1].e, a[2].e), c,
                      hmax(a[0].h, hmax(a[1].h, a[2].h)) + 1, loc);
    }
    default: { /* casts */
        DType t = f == F_F32 ? DT_F32 : f == F_F64 ? DT_F64 : f == F_I32 ? DT_I32 : DT_I64;
        PE x = a[0];
        if (!is_numeric(&x)) {
            sem(ps, x.e->loc, "cannot cast bool to %s: use select(cond, 1, 0)", nm);
            return bad;
        }
        if (!cannot_become(&x, t) && x.cls != C_IDX) {
            /* A literal simply takes the type; a same-type cast is a no-op. */
            if (become(ps, &x, t))
                return bad;
            return x;
        }
        if (become(ps, &x, default_type(&x)))
            return bad;
        if (x.e->dt == t)
            return x;
        return mknode(ps, expr_un(ps->a, EXPR_CAST, t, x.e), C_DT, x.h + 1, loc);
    }
    }
}

static int find_var(Parser *ps, const char *name)
{
    for (int i = 0; i < ps->nvars; i++)
        if (!strcmp(ps->vars[i]->name, name))
            return i;
    return -1;
}

static PE parse_name(Parser *ps, Tok *t)
{
    char *nm = tok_name(ps, t);
    if (!nm) {
        oom(ps);
        return bad;
    }
    int i = find_param(ps->p, nm);
    if (i >= 0)
        return mknode(ps, expr_int(ps->a, DT_I64, ps->p->params[i].value), C_LITINT, 1, t->loc);
    int ti = ir_find_tensor(ps->p, nm);
    if (ti >= 0) {
        sem(ps, t->loc, "'%s' is a tensor: write %s[%s]", nm, nm,
            ps->p->tensors[ti].ndim ? "..." : "");
        return bad;
    }
    if (find_func(nm) >= 0) {
        sem(ps, t->loc, "'%s' is a function: call it as %s(...)", nm, nm);
        return bad;
    }
    int v = find_var(ps, nm);
    if (v < 0) {
        if (ps->red == RED_NONE) {
            sem(ps, t->loc,
                "unknown variable '%s': with '=' every variable must be on the left-hand side "
                "(a reduction needs +=, *=, max= or min=)",
                nm);
            return bad;
        }
        if (ps->nvars == MAX_VARS) {
            sem(ps, t->loc, "too many variables (at most %d)", MAX_VARS);
            return bad;
        }
        Var *nv = ir_var_new(ps->a, nm, 0);
        if (!nv) {
            oom(ps);
            return bad;
        }
        nv->reduce = true;
        v = ps->nvars;
        ps->vars[ps->nvars++] = nv;
    }
    return mknode(ps, expr_var(ps->a, ps->vars[v]), C_IDX, 1, t->loc);
}

static PE parse_primary(Parser *ps)
{
    Tok *t = peek(ps);
    char d[64];
    switch (t->kind) {
    case TK_INT:
        next(ps);
        return mknode(ps, expr_int(ps->a, DT_I64, t->ival), C_LITINT, 1, t->loc);
    case TK_FLOAT:
        next(ps);
        return mknode(ps, expr_float(ps->a, DT_F64, t->fval), C_LITFLOAT, 1, t->loc);
    case TK_IDENT: {
        next(ps);
        Tok *n = peek(ps);
        if (is_punct(n, P_LBRACK))
            return parse_load(ps, t);
        if (is_punct(n, P_LPAREN))
            return parse_call(ps, t);
        return parse_name(ps, t);
    }
    case TK_PUNCT:
        if (t->op == P_LPAREN) {
            next(ps);
            PE x = parse_expr(ps);
            if (!x.e || expect_close(ps, P_RPAREN, "to close '('"))
                return bad;
            return x;
        }
        break;
    default:
        break;
    }
    syn(ps, t->loc, "expected an expression, found %s", tok_desc(ps, t, d, sizeof d));
    return bad;
}

static PE parse_unary(Parser *ps)
{
    Tok *t = peek(ps);
    if (++ps->nest > MAX_NEST) {
        syn(ps, t->loc, "expression nested too deeply (more than %d levels)", MAX_NEST);
        return bad;
    }
    PE r;
    if (is_punct(t, P_MINUS)) {
        next(ps);
        PE x = parse_unary(ps);
        if (!x.e)
            return bad;
        if (!is_numeric(&x)) {
            sem(ps, t->loc, "unary '-' needs a number, not bool");
            return bad;
        }
        if (x.cls == C_LITINT && x.e->kind == EXPR_INT) {
            x.e->u.i = (int64_t)(0 - (uint64_t)x.e->u.i);
            x.e->loc = t->loc;
            r = x;
        } else if (x.cls == C_LITFLOAT && x.e->kind == EXPR_FLOAT) {
            x.e->u.f = -x.e->u.f;
            x.e->loc = t->loc;
            r = x;
        } else {
            r = mknode(ps, expr_un(ps->a, EXPR_NEG, x.e->dt, x.e), x.cls, x.h + 1, t->loc);
        }
    } else if (is_punct(t, P_NOT)) {
        next(ps);
        PE x = parse_unary(ps);
        if (!x.e)
            return bad;
        if (x.cls != C_DT || x.e->dt != DT_BOOL) {
            sem(ps, t->loc, "'!' needs a comparison (bool), not %s", cls_desc(&x));
            return bad;
        }
        r = mknode(ps, expr_un(ps->a, EXPR_NOT, DT_BOOL, x.e), C_DT, x.h + 1, t->loc);
    } else {
        r = parse_primary(ps);
    }
    ps->nest--;
    return r;
}

static PE parse_mul(Parser *ps)
{
    PE x = parse_unary(ps);
    while (x.e) {
        Tok *t = peek(ps);
        ExprKind k;
        if (is_punct(t, P_STAR))
            k = EXPR_MUL;
        else if (is_punct(t, P_SLASH))
            k = EXPR_DIV;
        else if (is_punct(t, P_PERCENT))
            k = EXPR_MOD;
        else
            break;
        next(ps);
        PE y = parse_unary(ps);
        if (!y.e)
            return bad;
        x = binary(ps, k, x, y, t, punct_text[t->op]);
    }
    return x;
}

static PE parse_add(Parser *ps)
{
    PE x = parse_mul(ps);
    while (x.e) {
        Tok *t = peek(ps);
        ExprKind k;
        if (is_punct(t, P_PLUS))
            k = EXPR_ADD;
        else if (is_punct(t, P_MINUS))
            k = EXPR_SUB;
        else
            break;
        next(ps);
        PE y = parse_mul(ps);
        if (!y.e)
            return bad;
        x = binary(ps, k, x, y, t, punct_text[t->op]);
    }
    return x;
}

static bool cmp_kind(const Tok *t, ExprKind *k)
{
    if (t->kind != TK_PUNCT)
        return false;
    switch (t->op) {
    case P_LT:
        *k = EXPR_LT;
        return true;
    case P_LE:
        *k = EXPR_LE;
        return true;
    case P_GT:
        *k = EXPR_GT;
        return true;
    case P_GE:
        *k = EXPR_GE;
        return true;
    case P_EQEQ:
        *k = EXPR_EQ;
        return true;
    case P_NE:
        *k = EXPR_NE;
        return true;
    default:
        return false;
    }
}

static PE parse_cmp(Parser *ps)
{
    PE x = parse_add(ps);
    ExprKind k;
    Tok *t = peek(ps);
    if (!x.e || !cmp_kind(t, &k))
        return x;
    next(ps);
    PE y = parse_add(ps);
    if (!y.e)
        return bad;
    Tok *t2 = peek(ps);
    ExprKind k2;
    if (cmp_kind(t2, &k2)) {
        syn(ps, t2->loc, "comparisons cannot be chained: combine them with &&");
        return bad;
    }
    return compare(ps, k, x, y, t);
}

static PE parse_and(Parser *ps)
{
    PE x = parse_cmp(ps);
    while (x.e && is_punct(peek(ps), P_ANDAND)) {
        Tok *t = next(ps);
        PE y = parse_cmp(ps);
        if (!y.e)
            return bad;
        x = logic(ps, EXPR_AND, x, y, t);
    }
    return x;
}

static PE parse_expr(Parser *ps)
{
    PE x = parse_and(ps);
    while (x.e && is_punct(peek(ps), P_OROR)) {
        Tok *t = next(ps);
        PE y = parse_and(ps);
        if (!y.e)
            return bad;
        x = logic(ps, EXPR_OR, x, y, t);
    }
    return x;
}

/* -------------------------------------------------------- statements */
static int parse_lhs(Parser *ps, Stmt *st)
{
    char d[64];
    Tok *t = next(ps);
    if (t->kind != TK_IDENT)
        return syn(ps, t->loc, "expected the name of the tensor to write, found %s",
                   tok_desc(ps, t, d, sizeof d));
    char *nm = tok_name(ps, t);
    if (!nm)
        return oom(ps);
    int ti = ir_find_tensor(ps->p, nm);
    if (ti < 0) {
        if (find_param(ps->p, nm) >= 0)
            return sem(ps, t->loc, "'%s' is a param, not a tensor", nm);
        return sem(ps, t->loc, "unknown tensor '%s'", nm);
    }
    const Tensor *T = &ps->p->tensors[ti];
    if (T->kind == T_INPUT)
        return sem(ps, t->loc, "cannot write input tensor '%s'", nm);
    if (T->writer >= 0) {
        const Stmt *w = &ps->p->stmts[T->writer];
        if (w->loc.line)
            return sem(ps, t->loc, "tensor '%s' is already written by the statement at %d:%d", nm,
                       w->loc.line, w->loc.col);
        return sem(ps, t->loc, "tensor '%s' is already written by statement %d", nm, T->writer + 1);
    }
    ps->out = ti;
    Tok *lb = peek(ps);
    if (!is_punct(lb, P_LBRACK))
        return syn(ps, lb->loc, "expected '[' after '%s', found %s%s", nm,
                   tok_desc(ps, lb, d, sizeof d), T->ndim ? "" : " (a scalar is written s[])");
    next(ps);
    int n = 0;
    if (is_punct(peek(ps), P_RBRACK)) {
        next(ps);
    } else {
        for (;;) {
            Tok *v = peek(ps);
            Tok *after = peek2(ps);
            if (v->kind != TK_IDENT || !(is_punct(after, P_COMMA) || is_punct(after, P_RBRACK))) {
                if (v->kind == TK_EOF || is_punct(v, P_COMMA) || is_punct(v, P_RBRACK))
                    return syn(ps, v->loc,
                               "expected a variable in the left-hand index list, found %s",
                               tok_desc(ps, v, d, sizeof d));
                if (v->kind == TK_IDENT && after->kind == TK_EOF)
                    return syn(ps, after->loc, "expected ']' after the left-hand index list");
                if (v->kind == TK_IDENT && after->kind == TK_IDENT)
                    return syn(ps, after->loc,
                               "expected ',' or ']' in the left-hand index list, found %s",
                               tok_desc(ps, after, d, sizeof d));
                return sem(ps, v->loc,
                           "left-hand indices must be plain variables (write the index "
                           "arithmetic on the right-hand side)");
            }
            char *vn = tok_name(ps, v);
            if (!vn)
                return oom(ps);
            if (find_param(ps->p, vn) >= 0)
                return sem(ps, v->loc, "left-hand index '%s' is a param, not a variable", vn);
            if (ir_find_tensor(ps->p, vn) >= 0)
                return sem(ps, v->loc, "left-hand index '%s' is a tensor, not a variable", vn);
            if (find_func(vn) >= 0)
                return sem(ps, v->loc, "left-hand index '%s' is a function name, not a variable",
                           vn);
            if (find_var(ps, vn) >= 0)
                return sem(ps, v->loc, "variable '%s' appears twice on the left-hand side", vn);
            if (n == IR_MAX_DIMS)
                return sem(ps, v->loc, "too many left-hand indices");
            Var *var = ir_var_new(ps->a, vn, n < T->ndim ? T->dims[n] : 1);
            if (!var)
                return oom(ps);
            ps->vars[ps->nvars++] = var;
            n++;
            next(ps);
            if (is_punct(next(ps), P_RBRACK))
                break;
        }
    }
    if (n != T->ndim)
        return sem(ps, t->loc, "'%s' has %d dim%s but the left-hand side gives %d ind%s", nm,
                   T->ndim, T->ndim == 1 ? "" : "s", n, n == 1 ? "ex" : "ices");
    ps->nspatial = n;
    st->out = ti;
    return KILN_OK;
}

static int parse_assign(Parser *ps, RedOp *red)
{
    Tok *t = peek(ps);
    if (is_punct(t, P_ASSIGN))
        *red = RED_NONE;
    else if (is_punct(t, P_PLUSEQ))
        *red = RED_SUM;
    else if (is_punct(t, P_STAREQ))
        *red = RED_PROD;
    else if ((tok_is(ps, t, "max") || tok_is(ps, t, "min")) && is_punct(peek2(ps), P_ASSIGN)) {
        *red = tok_is(ps, t, "max") ? RED_MAX : RED_MIN;
        next(ps);
    } else {
        char d[64];
        return syn(ps, t->loc,
                   "expected '=', '+=', '*=', 'max=' or 'min=' after the left-hand side, found %s",
                   tok_desc(ps, t, d, sizeof d));
    }
    next(ps);
    return KILN_OK;
}

static int parse_stmt(Parser *ps, Stmt *st)
{
    int rc = parse_lhs(ps, st);
    if (!rc)
        rc = parse_assign(ps, &st->red);
    if (rc)
        return rc;
    ps->red = st->red;
    Tok *start = peek(ps);
    PE x = parse_expr(ps);
    if (!x.e)
        return ps->rc ? ps->rc : KILN_ESYNTAX;
    Tok *t = peek(ps);
    if (t->kind != TK_EOF) {
        char d[64];
        return syn(ps, t->loc, "expected an operator or the end of the statement, found %s",
                   tok_desc(ps, t, d, sizeof d));
    }
    const Tensor *T = &ps->p->tensors[st->out];
    if (cannot_become(&x, T->dt)) {
        const char *hint = "";
        char h[32];
        if (x.cls == C_DT && x.e->dt == DT_BOOL)
            hint = ": use select(cond, 1, 0)";
        else if (x.cls != C_LITFLOAT) {
            snprintf(h, sizeof h, ": use %s(...)", dtype_name(T->dt));
            hint = h;
        }
        return sem(ps, start->loc, "cannot store %s into %s tensor '%s'%s", cls_desc(&x),
                   dtype_name(T->dt), T->name, hint);
    }
    if (become(ps, &x, T->dt))
        return KILN_ESEMANTIC;
    st->rhs = x.e;
    return KILN_OK;
}

int ir_parse_stmt(Program *p, const char *text, Loc text_loc, Stmt *out, kiln_error *e)
{
    Parser ps = {0};
    ps.p = p;
    ps.a = p->arena;
    ps.text = text;
    ps.e = e;
    ps.out = -1;
    if (text_loc.line <= 0) /* no place known (built through the API): count from 1:1 */
        text_loc = (Loc){1, 1};
    memset(out, 0, sizeof *out);
    int rc = lex(&ps, text_loc);
    if (!rc)
        rc = parse_stmt(&ps, out);
    free(ps.toks);
    if (rc)
        return ps.rc ? ps.rc : rc;
    out->nvars = ps.nvars;
    out->nspatial = ps.nspatial;
    out->vars = arena_alloc(p->arena, sizeof(Var *) * (size_t)(ps.nvars ? ps.nvars : 1));
    out->text = arena_strdup(p->arena, text);
    if (!out->vars || !out->text)
        return ir_error(e, KILN_ENOMEM, p->file, text_loc, "out of memory");
    memcpy(out->vars, ps.vars, sizeof(Var *) * (size_t)ps.nvars);
    out->loc = text_loc;
    return KILN_OK;
}
