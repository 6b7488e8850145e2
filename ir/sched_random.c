/* ir/sched_random.c: random valid schedules (for tests and random search).
 *
 * Draws primitives with fixed probabilities (cache_write, rfactor and
 * cache_read first, then inline, then per statement, consumers first: an
 * optional compute_at into a consumer's loop, loop primitives,
 * annotations) and applies them through the
 * ordinary sched_* functions; a primitive that refuses is simply skipped,
 * so the result is valid by construction.  Randomness is the explicit
 * xorshift64* state passed in, never a global. */
#include <string.h>

#include "ir/ir.h"

/* Keeps the unrolled body small so compiling a sample stays cheap. */
#define UNROLL_BUDGET 512

uint64_t ir_rand(uint64_t *rng)
{
    uint64_t x = *rng ? *rng : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, n). */
static int64_t rnd(uint64_t *rng, int64_t n)
{
    return n <= 1 ? 0 : (int64_t)((ir_rand(rng) >> 11) % (uint64_t)n);
}

static bool chance(uint64_t *rng, int percent)
{
    return rnd(rng, 100) < percent;
}

/* A split factor for a loop of extent `ext`: usually a divisor, sometimes
 * any value up to a little past the extent (non-dividing, guarded). */
static int64_t pick_factor(uint64_t *rng, int64_t ext)
{
    if (ext <= 1)
        return 1 + rnd(rng, 3);
    if (chance(rng, 55)) {
        /* divisors in pairs up to sqrt(ext): fused loops can be long */
        int64_t divs[128];
        int n = 0;
        for (int64_t d = 1; d * d <= ext && n < 126; d++)
            if (ext % d == 0) {
                divs[n++] = d;
                if (d != ext / d)
                    divs[n++] = ext / d;
            }
        return divs[rnd(rng, n)];
    }
    int64_t hi = ext < 64 ? ext + 2 : 66;
    return 1 + rnd(rng, hi);
}

static void random_split(Schedule *s, int stmt, uint64_t *rng)
{
    StmtSched *st = &s->st[stmt];
    if (!st->norder)
        return;
    int loop = st->order[rnd(rng, st->norder)];
    int64_t ext = st->loops[loop].extent;
    int nf = chance(rng, 25) ? 2 : 1;
    int64_t f[2];
    f[0] = pick_factor(rng, ext);
    if (nf == 2) {
        int64_t span = (ext + f[0] - 1) / f[0];
        f[1] = f[0];
        f[0] = pick_factor(rng, span > 0 ? span : 1);
    }
    sched_split(s, stmt, loop, nf, f, NULL, NULL, NULL);
}

static void random_fuse(Schedule *s, int stmt, uint64_t *rng)
{
    StmtSched *st = &s->st[stmt];
    if (st->norder < 2)
        return;
    int p = (int)rnd(rng, st->norder - 1);
    int n = (chance(rng, 20) && p + 2 < st->norder) ? 3 : 2;
    int loops[3];
    for (int i = 0; i < n; i++)
        loops[i] = st->order[p + i];
    sched_fuse(s, stmt, n, loops, NULL, NULL, NULL);
}

static void random_reorder(Schedule *s, int stmt, uint64_t *rng)
{
    StmtSched *st = &s->st[stmt];
    int n = st->norder;
    if (n < 2 || n > 64)
        return;
    int loops[64];
    memcpy(loops, st->order, sizeof(int) * (size_t)n);
    if (chance(rng, 50)) {
        for (int i = n - 1; i > 0; i--) {
            int k = (int)rnd(rng, i + 1), t = loops[i];
            loops[i] = loops[k];
            loops[k] = t;
        }
        sched_reorder(s, stmt, n, loops, NULL);
    } else {
        int a = (int)rnd(rng, n), b = (int)rnd(rng, n);
        if (a == b)
            return;
        int two[2] = {loops[b], loops[a]};
        sched_reorder(s, stmt, 2, two, NULL);
    }
}

static void random_annotations(Schedule *s, int stmt, uint64_t *rng)
{
    StmtSched *st = &s->st[stmt];
    if (!st->norder)
        return;
    int64_t body = 1;
    int inner = st->order[st->norder - 1];
    if (chance(rng, 45) && !st->loops[inner].reduce && st->loops[inner].extent <= 64 &&
        sched_annotate(s, stmt, inner, LOOP_VECTORIZED, NULL) == KILN_OK)
        body = st->loops[inner].extent;
    if (chance(rng, 40)) {
        /* prefer outer loops: the first spatial leaf, or a random one */
        int pick = -1;
        for (int i = 0; i < st->norder && pick < 0; i++)
            if (!st->loops[st->order[i]].reduce)
                pick = st->order[i];
        if (chance(rng, 30))
            pick = st->order[rnd(rng, st->norder)];
        if (pick >= 0)
            sched_annotate(s, stmt, pick, LOOP_PARALLEL, NULL);
    }
    int nun = chance(rng, 35) ? 1 + (int)rnd(rng, 2) : 0;
    for (int k = 0; k < nun; k++) {
        int l = st->order[rnd(rng, st->norder)];
        SLoop *lp = &st->loops[l];
        if (lp->kind != LOOP_SERIAL || lp->extent > 32 || body * lp->extent > UNROLL_BUDGET)
            continue;
        if (sched_annotate(s, stmt, l, LOOP_UNROLLED, NULL) == KILN_OK)
            body *= lp->extent;
    }
}

/* cache_write / rfactor of reductions and cache_read of their operands:
 * these rewrite statements, so they come before any loop scheduling.
 * Statements are found by the tensor they write, since indices shift. */
static void random_caches(Schedule *s, const Program *orig, uint64_t *rng)
{
    for (int ti = 0; ti < orig->ntensors; ti++) {
        const Program *p = sched_prog(s);
        int w = p->tensors[ti].writer;
        if (w < 0)
            continue;
        const Stmt *ps = &p->stmts[w];
        if (ps->red != RED_NONE && chance(rng, 30)) {
            if (chance(rng, 35) && ps->nvars > ps->nspatial) {
                int loop = ps->nspatial + (int)rnd(rng, ps->nvars - ps->nspatial);
                int64_t ext = ps->vars[loop]->extent;
                sched_rfactor(s, w, loop, 1 + rnd(rng, ext < 8 ? ext : 8), NULL, NULL);
            } else {
                sched_cache_write(s, w, NULL, NULL);
            }
        }
        p = sched_prog(s);
        w = p->tensors[ti].writer;
        for (int t = 0; t < orig->ntensors; t++) {
            if (!expr_reads(p->stmts[w].rhs, t) || !chance(rng, 15))
                continue;
            int perm[IR_MAX_DIMS], n = p->tensors[t].ndim;
            for (int k = 0; k < n; k++)
                perm[k] = k;
            bool swap = n >= 2 && chance(rng, 30);
            if (swap) {
                perm[n - 2] = n - 1;
                perm[n - 1] = n - 2;
            }
            sched_cache_read(s, t, w, NULL, swap ? n : 0, perm, NULL);
            p = sched_prog(s);
            w = p->tensors[ti].writer;
        }
    }
}

/* compute_at of temp statement i into a random loop of a consumer. */
static void random_compute_at(Schedule *s, int i, uint64_t *rng)
{
    const Program *p = sched_prog(s);
    for (int c = i + 1; c < p->nstmts; c++) {
        StmtSched *st = &s->st[c];
        if (st->inlined || !st->norder)
            continue;
        int loop = st->order[rnd(rng, st->norder)];
        if (sched_compute_at(s, i, c, loop, NULL) == KILN_OK)
            return;
    }
}

Schedule *sched_random(const Program *p, uint64_t *rng)
{
    Schedule *s = sched_new(p);
    if (!s)
        return NULL;
    random_caches(s, p, rng);
    const Program *q = sched_prog(s);
    for (int i = 0; i < q->nstmts; i++)
        if (q->tensors[q->stmts[i].out].kind == T_TEMP && q->stmts[i].red == RED_NONE &&
            chance(rng, 35))
            sched_inline(s, i, NULL);
    /* Consumers first: a producer is computed at a loop of an already
     * scheduled consumer, and then scheduled over its region. */
    for (int i = q->nstmts - 1; i >= 0; i--) {
        if (s->st[i].inlined)
            continue;
        if (q->tensors[q->stmts[i].out].kind == T_TEMP && chance(rng, 50))
            random_compute_at(s, i, rng);
        int nops = (int)rnd(rng, 6);
        for (int k = 0; k < nops; k++) {
            int64_t r = rnd(rng, 100);
            if (r < 50)
                random_split(s, i, rng);
            else if (r < 70)
                random_fuse(s, i, rng);
            else
                random_reorder(s, i, rng);
        }
        random_annotations(s, i, rng);
    }
    return s;
}
