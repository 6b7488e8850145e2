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
    return s->prog->tensors[s->prog->stmts[stmt].out].name;
}

static void qname(const Schedule *s, int stmt, int loop, char *buf, size_t n)
{
    snprintf(buf, n, "%s.%s", stmt_tensor(s, stmt), s->st[stmt].loops[loop].name);
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
    for (int i = 0; i < st->nloops; i++)
        if (strlen(st->loops[i].name) == len && !memcmp(st->loops[i].name, name, len))
            return i;
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
    if (stmt < 0 || stmt >= s->prog->nstmts) {
        s->err_arg = arg;
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "no statement %d", stmt);
    }
    StmtSched *st = &s->st[stmt];
    if (loop < 0 || loop >= st->nloops) {
        s->err_arg = arg;
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "no loop %d in statement of '%s'", loop,
                        stmt_tensor(s, stmt));
    }
    char q[160];
    qname(s, stmt, loop, q, sizeof q);
    if (st->inlined)
        return fail(s, e, arg, "cannot schedule %s: '%s' is inlined into its consumers", q,
                    stmt_tensor(s, stmt));
    if (!st->loops[loop].leaf)
        return fail(s, e, arg, "%s is no longer a loop: it was split or fused", q);
    return KILN_OK;
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

/* ------------------------------------------------------ construction */
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
    for (int i = 0; i < p->nstmts; i++) {
        const Stmt *ps = &p->stmts[i];
        StmtSched *st = &s->st[i];
        st->cap = ps->nvars + 8;
        st->loops = arena_alloc(a, sizeof(SLoop) * (size_t)st->cap);
        st->order = arena_alloc(a, sizeof(int) * (size_t)(ps->nvars ? ps->nvars : 1));
        if (!st->loops || !st->order)
            goto oom;
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
    }
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
    const Program *p = s->prog;
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

    StrBuf sb = {0};
    const char *t = stmt_tensor(s, stmt);
    for (int i = 0; i <= nf; i++)
        sb_printf(&sb, "%s%s.%s", i ? ", " : "", t, nm[i]);
    sb_printf(&sb, " = split(%s", q);
    for (int i = 0; i < nf; i++)
        sb_printf(&sb, ", %lld", (long long)factors[i]);
    sb_printf(&sb, ")");
    log_line(s, &sb);
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
        if ((rc = check_leaf(s, stmt, loops[i], i, e)))
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

    StrBuf sb = {0};
    const char *t = stmt_tensor(s, stmt);
    sb_printf(&sb, "%s.%s = fuse(", t, nm);
    for (int i = 0; i < n; i++)
        sb_printf(&sb, "%s%s.%s", i ? ", " : "", t, st->loops[loops[i]].name);
    sb_printf(&sb, ")");
    log_line(s, &sb);
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

    StrBuf sb = {0};
    sb_printf(&sb, "reorder(");
    for (int i = 0; i < n; i++) {
        char q[160];
        qname(s, stmt, loops[i], q, sizeof q);
        sb_printf(&sb, "%s%s", i ? ", " : "", q);
    }
    sb_printf(&sb, ")");
    log_line(s, &sb);
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
        if (l->kind == LOOP_PARALLEL)
            return fail(s, e, 0, "%s is parallel; a loop cannot be both parallel and vectorized",
                        q);
        if (l->extent > MAX_VECTOR)
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
        if (l->extent > MAX_UNROLL)
            return fail(s, e, 0, "cannot unroll %s: extent %lld exceeds %d", q,
                        (long long)l->extent, MAX_UNROLL);
        break;
    case LOOP_SERIAL:
        break;
    default:
        s->err_arg = -1;
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "bad loop kind %d", (int)kind);
    }
    StrBuf sb = {0};
    sb_printf(&sb, "%s(%s)", kind_verb(kind), q);
    char *line = arena_strdup(s->arena, sb.s);
    sb_free(&sb);
    if (!line)
        return oom(s, e);
    l->kind = kind;
    ptrvec_push(s->arena, &s->log, line);
    return KILN_OK;
}

int sched_inline(Schedule *s, int stmt, kiln_error *e)
{
    s->err_arg = -1;
    const Program *p = s->prog;
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
    char *line = arena_printf(s->arena, "inline(%s)", t->name);
    if (!line)
        return oom(s, e);
    s->st[stmt].inlined = true;
    ptrvec_push(s->arena, &s->log, line);
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
