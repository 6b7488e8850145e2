/* tune/trace.c: traces with sampling instructions — parse, apply, print.
 *
 * A trace is the plain schedule text (docs/schedules.md) plus lines that
 * sample values later lines use (syntax: docs/tuning.md):
 *
 *   t0 = sample_perfect_tile(C.i, 4, 64)  # decision: [8, 2, 8, 8]
 *   C.i0, C.i1, C.i2, C.i3 = split(C.i, t0)
 *   u = sample_categorical([0, 16, 64], [0.3, 0.3, 0.4])  # decision: 1
 *   auto_unroll(C, u)
 *   inline(T) if keep
 *
 * A plain line means what sched_apply_text (ir/sched_text.c) makes of it
 * once its variables are replaced by decided values, so a trace can use
 * every primitive the text form knows; lines of the usual shape are
 * tokenised once at parse time and replayed through sched_apply_call
 * (same checks, same primitive), the rest and every error go through the
 * text (see "the fast path").  Sampling reads loop extents from the
 * schedule as it stands at that line.  Randomness only ever comes from the
 * caller's explicit state. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tune/tuner.h"

/* ------------------------------------------------------------ random */
double trace_rand01(uint64_t *rng)
{
    return (double)(ir_rand(rng) >> 11) * (1.0 / 9007199254740992.0);
}

static int64_t rnd(uint64_t *rng, int64_t n)
{
    return n <= 1 ? 0 : (int64_t)((ir_rand(rng) >> 11) % (uint64_t)n);
}

int trace_sample_cat(const double *probs, int n, uint64_t *rng)
{
    double tot = 0;
    for (int i = 0; i < n; i++)
        tot += probs[i] > 0 ? probs[i] : 0;
    if (tot <= 0)
        return (int)rnd(rng, n);
    double u = trace_rand01(rng) * tot;
    for (int i = 0; i < n; i++) {
        double p = probs[i] > 0 ? probs[i] : 0;
        if (u < p)
            return i;
        u -= p;
    }
    for (int i = n - 1; i >= 0; i--)
        if (probs[i] > 0)
            return i;
    return n - 1;
}

/* n factors multiplying to extent, each prime's exponent spread over the
 * n slots as a uniformly drawn composition (stars and bars), redrawn until
 * the innermost is at most max_inner (MetaSchedule's SamplePerfectTile). */
bool trace_sample_tile(int64_t extent, int n, int64_t max_inner, uint64_t *rng, int64_t *out)
{
    if (n < 1 || n > TRACE_MAX_TILE || extent < 1)
        return false;
    int64_t primes[64];
    int exps[64], np = 0;
    int64_t x = extent;
    for (int64_t d = 2; d * d <= x && np < 63; d++)
        if (x % d == 0) {
            primes[np] = d;
            exps[np] = 0;
            while (x % d == 0) {
                x /= d;
                exps[np]++;
            }
            np++;
        }
    if (x > 1) {
        primes[np] = x;
        exps[np++] = 1;
    }
    for (int attempt = 0; attempt < 64; attempt++) {
        for (int i = 0; i < n; i++)
            out[i] = 1;
        for (int k = 0; k < np; k++) {
            /* choose n-1 bar positions among exps+n-1 slots */
            int slots = exps[k] + n - 1;
            bool bar[80] = {0};
            if (slots >= 80)
                return false;
            for (int b = 0; b < n - 1; b++) {
                int pos;
                do
                    pos = (int)rnd(rng, slots);
                while (bar[pos]);
                bar[pos] = true;
            }
            int part = 0;
            for (int sl = 0; sl < slots; sl++) {
                if (bar[sl])
                    part++;
                else
                    out[part] *= primes[k];
            }
        }
        if (max_inner <= 0 || out[n - 1] <= max_inner)
            return true;
    }
    /* give up on variety: everything outside */
    for (int i = 0; i < n; i++)
        out[i] = 1;
    out[0] = extent;
    return true;
}

/* ------------------------------------------------------------ parsing */
typedef struct {
    const char *file;
    const Program *p;
    kiln_error *e;
    TraceProg *t;
    TDec *dec; /* grows with t->nsamp */
    int deccap;
} Ps;

static int perr(Ps *ps, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int perr(Ps *ps, int line, int col, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ir_error(ps->e, KILN_ESYNTAX, ps->file, (Loc){line, col}, "%s", msg);
}

static const char *const keywords[] = {"split",
                                       "fuse",
                                       "reorder",
                                       "parallel",
                                       "vectorize",
                                       "unroll",
                                       "serial",
                                       "inline",
                                       "compute_at",
                                       "compute_root",
                                       "cache_write",
                                       "cache_read",
                                       "rfactor",
                                       "if",
                                       "sample_perfect_tile",
                                       "sample_categorical",
                                       "auto_unroll",
                                       "auto_parallel",
                                       NULL};

static bool is_keyword(const char *s, size_t n)
{
    for (int i = 0; keywords[i]; i++)
        if (strlen(keywords[i]) == n && !memcmp(keywords[i], s, n))
            return true;
    return false;
}

static bool idc(char c)
{
    return c == '_' || isalnum((unsigned char)c);
}

static int find_var(const TraceProg *t, const char *s, size_t n)
{
    for (int i = t->n - 1; i >= 0; i--) {
        const TInst *in = &t->v[i];
        if ((in->kind == TI_TILE || in->kind == TI_CAT) && strlen(in->var) == n &&
            !memcmp(in->var, s, n))
            return in->samp;
    }
    return -1;
}

static const TInst *samp_inst(const TraceProg *t, int samp)
{
    return &t->v[t->samp_inst[samp]];
}

static TInst *new_inst(Ps *ps, TInstKind k, int line)
{
    TraceProg *t = ps->t;
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 32;
        TInst *v = realloc(t->v, sizeof(TInst) * (size_t)cap);
        if (!v)
            return NULL;
        t->v = v;
        t->cap = cap;
    }
    TInst *in = &t->v[t->n++];
    memset(in, 0, sizeof *in);
    in->kind = k;
    in->line = line;
    in->samp = -1;
    in->guard = -1;
    in->arg_samp = -1;
    in->inline_tensor = -1;
    return in;
}

static int add_samp(Ps *ps, TInst *in)
{
    TraceProg *t = ps->t;
    if (t->nsamp == ps->deccap) {
        int cap = ps->deccap ? ps->deccap * 2 : 16;
        TDec *d = realloc(ps->dec, sizeof(TDec) * (size_t)cap);
        int *si = realloc(t->samp_inst, sizeof(int) * (size_t)cap);
        if (d)
            ps->dec = d;
        if (si)
            t->samp_inst = si;
        if (!d || !si)
            return KILN_ENOMEM;
        ps->deccap = cap;
    }
    in->samp = t->nsamp;
    t->samp_inst[t->nsamp] = (int)(in - t->v);
    memset(&ps->dec[t->nsamp], 0, sizeof(TDec));
    t->nsamp++;
    return KILN_OK;
}

/* Index of the tensor named s[0..n) if a statement writes it, else -1.
 * Tensors, not statements, because cache_write and friends insert
 * statements (tensor indices of the user's program stay put). */
static int stmt_of(const Program *p, const char *s, size_t n)
{
    for (int i = 0; i < p->ntensors; i++)
        if (strlen(p->tensors[i].name) == n && !memcmp(p->tensors[i].name, s, n))
            return p->tensors[i].writer >= 0 ? i : -1;
    return -1;
}

static void note_stmt(TInst *in, int st)
{
    if (st < 0)
        return;
    for (int i = 0; i < in->nstmts; i++)
        if (in->stmts[i] == st)
            return;
    if (in->nstmts < 4)
        in->stmts[in->nstmts++] = st;
}

static void skip_ws(const char **c)
{
    while (**c == ' ' || **c == '\t' || **c == '\r')
        (*c)++;
}

/* Parses "[a, b, ...]" of integers (ints) or numbers. */
static int parse_list(Ps *ps, int line, const char *base, const char **c, bool ints, int64_t *iv,
                      double *dv, int max, int *n)
{
    skip_ws(c);
    if (**c != '[')
        return perr(ps, line, (int)(*c - base) + 1, "expected '[' to start a list");
    (*c)++;
    *n = 0;
    for (;;) {
        skip_ws(c);
        if (**c == ']' && *n == 0) {
            (*c)++;
            return KILN_OK;
        }
        char *end;
        if (*n == max)
            return perr(ps, line, (int)(*c - base) + 1, "list has more than %d entries", max);
        if (ints) {
            long long v = strtoll(*c, &end, 10);
            if (end == *c)
                return perr(ps, line, (int)(*c - base) + 1, "expected an integer");
            iv[*n] = v;
        } else {
            double v = strtod(*c, &end);
            if (end == *c || !isfinite(v) || v < 0)
                return perr(ps, line, (int)(*c - base) + 1, "expected a probability");
            dv[*n] = v;
        }
        (*n)++;
        *c = end;
        skip_ws(c);
        if (**c == ',') {
            (*c)++;
            continue;
        }
        if (**c == ']') {
            (*c)++;
            return KILN_OK;
        }
        return perr(ps, line, (int)(*c - base) + 1, "expected ',' or ']' in a list");
    }
}

static bool eat(const char **c, char ch)
{
    skip_ws(c);
    if (**c != ch)
        return false;
    (*c)++;
    return true;
}

static int read_ident(const char **c, bool dots, const char **s, size_t *n)
{
    skip_ws(c);
    const char *b = *c;
    if (!(isalpha((unsigned char)*b) || *b == '_'))
        return -1;
    while (idc(**c) || (dots && **c == '.' && idc((*c)[1])))
        (*c)++;
    *s = b;
    *n = (size_t)(*c - b);
    return 0;
}

static int check_var_name(Ps *ps, int line, int col, const char *s, size_t n)
{
    if (memchr(s, '.', n) || is_keyword(s, n))
        return perr(ps, line, col, "'%.*s' cannot name a trace variable", (int)n, s);
    for (int i = 0; i < ps->p->ntensors; i++)
        if (strlen(ps->p->tensors[i].name) == n && !memcmp(ps->p->tensors[i].name, s, n))
            return perr(ps, line, col, "'%.*s' is a tensor and cannot name a trace variable",
                        (int)n, s);
    if (find_var(ps->t, s, n) >= 0)
        return perr(ps, line, col, "trace variable '%.*s' is defined twice", (int)n, s);
    return KILN_OK;
}

/* The decision comment "decision: [..]" or "decision: k" of a sampling line. */
static int parse_decision(Ps *ps, int line, const char *base, const char *comment, TInst *in)
{
    const char *d = comment ? strstr(comment, "decision:") : NULL;
    if (!d)
        return KILN_OK;
    const char *c = d + 9;
    TDec *dec = &ps->dec[in->samp];
    if (in->kind == TI_TILE) {
        int n;
        int rc = parse_list(ps, line, base, &c, true, dec->v, NULL, TRACE_MAX_TILE, &n);
        if (rc)
            return rc;
        if (n != in->n)
            return perr(ps, line, (int)(d - base) + 1, "decision has %d factors, the sample %d", n,
                        in->n);
        dec->n = n;
    } else {
        char *end;
        skip_ws(&c);
        long long k = strtoll(c, &end, 10);
        if (end == c || k < 0 || k >= in->nchoices)
            return perr(ps, line, (int)(c - base) + 1,
                        "decision must be a choice index from 0 to %d", in->nchoices - 1);
        dec->n = 1;
        dec->v[0] = k;
    }
    return KILN_OK;
}

/* `auto_unroll(T, X)` / `auto_parallel(T, X)`; c just after the name. */
static int parse_auto(Ps *ps, int line, const char *base, const char *c, TInstKind k)
{
    TInst *in = new_inst(ps, k, line);
    if (!in)
        return KILN_ENOMEM;
    const char *s;
    size_t n;
    if (!eat(&c, '(') || read_ident(&c, false, &s, &n))
        return perr(ps, line, (int)(c - base) + 1, "expected '(' and a tensor name");
    /* a name the program does not have may be a temp that an earlier
     * line creates (cache_write, rfactor): it is looked up when applied */
    int st = stmt_of(ps->p, s, n);
    bool known = false;
    for (int i = 0; i < ps->p->ntensors && !known; i++)
        known = strlen(ps->p->tensors[i].name) == n && !memcmp(ps->p->tensors[i].name, s, n);
    if (st < 0 && known)
        return perr(ps, line, (int)(s - base) + 1, "'%.*s' is not a tensor written by a statement",
                    (int)n, s);
    note_stmt(in, st);
    if (!(in->target = strndup(s, n)))
        return KILN_ENOMEM;
    if (!eat(&c, ','))
        return perr(ps, line, (int)(c - base) + 1, "expected ',' after the tensor");
    skip_ws(&c);
    if (isdigit((unsigned char)*c)) {
        char *end;
        in->arg_val = strtoll(c, &end, 10);
        c = end;
    } else if (!read_ident(&c, false, &s, &n)) {
        in->arg_samp = find_var(ps->t, s, n);
        if (in->arg_samp < 0 || samp_inst(ps->t, in->arg_samp)->kind != TI_CAT)
            return perr(ps, line, (int)(s - base) + 1, "'%.*s' is not a categorical sample", (int)n,
                        s);
        TInst *ci = &ps->t->v[ps->t->samp_inst[in->arg_samp]];
        if (ci->role == ROLE_OTHER)
            ci->role = k == TI_AUTO_UNROLL ? ROLE_UNROLL : ROLE_PARALLEL;
    } else
        return perr(ps, line, (int)(c - base) + 1, "expected an integer or a sampled variable");
    if (!eat(&c, ')'))
        return perr(ps, line, (int)(c - base) + 1, "expected ')'");
    skip_ws(&c);
    if (*c)
        return perr(ps, line, (int)(c - base) + 1, "unexpected text after ')'");
    return KILN_OK;
}

static int add_seg(TInst *in, const char *lit, size_t n, int samp, int elem)
{
    TSeg *v = realloc(in->segs, sizeof(TSeg) * (size_t)(in->nsegs + 1));
    if (!v)
        return KILN_ENOMEM;
    in->segs = v;
    TSeg *sg = &v[in->nsegs++];
    sg->lit = strndup(lit, n);
    sg->samp = samp;
    sg->elem = elem;
    return sg->lit ? KILN_OK : KILN_ENOMEM;
}

/* ------------------------------------------------------ the fast path
 * Applying a plain line used to mean printing it with its values and
 * parsing it again (a third of scoring a candidate).  A line whose text
 * is a clean `names = prim(args)` is tokenised once here instead; each
 * argument is a literal identifier or integer, or a sampled variable (a
 * whole argument: a categorical's value, one factor, or a tile's inner
 * factors, which become several arguments).  trace_apply hands the
 * arguments to sched_apply_call, the same checks and primitive as the
 * text path.  Anything unusual (a token the schedule text would read
 * differently or reject, `;`, a variable inside a token) keeps the text
 * path, and so does every error: the line is then applied as text, which
 * gives exactly the old message (a failed call leaves the schedule as it
 * was). */
#define CALL_MAX_ARGS 64 /* sched_text.c's MAX_ARGS */

typedef struct TArg {
    SchedArg a; /* a.p NULL and samp >= 0: a sampled variable */
    int samp, elem;
} TArg;

struct TCall {
    int prim;
    int nnames, nargs; /* nargs: TArgs; nvals: arguments after expansion */
    int nvals;
    SchedArg names[IR_MAX_DIMS];
    TArg args[CALL_MAX_ARGS];
};

enum { CT_ID, CT_INT, CT_SLOT, CT_LP, CT_RP, CT_COMMA, CT_EQ };

typedef struct CTok {
    int k;
    const char *p;
    int len;
    int64_t v;
    int samp, elem;
} CTok;

static bool id_start(char c)
{
    return c == '_' || isalpha((unsigned char)c);
}

/* Tokens of a TI_PRIM line as ir/sched_text.c would read them once the
 * variables are substituted; false where that is not certain. */
static bool call_tokens(const TInst *in, CTok *tk, int max, int *n)
{
    *n = 0;
    for (int sg = 0; sg < in->nsegs; sg++) {
        const char *c = in->segs[sg].lit;
        bool slot_next = in->segs[sg].samp >= 0;
        while (*c) {
            char ch = *c;
            if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v') {
                c++;
                continue;
            }
            if (*n == max)
                return false;
            CTok *t = &tk[(*n)++];
            memset(t, 0, sizeof *t);
            t->p = c;
            if (id_start(ch)) {
                const char *q = c;
                for (;;) {
                    while (idc(*q))
                        q++;
                    if (*q != '.')
                        break;
                    if (!id_start(q[1]))
                        return false;
                    q++;
                }
                t->k = CT_ID;
                t->len = (int)(q - c);
                c = q;
                if (!*c && slot_next) /* the value would join the name */
                    return false;
                continue;
            }
            if (isdigit((unsigned char)ch) || (ch == '-' && isdigit((unsigned char)c[1]))) {
                const char *q = c + (ch == '-');
                int64_t v = 0;
                for (; isdigit((unsigned char)*q); q++) {
                    if (v > (INT64_MAX - (*q - '0')) / 10)
                        return false;
                    v = v * 10 + (*q - '0');
                }
                if (idc(*q) || (!*q && slot_next))
                    return false;
                t->k = CT_INT;
                t->v = ch == '-' ? -v : v;
                t->len = (int)(q - c);
                c = q;
                continue;
            }
            switch (ch) {
            case '(':
                t->k = CT_LP;
                break;
            case ')':
                t->k = CT_RP;
                break;
            case ',':
                t->k = CT_COMMA;
                break;
            case '=':
                t->k = CT_EQ;
                break;
            default:
                return false;
            }
            c++;
        }
        if (slot_next) {
            if (*n == max)
                return false;
            tk[(*n)++] = (CTok){.k = CT_SLOT, .samp = in->segs[sg].samp, .elem = in->segs[sg].elem};
        }
    }
    return true;
}

/* How many arguments a variable use becomes. */
static int slot_values(const TraceProg *t, int samp, int elem)
{
    const TInst *si = samp_inst(t, samp);
    return si->kind == TI_TILE && elem < 0 ? si->n - 1 : 1;
}

/* Sets in->call when the line has the fast path's shape (else leaves it
 * NULL: the text path).  Fails only for want of memory. */
static int build_call(const TraceProg *t, TInst *in)
{
    CTok tk[2 * CALL_MAX_ARGS + 2 * IR_MAX_DIMS + 8];
    int n, i = 0;
    if (!call_tokens(in, tk, (int)(sizeof tk / sizeof *tk), &n) || n < 3 || tk[0].k != CT_ID)
        return KILN_OK;
    struct TCall *c = calloc(1, sizeof *c);
    if (!c)
        return KILN_ENOMEM;
    if (tk[1].k == CT_COMMA || tk[1].k == CT_EQ) {
        for (;;) {
            if (i >= n || tk[i].k != CT_ID || c->nnames == IR_MAX_DIMS)
                goto text;
            c->names[c->nnames++] = (SchedArg){tk[i].p, tk[i].len, 0};
            i++;
            if (i < n && tk[i].k == CT_COMMA) {
                i++;
                continue;
            }
            if (i < n && tk[i].k == CT_EQ) {
                i++;
                break;
            }
            goto text;
        }
    }
    if (i >= n || tk[i].k != CT_ID || (c->prim = sched_prim_index(tk[i].p, tk[i].len)) < 0)
        goto text;
    if (++i >= n || tk[i].k != CT_LP)
        goto text;
    if (++i < n && tk[i].k != CT_RP) {
        for (;;) {
            if (i >= n || c->nargs == CALL_MAX_ARGS)
                goto text;
            TArg *a = &c->args[c->nargs++];
            a->samp = -1;
            a->elem = -1;
            if (tk[i].k == CT_ID) {
                a->a = (SchedArg){tk[i].p, tk[i].len, 0};
                c->nvals++;
            } else if (tk[i].k == CT_INT) {
                a->a = (SchedArg){NULL, 0, tk[i].v};
                c->nvals++;
            } else if (tk[i].k == CT_SLOT) {
                int nv = slot_values(t, tk[i].samp, tk[i].elem);
                if (nv < 1) /* `split(C.i, )`: the text path's error */
                    goto text;
                a->samp = tk[i].samp;
                a->elem = tk[i].elem;
                c->nvals += nv;
            } else
                goto text;
            if (++i < n && tk[i].k == CT_COMMA) {
                i++;
                continue;
            }
            break;
        }
    }
    if (i != n - 1 || tk[i].k != CT_RP || c->nvals > CALL_MAX_ARGS)
        goto text;
    in->call = c;
    return KILN_OK;
text:
    free(c);
    return KILN_OK;
}

/* A plain schedule line: split into literal pieces and variable uses. */
static int parse_prim(Ps *ps, int line, const char *base, const char *text)
{
    TInst *in = new_inst(ps, TI_PRIM, line);
    if (!in)
        return KILN_ENOMEM;
    const char *c = text, *lit = text;
    {
        const char *q = text, *s;
        size_t n;
        if (!read_ident(&q, false, &s, &n) && n == 6 && !memcmp(s, "inline", 6) && eat(&q, '(') &&
            !read_ident(&q, false, &s, &n))
            in->inline_tensor = stmt_of(ps->p, s, n);
    }
    int rc;
    while (*c) {
        if (isalpha((unsigned char)*c) || *c == '_') {
            const char *s = c;
            bool dot = false;
            while (idc(*c) || (*c == '.' && idc(c[1]))) {
                dot |= *c == '.';
                c++;
            }
            size_t n = (size_t)(c - s);
            if (dot) {
                note_stmt(in, stmt_of(ps->p, s, (size_t)(strchr(s, '.') - s)));
                continue;
            }
            int v = find_var(ps->t, s, n);
            if (v < 0)
                continue;
            int elem = -1;
            const char *after = c;
            if (*after == '[') {
                char *end;
                long k = strtol(after + 1, &end, 10);
                if (end == after + 1 || *end != ']')
                    return perr(ps, line, (int)(after - base) + 1, "expected [index] after '%.*s'",
                                (int)n, s);
                if (samp_inst(ps->t, v)->kind != TI_TILE || k < 0 || k >= samp_inst(ps->t, v)->n)
                    return perr(ps, line, (int)(after - base) + 1,
                                "index %ld out of range for '%.*s'", k, (int)n, s);
                elem = (int)k;
                c = end + 1;
            }
            if ((rc = add_seg(in, lit, (size_t)(s - lit), v, elem)))
                return rc;
            lit = c;
        } else if (isdigit((unsigned char)*c)) {
            while (idc(*c))
                c++;
        } else
            c++;
    }
    if ((rc = add_seg(in, lit, (size_t)(c - lit), -1, -1)))
        return rc;
    return build_call(ps->t, in);
}

/* One line (comment already split off into `comment`). */
static int parse_line(Ps *ps, int line, const char *base, char *code, const char *comment)
{
    /* strip trailing blanks */
    size_t len = strlen(code);
    while (len && isspace((unsigned char)code[len - 1]))
        code[--len] = 0;
    const char *c = code;
    skip_ws(&c);
    if (!*c)
        return KILN_OK;
    /* optional guard suffix " if VAR" */
    int guard = -1;
    char *ifp = NULL;
    for (char *q = code; (q = strstr(q, " if ")); q++)
        ifp = q;
    int gop = TG_NONZERO;
    int64_t gval = 0;
    if (ifp) {
        const char *g = ifp + 4;
        const char *s;
        size_t n;
        skip_ws(&g);
        if (!strncmp(g, "not ", 4)) {
            gop = TG_ZERO;
            g += 4;
            skip_ws(&g);
        }
        if (!read_ident(&g, false, &s, &n)) {
            skip_ws(&g);
            /* `V == c`, `V != c`, `V < c`, `V <= c`, `V > c`, `V >= c` */
            int op = -1, oplen = 2;
            if (gop == TG_NONZERO) {
                if ((g[0] == '=' || g[0] == '!') && g[1] == '=')
                    op = g[0] == '=' ? TG_EQ : TG_NE;
                else if (g[0] == '<' || g[0] == '>') {
                    bool eq = g[1] == '=';
                    op = g[0] == '<' ? (eq ? TG_LE : TG_LT) : (eq ? TG_GE : TG_GT);
                    oplen = eq ? 2 : 1;
                }
            }
            if (op >= 0) {
                const char *q = g + oplen;
                skip_ws(&q);
                char *end;
                long long v = strtoll(q, &end, 10);
                if (end != q) {
                    gop = op;
                    gval = v;
                    g = end;
                    skip_ws(&g);
                }
            }
            if (!*g) {
                guard = find_var(ps->t, s, n);
                if (guard < 0 || samp_inst(ps->t, guard)->kind != TI_CAT)
                    return perr(ps, line, (int)(s - base) + 1, "'%.*s' is not a categorical sample",
                                (int)n, s);
                TInst *gi = &ps->t->v[ps->t->samp_inst[guard]];
                if (gi->role == ROLE_OTHER)
                    gi->role = ROLE_INLINE;
                *ifp = 0;
            }
        }
    }
    /* sampling line: IDENT = sample_...( */
    const char *s;
    size_t n;
    const char *c2 = c;
    if (!read_ident(&c2, false, &s, &n) && eat(&c2, '=')) {
        const char *fs;
        size_t fn;
        const char *c3 = c2;
        if (!read_ident(&c3, false, &fs, &fn) &&
            ((fn == 19 && !memcmp(fs, "sample_perfect_tile", 19)) ||
             (fn == 18 && !memcmp(fs, "sample_categorical", 18)))) {
            int rc = check_var_name(ps, line, (int)(s - base) + 1, s, n);
            if (rc)
                return rc;
            bool tile = fn == 19;
            TInst *in = new_inst(ps, tile ? TI_TILE : TI_CAT, line);
            if (!in || !(in->var = strndup(s, n)) || add_samp(ps, in))
                return KILN_ENOMEM;
            if (guard >= 0)
                return perr(ps, line, 1, "a sampling line cannot have an 'if' guard");
            c = c3;
            if (!eat(&c, '('))
                return perr(ps, line, (int)(c - base) + 1, "expected '('");
            if (tile) {
                const char *ls;
                size_t ln;
                if (read_ident(&c, true, &ls, &ln) || !memchr(ls, '.', ln))
                    return perr(ps, line, (int)(c - base) + 1, "expected a loop name like C.i");
                int st = stmt_of(ps->p, ls, (size_t)((const char *)memchr(ls, '.', ln) - ls));
                if (st < 0)
                    return perr(ps, line, (int)(ls - base) + 1,
                                "'%.*s' is not a loop of a statement", (int)ln, ls);
                note_stmt(in, st);
                if (!(in->target = strndup(ls, ln)))
                    return KILN_ENOMEM;
                char *end;
                if (!eat(&c, ','))
                    return perr(ps, line, (int)(c - base) + 1, "expected ', n'");
                skip_ws(&c);
                long k = strtol(c, &end, 10);
                if (end == c || k < 1 || k > TRACE_MAX_TILE)
                    return perr(ps, line, (int)(c - base) + 1,
                                "the number of factors must be 1 to %d", TRACE_MAX_TILE);
                in->n = (int)k;
                c = end;
                if (eat(&c, ',')) {
                    skip_ws(&c);
                    long long m = strtoll(c, &end, 10);
                    if (end == c || m < 0)
                        return perr(ps, line, (int)(c - base) + 1,
                                    "expected the largest innermost factor (0: any)");
                    in->max_inner = m;
                    c = end;
                }
            } else {
                int nc, np;
                int rc2 =
                    parse_list(ps, line, base, &c, true, in->choices, NULL, TRACE_MAX_CHOICES, &nc);
                if (rc2)
                    return rc2;
                if (nc < 1)
                    return perr(ps, line, (int)(c - base) + 1, "no choices");
                in->nchoices = nc;
                if (eat(&c, ',')) {
                    if ((rc2 = parse_list(ps, line, base, &c, false, NULL, in->probs,
                                          TRACE_MAX_CHOICES, &np)))
                        return rc2;
                    if (np != nc)
                        return perr(ps, line, (int)(c - base) + 1,
                                    "%d probabilities for %d choices", np, nc);
                } else
                    for (int i = 0; i < nc; i++)
                        in->probs[i] = 1.0 / nc;
            }
            if (!eat(&c, ')'))
                return perr(ps, line, (int)(c - base) + 1, "expected ')'");
            skip_ws(&c);
            if (*c)
                return perr(ps, line, (int)(c - base) + 1, "unexpected text after ')'");
            return parse_decision(ps, line, base, comment, in);
        }
    }
    const char *c4 = c;
    if (!read_ident(&c4, false, &s, &n)) {
        TInstKind k = TI_PRIM;
        if (n == 11 && !memcmp(s, "auto_unroll", 11))
            k = TI_AUTO_UNROLL;
        else if (n == 13 && !memcmp(s, "auto_parallel", 13))
            k = TI_AUTO_PARALLEL;
        if (k != TI_PRIM) {
            int rc = parse_auto(ps, line, base, c4, k);
            if (!rc) {
                ps->t->v[ps->t->n - 1].guard = guard;
                ps->t->v[ps->t->n - 1].guard_op = gop;
                ps->t->v[ps->t->n - 1].guard_val = gval;
            }
            return rc;
        }
    }
    int rc = parse_prim(ps, line, base, code);
    if (!rc) {
        ps->t->v[ps->t->n - 1].guard = guard;
        ps->t->v[ps->t->n - 1].guard_op = gop;
        ps->t->v[ps->t->n - 1].guard_val = gval;
    }
    return rc;
}

int trace_parse(const char *text, const char *file, const Program *p, TraceProg **out, TDec **dec,
                kiln_error *e)
{
    *out = NULL;
    *dec = NULL;
    Ps ps = {file ? file : "<trace>", p, e, calloc(1, sizeof(TraceProg)), NULL, 0};
    if (!ps.t)
        return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    ps.t->prog = p;
    if (!(ps.t->file = strdup(ps.file))) {
        free(ps.t);
        return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    }
    int rc = KILN_OK, line = 0;
    const char *c = text;
    while (*c && !rc) {
        line++;
        const char *eol = strchr(c, '\n');
        size_t len = eol ? (size_t)(eol - c) : strlen(c);
        char *buf = strndup(c, len);
        if (!buf) {
            rc = KILN_ENOMEM;
            break;
        }
        char *hash = strchr(buf, '#');
        const char *comment = NULL;
        if (hash) {
            *hash = 0;
            comment = hash + 1;
        }
        rc = parse_line(&ps, line, buf, buf, comment);
        free(buf);
        c = eol ? eol + 1 : c + len;
    }
    if (rc == KILN_ENOMEM)
        ir_error(e, rc, NULL, (Loc){0, 0}, "out of memory");
    if (rc) {
        trace_prog_free(ps.t);
        free(ps.dec);
        return rc;
    }
    if (!ps.dec)
        ps.dec = calloc(1, sizeof(TDec));
    *out = ps.t;
    *dec = ps.dec;
    return KILN_OK;
}

void trace_prog_free(TraceProg *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n; i++) {
        TInst *in = &t->v[i];
        for (int k = 0; k < in->nsegs; k++)
            free(in->segs[k].lit);
        free(in->segs);
        free(in->call);
        free(in->var);
        free(in->target);
    }
    free(t->v);
    free(t->samp_inst);
    free(t->file);
    free(t);
}

/* ------------------------------------------------------------ printing */
/* The values a use of sampled variable samp stands for in a plain line:
 * a categorical's choice, one tile factor (elem >= 0), or a tile's inner
 * factors (elem < 0: all but the outermost).  Returns how many. */
static int used_values(const TraceProg *t, const TDec *dec, int samp, int elem,
                       int64_t v[TRACE_MAX_TILE])
{
    const TInst *si = samp_inst(t, samp);
    const TDec *d = &dec[samp];
    int n = 0;
    if (si->kind == TI_CAT)
        v[n++] = si->choices[d->n ? d->v[0] : 0];
    else if (elem >= 0)
        v[n++] = d->n ? d->v[elem] : 1;
    else
        for (int k = 1; k < si->n; k++)
            v[n++] = d->n ? d->v[k] : 1;
    return n;
}

static void print_value(StrBuf *sb, const TraceProg *t, const TDec *dec, int samp, int elem)
{
    int64_t v[TRACE_MAX_TILE];
    int n = used_values(t, dec, samp, elem, v);
    for (int k = 0; k < n; k++)
        sb_printf(sb, "%s%lld", k ? ", " : "", (long long)v[k]);
}

char *trace_to_text(const TraceProg *t, const TDec *dec)
{
    StrBuf sb = {0};
    sb_printf(&sb, "%s", "");
    for (int i = 0; i < t->n; i++) {
        const TInst *in = &t->v[i];
        const TDec *d = in->samp >= 0 ? &dec[in->samp] : NULL;
        switch (in->kind) {
        case TI_PRIM:
            for (int k = 0; k < in->nsegs; k++) {
                sb_printf(&sb, "%s", in->segs[k].lit);
                if (in->segs[k].samp >= 0) {
                    const TInst *si = samp_inst(t, in->segs[k].samp);
                    sb_printf(&sb, "%s", si->var);
                    if (in->segs[k].elem >= 0)
                        sb_printf(&sb, "[%d]", in->segs[k].elem);
                }
            }
            break;
        case TI_TILE:
            sb_printf(&sb, "%s = sample_perfect_tile(%s, %d, %lld)", in->var, in->target, in->n,
                      (long long)in->max_inner);
            if (d->n) {
                sb_printf(&sb, "  # decision: [");
                for (int k = 0; k < d->n; k++)
                    sb_printf(&sb, "%s%lld", k ? ", " : "", (long long)d->v[k]);
                sb_printf(&sb, "]");
            }
            break;
        case TI_CAT:
            sb_printf(&sb, "%s = sample_categorical([", in->var);
            for (int k = 0; k < in->nchoices; k++)
                sb_printf(&sb, "%s%lld", k ? ", " : "", (long long)in->choices[k]);
            sb_printf(&sb, "], [");
            for (int k = 0; k < in->nchoices; k++)
                sb_printf(&sb, "%s%.4g", k ? ", " : "", in->probs[k]);
            sb_printf(&sb, "])");
            if (d->n)
                sb_printf(&sb, "  # decision: %lld", (long long)d->v[0]);
            break;
        case TI_AUTO_UNROLL:
        case TI_AUTO_PARALLEL:
            sb_printf(&sb, "%s(%s, ", in->kind == TI_AUTO_UNROLL ? "auto_unroll" : "auto_parallel",
                      in->target);
            if (in->arg_samp >= 0)
                sb_printf(&sb, "%s)", samp_inst(t, in->arg_samp)->var);
            else
                sb_printf(&sb, "%lld)", (long long)in->arg_val);
            break;
        }
        if (in->guard >= 0) {
            const char *g = samp_inst(t, in->guard)->var;
            if (in->guard_op == TG_ZERO)
                sb_printf(&sb, " if not %s", g);
            else if (in->guard_op >= TG_EQ) {
                static const char *const ops[] = {"==", "!=", "<", "<=", ">", ">="};
                sb_printf(&sb, " if %s %s %lld", g, ops[in->guard_op - TG_EQ],
                          (long long)in->guard_val);
            } else
                sb_printf(&sb, " if %s", g);
        }
        sb_printf(&sb, "\n");
        (void)print_value;
    }
    return sb.s;
}

/* ------------------------------------------------------------ applying */
static int64_t cat_value(const TraceProg *t, const TDec *dec, int samp)
{
    const TInst *si = samp_inst(t, samp);
    return si->choices[dec[samp].n ? dec[samp].v[0] : 0];
}

static bool guard_holds(const TraceProg *t, const TDec *dec, const TInst *in)
{
    int64_t v = cat_value(t, dec, in->guard);
    switch (in->guard_op) {
    case TG_ZERO:
        return v == 0;
    case TG_EQ:
        return v == in->guard_val;
    case TG_NE:
        return v != in->guard_val;
    case TG_LT:
        return v < in->guard_val;
    case TG_LE:
        return v <= in->guard_val;
    case TG_GT:
        return v > in->guard_val;
    case TG_GE:
        return v >= in->guard_val;
    default:
        return v != 0;
    }
}

static int aerr(const TraceProg *t, const TInst *in, kiln_error *e, const char *msg)
{
    return ir_error(e, KILN_ESCHEDULE, t->file, (Loc){in->line, 1}, "%s", msg);
}

/* The statements the schedule works on (grown by cache_write etc.). */
static const Program *cur_prog(const Schedule *s)
{
    return s->dp ? s->dp : s->prog;
}

static bool inlined(const Schedule *s, int tensor)
{
    int w = cur_prog(s)->tensors[tensor].writer;
    return w >= 0 && s->st[w].inlined;
}

/* auto_unroll: unroll the innermost loops, inside out, while the product
 * of their extents stays <= max (the vectorized loop does not count). */
static void auto_unroll(Schedule *s, int st, int64_t max)
{
    StmtSched *ss = &s->st[st];
    int64_t prod = 1;
    for (int i = ss->norder - 1; i >= 0 && max > 1; i--) {
        SLoop *l = &ss->loops[ss->order[i]];
        if (l->kind == LOOP_VECTORIZED)
            continue;
        if (l->kind != LOOP_SERIAL || l->extent > 256 || prod * l->extent > max)
            break;
        bool host = false; /* a loop another statement is computed at stays a loop */
        for (int j = 0; j < cur_prog(s)->nstmts && !host; j++)
            host = s->st[j].at && s->st[j].at_stmt == st && s->st[j].at_loop == ss->order[i];
        if (host)
            break;
        if (l->extent > 1 && sched_annotate(s, st, ss->order[i], LOOP_UNROLLED, NULL))
            break;
        prod *= l->extent;
    }
}

/* auto_parallel: fuse the n outermost loops (spatial, serial, stopping at
 * the first that is not) and run the result in parallel. */
static int auto_parallel(Schedule *s, int st, int64_t n, kiln_error *e)
{
    StmtSched *ss = &s->st[st];
    for (int i = 0; i < ss->norder; i++)
        if (ss->loops[ss->order[i]].kind == LOOP_PARALLEL)
            return KILN_OK;
    int loops[IR_MAX_DIMS], k = 0;
    for (int i = 0; i < ss->norder && k < n && k < IR_MAX_DIMS; i++) {
        SLoop *l = &ss->loops[ss->order[i]];
        if (l->reduce || l->kind != LOOP_SERIAL || i == ss->norder - 1)
            break;
        /* a loop that another statement is computed at cannot be fused:
         * it may run in parallel alone, as the last of the fused ones */
        bool host = false;
        for (int j = 0; j < cur_prog(s)->nstmts && !host; j++)
            host = s->st[j].at && s->st[j].at_stmt == st && s->st[j].at_loop == ss->order[i];
        if (host && k > 0)
            break;
        if (host) {
            loops[k++] = ss->order[i];
            break;
        }
        loops[k++] = ss->order[i];
    }
    if (k == 0)
        return KILN_OK;
    int par = loops[0];
    if (k > 1) {
        int rc = sched_fuse(s, st, k, loops, NULL, &par, e);
        if (rc)
            return rc;
    }
    return sched_annotate(s, st, par, LOOP_PARALLEL, e);
}

static bool tile_valid(const TInst *in, const TDec *d, int64_t extent)
{
    if (d->n != in->n)
        return false;
    int64_t prod = 1;
    for (int k = 0; k < d->n; k++) {
        if (d->v[k] < 1 || prod > ((int64_t)1 << 40) / d->v[k])
            return false;
        prod *= d->v[k];
    }
    return prod == extent && (in->max_inner <= 0 || d->v[d->n - 1] <= in->max_inner);
}

/* The fast path of a plain line; an error (any) leaves s unchanged. */
static int apply_call(const TraceProg *t, const struct TCall *c, Schedule *s, const TDec *dec)
{
    SchedArg args[CALL_MAX_ARGS];
    int n = 0;
    for (int i = 0; i < c->nargs; i++) {
        const TArg *a = &c->args[i];
        if (a->samp < 0) {
            args[n++] = a->a;
            continue;
        }
        int64_t v[TRACE_MAX_TILE];
        int nv = used_values(t, dec, a->samp, a->elem, v);
        for (int k = 0; k < nv; k++) {
            if (v[k] == INT64_MIN) /* too large for the text form: its error */
                return KILN_ESYNTAX;
            args[n++] = (SchedArg){NULL, 0, v[k]};
        }
    }
    return sched_apply_call(s, c->prim, c->names, c->nnames, args, n);
}

int trace_apply(const TraceProg *t, Schedule *s, TDec *dec, bool *active, uint64_t *rng,
                kiln_error *e)
{
    if (active)
        for (int i = 0; i < t->nsamp; i++)
            active[i] = false;
    /* tensors inlined by a guarded line: their later lines are skipped
     * (an unconditional inline followed by such lines stays an error) */
    uint64_t cond_inl[4] = {0, 0, 0, 0};
    StrBuf sb = {0};
    int rc = KILN_OK;
    for (int i = 0; i < t->n && !rc; i++) {
        const TInst *in = &t->v[i];
        bool skip = false;
        for (int k = 0; k < in->nstmts; k++)
            skip |= in->stmts[k] < 256 &&
                    (cond_inl[in->stmts[k] / 64] >> (in->stmts[k] % 64) & 1) &&
                    inlined(s, in->stmts[k]);
        if (skip)
            continue;
        if (in->guard >= 0 && !guard_holds(t, dec, in))
            continue;
        switch (in->kind) {
        case TI_TILE: {
            int st, lp;
            if ((rc = sched_find_loop(s, in->target, &st, &lp, e))) {
                ir_error(e, rc, t->file, (Loc){in->line, 1}, "unknown loop '%s'", in->target);
                break;
            }
            int64_t ext = s->st[st].loops[lp].extent;
            TDec *d = &dec[in->samp];
            if (!tile_valid(in, d, ext)) {
                d->n = in->n;
                trace_sample_tile(ext, in->n, in->max_inner, rng, d->v);
            }
            if (active)
                active[in->samp] = true;
            break;
        }
        case TI_CAT: {
            TDec *d = &dec[in->samp];
            if (d->n != 1 || d->v[0] < 0 || d->v[0] >= in->nchoices) {
                d->n = 1;
                d->v[0] = trace_sample_cat(in->probs, in->nchoices, rng);
            }
            if (active)
                active[in->samp] = true;
            break;
        }
        case TI_AUTO_UNROLL:
        case TI_AUTO_PARALLEL: {
            int64_t v = in->arg_samp >= 0 ? cat_value(t, dec, in->arg_samp) : in->arg_val;
            const Program *cp = cur_prog(s);
            int st = -1;
            if (in->nstmts > 0)
                st = cp->tensors[in->stmts[0]].writer;
            else
                for (int k = 0; k < cp->ntensors && st < 0; k++)
                    if (!strcmp(cp->tensors[k].name, in->target))
                        st = cp->tensors[k].writer;
            if (st < 0) {
                rc = aerr(t, in, e, "unknown tensor in auto_unroll/auto_parallel");
                break;
            }
            if (in->kind == TI_AUTO_UNROLL)
                auto_unroll(s, st, v);
            else if (v > 0 && (rc = auto_parallel(s, st, v, e)))
                aerr(t, in, e, "auto_parallel failed");
            break;
        }
        case TI_PRIM: {
            if (in->call && apply_call(t, in->call, s, dec) == KILN_OK) {
                if (in->guard >= 0 && in->inline_tensor >= 0 && in->inline_tensor < 256)
                    cond_inl[in->inline_tensor / 64] |= (uint64_t)1 << (in->inline_tensor % 64);
                break;
            }
            sb.len = 0;
            if (sb.s)
                sb.s[0] = 0;
            for (int k = 0; k < in->nsegs; k++) {
                sb_printf(&sb, "%s", in->segs[k].lit);
                if (in->segs[k].samp >= 0)
                    print_value(&sb, t, dec, in->segs[k].samp, in->segs[k].elem);
            }
            kiln_error tmp;
            kiln_error_clear(&tmp);
            if ((rc = sched_apply_text(s, sb.s ? sb.s : "", "<trace>", &tmp)))
                ir_error(e, rc, t->file, (Loc){in->line, tmp.col}, "%s", tmp.msg);
            else if (in->guard >= 0 && in->inline_tensor >= 0 && in->inline_tensor < 256)
                cond_inl[in->inline_tensor / 64] |= (uint64_t)1 << (in->inline_tensor % 64);
            break;
        }
        }
    }
    sb_free(&sb);
    return rc;
}
