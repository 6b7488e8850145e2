/* ir/sched_text.c: the schedule text (trace form) — parse and print.
 *
 *   C.io, C.ii = split(C.i, 32)     # one primitive per line (or ';')
 *   C.ij = fuse(C.i, C.j)
 *   reorder(C.io, C.k, C.ii)
 *   parallel(C.io)  vectorize(C.ji)  unroll(C.ii)  serial(C.io)
 *   inline(T)
 *
 * Tokens: identifiers with dots, integers, ( ) , = ; and newlines; `#`
 * starts a comment.  Parsing applies each primitive as soon as its line is
 * read, through the same sched_* functions the C API uses, so the text and
 * the API cannot disagree; an error stops at file:line:col of the
 * offending token.  Printing replays the log of applied primitives. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

#define MAX_ARGS 64

typedef enum { TK_ID, TK_INT, TK_LP, TK_RP, TK_COMMA, TK_EQ, TK_SEMI, TK_NL, TK_EOF } TokKind;

typedef struct {
    TokKind k;
    const char *p;
    int len;
    Loc loc;
    int64_t v;
} Tok;

typedef struct {
    const char *cur;
    int line, col;
    const char *file;
    Schedule *s;
    kiln_error *e;
    Tok tok;
} Parser;

static int perr(Parser *ps, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(Parser *ps, Loc loc, const char *fmt, ...)
{
    if (!ps->e)
        return KILN_ESYNTAX;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ir_error(ps->e, KILN_ESYNTAX, ps->file, loc, "%s", msg);
}

static bool id_start(char c)
{
    return c == '_' || isalpha((unsigned char)c);
}

static bool id_char(char c)
{
    return c == '_' || isalnum((unsigned char)c);
}

static void adv(Parser *ps, int n)
{
    ps->cur += n;
    ps->col += n;
}

/* Reads the next token into ps->tok. */
static int next(Parser *ps)
{
    for (;;) {
        char c = *ps->cur;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v')
            adv(ps, 1);
        else if (c == '#')
            while (*ps->cur && *ps->cur != '\n')
                adv(ps, 1);
        else
            break;
    }
    Tok *t = &ps->tok;
    memset(t, 0, sizeof *t);
    t->p = ps->cur;
    t->loc = (Loc){ps->line, ps->col};
    char c = *ps->cur;
    if (!c) {
        t->k = TK_EOF;
        return KILN_OK;
    }
    if (c == '\n') {
        t->k = TK_NL;
        t->len = 1;
        ps->cur++;
        ps->line++;
        ps->col = 1;
        return KILN_OK;
    }
    if (id_start(c)) {
        const char *p = ps->cur;
        for (;;) {
            while (id_char(*p))
                p++;
            if (*p != '.')
                break;
            if (!id_start(p[1]))
                return perr(ps, (Loc){ps->line, ps->col + (int)(p + 1 - ps->cur)},
                            "expected a loop name after '.'");
            p++;
        }
        t->k = TK_ID;
        t->len = (int)(p - ps->cur);
        adv(ps, t->len);
        return KILN_OK;
    }
    if (isdigit((unsigned char)c) || (c == '-' && isdigit((unsigned char)ps->cur[1]))) {
        const char *p = ps->cur;
        bool neg = *p == '-';
        if (neg)
            p++;
        int64_t v = 0;
        for (; isdigit((unsigned char)*p); p++) {
            if (v > (INT64_MAX - (*p - '0')) / 10)
                return perr(ps, t->loc, "integer '%.*s' is too large",
                            (int)strspn(ps->cur, "-0123456789"), ps->cur);
            v = v * 10 + (*p - '0');
        }
        if (id_char(*p))
            return perr(ps, t->loc, "malformed number '%.*s'",
                        (int)(strcspn(ps->cur, " \t\r\n,()=;#")), ps->cur);
        t->k = TK_INT;
        t->v = neg ? -v : v;
        t->len = (int)(p - ps->cur);
        adv(ps, t->len);
        return KILN_OK;
    }
    t->len = 1;
    switch (c) {
    case '(':
        t->k = TK_LP;
        break;
    case ')':
        t->k = TK_RP;
        break;
    case ',':
        t->k = TK_COMMA;
        break;
    case '=':
        t->k = TK_EQ;
        break;
    case ';':
        t->k = TK_SEMI;
        break;
    default:
        if (isprint((unsigned char)c))
            return perr(ps, t->loc, "unexpected character '%c'", c);
        return perr(ps, t->loc, "unexpected byte 0x%02x", (unsigned)(unsigned char)c);
    }
    adv(ps, 1);
    return KILN_OK;
}

static bool tok_is(const Tok *t, const char *s)
{
    return t->k == TK_ID && (size_t)t->len == strlen(s) && !memcmp(t->p, s, (size_t)t->len);
}

static const char *tok_desc(const Tok *t, char *buf, size_t n)
{
    switch (t->k) {
    case TK_NL:
        return "end of line";
    case TK_EOF:
        return "end of input";
    default:
        snprintf(buf, n, "'%.*s'", t->len, t->p);
        return buf;
    }
}

/* p[0..len) into out, cut to n - 1 bytes (snprintf's "%.*s"). */
static void copy_cut(char *out, size_t n, const char *p, size_t len)
{
    if (len > n - 1)
        len = n - 1;
    memcpy(out, p, len);
    out[len] = 0;
}

/* Resolves a loop argument "T.v". */
static int resolve_loop(Parser *ps, const Tok *t, int *stmt, int *loop)
{
    char buf[64];
    if (t->k != TK_ID || !memchr(t->p, '.', (size_t)t->len))
        return perr(ps, t->loc, "expected a loop name like C.i, got %s",
                    tok_desc(t, buf, sizeof buf));
    char q[256];
    copy_cut(q, sizeof q, t->p, (size_t)t->len);
    /* the common case finds it: build a message only when there is none */
    int rc = sched_find_loop(ps->s, q, stmt, loop, NULL);
    if (rc && ps->e) {
        kiln_error tmp;
        kiln_error_clear(&tmp);
        rc = sched_find_loop(ps->s, q, stmt, loop, &tmp);
        return ir_error(ps->e, rc, ps->file, t->loc, "%s", tmp.msg);
    }
    return rc;
}

/* Re-reports a primitive's error at the token it objected to. */
static int prim_error(Parser *ps, int rc, const kiln_error *tmp, const Tok *prim, const Tok *args,
                      int nargs, const Tok *names, int nnames)
{
    if (!ps->e)
        return rc;
    int a = ps->s->err_arg;
    const Tok *t = prim;
    if (a >= 0 && a < nargs)
        t = &args[a];
    else if (a <= -2 && -2 - a < nnames)
        t = &names[-2 - a];
    return ir_error(ps->e, rc, ps->file, t->loc, "%s", tmp->msg);
}

/* A result name: "T.x" (T must be the statement's tensor) or plain "x". */
static int result_name(Parser *ps, const Tok *t, int stmt, char *out, size_t n)
{
    const char *tn = sched_prog(ps->s)->tensors[sched_prog(ps->s)->stmts[stmt].out].name;
    const char *dot = memchr(t->p, '.', (size_t)t->len);
    if (!dot) {
        copy_cut(out, n, t->p, (size_t)t->len);
        return KILN_OK;
    }
    size_t tl = (size_t)(dot - t->p);
    if (tl != strlen(tn) || memcmp(t->p, tn, tl) ||
        memchr(dot + 1, '.', (size_t)(t->p + t->len - dot - 1)))
        return perr(ps, t->loc, "new loop '%.*s' must be named %s.NAME", t->len, t->p, tn);
    copy_cut(out, n, dot + 1, (size_t)(t->p + t->len - dot - 1));
    return KILN_OK;
}

/* (ir_find_tensor lives in the front end; this file must not depend on it.) */
static int find_tensor(const Program *p, const char *name)
{
    for (int i = 0; i < p->ntensors; i++)
        if (!strcmp(p->tensors[i].name, name))
            return i;
    return -1;
}

/* Resolves a tensor argument; *writer = its statement or -1 (input). */
static int resolve_tensor(Parser *ps, const Tok *t, int *tensor, int *writer)
{
    char buf[64];
    if (t->k != TK_ID || memchr(t->p, '.', (size_t)t->len))
        return perr(ps, t->loc, "expected a tensor name, got %s", tok_desc(t, buf, sizeof buf));
    char tn[128];
    copy_cut(tn, sizeof tn, t->p, (size_t)t->len);
    const Program *p = sched_prog(ps->s);
    int k = find_tensor(p, tn);
    if (k < 0)
        return ir_error(ps->e, KILN_ESCHEDULE, ps->file, t->loc, "unknown tensor '%s'", tn);
    *tensor = k;
    *writer = p->tensors[k].writer;
    return KILN_OK;
}

static int one_stmt_loops(Parser *ps, const Tok *args, int n, int *stmt, int *loops)
{
    for (int i = 0; i < n; i++) {
        int st, rc = resolve_loop(ps, &args[i], &st, &loops[i]);
        if (rc)
            return rc;
        if (i == 0)
            *stmt = st;
        else if (st != *stmt)
            return perr(ps, args[i].loc, "%.*s is not a loop of the same statement as %.*s",
                        args[i].len, args[i].p, args[0].len, args[0].p);
    }
    return KILN_OK;
}

static const char *const prims[] = {"split",      "fuse",        "reorder",    "parallel",
                                    "vectorize",  "unroll",      "serial",     "inline",
                                    "compute_at", "cache_write", "cache_read", "rfactor"};
#define NPRIMS ((int)(sizeof prims / sizeof *prims))

static int apply_call(Parser *ps, int which, const Tok *prim, const Tok *names, int nnames,
                      const Tok *args, int nargs, Loc rp_loc);

static int parse_call(Parser *ps)
{
    Tok names[IR_MAX_DIMS + 1], args[MAX_ARGS], prim;
    int nnames = 0, nargs = 0, rc;
    char buf[64];

    Tok first = ps->tok;
    if ((rc = next(ps)))
        return rc;
    if (ps->tok.k == TK_COMMA || ps->tok.k == TK_EQ) {
        names[nnames++] = first;
        while (ps->tok.k == TK_COMMA) {
            if ((rc = next(ps)))
                return rc;
            if (ps->tok.k != TK_ID)
                return perr(ps, ps->tok.loc, "expected a loop name after ',', got %s",
                            tok_desc(&ps->tok, buf, sizeof buf));
            if (nnames == IR_MAX_DIMS)
                return perr(ps, ps->tok.loc, "too many result names (at most %d)", IR_MAX_DIMS);
            names[nnames++] = ps->tok;
            if ((rc = next(ps)))
                return rc;
        }
        if (ps->tok.k != TK_EQ)
            return perr(ps, ps->tok.loc, "expected '=' after the result names, got %s",
                        tok_desc(&ps->tok, buf, sizeof buf));
        if ((rc = next(ps)))
            return rc;
        if (ps->tok.k != TK_ID)
            return perr(ps, ps->tok.loc, "expected a primitive after '=', got %s",
                        tok_desc(&ps->tok, buf, sizeof buf));
        prim = ps->tok;
        if ((rc = next(ps)))
            return rc;
    } else {
        prim = first;
    }
    int which = -1;
    for (int i = 0; i < NPRIMS; i++)
        if (tok_is(&prim, prims[i]))
            which = i;
    if (which < 0)
        return perr(ps, prim.loc,
                    "unknown primitive '%.*s' (expected split, fuse, reorder, parallel, vectorize, "
                    "unroll, serial, inline, compute_at, cache_write, cache_read or rfactor)",
                    prim.len, prim.p);
    if (ps->tok.k != TK_LP)
        return perr(ps, ps->tok.loc, "expected '(' after '%s', got %s", prims[which],
                    tok_desc(&ps->tok, buf, sizeof buf));
    if ((rc = next(ps)))
        return rc;
    if (ps->tok.k != TK_RP) {
        for (;;) {
            if (ps->tok.k != TK_ID && ps->tok.k != TK_INT)
                return perr(ps, ps->tok.loc, "expected a loop name or a number, got %s",
                            tok_desc(&ps->tok, buf, sizeof buf));
            if (nargs == MAX_ARGS)
                return perr(ps, ps->tok.loc, "too many arguments (at most %d)", MAX_ARGS);
            args[nargs++] = ps->tok;
            if ((rc = next(ps)))
                return rc;
            if (ps->tok.k == TK_RP)
                break;
            if (ps->tok.k != TK_COMMA)
                return perr(ps, ps->tok.loc, "expected ')' or ',' in %s(...), got %s", prims[which],
                            tok_desc(&ps->tok, buf, sizeof buf));
            if ((rc = next(ps)))
                return rc;
        }
    }
    Tok rp = ps->tok;
    if ((rc = next(ps)))
        return rc;
    return apply_call(ps, which, &prim, names, nnames, args, nargs, rp.loc);
}

/* The meaning of one call whose tokens are read: every check, then the
 * primitive.  ps->e NULL: errors only return their code (the tuner's
 * fast path, which then replays the line as text for the message). */
static int apply_call(Parser *ps, int which, const Tok *prim, const Tok *names, int nnames,
                      const Tok *args, int nargs, Loc rp_loc)
{
    Schedule *s = ps->s;
    char buf[64];
    int rc;
    /* only a caller that wants the message pays for clearing one */
    kiln_error tmpe, *tmp = ps->e ? &tmpe : NULL;
    kiln_error_clear(tmp);
    int stmt = -1, loops[MAX_ARGS];
    if (which >= 2 && which <= 8 && nnames)
        return perr(ps, names[0].loc, "'%s' does not return loops", prims[which]);
    char newname[128];
    if (which >= 9 && nnames) {
        /* cache_write, cache_read, rfactor: one new tensor name */
        if (nnames > 1)
            return perr(ps, names[1].loc, "%s gives one tensor, but %d names are given",
                        prims[which], nnames);
        if (memchr(names[0].p, '.', (size_t)names[0].len))
            return perr(ps, names[0].loc, "expected a tensor name, got '%.*s'", names[0].len,
                        names[0].p);
        snprintf(newname, sizeof newname, "%.*s", names[0].len, names[0].p);
    }

    switch (which) {
    case 0: { /* split */
        if (nargs < 1)
            return perr(ps, rp_loc, "split needs a loop and at least one factor");
        if ((rc = resolve_loop(ps, &args[0], &stmt, &loops[0])))
            return rc;
        int nf = nargs - 1;
        if (nf < 1)
            return perr(ps, rp_loc, "split needs at least one factor");
        int64_t f[MAX_ARGS];
        for (int i = 0; i < nf; i++) {
            if (args[1 + i].k != TK_INT)
                return perr(ps, args[1 + i].loc, "expected an integer factor, got %s",
                            tok_desc(&args[1 + i], buf, sizeof buf));
            f[i] = args[1 + i].v;
        }
        if (nnames && nnames != nf + 1)
            return perr(ps, names[0].loc,
                        "split of %.*s by %d factor%s gives %d loops, but %d name%s given",
                        args[0].len, args[0].p, nf, nf == 1 ? "" : "s", nf + 1, nnames,
                        nnames == 1 ? " is" : "s are");
        char nb[IR_MAX_DIMS + 1][128];
        const char *nm[IR_MAX_DIMS + 1];
        for (int i = 0; i < nnames; i++) {
            if ((rc = result_name(ps, &names[i], stmt, nb[i], sizeof nb[i])))
                return rc;
            nm[i] = nb[i];
        }
        rc = sched_split(s, stmt, loops[0], nf, f, nnames ? nm : NULL, NULL, tmp);
        break;
    }
    case 1: { /* fuse */
        if (nargs < 2)
            return perr(ps, rp_loc, "fuse needs at least two loops");
        if ((rc = one_stmt_loops(ps, args, nargs, &stmt, loops)))
            return rc;
        if (nnames > 1)
            return perr(ps, names[1].loc, "fuse gives one loop, but %d names are given", nnames);
        char nb[128];
        if (nnames && (rc = result_name(ps, &names[0], stmt, nb, sizeof nb)))
            return rc;
        rc = sched_fuse(s, stmt, nargs, loops, nnames ? nb : NULL, NULL, tmp);
        break;
    }
    case 2: /* reorder */
        if (nargs < 1)
            return perr(ps, rp_loc, "reorder needs at least one loop");
        if ((rc = one_stmt_loops(ps, args, nargs, &stmt, loops)))
            return rc;
        rc = sched_reorder(s, stmt, nargs, loops, tmp);
        break;
    case 3:
    case 4:
    case 5:
    case 6: { /* annotations */
        static const LoopKind kinds[] = {LOOP_PARALLEL, LOOP_VECTORIZED, LOOP_UNROLLED,
                                         LOOP_SERIAL};
        if (nargs != 1)
            return perr(ps, nargs ? args[1].loc : rp_loc, "%s takes exactly one loop",
                        prims[which]);
        if ((rc = resolve_loop(ps, &args[0], &stmt, &loops[0])))
            return rc;
        rc = sched_annotate(s, stmt, loops[0], kinds[which - 3], tmp);
        break;
    }
    case 7: { /* inline */
        if (nargs != 1)
            return perr(ps, nargs ? args[1].loc : rp_loc, "inline takes exactly one tensor name");
        if (args[0].k != TK_ID || memchr(args[0].p, '.', (size_t)args[0].len))
            return perr(ps, args[0].loc, "expected a tensor name, got %s",
                        tok_desc(&args[0], buf, sizeof buf));
        char tn[128];
        snprintf(tn, sizeof tn, "%.*s", args[0].len, args[0].p);
        int t, w;
        if ((rc = resolve_tensor(ps, &args[0], &t, &w)))
            return rc;
        if (w < 0)
            return ir_error(ps->e, KILN_ESCHEDULE, ps->file, args[0].loc,
                            "cannot inline '%s': it is an input", tn);
        rc = sched_inline(s, w, tmp);
        break;
    }
    case 8: { /* compute_at(P, C.loop) */
        if (nargs != 2)
            return perr(ps, nargs > 2 ? args[2].loc : rp_loc,
                        "compute_at takes a tensor and a loop: compute_at(T, C.i)");
        int t, w;
        if ((rc = resolve_tensor(ps, &args[0], &t, &w)))
            return rc;
        if (w < 0)
            return ir_error(ps->e, KILN_ESCHEDULE, ps->file, args[0].loc,
                            "cannot compute '%s' at a loop: it is an input",
                            sched_prog(s)->tensors[t].name);
        if ((rc = resolve_loop(ps, &args[1], &stmt, &loops[0])))
            return rc;
        rc = sched_compute_at(s, w, stmt, loops[0], tmp);
        break;
    }
    case 9: { /* [L =] cache_write(T) */
        if (nargs != 1)
            return perr(ps, nargs ? args[1].loc : rp_loc,
                        "cache_write takes exactly one tensor name");
        int t, w;
        if ((rc = resolve_tensor(ps, &args[0], &t, &w)))
            return rc;
        if (w < 0)
            return ir_error(ps->e, KILN_ESCHEDULE, ps->file, args[0].loc,
                            "cannot cache_write '%s': it is an input",
                            sched_prog(s)->tensors[t].name);
        rc = sched_cache_write(s, w, nnames ? newname : NULL, tmp);
        break;
    }
    case 10: { /* [R =] cache_read(T, C [, layout...]) */
        if (nargs < 2)
            return perr(ps, rp_loc, "cache_read takes a tensor and its consumer: cache_read(B, C)");
        int t, w, ct, cw;
        if ((rc = resolve_tensor(ps, &args[0], &t, &w)) ||
            (rc = resolve_tensor(ps, &args[1], &ct, &cw)))
            return rc;
        if (cw < 0)
            return ir_error(ps->e, KILN_ESCHEDULE, ps->file, args[1].loc,
                            "'%s' is an input; the consumer must be a computed tensor",
                            sched_prog(s)->tensors[ct].name);
        int lay[IR_MAX_DIMS], nl = nargs - 2;
        if (nl > IR_MAX_DIMS)
            return perr(ps, args[2 + IR_MAX_DIMS].loc, "layout has too many dimensions");
        for (int i = 0; i < nl; i++) {
            if (args[2 + i].k != TK_INT)
                return perr(ps, args[2 + i].loc, "expected a dimension number, got %s",
                            tok_desc(&args[2 + i], buf, sizeof buf));
            lay[i] = (int)args[2 + i].v;
        }
        rc = sched_cache_read(s, t, cw, nnames ? newname : NULL, nl, lay, tmp);
        break;
    }
    default: { /* [R =] rfactor(C.k, factor) */
        if (nargs != 2)
            return perr(ps, nargs > 2 ? args[2].loc : rp_loc,
                        "rfactor takes a reduction loop and a factor: rfactor(C.k, 16)");
        if ((rc = resolve_loop(ps, &args[0], &stmt, &loops[0])))
            return rc;
        if (args[1].k != TK_INT)
            return perr(ps, args[1].loc, "expected an integer factor, got %s",
                        tok_desc(&args[1], buf, sizeof buf));
        rc = sched_rfactor(s, stmt, loops[0], args[1].v, nnames ? newname : NULL, tmp);
        break;
    }
    }
    if (rc)
        return prim_error(ps, rc, tmp, prim, args, nargs, names, nnames);
    return KILN_OK;
}

int sched_apply_text(Schedule *s, const char *text, const char *filename, kiln_error *e)
{
    Parser ps = {.cur = text ? text : "",
                 .line = 1,
                 .col = 1,
                 .file = filename ? filename : "<schedule>",
                 .s = s,
                 .e = e};
    int rc = next(&ps);
    while (!rc && ps.tok.k != TK_EOF) {
        if (ps.tok.k == TK_NL || ps.tok.k == TK_SEMI) {
            rc = next(&ps);
            continue;
        }
        if (ps.tok.k != TK_ID) {
            char buf[64];
            return perr(&ps, ps.tok.loc, "expected a primitive such as split(...), got %s",
                        tok_desc(&ps.tok, buf, sizeof buf));
        }
        rc = parse_call(&ps);
    }
    return rc;
}

int sched_prim_index(const char *p, int len)
{
    Tok t = {.k = TK_ID, .p = p, .len = len};
    for (int i = 0; i < NPRIMS; i++)
        if (tok_is(&t, prims[i]))
            return i;
    return -1;
}

int sched_apply_call(Schedule *s, int prim, const SchedArg *names, int nnames, const SchedArg *args,
                     int nargs)
{
    if (prim < 0 || prim >= NPRIMS || nnames < 0 || nnames > IR_MAX_DIMS || nargs < 0 ||
        nargs > MAX_ARGS)
        return KILN_ESYNTAX;
    Tok nt[IR_MAX_DIMS + 1], at[MAX_ARGS], pt = {.k = TK_ID, .p = prims[prim]};
    pt.len = (int)strlen(pt.p);
    for (int i = 0; i < nnames; i++)
        nt[i] = (Tok){.k = TK_ID, .p = names[i].p, .len = names[i].len};
    for (int i = 0; i < nargs; i++)
        at[i] = args[i].p ? (Tok){.k = TK_ID, .p = args[i].p, .len = args[i].len}
                          : (Tok){.k = TK_INT, .p = "", .v = args[i].v};
    Parser ps = {.cur = "", .line = 1, .col = 1, .file = "<schedule>", .s = s, .e = NULL};
    return apply_call(&ps, prim, &pt, nt, nnames, at, nargs, (Loc){0, 0});
}

char *sched_to_text(const Schedule *s)
{
    /* one allocation: every scored candidate is printed (and hashed) */
    size_t total = 0;
    for (int i = 0; i < s->log.n; i++)
        total += strlen((const char *)s->log.v[i]) + 1;
    char *out = malloc(total + 1);
    if (!out)
        return NULL;
    size_t at = 0;
    for (int i = 0; i < s->log.n; i++) {
        size_t k = strlen((const char *)s->log.v[i]);
        memcpy(out + at, s->log.v[i], k);
        out[at + k] = '\n';
        at += k + 1;
    }
    out[at] = 0;
    return out;
}
