/* tune/api.c: the public C API (include/kiln/kiln.h) over ir/, lower/,
 * codegen/ and runtime/.  Thin wrappers: validate arguments, translate
 * between public and internal types, never abort on user input. */
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "kiln/kiln.h"
#include "lower/lower.h"
#include "runtime/runtime.h"
#include "tune/tune.h"

struct kiln_program {
    Program *p;
    bool finished;
};

struct kiln_schedule {
    const kiln_program *prog;
    Schedule *s;
};

struct kiln_kernel {
    CgKernel *k;
};

void kiln_free(void *p)
{
    free(p);
}

static int inval(kiln_error *e, const char *what)
{
    return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "%s", what);
}

/* ------------------------------------------------------------ programs */
static int wrap_program(Program *p, kiln_program **out, kiln_error *e)
{
    kiln_program *kp = calloc(1, sizeof *kp);
    if (!kp) {
        ir_program_free(p);
        return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    }
    kp->p = p;
    kp->finished = true;
    *out = kp;
    return KILN_OK;
}

int kiln_program_parse_file(const char *path, kiln_program **out, kiln_error *e)
{
    if (!out)
        return inval(e, "kiln_program_parse_file: out is NULL");
    *out = NULL;
    if (!path)
        return inval(e, "kiln_program_parse_file: path is NULL");
    Program *p = NULL;
    int rc = ir_parse_yaml_file(path, &p, e);
    if (rc)
        return rc;
    return wrap_program(p, out, e);
}

int kiln_program_parse_file_params(const char *path, int nparams, const char *const *names,
                                   const long long *values, kiln_program **out, kiln_error *e)
{
    if (!out)
        return inval(e, "kiln_program_parse_file_params: out is NULL");
    *out = NULL;
    if (!path || nparams < 0 || nparams > 64 || (nparams && (!names || !values)))
        return inval(e, "kiln_program_parse_file_params: bad path or params");
    int64_t v[64];
    for (int i = 0; i < nparams; i++) {
        if (!names[i])
            return inval(e, "kiln_program_parse_file_params: a name is NULL");
        v[i] = values[i];
    }
    Program *p = NULL;
    int rc = ir_parse_yaml_file_params(path, nparams, names, v, &p, e);
    if (rc)
        return rc;
    return wrap_program(p, out, e);
}

int kiln_program_parse_string(const char *yaml, const char *filename, kiln_program **out,
                              kiln_error *e)
{
    if (!out)
        return inval(e, "kiln_program_parse_string: out is NULL");
    *out = NULL;
    if (!yaml)
        return inval(e, "kiln_program_parse_string: yaml is NULL");
    Program *p = NULL;
    int rc = ir_parse_yaml_string(yaml, strlen(yaml), filename ? filename : "<string>", &p, e);
    if (rc)
        return rc;
    return wrap_program(p, out, e);
}

kiln_program *kiln_program_new(const char *name, kiln_error *e)
{
    if (!name) {
        inval(e, "kiln_program_new: name is NULL");
        return NULL;
    }
    kiln_program *kp = calloc(1, sizeof *kp);
    if (!kp || !(kp->p = ir_program_new(name, "<api>"))) {
        free(kp);
        ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
        return NULL;
    }
    return kp;
}

static int check_building(kiln_program *p, kiln_error *e)
{
    if (!p)
        return inval(e, "program is NULL");
    if (p->finished)
        return inval(e, "program is already finished");
    return KILN_OK;
}

int kiln_program_add_param(kiln_program *p, const char *name, long long value, kiln_error *e)
{
    int rc = check_building(p, e);
    if (rc)
        return rc;
    if (!name)
        return inval(e, "kiln_program_add_param: name is NULL");
    return ir_program_add_param(p->p, name, value, (Loc){0, 0}, e);
}

int kiln_program_add_tensor(kiln_program *p, kiln_tensor_kind kind, const char *name,
                            kiln_dtype dtype, int ndim, const char *const *dims, kiln_error *e)
{
    int rc = check_building(p, e);
    if (rc)
        return rc;
    if (!name || ndim < 0 || ndim > KILN_MAX_DIMS || (ndim && !dims))
        return inval(e, "kiln_program_add_tensor: bad name, ndim or dims");
    if ((int)kind < KILN_INPUT || (int)kind > KILN_TEMP || (int)dtype < KILN_F32 ||
        (int)dtype > KILN_I64)
        return inval(e, "kiln_program_add_tensor: bad kind or dtype");
    static const TensorKind kinds[] = {T_INPUT, T_OUTPUT, T_TEMP};
    static const DType dts[] = {DT_F32, DT_F64, DT_I32, DT_I64};
    for (int i = 0; i < ndim; i++)
        if (!dims[i])
            return inval(e, "kiln_program_add_tensor: a dim is NULL");
    return ir_program_add_tensor(p->p, kinds[kind], name, dts[dtype], ndim, dims, NULL, (Loc){0, 0},
                                 e);
}

int kiln_program_add_stmt(kiln_program *p, const char *stmt, int nranges,
                          const char *const *range_names, const long long *range_extents,
                          kiln_error *e)
{
    int rc = check_building(p, e);
    if (rc)
        return rc;
    if (!stmt || nranges < 0 || (nranges && (!range_names || !range_extents)))
        return inval(e, "kiln_program_add_stmt: bad statement or ranges");
    int64_t ext[64];
    if (nranges > 64)
        return inval(e, "kiln_program_add_stmt: too many ranges");
    for (int i = 0; i < nranges; i++) {
        if (!range_names[i])
            return inval(e, "kiln_program_add_stmt: a range name is NULL");
        ext[i] = range_extents[i];
    }
    return ir_program_add_stmt(p->p, stmt, (Loc){1, 1}, nranges, range_names, ext, NULL, e);
}

int kiln_program_finish(kiln_program *p, kiln_error *e)
{
    int rc = check_building(p, e);
    if (rc)
        return rc;
    rc = ir_program_finish(p->p, e);
    if (rc == KILN_OK)
        p->finished = true;
    return rc;
}

void kiln_program_free(kiln_program *p)
{
    if (!p)
        return;
    ir_program_free(p->p);
    free(p);
}

const char *kiln_program_name(const kiln_program *p)
{
    return p ? p->p->name : NULL;
}

int kiln_program_num_args(const kiln_program *p)
{
    return p ? p->p->ninputs + p->p->noutputs : 0;
}

int kiln_program_arg(const kiln_program *p, int i, kiln_tensor_info *out)
{
    if (!p || !out || i < 0 || i >= kiln_program_num_args(p))
        return KILN_EINVAL;
    const Tensor *t = &p->p->tensors[i];
    static const kiln_dtype dts[] = {KILN_F32, KILN_F64, KILN_I32, KILN_I64, KILN_I32};
    memset(out, 0, sizeof *out);
    out->name = t->name;
    out->dtype = dts[t->dt];
    out->kind = t->kind == T_INPUT ? KILN_INPUT : KILN_OUTPUT;
    out->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++)
        out->dims[d] = t->dims[d];
    out->numel = tensor_numel(t);
    return KILN_OK;
}

double kiln_program_flops(const kiln_program *p)
{
    return p ? ir_program_flops(p->p) : 0;
}

int kiln_program_interpret(const kiln_program *p, void *const *args, kiln_error *e)
{
    if (!p || !args)
        return inval(e, "kiln_program_interpret: program or args is NULL");
    if (!p->finished)
        return inval(e, "kiln_program_interpret: program is not finished");
    int nargs = kiln_program_num_args(p);
    void **bufs = calloc((size_t)p->p->ntensors, sizeof(void *));
    if (!bufs)
        return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    for (int i = 0; i < nargs; i++) {
        if (!args[i]) {
            free(bufs);
            return inval(e, "kiln_program_interpret: an argument is NULL");
        }
        bufs[i] = args[i];
    }
    int rc = ir_interpret(p->p, bufs, e);
    free(bufs);
    return rc;
}

const Program *tune_program_of(const kiln_program *p)
{
    return p ? p->p : NULL;
}

const Schedule *tune_schedule_of(const kiln_schedule *s)
{
    return s ? s->s : NULL;
}

/* ----------------------------------------------------------- schedules */
static kiln_schedule *wrap_schedule(const kiln_program *p, Schedule *s)
{
    if (!s)
        return NULL;
    kiln_schedule *ks = calloc(1, sizeof *ks);
    if (!ks) {
        sched_free(s);
        return NULL;
    }
    ks->prog = p;
    ks->s = s;
    return ks;
}

kiln_schedule *kiln_schedule_new(const kiln_program *p)
{
    if (!p || !p->finished)
        return NULL;
    return wrap_schedule(p, sched_new(p->p));
}

kiln_schedule *kiln_schedule_default(const kiln_program *p)
{
    if (!p || !p->finished)
        return NULL;
    return wrap_schedule(p, sched_default(p->p));
}

kiln_schedule *kiln_schedule_clone(const kiln_schedule *s)
{
    if (!s)
        return NULL;
    return wrap_schedule(s->prog, sched_clone(s->s));
}

void kiln_schedule_free(kiln_schedule *s)
{
    if (!s)
        return;
    sched_free(s->s);
    free(s);
}

int kiln_schedule_apply(kiln_schedule *s, const char *text, const char *filename, kiln_error *e)
{
    if (!s || !text)
        return inval(e, "kiln_schedule_apply: schedule or text is NULL");
    return sched_apply_text(s->s, text, filename ? filename : "<schedule>", e);
}

int kiln_schedule_apply_file(kiln_schedule *s, const char *path, kiln_error *e)
{
    if (!s || !path)
        return inval(e, "kiln_schedule_apply_file: schedule or path is NULL");
    char *text = tune_read_file(path);
    if (!text)
        return ir_error(e, KILN_EIO, path, (Loc){0, 0}, "cannot read schedule file");
    int rc = sched_apply_text(s->s, text, path, e);
    free(text);
    return rc;
}

char *kiln_schedule_to_string(const kiln_schedule *s)
{
    return s ? sched_to_text(s->s) : NULL;
}

static int find_loop(const kiln_schedule *s, const char *name, int *stmt, int *loop, kiln_error *e)
{
    if (!s || !name)
        return inval(e, "schedule or loop name is NULL");
    return sched_find_loop(s->s, name, stmt, loop, e);
}

int kiln_schedule_split(kiln_schedule *s, const char *loop, int nfactors, const long long *factors,
                        const char *const *names, kiln_error *e)
{
    int st = -1, lp = -1;
    int rc = find_loop(s, loop, &st, &lp, e);
    if (rc)
        return rc;
    if (nfactors < 1 || nfactors >= IR_MAX_DIMS || !factors)
        return ir_error(e, KILN_ESCHEDULE, NULL, (Loc){0, 0}, "split of %s needs 1 to %d factors",
                        loop, IR_MAX_DIMS - 1);
    int64_t f[IR_MAX_DIMS];
    const char *nm[IR_MAX_DIMS];
    for (int i = 0; i < nfactors; i++)
        f[i] = factors[i];
    /* Public names may be qualified ("C.io"); the schedule stores bare ones. */
    if (names)
        for (int i = 0; i <= nfactors; i++) {
            if (!names[i])
                return inval(e, "kiln_schedule_split: a name is NULL");
            const char *dot = strrchr(names[i], '.');
            nm[i] = dot ? dot + 1 : names[i];
        }
    int out[IR_MAX_DIMS];
    return sched_split(s->s, st, lp, nfactors, f, names ? nm : NULL, out, e);
}

static int find_loops(const kiln_schedule *s, int n, const char *const *loops, int *stmt, int *ids,
                      kiln_error *e)
{
    if (n < 1 || n > 64 || !loops)
        return inval(e, "loop list is empty or too long");
    for (int i = 0; i < n; i++) {
        int st;
        int rc = find_loop(s, loops[i], &st, &ids[i], e);
        if (rc)
            return rc;
        if (i && st != *stmt)
            return ir_error(e, KILN_ESCHEDULE, NULL, (Loc){0, 0},
                            "loops %s and %s belong to different statements", loops[0], loops[i]);
        *stmt = st;
    }
    return KILN_OK;
}

int kiln_schedule_fuse(kiln_schedule *s, int nloops, const char *const *loops, const char *name,
                       kiln_error *e)
{
    int st = 0, ids[64], out;
    int rc = find_loops(s, nloops, loops, &st, ids, e);
    if (rc)
        return rc;
    const char *nm = name ? strrchr(name, '.') : NULL;
    return sched_fuse(s->s, st, nloops, ids, nm ? nm + 1 : name, &out, e);
}

int kiln_schedule_reorder(kiln_schedule *s, int nloops, const char *const *loops, kiln_error *e)
{
    int st = 0, ids[64];
    int rc = find_loops(s, nloops, loops, &st, ids, e);
    if (rc)
        return rc;
    return sched_reorder(s->s, st, nloops, ids, e);
}

static int annotate(kiln_schedule *s, const char *loop, LoopKind k, kiln_error *e)
{
    int st = -1, lp = -1;
    int rc = find_loop(s, loop, &st, &lp, e);
    if (rc)
        return rc;
    return sched_annotate(s->s, st, lp, k, e);
}

int kiln_schedule_parallel(kiln_schedule *s, const char *loop, kiln_error *e)
{
    return annotate(s, loop, LOOP_PARALLEL, e);
}

int kiln_schedule_vectorize(kiln_schedule *s, const char *loop, kiln_error *e)
{
    return annotate(s, loop, LOOP_VECTORIZED, e);
}

int kiln_schedule_unroll(kiln_schedule *s, const char *loop, kiln_error *e)
{
    return annotate(s, loop, LOOP_UNROLLED, e);
}

int kiln_schedule_inline(kiln_schedule *s, const char *tensor, kiln_error *e)
{
    if (!s || !tensor)
        return inval(e, "kiln_schedule_inline: schedule or tensor is NULL");
    int t = ir_find_tensor(sched_prog(s->s), tensor);
    if (t < 0)
        return ir_error(e, KILN_ESCHEDULE, NULL, (Loc){0, 0}, "unknown tensor '%s'", tensor);
    if (sched_prog(s->s)->tensors[t].writer < 0)
        return ir_error(e, KILN_ESCHEDULE, NULL, (Loc){0, 0}, "cannot inline '%s': it is an input",
                        tensor);
    return sched_inline(s->s, sched_prog(s->s)->tensors[t].writer, e);
}

/* Tensor by name in the schedule's (possibly rewritten) program. */
static int find_tensor_w(const kiln_schedule *s, const char *name, int *t, int *w, kiln_error *e)
{
    if (!s || !name)
        return inval(e, "schedule or tensor name is NULL");
    *t = ir_find_tensor(sched_prog(s->s), name);
    if (*t < 0)
        return ir_error(e, KILN_ESCHEDULE, NULL, (Loc){0, 0}, "unknown tensor '%s'", name);
    *w = sched_prog(s->s)->tensors[*t].writer;
    return KILN_OK;
}

int kiln_schedule_compute_at(kiln_schedule *s, const char *tensor, const char *loop, kiln_error *e)
{
    int t = -1, w = -1, st = -1, lp = -1;
    int rc = find_tensor_w(s, tensor, &t, &w, e);
    if (rc || (rc = find_loop(s, loop, &st, &lp, e)))
        return rc;
    if (w < 0)
        return ir_error(e, KILN_ESCHEDULE, NULL, (Loc){0, 0},
                        "cannot compute '%s' at a loop: it is an input", tensor);
    return sched_compute_at(s->s, w, st, lp, e);
}

int kiln_schedule_cache_write(kiln_schedule *s, const char *tensor, const char *name, kiln_error *e)
{
    int t = -1, w = -1;
    int rc = find_tensor_w(s, tensor, &t, &w, e);
    if (rc)
        return rc;
    if (w < 0)
        return ir_error(e, KILN_ESCHEDULE, NULL, (Loc){0, 0},
                        "cannot cache_write '%s': it is an input", tensor);
    return sched_cache_write(s->s, w, name, e);
}

int kiln_schedule_cache_read(kiln_schedule *s, const char *tensor, const char *consumer,
                             const char *name, const int *layout, kiln_error *e)
{
    int t = -1, w = -1, ct = -1, cw = -1;
    int rc = find_tensor_w(s, tensor, &t, &w, e);
    if (rc || (rc = find_tensor_w(s, consumer, &ct, &cw, e)))
        return rc;
    if (cw < 0)
        return ir_error(e, KILN_ESCHEDULE, NULL, (Loc){0, 0},
                        "'%s' is an input; the consumer must be a computed tensor", consumer);
    int n = layout ? sched_prog(s->s)->tensors[t].ndim : 0;
    return sched_cache_read(s->s, t, cw, name, n, layout, e);
}

int kiln_schedule_rfactor(kiln_schedule *s, const char *loop, long long factor, const char *name,
                          kiln_error *e)
{
    int st = -1, lp = -1;
    int rc = find_loop(s, loop, &st, &lp, e);
    if (rc)
        return rc;
    return sched_rfactor(s->s, st, lp, factor, name, e);
}

/* ------------------------------------------------------------- kernels */
int tune_lower(const Schedule *s, Arena **arena, LFunc **f, const char *stop_after, kiln_error *e)
{
    *arena = arena_new();
    if (!*arena)
        return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    int rc = lower_schedule(s, *arena, stop_after, f, e);
    if (rc) {
        arena_free(*arena);
        *arena = NULL;
    }
    return rc;
}

int kiln_kernel_compile(const kiln_schedule *s, kiln_kernel **out, kiln_error *e)
{
    if (!out)
        return inval(e, "kiln_kernel_compile: out is NULL");
    *out = NULL;
    if (!s)
        return inval(e, "kiln_kernel_compile: schedule is NULL");
    double t0 = kiln_rt_now();
    Arena *a;
    LFunc *f;
    int rc = tune_lower(s->s, &a, &f, NULL, e);
    if (rc)
        return rc;
    double lower_ms = (kiln_rt_now() - t0) * 1e3;
    CgKernel *k = NULL;
    rc = cg_compile(f, &k, e);
    arena_free(a);
    if (rc)
        return rc;
    kiln_kernel *kk = calloc(1, sizeof *kk);
    if (!kk) {
        cg_kernel_free(k);
        return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    }
    (void)lower_ms;
    kk->k = k;
    *out = kk;
    return KILN_OK;
}

int kiln_kernel_call(const kiln_kernel *k, void *const *args)
{
    if (!k || !args)
        return KILN_EINVAL;
    return cg_kernel_packed(k->k)((void **)args);
}

void *kiln_kernel_function(const kiln_kernel *k)
{
    return k ? cg_kernel_fn(k->k) : NULL;
}

double kiln_kernel_compile_ms(const kiln_kernel *k)
{
    return k ? cg_kernel_compile_ms(k->k) : 0;
}

double kiln_kernel_compile_cpu_ms(const kiln_kernel *k)
{
    return k ? cg_kernel_compile_cpu_ms(k->k) : 0;
}

void kiln_kernel_free(kiln_kernel *k)
{
    if (!k)
        return;
    cg_kernel_free(k->k);
    free(k);
}

int kiln_emit_object(const kiln_schedule *s, const char *obj_path, const char *header_path,
                     kiln_error *e)
{
    if (!s || !obj_path)
        return inval(e, "kiln_emit_object: schedule or path is NULL");
    Arena *a;
    LFunc *f;
    int rc = tune_lower(s->s, &a, &f, NULL, e);
    if (rc)
        return rc;
    rc = cg_emit_object(f, obj_path, e);
    arena_free(a);
    if (rc == KILN_OK && header_path)
        rc = cg_emit_header(s->s->prog, header_path, e);
    return rc;
}

const char *const *kiln_pass_names(void)
{
    return lower_pass_names;
}

int kiln_show(const kiln_schedule *s, const char *what, char **out, kiln_error *e)
{
    if (!s || !what || !out)
        return inval(e, "kiln_show: schedule, what or out is NULL");
    *out = NULL;
    if (!strcmp(what, "schedule")) {
        *out = sched_to_text(s->s);
        return *out ? KILN_OK : ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    }
    bool llvm = !strcmp(what, "llvm"), llvm_opt = !strcmp(what, "llvm-opt");
    bool is_asm = !strcmp(what, "asm");
    Arena *a;
    LFunc *f;
    int rc = tune_lower(s->s, &a, &f, (llvm || llvm_opt || is_asm) ? NULL : what, e);
    if (rc)
        return rc;
    if (llvm || llvm_opt)
        rc = cg_llvm_text(f, CG_OBJECT, llvm_opt, out, e);
    else if (is_asm)
        rc = cg_asm_text(f, out, e);
    else if (!(*out = lfunc_to_text(f)))
        rc = ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    arena_free(a);
    return rc;
}

void kiln_set_num_threads(int n)
{
    kiln_rt_set_num_threads(n);
}

int kiln_get_num_threads(void)
{
    return kiln_rt_get_num_threads();
}
