/* tune/features.h: feature rows of a lowered loop nest, for cost models.
 *
 * tune_features() walks an LFunc once and writes one fixed-length row per
 * LS_STORE (what MetaSchedule calls per-store features), without touching
 * LLVM: a few microseconds per candidate, so the search can score tens of
 * thousands of candidates per second.  The slot layout is public (the
 * KILN_FEAT_* enum of include/kiln/tune.h documents every slot) because
 * user cost models read it.
 *
 * Both flat LFuncs (one index per access, the output of lowering) and
 * multi-dimensional ones (row-major strides from the buffer's dims) are
 * accepted.  Rows are a pure function of the LFunc. */
#ifndef KILN_TUNE_FEATURES_H
#define KILN_TUNE_FEATURES_H

#include <math.h>

#include "ir/ir.h"
#include "kiln/tune.h"

#define TUNE_FEAT_LEN KILN_FEATURE_LEN
/* Loop nests deeper than this are rejected (KILN_EINVAL). */
#define TUNE_FEAT_MAX_DEPTH 64

/* Number of LS_STORE statements in f (the rows tune_features writes). */
int tune_count_stores(const LFunc *f);

/* Writes the rows of f's stores, in program order, into rows[0 ..
 * max_rows*TUNE_FEAT_LEN).  *nrows receives the number of stores, even
 * when that exceeds max_rows: then only the first max_rows rows are
 * written and KILN_EINVAL is returned, so a caller can grow its buffer and
 * retry.  Also KILN_EINVAL for nests deeper than TUNE_FEAT_MAX_DEPTH.
 * Thread-safe; no allocation. */
int tune_features(const LFunc *f, float *rows, int max_rows, int *nrows, kiln_error *e);

/* slog(x) = log2(1 + |x|), the scaling of every count slot, and its
 * inverse for non-negative counts (cost models undo it to add counts). */
static inline float tune_slog(double x)
{
    return (float)log2(1.0 + fabs(x));
}
static inline double tune_unslog(float v)
{
    return v > 0 ? exp2((double)v) - 1.0 : 0.0;
}

/* ---- the affine index analysis, exposed for tests ----
 * Coefficient of each loop variable vars[0..n) in integer expression e
 * (which may hold +, -, *, constants, floor / and %, min, max, select,
 * loads).  Exact for affine expressions.  For floor division by a
 * constant d the coefficient is divided by d and for % it is kept (both
 * marked inexact); a product of two variable terms, or a load inside an
 * index, gives a conservative magnitude and marks the variable
 * non-linear.  Variables not in vars count as constants in their range
 * [0, extent).  Returns false for nests deeper than TUNE_FEAT_MAX_DEPTH. */
typedef struct TuneAffine {
    double coef[TUNE_FEAT_MAX_DEPTH];
    double offset;    /* the value with every variable at 0 (estimate) */
    double lo, hi;    /* a range the value stays in */
    uint64_t inexact; /* bit i: coef[i] is an estimate */
} TuneAffine;
bool tune_affine(const Expr *e, Var *const *vars, int n, TuneAffine *out);

#endif
