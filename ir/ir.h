/* ir/ir.h: kiln's internal IR — programs, expressions, schedules, LoopIR.
 *
 * One header for the ir/ module, split into sections (chibicc style):
 *   arena     bump allocator; everything of one compilation lives in one
 *   errors    first-error-wins reporting into kiln_error
 *   types     dtypes, tensors, variables
 *   Expr      expression trees, shared by Program and LoopIR
 *   Program   parsed compute definition (what to compute)
 *   Schedule  split/fuse/reorder/annotations per statement (how)
 *   LoopIR    loop nests produced by lower/, consumed by codegen/
 *
 * Invariants: IR nodes are immutable once built (passes build new nodes);
 * every node lives in an Arena and is freed with it; nothing here includes
 * an LLVM or XGBoost header. */
#ifndef KILN_IR_H
#define KILN_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/error.h"

/* ---- internal assertions (broken invariants, never user input) ---- */
void ir_internal_error(const char *file, int line, const char *cond);
#define IR_ASSERT(c) ((c) ? (void)0 : ir_internal_error(__FILE__, __LINE__, #c))

/* ================================================================ arena */
typedef struct Arena Arena;
Arena *arena_new(void);
void arena_free(Arena *a);                   /* NULL ok */
void *arena_alloc(Arena *a, size_t n);       /* zeroed, 16-aligned; NULL only when out of memory */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t arena_bytes(const Arena *a);          /* total bytes reserved */

/* Growable pointer array in an arena (old storage is simply abandoned). */
typedef struct {
    void **v;
    int n, cap;
} PtrVec;
void ptrvec_push(Arena *a, PtrVec *pv, void *p);

/* =============================================================== errors */
typedef struct {
    int line, col; /* 1-based; 0 = unknown */
} Loc;

/* Records an error (first one wins). file may be NULL. Returns `code`. */
int ir_error(kiln_error *e, int code, const char *file, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ================================================================ types */
typedef enum { DT_F32, DT_F64, DT_I32, DT_I64, DT_BOOL } DType;
const char *dtype_name(DType t);    /* "f32" ... "bool" */
int dtype_size(DType t);            /* bytes; bool counts 1 */
bool dtype_is_float(DType t);
bool dtype_from_name(const char *s, DType *out);

#define IR_MAX_DIMS 8

typedef enum { T_INPUT, T_OUTPUT, T_TEMP, T_LOCAL } TensorKind;

typedef struct Tensor {
    const char *name;
    DType dt;
    TensorKind kind;
    int ndim;                      /* 0 = scalar */
    int64_t dims[IR_MAX_DIMS];
    Loc loc;                       /* where declared */
    int writer;                    /* index of the writing statement, -1 for inputs */
} Tensor;

int64_t tensor_numel(const Tensor *t);

/* A loop/index variable. Statement variables have extents; LoopIR loop
 * variables too. Identity is by pointer. */
typedef struct Var {
    const char *name;
    int64_t extent;
    bool reduce;   /* a reduction variable of its statement */
    int id;        /* unique within its arena user (for printing/hashing) */
    int owner;     /* LoopIR loop vars: 1 + the buffer written by the statement
                    * whose loop this is (0: unknown); lets passes tell the
                    * loops of nested statements (compute_at) apart */
} Var;

/* ================================================================= Expr */
typedef enum {
    EXPR_INT,    /* i: integer constant (dt i32/i64/bool) */
    EXPR_FLOAT,  /* f: float constant (dt f32/f64) */
    EXPR_VAR,    /* var: index variable (dt i64) */
    EXPR_LOAD,   /* load: tensor/buffer element */
    /* binary (a, b) */
    EXPR_ADD, EXPR_SUB, EXPR_MUL, EXPR_DIV, EXPR_MOD, EXPR_MIN, EXPR_MAX,
    EXPR_LT, EXPR_LE, EXPR_GT, EXPR_GE, EXPR_EQ, EXPR_NE, EXPR_AND, EXPR_OR,
    /* unary (a) */
    EXPR_NOT, EXPR_NEG, EXPR_ABS, EXPR_EXP, EXPR_LOG, EXPR_SQRT, EXPR_TANH, EXPR_SIGMOID,
    EXPR_CAST,   /* a converted to dt */
    EXPR_SELECT  /* a ? b : c, lazy */
} ExprKind;

typedef struct Expr Expr;
struct Expr {
    ExprKind kind;
    DType dt;  /* result type; comparisons/logic give DT_BOOL; vars are DT_I64 */
    Loc loc;   /* source position (0:0 for synthesized nodes) */
    union {
        int64_t i;
        double f;
        Var *var;
        struct {
            int buf;       /* tensor index (Program) or buffer index (LoopIR) */
            int n;         /* number of indices */
            Expr **idx;    /* i64 index expressions */
        } load;
        struct {
            Expr *a, *b, *c;
        } op;
    } u;
};

bool expr_is_binary(ExprKind k);
bool expr_is_unary(ExprKind k);   /* includes EXPR_CAST */
bool expr_is_compare(ExprKind k); /* LT..NE */

/* Constructors (arena allocated, never fail except OOM -> NULL).  They do
 * no type checking: the front end checks types before building. */
Expr *expr_int(Arena *a, DType dt, int64_t v);
Expr *expr_float(Arena *a, DType dt, double v);
Expr *expr_var(Arena *a, Var *v);
Expr *expr_load(Arena *a, DType dt, int buf, int n, Expr **idx);
Expr *expr_bin(Arena *a, ExprKind k, DType dt, Expr *x, Expr *y);
Expr *expr_un(Arena *a, ExprKind k, DType dt, Expr *x);
Expr *expr_select(Arena *a, DType dt, Expr *c, Expr *t, Expr *f);
/* Index arithmetic helpers on i64 with light constant folding. */
Expr *expr_iadd(Arena *a, Expr *x, Expr *y);
Expr *expr_imul(Arena *a, Expr *x, Expr *y);
Expr *expr_idiv(Arena *a, Expr *x, int64_t d);  /* floor division */
Expr *expr_imod(Arena *a, Expr *x, int64_t d);
Expr *expr_iconst(Arena *a, int64_t v);          /* i64 constant */

/* Substitutes variables: every EXPR_VAR whose var is from[i] becomes to[i]
 * (shared, not copied).  Returns e itself when nothing changed. */
Expr *expr_subst(Arena *a, Expr *e, int n, Var *const *from, Expr *const *to);
/* Structural equality (vars by identity). */
bool expr_equal(const Expr *x, const Expr *y);
/* Does e mention var v? */
bool expr_uses_var(const Expr *e, const Var *v);
/* The first load of buffer buf in e (a load before its indices, operands
 * left to right), or NULL. */
const Expr *expr_first_load(const Expr *e, int buf);
/* Does e load from buffer buf (anywhere, indices included)? */
bool expr_reads(const Expr *e, int buf);

/* Printing (for show/debug/golden tests).  buf names are resolved through
 * the callback; pass NULL to print "b<index>". */
typedef const char *(*BufName)(void *ctx, int buf);

/* Growable malloc'd string used by printers. */
typedef struct {
    char *s;
    size_t len, cap;
} StrBuf;
void sb_printf(StrBuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* v in decimal, written at the end of buf (NUL-terminated); returns its start. */
const char *ir_fmt_ll(char buf[24], long long v);
void sb_free(StrBuf *sb);
void expr_to_sb(StrBuf *sb, const Expr *e, BufName bn, void *ctx);

/* ============================================================== Program */
typedef enum { RED_NONE, RED_SUM, RED_PROD, RED_MAX, RED_MIN } RedOp;

typedef struct Stmt {
    int out;          /* index of the written tensor */
    Var **vars;       /* vars[0..nspatial) = left-hand vars in order; then reduction vars */
    int nvars, nspatial;
    RedOp red;
    Expr *rhs;
    Loc loc;          /* of the statement's first character */
    const char *text; /* the statement source text */
} Stmt;

/* The identity of a reduction (0, 1, -inf / type min, +inf / type max) as
 * a constant of dtype dt; NULL for RED_NONE. */
Expr *expr_red_identity(Arena *a, RedOp op, DType dt);

typedef struct Param {
    const char *name;
    int64_t value;
} Param;

typedef struct Program {
    Arena *arena;      /* owns everything below */
    const char *name;  /* C identifier */
    const char *file;  /* for errors; "<string>" when built in memory */
    Tensor *tensors;   /* inputs, then outputs, then temps, in declaration order */
    int ntensors, ninputs, noutputs;
    Stmt *stmts;
    int nstmts;
    Param *params;
    int nparams;
} Program;

/* Front end (ir/parse*.c, ir/check.c). All return KILN_OK or an error code,
 * with e filled as file:line:col. *out is NULL on error. */
int ir_parse_yaml_file(const char *path, Program **out, kiln_error *e);
int ir_parse_yaml_string(const char *text, size_t len, const char *filename, Program **out,
                         kiln_error *e);
/* As ir_parse_yaml_file, with params overridden: names[i] takes values[i]
 * in place of the file's value (a name the file does not declare is an
 * error).  For sizes chosen at run time (`kiln run --param M=64`). */
int ir_parse_yaml_file_params(const char *path, int n, const char *const *names,
                              const int64_t *values, Program **out, kiln_error *e);
void ir_program_free(Program *p); /* NULL ok; frees the arena */

/* Incremental construction (the C API's builder; the YAML loader uses it
 * too).  Names must be C identifiers; dims are ints or param names. */
Program *ir_program_new(const char *name, const char *file);
int ir_program_add_param(Program *p, const char *name, int64_t v, Loc loc, kiln_error *e);
int ir_program_add_tensor(Program *p, TensorKind kind, const char *name, DType dt, int ndim,
                          const char *const *dims, const Loc *dim_locs, Loc loc, kiln_error *e);
/* Parses and checks one statement.  ranges: optional explicit extents for
 * reduction variables (names[i] -> ext[i]).  text_loc is where `text`
 * starts in the file (columns inside the statement are added to it). */
int ir_program_add_stmt(Program *p, const char *text, Loc text_loc, int nranges,
                        const char *const *range_names, const int64_t *range_ext,
                        const Loc *range_locs, kiln_error *e);
/* Whole-program checks after the last statement: every output written,
 * temps written.  Call once. */
int ir_program_finish(Program *p, kiln_error *e);

int ir_find_tensor(const Program *p, const char *name); /* -1 if none */
double ir_program_flops(const Program *p);  /* arithmetic ops per run (FMA = 2) */
char *ir_program_canonical(const Program *p); /* malloc'd canonical text (for hashing) */

/* Reference interpreter: bufs[t] points at tensor t's dense row-major data
 * for every input and output (temps: NULL, allocated inside).  Returns
 * KILN_OK or KILN_ENOMEM. */
int ir_interpret(const Program *p, void *const *bufs, kiln_error *e);

/* Front-end internals shared by ir/program.c, ir/parse_*.c and ir/check.c
 * (also usable by the C API to validate names before building). */
bool ir_is_ident(const char *s); /* [A-Za-z_][A-Za-z0-9_]* */
/* Fails (KILN_ESEMANTIC at loc) unless `name` may name a program, tensor or
 * param: a C identifier that is no C keyword, dtype or kiln function.
 * `what` says what is named ("tensor", "param", "program name"). */
int ir_check_name(const char *what, const char *name, const char *file, Loc loc, kiln_error *e);
/* Parses one statement of p (names resolved, types checked; reduction
 * extents still 0) into *out.  Does not add it to p. */
int ir_parse_stmt(Program *p, const char *text, Loc text_loc, Stmt *out, kiln_error *e);
/* Gives reduction variables their extents (ranges, else inferred from
 * direct indices) and checks every load's bounds by interval analysis. */
int ir_check_stmt(const Program *p, Stmt *s, int nranges, const char *const *range_names,
                  const int64_t *range_ext, const Loc *range_locs, kiln_error *e);

/* ============================================================= Schedule */
typedef enum { LOOP_SERIAL, LOOP_PARALLEL, LOOP_VECTORIZED, LOOP_UNROLLED } LoopKind;

/* One loop variable of a statement's schedule: an original statement var,
 * or one created by split/fuse.  Leaves are the loops that get emitted. */
typedef struct SLoop {
    const char *name;  /* "i", "io", ... unique within the statement */
    int64_t extent;    /* outer parts of non-dividing splits round up */
    bool reduce;       /* derived from reduction vars only */
    bool leaf;         /* still a loop (not split/fused away) */
    LoopKind kind;
    Var *orig;         /* for original vars: the statement Var; else NULL */
} SLoop;

typedef enum { REL_SPLIT, REL_FUSE } RelKind;
typedef struct SRel {
    RelKind kind;
    /* split: parent = in[0], children out[0..nout) outer to inner with
     *   extents; out[i+1..] factors multiply to the inner span.
     * fuse: in[0..nin) outer to inner, out[0] the fused loop. */
    int in[IR_MAX_DIMS], nin;
    int out[IR_MAX_DIMS], nout;
} SRel;

typedef struct StmtSched {
    SLoop *loops;  /* all loops ever created for this statement */
    int nloops, cap;
    int *order;    /* leaf loop ids, outermost first */
    int norder;
    SRel *rels;
    int nrels, relcap;
    bool inlined;  /* computed inside its consumers */
    /* compute_at: computed inside loop at_loop of statement at_stmt, for
     * the region that loop's body reads (bound inference in lower/). */
    bool at;
    int at_stmt, at_loop;
} StmtSched;

typedef struct Schedule {
    const Program *prog;
    Arena *arena;     /* owned */
    StmtSched *st;    /* one per statement */
    PtrVec log;       /* applied primitives, one trace line each (sched_to_text) */
    /* After a failed primitive: the argument it objected to, so the text
     * parser can point at that token: k >= 0 the k-th argument inside the
     * parentheses, -2-k the k-th result name, -1 the call as a whole. */
    int err_arg;
    /* The program as rewritten by cache_write / cache_read / rfactor (new
     * temps appended after prog's tensors, new statements inserted before
     * their consumers), or NULL while there is none.  st[] and every
     * statement index of the schedule refer to sched_prog(s), never to
     * prog; prog stays the user's program (interpreter, ABI). */
    Program *dp;
} Schedule;

Schedule *sched_new(const Program *p);  /* the identity schedule: natural loop order */
void sched_free(Schedule *s);
Schedule *sched_clone(const Schedule *s);
/* Finds a loop "T.name" (T = the statement's output tensor).  Returns
 * statement and loop ids through *stmt and *loop. */
int sched_find_loop(const Schedule *s, const char *qualified, int *stmt, int *loop, kiln_error *e);

/* Primitives.  On error the schedule is unchanged and e says why. */
int sched_split(Schedule *s, int stmt, int loop, int nfactors, const int64_t *factors,
                const char *const *names, int *out_loops, kiln_error *e);
int sched_fuse(Schedule *s, int stmt, int nloops, const int *loops, const char *name,
               int *out_loop, kiln_error *e);
int sched_reorder(Schedule *s, int stmt, int nloops, const int *loops, kiln_error *e);
int sched_annotate(Schedule *s, int stmt, int loop, LoopKind kind, kiln_error *e);
int sched_inline(Schedule *s, int stmt, kiln_error *e);
/* The statements the schedule works on: prog, or its rewritten copy. */
const Program *sched_prog(const Schedule *s);
/* Memory-hierarchy primitives (docs/schedules.md).  Statement and tensor
 * indices refer to sched_prog(s); `name` may be NULL for a fresh default.
 * compute_at: statement stmt (writing a temp) is computed inside loop
 *   `loop` of statement `consumer`, the only statement that reads it.
 * cache_write: stmt's computation moves to a new temp `name` (same shape);
 *   stmt becomes the copy T[...] = name[...].  stmt must be unscheduled.
 * cache_read: a new temp `name` = copy of tensor `tensor`; consumer reads
 *   it instead.  layout (NULL or nlayout entries) permutes the new temp's
 *   dimensions: layout[k] = which dimension of `tensor` is the k-th.
 * rfactor: the reduction loop `loop` (an original reduction var) of stmt
 *   is split by `factor`; a new temp `name` holds the partial results
 *   indexed by the outer part (a spatial, parallelizable loop) and stmt
 *   reduces over them.  stmt must be unscheduled. */
int sched_compute_at(Schedule *s, int stmt, int consumer, int loop, kiln_error *e);
int sched_cache_write(Schedule *s, int stmt, const char *name, kiln_error *e);
int sched_cache_read(Schedule *s, int tensor, int consumer, const char *name, int nlayout,
                     const int *layout, kiln_error *e);
int sched_rfactor(Schedule *s, int stmt, int loop, int64_t factor, const char *name,
                  kiln_error *e);
/* A reasonable schedule when the user gives none. */
Schedule *sched_default(const Program *p);

/* A random valid schedule (split/fuse/reorder/annotations/inline drawn
 * with probabilities), for tests and the random search.  *rng is the
 * explicit random state (xorshift64*, nonzero). */
Schedule *sched_random(const Program *p, uint64_t *rng);
uint64_t ir_rand(uint64_t *rng); /* next 64 random bits */

/* Schedule text (trace form).  Parsing applies the primitives to s;
 * errors point at file:line:col of the text. */
int sched_apply_text(Schedule *s, const char *text, const char *filename, kiln_error *e);
char *sched_to_text(const Schedule *s); /* malloc'd; replays to the same schedule */
/* One call of the text form tokenised by the caller, applied many times
 * (tune/trace.c replays trace lines so): an argument is an identifier
 * p[0..len) or, with p NULL, the integer v.  sched_apply_call applies
 * `names = prim(args)` with the same checks and primitive as
 * sched_apply_text applies that line, but returns only the error code
 * (s is then unchanged: apply the line as text for the message). */
typedef struct SchedArg {
    const char *p;
    int len;
    int64_t v;
} SchedArg;
int sched_prim_index(const char *p, int len); /* for sched_apply_call; -1: no such primitive */
int sched_apply_call(Schedule *s, int prim, const SchedArg *names, int nnames,
                     const SchedArg *args, int nargs);

/* ================================================================ LoopIR */
typedef enum { LS_FOR, LS_STORE, LS_BLOCK, LS_IF, LS_ALLOC } LStmtKind;

/* A buffer LoopIR reads or writes: program tensors first (same indices),
 * then locals created by lowering. */
typedef struct LBuf {
    const char *name;
    DType dt;
    TensorKind kind;
    int ndim;
    int64_t dims[IR_MAX_DIMS];
} LBuf;

typedef struct LStmt LStmt;
struct LStmt {
    LStmtKind kind;
    union {
        struct {
            Var *var;        /* runs 0 .. extent-1 */
            int64_t extent;
            LoopKind kind;
            LStmt *body;
        } loop;
        struct {
            int buf;
            int n;           /* ndim before flattening; 1 after */
            Expr **idx;
            Expr *value;
        } store;
        struct {
            LStmt **s;
            int n;
        } block;
        struct {
            Expr *cond;
            LStmt *then_s, *else_s; /* else_s may be NULL */
        } cond;
        struct {
            int buf;         /* allocate buffer buf for the duration of body */
            LStmt *body;
        } alloc;
    } u;
};

typedef struct LFunc {
    const char *name;
    LBuf *bufs;
    int nbufs;
    int nargs;        /* bufs[0..nargs) are the function arguments */
    LStmt *body;
    bool flat;        /* after flattening: every load/store has one index */
} LFunc;

LStmt *ls_for(Arena *a, Var *v, int64_t extent, LoopKind k, LStmt *body);
LStmt *ls_store(Arena *a, int buf, int n, Expr **idx, Expr *value);
LStmt *ls_block(Arena *a, int n, LStmt **s);
LStmt *ls_if(Arena *a, Expr *cond, LStmt *then_s, LStmt *else_s);
LStmt *ls_alloc(Arena *a, int buf, LStmt *body);
Var *ir_var_new(Arena *a, const char *name, int64_t extent);

/* Pretty printer (for kiln show --after and golden tests). malloc'd. */
char *lfunc_to_text(const LFunc *f);

#endif
