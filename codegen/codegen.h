/* codegen/codegen.h: LoopIR -> LLVM IR (LLVM 19 C API), ORC JIT, objects.
 *
 * One LLJIT per process (created on first use, guarded by a mutex); every
 * kernel owns a ResourceTracker and a fresh ThreadSafeContext, so
 * compiling and freeing thousands of kernels keeps memory flat.
 *
 * Generated function ABI (DESIGN.md): `int name(T0 *a0, ..., Tn *an)`, one
 * pointer per LFunc argument buffer, returning 0 (or 1 when a temporary
 * cannot be allocated).  The JIT module also holds `name__packed(void
 * **args)` so callers need no per-arity casts.
 *
 * The input LFunc must be flat (lower_schedule ran to the end). */
#ifndef KILN_CODEGEN_H
#define KILN_CODEGEN_H

#include "ir/ir.h"

typedef struct CgKernel CgKernel;

typedef enum {
    CG_JIT,    /* parallel loops call kiln_rt_parallel_for of runtime/ */
    CG_OBJECT  /* self-contained: an internal fork-join parallel-for */
} CgMode;

/* JIT-compiles f.  On success *out holds the kernel. */
int cg_compile(const LFunc *f, CgKernel **out, kiln_error *e);
/* The packed entry: int fn(void **args). */
int (*cg_kernel_packed(const CgKernel *k))(void **args);
/* The ABI entry point (cast to the right prototype). */
void *cg_kernel_fn(const CgKernel *k);
double cg_kernel_compile_ms(const CgKernel *k);
double cg_kernel_compile_cpu_ms(const CgKernel *k); /* CPU time of the compiling thread */
void cg_kernel_free(CgKernel *k); /* NULL ok; frees the machine code */

/* Writes a relocatable object (PIC, host CPU) holding f's function. */
int cg_emit_object(const LFunc *f, const char *path, kiln_error *e);
/* Writes the C header for program p's function (prototype, shapes, dtypes). */
int cg_emit_header(const Program *p, const char *path, kiln_error *e);
/* Text of the LLVM IR (after optimisation when optimized) or assembly;
 * malloc'd. */
int cg_llvm_text(const LFunc *f, CgMode mode, bool optimized, char **out, kiln_error *e);
int cg_asm_text(const LFunc *f, char **out, kiln_error *e);

/* Host CPU name and features, as LLVM sees them; malloc'd. */
char *cg_host_cpu(void);

/* ---- internal to codegen/ (codegen.c, jit.c, emit.c, rt_ir.c) ----
 * LLVM handles are spelled as their opaque structs so that users of this
 * header need no LLVM headers. */
struct LLVMOpaqueContext;
struct LLVMOpaqueModule;
struct LLVMOpaqueValue;
struct LLVMOpaqueTargetMachine;

/* Initialises LLVM's native target once per process (thread-safe). */
void cg_llvm_init(void);
/* A TargetMachine for the host CPU and features (PIC when pic); NULL on
 * failure with e filled.  Dispose with LLVMDisposeTargetMachine. */
struct LLVMOpaqueTargetMachine *cg_host_tm(bool pic, kiln_error *e);
/* Builds f into a new module in ctx, verified.  sym: the name of the ABI
 * function (f->name when NULL).  CG_JIT also emits `sym__packed`.  On
 * error *out is NULL and e says why. */
int cg_build_module(const LFunc *f, CgMode mode, const char *sym, struct LLVMOpaqueContext *ctx,
                    struct LLVMOpaqueTargetMachine *tm, struct LLVMOpaqueModule **out,
                    kiln_error *e);
/* Runs kiln's pass pipeline (a lean O3-like cleanup, see codegen.c;
 * env KILN_LLVM_PASSES overrides it, e.g. "default<O3>").  LLVM's
 * unroller and vectorizers are always off: kiln does both explicitly. */
int cg_optimize(struct LLVMOpaqueModule *m, struct LLVMOpaqueTargetMachine *tm, kiln_error *e);
/* rt_ir.c: defines (once per module) the internal fork-join parallel-for
 * `void (ptr body, ptr ctx, i64 n)` used by objects, and returns it. */
struct LLVMOpaqueValue *cg_rt_parallel_for_ir(struct LLVMOpaqueModule *m);

#endif
