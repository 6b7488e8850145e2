/* codegen/codegen.c: flat LoopIR -> LLVM IR, and the optimisation pipeline.
 *
 * One LFunc becomes `i32 sym(ptr a0, ..., ptr an)` (plus `sym__packed` for
 * the JIT).  Loops are built in phi form; LOOP_UNROLLED bodies are copied
 * with the variable bound to constants; LOOP_PARALLEL bodies are outlined
 * into `void(ptr ctx, i64 begin, i64 end)` and handed to a parallel-for;
 * LOOP_VECTORIZED loops are emitted as one iteration of W lanes.
 *
 * Vector invariant: inside a vectorized body every Expr is either uniform
 * (a scalar: it does not mention the vector variable) or varying (<W x T>).
 * `cg->mask` (NULL = all lanes) holds the lanes that are live; every memory
 * access made under a mask is masked or guarded, so a lane that is off
 * never touches memory.  A body whose lanes could depend on each other (a
 * lane reading what another lane writes) is emitted as a serial loop
 * instead, except for the recognised in-order reduction `s[u] = s[u] op x`.
 *
 * Errors while building are recorded in cg->e (first wins); building goes
 * on with poison values and the module is discarded at the end. */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "codegen/codegen.h"

enum {
    MAX_VEC_WIDTH = 64,   /* wider vectorized loops are chunked */
    CHUNK_WIDTH = 16,     /* lanes per chunk of a wide vectorized loop */
    UNROLL_BUDGET = 8192, /* statements an unrolled loop may expand to */
    STACK_BUF_MAX = 8192, /* locals up to this size live on the stack */
    STACK_FN_MAX = 32768  /* ... while a function's stack locals stay below this */
};

/* ------------------------------------------------------------- LLVM init */
static char *host_cpu, *host_features;

static void llvm_init_once(void)
{
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    LLVMInitializeNativeAsmParser();
    char *c = LLVMGetHostCPUName(), *f = LLVMGetHostCPUFeatures();
    host_cpu = strdup(c);
    host_features = strdup(f);
    LLVMDisposeMessage(c);
    LLVMDisposeMessage(f);
}

void cg_llvm_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, llvm_init_once);
}

char *cg_host_cpu(void)
{
    cg_llvm_init();
    size_t n = strlen(host_cpu) + strlen(host_features) + 3;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s %s", host_cpu, host_features);
    return s;
}

LLVMTargetMachineRef cg_host_tm(bool pic, kiln_error *e)
{
    cg_llvm_init();
    char *triple = LLVMGetDefaultTargetTriple(), *msg = NULL;
    LLVMTargetRef t;
    if (LLVMGetTargetFromTriple(triple, &t, &msg)) {
        ir_error(e, KILN_ECODEGEN, NULL, (Loc){0, 0}, "no LLVM target for '%s': %s", triple,
                 msg ? msg : "?");
        LLVMDisposeMessage(msg);
        LLVMDisposeMessage(triple);
        return NULL;
    }
    LLVMTargetMachineRef tm =
        LLVMCreateTargetMachine(t, triple, host_cpu, host_features, LLVMCodeGenLevelAggressive,
                                pic ? LLVMRelocPIC : LLVMRelocDefault, LLVMCodeModelDefault);
    LLVMDisposeMessage(triple);
    if (!tm)
        ir_error(e, KILN_ECODEGEN, NULL, (Loc){0, 0}, "cannot create a target machine");
    return tm;
}

/* kiln's pass pipeline.  The IR arrives already unrolled and vectorized,
 * with loops in rotated phi form, so what it needs is cleanup: inline the
 * outlined parallel bodies (noalias becomes scope metadata), SROA (local
 * tiles become registers), CSE, instcombine, LICM (hoisting, and scalar
 * promotion of accumulators), non-trivial unswitching (guards of
 * non-dividing splits are loop-invariant: hoisting them out of the
 * reduction loop made a guarded 6x32 matmul tile 1.5x faster), GVN, DSE.
 * Measured on that 1024^3 tile (CPU ms, opt + codegen): this pipeline
 * about 4 + 9, default<O3> (unroller, vectorizers off) about 22 + 14 with
 * no faster code.  The same pipeline serves the JIT and objects, so what
 * the tuner measured is what ships.  KILN_LLVM_PASSES overrides it.
 * `instcombine` must say no-verify-fixpoint: spelled plainly in a pipeline
 * string it checks for a fixpoint and aborts the process (a testing aid
 * that the built-in O-levels leave off). */
static const char *const kiln_passes =
    "always-inline,function(sroa,early-cse,instcombine<no-verify-fixpoint>,simplifycfg,"
    "loop-mssa(licm,simple-loop-unswitch<nontrivial>),gvn,instcombine<no-verify-fixpoint>,"
    "simplifycfg,dse,adce)";

int cg_optimize(LLVMModuleRef m, LLVMTargetMachineRef tm, kiln_error *e)
{
    /* LLVM's unroller and vectorizers stay off even for an override: kiln
     * unrolls and vectorizes itself, and the unroller is what makes O3
     * slow (deps.md §3). */
    LLVMPassBuilderOptionsRef o = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopUnrolling(o, 0);
    LLVMPassBuilderOptionsSetLoopVectorization(o, 0);
    LLVMPassBuilderOptionsSetSLPVectorization(o, 0);
    const char *passes = getenv("KILN_LLVM_PASSES");
    LLVMErrorRef err = LLVMRunPasses(m, passes && *passes ? passes : kiln_passes, tm, o);
    LLVMDisposePassBuilderOptions(o);
    if (err) {
        char *msg = LLVMGetErrorMessage(err);
        ir_error(e, KILN_ECODEGEN, NULL, (Loc){0, 0}, "LLVM optimisation failed: %s", msg);
        LLVMDisposeErrorMessage(msg);
        return KILN_ECODEGEN;
    }
    return KILN_OK;
}

/* ------------------------------------------------------------ state */
typedef struct Val {
    LLVMValueRef v;
    bool vec; /* <W x T> rather than T */
} Val;

typedef struct Bind {
    const Var *var;
    LLVMValueRef v; /* i64 */
} Bind;

/* Per LLVM function being emitted. */
typedef struct Fn {
    LLVMValueRef fn;
    LLVMBasicBlockRef entry; /* holds only allocas, then `br start` */
    LLVMValueRef *bufptr;    /* per LFunc buffer: its pointer here, or NULL */
    LLVMValueRef *live;      /* heap locals to free on an error exit */
    int nlive;
    LLVMValueRef errflag; /* outlined bodies: i32 flag set on failure */
    int64_t stack_bytes;
    int bind_floor; /* bindings below belong to enclosing functions */
} Fn;

typedef struct Cg {
    LLVMContextRef C;
    LLVMModuleRef M;
    LLVMBuilderRef B, AB; /* AB: allocas in the entry block */
    const LFunc *f;
    CgMode mode;
    const char *sym;
    kiln_error *e;
    bool failed;
    Fn *fn;
    Bind *binds;
    int nbinds, capbinds;
    /* vectorized body */
    const Var *vvar; /* NULL outside */
    unsigned W;
    LLVMValueRef vbase; /* i64: lane 0's value of vvar */
    LLVMValueRef mask;  /* <W x i1> live lanes; NULL = all */
    bool vsplit;        /* a guard of this vector body got an all-lanes path */
    int par_depth;
    int nbodies;
    LLVMTypeRef i1, i8, i32, i64, f32, f64, ptr, voidt;
    LLVMValueRef rt_par;
} Cg;

static void cg_fail(Cg *cg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cg_fail(Cg *cg, const char *fmt, ...)
{
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    cg->failed = true;
    ir_error(cg->e, KILN_ECODEGEN, NULL, (Loc){0, 0}, "codegen: %s", buf);
}

/* ------------------------------------------------------------ types */
static LLVMTypeRef scalar_ty(Cg *cg, DType dt)
{
    switch (dt) {
    case DT_F32:
        return cg->f32;
    case DT_F64:
        return cg->f64;
    case DT_I32:
        return cg->i32;
    case DT_I64:
        return cg->i64;
    case DT_BOOL:
        return cg->i1;
    }
    return cg->i64;
}

static bool is_vec_ty(LLVMTypeRef t)
{
    return LLVMGetTypeKind(t) == LLVMVectorTypeKind;
}

/* dt's type shaped like `like` (a vector of the same width or a scalar). */
static LLVMTypeRef ty_like(Cg *cg, DType dt, LLVMTypeRef like)
{
    LLVMTypeRef s = scalar_ty(cg, dt);
    return is_vec_ty(like) ? LLVMVectorType(s, LLVMGetVectorSize(like)) : s;
}

/* A constant of type t (scalar or vector: splatted). */
static LLVMValueRef cst(LLVMTypeRef t, double fv, int64_t iv)
{
    if (is_vec_ty(t)) {
        unsigned n = LLVMGetVectorSize(t);
        LLVMValueRef el[MAX_VEC_WIDTH], s = cst(LLVMGetElementType(t), fv, iv);
        for (unsigned i = 0; i < n; i++)
            el[i] = s;
        return LLVMConstVector(el, n);
    }
    LLVMTypeKind k = LLVMGetTypeKind(t);
    if (k == LLVMFloatTypeKind || k == LLVMDoubleTypeKind)
        return LLVMConstReal(t, fv);
    return LLVMConstInt(t, (unsigned long long)iv, 1);
}

static LLVMValueRef ci64(Cg *cg, int64_t v)
{
    return LLVMConstInt(cg->i64, (unsigned long long)v, 1);
}

static LLVMValueRef splat(Cg *cg, LLVMValueRef s)
{
    LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(s), cg->W);
    LLVMValueRef ins =
        LLVMBuildInsertElement(cg->B, LLVMGetPoison(vt), s, LLVMConstInt(cg->i32, 0, 0), "");
    return LLVMBuildShuffleVector(cg->B, ins, LLVMGetPoison(vt),
                                  LLVMConstNull(LLVMVectorType(cg->i32, cg->W)), "");
}

static LLVMValueRef to_vec(Cg *cg, Val x)
{
    return x.vec ? x.v : splat(cg, x.v);
}

static Val S(LLVMValueRef v)
{
    return (Val){v, false};
}

/* ----------------------------------------------------- calls, intrinsics */
static LLVMValueRef intrin(Cg *cg, const char *name, LLVMTypeRef *tys, int ntys, LLVMValueRef *args,
                           int nargs)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    IR_ASSERT(id != 0);
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(cg->M, id, tys, (size_t)ntys);
    LLVMTypeRef fty = LLVMIntrinsicGetType(cg->C, id, tys, (size_t)ntys);
    return LLVMBuildCall2(cg->B, fty, fn, args, (unsigned)nargs, "");
}

static LLVMValueRef intrin1(Cg *cg, const char *name, LLVMValueRef x)
{
    LLVMTypeRef t = LLVMTypeOf(x);
    return intrin(cg, name, &t, 1, &x, 1);
}

static void add_enum_attr(Cg *cg, LLVMValueRef fn, LLVMAttributeIndex idx, const char *name,
                          uint64_t val)
{
    /* A kind of 0 (an attribute this LLVM does not know) would crash the
     * verifier (deps.md); skip it instead. */
    unsigned k = LLVMGetEnumAttributeKindForName(name, strlen(name));
    if (k)
        LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(cg->C, k, val));
}

static void add_str_attr(Cg *cg, LLVMValueRef fn, const char *k, const char *v)
{
    LLVMAddAttributeAtIndex(
        fn, LLVMAttributeFunctionIndex,
        LLVMCreateStringAttribute(cg->C, k, (unsigned)strlen(k), v, (unsigned)strlen(v)));
}

/* Host CPU/features and 512-bit vectors.  Never min-legal-vector-width:
 * <= 256 would split every zmm operation in two (deps.md §1). */
static void set_fn_attrs(Cg *cg, LLVMValueRef fn)
{
    add_str_attr(cg, fn, "target-cpu", host_cpu);
    add_str_attr(cg, fn, "target-features", host_features);
    add_str_attr(cg, fn, "prefer-vector-width", "512");
    add_enum_attr(cg, fn, LLVMAttributeFunctionIndex, "nounwind", 0);
}

/* A libc/libm function, declared on first use. */
static LLVMValueRef ext_fn(Cg *cg, const char *name, LLVMTypeRef ret, LLVMTypeRef *params,
                           unsigned n)
{
    LLVMValueRef fn = LLVMGetNamedFunction(cg->M, name);
    if (!fn) {
        fn = LLVMAddFunction(cg->M, name, LLVMFunctionType(ret, params, n, 0));
        add_enum_attr(cg, fn, LLVMAttributeFunctionIndex, "nounwind", 0);
    }
    return fn;
}

static LLVMValueRef call_fn(Cg *cg, LLVMValueRef fn, LLVMValueRef *args, unsigned n)
{
    return LLVMBuildCall2(cg->B, LLVMGlobalGetValueType(fn), fn, args, n, "");
}

static LLVMValueRef entry_alloca(Cg *cg, LLVMTypeRef t, unsigned align)
{
    LLVMPositionBuilderBefore(cg->AB, LLVMGetBasicBlockTerminator(cg->fn->entry));
    LLVMValueRef a = LLVMBuildAlloca(cg->AB, t, "");
    LLVMSetAlignment(a, align);
    return a;
}

static LLVMBasicBlockRef new_bb(Cg *cg, const char *name)
{
    return LLVMAppendBasicBlockInContext(cg->C, cg->fn->fn, name);
}

/* ------------------------------------------------------------ bindings */
static void bind(Cg *cg, const Var *v, LLVMValueRef val)
{
    if (cg->nbinds == cg->capbinds) {
        int cap = cg->capbinds ? cg->capbinds * 2 : 32;
        Bind *b = realloc(cg->binds, sizeof(Bind) * (size_t)cap);
        if (!b) {
            cg_fail(cg, "out of memory");
            return;
        }
        cg->binds = b;
        cg->capbinds = cap;
    }
    cg->binds[cg->nbinds++] = (Bind){v, val};
}

static void unbind(Cg *cg)
{
    if (cg->nbinds > 0)
        cg->nbinds--;
}

static LLVMValueRef lookup(Cg *cg, const Var *v)
{
    for (int i = cg->nbinds - 1; i >= cg->fn->bind_floor; i--)
        if (cg->binds[i].var == v)
            return cg->binds[i].v;
    cg_fail(cg, "variable '%s' is not bound by an enclosing loop", v->name);
    return LLVMGetPoison(cg->i64);
}

/* --------------------------------------------------------- IR analysis */
static const Expr zero_index = {.kind = EXPR_INT, .dt = DT_I64};

/* The one element index of a flat access (scalars may have none). */
static const Expr *flat_index(Cg *cg, int n, Expr **idx)
{
    if (n == 0)
        return &zero_index;
    if (n != 1)
        cg_fail(cg, "LoopIR is not flat (an access has %d indices)", n);
    return idx[0];
}

static bool has_load(const Expr *e)
{
    if (!e)
        return false;
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
    case EXPR_VAR:
        return false;
    case EXPR_LOAD:
        return true;
    default:
        return has_load(e->u.op.a) || has_load(e->u.op.b) || has_load(e->u.op.c);
    }
}

/* Coefficient of v in e when e is affine in v with a constant coefficient
 * (the stride of an index along the vector lanes); false otherwise. */
static bool lin_coef(const Expr *e, const Var *v, int64_t *c)
{
    int64_t a, b;
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
        *c = 0;
        return true;
    case EXPR_VAR:
        *c = e->u.var == v;
        return true;
    case EXPR_ADD:
    case EXPR_SUB:
        if (!lin_coef(e->u.op.a, v, &a) || !lin_coef(e->u.op.b, v, &b))
            return false;
        *c = e->kind == EXPR_ADD ? a + b : a - b;
        return true;
    case EXPR_NEG:
        if (!lin_coef(e->u.op.a, v, &a))
            return false;
        *c = -a;
        return true;
    case EXPR_MUL:
        if (!lin_coef(e->u.op.a, v, &a) || !lin_coef(e->u.op.b, v, &b))
            return false;
        if (a == 0 && b == 0)
            *c = 0;
        else if (e->u.op.a->kind == EXPR_INT)
            *c = e->u.op.a->u.i * b;
        else if (e->u.op.b->kind == EXPR_INT)
            *c = a * e->u.op.b->u.i;
        else
            return false;
        return true;
    default:
        *c = 0;
        return !expr_uses_var(e, v);
    }
}

/* One memory access in a vectorized body. */
typedef struct Acc {
    int buf;
    const Expr *idx;
    const LStmt *store; /* NULL for a load */
    const Expr *load;
} Acc;

typedef struct AccList {
    Acc *v;
    int n, cap;
    bool bad; /* a loop or alloc inside, or out of memory */
} AccList;

static void acc_push(AccList *l, Acc a)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        Acc *v = realloc(l->v, sizeof(Acc) * (size_t)cap);
        if (!v) {
            l->bad = true;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = a;
}

static void acc_expr(Cg *cg, AccList *l, const Expr *e)
{
    if (!e)
        return;
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
    case EXPR_VAR:
        return;
    case EXPR_LOAD:
        for (int i = 0; i < e->u.load.n; i++)
            acc_expr(cg, l, e->u.load.idx[i]);
        acc_push(l, (Acc){e->u.load.buf, flat_index(cg, e->u.load.n, e->u.load.idx), NULL, e});
        return;
    default:
        acc_expr(cg, l, e->u.op.a);
        acc_expr(cg, l, e->u.op.b);
        acc_expr(cg, l, e->u.op.c);
    }
}

static void acc_stmt(Cg *cg, AccList *l, const LStmt *s)
{
    if (!s)
        return;
    switch (s->kind) {
    case LS_FOR:
    case LS_ALLOC:
        l->bad = true;
        return;
    case LS_BLOCK:
        for (int i = 0; i < s->u.block.n; i++)
            acc_stmt(cg, l, s->u.block.s[i]);
        return;
    case LS_IF:
        acc_expr(cg, l, s->u.cond.cond);
        acc_stmt(cg, l, s->u.cond.then_s);
        acc_stmt(cg, l, s->u.cond.else_s);
        return;
    case LS_STORE:
        for (int i = 0; i < s->u.store.n; i++)
            acc_expr(cg, l, s->u.store.idx[i]);
        acc_expr(cg, l, s->u.store.value);
        acc_push(l, (Acc){s->u.store.buf, flat_index(cg, s->u.store.n, s->u.store.idx), s, NULL});
        return;
    }
}

/* `b[u] = b[u] op rest` (or `rest op b[u]`) with rest not reading b. */
typedef struct Reduce {
    ExprKind op;
    const Expr *load, *rest;
    bool load_left;
} Reduce;

static bool match_reduce(Cg *cg, const LStmt *s, Reduce *r)
{
    const Expr *v = s->u.store.value;
    if (v->kind != EXPR_ADD && v->kind != EXPR_MUL && v->kind != EXPR_MIN && v->kind != EXPR_MAX)
        return false;
    const Expr *idx = flat_index(cg, s->u.store.n, s->u.store.idx);
    for (int side = 0; side < 2; side++) {
        const Expr *l = side ? v->u.op.b : v->u.op.a, *o = side ? v->u.op.a : v->u.op.b;
        if (l->kind == EXPR_LOAD && l->u.load.buf == s->u.store.buf &&
            expr_equal(flat_index(cg, l->u.load.n, l->u.load.idx), idx) &&
            !expr_reads(o, s->u.store.buf) && l->dt == v->dt && o->dt == v->dt) {
            *r = (Reduce){v->kind, l, o, side == 0};
            return true;
        }
    }
    return false;
}

/* e = base + c with c a constant (base NULL for a plain constant). */
static void split_const(const Expr *e, const Expr **base, int64_t *c)
{
    if (e->kind == EXPR_INT) {
        *base = NULL;
        *c = e->u.i;
    } else if ((e->kind == EXPR_ADD || e->kind == EXPR_SUB) && e->u.op.b->kind == EXPR_INT) {
        *base = e->u.op.a;
        *c = e->kind == EXPR_ADD ? e->u.op.b->u.i : -e->u.op.b->u.i;
    } else {
        *base = e;
        *c = 0;
    }
}

/* Two uniform indices that differ by a nonzero constant. */
static bool distinct_uniform(const Expr *x, const Expr *y)
{
    const Expr *bx, *by;
    int64_t cx, cy;
    split_const(x, &bx, &cx);
    split_const(y, &by, &cy);
    return cx != cy && ((!bx && !by) || (bx && by && expr_equal(bx, by)));
}

/* Can the lanes of this vectorized body run statement by statement (all
 * lanes of one statement, then the next) with the result of running the
 * iterations one after another?  For every store and every other access
 * of the same buffer, no lane may touch what another lane wrote: either
 * both use the same lane-private index (affine, nonzero stride), or both
 * are uniform addresses that provably differ.  A uniform-address store of
 * a varying value must be a reduction `b[u] = b[u] op rest`, whose load is
 * its only partner at that address.  A non-affine store (a scatter,
 * ordered within itself) must be the buffer's only access. */
static bool vec_body_ok(Cg *cg, const LStmt *body, const Var *vv)
{
    AccList l = {0};
    acc_stmt(cg, &l, body);
    bool ok = !l.bad;
    for (int i = 0; ok && i < l.n; i++) {
        const Acc *st = &l.v[i];
        if (!st->store)
            continue;
        int64_t c;
        bool affine = lin_coef(st->idx, vv, &c);
        Reduce r;
        bool reduce = false;
        if (affine && c == 0 && expr_uses_var(st->store->u.store.value, vv)) {
            reduce = match_reduce(cg, st->store, &r);
            ok = reduce;
        }
        int partners = 0;
        for (int j = 0; ok && j < l.n; j++) {
            const Acc *x = &l.v[j];
            if (j == i || x->buf != st->buf)
                continue;
            if (!affine) {
                ok = false;
            } else if (c != 0) {
                ok = expr_equal(x->idx, st->idx);
            } else if (expr_equal(x->idx, st->idx)) {
                ok = reduce && x->load == r.load;
                partners++;
            } else {
                int64_t cx;
                ok = lin_coef(x->idx, vv, &cx) && cx == 0 && distinct_uniform(x->idx, st->idx);
            }
        }
        if (reduce && partners != 1)
            ok = false;
    }
    free(l.v);
    return ok;
}

static int64_t stmt_cost(const LStmt *s)
{
    if (!s)
        return 0;
    int64_t c = 1;
    switch (s->kind) {
    case LS_FOR:
        c += (s->u.loop.kind == LOOP_UNROLLED ? s->u.loop.extent : 1) * stmt_cost(s->u.loop.body);
        break;
    case LS_BLOCK:
        for (int i = 0; i < s->u.block.n; i++)
            c += stmt_cost(s->u.block.s[i]);
        break;
    case LS_IF:
        c += stmt_cost(s->u.cond.then_s) + stmt_cost(s->u.cond.else_s);
        break;
    case LS_ALLOC:
        c += stmt_cost(s->u.alloc.body);
        break;
    case LS_STORE:
        break;
    }
    return c > ((int64_t)1 << 40) ? ((int64_t)1 << 40) : c;
}

/* ------------------------------------------------------------ masks */
static LLVMValueRef mask_and(Cg *cg, LLVMValueRef m, LLVMValueRef c)
{
    return m ? LLVMBuildAnd(cg->B, m, c, "") : c;
}

static LLVMValueRef mask_not(Cg *cg, LLVMValueRef c)
{
    return LLVMBuildXor(cg->B, c, LLVMConstAllOnes(LLVMTypeOf(c)), "");
}

static LLVMValueRef mask_any(Cg *cg, LLVMValueRef m)
{
    return intrin1(cg, "llvm.vector.reduce.or", m);
}

/* ------------------------------------------------------------ conversions */
static LLVMValueRef conv(Cg *cg, LLVMValueRef v, DType from, DType to)
{
    if (from == to)
        return v;
    LLVMTypeRef tt = ty_like(cg, to, LLVMTypeOf(v));
    bool ff = dtype_is_float(from), tf = dtype_is_float(to);
    if (to == DT_BOOL)
        return ff ? LLVMBuildFCmp(cg->B, LLVMRealUNE, v, cst(LLVMTypeOf(v), 0, 0), "")
                  : LLVMBuildICmp(cg->B, LLVMIntNE, v, cst(LLVMTypeOf(v), 0, 0), "");
    if (from == DT_BOOL)
        return tf ? LLVMBuildUIToFP(cg->B, v, tt, "") : LLVMBuildZExt(cg->B, v, tt, "");
    if (ff && tf)
        return dtype_size(to) > dtype_size(from) ? LLVMBuildFPExt(cg->B, v, tt, "")
                                                 : LLVMBuildFPTrunc(cg->B, v, tt, "");
    if (!ff && !tf)
        return dtype_size(to) > dtype_size(from) ? LLVMBuildSExt(cg->B, v, tt, "")
                                                 : LLVMBuildTrunc(cg->B, v, tt, "");
    if (!ff)
        return LLVMBuildSIToFP(cg->B, v, tt, "");
    /* float -> int saturates, NaN -> 0 (the shared convention). */
    LLVMTypeRef tys[2] = {tt, LLVMTypeOf(v)};
    return intrin(cg, "llvm.fptosi.sat", tys, 2, &v, 1);
}

/* ------------------------------------------------------------ arithmetic */
/* Floor division / modulo; a divisor of 0 gives 0, and -1 is handled
 * without the INT_MIN / -1 trap. */
static LLVMValueRef int_divmod(Cg *cg, LLVMValueRef a, LLVMValueRef b, bool mod)
{
    LLVMBuilderRef B = cg->B;
    LLVMTypeRef t = LLVMTypeOf(a);
    LLVMValueRef zero = cst(t, 0, 0), one = cst(t, 1, 1), m1 = cst(t, -1, -1);
    LLVMValueRef bz = LLVMBuildICmp(B, LLVMIntEQ, b, zero, "");
    LLVMValueRef bm1 = LLVMBuildICmp(B, LLVMIntEQ, b, m1, "");
    LLVMValueRef bad = LLVMBuildOr(B, bz, bm1, "");
    LLVMValueRef bs = LLVMBuildSelect(B, bad, one, b, "");
    LLVMValueRef q = LLVMBuildSDiv(B, a, bs, "");
    LLVMValueRef r = LLVMBuildSRem(B, a, bs, "");
    /* Truncation rounds toward zero; step down when the signs differ. */
    LLVMValueRef adj =
        LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntNE, r, zero, ""),
                     LLVMBuildICmp(B, LLVMIntSLT, LLVMBuildXor(B, r, bs, ""), zero, ""), "");
    if (mod) {
        r = LLVMBuildSelect(B, adj, LLVMBuildAdd(B, r, bs, ""), r, "");
        return LLVMBuildSelect(B, bad, zero, r, "");
    }
    q = LLVMBuildSelect(B, adj, LLVMBuildSub(B, q, one, ""), q, "");
    q = LLVMBuildSelect(B, bm1, LLVMBuildSub(B, zero, a, ""), q, "");
    return LLVMBuildSelect(B, bz, zero, q, "");
}

/* Float modulo with the sign of the divisor (floor semantics, like the
 * integer %): fmod, then shifted by b when the signs differ. */
static LLVMValueRef float_mod(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    LLVMBuilderRef B = cg->B;
    LLVMValueRef zero = cst(LLVMTypeOf(a), 0, 0);
    LLVMValueRef r = LLVMBuildFRem(B, a, b, "");
    LLVMValueRef adj = LLVMBuildAnd(B, LLVMBuildFCmp(B, LLVMRealONE, r, zero, ""),
                                    LLVMBuildXor(B, LLVMBuildFCmp(B, LLVMRealOLT, r, zero, ""),
                                                 LLVMBuildFCmp(B, LLVMRealOLT, b, zero, ""), ""),
                                    "");
    return LLVMBuildSelect(B, adj, LLVMBuildFAdd(B, r, b, ""), r, "");
}

static LLVMValueRef arith(Cg *cg, ExprKind k, DType odt, LLVMValueRef x, LLVMValueRef y)
{
    LLVMBuilderRef B = cg->B;
    if (dtype_is_float(odt)) {
        switch (k) {
        case EXPR_ADD:
            return LLVMBuildFAdd(B, x, y, "");
        case EXPR_SUB:
            return LLVMBuildFSub(B, x, y, "");
        case EXPR_MUL:
            return LLVMBuildFMul(B, x, y, "");
        case EXPR_DIV:
            return LLVMBuildFDiv(B, x, y, "");
        case EXPR_MOD:
            return float_mod(cg, x, y);
        /* min(a,b) = a < b ? a : b, max(a,b) = a > b ? a : b (the
         * interpreter's definition; NOT minnum/maxnum). */
        case EXPR_MIN:
            return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, x, y, ""), x, y, "");
        case EXPR_MAX:
            return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, x, y, ""), x, y, "");
        case EXPR_LT:
            return LLVMBuildFCmp(B, LLVMRealOLT, x, y, "");
        case EXPR_LE:
            return LLVMBuildFCmp(B, LLVMRealOLE, x, y, "");
        case EXPR_GT:
            return LLVMBuildFCmp(B, LLVMRealOGT, x, y, "");
        case EXPR_GE:
            return LLVMBuildFCmp(B, LLVMRealOGE, x, y, "");
        case EXPR_EQ:
            return LLVMBuildFCmp(B, LLVMRealOEQ, x, y, "");
        case EXPR_NE:
            return LLVMBuildFCmp(B, LLVMRealUNE, x, y, "");
        default:
            break;
        }
    } else {
        bool u = odt == DT_BOOL;
        LLVMValueRef args[2] = {x, y};
        LLVMTypeRef t = LLVMTypeOf(x);
        switch (k) {
        case EXPR_ADD:
            return LLVMBuildAdd(B, x, y, "");
        case EXPR_SUB:
            return LLVMBuildSub(B, x, y, "");
        case EXPR_MUL:
            return LLVMBuildMul(B, x, y, "");
        case EXPR_DIV:
            return int_divmod(cg, x, y, false);
        case EXPR_MOD:
            return int_divmod(cg, x, y, true);
        case EXPR_MIN:
            return intrin(cg, u ? "llvm.umin" : "llvm.smin", &t, 1, args, 2);
        case EXPR_MAX:
            return intrin(cg, u ? "llvm.umax" : "llvm.smax", &t, 1, args, 2);
        case EXPR_LT:
            return LLVMBuildICmp(B, u ? LLVMIntULT : LLVMIntSLT, x, y, "");
        case EXPR_LE:
            return LLVMBuildICmp(B, u ? LLVMIntULE : LLVMIntSLE, x, y, "");
        case EXPR_GT:
            return LLVMBuildICmp(B, u ? LLVMIntUGT : LLVMIntSGT, x, y, "");
        case EXPR_GE:
            return LLVMBuildICmp(B, u ? LLVMIntUGE : LLVMIntSGE, x, y, "");
        case EXPR_EQ:
            return LLVMBuildICmp(B, LLVMIntEQ, x, y, "");
        case EXPR_NE:
            return LLVMBuildICmp(B, LLVMIntNE, x, y, "");
        case EXPR_AND:
            return LLVMBuildAnd(B, x, y, "");
        case EXPR_OR:
            return LLVMBuildOr(B, x, y, "");
        default:
            break;
        }
    }
    cg_fail(cg, "operator %d on %s is not supported", (int)k, dtype_name(odt));
    return LLVMGetPoison(LLVMTypeOf(x));
}

/* tanh through libm, lane by lane: the same function the interpreter
 * calls, so results agree bit for bit. */
static LLVMValueRef call_tanh(Cg *cg, LLVMValueRef x, DType dt)
{
    LLVMTypeRef st = scalar_ty(cg, dt);
    LLVMValueRef fn = ext_fn(cg, dt == DT_F32 ? "tanhf" : "tanh", st, &st, 1);
    if (!is_vec_ty(LLVMTypeOf(x)))
        return call_fn(cg, fn, &x, 1);
    LLVMValueRef r = LLVMGetPoison(LLVMTypeOf(x));
    for (unsigned i = 0; i < LLVMGetVectorSize(LLVMTypeOf(x)); i++) {
        LLVMValueRef li = LLVMConstInt(cg->i32, i, 0);
        LLVMValueRef el = LLVMBuildExtractElement(cg->B, x, li, "");
        r = LLVMBuildInsertElement(cg->B, r, call_fn(cg, fn, &el, 1), li, "");
    }
    return r;
}

static LLVMValueRef unary(Cg *cg, ExprKind k, DType odt, DType rdt, LLVMValueRef x)
{
    LLVMBuilderRef B = cg->B;
    LLVMTypeRef t = LLVMTypeOf(x);
    bool fl = dtype_is_float(odt);
    switch (k) {
    case EXPR_NOT:
        return LLVMBuildXor(B, x, LLVMConstAllOnes(t), "");
    case EXPR_NEG:
        return fl ? LLVMBuildFNeg(B, x, "") : LLVMBuildSub(B, cst(t, 0, 0), x, "");
    case EXPR_ABS:
        if (fl)
            return intrin1(cg, "llvm.fabs", x);
        else {
            LLVMValueRef args[2] = {x, LLVMConstInt(cg->i1, 0, 0)};
            return intrin(cg, "llvm.abs", &t, 1, args, 2);
        }
    case EXPR_CAST:
        return conv(cg, x, odt, rdt);
    default:
        break;
    }
    if (!fl) {
        cg_fail(cg, "math function on %s is not supported", dtype_name(odt));
        return LLVMGetPoison(t);
    }
    switch (k) {
    case EXPR_EXP:
        return intrin1(cg, "llvm.exp", x);
    case EXPR_LOG:
        return intrin1(cg, "llvm.log", x);
    case EXPR_SQRT:
        return intrin1(cg, "llvm.sqrt", x);
    case EXPR_TANH:
        return call_tanh(cg, x, odt);
    case EXPR_SIGMOID: {
        /* 1 / (1 + exp(-x)), exactly as written, in the tensor's type. */
        LLVMValueRef one = cst(t, 1, 1);
        LLVMValueRef ex = intrin1(cg, "llvm.exp", LLVMBuildFNeg(B, x, ""));
        return LLVMBuildFDiv(B, one, LLVMBuildFAdd(B, one, ex, ""), "");
    }
    default:
        break;
    }
    cg_fail(cg, "unary operator %d is not supported", (int)k);
    return LLVMGetPoison(t);
}

/* ------------------------------------------------------------ memory */
static LLVMValueRef buf_ptr(Cg *cg, int buf)
{
    if (buf < 0 || buf >= cg->f->nbufs || !cg->fn->bufptr[buf]) {
        cg_fail(cg, "buffer %d is not available here", buf);
        return LLVMConstNull(cg->ptr);
    }
    return cg->fn->bufptr[buf];
}

static LLVMTypeRef buf_elem(Cg *cg, int buf)
{
    if (buf < 0 || buf >= cg->f->nbufs)
        return cg->f32;
    return scalar_ty(cg, cg->f->bufs[buf].dt);
}

static DType buf_dt(Cg *cg, int buf)
{
    return buf < 0 || buf >= cg->f->nbufs ? DT_F32 : cg->f->bufs[buf].dt;
}

static unsigned elem_align(Cg *cg, int buf)
{
    return (unsigned)dtype_size(buf_dt(cg, buf));
}

static LLVMValueRef elem_addr(Cg *cg, int buf, LLVMValueRef idx, bool inbounds)
{
    LLVMTypeRef et = buf_elem(cg, buf);
    LLVMValueRef p = buf_ptr(cg, buf);
    return inbounds ? LLVMBuildInBoundsGEP2(cg->B, et, p, &idx, 1, "")
                    : LLVMBuildGEP2(cg->B, et, p, &idx, 1, "");
}

static LLVMValueRef scalar_load(Cg *cg, int buf, LLVMValueRef idx, bool inbounds)
{
    LLVMValueRef l =
        LLVMBuildLoad2(cg->B, buf_elem(cg, buf), elem_addr(cg, buf, idx, inbounds), "");
    LLVMSetAlignment(l, elem_align(cg, buf));
    return l;
}

static LLVMValueRef all_lanes(Cg *cg)
{
    return LLVMConstAllOnes(LLVMVectorType(cg->i1, cg->W));
}

/* Gathers and scatters are emitted at a power-of-two width.  LLVM 19
 * widens an odd width with *undefined* index lanes; an undefined index may
 * get the destination's register, and a gather whose index and destination
 * share a register is #UD on x86 (a SIGILL seen with 42 lanes).  Padding
 * lanes repeat lane 0's address, with a false mask and a zero value. */
static unsigned pow2_ceil(unsigned w)
{
    unsigned p = 1;
    while (p < w)
        p *= 2;
    return p;
}

/* v (W lanes) widened to P lanes: lane i < W is v[i], the rest are
 * fill[0] (fill: a W-lane vector; NULL means v itself). */
static LLVMValueRef pad_lanes(Cg *cg, LLVMValueRef v, unsigned P, LLVMValueRef fill)
{
    LLVMValueRef idx[2 * MAX_VEC_WIDTH];
    for (unsigned i = 0; i < P; i++)
        idx[i] = LLVMConstInt(cg->i32, i < cg->W ? i : (fill ? cg->W : 0), 0);
    return LLVMBuildShuffleVector(cg->B, v, fill ? fill : LLVMGetPoison(LLVMTypeOf(v)),
                                  LLVMConstVector(idx, P), "");
}

/* The first W lanes of v. */
static LLVMValueRef narrow_lanes(Cg *cg, LLVMValueRef v)
{
    LLVMValueRef idx[MAX_VEC_WIDTH];
    for (unsigned i = 0; i < cg->W; i++)
        idx[i] = LLVMConstInt(cg->i32, i, 0);
    return LLVMBuildShuffleVector(cg->B, v, LLVMGetPoison(LLVMTypeOf(v)),
                                  LLVMConstVector(idx, cg->W), "");
}

/* masked.gather of elements at ptrs (W lanes) under mask (NULL: all). */
static LLVMValueRef emit_gather(Cg *cg, LLVMTypeRef et, LLVMValueRef ptrs, unsigned align,
                                LLVMValueRef mask)
{
    unsigned P = pow2_ceil(cg->W);
    LLVMValueRef m = mask ? mask : all_lanes(cg);
    if (P != cg->W) {
        ptrs = pad_lanes(cg, ptrs, P, NULL);
        m = pad_lanes(cg, m, P, LLVMConstNull(LLVMTypeOf(m)));
    }
    LLVMTypeRef vt = LLVMVectorType(et, P);
    LLVMTypeRef tys[2] = {vt, LLVMTypeOf(ptrs)};
    LLVMValueRef args[4] = {ptrs, LLVMConstInt(cg->i32, align, 0), m, LLVMConstNull(vt)};
    LLVMValueRef g = intrin(cg, "llvm.masked.gather", tys, 2, args, 4);
    return P != cg->W ? narrow_lanes(cg, g) : g;
}

static void emit_scatter(Cg *cg, LLVMValueRef v, LLVMValueRef ptrs, unsigned align,
                         LLVMValueRef mask)
{
    unsigned P = pow2_ceil(cg->W);
    LLVMValueRef m = mask ? mask : all_lanes(cg);
    if (P != cg->W) {
        ptrs = pad_lanes(cg, ptrs, P, NULL);
        m = pad_lanes(cg, m, P, LLVMConstNull(LLVMTypeOf(m)));
        v = pad_lanes(cg, v, P, LLVMConstNull(LLVMTypeOf(v)));
    }
    LLVMTypeRef tys[2] = {LLVMTypeOf(v), LLVMTypeOf(ptrs)};
    LLVMValueRef args[4] = {v, ptrs, LLVMConstInt(cg->i32, align, 0), m};
    intrin(cg, "llvm.masked.scatter", tys, 2, args, 4);
}

static Val ev(Cg *cg, const Expr *e, bool lanes);

/* A uniform load in a vectorized body under a mask: done only when some
 * lane is live (the address may be valid only for live lanes). */
static LLVMValueRef guarded_scalar_load(Cg *cg, int buf, LLVMValueRef idx)
{
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(cg->B);
    LLVMBasicBlockRef then = new_bb(cg, "gload"), merge = new_bb(cg, "gload.end");
    LLVMBuildCondBr(cg->B, mask_any(cg, cg->mask), then, merge);
    LLVMPositionBuilderAtEnd(cg->B, then);
    LLVMValueRef v = scalar_load(cg, buf, idx, true);
    LLVMBasicBlockRef then_end = LLVMGetInsertBlock(cg->B);
    LLVMBuildBr(cg->B, merge);
    LLVMPositionBuilderAtEnd(cg->B, merge);
    LLVMValueRef phi = LLVMBuildPhi(cg->B, LLVMTypeOf(v), "");
    LLVMValueRef vals[2] = {v, LLVMConstNull(LLVMTypeOf(v))};
    LLVMBasicBlockRef bbs[2] = {then_end, pre};
    LLVMAddIncoming(phi, vals, bbs, 2);
    return phi;
}

/* ----------------------------------------------------- address indices */
/* A scalar element index in canonical affine form: the variable terms in
 * binding order (outermost loop first), then ONE constant that also holds
 * every unrolled loop variable.  Unrolled copies of an access then share
 * their whole variable part and differ by a constant, which is what lets
 * LLVM's alias analysis tell them apart — and LICM keep an accumulator
 * tile in registers across the reduction loop.  Parts that are not affine
 * (floor div/mod of fused loops, loads) are emitted as they are, first. */
typedef struct {
    const Expr *e;   /* opaque part, or NULL for a variable term */
    const Var *var;
    int64_t coef;
    int depth;       /* binding depth; -1 for opaque parts */
} Term;
enum { MAX_TERMS = 32 };

static int bind_depth(Cg *cg, const Var *v)
{
    for (int i = cg->nbinds - 1; i >= cg->fn->bind_floor; i--)
        if (cg->binds[i].var == v)
            return i;
    return -1;
}

static bool lin_terms(Cg *cg, const Expr *e, int64_t mult, Term *t, int *n, int64_t *c)
{
    switch (e->kind) {
    case EXPR_INT:
        *c += mult * e->u.i;
        return true;
    case EXPR_VAR: {
        const Var *v = e->u.var;
        int depth;
        if (v == cg->vvar) {
            if (LLVMIsAConstantInt(cg->vbase)) {
                *c += mult * LLVMConstIntGetSExtValue(cg->vbase);
                return true;
            }
            depth = cg->nbinds + 1; /* innermost of all */
        } else {
            LLVMValueRef val = lookup(cg, v);
            if (LLVMIsAConstantInt(val)) {
                *c += mult * LLVMConstIntGetSExtValue(val);
                return true;
            }
            depth = bind_depth(cg, v);
        }
        for (int i = 0; i < *n; i++)
            if (!t[i].e && t[i].var == v) {
                t[i].coef += mult;
                return true;
            }
        if (*n == MAX_TERMS)
            return false;
        t[(*n)++] = (Term){NULL, v, mult, depth};
        return true;
    }
    case EXPR_ADD:
        return lin_terms(cg, e->u.op.a, mult, t, n, c) && lin_terms(cg, e->u.op.b, mult, t, n, c);
    case EXPR_SUB:
        return lin_terms(cg, e->u.op.a, mult, t, n, c) && lin_terms(cg, e->u.op.b, -mult, t, n, c);
    case EXPR_NEG:
        return lin_terms(cg, e->u.op.a, -mult, t, n, c);
    case EXPR_MUL:
        if (e->u.op.b->kind == EXPR_INT)
            return lin_terms(cg, e->u.op.a, mult * e->u.op.b->u.i, t, n, c);
        if (e->u.op.a->kind == EXPR_INT)
            return lin_terms(cg, e->u.op.b, mult * e->u.op.a->u.i, t, n, c);
        break;
    default:
        break;
    }
    if (*n == MAX_TERMS)
        return false;
    t[(*n)++] = (Term){e, NULL, mult, -1};
    return true;
}

static LLVMValueRef ev_index(Cg *cg, const Expr *ix)
{
    if (ix->dt != DT_I64)
        return ev(cg, ix, false).v;
    Term t[MAX_TERMS];
    int n = 0;
    int64_t c = 0;
    if (!lin_terms(cg, ix, 1, t, &n, &c))
        return ev(cg, ix, false).v;
    /* insertion sort by depth: opaque parts, then outer to inner loops */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t[j - 1].depth > t[j].depth; j--) {
            Term tmp = t[j];
            t[j] = t[j - 1];
            t[j - 1] = tmp;
        }
    LLVMValueRef acc = NULL;
    for (int i = 0; i < n; i++) {
        if (t[i].coef == 0)
            continue;
        LLVMValueRef x = t[i].e ? ev(cg, t[i].e, false).v
                                : (t[i].var == cg->vvar ? cg->vbase : lookup(cg, t[i].var));
        if (t[i].coef != 1)
            x = LLVMBuildNSWMul(cg->B, x, ci64(cg, t[i].coef), "");
        acc = acc ? LLVMBuildNSWAdd(cg->B, acc, x, "") : x;
    }
    if (!acc)
        return ci64(cg, c);
    return c ? LLVMBuildNSWAdd(cg->B, acc, ci64(cg, c), "") : acc;
}

static Val ev_load(Cg *cg, const Expr *e, bool vec)
{
    int buf = e->u.load.buf;
    const Expr *ix = flat_index(cg, e->u.load.n, e->u.load.idx);
    DType bdt = buf_dt(cg, buf);
    int64_t stride = 0;
    bool affine = vec ? lin_coef(ix, cg->vvar, &stride) : true;
    Val r;
    if (!vec || (affine && stride == 0)) {
        LLVMValueRef idx = ev_index(cg, ix);
        r = S(cg->vvar && cg->mask ? guarded_scalar_load(cg, buf, idx)
                                   : scalar_load(cg, buf, idx, true));
    } else {
        LLVMTypeRef vt = LLVMVectorType(buf_elem(cg, buf), cg->W);
        LLVMValueRef zero = LLVMConstNull(vt);
        LLVMValueRef align = LLVMConstInt(cg->i32, elem_align(cg, buf), 0);
        if (affine && stride == 1) {
            /* Lane 0's address; never `inbounds`: under a mask lane 0 may
             * point outside the buffer. */
            LLVMValueRef p = elem_addr(cg, buf, ev_index(cg, ix), cg->mask == NULL);
            if (cg->mask) {
                LLVMTypeRef tys[2] = {vt, cg->ptr};
                LLVMValueRef args[4] = {p, align, cg->mask, zero};
                r.v = intrin(cg, "llvm.masked.load", tys, 2, args, 4);
            } else {
                r.v = LLVMBuildLoad2(cg->B, vt, p, "");
                LLVMSetAlignment(r.v, elem_align(cg, buf)); /* never the vector's */
            }
        } else {
            LLVMValueRef vidx = to_vec(cg, ev(cg, ix, true));
            LLVMValueRef ptrs =
                LLVMBuildGEP2(cg->B, buf_elem(cg, buf), buf_ptr(cg, buf), &vidx, 1, "");
            r.v = emit_gather(cg, buf_elem(cg, buf), ptrs, elem_align(cg, buf), cg->mask);
        }
        r.vec = true;
    }
    if (e->dt != bdt)
        r.v = conv(cg, r.v, bdt, e->dt);
    return r;
}

/* ------------------------------------------------------------ select */
/* The lazy select: only the chosen side is evaluated.  Varying condition:
 * each side runs under its lanes' mask and the results are blended. */
static Val ev_select(Cg *cg, const Expr *c, const Expr *a, const Expr *b, bool vec)
{
    Val cv = ev(cg, c, vec);
    if (cv.vec) {
        LLVMValueRef saved = cg->mask;
        cg->mask = mask_and(cg, saved, cv.v);
        Val x = ev(cg, a, true);
        cg->mask = mask_and(cg, saved, mask_not(cg, cv.v));
        Val y = ev(cg, b, true);
        cg->mask = saved;
        return (Val){LLVMBuildSelect(cg->B, cv.v, to_vec(cg, x), to_vec(cg, y), ""), true};
    }
    LLVMValueRef cs = cv.v;
    if (LLVMIsAConstantInt(cs))
        return ev(cg, LLVMConstIntGetZExtValue(cs) ? a : b, vec);
    if (!has_load(a) && !has_load(b)) {
        Val x = ev(cg, a, vec), y = ev(cg, b, vec);
        if (x.vec != y.vec)
            return (Val){LLVMBuildSelect(cg->B, cs, to_vec(cg, x), to_vec(cg, y), ""), true};
        return (Val){LLVMBuildSelect(cg->B, cs, x.v, y.v, ""), x.vec};
    }
    LLVMBasicBlockRef tb = new_bb(cg, "sel.t"), fb = new_bb(cg, "sel.f"),
                      mb = new_bb(cg, "sel.end");
    LLVMBuildCondBr(cg->B, cs, tb, fb);
    LLVMPositionBuilderAtEnd(cg->B, tb);
    Val x = ev(cg, a, vec);
    LLVMBasicBlockRef te = LLVMGetInsertBlock(cg->B);
    LLVMPositionBuilderAtEnd(cg->B, fb);
    Val y = ev(cg, b, vec);
    LLVMBasicBlockRef fe = LLVMGetInsertBlock(cg->B);
    /* Broadcast in each side's own block, once both shapes are known. */
    bool rv = x.vec || y.vec;
    LLVMPositionBuilderAtEnd(cg->B, te);
    LLVMValueRef xv = rv ? to_vec(cg, x) : x.v;
    LLVMBuildBr(cg->B, mb);
    LLVMPositionBuilderAtEnd(cg->B, fe);
    LLVMValueRef yv = rv ? to_vec(cg, y) : y.v;
    LLVMBuildBr(cg->B, mb);
    LLVMPositionBuilderAtEnd(cg->B, mb);
    LLVMValueRef phi = LLVMBuildPhi(cg->B, LLVMTypeOf(xv), "");
    LLVMValueRef vals[2] = {xv, yv};
    LLVMBasicBlockRef bbs[2] = {te, fe};
    LLVMAddIncoming(phi, vals, bbs, 2);
    return (Val){phi, rv};
}

/* ------------------------------------------------------------ expressions */
static LLVMValueRef lane_ids(Cg *cg)
{
    LLVMValueRef el[MAX_VEC_WIDTH];
    for (unsigned i = 0; i < cg->W; i++)
        el[i] = ci64(cg, i);
    return LLVMConstVector(el, cg->W);
}

static Val ev_binary(Cg *cg, const Expr *e, bool vec)
{
    const Expr *a = e->u.op.a, *b = e->u.op.b;
    /* && and || whose right side loads are lazy too, like select: the left
     * side may be the guard that keeps the load in bounds. */
    if ((e->kind == EXPR_AND || e->kind == EXPR_OR) && has_load(b)) {
        Expr cf = {.kind = EXPR_INT, .dt = DT_BOOL, .u.i = e->kind == EXPR_OR};
        return e->kind == EXPR_AND ? ev_select(cg, a, b, &cf, vec) : ev_select(cg, a, &cf, b, vec);
    }
    /* a*b + c on floats may contract to fma (the shared convention). */
    if (e->kind == EXPR_ADD && dtype_is_float(e->dt)) {
        const Expr *m = NULL, *c = NULL;
        if (a->kind == EXPR_MUL && b->dt == e->dt)
            m = a, c = b;
        else if (b->kind == EXPR_MUL && a->dt == e->dt)
            m = b, c = a;
        if (m && (m->dt != e->dt || m->u.op.a->dt != e->dt || m->u.op.b->dt != e->dt))
            m = NULL;
        if (m) {
            Val x = ev(cg, m->u.op.a, vec), y = ev(cg, m->u.op.b, vec), z = ev(cg, c, vec);
            bool v = x.vec || y.vec || z.vec;
            LLVMValueRef args[3] = {v ? to_vec(cg, x) : x.v, v ? to_vec(cg, y) : y.v,
                                    v ? to_vec(cg, z) : z.v};
            LLVMTypeRef t = LLVMTypeOf(args[0]);
            return (Val){intrin(cg, "llvm.fmuladd", &t, 1, args, 3), v};
        }
    }
    /* Operand type: literals take the other side's type. */
    DType odt = a->dt;
    Val x = ev(cg, a, vec), y = ev(cg, b, vec);
    if (a->dt != b->dt) {
        if (a->kind == EXPR_INT || a->kind == EXPR_FLOAT) {
            odt = b->dt;
            x.v = conv(cg, x.v, a->dt, odt);
        } else {
            y.v = conv(cg, y.v, b->dt, odt);
        }
    }
    bool v = x.vec || y.vec;
    LLVMValueRef r = arith(cg, e->kind, odt, v ? to_vec(cg, x) : x.v, v ? to_vec(cg, y) : y.v);
    return (Val){r, v};
}

static Val ev(Cg *cg, const Expr *e, bool lanes)
{
    if (!e) {
        cg_fail(cg, "missing expression");
        return S(LLVMGetPoison(cg->i64));
    }
    bool vec = lanes && cg->vvar && expr_uses_var(e, cg->vvar);
    switch (e->kind) {
    case EXPR_INT:
        return S(e->dt == DT_BOOL ? LLVMConstInt(cg->i1, e->u.i != 0, 0)
                                  : cst(scalar_ty(cg, e->dt), (double)e->u.i, e->u.i));
    case EXPR_FLOAT:
        return S(cst(scalar_ty(cg, e->dt), e->u.f, (int64_t)e->u.f));
    case EXPR_VAR:
        if (e->u.var == cg->vvar) {
            if (!vec)
                return S(cg->vbase);
            if (LLVMIsAConstantInt(cg->vbase) && LLVMConstIntGetSExtValue(cg->vbase) == 0)
                return (Val){lane_ids(cg), true};
            return (Val){LLVMBuildAdd(cg->B, splat(cg, cg->vbase), lane_ids(cg), ""), true};
        }
        return S(lookup(cg, e->u.var));
    case EXPR_LOAD:
        return ev_load(cg, e, vec);
    case EXPR_SELECT:
        return ev_select(cg, e->u.op.a, e->u.op.b, e->u.op.c, vec);
    default:
        break;
    }
    if (expr_is_binary(e->kind))
        return ev_binary(cg, e, vec);
    if (expr_is_unary(e->kind)) {
        Val x = ev(cg, e->u.op.a, vec);
        return (Val){unary(cg, e->kind, e->u.op.a->dt, e->dt, x.v), x.vec};
    }
    cg_fail(cg, "unknown expression kind %d", (int)e->kind);
    return S(LLVMGetPoison(scalar_ty(cg, e->dt)));
}

/* ------------------------------------------------------------ error exit */
static LLVMValueRef free_fn(Cg *cg)
{
    LLVMTypeRef p = cg->ptr;
    return ext_fn(cg, "free", cg->voidt, &p, 1);
}

/* The error exit at the current point: frees this function's live heap
 * locals, then returns 1 (an outlined body sets its flag and returns). */
static void emit_fail_exit(Cg *cg)
{
    for (int i = cg->fn->nlive - 1; i >= 0; i--)
        call_fn(cg, free_fn(cg), &cg->fn->live[i], 1);
    if (cg->fn->errflag) {
        LLVMValueRef st = LLVMBuildStore(cg->B, LLVMConstInt(cg->i32, 1, 0), cg->fn->errflag);
        LLVMSetAlignment(st, 4);
        LLVMSetOrdering(st, LLVMAtomicOrderingMonotonic);
    }
    if (LLVMGetTypeKind(LLVMGetReturnType(LLVMGlobalGetValueType(cg->fn->fn))) == LLVMVoidTypeKind)
        LLVMBuildRetVoid(cg->B);
    else
        LLVMBuildRet(cg->B, LLVMConstInt(cg->i32, 1, 0));
}

/* Continues when ok, else takes the error exit. */
static void check_or_fail(Cg *cg, LLVMValueRef ok)
{
    LLVMBasicBlockRef okb = new_bb(cg, "ok"), fb = new_bb(cg, "fail");
    LLVMBuildCondBr(cg->B, ok, okb, fb);
    LLVMPositionBuilderAtEnd(cg->B, fb);
    emit_fail_exit(cg);
    LLVMPositionBuilderAtEnd(cg->B, okb);
}

/* ------------------------------------------------------------ statements */
static void emit_stmt(Cg *cg, const LStmt *s);

/* `s[u] = s[u] op rest` with rest varying: folds the live lanes into s in
 * lane order, so the result equals the serial loop's (ordered fadd/fmul
 * reductions; float min/max lane by lane). */
static void emit_reduce(Cg *cg, const LStmt *s, const Reduce *r)
{
    int buf = s->u.store.buf;
    DType dt = s->u.store.value->dt, bdt = buf_dt(cg, buf);
    LLVMBasicBlockRef skip = NULL;
    if (cg->mask) {
        LLVMBasicBlockRef doit = new_bb(cg, "red");
        skip = new_bb(cg, "red.end");
        LLVMBuildCondBr(cg->B, mask_any(cg, cg->mask), doit, skip);
        LLVMPositionBuilderAtEnd(cg->B, doit);
    }
    LLVMValueRef idx = ev_index(cg, flat_index(cg, s->u.store.n, s->u.store.idx));
    LLVMValueRef p = elem_addr(cg, buf, idx, true);
    LLVMValueRef old = LLVMBuildLoad2(cg->B, buf_elem(cg, buf), p, "");
    LLVMSetAlignment(old, elem_align(cg, buf));
    old = conv(cg, old, bdt, dt);
    LLVMValueRef x = to_vec(cg, ev(cg, r->rest, true));
    LLVMTypeRef vt = LLVMTypeOf(x);
    LLVMValueRef acc;
    if (dtype_is_float(dt) && (r->op == EXPR_ADD || r->op == EXPR_MUL)) {
        /* -0.0 and 1.0 leave every value (also -0.0) unchanged. */
        if (cg->mask)
            x = LLVMBuildSelect(cg->B, cg->mask, x, cst(vt, r->op == EXPR_ADD ? -0.0 : 1.0, 0), "");
        LLVMValueRef args[2] = {old, x};
        acc = intrin(cg, r->op == EXPR_ADD ? "llvm.vector.reduce.fadd" : "llvm.vector.reduce.fmul",
                     &vt, 1, args, 2);
    } else if (!dtype_is_float(dt)) {
        int64_t lo = dt == DT_I32 ? INT32_MIN : INT64_MIN,
                hi = dt == DT_I32 ? INT32_MAX : INT64_MAX;
        int64_t ident = r->op == EXPR_ADD ? 0 : r->op == EXPR_MUL ? 1 : r->op == EXPR_MAX ? lo : hi;
        const char *name = r->op == EXPR_ADD   ? "llvm.vector.reduce.add"
                           : r->op == EXPR_MUL ? "llvm.vector.reduce.mul"
                           : r->op == EXPR_MAX ? "llvm.vector.reduce.smax"
                                               : "llvm.vector.reduce.smin";
        if (cg->mask)
            x = LLVMBuildSelect(cg->B, cg->mask, x, cst(vt, 0, ident), "");
        acc = arith(cg, r->op, dt, old, intrin1(cg, name, x));
    } else {
        acc = old;
        for (unsigned l = 0; l < cg->W; l++) {
            LLVMValueRef li = LLVMConstInt(cg->i32, l, 0);
            LLVMValueRef xl = LLVMBuildExtractElement(cg->B, x, li, "");
            LLVMValueRef nv =
                r->load_left ? arith(cg, r->op, dt, acc, xl) : arith(cg, r->op, dt, xl, acc);
            acc = cg->mask
                      ? LLVMBuildSelect(cg->B, LLVMBuildExtractElement(cg->B, cg->mask, li, ""), nv,
                                        acc, "")
                      : nv;
        }
    }
    LLVMValueRef st = LLVMBuildStore(cg->B, conv(cg, acc, dt, bdt), p);
    LLVMSetAlignment(st, elem_align(cg, buf));
    if (skip) {
        LLVMBuildBr(cg->B, skip);
        LLVMPositionBuilderAtEnd(cg->B, skip);
    }
}

static void emit_store(Cg *cg, const LStmt *s)
{
    int buf = s->u.store.buf;
    const Expr *ix = flat_index(cg, s->u.store.n, s->u.store.idx), *value = s->u.store.value;
    DType bdt = buf_dt(cg, buf);
    unsigned align = elem_align(cg, buf);
    int64_t stride = 0;
    bool affine = cg->vvar ? lin_coef(ix, cg->vvar, &stride) : true;
    if (!value) {
        cg_fail(cg, "store without a value");
        return;
    }
    if (affine && stride == 0) {
        if (cg->vvar && expr_uses_var(value, cg->vvar)) {
            Reduce r;
            if (match_reduce(cg, s, &r))
                emit_reduce(cg, s, &r);
            else
                cg_fail(cg, "vectorized store of a varying value to one address");
            return;
        }
        LLVMBasicBlockRef skip = NULL;
        if (cg->vvar && cg->mask) {
            LLVMBasicBlockRef doit = new_bb(cg, "ustore");
            skip = new_bb(cg, "ustore.end");
            LLVMBuildCondBr(cg->B, mask_any(cg, cg->mask), doit, skip);
            LLVMPositionBuilderAtEnd(cg->B, doit);
        }
        LLVMValueRef idx = ev_index(cg, ix);
        LLVMValueRef v = conv(cg, ev(cg, value, false).v, value->dt, bdt);
        LLVMValueRef st = LLVMBuildStore(cg->B, v, elem_addr(cg, buf, idx, true));
        LLVMSetAlignment(st, align);
        if (skip) {
            LLVMBuildBr(cg->B, skip);
            LLVMPositionBuilderAtEnd(cg->B, skip);
        }
        return;
    }
    LLVMValueRef v = to_vec(cg, ev(cg, value, true));
    v = conv(cg, v, value->dt, bdt);
    LLVMValueRef alignv = LLVMConstInt(cg->i32, align, 0);
    if (affine && stride == 1) {
        LLVMValueRef p = elem_addr(cg, buf, ev_index(cg, ix), cg->mask == NULL);
        if (cg->mask) {
            LLVMTypeRef tys[2] = {LLVMTypeOf(v), cg->ptr};
            LLVMValueRef args[4] = {v, p, alignv, cg->mask};
            intrin(cg, "llvm.masked.store", tys, 2, args, 4);
        } else {
            LLVMValueRef st = LLVMBuildStore(cg->B, v, p);
            LLVMSetAlignment(st, align); /* never the vector's natural alignment */
        }
        return;
    }
    LLVMValueRef vidx = to_vec(cg, ev(cg, ix, true));
    LLVMValueRef ptrs = LLVMBuildGEP2(cg->B, buf_elem(cg, buf), buf_ptr(cg, buf), &vidx, 1, "");
    emit_scatter(cg, v, ptrs, align, cg->mask);
}

static void emit_if(Cg *cg, const LStmt *s)
{
    Val c = ev(cg, s->u.cond.cond, true);
    if (c.vec && !cg->mask && !s->u.cond.else_s && !cg->vsplit) {
        /* A guard on the lanes (a non-dividing split of the vector loop):
         * all lanes pass in every vector but the last, so the body runs
         * unmasked there (plain loads and stores) and masked only when
         * some lane fails.  Once per vector body: the code doubles. */
        LLVMBasicBlockRef fb = new_bb(cg, "vif.all"), pb = new_bb(cg, "vif.some");
        LLVMBasicBlockRef mb = new_bb(cg, "vif.end");
        LLVMBuildCondBr(cg->B, intrin1(cg, "llvm.vector.reduce.and", c.v), fb, pb);
        cg->vsplit = true;
        LLVMPositionBuilderAtEnd(cg->B, fb);
        emit_stmt(cg, s->u.cond.then_s);
        LLVMBuildBr(cg->B, mb);
        LLVMPositionBuilderAtEnd(cg->B, pb);
        cg->mask = c.v;
        emit_stmt(cg, s->u.cond.then_s);
        cg->mask = NULL;
        LLVMBuildBr(cg->B, mb);
        cg->vsplit = false;
        LLVMMoveBasicBlockAfter(mb, LLVMGetInsertBlock(cg->B));
        LLVMPositionBuilderAtEnd(cg->B, mb);
        return;
    }
    if (c.vec) {
        LLVMValueRef saved = cg->mask;
        cg->mask = mask_and(cg, saved, c.v);
        emit_stmt(cg, s->u.cond.then_s);
        if (s->u.cond.else_s) {
            cg->mask = mask_and(cg, saved, mask_not(cg, c.v));
            emit_stmt(cg, s->u.cond.else_s);
        }
        cg->mask = saved;
        return;
    }
    if (LLVMIsAConstantInt(c.v)) {
        emit_stmt(cg, LLVMConstIntGetZExtValue(c.v) ? s->u.cond.then_s : s->u.cond.else_s);
        return;
    }
    LLVMBasicBlockRef tb = new_bb(cg, "if.then");
    LLVMBasicBlockRef eb = s->u.cond.else_s ? new_bb(cg, "if.else") : NULL;
    LLVMBasicBlockRef mb = new_bb(cg, "if.end");
    LLVMBuildCondBr(cg->B, c.v, tb, eb ? eb : mb);
    LLVMPositionBuilderAtEnd(cg->B, tb);
    emit_stmt(cg, s->u.cond.then_s);
    LLVMBuildBr(cg->B, mb);
    if (eb) {
        LLVMPositionBuilderAtEnd(cg->B, eb);
        emit_stmt(cg, s->u.cond.else_s);
        LLVMBuildBr(cg->B, mb);
    }
    LLVMMoveBasicBlockAfter(mb, LLVMGetInsertBlock(cg->B));
    LLVMPositionBuilderAtEnd(cg->B, mb);
}

/* Loops in phi form: [begin, end) step 1. */
typedef struct Loop {
    LLVMBasicBlockRef body, exit;
    LLVMValueRef phi, end;
} Loop;

static LLVMValueRef loop_begin(Cg *cg, Loop *lp, LLVMValueRef begin, LLVMValueRef end,
                               bool nonempty)
{
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(cg->B);
    lp->body = new_bb(cg, "loop");
    lp->exit = new_bb(cg, "loop.end");
    lp->end = end;
    if (nonempty)
        LLVMBuildBr(cg->B, lp->body);
    else
        LLVMBuildCondBr(cg->B, LLVMBuildICmp(cg->B, LLVMIntSLT, begin, end, ""), lp->body,
                        lp->exit);
    LLVMPositionBuilderAtEnd(cg->B, lp->body);
    lp->phi = LLVMBuildPhi(cg->B, cg->i64, "");
    LLVMAddIncoming(lp->phi, &begin, &pre, 1);
    return lp->phi;
}

static void loop_end(Cg *cg, Loop *lp)
{
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(cg->B);
    LLVMValueRef next = LLVMBuildAdd(cg->B, lp->phi, ci64(cg, 1), "");
    LLVMSetNUW(next, 1);
    LLVMSetNSW(next, 1);
    LLVMBuildCondBr(cg->B, LLVMBuildICmp(cg->B, LLVMIntSLT, next, lp->end, ""), lp->body, lp->exit);
    LLVMAddIncoming(lp->phi, &next, &latch, 1);
    LLVMMoveBasicBlockAfter(lp->exit, latch);
    LLVMPositionBuilderAtEnd(cg->B, lp->exit);
}

static void emit_serial(Cg *cg, const Var *v, LLVMValueRef begin, LLVMValueRef end, bool nonempty,
                        const LStmt *body)
{
    Loop lp;
    bind(cg, v, loop_begin(cg, &lp, begin, end, nonempty));
    emit_stmt(cg, body);
    unbind(cg);
    loop_end(cg, &lp);
}

/* One iteration of W lanes: vvar = base + lane. */
static void vec_iter(Cg *cg, const Var *v, const LStmt *body, unsigned W, LLVMValueRef base,
                     LLVMValueRef mask)
{
    const Var *sv = cg->vvar;
    unsigned sw = cg->W;
    LLVMValueRef sb = cg->vbase, sm = cg->mask;
    bool ss = cg->vsplit;
    cg->vvar = v;
    cg->W = W;
    cg->vbase = base;
    cg->mask = mask;
    cg->vsplit = false;
    emit_stmt(cg, body);
    cg->vvar = sv;
    cg->W = sw;
    cg->vbase = sb;
    cg->mask = sm;
    cg->vsplit = ss;
}

static void emit_vec_loop(Cg *cg, const LStmt *s)
{
    const Var *v = s->u.loop.var;
    const LStmt *body = s->u.loop.body;
    int64_t n = s->u.loop.extent;
    if (cg->vvar || !vec_body_ok(cg, body, v)) {
        emit_serial(cg, v, ci64(cg, 0), ci64(cg, n), true, body);
        return;
    }
    if (n <= MAX_VEC_WIDTH) {
        vec_iter(cg, v, body, (unsigned)n, ci64(cg, 0), NULL);
        return;
    }
    /* Wide loops: full chunks, then one masked chunk for the rest. */
    int64_t nfull = n / CHUNK_WIDTH, rem = n % CHUNK_WIDTH;
    Loop lp;
    LLVMValueRef c = loop_begin(cg, &lp, ci64(cg, 0), ci64(cg, nfull), true);
    LLVMValueRef base = LLVMBuildMul(cg->B, c, ci64(cg, CHUNK_WIDTH), "");
    LLVMSetNSW(base, 1);
    vec_iter(cg, v, body, CHUNK_WIDTH, base, NULL);
    loop_end(cg, &lp);
    if (rem) {
        LLVMValueRef el[CHUNK_WIDTH];
        for (int i = 0; i < CHUNK_WIDTH; i++)
            el[i] = LLVMConstInt(cg->i1, i < rem, 0);
        vec_iter(cg, v, body, CHUNK_WIDTH, ci64(cg, nfull * CHUNK_WIDTH),
                 LLVMConstVector(el, CHUNK_WIDTH));
    }
}

static void emit_alloc(Cg *cg, const LStmt *s)
{
    int buf = s->u.alloc.buf;
    if (buf < cg->f->nargs || buf >= cg->f->nbufs) {
        cg_fail(cg, "allocation of buffer %d, which is not a local", buf);
        return;
    }
    const LBuf *lb = &cg->f->bufs[buf];
    int64_t bytes = dtype_size(lb->dt);
    for (int i = 0; i < lb->ndim; i++) {
        if (lb->dims[i] < 0 || (lb->dims[i] && bytes > INT64_MAX / 2 / lb->dims[i])) {
            cg_fail(cg, "local buffer '%s' is too large", lb->name ? lb->name : "?");
            return;
        }
        bytes *= lb->dims[i];
    }
    bytes = bytes < 64 ? 64 : (bytes + 63) / 64 * 64;
    LLVMValueRef saved = cg->fn->bufptr[buf];
    /* Small locals (accumulator tiles) live on the stack, where SROA can
     * keep them in registers; the rest on the heap. */
    if (bytes <= STACK_BUF_MAX && cg->fn->stack_bytes + bytes <= STACK_FN_MAX) {
        cg->fn->stack_bytes += bytes;
        cg->fn->bufptr[buf] = entry_alloca(cg, LLVMArrayType2(cg->i8, (uint64_t)bytes), 64);
        emit_stmt(cg, s->u.alloc.body);
        cg->fn->bufptr[buf] = saved;
        return;
    }
    if (cg->fn->nlive > cg->f->nbufs) {
        cg_fail(cg, "allocations nested too deeply");
        return;
    }
    /* aligned_alloc (bytes is a multiple of 64) with a noalias result: LLVM
     * then knows a heap local overlaps no other buffer, which register
     * promotion of accumulators next to it depends on. */
    LLVMTypeRef pt[2] = {cg->i64, cg->i64};
    LLVMValueRef aa = ext_fn(cg, "aligned_alloc", cg->ptr, pt, 2);
    add_enum_attr(cg, aa, LLVMAttributeReturnIndex, "noalias", 0);
    LLVMValueRef args[2] = {ci64(cg, 64), ci64(cg, bytes)};
    LLVMValueRef p = call_fn(cg, aa, args, 2);
    check_or_fail(cg, LLVMBuildIsNotNull(cg->B, p, ""));
    cg->fn->live[cg->fn->nlive++] = p;
    cg->fn->bufptr[buf] = p;
    emit_stmt(cg, s->u.alloc.body);
    cg->fn->nlive--;
    call_fn(cg, free_fn(cg), &p, 1);
    cg->fn->bufptr[buf] = saved;
}

/* ------------------------------------------------------------ parallel */
static bool stmt_uses_var(const LStmt *s, const Var *v)
{
    if (!s)
        return false;
    switch (s->kind) {
    case LS_FOR:
        return stmt_uses_var(s->u.loop.body, v);
    case LS_BLOCK:
        for (int i = 0; i < s->u.block.n; i++)
            if (stmt_uses_var(s->u.block.s[i], v))
                return true;
        return false;
    case LS_IF:
        return expr_uses_var(s->u.cond.cond, v) || stmt_uses_var(s->u.cond.then_s, v) ||
               stmt_uses_var(s->u.cond.else_s, v);
    case LS_ALLOC:
        return stmt_uses_var(s->u.alloc.body, v);
    case LS_STORE:
        for (int i = 0; i < s->u.store.n; i++)
            if (expr_uses_var(s->u.store.idx[i], v))
                return true;
        return expr_uses_var(s->u.store.value, v);
    }
    return false;
}

static void expr_bufs(const Expr *e, bool *ref, int nbufs)
{
    if (!e)
        return;
    switch (e->kind) {
    case EXPR_INT:
    case EXPR_FLOAT:
    case EXPR_VAR:
        return;
    case EXPR_LOAD:
        if (e->u.load.buf >= 0 && e->u.load.buf < nbufs)
            ref[e->u.load.buf] = true;
        for (int i = 0; i < e->u.load.n; i++)
            expr_bufs(e->u.load.idx[i], ref, nbufs);
        return;
    default:
        expr_bufs(e->u.op.a, ref, nbufs);
        expr_bufs(e->u.op.b, ref, nbufs);
        expr_bufs(e->u.op.c, ref, nbufs);
    }
}

/* Buffers s reads or writes (ref), allocates (alloc), writes (stored). */
static void stmt_bufs(const LStmt *s, bool *ref, bool *alloc, bool *stored, int nbufs)
{
    if (!s)
        return;
    switch (s->kind) {
    case LS_FOR:
        stmt_bufs(s->u.loop.body, ref, alloc, stored, nbufs);
        return;
    case LS_BLOCK:
        for (int i = 0; i < s->u.block.n; i++)
            stmt_bufs(s->u.block.s[i], ref, alloc, stored, nbufs);
        return;
    case LS_IF:
        expr_bufs(s->u.cond.cond, ref, nbufs);
        stmt_bufs(s->u.cond.then_s, ref, alloc, stored, nbufs);
        stmt_bufs(s->u.cond.else_s, ref, alloc, stored, nbufs);
        return;
    case LS_ALLOC:
        if (alloc && s->u.alloc.buf >= 0 && s->u.alloc.buf < nbufs)
            alloc[s->u.alloc.buf] = true;
        stmt_bufs(s->u.alloc.body, ref, alloc, stored, nbufs);
        return;
    case LS_STORE:
        if (s->u.store.buf >= 0 && s->u.store.buf < nbufs) {
            ref[s->u.store.buf] = true;
            if (stored)
                stored[s->u.store.buf] = true;
        }
        for (int i = 0; i < s->u.store.n; i++)
            expr_bufs(s->u.store.idx[i], ref, nbufs);
        expr_bufs(s->u.store.value, ref, nbufs);
        return;
    }
}

static bool stmt_has_alloc(const LStmt *s)
{
    if (!s)
        return false;
    switch (s->kind) {
    case LS_FOR:
        return stmt_has_alloc(s->u.loop.body);
    case LS_BLOCK:
        for (int i = 0; i < s->u.block.n; i++)
            if (stmt_has_alloc(s->u.block.s[i]))
                return true;
        return false;
    case LS_IF:
        return stmt_has_alloc(s->u.cond.then_s) || stmt_has_alloc(s->u.cond.else_s);
    case LS_ALLOC:
        return true;
    case LS_STORE:
        return false;
    }
    return false;
}

static void begin_fn(Cg *cg, Fn *fn, LLVMValueRef f)
{
    memset(fn, 0, sizeof *fn);
    fn->fn = f;
    fn->bufptr = calloc((size_t)cg->f->nbufs + 1, sizeof(LLVMValueRef));
    fn->live = calloc((size_t)cg->f->nbufs + 2, sizeof(LLVMValueRef));
    fn->bind_floor = cg->nbinds;
    if (!fn->bufptr || !fn->live)
        cg_fail(cg, "out of memory");
    cg->fn = fn;
    fn->entry = new_bb(cg, "entry");
    LLVMBasicBlockRef start = new_bb(cg, "start");
    LLVMPositionBuilderAtEnd(cg->B, fn->entry);
    LLVMBuildBr(cg->B, start);
    LLVMPositionBuilderAtEnd(cg->B, start);
}

static void end_fn(Fn *fn)
{
    free(fn->bufptr);
    free(fn->live);
    fn->bufptr = fn->live = NULL;
}

static void set_buf_param_attrs(Cg *cg, LLVMValueRef fn, unsigned idx, int buf, bool stored)
{
    add_enum_attr(cg, fn, idx + 1, "noalias", 0);
    add_enum_attr(cg, fn, idx + 1, "nocapture", 0);
    if (cg->f->bufs[buf].kind == T_INPUT && !stored)
        add_enum_attr(cg, fn, idx + 1, "readonly", 0);
}

/* Outlines the loop into `void body(ptr ctx, i64 begin, i64 end)` (which
 * unpacks ctx and calls `body.inner(ptr noalias bufs..., i64 vars...,
 * ptr flag, i64 begin, i64 end)`, so the buffers stay noalias) and calls
 * the parallel-for on it.  ctx holds every free value of the body. */
static void emit_par_loop(Cg *cg, const LStmt *s)
{
    const LStmt *body = s->u.loop.body;
    int nb = cg->f->nbufs;
    bool *ref = calloc((size_t)nb + 1, 1), *inner_alloc = calloc((size_t)nb + 1, 1),
         *stored = calloc((size_t)nb + 1, 1);
    int *capb = calloc((size_t)nb + 1, sizeof(int));
    int nbind = cg->nbinds - cg->fn->bind_floor;
    Bind *capv = calloc((size_t)nbind + 1, sizeof(Bind)),
         *constv = calloc((size_t)nbind + 1, sizeof(Bind));
    LLVMTypeRef *elems = calloc((size_t)(nb + nbind + 4), sizeof(LLVMTypeRef));
    LLVMTypeRef *ptys = calloc((size_t)(nb + nbind + 4), sizeof(LLVMTypeRef));
    if (!ref || !inner_alloc || !stored || !capb || !capv || !constv || !elems || !ptys) {
        cg_fail(cg, "out of memory");
        goto done;
    }
    stmt_bufs(body, ref, inner_alloc, stored, nb);
    int ncb = 0, ncv = 0, ncc = 0;
    for (int b = 0; b < nb; b++)
        if (ref[b] && !inner_alloc[b]) {
            buf_ptr(cg, b); /* reports a buffer that is not available */
            capb[ncb++] = b;
        }
    for (int i = cg->fn->bind_floor; i < cg->nbinds; i++) {
        Bind bd = cg->binds[i];
        if (!stmt_uses_var(body, bd.var))
            continue;
        if (LLVMIsConstant(bd.v))
            constv[ncc++] = bd;
        else
            capv[ncv++] = bd;
    }
    bool flag = stmt_has_alloc(body);

    /* the closure: buffers, vars, flag */
    int ne = 0;
    for (int i = 0; i < ncb; i++)
        elems[ne++] = cg->ptr;
    for (int i = 0; i < ncv; i++)
        elems[ne++] = cg->i64;
    elems[ne++] = cg->ptr;
    LLVMTypeRef ctx_ty = LLVMStructTypeInContext(cg->C, elems, (unsigned)ne, 0);
    for (int i = 0; i < ne; i++)
        ptys[i] = elems[i];
    ptys[ne] = cg->i64;
    ptys[ne + 1] = cg->i64;

    char name[512];
    int id = cg->nbodies++;
    snprintf(name, sizeof name, "%s__par%d.inner", cg->sym, id);
    LLVMValueRef inner =
        LLVMAddFunction(cg->M, name, LLVMFunctionType(cg->voidt, ptys, (unsigned)ne + 2, 0));
    LLVMSetLinkage(inner, LLVMInternalLinkage);
    set_fn_attrs(cg, inner);
    add_enum_attr(cg, inner, LLVMAttributeFunctionIndex, "alwaysinline", 0);
    for (int i = 0; i < ncb; i++)
        set_buf_param_attrs(cg, inner, (unsigned)i, capb[i], stored[capb[i]]);
    snprintf(name, sizeof name, "%s__par%d", cg->sym, id);
    LLVMTypeRef wp[3] = {cg->ptr, cg->i64, cg->i64};
    LLVMValueRef wrapper = LLVMAddFunction(cg->M, name, LLVMFunctionType(cg->voidt, wp, 3, 0));
    LLVMSetLinkage(wrapper, LLVMInternalLinkage);
    set_fn_attrs(cg, wrapper);

    /* the inner function: loop over [begin, end) */
    LLVMBasicBlockRef caller_bb = LLVMGetInsertBlock(cg->B);
    Fn *caller = cg->fn;
    int nbinds0 = cg->nbinds;
    Fn nf;
    begin_fn(cg, &nf, inner);
    if (nf.bufptr) {
        for (int i = 0; i < ncb; i++)
            nf.bufptr[capb[i]] = LLVMGetParam(inner, (unsigned)i);
    }
    nf.errflag = flag ? LLVMGetParam(inner, (unsigned)(ncb + ncv)) : NULL;
    for (int i = 0; i < ncc; i++)
        bind(cg, constv[i].var, constv[i].v);
    for (int i = 0; i < ncv; i++)
        bind(cg, capv[i].var, LLVMGetParam(inner, (unsigned)(ncb + i)));
    cg->par_depth++;
    emit_serial(cg, s->u.loop.var, LLVMGetParam(inner, (unsigned)ne),
                LLVMGetParam(inner, (unsigned)ne + 1), false, body);
    cg->par_depth--;
    LLVMBuildRetVoid(cg->B);
    cg->nbinds = nbinds0;
    end_fn(&nf);
    cg->fn = caller;

    /* the wrapper: unpack the closure */
    LLVMBasicBlockRef wb = LLVMAppendBasicBlockInContext(cg->C, wrapper, "entry");
    LLVMPositionBuilderAtEnd(cg->B, wb);
    LLVMValueRef *args = calloc((size_t)ne + 2, sizeof(LLVMValueRef));
    if (!args) {
        cg_fail(cg, "out of memory");
        LLVMBuildRetVoid(cg->B);
        LLVMPositionBuilderAtEnd(cg->B, caller_bb);
        goto done;
    }
    for (int i = 0; i < ne; i++) {
        LLVMValueRef p =
            LLVMBuildStructGEP2(cg->B, ctx_ty, LLVMGetParam(wrapper, 0), (unsigned)i, "");
        args[i] = LLVMBuildLoad2(cg->B, elems[i], p, "");
        LLVMSetAlignment(args[i], 8);
    }
    args[ne] = LLVMGetParam(wrapper, 1);
    args[ne + 1] = LLVMGetParam(wrapper, 2);
    call_fn(cg, inner, args, (unsigned)ne + 2);
    LLVMBuildRetVoid(cg->B);

    /* the call site */
    LLVMPositionBuilderAtEnd(cg->B, caller_bb);
    LLVMValueRef ctx = entry_alloca(cg, ctx_ty, 8);
    LLVMValueRef flagp = flag ? entry_alloca(cg, cg->i32, 4) : LLVMConstNull(cg->ptr);
    for (int i = 0; i < ne; i++) {
        LLVMValueRef v = i < ncb ? buf_ptr(cg, capb[i]) : i < ncb + ncv ? capv[i - ncb].v : flagp;
        LLVMValueRef st =
            LLVMBuildStore(cg->B, v, LLVMBuildStructGEP2(cg->B, ctx_ty, ctx, (unsigned)i, ""));
        LLVMSetAlignment(st, 8);
    }
    if (flag) {
        LLVMValueRef st = LLVMBuildStore(cg->B, LLVMConstInt(cg->i32, 0, 0), flagp);
        LLVMSetAlignment(st, 4);
    }
    LLVMValueRef pargs[3] = {wrapper, ctx, ci64(cg, s->u.loop.extent)};
    call_fn(cg, cg->rt_par, pargs, 3);
    if (flag) {
        LLVMValueRef fv = LLVMBuildLoad2(cg->B, cg->i32, flagp, "");
        LLVMSetAlignment(fv, 4);
        LLVMSetOrdering(fv, LLVMAtomicOrderingMonotonic);
        check_or_fail(cg, LLVMBuildICmp(cg->B, LLVMIntEQ, fv, LLVMConstInt(cg->i32, 0, 0), ""));
    }
    free(args);
done:
    free(ref);
    free(inner_alloc);
    free(stored);
    free(capb);
    free(capv);
    free(constv);
    free(elems);
    free(ptys);
}

static void emit_for(Cg *cg, const LStmt *s)
{
    const Var *v = s->u.loop.var;
    int64_t n = s->u.loop.extent;
    const LStmt *body = s->u.loop.body;
    if (n <= 0)
        return;
    if (n == 1) {
        bind(cg, v, ci64(cg, 0));
        emit_stmt(cg, body);
        unbind(cg);
        return;
    }
    switch (s->u.loop.kind) {
    case LOOP_UNROLLED:
        if (n <= UNROLL_BUDGET && n * stmt_cost(body) <= UNROLL_BUDGET) {
            for (int64_t k = 0; k < n && !cg->failed; k++) {
                bind(cg, v, ci64(cg, k));
                emit_stmt(cg, body);
                unbind(cg);
            }
            return;
        }
        break; /* too big to copy: a plain loop */
    case LOOP_VECTORIZED:
        emit_vec_loop(cg, s);
        return;
    case LOOP_PARALLEL:
        if (cg->par_depth == 0 && !cg->vvar) {
            emit_par_loop(cg, s);
            return;
        }
        break; /* nested parallel loops run serially */
    case LOOP_SERIAL:
        break;
    }
    emit_serial(cg, v, ci64(cg, 0), ci64(cg, n), true, body);
}

static void emit_stmt(Cg *cg, const LStmt *s)
{
    if (!s || cg->failed)
        return;
    switch (s->kind) {
    case LS_BLOCK:
        for (int i = 0; i < s->u.block.n; i++)
            emit_stmt(cg, s->u.block.s[i]);
        return;
    case LS_STORE:
        if (s->u.store.buf < 0 || s->u.store.buf >= cg->f->nbufs) {
            cg_fail(cg, "store to unknown buffer %d", s->u.store.buf);
            return;
        }
        emit_store(cg, s);
        return;
    case LS_IF:
        emit_if(cg, s);
        return;
    case LS_FOR:
        if (cg->vvar) {
            cg_fail(cg, "loop inside a vectorized body");
            return;
        }
        emit_for(cg, s);
        return;
    case LS_ALLOC:
        if (cg->vvar) {
            cg_fail(cg, "allocation inside a vectorized body");
            return;
        }
        emit_alloc(cg, s);
        return;
    }
}

/* ------------------------------------------------------------ module */
static void emit_packed(Cg *cg, LLVMValueRef fn, const char *sym)
{
    char name[512];
    snprintf(name, sizeof name, "%s__packed", sym);
    LLVMTypeRef pt = cg->ptr;
    LLVMValueRef pk = LLVMAddFunction(cg->M, name, LLVMFunctionType(cg->i32, &pt, 1, 0));
    set_fn_attrs(cg, pk);
    LLVMPositionBuilderAtEnd(cg->B, LLVMAppendBasicBlockInContext(cg->C, pk, "entry"));
    int n = cg->f->nargs;
    LLVMValueRef *args = calloc((size_t)n + 1, sizeof(LLVMValueRef));
    if (!args) {
        cg_fail(cg, "out of memory");
        LLVMBuildRet(cg->B, LLVMConstInt(cg->i32, 1, 0));
        return;
    }
    for (int i = 0; i < n; i++) {
        LLVMValueRef idx = ci64(cg, i);
        LLVMValueRef p = LLVMBuildInBoundsGEP2(cg->B, cg->ptr, LLVMGetParam(pk, 0), &idx, 1, "");
        args[i] = LLVMBuildLoad2(cg->B, cg->ptr, p, "");
        LLVMSetAlignment(args[i], 8);
    }
    LLVMBuildRet(cg->B, call_fn(cg, fn, args, (unsigned)n));
    free(args);
}

int cg_build_module(const LFunc *f, CgMode mode, const char *sym, LLVMContextRef ctx,
                    LLVMTargetMachineRef tm, LLVMModuleRef *out, kiln_error *e)
{
    *out = NULL;
    cg_llvm_init();
    if (!f || !f->body || f->nargs < 0 || f->nargs > f->nbufs || (!sym && !f->name))
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "codegen: malformed LFunc");
    if (!sym)
        sym = f->name;
    Cg cg = {.C = ctx, .f = f, .mode = mode, .sym = sym, .e = e};
    cg.M = LLVMModuleCreateWithNameInContext(sym, ctx);
    if (tm) {
        char *triple = LLVMGetTargetMachineTriple(tm);
        LLVMSetTarget(cg.M, triple);
        LLVMDisposeMessage(triple);
        LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
        LLVMSetModuleDataLayout(cg.M, dl);
        LLVMDisposeTargetData(dl);
    }
    cg.i1 = LLVMInt1TypeInContext(ctx);
    cg.i8 = LLVMInt8TypeInContext(ctx);
    cg.i32 = LLVMInt32TypeInContext(ctx);
    cg.i64 = LLVMInt64TypeInContext(ctx);
    cg.f32 = LLVMFloatTypeInContext(ctx);
    cg.f64 = LLVMDoubleTypeInContext(ctx);
    cg.ptr = LLVMPointerTypeInContext(ctx, 0);
    cg.voidt = LLVMVoidTypeInContext(ctx);
    cg.B = LLVMCreateBuilderInContext(ctx);
    cg.AB = LLVMCreateBuilderInContext(ctx);
    if (mode == CG_JIT) {
        LLVMTypeRef pt[3] = {cg.ptr, cg.ptr, cg.i64};
        cg.rt_par = ext_fn(&cg, "kiln_rt_parallel_for", cg.voidt, pt, 3);
    } else {
        cg.rt_par = cg_rt_parallel_for_ir(cg.M);
    }

    /* i32 sym(ptr noalias nocapture [readonly] a0, ...) */
    int n = f->nargs;
    LLVMTypeRef *pts = calloc((size_t)n + 1, sizeof(LLVMTypeRef));
    bool *ref = calloc((size_t)f->nbufs + 1, 1), *stored = calloc((size_t)f->nbufs + 1, 1);
    if (!pts || !ref || !stored) {
        cg_fail(&cg, "out of memory");
    } else {
        for (int i = 0; i < n; i++)
            pts[i] = cg.ptr;
        stmt_bufs(f->body, ref, NULL, stored, f->nbufs);
        LLVMValueRef fn = LLVMAddFunction(cg.M, sym, LLVMFunctionType(cg.i32, pts, (unsigned)n, 0));
        set_fn_attrs(&cg, fn);
        for (int i = 0; i < n; i++) {
            set_buf_param_attrs(&cg, fn, (unsigned)i, i, stored[i]);
            int64_t bytes = dtype_size(f->bufs[i].dt);
            for (int d = 0; d < f->bufs[i].ndim && bytes > 0; d++)
                bytes = f->bufs[i].dims[d] > 0 && bytes <= INT64_MAX / f->bufs[i].dims[d]
                            ? bytes * f->bufs[i].dims[d]
                            : 0;
            if (bytes > 0)
                add_enum_attr(&cg, fn, (unsigned)i + 1, "dereferenceable", (uint64_t)bytes);
        }
        Fn mf;
        begin_fn(&cg, &mf, fn);
        for (int i = 0; i < n && mf.bufptr; i++)
            mf.bufptr[i] = LLVMGetParam(fn, (unsigned)i);
        emit_stmt(&cg, f->body);
        LLVMBuildRet(cg.B, LLVMConstInt(cg.i32, 0, 0));
        end_fn(&mf);
        if (mode == CG_JIT && !cg.failed)
            emit_packed(&cg, fn, sym);
    }
    free(pts);
    free(ref);
    free(stored);
    free(cg.binds);
    LLVMDisposeBuilder(cg.B);
    LLVMDisposeBuilder(cg.AB);
    if (cg.failed) {
        LLVMDisposeModule(cg.M);
        return e && e->code ? e->code : KILN_ECODEGEN;
    }
    char *msg = NULL;
    if (LLVMVerifyModule(cg.M, LLVMReturnStatusAction, &msg)) {
        ir_error(e, KILN_ECODEGEN, NULL, (Loc){0, 0}, "LLVM IR verification failed: %.400s",
                 msg ? msg : "?");
        LLVMDisposeMessage(msg);
        LLVMDisposeModule(cg.M);
        return KILN_ECODEGEN;
    }
    LLVMDisposeMessage(msg);
    *out = cg.M;
    return KILN_OK;
}
