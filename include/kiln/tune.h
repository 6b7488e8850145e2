/* kiln/tune.h: the tuner's pluggable parts: feature rows and cost models.
 *
 * A cost model ranks candidate schedules before any of them is compiled.
 * Each candidate is described by feature rows: one row of
 * KILN_FEATURE_LEN floats per buffer store of its lowered loop nest (the
 * layout is below and is part of this contract).  A model is a table of
 * callbacks (kiln_cost_model_ops) plus a context pointer; kiln ships three
 * (XGBoost, random, roofline) and users can plug in their own with
 * kiln_cost_model_new() (see examples/custom_cost_model.c).
 *
 * Conventions as in kiln.h: calls return KILN_OK or a KILN_E* code and fill
 * the optional kiln_error; *_free accepts NULL.  A cost model object is not
 * thread-safe: use one from one thread at a time.
 */
#ifndef KILN_KILN_TUNE_H
#define KILN_KILN_TUNE_H

#include <stdio.h>

#include "kiln/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- features
 *
 * One row per store.  Unless marked (flag), a slot holds slog(x) =
 * log2(1 + |x|) of a count, so rows of tiny and huge kernels stay in range.
 * "x trips" means: multiplied by the product of the extents of all loops
 * enclosing the store (how often the store runs).  Slots are zero when
 * they do not apply.  Version changes whenever the layout changes; saved
 * models record it and refuse rows of another version. */
#define KILN_FEATURE_VERSION 2
#define KILN_FEATURE_LEN 190
#define KILN_FEATURE_BUFS 5     /* buffers described per store */
#define KILN_FEATURE_BUF_LEN 19 /* slots per buffer */
#define KILN_FEATURE_AI_POINTS 10
#define KILN_FEATURE_LOOPS 8 /* enclosing loops described one by one (group 7) */

enum {
    /* -- 1. arithmetic of the stored value and its indices, x trips */
    KILN_FEAT_FLOAT_ADD = 0, /* float add/sub not fused with a mul */
    KILN_FEAT_FLOAT_MUL,     /* float mul not fused with an add */
    KILN_FEAT_FLOAT_FMA,     /* float a*b+c pairs (contractible; 2 flops each) */
    KILN_FEAT_FLOAT_DIV,     /* float div/mod */
    KILN_FEAT_FLOAT_MATH,    /* exp log sqrt tanh sigmoid */
    KILN_FEAT_FLOAT_MINMAX,  /* float min max abs neg */
    KILN_FEAT_FLOAT_CMP,     /* float comparisons */
    KILN_FEAT_SELECT,        /* select and bool && || ! */
    KILN_FEAT_INT_ARITH,     /* integer value ops (not index arithmetic) */
    KILN_FEAT_INT_DIVMOD,    /* integer value div/mod */
    KILN_FEAT_IDX_ARITH,     /* + - * min max in load/store indices */
    KILN_FEAT_IDX_DIVMOD,    /* floor div/mod in indices */
    KILN_FEAT_CAST,          /* dtype conversions */
    KILN_FEAT_LOADS,         /* loads */
    KILN_FEAT_FLOPS,         /* add+mul+2*fma+div+math+minmax+cmp */
    KILN_FEAT_STORE_ELEM,    /* slog(bytes per stored element) */
    KILN_FEAT_IS_UPDATE,     /* flag: the value reads the stored element (reduction) */
    KILN_FEAT_INNER_EXTENT,  /* extent of the innermost enclosing loop */

    /* -- 2. loop annotations: three groups of 7 (vectorized, unrolled,
     * parallel loops enclosing the store).  Position flags are multi-hot
     * over those loops: innermost = the store's innermost loop, outer =
     * its outermost, middle = any other.  The reduce flag is set when such
     * a loop's variable does not index the store (a reduction loop). */
    KILN_FEAT_VEC = 18,
    KILN_FEAT_UNROLL = 25,
    KILN_FEAT_PAR = 32,
    KILN_FEAT_ANN_NUM = 0,        /* + offset: how many such loops */
    KILN_FEAT_ANN_PROD = 1,       /* product of their extents */
    KILN_FEAT_ANN_INNER = 2,      /* extent of the innermost one (vector width) */
    KILN_FEAT_ANN_POS_INNER = 3,  /* flag */
    KILN_FEAT_ANN_POS_MIDDLE = 4, /* flag */
    KILN_FEAT_ANN_POS_OUTER = 5,  /* flag */
    KILN_FEAT_ANN_REDUCE = 6,     /* flag */

    /* -- 3. accessed buffers: KILN_FEATURE_BUFS groups of
     * KILN_FEATURE_BUF_LEN, sorted by bytes (descending; ties: distinct
     * bytes descending, then buffer index), zero-padded.
     * Addresses come from an affine analysis of each (flattened) index in
     * the enclosing loop variables; floor div/mod and non-affine terms are
     * estimated conservatively.  "Unique" counts are footprints of the
     * whole nest; lines are 64-byte cache lines. */
    KILN_FEAT_BUF0 = 39,
    KILN_FEAT_B_READ = 0,         /* flag, one-hot with WRITE and RW */
    KILN_FEAT_B_WRITE = 1,        /* flag */
    KILN_FEAT_B_RW = 2,           /* flag */
    KILN_FEAT_B_BYTES = 3,        /* bytes accessed, x trips */
    KILN_FEAT_B_UNIQUE_BYTES = 4, /* distinct bytes touched */
    KILN_FEAT_B_LINES = 5,        /* cache-line transfers (loops inside the innermost
                                     loop that moves the address are assumed to hit) */
    KILN_FEAT_B_UNIQUE_LINES = 6, /* distinct cache lines touched */
    KILN_FEAT_B_STRIDE = 7,       /* |stride| in elements w.r.t. the innermost loop that
                                     moves the address */
    KILN_FEAT_B_REUSE_LOOP = 8,   /* flag, one-hot with the next two: some loop leaves the
                                     address unchanged (the innermost such is the reuse loop) */
    KILN_FEAT_B_REUSE_RW = 9,     /* flag: no such loop, but read and written by this store */
    KILN_FEAT_B_REUSE_NONE = 10,  /* flag */
    KILN_FEAT_B_REUSE_ITERS = 11, /* iterations between reuses (trips inside the reuse loop) */
    KILN_FEAT_B_REUSE_BYTES = 12, /* distinct bytes the store touches inside the reuse loop */
    KILN_FEAT_B_REUSE_COUNT = 13, /* extent of the reuse loop */
    KILN_FEAT_B_ACCESSES = 14,    /* loads/stores of this buffer in the statement */
    /* how the innermost vectorized loop moves the address (one-hot; all
     * zero when no vectorized loop encloses the store) */
    KILN_FEAT_B_VEC_CONTIG = 15, /* flag: unit stride (contiguous vector access) */
    KILN_FEAT_B_VEC_BCAST = 16,  /* flag: invariant (broadcast) */
    KILN_FEAT_B_VEC_GATHER = 17, /* flag: anything else (gather/scatter) */
    KILN_FEAT_B_LOCAL = 18,      /* flag: a local buffer allocated by the kernel */

    /* -- 4. arithmetic intensity: flops / distinct bytes of the nest made of
     * the innermost loops, as the nest grows to all loops; sampled at 10
     * evenly spaced depths (linear interpolation between loop levels). */
    KILN_FEAT_AI = 134,

    /* -- 5. allocation */
    KILN_FEAT_ALLOC_BYTES = 144,      /* bytes of the stored buffer if the kernel allocates it */
    KILN_FEAT_ALLOC_OUTER_PROD = 145, /* trips of the loops around that allocation */
    KILN_FEAT_ALLOC_LIVE_BYTES = 146, /* bytes of all allocations enclosing the store */
    KILN_FEAT_ALLOC_NUM = 147,        /* number of allocations enclosing the store */

    /* -- 6. outer scope */
    KILN_FEAT_OUTER_PROD = 148, /* trips (product of enclosing loop extents) */
    KILN_FEAT_NUM_LOOPS = 149,  /* enclosing loops */
    KILN_FEAT_NUM_GUARDS = 150, /* enclosing ifs */
    KILN_FEAT_NUM_STORES = 151, /* stores in the whole function */

    /* -- 7. (version 2) the loop nest one loop at a time, and a register
     * and cache model of the store.  KILN_FEATURE_LOOPS groups of 3, the
     * store's innermost loop first, zero-padded: */
    KILN_FEAT_LOOP0 = 152,
    KILN_FEAT_L_EXTENT = 0, /* + offset: the loop's extent */
    KILN_FEAT_L_KIND = 1,   /* a code, not a count: 0 serial, 1 vectorized, 2 unrolled,
                               3 parallel */
    KILN_FEAT_L_REDUCE = 2, /* flag: the loop does not move the store's address */
    /* The innermost chain of unrolled or vectorized loops is straight-line
     * code: */
    KILN_FEAT_REG_TILE = 176, /* stored elements it keeps live: product of the extents of
                                 its loops that move the store's address */
    KILN_FEAT_REG_VECS,       /* that tile in 64-byte vector registers */
    KILN_FEAT_UNROLL_BODY,    /* iterations it spells out (product of its extents) */
    /* A cache of C bytes: the largest innermost nest whose distinct bytes
     * (all buffers of the store) fit, and the bytes the store moves into
     * the cache over the run: trips outside that nest x its distinct lines
     * x 64.  L1 = 48 KiB, L2 = 2 MiB. */
    KILN_FEAT_L1_TRIPS, /* trips of that nest */
    KILN_FEAT_L1_BYTES,
    KILN_FEAT_L1_AI, /* flops / L1 bytes */
    KILN_FEAT_L2_TRIPS,
    KILN_FEAT_L2_BYTES,
    KILN_FEAT_L2_AI,
    /* |address step| in elements along the store's innermost loop, one per
     * buffer in the order of group 3 (0: invariant there) */
    KILN_FEAT_INNER_STRIDE = 185
};

/* A short name for a slot ("float_fma", "vec.inner", "buf2.stride",
 * "ai.3", ...), or NULL when slot is out of range.  Static storage. */
const char *kiln_feature_name(int slot);

/* ------------------------------------------------------------ cost models
 *
 * Batches: `rows` holds the rows of ncand candidates back to back:
 * candidate c owns row_counts[c] rows of row_len floats (0 rows is
 * allowed).  Scores: higher means faster; their scale is the model's own
 * (only the order matters to the search, which should not assume scores
 * are positive).  Measurements: throughput of each candidate, in any unit
 * proportional to 1/time that is the same for all candidates of one
 * workload (GFLOP/s or 1/seconds); 0 marks a candidate that failed to
 * compile or run.  `workload` identifies the compute definition the
 * candidates implement (kiln passes a hash of its canonical program and
 * target), so a model can normalise throughput per workload.
 * Callbacks return KILN_OK or a KILN_E* code; they may describe a failure
 * in e (which may be NULL) and are only called with checked arguments. */
typedef struct kiln_cost_model_ops {
    /* Required.  Writes ncand scores. */
    int (*predict)(void *ctx, const float *rows, const int *row_counts, int ncand, int row_len,
                   double *scores);
    /* Optional (NULL: the model does not learn).  rows/row_counts as in
     * predict; throughput[c] for candidate c. */
    int (*update)(void *ctx, unsigned long long workload, const float *rows, const int *row_counts,
                  int ncand, int row_len, const double *throughput, kiln_error *e);
    /* Optional (NULL: KILN_EINVAL "cannot save/load").  A model saved to a
     * path and loaded into a fresh model of the same kind predicts the same
     * scores and keeps learning from where it stopped. */
    int (*save)(void *ctx, const char *path, kiln_error *e);
    int (*load)(void *ctx, const char *path, kiln_error *e);
    /* Optional: releases ctx when the model is freed. */
    void (*free)(void *ctx);
} kiln_cost_model_ops;

typedef struct kiln_cost_model kiln_cost_model;

/* Wraps user callbacks.  ops is copied; name is copied (NULL: "custom").
 * The model owns ctx from now on: ops->free(ctx) runs in
 * kiln_cost_model_free, and also here if this call fails. */
kiln_cost_model *kiln_cost_model_new(const char *name, const kiln_cost_model_ops *ops, void *ctx,
                                     kiln_error *e);
void kiln_cost_model_free(kiln_cost_model *m);
const char *kiln_cost_model_name(const kiln_cost_model *m); /* valid while m lives */

/* Validate arguments (KILN_EINVAL), then call the model's callbacks.  A
 * callback's non-zero status is returned as is, with a generic message
 * when the callback left e untouched. */
int kiln_cost_model_predict(kiln_cost_model *m, const float *rows, const int *row_counts, int ncand,
                            int row_len, double *scores, kiln_error *e);
int kiln_cost_model_update(kiln_cost_model *m, unsigned long long workload, const float *rows,
                           const int *row_counts, int ncand, int row_len, const double *throughput,
                           kiln_error *e);
int kiln_cost_model_save(kiln_cost_model *m, const char *path, kiln_error *e);
int kiln_cost_model_load(kiln_cost_model *m, const char *path, kiln_error *e);

/* Uniform scores in [0,1) from a seeded generator: the same seed and the
 * same sequence of calls give the same scores.  update is a no-op; save
 * and load keep the generator state. */
kiln_cost_model *kiln_cost_model_random_new(unsigned long long seed, kiln_error *e);

/* Analytical roofline: per store, time = max(flops / compute peak, memory
 * bytes / bandwidth), summed over a candidate's stores; score = 1/time
 * (in 1/seconds).  The compute peak scales with the vector width (up to
 * max_lanes) and the parallel extent (up to cores); memory bytes are cache
 * lines moved, taking a buffer's distinct lines when its reuse distance
 * fits in cache_bytes.  Zero fields take the defaults in brackets. */
typedef struct kiln_roofline_options {
    double scalar_gflops; /* one core, scalar code [4] */
    int max_lanes;        /* f32 lanes of a vector [16]; f64 gets half */
    int cores;            /* [1] */
    double bandwidth_gbs; /* memory bandwidth [20] */
    double cache_bytes;   /* reuse that fits is served from cache [1 MiB] */
    double cache_gbs;     /* bandwidth of that cache [200] */
} kiln_roofline_options;
kiln_cost_model *kiln_cost_model_roofline_new(const kiln_roofline_options *opts, kiln_error *e);

/* Gradient-boosted trees (XGBoost) trained on measured candidates.
 * Target: log-scaled throughput normalised by the best of its workload, in [0,1].
 * A candidate's rows are aggregated into one row (its dominant store,
 * the one with the most flops, then bytes, next to the element-wise
 * sum of all its rows in linear space; see tune/cost_xgb.c).  Each
 * boosting round grows 4 trees on random 60 % subsets of the samples and
 * averages them (bagging: steadier on a few hundred noisy samples).  Until
 * warmup_samples measurements have arrived, predict gives seeded random
 * scores.  It retrains from scratch on all data whenever the data has
 * grown by 20 % since the last training; that training runs inside
 * kiln_cost_model_update (measured: 0.1-1.5 s per thousand samples with
 * one thread).  Zero fields take the defaults in brackets.  XGBoost runs
 * single-threaded unless nthread says otherwise: with more threads a
 * later fork() (measurement workers) may deadlock in the child.  Saved
 * files hold the measurements too, so a loaded model keeps learning. */
typedef enum {
    KILN_XGB_REG = 0, /* reg:squarederror on the normalised throughput [default] */
    KILN_XGB_RANK = 1 /* rank:pairwise within each workload (measured: ranks a little
                         worse and trains ~3x slower; see tests/test_tune_cost.c) */
} kiln_xgb_objective;
typedef struct kiln_xgb_options {
    kiln_xgb_objective objective;
    int max_depth;           /* [5] */
    double eta;              /* [0.25] */
    int rounds;              /* boosting rounds per training, each of 4 bagged trees [25] */
    int warmup_samples;      /* [64] */
    int nthread;             /* [1] */
    unsigned long long seed; /* [43] */
} kiln_xgb_options;
/* opts may be NULL.  Fails with KILN_EINVAL on out-of-range options. */
kiln_cost_model *kiln_cost_model_xgb_new(const kiln_xgb_options *opts, kiln_error *e);

/* Pairwise ranking accuracy: among pairs (i, j) with measured[i] !=
 * measured[j], the fraction whose scores are ordered the same way (a tie
 * in scores counts half).  1 when there is no such pair. */
double kiln_pairwise_accuracy(const double *scores, const double *measured, int n);

/* ------------------------------------------------------------- the tuner
 *
 * kiln_tune searches the schedules of a program (docs/tuning.md): design
 * spaces are traces with sampling instructions (kiln's rules, or the
 * user's own), an evolutionary search guided by the cost model proposes
 * candidates, a worker process compiles, verifies and times them, and
 * every measurement is committed to the database at once.  A call that
 * finds records of the same workload (program + CPU) in the database
 * resumes: they count towards `trials`, retrain the cost model and seed
 * the population. */
/* (kiln.h includes this header; C11 allows the typedefs twice) */
typedef struct kiln_program kiln_program;
typedef struct kiln_schedule kiln_schedule;

typedef enum {
    KILN_STRATEGY_EVOLUTIONARY = 0, /* cost-model guided [default] */
    KILN_STRATEGY_RANDOM = 1        /* fresh random points of the space: the baseline */
} kiln_tune_strategy;

typedef struct kiln_tune_progress {
    int trials;          /* records of the workload, resumed ones included */
    int target;          /* the trial budget */
    int failures;        /* failed records among them */
    int new_trials;      /* measured by this call */
    double best_ms;      /* fastest verified record (0: none yet) */
    double best_gflops;
    double last_gflops;  /* of the trial just measured (0: it failed) */
    const char *last_status; /* "ok", "crash", "timeout", "compile_error", ... */
    double seconds;      /* since the call started */
    double trials_per_s; /* of this call */
    double eta_s;        /* estimated seconds left */
} kiln_tune_progress;
typedef void (*kiln_tune_progress_fn)(const kiln_tune_progress *p, void *ctx);

typedef struct kiln_tune_options {
    int trials;                   /* total records wanted for the workload [64] */
    unsigned long long seed;      /* search randomness [1] */
    int threads;                  /* kernel threads when measuring (0: all cores) */
    const char *db_path;          /* NULL: "kiln.db" */
    kiln_cost_model *cost_model;  /* NULL: XGBoost with a warm-up of 16; not owned */
    kiln_tune_strategy strategy;
    const char *space_path;       /* a design-space trace file (NULL: kiln's rules) */
    const char *space_text;       /* or the trace itself (space_path wins) */
    kiln_tune_progress_fn progress; /* called after every measurement (may be NULL) */
    void *progress_ctx;
    const char *curve_path;       /* CSV: trial,seconds,gflops,best_gflops,status */
    int batch;                    /* candidates measured per round [16] */
    int population;               /* [256] */
    int search_threads;           /* threads scoring candidates (0: cores, at most 4) */
    double min_time_ms;           /* per timed repeat [10] */
    int repeats;                  /* timed repeats, median kept [3] */
    double timeout_ms;            /* per candidate [20000] */
} kiln_tune_options;
/* Fills o with the defaults above (all zero/NULL fields mean "default"). */
void kiln_tune_options_init(kiln_tune_options *o);

typedef struct kiln_tune_result {
    char *best_trace;    /* the best record's trace, with decisions (kiln_free; NULL: none) */
    char *best_schedule; /* the same as a plain schedule (kiln_free) */
    double best_ms, best_gflops;
    int trials;          /* records of the workload at the end */
    int failures;        /* failed among them */
    int new_trials;      /* measured by this call */
    double seconds;
    long long scored;    /* candidates scored by the cost model */
    double score_rate;   /* of those, per second of scoring */
    /* where the seconds went: proposing candidates (sampling, lowering,
     * features, prediction, evolution), the worker (compile, check
     * against the interpreter, time), cost-model updates; the rest is
     * set-up (the reference output) and the database */
    double search_seconds, measure_seconds, model_seconds;
} kiln_tune_result;

int kiln_tune(const kiln_program *p, const kiln_tune_options *o, kiln_tune_result *res,
              kiln_error *e);
void kiln_tune_result_fini(kiln_tune_result *r); /* frees the strings, zeroes r */

/* kiln's design space for p as trace text (malloc'd; NULL: out of memory). */
char *kiln_design_space(const kiln_program *p);
/* Applies a trace (plain schedule lines and sampling instructions) to s:
 * recorded decisions are replayed, missing ones sampled from `seed`.
 * Plain schedule text is a trace without sampling, so this accepts both. */
int kiln_schedule_apply_trace(kiln_schedule *s, const char *text, const char *filename,
                              unsigned long long seed, kiln_error *e);

/* ------------------------------------------------------------ database
 * (docs/database.md).  NULL db_path: "kiln.db".  These never create a
 * file: a missing database is KILN_EIO "no database at ...". */
/* The best verified record of p on this CPU as a schedule (*out NULL and
 * KILN_OK when there is none); *gflops (may be NULL) its speed.  Records
 * are kept per thread count: those tuned for kiln_get_num_threads()
 * threads, else the nearest other count's. */
int kiln_db_best_schedule(const char *db_path, const kiln_program *p, kiln_schedule **out,
                          double *gflops, kiln_error *e);
/* One line per workload: name, records, failures, best ms and GFLOP/s. */
int kiln_db_list(const char *db_path, FILE *out, kiln_error *e);
/* The best record of each workload (p NULL) or of p, as a commented trace. */
int kiln_db_print_best(const char *db_path, const kiln_program *p, FILE *out, kiln_error *e);
/* Every record as JSON lines (docs/database.md). */
int kiln_db_export(const char *db_path, FILE *out, kiln_error *e);

#ifdef __cplusplus
}
#endif
#endif
