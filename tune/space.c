/* tune/space.c: the CPU design space of a program, written as a trace
 * with sampling instructions (the same text a user may write by hand and
 * pass with `kiln tune --space`).
 *
 * Rules, per statement, after MetaSchedule's DefaultLLVM:
 *   - each elementwise temp: a sampled inline (`inline(T) if T_inline`);
 *     lines about an inlined statement are skipped when the trace runs;
 *   - the innermost spatial loop is split by a sampled vector width
 *     (8..64 f32 lanes; non-dividing widths get a guarded tail);
 *   - multi-level tiling "SSRSRS": spatial loops into 4 levels (the vector
 *     loop is the innermost level), reduction loops into 2, by
 *     sample_perfect_tile, then reordered S S R S R S;
 *   - the vector loop is vectorized; a sampled number of outer spatial
 *     loops is fused and parallelised (auto_parallel); a sampled unroll
 *     budget unrolls the innermost loops (auto_unroll).
 * Every point of the space is a valid schedule by construction: the only
 * primitives that could refuse (parallel, unroll) go through the auto_*
 * instructions, which check first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tune/tuner.h"

typedef struct {
    const char *name[4]; /* loop names per level (NULL: none at that level) */
    int64_t extent;
    bool reduce;
} VarPlan;

static const char *nm(Arena *a, const Stmt *st, const char *base, const char *suffix)
{
    const char *n = arena_printf(a, "%s%s", base, suffix);
    for (int v = 0; n && v < st->nvars; v++)
        if (!strcmp(st->vars[v]->name, n))
            return arena_printf(a, "%s_l%s", base, suffix);
    return n;
}

static void stmt_space(StrBuf *sb, const Program *p, int si, Arena *a)
{
    const Stmt *st = &p->stmts[si];
    const Tensor *out = &p->tensors[st->out];
    const char *T = out->name;
    int nv = st->nvars;
    if (nv == 0)
        return;
    VarPlan *plan = arena_alloc(a, sizeof(VarPlan) * (size_t)nv);
    if (!plan)
        return;
    int inner = st->nspatial - 1; /* the spatial var that gets the vector loop */
    bool vec = false;
    sb_printf(sb, "# %s: %s\n", T, st->text ? st->text : "");
    for (int v = 0; v < nv; v++) {
        const Var *var = st->vars[v];
        VarPlan *pl = &plan[v];
        pl->extent = var->extent;
        pl->reduce = v >= st->nspatial;
        if (var->extent <= 1) {
            pl->name[0] = var->name;
            continue;
        }
        const char *src = var->name;
        int levels = pl->reduce ? 2 : 4;
        if (v == inner) {
            int lanes = dtype_size(out->dt) == 8 ? 4 : 8;
            int64_t ch[4];
            int nc = 0;
            for (int w = lanes; w <= 8 * lanes && nc < 4; w *= 2)
                if (w <= var->extent)
                    ch[nc++] = w;
            if (nc > 0) {
                vec = true;
                sb_printf(sb, "%s_vec = sample_categorical([", T);
                for (int k = 0; k < nc; k++)
                    sb_printf(sb, "%s%lld", k ? ", " : "", (long long)ch[k]);
                sb_printf(sb, "], [");
                for (int k = 0; k < nc; k++)
                    sb_printf(sb, "%s%.4g", k ? ", " : "", 1.0 / nc);
                sb_printf(sb, "])\n");
                const char *o = nm(a, st, var->name, "_o");
                pl->name[3] = nm(a, st, var->name, "_v");
                sb_printf(sb, "%s.%s, %s.%s = split(%s.%s, %s_vec)\n", T, o, T, pl->name[3], T,
                          var->name, T);
                src = o;
                levels = 3;
            }
        }
        char suf[4][4] = {"0", "1", "2", "3"};
        sb_printf(sb, "%s_%s_tile = sample_perfect_tile(%s.%s, %d, %d)\n", T, var->name, T, src,
                  levels, levels == 3 ? 0 : 64);
        for (int k = 0; k < levels; k++) {
            int lvl = pl->reduce ? (k == 0 ? 0 : 1) : k;
            pl->name[lvl] = nm(a, st, var->name, suf[lvl]);
            sb_printf(sb, "%s%s.%s", k ? ", " : "", T, pl->name[lvl]);
        }
        sb_printf(sb, " = split(%s.%s, %s_%s_tile)\n", T, src, T, var->name);
    }
    /* S S R S R S */
    static const int spatial_level[6] = {0, 1, -1, 2, -1, 3};
    int first = 1;
    sb_printf(sb, "reorder(");
    for (int slot = 0; slot < 6; slot++) {
        for (int v = 0; v < nv; v++) {
            const VarPlan *pl = &plan[v];
            int lvl = spatial_level[slot];
            if (pl->reduce)
                lvl = slot == 2 ? 0 : slot == 4 ? 1 : -1;
            if (lvl < 0 || !pl->name[lvl])
                continue;
            sb_printf(sb, "%s%s.%s", first ? "" : ", ", T, pl->name[lvl]);
            first = 0;
        }
    }
    sb_printf(sb, ")\n");
    if (vec)
        sb_printf(sb, "vectorize(%s.%s)\n", T, plan[inner].name[3]);
    if (st->nspatial > 0) {
        sb_printf(sb, "%s_par = sample_categorical([0, 1, 2, 3], [0.1, 0.3, 0.3, 0.3])\n", T);
        sb_printf(sb, "auto_parallel(%s, %s_par)\n", T, T);
    }
    sb_printf(sb, "%s_unroll = sample_categorical([0, 16, 64, 512], [0.25, 0.25, 0.25, 0.25])\n",
              T);
    sb_printf(sb, "auto_unroll(%s, %s_unroll)\n", T, T);
}

char *space_generate(const Program *p)
{
    Arena *a = arena_new();
    if (!a)
        return NULL;
    StrBuf sb = {0};
    sb_printf(&sb,
              "# design space of %s (kiln space rules: inline, SSRSRS tiling, vector, "
              "parallel, unroll)\n",
              p->name);
    for (int i = 0; i < p->nstmts; i++) {
        const Stmt *st = &p->stmts[i];
        const Tensor *t = &p->tensors[st->out];
        if (t->kind == T_TEMP && st->red == RED_NONE) {
            sb_printf(&sb, "%s_inline = sample_categorical([0, 1], [0.5, 0.5])\n", t->name);
            sb_printf(&sb, "inline(%s) if %s_inline\n", t->name, t->name);
        }
    }
    for (int i = 0; i < p->nstmts; i++)
        stmt_space(&sb, p, i, a);
    arena_free(a);
    return sb.s;
}
