/* tests/test_cg_util.h: helpers for the codegen tests — build flat LFuncs
 * by hand with the ir/core.c constructors, compile them, and allocate
 * buffers that sit against PROT_NONE guard pages, so any out-of-bounds
 * access by generated code faults instead of passing silently (ASan does
 * not see inside JIT code). */
#ifndef TEST_CG_UTIL_H
#define TEST_CG_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "ir/ir.h"
#include "runtime/runtime.h"
#include "testlib.h"

/* Every test file keeps its IR in this arena. */
static Arena *A;

/* ---- expression shorthands (i64 index arithmetic unless noted) ---- */
static inline Expr *V(Var *v)
{
    return expr_var(A, v);
}
static inline Expr *I(int64_t v)
{
    return expr_iconst(A, v);
}
static inline Expr *CF(DType dt, double v)
{
    return expr_float(A, dt, v);
}
static inline Expr *CI(DType dt, int64_t v)
{
    return expr_int(A, dt, v);
}
static inline Expr *BIN(ExprKind k, Expr *x, Expr *y)
{
    return expr_bin(A, k, expr_is_compare(k) || k == EXPR_AND || k == EXPR_OR ? DT_BOOL : x->dt, x,
                    y);
}
static inline Expr *ADD(Expr *x, Expr *y)
{
    return BIN(EXPR_ADD, x, y);
}
static inline Expr *SUB(Expr *x, Expr *y)
{
    return BIN(EXPR_SUB, x, y);
}
static inline Expr *MUL(Expr *x, Expr *y)
{
    return BIN(EXPR_MUL, x, y);
}
static inline Expr *UN(ExprKind k, Expr *x)
{
    return expr_un(A, k, x->dt, x);
}
static inline Expr *CAST(DType dt, Expr *x)
{
    return expr_un(A, EXPR_CAST, dt, x);
}
static inline Expr *SEL(Expr *c, Expr *t, Expr *f)
{
    return expr_select(A, t->dt, c, t, f);
}
static inline Expr *LD(DType dt, int buf, Expr *idx)
{
    return expr_load(A, dt, buf, 1, &idx);
}
static inline LStmt *ST(int buf, Expr *idx, Expr *val)
{
    return ls_store(A, buf, 1, &idx, val);
}
static inline LStmt *FOR(Var *v, LoopKind k, LStmt *body)
{
    return ls_for(A, v, v->extent, k, body);
}
static inline LStmt *IF(Expr *c, LStmt *t, LStmt *f)
{
    return ls_if(A, c, t, f);
}
static inline Var *VAR(const char *name, int64_t extent)
{
    return ir_var_new(A, name, extent);
}

static inline LStmt *BLOCK(int n, ...)
{
    LStmt *s[64];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n && i < 64; i++)
        s[i] = va_arg(ap, LStmt *);
    va_end(ap);
    return ls_block(A, n, s);
}

/* A flat function; bufs: `nbufs` (name, dtype, kind, numel) entries. */
static inline LFunc *FUNC(const char *name, int nargs, int nbufs, const LBuf *bufs, LStmt *body)
{
    LFunc *f = arena_alloc(A, sizeof *f);
    f->name = arena_strdup(A, name);
    f->bufs = arena_alloc(A, sizeof(LBuf) * (size_t)nbufs);
    memcpy(f->bufs, bufs, sizeof(LBuf) * (size_t)nbufs);
    f->nbufs = nbufs;
    f->nargs = nargs;
    f->body = body;
    f->flat = true;
    return f;
}

static inline LBuf BUF(const char *name, DType dt, TensorKind kind, int64_t numel)
{
    LBuf b = {.name = name, .dt = dt, .kind = kind, .ndim = 1};
    b.dims[0] = numel;
    return b;
}

/* Compiles f; reports the error as a failed check. */
static inline CgKernel *compile(const LFunc *f)
{
    CgKernel *k = NULL;
    kiln_error e = {0};
    int rc = cg_compile(f, &k, &e);
    CHECKF(rc == KILN_OK, "compile %s: %s", f->name, e.msg);
    return rc == KILN_OK ? k : NULL;
}

/* Runs k through its packed entry. */
static inline int run(CgKernel *k, int n, ...)
{
    void *args[32];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        args[i] = va_arg(ap, void *);
    va_end(ap);
    return k ? cg_kernel_packed(k)(args) : -1;
}

/* ---- guarded buffers ----
 * bytes of memory whose end (at_end) or start touches a PROT_NONE page. */
typedef struct Guarded {
    void *map;
    size_t maplen;
} Guarded;

enum { GUARDED_MAX = 256 };
static Guarded guarded_maps[GUARDED_MAX];
static int nguarded;

static inline void *galloc(size_t bytes, bool at_end)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = (bytes + pg - 1) / pg * pg;
    size_t len = data + 2 * pg;
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    mprotect(m, pg, PROT_NONE);
    mprotect(m + pg + data, pg, PROT_NONE);
    if (nguarded < GUARDED_MAX)
        guarded_maps[nguarded++] = (Guarded){m, len};
    unsigned char *p = at_end ? m + pg + data - bytes : m + pg;
    memset(p, 0, bytes);
    return p;
}

static inline void gfree_all(void)
{
    for (int i = 0; i < nguarded; i++)
        munmap(guarded_maps[i].map, guarded_maps[i].maplen);
    nguarded = 0;
}

static inline uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static inline float rnd_f(uint64_t *s)
{
    return (float)((double)(rng_next(s) >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}

#endif
