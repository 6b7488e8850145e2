/* codegen/jit.c: the process-wide ORC LLJIT and per-kernel compilation.
 *
 * One LLJIT serves the process (created on first use).  Every kernel gets
 * a fresh ThreadSafeContext and its own ResourceTracker; freeing a kernel
 * removes the tracker, which releases its code and symbols, so thousands
 * of compile/free cycles keep memory flat (deps.md §3).  Kernel symbols
 * get a unique suffix so kernels of the same name can live side by side.
 *
 * Runtime entry points (kiln_rt_*) and the libc/libm functions generated
 * code may call are defined as absolute symbols, so the executable needs
 * no -rdynamic; the process generator stays as a fallback.
 *
 * Thread safety: one mutex serialises JIT creation, compiles and frees. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/TargetMachine.h>

#include "codegen/codegen.h"
#include "runtime/runtime.h"

struct CgKernel {
    LLVMOrcResourceTrackerRef rt;
    void *fn;
    int (*packed)(void **);
    double compile_ms;
    double compile_cpu_ms; /* this thread's CPU time: robust on a shared machine */
};

static pthread_mutex_t jit_lock = PTHREAD_MUTEX_INITIALIZER;
static LLVMOrcLLJITRef jit;
static LLVMTargetMachineRef opt_tm; /* runs the pass pipeline; the JIT has its own for codegen */
static unsigned long kernel_counter;
static char session_error[512]; /* last message from the session's error reporter */

static void report_session_error(void *ctx, LLVMErrorRef err)
{
    (void)ctx;
    char *msg = LLVMGetErrorMessage(err);
    snprintf(session_error, sizeof session_error, "%s", msg);
    LLVMDisposeErrorMessage(msg);
}

/* Records err (consumed) as a codegen error. */
static int llvm_err(kiln_error *e, LLVMErrorRef err, const char *what)
{
    char *msg = LLVMGetErrorMessage(err);
    ir_error(e, KILN_ECODEGEN, NULL, (Loc){0, 0}, "%s: %s%s%s", what, msg,
             session_error[0] ? "; " : "", session_error);
    LLVMDisposeErrorMessage(msg);
    return KILN_ECODEGEN;
}

typedef struct AbsSym {
    const char *name;
    void *addr;
} AbsSym;

static int define_absolute_symbols(kiln_error *e)
{
    const AbsSym syms[] = {
        {"kiln_rt_parallel_for", (void *)&kiln_rt_parallel_for},
        {"kiln_rt_alloc", (void *)&kiln_rt_alloc},
        {"kiln_rt_free", (void *)&kiln_rt_free},
        {"kiln_rt_now", (void *)&kiln_rt_now},
        {"posix_memalign", (void *)&posix_memalign},
        {"aligned_alloc", (void *)&aligned_alloc},
        {"free", (void *)&free},
        {"memset", (void *)&memset},
        {"memcpy", (void *)&memcpy},
        {"memmove", (void *)&memmove},
        {"expf", (void *)&expf},
        {"exp", (void *)&exp},
        {"logf", (void *)&logf},
        {"log", (void *)&log},
        {"tanhf", (void *)&tanhf},
        {"tanh", (void *)&tanh},
        {"fmodf", (void *)&fmodf},
        {"fmod", (void *)&fmod},
        {"sqrtf", (void *)&sqrtf},
        {"sqrt", (void *)&sqrt},
    };
    enum { N = sizeof syms / sizeof syms[0] };
    LLVMOrcCSymbolMapPair pairs[N];
    for (int i = 0; i < N; i++) {
        pairs[i].Name = LLVMOrcLLJITMangleAndIntern(jit, syms[i].name);
        pairs[i].Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)syms[i].addr;
        pairs[i].Sym.Flags.GenericFlags =
            LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
        pairs[i].Sym.Flags.TargetFlags = 0;
    }
    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(jit);
    LLVMErrorRef err = LLVMOrcJITDylibDefine(jd, LLVMOrcAbsoluteSymbols(pairs, N));
    if (err)
        return llvm_err(e, err, "cannot define runtime symbols in the JIT");
    LLVMOrcDefinitionGeneratorRef gen;
    err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
        &gen, LLVMOrcLLJITGetGlobalPrefix(jit), NULL, NULL);
    if (err)
        return llvm_err(e, err, "cannot create the process symbol generator");
    LLVMOrcJITDylibAddGenerator(jd, gen);
    return KILN_OK;
}

/* Creates the LLJIT on first use.  Caller holds jit_lock. */
static int jit_init(kiln_error *e)
{
    if (jit)
        return KILN_OK;
    cg_llvm_init();
    LLVMOrcJITTargetMachineBuilderRef jtmb;
    LLVMErrorRef err = LLVMOrcJITTargetMachineBuilderDetectHost(&jtmb);
    if (err)
        return llvm_err(e, err, "cannot detect the host for the JIT");
    LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, jtmb);
    err = LLVMOrcCreateLLJIT(&jit, builder);
    if (err) {
        jit = NULL;
        return llvm_err(e, err, "cannot create the JIT");
    }
    LLVMOrcExecutionSessionSetErrorReporter(LLVMOrcLLJITGetExecutionSession(jit),
                                            report_session_error, NULL);
    opt_tm = cg_host_tm(false, e);
    if (!opt_tm || define_absolute_symbols(e)) {
        if (opt_tm)
            LLVMDisposeTargetMachine(opt_tm);
        opt_tm = NULL;
        LLVMErrorRef derr = LLVMOrcDisposeLLJIT(jit);
        if (derr)
            LLVMConsumeError(derr);
        jit = NULL;
        return e && e->code ? e->code : KILN_ECODEGEN;
    }
    return KILN_OK;
}

static double now_ms(void)
{
    return kiln_rt_now() * 1e3;
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void remove_tracker(LLVMOrcResourceTrackerRef rt)
{
    LLVMErrorRef err = LLVMOrcResourceTrackerRemove(rt);
    if (err)
        LLVMConsumeError(err);
    LLVMOrcReleaseResourceTracker(rt);
}

/* Compiles f into k.  Caller holds jit_lock and has run jit_init. */
static int compile_locked(const LFunc *f, CgKernel *k, kiln_error *e)
{
    double t0 = now_ms();
    double c0 = cpu_ms(); /* not counting the wait for the lock */
    size_t nlen = strlen(f->name) + 64;
    char *sym = malloc(nlen), *psym = malloc(nlen);
    int rc = KILN_OK;
    if (!sym || !psym) {
        free(sym);
        free(psym);
        return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    }
    unsigned long id = ++kernel_counter;
    snprintf(sym, nlen, "%s__k%lu", f->name, id);
    snprintf(psym, nlen, "%s__k%lu__packed", f->name, id);

    /* A fresh context per kernel: a shared one keeps every uniqued
     * constant and type forever (deps.md §3). */
    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    LLVMContextRef ctx = LLVMOrcThreadSafeContextGetContext(tsc);
    LLVMModuleRef m = NULL;
    rc = cg_build_module(f, CG_JIT, sym, ctx, opt_tm, &m, e);
    if (!rc) {
        LLVMSetDataLayout(m, LLVMOrcLLJITGetDataLayoutStr(jit));
        rc = cg_optimize(m, opt_tm, e);
        if (rc)
            LLVMDisposeModule(m);
    }
    if (rc) {
        LLVMOrcDisposeThreadSafeContext(tsc);
        goto fail;
    }
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(m, tsc);
    LLVMOrcDisposeThreadSafeContext(tsc); /* the module keeps its reference */
    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(jit);
    k->rt = LLVMOrcJITDylibCreateResourceTracker(jd);
    session_error[0] = 0;
    LLVMErrorRef err = LLVMOrcLLJITAddLLVMIRModuleWithRT(jit, k->rt, tsm); /* takes tsm */
    if (err) {
        rc = llvm_err(e, err, "cannot add the kernel to the JIT");
        goto fail;
    }
    LLVMOrcExecutorAddress fa = 0, pa = 0;
    err = LLVMOrcLLJITLookup(jit, &fa, sym); /* machine code is generated here */
    if (!err)
        err = LLVMOrcLLJITLookup(jit, &pa, psym);
    if (err) {
        rc = llvm_err(e, err, "cannot generate the kernel's machine code");
        goto fail;
    }
    k->fn = (void *)(uintptr_t)fa;
    k->packed = (int (*)(void **))(uintptr_t)pa;
    k->compile_ms = now_ms() - t0;
    k->compile_cpu_ms = cpu_ms() - c0;
    free(sym);
    free(psym);
    return KILN_OK;

fail:
    if (k->rt)
        remove_tracker(k->rt);
    k->rt = NULL;
    free(sym);
    free(psym);
    return rc ? rc : KILN_ECODEGEN;
}

/* The first compile in a process pays for paging in LLVM's code and
 * building its pass and target tables (about as much again as a kernel).
 * That is start-up, not the cost of a kernel: compile one tiny vector
 * kernel once so compile_ms measures what every later kernel costs. */
static void jit_warm_up(void)
{
    static bool warm;
    if (warm)
        return;
    warm = true;
    Arena *a = arena_new();
    if (!a)
        return;
    Var *v = ir_var_new(a, "i", 64);
    LBuf buf = {.name = "x", .dt = DT_F32, .kind = T_OUTPUT, .ndim = 1, .dims = {64}};
    Expr *idx = v ? expr_var(a, v) : NULL;
    Expr *ld = idx ? expr_load(a, DT_F32, 0, 1, &idx) : NULL;
    Expr *val = ld ? expr_bin(a, EXPR_ADD, DT_F32,
                              expr_bin(a, EXPR_MUL, DT_F32, ld, expr_float(a, DT_F32, 2.0)),
                              expr_float(a, DT_F32, 1.0))
                   : NULL;
    LStmt *st = val ? ls_store(a, 0, 1, &idx, val) : NULL;
    LStmt *body = st ? ls_for(a, v, 64, LOOP_VECTORIZED, st) : NULL;
    if (body) {
        LFunc f = {.name = "kiln_warm_up", .bufs = &buf, .nbufs = 1, .nargs = 1, .body = body,
                   .flat = true};
        CgKernel k = {0};
        if (compile_locked(&f, &k, NULL) == KILN_OK)
            remove_tracker(k.rt);
    }
    arena_free(a);
}

int cg_compile(const LFunc *f, CgKernel **out, kiln_error *e)
{
    if (!out)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "cg_compile: out is NULL");
    *out = NULL;
    if (!f || !f->name)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "cg_compile: no function");
    CgKernel *k = calloc(1, sizeof *k);
    if (!k)
        return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    pthread_mutex_lock(&jit_lock);
    /* The process-wide JIT is set up once, outside the timed region: the
     * compile time is this kernel's cost, not the process's start-up. */
    int rc = jit_init(e);
    if (!rc) {
        jit_warm_up();
        rc = compile_locked(f, k, e);
    }
    pthread_mutex_unlock(&jit_lock);
    if (rc) {
        free(k);
        return rc;
    }
    *out = k;
    return KILN_OK;
}

int (*cg_kernel_packed(const CgKernel *k))(void **args)
{
    return k ? k->packed : NULL;
}

void *cg_kernel_fn(const CgKernel *k)
{
    return k ? k->fn : NULL;
}

double cg_kernel_compile_ms(const CgKernel *k)
{
    return k ? k->compile_ms : 0;
}

double cg_kernel_compile_cpu_ms(const CgKernel *k)
{
    return k ? k->compile_cpu_ms : 0;
}

void cg_kernel_free(CgKernel *k)
{
    if (!k)
        return;
    pthread_mutex_lock(&jit_lock);
    if (k->rt)
        remove_tracker(k->rt);
    /* Every kernel's symbol names are unique; drop the pool entries that
     * nothing refers to any more, or they would pile up over a long
     * tuning run. */
    LLVMOrcSymbolStringPoolClearDeadEntries(
        LLVMOrcExecutionSessionGetSymbolStringPool(LLVMOrcLLJITGetExecutionSession(jit)));
    pthread_mutex_unlock(&jit_lock);
    free(k);
}
