/* lower/lower.h: Schedule -> LoopIR, as an ordered list of passes.
 *
 * lower_schedule() runs the passes of lower.c in order; each is a function
 * LFunc -> new LFunc that never changes its input.  In debug and test
 * builds (KILN_VERIFY defined, or env KILN_VERIFY=1) the verifier runs
 * after every pass.  Env KILN_PRINT_AFTER=pass prints the IR after it. */
#ifndef KILN_LOWER_H
#define KILN_LOWER_H

#include "ir/ir.h"

/* Pass names in order, NULL-terminated: "build", "inline", "init",
 * "guards", "simplify", "flatten". */
extern const char *const lower_pass_names[];

/* Lowers s into an LFunc allocated in `a`.  stop_after: NULL to run every
 * pass, else the name of the last pass to run (an unknown name is an
 * error listing the valid ones). */
int lower_schedule(const Schedule *s, Arena *a, const char *stop_after, LFunc **out,
                   kiln_error *e);
/* The same, with the verifier on or off regardless of KILN_VERIFY (env
 * KILN_VERIFY=1 still turns it on): for hot paths that lower thousands
 * of candidates and never compile them (the tuner's scoring), where
 * verifying costs a quarter of the lowering time.  The IR is the same. */
int lower_schedule_ex(const Schedule *s, Arena *a, const char *stop_after, bool verify,
                      LFunc **out, kiln_error *e);

/* Structural checks: every var used is bound by an enclosing loop, buffer
 * indices in range, index counts match (1 when flat), vectorized loops
 * hold no loops, types agree.  Internal errors (KILN_ECODEGEN). */
int lower_verify(const LFunc *f, kiln_error *e);

/* ---- internal to lower/: the passes, in lower_pass_names order ----
 * Each reads `in` (never changes it) and returns a new LFunc in cx->a;
 * build ignores `in`.  Errors go to cx->e. */
typedef struct LowerCtx {
    const Schedule *s;
    const Program *p;
    Arena *a;
    kiln_error *e;
} LowerCtx;

int lower_build(const LowerCtx *cx, const LFunc *in, LFunc **out);    /* build.c */
int lower_inline(const LowerCtx *cx, const LFunc *in, LFunc **out);   /* build.c */
int lower_init(const LowerCtx *cx, const LFunc *in, LFunc **out);     /* passes.c */
int lower_guards(const LowerCtx *cx, const LFunc *in, LFunc **out);   /* passes.c */
int lower_simplify(const LowerCtx *cx, const LFunc *in, LFunc **out); /* simplify.c */
int lower_flatten(const LowerCtx *cx, const LFunc *in, LFunc **out);  /* passes.c */

/* A shallow copy of f with a new body (bufs shared: they never change). */
LFunc *lower_copy_func(Arena *a, const LFunc *f, LStmt *body);

#endif
