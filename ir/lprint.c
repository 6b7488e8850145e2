/* ir/lprint.c: LoopIR pretty printer (kiln show --after, golden tests).
 *
 * The output is stable: it depends only on the IR's structure and names,
 * never on addresses, so golden files can hold it.
 *
 *   func matmul(A: f32[64, 64], B: f32[64, 64], C: f32[64, 64])
 *     for io in 0..8 parallel:
 *       if (i < 60):
 *         C[i, j] = (C[i, j] + (A[i, k] * B[k, j]))
 */
#include <stdlib.h>

#include "ir/ir.h"

static const char *buf_name(void *ctx, int buf)
{
    const LFunc *f = ctx;
    return buf >= 0 && buf < f->nbufs ? f->bufs[buf].name : "?";
}

static void print_buf_type(StrBuf *sb, const LBuf *b)
{
    sb_printf(sb, "%s: %s[", b->name, dtype_name(b->dt));
    for (int i = 0; i < b->ndim; i++)
        sb_printf(sb, "%s%lld", i ? ", " : "", (long long)b->dims[i]);
    sb_printf(sb, "]");
}

static void indent(StrBuf *sb, int depth)
{
    sb_printf(sb, "%*s", 2 * depth, "");
}

static void print_stmt(StrBuf *sb, const LFunc *f, const LStmt *s, int depth)
{
    static const char *const kinds[] = {"", " parallel", " vectorized", " unrolled"};
    if (!s) {
        indent(sb, depth);
        sb_printf(sb, "pass\n");
        return;
    }
    switch (s->kind) {
    case LS_FOR:
        indent(sb, depth);
        sb_printf(sb, "for %s in 0..%lld%s:\n", s->u.loop.var->name, (long long)s->u.loop.extent,
                  (unsigned)s->u.loop.kind < 4 ? kinds[s->u.loop.kind] : " ?");
        print_stmt(sb, f, s->u.loop.body, depth + 1);
        break;
    case LS_STORE:
        indent(sb, depth);
        sb_printf(sb, "%s[", buf_name((void *)f, s->u.store.buf));
        for (int i = 0; i < s->u.store.n; i++) {
            if (i)
                sb_printf(sb, ", ");
            expr_to_sb(sb, s->u.store.idx[i], buf_name, (void *)f);
        }
        sb_printf(sb, "] = ");
        expr_to_sb(sb, s->u.store.value, buf_name, (void *)f);
        sb_printf(sb, "\n");
        break;
    case LS_BLOCK:
        if (!s->u.block.n) {
            indent(sb, depth);
            sb_printf(sb, "pass\n");
        }
        for (int i = 0; i < s->u.block.n; i++)
            print_stmt(sb, f, s->u.block.s[i], depth);
        break;
    case LS_IF:
        indent(sb, depth);
        sb_printf(sb, "if ");
        expr_to_sb(sb, s->u.cond.cond, buf_name, (void *)f);
        sb_printf(sb, ":\n");
        print_stmt(sb, f, s->u.cond.then_s, depth + 1);
        if (s->u.cond.else_s) {
            indent(sb, depth);
            sb_printf(sb, "else:\n");
            print_stmt(sb, f, s->u.cond.else_s, depth + 1);
        }
        break;
    case LS_ALLOC:
        indent(sb, depth);
        sb_printf(sb, "alloc ");
        if (s->u.alloc.buf >= 0 && s->u.alloc.buf < f->nbufs)
            print_buf_type(sb, &f->bufs[s->u.alloc.buf]);
        else
            sb_printf(sb, "b%d", s->u.alloc.buf);
        sb_printf(sb, ":\n");
        print_stmt(sb, f, s->u.alloc.body, depth + 1);
        break;
    }
}

char *lfunc_to_text(const LFunc *f)
{
    StrBuf sb = {0};
    sb_printf(&sb, "func %s(", f->name ? f->name : "?");
    for (int i = 0; i < f->nargs && i < f->nbufs; i++) {
        if (i)
            sb_printf(&sb, ", ");
        print_buf_type(&sb, &f->bufs[i]);
    }
    sb_printf(&sb, ")\n");
    print_stmt(&sb, f, f->body, 1);
    if (!sb.s)
        return calloc(1, 1);
    return sb.s;
}
