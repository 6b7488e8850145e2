/* kiln/kiln.h: the public C API of kiln, a schedule compiler for tensor
 * kernels.  This header is the contract; tools/kiln uses nothing else.
 *
 * Conventions (SQLite/Lua style):
 *  - Fallible calls return 0 (KILN_OK) or a KILN_E* code and fill the
 *    optional caller-owned kiln_error (NULL allowed).  No call exits or
 *    aborts on user input.
 *  - Objects are opaque; *_free accepts NULL.  Strings returned as `char *`
 *    are malloc'd: release them with kiln_free().
 *  - A kiln_program must outlive the schedules made from it; a kernel does
 *    not depend on its schedule or program after compilation.
 *  - Thread safety: distinct objects may be used from distinct threads;
 *    compilation is internally serialised.
 */
#ifndef KILN_KILN_H
#define KILN_KILN_H

#include <stddef.h>

#include "kiln/error.h"
#include "kiln/tune.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_program kiln_program;
typedef struct kiln_schedule kiln_schedule;
typedef struct kiln_kernel kiln_kernel;

typedef enum { KILN_F32 = 0, KILN_F64 = 1, KILN_I32 = 2, KILN_I64 = 3 } kiln_dtype;
typedef enum { KILN_INPUT = 0, KILN_OUTPUT = 1, KILN_TEMP = 2 } kiln_tensor_kind;

#define KILN_MAX_DIMS 8

void kiln_free(void *p);

/* ------------------------------------------------------------ programs */

/* Parses a YAML compute definition (syntax: docs/yaml.md).  Errors carry
 * file:line:col. */
int kiln_program_parse_file(const char *path, kiln_program **out, kiln_error *e);
/* Same from memory; filename is used in error messages (NULL: "<string>"). */
int kiln_program_parse_string(const char *yaml, const char *filename, kiln_program **out,
                              kiln_error *e);

/* As kiln_program_parse_file, with params overridden: names[i] takes
 * values[i] in place of the file's value; naming a param the file does not
 * declare is an error. */
int kiln_program_parse_file_params(const char *path, int nparams, const char *const *names,
                                   const long long *values, kiln_program **out, kiln_error *e);

/* Building a program without a file, in the YAML's order: params, tensors,
 * statements, then kiln_program_finish().  Dims are integers or param
 * names as strings ("1024", "M").  Statements use the YAML's statement
 * syntax; ranges give extents of reduction variables that only appear in
 * compound indices. */
kiln_program *kiln_program_new(const char *name, kiln_error *e);
int kiln_program_add_param(kiln_program *p, const char *name, long long value, kiln_error *e);
int kiln_program_add_tensor(kiln_program *p, kiln_tensor_kind kind, const char *name,
                            kiln_dtype dtype, int ndim, const char *const *dims, kiln_error *e);
int kiln_program_add_stmt(kiln_program *p, const char *stmt, int nranges,
                          const char *const *range_names, const long long *range_extents,
                          kiln_error *e);
int kiln_program_finish(kiln_program *p, kiln_error *e);
void kiln_program_free(kiln_program *p);

typedef struct kiln_tensor_info {
    const char *name;   /* valid while the program lives */
    kiln_dtype dtype;
    kiln_tensor_kind kind;
    int ndim;
    long long dims[KILN_MAX_DIMS];
    long long numel;    /* product of dims (1 for scalars) */
} kiln_tensor_info;

const char *kiln_program_name(const kiln_program *p);
/* Function arguments: inputs then outputs, in declaration order. */
int kiln_program_num_args(const kiln_program *p);
int kiln_program_arg(const kiln_program *p, int i, kiln_tensor_info *out);
/* Floating-point (or integer) operations per call; a multiply-add counts 2. */
double kiln_program_flops(const kiln_program *p);
/* Reference interpreter: args[i] points at argument i's dense row-major
 * data.  Slow and simple: the oracle for every kernel. */
int kiln_program_interpret(const kiln_program *p, void *const *args, kiln_error *e);

/* ----------------------------------------------------------- schedules */

/* Loops are named "T.v": T the tensor a statement writes, v a variable of
 * that statement or a name given to a split/fuse result. */
kiln_schedule *kiln_schedule_new(const kiln_program *p);     /* natural loop order */
kiln_schedule *kiln_schedule_default(const kiln_program *p); /* kiln's default */
kiln_schedule *kiln_schedule_clone(const kiln_schedule *s);
void kiln_schedule_free(kiln_schedule *s);

/* Applies schedule text (one primitive per line, docs/schedules.md) to s.
 * filename names the text in errors (NULL: "<schedule>").  On error s is
 * left as it was after the last good line. */
int kiln_schedule_apply(kiln_schedule *s, const char *text, const char *filename, kiln_error *e);
int kiln_schedule_apply_file(kiln_schedule *s, const char *path, kiln_error *e);
/* The schedule as text that kiln_schedule_apply replays exactly. */
char *kiln_schedule_to_string(const kiln_schedule *s);

/* split: n inner factors give n+1 loops named names[0..n] (outer first);
 * the outermost extent is ceil(extent / product).  Non-dividing factors
 * are handled with guards. */
int kiln_schedule_split(kiln_schedule *s, const char *loop, int nfactors,
                        const long long *factors, const char *const *names, kiln_error *e);
/* fuse: adjacent loops, outer to inner, into one named `name`. */
int kiln_schedule_fuse(kiln_schedule *s, int nloops, const char *const *loops, const char *name,
                       kiln_error *e);
/* reorder: the given loops of one statement take the positions they hold
 * now, in the given order. */
int kiln_schedule_reorder(kiln_schedule *s, int nloops, const char *const *loops, kiln_error *e);
int kiln_schedule_parallel(kiln_schedule *s, const char *loop, kiln_error *e);
int kiln_schedule_vectorize(kiln_schedule *s, const char *loop, kiln_error *e);
int kiln_schedule_unroll(kiln_schedule *s, const char *loop, kiln_error *e);
/* inline: the statement writing `tensor` (a temp, elementwise) is
 * computed inside its consumers. */
int kiln_schedule_inline(kiln_schedule *s, const char *tensor, kiln_error *e);

/* Memory-hierarchy primitives (docs/schedules.md, "Memory hierarchy").
 * Each is the C form of one schedule text line and fails with
 * KILN_ESCHEDULE (schedule unchanged) on misuse.  Tensor names may be
 * those the schedule created (cache_write/cache_read/rfactor results).
 *
 * compute_at: the temp `tensor` is computed inside loop `loop` (e.g.
 * "C.jo") of its only consumer, for the region one iteration reads (bound
 * inference), into a buffer of that region's size (stack when small,
 * else heap; per thread inside parallel loops). */
int kiln_schedule_compute_at(kiln_schedule *s, const char *tensor, const char *loop,
                             kiln_error *e);
/* cache_write: `tensor`'s statement (not yet scheduled) computes into a
 * new temp `name` (NULL: "<tensor>_local") and `tensor` becomes its copy;
 * compute_at the new temp into the copy's (or an inlined copy's consumer's)
 * tile loop to accumulate a tile locally and write it back once. */
int kiln_schedule_cache_write(kiln_schedule *s, const char *tensor, const char *name,
                              kiln_error *e);
/* cache_read: consumer (a computed tensor) reads a new temp `name` (NULL:
 * "<tensor>_<consumer>") that copies `tensor`; layout: NULL, or
 * tensor's ndim entries, layout[k] = which dimension of `tensor` is the
 * copy's k-th (a permutation). */
int kiln_schedule_cache_read(kiln_schedule *s, const char *tensor, const char *consumer,
                             const char *name, const int *layout, kiln_error *e);
/* rfactor: the reduction loop `loop` (an original one, e.g. "s.k", of a
 * not yet scheduled statement) is split by `factor`; new temp `name` (NULL:
 * "<tensor>_rf") holds partial results over the outer part, a spatial
 * loop that can run in parallel. */
int kiln_schedule_rfactor(kiln_schedule *s, const char *loop, long long factor, const char *name,
                          kiln_error *e);

/* ------------------------------------------------------------- kernels */

/* JIT-compiles s for the host CPU. */
int kiln_kernel_compile(const kiln_schedule *s, kiln_kernel **out, kiln_error *e);
/* Calls the kernel: args as for kiln_program_interpret.  Returns the
 * kernel's status (0, or 1 when a temporary could not be allocated). */
int kiln_kernel_call(const kiln_kernel *k, void *const *args);
/* The compiled function itself, with the ABI of docs/abi.md: cast it to
 * int (*)(const float *, ..., float *).  Valid until kiln_kernel_free. */
void *kiln_kernel_function(const kiln_kernel *k);
/* Wall-clock time the compilation took, and the compiling thread's CPU
 * time (the cost itself, unaffected by other processes on the machine). */
double kiln_kernel_compile_ms(const kiln_kernel *k);
double kiln_kernel_compile_cpu_ms(const kiln_kernel *k);
void kiln_kernel_free(kiln_kernel *k);

/* Writes an object file (PIC, for the host CPU) and, if header_path is
 * not NULL, a C header.  The object needs only -lm -lpthread. */
int kiln_emit_object(const kiln_schedule *s, const char *obj_path, const char *header_path,
                     kiln_error *e);

/* Text views: what = "schedule", "llvm", "llvm-opt", "asm", or a lowering
 * pass name ("build", ..., "flatten") for the LoopIR after that pass. */
int kiln_show(const kiln_schedule *s, const char *what, char **out, kiln_error *e);
/* Lowering pass names in order, NULL-terminated. */
const char *const *kiln_pass_names(void);

/* Threads for parallel loops in JIT kernels (0 = all cores). */
void kiln_set_num_threads(int n);
int kiln_get_num_threads(void);

/* ------------------------------------------------------ run and verify */

typedef struct kiln_run_options {
    double min_time_ms; /* time each repeat at least this long (default 100) */
    int repeats;        /* timed repeats; the median is kept (default 5) */
    unsigned seed;      /* for the random inputs (default 1) */
    int skip_verify;    /* nonzero: do not compare against the interpreter */
} kiln_run_options;

typedef struct kiln_run_result {
    int verified;       /* 1: matched the interpreter within tolerance */
    double max_abs_err; /* largest |kernel - interpreter| over all outputs */
    double max_rel_err;
    double compile_ms;
    double compile_cpu_ms;
    double median_ms;   /* per call */
    double gflops;      /* flops / median time */
    int threads;
} kiln_run_result;

/* Compiles s, runs it on random inputs, compares every output with the
 * interpreter, times it.  Returns KILN_EVERIFY (with a message naming the
 * first mismatch) when results disagree; res is filled either way.
 * opts may be NULL for defaults. */
int kiln_run(const kiln_schedule *s, const kiln_run_options *opts, kiln_run_result *res,
             kiln_error *e);

#ifdef __cplusplus
}
#endif
#endif
