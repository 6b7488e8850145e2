/* ir/schedule.c: schedules and their primitives (split, fuse, reorder,
 * annotate, inline) plus the default schedule.
 *
 * Halide style: a primitive only records a relation between loop variables
 * of one statement (SRel) and updates the statement's leaf order; lower/
 * builds the loops.  Every primitive validates all of its arguments before
 * touching anything, so on error the schedule is unchanged.  Each success
 * appends one trace line to s->log, which sched_to_text prints back.
 *
 * Invariants kept by the primitives: leaf names are unique in a statement;
 * a vectorized loop is always the innermost leaf of its statement; a
 * statement has at most one parallel loop; reduction loops are never
 * parallel or vectorized. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

/* Loops longer than this are refused: they only arise from absurd factors. */
#define MAX_EXTENT ((int64_t)1 << 40)
#define MAX_VECTOR 64
#define MAX_UNROLL 256

/* ------------------------------------------------------------ helpers */
static const char *stmt_tensor(const Schedule *s, int stmt)
{
    return sched_prog(s)->tensors[sched_prog(s)->stmts[stmt].out].name;
}

/* "T.loop" into buf, cut to n - 1 bytes like snprintf (without its cost:
 * the primitives name loops in every log line). */
static void qname(const Schedule *s, int stmt, int loop, char *buf, size_t n)
{
    const char *parts[3] = {stmt_tensor(s, stmt), ".", s->st[stmt].loops[loop].name};
    size_t len = 0;
    for (int i = 0; i < 3 && n; i++) {
        size_t k = strlen(parts[i]);
        if (k > n - 1 - len)
            k = n - 1 - len;
        memcpy(buf + len, parts[i], k);
        len += k;
    }
    if (n)
        buf[len] = 0;
}

/* Records a schedule error pointing at argument `arg` (see Schedule.err_arg). */
static int fail(Schedule *s, kiln_error *e, int arg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(Schedule *s, kiln_error *e, int arg, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->err_arg = arg;
    return ir_error(e, KILN_ESCHEDULE, NULL, (Loc){0, 0}, "%s", msg);
}

static int oom(Schedule *s, kiln_error *e)
{
    s->err_arg = -1;
    return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
}

static bool is_ident(const char *p)
{
    if (!p || !(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return false;
    for (p++; *p; p++)
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

static int loop_by_name(const StmtSched *st, const char *name, size_t len)
{
    for (int i = 0; i < st->nloops; i++) {
        const char *n = st->loops[i].name;
        if (n[0] == name[0] && !strncmp(n, name, len) && !n[len])
            return i;
    }
    return -1;
}

static int order_pos(const StmtSched *st, int loop)
{
    for (int i = 0; i < st->norder; i++)
        if (st->order[i] == loop)
            return i;
    return -1;
}

/* "io, ii, j, k": the current leaves, outermost first. */
static void leaf_list(const StmtSched *st, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < st->norder && len + 1 < n; i++) {
        int w = snprintf(buf + len, n - len, "%s%s", i ? ", " : "", st->loops[st->order[i]].name);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    if (len >= n && n > 4)
        strcpy(buf + n - 4, "...");
}

static void log_line(Schedule *s, StrBuf *sb)
{
    char *line = arena_strdup(s->arena, sb->s ? sb->s : "");
    if (line)
        ptrvec_push(s->arena, &s->log, line);
    sb_free(sb);
}

/* A log line assembled on the stack: split and reorder run for every
 * scored candidate, and a heap StrBuf per line was a tenth of applying a
 * trace.  A line too long for the buffer continues in a StrBuf. */
typedef struct {
    char b[512];
    size_t n;
    StrBuf sb; /* in use once b overflowed */
} Line;

static void line_put(Line *l, const char *p)
{
    size_t k = strlen(p);
    if (!l->sb.s && l->n + k < sizeof l->b) {
        memcpy(l->b + l->n, p, k);
        l->n += k;
        return;
    }
    if (!l->sb.s)
        sb_printf(&l->sb, "%.*s", (int)l->n, l->b);
    sb_printf(&l->sb, "%s", p);
}

static void line_int(Line *l, long long v)
{
    char num[24];
    line_put(l, ir_fmt_ll(num, v));
}

static void line_init(Line *l)
{
    l->n = 0; /* b is left as it is: only b[0..n) is ever read */
    l->sb = (StrBuf){0};
}

/* The finished line in the schedule's arena (NULL: out of memory). */
static char *line_end(Schedule *s, Line *l)
{
    char *line = l->sb.s ? arena_strdup(s->arena, l->sb.s) : arena_strndup(s->arena, l->b, l->n);
    sb_free(&l->sb);
    return line;
}

static void line_log(Schedule *s, Line *l)
{
    char *line = line_end(s, l);
    if (line)
        ptrvec_push(s->arena, &s->log, line);
}

/* Grows the loop and relation arrays so that `nl` more loops and one more
 * relation fit.  Only capacity changes: no observable state. */
static bool reserve(Schedule *s, StmtSched *st, int nl)
{
    if (st->nloops + nl > st->cap) {
        int cap = (st->cap ? st->cap * 2 : 8) + nl;
        SLoop *l = arena_alloc(s->arena, sizeof(SLoop) * (size_t)cap);
        if (!l)
            return false;
        if (st->nloops)
            memcpy(l, st->loops, sizeof(SLoop) * (size_t)st->nloops);
        st->loops = l;
        st->cap = cap;
    }
    if (st->nrels + 1 > st->relcap) {
        int cap = st->relcap ? st->relcap * 2 : 4;
        SRel *r = arena_alloc(s->arena, sizeof(SRel) * (size_t)cap);
        if (!r)
            return false;
        if (st->nrels)
            memcpy(r, st->rels, sizeof(SRel) * (size_t)st->nrels);
        st->rels = r;
        st->relcap = cap;
    }
    return true;
}

/* Common checks of a (stmt, loop) argument: valid ids, statement not
 * inlined, loop still a leaf. */
static int check_leaf(Schedule *s, int stmt, int loop, int arg, kiln_error *e)
{
    if (stmt < 0 || stmt >= sched_prog(s)->nstmts) {
        s->err_arg = arg;
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "no statement %d", stmt);
    }
    StmtSched *st = &s->st[stmt];
    if (loop < 0 || loop >= st->nloops) {
        s->err_arg = arg;
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "no loop %d in statement of '%s'", loop,
                        stmt_tensor(s, stmt));
    }
    if (!st->inlined && st->loops[loop].leaf)
        return KILN_OK;
    char q[160];
    qname(s, stmt, loop, q, sizeof q);
    if (st->inlined)
        return fail(s, e, arg, "cannot schedule %s: '%s' is inlined into its consumers", q,
                    stmt_tensor(s, stmt));
    return fail(s, e, arg, "%s is no longer a loop: it was split or fused", q);
}

/* Validates a new loop name; `taken` are names chosen earlier in the same
 * call. */
static int check_new_name(Schedule *s, int stmt, const char *name, const char *const *taken,
                          int ntaken, int arg, kiln_error *e)
{
    const StmtSched *st = &s->st[stmt];
    if (!is_ident(name))
        return fail(s, e, arg, "loop name '%s' is not an identifier", name ? name : "");
    bool dup = loop_by_name(st, name, strlen(name)) >= 0;
    for (int i = 0; i < ntaken; i++)
        dup |= !strcmp(taken[i], name);
    if (dup)
        return fail(s, e, arg, "loop name '%s.%s' is already used", stmt_tensor(s, stmt), name);
    return KILN_OK;
}

/* A fresh name "base", "base2", "base3"... not used in the statement nor in
 * taken[]. */
static const char *fresh_name(Schedule *s, int stmt, const char *base, const char *const *taken,
                              int ntaken)
{
    const StmtSched *st = &s->st[stmt];
    for (int k = 1;; k++) {
        char *n = k == 1 ? arena_strdup(s->arena, base) : arena_printf(s->arena, "%s%d", base, k);
        if (!n)
            return NULL;
        bool dup = loop_by_name(st, n, strlen(n)) >= 0;
        for (int i = 0; i < ntaken; i++)
            dup |= !strcmp(taken[i], n);
        if (!dup)
            return n;
    }
}

static int vectorized_leaf(const StmtSched *st)
{
    for (int i = 0; i < st->norder; i++)
        if (st->loops[st->order[i]].kind == LOOP_VECTORIZED)
            return st->order[i];
    return -1;
}

/* Refuses to change loop `loop` of stmt when a statement is computed at
 * it: the loop the producer hangs on must stay. */
static int check_not_target(Schedule *s, int stmt, int loop, int arg, const char *what,
                            kiln_error *e)
{
    const Program *p = sched_prog(s);
    for (int i = 0; i < p->nstmts; i++)
        if (s->st[i].at && s->st[i].at_stmt == stmt && s->st[i].at_loop == loop) {
            char q[160];
            qname(s, stmt, loop, q, sizeof q);
            return fail(
                s, e, arg,
                "cannot %s %s: '%s' is computed at it (schedule the consumer before compute_at)",
                what, q, stmt_tensor(s, i));
        }
    return KILN_OK;
}

/* A computed-at statement's loops shrink to its region: extent limits of
 * vectorize/unroll are then checked by lower/ on the real extents. */
static bool may_shrink(const Schedule *s, int stmt)
{
    return s->st[stmt].at;
}

/* Does expression x read tensor t, directly or through inlined temps? */
static bool reads(const Schedule *s, const Expr *x, int t)
{
    if (!x)
        return false;
    switch (x->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
    case EXPR_VAR:
        return false;
    case EXPR_LOAD: {
        if (x->u.load.buf == t)
            return true;
        for (int i = 0; i < x->u.load.n; i++)
            if (reads(s, x->u.load.idx[i], t))
                return true;
        const Program *p = sched_prog(s);
        int w = p->tensors[x->u.load.buf].writer;
        return w >= 0 && s->st[w].inlined && reads(s, p->stmts[w].rhs, t);
    }
    default:
        return reads(s, x->u.op.a, t) || reads(s, x->u.op.b, t) || reads(s, x->u.op.c, t);
    }
}

/* For compute_at of temp t at loop `loop` of `host`: every statement that
 * reads t (not inlined) must be host itself or be computed, through a
 * chain of compute_at, inside that loop (a packed panel at D.jb read by a
 * tile computed at D.jo; a row temp read by two row stages at Y.i).
 * Returns -1 when all are, else an offending reader; *nreaders counts them. */
static int stray_reader(const Schedule *s, int t, int host, int loop, int *nreaders)
{
    const Program *p = sched_prog(s);
    int bad = -1;
    *nreaders = 0;
    for (int r = 0; r < p->nstmts; r++) {
        if (s->st[r].inlined || !reads(s, p->stmts[r].rhs, t))
            continue;
        ++*nreaders;
        int h = r, via = -1;
        for (int n = 0; h != host && s->st[h].at && n < p->nstmts; n++) {
            via = h;
            h = s->st[h].at_stmt;
        }
        bool inside = h == host && (via < 0 || order_pos(&s->st[host], loop) <=
                                                   order_pos(&s->st[host], s->st[via].at_loop));
        if (!inside && bad < 0)
            bad = r;
    }
    return bad;
}

/* ------------------------------------------------------ construction */
/* A fresh StmtSched for statement ps (the identity schedule). */
static bool fresh_sched(Schedule *s, const Stmt *ps, StmtSched *st)
{
    memset(st, 0, sizeof *st);
    st->cap = ps->nvars + 8;
    st->loops = arena_alloc(s->arena, sizeof(SLoop) * (size_t)st->cap);
    st->order = arena_alloc(s->arena, sizeof(int) * (size_t)(ps->nvars ? ps->nvars : 1));
    if (!st->loops || !st->order)
        return false;
    for (int v = 0; v < ps->nvars; v++) {
        SLoop *l = &st->loops[v];
        l->name = ps->vars[v]->name;
        l->extent = ps->vars[v]->extent;
        l->reduce = v >= ps->nspatial;
        l->leaf = true;
        l->kind = LOOP_SERIAL;
        l->orig = ps->vars[v];
        st->order[v] = v;
    }
    st->nloops = st->norder = ps->nvars;
    return true;
}

Schedule *sched_new(const Program *p)
{
    Arena *a = arena_new();
    if (!a)
        return NULL;
    Schedule *s = arena_alloc(a, sizeof *s);
    if (!s) {
        arena_free(a);
        return NULL;
    }
    s->prog = p;
    s->arena = a;
    s->err_arg = -1;
    s->st = arena_alloc(a, sizeof(StmtSched) * (size_t)(p->nstmts ? p->nstmts : 1));
    if (!s->st)
        goto oom;
    for (int i = 0; i < p->nstmts; i++)
        if (!fresh_sched(s, &p->stmts[i], &s->st[i]))
            goto oom;
    return s;
oom:
    arena_free(a);
    return NULL;
}

void sched_free(Schedule *s)
{
    if (s)
        arena_free(s->arena);
}

Schedule *sched_clone(const Schedule *s)
{
    if (s->dp) {
        /* A rewritten program lives in s's arena: rebuild it by replaying
         * the trace, which reproduces the schedule exactly. */
        Schedule *c = sched_new(s->prog);
        char *text = sched_to_text(s);
        int rc = c && text ? sched_apply_text(c, text, "<clone>", NULL) : KILN_ENOMEM;
        free(text);
        if (rc) {
            sched_free(c);
            return NULL;
        }
        return c;
    }
    Arena *a = arena_new();
    if (!a)
        return NULL;
    Schedule *c = arena_alloc(a, sizeof *c);
    if (!c) {
        arena_free(a);
        return NULL;
    }
    c->prog = s->prog;
    c->arena = a;
    c->err_arg = -1;
    int n = s->prog->nstmts;
    c->st = arena_alloc(a, sizeof(StmtSched) * (size_t)(n ? n : 1));
    if (!c->st)
        goto oom;
    for (int i = 0; i < n; i++) {
        const StmtSched *from = &s->st[i];
        StmtSched *to = &c->st[i];
        *to = *from;
        to->loops = arena_alloc(a, sizeof(SLoop) * (size_t)(from->cap ? from->cap : 1));
        to->order = arena_alloc(a, sizeof(int) * (size_t)(from->norder ? from->norder : 1));
        to->rels = arena_alloc(a, sizeof(SRel) * (size_t)(from->relcap ? from->relcap : 1));
        if (!to->loops || !to->order || !to->rels)
            goto oom;
        for (int l = 0; l < from->nloops; l++) {
            to->loops[l] = from->loops[l];
            /* original names belong to the program, which outlives us */
            if (!from->loops[l].orig && !(to->loops[l].name = arena_strdup(a, from->loops[l].name)))
                goto oom;
        }
        if (from->norder)
            memcpy(to->order, from->order, sizeof(int) * (size_t)from->norder);
        if (from->nrels)
            memcpy(to->rels, from->rels, sizeof(SRel) * (size_t)from->nrels);
    }
    for (int i = 0; i < s->log.n; i++) {
        char *line = arena_strdup(a, s->log.v[i]);
        if (!line)
            goto oom;
        ptrvec_push(a, &c->log, line);
    }
    if (c->log.n != s->log.n)
        goto oom;
    return c;
oom:
    arena_free(a);
    return NULL;
}

int sched_find_loop(const Schedule *s, const char *q, int *stmt, int *loop, kiln_error *e)
{
    const Program *p = sched_prog(s);
    const char *dot = q ? strchr(q, '.') : NULL;
    if (!dot)
        return ir_error(e, KILN_ESCHEDULE, NULL, (Loc){0, 0},
                        "expected a loop name like C.i (tensor.loop), got '%s'", q ? q : "");
    int t = -1;
    for (int i = 0; i < p->ntensors; i++)
        if (strlen(p->tensors[i].name) == (size_t)(dot - q) &&
            !memcmp(p->tensors[i].name, q, (size_t)(dot - q)))
            t = i;
    if (t < 0)
        return ir_error(e, KILN_ESCHEDULE, NULL, (Loc){0, 0}, "unknown tensor '%.*s' in loop '%s'",
                        (int)(dot - q), q, q);
    int w = p->tensors[t].writer;
    if (w < 0 || w >= p->nstmts)
        return ir_error(e, KILN_ESCHEDULE, NULL, (Loc){0, 0},
                        "'%s' is an input; only tensors written by a statement have loops",
                        p->tensors[t].name);
    const StmtSched *st = &s->st[w];
    int l = loop_by_name(st, dot + 1, strlen(dot + 1));
    if (l < 0) {
        char list[256];
        leaf_list(st, list, sizeof list);
        return ir_error(e, KILN_ESCHEDULE, NULL, (Loc){0, 0}, "unknown loop '%s' (loops of %s: %s)",
                        q, p->tensors[t].name, st->norder ? list : "none");
    }
    *stmt = w;
    *loop = l;
    return KILN_OK;
}

/* --------------------------------------------------------- primitives */
int sched_split(Schedule *s, int stmt, int loop, int nf, const int64_t *factors,
                const char *const *names, int *out_loops, kiln_error *e)
{
    s->err_arg = -1;
    int rc = check_leaf(s, stmt, loop, 0, e);
    if (rc)
        return rc;
    if ((rc = check_not_target(s, stmt, loop, 0, "split", e)))
        return rc;
    StmtSched *st = &s->st[stmt];
    char q[160];
    qname(s, stmt, loop, q, sizeof q);
    if (nf < 1)
        return fail(s, e, -1, "split needs at least one factor");
    if (nf + 1 > IR_MAX_DIMS)
        return fail(s, e, IR_MAX_DIMS, "split of %s: at most %d factors", q, IR_MAX_DIMS - 1);
    int64_t prod = 1;
    for (int i = 0; i < nf; i++) {
        if (factors[i] < 1)
            return fail(s, e, 1 + i, "split factor %lld of %s must be at least 1",
                        (long long)factors[i], q);
        if (factors[i] > MAX_EXTENT || prod > MAX_EXTENT / factors[i])
            return fail(s, e, 1 + i, "split factors of %s are too large", q);
        prod *= factors[i];
    }
    /* Pick or check the names before changing anything. */
    const char *nm[IR_MAX_DIMS];
    for (int i = 0; i <= nf; i++) {
        if (names) {
            rc = check_new_name(s, stmt, names[i], nm, i, -2 - i, e);
            if (rc)
                return rc;
            nm[i] = names[i];
        } else {
            char base[96];
            snprintf(base, sizeof base, "%s%d", st->loops[loop].name, i);
            nm[i] = fresh_name(s, stmt, base, nm, i);
            if (!nm[i])
                return oom(s, e);
        }
    }
    for (int i = 0; i <= nf; i++)
        if (!(nm[i] = arena_strdup(s->arena, nm[i])))
            return oom(s, e);
    int *order = arena_alloc(s->arena, sizeof(int) * (size_t)(st->norder + nf));
    if (!order || !reserve(s, st, nf + 1))
        return oom(s, e);

    int64_t ext = st->loops[loop].extent;
    bool reduce = st->loops[loop].reduce;
    SRel *r = &st->rels[st->nrels++];
    memset(r, 0, sizeof *r);
    r->kind = REL_SPLIT;
    r->in[0] = loop;
    r->nin = 1;
    r->nout = nf + 1;
    for (int i = 0; i <= nf; i++) {
        SLoop *l = &st->loops[st->nloops];
        memset(l, 0, sizeof *l);
        l->name = nm[i];
        l->extent = i == 0 ? (ext + prod - 1) / prod : factors[i - 1];
        l->reduce = reduce;
        l->leaf = true;
        l->kind = LOOP_SERIAL;
        r->out[i] = st->nloops;
        if (out_loops)
            out_loops[i] = st->nloops;
        st->nloops++;
    }
    st->loops[loop].leaf = false;
    int pos = order_pos(st, loop), n = 0;
    for (int i = 0; i < st->norder; i++) {
        if (i == pos)
            for (int k = 0; k <= nf; k++)
                order[n++] = r->out[k];
        else
            order[n++] = st->order[i];
    }
    st->order = order;
    st->norder = n;

    Line ln;
    line_init(&ln);
    const char *t = stmt_tensor(s, stmt);
    for (int i = 0; i <= nf; i++) {
        if (i)
            line_put(&ln, ", ");
        line_put(&ln, t);
        line_put(&ln, ".");
        line_put(&ln, nm[i]);
    }
    line_put(&ln, " = split(");
    line_put(&ln, q);
    for (int i = 0; i < nf; i++) {
        line_put(&ln, ", ");
        line_int(&ln, (long long)factors[i]);
    }
    line_put(&ln, ")");
    line_log(s, &ln);
    return KILN_OK;
}

int sched_fuse(Schedule *s, int stmt, int n, const int *loops, const char *name, int *out_loop,
               kiln_error *e)
{
    s->err_arg = -1;
    if (n < 2)
        return fail(s, e, -1, "fuse needs at least two loops");
    if (n > IR_MAX_DIMS)
        return fail(s, e, IR_MAX_DIMS, "fuse of at most %d loops", IR_MAX_DIMS);
    int rc;
    for (int i = 0; i < n; i++)
        if ((rc = check_leaf(s, stmt, loops[i], i, e)) ||
            (rc = check_not_target(s, stmt, loops[i], i, "fuse", e)))
            return rc;
    StmtSched *st = &s->st[stmt];
    int64_t ext = 1;
    for (int i = 0; i < n; i++) {
        char qa[160], qb[160];
        qname(s, stmt, loops[i], qb, sizeof qb);
        for (int k = 0; k < i; k++)
            if (loops[k] == loops[i])
                return fail(s, e, i, "%s appears twice in fuse", qb);
        if (i > 0) {
            qname(s, stmt, loops[i - 1], qa, sizeof qa);
            int pa = order_pos(st, loops[i - 1]), pb = order_pos(st, loops[i]);
            if (pb != pa + 1)
                return fail(s, e, i,
                            "cannot fuse %s and %s: fused loops must be adjacent, outer to inner",
                            qa, qb);
            if (st->loops[loops[i]].reduce != st->loops[loops[0]].reduce)
                return fail(s, e, i, "cannot fuse %s with %s: one is a reduction loop", qa, qb);
        }
        int64_t x = st->loops[loops[i]].extent;
        if (ext > MAX_EXTENT / x)
            return fail(s, e, i, "fused loop would be too long");
        ext *= x;
    }
    const char *nm;
    if (name) {
        if ((rc = check_new_name(s, stmt, name, NULL, 0, -2, e)))
            return rc;
        nm = arena_strdup(s->arena, name);
    } else {
        char base[128] = "";
        for (int i = 0; i < n; i++)
            strncat(base, st->loops[loops[i]].name, sizeof base - strlen(base) - 1);
        nm = fresh_name(s, stmt, base, NULL, 0);
    }
    int *order = arena_alloc(s->arena, sizeof(int) * (size_t)st->norder);
    if (!nm || !order || !reserve(s, st, 1))
        return oom(s, e);

    SRel *r = &st->rels[st->nrels++];
    memset(r, 0, sizeof *r);
    r->kind = REL_FUSE;
    r->nin = n;
    memcpy(r->in, loops, sizeof(int) * (size_t)n);
    r->nout = 1;
    r->out[0] = st->nloops;
    SLoop *l = &st->loops[st->nloops];
    memset(l, 0, sizeof *l);
    l->name = nm;
    l->extent = ext;
    l->reduce = st->loops[loops[0]].reduce;
    l->leaf = true;
    l->kind = LOOP_SERIAL;
    if (out_loop)
        *out_loop = st->nloops;
    st->nloops++;
    int pos = order_pos(st, loops[0]), k = 0;
    for (int i = 0; i < st->norder; i++) {
        if (i == pos)
            order[k++] = r->out[0];
        else if (i < pos || i >= pos + n)
            order[k++] = st->order[i];
    }
    for (int i = 0; i < n; i++)
        st->loops[loops[i]].leaf = false;
    st->order = order;
    st->norder = k;

    Line ln;
    line_init(&ln);
    const char *t = stmt_tensor(s, stmt);
    line_put(&ln, t);
    line_put(&ln, ".");
    line_put(&ln, nm);
    line_put(&ln, " = fuse(");
    for (int i = 0; i < n; i++) {
        if (i)
            line_put(&ln, ", ");
        line_put(&ln, t);
        line_put(&ln, ".");
        line_put(&ln, st->loops[loops[i]].name);
    }
    line_put(&ln, ")");
    line_log(s, &ln);
    return KILN_OK;
}

int sched_reorder(Schedule *s, int stmt, int n, const int *loops, kiln_error *e)
{
    s->err_arg = -1;
    if (n < 1)
        return fail(s, e, -1, "reorder needs at least one loop");
    int rc;
    for (int i = 0; i < n; i++)
        if ((rc = check_leaf(s, stmt, loops[i], i, e)))
            return rc;
    StmtSched *st = &s->st[stmt];
    int *pos = arena_alloc(s->arena, sizeof(int) * (size_t)n);
    int *order = arena_alloc(s->arena, sizeof(int) * (size_t)st->norder);
    if (!pos || !order)
        return oom(s, e);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < i; k++)
            if (loops[k] == loops[i]) {
                char q[160];
                qname(s, stmt, loops[i], q, sizeof q);
                return fail(s, e, i, "%s appears twice in reorder", q);
            }
        pos[i] = order_pos(st, loops[i]);
    }
    /* The loops take the positions they occupy, sorted, in the given order. */
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && pos[k - 1] > pos[k]; k--) {
            int t = pos[k];
            pos[k] = pos[k - 1];
            pos[k - 1] = t;
        }
    memcpy(order, st->order, sizeof(int) * (size_t)st->norder);
    for (int i = 0; i < n; i++)
        order[pos[i]] = loops[i];
    int v = vectorized_leaf(st);
    if (v >= 0 && order[st->norder - 1] != v) {
        char q[160];
        qname(s, stmt, v, q, sizeof q);
        int arg = -1;
        for (int i = 0; i < n; i++)
            if (loops[i] == v)
                arg = i;
        return fail(s, e, arg, "reorder would move vectorized loop %s from the innermost position",
                    q);
    }
    st->order = order;

    Line ln;
    line_init(&ln);
    line_put(&ln, "reorder(");
    for (int i = 0; i < n; i++) {
        char q[160];
        qname(s, stmt, loops[i], q, sizeof q);
        if (i)
            line_put(&ln, ", ");
        line_put(&ln, q);
    }
    line_put(&ln, ")");
    line_log(s, &ln);
    return KILN_OK;
}

static const char *kind_verb(LoopKind k)
{
    switch (k) {
    case LOOP_PARALLEL:
        return "parallel";
    case LOOP_VECTORIZED:
        return "vectorize";
    case LOOP_UNROLLED:
        return "unroll";
    default:
        return "serial";
    }
}

int sched_annotate(Schedule *s, int stmt, int loop, LoopKind kind, kiln_error *e)
{
    s->err_arg = -1;
    int rc = check_leaf(s, stmt, loop, 0, e);
    if (rc)
        return rc;
    StmtSched *st = &s->st[stmt];
    SLoop *l = &st->loops[loop];
    char q[160];
    qname(s, stmt, loop, q, sizeof q);
    switch (kind) {
    case LOOP_PARALLEL:
        if (l->reduce)
            return fail(s, e, 0, "cannot parallelize reduction loop %s", q);
        if (l->kind == LOOP_VECTORIZED)
            return fail(s, e, 0, "%s is vectorized; a loop cannot be both vectorized and parallel",
                        q);
        for (int i = 0; i < st->norder; i++)
            if (st->order[i] != loop && st->loops[st->order[i]].kind == LOOP_PARALLEL) {
                char q2[160];
                qname(s, stmt, st->order[i], q2, sizeof q2);
                return fail(s, e, 0,
                            "cannot parallelize %s: %s is already parallel (one parallel "
                            "loop per statement)",
                            q, q2);
            }
        break;
    case LOOP_VECTORIZED:
        if (l->reduce)
            return fail(s, e, 0, "cannot vectorize reduction loop %s", q);
        if ((rc = check_not_target(s, stmt, loop, 0, "vectorize", e)))
            return rc;
        if (l->kind == LOOP_PARALLEL)
            return fail(s, e, 0, "%s is parallel; a loop cannot be both parallel and vectorized",
                        q);
        if (l->extent > MAX_VECTOR && !may_shrink(s, stmt))
            return fail(s, e, 0, "cannot vectorize %s: extent %lld exceeds %d", q,
                        (long long)l->extent, MAX_VECTOR);
        if (st->order[st->norder - 1] != loop) {
            char q2[160];
            qname(s, stmt, st->order[st->norder - 1], q2, sizeof q2);
            return fail(s, e, 0,
                        "cannot vectorize %s: only the innermost loop (%s) can be vectorized", q,
                        q2);
        }
        break;
    case LOOP_UNROLLED:
        if (l->extent > MAX_UNROLL && !may_shrink(s, stmt))
            return fail(s, e, 0, "cannot unroll %s: extent %lld exceeds %d", q,
                        (long long)l->extent, MAX_UNROLL);
        break;
    case LOOP_SERIAL:
        break;
    default:
        s->err_arg = -1;
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "bad loop kind %d", (int)kind);
    }
    Line ln;
    line_init(&ln);
    line_put(&ln, kind_verb(kind));
    line_put(&ln, "(");
    line_put(&ln, q);
    line_put(&ln, ")");
    char *line = line_end(s, &ln);
    if (!line)
        return oom(s, e);
    l->kind = kind;
    ptrvec_push(s->arena, &s->log, line);
    return KILN_OK;
}

int sched_inline(Schedule *s, int stmt, kiln_error *e)
{
    s->err_arg = -1;
    const Program *p = sched_prog(s);
    if (stmt < 0 || stmt >= p->nstmts) {
        s->err_arg = 0;
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "no statement %d", stmt);
    }
    const Stmt *ps = &p->stmts[stmt];
    const Tensor *t = &p->tensors[ps->out];
    if (t->kind != T_TEMP)
        return fail(s, e, 0, "cannot inline '%s': only temps can be inlined, and it is an %s",
                    t->name, t->kind == T_OUTPUT ? "output" : "input");
    if (ps->red != RED_NONE)
        return fail(s, e, 0, "cannot inline '%s': it is computed by a reduction", t->name);
    if (s->st[stmt].inlined)
        return fail(s, e, 0, "'%s' is already inlined", t->name);
    if (s->st[stmt].at)
        return fail(s, e, 0, "cannot inline '%s': it is computed at %s.%s", t->name,
                    stmt_tensor(s, s->st[stmt].at_stmt),
                    s->st[s->st[stmt].at_stmt].loops[s->st[stmt].at_loop].name);
    for (int i = 0; i < p->nstmts; i++)
        if (s->st[i].at && s->st[i].at_stmt == stmt)
            return fail(s, e, 0, "cannot inline '%s': '%s' is computed at its loop %s.%s", t->name,
                        stmt_tensor(s, i), t->name, s->st[stmt].loops[s->st[i].at_loop].name);
    char *line = arena_printf(s->arena, "inline(%s)", t->name);
    if (!line)
        return oom(s, e);
    s->st[stmt].inlined = true;
    /* Inlining a reader of a computed-at temp would give it a second reader. */
    for (int i = 0, nr; i < p->nstmts; i++)
        if (s->st[i].at &&
            stray_reader(s, p->stmts[i].out, s->st[i].at_stmt, s->st[i].at_loop, &nr) >= 0) {
            s->st[stmt].inlined = false;
            return fail(s, e, 0,
                        "cannot inline '%s': '%s' is computed at a loop of '%s', "
                        "which would no longer be its only reader",
                        t->name, stmt_tensor(s, i), stmt_tensor(s, s->st[i].at_stmt));
        }
    ptrvec_push(s->arena, &s->log, line);
    return KILN_OK;
}

/* ------------------------------------------- memory-hierarchy primitives */
const Program *sched_prog(const Schedule *s)
{
    return s->dp ? s->dp : s->prog;
}

static bool tensor_name_taken(const Program *p, const char *name)
{
    for (int i = 0; i < p->ntensors; i++)
        if (!strcmp(p->tensors[i].name, name))
            return true;
    return false;
}

/* Checks a new tensor name, or picks "base_local", "base_local2"... */
static int new_tensor_name(Schedule *s, const char *name, const char *base, const char **out,
                           kiln_error *e)
{
    const Program *p = sched_prog(s);
    if (name) {
        if (!is_ident(name))
            return fail(s, e, -2, "tensor name '%s' is not an identifier", name);
        if (tensor_name_taken(p, name))
            return fail(s, e, -2, "tensor name '%s' is already used", name);
        *out = arena_strdup(s->arena, name);
    } else {
        for (int k = 1;; k++) {
            char *n = k == 1 ? arena_printf(s->arena, "%s", base)
                             : arena_printf(s->arena, "%s%d", base, k);
            if (!n || !tensor_name_taken(p, n)) {
                *out = n;
                break;
            }
        }
    }
    return *out ? KILN_OK : oom(s, e);
}

/* Is stmt still as sched_new made it (cache_write/rfactor rewrite its
 * statement, which only works before its loops are scheduled)? */
static bool unscheduled(const Schedule *s, int stmt)
{
    const StmtSched *st = &s->st[stmt];
    if (st->nrels || st->inlined || st->at)
        return false;
    for (int i = 0; i < st->norder; i++)
        if (st->order[i] != i || st->loops[i].kind != LOOP_SERIAL)
            return false;
    for (int i = 0; i < sched_prog(s)->nstmts; i++)
        if (s->st[i].at && s->st[i].at_stmt == stmt)
            return false;
    return true;
}

/* Builds the rewritten program with one new temp (appended; its
 * `writer` = at) and one new statement inserted at index `at` (later
 * statements shift by one; writers follow).  Also a new st[] array with
 * an empty slot at `at`.  Nothing is installed: the caller fills the new
 * pieces and then calls install(). */
typedef struct {
    Program *p;
    StmtSched *st;
    Tensor *nt; /* the new tensor */
    Stmt *ns;   /* the new statement */
} Rewrite;

static bool rewrite_begin(Schedule *s, int at, Rewrite *rw)
{
    const Program *o = sched_prog(s);
    Arena *a = s->arena;
    Program *p = arena_alloc(a, sizeof *p);
    if (!p)
        return false;
    *p = *o;
    p->tensors = arena_alloc(a, sizeof(Tensor) * (size_t)(o->ntensors + 1));
    p->stmts = arena_alloc(a, sizeof(Stmt) * (size_t)(o->nstmts + 1));
    StmtSched *st = arena_alloc(a, sizeof(StmtSched) * (size_t)(o->nstmts + 1));
    if (!p->tensors || !p->stmts || !st)
        return false;
    memcpy(p->tensors, o->tensors, sizeof(Tensor) * (size_t)o->ntensors);
    for (int i = 0; i < o->ntensors; i++)
        if (p->tensors[i].writer >= at)
            p->tensors[i].writer++;
    for (int i = 0, k = 0; i < o->nstmts; i++, k++) {
        if (k == at)
            k++;
        p->stmts[k] = o->stmts[i];
        st[k] = s->st[i];
        if (st[k].at && st[k].at_stmt >= at)
            st[k].at_stmt++;
    }
    memset(&st[at], 0, sizeof st[at]);
    memset(&p->stmts[at], 0, sizeof p->stmts[at]);
    rw->nt = &p->tensors[o->ntensors];
    memset(rw->nt, 0, sizeof *rw->nt);
    rw->nt->writer = at;
    rw->nt->kind = T_TEMP;
    p->ntensors++;
    p->nstmts++;
    rw->ns = &p->stmts[at];
    rw->ns->out = o->ntensors;
    rw->p = p;
    rw->st = st;
    return true;
}

static void rewrite_install(Schedule *s, Rewrite *rw, StrBuf *sb)
{
    s->dp = rw->p;
    s->st = rw->st;
    log_line(s, sb);
}

/* Replaces every load of tensor `from` by a load of `to`, its indices
 * permuted by perm (perm[k] = which index of the old load is the k-th of
 * the new one; NULL = same order). */
static Expr *swap_loads(Arena *a, Expr *x, int from, int to, int n, const int *perm)
{
    if (!x)
        return NULL;
    switch (x->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
    case EXPR_VAR:
        return x;
    case EXPR_LOAD: {
        Expr *idx[IR_MAX_DIMS];
        for (int i = 0; i < x->u.load.n; i++)
            idx[i] = swap_loads(a, x->u.load.idx[i], from, to, n, perm);
        if (x->u.load.buf != from)
            return expr_load(a, x->dt, x->u.load.buf, x->u.load.n, idx);
        Expr *pi[IR_MAX_DIMS];
        for (int k = 0; k < n; k++)
            pi[k] = idx[perm ? perm[k] : k];
        Expr *r = expr_load(a, x->dt, to, n, pi);
        if (r)
            r->loc = x->loc;
        return r;
    }
    default: {
        Expr *r = arena_alloc(a, sizeof *r);
        if (r) {
            *r = *x;
            r->u.op.a = swap_loads(a, x->u.op.a, from, to, n, perm);
            r->u.op.b = swap_loads(a, x->u.op.b, from, to, n, perm);
            r->u.op.c = swap_loads(a, x->u.op.c, from, to, n, perm);
        }
        return r;
    }
    }
}

int sched_compute_at(Schedule *s, int stmt, int consumer, int loop, kiln_error *e)
{
    s->err_arg = -1;
    const Program *p = sched_prog(s);
    if (stmt < 0 || stmt >= p->nstmts) {
        s->err_arg = 0;
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "no statement %d", stmt);
    }
    int rc = check_leaf(s, consumer, loop, 1, e);
    if (rc)
        return rc;
    const Tensor *t = &p->tensors[p->stmts[stmt].out];
    char q[160];
    qname(s, consumer, loop, q, sizeof q);
    if (t->kind != T_TEMP)
        return fail(s, e, 0, "cannot compute '%s' at %s: only temps can be, and it is an %s",
                    t->name, q, t->kind == T_OUTPUT ? "output" : "input");
    if (s->st[stmt].inlined)
        return fail(s, e, 0, "cannot compute '%s' at %s: it is inlined", t->name, q);
    if (s->st[stmt].at)
        return fail(s, e, 0, "'%s' is already computed at %s.%s", t->name,
                    stmt_tensor(s, s->st[stmt].at_stmt),
                    s->st[s->st[stmt].at_stmt].loops[s->st[stmt].at_loop].name);
    if (consumer == stmt)
        return fail(s, e, 1, "cannot compute '%s' at its own loop %s", t->name, q);
    int nr = 0, stray = stray_reader(s, p->stmts[stmt].out, consumer, loop, &nr);
    if (nr == 0 || (stray >= 0 && !reads(s, p->stmts[consumer].rhs, p->stmts[stmt].out)))
        return fail(s, e, 1, "cannot compute '%s' at %s: '%s' does not read '%s'%s", t->name, q,
                    stmt_tensor(s, consumer), t->name,
                    nr ? " (nor is every statement that does computed inside that loop)" : "");
    if (stray >= 0)
        return fail(s, e, 1,
                    "cannot compute '%s' at %s: '%s' reads it too (compute_at needs every "
                    "reader inside that loop)",
                    t->name, q, stmt_tensor(s, stray));
    if (s->st[consumer].loops[loop].kind == LOOP_VECTORIZED)
        return fail(s, e, 1, "cannot compute '%s' at vectorized loop %s", t->name, q);
    char *line = arena_printf(s->arena, "compute_at(%s, %s)", t->name, q);
    if (!line)
        return oom(s, e);
    s->st[stmt].at = true;
    s->st[stmt].at_stmt = consumer;
    s->st[stmt].at_loop = loop;
    ptrvec_push(s->arena, &s->log, line);
    return KILN_OK;
}

int sched_cache_write(Schedule *s, int stmt, const char *name, kiln_error *e)
{
    s->err_arg = -1;
    const Program *o = sched_prog(s);
    if (stmt < 0 || stmt >= o->nstmts) {
        s->err_arg = 0;
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "no statement %d", stmt);
    }
    const Stmt *os = &o->stmts[stmt];
    const Tensor *t = &o->tensors[os->out];
    if (s->st[stmt].inlined)
        return fail(s, e, 0, "cannot cache_write '%s': it is inlined", t->name);
    if (!unscheduled(s, stmt))
        return fail(s, e, 0,
                    "cache_write(%s) must come before %s's loops are scheduled or used by "
                    "compute_at",
                    t->name, t->name);
    char base[128];
    snprintf(base, sizeof base, "%s_local", t->name);
    const char *nm;
    int rc = new_tensor_name(s, name, base, &nm, e);
    if (rc)
        return rc;
    Rewrite rw;
    if (!rewrite_begin(s, stmt, &rw))
        return oom(s, e);
    Arena *a = s->arena;
    /* The new statement computes what stmt computed, into the new temp. */
    *rw.nt = *t;
    rw.nt->name = nm;
    rw.nt->kind = T_TEMP;
    rw.nt->writer = stmt;
    int nt = rw.p->ntensors - 1;
    *rw.ns = *os;
    rw.ns->out = nt;
    rw.ns->text = arena_printf(a, "%s = cache_write(%s)", nm, t->name);
    /* stmt (now at stmt + 1) copies it: T[i, ...] = name[i, ...]. */
    Stmt *cp = &rw.p->stmts[stmt + 1];
    Expr *idx[IR_MAX_DIMS];
    for (int d = 0; d < os->nspatial; d++)
        idx[d] = expr_var(a, os->vars[d]);
    cp->nvars = os->nspatial;
    cp->red = RED_NONE;
    cp->rhs = expr_load(a, t->dt, nt, os->nspatial, idx);
    StrBuf sb = {0};
    sb_printf(&sb, "%s = cache_write(%s)", nm, t->name);
    if (!rw.ns->text || !cp->rhs || !fresh_sched(s, rw.ns, &rw.st[stmt]) ||
        !fresh_sched(s, cp, &rw.st[stmt + 1])) {
        sb_free(&sb);
        return oom(s, e);
    }
    rewrite_install(s, &rw, &sb);
    return KILN_OK;
}

int sched_cache_read(Schedule *s, int tensor, int consumer, const char *name, int nlayout,
                     const int *layout, kiln_error *e)
{
    s->err_arg = -1;
    const Program *o = sched_prog(s);
    if (tensor < 0 || tensor >= o->ntensors) {
        s->err_arg = 0;
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "no tensor %d", tensor);
    }
    if (consumer < 0 || consumer >= o->nstmts) {
        s->err_arg = 1;
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "no statement %d", consumer);
    }
    const Tensor *t = &o->tensors[tensor];
    const Stmt *cs = &o->stmts[consumer];
    const char *cn = o->tensors[cs->out].name;
    if (s->st[consumer].inlined)
        return fail(s, e, 1, "cannot cache_read for '%s': it is inlined", cn);
    if (!expr_reads(cs->rhs, tensor))
        return fail(s, e, 0, "cannot cache_read '%s' for '%s': '%s' does not read it", t->name, cn,
                    cn);
    if (t->ndim == 0)
        return fail(s, e, 0, "cannot cache_read scalar '%s'", t->name);
    int perm[IR_MAX_DIMS];
    if (nlayout) {
        if (nlayout != t->ndim)
            return fail(s, e, 2, "layout of '%s' needs %d dimensions, got %d", t->name, t->ndim,
                        nlayout);
        bool seen[IR_MAX_DIMS] = {false};
        for (int k = 0; k < nlayout; k++) {
            if (layout[k] < 0 || layout[k] >= t->ndim || seen[layout[k]])
                return fail(s, e, 2 + k,
                            "layout of '%s' must name each dimension 0..%d exactly once", t->name,
                            t->ndim - 1);
            seen[layout[k]] = true;
            perm[k] = layout[k];
        }
    } else {
        for (int k = 0; k < t->ndim; k++)
            perm[k] = k;
    }
    char base[128];
    snprintf(base, sizeof base, "%s_%s", t->name, cn);
    const char *nm;
    int rc = new_tensor_name(s, name, base, &nm, e);
    if (rc)
        return rc;
    Rewrite rw;
    if (!rewrite_begin(s, consumer, &rw))
        return oom(s, e);
    Arena *a = s->arena;
    int nt = rw.p->ntensors - 1;
    *rw.nt = *t;
    rw.nt->name = nm;
    rw.nt->kind = T_TEMP;
    rw.nt->writer = consumer;
    for (int k = 0; k < t->ndim; k++)
        rw.nt->dims[k] = t->dims[perm[k]];
    /* The copy: nm[v_perm...] = t[v0, v1, ...]; its vars are named after
     * the consumer's plain index vars where there are such. */
    const Expr *fl = expr_first_load(cs->rhs, tensor);
    Var **vars = arena_alloc(a, sizeof(Var *) * (size_t)t->ndim);
    Expr *src[IR_MAX_DIMS];
    if (!vars)
        return oom(s, e);
    for (int d = 0; d < t->ndim; d++) {
        const char *vn = NULL;
        if (fl && fl->u.load.idx[d]->kind == EXPR_VAR)
            vn = fl->u.load.idx[d]->u.var->name;
        for (int k = 0; k < d && vn; k++)
            if (!strcmp(vars[k]->name, vn))
                vn = NULL;
        char buf[32];
        if (!vn) {
            snprintf(buf, sizeof buf, "d%d", d);
            vn = buf;
        }
        if (!(vars[d] = ir_var_new(a, vn, t->dims[d])))
            return oom(s, e);
        src[d] = expr_var(a, vars[d]);
    }
    Var **lv = arena_alloc(a, sizeof(Var *) * (size_t)t->ndim);
    if (!lv)
        return oom(s, e);
    for (int k = 0; k < t->ndim; k++)
        lv[k] = vars[perm[k]];
    rw.ns->vars = lv;
    rw.ns->nvars = rw.ns->nspatial = t->ndim;
    rw.ns->red = RED_NONE;
    rw.ns->rhs = expr_load(a, t->dt, tensor, t->ndim, src);
    rw.ns->loc = cs->loc;
    rw.ns->text = arena_printf(a, "%s = cache_read(%s, %s)", nm, t->name, cn);
    Stmt *c2 = &rw.p->stmts[consumer + 1];
    c2->rhs = swap_loads(a, cs->rhs, tensor, nt, t->ndim, perm);
    StrBuf sb = {0};
    sb_printf(&sb, "%s = cache_read(%s, %s", nm, t->name, cn);
    for (int k = 0; k < nlayout; k++)
        sb_printf(&sb, ", %d", layout[k]);
    sb_printf(&sb, ")");
    if (!rw.ns->rhs || !rw.ns->text || !c2->rhs || !fresh_sched(s, rw.ns, &rw.st[consumer])) {
        sb_free(&sb);
        return oom(s, e);
    }
    rewrite_install(s, &rw, &sb);
    return KILN_OK;
}

/* A var name "base" + suffix not used by any var of ps. */
static const char *var_name(Arena *a, const Stmt *ps, const char *base, const char *suffix)
{
    for (int k = 1;; k++) {
        char *n = k == 1 ? arena_printf(a, "%s%s", base, suffix)
                         : arena_printf(a, "%s%s%d", base, suffix, k);
        if (!n)
            return NULL;
        bool dup = false;
        for (int v = 0; v < ps->nvars; v++)
            dup |= !strcmp(ps->vars[v]->name, n);
        if (!dup)
            return n;
    }
}

int sched_rfactor(Schedule *s, int stmt, int loop, int64_t factor, const char *name, kiln_error *e)
{
    s->err_arg = -1;
    int rc = check_leaf(s, stmt, loop, 0, e);
    if (rc)
        return rc;
    const Program *o = sched_prog(s);
    const Stmt *os = &o->stmts[stmt];
    const Tensor *t = &o->tensors[os->out];
    char q[160];
    qname(s, stmt, loop, q, sizeof q);
    if (!unscheduled(s, stmt))
        return fail(s, e, 0, "rfactor(%s) must come before %s's loops are scheduled", q, t->name);
    if (loop >= os->nvars || loop < os->nspatial)
        return fail(s, e, 0, "rfactor needs a reduction loop, and %s is not one", q);
    if (os->nspatial + 1 > IR_MAX_DIMS)
        return fail(s, e, 0, "rfactor of %s: '%s' has too many dimensions", q, t->name);
    Var *k = os->vars[loop];
    if (factor < 1 || factor > k->extent)
        return fail(s, e, 1, "rfactor factor %lld of %s must be in 1..%lld", (long long)factor, q,
                    (long long)k->extent);
    char base[128];
    snprintf(base, sizeof base, "%s_rf", t->name);
    const char *nm;
    if ((rc = new_tensor_name(s, name, base, &nm, e)))
        return rc;
    Arena *a = s->arena;
    int64_t ko_ext = (k->extent + factor - 1) / factor;
    const char *kon = var_name(a, os, k->name, "o"), *kin = var_name(a, os, k->name, "i");
    Var *kr = kon ? ir_var_new(a, kon, ko_ext) : NULL; /* spatial in the partial stage */
    Var *ki = kin ? ir_var_new(a, kin, factor) : NULL; /* its reduction */
    Var *kf = kon ? ir_var_new(a, kon, ko_ext) : NULL; /* the final reduction */
    Var **pv = arena_alloc(a, sizeof(Var *) * (size_t)(os->nvars + 1));
    Var **fv = arena_alloc(a, sizeof(Var *) * (size_t)(os->nspatial + 1));
    if (!kr || !ki || !kf || !pv || !fv)
        return oom(s, e);
    ki->reduce = kf->reduce = true;
    Rewrite rw;
    if (!rewrite_begin(s, stmt, &rw))
        return oom(s, e);
    int nt = rw.p->ntensors - 1;
    *rw.nt = *t;
    rw.nt->name = nm;
    rw.nt->kind = T_TEMP;
    rw.nt->writer = stmt;
    rw.nt->ndim = os->nspatial + 1;
    rw.nt->dims[os->nspatial] = ko_ext;
    /* partial: nm[i.., ko] op= rhs[k := ko*f + ki], guarded when f does
     * not divide (lazy select: no load outside the tensors) */
    int n = 0;
    for (int v = 0; v < os->nspatial; v++)
        pv[n++] = os->vars[v];
    pv[n++] = kr;
    for (int v = os->nspatial; v < os->nvars; v++)
        pv[n++] = v == loop ? ki : os->vars[v];
    Expr *kval =
        expr_iadd(a, expr_imul(a, expr_var(a, kr), expr_iconst(a, factor)), expr_var(a, ki));
    Expr *rhs = expr_subst(a, os->rhs, 1, &k, &kval);
    if (ko_ext * factor != k->extent)
        rhs = expr_select(a, t->dt, expr_bin(a, EXPR_LT, DT_BOOL, kval, expr_iconst(a, k->extent)),
                          rhs, expr_red_identity(a, os->red, t->dt));
    *rw.ns = *os;
    rw.ns->out = nt;
    rw.ns->vars = pv;
    rw.ns->nvars = n;
    rw.ns->nspatial = os->nspatial + 1;
    rw.ns->rhs = rhs;
    rw.ns->text = arena_printf(a, "%s = rfactor(%s, %lld)", nm, q, (long long)factor);
    /* final: T[i..] op= nm[i.., ko] */
    Stmt *fs = &rw.p->stmts[stmt + 1];
    Expr *idx[IR_MAX_DIMS];
    for (int v = 0; v < os->nspatial; v++) {
        fv[v] = os->vars[v];
        idx[v] = expr_var(a, os->vars[v]);
    }
    fv[os->nspatial] = kf;
    idx[os->nspatial] = expr_var(a, kf);
    fs->vars = fv;
    fs->nvars = os->nspatial + 1;
    fs->rhs = expr_load(a, t->dt, nt, os->nspatial + 1, idx);
    StrBuf sb = {0};
    sb_printf(&sb, "%s = rfactor(%s, %lld)", nm, q, (long long)factor);
    if (!rhs || !rw.ns->text || !fs->rhs || !fresh_sched(s, rw.ns, &rw.st[stmt]) ||
        !fresh_sched(s, fs, &rw.st[stmt + 1])) {
        sb_free(&sb);
        return oom(s, e);
    }
    rewrite_install(s, &rw, &sb);
    return KILN_OK;
}

/* ----------------------------------------------------------- default */
/* Per statement: reduction loops just outside the innermost spatial loop
 * (matmul: i, k, j) so the inner loop streams over rows; the innermost
 * spatial loop split by one vector (16 lanes, 8 for 64-bit types) and
 * vectorized; the outermost spatial loop parallel when it comes before
 * every reduction loop and there is enough work to pay for the threads.
 * Every step is checked by the primitives; a refusal just skips it. */
Schedule *sched_default(const Program *p)
{
    Schedule *s = sched_new(p);
    if (!s)
        return NULL;
    for (int i = 0; i < p->nstmts; i++) {
        const Stmt *ps = &p->stmts[i];
        StmtSched *st = &s->st[i];
        int nsp = ps->nspatial, nred = ps->nvars - ps->nspatial;
        if (nsp > 0 && nred > 0 && ps->nvars <= 4 * IR_MAX_DIMS) {
            int ord[4 * IR_MAX_DIMS], n = 0;
            for (int v = 0; v < nsp - 1; v++)
                ord[n++] = v;
            for (int v = nsp; v < ps->nvars; v++)
                ord[n++] = v;
            ord[n++] = nsp - 1;
            sched_reorder(s, i, n, ord, NULL);
        }
        int w = dtype_size(p->tensors[ps->out].dt) == 8 ? 8 : 16;
        if (nsp > 0 && st->loops[nsp - 1].extent >= w) {
            const char *base = st->loops[nsp - 1].name;
            char o[96], in[96];
            snprintf(o, sizeof o, "%so", base);
            snprintf(in, sizeof in, "%si", base);
            const char *on = fresh_name(s, i, o, NULL, 0);
            const char *inn = on ? fresh_name(s, i, in, &on, 1) : NULL;
            const char *names[2] = {on, inn};
            int64_t f = w;
            int out[2];
            if (on && inn && sched_split(s, i, nsp - 1, 1, &f, names, out, NULL) == KILN_OK &&
                st->order[st->norder - 1] == out[1])
                sched_annotate(s, i, out[1], LOOP_VECTORIZED, NULL);
        }
        int64_t work = 1;
        for (int k = 0; k < st->norder; k++)
            work *= st->loops[st->order[k]].extent;
        if (st->norder > 0) {
            SLoop *outer = &st->loops[st->order[0]];
            if (!outer->reduce && outer->kind == LOOP_SERIAL && outer->extent >= 2 && work >= 32768)
                sched_annotate(s, i, st->order[0], LOOP_PARALLEL, NULL);
        }
    }
    return s;
}
