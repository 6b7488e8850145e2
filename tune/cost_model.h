/* tune/cost_model.h: internal side of the cost models (public interface:
 * include/kiln/tune.h).
 *
 * cost_simple.c holds the generic kiln_cost_model wrapper (argument
 * checks, error messages), the random and roofline models and the ranking
 * metric; cost_xgb.c the XGBoost model.  Models are plain callback tables
 * over a context, so the search never knows which one it drives. */
#ifndef KILN_TUNE_COST_MODEL_H
#define KILN_TUNE_COST_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln/tune.h"
#include "tune/features.h"

/* The context a model was created with (for tests and the tuner's logs). */
void *tune_cost_model_ctx(const kiln_cost_model *m);
/* Its callbacks (identify a shipped model by its predict function). */
const kiln_cost_model_ops *tune_cost_model_ops(const kiln_cost_model *m);
/* Rows of a candidate batch before candidate c (prefix sum of counts). */
int64_t tune_batch_rows(const int *row_counts, int ncand);

/* ---- roofline (cost_simple.c) ---- */
/* Options with defaults filled in. */
kiln_roofline_options tune_roofline_defaults(const kiln_roofline_options *o);
/* Estimated seconds of one store described by a KILN_FEATURE_LEN row. */
double tune_roofline_row_seconds(const float *row, const kiln_roofline_options *o);

/* ---- XGBoost (cost_xgb.c) ---- */
/* A candidate's rows in one row of tune_xgb_agg_len(row_len) floats: the
 * dominant store's row (most flops, then most bytes of its first buffer),
 * then slog of the element-wise sum of all rows in linear space (total
 * counts; flags become how many stores have them), then slog(nrows).
 * A candidate with no rows gives zeros. */
int tune_xgb_agg_len(int row_len);
void tune_xgb_aggregate(const float *rows, int nrows, int row_len, float *out);

typedef struct TuneXgbStats {
    int samples;     /* measurements held */
    int trained_on;  /* samples at the last training (0: not trained yet) */
    int trainings;   /* trainings so far */
    double train_ms; /* time of the last training */
} TuneXgbStats;
/* Fills st for an XGBoost model; false for any other model. */
bool tune_xgb_stats(const kiln_cost_model *m, TuneXgbStats *st);

#endif
