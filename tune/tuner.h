/* tune/tuner.h: internal header of the tuner proper — traces with sampling
 * instructions (trace.c), design-space rules (space.c), mutators and the
 * evolutionary / random search (search.c); the public face is kiln_tune()
 * in include/kiln/tune.h (tuner.c).
 *
 * A trace program (TraceProg) is the instruction list of a design space,
 * parsed from the text form of docs/tuning.md; a point of the space is the
 * program plus one decision (TDec) per sampling instruction.  Keeping the
 * two apart makes a mutation a change of a few integers, and a candidate
 * cheap to copy.  Invariant: applying a program with the same decisions to
 * a fresh schedule of the same Program gives the same schedule. */
#ifndef KILN_TUNE_TUNER_H
#define KILN_TUNE_TUNER_H

#include <stdbool.h>
#include <stdint.h>

#include "ir/ir.h"
#include "kiln/tune.h"

#define TRACE_MAX_TILE 8     /* factors of one sample_perfect_tile */
#define TRACE_MAX_CHOICES 16 /* candidates of one sample_categorical */

typedef enum {
    TI_PRIM,         /* a line of the plain schedule text (variables substituted) */
    TI_TILE,         /* v = sample_perfect_tile(T.l, n, max_innermost) */
    TI_CAT,          /* v = sample_categorical([c...], [p...]) */
    TI_AUTO_UNROLL,  /* auto_unroll(T, max_step) */
    TI_AUTO_PARALLEL /* auto_parallel(T, nloops) */
} TInstKind;

/* Guards: `if V` (value not 0), `if not V`, `if V == c`, `if V != c`. */
enum { TG_NONZERO = 0, TG_ZERO, TG_EQ, TG_NE, TG_LT, TG_LE, TG_GT, TG_GE };

/* What a categorical decides, for the mutators (found from its uses). */
typedef enum { ROLE_OTHER, ROLE_UNROLL, ROLE_PARALLEL, ROLE_INLINE } TRole;

/* A piece of a TI_PRIM line: literal text, then (samp >= 0) the value of
 * a sampled variable: elem >= 0 one factor of a tile, -1 a categorical's
 * value or a tile's inner factors ("f1, f2, ..."). */
typedef struct TSeg {
    char *lit;
    int samp, elem;
} TSeg;

struct TCall; /* trace.c: a TI_PRIM line tokenised once */

typedef struct TInst {
    TInstKind kind;
    int line;   /* in the source text (1-based) */
    char *var;  /* sampling: the variable it binds */
    int samp;   /* sampling: index of its decision */
    TSeg *segs; /* TI_PRIM */
    int nsegs;
    struct TCall *call;   /* TI_PRIM: applied without re-parsing; NULL: as text */
    int stmts[4], nstmts; /* TI_PRIM / TI_TILE / TI_AUTO_*: tensors whose statements
                           * it touches (skipped when one of them is inlined) */
    int guard;            /* samp of an `if VAR` guard, -1 none */
    int guard_op;         /* TG_*: how the guard's value is tested */
    int64_t guard_val;    /* TG_EQ .. TG_GE: the value compared with */
    int inline_tensor;    /* TI_PRIM `inline(T)`: T's index, else -1 */
    char *target;         /* TI_TILE: the loop "T.l"; TI_AUTO_*: the tensor "T" */
    int arg_samp;         /* TI_AUTO_*: the amount's variable, or -1 for arg_val */
    int64_t arg_val;
    int n;             /* TI_TILE: factors */
    int64_t max_inner; /* TI_TILE: largest innermost factor (0: any) */
    int nchoices;      /* TI_CAT */
    int64_t choices[TRACE_MAX_CHOICES];
    double probs[TRACE_MAX_CHOICES];
    TRole role; /* TI_CAT */
} TInst;

typedef struct TraceProg {
    const Program *prog;
    char *file; /* for errors of trace_apply */
    TInst *v;
    int n, cap;
    int nsamp;      /* sampling instructions */
    int *samp_inst; /* instruction index of decision k */
} TraceProg;

/* One decision: n = 0 undecided (sampled on apply); a tile's n factors
 * (outer to inner); a categorical's chosen index in v[0] (n = 1). */
typedef struct TDec {
    int n;
    int64_t v[TRACE_MAX_TILE];
} TDec;

/* ---- trace.c ---- */
/* Parses the trace text (plain schedule lines, sampling lines with
 * optional `# decision:` comments, auto_unroll/auto_parallel, `if VAR`
 * guards).  *dec gets one decision per sampling instruction (n = 0 where
 * the text records none); free with free().  Errors: file:line:col. */
int trace_parse(const char *text, const char *file, const Program *p, TraceProg **out, TDec **dec,
                kiln_error *e);
void trace_prog_free(TraceProg *t); /* NULL ok */
/* Applies t to s (normally fresh from sched_new).  Decisions present and
 * valid are replayed; missing or no longer valid ones (an extent changed
 * after a mutation) are sampled from *rng and written back into dec.
 * active (may be NULL; t->nsamp entries) tells which sampling
 * instructions took part (those of inlined statements do not). */
int trace_apply(const TraceProg *t, Schedule *s, TDec *dec, bool *active, uint64_t *rng,
                kiln_error *e);
/* The trace as text with its decisions (malloc'd): parses back to the
 * same program and decisions. */
char *trace_to_text(const TraceProg *t, const TDec *dec);
/* Sampling primitives (exposed for tests and mutators). */
bool trace_sample_tile(int64_t extent, int n, int64_t max_inner, uint64_t *rng, int64_t *out);
int trace_sample_cat(const double *probs, int n, uint64_t *rng);
/* Uniform double in [0, 1). */
double trace_rand01(uint64_t *rng);

/* ---- space.c ---- */
/* The CPU design space of p as trace text (malloc'd; NULL: out of
 * memory): per statement multi-level tiling (SSRSRS), a sampled vector
 * width for the innermost spatial loop, sampled parallel and unroll
 * extents, and a sampled inline of each elementwise temp. */
char *space_generate(const Program *p);

/* ---- search.c ---- */
/* Mutates one decision of dec (a point of t) in place; probabilities as
 * MetaSchedule (tile 0.90, compute location/inline 0.05, unroll 0.03,
 * parallel 0.02).  active from the last apply.  False when nothing could
 * be mutated. */
bool search_mutate(const TraceProg *t, TDec *dec, const bool *active, uint64_t *rng);

#endif
