/* codegen/rt_ir.c: the fork-join parallel-for that emitted objects carry
 * inside themselves, written directly as LLVM IR.
 *
 * An object must link with `cc main.c kernel.o -lm -lpthread` and nothing
 * of kiln's, and several objects must link side by side: so every symbol
 * defined here is internal, and the code uses libc/pthreads only.
 *
 *   void kiln.parallel_for(ptr body, ptr ctx, i64 n)
 *     T = KILN_NUM_THREADS if set and > 0, else sysconf(_SC_NPROCESSORS_ONLN),
 *     clamped to [1, min(n, 256)]; chunk t covers [t*q + min(t, r), +q + (t < r))
 *     with q = n / T, r = n % T; threads 1..T-1 are created per call, the
 *     caller runs chunk 0, then joins them.  A thread that cannot be
 *     created has its chunk run by the caller.
 *
 * Nested parallel loops never reach this: codegen emits them serially. */
#include <llvm-c/Core.h>

#include "codegen/codegen.h"

enum {
    RT_MAX_THREADS = 256,
    SC_NPROCESSORS_ONLN = 84 /* glibc x86-64 value of _SC_NPROCESSORS_ONLN */
};

typedef struct RtIr {
    LLVMContextRef C;
    LLVMModuleRef M;
    LLVMBuilderRef B;
    LLVMValueRef fn;
    LLVMTypeRef i1, i8, i32, i64, ptr, voidt;
} RtIr;

static LLVMValueRef decl(RtIr *r, const char *name, LLVMTypeRef ret, LLVMTypeRef *params,
                         unsigned n)
{
    LLVMValueRef f = LLVMGetNamedFunction(r->M, name);
    return f ? f : LLVMAddFunction(r->M, name, LLVMFunctionType(ret, params, n, 0));
}

static LLVMValueRef call(RtIr *r, LLVMValueRef f, LLVMValueRef *args, unsigned n)
{
    return LLVMBuildCall2(r->B, LLVMGlobalGetValueType(f), f, args, n, "");
}

static LLVMValueRef c64(RtIr *r, long long v)
{
    return LLVMConstInt(r->i64, (unsigned long long)v, 1);
}

static LLVMBasicBlockRef bb(RtIr *r, const char *name)
{
    return LLVMAppendBasicBlockInContext(r->C, r->fn, name);
}

static LLVMValueRef load(RtIr *r, LLVMTypeRef t, LLVMValueRef p, unsigned align)
{
    LLVMValueRef l = LLVMBuildLoad2(r->B, t, p, "");
    LLVMSetAlignment(l, align);
    return l;
}

static void store(RtIr *r, LLVMValueRef v, LLVMValueRef p, unsigned align)
{
    LLVMSetAlignment(LLVMBuildStore(r->B, v, p), align);
}

static LLVMValueRef smin(RtIr *r, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildSelect(r->B, LLVMBuildICmp(r->B, LLVMIntSLT, a, b, ""), a, b, "");
}

/* for (t = from; t < to; t++): returns t; loop_close finishes it. */
typedef struct RtLoop {
    LLVMBasicBlockRef head, body, exit;
    LLVMValueRef t, to;
} RtLoop;

static LLVMValueRef loop_open(RtIr *r, RtLoop *l, LLVMValueRef from, LLVMValueRef to)
{
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(r->B);
    l->head = bb(r, "head");
    l->body = bb(r, "body");
    l->exit = bb(r, "exit");
    l->to = to;
    LLVMBuildBr(r->B, l->head);
    LLVMPositionBuilderAtEnd(r->B, l->head);
    l->t = LLVMBuildPhi(r->B, r->i64, "t");
    LLVMAddIncoming(l->t, &from, &pre, 1);
    LLVMBuildCondBr(r->B, LLVMBuildICmp(r->B, LLVMIntSLT, l->t, to, ""), l->body, l->exit);
    LLVMPositionBuilderAtEnd(r->B, l->body);
    return l->t;
}

static void loop_close(RtIr *r, RtLoop *l)
{
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(r->B);
    LLVMValueRef next = LLVMBuildAdd(r->B, l->t, c64(r, 1), "");
    LLVMBuildBr(r->B, l->head);
    LLVMAddIncoming(l->t, &next, &latch, 1);
    LLVMPositionBuilderAtEnd(r->B, l->exit);
}

/* [b, e) of chunk t. */
static void chunk(RtIr *r, LLVMValueRef t, LLVMValueRef q, LLVMValueRef rem, LLVMValueRef *b,
                  LLVMValueRef *e)
{
    *b = LLVMBuildAdd(r->B, LLVMBuildMul(r->B, t, q, ""), smin(r, t, rem), "");
    LLVMValueRef extra =
        LLVMBuildZExt(r->B, LLVMBuildICmp(r->B, LLVMIntSLT, t, rem, ""), r->i64, "");
    *e = LLVMBuildAdd(r->B, LLVMBuildAdd(r->B, *b, q, ""), extra, "");
}

static void nounwind(RtIr *r, LLVMValueRef f)
{
    unsigned k = LLVMGetEnumAttributeKindForName("nounwind", 8);
    if (k)
        LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(r->C, k, 0));
}

LLVMValueRef cg_rt_parallel_for_ir(LLVMModuleRef m)
{
    static const char *const name = "kiln.parallel_for";
    LLVMValueRef existing = LLVMGetNamedFunction(m, name);
    if (existing)
        return existing;
    RtIr r = {.C = LLVMGetModuleContext(m), .M = m};
    r.i1 = LLVMInt1TypeInContext(r.C);
    r.i8 = LLVMInt8TypeInContext(r.C);
    r.i32 = LLVMInt32TypeInContext(r.C);
    r.i64 = LLVMInt64TypeInContext(r.C);
    r.ptr = LLVMPointerTypeInContext(r.C, 0);
    r.voidt = LLVMVoidTypeInContext(r.C);
    r.B = LLVMCreateBuilderInContext(r.C);

    LLVMTypeRef task_fields[4] = {r.ptr, r.ptr, r.i64, r.i64}; /* body, ctx, begin, end */
    LLVMTypeRef task_ty = LLVMStructTypeInContext(r.C, task_fields, 4, 0);
    LLVMTypeRef body_params[3] = {r.ptr, r.i64, r.i64};
    LLVMTypeRef body_ty = LLVMFunctionType(r.voidt, body_params, 3, 0);

    /* ptr thread(ptr task): runs one chunk. */
    LLVMValueRef thr =
        LLVMAddFunction(m, "kiln.parallel_thread", LLVMFunctionType(r.ptr, &r.ptr, 1, 0));
    LLVMSetLinkage(thr, LLVMInternalLinkage);
    nounwind(&r, thr);
    LLVMPositionBuilderAtEnd(r.B, LLVMAppendBasicBlockInContext(r.C, thr, "entry"));
    {
        LLVMValueRef task = LLVMGetParam(thr, 0), f[4];
        for (unsigned i = 0; i < 4; i++)
            f[i] = load(&r, task_fields[i], LLVMBuildStructGEP2(r.B, task_ty, task, i, ""), 8);
        LLVMBuildCall2(r.B, body_ty, f[0], &f[1], 3, "");
        LLVMBuildRet(r.B, LLVMConstNull(r.ptr));
    }

    LLVMTypeRef pf_params[3] = {r.ptr, r.ptr, r.i64};
    r.fn = LLVMAddFunction(m, name, LLVMFunctionType(r.voidt, pf_params, 3, 0));
    LLVMSetLinkage(r.fn, LLVMInternalLinkage);
    nounwind(&r, r.fn);
    LLVMValueRef body = LLVMGetParam(r.fn, 0), ctx = LLVMGetParam(r.fn, 1),
                 n = LLVMGetParam(r.fn, 2);

    LLVMTypeRef gp = r.ptr, jp[2] = {r.i64, r.ptr}, cp[4] = {r.ptr, r.ptr, r.ptr, r.ptr};
    LLVMValueRef getenv_f = decl(&r, "getenv", r.ptr, &gp, 1);
    LLVMValueRef atoi_f = decl(&r, "atoi", r.i32, &gp, 1);
    LLVMValueRef sysconf_f = decl(&r, "sysconf", r.i64, &r.i32, 1);
    LLVMValueRef create_f = decl(&r, "pthread_create", r.i32, cp, 4);
    LLVMValueRef join_f = decl(&r, "pthread_join", r.i32, jp, 2);

    static const char envname[] = "KILN_NUM_THREADS";
    LLVMValueRef str = LLVMAddGlobal(m, LLVMArrayType2(r.i8, sizeof envname), "kiln.env_threads");
    LLVMSetInitializer(str, LLVMConstStringInContext(r.C, envname, sizeof envname - 1, 0));
    LLVMSetGlobalConstant(str, 1);
    LLVMSetLinkage(str, LLVMPrivateLinkage);
    LLVMSetUnnamedAddr(str, 1);

    LLVMBasicBlockRef entry = bb(&r, "entry"), start = bb(&r, "start");
    LLVMPositionBuilderAtEnd(r.B, entry);
    LLVMValueRef tasks = LLVMBuildAlloca(r.B, LLVMArrayType2(task_ty, RT_MAX_THREADS), "tasks");
    LLVMValueRef tids = LLVMBuildAlloca(r.B, LLVMArrayType2(r.i64, RT_MAX_THREADS), "tids");
    LLVMValueRef oks = LLVMBuildAlloca(r.B, LLVMArrayType2(r.i8, RT_MAX_THREADS), "oks");
    LLVMSetAlignment(tasks, 8);
    LLVMSetAlignment(tids, 8);
    LLVMBasicBlockRef ret = bb(&r, "ret");
    LLVMBuildCondBr(r.B, LLVMBuildICmp(r.B, LLVMIntSGT, n, c64(&r, 0), ""), start, ret);

    /* thread count */
    LLVMPositionBuilderAtEnd(r.B, start);
    LLVMValueRef env = call(&r, getenv_f, &str, 1);
    LLVMBasicBlockRef parse = bb(&r, "env"), chosen = bb(&r, "threads");
    LLVMBasicBlockRef sys = bb(&r, "sysconf");
    LLVMBuildCondBr(r.B, LLVMBuildIsNull(r.B, env, ""), sys, parse);
    LLVMPositionBuilderAtEnd(r.B, parse);
    LLVMValueRef te = LLVMBuildSExt(r.B, call(&r, atoi_f, &env, 1), r.i64, "");
    LLVMBuildCondBr(r.B, LLVMBuildICmp(r.B, LLVMIntSGT, te, c64(&r, 0), ""), chosen, sys);
    LLVMPositionBuilderAtEnd(r.B, sys);
    LLVMValueRef sc = LLVMConstInt(r.i32, SC_NPROCESSORS_ONLN, 0);
    LLVMValueRef ts = call(&r, sysconf_f, &sc, 1);
    LLVMBuildBr(r.B, chosen);
    LLVMPositionBuilderAtEnd(r.B, chosen);
    LLVMValueRef t = LLVMBuildPhi(r.B, r.i64, "nthreads");
    LLVMValueRef tv[2] = {te, ts};
    LLVMBasicBlockRef tb[2] = {parse, sys};
    LLVMAddIncoming(t, tv, tb, 2);
    t = smin(&r, t, c64(&r, RT_MAX_THREADS));
    t = smin(&r, t, n);
    LLVMBasicBlockRef serial = bb(&r, "serial"), par = bb(&r, "parallel");
    LLVMBuildCondBr(r.B, LLVMBuildICmp(r.B, LLVMIntSLE, t, c64(&r, 1), ""), serial, par);

    LLVMPositionBuilderAtEnd(r.B, serial);
    LLVMValueRef sargs[3] = {ctx, c64(&r, 0), n};
    LLVMBuildCall2(r.B, body_ty, body, sargs, 3, "");
    LLVMBuildBr(r.B, ret);

    /* fork */
    LLVMPositionBuilderAtEnd(r.B, par);
    LLVMValueRef q = LLVMBuildSDiv(r.B, n, t, ""), rem = LLVMBuildSRem(r.B, n, t, "");
    RtLoop fork;
    LLVMValueRef i = loop_open(&r, &fork, c64(&r, 1), t);
    {
        LLVMValueRef b, e, idx[2] = {c64(&r, 0), i};
        chunk(&r, i, q, rem, &b, &e);
        LLVMValueRef task =
            LLVMBuildInBoundsGEP2(r.B, LLVMArrayType2(task_ty, RT_MAX_THREADS), tasks, idx, 2, "");
        LLVMValueRef fv[4] = {body, ctx, b, e};
        for (unsigned k = 0; k < 4; k++)
            store(&r, fv[k], LLVMBuildStructGEP2(r.B, task_ty, task, k, ""), 8);
        LLVMValueRef tid =
            LLVMBuildInBoundsGEP2(r.B, LLVMArrayType2(r.i64, RT_MAX_THREADS), tids, idx, 2, "");
        LLVMValueRef okp =
            LLVMBuildInBoundsGEP2(r.B, LLVMArrayType2(r.i8, RT_MAX_THREADS), oks, idx, 2, "");
        LLVMValueRef cargs[4] = {tid, LLVMConstNull(r.ptr), thr, task};
        LLVMValueRef ok = LLVMBuildICmp(r.B, LLVMIntEQ, call(&r, create_f, cargs, 4),
                                        LLVMConstInt(r.i32, 0, 0), "");
        store(&r, LLVMBuildZExt(r.B, ok, r.i8, ""), okp, 1);
        LLVMBasicBlockRef inl = bb(&r, "inline"), next = bb(&r, "next");
        LLVMBuildCondBr(r.B, ok, next, inl);
        LLVMPositionBuilderAtEnd(r.B, inl);
        LLVMValueRef iargs[3] = {ctx, b, e};
        LLVMBuildCall2(r.B, body_ty, body, iargs, 3, "");
        LLVMBuildBr(r.B, next);
        LLVMPositionBuilderAtEnd(r.B, next);
    }
    loop_close(&r, &fork);

    /* chunk 0 on this thread, then join */
    {
        LLVMValueRef b, e;
        chunk(&r, c64(&r, 0), q, rem, &b, &e);
        LLVMValueRef args0[3] = {ctx, b, e};
        LLVMBuildCall2(r.B, body_ty, body, args0, 3, "");
    }
    RtLoop join;
    i = loop_open(&r, &join, c64(&r, 1), t);
    {
        LLVMValueRef idx[2] = {c64(&r, 0), i};
        LLVMValueRef okp =
            LLVMBuildInBoundsGEP2(r.B, LLVMArrayType2(r.i8, RT_MAX_THREADS), oks, idx, 2, "");
        LLVMValueRef ok =
            LLVMBuildICmp(r.B, LLVMIntNE, load(&r, r.i8, okp, 1), LLVMConstInt(r.i8, 0, 0), "");
        LLVMBasicBlockRef dojoin = bb(&r, "join"), next = bb(&r, "joined");
        LLVMBuildCondBr(r.B, ok, dojoin, next);
        LLVMPositionBuilderAtEnd(r.B, dojoin);
        LLVMValueRef tid =
            LLVMBuildInBoundsGEP2(r.B, LLVMArrayType2(r.i64, RT_MAX_THREADS), tids, idx, 2, "");
        LLVMValueRef jargs[2] = {load(&r, r.i64, tid, 8), LLVMConstNull(r.ptr)};
        call(&r, join_f, jargs, 2);
        LLVMBuildBr(r.B, next);
        LLVMPositionBuilderAtEnd(r.B, next);
    }
    loop_close(&r, &join);
    LLVMBuildBr(r.B, ret);
    LLVMPositionBuilderAtEnd(r.B, ret);
    LLVMBuildRetVoid(r.B);
    if (LLVMGetLastBasicBlock(r.fn) != ret)
        LLVMMoveBasicBlockAfter(ret, LLVMGetLastBasicBlock(r.fn));
    LLVMDisposeBuilder(r.B);
    return r.fn;
}
