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

#endif
