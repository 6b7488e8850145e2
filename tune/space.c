/* tune/space.c: the CPU design space of a program, written as a trace
 * with sampling instructions (the same text a user may write by hand and
 * pass with `kiln tune --space`).
 *
 * Rules, per statement, after MetaSchedule's DefaultLLVM:
 *   - each elementwise temp: a sampled location `T_loc`: 0 its own loop
 *     nest, 1 inlined into its consumers, and, when exactly one statement
 *     reads it and that statement is an elementwise output, 2/3 computed
 *     at the consumer's innermost tile loop of level 1/2 (compute_at);
 *     lines about an inlined statement are skipped when the trace runs;
 *   - the innermost spatial loop is split by a sampled vector width
 *     (8..64 f32 lanes, and divisors of the extent in that range;
 *     non-dividing widths get a guarded tail);
 *   - multi-level tiling "SSRSRS": spatial loops into 4 levels (for the
 *     vectorized var, the loop outside the lanes; its level 3, vectors
 *     side by side in the register tile, at most 8), reduction loops into
 *     2, by sample_perfect_tile, then reordered S S R S R S lanes;
 *   - reductions: a sampled `T_cw`: 0 as above, 2/3 the accumulator goes
 *     to a cache_write temp `T_local` computed at the output's innermost
 *     level-1/level-0 tile loop (a register / cache tile), whose own loops
 *     are tiled R S R S with the factors of the same samples, so the
 *     region and the tile agree; 1 (when an input is streamed along the
 *     vector loop and re-read across others, like B of a matmul) as 0,
 *     with that input packed: cache_read, computed at the innermost R0
 *     loop, its last dimension vectorized;
 *   - reductions whose spatial loops are short (<= 64 iterations in all)
 *     over a long reduction (>= 64): instead of T_cw a sampled `T_rf`:
 *     rfactor of the longest reduction loop by a sampled block size
 *     (`T_part`, its spatial loops and blocks fused and parallel), T then
 *     reduces the blocks;
 *   - the vector loop is vectorized; a sampled number of outer spatial
 *     loops is fused and parallelised (auto_parallel, which stops at a
 *     loop another statement is computed at); a sampled unroll budget
 *     unrolls the innermost loops (auto_unroll).
 * Every point of the space is a valid schedule by construction: sampling
 * lines only name loops that exist in every branch, lines of one branch
 * carry its guard, and the primitives that could refuse (parallel,
 * unroll) go through the auto_* instructions, which check first.  Trace
 * order follows schedules.md: consumer, compute_at, then the producer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tune/tuner.h"

typedef struct {
    const char *name[4]; /* loop names per level (NULL: none at that level) */
    const char *lanes;   /* the vectorized loop, inside level 3 (vec only) */
    const char *tile;    /* its sample_perfect_tile variable, or NULL */
    int64_t extent;
    bool reduce, vec;
} VarPlan;

typedef struct {
    VarPlan *plan;
    int nv;
    const char *last[4]; /* innermost spatial loop of each level (NULL: none) */
} StmtPlan;

static const char *nm(Arena *a, const Stmt *st, const char *base, const char *suffix)
{
    const char *n = arena_printf(a, "%s%s", base, suffix);
    for (int v = 0; n && v < st->nvars; v++)
        if (!strcmp(st->vars[v]->name, n))
            return arena_printf(a, "%s_l%s", base, suffix);
    return n;
}

static bool has_tensor(const Program *p, const char *name)
{
    for (int i = 0; i < p->ntensors; i++)
        if (!strcmp(p->tensors[i].name, name))
            return true;
    return false;
}

/* The only statement reading tensor t, or -1 (none or several). */
static int sole_consumer(const Program *p, int t)
{
    int c = -1;
    for (int i = 0; i < p->nstmts; i++)
        if (expr_reads(p->stmts[i].rhs, t)) {
            if (c >= 0)
                return -1;
            c = i;
        }
    return c;
}

static bool elementwise_temp(const Program *p, int si)
{
    const Stmt *st = &p->stmts[si];
    return p->tensors[st->out].kind == T_TEMP && st->red == RED_NONE;
}

/* A temp whose statement may be computed at its consumer: elementwise,
 * read by one statement only, an elementwise output (never inlined, no
 * cache_write that would move the read elsewhere). */
static int at_consumer(const Program *p, int si)
{
    if (!elementwise_temp(p, si))
        return -1;
    int c = sole_consumer(p, p->stmts[si].out);
    if (c < 0 || c == si || p->stmts[c].red != RED_NONE ||
        p->tensors[p->stmts[c].out].kind == T_TEMP || p->stmts[c].nspatial < 1)
        return -1;
    return c;
}

/* The input a reduction streams along its vector loop and re-reads across
 * other loops (B of a matmul, the image of a convolution): its last index
 * uses the innermost spatial var and some index uses a reduction var.
 * Such an operand is worth packing (cache_read computed at the outer
 * reduction tile), as BLAS libraries do.  -1: none. */
static int pack_candidate(const Program *p, int si)
{
    const Stmt *st = &p->stmts[si];
    if (st->red == RED_NONE || st->nspatial < 1 || st->nvars == st->nspatial)
        return -1;
    const Var *inner = st->vars[st->nspatial - 1];
    for (int t = 0; t < p->ntensors; t++) {
        if (p->tensors[t].kind != T_INPUT || p->tensors[t].ndim < 2)
            continue;
        const Expr *l = expr_first_load(st->rhs, t);
        if (!l || !expr_uses_var(l->u.load.idx[l->u.load.n - 1], inner))
            continue;
        for (int v = st->nspatial; v < st->nvars; v++)
            for (int d = 0; d < l->u.load.n; d++)
                if (expr_uses_var(l->u.load.idx[d], st->vars[v]))
                    return t;
    }
    return -1;
}

/* The guard suffix of a line ("" for none). */
static const char *g(const char *guard)
{
    return guard ? guard : "";
}

/* How a reduction may be rewritten before its loops are tiled. */
typedef struct {
    int kind;        /* 0 none, 1 cache_write (T_cw), 2 rfactor (T_rf) */
    int rvar;        /* rfactor: the reduction var split */
    const char *ko;  /* rfactor: the final reduction loop of T */
    int64_t rf_f[4]; /* rfactor: block sizes to sample */
    int nf;
    int pack; /* cache_write alt: the input packed when T_cw == 1, or -1 */
} Alt;

/* T_cw's values: 0 plain, 1 plain with the operand packed, 2 / 3 the
 * accumulator cache-written at a register / cache tile.  With an rfactor
 * alt the variable is T_rf (0 / 1). */
static const char *alt_guard(Arena *a, const char *T, const Alt *alt, bool taken)
{
    if (alt->kind == 2)
        return arena_printf(a, " if %s%s_rf", taken ? "" : "not ", T);
    return arena_printf(a, " if %s_cw %s 2", T, taken ? ">=" : "<");
}


/* Sampling and tiling of statement si's own loops (phase 1), written into
 * *sp for the lines that follow.  With an Alt (cache_write or rfactor of a
 * reduction), the sampling that needs the original loops comes first and
 * the reduction lines carry `if T_cw < 2` / `if not T_rf`. */
static void stmt_tiles(StrBuf *sb, const Program *p, int si, Arena *a, const char *guard,
                       const Alt *alt, StmtPlan *sp)
{
    bool cw = alt->kind != 0; /* sample first; the reduction lines get a guard */
    const Stmt *st = &p->stmts[si];
    const Tensor *out = &p->tensors[st->out];
    const char *T = out->name;
    int nv = st->nvars;
    sp->nv = nv;
    sp->plan = arena_alloc(a, sizeof(VarPlan) * (size_t)(nv ? nv : 1));
    if (!sp->plan)
        return;
    int inner = st->nspatial - 1; /* the spatial var that gets the vector loop */
    /* vector widths: powers of two from one register's lanes to 8 times
     * that, and the extent's even divisors in between (56 -> 14, 28, 56: a
     * width that divides keeps guards out of the register tile) */
    int64_t ch[12];
    int nc = 0;
    if (inner >= 0 && st->vars[inner]->extent > 1) {
        int64_t ext = st->vars[inner]->extent;
        int lanes = dtype_size(out->dt) == 8 ? 4 : 8;
        for (int64_t w = lanes; w <= 8 * lanes && nc < 12; w++)
            if (w <= ext && (!(w & (w - 1)) || (ext % w == 0 && w % 2 == 0 && w > lanes + lanes / 2)))
                ch[nc++] = w;
    }
    if (nc > 0) {
        sb_printf(sb, "%s_vec = sample_categorical([", T);
        for (int k = 0; k < nc; k++)
            sb_printf(sb, "%s%lld", k ? ", " : "", (long long)ch[k]);
        sb_printf(sb, "], [");
        for (int k = 0; k < nc; k++)
            sb_printf(sb, "%s%.4g", k ? ", " : "", 1.0 / nc);
        sb_printf(sb, "])\n");
    }
    for (int v = 0; v < nv; v++) {
        VarPlan *pl = &sp->plan[v];
        pl->extent = st->vars[v]->extent;
        pl->reduce = v >= st->nspatial;
        pl->vec = v == inner && nc > 0;
        if (pl->extent > 1)
            pl->tile = arena_printf(a, "%s_%s_tile", T, st->vars[v]->name);
    }
    /* tiles of the original (unsplit) loops first: with cw they must be
     * drawn before cache_write turns the reduction into the local temp */
    for (int v = 0; cw && v < nv; v++) {
        const VarPlan *pl = &sp->plan[v];
        if (pl->tile && !pl->vec)
            sb_printf(sb, "%s = sample_perfect_tile(%s.%s, %d, 64)\n", pl->tile, T,
                      st->vars[v]->name, pl->reduce ? 2 : 4);
    }
    const char *plain_g = cw ? alt_guard(a, T, alt, false) : "";
    const char *alt_g = cw ? alt_guard(a, T, alt, true) : "";
    if (alt->kind == 1) {
        if (alt->pack >= 0)
            sb_printf(sb, "%s_cw = sample_categorical([0, 1, 2, 3], [0.2, 0.3, 0.3, 0.2])\n", T);
        else
            sb_printf(sb, "%s_cw = sample_categorical([0, 2, 3], [0.3, 0.4, 0.3])\n", T);
        sb_printf(sb, "%s_local = cache_write(%s)%s\n", T, T, alt_g);
    } else if (alt->kind == 2) {
        sb_printf(sb, "%s_rf_f = sample_categorical([", T);
        for (int k = 0; k < alt->nf; k++)
            sb_printf(sb, "%s%lld", k ? ", " : "", (long long)alt->rf_f[k]);
        sb_printf(sb, "])\n%s_rf = sample_categorical([0, 1], [0.3, 0.7])\n", T);
        sb_printf(sb, "%s_part = rfactor(%s.%s, %s_rf_f) if %s_rf\n", T, T,
                  st->vars[alt->rvar]->name, T, T);
    }
    for (int v = 0; v < nv; v++) {
        const Var *var = st->vars[v];
        VarPlan *pl = &sp->plan[v];
        if (!pl->tile) {
            pl->name[0] = var->name;
            continue;
        }
        const char *src = var->name;
        int levels = pl->reduce ? 2 : 4;
        if (pl->vec) {
            const char *o = nm(a, st, var->name, "_o");
            pl->lanes = nm(a, st, var->name, "_v");
            /* unguarded: the tile below samples the outer loop in every
             * branch (computed at a consumer, the region is split too) */
            sb_printf(sb, "%s.%s, %s.%s = split(%s.%s, %s_vec)\n", T, o, T, pl->lanes, T,
                      var->name, T);
            src = o;
        }
        /* the vector loop's outer part: 4 levels too, the innermost one
         * (vectors side by side in the register tile) at most 8 */
        if (!cw || pl->vec)
            sb_printf(sb, "%s = sample_perfect_tile(%s.%s, %d, %d)\n", pl->tile, T, src, levels,
                      pl->vec ? 8 : 64);
        static const char suf[4][4] = {"0", "1", "2", "3"};
        for (int k = 0; k < levels; k++) {
            int lvl = pl->reduce ? (k == 0 ? 0 : 1) : k;
            pl->name[lvl] = nm(a, st, var->name, suf[lvl]);
            sb_printf(sb, "%s%s.%s", k ? ", " : "", T, pl->name[lvl]);
        }
        sb_printf(sb, " = split(%s.%s, %s)", T, src, pl->tile);
        if (pl->reduce && cw)
            sb_printf(sb, "%s\n", plain_g);
        else
            sb_printf(sb, "%s\n", g(guard));
    }
    for (int l = 0; l < 4; l++)
        sp->last[l] = NULL;
    for (int v = 0; v < nv; v++)
        for (int l = 0; l < 4; l++)
            if (!sp->plan[v].reduce && sp->plan[v].name[l])
                sp->last[l] = sp->plan[v].name[l];
    /* S S R S R S (with cw, also the copy's S S S S; with rfactor the
     * final reduction's S S ko S S) */
    static const int spatial_level[6] = {0, 1, -1, 2, -1, 3};
    for (int pass = 0; pass < (cw ? 2 : 1); pass++) {
        bool copy = pass == 1; /* after cache_write: no reduction loops */
        int first = 1;
        sb_printf(sb, "reorder(");
        for (int slot = 0; slot < 6; slot++) {
            for (int v = 0; v < nv; v++) {
                const VarPlan *pl = &sp->plan[v];
                int lvl = spatial_level[slot];
                if (pl->reduce)
                    lvl = copy ? -1 : slot == 2 ? 0 : slot == 4 ? 1 : -1;
                if (lvl < 0 || !pl->name[lvl])
                    continue;
                sb_printf(sb, "%s%s.%s", first ? "" : ", ", T, pl->name[lvl]);
                first = 0;
            }
            if (copy && slot == 2 && alt->kind == 2) {
                sb_printf(sb, "%s%s.%s", first ? "" : ", ", T, alt->ko);
                first = 0;
            }
        }
        for (int v = 0; v < nv; v++)
            if (sp->plan[v].lanes)
                sb_printf(sb, "%s%s.%s", first ? "" : ", ", T, sp->plan[v].lanes);
        if (cw)
            sb_printf(sb, ")%s\n", copy ? alt_g : plain_g);
        else
            sb_printf(sb, ")%s\n", g(guard));
    }
    for (int v = 0; v < nv; v++)
        if (sp->plan[v].vec)
            sb_printf(sb, "vectorize(%s.%s)\n", T, sp->plan[v].lanes);
}

/* The cache_write temp's loops: the region of the output's tile below
 * level `at` (0 or 1), tiled with the same factors, R S R S order. */
static void local_tiles(StrBuf *sb, const Program *p, int si, Arena *a, const StmtPlan *sp, int at)
{
    const Stmt *st = &p->stmts[si];
    const char *T = p->tensors[st->out].name;
    const char *L = arena_printf(a, "%s_local", T);
    int cwv = at == 1 ? 2 : 3; /* T_cw's value for this location */
    const char *names[IR_MAX_DIMS * 2][4];
    const char *lanes = NULL; /* the vector var's lane loop */
    memset(names, 0, sizeof names);
    for (int v = 0; v < sp->nv && v < IR_MAX_DIMS * 2; v++) {
        const VarPlan *pl = &sp->plan[v];
        const char *vn = st->vars[v]->name;
        if (!pl->tile) {
            names[v][0] = vn;
            continue;
        }
        if (pl->reduce) {
            names[v][0] = nm(a, st, vn, "_r0");
            names[v][1] = nm(a, st, vn, "_r1");
            sb_printf(sb, "%s.%s, %s.%s = split(%s.%s, %s) if %s_cw == %d\n", L, names[v][0], L,
                      names[v][1], L, vn, pl->tile, T, cwv);
            continue;
        }
        /* spatial levels at+1 .. 3 are inside the compute_at loop */
        int first = at + 1;
        int k = 0;
        for (int lvl = first; lvl < 4; lvl++)
            names[v][lvl] = nm(a, st, vn, lvl == 1 ? "_s1" : lvl == 2 ? "_s2" : "_s3");
        for (int lvl = first; lvl < 4; lvl++)
            sb_printf(sb, "%s%s.%s", k++ ? ", " : "", L, names[v][lvl]);
        if (pl->vec) {
            lanes = nm(a, st, vn, "_s4");
            sb_printf(sb, ", %s.%s", L, lanes);
        }
        sb_printf(sb, " = split(%s.%s", L, vn);
        for (int lvl = first + 1; lvl < 4; lvl++)
            sb_printf(sb, ", %s[%d]", pl->tile, lvl);
        if (pl->vec)
            sb_printf(sb, ", %s_vec", T);
        sb_printf(sb, ") if %s_cw == %d\n", T, cwv);
    }
    /* order: extent-1 loops, then the spatial levels above `first`'s
     * second, R0, S(first+1 == 2 or at+2), R1, innermost S */
    int first = 1;
    sb_printf(sb, "reorder(");
    for (int v = 0; v < sp->nv; v++)
        if (!sp->plan[v].tile) {
            sb_printf(sb, "%s%s.%s", first ? "" : ", ", L, names[v][0]);
            first = 0;
        }
    /* level sequence: spatial levels (at+1 .. 1), R0, level 2, R1, level 3 */
    int seq[6], ns = 0;
    for (int lvl = at + 1; lvl <= 1; lvl++)
        seq[ns++] = lvl;
    seq[ns++] = -1;
    seq[ns++] = 2;
    seq[ns++] = -2;
    seq[ns++] = 3;
    for (int q = 0; q < ns; q++)
        for (int v = 0; v < sp->nv; v++) {
            const VarPlan *pl = &sp->plan[v];
            if (!pl->tile)
                continue;
            const char *n = NULL;
            if (pl->reduce && seq[q] < 0)
                n = names[v][seq[q] == -1 ? 0 : 1];
            else if (!pl->reduce && seq[q] >= 0)
                n = names[v][seq[q]];
            if (!n)
                continue;
            sb_printf(sb, "%s%s.%s", first ? "" : ", ", L, n);
            first = 0;
        }
    if (lanes)
        sb_printf(sb, "%s%s.%s", first ? "" : ", ", L, lanes);
    sb_printf(sb, ") if %s_cw == %d\n", T, cwv);
}

static void stmt_space(StrBuf *sb, const Program *p, int si, Arena *a, const int *at_of)
{
    const Stmt *st = &p->stmts[si];
    const Tensor *out = &p->tensors[st->out];
    const char *T = out->name;
    if (st->nvars == 0)
        return;
    bool at_mode = at_of[si] >= 0; /* computed at its consumer when T_loc >= 2 */
    const char *guard = at_mode ? arena_printf(a, " if %s_loc == 0", T) : NULL;
    bool spatial_tiled = false;
    for (int v = 0; v < st->nspatial; v++)
        spatial_tiled |= st->vars[v]->extent > 1;
    char local[256], part[256];
    snprintf(local, sizeof local, "%s_local", T);
    snprintf(part, sizeof part, "%s_part", T);
    bool red = st->red != RED_NONE && spatial_tiled && st->nvars > st->nspatial && strlen(T) < 200;
    Alt alt;
    memset(&alt, 0, sizeof alt);
    /* rfactor where the spatial loops cannot feed the cores: split the
     * longest reduction into blocks whose partial results run in parallel */
    int64_t sprod = 1;
    for (int v = 0; v < st->nspatial; v++)
        sprod *= st->vars[v]->extent;
    alt.rvar = -1;
    for (int v = st->nspatial; v < st->nvars; v++)
        if (alt.rvar < 0 || st->vars[v]->extent > st->vars[alt.rvar]->extent)
            alt.rvar = v;
    if (red && sprod <= 64 && alt.rvar >= 0 && st->vars[alt.rvar]->extent >= 64 &&
        !has_tensor(p, part) && st->nspatial + 1 <= IR_MAX_DIMS) {
        const char *kn = st->vars[alt.rvar]->name;
        alt.ko = arena_printf(a, "%so", kn);
        const char *ki = arena_printf(a, "%si", kn);
        bool clash = false;
        for (int v = 0; v < st->nvars && alt.ko && ki; v++)
            clash |= !strcmp(st->vars[v]->name, alt.ko) || !strcmp(st->vars[v]->name, ki);
        for (int64_t f = 8; f * 2 <= st->vars[alt.rvar]->extent && alt.nf < 4; f *= 2)
            alt.rf_f[alt.nf++] = f;
        if (alt.ko && ki && !clash && alt.nf > 0)
            alt.kind = 2;
    }
    alt.pack = -1;
    if (!alt.kind && red && !has_tensor(p, local)) {
        alt.kind = 1;
        int t = pack_candidate(p, si);
        if (t >= 0 && strlen(p->tensors[t].name) < 100 &&
            !has_tensor(p, arena_printf(a, "%s_%s", p->tensors[t].name, T)))
            alt.pack = t;
    }
    bool cw = alt.kind == 1;
    sb_printf(sb, "# %s: %s\n", T, st->text ? st->text : "");
    StmtPlan sp;
    memset(&sp, 0, sizeof sp);
    stmt_tiles(sb, p, si, a, guard, &alt, &sp);
    if (!sp.plan)
        return;
    /* producers computed at this statement (it is their only consumer) */
    for (int pi = 0; pi < p->nstmts; pi++) {
        if (at_of[pi] != si)
            continue;
        const char *P = p->tensors[p->stmts[pi].out].name;
        for (int lvl = 1; lvl <= 2; lvl++)
            if (sp.last[lvl])
                sb_printf(sb, "compute_at(%s, %s.%s) if %s_loc == %d\n", P, T, sp.last[lvl], P,
                          lvl + 1);
    }
    if (cw) {
        if (sp.last[1])
            sb_printf(sb, "compute_at(%s, %s.%s) if %s_cw == 2\n", local, T, sp.last[1], T);
        if (sp.last[0])
            sb_printf(sb, "compute_at(%s, %s.%s) if %s_cw == 3\n", local, T, sp.last[0], T);
    }
    /* packing: the operand's tile copied at the innermost outer-reduction
     * loop (the region spans the inner spatial and reduction tiles), its
     * last dimension contiguous and vectorized like the consumer's */
    const char *pk = NULL, *pk_last = NULL;
    if (cw && alt.pack >= 0) {
        const char *r0 = NULL;
        for (int v = st->nspatial; v < st->nvars; v++)
            if (sp.plan[v].name[0])
                r0 = sp.plan[v].name[0];
        const Expr *l = expr_first_load(st->rhs, alt.pack);
        const Expr *li = l ? l->u.load.idx[l->u.load.n - 1] : NULL;
        pk = arena_printf(a, "%s_%s", p->tensors[alt.pack].name, T);
        /* cache_read names the copy's loops after plain index vars, else dN */
        pk_last = li && li->kind == EXPR_VAR
                      ? li->u.var->name
                      : arena_printf(a, "d%d", p->tensors[alt.pack].ndim - 1);
        if (r0 && pk && pk_last) {
            sb_printf(sb, "%s = cache_read(%s, %s) if %s_cw == 1\n", pk,
                      p->tensors[alt.pack].name, T, T);
            sb_printf(sb, "compute_at(%s, %s.%s) if %s_cw == 1\n", pk, T, r0, T);
        } else
            pk = NULL;
    }
    if (st->nspatial > 0) {
        sb_printf(sb, "%s_par = sample_categorical([0, 1, 2, 3], [0.1, 0.3, 0.3, 0.3])\n", T);
        sb_printf(sb, "auto_parallel(%s, %s_par)%s\n", T, T, g(guard));
    }
    sb_printf(sb, "%s_unroll = sample_categorical([0, 16, 64, 512], [0.25, 0.25, 0.25, 0.25])\n",
              T);
    sb_printf(sb, "auto_unroll(%s, %s_unroll)\n", T, T);
    if (alt.kind == 2) {
        /* the partial stage: every spatial loop and the block loop fused
         * and parallel, the rest unrolled by the same budget */
        sb_printf(sb, "auto_parallel(%s, %d) if %s_rf\n", part, st->nspatial + 1, T);
        sb_printf(sb, "auto_unroll(%s, %s_unroll) if %s_rf\n", part, T, T);
    }
    if (cw) {
        if (sp.last[1])
            local_tiles(sb, p, si, a, &sp, 1);
        if (sp.last[0])
            local_tiles(sb, p, si, a, &sp, 0);
        for (int v = 0; v < sp.nv; v++)
            if (sp.plan[v].vec)
                sb_printf(sb, "vectorize(%s.%s) if %s_cw >= 2\n", local,
                          nm(a, st, st->vars[v]->name, "_s4"), T);
        sb_printf(sb, "auto_unroll(%s, %s_unroll) if %s_cw >= 2\n", local, T, T);
    }
    if (pk) {
        bool vec = false;
        for (int v = 0; v < sp.nv; v++)
            vec |= sp.plan[v].vec;
        if (vec) {
            sb_printf(sb, "%s.%s_o, %s.%s_v = split(%s.%s, %s_vec) if %s_cw == 1\n", pk, pk_last, pk,
                      pk_last, pk, pk_last, T, T);
            sb_printf(sb, "vectorize(%s.%s_v) if %s_cw == 1\n", pk, pk_last, T);
        }
    }
}

char *space_generate(const Program *p)
{
    Arena *a = arena_new();
    if (!a)
        return NULL;
    StrBuf sb = {0};
    sb_printf(&sb,
              "# design space of %s (kiln space rules: inline/compute_at, SSRSRS tiling, "
              "cache_write, vector, parallel, unroll)\n",
              p->name);
    int *at_of = arena_alloc(a, sizeof(int) * (size_t)(p->nstmts ? p->nstmts : 1));
    if (!at_of) {
        arena_free(a);
        return NULL;
    }
    for (int i = 0; i < p->nstmts; i++) {
        at_of[i] = at_consumer(p, i);
        const Tensor *t = &p->tensors[p->stmts[i].out];
        if (!elementwise_temp(p, i))
            continue;
        if (at_of[i] >= 0)
            sb_printf(&sb, "%s_loc = sample_categorical([0, 1, 2, 3], [0.3, 0.3, 0.2, 0.2])\n",
                      t->name);
        else
            sb_printf(&sb, "%s_loc = sample_categorical([0, 1], [0.5, 0.5])\n", t->name);
        sb_printf(&sb, "inline(%s) if %s_loc == 1\n", t->name, t->name);
    }
    /* program order, except that a producer that may be computed at its
     * consumer comes right after it */
    for (int i = 0; i < p->nstmts; i++) {
        if (at_of[i] >= 0)
            continue;
        stmt_space(&sb, p, i, a, at_of);
        for (int k = 0; k < p->nstmts; k++)
            if (at_of[k] == i)
                stmt_space(&sb, p, k, a, at_of);
    }
    arena_free(a);
    return sb.s;
}
